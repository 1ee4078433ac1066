"""Client activity: session records, log entries and the remote-logging request (spec §2.4.5, §9).

Rows are written in batches by `instamsg.store.activity.ActivityWriter`; the list queries are keyset
paginated on (time, id) like the message history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, bindparam, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from instamsg.store.tables import client, client_device_state, client_log, client_session

SESSION_SORT_COLUMNS = ("connect_time", "disconnect_time")


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    client_id: str
    tenant_id: str
    connect_time: datetime
    disconnect_time: datetime | None
    transport: str
    remote_address: str
    protocol: str
    profile: str
    client_identifier: str
    keep_alive: int
    clean_session: bool
    disconnect_reason: str | None
    data: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class LogRecord:
    id: str
    client_id: str
    time: datetime
    level: str
    creator: str
    message: str


@dataclass(frozen=True, slots=True)
class ServerLogging:
    """A client's remote-logging request: who asked (the app id) and until when."""

    client_id: str
    tenant_id: str
    until: datetime
    watcher: str


def _session(found: Any) -> SessionRecord:
    return SessionRecord(
        id=found["id"],
        client_id=found["client_id"],
        tenant_id=found["tenant_id"],
        connect_time=found["connect_time"],
        disconnect_time=found["disconnect_time"],
        transport=found["transport"],
        remote_address=found["remote_address"],
        protocol=found["protocol"],
        profile=found["profile"],
        client_identifier=found["client_identifier"],
        keep_alive=found["keep_alive"],
        clean_session=found["clean_session"],
        disconnect_reason=found["disconnect_reason"],
        data=found["data"],
    )


def _log(found: Any) -> LogRecord:
    return LogRecord(
        id=found["id"],
        client_id=found["client_id"],
        time=found["time"],
        level=found["level"],
        creator=found["creator"],
        message=found["message"],
    )


async def existing_clients(connection: AsyncConnection, client_ids: set[str]) -> set[str]:
    """The ids among `client_ids` that still exist (rows of deleted clients are skipped)."""
    if not client_ids:
        return set()
    result = await connection.execute(select(client.c.id).where(client.c.id.in_(client_ids)))
    return set(result.scalars())


async def insert_logs(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await connection.execute(insert(client_log), rows)


async def insert_sessions(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await connection.execute(insert(client_session), rows)


async def update_sessions(connection: AsyncConnection, updates: dict[str, dict[str, Any]]) -> None:
    """Set the given columns of each session (by id); one executemany per set of columns."""
    await _update_many(connection, client_session, updates)


async def close_open_sessions(connection: AsyncConnection, now: datetime) -> int:
    """Sessions left open by a server that stopped without closing them; returns how many."""
    result = await connection.execute(
        update(client_session)
        .where(client_session.c.disconnect_time.is_(None))
        .values(disconnect_time=now, disconnect_reason="server_shutdown")
    )
    return int(result.rowcount or 0)


async def update_clients(connection: AsyncConnection, updates: dict[str, dict[str, Any]]) -> None:
    """`last_connect_at`, `last_disconnect_at`, `profile` of client rows (by id)."""
    await _update_many(connection, client, updates)


async def _update_many(connection: AsyncConnection, table: Table, updates: dict[str, dict[str, Any]]) -> None:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row_id, values in updates.items():
        columns = tuple(sorted(values))
        # Bound names must differ from the column names SQLAlchemy reserves for SET.
        groups.setdefault(columns, []).append(
            {"target_id": row_id, **{f"new_{name}": value for name, value in values.items()}}
        )
    for columns, parameters in groups.items():
        statement = (
            update(table)
            .where(table.c.id == bindparam("target_id"))
            .values({name: bindparam(f"new_{name}") for name in columns})
        )
        await connection.execute(statement, parameters)


async def upsert_device_state(connection: AsyncConnection, client_id: str, values: dict[str, Any]) -> None:
    """Set only the given columns of the client's device state; other columns belong to other writers."""
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(client_device_state).values(client_id=client_id, **values)
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=[client_device_state.c.client_id],
            set_={name: getattr(statement.excluded, name) for name in values},
        )
    )


async def get_server_logging(connection: AsyncConnection, client_id: str) -> ServerLogging | None:
    result = await connection.execute(
        select(
            client_device_state.c.server_logging_until,
            client_device_state.c.server_logging_watcher,
            client.c.tenant_id,
        )
        .join(client, client.c.id == client_device_state.c.client_id)
        .where(client_device_state.c.client_id == client_id)
    )
    found = result.first()
    if found is None or found[0] is None or not found[1]:
        return None
    return ServerLogging(client_id, found[2], found[0], found[1])


async def active_server_logging(connection: AsyncConnection, now: datetime) -> list[ServerLogging]:
    """Every request whose `until` lies after `now` (loaded when the server starts)."""
    result = await connection.execute(
        select(
            client_device_state.c.client_id,
            client.c.tenant_id,
            client_device_state.c.server_logging_until,
            client_device_state.c.server_logging_watcher,
        )
        .join(client, client.c.id == client_device_state.c.client_id)
        .where(client_device_state.c.server_logging_until > now)
    )
    return [ServerLogging(row[0], row[1], row[2], row[3]) for row in result if row[3]]


def _after(
    time_column: Any, id_column: Any, after: tuple[datetime, str], descending: bool
) -> ColumnElement[bool]:
    moment, last_id = after
    if descending:
        return or_(time_column < moment, and_(time_column == moment, id_column < last_id))
    return or_(time_column > moment, and_(time_column == moment, id_column > last_id))


async def list_sessions(
    connection: AsyncConnection,
    client_id: str,
    *,
    start: datetime | None,
    end: datetime | None,
    sort_by: str,
    descending: bool,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[SessionRecord]:
    """One page ordered by (`sort_by`, id); `start`/`end` bound the same column.

    Sorting by `disconnect_time` lists only finished sessions: an open one has no such time yet.
    """
    if sort_by not in SESSION_SORT_COLUMNS:
        raise ValueError(f"sessions cannot be sorted by {sort_by!r}")
    time_column = client_session.c[sort_by]
    query = select(client_session).where(client_session.c.client_id == client_id)
    if sort_by == "disconnect_time":
        query = query.where(time_column.is_not(None))
    if start is not None:
        query = query.where(time_column >= start)
    if end is not None:
        query = query.where(time_column <= end)
    if after is not None:
        query = query.where(_after(time_column, client_session.c.id, after, descending))
    if descending:
        query = query.order_by(time_column.desc(), client_session.c.id.desc())
    else:
        query = query.order_by(time_column.asc(), client_session.c.id.asc())
    result = await connection.execute(query.limit(limit))
    return [_session(found) for found in result.mappings()]


async def list_logs(
    connection: AsyncConnection,
    client_id: str,
    *,
    start: datetime | None,
    end: datetime | None,
    level: str | None,
    creator: str | None,
    descending: bool,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[LogRecord]:
    """One page ordered by (time, id)."""
    query = select(client_log).where(client_log.c.client_id == client_id)
    if start is not None:
        query = query.where(client_log.c.time >= start)
    if end is not None:
        query = query.where(client_log.c.time <= end)
    if level is not None:
        query = query.where(client_log.c.level == level)
    if creator is not None:
        query = query.where(client_log.c.creator == creator)
    if after is not None:
        query = query.where(_after(client_log.c.time, client_log.c.id, after, descending))
    if descending:
        query = query.order_by(client_log.c.time.desc(), client_log.c.id.desc())
    else:
        query = query.order_by(client_log.c.time.asc(), client_log.c.id.asc())
    result = await connection.execute(query.limit(limit))
    return [_log(found) for found in result.mappings()]
