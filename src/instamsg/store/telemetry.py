"""The batched writer of device telemetry from the broker's hot path (spec §11.4, C18).

Handlers call `append_network` and `append_info` synchronously; they only record the entry. A flush task
the writer owns writes what is pending in transactions of at most `max_batch` entries, at most every
`flush_interval` seconds (or as soon as `max_batch` entries wait): network-log rows are inserted, and
each client's device state gets its latest network report and its info merged from every info/metadata
report, in arrival order. Entries of clients deleted meanwhile are skipped. `close()` flushes what is
left on graceful shutdown and gives up after `close_attempts` failures.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from instamsg.store.repositories import telemetry as telemetry_repository
from instamsg.store.store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConnectionFacts:
    """What the publishing connection tells about the device library (spec §2.4.6)."""

    profile: str
    listener: str
    client_identifier: str
    topic_kind: str
    connection_attributed: bool  # an `instamsg/client/...` topic (C and Java), not `instamsg/clients/<U>/...`


# (merged info, facts of the latest report, library stored before) → (library name, library version)
LibraryDetector = Callable[[dict[str, Any], ConnectionFacts, str | None], tuple[str, str | None]]


@dataclass(frozen=True, slots=True)
class InfoReport:
    client_id: str
    report: dict[str, Any]
    time: datetime
    facts: ConnectionFacts


@dataclass(frozen=True, slots=True)
class NetworkReport:
    row: dict[str, Any]  # a client_network_log row without its id


_sequence = itertools.count()


def ordered_uuid() -> str:
    """A UUIDv7-style id that sorts in creation order within this process (the `id` tie-break of
    network-log pages: reports arriving in the same millisecond keep their arrival order)."""
    milliseconds = time.time_ns() // 1_000_000
    value = (milliseconds & (2**48 - 1)) << 80 | 0x7 << 76 | (next(_sequence) & 0xFFF) << 64
    value |= 0b10 << 62 | secrets.randbits(62)
    return str(uuid.UUID(int=value))


def _unknown_library(info: dict[str, Any], facts: ConnectionFacts, previous: str | None) -> tuple[str, None]:
    return previous or "unknown", None


class TelemetryWriter:
    def __init__(
        self,
        store: Store,
        *,
        detect_library: LibraryDetector = _unknown_library,
        flush_interval: float = 0.05,
        max_batch: int = 1000,
        max_pending: int = 100_000,
        retry_delay: float = 0.5,
        close_attempts: int = 3,
    ):
        self.store = store
        self.detect_library = detect_library
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        # Bounds memory while the database is unreachable; entries beyond it are counted and dropped.
        self.max_pending = max_pending
        self.retry_delay = retry_delay
        self.close_attempts = close_attempts
        self.dropped_entries = 0
        self.lost_entries = 0
        self.skipped_entries = 0
        self.flushes = 0
        self.failed_flushes = 0
        self._pending: list[InfoReport | NetworkReport] = []
        self._flush_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        # One flush at a time (the task's, or a caller's): batches commit in the order recorded.
        self._flush_lock = asyncio.Lock()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def append_network(self, row: dict[str, Any]) -> None:
        """Record one network-log row (its `data` becomes the client's latest network state)."""
        self._append(NetworkReport(row))

    def append_info(
        self, client_id: str, report: dict[str, Any], time: datetime, facts: ConnectionFacts
    ) -> None:
        """Record one info or metadata report, merged into the client's info at flush time."""
        self._append(InfoReport(client_id, report, time, facts))

    def _append(self, entry: InfoReport | NetworkReport) -> None:
        if len(self._pending) >= self.max_pending:
            self.dropped_entries += 1
            if self.dropped_entries % 10_000 == 1:
                logger.warning("telemetry_entries_dropped total=%d", self.dropped_entries)
            return
        self._pending.append(entry)
        if self._flush_task is None or self._flush_task.done():
            self._wake = asyncio.Event()
            self._flush_task = asyncio.get_running_loop().create_task(
                self._flush_soon(), name="telemetry-flush"
            )
        elif len(self._pending) >= self.max_batch:
            self._wake.set()

    async def _flush_soon(self) -> None:
        while self._pending:
            if len(self._pending) < self.max_batch:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.flush_interval)
                except TimeoutError:
                    pass
            self._wake.clear()
            await self.flush()
            if self._closing:
                return  # `close()` takes over, with a bounded number of attempts

    async def flush(self) -> None:
        """Write everything pending, `max_batch` entries per transaction; stops at a failure."""
        while self._pending and await self._flush_once():
            pass

    async def _flush_once(self) -> bool:
        """Write up to `max_batch` of the oldest entries in one transaction. False when they could not
        be written and were put back (the database does not answer), after `retry_delay`."""
        async with self._flush_lock:
            # A bounded transaction keeps the database's write lock short for the other writers.
            entries = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            if not entries:
                return True
            return await self._flush_entries(entries)

    async def _flush_entries(self, entries: list[InfoReport | NetworkReport]) -> bool:
        try:
            await self._write(entries)
        except BaseException as error:
            if not isinstance(error, Exception):
                # Keep the entries when cancelled; anything recorded meanwhile comes after them.
                self._pending[:0] = entries
                raise
            self.failed_flushes += 1
            logger.exception("telemetry_flush_failed entries=%d", len(entries))
            if await self._database_answers():
                await self._write_one_by_one(entries)
                return True
            self._pending[:0] = entries
            await asyncio.sleep(max(self.flush_interval, self.retry_delay))
            return False
        self.flushes += 1
        return True

    async def _write_one_by_one(self, entries: list[InfoReport | NetworkReport]) -> None:
        """A batch failed while the database answers: write each entry alone, so that one entry the
        database refuses cannot block the others forever. The refused ones are dropped and counted."""
        refused: list[InfoReport | NetworkReport] = []
        for index, entry in enumerate(entries):
            try:
                await self._write([entry])
            except BaseException as error:
                if not isinstance(error, Exception):
                    self._pending[:0] = refused + entries[index:]
                    raise
                refused.append(entry)
        if refused:
            self.dropped_entries += len(refused)
            logger.error("telemetry_entries_refused dropped=%d", len(refused))

    @staticmethod
    def _client_of(entry: InfoReport | NetworkReport) -> str:
        return entry.client_id if isinstance(entry, InfoReport) else str(entry.row["client_id"])

    async def _write(self, entries: list[InfoReport | NetworkReport]) -> None:
        async with self.store.write() as connection:
            existing = await telemetry_repository.existing_client_ids(
                connection, {self._client_of(entry) for entry in entries}
            )
            kept = [entry for entry in entries if self._client_of(entry) in existing]
            self.skipped_entries += len(entries) - len(kept)
            network_rows: list[dict[str, Any]] = []
            latest_network: dict[str, dict[str, Any]] = {}
            info_reports: dict[str, list[InfoReport]] = {}
            for entry in kept:
                if isinstance(entry, NetworkReport):
                    network_rows.append({"id": ordered_uuid(), **entry.row})
                    latest_network[entry.row["client_id"]] = entry.row["data"]
                else:
                    info_reports.setdefault(entry.client_id, []).append(entry)
            await telemetry_repository.insert_network_logs(connection, network_rows)
            for client_id, data in latest_network.items():
                await telemetry_repository.upsert_device_state(connection, client_id, {"network": data})
            for client_id, reports in info_reports.items():
                state = await telemetry_repository.get_device_state(connection, client_id) or {}
                info: dict[str, Any] = dict(state.get("info") or {})
                library: str | None = state.get("library_name")
                version: str | None = state.get("library_version")
                for report in reports:
                    info.update(report.report)
                    library, detected_version = self.detect_library(info, report.facts, library)
                    version = detected_version or version
                last = reports[-1]
                await telemetry_repository.upsert_device_state(
                    connection,
                    client_id,
                    {
                        "info": info,
                        "info_updated_at": last.time,
                        "library_name": library,
                        "library_version": version,
                        "client_identifier": last.facts.client_identifier,
                    },
                )

    async def _database_answers(self) -> bool:
        try:
            async with self.store.read() as connection:
                await connection.execute(select(1))
        except Exception:
            return False
        return True

    async def close(self) -> None:
        """Flush what is pending; called on graceful shutdown. Gives up after `close_attempts` failed
        transactions (the database does not answer): shutdown must not wait for it forever."""
        self._closing = True
        try:
            if self._flush_task is not None and not self._flush_task.done():
                # Never cancel a flush in progress: its transaction may be committing.
                self._wake.set()
                await self._flush_task
            failures = 0
            while self._pending and failures < self.close_attempts:
                if not await self._flush_once():
                    failures += 1
            if self._pending:
                self.lost_entries += len(self._pending)
                logger.error("telemetry_entries_lost entries=%d", len(self._pending))
                self._pending.clear()
        finally:
            self._closing = False
