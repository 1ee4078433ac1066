"""BrokerNode: directory changes on live connections, deliver(), metering, quota, stop, hooks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from instamsg.broker import (
    BrokerNode,
    BrokerSettings,
    ClientRecord,
    Directory,
    HookPoint,
    Hooks,
    TenantRecord,
)
from instamsg.broker.hooks import Priority, Stop
from instamsg.broker.profiles import ConnectionProfile, ConnectReply, Refusal
from tests.broker.support import (
    ALICE,
    BOB,
    CAROL,
    MALLORY,
    TENANT_A,
    TENANT_B,
    RawClient,
    connect_bytes,
    publish_bytes,
    subscribe_bytes,
)

Connect = Callable[[], Any]


async def connected(connect_raw: Connect, identity: Any = ALICE, level: int = 4, **kwargs: Any) -> RawClient:
    client: RawClient = await connect_raw()
    answer = await client.connect(identity, level=level, **kwargs)
    assert answer[3] == 0 and answer[0] == 0x20, answer
    return client


# ---- directory changes (spec C24) ----------------------------------------------------------------


async def test_removed_client_disconnected_with_0x87(connect_raw: Connect, directory: Directory) -> None:
    client = await connected(connect_raw, BOB, level=5)
    directory.remove_client(BOB.uuid)
    assert await client.expect_closed() == b"\xe0\x01\x87"


async def test_blocked_client_disconnected_without_will(connect_raw: Connect, directory: Directory) -> None:
    watcher = await connected(connect_raw, CAROL)
    watcher.send(subscribe_bytes(1, ("will/#", 0)))
    await watcher.expect(b"\x90\x03\x00\x01\x00")
    from instamsg.mqtt.packets import Will

    client = await connected(connect_raw, BOB, will=Will("will/x", b"w"))
    directory.upsert_client(ClientRecord(BOB.uuid, TENANT_A, BOB.token, ("will/#",), (), blocked=True))
    assert await client.expect_closed() == b""
    await watcher.expect_silence()


async def test_deactivated_tenant_disconnects_its_clients_only(
    connect_raw: Connect, directory: Directory
) -> None:
    a_client = await connected(connect_raw, ALICE, level=5)
    b_client = await connected(connect_raw, MALLORY, level=5)
    directory.upsert_tenant(TenantRecord(TENANT_A, False, 100, 0))
    assert await a_client.expect_closed() == b"\xe0\x01\x87"
    b_client.send(b"\xc0\x00")
    await b_client.expect(b"\xd0\x00")


async def test_removed_tenant_loses_sessions_and_retained(
    connect_raw: Connect, node: BrokerNode, directory: Directory
) -> None:
    client = await connected(connect_raw, ALICE, clean=False)
    client.send(publish_bytes("keep", b"v", retain=True))
    client.send(subscribe_bytes(1, ("x", 1)))
    await client.expect(b"\x90\x03\x00\x01\x01")
    directory.remove_tenant(TENANT_A)
    await client.expect_closed()
    assert node.retain.count(TENANT_A) == 0 and ALICE.uuid not in node.sessions


async def test_changed_sub_topics_revoke_subscriptions(
    connect_raw: Connect, directory: Directory, node: BrokerNode
) -> None:
    client = await connected(connect_raw, BOB)
    client.send(subscribe_bytes(1, ("sensors/t", 0), ("a/x", 0)))
    await client.expect(b"\x90\x04\x00\x01\x00\x00")
    directory.upsert_client(ClientRecord(BOB.uuid, TENANT_A, BOB.token, (), ("a/#",)))
    node.deliver(TENANT_A, None, "sensors/t", b"no", 0)
    node.deliver(TENANT_A, None, "a/x", b"yes", 0)
    await client.expect(publish_bytes("a/x", b"yes"))
    await client.expect_silence()
    # the publish cache was invalidated too: "sensors/#" is no longer granted
    client.send(publish_bytes("sensors/t", b"v", qos=1, packet_id=1))
    await client.expect(b"\x40\x02\x00\x01")
    assert node.counters.publishes_denied == 1


async def test_changed_topics_for_offline_session(
    connect_raw: Connect, directory: Directory, node: BrokerNode
) -> None:
    client = await connected(connect_raw, BOB, clean=False)
    client.send(subscribe_bytes(1, ("sensors/t", 1)))
    await client.expect(b"\x90\x03\x00\x01\x01")
    client.send(b"\xe0\x00")
    await client.expect_closed()
    directory.upsert_client(ClientRecord(BOB.uuid, TENANT_A, BOB.token, (), ()))
    assert node.sessions[BOB.uuid].subscriptions == {}


# ---- deliver, metering, quota, statistics --------------------------------------------------------


async def test_deliver_routes_like_a_publish_and_meters(connect_raw: Connect, node: BrokerNode) -> None:
    client = await connected(connect_raw, CAROL)
    client.send(subscribe_bytes(1, ("d/+", 1), (CAROL.uuid, 1)))
    await client.expect(b"\x90\x04\x00\x01\x01\x01")
    assert node.deliver(TENANT_A, ALICE.uuid, "d/x", b"abc", 1) == 1
    await client.expect(publish_bytes("d/x", b"abc", qos=1, packet_id=1))
    assert node.deliver(TENANT_A, ALICE.uuid, CAROL.uuid.upper(), b"p2p", 0) == 1
    await client.expect(publish_bytes(CAROL.uuid, b"p2p"))
    assert node.deliver(TENANT_B, None, "d/x", b"abc", 1) == 0
    assert node.deliver(TENANT_B, None, CAROL.uuid, b"abc", 1) == 0  # not an inbox in tenant B
    deltas = node.take_meter_deltas()
    assert deltas.clients[ALICE.uuid].messages_in == 2
    assert deltas.clients[CAROL.uuid].messages_out == 2 and deltas.clients[CAROL.uuid].bytes_out == 6
    assert deltas.tenants[TENANT_A].messages_out == 2
    assert node.take_meter_deltas().clients == {}


async def test_publishes_metered_and_quota_charged_once(
    connect_raw: Connect, node: BrokerNode, directory: Directory
) -> None:
    receiver = await connected(connect_raw, CAROL)
    receiver.send(subscribe_bytes(1, ("m", 0)))
    await receiver.expect(b"\x90\x03\x00\x01\x00")
    other = await connected(connect_raw, BOB)
    other.send(subscribe_bytes(1, ("a/#", 0)))
    await other.expect(b"\x90\x03\x00\x01\x00")
    sender = await connected(connect_raw, ALICE)
    sender.send(publish_bytes("m", b"1234", qos=2, packet_id=1))
    await sender.expect(b"\x50\x02\x00\x01")
    sender.send(publish_bytes("m", b"1234", qos=2, packet_id=1, dup=True))  # not charged again
    await sender.expect(b"\x50\x02\x00\x01")
    await receiver.expect(publish_bytes("m", b"1234"))
    assert directory.messages_used(TENANT_A) == 1
    deltas = node.take_meter_deltas()
    assert deltas.clients[ALICE.uuid].messages_in == 1 and deltas.clients[ALICE.uuid].bytes_in == 4
    statistics = node.statistics()
    assert statistics.clients_connected == 3 and statistics.counters["messages_published"] == 1


async def test_quota_refusal_in_311_still_acknowledges(connect_raw: Connect, directory: Directory) -> None:
    directory.upsert_tenant(TenantRecord(TENANT_A, True, 0, 0))
    receiver = await connected(connect_raw, CAROL)
    receiver.send(subscribe_bytes(1, ("q", 0)))
    await receiver.expect(b"\x90\x03\x00\x01\x00")
    sender = await connected(connect_raw)
    sender.send(publish_bytes("q", b"x", qos=1, packet_id=1))
    await sender.expect(b"\x40\x02\x00\x01")
    await receiver.expect_silence()


async def test_stop_sends_0x8b(settings: BrokerSettings, directory: Directory) -> None:
    node = BrokerNode(settings, directory)
    ports = await node.start()
    assert ports["mqtts"] is None and ports["ws"] is None and isinstance(ports["mqtt"], int)
    reader, writer = await asyncio.open_connection("127.0.0.1", ports["mqtt"])
    writer.write(connect_bytes(ALICE, level=5))
    await reader.read(3)
    await reader.read(100)
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", ports["mqtt"])
    await asyncio.sleep(0.05)
    await node.stop()
    assert await asyncio.wait_for(reader.read(), 2) == b"\xe0\x01\x8b"
    assert await asyncio.wait_for(idle_reader.read(), 2) == b""
    writer.close()
    idle_writer.close()


async def test_start_without_ssl_context_for_mqtts_fails(directory: Directory) -> None:
    node = BrokerNode(BrokerSettings(mqtt_port=0, mqtts_port=0), directory)
    with pytest.raises(ValueError, match="ssl_context"):
        await node.start()


# ---- hook points the device-protocol issue needs ------------------------------------------------


async def test_client_connect_hook_answers_with_other_bytes(connect_raw: Connect, hooks: Hooks) -> None:
    def provisioning(channel: Any, connect: Any, accumulator: Any) -> Any:
        if connect.client_id == "PROVISIONING":
            return Stop(ConnectReply(b"\xf0\x03\x00\x00X"))
        return None

    hooks.add(HookPoint.CLIENT_CONNECT, provisioning)
    client = await connect_raw()
    client.send(connect_bytes(ALICE, level=3, client_id="PROVISIONING"))
    assert await client.expect_closed() == b"\xf0\x03\x00\x00X"
    await connected(connect_raw)


async def test_client_authenticate_hook_resolves_other_layouts(connect_raw: Connect, hooks: Hooks) -> None:
    def layout_a(channel: Any, connect: Any, accumulator: Any) -> Any:
        if connect.username and len(connect.username) == 12:
            return connect.client_id + "-" + connect.username
        if connect.username == "refuse-me":
            return Stop(Refusal(0x87))
        return None

    hooks.add(HookPoint.CLIENT_AUTHENTICATE, layout_a)
    client: RawClient = await connect_raw()
    from instamsg.mqtt.encoder import encode
    from instamsg.mqtt.packets import Connect as ConnectPacket

    client.send(
        encode(
            ConnectPacket("MQIsdp", 3, True, 60, ALICE.uuid[:23], ALICE.uuid[24:], ALICE.token.encode()), 3
        )
    )
    await client.expect(b"\x20\x02\x00\x00")
    refused: RawClient = await connect_raw()
    refused.send(encode(ConnectPacket("MQTT", 4, True, 60, "x", "refuse-me", b"x"), 4))
    assert await refused.expect_closed() == b"\x20\x02\x00\x05"


async def test_profile_hook_short_suback_and_implicit_subscriptions(
    connect_raw: Connect, hooks: Hooks, node: BrokerNode
) -> None:
    legacy_a = ConnectionProfile("legacy-a", max_qos=1, suback_return_codes=False, persistent_sessions=False)
    hooks.add(HookPoint.CLIENT_PROFILE, lambda channel, connect, client, profile: legacy_a)
    hooks.add(
        HookPoint.SESSION_IMPLICIT_SUBSCRIPTIONS,
        lambda channel, subscriptions: [
            *subscriptions,
            (channel.client_uuid, 1),
            (f"instamsg/clients/{channel.client_uuid}/#", 1),
        ],
    )
    client = await connected(connect_raw, CAROL)
    client.send(subscribe_bytes(10, ("x", 2)))
    await client.expect(b"\x90\x02\x00\x0a")  # spec Q2
    assert node.deliver(TENANT_A, ALICE.uuid, CAROL.uuid, b"inbox", 2) == 1
    await client.expect(publish_bytes(CAROL.uuid, b"inbox", qos=1, packet_id=1))
    assert node.deliver(TENANT_A, None, f"instamsg/clients/{CAROL.uuid}/reboot", b"", 1) == 1


async def test_message_publish_hook_consumes_reserved_topics(
    connect_raw: Connect, hooks: Hooks, node: BrokerNode
) -> None:
    consumed: list[str] = []

    def special_topics(channel: Any, message: Any) -> Any:
        if message.topic.startswith("instamsg/"):
            consumed.append(message.topic)
            return Stop(None)
        return None

    def allow_info(channel: Any, action: str, topic: str, allowed: bool) -> bool:
        return allowed or topic == f"instamsg/clients/{channel.client_uuid}/info"

    hooks.add(HookPoint.MESSAGE_PUBLISH, special_topics, Priority.HIGH)
    hooks.add(HookPoint.CLIENT_AUTHORIZE, allow_info)
    client = await connected(connect_raw, CAROL, level=5)
    client.send(
        publish_bytes(f"instamsg/clients/{CAROL.uuid}/info", b"{}", qos=1, packet_id=1, properties=b"\x00")
    )
    await client.expect(b"\x40\x02\x00\x01")
    assert consumed == [f"instamsg/clients/{CAROL.uuid}/info"]
    client.send(publish_bytes("instamsg/other", b"{}", qos=1, packet_id=2, properties=b"\x00"))
    await client.expect(b"\x40\x03\x00\x02\x87")


async def test_lifecycle_hooks_fire_in_order(connect_raw: Connect, hooks: Hooks) -> None:
    events: list[str] = []
    hooks.add(HookPoint.CLIENT_CONNECTED, lambda channel: events.append("connected"))
    hooks.add(
        HookPoint.SESSION_SUBSCRIBED,
        lambda channel, topic_filter, qos: events.append(f"subscribed {topic_filter}"),
    )
    hooks.add(HookPoint.MESSAGE_DELIVERED, lambda client_uuid, message: events.append("delivered"))
    hooks.add(HookPoint.MESSAGE_ACKED, lambda client_uuid, message: events.append("acked"))
    hooks.add(HookPoint.SESSION_UNSUBSCRIBED, lambda channel, topic_filter: events.append("unsubscribed"))
    hooks.add(HookPoint.CLIENT_DISCONNECTED, lambda channel, reason: events.append(f"disconnected {reason}"))
    client = await connected(connect_raw, CAROL)
    client.send(subscribe_bytes(1, ("h", 1)))
    await client.expect(b"\x90\x03\x00\x01\x01")
    client.send(publish_bytes("h", b"x", qos=1, packet_id=5))
    await client.expect(publish_bytes("h", b"x", qos=1, packet_id=1))  # routed before the PUBACK is queued
    await client.expect(b"\x40\x02\x00\x05")
    client.send(b"\x40\x02\x00\x01")
    client.send(b"\xa2\x05\x00\x02\x00\x01h")
    await client.expect(b"\xb0\x02\x00\x02")
    client.send(b"\xe0\x00")
    await client.expect_closed()
    await asyncio.sleep(0.05)
    assert events == [
        "connected",
        "subscribed h",
        "delivered",
        "acked",
        "unsubscribed",
        "disconnected client_disconnect",
    ]


async def test_connection_limit(settings: BrokerSettings, directory: Directory) -> None:
    settings.max_connections = 1
    node = BrokerNode(settings, directory)
    ports = await node.start()
    try:
        first = await RawClient.open("127.0.0.1", ports["mqtt"] or 0)
        assert await first.connect(ALICE) == b"\x20\x02\x00\x00"
        second = await RawClient.open("127.0.0.1", ports["mqtt"] or 0)
        assert await second.expect_closed() == b""
        assert node.counters.connections_refused_limit == 1
        first.close()
        second.close()
    finally:
        await node.stop()


def test_runs_under_uvloop(directory: Directory) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        node = BrokerNode(BrokerSettings(mqtt_port=0, ws_port=0), directory)
        ports = await node.start()
        try:
            # over WebSocket: handshake, then one masked binary frame carrying CONNECT
            websocket = await RawClient.open("127.0.0.1", ports["ws"] or 0)
            websocket.send(
                b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            head = await websocket.reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101")
            connect = connect_bytes(BOB)
            websocket.send(bytes((0x82, 0x80 | len(connect))) + b"\x00\x00\x00\x00" + connect)
            await websocket.expect(b"\x82\x04\x20\x02\x00\x00")  # one packet per binary message
            websocket.close()
            receiver = await RawClient.open("127.0.0.1", ports["mqtt"] or 0)
            assert await receiver.connect(CAROL) == b"\x20\x02\x00\x00"
            receiver.send(subscribe_bytes(1, ("uv", 1)))
            await receiver.expect(b"\x90\x03\x00\x01\x01")
            sender = await RawClient.open("127.0.0.1", ports["mqtt"] or 0)
            assert await sender.connect(ALICE) == b"\x20\x02\x00\x00"
            sender.send(publish_bytes("uv", b"fast", qos=1, packet_id=2))
            await sender.expect(b"\x40\x02\x00\x02")
            await receiver.expect(publish_bytes("uv", b"fast", qos=1, packet_id=1))
            receiver.close()
            sender.close()
        finally:
            await node.stop()

    uvloop.run(scenario())


async def test_denial_hooks_and_connection_state(
    connect_raw: Connect, hooks: Hooks, node: BrokerNode
) -> None:
    events: list[tuple[object, ...]] = []
    hooks.add(
        HookPoint.CLIENT_REFUSED, lambda channel, code, reason: events.append(("refused", code, reason))
    )
    hooks.add(HookPoint.MESSAGE_DENIED, lambda channel, topic, code: events.append(("denied", topic, code)))
    hooks.add(
        HookPoint.SESSION_SUBSCRIBE_DENIED, lambda channel, topic_filter: events.append(("sub", topic_filter))
    )
    client = await connect_raw()
    client.send(connect_bytes(ALICE, password="bad"))
    await client.expect_closed()
    bob = await connected(connect_raw, BOB)
    assert node.is_connected(BOB.uuid.upper()) and not node.is_connected(ALICE.uuid)
    bob.send(publish_bytes("nope", b"x", qos=1, packet_id=1))
    await bob.expect(b"\x40\x02\x00\x01")
    bob.send(subscribe_bytes(2, ("#", 0)))
    await bob.expect(b"\x90\x03\x00\x02\x80")
    assert events == [("refused", 0x86, "bad_credentials"), ("denied", "nope", 0x87), ("sub", "#")]


@pytest.mark.parametrize("qos", [0, 1])
async def test_slow_consumer_memory_is_bounded_and_drops_counted(
    settings: BrokerSettings, directory: Directory, qos: int
) -> None:
    settings.write_buffer_high_water = 64 * 1024
    settings.write_buffer_low_water = 16 * 1024
    settings.max_queued_messages = 100
    node = BrokerNode(settings, directory)
    ports = await node.start()
    try:
        import socket

        stuck = socket.create_connection(("127.0.0.1", ports["mqtt"] or 0))
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.sendall(connect_bytes(CAROL) + subscribe_bytes(1, ("flood", qos)))
        await asyncio.sleep(0.1)
        sender = await RawClient.open("127.0.0.1", ports["mqtt"] or 0)
        assert await sender.connect(ALICE) == b"\x20\x02\x00\x00"
        payload = b"x" * 1024
        for index in range(12000):
            sender.send(publish_bytes("flood", payload, qos=1, packet_id=index % 60000 + 1))
            if index % 200 == 0:
                await sender.writer.drain()
        sender.send(b"\xc0\x00")
        data = b""
        while not data.endswith(b"\xd0\x00"):  # every PUBACK, then the PINGRESP: the publisher is unaffected
            data += await asyncio.wait_for(sender.reader.read(65536), 5)
        statistics = node.statistics()
        session = node.sessions[CAROL.uuid]
        transport = node.channels[CAROL.uuid].connection.transport
        assert transport is not None
        assert statistics.dropped_queue_overflow > 0
        assert len(session.queue) <= 100 and len(session.inflight) <= settings.max_inflight
        # a frame or a loop turn's worth of frames beyond high water at most
        assert transport.get_write_buffer_size() < 64 * 1024 + 2 * 1024 * 1024
        stuck.close()
        sender.close()
    finally:
        await node.stop()


async def test_connect_reply_kept_open_then_closed(connect_raw: Connect, hooks: Hooks) -> None:
    hooks.add(
        HookPoint.CLIENT_CONNECT,
        lambda channel, connect, acc: Stop(ConnectReply(b"\xf0\x02\x00\x00", close=False)),
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    client = await connect_raw()
    client.send(connect_bytes(ALICE, level=3, client_id="PROVISIONING"))
    await client.expect(b"\xf0\x02\x00\x00")
    client.send(b"\xc0\x00")  # ignored: the connection handles nothing after the reply
    assert await client.expect_closed(timeout=4) == b""
    assert loop.time() - started >= 1.5  # settings.connect_timeout is 2 s in these tests


# ---- ingest backpressure (a writer on the message path that cannot keep up) ----------------------


async def test_paused_ingest_holds_publishes_until_resumed(connect_raw: Connect, node: BrokerNode) -> None:
    subscriber = await connected(connect_raw, CAROL)
    subscriber.send(subscribe_bytes(1, ("d/+", 0)))
    await subscriber.expect(b"\x90\x03\x00\x01\x00")
    publisher = await connected(connect_raw, ALICE)
    node.set_ingest_paused(True)
    publisher.send(publish_bytes("d/x", b"held"))
    # The socket is not read while paused: nothing is routed, nothing is lost.
    await subscriber.expect_silence()
    late = await connected_while_paused(connect_raw)
    node.set_ingest_paused(False)
    await subscriber.expect(publish_bytes("d/x", b"held"))
    answer = await late.read_exactly(4)
    assert answer[0] == 0x20 and answer[3] == 0  # a connection opened during the pause is read too


async def connected_while_paused(connect_raw: Connect) -> RawClient:
    client: RawClient = await connect_raw()
    client.send(connect_bytes(BOB, level=4))
    await client.expect_silence()  # CONNECT is not read yet: no CONNACK
    return client
