"""The batched writer of message history rows from the broker's hot path (spec C18).

The broker calls `append(row)` synchronously; it only records the row. A flush task the writer owns
writes everything pending in one transaction, at most every `flush_interval` seconds (or as soon as
`max_batch` rows wait). Rows of clients deleted meanwhile are skipped, never failing the batch.
`close()` flushes what is left on graceful shutdown; after `kill -9` at most one interval is lost.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import select

from instamsg.store.repositories import messages as message_repository
from instamsg.store.store import Store
from instamsg.store.tables import client

logger = logging.getLogger(__name__)


class HistoryWriter:
    def __init__(
        self,
        store: Store,
        *,
        flush_interval: float = 0.05,
        max_batch: int = 1000,
        max_pending: int = 100_000,
    ):
        self.store = store
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        # Bounds memory while the database is unreachable; rows beyond it are counted and dropped.
        self.max_pending = max_pending
        self.dropped_rows = 0
        self._pending: list[dict[str, Any]] = []
        self._flush_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.flushes = 0
        self.failed_flushes = 0
        self.skipped_rows = 0

    def append(self, row: dict[str, Any]) -> None:
        """Record one `message` row; never blocks and never touches the database."""
        if len(self._pending) >= self.max_pending:
            self.dropped_rows += 1
            if self.dropped_rows % 10_000 == 1:
                logger.warning("history_rows_dropped total=%d pending=%d", self.dropped_rows, self.pending)
            return
        self._pending.append(row)
        if self._flush_task is None or self._flush_task.done():
            self._wake = asyncio.Event()
            self._flush_task = asyncio.get_running_loop().create_task(
                self._flush_soon(), name="history-flush"
            )
        elif len(self._pending) >= self.max_batch:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

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
        rows, self._pending = self._pending, []
        if not rows:
            return
        try:
            await self._write(rows)
        except BaseException as error:
            # Keep the rows, also when cancelled; anything recorded meanwhile comes after them.
            self._pending[:0] = rows
            if not isinstance(error, Exception):
                raise
            self.failed_flushes += 1
            logger.exception("history_flush_failed rows=%d", len(rows))
            await asyncio.sleep(max(self.flush_interval, 0.5))
            return
        self.flushes += 1

    async def _write(self, rows: list[dict[str, Any]]) -> None:
        async with self.store.write() as connection:
            wanted = {row["client_id"] for row in rows}
            existing = set(
                (await connection.execute(select(client.c.id).where(client.c.id.in_(wanted)))).scalars()
            )
            kept = [row for row in rows if row["client_id"] in existing]
            self.skipped_rows += len(rows) - len(kept)
            await message_repository.insert_messages(connection, kept)

    async def close(self) -> None:
        """Flush what is pending; called on graceful shutdown."""
        if self._flush_task is not None and not self._flush_task.done():
            # Never cancel a flush in progress: its transaction may be committing.
            self._wake.set()
            await self._flush_task
        while self._pending:
            await self.flush()
