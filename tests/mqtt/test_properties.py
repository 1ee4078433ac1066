"""MQTT 5 properties (MQTT 5.0 §2.2.2): table, codec, repetition and per-packet rules."""

from __future__ import annotations

from typing import Any

import pytest

from instamsg.mqtt import (
    MQTT_5,
    PROPERTY_BY_ID,
    PROPERTY_BY_NAME,
    PROPERTY_TABLE,
    WILL_PROPERTIES,
    EncodeError,
    MalformedPacket,
    PacketType,
    Properties,
    PropertyId,
    PropertyType,
    ProtocolError,
    Publish,
    ReasonCode,
    decode_properties,
    encode,
    encode_properties,
)

from ._helpers import h, server_decoder

P = PacketType


def decode_block(data: bytes, packet_type: int) -> Properties:
    properties, position = decode_properties(data, 0, len(data), packet_type)
    assert position == len(data)
    return properties


def test_table_has_every_mqtt_5_property_once() -> None:
    assert len(PROPERTY_TABLE) == 27
    assert {spec.identifier for spec in PROPERTY_TABLE} == {member.value for member in PropertyId}
    assert set(PROPERTY_BY_NAME) == set(Properties.__annotations__)


@pytest.mark.parametrize(
    ("name", "identifier", "wire_type", "allowed"),
    [
        ("payload_format_indicator", 0x01, PropertyType.BYTE, {P.PUBLISH, WILL_PROPERTIES}),
        ("message_expiry_interval", 0x02, PropertyType.FOUR_BYTE_INTEGER, {P.PUBLISH, WILL_PROPERTIES}),
        ("content_type", 0x03, PropertyType.UTF8_STRING, {P.PUBLISH, WILL_PROPERTIES}),
        ("response_topic", 0x08, PropertyType.UTF8_STRING, {P.PUBLISH, WILL_PROPERTIES}),
        ("correlation_data", 0x09, PropertyType.BINARY_DATA, {P.PUBLISH, WILL_PROPERTIES}),
        ("subscription_identifier", 0x0B, PropertyType.VARIABLE_BYTE_INTEGER, {P.PUBLISH, P.SUBSCRIBE}),
        (
            "session_expiry_interval",
            0x11,
            PropertyType.FOUR_BYTE_INTEGER,
            {P.CONNECT, P.CONNACK, P.DISCONNECT},
        ),
        ("assigned_client_identifier", 0x12, PropertyType.UTF8_STRING, {P.CONNACK}),
        ("server_keep_alive", 0x13, PropertyType.TWO_BYTE_INTEGER, {P.CONNACK}),
        ("authentication_method", 0x15, PropertyType.UTF8_STRING, {P.CONNECT, P.CONNACK, P.AUTH}),
        ("authentication_data", 0x16, PropertyType.BINARY_DATA, {P.CONNECT, P.CONNACK, P.AUTH}),
        ("request_problem_information", 0x17, PropertyType.BYTE, {P.CONNECT}),
        ("will_delay_interval", 0x18, PropertyType.FOUR_BYTE_INTEGER, {WILL_PROPERTIES}),
        ("request_response_information", 0x19, PropertyType.BYTE, {P.CONNECT}),
        ("response_information", 0x1A, PropertyType.UTF8_STRING, {P.CONNACK}),
        ("server_reference", 0x1C, PropertyType.UTF8_STRING, {P.CONNACK, P.DISCONNECT}),
        (
            "reason_string",
            0x1F,
            PropertyType.UTF8_STRING,
            {P.CONNACK, P.PUBACK, P.PUBREC, P.PUBREL, P.PUBCOMP, P.SUBACK, P.UNSUBACK, P.DISCONNECT, P.AUTH},
        ),
        ("receive_maximum", 0x21, PropertyType.TWO_BYTE_INTEGER, {P.CONNECT, P.CONNACK}),
        ("topic_alias_maximum", 0x22, PropertyType.TWO_BYTE_INTEGER, {P.CONNECT, P.CONNACK}),
        ("topic_alias", 0x23, PropertyType.TWO_BYTE_INTEGER, {P.PUBLISH}),
        ("maximum_qos", 0x24, PropertyType.BYTE, {P.CONNACK}),
        ("retain_available", 0x25, PropertyType.BYTE, {P.CONNACK}),
        ("maximum_packet_size", 0x27, PropertyType.FOUR_BYTE_INTEGER, {P.CONNECT, P.CONNACK}),
        ("wildcard_subscription_available", 0x28, PropertyType.BYTE, {P.CONNACK}),
        ("subscription_identifier_available", 0x29, PropertyType.BYTE, {P.CONNACK}),
        ("shared_subscription_available", 0x2A, PropertyType.BYTE, {P.CONNACK}),
    ],
)
def test_property_table_row(name: str, identifier: int, wire_type: PropertyType, allowed: set[int]) -> None:
    spec = PROPERTY_BY_NAME[name]
    assert spec.identifier == identifier
    assert PROPERTY_BY_ID[identifier] is spec
    assert spec.wire_type is wire_type
    assert spec.allowed_in == allowed


def test_user_property_is_allowed_everywhere_and_repeats() -> None:
    spec = PROPERTY_BY_NAME["user_property"]
    assert spec.identifier == 0x26
    assert spec.wire_type is PropertyType.UTF8_STRING_PAIR
    assert spec.allowed_in == spec.repeatable_in
    assert len(spec.allowed_in) == 14  # 13 packet types with properties + will properties


@pytest.mark.parametrize(
    ("properties", "packet_type", "wire"),
    [
        ({}, P.PUBLISH, "00"),
        ({"payload_format_indicator": 1}, P.PUBLISH, "02 01 01"),
        ({"message_expiry_interval": 0x01020304}, P.PUBLISH, "05 02 01020304"),
        ({"content_type": "json"}, P.PUBLISH, "07 03 0004 6A736F6E"),
        ({"correlation_data": b"\x00\xff"}, P.PUBLISH, "05 09 0002 00FF"),
        ({"subscription_identifier": [268435455]}, P.PUBLISH, "05 0B FFFFFF7F"),
        ({"subscription_identifier": [1, 2]}, P.PUBLISH, "04 0B 01 0B 02"),
        ({"server_keep_alive": 300}, P.CONNACK, "03 13 012C"),
        (
            {"user_property": [("a", "1"), ("a", "2")]},
            P.DISCONNECT,
            "0E 26 0001 61 0001 31 26 0001 61 0001 32",
        ),
        ({"will_delay_interval": 7}, WILL_PROPERTIES, "05 18 00000007"),
        ({"receive_maximum": 20, "maximum_packet_size": 1024}, P.CONNECT, "08 21 0014 27 00000400"),
    ],
)
def test_property_block_byte_exact(properties: Properties, packet_type: int, wire: str) -> None:
    assert encode_properties(properties, packet_type) == h(wire)
    assert decode_block(h(wire), packet_type) == properties


def test_empty_user_property_strings_are_allowed() -> None:
    assert decode_block(h("05 26 0000 0000"), P.PUBLISH) == {"user_property": [("", "")]}


@pytest.mark.parametrize(
    ("wire", "packet_type"),
    [
        ("03 23 0001", P.CONNECT),  # topic alias in CONNECT
        ("05 11 00000001", P.PUBLISH),  # session expiry in PUBLISH
        ("05 18 00000001", P.CONNECT),  # will delay outside the will
        ("02 0B 01", P.UNSUBSCRIBE),
        ("02 24 01", P.CONNECT),  # maximum QoS is CONNACK only
    ],
)
def test_property_not_allowed_in_packet_is_malformed(wire: str, packet_type: int) -> None:
    with pytest.raises(MalformedPacket) as raised:
        decode_block(h(wire), packet_type)
    assert raised.value.reason_code == ReasonCode.MALFORMED_PACKET
    assert not isinstance(raised.value, ProtocolError)


def test_unknown_property_identifier_is_malformed() -> None:
    with pytest.raises(MalformedPacket) as raised:
        decode_block(h("02 7F 00"), P.PUBLISH)
    assert raised.value.reason_code == ReasonCode.MALFORMED_PACKET


@pytest.mark.parametrize(
    ("wire", "packet_type"),
    [
        ("04 01 00 01 01", P.PUBLISH),
        ("0A 02 00000001 02 00000001", P.PUBLISH),
        ("06 23 0001 23 0002", P.PUBLISH),
        ("04 0B 01 0B 02", P.SUBSCRIBE),
        ("06 21 0001 21 0001", P.CONNECT),
        ("08 1F 0001 61 1F 0001 62", P.PUBACK),
        ("0A 18 00000001 18 00000001", WILL_PROPERTIES),
    ],
)
def test_duplicated_property_is_a_protocol_error(wire: str, packet_type: int) -> None:
    with pytest.raises(ProtocolError) as raised:
        decode_block(h(wire), packet_type)
    assert raised.value.reason_code == ReasonCode.PROTOCOL_ERROR


@pytest.mark.parametrize(
    ("wire", "packet_type", "reason_code"),
    [
        ("02 01 02", P.PUBLISH, ReasonCode.PROTOCOL_ERROR),  # payload format indicator 2
        ("03 21 0000", P.CONNECT, ReasonCode.PROTOCOL_ERROR),  # receive maximum 0
        ("05 27 00000000", P.CONNECT, ReasonCode.PROTOCOL_ERROR),  # maximum packet size 0
        ("02 17 02", P.CONNECT, ReasonCode.PROTOCOL_ERROR),  # request problem information 2
        ("02 24 02", P.CONNACK, ReasonCode.PROTOCOL_ERROR),  # maximum QoS 2
        ("02 0B 00", P.PUBLISH, ReasonCode.PROTOCOL_ERROR),  # subscription identifier 0
        ("03 23 0000", P.PUBLISH, ReasonCode.TOPIC_ALIAS_INVALID),  # topic alias 0
    ],
)
def test_property_value_out_of_range(wire: str, packet_type: int, reason_code: int) -> None:
    with pytest.raises(ProtocolError) as raised:
        decode_block(h(wire), packet_type)
    assert raised.value.reason_code == reason_code


@pytest.mark.parametrize(
    "wire",
    [
        "05 02 000001",  # property length beyond the data
        "02 02 00",  # four-byte integer cut short
        "01 23",  # two-byte integer missing
        "03 03 0005 61",  # string longer than the block
        "04 0B 80 80 80",  # unterminated varint
        "06 0B 80 80 80 80 01",  # varint of five bytes
        "04 03 0002 FF",  # not enough for the declared string
        "05 03 0002 C328",  # invalid UTF-8
        "04 03 0001 00",  # U+0000
        "06 26 0001 61 0001",  # pair with a truncated value
        "80 80 80 80 01",  # property length varint of five bytes
    ],
)
def test_malformed_property_block(wire: str) -> None:
    data = h(wire)
    with pytest.raises(MalformedPacket):
        decode_properties(data, 0, len(data), P.PUBLISH)


def test_property_block_bounded_by_packet_end() -> None:
    # The property length says 3 but the packet ends after 2 bytes of the block.
    data = h("03 23 0001 FF")
    with pytest.raises(MalformedPacket):
        decode_properties(data, 0, 3, P.PUBLISH)


@pytest.mark.parametrize(
    ("properties", "packet_type"),
    [
        ({"topic_alias": 1}, P.CONNECT),
        ({"nonsense": 1}, P.PUBLISH),
        ({"topic_alias": 0}, P.PUBLISH),
        ({"topic_alias": 65536}, P.PUBLISH),
        ({"payload_format_indicator": 2}, P.PUBLISH),
        ({"subscription_identifier": [1, 2]}, P.SUBSCRIBE),
        ({"subscription_identifier": 5}, P.PUBLISH),
        ({"content_type": b"bytes"}, P.PUBLISH),
        ({"correlation_data": "text"}, P.PUBLISH),
        ({"message_expiry_interval": -1}, P.PUBLISH),
    ],
)
def test_encode_properties_refuses_invalid_values(properties: dict[str, Any], packet_type: int) -> None:
    with pytest.raises(EncodeError):
        encode_properties(properties, packet_type)  # type: ignore[arg-type]


def test_publish_with_a_connack_property_is_malformed_on_the_wire() -> None:
    decoder = server_decoder(MQTT_5)
    with pytest.raises(MalformedPacket):
        decoder.feed(h("30 07 0001 74 03 13 0001"))


def test_publish_properties_round_trip_through_the_decoder() -> None:
    properties: Properties = {
        "payload_format_indicator": 1,
        "message_expiry_interval": 3600,
        "content_type": "application/json",
        "response_topic": "reply/here",
        "correlation_data": b"\x01\x02",
        "user_property": [("k", "v"), ("k", "v2"), ("other", "")],
    }
    publish = Publish("a/b", b"{}", 1, False, False, 9, properties)
    assert server_decoder(MQTT_5).feed(encode(publish, MQTT_5)) == [publish]
