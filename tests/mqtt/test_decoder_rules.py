"""Decoder strictness (MQTT 3.1.1 / 5.0 normative statements), errors and reason codes.

Test names carry the normative statement they check, e.g. ``MQTT_3_1_2_3`` for [MQTT-3.1.2-3]
(MQTT 3.1.1 numbering unless the name says ``v5``).
"""

from __future__ import annotations

import pytest

from instamsg.mqtt import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    Connect,
    FrameDecoder,
    MalformedPacket,
    MqttError,
    PacketTooLarge,
    ProtocolError,
    Publish,
    ReasonCode,
    UnsupportedProtocol,
    decode_remaining_length,
)

from ._helpers import CONNECT_PRELUDE, client_decoder, h, server_decoder

STRICT_LEVELS = (MQTT_3_1_1, MQTT_5)
ALL_LEVELS = (MQTT_3_1, MQTT_3_1_1, MQTT_5)


def server_rejects(level: int, data: bytes, error: type[MqttError] = MalformedPacket) -> MqttError:
    decoder = server_decoder(level)
    with pytest.raises(error) as raised:
        decoder.feed(data)
    return raised.value


def flags_index(level: int) -> int:
    """Index of the connect-flags byte in ``CONNECT_PRELUDE[level]``."""
    return 11 if level == MQTT_3_1 else 9


def connect_rejects(data: bytes, error: type[MqttError] = MalformedPacket) -> MqttError:
    with pytest.raises(error) as raised:
        FrameDecoder().feed(data)
    return raised.value


# Fixed header


@pytest.mark.parametrize("level", STRICT_LEVELS)
@pytest.mark.parametrize(
    "wire",
    ["41 02 0001", "51 02 0001", "78 02 0001", "C1 00", "E2 00", "C8 00"],
)
def test_MQTT_2_2_2_2_invalid_fixed_header_flags_are_malformed(level: int, wire: str) -> None:
    error = server_rejects(level, h(wire))
    assert error.reason_code == ReasonCode.MALFORMED_PACKET


def test_MQTT_2_2_2_2_connect_flags_must_be_zero() -> None:
    data = bytearray(CONNECT_PRELUDE[MQTT_3_1_1])
    data[0] = 0x11
    connect_rejects(bytes(data))


def test_remaining_length_longer_than_four_bytes_is_malformed() -> None:
    error = server_rejects(MQTT_3_1_1, h("30 FF FF FF FF 01"))
    assert error.reason_code == ReasonCode.MALFORMED_PACKET
    with pytest.raises(MalformedPacket):
        decode_remaining_length(h("80 80 80 80 01"))


def test_remaining_length_longer_than_four_bytes_is_rejected_before_more_data() -> None:
    decoder = server_decoder(MQTT_3_1_1)
    with pytest.raises(MalformedPacket):
        decoder.feed(h("30 80 80 80 80"))


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("00", (0, 1)),
        ("7F", (127, 1)),
        ("80 01", (128, 2)),
        ("FF 7F", (16383, 2)),
        ("80 80 01", (16384, 3)),
        ("FF FF 7F", (2097151, 3)),
        ("80 80 80 01", (2097152, 4)),
        ("FF FF FF 7F", (268435455, 4)),
        ("9E 18", (3102, 2)),
    ],
)
def test_decode_remaining_length_table_mqtt_2_2_3(wire: str, expected: tuple[int, int]) -> None:
    assert decode_remaining_length(h(wire)) == expected
    assert decode_remaining_length(h("AA " + wire), 1) == (expected[0], expected[1] + 1)


def test_decode_remaining_length_incomplete_returns_none() -> None:
    assert decode_remaining_length(h("80 80")) is None
    assert decode_remaining_length(b"") is None


def test_packet_type_zero_is_malformed() -> None:
    server_rejects(MQTT_3_1_1, h("00 00"))


# CONNECT


def test_MQTT_3_1_0_1_first_packet_must_be_connect() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError) as raised:
        decoder.feed(h("30 07 0003 612F62 6869"))
    assert raised.value.reason_code == ReasonCode.PROTOCOL_ERROR


def test_MQTT_3_1_0_1_first_packet_rejected_on_its_first_byte() -> None:
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(h("C0"))


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_MQTT_3_1_0_2_second_connect_is_a_protocol_error(level: int) -> None:
    error = server_rejects(level, CONNECT_PRELUDE[level], ProtocolError)
    assert error.reason_code == ReasonCode.PROTOCOL_ERROR


@pytest.mark.parametrize(
    ("name", "level"),
    [("MQTT", 3), ("MQTT", 6), ("MQTT", 0), ("MQIsdp", 4), ("MQIsdp", 5), ("mqtt", 4), ("MQTX", 4)],
)
def test_MQTT_3_1_2_1_and_3_1_2_2_unsupported_protocol(name: str, level: int) -> None:
    raw_name = name.encode()
    body = len(raw_name).to_bytes(2, "big") + raw_name + bytes((level, 2)) + h("0000 0000")
    error = connect_rejects(bytes((0x10, len(body))) + body, UnsupportedProtocol)
    assert isinstance(error, UnsupportedProtocol)
    assert (error.protocol_name, error.protocol_level) == (name, level)
    assert error.reason_code == ReasonCode.UNSUPPORTED_PROTOCOL_VERSION
    assert not isinstance(error, MalformedPacket)


@pytest.mark.parametrize("level", STRICT_LEVELS)
def test_MQTT_3_1_2_3_connect_reserved_flag_must_be_zero(level: int) -> None:
    data = bytearray(CONNECT_PRELUDE[level])
    data[flags_index(level)] |= 0x01
    error = connect_rejects(bytes(data))
    assert error.reason_code == ReasonCode.MALFORMED_PACKET


def test_MQTT_3_1_2_3_reserved_flag_is_tolerated_on_mqisdp() -> None:
    data = bytearray(CONNECT_PRELUDE[MQTT_3_1])
    data[flags_index(MQTT_3_1)] |= 0x01
    assert FrameDecoder().feed(bytes(data)) == [Connect("MQIsdp", 3, True, 0, "")]


@pytest.mark.parametrize("level", ALL_LEVELS)
@pytest.mark.parametrize("flags", [0x0A, 0x12, 0x20, 0x3A])
def test_MQTT_3_1_2_13_and_3_1_2_15_will_qos_and_retain_need_the_will_flag(level: int, flags: int) -> None:
    data = bytearray(CONNECT_PRELUDE[level])
    data[flags_index(level)] = flags
    connect_rejects(bytes(data))


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_MQTT_3_1_2_14_will_qos_3_is_malformed(level: int) -> None:
    name = b"MQIsdp" if level == MQTT_3_1 else b"MQTT"
    body = (
        len(name).to_bytes(2, "big")
        + name
        + bytes((level, 0x1E))
        + h("0000")
        + (h("00") if level == MQTT_5 else b"")
        + h("0000")
        + (h("00") if level == MQTT_5 else b"")
        + h("0001 77 0000")
    )
    connect_rejects(bytes((0x10, len(body))) + body)


def test_MQTT_3_1_2_22_password_without_username_is_malformed_in_3_1_1() -> None:
    connect_rejects(h("10 0F 0004 4D515454 04 42 0000 0000 0001 70"))


def test_password_without_username_is_accepted_in_3_1_and_5() -> None:
    legacy = FrameDecoder().feed(h("10 11 0006 4D5149736470 03 42 0000 0000 0001 70"))
    assert legacy == [Connect("MQIsdp", 3, True, 0, "", None, b"p")]
    current = FrameDecoder().feed(h("10 10 0004 4D515454 05 42 0000 00 0000 0001 70"))
    assert current == [Connect("MQTT", 5, True, 0, "", None, b"p")]


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_connect_with_trailing_bytes_is_malformed(level: int) -> None:
    data = bytearray(CONNECT_PRELUDE[level] + b"\x00")
    data[1] += 1
    connect_rejects(bytes(data))


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_connect_with_username_flag_but_no_username_is_malformed(level: int) -> None:
    data = bytearray(CONNECT_PRELUDE[level])
    data[flags_index(level)] |= 0x80
    connect_rejects(bytes(data))


def test_MQTT_1_5_3_1_invalid_utf8_client_identifier_is_malformed() -> None:
    connect_rejects(h("10 0E 0004 4D515454 04 02 0000 0002 C328"))


def test_MQTT_1_5_3_1_utf16_surrogate_in_client_identifier_is_malformed() -> None:
    connect_rejects(h("10 0F 0004 4D515454 04 02 0000 0003 EDA080"))


def test_MQTT_1_5_3_2_null_character_in_client_identifier_is_malformed() -> None:
    connect_rejects(h("10 0D 0004 4D515454 04 02 0000 0001 00"))


def test_connect_sets_the_decoder_level() -> None:
    decoder = FrameDecoder()
    assert decoder.protocol_level is None
    decoder.feed(CONNECT_PRELUDE[MQTT_5])
    assert decoder.protocol_level == MQTT_5


# PUBLISH


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_MQTT_3_3_1_4_publish_qos_3_is_malformed(level: int) -> None:
    server_rejects(level, h("36 07 0003 612F62 0001"))


@pytest.mark.parametrize("level", STRICT_LEVELS)
def test_MQTT_3_3_1_2_dup_with_qos_0_is_malformed(level: int) -> None:
    server_rejects(level, h("38 06 0003 612F62 00") if level == MQTT_5 else h("38 05 0003 612F62"))


@pytest.mark.parametrize("level", ALL_LEVELS)
@pytest.mark.parametrize("topic", ["a/+", "#", "a/b#", "+"])
def test_MQTT_3_3_2_2_publish_topic_with_wildcard_is_topic_name_invalid(level: int, topic: str) -> None:
    raw = topic.encode()
    body = len(raw).to_bytes(2, "big") + raw + (b"\x00" if level == MQTT_5 else b"")
    error = server_rejects(level, bytes((0x30, len(body))) + body)
    assert error.reason_code == ReasonCode.TOPIC_NAME_INVALID


@pytest.mark.parametrize("level", (MQTT_3_1, MQTT_3_1_1))
def test_MQTT_4_7_3_1_empty_publish_topic_is_rejected(level: int) -> None:
    server_rejects(level, h("30 02 0000"))


def test_v5_empty_publish_topic_without_topic_alias_is_a_protocol_error() -> None:
    error = server_rejects(MQTT_5, h("30 03 0000 00"), ProtocolError)
    assert error.reason_code == ReasonCode.TOPIC_ALIAS_INVALID


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_MQTT_2_3_1_1_publish_packet_identifier_zero_is_rejected(level: int) -> None:
    error = server_rejects(
        level, h("32 07 0003 612F62 0000") if level != MQTT_5 else h("32 08 0003 612F62 0000 00")
    )
    assert error.reason_code == ReasonCode.PROTOCOL_ERROR


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_MQTT_1_5_3_1_publish_topic_invalid_utf8_is_malformed(level: int) -> None:
    suffix = "00" if level == MQTT_5 else ""
    wire = h("30 0" + ("5" if level == MQTT_5 else "4") + " 0002 FFFE" + suffix)
    error = server_rejects(level, wire)
    assert error.reason_code == ReasonCode.MALFORMED_PACKET


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_MQTT_1_5_3_2_publish_topic_with_null_character_is_malformed(level: int) -> None:
    wire = h("30 05 0003 610062") if level != MQTT_5 else h("30 06 0003 610062 00")
    server_rejects(level, wire)


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_publish_topic_length_beyond_packet_is_malformed(level: int) -> None:
    server_rejects(level, h("30 04 0009 6162"))


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_publish_qos1_without_room_for_packet_identifier_is_malformed(level: int) -> None:
    server_rejects(level, h("32 04 0001 61 00"))


def test_publish_payload_may_contain_anything() -> None:
    payload = bytes(range(256))
    decoder = server_decoder(MQTT_3_1_1)
    body = h("0001 74") + payload
    assert decoder.feed(bytes((0x30,)) + h("83 02") + body) == [Publish("t", payload)]


# Acknowledgements


@pytest.mark.parametrize("level", STRICT_LEVELS)
def test_MQTT_3_6_1_1_pubrel_flags_must_be_0010(level: int) -> None:
    server_rejects(level, h("60 02 0001"))
    server_rejects(level, h("63 02 0001"))


@pytest.mark.parametrize("level", ALL_LEVELS)
@pytest.mark.parametrize("first_byte", ["40", "50", "62", "70"])
def test_MQTT_2_3_1_1_acknowledgement_packet_identifier_zero_is_a_protocol_error(
    level: int, first_byte: str
) -> None:
    server_rejects(level, h(first_byte + " 02 0000"), ProtocolError)


@pytest.mark.parametrize("level", (MQTT_3_1, MQTT_3_1_1))
def test_3_x_acknowledgement_remaining_length_must_be_2(level: int) -> None:
    server_rejects(level, h("40 03 0001 00"))
    server_rejects(level, h("40 01 00"))


def test_v5_puback_invalid_reason_code_is_malformed() -> None:
    server_rejects(MQTT_5, h("40 03 0001 92"))
    server_rejects(MQTT_5, h("62 03 0001 10"))


def test_v5_puback_property_not_allowed_is_malformed() -> None:
    error = server_rejects(MQTT_5, h("40 06 0001 00 02 23 0001"))
    assert error.reason_code == ReasonCode.MALFORMED_PACKET


# SUBSCRIBE / UNSUBSCRIBE


@pytest.mark.parametrize("level", STRICT_LEVELS)
@pytest.mark.parametrize("first_byte", ["80", "81", "83", "8A"])
def test_MQTT_3_8_1_1_subscribe_flags_must_be_0010(level: int, first_byte: str) -> None:
    properties = "00" if level == MQTT_5 else ""
    length = "07" if level == MQTT_5 else "06"
    server_rejects(level, h(f"{first_byte} {length} 0001 {properties} 0001 61 00"))


@pytest.mark.parametrize("level", STRICT_LEVELS)
@pytest.mark.parametrize("first_byte", ["A0", "A3"])
def test_MQTT_3_10_1_1_unsubscribe_flags_must_be_0010(level: int, first_byte: str) -> None:
    properties = "00" if level == MQTT_5 else ""
    length = "06" if level == MQTT_5 else "05"
    server_rejects(level, h(f"{first_byte} {length} 0001 {properties} 0001 61"))


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_MQTT_3_8_3_3_subscribe_without_filters_is_a_protocol_error(level: int) -> None:
    wire = h("82 03 0001 00") if level == MQTT_5 else h("82 02 0001")
    error = server_rejects(level, wire, ProtocolError)
    assert error.reason_code == ReasonCode.PROTOCOL_ERROR


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_MQTT_3_10_3_2_unsubscribe_without_filters_is_a_protocol_error(level: int) -> None:
    wire = h("A2 03 0001 00") if level == MQTT_5 else h("A2 02 0001")
    server_rejects(level, wire, ProtocolError)


@pytest.mark.parametrize("options", ["03", "04", "41", "80", "FC"])
def test_MQTT_3_8_3_4_subscribe_reserved_option_bits_or_qos_3_are_malformed(options: str) -> None:
    server_rejects(MQTT_3_1_1, h(f"82 06 0001 0001 61 {options}"))


@pytest.mark.parametrize("options", ["03", "40", "80", "C0"])
def test_v5_MQTT_3_8_3_5_subscribe_reserved_option_bits_are_malformed(options: str) -> None:
    error = server_rejects(MQTT_5, h(f"82 07 0001 00 0001 61 {options}"))
    assert error.reason_code == ReasonCode.MALFORMED_PACKET


def test_v5_subscribe_retain_handling_3_is_a_protocol_error() -> None:
    server_rejects(MQTT_5, h("82 07 0001 00 0001 61 30"), ProtocolError)


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_MQTT_2_3_1_1_subscribe_packet_identifier_zero_is_a_protocol_error(level: int) -> None:
    wire = h("82 07 0000 00 0001 61 00") if level == MQTT_5 else h("82 06 0000 0001 61 00")
    server_rejects(level, wire, ProtocolError)


def test_subscribe_filter_without_options_byte_is_malformed() -> None:
    server_rejects(MQTT_3_1_1, h("82 05 0001 0001 61"))


def test_v5_subscribe_subscription_identifier_twice_is_a_protocol_error() -> None:
    error = server_rejects(MQTT_5, h("82 0B 0001 04 0B 01 0B 02 0001 61 00"), ProtocolError)
    assert error.reason_code == ReasonCode.PROTOCOL_ERROR


def test_v5_subscribe_subscription_identifier_zero_is_a_protocol_error() -> None:
    server_rejects(MQTT_5, h("82 09 0001 02 0B 00 0001 61 00"), ProtocolError)


# PINGREQ / DISCONNECT / AUTH / direction


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_pingreq_with_a_body_is_malformed(level: int) -> None:
    server_rejects(level, h("C0 01 00"))


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_MQTT_3_14_1_1_disconnect_reserved_flags_must_be_zero(level: int) -> None:
    server_rejects(level, h("E1 00"))


@pytest.mark.parametrize("level", (MQTT_3_1, MQTT_3_1_1))
def test_3_x_disconnect_with_a_body_is_malformed(level: int) -> None:
    server_rejects(level, h("E0 01 00"))


def test_v5_disconnect_invalid_reason_code_is_malformed() -> None:
    server_rejects(MQTT_5, h("E0 01 01"))


def test_v5_MQTT_3_15_1_1_auth_flags_must_be_zero() -> None:
    server_rejects(MQTT_5, h("F1 00"))


def test_v5_auth_invalid_reason_code_is_malformed() -> None:
    server_rejects(MQTT_5, h("F0 02 01 00"))


@pytest.mark.parametrize("level", (MQTT_3_1, MQTT_3_1_1))
def test_server_never_receives_packet_type_15_below_mqtt_5(level: int) -> None:
    server_rejects(level, h("F0 02 00 00"), ProtocolError)


@pytest.mark.parametrize("level", ALL_LEVELS)
@pytest.mark.parametrize("wire", ["20 02 00 00", "90 03 0001 00", "B0 02 0001", "D0 00"])
def test_server_rejects_server_to_client_packets(level: int, wire: str) -> None:
    server_rejects(level, h(wire), ProtocolError)


@pytest.mark.parametrize("level", ALL_LEVELS)
@pytest.mark.parametrize("wire", ["10 0C 0004 4D515454 04 02 0000 0000", "82 06 0001 0001 61 00", "C0 00"])
def test_client_rejects_client_to_server_packets(level: int, wire: str) -> None:
    with pytest.raises(ProtocolError):
        client_decoder(level).feed(h(wire))


@pytest.mark.parametrize("level", (MQTT_3_1, MQTT_3_1_1))
def test_3_x_client_never_receives_disconnect(level: int) -> None:
    with pytest.raises(ProtocolError):
        client_decoder(level).feed(h("E0 00"))


def test_client_rejects_3_1_1_connack_with_reserved_flags_or_return_code() -> None:
    with pytest.raises(MalformedPacket):
        client_decoder(MQTT_3_1_1).feed(h("20 02 02 00"))
    with pytest.raises(MalformedPacket):
        client_decoder(MQTT_3_1_1).feed(h("20 02 00 06"))
    with pytest.raises(MalformedPacket):
        client_decoder(MQTT_3_1_1).feed(h("20 03 00 00 00"))


def test_client_rejects_MQTT_3_9_3_2_reserved_suback_return_code() -> None:
    with pytest.raises(MalformedPacket):
        client_decoder(MQTT_3_1_1).feed(h("90 03 0001 03"))


def test_client_rejects_empty_suback_above_level_3() -> None:
    with pytest.raises(ProtocolError):
        client_decoder(MQTT_3_1_1).feed(h("90 02 0001"))


def test_client_rejects_short_provack() -> None:
    with pytest.raises(MalformedPacket):
        client_decoder(MQTT_3_1).feed(h("F0 01 00"))


# Size limit and failure state


def test_packet_too_large_is_raised_from_the_fixed_header_alone() -> None:
    decoder = server_decoder(MQTT_3_1_1, max_packet_size=100)
    with pytest.raises(PacketTooLarge) as raised:
        decoder.feed(h("30 E8 07"))  # announces 1000 bytes; none of them sent
    assert raised.value.reason_code == ReasonCode.PACKET_TOO_LARGE
    assert isinstance(raised.value, MalformedPacket)


def test_packet_too_large_counts_the_whole_packet() -> None:
    # The prelude CONNECT is 14 bytes; so is the first PUBLISH (2 header + 12 remaining).
    decoder = server_decoder(MQTT_3_1_1, max_packet_size=14)
    assert decoder.feed(h("30 0C 0003 612F62") + b"p" * 7) == [Publish("a/b", b"p" * 7)]
    with pytest.raises(PacketTooLarge):
        decoder.feed(h("30 0D 0003 612F62"))


def test_connect_too_large_is_rejected() -> None:
    with pytest.raises(PacketTooLarge):
        FrameDecoder(max_packet_size=10).feed(CONNECT_PRELUDE[MQTT_3_1_1])


def test_decoder_stays_failed_after_an_error() -> None:
    decoder = server_decoder(MQTT_3_1_1)
    with pytest.raises(MalformedPacket) as first:
        decoder.feed(h("36 00"))
    with pytest.raises(MalformedPacket) as second:
        decoder.feed(h("C0 00"))
    assert second.value is first.value


def test_protocol_level_setter_rejects_unknown_levels() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(server_side=False, protocol_level=6)


def test_client_side_defaults_to_3_1_1() -> None:
    assert FrameDecoder(server_side=False).protocol_level == MQTT_3_1_1
