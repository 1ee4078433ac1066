"""Reason codes and the MQTT 5 → 3.x CONNACK mapping (InstaMsg spec §4.3)."""

from __future__ import annotations

import pytest

from instamsg.mqtt import (
    MQTT_3_1_1,
    Connack,
    ConnackReturnCode,
    ProvackReturnCode,
    ReasonCode,
    connack_return_code,
    encode,
)


def test_every_mqtt_5_reason_code_value_is_present() -> None:
    values = {member.value for member in ReasonCode}
    assert values == {
        0x00, 0x01, 0x02, 0x04, 0x10, 0x11, 0x18, 0x19,
        *range(0x80, 0x8F + 1),
        *range(0x90, 0xA2 + 1),
    }  # fmt: skip
    assert ReasonCode["NORMAL_DISCONNECTION"] is ReasonCode["SUCCESS"]
    assert ReasonCode["GRANTED_QOS_0"] is ReasonCode["SUCCESS"]
    assert ReasonCode(0x95).name == "PACKET_TOO_LARGE"


@pytest.mark.parametrize(
    ("reason", "return_code"),
    [
        (0x00, 0),
        (0x84, 1),
        (0x85, 2),
        (0x88, 3),
        (0x89, 3),
        (0x86, 4),
        (0x87, 5),
        (0x8C, 4),
        (0x8A, 5),
        (0x97, 5),
        (0x80, 3),
        (0x81, 3),
        (0x8B, 3),
        (0x9C, 3),
        (0x9F, 3),
    ],
)
def test_connack_return_code_mapping(reason: int, return_code: int) -> None:
    assert connack_return_code(reason) == return_code
    assert isinstance(connack_return_code(reason), ConnackReturnCode)


def test_every_connack_reason_maps_to_a_legacy_code() -> None:
    for reason in ReasonCode:
        assert 0 <= connack_return_code(reason) <= 5


def test_encoder_uses_the_mapping_for_3_x_connack() -> None:
    assert encode(Connack(False, ReasonCode.BANNED), MQTT_3_1_1)[3] == 5


def test_provack_return_codes_spec_5_3_and_5_4() -> None:
    assert {member.name: member.value for member in ProvackReturnCode} == {
        "SUCCESS": 0,
        "UNACCEPTABLE_PROTOCOL_VERSION": 1,
        "UNKNOWN_PROVISIONING_ID": 2,
        "SERVER_UNAVAILABLE": 3,
        "BAD_PROVISIONING_KEY": 4,
        "NOT_AUTHORIZED": 5,
        "SUCCESS_WITH_CERTIFICATE": 6,
    }
