"""The device simulator speaks each library's dialect against a real broker (spec §3, §4.1, §4.5)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from instamsg.broker import BrokerNode, ClientRecord, Directory, TenantRecord
from tests.broker.tls_support import make_pki
from tests.support.devices import (
    DIALECTS,
    ConnectRefused,
    Dialect,
    LegacyDevice,
    Transport,
    port_of,
    protocol_node,
    provision,
    split_packets,
)

DEVICE = "cbf7d550-7204-11e4-a2ad-543530e3bc65"
TOKEN = "0bd3a1c7817a4a1da772a89fcca48523"
EXPECTED_PROFILE = {
    "python": "legacy-a",
    "js": "legacy-a",
    "c": "legacy-b",
    "java": "legacy-b",
    "telit": "legacy-b",
}


def make_directory() -> Directory:
    directory = Directory()
    directory.load(
        [TenantRecord("tenant-1", active=True, max_messages=1000, messages_used=0)],
        [ClientRecord(DEVICE, "tenant-1", TOKEN, ("app/#",), ("app/#",))],
    )
    return directory


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[BrokerNode]:
    pki = make_pki(tmp_path)
    async with protocol_node(make_directory(), ssl_context=pki.server_context()) as (broker, _):
        yield broker


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_each_dialect_connects_and_gets_its_profile(node: BrokerNode, dialect: Dialect) -> None:
    device = await LegacyDevice.connect(
        "127.0.0.1", port_of(node, "tcp"), uuid=DEVICE, token=TOKEN, dialect=dialect
    )
    try:
        assert device.connack == b"\x20\x02\x00\x00"
        channel = node.channels[DEVICE]
        assert channel.profile.name == EXPECTED_PROFILE[dialect]
        expected_client_id = {"python": DEVICE[:23], "js": DEVICE[:23], "telit": "356938035643809"}.get(
            dialect, "EMPTY"
        )
        assert channel.client_id == expected_client_id
        assert await device.ping() == b"\xd0\x00"
        ack = await device.publish("app/x", b"hello", qos=1)
        assert ack is not None and ack[:2] == b"\x40\x02"
    finally:
        await device.close()


@pytest.mark.parametrize("transport", ["tcp", "tls", "ws", "wss"])
async def test_python_startup_sequence_gets_the_short_suback_on_every_transport(
    node: BrokerNode, transport: Transport
) -> None:
    device = await LegacyDevice.connect(
        "127.0.0.1", port_of(node, transport), uuid=DEVICE, token=TOKEN, dialect="python", transport=transport
    )
    try:
        assert device.startup_suback is not None
        packet_id = device.startup_suback[2:4]
        assert device.startup_suback == b"\x90\x02" + packet_id  # Q2
        # The explicit subscription to the special topic is installed.
        assert f"instamsg/clients/{DEVICE}/enableServerLogging" in node.channels[DEVICE].session.subscriptions  # type: ignore[union-attr]
        if transport in ("ws", "wss"):
            binary = [frame for frame in device.frames if frame.opcode == 0x2]
            assert binary and all(frame.fin and len(split_packets(frame.payload)) == 1 for frame in binary)
            assert b"Sec-WebSocket-Protocol" not in device.handshake
    finally:
        await device.close()


async def test_js_connects_over_websocket_on_the_mqtt_path(node: BrokerNode) -> None:
    device = await LegacyDevice.connect(
        "127.0.0.1", port_of(node, "ws"), uuid=DEVICE, token=TOKEN, dialect="js", transport="ws"
    )
    try:
        assert device.connack == b"\x20\x02\x00\x00"
        assert device.frames[0].payload == b"\x20\x02\x00\x00"
        assert node.channels[DEVICE].keepalive_timeout == 270.0  # max(1.5 x 100, 270)
    finally:
        await device.close()


async def test_wrong_token_is_refused_with_code_4(node: BrokerNode) -> None:
    with pytest.raises(ConnectRefused) as refused:
        await LegacyDevice.connect(
            "127.0.0.1", port_of(node, "tcp"), uuid=DEVICE, token="x" * 32, dialect="c"
        )
    assert refused.value.connack == b"\x20\x02\x00\x04"


async def test_subscribe_and_receive_round_trip_with_puback(node: BrokerNode) -> None:
    device = await LegacyDevice.connect(
        "127.0.0.1", port_of(node, "tcp"), uuid=DEVICE, token=TOKEN, dialect="java"
    )
    try:
        suback = await device.subscribe("app/#", 1)
        assert suback == b"\x90\x03" + suback[2:4] + b"\x01"
        await device.publish("app/loop", b"payload", qos=1)
        message = await device.receive(2.0)
        assert (message.topic, message.payload, message.qos) == ("app/loop", b"payload", 1)
        unsuback = await device.unsubscribe("app/#")
        assert unsuback[:2] == b"\xb0\x02"
    finally:
        await device.close()


@pytest.mark.parametrize(
    ("dialect", "key", "expected_connect"),
    [
        # Python omits the password flag when the key is empty (Q15): flags 0x82.
        ("python", "", b"\x10\x20\x00\x06MQIsdp\x03\x82\x00\x3c\x00\x0cPROVISIONING\x00\x04prov"),
        ("c", "", b"\x10\x22\x00\x06MQIsdp\x03\xc2\x00\x00\x00\x0cPROVISIONING\x00\x04prov\x00\x00"),
        (
            "java",
            "test",
            b"\x10\x26\x00\x06MQIsdp\x03\xc2\x00\x3c\x00\x0cPROVISIONING\x00\x04prov\x00\x04test",
        ),
    ],
)
async def test_provision_sends_layout_p_and_reads_a_provack_with_a_multi_byte_length(
    dialect: Dialect, key: str, expected_connect: bytes
) -> None:
    received: list[bytes] = []
    payload = b"x" * 3100

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readexactly(len(expected_connect)))
        # §5.2: remaining length 3102 is encoded 9E 18.
        writer.write(b"\xf0\x9e\x18\x00\x00" + payload)
        await writer.drain()
        await reader.read()  # the device closes first (§5.5)
        writer.close()

    listener = await asyncio.start_server(server, "127.0.0.1", 0)
    try:
        port = listener.sockets[0].getsockname()[1]
        result = await provision("127.0.0.1", port, "prov", key, dialect=dialect)
    finally:
        listener.close()
        await listener.wait_closed()
    assert received == [expected_connect]
    assert (result.rc, result.payload) == (0, payload)
    assert result.raw[:3] == b"\xf0\x9e\x18"
