"""Configuration sync state (spec §8, D7): one `client_config` row per client."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from instamsg.store.tables import client_config


@dataclass
class ConfigState:
    """Desired and reported values with their versions, per-key metadata and unacknowledged keys."""

    client_id: str
    desired: dict[str, Any] = field(default_factory=dict)
    desired_version: int = 0
    desired_updated_at: datetime | None = None
    reported: dict[str, Any] = field(default_factory=dict)
    reported_version: int = 0
    reported_updated_at: datetime | None = None
    key_meta: dict[str, dict[str, str]] = field(default_factory=dict)
    unacknowledged: list[str] = field(default_factory=list)
    version: int = 0


def _state(found: Any) -> ConfigState:
    return ConfigState(
        client_id=found["client_id"],
        desired=dict(found["desired"] or {}),
        desired_version=int(found["desired_version"]),
        desired_updated_at=found["desired_updated_at"],
        reported=dict(found["reported"] or {}),
        reported_version=int(found["reported_version"]),
        reported_updated_at=found["reported_updated_at"],
        key_meta={key: dict(meta) for key, meta in (found["key_meta"] or {}).items()},
        unacknowledged=list(found["unacknowledged"] or []),
        version=int(found["version"]),
    )


def _values(state: ConfigState) -> dict[str, Any]:
    return {
        "desired": state.desired,
        "desired_version": state.desired_version,
        "desired_updated_at": state.desired_updated_at,
        "reported": state.reported,
        "reported_version": state.reported_version,
        "reported_updated_at": state.reported_updated_at,
        "key_meta": state.key_meta,
        "unacknowledged": state.unacknowledged,
        "version": state.version,
    }


async def get_config(connection: AsyncConnection, client_id: str) -> ConfigState:
    """The client's state; an empty one (not stored) when it has none yet."""
    result = await connection.execute(select(client_config).where(client_config.c.client_id == client_id))
    found = result.mappings().first()
    return _state(found) if found is not None else ConfigState(client_id)


async def lock_config(connection: AsyncConnection, client_id: str) -> ConfigState:
    """The client's state, its row created if missing and locked until the transaction ends.

    Read-modify-write of the config runs inside one write transaction: SQLite serialises writers, and
    PostgreSQL holds the row lock (the insert first, so two first writers cannot both miss the row).
    """
    empty = _values(ConfigState(client_id))
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    await connection.execute(
        dialect_insert(client_config)
        .values(client_id=client_id, **empty)
        .on_conflict_do_nothing(index_elements=[client_config.c.client_id])
    )
    query = select(client_config).where(client_config.c.client_id == client_id)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    found = (await connection.execute(query)).mappings().one()
    return _state(found)


async def save_config(connection: AsyncConnection, state: ConfigState) -> None:
    await connection.execute(
        update(client_config).where(client_config.c.client_id == state.client_id).values(**_values(state))
    )
