"""Encoder: level adaptations, refusals, and the PUBLISH fan-out template."""

from __future__ import annotations

import itertools

import pytest

from instamsg.mqtt import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    Auth,
    Connack,
    Connect,
    Disconnect,
    EncodeError,
    Packet,
    Provack,
    Puback,
    Publish,
    PublishTemplate,
    Suback,
    Subscribe,
    SubscriptionOptions,
    Unsuback,
    Unsubscribe,
    Will,
    encode,
    encode_publish_parts,
    encode_remaining_length,
)

from ._helpers import LEVELS, client_decoder, h


@pytest.mark.parametrize(
    ("packet", "level", "wire"),
    [
        # Spec §3.2 / Q29: exactly 20 02 00 rc to MQIsdp clients, never a session-present bit.
        (Connack(True, 0), MQTT_3_1, "20 02 00 00"),
        (Connack(True, 0), MQTT_3_1_1, "20 02 01 00"),
        # MQTT 5 reasons become 3.x return codes (spec §4.3).
        (Connack(False, 0x84), MQTT_3_1, "20 02 00 01"),
        (Connack(False, 0x86), MQTT_3_1, "20 02 00 04"),
        (Connack(False, 0x87), MQTT_3_1_1, "20 02 00 05"),
        (Connack(False, 0x88), MQTT_3_1_1, "20 02 00 03"),
        # MQTT 5 failure codes in a 3.x SUBACK become 0x80.
        (Suback(1, [0x8F, 1, 0x87]), MQTT_3_1_1, "90 05 0001 80 01 80"),
        # Spec Q2: SUBACK with no return codes.
        (Suback(10, []), MQTT_3_1, "90 02 000A"),
        (Suback(10, []), MQTT_3_1_1, "90 02 000A"),
        # Properties and reason codes do not exist below level 5.
        (Puback(10, 0x10, {"reason_string": "x"}), MQTT_3_1_1, "40 02 000A"),
        (Publish("t", b"p", properties={"content_type": "x"}), MQTT_3_1_1, "30 04 0001 74 70"),
        (Disconnect(0x8E, {"reason_string": "x"}), MQTT_3_1_1, "E0 00"),
        (Unsuback(5, [0x11]), MQTT_3_1, "B0 02 0005"),
        (
            Subscribe(3, [("a", SubscriptionOptions(1, True, True, 2))]),
            MQTT_3_1_1,
            "82 06 0003 0001 61 01",
        ),
        (
            Unsubscribe(3, ["a", "b"], {"user_property": [("k", "v")]}),
            MQTT_3_1_1,
            "A2 08 0003 0001 61 0001 62",
        ),
        (Disconnect(0x04), MQTT_5, "E0 01 04"),
        (Provack(5), MQTT_3_1_1, "F0 02 00 05"),
    ],
)
def test_encoding_adapts_to_the_level(packet: Packet, level: int, wire: str) -> None:
    assert encode(packet, level) == h(wire)


@pytest.mark.parametrize(
    ("packet", "level"),
    [
        (Auth(), MQTT_3_1_1),
        (Auth(), MQTT_3_1),
        (Provack(0), MQTT_5),
        (Publish("t", b"", 1), MQTT_3_1_1),  # QoS 1 needs a packet id
        (Publish("t", b"", 1, packet_id=0), MQTT_3_1_1),
        (Publish("t", b"", 1, packet_id=65536), MQTT_3_1_1),
        (Publish("t", b"", 3, packet_id=1), MQTT_3_1_1),
        (Publish("t", b"", 0, dup=True), MQTT_3_1_1),
        (Publish("t" * 65536, b""), MQTT_3_1_1),
        (Publish("t", b"", properties={"session_expiry_interval": 1}), MQTT_5),
        (Puback(0), MQTT_3_1_1),
        (Subscribe(1, []), MQTT_3_1_1),
        (Subscribe(1, [("a", SubscriptionOptions(3))]), MQTT_3_1_1),
        (Subscribe(1, [("a", SubscriptionOptions(0, retain_handling=3))]), MQTT_5),
        (Unsubscribe(1, []), MQTT_3_1_1),
        (Suback(1, [256]), MQTT_3_1_1),
        (Connect("MQTT", 4, password=b"p"), MQTT_3_1_1),  # [MQTT-3.1.2-22]
        (Connect("MQTT", 4), MQTT_5),  # level mismatch
        (Connect("MQTT", 4, keep_alive=65536), MQTT_3_1_1),
        (Connect("MQTT", 4, will=Will("w", b"", 3)), MQTT_3_1_1),
        (Disconnect(), 6),
        (Disconnect(300), MQTT_5),
    ],
)
def test_encode_refuses_packets_that_cannot_be_sent(packet: Packet, level: int) -> None:
    with pytest.raises(EncodeError):
        encode(packet, level)


def test_encode_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        encode(Auth(), MQTT_3_1_1)


def test_encode_rejects_non_packets() -> None:
    with pytest.raises(EncodeError):
        encode("PUBLISH", MQTT_3_1_1)  # type: ignore[arg-type]


def test_connect_with_unsupported_level_can_be_encoded_for_testing() -> None:
    assert encode(Connect("MQTT", 6, client_id="a"), MQTT_3_1_1) == h(
        "10 0D 0004 4D515454 06 02 0000 0001 61"
    )


def test_connect_password_without_username_allowed_in_3_1() -> None:
    assert encode(Connect("MQIsdp", 3, password=b"k"), MQTT_3_1) == h(
        "10 11 0006 4D5149736470 03 42 0000 0000 0001 6B"
    )


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (0, "00"),
        (127, "7F"),
        (128, "80 01"),
        (16383, "FF 7F"),
        (16384, "80 80 01"),
        (2097151, "FF FF 7F"),
        (2097152, "80 80 80 01"),
        (268435455, "FF FF FF 7F"),
        (3102, "9E 18"),
    ],
)
def test_encode_remaining_length_table(value: int, wire: str) -> None:
    assert encode_remaining_length(value) == h(wire)


@pytest.mark.parametrize("value", [-1, 268435456])
def test_encode_remaining_length_out_of_range(value: int) -> None:
    with pytest.raises(EncodeError):
        encode_remaining_length(value)


# PublishTemplate


PAYLOADS = [b"", b"hello", b"x" * 130, b"y" * 20000]
PROPERTIES = [{}, {"content_type": "json", "user_property": [("k", "v")]}]


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda payload: f"{len(payload)}B")
@pytest.mark.parametrize("properties", PROPERTIES, ids=["no-properties", "properties"])
def test_template_parts_equal_a_full_encode(payload: bytes, properties: dict[str, object]) -> None:
    template = PublishTemplate("a/b/c", payload, properties)  # type: ignore[arg-type]
    for level, qos, retain, dup in itertools.product(LEVELS, (0, 1, 2), (False, True), (False, True)):
        if dup and not qos:
            continue
        packet_id = 1234 if qos else None
        publish = Publish("a/b/c", payload, qos, retain, dup, packet_id, properties)  # type: ignore[arg-type]
        # Twice: the second call comes from the cache.
        for _ in range(2):
            prefix, body = template.parts(level, qos, retain, dup, packet_id)
            assert body is payload
            assert prefix + body == encode(publish, level)
        assert template.packet_size(level, qos) == len(encode(publish, level))


def test_template_splices_each_packet_id() -> None:
    template = PublishTemplate("t", b"data")
    for packet_id in (1, 255, 256, 65535):
        prefix, payload = template.parts(MQTT_3_1_1, 1, False, False, packet_id)
        assert prefix == h("32 09 0001 74") + packet_id.to_bytes(2, "big")
        assert payload == b"data"


def test_template_qos0_prefix_is_shared_between_receivers() -> None:
    template = PublishTemplate("t", b"data")
    assert template.parts(MQTT_3_1_1)[0] is template.parts(MQTT_3_1_1)[0]


def test_template_extra_properties_for_one_v5_receiver() -> None:
    template = PublishTemplate("t", b"p", {"content_type": "c"})
    prefix, payload = template.parts(MQTT_5, 1, False, False, 7, {"subscription_identifier": [3, 200]})
    expected = Publish(
        "t", b"p", 1, False, False, 7, {"content_type": "c", "subscription_identifier": [3, 200]}
    )
    assert prefix + payload == encode(expected, MQTT_5)
    assert client_decoder(MQTT_5).feed(prefix + payload) == [expected]
    # The plain parts are unaffected; level 3.x ignores extra properties.
    assert template.parts(MQTT_5, 1, False, False, 7)[0] + b"p" == encode(
        Publish("t", b"p", 1, False, False, 7, {"content_type": "c"}), MQTT_5
    )
    assert template.parts(MQTT_3_1_1, 0, extra_properties={"topic_alias": 2})[0] == h("30 04 0001 74")


def test_template_topic_alias_for_one_v5_receiver() -> None:
    template = PublishTemplate("", b"p")
    prefix, payload = template.parts(MQTT_5, extra_properties={"topic_alias": 4})
    assert prefix + payload == h("30 07 0000 03 23 0004 70")


@pytest.mark.parametrize(("qos", "packet_id"), [(1, None), (1, 0), (2, 70000), (3, 1), (-1, None)])
def test_template_refuses_bad_qos_or_packet_id(qos: int, packet_id: int | None) -> None:
    with pytest.raises(EncodeError):
        PublishTemplate("t", b"").parts(MQTT_3_1_1, qos, False, False, packet_id)


def test_template_refuses_unknown_level() -> None:
    with pytest.raises(EncodeError):
        PublishTemplate("t", b"").parts(7)


def test_encode_publish_parts() -> None:
    publish = Publish("t", b"payload", 2, True, False, 9)
    prefix, payload = encode_publish_parts(publish, MQTT_3_1)
    assert prefix == h("35 0C 0001 74 0009")
    assert payload is publish.payload
