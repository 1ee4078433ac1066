"""Batched writes of client activity from the broker's hot path: log entries, session records, the
client's connect times and its latest session payload (spec §2.4.5, §9, §11.4).

The broker side calls the synchronous methods; each only records an operation. A flush task writes
everything pending in one transaction, in the order recorded (a session is inserted before it is
updated, whether both wait in the same batch or not), at most every `flush_interval` seconds or as
soon as `max_batch` operations wait. Operations on clients deleted meanwhile are skipped.
`close()` flushes what is left on graceful shutdown, like the message history writer.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from instamsg.domain.clock import utc_now
from instamsg.protocol.ports import CREATOR_SERVER
from instamsg.store.repositories import activity as activity_repository
from instamsg.store.repositories.traffic import ActivityDelta
from instamsg.store.store import Store

logger = logging.getLogger(__name__)

_LOG: Final = "log"
_SESSION_OPEN: Final = "session_open"
_SESSION_UPDATE: Final = "session_update"
_CLIENT_UPDATE: Final = "client_update"
_DEVICE_STATE: Final = "device_state"

_sequence = itertools.count()


def sortable_id() -> str:
    """A 36-character id that sorts by creation (microseconds, then a process counter): rows written
    within one millisecond keep their order in the (time, id) listings."""
    return f"{time.time_ns() // 1000:016x}-{next(_sequence) & 0xFFFFFFFF:08x}-{secrets.token_hex(5)}"


class ActivityWriter:
    def __init__(
        self,
        store: Store,
        *,
        flush_interval: float = 0.1,
        max_batch: int = 1000,
        max_pending: int = 100_000,
    ) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        # Bounds memory while the database is unreachable; operations beyond it are counted and dropped.
        self.max_pending = max_pending
        self.dropped = 0
        self.skipped = 0
        self.flushes = 0
        self.failed_flushes = 0
        self._pending: list[tuple[str, str, Any]] = []
        # Session rows not yet taken by a flush: later updates are merged into them directly.
        self._unwritten_sessions: dict[str, dict[str, Any]] = {}
        self._flush_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # ---- recording (synchronous) -------------------------------------------------------------------

    def log(
        self, client_id: str, tenant_id: str, level: str, message: str, creator: str = CREATOR_SERVER
    ) -> None:
        self._record(
            _LOG,
            client_id,
            {
                "id": sortable_id(),
                "client_id": client_id,
                "tenant_id": tenant_id,
                "time": utc_now(),
                "level": level,
                "creator": creator,
                "message": message,
            },
        )

    def open_session(self, row: dict[str, Any]) -> str:
        """Insert a `client_session` row; returns its new id, for later updates."""
        row["id"] = session_id = sortable_id()
        if self._record(_SESSION_OPEN, row["client_id"], row):
            self._unwritten_sessions[session_id] = row
        return session_id

    def update_session(self, client_id: str, session_id: str, values: dict[str, Any]) -> None:
        unwritten = self._unwritten_sessions.get(session_id)
        if unwritten is not None:
            unwritten.update(values)
            return
        self._record(_SESSION_UPDATE, client_id, (session_id, values))

    def update_client(self, client_id: str, values: dict[str, Any]) -> None:
        self._record(_CLIENT_UPDATE, client_id, values)

    def set_device_state(self, client_id: str, values: dict[str, Any]) -> None:
        """Upsert these `client_device_state` columns only."""
        self._record(_DEVICE_STATE, client_id, values)

    def _record(self, kind: str, client_id: str, operation: Any) -> bool:
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            if self.dropped % 10_000 == 1:
                logger.warning("activity_rows_dropped total=%d pending=%d", self.dropped, len(self._pending))
            return False
        self._pending.append((kind, client_id, operation))
        if self._flush_task is None or self._flush_task.done():
            self._wake = asyncio.Event()
            self._flush_task = asyncio.get_running_loop().create_task(
                self._flush_soon(), name="activity-flush"
            )
        elif len(self._pending) >= self.max_batch:
            self._wake.set()
        return True

    @property
    def pending(self) -> int:
        return len(self._pending)

    # ---- writing -----------------------------------------------------------------------------------

    async def _flush_soon(self) -> None:
        while self._pending:
            if len(self._pending) < self.max_batch:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.flush_interval)
                except TimeoutError:
                    pass
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write everything pending in one transaction."""
        operations, self._pending = self._pending, []
        if not operations:
            return
        # From here on, updates of these sessions must follow their insert as separate operations.
        self._unwritten_sessions = {}
        try:
            await self._write(operations)
        except BaseException as error:
            # Keep the operations, also when cancelled; anything recorded meanwhile comes after them.
            self._pending[:0] = operations
            if not isinstance(error, Exception):
                raise
            self.failed_flushes += 1
            logger.exception("activity_flush_failed operations=%d", len(operations))
            await asyncio.sleep(max(self.flush_interval, 0.5))
            return
        self.flushes += 1

    async def _write(self, operations: list[tuple[str, str, Any]]) -> None:
        async with self.store.write() as connection:
            existing = await activity_repository.existing_clients(
                connection, {client_id for _, client_id, _ in operations}
            )
            logs: list[dict[str, Any]] = []
            sessions: list[dict[str, Any]] = []

            async def write_inserts() -> None:
                # Inserts are grouped, but always written before the next update: order is kept.
                await activity_repository.insert_logs(connection, logs)
                await activity_repository.insert_sessions(connection, sessions)
                logs.clear()
                sessions.clear()

            for kind, client_id, operation in operations:
                if client_id not in existing:
                    self.skipped += 1
                    continue
                if kind == _LOG:
                    logs.append(operation)
                elif kind == _SESSION_OPEN:
                    sessions.append(operation)
                else:
                    await write_inserts()
                    if kind == _SESSION_UPDATE:
                        await activity_repository.update_session(connection, *operation)
                    elif kind == _CLIENT_UPDATE:
                        await activity_repository.update_client(connection, client_id, operation)
                    elif kind == _DEVICE_STATE:
                        await activity_repository.upsert_device_state(connection, client_id, operation)
            await write_inserts()

    async def close(self) -> None:
        """Flush what is pending; called on graceful shutdown."""
        if self._flush_task is not None and not self._flush_task.done():
            # Never cancel a flush in progress: its transaction may be committing.
            self._wake.set()
            await self._flush_task
        while self._pending:
            await self.flush()


class StoreClientLog:
    """The `ClientLog` of the device protocol, written through an `ActivityWriter` (spec §9.2, §9.3).

    Identical WARN entries of the server are kept to one per client and message per `warn_interval`
    seconds (§9.3: one per client and kind per minute); the message names the kind and its subject
    (a denied topic, say), so distinct topics are separate kinds.
    """

    def __init__(
        self,
        writer: ActivityWriter,
        *,
        warn_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = 100_000,
    ) -> None:
        self.writer = writer
        self.warn_interval = warn_interval
        self.clock = clock
        self.max_tracked = max_tracked
        self.suppressed = 0
        self._last_warning: dict[tuple[str, str], float] = {}

    def write(
        self, client_id: str, tenant_id: str, level: str, message: str, *, creator: str = CREATOR_SERVER
    ) -> None:
        if level == "WARN" and creator == CREATOR_SERVER and not self._warning_allowed(client_id, message):
            self.suppressed += 1
            return
        self.writer.log(client_id, tenant_id, level, message, creator)

    def _warning_allowed(self, client_id: str, message: str) -> bool:
        now = self.clock()
        key = (client_id, message)
        last = self._last_warning.get(key)
        if last is not None and now - last < self.warn_interval:
            return False
        if len(self._last_warning) >= self.max_tracked:
            horizon = now - self.warn_interval
            self._last_warning = {
                tracked: moment for tracked, moment in self._last_warning.items() if moment > horizon
            }
        self._last_warning[key] = now
        return True


HourlyCounts = dict[tuple[str, datetime], list[int]]


def activity_deltas(counts: HourlyCounts) -> list[ActivityDelta]:
    """The broker's activity meters (`protocol.activity.ActivityMeters.take()`) as storable rows."""
    return [
        ActivityDelta(client_id, hour_start, (row[0], row[1], row[2], row[3], row[4], row[5]))
        for (client_id, hour_start), row in counts.items()
    ]


async def load_activity_state(store: Store) -> list[tuple[str, datetime, str]]:
    """At start, before any connection: close the session records a crash left open (reason
    `server_shutdown`), and return the remote-logging requests still running `(client, until, watcher)`."""
    now = utc_now()
    async with store.write() as connection:
        closed = await activity_repository.close_open_sessions(connection, now)
        requests = await activity_repository.active_server_logging(connection, now)
    if closed:
        logger.info("stale_sessions_closed count=%d", closed)
    return [(request.client_id, request.until, request.watcher) for request in requests]
