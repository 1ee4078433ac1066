"""Saved REST credentials (``instamsg login``) and how a command finds the ones to use.

Profiles live in ``$XDG_CONFIG_HOME/instamsg/profiles.json`` (``~/.config/instamsg/profiles.json`` when
the variable is unset), written with mode 0600 because they hold client secrets::

    {"profiles": {"default": {"url": "...", "client_key": "...", "client_secret": "..."}}}

``INSTAMSG_URL``, ``INSTAMSG_CLIENT_KEY`` and ``INSTAMSG_CLIENT_SECRET`` win over the profile, one by one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

DEFAULT_PROFILE: Final = "default"
PROFILE_VARIABLE: Final = "INSTAMSG_PROFILE"
URL_VARIABLE: Final = "INSTAMSG_URL"
CLIENT_KEY_VARIABLE: Final = "INSTAMSG_CLIENT_KEY"
CLIENT_SECRET_VARIABLE: Final = "INSTAMSG_CLIENT_SECRET"
_VARIABLES: Final = (URL_VARIABLE, CLIENT_KEY_VARIABLE, CLIENT_SECRET_VARIABLE)
_FIELDS: Final = ("url", "client_key", "client_secret")


class ProfileError(Exception):
    """Credentials are missing, or the profiles file cannot be used; the message says what to do."""


@dataclass(frozen=True)
class Profile:
    url: str
    client_key: str
    client_secret: str


@dataclass(frozen=True)
class Credentials:
    """The credentials a command uses, with where each one came from (for error messages)."""

    url: str
    client_key: str
    client_secret: str
    url_source: str
    key_source: str
    secret_source: str


def profiles_path(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "instamsg" / "profiles.json"


def load_profiles(path: Path) -> dict[str, Profile]:
    """Every saved profile; an absent file has none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise ProfileError(
            f"cannot read {path}: {error}; fix or delete it and run `instamsg login`"
        ) from None
    profiles: dict[str, Profile] = {}
    entries = data.get("profiles") if isinstance(data, dict) else None
    for name, entry in (entries or {}).items():
        try:
            profiles[name] = Profile(str(entry["url"]), str(entry["client_key"]), str(entry["client_secret"]))
        except (KeyError, TypeError):
            raise ProfileError(
                f"profile {name!r} in {path} is incomplete; run `instamsg login` again"
            ) from None
    return profiles


def save_profile(name: str, profile: Profile, path: Path) -> None:
    """Add or replace one profile; the file is replaced atomically and readable by its owner only."""
    profiles = load_profiles(path)
    profiles[name] = profile
    document = {"profiles": {key: asdict(value) for key, value in sorted(profiles.items())}}
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # O_CREAT's mode does not apply to a leftover file
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def resolve_credentials(profile_name: str | None, environ: Mapping[str, str] | None = None) -> Credentials:
    """Environment variables first, then the profile (``--profile``, ``INSTAMSG_PROFILE`` or default)."""
    environ = os.environ if environ is None else environ
    path = profiles_path(environ)
    name = profile_name or environ.get(PROFILE_VARIABLE) or DEFAULT_PROFILE
    named = profile_name is not None or bool(environ.get(PROFILE_VARIABLE))
    from_environment = [environ.get(variable) or None for variable in _VARIABLES]
    profile: Profile | None = None
    if named or not all(from_environment):
        profile = load_profiles(path).get(name)
        if profile is None and named:
            raise ProfileError(
                f"no profile {name!r} in {path}: run `instamsg login --profile {name} --url URL "
                "--client-key KEY --client-secret SECRET`"
            )
    values: list[str] = []
    sources: list[str] = []
    for variable, value, field in zip(_VARIABLES, from_environment, _FIELDS, strict=True):
        if value:
            values.append(value)
            sources.append(variable)
        elif profile is not None:
            values.append(getattr(profile, field))
            sources.append(f"profile {name!r} in {path}")
        else:
            missing = ", ".join(v for v, given in zip(_VARIABLES, from_environment, strict=True) if not given)
            raise ProfileError(
                f"no credentials: set {missing} or run `instamsg login --url URL --client-key KEY "
                "--client-secret SECRET`"
            )
    return Credentials(*values, *sources)
