"""Traffic counters: hourly per-client rows and the tenants' cumulative message usage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from instamsg.store.tables import client, client_traffic_hourly, tenant


@dataclass(frozen=True, slots=True)
class TrafficDelta:
    client_id: str
    messages_in: int
    bytes_in: int
    messages_out: int
    bytes_out: int


async def add_hourly_traffic(
    connection: AsyncConnection, hour_start: datetime, deltas: list[TrafficDelta]
) -> None:
    """Add counters to the clients' rows of that hour; clients deleted meanwhile are skipped."""
    if not deltas:
        return
    found = await connection.execute(
        select(client.c.id, client.c.tenant_id).where(client.c.id.in_([delta.client_id for delta in deltas]))
    )
    tenant_of = {row[0]: row[1] for row in found}
    rows = [
        {
            "client_id": delta.client_id,
            "hour_start": hour_start,
            "tenant_id": tenant_of[delta.client_id],
            "messages_in": delta.messages_in,
            "bytes_in": delta.bytes_in,
            "messages_out": delta.messages_out,
            "bytes_out": delta.bytes_out,
        }
        for delta in deltas
        if delta.client_id in tenant_of
    ]
    if not rows:
        return
    insert = (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(
        client_traffic_hourly
    )
    table = client_traffic_hourly.c
    await connection.execute(
        insert.on_conflict_do_update(
            index_elements=[table.client_id, table.hour_start],
            set_={
                name: getattr(table, name) + getattr(insert.excluded, name)
                for name in ("messages_in", "bytes_in", "messages_out", "bytes_out")
            },
        ),
        rows,
    )


async def raise_messages_used(connection: AsyncConnection, tenant_id: str, messages_used: int) -> None:
    """Store the broker's exact count; never move it backwards (a stale writer cannot undo usage)."""
    await connection.execute(
        update(tenant)
        .where(tenant.c.id == tenant_id)
        .values(messages_used=func.max(tenant.c.messages_used, messages_used))
        if connection.dialect.name == "sqlite"
        else update(tenant)
        .where(tenant.c.id == tenant_id)
        .values(messages_used=func.greatest(tenant.c.messages_used, messages_used))
    )


ACTIVITY_COUNTERS = ("p2p_sent", "p2p_received", "connects", "disconnects", "online_seconds", "errors")
TRAFFIC_COUNTERS = ("messages_in", "bytes_in", "messages_out", "bytes_out")


@dataclass(frozen=True, slots=True)
class ActivityDelta:
    """Counters of one client in one UTC hour, in the order of `ACTIVITY_COUNTERS`."""

    client_id: str
    hour_start: datetime
    counts: tuple[int, int, int, int, int, int]


async def add_hourly_activity(connection: AsyncConnection, deltas: list[ActivityDelta]) -> None:
    """Add activity counters (connects, online time, p2p, errors) to the clients' hourly rows."""
    if not deltas:
        return
    found = await connection.execute(
        select(client.c.id, client.c.tenant_id).where(client.c.id.in_({delta.client_id for delta in deltas}))
    )
    tenant_of = {row[0]: row[1] for row in found}
    rows = [
        {
            "client_id": delta.client_id,
            "hour_start": delta.hour_start,
            "tenant_id": tenant_of[delta.client_id],
            **{name: 0 for name in TRAFFIC_COUNTERS},
            **dict(zip(ACTIVITY_COUNTERS, delta.counts, strict=True)),
        }
        for delta in deltas
        if delta.client_id in tenant_of
    ]
    if not rows:
        return
    insert = (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(
        client_traffic_hourly
    )
    table = client_traffic_hourly.c
    await connection.execute(
        insert.on_conflict_do_update(
            index_elements=[table.client_id, table.hour_start],
            set_={name: getattr(table, name) + getattr(insert.excluded, name) for name in ACTIVITY_COUNTERS},
        ),
        rows,
    )


async def hourly_rows(
    connection: AsyncConnection, client_id: str, start: datetime, end: datetime
) -> list[dict[str, object]]:
    """The client's hourly rows with `start <= hour_start < end`, every counter included."""
    table = client_traffic_hourly.c
    result = await connection.execute(
        select(client_traffic_hourly).where(
            table.client_id == client_id, table.hour_start >= start, table.hour_start < end
        )
    )
    return [dict(row) for row in result.mappings()]
