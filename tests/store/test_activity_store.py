"""Client activity storage: the batched writer, the rate-limited client log, hourly activity counters
(spec §2.4.5, §2.4.7, §9.3, §11.4), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from instamsg.rest.dependencies import Services
from instamsg.store.activity import ActivityWriter, StoreClientLog, load_activity_state, sortable_id
from instamsg.store.repositories import activity as activity_repository
from instamsg.store.repositories import traffic as traffic_repository
from instamsg.store.repositories.traffic import ActivityDelta
from instamsg.store.store import Store
from instamsg.store.tables import client, client_device_state, client_log, client_session

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


async def test_warn_entries_are_rate_limited_per_client_and_message_per_minute(
    store: Store, services: Services
) -> None:
    tenant_id, (first, second) = await _clients(services, 2)
    now = [1000.0]
    writer = ActivityWriter(store, flush_interval=60)
    log = StoreClientLog(writer, clock=lambda: now[0])
    log.write(first, tenant_id, "WARN", "publish denied on a/b")
    log.write(first, tenant_id, "WARN", "publish denied on a/b")  # suppressed
    log.write(first, tenant_id, "WARN", "publish denied on a/c")  # another kind
    log.write(second, tenant_id, "WARN", "publish denied on a/b")  # another client
    log.write(first, tenant_id, "INFO", "connect")
    log.write(first, tenant_id, "INFO", "connect")  # INFO is never limited
    log.write(first, tenant_id, "WARN", "line from the device", creator="client")
    log.write(first, tenant_id, "WARN", "line from the device", creator="client")
    now[0] += 59.9
    log.write(first, tenant_id, "WARN", "publish denied on a/b")  # still suppressed
    now[0] += 0.2
    log.write(first, tenant_id, "WARN", "publish denied on a/b")  # a minute later: written
    await writer.close()
    async with store.read() as connection:
        rows = (await connection.execute(select(client_log).order_by(client_log.c.id))).mappings().all()
    assert [(row["client_id"] == first, row["level"], row["message"]) for row in rows] == [
        (True, "WARN", "publish denied on a/b"),
        (True, "WARN", "publish denied on a/c"),
        (False, "WARN", "publish denied on a/b"),
        (True, "INFO", "connect"),
        (True, "INFO", "connect"),
        (True, "WARN", "line from the device"),
        (True, "WARN", "line from the device"),
        (True, "WARN", "publish denied on a/b"),
    ]
    assert log.suppressed == 2
    assert {row["creator"] for row in rows[:5]} == {"InstaMsg"}


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
