"""Message history retention (spec §6.5): rows older than the retention period are deleted.

A periodic task deletes them in bounded batches, each its own short transaction, so neither the broker
nor other writers wait long for the database. Old rows are looked up in a read transaction (SQLite in
WAL mode lets readers run beside the writer); only the delete by primary key takes the write lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from instamsg.domain.clock import utc_now
from instamsg.store.store import Store
from instamsg.store.tables import message

logger = logging.getLogger(__name__)


class HistoryRetention:
    """Deletes `message` rows older than `retention_days`, every `interval` seconds while running."""

    def __init__(
        self,
        store: Store,
        retention_days: float,
        *,
        interval: float = 3600.0,
        batch_size: int = 1000,
        pause: float = 0.05,
    ):
        self.store = store
        self.retention = timedelta(days=retention_days)
        self.interval = interval
        self.batch_size = batch_size
        # Between batches: other writers get the database in between.
        self.pause = pause
        self.deleted_rows = 0
        self._task: asyncio.Task[None] | None = None

    async def purge(self, now: datetime | None = None) -> int:
        """Delete every row older than the retention period; returns how many were deleted."""
        cutoff = (now or utc_now()) - self.retention
        deleted = 0
        while True:
            async with self.store.read() as connection:
                found = (
                    await connection.execute(
                        select(message.c.id).where(message.c.created_at < cutoff).limit(self.batch_size)
                    )
                ).scalars()
                ids = list(found)
            if not ids:
                break
            async with self.store.write() as connection:
                await connection.execute(
                    delete(message).where(message.c.id.in_(ids), message.c.created_at < cutoff)
                )
            deleted += len(ids)
            self.deleted_rows += len(ids)
            if len(ids) < self.batch_size:
                break
            await asyncio.sleep(self.pause)
        if deleted:
            logger.info("history_purged rows=%d cutoff=%s", deleted, cutoff.isoformat())
        return deleted

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="history-retention")

    async def _run(self) -> None:
        while True:
            try:
                await self.purge()
            except Exception:
                # The next round retries; history is kept a little longer meanwhile.
                logger.exception("history_purge_failed")
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
