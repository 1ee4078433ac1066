"""Batched writes from the broker's hot path: append a tuple now, insert many rows later (spec C18).

`BatchedWriter.append(row)` is synchronous and only appends to a bounded buffer, so hook callbacks can
call it. A flush task the writer owns hands everything pending to a `write_batch` coroutine at most
every `flush_interval` seconds, or as soon as `max_batch` rows wait. A failed write keeps its rows
(ahead of newer ones) and is retried; given a probe that tells the database still answers, a failed
batch is instead written row by row and only the rows the database refuses are dropped. `close()`
flushes what is left on graceful shutdown.

`TableInserter` is the usual `write_batch`: it inserts pre-built tuples into one table through the raw
database driver in one transaction, without SQLAlchemy's per-row statement processing. Rows are driver
neutral: strings, numbers, booleans and None; `UTCDateTime` columns take Unix epoch seconds (a float)
and `JSON` columns take already encoded JSON text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any, Generic, TypeVar

from sqlalchemy import JSON, Boolean, Column, Table, select

from instamsg.store.store import Store
from instamsg.store.tables import UTCDateTime

logger = logging.getLogger(__name__)

RowT = TypeVar("RowT")
ResultT = TypeVar("ResultT")

# Rows per multi-row INSERT through the Store's connection: below SQLite's oldest bind limit (999
# parameters before 3.32) for narrow tables; the writer's own connection asks the library instead.
SQLITE_ROWS_PER_STATEMENT = 500
# Rows per statement through a writer's own connection come from this ladder only: the sqlite3 module
# keeps every statement text it compiled (128 by default), and a compiled multi-row statement is large,
# so statements of every possible length would hold tens of megabytes.
SQLITE_STATEMENT_ROWS = (1024, 256, 64, 16, 4, 1)
# As the Store's own connections wait for the write lock (instamsg.store.database).
SQLITE_BUSY_TIMEOUT_MS = 10_000
_EPOCH = datetime(1970, 1, 1)


class BatchedWriter(Generic[RowT]):
    """A bounded buffer of rows flushed by one task, one `write_batch` call (transaction) per flush.

    With `database_answers` (a probe that returns whether the database still answers), a batch that
    fails while the database answers is written one row at a time through `write_batch([row])`: rows
    the database refuses are dropped and counted in `refused_rows`, so that one bad row cannot block
    the others forever; the rest keep their order. Without it, or while the database does not answer,
    a failed batch stays pending and is retried. `on_take` is called with the rows leaving the buffer
    (taken by a flush, before they are written, or lost at close); a row put back after a failed
    flush is passed again when taken again.
    """

    def __init__(
        self,
        write_batch: Callable[[list[RowT]], Awaitable[None]],
        *,
        name: str,
        flush_interval: float = 0.05,
        max_batch: int = 5000,
        max_pending: int = 200_000,
        retry_delay: float = 0.5,
        close_attempts: int = 3,
        database_answers: Callable[[], Awaitable[bool]] | None = None,
        on_take: Callable[[list[RowT]], None] | None = None,
        on_backlog: Callable[[bool], None] | None = None,
    ):
        self.write_batch = write_batch
        self.name = name
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        # Bounds memory while the database is unreachable; rows beyond it are counted and dropped.
        self.max_pending = max_pending
        self.retry_delay = retry_delay
        self.close_attempts = close_attempts
        self.database_answers = database_answers
        self.on_take = on_take
        # Told True when the pending rows reach half of `max_pending` and False once they are back
        # under a quarter: the producer slows down (the broker stops reading sockets) instead of
        # the writer dropping rows at `max_pending`.
        self.on_backlog = on_backlog
        self.backlogged = False
        self._backlog_at = max(1, max_pending // 2)
        # The last flush found the database unreachable: no backlog signal until a flush succeeds.
        self._unreachable = False
        self.flushes = 0
        self.failed_flushes = 0
        self.dropped_rows = 0
        self.refused_rows = 0
        self.lost_rows = 0
        self._pending: list[RowT] = []
        self._task: asyncio.Task[None] | None = None
        self._batch_full = asyncio.Event()
        # Serialises flushes so rows commit in the order they were appended.
        self._flush_lock = asyncio.Lock()
        self._closing = False

    @property
    def pending(self) -> int:
        return len(self._pending)

    def append(self, row: RowT) -> bool:
        """Record one row; never blocks and never touches the database. False when it was dropped."""
        pending = self._pending
        if len(pending) >= self.max_pending:
            self._drop()
            return False
        pending.append(row)
        if (
            len(pending) >= self._backlog_at
            and self.on_backlog is not None
            and not self.backlogged
            and not self._unreachable
        ):
            self._set_backlogged(True)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self.name}-flush")
        elif len(pending) == self.max_batch:
            self._batch_full.set()
        return True

    def _set_backlogged(self, backlogged: bool) -> None:
        self.backlogged = backlogged
        assert self.on_backlog is not None
        try:
            self.on_backlog(backlogged)
        except Exception:
            logger.exception("backlog_callback_failed writer=%s", self.name)

    def _drop(self) -> None:
        self.dropped_rows += 1
        if self.dropped_rows % 10_000 == 1:
            logger.warning(
                "batched_rows_dropped writer=%s total=%d pending=%d",
                self.name,
                self.dropped_rows,
                self.pending,
            )

    async def _run(self) -> None:
        try:
            while self._pending:
                if len(self._pending) < self.max_batch and not self._closing:
                    self._batch_full.clear()
                    try:
                        await asyncio.wait_for(self._batch_full.wait(), timeout=self.flush_interval)
                    except TimeoutError:
                        pass
                if not await self._flush_once() and not self._closing:
                    await asyncio.sleep(max(self.flush_interval, self.retry_delay))
                if self._closing:
                    return
        finally:
            self._task = None

    async def flush(self) -> None:
        """Write everything pending now (`max_batch` rows per transaction); on failure rows stay pending."""
        while self._pending and await self._flush_once():
            pass

    async def _flush_once(self) -> bool:
        """Write up to `max_batch` of the oldest pending rows in one transaction. False when rows could
        not be written and were put back (the database does not answer)."""
        async with self._flush_lock:
            if len(self._pending) <= self.max_batch:
                rows, self._pending = self._pending, []
            else:
                # A bounded transaction keeps the database's write lock short for other writers.
                rows = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
            if not rows:
                return True
            # Until written or handed to `_write_one_by_one`, the rows go back ahead of anything
            # appended meanwhile, also when cancelled.
            put_back = True
            try:
                if self.on_take is not None:
                    self.on_take(rows)
                try:
                    await self.write_batch(rows)
                except Exception:
                    self.failed_flushes += 1
                    logger.exception("batched_flush_failed writer=%s rows=%d", self.name, len(rows))
                else:
                    put_back = False
                    self.flushes += 1
                    self._unreachable = False
                    return True
                if not await self._database_answers():
                    # Holding the producer back would stop it for as long as the database is down:
                    # rows are dropped at `max_pending` instead, and counted.
                    self._unreachable = True
                    return False
                put_back = False
                return await self._write_one_by_one(rows)
            finally:
                if put_back:
                    self._pending[:0] = rows
                if self.backlogged and (self._unreachable or len(self._pending) < self.max_pending // 4):
                    self._set_backlogged(False)

    async def _write_one_by_one(self, rows: list[RowT]) -> bool:
        """A batch failed while the database answers: write each row alone, in order, dropping the ones
        the database refuses. False when the database stopped answering: the rest is put back."""
        refused = 0
        settled = 0
        try:
            for row in rows:
                try:
                    await self.write_batch([row])
                except Exception as error:
                    if not await self._database_answers():
                        # Gone meanwhile: not a refusal. This row and the rest wait for the next attempt.
                        return False
                    refused += 1
                    logger.warning(
                        "batched_row_refused writer=%s row=%.200r error=%.300s", self.name, row, error
                    )
                settled += 1
            return True
        finally:
            if settled < len(rows):
                self._pending[:0] = rows[settled:]
            if refused:
                self.refused_rows += refused
                logger.error(
                    "batched_rows_refused writer=%s rows=%d total=%d", self.name, refused, self.refused_rows
                )

    async def _database_answers(self) -> bool:
        if self.database_answers is None:
            return False
        try:
            return await self.database_answers()
        except Exception:
            return False

    async def close(self) -> None:
        """Flush what is pending; called on graceful shutdown. Gives up after `close_attempts` failures:
        what is still pending then is dropped and counted in `lost_rows`."""
        self._closing = True
        self._batch_full.set()
        try:
            task = self._task
            if task is not None:
                # Never cancel a flush in progress: its transaction may be committing.
                await task
            failures = 0
            while self._pending and failures < self.close_attempts:
                if not await self._flush_once():
                    failures += 1
                    if failures < self.close_attempts:
                        await asyncio.sleep(self.retry_delay)
            if self._pending:
                lost, self._pending = self._pending, []
                self.lost_rows += len(lost)
                logger.error("batched_rows_lost writer=%s rows=%d", self.name, len(lost))
                if self.on_take is not None:
                    self.on_take(lost)
        finally:
            self._closing = False


async def store_answers(store: Store) -> bool:
    """Whether the Store's database answers a trivial query (a `BatchedWriter` `database_answers` probe)."""
    try:
        async with store.read() as connection:
            await connection.execute(select(1))
    except Exception:
        return False
    return True


class TableInserter:
    """Inserts driver-neutral tuples into `table` through the raw driver, one transaction per batch.

    `columns` names the tuple's fields in order; `constants` gives columns the same value in every row
    (None, booleans, numbers or text), so rows need not carry them. With `parent_column` (a column
    with a foreign key, e.g. `client_id`), rows whose parent no longer exists are skipped instead of
    failing the batch; `skipped_rows` counts them. `prepare`, if given, turns appended rows into such
    tuples in a worker thread, off the event loop. Rows carry "" for NULL in the `empty_as_null`
    columns (text columns where "" is never a value): binding None costs the sqlite3 module an adapter
    lookup per value, several times the cost of binding a string.
    """

    def __init__(
        self,
        store: Store,
        table: Table,
        columns: Sequence[str],
        *,
        constants: Mapping[str, bool | int | float | str | None] | None = None,
        parent_column: str | None = None,
        prepare: Callable[[list[Any]], list[tuple[Any, ...]]] | None = None,
        empty_as_null: Sequence[str] = (),
    ):
        self.store = store
        self.table = table
        self.columns = tuple(columns)
        self.constants = dict(constants or {})
        for name in (*self.columns, *self.constants):
            table.c[name]  # an unknown column fails here, not at the first flush
        self.prepare = prepare
        self.skipped_rows = 0
        self.inserted_rows = 0
        self._time_columns = tuple(
            index for index, name in enumerate(self.columns) if isinstance(table.c[name].type, UTCDateTime)
        )
        self._empty_as_null = tuple(self.columns.index(name) for name in empty_as_null)
        self._parent_index: int | None = None
        self._parent_key: Column[Any] | None = None
        if parent_column is not None:
            self._parent_index = self.columns.index(parent_column)
            (foreign_key,) = table.c[parent_column].foreign_keys
            self._parent_key = foreign_key.column
        self._sqlite_statements: dict[int, str] = {}
        # A file database gets the writer's own connection; an in-memory one exists only in the
        # Store's connection, so batches go through it.
        self._sqlite = SqliteWriterConnection.for_store(store, name=f"{table.name}-writer")

    async def __call__(self, rows: list[Any]) -> None:
        if self._sqlite is not None:
            inserted, skipped = await self._sqlite.transaction(self._write_sqlite_batch, rows)
        else:
            inserted, skipped = await self._write_through_store(rows)
        self.inserted_rows += inserted
        self.skipped_rows += skipped

    def _kept(self, rows: list[tuple[Any, ...]], existing: set[Any]) -> list[tuple[Any, ...]]:
        index = self._parent_index
        assert index is not None
        return [row for row in rows if row[index] in existing]

    # ---- SQLite: the writer's own connection, in its own thread ------------------------------------

    def _write_sqlite_batch(self, connection: sqlite3.Connection, rows: list[Any]) -> tuple[int, int]:
        """Prepare, filter and insert one batch inside the writer's transaction, in its thread."""
        prepared: list[tuple[Any, ...]] = self.prepare(rows) if self.prepare is not None else rows
        skipped = 0
        if self._parent_index is not None and self._parent_key is not None:
            key = self._parent_key
            wanted = {row[self._parent_index] for row in prepared}
            existing = sqlite_existing(connection, key.table.name, key.name, wanted)
            if len(existing) < len(wanted):
                kept = self._kept(prepared, existing)
                skipped = len(prepared) - len(kept)
                prepared = kept
        # Multi-row statements bind in C and step once per chunk; executemany would release and
        # retake the GIL for every row.
        for start, size in sqlite_chunks(connection, len(prepared), len(self.columns)):
            chunk = prepared[start : start + size]
            connection.execute(self._sqlite_statement(size), self._sqlite_parameters(chunk))
        return len(prepared), skipped

    async def close(self) -> None:
        """Release the writer's own connection and thread (SQLite); the Store is not touched."""
        if self._sqlite is not None:
            await self._sqlite.close()

    # ---- through the Store's connection (PostgreSQL, in-memory SQLite) ------------------------------

    async def _write_through_store(self, rows: list[Any]) -> tuple[int, int]:
        prepared: list[tuple[Any, ...]] = (
            await asyncio.to_thread(self.prepare, rows) if self.prepare is not None else rows
        )
        skipped = 0
        async with self.store.write() as connection:
            if self._parent_index is not None and self._parent_key is not None:
                index = self._parent_index
                wanted = {row[index] for row in prepared}
                existing = set(
                    (await connection.execute(select(self._parent_key).where(self._parent_key.in_(wanted))))
                    .scalars()
                    .all()
                )
                if len(existing) < len(wanted):
                    kept = self._kept(prepared, existing)
                    skipped = len(prepared) - len(kept)
                    prepared = kept
            elif not self.store.is_sqlite:
                # asyncpg starts SQLAlchemy's transaction on the first statement: make it ours.
                await connection.exec_driver_sql("SELECT 1")
            if not prepared:
                return 0, skipped
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            if self.store.is_sqlite:
                for start in range(0, len(prepared), SQLITE_ROWS_PER_STATEMENT):
                    chunk = prepared[start : start + SQLITE_ROWS_PER_STATEMENT]
                    cursor = await driver.execute(
                        self._sqlite_statement(len(chunk)), self._sqlite_parameters(chunk)
                    )
                    await cursor.close()
            else:
                await self._insert_postgresql(driver, prepared)
        return len(prepared), skipped

    def _sqlite_parameters(self, rows: list[tuple[Any, ...]]) -> list[Any]:
        """The rows' values in one list, epoch seconds turned into the text SQLAlchemy stores for
        DateTime on SQLite (millisecond precision), so comparisons and keyset cursors treat these rows
        like any other. Rows of one batch mostly share their millisecond: each text is made once."""
        parameters = list(chain.from_iterable(rows))
        width = len(self.columns)
        for index in self._time_columns:
            last_millisecond = -1
            last_text = ""
            for position in range(index, len(parameters), width):
                seconds = parameters[position]
                if seconds is None:
                    continue
                millisecond = int(seconds * 1000 + 0.5)
                if millisecond != last_millisecond:
                    last_millisecond = millisecond
                    last_text = _millisecond_text(millisecond)
                parameters[position] = last_text
        return parameters

    def _sqlite_statement(self, row_count: int) -> str:
        statement = self._sqlite_statements.get(row_count)
        if statement is None:
            placeholders = [
                "NULLIF(?, '')" if index in self._empty_as_null else "?" for index in range(len(self.columns))
            ]
            placeholders.extend(_sql_literal(value) for value in self.constants.values())
            values = "(" + ", ".join(placeholders) + ")"
            names = ", ".join(f'"{name}"' for name in (*self.columns, *self.constants))
            statement = f'INSERT INTO "{self.table.name}" ({names}) VALUES ' + ", ".join([values] * row_count)
            if len(self._sqlite_statements) < 16:
                self._sqlite_statements[row_count] = statement
        return statement

    async def _insert_postgresql(self, driver: Any, rows: list[tuple[Any, ...]]) -> None:
        if self._time_columns or self.constants or self._empty_as_null:
            rows = await asyncio.to_thread(self._postgresql_records, rows)
        await driver.copy_records_to_table(
            self.table.name, records=rows, columns=[*self.columns, *self.constants]
        )

    def _postgresql_records(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Epoch seconds → the naive UTC datetimes of `timestamp without time zone`, "" → NULL in the
        `empty_as_null` columns; constants added."""
        time_columns = self._time_columns
        empty_as_null = self._empty_as_null
        constants = tuple(self.constants.values())
        records = []
        for row in rows:
            record = list(row)
            for index in time_columns:
                value = record[index]
                if value is not None:
                    record[index] = _EPOCH + timedelta(seconds=value)
            for index in empty_as_null:
                if record[index] == "":
                    record[index] = None
            record.extend(constants)
            records.append(tuple(record))
        return records


class SqliteWriterConnection:
    """A writer's own connection to a SQLite file, used from one dedicated thread.

    A whole batch is one call into that thread, in one IMMEDIATE transaction: every hop between the
    event loop and a database thread waits for the GIL, which the busy loop holds most of the time,
    and SQLAlchemy's per-statement work would run on the loop. IMMEDIATE takes the write lock at once;
    other writers (the Store's connections, the CLI) wait on their busy timeout rather than fail.
    """

    def __init__(self, path: str, *, name: str) -> None:
        self.path = path
        self.name = name
        self._connection: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None

    @classmethod
    def for_store(cls, store: Store, *, name: str) -> SqliteWriterConnection | None:
        """A connection to the Store's SQLite file; None for PostgreSQL and in-memory SQLite, whose
        batches go through the Store's own connection."""
        database = store.engine.url.database if store.is_sqlite else None
        if not database or database == ":memory:":
            return None
        return cls(database, name=name)

    async def transaction(self, write: Callable[[sqlite3.Connection, Any], ResultT], batch: Any) -> ResultT:
        """Run `write(connection, batch)` in the writer's thread, in one transaction."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, self._in_transaction, write, batch
        )

    def _in_transaction(self, write: Callable[[sqlite3.Connection, Any], ResultT], batch: Any) -> ResultT:
        connection = self._open()
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = write(connection, batch)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return result

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # The settings every connection of the Store uses (instamsg.store.database).
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            self._connection = connection
        return self._connection

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(thread, self._close_connection)
            thread.shutdown(wait=False)

    def _close_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def sqlite_existing(connection: sqlite3.Connection, table: str, column: str, wanted: set[Any]) -> set[Any]:
    """The values among `wanted` that `table.column` holds (parents of rows about to be written)."""
    values = list(wanted)
    existing: set[Any] = set()
    for start in range(0, len(values), SQLITE_ROWS_PER_STATEMENT):
        chunk = values[start : start + SQLITE_ROWS_PER_STATEMENT]
        marks = ", ".join("?" * len(chunk))
        found = connection.execute(f'SELECT "{column}" FROM "{table}" WHERE "{column}" IN ({marks})', chunk)
        existing.update(value for (value,) in found)
    return existing


# ---- multi-row statements for a writer's SQLite connection -----------------------------------------
#
# One statement per chunk of rows and per set of columns: each statement releases and retakes the GIL
# once, where executemany would do so for every row. Values are converted to the text SQLAlchemy
# stores for the column's type, so rows written here read back like any other.


def sqlite_insert(connection: sqlite3.Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT `rows` (mappings of column name to value; rows of one call may name different columns)."""
    for columns, values in _grouped_by_columns(table, rows, ()):
        names = ", ".join(f'"{name}"' for name in columns)
        _execute_chunked(
            connection, f'INSERT INTO "{table.name}" ({names}) VALUES ', len(columns), values, ""
        )


def sqlite_update(
    connection: sqlite3.Connection, table: Table, key: str, updates: Mapping[Any, Mapping[str, Any]]
) -> None:
    """Set the given columns of the rows whose `key` column matches; unknown keys change nothing."""
    rows = [{key: key_value, **values} for key_value, values in updates.items()]
    for columns, values in _grouped_by_columns(table, rows, (key,)):
        # VALUES names its columns column1, column2, ... in order; column1 is the key.
        assignments = ", ".join(
            f'"{name}" = v.column{index}' for index, name in enumerate(columns[1:], start=2)
        )
        prefix = f'UPDATE "{table.name}" SET {assignments} FROM (VALUES '
        suffix = f') AS v WHERE "{table.name}"."{key}" = v.column1'
        _execute_chunked(connection, prefix, len(columns), values, suffix)


def sqlite_upsert(
    connection: sqlite3.Connection, table: Table, key: str, updates: Mapping[Any, Mapping[str, Any]]
) -> None:
    """Insert a row per key or set only the given columns of the existing one."""
    rows = [{key: key_value, **values} for key_value, values in updates.items()]
    for columns, values in _grouped_by_columns(table, rows, (key,)):
        names = ", ".join(f'"{name}"' for name in columns)
        assignments = ", ".join(f'"{name}" = excluded."{name}"' for name in columns[1:])
        _execute_chunked(
            connection,
            f'INSERT INTO "{table.name}" ({names}) VALUES ',
            len(columns),
            values,
            f' ON CONFLICT ("{key}") DO UPDATE SET {assignments}'
            if assignments
            else f' ON CONFLICT ("{key}") DO NOTHING',
        )


def _grouped_by_columns(
    table: Table, rows: Sequence[Mapping[str, Any]], leading: tuple[str, ...]
) -> list[tuple[tuple[str, ...], list[list[Any]]]]:
    """Rows grouped by the columns they name (`leading` first), each converted to its stored form."""
    groups: dict[tuple[str, ...], list[list[Any]]] = {}
    for row in rows:
        names = tuple(row)
        group = groups.get(names)
        if group is None:
            group = groups[names] = []
        group.append(list(row.values()))
    converted = []
    for names, values in groups.items():
        columns = (*leading, *(name for name in names if name not in leading))
        if columns != names:
            order = [names.index(name) for name in columns]
            values = [[record[index] for index in order] for record in values]
        for index, convert in enumerate(_sqlite_converters(table, columns)):
            if convert is not None:
                for record in values:
                    value = record[index]
                    if value is not None:
                        record[index] = convert(value)
        converted.append((columns, values))
    return converted


def _execute_chunked(
    connection: sqlite3.Connection, prefix: str, width: int, rows: list[list[Any]], suffix: str
) -> None:
    placeholders = "(" + ", ".join("?" * width) + ")"
    for start, size in sqlite_chunks(connection, len(rows), width):
        statement = prefix + ", ".join([placeholders] * size) + suffix
        connection.execute(statement, list(chain.from_iterable(rows[start : start + size])))


def sqlite_chunks(connection: sqlite3.Connection, count: int, width: int) -> list[tuple[int, int]]:
    """(start, size) of the statements that write `count` rows of `width` values: sizes from the
    `SQLITE_STATEMENT_ROWS` ladder, as large as the library's bind limit allows."""
    largest = max(1, connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width)
    chunks = []
    start = 0
    for size in SQLITE_STATEMENT_ROWS:
        if size > largest:
            continue
        while count - start >= size:
            chunks.append((start, size))
            start += size
    return chunks


_converters: dict[tuple[str, tuple[str, ...]], list[Callable[[Any], Any] | None]] = {}


def _sqlite_converters(table: Table, columns: tuple[str, ...]) -> list[Callable[[Any], Any] | None]:
    found = _converters.get((table.name, columns))
    if found is None:
        found = [_sqlite_converter(table.c[name].type) for name in columns]
        if len(_converters) < 256:
            _converters[(table.name, columns)] = found
    return found


def _sqlite_converter(column_type: Any) -> Callable[[Any], Any] | None:
    if isinstance(column_type, UTCDateTime):
        return _sqlite_datetime
    if isinstance(column_type, JSON):
        return json.dumps
    if isinstance(column_type, Boolean):
        return int
    return None


def _sqlite_datetime(value: datetime) -> str:
    # SQLAlchemy's SQLite DATETIME text: naive UTC, always with six fractional digits, so that text
    # comparison orders and matches like the instants.
    if value.tzinfo is UTC:
        return value.isoformat(sep=" ", timespec="microseconds")[:26]  # without "+00:00"
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _millisecond_text(millisecond: int) -> str:
    """Unix epoch milliseconds in SQLAlchemy's SQLite DATETIME text (`YYYY-MM-DD HH:MM:SS.ffffff`)."""
    seconds, fraction = divmod(millisecond, 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{fraction:03d}000"


def _sql_literal(value: bool | int | float | str | None) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + value.replace("'", "''") + "'"
