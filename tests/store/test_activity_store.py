"""Client activity storage: the batched writer, the rate-limited client log, hourly activity counters
(spec §2.4.5, §2.4.7, §9.3, §11.4), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from sqlalchemy import insert, select

from instamsg.rest.dependencies import Services
from instamsg.store.activity import (
    ActivityWriter,
    StoreClientLog,
    load_activity_state,
    sortable_id,
    warning_kind,
)
from instamsg.store.repositories import activity as activity_repository
from instamsg.store.repositories import traffic as traffic_repository
from instamsg.store.repositories.traffic import ActivityDelta
from instamsg.store.store import Store
from instamsg.store.tables import client, client_device_state, client_log, client_session
from tests.support.stores import unreachable_store

T0 = datetime(2026, 11, 27, 10, 15, 0, tzinfo=UTC)


async def _clients(services: Services, count: int) -> tuple[str, list[str]]:
    app = await services.apps.create_app("activity")
    tenant = await services.tenants.create_tenant(app.app.id, name="t", max_clients=count, max_messages=10)
    ids = []
    for index in range(count):
        created = await services.clients.create_client(
            app.app.id, tenant.id, {"type": "device", "name": f"d{index}"}
        )
        ids.append(created.id)
    return tenant.id, ids


def _session_row(client_id: str, tenant_id: str) -> dict[str, object]:
    return {
        "client_id": client_id,
        "tenant_id": tenant_id,
        "connect_time": T0,
        "disconnect_time": None,
        "transport": "tcp",
        "remote_address": "127.0.0.1:5000",
        "protocol": "MQIsdp/3",
        "profile": "legacy-b",
        "client_identifier": "EMPTY",
        "keep_alive": 60,
        "clean_session": True,
        "disconnect_reason": None,
        "data": None,
    }


async def test_session_update_in_the_same_batch_as_its_insert_is_applied(
    store: Store, services: Services
) -> None:
    tenant_id, (device,) = await _clients(services, 1)
    writer = ActivityWriter(store, flush_interval=60)
    session_id = writer.open_session(_session_row(device, tenant_id))
    writer.update_session(device, session_id, {"data": {"ip_address": "10.0.0.2"}})
    writer.update_session(device, session_id, {"disconnect_time": T0 + timedelta(seconds=5)})
    writer.update_session(device, session_id, {"disconnect_reason": "client_disconnect"})
    await writer.close()
    async with store.read() as connection:
        row = (await connection.execute(select(client_session))).mappings().one()
    assert row["data"] == {"ip_address": "10.0.0.2"}
    assert row["disconnect_time"] == T0 + timedelta(seconds=5)
    assert row["disconnect_reason"] == "client_disconnect"


async def test_session_updates_after_a_flush_reach_the_written_row(store: Store, services: Services) -> None:
    tenant_id, (device,) = await _clients(services, 1)
    writer = ActivityWriter(store, flush_interval=60)
    first = writer.open_session(_session_row(device, tenant_id))
    await writer.flush()
    writer.update_session(device, first, {"disconnect_time": T0, "disconnect_reason": "taken_over"})
    second = writer.open_session(_session_row(device, tenant_id))
    writer.update_session(device, second, {"data": {"network_interface": "GPRS"}})
    await writer.close()
    async with store.read() as connection:
        rows = {row["id"]: row for row in (await connection.execute(select(client_session))).mappings().all()}
    assert rows[first]["disconnect_reason"] == "taken_over"
    assert rows[second]["data"] == {"network_interface": "GPRS"}
    assert rows[second]["disconnect_time"] is None
    assert first < second


async def test_client_and_device_state_updates_touch_only_their_columns(
    store: Store, services: Services
) -> None:
    _, (device,) = await _clients(services, 1)
    async with store.write() as connection:
        # Written by the telemetry writer: must survive the session upsert.
        await connection.execute(insert(client_device_state).values(client_id=device, info={"model": "x"}))
    writer = ActivityWriter(store, flush_interval=60)
    writer.update_client(device, {"last_connect_at": T0, "profile": "legacy-a"})
    writer.set_device_state(device, {"session": {"network_interface": "wifi"}})
    await writer.close()
    async with store.read() as connection:
        state = (await connection.execute(select(client_device_state))).mappings().one()
        stored_client = (
            (await connection.execute(select(client).where(client.c.id == device))).mappings().one()
        )
    assert state["info"] == {"model": "x"}
    assert state["session"] == {"network_interface": "wifi"}
    assert stored_client["last_connect_at"] == T0
    assert stored_client["profile"] == "legacy-a"


async def test_rows_of_deleted_clients_are_skipped_without_failing_the_batch(
    store: Store, services: Services
) -> None:
    tenant_id, (kept, deleted) = await _clients(services, 2)
    writer = ActivityWriter(store, flush_interval=60)
    writer.log(kept, tenant_id, "INFO", "kept line", "client")
    writer.log(deleted, tenant_id, "INFO", "lost line", "client")
    writer.open_session(_session_row(deleted, tenant_id))
    writer.set_device_state(deleted, {"session": {}})
    async with store.write() as connection:
        await connection.execute(client.delete().where(client.c.id == deleted))
    await writer.close()
    async with store.read() as connection:
        logs = (await connection.execute(select(client_log))).mappings().all()
        sessions = (await connection.execute(select(client_session))).mappings().all()
    assert [(row["client_id"], row["message"], row["creator"]) for row in logs] == [
        (kept, "kept line", "client")
    ]
    assert sessions == []
    assert writer.skipped == 3


async def test_spec_9_3_warn_entries_are_rate_limited_per_client_and_kind_per_minute(
    store: Store, services: Services
) -> None:
    tenant_id, (first, second) = await _clients(services, 2)
    now = [1000.0]
    writer = ActivityWriter(store, flush_interval=60)
    log = StoreClientLog(writer, clock=lambda: now[0])
    log.write(first, tenant_id, "WARN", "publish denied on a/b")
    log.write(first, tenant_id, "WARN", "publish denied on a/b")  # suppressed
    log.write(first, tenant_id, "WARN", "publish denied on a/c")  # the same kind: suppressed
    log.write(first, tenant_id, "WARN", "subscribe denied on a/b")  # another kind
    log.write(second, tenant_id, "WARN", "publish denied on a/b")  # another client
    log.write(first, tenant_id, "WARN", "policy x", kind="policy")  # an explicit kind
    log.write(first, tenant_id, "WARN", "policy y", kind="policy")  # suppressed
    log.write(first, tenant_id, "INFO", "connect")
    log.write(first, tenant_id, "INFO", "connect")  # INFO is never limited
    log.write(first, tenant_id, "WARN", "line from the device", creator="client")
    log.write(first, tenant_id, "WARN", "line from the device", creator="client")
    now[0] += 59.9
    log.write(first, tenant_id, "WARN", "publish denied on a/b")  # still suppressed
    now[0] += 0.2
    log.write(first, tenant_id, "WARN", "publish denied on a/d")  # a minute later: written
    await writer.close()
    async with store.read() as connection:
        rows = (await connection.execute(select(client_log).order_by(client_log.c.id))).mappings().all()
    assert [(row["client_id"] == first, row["level"], row["message"]) for row in rows] == [
        (True, "WARN", "publish denied on a/b"),
        (True, "WARN", "subscribe denied on a/b"),
        (False, "WARN", "publish denied on a/b"),
        (True, "WARN", "policy x"),
        (True, "INFO", "connect"),
        (True, "INFO", "connect"),
        (True, "WARN", "line from the device"),
        (True, "WARN", "line from the device"),
        (True, "WARN", "publish denied on a/d"),
    ]
    assert log.suppressed == 4
    assert {row["creator"] for row in rows[:6]} == {"InstaMsg"}


def test_warn_kind_is_the_first_words_without_the_subject() -> None:
    assert warning_kind("publish denied on some/topic") == "publish denied on"
    assert warning_kind("subscribe denied on abc") == "subscribe denied on"
    assert warning_kind("unknown_peer: 9d9d9d9d-0000-4000-8000-000000000004") == "unknown_peer"
    assert warning_kind("connect refused (bad credentials)") == "connect refused"
    assert warning_kind("keep-alive timeout") == "keep-alive timeout"


class _RecordedLines:
    """Stands for the writer: what the client log hands on, without a database."""

    def __init__(self) -> None:
        self.lines: list[tuple[object, ...]] = []

    def log(self, *entry: object) -> None:
        self.lines.append(entry)


def test_warn_limiter_stays_bounded_when_devices_name_ever_new_topics() -> None:
    recorded = _RecordedLines()
    now = [1000.0]
    log = StoreClientLog(cast(ActivityWriter, recorded), clock=lambda: now[0], max_tracked=100)
    for index in range(5000):
        log.write("denied-client", "t", "WARN", f"publish denied on topic/{index}")
    assert len(recorded.lines) == 1  # one per client and kind per minute
    assert log.suppressed == 4999
    for index in range(5000):
        log.write(f"client-{index}", "t", "WARN", f"subscribe denied on filter/{index}")
    assert log.tracked == 100  # the pairs warned longest ago are forgotten first
    assert len(recorded.lines) == 5001
    log.write("client-4999", "t", "WARN", "subscribe denied on filter/again")
    assert len(recorded.lines) == 5001  # a tracked pair is still limited


# ---- device text and refused rows (PostgreSQL refuses NUL in text) ---------------------------------


async def test_device_text_with_nul_is_stored_with_u_fffd_and_blocks_nobody(
    store: Store, services: Services
) -> None:
    tenant_id, (talker, innocent) = await _clients(services, 2)
    writer = ActivityWriter(store, flush_interval=0.01, retry_delay=0.01)
    StoreClientLog(writer).write(talker, tenant_id, "INFO", "hello\x00world", creator="client")
    writer.log(innocent, tenant_id, "INFO", "innocent line", "client")
    session_id = writer.open_session({**_session_row(talker, tenant_id), "client_identifier": "id\x00"})
    await writer.flush()
    writer.update_session(talker, session_id, {"data": {"ssid\x00": "net\x00work"}})
    writer.set_device_state(talker, {"session": {"imei": "1\x002"}})
    await asyncio.wait_for(writer.close(), timeout=10)
    async with store.read() as connection:
        logs = (await connection.execute(select(client_log).order_by(client_log.c.id))).mappings().all()
        session = (await connection.execute(select(client_session))).mappings().one()
        state = (await connection.execute(select(client_device_state))).mappings().one()
    assert [row["message"] for row in logs] == ["hello\ufffdworld", "innocent line"]
    assert session["client_identifier"] == "id\ufffd"
    assert session["data"] == {"ssid\ufffd": "net\ufffdwork"}
    assert state["session"] == {"imei": "1\ufffd2"}
    assert (writer.failed_flushes, writer.refused) == (0, 0)


async def test_a_refused_operation_is_dropped_alone_and_close_returns(
    store: Store, services: Services
) -> None:
    tenant_id, (first, second) = await _clients(services, 2)
    writer = ActivityWriter(store, flush_interval=60, retry_delay=0.01)
    writer.log(first, tenant_id, "INFO", "before", "client")
    # A NOT NULL column without a value: every database refuses this row, batch after batch.
    writer.open_session({**_session_row(second, tenant_id), "connect_time": None})
    writer.log(second, tenant_id, "INFO", "after", "client")
    await asyncio.wait_for(writer.close(), timeout=10)
    async with store.read() as connection:
        logs = (await connection.execute(select(client_log).order_by(client_log.c.id))).mappings().all()
        sessions = (await connection.execute(select(client_session))).mappings().all()
    assert [row["message"] for row in logs] == ["before", "after"]
    assert sessions == []
    assert (writer.refused, writer.pending, writer.failed_flushes) == (1, 0, 1)


async def test_close_gives_up_after_its_attempts_while_the_database_is_down(tmp_path: Path) -> None:
    async with unreachable_store(tmp_path) as unreachable:
        writer = ActivityWriter(unreachable, flush_interval=0.01, retry_delay=0.01, close_attempts=2)
        writer.log("c", "t", "INFO", "never stored")
        writer.update_client("c", {"last_connect_at": T0})
        await asyncio.wait_for(writer.close(), timeout=10)
    assert (writer.lost, writer.pending) == (2, 0)


async def test_a_flush_writes_at_most_max_batch_operations_per_transaction(
    store: Store, services: Services
) -> None:
    tenant_id, (device,) = await _clients(services, 1)
    writer = ActivityWriter(store, flush_interval=60, max_batch=2)
    for index in range(5):
        writer.log(device, tenant_id, "INFO", f"line {index}", "client")
    session_id = writer.open_session(_session_row(device, tenant_id))
    writer.update_session(device, session_id, {"disconnect_reason": "client_disconnect"})
    await writer.flush()
    async with store.read() as connection:
        logs = (await connection.execute(select(client_log).order_by(client_log.c.id))).mappings().all()
        session = (await connection.execute(select(client_session))).mappings().one()
    assert [row["message"] for row in logs] == [f"line {index}" for index in range(5)]
    assert session["disconnect_reason"] == "client_disconnect"
    assert (writer.flushes, writer.pending) == (3, 0)
    await writer.close()


def test_sortable_ids_sort_in_creation_order() -> None:
    ids = [sortable_id() for _ in range(1000)]
    assert ids == sorted(ids)
    assert {len(value) for value in ids} == {36}


async def test_hourly_activity_counters_add_up(store: Store, services: Services) -> None:
    _, (device,) = await _clients(services, 1)
    hour = T0.replace(minute=0)
    async with store.write() as connection:
        await traffic_repository.add_hourly_traffic(
            connection, hour, [traffic_repository.TrafficDelta(device, 3, 30, 4, 40)]
        )
        await traffic_repository.add_hourly_activity(
            connection,
            [
                ActivityDelta(device, hour, (1, 2, 3, 4, 5, 6)),
                ActivityDelta(device, hour + timedelta(hours=1), (0, 0, 1, 0, 0, 0)),
                ActivityDelta("00000000-0000-4000-8000-000000000000", hour, (1, 1, 1, 1, 1, 1)),
            ],
        )
        await traffic_repository.add_hourly_activity(
            connection, [ActivityDelta(device, hour, (1, 1, 1, 1, 1, 1))]
        )
    async with store.read() as connection:
        rows = await traffic_repository.hourly_rows(connection, device, hour, hour + timedelta(hours=2))
    by_hour = {row["hour_start"]: row for row in rows}
    first = by_hour[hour]
    assert (first["messages_in"], first["bytes_in"], first["messages_out"], first["bytes_out"]) == (
        3,
        30,
        4,
        40,
    )
    assert tuple(first[name] for name in traffic_repository.ACTIVITY_COUNTERS) == (2, 3, 4, 5, 6, 7)
    assert by_hour[hour + timedelta(hours=1)]["connects"] == 1


async def test_start_closes_stale_sessions_and_loads_running_logging_requests(
    store: Store, services: Services
) -> None:
    tenant_id, (logging_on, logging_over) = await _clients(services, 2)
    now = datetime.now(UTC)
    async with store.write() as connection:
        await activity_repository.insert_sessions(
            connection, [{**_session_row(logging_on, tenant_id), "id": "s-open"}]
        )
        await activity_repository.upsert_device_state(
            connection,
            logging_on,
            {"server_logging_until": now + timedelta(minutes=5), "server_logging_watcher": "app-1"},
        )
        await activity_repository.upsert_device_state(
            connection,
            logging_over,
            {"server_logging_until": now - timedelta(minutes=5), "server_logging_watcher": "app-1"},
        )
    requests = await load_activity_state(store)
    assert [(client_id, watcher) for client_id, _, watcher in requests] == [(logging_on, "app-1")]
    async with store.read() as connection:
        row = (await connection.execute(select(client_session))).mappings().one()
    assert row["disconnect_reason"] == "server_shutdown"
    assert row["disconnect_time"] is not None
