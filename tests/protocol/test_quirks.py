"""Client quirks the server tolerates (spec §13, §3.2, §3.4-§3.6, §6.2; checklist 14-19)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import aiomqtt
import pytest

from instamsg.broker import BrokerNode, ClientRecord, Directory, TenantRecord
from instamsg.broker.hooks import HookPoint
from instamsg.broker.message import Message
from instamsg.protocol.implicit import install_implicit_delivery
from instamsg.protocol.plugin import DeviceProtocol
from instamsg.protocol.pushes import PushPacer, install_push_pacing
from instamsg.protocol.routing import install_routing
from instamsg.protocol.topics import IMPLICIT_KINDS, TopicKind, client_topic
from tests.broker.support import Identity, RawClient, publish_bytes, subscribe_bytes
from tests.support.devices import (
    Dialect,
    LegacyDevice,
    Transport,
    packet,
    port_of,
    protocol_node,
    split_packets,
    utf8,
)

DEVICE = Identity("cbf7d550-7204-11e4-a2ad-543530e3bc65", "1" * 32)
SECOND = Identity("5d3f2c1e-9a8b-4c7d-8e6f-102030405060", "2" * 32)
STANDARD = Identity("7b7b7b7b-0000-4000-8000-000000000002", "3" * 32)
PUSH_DELAY = 0.3
PUSH_SPACING = 0.15


def make_directory() -> Directory:
    everything = ("#", DEVICE.uuid, SECOND.uuid, STANDARD.uuid)
    directory = Directory()
    directory.load(
        [TenantRecord("tenant-1", active=True, max_messages=100_000, messages_used=0)],
        [
            ClientRecord(DEVICE.uuid, "tenant-1", DEVICE.token, everything, ("app/#",)),
            ClientRecord(SECOND.uuid, "tenant-1", SECOND.token, everything, ("app/#",)),
            ClientRecord(STANDARD.uuid, "tenant-1", STANDARD.token, everything, ("app/#", "#")),
        ],
    )
    return directory


class Harness:
    def __init__(self, node: BrokerNode, devices: DeviceProtocol, pacer: PushPacer) -> None:
        self.node = node
        self.devices = devices
        self.pacer = pacer
        self.open: list[LegacyDevice] = []
        self.raw: list[RawClient] = []

    async def device(
        self, identity: Identity, dialect: Dialect, transport: Transport = "tcp", **options: object
    ) -> LegacyDevice:
        device = await LegacyDevice.connect(
            "127.0.0.1",
            port_of(self.node, transport),
            uuid=identity.uuid,
            token=identity.token,
            dialect=dialect,
            transport=transport,
            **options,  # type: ignore[arg-type]
        )
        self.open.append(device)
        return device

    async def standard(self, identity: Identity, keep_alive: int = 60) -> RawClient:
        client = await RawClient.open("127.0.0.1", port_of(self.node, "tcp"))
        self.raw.append(client)
        assert await client.connect(identity, level=4, keep_alive=keep_alive) == b"\x20\x02\x00\x00"
        return client


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    pacers: list[PushPacer] = []
    async with protocol_node(
        make_directory(),
        install=(
            install_routing,
            install_implicit_delivery,
            lambda devices: pacers.append(install_push_pacing(devices, PUSH_DELAY, PUSH_SPACING)),
        ),
    ) as (node, devices):
        harness = Harness(node, devices, pacers[0])
        try:
            yield harness
        finally:
            for device in harness.open:
                await device.close()
            for client in harness.raw:
                client.close()


# ---- QoS (Q1, checklist 14, 19) ----------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["python", "java"])
async def test_checklist_14_legacy_granted_qos_1_and_a_qos_2_message_arrives_as_qos_1(
    harness: Harness, dialect: Dialect
) -> None:
    device = await harness.device(DEVICE, dialect, startup=False)
    suback = await device.subscribe("app/#", 2)
    assert harness.node.channels[DEVICE.uuid].session.subscriptions["app/#"].qos == 1  # type: ignore[union-attr]
    if dialect == "java":
        assert suback == b"\x90\x03" + suback[2:4] + b"\x01"
    standard = await harness.standard(STANDARD)
    standard.send(publish_bytes("app/x", b"qos two", qos=2, packet_id=3))
    assert await standard.read_packet() == b"\x50\x02\x00\x03"
    standard.send(b"\x62\x02\x00\x03")
    assert await standard.read_packet() == b"\x70\x02\x00\x03"
    message = await device.receive(2.0)
    assert (message.topic, message.payload, message.qos) == ("app/x", b"qos two", 1)


@pytest.mark.parametrize("pubrel_header", [0x62, 0x60])
async def test_checklist_19_inbound_qos_2_from_legacy_completes_with_pubrel(
    harness: Harness, pubrel_header: int
) -> None:
    receiver = await harness.device(SECOND, "c")
    sender = await harness.device(DEVICE, "c")
    # §3.2: MQIsdp clients may send PUBREL with flags 0010 (0x62, what they do) or 0000.
    pubcomp = await sender.publish(SECOND.uuid, b"exactly once", qos=2, pubrel_header=pubrel_header)
    assert pubcomp is not None and pubcomp[:2] == b"\x70\x02"
    message = await receiver.receive(2.0)
    assert (message.payload, message.qos) == (b"exactly once", 1)
    assert not sender.closed


async def test_section_3_2_subscribe_and_unsubscribe_flags_0000_are_accepted_from_mqisdp(
    harness: Harness,
) -> None:
    device = await harness.device(DEVICE, "java")
    suback = await device.subscribe("app/a", 1, header=0x80)
    assert suback == b"\x90\x03" + suback[2:4] + b"\x01"
    unsuback = await device.unsubscribe("app/a", header=0xA0)
    assert unsuback == b"\xb0\x02" + unsuback[2:4]
    assert await device.ping() == b"\xd0\x00"


# ---- SUBACK (Q2, checklist 15) -----------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["python", "js"])
async def test_checklist_15_legacy_a_gets_the_short_suback_even_when_denied(
    harness: Harness, dialect: Dialect
) -> None:
    device = await harness.device(DEVICE, dialect, startup=False)
    allowed = await device.subscribe("app/a", 1)
    assert allowed == b"\x90\x02" + allowed[2:4]
    denied = await device.subscribe("other/a", 1)
    assert denied == b"\x90\x02" + denied[2:4]
    assert "other/a" not in harness.node.channels[DEVICE.uuid].session.subscriptions  # type: ignore[union-attr]


async def test_checklist_15_legacy_b_gets_return_codes_and_0x80_when_denied(harness: Harness) -> None:
    device = await harness.device(DEVICE, "c")
    allowed = await device.subscribe("app/a", 0)
    assert allowed == b"\x90\x03" + allowed[2:4] + b"\x00"
    denied = await device.subscribe("other/a", 1)
    assert denied == b"\x90\x03" + denied[2:4] + b"\x80"


async def test_q2_python_startup_subscribe_to_its_special_topic_is_acknowledged_short(
    harness: Harness,
) -> None:
    device = await harness.device(DEVICE, "python", "ws")
    assert device.startup_suback is not None
    assert device.startup_suback == b"\x90\x02" + device.startup_suback[2:4]
    # The next packet after the SUBACK is not lost: a push arrives intact.
    assert harness.devices.push(DEVICE.uuid, TopicKind.ENABLE_LOGGING, b"1", qos=0)
    message = await device.receive(2.0)
    assert (message.topic, message.payload) == (client_topic(DEVICE.uuid, TopicKind.ENABLE_LOGGING), b"1")


# ---- keep-alive (Q5, Q6) ------------------------------------------------------------------------------


async def test_q5_keep_alive_0_is_never_timed_out(harness: Harness) -> None:
    await harness.device(DEVICE, "c")
    channel = harness.node.channels[DEVICE.uuid]
    assert channel.keepalive_timeout == 0
    assert channel.keepalive_timer is None


@pytest.mark.parametrize(
    ("dialect", "keep_alive", "expected"),
    [("java", 60, 270.0), ("js", 100, 270.0), ("python", 200, 300.0), ("python", 32768, 49152.0)],
)
async def test_q6_legacy_timeout_is_the_larger_of_one_and_a_half_keep_alive_and_270(
    harness: Harness, dialect: Dialect, keep_alive: int, expected: float
) -> None:
    await harness.device(DEVICE, dialect, keep_alive=keep_alive, startup=False)
    channel = harness.node.channels[DEVICE.uuid]
    assert channel.keepalive_timeout == expected
    assert channel.keepalive_timer is not None


async def test_standard_keep_alive_10_times_out_after_15_seconds(harness: Harness) -> None:
    await harness.standard(STANDARD, keep_alive=10)
    assert harness.node.channels[STANDARD.uuid].keepalive_timeout == 15.0


# ---- retain (Q7, checklist 18) ------------------------------------------------------------------------


async def test_checklist_18_retain_on_p2p_and_from_legacy_is_not_stored(harness: Harness) -> None:
    receiver = await harness.device(SECOND, "c")
    js = await harness.device(DEVICE, "js")
    # JS sets RETAIN = 1 on p2p sends (Q7).
    await js.publish(SECOND.uuid, b'{"message_id": "x", "body": "b"}', qos=1, retain=True)
    message = await receiver.receive(2.0)
    assert message.retain is False
    await js.publish("app/state", b"legacy retained", qos=1, retain=True)
    standard = await harness.standard(STANDARD)
    standard.send(publish_bytes(SECOND.uuid, b"standard p2p", qos=1, packet_id=1, retain=True))
    assert await standard.read_packet() == b"\x40\x02\x00\x01"
    assert harness.node.retain.count("tenant-1") == 0
    # A later subscriber gets nothing retained.
    standard.send(subscribe_bytes(2, ("app/#", 1)))
    assert await standard.read_packet() == b"\x90\x03\x00\x02\x01"
    await standard.expect_silence(0.2)


# ---- identity (Q9) ------------------------------------------------------------------------------------


async def test_q9_two_devices_sharing_client_identifier_empty_stay_connected(harness: Harness) -> None:
    first = await harness.device(DEVICE, "c")
    second = await harness.device(SECOND, "java")
    assert (
        harness.node.channels[DEVICE.uuid].client_id
        == harness.node.channels[SECOND.uuid].client_id
        == "EMPTY"
    )
    await first.publish(SECOND.uuid, b"to second", qos=1)
    await second.publish(DEVICE.uuid, b"to first", qos=1)
    assert (await second.receive(2.0)).payload == b"to second"
    assert (await first.receive(2.0)).payload == b"to first"
    assert not first.closed and not second.closed


# ---- implicit delivery (checklist 16, 17) -------------------------------------------------------------


CHECKLIST_16_KINDS = (TopicKind.CONFIG_PUSH, TopicKind.ENABLE_LOGGING, TopicKind.REBOOT, TopicKind.FILES)


@pytest.mark.parametrize("dialect", ["c", "java", "telit", "js"])
async def test_checklist_16_legacy_receives_inbox_and_server_topics_without_subscribe(
    harness: Harness, dialect: Dialect
) -> None:
    device = await harness.device(DEVICE, dialect, "ws" if dialect == "js" else "tcp")
    sender = await harness.device(SECOND, "c")
    await sender.publish(DEVICE.uuid, b"p2p", qos=1)
    message = await device.receive(2.0)
    assert (message.topic, message.payload, message.qos) == (DEVICE.uuid, b"p2p", 1)
    for kind in CHECKLIST_16_KINDS:
        assert harness.devices.push(DEVICE.uuid, kind, kind.value.encode(), qos=1)
        message = await device.receive(2.0)
        assert (message.topic, message.payload, message.qos) == (
            client_topic(DEVICE.uuid, kind),
            kind.value.encode(),
            1,
        )


async def test_every_implicit_kind_is_subscribed_for_legacy(harness: Harness) -> None:
    await harness.device(DEVICE, "c")
    subscriptions = harness.node.channels[DEVICE.uuid].session.subscriptions  # type: ignore[union-attr]
    expected = {DEVICE.uuid, *(client_topic(DEVICE.uuid, kind) for kind in IMPLICIT_KINDS)}
    assert expected <= set(subscriptions)
    assert all(subscriptions[topic].qos == 1 for topic in expected)


async def test_checklist_16_standard_client_receives_them_only_after_subscribing(harness: Harness) -> None:
    standard = await harness.standard(STANDARD)
    assert harness.devices.push(STANDARD.uuid, TopicKind.REBOOT, b"now", qos=1)
    await standard.expect_silence(0.3)
    standard.send(subscribe_bytes(1, (f"instamsg/clients/{STANDARD.uuid}/#", 1), (STANDARD.uuid, 1)))
    assert await standard.read_packet() == b"\x90\x04\x00\x01\x01\x01"
    assert harness.devices.push(STANDARD.uuid, TopicKind.REBOOT, b"now", qos=1)
    reboot = client_topic(STANDARD.uuid, TopicKind.REBOOT)
    assert await standard.read_packet() == publish_bytes(reboot, b"now", qos=1, packet_id=1)


async def test_checklist_17_implicit_and_explicit_match_is_delivered_once(harness: Harness) -> None:
    device = await harness.device(DEVICE, "java")
    subscriptions = harness.node.channels[DEVICE.uuid].session.subscriptions  # type: ignore[union-attr]
    assert client_topic(DEVICE.uuid, TopicKind.REBOOT) in subscriptions  # the implicit one
    suback = await device.subscribe(f"instamsg/clients/{DEVICE.uuid}/#", 1)
    assert suback[-1] == 1
    await device.subscribe(DEVICE.uuid, 1)  # the inbox, explicitly, on top of the implicit one
    harness.devices.push(DEVICE.uuid, TopicKind.REBOOT, b"once", qos=1)
    sender = await harness.device(SECOND, "c")
    await sender.publish(DEVICE.uuid, b"once too", qos=1)
    first = await device.receive(2.0)
    second = await device.receive(2.0)
    assert {first.payload, second.payload} == {b"once", b"once too"}
    await device.expect_no_publish(0.3)


# ---- WebSocket (§3.4, checklist 8) --------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["python", "js"])
async def test_checklist_8_every_websocket_message_holds_exactly_one_packet(
    harness: Harness, dialect: Dialect
) -> None:
    device = await harness.device(DEVICE, dialect, "ws")
    sender = await harness.device(SECOND, "c")
    # A burst: several packets are written in the same loop turn and may share one transport write.
    for index in range(5):
        await sender.publish(DEVICE.uuid, b"burst %d" % index, qos=0)
    for kind in CHECKLIST_16_KINDS:
        harness.devices.push(DEVICE.uuid, kind, b"x" * 300, qos=1)
    for _ in range(5 + len(CHECKLIST_16_KINDS)):
        await device.receive(2.0)
    binary = [frame for frame in device.frames if frame.opcode == 0x2]
    assert len(binary) == len(device.packets)
    for frame in binary:
        assert frame.fin
        assert len(split_packets(frame.payload)) == 1


# ---- push pacing (Q3, Q4) -----------------------------------------------------------------------------


async def test_q3_q4_pushes_to_python_over_tcp_wait_for_the_delay_then_are_spaced_in_order(
    harness: Harness,
) -> None:
    loop = asyncio.get_running_loop()
    connected_at: list[float] = []
    sent_at: list[tuple[float, bytes]] = []
    harness.node.hooks.add(HookPoint.CLIENT_CONNECTED, lambda channel: connected_at.append(loop.time()))

    def delivered(client_uuid: str, message: Message) -> None:
        if client_uuid == DEVICE.uuid:
            sent_at.append((loop.time(), message.payload))

    harness.node.hooks.add(HookPoint.MESSAGE_DELIVERED, delivered)
    device = await harness.device(DEVICE, "python")
    assert harness.node.channels[DEVICE.uuid].profile.name == "legacy-a"
    for payload in (b"one", b"two", b"three"):
        assert harness.devices.push(DEVICE.uuid, TopicKind.CONFIG_PUSH, payload, qos=1)
    assert harness.pacer.queued(DEVICE.uuid) == 3
    received = [(await device.receive(5.0)).payload for _ in range(3)]
    assert received == [b"one", b"two", b"three"]
    times = [time for time, _ in sent_at]
    # asyncio may run a timer up to its clock resolution early; the margin only absorbs that.
    margin = 0.005
    assert times[0] >= connected_at[0] + PUSH_DELAY - margin
    assert all(later - earlier >= PUSH_SPACING - margin for earlier, later in itertools.pairwise(times))


@pytest.mark.parametrize(("dialect", "transport"), [("python", "ws"), ("c", "tcp")])
async def test_pushes_to_unpaced_profiles_go_out_at_once(
    harness: Harness, dialect: Dialect, transport: Transport
) -> None:
    device = await harness.device(DEVICE, dialect, transport)
    assert harness.devices.push(DEVICE.uuid, TopicKind.REBOOT, b"", qos=1)
    assert harness.pacer.queued(DEVICE.uuid) == 0
    assert (await device.receive(2.0)).topic == client_topic(DEVICE.uuid, TopicKind.REBOOT)


async def test_push_queue_is_dropped_when_the_connection_closes(harness: Harness) -> None:
    device = await harness.device(DEVICE, "python")
    harness.devices.push(DEVICE.uuid, TopicKind.CONFIG_PUSH, b"lost", qos=1)
    assert harness.pacer.queued(DEVICE.uuid) == 1
    await device.close()
    for _ in range(100):
        if not harness.node.is_connected(DEVICE.uuid):
            break
        await asyncio.sleep(0.02)
    assert harness.pacer.queued(DEVICE.uuid) == 0
    assert not harness.devices.push(DEVICE.uuid, TopicKind.CONFIG_PUSH, b"offline", qos=1)


async def test_raw_packet_helpers_build_what_the_libraries_send() -> None:
    # SUBSCRIBE as Python builds it (fixed header 0x82, spec §3.2).
    assert packet(0x82, b"\x00\x0a" + utf8("a") + b"\x00") == b"\x82\x06\x00\x0a\x00\x01a\x00"


@pytest.mark.parametrize(
    ("dialect", "offered", "answered"),
    [
        ("python", (), None),
        ("js", (), None),
        ("js", ("mqttv3.1",), "mqttv3.1"),
        ("js", ("mqttv3.1", "mqtt"), "mqtt"),
    ],
)
async def test_checklist_7_websocket_on_any_path_answers_only_an_offered_subprotocol(
    harness: Harness, dialect: Dialect, offered: tuple[str, ...], answered: str | None
) -> None:
    # Python connects on "/" and JS on "/mqtt" (the dialects' default paths).
    device = await harness.device(DEVICE, dialect, "ws", subprotocols=offered, startup=False)
    assert device.connack == b"\x20\x02\x00\x00"
    head = device.handshake.decode("latin-1").lower()
    if answered is None:
        assert "sec-websocket-protocol" not in head
    else:
        assert f"sec-websocket-protocol: {answered}\r\n" in head


# ---- standard clients keep full MQTT (D10, S3, checklist 5) ---------------------------------------------


@pytest.mark.parametrize("version", [aiomqtt.ProtocolVersion.V5, aiomqtt.ProtocolVersion.V311])
async def test_checklist_5_standard_client_keeps_qos_2_and_retain_and_gets_nothing_implicit(
    harness: Harness, version: aiomqtt.ProtocolVersion
) -> None:
    port = port_of(harness.node, "tcp")
    async with aiomqtt.Client(
        "127.0.0.1", port, username=STANDARD.uuid, password=STANDARD.token, protocol=version, identifier="std"
    ) as client:
        session = harness.node.channels[STANDARD.uuid].session
        assert session is not None and session.subscriptions == {}  # S3: nothing implicit
        await client.publish("app/retained", b"kept", qos=2, retain=True)
        await client.subscribe("app/#", qos=2)
        await client.subscribe(STANDARD.uuid, qos=2)
        legacy = await harness.device(DEVICE, "c")
        await legacy.publish(STANDARD.uuid, b"from legacy", qos=1)
        seen: dict[str, tuple[bytes, int, bool]] = {}
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            seen[str(message.topic)] = (message.payload, message.qos, message.retain)
            if len(seen) == 2:
                break
    assert seen == {"app/retained": (b"kept", 2, True), STANDARD.uuid: (b"from legacy", 1, False)}


async def test_explicit_subscription_to_an_implicit_topic_keeps_qos_1_and_unsubscribe_keeps_delivery(
    harness: Harness,
) -> None:
    device = await harness.device(DEVICE, "java")
    sender = await harness.device(SECOND, "c")
    subscriptions = harness.node.channels[DEVICE.uuid].session.subscriptions  # type: ignore[union-attr]
    await device.subscribe(DEVICE.uuid, 0)
    assert subscriptions[DEVICE.uuid].qos == 1  # the highest matching QoS (§6.2 item 5)
    await sender.publish(DEVICE.uuid, b"at qos 1", qos=1)
    assert (await device.receive(2.0)).qos == 1
    await device.unsubscribe(DEVICE.uuid)
    assert subscriptions[DEVICE.uuid].qos == 1  # the implicit rule still holds
    await sender.publish(DEVICE.uuid, b"still delivered", qos=1)
    assert (await device.receive(2.0)).payload == b"still delivered"
