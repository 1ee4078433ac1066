"""API apps (OAuth2 client credentials) and their access tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from instamsg.store.tables import access_token, app


@dataclass(frozen=True, slots=True)
class AppRow:
    id: str
    client_key: str
    secret_hash: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AccessTokenRow:
    token_hash: str
    app_id: str
    expires_at: datetime
    revoked_at: datetime | None


async def insert_app(connection: AsyncConnection, row: AppRow) -> None:
    await connection.execute(
        insert(app).values(
            id=row.id,
            client_key=row.client_key,
            secret_hash=row.secret_hash,
            name=row.name,
            created_at=row.created_at,
        )
    )


async def get_app_by_key(connection: AsyncConnection, client_key: str) -> AppRow | None:
    result = await connection.execute(select(app).where(app.c.client_key == client_key))
    found = result.mappings().first()
    return AppRow(**found) if found else None


async def list_apps(connection: AsyncConnection) -> list[AppRow]:
    result = await connection.execute(select(app).order_by(app.c.created_at, app.c.id))
    return [AppRow(**found) for found in result.mappings()]


async def delete_app(connection: AsyncConnection, app_id: str) -> None:
    await connection.execute(delete(app).where(app.c.id == app_id))


async def insert_access_token(
    connection: AsyncConnection, token_hash: str, app_id: str, expires_at: datetime, created_at: datetime
) -> None:
    await connection.execute(
        insert(access_token).values(
            token_hash=token_hash, app_id=app_id, expires_at=expires_at, created_at=created_at
        )
    )


async def get_access_token(connection: AsyncConnection, token_hash: str) -> AccessTokenRow | None:
    result = await connection.execute(
        select(
            access_token.c.token_hash,
            access_token.c.app_id,
            access_token.c.expires_at,
            access_token.c.revoked_at,
        ).where(access_token.c.token_hash == token_hash)
    )
    found = result.mappings().first()
    return AccessTokenRow(**found) if found else None


async def revoke_access_token(
    connection: AsyncConnection, token_hash: str, app_id: str, revoked_at: datetime
) -> None:
    await connection.execute(
        update(access_token)
        .where(
            access_token.c.token_hash == token_hash,
            access_token.c.app_id == app_id,
            access_token.c.revoked_at.is_(None),
        )
        .values(revoked_at=revoked_at)
    )


async def delete_expired_access_tokens(connection: AsyncConnection, before: datetime) -> int:
    result = await connection.execute(delete(access_token).where(access_token.c.expires_at < before))
    return result.rowcount
