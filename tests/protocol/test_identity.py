"""CONNECT credential layouts A and B and the profiles they select (spec §1.5, §3, §4, §15 items 1-4)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from instamsg.broker import BrokerNode, BrokerSettings, ClientRecord, Directory, TenantRecord
from instamsg.mqtt.encoder import encode
from instamsg.mqtt.packets import Connect
from instamsg.protocol.identity import install_identity, resolve_uuid
from instamsg.protocol.plugin import DeviceProtocol
from tests.broker.support import RawClient, utf8

DEVICE_A = "cbf7d550-7204-11e4-a2ad-543530e3bc65"
TOKEN_A = "0bd3a1c7817a4a1da772a89fcca48523"
DEVICE_B = "5d3f2c1e-9a8b-4c7d-8e6f-102030405060"
TOKEN_B = "1" * 32
OTHER_TENANT_DEVICE = "7e8f9a0b-1c2d-4e3f-8a5b-6c7d8e9f0a1b"
BLOCKED = "11111111-2222-4333-8444-555555555555"
INACTIVE_TENANT_DEVICE = "99999999-8888-4777-8666-555555555555"
TOKEN = "2" * 32

OpenClient = Callable[[], Awaitable[RawClient]]


def mqisdp_connect(client_id: str, username: str | None, password: str | None) -> bytes:
    """An `MQIsdp`/3 CONNECT as the official libraries build it (flags 0xC2)."""
    return encode(
        Connect(
            protocol_name="MQIsdp",
            protocol_level=3,
            clean_start=True,
            keep_alive=60,
            client_id=client_id,
            username=username,
            password=None if password is None else password.encode(),
            will=None,
            properties={},
        ),
        3,
    )


def layout_a(uuid: str, token: str) -> bytes:
    return mqisdp_connect(uuid[:23], uuid[24:], token)


def layout_b(uuid: str, token: str, client_id: str = "EMPTY") -> bytes:
    return mqisdp_connect(client_id, uuid, token)


@pytest.fixture
async def node() -> AsyncIterator[BrokerNode]:
    directory = Directory()
    directory.load(
        [
            TenantRecord("tenant-1", active=True, max_messages=1000, messages_used=0),
            TenantRecord("tenant-2", active=True, max_messages=1000, messages_used=0),
            TenantRecord("tenant-off", active=False, max_messages=1000, messages_used=0),
        ],
        [
            ClientRecord(DEVICE_A, "tenant-1", TOKEN_A, (), ()),
            ClientRecord(DEVICE_B, "tenant-1", TOKEN_B, (), ()),
            ClientRecord(OTHER_TENANT_DEVICE, "tenant-2", TOKEN, (), ()),
            ClientRecord(BLOCKED, "tenant-1", TOKEN, (), (), blocked=True),
            ClientRecord(INACTIVE_TENANT_DEVICE, "tenant-off", TOKEN, (), ()),
        ],
    )
    broker = BrokerNode(
        BrokerSettings(host="127.0.0.1", mqtt_port=0, ws_port=0, timer_resolution=0.1, connect_timeout=2.0),
        directory,
    )
    devices = DeviceProtocol(broker)
    devices.install()
    install_identity(devices)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


@pytest.fixture
async def open_client(node: BrokerNode) -> AsyncIterator[OpenClient]:
    clients: list[RawClient] = []

    async def factory() -> RawClient:
        port = node.ports["mqtt"]
        assert port is not None
        client = await RawClient.open("127.0.0.1", port)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()
    await asyncio.sleep(0)


async def connected_profile(node: BrokerNode, uuid: str) -> str:
    for _ in range(100):
        channel = node.channels.get(uuid)
        if channel is not None:
            return channel.profile.name
        await asyncio.sleep(0.01)
    raise AssertionError(f"{uuid} is not connected")


async def test_checklist_1_layout_a_is_accepted_with_a_four_byte_connack(
    open_client: OpenClient, node: BrokerNode
) -> None:
    client = await open_client()
    client.send(layout_a(DEVICE_A, TOKEN_A))
    await client.expect(b"\x20\x02\x00\x00")
    assert node.is_connected(DEVICE_A)
    # Raw TCP: Python reads one packet per recv(), so pushes are paced (Q3, Q4).
    assert await connected_profile(node, DEVICE_A) == "legacy-a"
    assert node.channels[DEVICE_A].profile.push_delay > 0
    assert node.channels[DEVICE_A].profile.suback_return_codes is False


async def test_layout_a_accepts_upper_case_and_stores_lower_case(
    open_client: OpenClient, node: BrokerNode
) -> None:
    client = await open_client()
    client.send(layout_a(DEVICE_A.upper(), TOKEN_A))
    await client.expect(b"\x20\x02\x00\x00")
    assert DEVICE_A in node.channels


async def test_checklist_2_layout_b_with_empty_and_two_tenants_at_once(
    open_client: OpenClient, node: BrokerNode
) -> None:
    first = await open_client()
    first.send(layout_b(DEVICE_B, TOKEN_B))
    await first.expect(b"\x20\x02\x00\x00")
    second = await open_client()
    second.send(layout_b(OTHER_TENANT_DEVICE, TOKEN))
    await second.expect(b"\x20\x02\x00\x00")
    # Nothing is keyed on the ClientIdentifier (§4.4): both stay connected.
    first.send(b"\xc0\x00")
    await first.expect(b"\xd0\x00")
    second.send(b"\xc0\x00")
    await second.expect(b"\xd0\x00")
    assert node.is_connected(DEVICE_B) and node.is_connected(OTHER_TENANT_DEVICE)
    assert await connected_profile(node, DEVICE_B) == "legacy-b"
    assert node.channels[DEVICE_B].profile.suback_return_codes is True


async def test_layout_b_with_an_imei_client_identifier(open_client: OpenClient) -> None:
    client = await open_client()
    client.send(layout_b(DEVICE_B, TOKEN_B, client_id="356938035643809"))
    await client.expect(b"\x20\x02\x00\x00")


@pytest.mark.parametrize(
    ("connect", "reason"),
    [
        (layout_a(DEVICE_A, "0" * 32), "layout A, wrong token"),
        (layout_b(DEVICE_B, "0" * 32), "layout B, wrong token"),
        (layout_b("deadbeef-0000-4000-8000-000000000000", TOKEN), "unknown UUID"),
        (layout_a("deadbeef-0000-4000-8000-000000000000", TOKEN), "unknown UUID, layout A"),
        (mqisdp_connect("EMPTY", DEVICE_B, None), "missing password"),
        (mqisdp_connect("NONE", "", TOKEN), "C 2015 layout: unresolvable"),
        (mqisdp_connect(DEVICE_A[:23], "not-hex-tail", TOKEN_A), "unresolvable"),
    ],
)
async def test_checklist_4_bad_credentials_get_code_4(
    open_client: OpenClient, connect: bytes, reason: str
) -> None:
    client = await open_client()
    client.send(connect)
    assert await client.expect_closed() == b"\x20\x02\x00\x04", reason


@pytest.mark.parametrize("uuid", [BLOCKED, INACTIVE_TENANT_DEVICE])
async def test_checklist_4_blocked_or_inactive_tenant_gets_code_5(open_client: OpenClient, uuid: str) -> None:
    client = await open_client()
    client.send(layout_b(uuid, TOKEN))
    assert await client.expect_closed() == b"\x20\x02\x00\x05"
    client = await open_client()
    client.send(layout_a(uuid, TOKEN))
    assert await client.expect_closed() == b"\x20\x02\x00\x05"


@pytest.mark.parametrize(("name", "level"), [("MQIsdp", 4), ("MQTT", 3), ("MQXX", 4), ("MQTT", 6)])
async def test_unsupported_protocol_gets_code_1(open_client: OpenClient, name: str, level: int) -> None:
    client = await open_client()
    body = utf8(name) + bytes((level, 0x02)) + b"\x00\x3c" + utf8("x")
    client.send(b"\x10" + bytes((len(body),)) + body)
    assert await client.expect_closed() == b"\x20\x02\x00\x01"


async def test_standard_clients_get_the_standard_profile_whatever_their_identifier(
    open_client: OpenClient,
    node: BrokerNode,
) -> None:
    client = await open_client()
    # Level 4 with a layout-A-looking identifier: layout A is only for MQIsdp/3, so the username decides.
    client.send(
        encode(
            Connect(
                protocol_name="MQTT",
                protocol_level=4,
                clean_start=True,
                keep_alive=60,
                client_id=DEVICE_A[:23],
                username=DEVICE_B,
                password=TOKEN_B.encode(),
                will=None,
                properties={},
            ),
            4,
        )
    )
    await client.expect(b"\x20\x02\x00\x00")
    assert await connected_profile(node, DEVICE_B) == "standard"


async def test_layout_a_is_not_paced_over_websocket(node: BrokerNode) -> None:
    port = node.ports["ws"]
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        payload = layout_a(DEVICE_A, TOKEN_A)
        mask = b"\x01\x02\x03\x04"
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        writer.write(bytes((0x82, 0x80 | len(payload))) + mask + masked)
        assert await asyncio.wait_for(reader.readexactly(6), 2) == b"\x82\x04\x20\x02\x00\x00"
        profile = node.channels[DEVICE_A].profile
        assert profile.name == "legacy-a" and profile.push_delay == 0
    finally:
        writer.close()


def test_resolution_prefers_layout_b_and_ignores_layout_a_above_level_3() -> None:
    base = Connect(
        protocol_name="MQIsdp",
        protocol_level=3,
        clean_start=True,
        keep_alive=0,
        client_id=DEVICE_A[:23],
        username=DEVICE_A[24:].upper(),
        password=None,
        will=None,
        properties={},
    )
    assert resolve_uuid(base) == DEVICE_A
    assert resolve_uuid(dataclasses.replace(base, protocol_level=4, protocol_name="MQTT")) is None
    assert resolve_uuid(dataclasses.replace(base, username=DEVICE_B.upper())) == DEVICE_B
