"""The batched telemetry writer and the config repository on SQLite and PostgreSQL (spec §8, §11.4)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from instamsg.domain.clock import utc_now
from instamsg.protocol.telemetry import detect_library, network_log_row
from instamsg.rest.dependencies import Services
from instamsg.store.repositories import configs as config_repository
from instamsg.store.repositories import telemetry as telemetry_repository
from instamsg.store.repositories.telemetry import NetworkLogFilters
from instamsg.store.store import Store
from instamsg.store.tables import client_device_state
from instamsg.store.telemetry import ConnectionFacts, TelemetryWriter
from tests.support.stores import unreachable_store

PYTHON_FACTS = ConnectionFacts("legacy-a", "mqtt", "cbf7d550-7204-11e4-a2ad", "info", False)
C_FACTS = ConnectionFacts("legacy-b", "mqtt", "EMPTY", "metadata", True)


async def _client(services: Services) -> tuple[str, str, str]:
    created = await services.apps.create_app("telemetry-store")
    tenant = await services.tenants.create_tenant(created.app.id, name="t", max_clients=10, max_messages=10)
    made = await services.clients.create_client(created.app.id, tenant.id, {"type": "device", "name": "d"})
    return created.app.id, tenant.id, made.id


async def test_flush_writes_network_rows_and_latest_network(store: Store, services: Services) -> None:
    _, tenant_id, client_id = await _client(services)
    writer = TelemetryWriter(store, detect_library=detect_library, flush_interval=0.01)
    now = utc_now()
    for offset, signal in ((0, -71), (1, -60)):
        report = {"antenna_status": "ok", "signal_strength": signal, "mac_id": "AA:BB:CC:00:11:22"}
        report["mac_id_normalised"] = "aabbcc001122"
        writer.append_network(
            network_log_row(client_id, tenant_id, "t", report, now + timedelta(seconds=offset))
        )
    await writer.close()
    async with store.read() as connection:
        rows = await telemetry_repository.list_network_logs(
            connection,
            client_id,
            start=None,
            end=None,
            filters=NetworkLogFilters(mac_id="aabbcc001122"),
            descending=True,
            limit=10,
            after=None,
        )
        state = await telemetry_repository.get_device_state(connection, client_id)
    assert [row["signal_strength"] for row in rows] == [-60, -71]
    assert rows[0]["data"] == {"antenna_status": "ok", "signal_strength": -60, "mac_id": "AA:BB:CC:00:11:22"}
    assert state is not None and state["network"]["signal_strength"] == -60


async def test_info_reports_merge_in_order_and_keep_other_columns(store: Store, services: Services) -> None:
    _, _, client_id = await _client(services)
    writer = TelemetryWriter(store, detect_library=detect_library, flush_interval=0.01)
    writer.append_info(client_id, {"model": "m1", "imei": "1"}, utc_now(), C_FACTS)
    await writer.flush()
    # Another feature owns the session column: our upserts must leave it alone.
    async with store.write() as connection:
        await connection.execute(
            update(client_device_state)
            .where(client_device_state.c.client_id == client_id)
            .values(session={"ip_address": "10.0.0.1"})
        )
    writer.append_info(client_id, {"model": "m2", "client_version": "17.6.0"}, utc_now(), C_FACTS)
    await writer.close()
    async with store.read() as connection:
        state = await telemetry_repository.get_device_state(connection, client_id)
    assert state is not None
    assert state["info"] == {"model": "m2", "imei": "1", "client_version": "17.6.0"}
    assert state["session"] == {"ip_address": "10.0.0.1"}
    assert (state["library_name"], state["library_version"]) == ("c", "17.6.0")
    assert state["client_identifier"] == "EMPTY"
    assert state["info_updated_at"] is not None


async def test_entries_of_deleted_clients_are_skipped(store: Store, services: Services) -> None:
    app_id, tenant_id, client_id = await _client(services)
    _, _, kept_id = await _client(services)
    writer = TelemetryWriter(store, detect_library=detect_library, flush_interval=0.01)
    await services.clients.delete_client(app_id, tenant_id, client_id)
    writer.append_info(client_id, {"model": "gone"}, utc_now(), PYTHON_FACTS)
    writer.append_network(network_log_row(client_id, tenant_id, "t", {"signal_strength": 1}, utc_now()))
    writer.append_info(kept_id, {"programming_language": "python3"}, utc_now(), PYTHON_FACTS)
    await writer.close()
    assert writer.skipped_entries == 2 and writer.failed_flushes == 0
    async with store.read() as connection:
        assert await telemetry_repository.get_device_state(connection, client_id) is None
        kept = await telemetry_repository.get_device_state(connection, kept_id)
    assert kept is not None and kept["library_name"] == "python"


async def test_an_entry_the_database_refuses_does_not_block_the_others(
    store: Store, services: Services
) -> None:
    _, tenant_id, client_id = await _client(services)
    writer = TelemetryWriter(store, flush_interval=0.01)
    writer.append_network(network_log_row(client_id, tenant_id, "t", {"imei": "1"}, utc_now()))
    refused = network_log_row(client_id, tenant_id, "t", {"imei": "2"}, utc_now())
    refused["source_topic"] = None  # NOT NULL: refused by every database
    writer.append_network(refused)
    writer.append_network(network_log_row(client_id, tenant_id, "t", {"imei": "3"}, utc_now()))
    await writer.close()
    assert (writer.failed_flushes, writer.dropped_entries, writer.pending) == (1, 1, 0)
    async with store.read() as connection:
        rows = await telemetry_repository.list_network_logs(
            connection,
            client_id,
            start=None,
            end=None,
            filters=NetworkLogFilters(),
            descending=False,
            limit=10,
            after=None,
        )
    assert [row["imei"] for row in rows] == ["1", "3"]


async def test_close_gives_up_after_its_attempts_while_the_database_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with unreachable_store(tmp_path) as unreachable:
        writer = TelemetryWriter(unreachable, flush_interval=0.01, retry_delay=0.01, close_attempts=2)
        writer.append_network(network_log_row("c", "t", "t", {"imei": "1"}, utc_now()))
        writer.append_info("c", {"model": "x"}, utc_now(), C_FACTS)
        await asyncio.wait_for(writer.close(), timeout=10)
    assert (writer.lost_entries, writer.pending) == (2, 0)
    assert any("telemetry_entries_lost entries=2" in record.getMessage() for record in caplog.records)


async def test_a_flush_writes_at_most_max_batch_entries_per_transaction(
    store: Store, services: Services
) -> None:
    _, tenant_id, client_id = await _client(services)
    writer = TelemetryWriter(store, flush_interval=60, max_batch=2)
    for imei in "12345":
        writer.append_network(network_log_row(client_id, tenant_id, "t", {"imei": imei}, utc_now()))
    await writer.flush()
    assert (writer.flushes, writer.pending) == (3, 0)
    await writer.close()


async def test_device_text_with_nul_is_stored(store: Store, services: Services) -> None:
    _, tenant_id, client_id = await _client(services)
    writer = TelemetryWriter(store, flush_interval=0.01)
    report = {"imei": "35\x00", "network_interface": "eth\x00", "note": "a\x00b"}
    writer.append_network(network_log_row(client_id, tenant_id, "t", report, utc_now()))
    await writer.close()
    assert writer.failed_flushes == 0
    async with store.read() as connection:
        (row,) = await telemetry_repository.list_network_logs(
            connection,
            client_id,
            start=None,
            end=None,
            filters=NetworkLogFilters(),
            descending=False,
            limit=10,
            after=None,
        )
    assert (row["imei"], row["network_interface"]) == ("35\ufffd", "eth\ufffd")
    assert row["data"]["note"] == "a\x00b"


async def test_flush_runs_by_itself_after_the_interval(store: Store, services: Services) -> None:
    _, tenant_id, client_id = await _client(services)
    writer = TelemetryWriter(store, flush_interval=0.01)
    writer.append_network(network_log_row(client_id, tenant_id, "t", {"imei": "356"}, utc_now()))
    async with asyncio.timeout(10):
        while writer.flushes == 0:
            await asyncio.sleep(0.01)
    async with store.read() as connection:
        rows = await telemetry_repository.list_network_logs(
            connection,
            client_id,
            start=None,
            end=None,
            filters=NetworkLogFilters(imei="356"),
            descending=False,
            limit=10,
            after=None,
        )
    assert len(rows) == 1
    await writer.close()


async def test_config_row_is_created_once_under_concurrent_first_writes(
    store: Store, services: Services
) -> None:
    _, _, client_id = await _client(services)

    async def bump(key: str) -> None:
        async with store.write() as connection:
            state = await config_repository.lock_config(connection, client_id)
            state.desired[key] = 1
            state.version += 1
            await config_repository.save_config(connection, state)

    await asyncio.gather(*(bump(f"K{index}") for index in range(5)))
    async with store.read() as connection:
        state = await config_repository.get_config(connection, client_id)
    assert state.version == 5
    assert sorted(state.desired) == ["K0", "K1", "K2", "K3", "K4"]


def test_library_detection_rules() -> None:
    def detect(info: dict[str, object], facts: ConnectionFacts, previous: str | None = None) -> str:
        return detect_library(dict(info), facts, previous)[0]

    java_info = ConnectionFacts("legacy-b", "mqtt", "EMPTY", "info", True)
    telit = ConnectionFacts("legacy-b", "mqtt", "356938035643809", "info", False)
    js = ConnectionFacts("legacy-a", "ws", "cbf7d550-7204-11e4-a2ad", "info", False)
    standard = ConnectionFacts("standard", "mqtt", "anything", "info", False)
    assert detect({}, java_info) == "java"
    assert detect({}, C_FACTS) == "c"
    assert detect({}, C_FACTS, previous="java") == "java"
    assert detect({}, telit) == "telit"
    assert detect({}, js) == "js"
    assert detect({}, PYTHON_FACTS) == "python"
    assert detect({}, standard) == "unknown"
    assert detect({"programming_language": "python3"}, standard) == "python"
    assert detect({"programming_language": "java"}, C_FACTS) == "java"
    assert detect_library({"instamsg_version": "1.1.2", "client_version": "x"}, PYTHON_FACTS, None) == (
        "python",
        "1.1.2",
    )
