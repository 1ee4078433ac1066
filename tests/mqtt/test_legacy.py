"""MQIsdp / level 3 leniency (InstaMsg spec §3.2) and the provisioning ack (§5.2-§5.4)."""

from __future__ import annotations

import pytest

from instamsg.mqtt import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    Auth,
    Connack,
    Connect,
    FrameDecoder,
    MalformedPacket,
    Provack,
    Pubrel,
    Suback,
    Subscribe,
    SubscriptionOptions,
    Unsubscribe,
    encode,
)

from ._helpers import client_decoder, h, server_decoder


@pytest.mark.parametrize("first_byte", ["82", "80"])
def test_spec_3_2_mqisdp_subscribe_flags_0010_or_0000(first_byte: str) -> None:
    packets = server_decoder(MQTT_3_1).feed(h(f"{first_byte} 08 0001 0003 612F62 01"))
    assert packets == [Subscribe(1, [("a/b", SubscriptionOptions(1))])]


@pytest.mark.parametrize("first_byte", ["A2", "A0"])
def test_spec_3_2_mqisdp_unsubscribe_flags_0010_or_0000(first_byte: str) -> None:
    assert server_decoder(MQTT_3_1).feed(h(f"{first_byte} 07 0001 0003 612F62")) == [Unsubscribe(1, ["a/b"])]


@pytest.mark.parametrize("first_byte", ["62", "60"])
def test_spec_3_2_mqisdp_pubrel_flags_0010_or_0000(first_byte: str) -> None:
    assert server_decoder(MQTT_3_1).feed(h(f"{first_byte} 02 0005")) == [Pubrel(5)]


def test_spec_3_2_mqisdp_client_side_pubrel_flags_0000() -> None:
    assert client_decoder(MQTT_3_1).feed(h("60 02 0005")) == [Pubrel(5)]


@pytest.mark.parametrize("first_byte", ["81", "84", "88"])
def test_mqisdp_leniency_is_limited_to_0000(first_byte: str) -> None:
    with pytest.raises(MalformedPacket):
        server_decoder(MQTT_3_1).feed(h(f"{first_byte} 06 0001 0001 61 00"))


@pytest.mark.parametrize("client_id", ["", "a" * 23, "b" * 24, "c" * 200, "EMPTY", "PROVISIONING"])
def test_spec_3_2_mqisdp_client_identifier_of_any_length(client_id: str) -> None:
    raw = client_id.encode()
    body = h("0006 4D5149736470 03 02 003C") + len(raw).to_bytes(2, "big") + raw
    remaining = len(body)
    length = bytes((remaining,)) if remaining < 128 else bytes(((remaining & 0x7F) | 0x80, remaining >> 7))
    assert FrameDecoder().feed(b"\x10" + length + body) == [Connect("MQIsdp", 3, True, 60, client_id)]


def test_spec_4_1_layout_p_provisioning_connect_without_password() -> None:
    # Python omits the password flag when the provisioning key is empty.
    wire = h("10 26 0006 4D5149736470 03 82 003C 000C") + b"PROVISIONING" + h("000A") + b"IMEI123456"
    assert FrameDecoder().feed(wire) == [Connect("MQIsdp", 3, True, 60, "PROVISIONING", "IMEI123456")]


def test_spec_3_2_mqisdp_connack_is_exactly_four_bytes() -> None:
    for code in range(6):
        assert encode(Connack(True, code), MQTT_3_1) == bytes((0x20, 0x02, 0x00, code))


def test_spec_q2_empty_suback_encodes_as_90_02_00_0a() -> None:
    assert encode(Suback(10, []), MQTT_3_1) == h("90 02 00 0A")


@pytest.mark.parametrize("level", [MQTT_3_1, MQTT_3_1_1])
def test_client_side_type_15_is_provack_below_level_5(level: int) -> None:
    assert client_decoder(level).feed(h("F0 02 00 04")) == [Provack(4)]


def test_client_side_type_15_is_auth_on_level_5() -> None:
    assert client_decoder(MQTT_5).feed(h("F0 02 00 00")) == [Auth(0)]


def test_provack_payload_keeps_everything_up_to_the_end_of_the_packet() -> None:
    payload = b'{"client_id": "x", "secure_ssl_certificate": true, "certificate": "a\\nb"}'
    wire = encode(Provack(6, payload), MQTT_3_1)
    assert wire[:4] == bytes((0xF0, 2 + len(payload), 0x00, 0x06))
    assert wire[4:] == payload
    # Followed by more bytes on the stream, the payload still ends at the packet boundary.
    assert client_decoder(MQTT_3_1).feed(wire + h("D0 00"))[0] == Provack(6, payload)


def test_provack_ignores_the_acknowledge_flags_byte() -> None:
    assert client_decoder(MQTT_3_1).feed(h("F0 03 01 00 41")) == [Provack(0, b"A")]


def test_mqisdp_connack_first_byte_is_ignored_on_decode() -> None:
    assert client_decoder(MQTT_3_1).feed(h("20 02 01 06")) == [Connack(False, 6)]
