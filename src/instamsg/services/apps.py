"""API apps and OAuth2 access tokens: issue, verify, invalidate."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from instamsg.domain import ids
from instamsg.domain.clock import utc_now
from instamsg.domain.errors import AppNotFound, InvalidAccessToken, InvalidClientCredentials, ValidationFailed
from instamsg.store.repositories import apps as app_repository
from instamsg.store.repositories.apps import AppRow
from instamsg.store.store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CreatedApp:
    app: AppRow
    client_secret: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int


class AppService:
    def __init__(self, store: Store, *, token_lifetime_seconds: int = 3600):
        self.store = store
        self.token_lifetime_seconds = token_lifetime_seconds

    async def create_app(self, name: str) -> CreatedApp:
        name = name.strip()
        if not name or len(name) > 255:
            raise ValidationFailed("The app name must be 1 to 255 characters.", details={"field": "name"})
        secret = ids.new_app_secret()
        row = AppRow(
            id=ids.new_uuid(),
            client_key=ids.new_app_key(),
            secret_hash=ids.hash_secret(secret),
            name=name,
            created_at=utc_now(),
        )
        async with self.store.write() as connection:
            await app_repository.insert_app(connection, row)
        logger.info("app_created app=%s", row.id)
        return CreatedApp(app=row, client_secret=secret)

    async def list_apps(self) -> list[AppRow]:
        async with self.store.read() as connection:
            return await app_repository.list_apps(connection)

    async def delete_app(self, client_key: str) -> None:
        async with self.store.write() as connection:
            found = await app_repository.get_app_by_key(connection, client_key)
            if found is None:
                raise AppNotFound(
                    f"No app with client key {client_key!r}.", details={"client_key": client_key}
                )
            await app_repository.delete_app(connection, found.id)
        logger.info("app_deleted app=%s", found.id)

    async def authenticate_app(self, client_key: str, client_secret: str) -> AppRow:
        found = None
        # A key no backend can store (NUL, over-long) names no app; PostgreSQL would reject the query.
        if "\x00" not in client_key and len(client_key) <= 64:
            async with self.store.read() as connection:
                found = await app_repository.get_app_by_key(connection, client_key)
        # Hash even when the key is unknown, so timing does not tell which keys exist.
        matches = ids.secret_matches(client_secret, found.secret_hash if found else "0" * 64)
        if found is None or not matches:
            raise InvalidClientCredentials("The client key or client secret is wrong.")
        return found

    async def issue_token(self, client_key: str, client_secret: str) -> IssuedToken:
        found = await self.authenticate_app(client_key, client_secret)
        token = ids.new_access_token()
        now = utc_now()
        async with self.store.write() as connection:
            await app_repository.insert_access_token(
                connection,
                ids.hash_secret(token),
                found.id,
                now + timedelta(seconds=self.token_lifetime_seconds),
                now,
            )
            # Housekeeping piggybacks on issuance so the table cannot grow without bound.
            await app_repository.delete_expired_access_tokens(connection, now - timedelta(days=1))
        return IssuedToken(access_token=token, expires_in=self.token_lifetime_seconds)

    async def verify_token(self, token: str) -> str:
        """The id of the app the token was issued to; raises InvalidAccessToken otherwise."""
        async with self.store.read() as connection:
            found = await app_repository.get_access_token(connection, ids.hash_secret(token))
        if found is None:
            raise InvalidAccessToken("The access token is unknown.", details={"reason": "unknown"})
        if found.revoked_at is not None:
            raise InvalidAccessToken("The access token was invalidated.", details={"reason": "invalidated"})
        if found.expires_at <= utc_now():
            raise InvalidAccessToken(
                "The access token has expired; request a new one.", details={"reason": "expired"}
            )
        return found.app_id

    async def invalidate_token(self, client_key: str, client_secret: str, token: str) -> None:
        """Revoke a token of this app; unknown or foreign tokens are ignored (RFC 7009)."""
        found = await self.authenticate_app(client_key, client_secret)
        async with self.store.write() as connection:
            await app_repository.revoke_access_token(connection, ids.hash_secret(token), found.id, utc_now())
