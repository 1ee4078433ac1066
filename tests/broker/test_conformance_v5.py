"""MQTT 5.0 over a real loopback socket, one test per normative statement implemented."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from instamsg.broker import BrokerNode, ClientRecord, Directory, TenantRecord
from instamsg.mqtt.packets import Connack, Publish, Pubrec, Suback, Unsuback, Will
from instamsg.mqtt.properties import encode_properties
from tests.broker.support import (
    ALICE,
    BOB,
    CAROL,
    MALLORY,
    TENANT_A,
    Identity,
    RawClient,
    connect_bytes,
    publish_bytes,
    subscribe_bytes,
    unsubscribe_bytes,
)

Connect = Callable[[], Any]
NO_PROPERTIES = b"\x00"


def props(**values: Any) -> bytes:
    return encode_properties(values, 3)  # type: ignore[arg-type]


async def connected5(
    connect_raw: Connect, identity: Identity = ALICE, **kwargs: Any
) -> tuple[RawClient, Connack]:
    client: RawClient = await connect_raw()
    client.send(connect_bytes(identity, level=5, **kwargs))
    connack = await client.read_decoded(5)
    assert isinstance(connack, Connack) and connack.reason_code == 0, connack
    return client, connack


async def subscribed(
    client: RawClient, *filters: tuple[str, int], properties: bytes = NO_PROPERTIES
) -> list[int]:
    client.send(subscribe_bytes(1, *filters, properties=properties))
    suback = await client.read_decoded(5)
    assert isinstance(suback, Suback)
    return suback.reason_codes


async def refused(connect_raw: Connect, data: bytes) -> int:
    client: RawClient = await connect_raw()
    client.send(data)
    connack = await client.read_decoded(5)
    assert isinstance(connack, Connack)
    assert await client.expect_closed() == b""
    return connack.reason_code


async def test_connack_reason_codes_0x86_0x87(connect_raw: Connect, directory: Directory) -> None:
    assert await refused(connect_raw, connect_bytes(ALICE, level=5, password="nope")) == 0x86
    assert await refused(connect_raw, connect_bytes(None, level=5)) == 0x86
    directory.upsert_client(ClientRecord(BOB.uuid, TENANT_A, BOB.token, (), (), blocked=True))
    assert await refused(connect_raw, connect_bytes(BOB, level=5)) == 0x87
    assert await refused(connect_raw, connect_bytes(BOB, level=5, will=Will("x", b""))) == 0x87


async def test_will_topic_denied_gets_0x87(connect_raw: Connect) -> None:
    assert await refused(connect_raw, connect_bytes(BOB, level=5, will=Will("nope", b"x"))) == 0x87


async def test_connack_announces_limits(connect_raw: Connect, node: BrokerNode) -> None:
    _, connack = await connected5(connect_raw)
    assert connack.properties["receive_maximum"] == node.settings.max_inflight
    assert connack.properties["maximum_packet_size"] == node.settings.max_packet_size
    assert connack.properties["topic_alias_maximum"] == node.settings.max_topic_alias


async def test_MQTT_3_2_2_16_assigned_client_identifier(connect_raw: Connect) -> None:
    _, connack = await connected5(connect_raw, client_id="")
    assert connack.properties["assigned_client_identifier"].startswith("instamsg-")


async def test_MQTT_3_1_4_3_takeover_sends_disconnect_0x8e(connect_raw: Connect) -> None:
    first, _ = await connected5(connect_raw)
    await connected5(connect_raw)
    assert await first.expect_closed() == b"\xe0\x01\x8e"


async def test_puback_pubrec_reason_codes_0x10_0x87_0x90(connect_raw: Connect, directory: Directory) -> None:
    client, _ = await connected5(connect_raw, BOB)
    client.send(publish_bytes("sensors/x", b"1", qos=1, packet_id=1, properties=NO_PROPERTIES))
    await client.expect(b"\x40\x03\x00\x01\x10")  # accepted, no matching subscribers
    client.send(publish_bytes("denied", b"1", qos=1, packet_id=2, properties=NO_PROPERTIES))
    await client.expect(b"\x40\x03\x00\x02\x87")
    client.send(publish_bytes("denied", b"1", qos=2, packet_id=3, properties=NO_PROPERTIES))
    await client.expect(b"\x50\x03\x00\x03\x87")
    unknown_peer = "0a1b2c3d-0000-4000-8000-000000000123"
    directory.upsert_client(ClientRecord(BOB.uuid, TENANT_A, BOB.token, (unknown_peer, MALLORY.uuid), ()))
    client.send(publish_bytes(unknown_peer, b"1", qos=1, packet_id=4, properties=NO_PROPERTIES))
    await client.expect(b"\x40\x03\x00\x04\x90")  # spec §6.2: unknown peer
    client.send(publish_bytes(MALLORY.uuid, b"1", qos=1, packet_id=5, properties=NO_PROPERTIES))
    await client.expect(b"\x40\x03\x00\x05\x90")  # a client of another tenant is unknown here


async def test_quota_exceeded_gets_0x97(connect_raw: Connect, directory: Directory) -> None:
    directory.upsert_tenant(TenantRecord(TENANT_A, True, max_messages=1, messages_used=0))
    client, _ = await connected5(connect_raw)
    client.send(publish_bytes("q", b"1", qos=1, packet_id=1, properties=NO_PROPERTIES))
    await client.expect(b"\x40\x03\x00\x01\x10")
    client.send(publish_bytes("q", b"2", qos=1, packet_id=2, properties=NO_PROPERTIES))
    await client.expect(b"\x40\x03\x00\x02\x97")
    directory.upsert_tenant(TenantRecord(TENANT_A, True, max_messages=2, messages_used=0))
    client.send(publish_bytes("q", b"3", qos=1, packet_id=3, properties=NO_PROPERTIES))
    await client.expect(b"\x40\x03\x00\x03\x10")


async def test_MQTT_3_9_3_1_suback_reason_codes_in_order_0x87_0x8f(connect_raw: Connect) -> None:
    client, _ = await connected5(connect_raw, BOB)
    assert await subscribed(client, ("a/b", 2), ("#", 0), ("a/#/x", 0)) == [2, 0x87, 0x8F]


async def test_MQTT_3_11_3_1_unsuback_reason_codes_in_order(connect_raw: Connect) -> None:
    client, _ = await connected5(connect_raw)
    await subscribed(client, ("u", 0))
    client.send(unsubscribe_bytes(2, "u", "never", v5=True))
    unsuback = await client.read_decoded(5)
    assert isinstance(unsuback, Unsuback) and unsuback.reason_codes == [0x00, 0x11]


async def test_MQTT_3_3_2_12_topic_alias_from_client(connect_raw: Connect) -> None:
    receiver, _ = await connected5(connect_raw, CAROL)
    await subscribed(receiver, ("alias/t", 0))
    sender, _ = await connected5(connect_raw)
    sender.send(publish_bytes("alias/t", b"1", properties=props(topic_alias=1)))
    sender.send(publish_bytes("", b"2", properties=props(topic_alias=1)))
    for payload in (b"1", b"2"):
        packet = await receiver.read_decoded(5)
        assert isinstance(packet, Publish) and packet.topic == "alias/t" and packet.payload == payload


async def test_MQTT_3_3_2_9_topic_alias_above_maximum_disconnects_0x94(connect_raw: Connect) -> None:
    sender, _ = await connected5(connect_raw)
    sender.send(publish_bytes("t", b"1", properties=props(topic_alias=1000)))
    assert await sender.expect_closed() == b"\xe0\x01\x94"


async def test_unknown_topic_alias_is_a_protocol_error(connect_raw: Connect) -> None:
    sender, _ = await connected5(connect_raw)
    sender.send(publish_bytes("", b"1", properties=props(topic_alias=3)))
    assert await sender.expect_closed() == b"\xe0\x01\x82"


async def test_MQTT_3_8_3_3_no_local(connect_raw: Connect) -> None:
    client, _ = await connected5(connect_raw)
    await subscribed(client, ("nl", 0 | 0x04))
    other, _ = await connected5(connect_raw, CAROL)
    await subscribed(other, ("nl", 0))
    client.send(publish_bytes("nl", b"x", properties=NO_PROPERTIES))
    packet = await other.read_decoded(5)
    assert isinstance(packet, Publish) and packet.payload == b"x"
    await client.expect_silence()


async def test_MQTT_3_3_1_12_13_retain_as_published(connect_raw: Connect) -> None:
    keeps, _ = await connected5(connect_raw, CAROL)
    await subscribed(keeps, ("rap", 0 | 0x08))
    clears, _ = await connected5(connect_raw)
    await subscribed(clears, ("rap", 0))
    clears.send(publish_bytes("rap", b"r", retain=True, properties=NO_PROPERTIES))
    first = await keeps.read_decoded(5)
    second = await clears.read_decoded(5)
    assert isinstance(first, Publish) and first.retain is True
    assert isinstance(second, Publish) and second.retain is False


async def test_MQTT_3_3_1_9_10_11_retain_handling(connect_raw: Connect) -> None:
    sender, _ = await connected5(connect_raw)
    sender.send(publish_bytes("rh", b"v", retain=True, properties=NO_PROPERTIES))
    client, _ = await connected5(connect_raw, CAROL)
    await subscribed(client, ("rh", 0 | 0x20))  # 2: never send
    await client.expect_silence(0.2)
    await subscribed(client, ("rh", 0 | 0x10))  # 1: replacing an existing one, not new: nothing
    await client.expect_silence(0.2)
    other, _ = await connected5(connect_raw, ALICE)
    await subscribed(other, ("rh", 0 | 0x10))  # 1: new subscription: sent
    packet = await other.read_decoded(5)
    assert isinstance(packet, Publish) and packet.retain
    await subscribed(other, ("rh", 0))  # 0: always sent
    packet = await other.read_decoded(5)
    assert isinstance(packet, Publish) and packet.retain


async def test_MQTT_3_3_4_3_4_all_subscription_identifiers_in_one_copy(connect_raw: Connect) -> None:
    client, _ = await connected5(connect_raw, CAROL)
    await subscribed(client, ("id/+", 0), properties=props(subscription_identifier=[7]))
    await subscribed(client, ("id/#", 1), properties=props(subscription_identifier=[9]))
    sender, _ = await connected5(connect_raw)
    sender.send(publish_bytes("id/x", b"v", properties=NO_PROPERTIES))
    packet = await client.read_decoded(5)
    assert isinstance(packet, Publish)
    assert sorted(packet.properties["subscription_identifier"]) == [7, 9]
    await client.expect_silence()


async def test_MQTT_3_3_2_4_16_17_18_20_properties_forwarded_unaltered(connect_raw: Connect) -> None:
    client, _ = await connected5(connect_raw, CAROL)
    await subscribed(client, ("fw", 0))
    sender, _ = await connected5(connect_raw)
    sent = props(
        user_property=[("b", "2"), ("a", "1"), ("a", "0")],
        response_topic="reply/here",
        correlation_data=b"\x01\x02",
        content_type="text/plain",
        payload_format_indicator=1,
    )
    sender.send(publish_bytes("fw", b"v", properties=sent))
    packet = await client.read_decoded(5)
    assert isinstance(packet, Publish)
    assert packet.properties["user_property"] == [("b", "2"), ("a", "1"), ("a", "0")]
    assert packet.properties["response_topic"] == "reply/here"
    assert packet.properties["correlation_data"] == b"\x01\x02"
    assert packet.properties["content_type"] == "text/plain"
    assert packet.properties["payload_format_indicator"] == 1


async def test_MQTT_3_3_2_5_6_message_expiry(connect_raw: Connect) -> None:
    client, _ = await connected5(connect_raw, CAROL, clean=False, properties={"session_expiry_interval": 60})
    await subscribed(client, ("exp", 1))
    client.send(b"\xe0\x00")
    await client.expect_closed()
    sender, _ = await connected5(connect_raw)
    sender.send(
        publish_bytes("exp", b"short", qos=1, packet_id=1, properties=props(message_expiry_interval=1))
    )
    sender.send(
        publish_bytes("exp", b"long", qos=1, packet_id=2, properties=props(message_expiry_interval=100))
    )
    await sender.read_decoded(5)
    await sender.read_decoded(5)
    await asyncio.sleep(1.1)
    client, connack = await connected5(
        connect_raw, CAROL, clean=False, properties={"session_expiry_interval": 60}
    )
    assert connack.session_present
    packet = await client.read_decoded(5)
    assert isinstance(packet, Publish) and packet.payload == b"long"
    assert 95 <= packet.properties["message_expiry_interval"] <= 100
    await client.expect_silence()


async def test_MQTT_3_3_4_9_receive_maximum_limits_inflight(connect_raw: Connect) -> None:
    client, _ = await connected5(connect_raw, CAROL, properties={"receive_maximum": 1})
    await subscribed(client, ("rm", 1))
    sender, _ = await connected5(connect_raw)
    for packet_id in (1, 2):
        sender.send(
            publish_bytes("rm", bytes([packet_id]), qos=1, packet_id=packet_id, properties=NO_PROPERTIES)
        )
    first = await client.read_decoded(5)
    assert isinstance(first, Publish) and first.payload == b"\x01"
    await client.expect_silence(0.2)
    assert first.packet_id is not None
    client.send(bytes((0x40, 2, 0, first.packet_id)))
    second = await client.read_decoded(5)
    assert isinstance(second, Publish) and second.payload == b"\x02"


async def test_MQTT_3_1_2_24_25_maximum_packet_size_of_the_client(connect_raw: Connect) -> None:
    client, _ = await connected5(connect_raw, CAROL, properties={"maximum_packet_size": 32})
    await subscribed(client, ("mps", 1))
    sender, _ = await connected5(connect_raw)
    sender.send(publish_bytes("mps", b"x" * 100, qos=1, packet_id=1, properties=NO_PROPERTIES))
    sender.send(publish_bytes("mps", b"small", qos=1, packet_id=2, properties=NO_PROPERTIES))
    packet = await client.read_decoded(5)
    assert isinstance(packet, Publish) and packet.payload == b"small"


async def test_maximum_packet_size_of_the_server_disconnects_0x95(
    connect_raw: Connect, node: BrokerNode
) -> None:
    node.settings.max_packet_size = 200
    sender, _ = await connected5(connect_raw)
    sender.send(publish_bytes("big", b"x" * 300, properties=NO_PROPERTIES))
    assert await sender.expect_closed() == b"\xe0\x01\x95"


async def test_MQTT_3_1_2_23_session_expiry_zero_discards_and_positive_keeps(connect_raw: Connect) -> None:
    client, connack = await connected5(
        connect_raw, CAROL, clean=False, properties={"session_expiry_interval": 0}
    )
    assert not connack.session_present
    client.send(b"\xe0\x00")
    await client.expect_closed()
    _, connack = await connected5(connect_raw, CAROL, clean=False, properties={"session_expiry_interval": 1})
    assert not connack.session_present
    await asyncio.sleep(0)
    _, connack = await connected5(connect_raw, CAROL, clean=False, properties={"session_expiry_interval": 1})
    assert connack.session_present  # takeover resumed it


async def test_session_expires_after_its_interval(connect_raw: Connect, node: BrokerNode) -> None:
    client, _ = await connected5(connect_raw, CAROL, properties={"session_expiry_interval": 1})
    client.send(b"\xe0\x00")
    await client.expect_closed()
    assert CAROL.uuid in node.sessions
    await asyncio.sleep(1.4)
    assert CAROL.uuid not in node.sessions


async def test_session_expiry_on_disconnect_after_zero_is_protocol_error(connect_raw: Connect) -> None:
    client, _ = await connected5(connect_raw, CAROL)
    client.send(b"\xe0\x07\x00\x05\x11\x00\x00\x00\x0a")
    assert await client.expect_closed() == b"\xe0\x01\x82"


async def test_disconnect_with_will_message_0x04_publishes_will(connect_raw: Connect) -> None:
    receiver, _ = await connected5(connect_raw, CAROL)
    await subscribed(receiver, ("will/#", 0))
    leaving, _ = await connected5(connect_raw, BOB, will=Will("will/b", b"bye"))
    leaving.send(b"\xe0\x02\x04\x00")
    packet = await receiver.read_decoded(5)
    assert isinstance(packet, Publish) and packet.topic == "will/b"


async def test_MQTT_3_1_2_8_will_published_after_will_delay(connect_raw: Connect) -> None:
    receiver, _ = await connected5(connect_raw, CAROL)
    await subscribed(receiver, ("will/#", 0))
    will = Will("will/d", b"delayed", properties={"will_delay_interval": 1})
    dying, _ = await connected5(connect_raw, BOB, will=will, properties={"session_expiry_interval": 10})
    dying.writer.transport.abort()
    await receiver.expect_silence(0.5)
    packet = await receiver.read_decoded(5, timeout=2)
    assert isinstance(packet, Publish) and packet.payload == b"delayed"


async def test_MQTT_3_1_3_9_no_will_when_client_returns_within_delay(connect_raw: Connect) -> None:
    receiver, _ = await connected5(connect_raw, CAROL)
    await subscribed(receiver, ("will/#", 0))
    will = Will("will/d", b"delayed", properties={"will_delay_interval": 1})
    dying, _ = await connected5(
        connect_raw, BOB, clean=False, will=will, properties={"session_expiry_interval": 10}
    )
    dying.writer.transport.abort()
    await asyncio.sleep(0.2)
    await connected5(connect_raw, BOB, clean=False, properties={"session_expiry_interval": 10})
    await receiver.expect_silence(1.3)


async def test_shared_subscription_round_robin(connect_raw: Connect, node: BrokerNode) -> None:
    members = []
    for identity in (CAROL, ALICE):
        client, _ = await connected5(connect_raw, identity)
        assert await subscribed(client, ("$share/g/jobs/+", 1)) == [1]
        members.append(client)
    for index in range(4):
        assert node.deliver(TENANT_A, None, "jobs/x", bytes([index]), 0) == 1
    received = []
    for client in members:
        for _ in range(2):
            packet = await client.read_decoded(5)
            assert isinstance(packet, Publish)
            received.append(packet.payload[0])
        await client.expect_silence(0.1)
    assert sorted(received) == [0, 1, 2, 3]


async def test_MQTT_3_8_3_4_no_local_on_shared_subscription_is_protocol_error(connect_raw: Connect) -> None:
    client, _ = await connected5(connect_raw)
    client.send(subscribe_bytes(1, ("$share/g/x", 0x04), properties=NO_PROPERTIES))
    assert await client.expect_closed() == b"\xe0\x01\x82"


async def test_MQTT_3_1_2_22_keep_alive_timeout_disconnect_0x8d(connect_raw: Connect) -> None:
    client, _ = await connected5(connect_raw, keep_alive=1)
    assert await client.expect_closed(timeout=4) == b"\xe0\x01\x8d"


async def test_server_keep_alive(connect_raw: Connect, node: BrokerNode) -> None:
    node.settings.max_keepalive = 30
    _, connack = await connected5(connect_raw, keep_alive=0)
    assert connack.properties["server_keep_alive"] == 30


async def test_malformed_packet_disconnect_0x81(connect_raw: Connect) -> None:
    client, _ = await connected5(connect_raw)
    client.send(b"\x30\x03\x00\x05a")  # topic length beyond the packet
    data = await client.expect_closed()
    assert data[:2] == b"\xe0\x01" and data[2] in (0x81, 0x82)


async def test_pubrec_error_ends_flow_and_unknown_pubrel_gets_0x92(connect_raw: Connect) -> None:
    receiver, _ = await connected5(connect_raw, CAROL)
    await subscribed(receiver, ("two", 2))
    sender, _ = await connected5(connect_raw)
    sender.send(publish_bytes("two", b"x", qos=2, packet_id=1, properties=NO_PROPERTIES))
    packet = await receiver.read_decoded(5)
    assert isinstance(packet, Publish) and packet.qos == 2 and packet.packet_id is not None
    receiver.send(bytes((0x50, 3, 0, packet.packet_id, 0x80)))  # refused: no PUBREL follows
    await receiver.expect_silence(0.2)
    receiver.send(b"\x62\x02\x00\x33")
    await receiver.expect(b"\x70\x03\x00\x33\x92")


async def test_qos2_inbound_completed_and_acknowledgement_types(connect_raw: Connect) -> None:
    sender, _ = await connected5(connect_raw)
    sender.send(publish_bytes("x", b"1", qos=2, packet_id=9, properties=NO_PROPERTIES))
    pubrec = await sender.read_decoded(5)
    assert isinstance(pubrec, Pubrec) and pubrec.reason_code == 0x10
    sender.send(b"\x62\x02\x00\x09")
    await sender.expect(b"\x70\x02\x00\x09")


async def test_MQTT_3_1_2_26_3_3_2_11_topic_aliases_towards_the_client(connect_raw: Connect) -> None:
    client, _ = await connected5(connect_raw, CAROL, properties={"topic_alias_maximum": 1})
    await subscribed(client, ("ta/+", 1))
    sender, _ = await connected5(connect_raw)
    for topic in ("ta/a", "ta/a", "ta/b"):
        sender.send(publish_bytes(topic, b"v", properties=NO_PROPERTIES))
    first, second, third = [await client.read_decoded(5) for _ in range(3)]
    assert isinstance(first, Publish) and first.topic == "ta/a" and first.properties["topic_alias"] == 1
    assert isinstance(second, Publish) and second.topic == "" and second.properties["topic_alias"] == 1
    # MQTT-3.3.2-?: never more aliases than the client's maximum
    assert isinstance(third, Publish) and third.topic == "ta/b" and "topic_alias" not in third.properties


async def test_MQTT_4_12_0_1_unsupported_authentication_method_gets_0x8c(connect_raw: Connect) -> None:
    data = connect_bytes(ALICE, level=5, properties={"authentication_method": "SCRAM-SHA-1"})
    assert await refused(connect_raw, data) == 0x8C


async def test_MQTT_3_3_4_7_exceeding_our_receive_maximum_disconnects_0x93(
    connect_raw: Connect, node: BrokerNode
) -> None:
    node.settings.max_inflight = 2
    sender, connack = await connected5(connect_raw)
    assert connack.properties["receive_maximum"] == 2
    for packet_id in (1, 2, 3):
        sender.send(publish_bytes("x", b"v", qos=2, packet_id=packet_id, properties=NO_PROPERTIES))
    data = await sender.expect_closed()
    assert data.endswith(b"\xe0\x01\x93")
