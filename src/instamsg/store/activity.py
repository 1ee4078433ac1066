"""Batched writes of client activity from the broker's hot path: log entries, session records, the
client's connect times and its latest session payload (spec §2.4.5, §9, §11.4).

The broker side calls the synchronous methods; each only records an operation, its text made storable
first (device text may hold NUL, which PostgreSQL refuses). A flush task (a `BatchedWriter`) writes the
pending operations in transactions of at most `max_batch`, in the order recorded (a session is
inserted before it is updated, whether both wait in the same batch or not), at most every
`flush_interval` seconds or as soon as `max_batch` operations wait. Operations on clients deleted
meanwhile are skipped. A batch the database refuses while it still answers is written one operation
at a time, and only the refused operations are dropped. `close()` flushes what is left on graceful
shutdown, like the message history writer, and gives up after `close_attempts` failures.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Final

from instamsg.domain.clock import utc_now
from instamsg.protocol.ports import CREATOR_SERVER
from instamsg.store.repositories import activity as activity_repository
from instamsg.store.repositories.traffic import ActivityDelta
from instamsg.store.store import Store
from instamsg.store.tables import client, client_device_state, client_log, client_session
from instamsg.store.writers import (
    BatchedWriter,
    SqliteWriterConnection,
    sqlite_existing,
    sqlite_insert,
    sqlite_update,
    sqlite_upsert,
    store_answers,
)

logger = logging.getLogger(__name__)

_LOG: Final = "log"
_SESSION_OPEN: Final = "session_open"
_SESSION_UPDATE: Final = "session_update"
_CLIENT_UPDATE: Final = "client_update"
_DEVICE_STATE: Final = "device_state"

# NUL and lone surrogates: PostgreSQL text refuses the first, UTF-8 cannot encode the second.
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")

_sequence = itertools.count()

Operation = tuple[str, str, Any]


# Random per process: ids of two processes (a server and the CLI, two cluster nodes) never collide,
# without a system call for randomness on every id.
_PROCESS_SUFFIX: Final = secrets.token_hex(5)


def sortable_id() -> str:
    """A 36-character id that sorts by creation (microseconds, then a process counter): rows written
    within one millisecond keep their order in the (time, id) listings."""
    return f"{time.time_ns() // 1000:016x}-{next(_sequence) & 0xFFFFFFFF:08x}-{_PROCESS_SUFFIX}"


def storable_text(text: str) -> str:
    """`text` with every character a database text column refuses replaced by U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", text) if _UNSTORABLE.search(text) else text


def storable(value: Any) -> Any:
    """A column value (text, or JSON of dicts and lists) with its text, keys included, made storable."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value) if _UNSTORABLE.search(value) else value
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return value


def _storable_columns(row: dict[str, Any]) -> dict[str, Any]:
    """`storable` for a row of column values; the row itself when it has nothing to change (the rule)."""
    search = _UNSTORABLE.search
    for value in row.values():
        if isinstance(value, str):
            if search(value):
                break
        elif isinstance(value, dict | list | tuple):
            break
    else:
        return row
    return {key: storable(value) for key, value in row.items()}


class ActivityWriter:
    def __init__(
        self,
        store: Store,
        *,
        flush_interval: float = 0.1,
        max_batch: int = 20_000,
        max_pending: int = 100_000,
        retry_delay: float = 0.5,
        close_attempts: int = 3,
    ) -> None:
        self.store = store
        self.skipped = 0
        # Session rows not yet taken by a flush: later updates are merged into them directly.
        self._unwritten_sessions: dict[str, dict[str, Any]] = {}
        self._sqlite = SqliteWriterConnection.for_store(store, name="activity-writer")
        self._writer: BatchedWriter[Operation] = BatchedWriter(
            self._write,
            name="activity",
            flush_interval=flush_interval,
            max_batch=max_batch,
            max_pending=max_pending,
            retry_delay=retry_delay,
            close_attempts=close_attempts,
            database_answers=partial(store_answers, store),
            on_take=self._forget_unwritten_sessions,
        )
        # The hot path calls the bound method directly: one call per operation.
        self._record = self._writer.append

    @property
    def pending(self) -> int:
        return self._writer.pending

    @property
    def dropped(self) -> int:
        """Operations dropped because `max_pending` were waiting."""
        return self._writer.dropped_rows

    @property
    def refused(self) -> int:
        """Operations the database refused alone, dropped so that they block nobody."""
        return self._writer.refused_rows

    @property
    def lost(self) -> int:
        """Operations still pending when `close()` gave up."""
        return self._writer.lost_rows

    @property
    def flushes(self) -> int:
        return self._writer.flushes

    @property
    def failed_flushes(self) -> int:
        return self._writer.failed_flushes

    # ---- recording (synchronous) -------------------------------------------------------------------

    def log(
        self, client_id: str, tenant_id: str, level: str, message: str, creator: str = CREATOR_SERVER
    ) -> None:
        self._record(
            (
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
        )

    def open_session(self, row: dict[str, Any]) -> str:
        """Insert a `client_session` row; returns its new id, for later updates."""
        row = dict(row)
        row["id"] = session_id = sortable_id()
        if self._record((_SESSION_OPEN, row["client_id"], row)):
            self._unwritten_sessions[session_id] = row
        return session_id

    def update_session(self, client_id: str, session_id: str, values: dict[str, Any]) -> None:
        unwritten = self._unwritten_sessions.get(session_id)
        if unwritten is not None:
            unwritten.update(values)
            return
        self._record((_SESSION_UPDATE, client_id, (session_id, values)))

    def update_client(self, client_id: str, values: dict[str, Any]) -> None:
        self._record((_CLIENT_UPDATE, client_id, values))

    def set_device_state(self, client_id: str, values: dict[str, Any]) -> None:
        """Upsert these `client_device_state` columns only."""
        self._record((_DEVICE_STATE, client_id, values))

    def _forget_unwritten_sessions(self, operations: list[Operation]) -> None:
        """Operations leave the buffer: updates of their sessions must now follow the insert as
        separate operations."""
        unwritten = self._unwritten_sessions
        if unwritten:
            for kind, _, operation in operations:
                if kind == _SESSION_OPEN:
                    unwritten.pop(operation["id"], None)

    # ---- writing -----------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write everything pending, `max_batch` operations per transaction; stops at a failure."""
        await self._writer.flush()

    async def _write(self, operations: list[Operation]) -> None:
        """Write `operations` in one transaction; those of clients deleted meanwhile are skipped."""
        if self._sqlite is not None:
            self.skipped += await self._sqlite.transaction(_write_sqlite, operations)
            return
        async with self.store.write() as connection:
            existing = await activity_repository.existing_clients(
                connection, {client_id for _, client_id, _ in operations}
            )
            kept = _of_clients(operations, existing)
            self.skipped += len(operations) - len(kept)
            batch = _Batch.of(kept)
            await activity_repository.insert_sessions(connection, batch.sessions)
            await activity_repository.insert_logs(connection, batch.logs)
            await activity_repository.update_sessions(connection, batch.session_updates)
            await activity_repository.update_clients(connection, batch.client_updates)
            for client_id, values in batch.device_states.items():
                await activity_repository.upsert_device_state(connection, client_id, values)

    async def close(self) -> None:
        """Flush what is pending; called on graceful shutdown. Gives up after `close_attempts` failed
        transactions (the database does not answer): shutdown must not wait for it forever."""
        lost = self._writer.lost_rows
        try:
            await self._writer.close()
        finally:
            if self._sqlite is not None:
                await self._sqlite.close()
        if self._writer.lost_rows > lost:
            logger.error("activity_rows_lost operations=%d", self._writer.lost_rows - lost)


@dataclass(slots=True)
class _Batch:
    """One transaction's operations merged: the rows to insert, then per row to change the last value
    recorded for each column. Inserting first and merging per row gives the state that applying the
    operations one by one in recorded order gives (a session's updates always follow its insert)."""

    logs: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    session_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    client_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    device_states: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, operations: list[Operation]) -> _Batch:
        """The operations merged, their text made storable (device text reaches every column here:
        recording it stays cheap on the broker's hot path)."""
        batch = cls()
        for kind, client_id, operation in operations:
            if kind == _LOG:
                batch.logs.append(_storable_columns(operation))
            elif kind == _SESSION_OPEN:
                batch.sessions.append(_storable_columns(operation))
            elif kind == _SESSION_UPDATE:
                session_id, values = operation
                batch.session_updates.setdefault(session_id, {}).update(_storable_columns(values))
            elif kind == _CLIENT_UPDATE:
                batch.client_updates.setdefault(client_id, {}).update(_storable_columns(operation))
            else:
                batch.device_states.setdefault(client_id, {}).update(_storable_columns(operation))
        return batch


def _of_clients(operations: list[Operation], existing: set[str]) -> list[Operation]:
    return [operation for operation in operations if operation[1] in existing]


def _write_sqlite(connection: sqlite3.Connection, operations: list[Operation]) -> int:
    """One batch through the writer's own SQLite connection, in its thread; returns how many
    operations were skipped (their client was deleted)."""
    wanted = {client_id for _, client_id, _ in operations}
    existing = sqlite_existing(connection, client.name, client.c.id.name, wanted)
    kept = operations if len(existing) == len(wanted) else _of_clients(operations, existing)
    batch = _Batch.of(kept)
    sqlite_insert(connection, client_session, batch.sessions)
    sqlite_insert(connection, client_log, batch.logs)
    sqlite_update(connection, client_session, "id", batch.session_updates)
    sqlite_update(connection, client, "id", batch.client_updates)
    sqlite_upsert(connection, client_device_state, "client_id", batch.device_states)
    return len(operations) - len(kept)


class StoreClientLog:
    """The `ClientLog` of the device protocol, written through an `ActivityWriter` (spec §9.2, §9.3).

    WARN entries of the server are kept to one per client and kind per `warn_interval` seconds (§9.3).
    The kind is the caller's `kind`, or else the first words of the message ("publish denied on" of
    "publish denied on a/b"): a device cannot open a new kind by naming a new topic. At most
    `max_tracked` (client, kind) pairs are remembered; the one warned longest ago is forgotten first.
    """

    def __init__(
        self,
        writer: ActivityWriter,
        *,
        warn_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = 10_000,
    ) -> None:
        self.writer = writer
        self.warn_interval = warn_interval
        self.clock = clock
        self.max_tracked = max_tracked
        self.suppressed = 0
        # (client, kind) → when its last WARN was written, the oldest first.
        self._last_warning: OrderedDict[tuple[str, str], float] = OrderedDict()

    @property
    def tracked(self) -> int:
        """How many (client, kind) pairs the rate limiter remembers."""
        return len(self._last_warning)

    def write(
        self,
        client_id: str,
        tenant_id: str,
        level: str,
        message: str,
        *,
        creator: str = CREATOR_SERVER,
        kind: str | None = None,
    ) -> None:
        if (
            level == "WARN"
            and creator == CREATOR_SERVER
            and not self._warning_allowed(client_id, kind or warning_kind(message))
        ):
            self.suppressed += 1
            return
        self.writer.log(client_id, tenant_id, level, message, creator)

    def _warning_allowed(self, client_id: str, kind: str) -> bool:
        now = self.clock()
        key = (client_id, kind)
        tracked = self._last_warning
        last = tracked.get(key)
        if last is not None and now - last < self.warn_interval:
            return False
        tracked[key] = now
        tracked.move_to_end(key)
        if len(tracked) > self.max_tracked:
            tracked.popitem(last=False)
        return True


# Up to three leading words of letters, digits, `_` and `-`: "publish denied on", "unknown_peer".
_KIND_WORDS: Final = re.compile(r"[^\W\d][\w-]*(?: [^\W\d][\w-]*){0,2}")
MAX_KIND_LENGTH: Final = 48


def warning_kind(message: str) -> str:
    """The kind of a WARN message for rate limiting: its first words, without the subject after them."""
    words = _KIND_WORDS.match(message)
    return (words.group() if words is not None else message)[:MAX_KIND_LENGTH]


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
