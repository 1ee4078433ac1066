"""Routing of reserved topics and p2p permissions (spec §6.2, §6.3, §7.3, C8, C9, S15; checklist 20-23)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from instamsg.broker import BrokerNode, ClientRecord, Directory, TenantRecord
from instamsg.broker.channel import Channel
from instamsg.broker.message import Message
from instamsg.protocol.implicit import install_implicit_delivery
from instamsg.protocol.plugin import DeviceProtocol
from instamsg.protocol.routing import Routing, install_routing
from instamsg.protocol.topics import SpecialTopic, TopicKind
from tests.broker.support import Identity, RawClient, publish_bytes, subscribe_bytes
from tests.rest.live import LiveNode, start_live_node
from tests.support.devices import Dialect, LegacyDevice, port_of, protocol_node

SENDER = Identity("cbf7d550-7204-11e4-a2ad-543530e3bc65", "1" * 32)  # lists PEER exactly
PEER = Identity("5d3f2c1e-9a8b-4c7d-8e6f-102030405060", "2" * 32)  # lists nothing
WILDCARD = Identity("6a6a6a6a-0000-4000-8000-000000000001", "3" * 32)  # pub_topics "#" only
USER = Identity("7b7b7b7b-0000-4000-8000-000000000002", "4" * 32)  # drives PEER's files
OUTSIDER = Identity("8c8c8c8c-0000-4000-8000-000000000003", "5" * 32)  # tenant 2
UNKNOWN = "9d9d9d9d-0000-4000-8000-000000000004"


def make_directory() -> Directory:
    directory = Directory()
    directory.load(
        [
            TenantRecord("tenant-1", active=True, max_messages=100_000, messages_used=0),
            TenantRecord("tenant-2", active=True, max_messages=100_000, messages_used=0),
        ],
        [
            ClientRecord(
                SENDER.uuid, "tenant-1", SENDER.token, (PEER.uuid.upper(), UNKNOWN, "a/b"), ("a/+",)
            ),
            ClientRecord(PEER.uuid, "tenant-1", PEER.token, (), ("a/#",)),
            ClientRecord(WILDCARD.uuid, "tenant-1", WILDCARD.token, ("#",), ("#",)),
            ClientRecord(
                USER.uuid,
                "tenant-1",
                USER.token,
                (
                    f"instamsg/clients/{PEER.uuid}/files",
                    f"instamsg/clients/{PEER.uuid}/reboot",
                    f"instamsg/clients/{OUTSIDER.uuid}/files",
                    "instamsg/custom",
                    "a/#",
                ),
                (
                    f"instamsg/clients/{PEER.uuid}/logs",
                    f"instamsg/clients/{PEER.uuid}/reboot",
                    f"instamsg/clients/{OUTSIDER.uuid}/logs",
                    "#",
                ),
            ),
            ClientRecord(OUTSIDER.uuid, "tenant-2", OUTSIDER.token, ("#",), ("#",)),
        ],
    )
    return directory


NodeFactory = Callable[..., Awaitable[tuple[BrokerNode, DeviceProtocol, Routing]]]


@pytest.fixture
async def start() -> AsyncIterator[NodeFactory]:
    stack: list[object] = []

    async def factory(reply_window: float = 3600.0) -> tuple[BrokerNode, DeviceProtocol, Routing]:
        routing: list[Routing] = []
        context = protocol_node(
            make_directory(),
            install=(
                lambda devices: routing.append(install_routing(devices, reply_window)),
                install_implicit_delivery,
            ),
        )
        node, devices = await context.__aenter__()
        stack.append(context)
        return node, devices, routing[0]

    yield factory
    for context in reversed(stack):
        await context.__aexit__(None, None, None)  # type: ignore[attr-defined]


class Devices:
    """Connects simulated devices and standard raw clients to one node, closing them at the end."""

    def __init__(self, node: BrokerNode) -> None:
        self.node = node
        self.open: list[LegacyDevice] = []
        self.raw: list[RawClient] = []

    async def device(self, identity: Identity, dialect: Dialect = "c") -> LegacyDevice:
        device = await LegacyDevice.connect(
            "127.0.0.1", port_of(self.node, "tcp"), uuid=identity.uuid, token=identity.token, dialect=dialect
        )
        self.open.append(device)
        return device

    async def standard(self, identity: Identity, level: int = 4) -> RawClient:
        client = await RawClient.open("127.0.0.1", port_of(self.node, "tcp"))
        self.raw.append(client)
        connack = await client.connect(identity, level=level)
        assert connack[3] == 0  # return code (3.1.1) or reason code (5)
        return client

    async def close(self) -> None:
        for device in self.open:
            await device.close()
        for client in self.raw:
            client.close()


@pytest.fixture
async def node(start: NodeFactory) -> BrokerNode:
    broker, _, _ = await start()
    return broker


@pytest.fixture
async def clients(node: BrokerNode) -> AsyncIterator[Devices]:
    devices = Devices(node)
    yield devices
    await devices.close()


def envelope(message_id: str, reply_to: str, body: str) -> bytes:
    # Built with printf-style splicing like Python, C and Java: quotes in the body are not escaped (Q8).
    return f'{{"message_id": "{message_id}", "reply_to": "{reply_to}", "body": "{body}"}}'.encode()


# ---- p2p (§6.2 item 1, §7.3, C9, S15, checklist 23) -------------------------------------------------


async def test_checklist_23_p2p_with_unescaped_quotes_reaches_the_peer_unchanged_and_the_reply_needs_no_entry(
    clients: Devices,
) -> None:
    sender = await clients.device(SENDER, "python")
    peer = await clients.device(PEER, "c")
    payload = envelope("cbf7d550-7204-11e4-a2ad-543530e3bc65-1700000000000", SENDER.uuid, 'say "hi"')
    await sender.publish(PEER.uuid, payload, qos=1)
    received = await peer.receive(2.0)
    assert (received.topic, received.payload) == (PEER.uuid, payload)
    # PEER lists nothing in pub_topics: the reply window of S15 lets it answer the sender.
    reply = (
        b'{"message_id": "7", "response_id": "1", "reply_to": "%s", "body": "ok", "status": 1}'
        % PEER.uuid.encode()
    )
    await peer.publish(SENDER.uuid, reply, qos=1)
    answered = await sender.receive(2.0)
    assert (answered.topic, answered.payload) == (SENDER.uuid, reply)


async def test_checklist_23_without_the_entry_the_send_is_refused_and_never_delivered(
    clients: Devices, node: BrokerNode
) -> None:
    sender = await clients.device(SENDER, "java")
    peer = await clients.device(PEER, "c")
    denied_before = node.counters.publishes_denied
    ack = await peer.publish(SENDER.uuid, envelope("1", PEER.uuid, "unsolicited"), qos=1)
    assert ack is not None and ack[:2] == b"\x40\x02"  # still acknowledged (§6.3)
    assert node.counters.publishes_denied == denied_before + 1
    await sender.expect_no_publish(0.3)


async def test_c9_wildcard_pub_topics_never_grant_p2p(clients: Devices, node: BrokerNode) -> None:
    wildcard = await clients.device(WILDCARD, "c")
    peer = await clients.device(PEER, "java")
    await wildcard.publish(PEER.uuid, b"hello", qos=1)
    await peer.expect_no_publish(0.3)
    assert node.counters.publishes_denied == 1


async def test_p2p_entry_is_compared_case_insensitively_and_delivered_under_the_lowercase_uuid(
    clients: Devices,
) -> None:
    # SENDER's entry is the upper-case UUID; it publishes to a mixed-case topic.
    sender = await clients.device(SENDER, "js")
    peer = await clients.device(PEER, "c")
    await sender.publish(PEER.uuid.upper(), b"opaque, not JSON", qos=1)
    received = await peer.receive(2.0)
    assert received.topic == PEER.uuid  # C and Python compare their inbox exactly (§6.2)
    assert received.payload == b"opaque, not JSON"


async def test_loopback_needs_no_entry(clients: Devices) -> None:
    peer = await clients.device(PEER, "c")
    await peer.publish(PEER.uuid, b"to myself", qos=1)
    assert (await peer.receive(2.0)).payload == b"to myself"


async def test_unknown_peer_is_dropped_with_a_warning_and_still_acknowledged(
    clients: Devices, caplog: pytest.LogCaptureFixture
) -> None:
    sender = await clients.device(SENDER, "c")
    with caplog.at_level(logging.WARNING):
        ack = await sender.publish(UNKNOWN, b"anyone?", qos=1)
    assert ack is not None and ack[:2] == b"\x40\x02"
    assert any("unknown_peer" in record.getMessage() for record in caplog.records)


async def test_unknown_peer_gets_reason_0x90_over_mqtt_5(clients: Devices) -> None:
    sender = await clients.standard(SENDER, level=5)
    sender.send(publish_bytes(UNKNOWN, b"x", qos=1, packet_id=5, properties=b"\x00"))
    assert await sender.read_packet() == b"\x40\x03\x00\x05\x90"


async def test_s15_reply_window_defeats_an_earlier_cached_refusal(clients: Devices, node: BrokerNode) -> None:
    sender = await clients.device(SENDER, "c")
    peer = await clients.device(PEER, "c")
    # Refused first: the broker caches the refusal for this connection.
    await peer.publish(SENDER.uuid, b"too early", qos=1)
    await sender.expect_no_publish(0.2)
    await sender.publish(PEER.uuid, envelope("1", SENDER.uuid, "question"), qos=1)
    await peer.receive(2.0)
    await peer.publish(SENDER.uuid, b"answer", qos=1)
    assert (await sender.receive(2.0)).payload == b"answer"
    assert node.counters.publishes_denied == 1


async def test_s15_a_forged_reply_to_naming_a_third_client_opens_no_window(
    clients: Devices, node: BrokerNode
) -> None:
    sender = await clients.device(SENDER, "c")
    peer = await clients.device(PEER, "c")
    third = await clients.device(WILDCARD, "c")
    # SENDER may publish to PEER only, and names WILDCARD instead of itself as reply_to.
    await sender.publish(PEER.uuid, envelope("1", WILDCARD.uuid, "hello"), qos=1)
    await peer.receive(2.0)
    denied_before = node.counters.publishes_denied
    ack = await peer.publish(WILDCARD.uuid, b"unsolicited", qos=1)
    assert ack is not None and ack[:2] == b"\x40\x02"  # still acknowledged (§6.3)
    assert node.counters.publishes_denied == denied_before + 1
    await third.expect_no_publish(0.3)
    # Nor towards the real sender: reply_to did not name it.
    await peer.publish(SENDER.uuid, b"answer", qos=1)
    await sender.expect_no_publish(0.3)


async def test_s15_reply_window_closes(start: NodeFactory) -> None:
    node, _, routing = await start(reply_window=0.3)
    clients = Devices(node)
    try:
        sender = await clients.device(SENDER, "c")
        peer = await clients.device(PEER, "c")
        await sender.publish(PEER.uuid, envelope("1", SENDER.uuid, "question"), qos=1)
        await peer.receive(2.0)
        await peer.publish(SENDER.uuid, b"in time", qos=1)
        assert (await sender.receive(2.0)).payload == b"in time"
        for _ in range(100):  # bounded wait for the window's timer
            if routing.reply_peer_count(PEER.uuid) == 0:
                break
            await asyncio.sleep(0.05)
        assert routing.reply_peer_count(PEER.uuid) == 0
        await peer.publish(SENDER.uuid, b"too late", qos=1)
        await sender.expect_no_publish(0.3)
    finally:
        await clients.close()


async def test_s15_reply_window_is_bounded_per_client(start: NodeFactory) -> None:
    _, _, routing = await start()
    routing.max_reply_peers = 3
    for index in range(5):
        routing.grant(PEER.uuid, f"00000000-0000-4000-8000-00000000000{index}")
    assert routing.reply_peer_count(PEER.uuid) == 3
    assert not routing.in_reply_window(PEER.uuid, "00000000-0000-4000-8000-000000000000")
    assert routing.in_reply_window(PEER.uuid, "00000000-0000-4000-8000-000000000004")


# ---- special topics (§6.2 items 2-4) ----------------------------------------------------------------


async def test_device_to_server_topics_are_allowed_without_entry_and_attributed_to_the_connection(
    start: NodeFactory,
) -> None:
    node, devices, _ = await start()
    seen: list[tuple[str, TopicKind, str | None]] = []

    def handler(channel: Channel, special: SpecialTopic, message: Message) -> None:
        seen.append((channel.client_uuid, special.kind, special.client_uuid))

    devices.on_device_message(TopicKind.LOGS, handler)
    devices.on_device_message(TopicKind.SESSION, handler)
    clients = Devices(node)
    try:
        peer = await clients.device(PEER, "java")
        # JS logs to the requester's topic (Q20); C and Java use topics without a UUID (Q26).
        await peer.publish(f"instamsg/clients/{SENDER.uuid}/logs", b"line", qos=1)
        await peer.publish("instamsg/client/session", b"{'a': 'b'}", qos=1)
        assert seen == [(PEER.uuid, TopicKind.LOGS, SENDER.uuid), (PEER.uuid, TopicKind.SESSION, None)]
        assert node.counters.publishes_denied == 0
    finally:
        await clients.close()


async def test_a_device_may_not_publish_to_a_server_to_device_topic(
    clients: Devices, node: BrokerNode
) -> None:
    peer = await clients.device(PEER, "c")
    wildcard = await clients.device(WILDCARD, "c")
    await wildcard.publish(f"instamsg/clients/{PEER.uuid}/reboot", b"", qos=1)
    await peer.publish(f"instamsg/clients/{PEER.uuid}/config/serverToClient", b"{}", qos=1)
    await peer.expect_no_publish(0.3)
    assert node.counters.publishes_denied == 2


async def test_a_user_client_drives_files_with_an_exact_entry_but_never_reboot(
    clients: Devices, node: BrokerNode
) -> None:
    peer = await clients.device(PEER, "c")
    user = await clients.standard(USER)
    command = b'{"message_id": "1", "reply_to": "%s", "method": "GET"}' % USER.uuid.encode()
    user.send(publish_bytes(f"instamsg/clients/{PEER.uuid}/files", command, qos=1, packet_id=1))
    assert await user.read_packet() == b"\x40\x02\x00\x01"
    received = await peer.receive(2.0)
    assert (received.topic, received.payload) == (f"instamsg/clients/{PEER.uuid}/files", command)
    user.send(publish_bytes(f"instamsg/clients/{PEER.uuid}/reboot", b"", qos=1, packet_id=2))
    user.send(publish_bytes(f"instamsg/clients/{OUTSIDER.uuid}/files", command, qos=1, packet_id=3))
    user.send(publish_bytes("instamsg/custom", b"x", qos=1, packet_id=4))
    for packet_id in (2, 3, 4):
        assert await user.read_packet() == b"\x40\x02\x00" + bytes((packet_id,))
    await peer.expect_no_publish(0.3)
    assert node.counters.publishes_denied == 3


async def test_subscribe_to_other_reserved_topics_is_refused_except_exact_watcher_entries(
    clients: Devices,
) -> None:
    user = await clients.standard(USER)
    user.send(
        subscribe_bytes(
            1,
            (f"instamsg/clients/{PEER.uuid}/logs", 0),  # watcher of a device→server topic: allowed
            (f"instamsg/clients/{PEER.uuid}/reboot", 0),  # server→device topic of another client
            (f"instamsg/clients/{OUTSIDER.uuid}/logs", 0),  # another tenant
            ("instamsg/custom", 0),
            (PEER.uuid, 0),  # another client's inbox
            (f"instamsg/clients/{USER.uuid}/#", 1),  # own namespace, wildcards allowed (C8)
        )
    )
    assert await user.read_packet() == b"\x90\x08\x00\x01\x00\x80\x80\x80\x80\x01"


# ---- ACL and isolation (§6.3, checklist 20, 21) ------------------------------------------------------


async def test_checklist_20_publish_outside_pub_topics_is_acknowledged_not_routed_and_logged(
    clients: Devices, node: BrokerNode, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = await clients.standard(WILDCARD)
    watcher.send(subscribe_bytes(1, ("#", 1)))
    assert await watcher.read_packet() == b"\x90\x03\x00\x01\x01"
    sender = await clients.device(SENDER, "c")
    with caplog.at_level(logging.WARNING):
        ack = await sender.publish("x/y", b"not allowed", qos=1)
    assert ack is not None and ack[:2] == b"\x40\x02"
    assert any("publish_denied" in record.getMessage() for record in caplog.records)
    await watcher.expect_silence(0.3)
    standard = await clients.standard(SENDER, level=5)
    standard.send(publish_bytes("x/y", b"no", qos=1, packet_id=9, properties=b"\x00"))
    assert await standard.read_packet() == b"\x40\x03\x00\x09\x87"


async def test_checklist_20_filter_not_covered_by_sub_topics_is_denied_with_0x80(clients: Devices) -> None:
    sender = await clients.device(SENDER, "c")  # sub_topics ["a/+"]
    suback = await sender.subscribe("a/#", 1)
    assert suback == b"\x90\x03" + suback[2:4] + b"\x80"
    suback = await sender.subscribe("a/b", 1)
    assert suback == b"\x90\x03" + suback[2:4] + b"\x01"


async def test_checklist_21_tenants_are_isolated_and_hash_never_matches_reserved_topics(
    clients: Devices,
) -> None:
    outsider = await clients.standard(OUTSIDER)
    outsider.send(subscribe_bytes(1, ("#", 1)))
    assert await outsider.read_packet() == b"\x90\x03\x00\x01\x01"
    watcher = await clients.standard(WILDCARD)
    watcher.send(subscribe_bytes(1, ("#", 1)))
    assert await watcher.read_packet() == b"\x90\x03\x00\x01\x01"
    sender = await clients.device(SENDER, "c")
    peer = await clients.device(PEER, "c")
    await sender.publish("a/b", b"tenant one", qos=1)
    await sender.publish(PEER.uuid, b"private", qos=1)
    await peer.publish(f"instamsg/clients/{PEER.uuid}/logs", b"log line", qos=1)
    assert (await peer.receive(2.0)).payload == b"private"
    delivered = await watcher.read_packet()
    assert delivered == publish_bytes("a/b", b"tenant one", qos=1, packet_id=1)
    watcher.send(b"\x40\x02\x00\x01")
    await watcher.expect_silence(0.3)
    await outsider.expect_silence(0.1)


# ---- the composed platform (app.py wiring) ----------------------------------------------------------


@pytest.fixture
async def live(database_url: str, tmp_path: Path) -> AsyncIterator[LiveNode]:
    async for live_node in start_live_node(
        database_url,
        tmp_path / "data",
        p2p_reply_window_seconds=60,
        legacy_push_delay_seconds=0.2,
        legacy_push_spacing_seconds=0.1,
    ):
        yield live_node


async def test_platform_wires_p2p_rules_reply_window_implicit_delivery_and_push_pacing(
    live: LiveNode,
) -> None:
    tenant = await live.tenant()
    receiver = await live.client(tenant)
    sender = await live.client(tenant, pub_topics=[receiver["id"]])
    python = await live.device(sender, "python")
    c_device = await live.device(receiver, "c")
    devices = live.platform.devices
    assert devices is not None and devices.pacer is not None
    try:
        payload = envelope("1", sender["id"], 'unescaped "quotes"')
        await python.publish(receiver["id"].upper(), payload, qos=1)
        received = await c_device.receive(2.0)
        assert (received.topic, received.payload) == (receiver["id"], payload)
        await c_device.publish(sender["id"], b"reply", qos=1)
        assert (await python.receive(2.0)).payload == b"reply"
        # Python over TCP is paced (Q3, Q4); C is not.
        assert devices.push(sender["id"], TopicKind.CONFIG_PUSH, b"paced", qos=1)
        assert devices.pacer.queued(sender["id"]) == 1
        assert devices.push(receiver["id"], TopicKind.REBOOT, b"", qos=1)
        assert (await c_device.receive(2.0)).topic == f"instamsg/clients/{receiver['id']}/reboot"
        assert (await python.receive(5.0)).payload == b"paced"
    finally:
        await python.close()
        await c_device.close()
