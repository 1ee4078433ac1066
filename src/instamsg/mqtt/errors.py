"""Errors raised by the MQTT codec.

Hierarchy::

    MqttError                       base of everything the codec raises
    ├── MalformedPacket             bad bytes; ``reason_code`` is the MQTT 5 reason to send (default 0x81)
    │   ├── PacketTooLarge          packet above the decoder's maximum size (0x95)
    │   └── ProtocolError           well-formed bytes that break a protocol rule (0x82)
    ├── UnsupportedProtocol         CONNECT with an unknown protocol name/level (CONNACK 1 / 0x84)
    ├── InvalidTopic                topic name or filter breaking the topic rules (0x90 / 0x8F)
    └── EncodeError                 (also a ValueError) a packet that cannot be encoded

The decoder raises only ``MalformedPacket`` (and subclasses) and ``UnsupportedProtocol``; after any of
them the connection must be closed (MQTT 5: after a DISCONNECT carrying ``reason_code``).
"""

from __future__ import annotations

__all__ = [
    "EncodeError",
    "InvalidTopic",
    "MalformedPacket",
    "MqttError",
    "PacketTooLarge",
    "ProtocolError",
    "ProtocolViolation",
    "UnsupportedProtocol",
]

# Literal values rather than ReasonCode members: errors.py must not depend on anything.
_MALFORMED_PACKET = 0x81
_PROTOCOL_ERROR = 0x82
_UNSUPPORTED_PROTOCOL_VERSION = 0x84
_TOPIC_FILTER_INVALID = 0x8F
_TOPIC_NAME_INVALID = 0x90
_PACKET_TOO_LARGE = 0x95


class MqttError(Exception):
    """Base class of every error raised by ``instamsg.mqtt``."""

    reason_code: int = _MALFORMED_PACKET


class MalformedPacket(MqttError):
    """The received bytes are not a valid MQTT packet; ``reason_code`` is the MQTT 5 reason to report."""

    default_reason_code: int = _MALFORMED_PACKET

    def __init__(self, message: str, reason_code: int | None = None) -> None:
        super().__init__(message)
        self.reason_code = self.default_reason_code if reason_code is None else reason_code


class PacketTooLarge(MalformedPacket):
    """The fixed header announces a packet larger than the decoder's ``max_packet_size``."""

    default_reason_code = _PACKET_TOO_LARGE


class ProtocolError(MalformedPacket):
    """The packet is well formed but breaks a protocol rule (wrong direction, duplicate property, ...)."""

    default_reason_code = _PROTOCOL_ERROR


#: Name used in the design notes (layout.md); same class.
ProtocolViolation = ProtocolError


class UnsupportedProtocol(MqttError):
    """CONNECT with a protocol name/level pair other than MQIsdp/3, MQTT/4 or MQTT/5.

    The broker answers CONNACK return code 1 (MQTT 5: 0x84) and closes the connection.
    """

    reason_code = _UNSUPPORTED_PROTOCOL_VERSION

    def __init__(self, protocol_name: str, protocol_level: int) -> None:
        super().__init__(f"unsupported protocol {protocol_name!r} level {protocol_level}")
        self.protocol_name = protocol_name
        self.protocol_level = protocol_level


class InvalidTopic(MqttError):
    """A topic name or topic filter breaks the MQTT topic rules; the message says which rule."""

    def __init__(self, message: str, *, is_filter: bool = False) -> None:
        super().__init__(message)
        self.is_filter = is_filter
        self.reason_code = _TOPIC_FILTER_INVALID if is_filter else _TOPIC_NAME_INVALID


class EncodeError(MqttError, ValueError):
    """A packet holds values that cannot be put on the wire (out of range, not allowed at that level)."""
