"""MQTT 5 reason codes, MQTT 3.x CONNACK return codes and InstaMsg PROVACK return codes."""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "ConnackReturnCode",
    "ProvackReturnCode",
    "ReasonCode",
    "connack_return_code",
]


class ReasonCode(IntEnum):
    """Every MQTT 5 reason code (MQTT 5.0 §2.4). Several names share a value (0x00)."""

    SUCCESS = 0x00
    NORMAL_DISCONNECTION = 0x00
    GRANTED_QOS_0 = 0x00
    GRANTED_QOS_1 = 0x01
    GRANTED_QOS_2 = 0x02
    DISCONNECT_WITH_WILL_MESSAGE = 0x04
    NO_MATCHING_SUBSCRIBERS = 0x10
    NO_SUBSCRIPTION_EXISTED = 0x11
    CONTINUE_AUTHENTICATION = 0x18
    RE_AUTHENTICATE = 0x19
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    BAD_USER_NAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_UNAVAILABLE = 0x88
    SERVER_BUSY = 0x89
    BANNED = 0x8A
    SERVER_SHUTTING_DOWN = 0x8B
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    PACKET_IDENTIFIER_IN_USE = 0x91
    PACKET_IDENTIFIER_NOT_FOUND = 0x92
    RECEIVE_MAXIMUM_EXCEEDED = 0x93
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    MESSAGE_RATE_TOO_HIGH = 0x96
    QUOTA_EXCEEDED = 0x97
    ADMINISTRATIVE_ACTION = 0x98
    PAYLOAD_FORMAT_INVALID = 0x99
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    USE_ANOTHER_SERVER = 0x9C
    SERVER_MOVED = 0x9D
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
    CONNECTION_RATE_EXCEEDED = 0x9F
    MAXIMUM_CONNECT_TIME = 0xA0
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2


class ConnackReturnCode(IntEnum):
    """MQTT 3.1 / 3.1.1 CONNACK return codes (InstaMsg spec §4.3)."""

    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USERNAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


class ProvackReturnCode(IntEnum):
    """InstaMsg PROVACK return codes (spec §5.3, §5.4); legacy clients read 1-5 like CONNACK codes."""

    SUCCESS = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    UNKNOWN_PROVISIONING_ID = 2
    SERVER_UNAVAILABLE = 3
    BAD_PROVISIONING_KEY = 4
    NOT_AUTHORIZED = 5
    SUCCESS_WITH_CERTIFICATE = 6


# Besides the five codes the specification pairs up, failures are sorted by what the legacy client
# should do: 4 for credential problems (Python raises "bad credentials"), 5 for refusals by policy that
# retrying will not fix, and 3 ("server unavailable", Python waits and retries) for everything else,
# since those are transient or server-side conditions.
_CONNACK_RETURN_CODES: dict[int, ConnackReturnCode] = {
    ReasonCode.SUCCESS: ConnackReturnCode.ACCEPTED,
    ReasonCode.UNSUPPORTED_PROTOCOL_VERSION: ConnackReturnCode.UNACCEPTABLE_PROTOCOL_VERSION,
    ReasonCode.CLIENT_IDENTIFIER_NOT_VALID: ConnackReturnCode.IDENTIFIER_REJECTED,
    ReasonCode.SERVER_UNAVAILABLE: ConnackReturnCode.SERVER_UNAVAILABLE,
    ReasonCode.SERVER_BUSY: ConnackReturnCode.SERVER_UNAVAILABLE,
    ReasonCode.BAD_USER_NAME_OR_PASSWORD: ConnackReturnCode.BAD_USERNAME_OR_PASSWORD,
    ReasonCode.NOT_AUTHORIZED: ConnackReturnCode.NOT_AUTHORIZED,
    ReasonCode.BAD_AUTHENTICATION_METHOD: ConnackReturnCode.BAD_USERNAME_OR_PASSWORD,
    ReasonCode.BANNED: ConnackReturnCode.NOT_AUTHORIZED,
    ReasonCode.TOPIC_NAME_INVALID: ConnackReturnCode.NOT_AUTHORIZED,
    ReasonCode.PAYLOAD_FORMAT_INVALID: ConnackReturnCode.NOT_AUTHORIZED,
    ReasonCode.RETAIN_NOT_SUPPORTED: ConnackReturnCode.NOT_AUTHORIZED,
    ReasonCode.QOS_NOT_SUPPORTED: ConnackReturnCode.NOT_AUTHORIZED,
    ReasonCode.QUOTA_EXCEEDED: ConnackReturnCode.NOT_AUTHORIZED,
}


def connack_return_code(reason_code: int) -> ConnackReturnCode:
    """Map an MQTT 5 CONNACK reason code to the MQTT 3.1/3.1.1 return code (0-5).

    0x00→0, 0x84→1, 0x85→2, 0x88/0x89→3, 0x86→4, 0x87→5 as in spec §4.3. Others: 0x8C→4;
    0x8A, 0x90, 0x97, 0x99, 0x9A, 0x9B→5 (policy refusals); any other value, including
    0x80-0x83, 0x8B, 0x95, 0x9C, 0x9D and 0x9F, → 3 (server unavailable).
    """
    return _CONNACK_RETURN_CODES.get(reason_code, ConnackReturnCode.SERVER_UNAVAILABLE)
