"""The batched writer of device telemetry from the broker's hot path (spec §11.4, C18).

Handlers call `append_network` and `append_info` synchronously; they only record the entry. A flush task
(a `BatchedWriter`) writes what is pending in transactions of at most `max_batch` entries, at most every
`flush_interval` seconds (or as soon as `max_batch` entries wait): network-log rows are inserted, and
each client's device state gets its latest network report and its info merged from every info/metadata
report, in arrival order. Entries of clients deleted meanwhile are skipped. A batch the database refuses
while it still answers is written one entry at a time, and only the refused entries are dropped.
`close()` flushes what is left on graceful shutdown and gives up after `close_attempts` failures.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from instamsg.store.repositories import telemetry as telemetry_repository
from instamsg.store.store import Store
from instamsg.store.writers import BatchedWriter, store_answers

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
        self.skipped_entries = 0
        self._writer: BatchedWriter[InfoReport | NetworkReport] = BatchedWriter(
            self._write,
            name="telemetry",
            flush_interval=flush_interval,
            max_batch=max_batch,
            max_pending=max_pending,
            retry_delay=retry_delay,
            close_attempts=close_attempts,
            database_answers=partial(store_answers, store),
        )
        self._append = self._writer.append

    @property
    def pending(self) -> int:
        return self._writer.pending

    @property
    def dropped_entries(self) -> int:
        """Entries dropped because `max_pending` were waiting, or refused alone by the database."""
        return self._writer.dropped_rows + self._writer.refused_rows

    @property
    def lost_entries(self) -> int:
        """Entries still pending when `close()` gave up."""
        return self._writer.lost_rows

    @property
    def flushes(self) -> int:
        return self._writer.flushes

    @property
    def failed_flushes(self) -> int:
        return self._writer.failed_flushes

    def append_network(self, row: dict[str, Any]) -> None:
        """Record one network-log row (its `data` becomes the client's latest network state)."""
        self._append(NetworkReport(row))

    def append_info(
        self, client_id: str, report: dict[str, Any], time: datetime, facts: ConnectionFacts
    ) -> None:
        """Record one info or metadata report, merged into the client's info at flush time."""
        self._append(InfoReport(client_id, report, time, facts))

    async def flush(self) -> None:
        """Write everything pending, `max_batch` entries per transaction; stops at a failure."""
        await self._writer.flush()

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

    async def close(self) -> None:
        """Flush what is pending; called on graceful shutdown. Gives up after `close_attempts` failed
        transactions (the database does not answer): shutdown must not wait for it forever."""
        lost = self._writer.lost_rows
        await self._writer.close()
        if self._writer.lost_rows > lost:
            logger.error("telemetry_entries_lost entries=%d", self._writer.lost_rows - lost)
