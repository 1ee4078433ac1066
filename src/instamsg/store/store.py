"""The Store: an engine plus read and write transactions with the right locking per backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry

from instamsg.store.database import create_engine, upgrade_schema

_BEGIN_OPTION = "instamsg_begin"


def _disable_driver_transactions(dbapi_connection: Any, connection_record: ConnectionPoolEntry) -> None:
    # pysqlite's implicit BEGIN cannot be made IMMEDIATE; take transaction control ourselves.
    dbapi_connection.isolation_level = None


def _emit_begin(connection: Any) -> None:
    connection.exec_driver_sql(connection.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))


class Store:
    """Owns the database engine; every SQL statement runs inside `read()` or `write()`."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        # SQLite has one writer; taking the lock in-process first avoids busy-snapshot failures
        # between our own connections, and BEGIN IMMEDIATE covers other processes (the CLI).
        self._write_lock = asyncio.Lock()
        if self.is_sqlite:
            event.listen(engine.sync_engine, "connect", _disable_driver_transactions)
            event.listen(engine.sync_engine, "begin", _emit_begin)

    @classmethod
    def from_url(cls, url: str) -> Store:
        return cls(create_engine(url))

    async def upgrade(self) -> None:
        await upgrade_schema(self.engine)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as connection, connection.begin():
            yield connection

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits on success and rolls back on any exception."""
        if not self.is_sqlite:
            async with self.engine.begin() as connection:
                yield connection
            return
        async with self._write_lock, self.engine.connect() as connection:
            connection = await connection.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
            async with connection.begin():
                yield connection

    async def close(self) -> None:
        await self.engine.dispose()
