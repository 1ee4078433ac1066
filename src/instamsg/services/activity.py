"""Client activity: getClientSessions, getClientLogs, getClientMetrics and remote logging
(spec §2.3, §2.4.5, §2.4.7, §2.7 `PUT C/server_logging`, §9.1)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from instamsg.domain import ids
from instamsg.domain.clients import Client
from instamsg.domain.clock import utc_now
from instamsg.domain.errors import (
    ClientNotFound,
    InvalidCursor,
    InvalidParameter,
    TenantNotFound,
    ValidationFailed,
)
from instamsg.domain.timestamps import decode_cursor, encode_cursor, parse_time_range
from instamsg.services.ports import OfflineServerLogging, ServerLoggingControl
from instamsg.store.repositories import activity as activity_repository
from instamsg.store.repositories import clients as client_repository
from instamsg.store.repositories import tenants as tenant_repository
from instamsg.store.repositories import traffic as traffic_repository
from instamsg.store.repositories.activity import LogRecord, SessionRecord
from instamsg.store.store import Store

logger = logging.getLogger(__name__)

T = TypeVar("T")

LOG_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR", "FATAL")
LOG_CREATORS = ("InstaMsg", "client")
METRIC_KEYS = (
    "messages_sent",
    "messages_received",
    "p2p_sent",
    "p2p_received",
    "bytes_in",
    "bytes_out",
    "connects",
    "disconnects",
    "online_seconds",
    "errors",
)
# Metric key → hourly column: what the client sent is what the broker received from it.
_METRIC_COLUMNS = {
    "messages_sent": "messages_in",
    "messages_received": "messages_out",
    "bytes_in": "bytes_in",
    "bytes_out": "bytes_out",
    **{name: name for name in traffic_repository.ACTIVITY_COUNTERS},
}


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ServerLoggingState:
    enabled: bool
    until: datetime | None
    sent: bool


def _invalid_cursor(cursor: str) -> InvalidCursor:
    return InvalidCursor(
        "The cursor is malformed or was produced by a different query.", details={"cursor": cursor[:100]}
    )


def _position(cursor: str, query: dict[str, Any]) -> tuple[datetime, str]:
    position = decode_cursor(cursor, query)
    try:
        after = (datetime.fromisoformat(position["t"]), str(position["id"]))
    except (KeyError, TypeError, ValueError):
        raise _invalid_cursor(cursor) from None
    if after[0].tzinfo is None:
        raise _invalid_cursor(cursor)
    return after


class ActivityService:
    def __init__(
        self,
        store: Store,
        control: ServerLoggingControl | None = None,
        *,
        default_logging_seconds: int = 600,
        max_logging_seconds: int = 86_400,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.control: ServerLoggingControl = control if control is not None else OfflineServerLogging()
        self.default_logging_seconds = default_logging_seconds
        self.max_logging_seconds = max_logging_seconds
        self.clock = clock

    async def _client(
        self, connection: AsyncConnection, app_id: str, tenant_id: str, client_id: str
    ) -> Client:
        """The app's client; an unknown, foreign or malformed tenant or client id is a 404."""
        canonical_tenant = ids.canonical_uuid(tenant_id)
        tenant = (
            await tenant_repository.get_tenant(connection, app_id, canonical_tenant)
            if canonical_tenant
            else None
        )
        if tenant is None:
            raise TenantNotFound(tenant_id)
        canonical_client = ids.canonical_uuid(client_id)
        client = (
            await client_repository.get_client(connection, tenant.id, canonical_client)
            if canonical_client
            else None
        )
        if client is None:
            raise ClientNotFound(client_id)
        return client

    async def list_sessions(
        self,
        app_id: str,
        tenant_id: str,
        client_id: str,
        *,
        start: str | None = None,
        end: str | None = None,
        sort_by: str = "connect_time",
        descending: bool = True,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[SessionRecord]:
        async with self.store.read() as connection:
            client = await self._client(connection, app_id, tenant_id, client_id)
            if sort_by not in activity_repository.SESSION_SORT_COLUMNS:
                raise InvalidParameter(
                    "sort_by must be connect_time or disconnect_time.",
                    details={"field": "sort_by", "accepted": list(activity_repository.SESSION_SORT_COLUMNS)},
                )
            start_at, end_at = parse_time_range(start, end)
            query = {
                "client": client.id,
                "start": start_at.isoformat() if start_at else None,
                "end": end_at.isoformat() if end_at else None,
                "sort_by": sort_by,
                "desc": descending,
            }
            after = _position(cursor, query) if cursor is not None else None
            items = await activity_repository.list_sessions(
                connection,
                client.id,
                start=start_at,
                end=end_at,
                sort_by=sort_by,
                descending=descending,
                limit=limit + 1,
                after=after,
            )
        next_cursor = None
        if len(items) > limit:
            items = items[:limit]
            moment = getattr(items[-1], sort_by)
            next_cursor = encode_cursor(query, {"t": moment.isoformat(), "id": items[-1].id})
        return Page(items, next_cursor)

    async def list_logs(
        self,
        app_id: str,
        tenant_id: str,
        client_id: str,
        *,
        start: str | None = None,
        end: str | None = None,
        level: str | None = None,
        creator: str | None = None,
        descending: bool = True,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[LogRecord]:
        async with self.store.read() as connection:
            client = await self._client(connection, app_id, tenant_id, client_id)
            if level is not None and level not in LOG_LEVELS:
                raise InvalidParameter(
                    f"level must be one of {', '.join(LOG_LEVELS)}.",
                    details={"field": "level", "accepted": list(LOG_LEVELS)},
                )
            if creator is not None and creator not in LOG_CREATORS:
                raise InvalidParameter(
                    "creator must be InstaMsg or client.",
                    details={"field": "creator", "accepted": list(LOG_CREATORS)},
                )
            start_at, end_at = parse_time_range(start, end)
            query = {
                "client": client.id,
                "start": start_at.isoformat() if start_at else None,
                "end": end_at.isoformat() if end_at else None,
                "level": level,
                "creator": creator,
                "desc": descending,
            }
            after = _position(cursor, query) if cursor is not None else None
            items = await activity_repository.list_logs(
                connection,
                client.id,
                start=start_at,
                end=end_at,
                level=level,
                creator=creator,
                descending=descending,
                limit=limit + 1,
                after=after,
            )
        next_cursor = None
        if len(items) > limit:
            items = items[:limit]
            last = items[-1]
            next_cursor = encode_cursor(query, {"t": last.time.isoformat(), "id": last.id})
        return Page(items, next_cursor)

    async def metrics(
        self, app_id: str, tenant_id: str, client_id: str, interval: str = "day"
    ) -> dict[str, Any]:
        """§2.4.7: `day` = 24 hourly buckets, `month` = 30 daily buckets, UTC-aligned, the last one
        the current partial bucket; plus `errors` (C12)."""
        async with self.store.read() as connection:
            client = await self._client(connection, app_id, tenant_id, client_id)
            now = self.clock()
            if interval == "day":
                step = timedelta(hours=1)
                current = now.replace(minute=0, second=0, microsecond=0)
                count = 24
            elif interval == "month":
                step = timedelta(days=1)
                current = now.replace(hour=0, minute=0, second=0, microsecond=0)
                count = 30
            else:
                raise InvalidParameter(
                    "interval must be day or month.",
                    details={"field": "interval", "accepted": ["day", "month"]},
                )
            first = current - step * (count - 1)
            rows = await traffic_repository.hourly_rows(connection, client.id, first, current + step)
        starts = [first + step * index for index in range(count)]
        buckets: list[dict[str, Any]] = [
            {"start": start, **dict.fromkeys(METRIC_KEYS, 0)} for start in starts
        ]
        for row in rows:
            hour_start = row["hour_start"]
            assert isinstance(hour_start, datetime)
            index = int((hour_start - first) // step)
            if 0 <= index < count:
                bucket = buckets[index]
                for key, column in _METRIC_COLUMNS.items():
                    bucket[key] += int(row[column] or 0)  # type: ignore[call-overload]
        totals = {key: sum(bucket[key] for bucket in buckets) for key in METRIC_KEYS}
        return {"interval": interval, "start": first, "end": now, "totals": totals, "buckets": buckets}

    async def set_server_logging(
        self,
        app_id: str,
        tenant_id: str,
        client_id: str,
        *,
        enabled: bool | None,
        duration_seconds: int | None,
    ) -> ServerLoggingState:
        """`PUT C/server_logging`: store the request (watcher = the app, S16) and apply it at once."""
        async with self.store.write() as connection:
            client = await self._client(connection, app_id, tenant_id, client_id)
            if enabled is None:
                raise ValidationFailed("enabled is required.", details={"field": "enabled"})
            if duration_seconds is None:
                duration_seconds = self.default_logging_seconds
            if not 1 <= duration_seconds <= self.max_logging_seconds:
                raise ValidationFailed(
                    f"duration_seconds must be between 1 and {self.max_logging_seconds}.",
                    details={"field": "duration_seconds", "max": self.max_logging_seconds},
                )
            until = self.clock() + timedelta(seconds=duration_seconds) if enabled else None
            previous = await activity_repository.get_server_logging(connection, client.id)
            watcher = app_id if enabled or previous is None else previous.watcher
            await activity_repository.upsert_device_state(
                connection, client.id, {"server_logging_until": until, "server_logging_watcher": watcher}
            )
        sent = self.control.server_logging_changed(client.id, watcher, until)
        logger.info(
            "server_logging_changed client=%s enabled=%d until=%s sent=%d",
            client.id,
            int(enabled),
            until.isoformat() if until else "-",
            int(sent),
        )
        return ServerLoggingState(enabled, until, sent)
