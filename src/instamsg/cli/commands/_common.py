"""What the resource commands share: the --profile and --json options, the client, error lines."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from instamsg.api import (
    ApiError,
    BadRequestError,
    Client,
    ClientNotFoundError,
    ConnectionFailedError,
    InstaMsgError,
    InvalidClientError,
    InvalidTokenError,
    NotFoundError,
    ProvisioningIdTakenError,
    SortOrder,
    TenantNotFoundError,
)
from instamsg.cli.output import ExitCode, fail, print_json, print_line, print_table
from instamsg.cli.profiles import Credentials, ProfileError, resolve_credentials

ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        envvar="INSTAMSG_PROFILE",
        help="Saved credentials to use (instamsg login) [default: default]. "
        "INSTAMSG_URL, INSTAMSG_CLIENT_KEY and INSTAMSG_CLIENT_SECRET win over it.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the server's JSON, for scripts.")]
TenantOption = Annotated[str, typer.Option("--tenant", help="Tenant id.", show_default=False)]


def describe(error: InstaMsgError, credentials: Credentials) -> tuple[str, ExitCode]:
    """One line saying what went wrong and what to do, and the exit code for it."""
    if isinstance(error, ConnectionFailedError):
        return (
            f"{error.message}: is the server running? Check the URL ({credentials.url_source})",
            ExitCode.CONNECTION_ERROR,
        )
    if isinstance(error, InvalidClientError):
        sources = sorted({credentials.key_source, credentials.secret_source})
        return (
            f"the client key or secret is wrong: check {' and '.join(sources)}, "
            "or run `instamsg login` with the key and secret of `instamsg apps create`",
            ExitCode.API_ERROR,
        )
    if isinstance(error, InvalidTokenError):
        return (
            f"the server refused a fresh access token ({error.message}); retry, and check the server's "
            "clock and token settings if it persists",
            ExitCode.API_ERROR,
        )
    if isinstance(error, TenantNotFoundError):
        return f"{error.message} List the app's tenants with `instamsg tenants list`.", ExitCode.API_ERROR
    if isinstance(error, ClientNotFoundError):
        return (
            f"{error.message} List the tenant's clients with `instamsg clients list --tenant TENANT_ID`.",
            ExitCode.API_ERROR,
        )
    if isinstance(error, ProvisioningIdTakenError):
        return f"{error.message} Choose another --provisioning-id.", ExitCode.API_ERROR
    if isinstance(error, NotFoundError) and error.code in ("not_found", "http_error"):
        return (
            f"{credentials.url} has no such endpoint ({error.message}): check that the URL "
            f"({credentials.url_source}) is an InstaMsg server",
            ExitCode.API_ERROR,
        )
    if isinstance(error, BadRequestError):
        return f"the server refused the request: {error.message}", ExitCode.API_ERROR
    if isinstance(error, ApiError):
        return f"{error.message} ({error.status} {error.code})", ExitCode.API_ERROR
    return str(error), ExitCode.API_ERROR


@contextmanager
def reporting_errors(credentials: Credentials) -> Iterator[None]:
    """Turn SDK exceptions into one error line and the matching exit code."""
    try:
        yield
    except InstaMsgError as error:
        message, code = describe(error, credentials)
        raise fail(message, code) from None


def open_client(credentials: Credentials) -> Client:
    try:
        return Client(credentials.url, credentials.client_key, credentials.client_secret)
    except ValueError as error:
        raise fail(f"{error} (from {credentials.url_source})", ExitCode.USAGE) from None


@contextmanager
def api_client(profile: str | None) -> Iterator[Client]:
    """A REST client with the resolved credentials; API and connection errors end the command."""
    try:
        credentials = resolve_credentials(profile)
    except ProfileError as error:
        raise fail(str(error), ExitCode.USAGE) from None
    with open_client(credentials) as client, reporting_errors(credentials):
        yield client


ClientArgument = Annotated[str, typer.Argument(help="Client id (UUID).", show_default=False)]
StartOption = Annotated[
    str | None,
    typer.Option("--start", help="Oldest time: epoch seconds, 'YYYY-MM-DD HH:MM:SS' or ISO 8601 (UTC)."),
]
EndOption = Annotated[str | None, typer.Option("--end", help="Newest time, same forms as --start.")]
LimitOption = Annotated[
    int, typer.Option("--limit", min=1, max=1000, help="Items per page (1-1000).", show_default=True)
]
CursorOption = Annotated[
    str | None, typer.Option("--cursor", help="next_cursor printed by the previous page (same filters).")
]
AllPagesOption = Annotated[bool, typer.Option("--all", help="Follow next_cursor and print every page.")]
SortOrderOption = Annotated[
    SortOrder | None, typer.Option("--sort-order", help="desc (newest first, the default) or asc.")
]


def print_page(
    title: str,
    columns: Sequence[str],
    items: Sequence[Mapping[str, Any]],
    next_cursor: str | None,
    json_output: bool,
) -> None:
    """A time-series page: ``{"items", "next_cursor"}`` as JSON, else a table and the cursor to go on."""
    if json_output:
        print_json({"items": list(items), "next_cursor": next_cursor})
        return
    print_table(title, columns, items)
    if next_cursor is not None:
        print_line(f"More: add --cursor {next_cursor} (or --all)")
