"""Formats and generation of identifiers, tokens and app credentials."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from typing import Final

UUID_PATTERN: Final = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


def new_uuid() -> str:
    """A fresh version 4 UUID in canonical lowercase form."""
    return str(uuid.uuid4())


def canonical_uuid(text: str) -> str | None:
    """The canonical lowercase form of a UUID in 8-4-4-4-12 shape, or None if `text` is not one."""
    if UUID_PATTERN.match(text):
        return text.lower()
    return None


def new_client_auth_token() -> str:
    """32 lowercase hex characters: fits C's 50-byte buffer and splices safely into JSON (spec §1.3)."""
    return secrets.token_hex(16)


def new_access_token() -> str:
    """An opaque OAuth2 access token: 32 random bytes, URL-safe."""
    return secrets.token_urlsafe(32)


def new_app_key() -> str:
    return "ak_" + secrets.token_hex(12)


def new_app_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """Hash of a high-entropy random secret or token.

    These secrets carry 256 random bits, so a fast hash is enough: no dictionary attack applies, and
    token checks stay cheap on every request.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
