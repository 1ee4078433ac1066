"""The batched writer of message history rows from the broker's hot path (spec §6.5, C18).

The recorder appends a `HistoryRow` tuple per accepted message; everything costly (the row id, the
payload's text form, the timestamp's database form) happens in the flush, in a worker thread. Rows of
clients deleted meanwhile are skipped, never failing the batch. `close()` flushes what is left on
graceful shutdown; after `kill -9` at most one flush interval of rows is lost.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from instamsg.domain.messages import payload_text
from instamsg.store.store import Store
from instamsg.store.tables import message
from instamsg.store.writers import BatchedWriter, TableInserter

# (tenant_id, client_id, type, peer_id, topic, payload, qos on the REST 1-3 scale, created_at epoch s)
HistoryRow = tuple[str, str, str, str | None, str, bytes | str, int, float]

_COLUMNS = (
    "id",
    "tenant_id",
    "client_id",
    "type",
    "peer_id",
    "topic",
    "payload",
    "qos",
    "created_at",
)
# `delivered_to` is not known when the message is recorded.
_MQTT_CONSTANTS = {
    "client_message_id": None,
    "duplicate": False,
    "saved": True,
    "source": "mqtt",
    "delivered_to": 0,
    "releases": "[]",
}


class MessageIds:
    """Unique, append-ordered message ids in UUID shape (version 7 layout), cheap to make in bulk.

    The first 48 bits are the creation time of the generator in milliseconds, then 30 random bits,
    then a 48-bit counter: ids of one process sort in the order they were made, later processes sort
    after earlier ones, and two generators created in the same millisecond still differ.
    """

    def __init__(self) -> None:
        timestamp = f"{time.time_ns() // 1_000_000:012x}"
        random_bits = secrets.randbits(30)
        # Version nibble 7, then 12 random bits; variant bits 10, then 14 random bits.
        version_group = f"7{random_bits >> 18:03x}"
        variant_group = f"{0x8000 | (random_bits & 0x3FFF):04x}"
        self.prefix = f"{timestamp[:8]}-{timestamp[8:]}-{version_group}-{variant_group}-"
        self._counter = itertools.count()

    def take(self, count: int) -> list[str]:
        prefix = self.prefix
        return [f"{prefix}{number:012x}" for number in itertools.islice(self._counter, count)]


class HistoryWriter:
    """Message history rows from the broker, written in batches through the raw driver."""

    def __init__(
        self,
        store: Store,
        *,
        flush_interval: float = 0.05,
        max_batch: int = 50_000,
        max_pending: int = 200_000,
        retry_delay: float = 0.5,
        on_backlog: Callable[[bool], None] | None = None,
    ):
        self.store = store
        self.ids = MessageIds()
        self._inserter = TableInserter(
            store,
            message,
            _COLUMNS,
            constants=_MQTT_CONSTANTS,
            parent_column="client_id",
            prepare=self._prepare,
            empty_as_null=("peer_id",),
        )
        self._writer: BatchedWriter[HistoryRow] = BatchedWriter(
            self._inserter,
            name="history",
            flush_interval=flush_interval,
            max_batch=max_batch,
            max_pending=max_pending,
            retry_delay=retry_delay,
            on_backlog=on_backlog,
        )
        # The hot path calls this bound method directly: one call per message.
        self.record = self._writer.append

    @property
    def flush_interval(self) -> float:
        return self._writer.flush_interval

    @property
    def pending(self) -> int:
        return self._writer.pending

    @property
    def dropped_rows(self) -> int:
        return self._writer.dropped_rows

    @property
    def flushes(self) -> int:
        return self._writer.flushes

    @property
    def failed_flushes(self) -> int:
        return self._writer.failed_flushes

    @property
    def skipped_rows(self) -> int:
        return self._inserter.skipped_rows

    @property
    def inserted_rows(self) -> int:
        return self._inserter.inserted_rows

    def append(self, row: dict[str, Any]) -> None:
        """Record one `message` row given as a mapping (the slower, older interface of `record`).

        The row id is always generated; missing fields take the recorder's defaults.
        """
        created_at = row.get("created_at")
        self._writer.append(
            (
                row.get("tenant_id", ""),
                row["client_id"],
                row.get("type", "pub"),
                row.get("peer_id"),
                row.get("topic", ""),
                row.get("payload", ""),
                row.get("qos", 1),
                created_at.timestamp() if isinstance(created_at, datetime) else time.time(),
            )
        )

    async def flush(self) -> None:
        """Write everything pending in one transaction."""
        await self._writer.flush()

    async def close(self) -> None:
        """Flush what is pending; called on graceful shutdown."""
        await self._writer.close()
        await self._inserter.close()

    def _prepare(self, rows: list[HistoryRow]) -> list[tuple[Any, ...]]:
        """Recorded tuples → `message` rows; runs in a worker thread."""
        ids = self.ids.take(len(rows))
        return [
            (
                row_id,
                tenant_id,
                client_id,
                kind,
                # Written as NULL: cheaper to bind than None (TableInserter).
                peer_id or "",
                topic,
                payload if isinstance(payload, str) else payload_text(payload),
                qos,
                created_at,
            )
            for row_id, (tenant_id, client_id, kind, peer_id, topic, payload, qos, created_at) in zip(
                ids, rows, strict=True
            )
        ]
