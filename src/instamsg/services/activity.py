"""Client activity: getClientSessions, getClientLogs, getClientMetrics and remote logging
(spec §2.3, §2.4.5, §2.4.7, §2.7 `PUT C/server_logging`, §9.1)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from instamsg.domain.clock import utc_now
from instamsg.domain.errors import InvalidParameter, ValidationFailed
from instamsg.domain.timestamps import parse_time_range
from instamsg.services.lookup import find_client
from instamsg.services.pages import Page, cursor_query, page_of, position_after
from instamsg.services.ports import OfflineServerLogging, ServerLoggingControl
from instamsg.store.repositories import activity as activity_repository
from instamsg.store.repositories import traffic as traffic_repository
from instamsg.store.repositories.activity import LogRecord, SessionRecord
from instamsg.store.store import Store

logger = logging.getLogger(__name__)

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
class ServerLoggingState:
    enabled: bool
    until: datetime | None
    sent: bool


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
            client = await find_client(connection, app_id, tenant_id, client_id)
            if sort_by not in activity_repository.SESSION_SORT_COLUMNS:
                raise InvalidParameter(
                    "sort_by must be connect_time or disconnect_time.",
                    details={"field": "sort_by", "accepted": list(activity_repository.SESSION_SORT_COLUMNS)},
                )
            start_at, end_at = parse_time_range(start, end)
            query = cursor_query(client.id, start_at, end_at, descending, sort_by=sort_by)
            items = await activity_repository.list_sessions(
                connection,
                client.id,
                start=start_at,
                end=end_at,
                sort_by=sort_by,
                descending=descending,
                limit=limit + 1,
                after=position_after(cursor, query),
            )
        return page_of(items, limit, query, lambda session: (getattr(session, sort_by), session.id))

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
            client = await find_client(connection, app_id, tenant_id, client_id)
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
            query = cursor_query(client.id, start_at, end_at, descending, level=level, creator=creator)
            items = await activity_repository.list_logs(
                connection,
                client.id,
                start=start_at,
                end=end_at,
                level=level,
                creator=creator,
                descending=descending,
                limit=limit + 1,
                after=position_after(cursor, query),
            )
        return page_of(items, limit, query, lambda log: (log.time, log.id))

    async def metrics(
        self, app_id: str, tenant_id: str, client_id: str, interval: str = "day"
    ) -> dict[str, Any]:
        """§2.4.7: `day` = 24 hourly buckets, `month` = 30 daily buckets, UTC-aligned, the last one
        the current partial bucket; plus `errors` (C12)."""
        async with self.store.read() as connection:
            client = await find_client(connection, app_id, tenant_id, client_id)
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
            client = await find_client(connection, app_id, tenant_id, client_id)
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
