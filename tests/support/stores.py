"""Stores for tests that need a database which never answers."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from instamsg.store.store import Store


@contextlib.asynccontextmanager
async def unreachable_store(tmp_path: Path) -> AsyncIterator[Store]:
    """A SQLite store in a directory that does not exist: every connection fails.

    aiosqlite stops the worker thread of a failed connection without waiting for it, and that thread
    then reports to the event loop: the loop must outlive it, or the thread fails on a closed loop.
    """
    before = set(threading.enumerate())
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}")
    try:
        yield store
    finally:
        await store.close()
        for thread in set(threading.enumerate()) - before:
            if "_connection_worker_thread" in thread.name:
                await asyncio.to_thread(thread.join, 5)
