"""MQTT 3.1.1 over a real loopback socket: exact bytes in, exact bytes out, one test per statement."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from instamsg.broker import BrokerNode, ClientRecord, Directory, TenantRecord
from instamsg.mqtt.packets import Will
from tests.broker.support import (
    ALICE,
    BOB,
    CAROL,
    TENANT_A,
    Identity,
    RawClient,
    connect_bytes,
    publish_bytes,
    subscribe_bytes,
    unsubscribe_bytes,
)

Connect = Callable[[], Any]
ACCEPTED = b"\x20\x02\x00\x00"


async def connected(connect_raw: Connect, identity: Identity = ALICE, **kwargs: Any) -> RawClient:
    client: RawClient = await connect_raw()
    answer = await client.connect(identity, **kwargs)
    assert answer[:3] == b"\x20\x02" + answer[2:3] and answer[3] == 0, answer
    return client


# ---- CONNECT / CONNACK ---------------------------------------------------------------------------


async def test_MQTT_3_1_0_1_first_packet_must_be_connect(connect_raw: Connect) -> None:
    client = await connect_raw()
    client.send(b"\xc0\x00")
    assert await client.expect_closed() == b""


async def test_MQTT_3_1_0_2_second_connect_is_a_protocol_violation(connect_raw: Connect) -> None:
    client = await connected(connect_raw)
    client.send(connect_bytes(ALICE))
    assert await client.expect_closed() == b""


async def test_MQTT_3_1_2_2_unsupported_level_gets_return_code_1(connect_raw: Connect) -> None:
    client = await connect_raw()
    client.send(b"\x10\x0c\x00\x04MQTT\x07\x02\x00\x3c\x00\x00")
    assert await client.expect_closed() == b"\x20\x02\x00\x01"


async def test_MQTT_3_1_3_8_empty_client_id_with_clean_session_0_gets_2(connect_raw: Connect) -> None:
    client = await connect_raw()
    assert await client.connect(ALICE, client_id="", clean=False) == b"\x20\x02\x00\x02"
    assert await client.expect_closed() == b""


async def test_MQTT_3_1_3_6_empty_client_id_with_clean_session_1_accepted(connect_raw: Connect) -> None:
    client = await connect_raw()
    assert await client.connect(ALICE, client_id="") == ACCEPTED


async def test_bad_token_unknown_client_and_no_username_get_4(connect_raw: Connect) -> None:
    for data in (
        connect_bytes(ALICE, password="wrong"),
        connect_bytes(Identity("0a1b2c3d-0000-4000-8000-000000000099", "x" * 32)),
        connect_bytes(None),
        connect_bytes(Identity("not-a-uuid", "a" * 32)),
    ):
        client = await connect_raw()
        client.send(data)
        assert await client.expect_closed() == b"\x20\x02\x00\x04"


async def test_blocked_client_and_inactive_tenant_get_5(connect_raw: Connect, directory: Directory) -> None:
    directory.upsert_client(ClientRecord(BOB.uuid, TENANT_A, BOB.token, (), (), blocked=True))
    client = await connect_raw()
    client.send(connect_bytes(BOB))
    assert await client.expect_closed() == b"\x20\x02\x00\x05"
    directory.upsert_tenant(TenantRecord(TENANT_A, False, 10, 0))
    client = await connect_raw()
    client.send(connect_bytes(ALICE))
    assert await client.expect_closed() == b"\x20\x02\x00\x05"


async def test_any_client_identifier_sessions_keyed_on_uuid(connect_raw: Connect) -> None:
    first = await connected(connect_raw, client_id="EMPTY")
    second = await connected(connect_raw, client_id="something-else")  # same UUID: takes over
    assert await first.expect_closed() == b""
    second.send(b"\xc0\x00")
    await second.expect(b"\xd0\x00")


async def test_MQTT_3_1_4_2_takeover_closes_existing_connection(connect_raw: Connect) -> None:
    first = await connected(connect_raw)
    await connected(connect_raw)
    assert await first.expect_closed() == b""


async def test_MQTT_3_2_2_1_clean_session_gives_session_present_0(connect_raw: Connect) -> None:
    client = await connect_raw()
    assert await client.connect(ALICE, clean=True) == b"\x20\x02\x00\x00"


async def test_MQTT_3_2_2_2_resumed_session_gives_session_present_1(connect_raw: Connect) -> None:
    client = await connect_raw()
    assert await client.connect(ALICE, clean=False) == b"\x20\x02\x00\x00"
    client.send(b"\xe0\x00")
    await client.expect_closed()
    client = await connect_raw()
    assert await client.connect(ALICE, clean=False) == b"\x20\x02\x01\x00"


async def test_MQTT_3_1_2_6_clean_session_discards_previous_session(connect_raw: Connect) -> None:
    client = await connected(connect_raw, clean=False)
    client.send(subscribe_bytes(1, ("x", 1)))
    await client.expect(b"\x90\x03\x00\x01\x01")
    client.send(b"\xe0\x00")
    await client.expect_closed()
    client = await connect_raw()
    assert await client.connect(ALICE, clean=True) == ACCEPTED
    client.send(b"\xe0\x00")
    client = await connect_raw()
    assert await client.connect(ALICE, clean=False) == ACCEPTED  # nothing left to resume


async def test_MQTT_3_12_4_1_pingreq_answered_with_pingresp(connect_raw: Connect) -> None:
    client = await connected(connect_raw)
    client.send(b"\xc0\x00")
    await client.expect(b"\xd0\x00")


async def test_MQTT_3_1_2_24_keep_alive_one_and_a_half_times(connect_raw: Connect) -> None:
    client = await connected(connect_raw, keep_alive=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    client.send(b"\xc0\x00")  # activity resets the clock
    await client.expect(b"\xd0\x00")
    assert await client.expect_closed(timeout=4) == b""
    assert loop.time() - started >= 1.4


async def test_keep_alive_zero_never_times_out(connect_raw: Connect) -> None:
    client = await connected(connect_raw, keep_alive=0)
    await client.expect_silence(1.8)
    client.send(b"\xc0\x00")
    await client.expect(b"\xd0\x00")


async def test_connect_timeout_for_silent_sockets(connect_raw: Connect) -> None:
    client = await connect_raw()
    assert await client.expect_closed(timeout=4) == b""


# ---- PUBLISH and QoS -----------------------------------------------------------------------------


async def test_MQTT_3_3_4_1_qos1_puback_and_qos2_pubrec_pubrel_pubcomp(connect_raw: Connect) -> None:
    client = await connected(connect_raw)
    client.send(publish_bytes("t", b"1", qos=1, packet_id=10))
    await client.expect(b"\x40\x02\x00\x0a")
    client.send(publish_bytes("t", b"2", qos=2, packet_id=11))
    await client.expect(b"\x50\x02\x00\x0b")
    client.send(b"\x62\x02\x00\x0b")
    await client.expect(b"\x70\x02\x00\x0b")  # MQTT-3.6.4-1


async def test_MQTT_4_3_3_2_qos2_duplicate_delivered_once(connect_raw: Connect) -> None:
    receiver = await connected(connect_raw, CAROL)
    receiver.send(subscribe_bytes(1, ("t", 0)))
    await receiver.expect(b"\x90\x03\x00\x01\x00")
    sender = await connected(connect_raw)
    sender.send(publish_bytes("t", b"x", qos=2, packet_id=5))
    await sender.expect(b"\x50\x02\x00\x05")
    sender.send(publish_bytes("t", b"x", qos=2, packet_id=5, dup=True))
    await sender.expect(b"\x50\x02\x00\x05")
    sender.send(b"\x62\x02\x00\x05")
    await sender.expect(b"\x70\x02\x00\x05")
    await receiver.expect(publish_bytes("t", b"x"))
    await receiver.expect_silence()


async def test_delivered_qos_is_min_of_published_and_granted(connect_raw: Connect) -> None:
    receiver = await connected(connect_raw, CAROL)
    receiver.send(subscribe_bytes(1, ("q/0", 0), ("q/1", 1), ("q/2", 2)))
    await receiver.expect(b"\x90\x05\x00\x01\x00\x01\x02")
    sender = await connected(connect_raw)
    sender.send(publish_bytes("q/0", b"a", qos=2, packet_id=1))
    sender.send(publish_bytes("q/1", b"b", qos=2, packet_id=2))
    sender.send(publish_bytes("q/2", b"c", qos=1, packet_id=3))
    await receiver.expect(publish_bytes("q/0", b"a"))
    await receiver.expect(publish_bytes("q/1", b"b", qos=1, packet_id=1))
    await receiver.expect(publish_bytes("q/2", b"c", qos=1, packet_id=2))


async def test_MQTT_3_3_5_1_overlapping_subscriptions_delivered_once_at_max_qos(connect_raw: Connect) -> None:
    receiver = await connected(connect_raw, CAROL)
    receiver.send(subscribe_bytes(1, ("o/+", 0), ("o/#", 1), ("o/x", 0)))
    await receiver.expect(b"\x90\x05\x00\x01\x00\x01\x00")
    sender = await connected(connect_raw)
    sender.send(publish_bytes("o/x", b"m", qos=1, packet_id=9))
    await receiver.expect(publish_bytes("o/x", b"m", qos=1, packet_id=1))
    await receiver.expect_silence()


async def test_MQTT_4_3_2_1_and_4_3_3_1_outbound_qos1_qos2_flows(connect_raw: Connect) -> None:
    receiver = await connected(connect_raw, CAROL)
    receiver.send(subscribe_bytes(1, ("f", 2)))
    await receiver.expect(b"\x90\x03\x00\x01\x02")
    sender = await connected(connect_raw)
    sender.send(publish_bytes("f", b"2", qos=2, packet_id=1))
    await receiver.expect(publish_bytes("f", b"2", qos=2, packet_id=1))
    receiver.send(b"\x50\x02\x00\x01")
    await receiver.expect(b"\x62\x02\x00\x01")
    receiver.send(b"\x70\x02\x00\x01")
    sender.send(publish_bytes("f", b"1", qos=1, packet_id=2))
    await receiver.expect(publish_bytes("f", b"1", qos=1, packet_id=2))
    receiver.send(b"\x40\x02\x00\x02")


async def test_MQTT_3_3_2_2_wildcard_in_topic_name_closes(connect_raw: Connect) -> None:
    client = await connected(connect_raw)
    client.send(publish_bytes("a/+", b"x"))
    assert await client.expect_closed() == b""


async def test_MQTT_3_3_1_4_qos_3_is_malformed(connect_raw: Connect) -> None:
    client = await connected(connect_raw)
    client.send(b"\x36\x05\x00\x01t\x00\x01")
    assert await client.expect_closed() == b""


async def test_MQTT_3_3_1_9_retain_cleared_for_established_subscriptions(connect_raw: Connect) -> None:
    receiver = await connected(connect_raw, CAROL)
    receiver.send(subscribe_bytes(1, ("r", 0)))
    await receiver.expect(b"\x90\x03\x00\x01\x00")
    sender = await connected(connect_raw)
    sender.send(publish_bytes("r", b"v", retain=True))
    await receiver.expect(publish_bytes("r", b"v", retain=False))


async def test_MQTT_3_3_1_8_retained_message_sent_on_subscribe_with_retain_set(connect_raw: Connect) -> None:
    sender = await connected(connect_raw)
    sender.send(publish_bytes("r/1", b"v", qos=1, packet_id=1, retain=True))
    await sender.expect(b"\x40\x02\x00\x01")
    receiver = await connected(connect_raw, CAROL)
    receiver.send(subscribe_bytes(3, ("r/+", 1)))
    await receiver.expect(b"\x90\x03\x00\x03\x01")
    await receiver.expect(publish_bytes("r/1", b"v", qos=1, packet_id=1, retain=True))


async def test_MQTT_3_3_1_10_empty_retained_payload_clears_and_is_forwarded(connect_raw: Connect) -> None:
    sender = await connected(connect_raw)
    sender.send(publish_bytes("r/2", b"v", retain=True))
    receiver = await connected(connect_raw, CAROL)
    receiver.send(subscribe_bytes(1, ("r/2", 0)))
    await receiver.expect(b"\x90\x03\x00\x01\x00")
    await receiver.expect(publish_bytes("r/2", b"v", retain=True))
    sender.send(publish_bytes("r/2", b"", retain=True))
    await receiver.expect(publish_bytes("r/2", b""))  # MQTT-3.3.1-11 is delivered as normal
    late = await connected(connect_raw, BOB)
    late.send(subscribe_bytes(1, ("a/#", 0)))
    await late.expect(b"\x90\x03\x00\x01\x00")
    await late.expect_silence()


async def test_MQTT_3_8_4_3_resubscribe_replaces_and_resends_retained(connect_raw: Connect) -> None:
    sender = await connected(connect_raw)
    sender.send(publish_bytes("s", b"v", retain=True))
    receiver = await connected(connect_raw, CAROL)
    receiver.send(subscribe_bytes(1, ("s", 0)))
    await receiver.expect(b"\x90\x03\x00\x01\x00")
    await receiver.expect(publish_bytes("s", b"v", retain=True))
    receiver.send(subscribe_bytes(2, ("s", 1)))
    await receiver.expect(b"\x90\x03\x00\x02\x01")
    await receiver.expect(publish_bytes("s", b"v", retain=True))
    sender.send(publish_bytes("s", b"w", qos=1, packet_id=4))
    await receiver.expect(publish_bytes("s", b"w", qos=1, packet_id=1))
    await receiver.expect_silence()


async def test_MQTT_4_7_2_1_leading_wildcards_do_not_match_dollar_topics(
    connect_raw: Connect, node: BrokerNode, directory: Directory
) -> None:
    directory.upsert_client(ClientRecord(ALICE.uuid, TENANT_A, ALICE.token, ("#",), ("$x/#",)))
    everything = await connected(connect_raw, CAROL)
    everything.send(subscribe_bytes(1, ("#", 0), ("+/y", 0)))
    await everything.expect(b"\x90\x04\x00\x01\x00\x00")
    dollar = await connected(connect_raw, ALICE)
    dollar.send(subscribe_bytes(1, ("$x/#", 0)))
    await dollar.expect(b"\x90\x03\x00\x01\x00")
    assert node.deliver(TENANT_A, None, "$x/y", b"d", 0) == 1
    await dollar.expect(publish_bytes("$x/y", b"d"))
    await everything.expect_silence()


# ---- SUBSCRIBE / UNSUBSCRIBE ---------------------------------------------------------------------


async def test_MQTT_3_8_1_1_subscribe_reserved_bits_must_be_0010(connect_raw: Connect) -> None:
    client = await connected(connect_raw)
    client.send(b"\x80\x06\x00\x01\x00\x01x\x00")
    assert await client.expect_closed() == b""


async def test_MQTT_3_9_3_1_return_codes_in_order_refused_get_0x80(connect_raw: Connect) -> None:
    client = await connected(connect_raw, BOB)
    client.send(subscribe_bytes(7, ("a/b", 1), ("sensors/#", 1), ("#", 0)))
    await client.expect(b"\x90\x05\x00\x07\x01\x80\x80")


async def test_invalid_filter_gets_0x80(connect_raw: Connect) -> None:
    client = await connected(connect_raw)
    client.send(subscribe_bytes(7, ("a/#/b", 1), ("ok", 1)))
    await client.expect(b"\x90\x04\x00\x07\x80\x01")


async def test_MQTT_3_10_4_4_5_unsuback_even_without_match_and_delivery_stops(connect_raw: Connect) -> None:
    receiver = await connected(connect_raw, CAROL)
    receiver.send(unsubscribe_bytes(3, "never"))
    await receiver.expect(b"\xb0\x02\x00\x03")
    receiver.send(subscribe_bytes(4, ("u", 0)))
    await receiver.expect(b"\x90\x03\x00\x04\x00")
    receiver.send(unsubscribe_bytes(5, "u"))
    await receiver.expect(b"\xb0\x02\x00\x05")
    sender = await connected(connect_raw)
    sender.send(publish_bytes("u", b"x"))
    await receiver.expect_silence()


# ---- wills ---------------------------------------------------------------------------------------


async def test_MQTT_3_1_2_8_will_published_on_abnormal_close(connect_raw: Connect) -> None:
    receiver = await connected(connect_raw, CAROL)
    receiver.send(subscribe_bytes(1, ("will/#", 1)))
    await receiver.expect(b"\x90\x03\x00\x01\x01")
    dying = await connected(connect_raw, BOB, will=Will("will/bob", b"gone", qos=1))
    dying.writer.transport.abort()
    await receiver.expect(publish_bytes("will/bob", b"gone", qos=1, packet_id=1))


async def test_will_published_on_keep_alive_expiry(connect_raw: Connect) -> None:
    receiver = await connected(connect_raw, CAROL)
    receiver.send(subscribe_bytes(1, ("will/#", 0)))
    await receiver.expect(b"\x90\x03\x00\x01\x00")
    await connected(connect_raw, BOB, keep_alive=1, will=Will("will/ka", b"late"))
    await receiver.expect(publish_bytes("will/ka", b"late"), timeout=4)


async def test_MQTT_3_14_4_3_will_discarded_on_disconnect(connect_raw: Connect) -> None:
    receiver = await connected(connect_raw, CAROL)
    receiver.send(subscribe_bytes(1, ("will/#", 0)))
    await receiver.expect(b"\x90\x03\x00\x01\x00")
    leaving = await connected(connect_raw, BOB, will=Will("will/bob", b"gone"))
    leaving.send(b"\xe0\x00")
    await leaving.expect_closed()
    await receiver.expect_silence()


async def test_will_topic_must_pass_publish_acl(connect_raw: Connect) -> None:
    client = await connect_raw()
    client.send(connect_bytes(BOB, will=Will("not/allowed", b"x")))
    assert await client.expect_closed() == b"\x20\x02\x00\x05"


async def test_retained_will(connect_raw: Connect) -> None:
    dying = await connected(connect_raw, BOB, will=Will("will/r", b"last", retain=True))
    dying.writer.transport.abort()
    await asyncio.sleep(0.2)
    receiver = await connected(connect_raw, CAROL)
    receiver.send(subscribe_bytes(1, ("will/r", 0)))
    await receiver.expect(b"\x90\x03\x00\x01\x00")
    await receiver.expect(publish_bytes("will/r", b"last", retain=True))


# ---- persistent sessions -------------------------------------------------------------------------


async def test_MQTT_3_1_2_4_persistent_session_queues_qos1_while_offline(connect_raw: Connect) -> None:
    receiver = await connected(connect_raw, CAROL, clean=False)
    receiver.send(subscribe_bytes(1, ("p", 1)))
    await receiver.expect(b"\x90\x03\x00\x01\x01")
    receiver.send(b"\xe0\x00")
    await receiver.expect_closed()
    sender = await connected(connect_raw)
    sender.send(publish_bytes("p", b"q0"))  # QoS 0 is not queued for offline sessions
    sender.send(publish_bytes("p", b"q1", qos=1, packet_id=1))
    await sender.expect(b"\x40\x02\x00\x01")
    receiver = await connect_raw()
    assert await receiver.connect(CAROL, clean=False) == b"\x20\x02\x01\x00"
    await receiver.expect(publish_bytes("p", b"q1", qos=1, packet_id=1))
    await receiver.expect_silence()


async def test_MQTT_4_4_0_1_unacknowledged_redelivered_with_dup_on_reconnect(connect_raw: Connect) -> None:
    receiver = await connected(connect_raw, CAROL, clean=False)
    receiver.send(subscribe_bytes(1, ("d", 2)))
    await receiver.expect(b"\x90\x03\x00\x01\x02")
    sender = await connected(connect_raw)
    sender.send(publish_bytes("d", b"1", qos=1, packet_id=1))
    sender.send(publish_bytes("d", b"2", qos=2, packet_id=2))
    await receiver.expect(publish_bytes("d", b"1", qos=1, packet_id=1))
    await receiver.expect(publish_bytes("d", b"2", qos=2, packet_id=2))
    receiver.send(b"\x50\x02\x00\x02")  # PUBREC for the QoS 2 one
    await receiver.expect(b"\x62\x02\x00\x02")
    receiver.writer.transport.abort()
    await asyncio.sleep(0.1)
    receiver = await connect_raw()
    assert await receiver.connect(CAROL, clean=False) == b"\x20\x02\x01\x00"
    await receiver.expect(publish_bytes("d", b"1", qos=1, packet_id=1, dup=True))
    await receiver.expect(b"\x62\x02\x00\x02")  # the PUBREL is re-sent, not the PUBLISH
    receiver.send(b"\x40\x02\x00\x01")
    receiver.send(b"\x70\x02\x00\x02")
    await receiver.expect_silence()


async def test_session_resumed_through_takeover(connect_raw: Connect, node: BrokerNode) -> None:
    first = await connected(connect_raw, CAROL, clean=False)
    first.send(subscribe_bytes(1, ("k", 1)))
    await first.expect(b"\x90\x03\x00\x01\x01")
    second = await connect_raw()
    assert await second.connect(CAROL, clean=False) == b"\x20\x02\x01\x00"
    assert await first.expect_closed() == b""
    sender = await connected(connect_raw)
    sender.send(publish_bytes("k", b"v", qos=1, packet_id=1))
    await second.expect(publish_bytes("k", b"v", qos=1, packet_id=1))
    assert node.statistics().sessions == 2


async def test_MQTT_4_6_0_ordered_delivery_per_topic(connect_raw: Connect) -> None:
    receiver = await connected(connect_raw, CAROL)
    receiver.send(subscribe_bytes(1, ("order", 1)))
    await receiver.expect(b"\x90\x03\x00\x01\x01")
    sender = await connected(connect_raw)
    for index in range(1, 151):
        sender.send(publish_bytes("order", index.to_bytes(2, "big"), qos=1, packet_id=index))
    for index in range(1, 151):
        # the 64-message window refills as we acknowledge, in order
        await receiver.expect(publish_bytes("order", index.to_bytes(2, "big"), qos=1, packet_id=index))
        receiver.send(bytes((0x40, 2)) + index.to_bytes(2, "big"))
    acknowledgements = await sender.read_exactly(4 * 150)
    assert acknowledgements == b"".join(b"\x40\x02" + index.to_bytes(2, "big") for index in range(1, 151))


async def test_takeover_publishes_the_old_connections_will(connect_raw: Connect) -> None:
    receiver = await connected(connect_raw, CAROL)
    receiver.send(subscribe_bytes(1, ("will/#", 0)))
    await receiver.expect(b"\x90\x03\x00\x01\x00")
    await connected(connect_raw, BOB, will=Will("will/old", b"replaced"))
    await connected(connect_raw, BOB)
    await receiver.expect(publish_bytes("will/old", b"replaced"))
