"""Configuration sync through a real Platform and real device connections (spec §8, D7, S13,
checklist 25 and 26)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from instamsg.domain.clients import ClientType
from instamsg.protocol.payloads import parse_config_report
from instamsg.services.apps import AppService
from instamsg.services.clients import ClientService
from instamsg.services.configs import ConfigService
from instamsg.services.ports import OfflineRegistry
from instamsg.services.tenants import TenantService
from instamsg.store.repositories import configs as config_repository
from instamsg.store.store import Store
from tests.broker.support import Identity, RawClient, connect_bytes
from tests.protocol.test_telemetry import RunningPlatform, eventually, running_platform
from tests.support.devices import parse_publish

PING_DESC = "Keep-alive ping interval in seconds"
C_PING_180 = (
    "{'key' : 'PING_REQ_INTERVAL', 'type' : '1', 'val' : '180', 'desc' : '" + PING_DESC + "'}"
).encode()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[RunningPlatform]:
    # SQLite only: the store and REST tests run the same queries on PostgreSQL too.
    async with running_platform(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'instamsg.db'}") as started:
        yield started


def push_topic(uuid: str) -> str:
    return f"instamsg/clients/{uuid}/config/serverToClient"


async def put_config(running: RunningPlatform, uuid: str, body: Any, *, online: bool = True) -> Any:
    response = await running.http.put(running.client_path(uuid, "config"), json=body, headers=running.auth)
    # 200 once pushed; 202 with sent false when the pushes wait for the next connect (C11).
    assert response.status_code == (200 if online else 202), response.text
    assert response.json()["sent"] is online
    return response.json()


async def reported(running: RunningPlatform, uuid: str, key: str, value: Any) -> Any:
    body = await running.get(uuid, "config")
    return body if body["reported"]["values"].get(key) == value else None


async def raw_c_device(running: RunningPlatform, uuid: str, token: str) -> RawClient:
    """A C-style connection (MQIsdp/3, ClientIdentifier EMPTY, username = UUID) that never PUBACKs."""
    client = await RawClient.open("127.0.0.1", running.mqtt_port)
    client.send(connect_bytes(Identity(uuid, token), level=3, client_id="EMPTY", keep_alive=0))
    assert await client.read_packet(timeout=5) == b"\x20\x02\x00\x00"
    return client


async def unacknowledged(running: RunningPlatform, uuid: str) -> list[str]:
    assert running.platform.store is not None
    async with running.platform.store.read() as connection:
        return (await config_repository.get_config(connection, uuid)).unacknowledged


async def test_checklist_25_push_is_byte_exact_and_pending_until_the_device_echoes(
    running: RunningPlatform,
) -> None:
    uuid, token = await running.create_device()
    device = await running.connect(uuid, token, "c")
    try:
        await device.publish("instamsg/client/config/clientToServer", C_PING_180, 0)
        await eventually(lambda: reported(running, uuid, "PING_REQ_INTERVAL", 180))

        body = await put_config(running, uuid, {"config": {"PING_REQ_INTERVAL": 120}})
        assert body["pending"] == ["PING_REQ_INTERVAL"]
        push = await device.receive(timeout=5)
        assert push.topic == push_topic(uuid)
        assert push.payload == (
            b'{"key": "PING_REQ_INTERVAL", "type": "1", "val": "120", "desc": "' + PING_DESC.encode() + b'"}'
        )
        assert push.qos == 1
        assert (await running.get(uuid, "config"))["pending"] == ["PING_REQ_INTERVAL"]

        # C echoes the push verbatim (spec §8.1); the key is then no longer pending.
        await device.publish("instamsg/client/config/clientToServer", push.payload, 0)
        body = await eventually(lambda: reported(running, uuid, "PING_REQ_INTERVAL", 120))
        assert body["pending"] == []
        assert body["config"] == {"PING_REQ_INTERVAL": 120}
        await device.expect_no_publish(0.3)
    finally:
        await device.close()


async def test_checklist_25_offline_keys_are_pushed_on_connect_until_acknowledged(
    running: RunningPlatform,
) -> None:
    uuid, token = await running.create_device()
    body = await put_config(
        running, uuid, {"config": {"PING_REQ_INTERVAL": 120, "NTP_SERVER": "pool.ntp.org"}}, online=False
    )
    assert body["pending"] == ["NTP_SERVER", "PING_REQ_INTERVAL"]
    assert await unacknowledged(running, uuid) == ["NTP_SERVER", "PING_REQ_INTERVAL"]

    async def connect_and_receive(count: int) -> tuple[RawClient, list[Any]]:
        client = await raw_c_device(running, uuid, token)
        pushes = [parse_publish(await client.read_packet(timeout=5)) for _ in range(count)]
        return client, pushes

    expected = [
        b'{"key": "NTP_SERVER", "type": "0", "val": "pool.ntp.org", "desc": ""}',
        b'{"key": "PING_REQ_INTERVAL", "type": "1", "val": "120", "desc": ""}',
    ]
    # Not acknowledged (this device never PUBACKs): pushed again on every connect, in key order.
    for _ in range(2):
        client, pushes = await connect_and_receive(2)
        assert [push.payload for push in pushes] == expected
        assert {(push.topic, push.qos) for push in pushes} == {(push_topic(uuid), 1)}
        await client.expect_silence(0.3)
        client.close()

    # The PUBACK of one push acknowledges that key only.
    client, pushes = await connect_and_receive(2)
    ping = pushes[1]
    assert ping.packet_id is not None
    client.send(b"\x40\x02" + ping.packet_id.to_bytes(2, "big"))

    async def ping_acknowledged() -> bool:
        return await unacknowledged(running, uuid) == ["NTP_SERVER"]

    await eventually(ping_acknowledged)
    client.close()
    client, pushes = await connect_and_receive(1)
    assert [push.payload for push in pushes] == expected[:1]
    await client.expect_silence(0.3)
    client.close()
    # Still pending for REST until the device reports the values.
    assert (await running.get(uuid, "config"))["pending"] == ["NTP_SERVER", "PING_REQ_INTERVAL"]


async def test_checklist_26_c_and_python_reports_both_update_reported(running: RunningPlatform) -> None:
    c_uuid, c_token = await running.create_device()
    python_uuid, python_token = await running.create_device()
    c_device = await running.connect(c_uuid, c_token, "c")
    python_device = await running.connect(python_uuid, python_token, "python")
    try:
        await c_device.publish("instamsg/client/config/clientToServer", C_PING_180, 0)
        await c_device.publish(
            "instamsg/client/config/clientToServer",
            b"{'key' : 'NTP_SERVER', 'type' : '0', 'val' : 'pool.ntp.org', 'desc' : 'NTP host'}",
            0,
        )
        await python_device.publish(
            f"instamsg/clients/{python_uuid}/config/clientToServer",
            b'{"PING_REQ_INTERVAL": 60, "LOGGING": true, "NAME": "pump", "instamsg_version": "1.0"}',
            1,
        )
        body = await eventually(lambda: reported(running, c_uuid, "NTP_SERVER", "pool.ntp.org"))
        assert body["reported"]["values"] == {"PING_REQ_INTERVAL": 180, "NTP_SERVER": "pool.ntp.org"}
        assert body["reported"]["version"] == 2 and body["version"] == 2
        body = await eventually(lambda: reported(running, python_uuid, "NAME", "pump"))
        assert body["reported"]["values"] == {"PING_REQ_INTERVAL": 60, "LOGGING": True, "NAME": "pump"}
        assert body["desired"]["values"] == {} and body["pending"] == []
        # The C device's description is what later pushes carry.
        await put_config(running, c_uuid, {"NTP_SERVER": "time.example"})
        push = await c_device.receive(timeout=5)
        assert (
            push.payload == b'{"key": "NTP_SERVER", "type": "0", "val": "time.example", "desc": "NTP host"}'
        )
    finally:
        await c_device.close()
        await python_device.close()


async def test_python_device_receives_the_push_as_json(running: RunningPlatform) -> None:
    uuid, token = await running.create_device()
    device = await running.connect(uuid, token, "python")
    try:
        await put_config(running, uuid, {"config": {"DEBUG": True}})
        push = await device.receive(timeout=5)
        assert push.topic == push_topic(uuid)
        assert push.payload == b'{"key": "DEBUG", "type": "1", "val": "1", "desc": ""}'
    finally:
        await device.close()


class _RecordingPushes:
    def __init__(self) -> None:
        self.pushed: list[tuple[str, str, bytes, int]] = []

    def push(self, client_id: str, kind: str, payload: bytes, qos: int) -> bool:
        self.pushed.append((client_id, kind, payload, qos))
        return True

    def disconnect(self, client_id: str, reason: str, after_seconds: float = 0.0) -> None:
        pass


class _RecordingLog:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, str, str]] = []

    def write(
        self, client_id: str, tenant_id: str, level: str, message: str, *, creator: str = "InstaMsg"
    ) -> None:
        self.entries.append((client_id, level, creator, message))


async def test_q10_value_unsafe_for_c_is_pushed_with_a_warn_entry(store: Store) -> None:
    registry = OfflineRegistry()
    app = await AppService(store).create_app("q10")
    tenant = await TenantService(store, registry).create_tenant(
        app.app.id, name="t", max_clients=5, max_messages=5
    )
    made = await ClientService(store, registry).create_client(
        app.app.id, tenant.id, {"type": ClientType.DEVICE.value, "name": "d"}
    )
    pushes, log = _RecordingPushes(), _RecordingLog()
    service = ConfigService(store, pushes, log)
    await service.update_config(app.app.id, tenant.id, made.id, {"config": {"PATH": 'a"b\\c', "OK": "plain"}})
    assert [payload for _, _, payload, _ in pushes.pushed] == [
        b'{"key": "OK", "type": "0", "val": "plain", "desc": ""}',
        b'{"key": "PATH", "type": "0", "val": "a\\"b\\\\c", "desc": ""}',
    ]
    assert {(kind, qos) for _, kind, _, qos in pushes.pushed} == {("config/serverToClient", 1)}
    assert len(log.entries) == 1
    client_id, level, creator, message = log.entries[0]
    assert (client_id, level, creator) == (made.id, "WARN", "InstaMsg") and "PATH" in message

    # A PUBACK of an older value does not acknowledge a newer desired value.
    await service.update_config(app.app.id, tenant.id, made.id, {"OK": "newer"})
    await service.acknowledge(made.id, "OK", "plain")
    async with store.read() as connection:
        assert "OK" in (await config_repository.get_config(connection, made.id)).unacknowledged
    await service.acknowledge(made.id, "OK", "newer")
    async with store.read() as connection:
        assert (await config_repository.get_config(connection, made.id)).unacknowledged == ["PATH"]
    # Reports for a deleted client are dropped, not errors.
    await ClientService(store, registry).delete_client(app.app.id, tenant.id, made.id)
    assert await service.record_report(made.id, parse_config_report('{"A": 1}')) is False


async def test_q10_unsafe_value_reaches_an_online_device_and_the_client_log(running: RunningPlatform) -> None:
    uuid, token = await running.create_device()
    device = await running.connect(uuid, token, "c")
    try:
        await put_config(running, uuid, {"config": {"NTP_SERVER": 'pool"ntp'}})
        push = await device.receive(timeout=5)
        assert push.payload == b'{"key": "NTP_SERVER", "type": "0", "val": "pool\\"ntp", "desc": ""}'

        async def warn_entry() -> Any:
            page = await running.get(uuid, "logs", creator="InstaMsg", level="WARN")
            return [item for item in page["items"] if "NTP_SERVER" in item["message"]]

        (entry,) = await eventually(warn_entry)
        assert entry["creator"] == "InstaMsg" and entry["level"] == "WARN"
    finally:
        await device.close()
