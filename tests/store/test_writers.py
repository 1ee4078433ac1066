"""Batched writers on SQLite and PostgreSQL: history rows, the generic writer, retention (§6.5, C18)."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import func, select

from instamsg.domain import ids
from instamsg.rest.dependencies import Services
from instamsg.store.history import HistoryRow, HistoryWriter, MessageIds
from instamsg.store.repositories import messages as message_repository
from instamsg.store.retention import HistoryRetention
from instamsg.store.store import Store
from instamsg.store.tables import client, message
from instamsg.store.writers import BatchedWriter, TableInserter, store_answers

UUID_SHAPE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def _clients(services: Services, count: int) -> tuple[str, list[str]]:
    created = await services.apps.create_app("writers")
    tenant = await services.tenants.create_tenant(created.app.id, name="t", max_clients=10, max_messages=10)
    clients = [
        (
            await services.clients.create_client(
                created.app.id, tenant.id, {"type": "device", "name": f"c{n}"}
            )
        ).id
        for n in range(count)
    ]
    return tenant.id, clients


def _row(tenant_id: str, client_id: str, payload: str, **changes: Any) -> HistoryRow:
    fields: dict[str, Any] = {
        "kind": "pub",
        "peer_id": None,
        "topic": "data/t",
        "qos": 2,
        "created_at": time.time(),
    } | changes
    return (
        tenant_id,
        client_id,
        fields["kind"],
        fields["peer_id"],
        fields["topic"],
        payload.encode(),
        fields["qos"],
        fields["created_at"],
    )


async def _stored(store: Store) -> list[dict[str, Any]]:
    async with store.read() as connection:
        result = await connection.execute(select(message).order_by(message.c.id))
        return [dict(found) for found in result.mappings()]


async def test_every_appended_row_is_committed_exactly_once_in_order(
    store: Store, services: Services
) -> None:
    tenant_id, (client_id,) = await _clients(services, 1)
    # A long interval: only a full batch (and then close) can cause a flush.
    writer = HistoryWriter(store, flush_interval=60, max_batch=300)
    for index in range(300):
        writer.record(_row(tenant_id, client_id, f"m{index}"))
    for _ in range(1000):
        if writer.flushes:
            break
        await asyncio.sleep(0.005)
    assert writer.flushes == 1 and writer.pending == 0
    for index in range(300, 1000):
        writer.record(_row(tenant_id, client_id, f"m{index}"))
    await writer.close()
    rows = await _stored(store)
    # Ids sort in append order, so ordering by id gives the append order back.
    assert [row["payload"] for row in rows] == [f"m{index}" for index in range(1000)]
    assert len({row["id"] for row in rows}) == 1000
    assert writer.flushes >= 2 and writer.inserted_rows == 1000 and writer.pending == 0
    assert all(UUID_SHAPE.match(row["id"]) for row in rows)


async def test_history_rows_have_the_mqtt_defaults_and_readable_timestamps(
    store: Store, services: Services
) -> None:
    tenant_id, (client_id, peer_id) = await _clients(services, 2)
    moment = datetime(2026, 11, 27, 5, 6, 7, 891000, tzinfo=UTC)
    writer = HistoryWriter(store, flush_interval=60)
    writer.record((tenant_id, client_id, "pub", None, "data/t", b"\xff\x00ok", 1, moment.timestamp()))
    writer.record(
        _row(tenant_id, client_id, "to the peer", kind="p2p", peer_id=peer_id, topic=peer_id, qos=3)
    )
    await writer.close()
    async with store.read() as connection:
        page = await message_repository.list_messages(
            connection,
            client_id,
            start=None,
            end=None,
            message_type=None,
            descending=False,
            limit=10,
            after=None,
        )
    pub, p2p = page
    assert (pub.type, pub.topic, pub.payload, pub.qos, pub.created_at) == (
        "pub",
        "data/t",
        "\ufffd\ufffdok",  # undecodable bytes and NUL are replaced, as for every history payload
        1,
        moment,
    )
    assert (pub.source, pub.saved, pub.duplicate, pub.delivered_to, pub.releases, pub.client_message_id) == (
        "mqtt",
        True,
        False,
        0,
        [],
        None,
    )
    assert (p2p.type, p2p.topic, p2p.qos) == ("p2p", peer_id, 3)
    stored = {row["id"]: row for row in await _stored(store)}
    assert stored[p2p.id]["peer_id"] == peer_id and stored[pub.id]["peer_id"] is None
    # The keyset cursor of getMessages compares created_at for equality: stored values must match.
    async with store.read() as connection:
        after = await message_repository.list_messages(
            connection,
            client_id,
            start=moment,
            end=moment,
            message_type="pub",
            descending=False,
            limit=10,
            after=None,
        )
    assert [found.id for found in after] == [pub.id]


async def test_close_flushes_what_is_pending(store: Store, services: Services) -> None:
    tenant_id, (client_id,) = await _clients(services, 1)
    writer = HistoryWriter(store, flush_interval=60)
    for index in range(5):
        writer.record(_row(tenant_id, client_id, f"s{index}"))
    assert writer.pending == 5 and await _stored(store) == []
    await writer.close()
    assert [row["payload"] for row in await _stored(store)] == [f"s{index}" for index in range(5)]
    assert writer.flushes == 1


async def test_a_failed_flush_keeps_its_rows_and_retries_them_first(store: Store, services: Services) -> None:
    tenant_id, (client_id,) = await _clients(services, 1)
    history = HistoryWriter(store)
    inserter = TableInserter(
        store,
        message,
        ("id", "tenant_id", "client_id", "type", "peer_id", "topic", "payload", "qos", "created_at"),
        constants={"source": "mqtt", "releases": "[]", "duplicate": False, "saved": True, "delivered_to": 0},
        parent_column="client_id",
        prepare=history._prepare,
    )
    calls = 0

    async def fail_once(rows: list[HistoryRow]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            # Rows recorded while the write is failing must come after the failed batch.
            writer.append(_row(tenant_id, client_id, "late"))
            raise ConnectionError("database unreachable")
        await inserter(rows)

    writer: BatchedWriter[HistoryRow] = BatchedWriter(
        fail_once, name="test", flush_interval=0.01, retry_delay=0.01
    )
    for index in range(3):
        writer.append(_row(tenant_id, client_id, f"r{index}"))
    for _ in range(500):
        if writer.flushes:
            break
        await asyncio.sleep(0.01)
    await writer.close()
    await inserter.close()
    assert writer.failed_flushes == 1 and calls >= 2
    assert [row["payload"] for row in await _stored(store)] == ["r0", "r1", "r2", "late"]


def _history_inserter(store: Store) -> TableInserter:
    return TableInserter(
        store,
        message,
        ("id", "tenant_id", "client_id", "type", "peer_id", "topic", "payload", "qos", "created_at"),
        constants={"source": "mqtt", "releases": "[]", "duplicate": False, "saved": True, "delivered_to": 0},
        parent_column="client_id",
        prepare=HistoryWriter(store)._prepare,
    )


async def test_rows_the_database_refuses_are_dropped_alone_and_counted(
    store: Store, services: Services
) -> None:
    tenant_id, (client_id,) = await _clients(services, 1)
    inserter = _history_inserter(store)
    taken: list[bytes | str] = []
    writer: BatchedWriter[HistoryRow] = BatchedWriter(
        inserter,
        name="test",
        flush_interval=60,
        database_answers=partial(store_answers, store),
        on_take=lambda rows: taken.extend(row[5] for row in rows),
    )
    writer.append(_row(tenant_id, client_id, "before"))
    # `topic` is NOT NULL: every database refuses this row, and with it each batch holding it.
    writer.append(_row(tenant_id, client_id, "refused", topic=None))
    writer.append(_row(tenant_id, client_id, "after"))
    await writer.flush()
    await writer.close()
    await inserter.close()
    assert [row["payload"] for row in await _stored(store)] == ["before", "after"]
    assert (writer.refused_rows, writer.failed_flushes, writer.pending, writer.lost_rows) == (1, 1, 0, 0)
    assert taken == [b"before", b"refused", b"after"]


async def test_rows_stay_pending_in_order_when_the_database_stops_answering_midway() -> None:
    answers = iter([True, False])

    async def refuse(rows: list[str]) -> None:
        raise ConnectionError("database unreachable")

    async def database_answers() -> bool:
        return next(answers)

    writer: BatchedWriter[str] = BatchedWriter(
        refuse, name="test", flush_interval=60, retry_delay=0.01, database_answers=database_answers
    )
    for row in ("a", "b", "c"):
        writer.append(row)
    await writer.flush()
    # The first row failed alone while the database no longer answered: not a refusal.
    assert (writer.refused_rows, writer.failed_flushes, writer._pending) == (0, 1, ["a", "b", "c"])


async def test_close_counts_what_it_could_not_write_as_lost() -> None:
    async def unreachable(rows: list[str]) -> None:
        raise ConnectionError("database unreachable")

    taken: list[str] = []
    writer: BatchedWriter[str] = BatchedWriter(
        unreachable,
        name="test",
        flush_interval=60,
        retry_delay=0.01,
        close_attempts=2,
        on_take=taken.extend,
    )
    writer.append("a")
    writer.append("b")
    await asyncio.wait_for(writer.close(), timeout=10)
    # The flush task's attempt, then the two of close.
    assert (writer.lost_rows, writer.pending, writer.failed_flushes, writer.refused_rows) == (2, 0, 3, 0)
    # Taken by each failed attempt, then once more as lost.
    assert taken == ["a", "b"] * 4


async def test_overflow_is_bounded_counted_and_never_blocks(store: Store, services: Services) -> None:
    tenant_id, (client_id,) = await _clients(services, 1)
    writer = HistoryWriter(store, flush_interval=60, max_pending=4)
    for index in range(7):
        writer.record(_row(tenant_id, client_id, f"o{index}"))
    assert writer.pending == 4 and writer.dropped_rows == 3
    await writer.close()
    assert [row["payload"] for row in await _stored(store)] == ["o0", "o1", "o2", "o3"]


async def test_rows_of_deleted_clients_are_skipped_without_failing_the_batch(
    store: Store, services: Services
) -> None:
    tenant_id, (kept, deleted) = await _clients(services, 2)
    writer = HistoryWriter(store, flush_interval=60)
    writer.record(_row(tenant_id, kept, "a"))
    writer.record(_row(tenant_id, deleted, "gone"))
    writer.record(_row(tenant_id, ids.new_uuid(), "never existed"))
    writer.record(_row(tenant_id, kept, "b"))
    # Deleted after recording, before the flush: the batch must still commit the other rows.
    async with store.write() as connection:
        await connection.execute(client.delete().where(client.c.id == deleted))
    await writer.close()
    assert [(row["client_id"], row["payload"]) for row in await _stored(store)] == [(kept, "a"), (kept, "b")]
    assert writer.skipped_rows == 2 and writer.failed_flushes == 0


async def test_the_mapping_interface_still_records_rows(store: Store, services: Services) -> None:
    tenant_id, (client_id,) = await _clients(services, 1)
    writer = HistoryWriter(store, flush_interval=60)
    created_at = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    writer.append(
        {
            "tenant_id": tenant_id,
            "client_id": client_id,
            "topic": "x",
            "payload": "text",
            "qos": 3,
            "created_at": created_at,
        }
    )
    await writer.flush()
    (row,) = await _stored(store)
    assert (row["topic"], row["payload"], row["qos"], row["type"], row["created_at"]) == (
        "x",
        "text",
        3,
        "pub",
        created_at,
    )


def test_message_ids_are_unique_uuid_shaped_and_ordered() -> None:
    first, second = MessageIds(), MessageIds()
    taken = first.take(3) + first.take(2)
    assert taken == sorted(taken) and len(set(taken)) == 5
    assert all(UUID_SHAPE.match(value) and len(value) == 36 for value in taken)
    # Another generator (another process, or a restart) never repeats an id.
    assert not set(second.take(5)) & set(taken)


@pytest.mark.parametrize("retention_days", [30])
async def test_retention_deletes_old_rows_in_batches(
    store: Store, services: Services, retention_days: int
) -> None:
    tenant_id, (client_id,) = await _clients(services, 1)
    now = datetime.now(UTC)
    writer = HistoryWriter(store, flush_interval=60)
    for index in range(7):
        old = now - timedelta(days=retention_days, minutes=index + 1)
        writer.record(_row(tenant_id, client_id, f"old{index}", created_at=old.timestamp()))
    writer.record(_row(tenant_id, client_id, "recent", created_at=(now - timedelta(days=29)).timestamp()))
    writer.record(_row(tenant_id, client_id, "new"))
    await writer.close()
    retention = HistoryRetention(store, retention_days, batch_size=3, pause=0)
    assert await retention.purge(now) == 7
    assert sorted(row["payload"] for row in await _stored(store)) == ["new", "recent"]
    assert await retention.purge(now) == 0


async def test_retention_runs_periodically_until_stopped(store: Store, services: Services) -> None:
    tenant_id, (client_id,) = await _clients(services, 1)
    writer = HistoryWriter(store, flush_interval=60)
    writer.record(_row(tenant_id, client_id, "old", created_at=time.time() - 2 * 86400))
    await writer.close()
    retention = HistoryRetention(store, 1, interval=0.01)
    retention.start()
    try:
        for _ in range(500):
            if retention.deleted_rows:
                break
            await asyncio.sleep(0.01)
    finally:
        await retention.stop()
    assert retention.deleted_rows == 1
    async with store.read() as connection:
        assert (await connection.execute(select(func.count()).select_from(message))).scalar_one() == 0


async def test_a_backlog_asks_the_producer_to_slow_down_until_it_is_written() -> None:
    written: list[str] = []

    async def write(rows: list[str]) -> None:
        written.extend(rows)

    signals: list[bool] = []
    writer: BatchedWriter[str] = BatchedWriter(
        write, name="test", flush_interval=60, max_batch=4, max_pending=8, on_backlog=signals.append
    )
    for row in "abc":
        writer.append(row)
    assert signals == []
    writer.append("d")  # half of max_pending
    assert signals == [True] and writer.backlogged
    writer.append("e")
    assert signals == [True]  # told once
    await writer._flush_once()  # 1 left: under a quarter of max_pending
    assert signals == [True, False] and not writer.backlogged
    await writer.close()
    assert written == list("abcde") and writer.dropped_rows == 0


async def test_no_backlog_signal_while_the_database_is_unreachable() -> None:
    async def unreachable(rows: list[str]) -> None:
        raise ConnectionError("database unreachable")

    signals: list[bool] = []
    writer: BatchedWriter[str] = BatchedWriter(
        unreachable,
        name="test",
        flush_interval=60,
        max_pending=8,
        retry_delay=0.01,
        on_backlog=signals.append,
    )
    for row in "abcd":
        writer.append(row)
    assert signals == [True]
    # The producer must not be held back for as long as the database is down: the signal is lifted,
    # and rows beyond max_pending are dropped and counted instead.
    await writer._flush_once()
    assert signals == [True, False]
    for row in "efghij":
        writer.append(row)
    assert signals == [True, False] and writer.dropped_rows == 2
    await asyncio.wait_for(writer.close(), timeout=10)
