"""Byte-exact encode and decode of every packet type at every protocol level.

Each case is written out by hand from the MQTT 3.1 / 3.1.1 / 5.0 specifications and InstaMsg spec
§3.2 / §5.2, never produced by the encoder, so a wrong encoder or decoder fails here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from instamsg.mqtt import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Provack,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    SubscriptionOptions,
    Unsuback,
    Unsubscribe,
    Will,
    encode,
)

from ._helpers import decode, decode_bytewise, h

SERVER = "server"  # received by the server (sent by a client)
CLIENT = "client"  # received by a client (sent by the server)
BOTH = "both"

UUID = "cbf7d550-7204-11e4-a2ad-543530e3bc65"
TOKEN = "0bd3a1c7817a4a1da772a89fcca48523"


def ascii_hex(text: str) -> str:
    return text.encode("ascii").hex()


@dataclass
class Case:
    name: str
    level: int
    receiver: str
    wire: bytes
    packet: Packet
    #: False for byte layouts the decoder accepts but the encoder never produces.
    encodes: bool = True


LEGACY_CONNECT = h(
    "10 55 0006 4D5149736470 03 C2 003C"
    + "0017"
    + ascii_hex(UUID[:23])
    + "000C"
    + ascii_hex(UUID[24:])
    + "0020"
    + ascii_hex(TOKEN)
)

CASES = [
    # CONNECT
    Case(
        "connect_3_1_1_minimal",
        MQTT_3_1_1,
        SERVER,
        h("10 0F 0004 4D515454 04 02 003C 0003 616263"),
        Connect("MQTT", 4, True, 60, "abc"),
    ),
    Case(
        "connect_3_1_1_will_username_password",
        MQTT_3_1_1,
        SERVER,
        h("10 1B 0004 4D515454 04 EE 000A 0001 63 0001 77 0003 627965 0001 75 0001 70"),
        Connect("MQTT", 4, True, 10, "c", "u", b"p", Will("w", b"bye", 1, True)),
    ),
    Case(
        "connect_3_1_legacy_layout_a_flags_c2",
        MQTT_3_1,
        SERVER,
        LEGACY_CONNECT,
        Connect("MQIsdp", 3, True, 60, UUID[:23], UUID[24:], TOKEN.encode()),
    ),
    Case(
        "connect_5_session_expiry",
        MQTT_5,
        SERVER,
        h("10 13 0004 4D515454 05 02 003C 05 11 0000000A 0001 63"),
        Connect("MQTT", 5, True, 60, "c", properties={"session_expiry_interval": 10}),
    ),
    Case(
        "connect_5_will_properties_password_without_username",
        MQTT_5,
        SERVER,
        h("10 1E 0004 4D515454 05 46 0000 00 0001 63 05 18 00000005 0001 77 0001 21 0002 7077"),
        Connect("MQTT", 5, True, 0, "c", None, b"pw", Will("w", b"!", 0, False, {"will_delay_interval": 5})),
    ),
    # CONNACK
    Case("connack_3_1_accepted", MQTT_3_1, CLIENT, h("20 02 00 00"), Connack(False, 0)),
    Case("connack_3_1_refused_4", MQTT_3_1, CLIENT, h("20 02 00 04"), Connack(False, 4)),
    Case("connack_3_1_1_session_present", MQTT_3_1_1, CLIENT, h("20 02 01 00"), Connack(True, 0)),
    Case("connack_3_1_1_not_authorized", MQTT_3_1_1, CLIENT, h("20 02 00 05"), Connack(False, 5)),
    Case("connack_5_success", MQTT_5, CLIENT, h("20 03 00 00 00"), Connack(False, 0)),
    Case("connack_5_bad_credentials", MQTT_5, CLIENT, h("20 03 00 86 00"), Connack(False, 0x86)),
    Case(
        "connack_5_assigned_client_identifier",
        MQTT_5,
        CLIENT,
        h("20 07 01 00 04 12 0001 78"),
        Connack(True, 0, {"assigned_client_identifier": "x"}),
    ),
    # PUBLISH
    Case("publish_3_1_1_qos0", MQTT_3_1_1, BOTH, h("30 07 0003 612F62 6869"), Publish("a/b", b"hi")),
    Case(
        "publish_3_1_1_qos1_retain_dup",
        MQTT_3_1_1,
        BOTH,
        h("3B 09 0003 612F62 000A 6869"),
        Publish("a/b", b"hi", 1, True, True, 10),
    ),
    Case(
        "publish_3_1_qos2_empty_payload",
        MQTT_3_1,
        BOTH,
        h("34 07 0003 612F62 1234"),
        Publish("a/b", b"", 2, False, False, 0x1234),
    ),
    Case(
        "publish_3_1_1_two_byte_remaining_length",
        MQTT_3_1_1,
        BOTH,
        h("30 CB 01 0001 74") + b"x" * 200,
        Publish("t", b"x" * 200),
    ),
    Case("publish_5_qos0", MQTT_5, BOTH, h("30 08 0003 612F62 00 6869"), Publish("a/b", b"hi")),
    Case(
        "publish_5_qos2_properties",
        MQTT_5,
        BOTH,
        h("34 13 0003 612F62 0001 09 02 0000003C 03 0001 74 6869"),
        Publish("a/b", b"hi", 2, False, False, 1, {"message_expiry_interval": 60, "content_type": "t"}),
    ),
    Case(
        "publish_5_topic_alias_empty_topic",
        MQTT_5,
        BOTH,
        h("30 08 0000 03 23 0005 6869"),
        Publish("", b"hi", properties={"topic_alias": 5}),
    ),
    Case(
        "publish_5_repeated_subscription_identifiers_and_user_properties",
        MQTT_5,
        CLIENT,
        h("30 18 0001 74 13 0B 01 0B 8001 26 0001 6B 0001 76 26 0001 6B 0001 77 70"),
        Publish(
            "t",
            b"p",
            properties={"subscription_identifier": [1, 128], "user_property": [("k", "v"), ("k", "w")]},
        ),
    ),
    # PUBACK, PUBREC, PUBREL, PUBCOMP
    Case("puback_3_1_1", MQTT_3_1_1, BOTH, h("40 02 000A"), Puback(10)),
    Case("pubrec_3_1_1", MQTT_3_1_1, BOTH, h("50 02 000A"), Pubrec(10)),
    Case("pubrel_3_1_1", MQTT_3_1_1, BOTH, h("62 02 000A"), Pubrel(10)),
    Case("pubcomp_3_1_1", MQTT_3_1_1, BOTH, h("70 02 000A"), Pubcomp(10)),
    Case("puback_3_1", MQTT_3_1, BOTH, h("40 02 FFFF"), Puback(65535)),
    Case("pubrel_3_1", MQTT_3_1, BOTH, h("62 02 0001"), Pubrel(1)),
    Case("puback_5_success_short_form", MQTT_5, BOTH, h("40 02 000A"), Puback(10)),
    Case("puback_5_no_matching_subscribers", MQTT_5, BOTH, h("40 03 000A 10"), Puback(10, 0x10)),
    Case(
        "puback_5_reason_string",
        MQTT_5,
        BOTH,
        h("40 09 000A 80 05 1F 0002 6E6F"),
        Puback(10, 0x80, {"reason_string": "no"}),
    ),
    Case("pubrec_5_reason_and_empty_properties", MQTT_5, BOTH, h("50 04 000A 00 00"), Pubrec(10), False),
    Case("pubrel_5_identifier_not_found", MQTT_5, BOTH, h("62 03 000A 92"), Pubrel(10, 0x92)),
    Case("pubcomp_5", MQTT_5, BOTH, h("70 02 0003"), Pubcomp(3)),
    # SUBSCRIBE / SUBACK
    Case(
        "subscribe_3_1_1_two_filters",
        MQTT_3_1_1,
        SERVER,
        h("82 0C 0001 0003 612F2B 01 0001 23 00"),
        Subscribe(1, [("a/+", SubscriptionOptions(1)), ("#", SubscriptionOptions(0))]),
    ),
    Case(
        "subscribe_3_1",
        MQTT_3_1,
        SERVER,
        h("82 08 0002 0003 612F62 00"),
        Subscribe(2, [("a/b", SubscriptionOptions(0))]),
    ),
    Case(
        "subscribe_5_options_and_subscription_identifier",
        MQTT_5,
        SERVER,
        h("82 0B 0001 02 0B 05 0003 612F2B 2E"),
        Subscribe(1, [("a/+", SubscriptionOptions(2, True, True, 2))], {"subscription_identifier": [5]}),
    ),
    Case("suback_3_1_1", MQTT_3_1_1, CLIENT, h("90 04 0001 01 80"), Suback(1, [1, 0x80])),
    Case("suback_3_1_granted", MQTT_3_1, CLIENT, h("90 03 0001 01"), Suback(1, [1])),
    Case("suback_3_1_empty_legacy_a_q2", MQTT_3_1, CLIENT, h("90 02 000A"), Suback(10, [])),
    Case("suback_5", MQTT_5, CLIENT, h("90 05 0001 00 02 8F"), Suback(1, [2, 0x8F])),
    # UNSUBSCRIBE / UNSUBACK
    Case("unsubscribe_3_1_1", MQTT_3_1_1, SERVER, h("A2 07 0002 0003 612F62"), Unsubscribe(2, ["a/b"])),
    Case("unsubscribe_5", MQTT_5, SERVER, h("A2 08 0002 00 0003 612F62"), Unsubscribe(2, ["a/b"])),
    Case("unsuback_3_1_1", MQTT_3_1_1, CLIENT, h("B0 02 0002"), Unsuback(2)),
    Case("unsuback_5", MQTT_5, CLIENT, h("B0 05 0002 00 00 11"), Unsuback(2, [0, 0x11])),
    # PINGREQ / PINGRESP
    Case("pingreq_3_1", MQTT_3_1, SERVER, h("C0 00"), Pingreq()),
    Case("pingreq_5", MQTT_5, SERVER, h("C0 00"), Pingreq()),
    Case("pingresp_3_1", MQTT_3_1, CLIENT, h("D0 00"), Pingresp()),
    Case("pingresp_5", MQTT_5, CLIENT, h("D0 00"), Pingresp()),
    # DISCONNECT
    Case("disconnect_3_1_1", MQTT_3_1_1, SERVER, h("E0 00"), Disconnect()),
    Case("disconnect_3_1", MQTT_3_1, SERVER, h("E0 00"), Disconnect()),
    Case("disconnect_5_normal", MQTT_5, BOTH, h("E0 00"), Disconnect()),
    Case("disconnect_5_session_taken_over", MQTT_5, BOTH, h("E0 01 8E"), Disconnect(0x8E)),
    Case(
        "disconnect_5_session_expiry",
        MQTT_5,
        SERVER,
        h("E0 07 00 05 11 00000000"),
        Disconnect(0, {"session_expiry_interval": 0}),
    ),
    # AUTH (MQTT 5)
    Case("auth_5_success_short_form", MQTT_5, BOTH, h("F0 00"), Auth()),
    Case(
        "auth_5_continue",
        MQTT_5,
        BOTH,
        h("F0 06 18 04 15 0001 6D"),
        Auth(0x18, {"authentication_method": "m"}),
    ),
    # PROVACK (InstaMsg spec §5.2-§5.4)
    Case("provack_3_1_failure_spec_5_4", MQTT_3_1, CLIENT, h("F0 02 00 04"), Provack(4)),
    Case("provack_3_1_1_failure", MQTT_3_1_1, CLIENT, h("F0 02 00 02"), Provack(2)),
    Case(
        "provack_3_1_success_spec_5_3",
        MQTT_3_1,
        CLIENT,
        h("F0 47 00 00") + f"{UUID}-{TOKEN}".encode(),
        Provack(0, f"{UUID}-{TOKEN}".encode()),
    ),
    Case(
        "provack_3_1_3100_byte_payload_spec_5_2",
        MQTT_3_1,
        CLIENT,
        h("F0 9E 18 00 06") + b"{" * 3100,
        Provack(6, b"{" * 3100),
    ),
]


def _receivers(case: Case) -> list[bool]:
    return {SERVER: [True], CLIENT: [False], BOTH: [True, False]}[case.receiver]


@pytest.mark.parametrize("case", [case for case in CASES if case.encodes], ids=lambda case: case.name)
def test_encode_is_byte_exact(case: Case) -> None:
    assert encode(case.packet, case.level) == case.wire


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_decode_is_exact(case: Case) -> None:
    for server_side in _receivers(case):
        assert decode(case.wire, case.level, server_side=server_side) == [case.packet]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_decode_byte_by_byte_gives_the_same_packet(case: Case) -> None:
    for server_side in _receivers(case):
        assert decode_bytewise(case.wire, case.level, server_side=server_side) == [case.packet]


def test_spec_5_3_provack_example_starts_with_f0_47_00_00() -> None:
    wire = encode(Provack(0, f"{UUID}-{TOKEN}".encode()), MQTT_3_1)
    assert len(wire) == 2 + 71
    assert wire.startswith(h("F0 47 00 00 63 62 66 37 64 35 35 30 2D"))
    assert wire.endswith(h("32 33"))


def test_spec_5_2_provack_3100_byte_payload_has_remaining_length_9e_18() -> None:
    assert encode(Provack(0, b"a" * 3100), MQTT_3_1)[:5] == h("F0 9E 18 00 00")


def test_decoded_packet_types_match_the_packet_type_enum() -> None:
    for case in CASES:
        assert case.wire[0] >> 4 == case.packet.packet_type
