"""Device telemetry: network-log items and the latest device-reported state (spec §2.4.5, §2.4.6, §11.4)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from instamsg.store.tables import client, client_device_state, client_network_log

# The columns of client_device_state this module writes; the session and remote-logging columns
# belong to other features and are never touched here.
TELEMETRY_STATE_COLUMNS = frozenset(
    {"info", "info_updated_at", "network", "library_name", "library_version", "client_identifier"}
)


@dataclass(frozen=True, slots=True)
class NetworkLogFilters:
    """Exact-match filters of getClientNetworkLogs; `mac_id` is already hexified."""

    mac_id: str | None = None
    imei: str | None = None
    msisdn: str | None = None
    iccid: str | None = None


async def existing_client_ids(connection: AsyncConnection, client_ids: Iterable[str]) -> set[str]:
    wanted = set(client_ids)
    if not wanted:
        return set()
    result = await connection.execute(select(client.c.id).where(client.c.id.in_(wanted)))
    return set(result.scalars())


async def insert_network_logs(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await connection.execute(insert(client_network_log), rows)


async def get_device_state(connection: AsyncConnection, client_id: str) -> dict[str, Any] | None:
    """The client's device-state row as a dict of every column, or None."""
    result = await connection.execute(
        select(client_device_state).where(client_device_state.c.client_id == client_id)
    )
    found = result.mappings().first()
    return dict(found) if found is not None else None


async def upsert_device_state(connection: AsyncConnection, client_id: str, values: dict[str, Any]) -> None:
    """Insert the row or update only the given telemetry columns (other features' columns stay)."""
    unknown = set(values) - TELEMETRY_STATE_COLUMNS
    if unknown:
        raise ValueError(f"not telemetry columns: {sorted(unknown)}")
    if not values:
        return
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(client_device_state).values(client_id=client_id, **values)
    statement = statement.on_conflict_do_update(
        index_elements=[client_device_state.c.client_id],
        set_={name: statement.excluded[name] for name in values},
    )
    await connection.execute(statement)


async def list_network_logs(
    connection: AsyncConnection,
    client_id: str,
    *,
    start: datetime | None,
    end: datetime | None,
    filters: NetworkLogFilters,
    descending: bool,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[dict[str, Any]]:
    """One page in (time, id) order; `after` is the last item of the previous page (keyset)."""
    table = client_network_log
    query = select(table).where(table.c.client_id == client_id)
    if start is not None:
        query = query.where(table.c.time >= start)
    if end is not None:
        query = query.where(table.c.time <= end)
    for name in ("mac_id", "imei", "msisdn", "iccid"):
        value = getattr(filters, name)
        if value is not None:
            query = query.where(table.c[name] == value)
    if after is not None:
        time, last_id = after
        if descending:
            query = query.where(or_(table.c.time < time, and_(table.c.time == time, table.c.id < last_id)))
        else:
            query = query.where(or_(table.c.time > time, and_(table.c.time == time, table.c.id > last_id)))
    if descending:
        query = query.order_by(table.c.time.desc(), table.c.id.desc())
    else:
        query = query.order_by(table.c.time.asc(), table.c.id.asc())
    result = await connection.execute(query.limit(limit))
    return [dict(found) for found in result.mappings()]
