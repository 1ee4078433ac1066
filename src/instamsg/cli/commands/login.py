"""``instamsg login``: check REST credentials and save them as a profile."""

from __future__ import annotations

from typing import Annotated

import typer

from instamsg.cli.commands._common import open_client, reporting_errors
from instamsg.cli.output import ExitCode, fail, print_line
from instamsg.cli.profiles import (
    DEFAULT_PROFILE,
    Credentials,
    Profile,
    ProfileError,
    profiles_path,
    save_profile,
)


def login(
    url: Annotated[str, typer.Option("--url", help="Base URL of the REST API, e.g. http://localhost:8080.")],
    client_key: Annotated[
        str, typer.Option("--client-key", help="The app's client key (instamsg apps create).")
    ],
    client_secret: Annotated[
        str,
        typer.Option(
            "--client-secret", prompt=True, hide_input=True, help="The app's client secret; asked if omitted."
        ),
    ],
    profile: Annotated[
        str, typer.Option("--profile", help="Name to save the credentials under.")
    ] = DEFAULT_PROFILE,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Get an access token first to check them.")
    ] = True,
) -> None:
    """Save REST API credentials as a profile (file mode 0600) after checking them against the server."""
    path = profiles_path()
    source = "--url, --client-key, --client-secret"
    credentials = Credentials(url, client_key, client_secret, source, "--client-key", "--client-secret")
    if verify:
        with open_client(credentials) as client, reporting_errors(credentials):
            client.get_access_token()
            client.invalidate_access_token()
    try:
        save_profile(profile, Profile(url, client_key, client_secret), path)
    except (ProfileError, OSError) as error:
        raise fail(f"cannot save the profile: {error}", ExitCode.USAGE) from None
    print_line(f"Saved profile {profile!r} to {path}")
