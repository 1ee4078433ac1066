"""Client activity against a real platform (broker + REST + SQLite): session records and their
disconnect reasons, client logs from the server and from devices, remote logging, metrics
(spec §2.4.5, §2.4.7, §3.2, §4.4, §5.1, §9, §11.4, §14 S16, §15 item 27)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

import instamsg.broker
from instamsg.app import Platform
from instamsg.protocol.activity import ONLINE_SECONDS, ActivityMeters, disconnect_reason
from instamsg.services.apps import AppService
from instamsg.services.clients import ClientService
from instamsg.services.ports import OfflineRegistry
from instamsg.services.tenants import TenantService
from instamsg.settings import Settings
from instamsg.store.store import Store
from tests.broker.support import Identity, RawClient, connect_bytes
from tests.support.devices import LegacyDevice, publish_packet, remaining_length

T = TypeVar("T")
WAIT = 10.0
NO_SUCH_CLIENT = "00000000-0000-4000-8000-000000000000"


@dataclass
class World:
    platform: Platform
    http: httpx.AsyncClient
    auth: dict[str, str]
    app_id: str
    tenant_id: str
    device: Identity
    peer: Identity

    @property
    def mqtt_port(self) -> int:
        port = self.platform.ports["mqtt"]
        assert port is not None
        return port

    def path(self, suffix: str, identity: Identity | None = None) -> str:
        uuid = (identity or self.device).uuid
        return f"/api/v1/tenants/{self.tenant_id}/clients/{uuid}/{suffix}"

    async def get(self, suffix: str, identity: Identity | None = None, **params: Any) -> Any:
        response = await self.http.get(self.path(suffix, identity), params=params, headers=self.auth)
        assert response.status_code == 200, response.text
        return response.json()

    async def device_connect(self, identity: Identity | None = None, **options: Any) -> LegacyDevice:
        identity = identity or self.device
        options.setdefault("dialect", "java")
        return await LegacyDevice.connect(
            "127.0.0.1", self.mqtt_port, uuid=identity.uuid, token=identity.token, **options
        )


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = WAIT) -> T:
    """Poll until `probe` returns something truthy (bounded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = Settings(
        data_dir=tmp_path,
        host="127.0.0.1",
        http_port=0,
        mqtt_port=0,
        mqtts_port=None,
        ws_port=None,
        wss_port=None,
        activity_flush_interval_seconds=0.02,
        meter_flush_interval_seconds=0.05,
        legacy_push_delay_seconds=0,
        legacy_push_spacing_seconds=0,
        shutdown_grace_seconds=1,
    )
    store = Store.from_url(settings.resolved_database_url())
    await store.upgrade()
    registry = OfflineRegistry()
    apps = AppService(store)
    created_app = await apps.create_app("activity")
    tenant = await TenantService(store, registry).create_tenant(
        created_app.app.id, name="t", max_clients=10, max_messages=1000
    )
    clients = ClientService(store, registry)
    peer = await clients.create_client(created_app.app.id, tenant.id, {"type": "device", "name": "peer"})
    device = await clients.create_client(
        created_app.app.id,
        tenant.id,
        {
            "type": "device",
            "name": "pump",
            "pub_topics": ["app/#", peer.id, NO_SUCH_CLIENT],
            "sub_topics": ["app/#"],
        },
    )
    await store.close()

    platform = Platform(settings)
    await platform.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{platform.ports['http']}") as http:
            token = await http.post(
                "/oauth2/token?grant_type=client_credentials",
                auth=(created_app.app.client_key, created_app.client_secret),
            )
            assert token.status_code == 200, token.text
            yield World(
                platform,
                http,
                {"Authorization": f"Bearer {token.json()['access_token']}"},
                created_app.app.id,
                tenant.id,
                Identity(device.id, device.auth_token),
                Identity(peer.id, peer.auth_token),
            )
    finally:
        await platform.stop()


async def finished_sessions(
    world: World, count: int, identity: Identity | None = None
) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = (await world.get("sessions", identity, sort_order="asc"))["items"]
        done = [item for item in items if item["disconnect_time"] is not None]
        return items if len(done) >= count else None

    return await eventually(probe)


async def logs(world: World, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await world.get("logs", sort_order="asc", **params))["items"]
    return items


async def test_connect_and_disconnect_record_a_session_and_log_entries(world: World) -> None:
    device = await world.device_connect()
    await device.close(disconnect=True)
    (session,) = await finished_sessions(world, 1)
    assert session["transport"] == "tcp"
    assert session["protocol"] == "MQIsdp/3"
    assert session["profile"] == "legacy-b"
    assert session["client_identifier"] == "EMPTY"  # raw, never keyed on (§4.4)
    assert session["keep_alive"] == 60
    assert session["clean_session"] is True
    assert session["remote_address"].startswith("127.0.0.1:")
    assert session["disconnect_reason"] == "client_disconnect"
    entries = await eventually(lambda: logs(world, creator="InstaMsg"))
    assert [(entry["level"], entry["message"]) for entry in entries] == [
        ("INFO", f"connect (transport tcp, profile legacy-b, remote address {session['remote_address']})"),
        ("INFO", "disconnect (client_disconnect)"),
    ]
    client = (await world.http.get(world.path("")[:-1], headers=world.auth)).json()
    assert client["profile"] == "legacy-b"
    assert client["last_connect_at"] == session["connect_time"]
    assert client["last_disconnect_at"] == session["disconnect_time"]


async def test_dropped_socket_is_connection_lost_and_a_second_connect_takes_over(world: World) -> None:
    dropped = await world.device_connect()
    await dropped.close()
    await finished_sessions(world, 1)
    first = await world.device_connect(dialect="python", startup=False)
    second = await world.device_connect()
    await first.wait_closed()
    await second.close(disconnect=True)
    sessions = await finished_sessions(world, 3)
    assert [(item["profile"], item["disconnect_reason"]) for item in sessions] == [
        ("legacy-b", "connection_lost"),
        ("legacy-a", "taken_over"),
        ("legacy-b", "client_disconnect"),
    ]
    assert sessions[1]["client_identifier"] == world.device.uuid[:23]


async def test_keepalive_timeout_closes_the_session_with_a_warning(world: World) -> None:
    client = await RawClient.open("127.0.0.1", world.mqtt_port)
    connack = await client.connect(world.device, level=4, keep_alive=1, client_id="standard-1")
    assert connack == b"\x20\x02\x00\x00"
    await client.expect_closed(timeout=WAIT)  # 1.5 x keep-alive of silence
    (session,) = await finished_sessions(world, 1)
    assert (session["protocol"], session["profile"], session["keep_alive"]) == ("MQTT/4", "standard", 1)
    assert session["client_identifier"] == "standard-1"
    assert session["disconnect_reason"] == "keepalive_timeout"
    entries = await eventually(lambda: logs(world, level="WARN"))
    assert [entry["message"] for entry in entries] == ["keep-alive timeout"]


async def test_protocol_violation_is_an_error_entry_and_a_metric(world: World) -> None:
    client = await RawClient.open("127.0.0.1", world.mqtt_port)
    await client.connect(world.device, level=4, client_id="standard-2")
    client.send(connect_bytes(world.device, level=4))  # a second CONNECT (MQTT-3.1.0-2)
    await client.expect_closed(timeout=WAIT)
    client.close()
    (session,) = await finished_sessions(world, 1)
    assert session["disconnect_reason"] == "protocol_error"
    entries = await eventually(lambda: logs(world, level="ERROR"))
    assert [(entry["creator"], entry["message"]) for entry in entries] == [
        ("InstaMsg", "malformed packet")  # the codec refuses a second CONNECT
    ]

    async def errors_counted() -> dict[str, Any] | None:
        totals: dict[str, Any] = (await world.get("metrics"))["totals"]
        return totals if totals["errors"] else None

    totals = await eventually(errors_counted)
    assert (totals["errors"], totals["connects"], totals["disconnects"]) == (1, 1, 1)


async def test_checklist_27_device_log_lines_notifications_and_session_payloads(world: World) -> None:
    device = await world.device_connect()
    uuid = world.device.uuid
    await device.publish(
        f"instamsg/clients/{uuid}/logs", b"[2026-11-27 10:00:00,123] WARNING in main:12: low battery\r\n", 0
    )
    await device.publish(f"instamsg/clients/{uuid}/logs", b"plain C line\r\n", 0)
    # An interior NUL (PostgreSQL refuses it in text) is stored as U+FFFD.
    await device.publish(f"instamsg/clients/{uuid}/logs", b"ERROR a\x00b", 0)
    # Q20: a line on another client's topic is still the publisher's.
    await device.publish(f"instamsg/clients/{world.peer.uuid}/logs", b"CRITICAL disk full", 0)
    await device.publish("instamsg/client/notifications", b"SECRET RECEIVED", 0)
    await device.publish(
        "instamsg/client/session",
        b"{'method': 'wifi', 'ip_address': '10.0.0.9', 'antina_status': 1, 'signal_strength': '-71'}",
        0,
    )

    async def four_lines() -> list[dict[str, Any]] | None:
        found = await logs(world)
        return found if len([entry for entry in found if entry["creator"] == "client"]) == 4 else None

    entries = await eventually(four_lines)
    assert [(entry["level"], entry["message"]) for entry in entries if entry["creator"] == "client"] == [
        ("WARN", "[2026-11-27 10:00:00,123] WARNING in main:12: low battery"),
        ("INFO", "plain C line"),
        ("ERROR", "ERROR a\ufffdb"),
        ("FATAL", "CRITICAL disk full"),
    ]
    assert ("INFO", "SECRET RECEIVED") in [
        (entry["level"], entry["message"]) for entry in entries if entry["creator"] == "InstaMsg"
    ]
    assert (await world.get("logs", world.peer))["items"] == []

    async def session_data() -> dict[str, Any] | None:
        items = (await world.get("sessions"))["items"]
        data: dict[str, Any] | None = items[0]["data"] if items else None
        return data

    data = await eventually(session_data)
    assert data["network_interface"] == "wifi"
    assert data["antenna_status"] == 1
    assert data["signal_strength"] == -71
    assert data["ip_address"] == "10.0.0.9"
    await device.close(disconnect=True)


async def test_s16_server_logging_is_sent_now_and_on_every_reconnect(world: World) -> None:
    device = await world.device_connect()
    expected = f'{{"client_id": "{world.app_id}", "logging": "1"}}'.encode()
    response = await world.http.put(
        world.path("server_logging"), json={"enabled": True, "duration_seconds": 300}, headers=world.auth
    )
    assert response.status_code == 200, response.text
    assert response.json()["enabled"] is True
    message = await device.receive(timeout=WAIT)
    assert (message.topic, message.payload, message.qos) == (
        f"instamsg/clients/{world.device.uuid}/enableServerLogging",
        expected,
        0,
    )
    await device.close(disconnect=True)

    again = await world.device_connect()
    message = await again.receive(timeout=WAIT)
    assert (message.payload, message.qos) == (expected, 0)

    response = await world.http.put(world.path("server_logging"), json={"enabled": False}, headers=world.auth)
    assert response.json() == {"enabled": False, "until": None}
    message = await again.receive(timeout=WAIT)
    assert message.payload == f'{{"client_id": "{world.app_id}", "logging": "0"}}'.encode()
    await again.close(disconnect=True)

    quiet = await world.device_connect()
    await quiet.expect_no_publish(0.3)
    await quiet.close(disconnect=True)


async def test_server_logging_reaches_a_standard_client_when_it_subscribes(world: World) -> None:
    response = await world.http.put(
        world.path("server_logging"), json={"enabled": True, "duration_seconds": 300}, headers=world.auth
    )
    assert response.status_code == 200
    client = await RawClient.open("127.0.0.1", world.mqtt_port)
    await client.connect(world.device, level=4, client_id="standard-3")
    topic = f"instamsg/clients/{world.device.uuid}/enableServerLogging"
    raw_topic = topic.encode()
    subscribe = (
        b"\x82" + bytes([2 + 2 + len(raw_topic) + 1]) + b"\x00\x01" + len(raw_topic).to_bytes(2, "big")
    )
    client.send(subscribe + raw_topic + b"\x00")
    assert await client.read_packet(WAIT) == b"\x90\x03\x00\x01\x00"
    expected = f'{{"client_id": "{world.app_id}", "logging": "1"}}'.encode()
    body = len(raw_topic).to_bytes(2, "big") + raw_topic + expected
    try:
        assert await client.read_packet(WAIT) == b"\x30" + remaining_length(len(body)) + body
    finally:
        client.close()


async def test_metrics_count_connects_disconnects_online_time_and_p2p(world: World) -> None:
    sender = await world.device_connect()
    receiver = await world.device_connect(world.peer)
    await sender.publish(world.peer.uuid, b"hello peer", 1)
    delivered = await receiver.receive(timeout=WAIT)
    assert delivered.payload.endswith(b"hello peer") or b"hello peer" in delivered.payload
    await sender.publish("app/temperature", b"21.5", 0)
    await sender.close(disconnect=True)
    await receiver.close(disconnect=True)
    again = await world.device_connect()
    await again.close()
    sessions = await finished_sessions(world, 2)

    async def settled() -> dict[str, Any] | None:
        totals: dict[str, Any] = (await world.get("metrics"))["totals"]
        return totals if totals["disconnects"] == 2 else None

    totals = await eventually(settled)
    assert totals["connects"] == 2
    assert totals["disconnects"] == 2
    assert totals["online_seconds"] == sum(session["duration_seconds"] for session in sessions)
    assert totals["p2p_sent"] == 1
    assert totals["messages_sent"] == 2
    assert totals["errors"] == 0

    async def peer_settled() -> dict[str, Any] | None:
        peer_totals: dict[str, Any] = (await world.get("metrics", world.peer))["totals"]
        return peer_totals if peer_totals["disconnects"] == 1 else None

    peer_totals = await eventually(peer_settled)
    assert (peer_totals["p2p_received"], peer_totals["messages_received"], peer_totals["connects"]) == (
        1,
        1,
        1,
    )
    day = await world.get("metrics", interval="day")
    assert len(day["buckets"]) == 24
    assert day["buckets"][-1]["connects"] == 2


async def test_denied_publish_and_subscribe_are_rate_limited_warnings(world: World) -> None:
    device = await world.device_connect()
    for _ in range(3):
        await device.publish("not/allowed", b"x", 1)
    device.send_raw(publish_packet("other/denied", b"y", 0))
    await device.subscribe("secret/#", 1)
    await device.publish(NO_SUCH_CLIENT, b"to nobody", 1)

    async def three_warnings() -> list[dict[str, Any]] | None:
        found = await logs(world, level="WARN")
        return found if len(found) >= 3 else None

    entries = await eventually(three_warnings)
    await device.expect_no_publish(0.2)
    entries = await logs(world, level="WARN")
    # One per client and kind per minute (§9.3): the second denied topic is the same kind.
    assert [entry["message"] for entry in entries] == [
        "publish denied on not/allowed",
        "subscribe denied on secret/#",
        f"unknown_peer: {NO_SUCH_CLIENT}",
    ]
    await device.close(disconnect=True)


async def test_refused_connect_of_a_known_client_is_a_warning(world: World) -> None:
    refused = await world.device_connect(Identity(world.device.uuid, "0" * 32), require_accept=False)
    assert refused.connack == b"\x20\x02\x00\x04"
    await refused.close()
    entries = await eventually(lambda: logs(world, level="WARN"))
    assert [(entry["creator"], entry["message"]) for entry in entries] == [
        ("InstaMsg", "connect refused (bad_credentials)")
    ]
    assert (await world.get("sessions"))["items"] == []


async def test_media_offers_are_logged_at_debug_answered_and_not_forwarded(world: World) -> None:
    watcher = await world.device_connect(world.peer)
    device = await world.device_connect()
    offer = b"{'to': 'x', 'from': 'y', 'sdp_offer': 'v=0', 'protocol': 'rtp', 'type': '7', 'stream_id': 42}"
    await device.publish(f"instamsg/clients/{world.device.uuid}/media", offer, 1)
    answer = await device.receive(timeout=WAIT)
    assert (answer.topic, answer.payload) == (
        f"instamsg/clients/{world.device.uuid}/mediareply",
        b'{"stream_id": "42", "sdp_answer": ""}',
    )
    entries = await eventually(lambda: logs(world, level="DEBUG"))
    assert entries[0]["message"] == "media: " + offer.decode()
    await watcher.expect_no_publish(0.2)
    await device.close(disconnect=True)
    await watcher.close(disconnect=True)


def test_every_broker_protocol_error_maps_to_protocol_error() -> None:
    """The broker's `protocol_error("<reason>")` calls, read from its source, are all mapped."""
    broker = Path(instamsg.broker.__file__).parent
    reasons = {
        match.group(1)
        for source in broker.rglob("*.py")
        for match in re.finditer(r'protocol_error\(\s*"([a-z_0-9]+)"', source.read_text())
    }
    assert len(reasons) >= 10
    assert {reason: disconnect_reason(reason) for reason in reasons} == dict.fromkeys(
        reasons, "protocol_error"
    )
    assert disconnect_reason("malformed_packet") == "protocol_error"
    for server_side in (
        "client_blocked",
        "client_removed",
        "tenant_inactive",
        "tenant_removed",
        "auth_token_reset",
    ):
        assert disconnect_reason(server_side) == "kicked"
    for same in (
        "client_disconnect",
        "connection_lost",
        "keepalive_timeout",
        "taken_over",
        "server_shutdown",
    ):
        assert disconnect_reason(same) == same


def test_online_seconds_are_spread_over_the_hours_a_connection_covered() -> None:
    meters = ActivityMeters()
    start = datetime(2026, 11, 27, 9, 59, 30, 400000, tzinfo=UTC)
    end = start + timedelta(hours=1, seconds=90)  # 29.6 s in 09:00, 3600 s in 10:00, 60.4 s in 11:00
    assert meters.add_online("c", start, end) == 3690
    counts = meters.take()
    online = {hour.hour: row[ONLINE_SECONDS] for (_, hour), row in counts.items()}
    assert online == {9: 29, 10: 3600, 11: 61}
    assert meters.take() == {}
    meters.restore(counts)
    assert {hour.hour: row[ONLINE_SECONDS] for (_, hour), row in meters.take().items()} == online


async def test_spent_budget_is_a_quota_warning_from_instamsg(world: World) -> None:
    response = await world.http.put(
        f"/api/v1/tenants/{world.tenant_id}", json={"max_messages": 0}, headers=world.auth
    )
    assert response.status_code == 200, response.text
    device = await world.device_connect()
    await device.publish("app/a", b"1", 1)
    await device.publish("app/b", b"2", 1)
    entries = await eventually(lambda: logs(world, level="WARN"))
    await device.expect_no_publish(0.2)
    entries = await logs(world, level="WARN")
    assert [(entry["creator"], entry["message"]) for entry in entries] == [
        ("InstaMsg", "tenant message quota exceeded")  # once: identical warnings are rate-limited
    ]
    await device.close(disconnect=True)
