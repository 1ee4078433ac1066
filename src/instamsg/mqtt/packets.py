"""MQTT packet classes shared by the decoder and the encoder.

The classes are plain slotted dataclasses without validation: the decoder checks the wire rules and
the encoder the value ranges, so building a packet costs one ``__init__`` call.

Conventions that hold for every MQTT level:

- ``properties`` is a :class:`Properties` dict, empty for MQTT 3.x and for MQTT 5 packets without
  properties. ``user_property`` is a list of ``(key, value)`` pairs in wire order and
  ``subscription_identifier`` a list of ints (one element in SUBSCRIBE).
- ``reason_code`` holds the MQTT 3.x return code on levels 3/4 where the packet has one
  (CONNACK return code, SUBACK return codes) and the MQTT 5 reason code on level 5.
- Packet identifiers are ints 1-65535; ``Publish.packet_id`` is ``None`` for QoS 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, TypedDict

__all__ = [
    "MQTT_3_1",
    "MQTT_3_1_1",
    "MQTT_5",
    "PROTOCOL_NAMES",
    "Auth",
    "Connack",
    "Connect",
    "Disconnect",
    "Packet",
    "PacketType",
    "Pingreq",
    "Pingresp",
    "Properties",
    "Provack",
    "Puback",
    "Pubcomp",
    "Publish",
    "Pubrec",
    "Pubrel",
    "Suback",
    "Subscribe",
    "SubscriptionOptions",
    "Unsuback",
    "Unsubscribe",
    "Will",
]

#: MQTT 3.1, protocol name ``MQIsdp`` (the official InstaMsg libraries).
MQTT_3_1 = 3
#: MQTT 3.1.1, protocol name ``MQTT``.
MQTT_3_1_1 = 4
#: MQTT 5.0, protocol name ``MQTT``.
MQTT_5 = 5

#: The protocol name that goes with each supported level.
PROTOCOL_NAMES: dict[int, str] = {MQTT_3_1: "MQIsdp", MQTT_3_1_1: "MQTT", MQTT_5: "MQTT"}


class PacketType(IntEnum):
    """MQTT control packet types (high nibble of the first byte)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    #: AUTH on MQTT 5; the same value is InstaMsg's PROVACK on levels 3/4 (server to client only).
    AUTH = 15
    PROVACK = 15


class Properties(TypedDict, total=False):
    """MQTT 5 properties by snake_case name (MQTT 5.0 §2.2.2.2); see ``properties.PROPERTY_TABLE``."""

    payload_format_indicator: int
    message_expiry_interval: int
    content_type: str
    response_topic: str
    correlation_data: bytes
    subscription_identifier: list[int]
    session_expiry_interval: int
    assigned_client_identifier: str
    server_keep_alive: int
    authentication_method: str
    authentication_data: bytes
    request_problem_information: int
    will_delay_interval: int
    request_response_information: int
    response_information: str
    server_reference: str
    reason_string: str
    receive_maximum: int
    topic_alias_maximum: int
    topic_alias: int
    maximum_qos: int
    retain_available: int
    user_property: list[tuple[str, str]]
    maximum_packet_size: int
    wildcard_subscription_available: int
    subscription_identifier_available: int
    shared_subscription_available: int


def _no_properties() -> Properties:
    return {}


@dataclass(slots=True)
class Will:
    """Will message carried in CONNECT."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = field(default_factory=_no_properties)


@dataclass(slots=True)
class Connect:
    """CONNECT. ``clean_start`` is "clean session" on 3.x."""

    packet_type: ClassVar[PacketType] = PacketType.CONNECT
    protocol_name: str = "MQTT"
    protocol_level: int = MQTT_3_1_1
    clean_start: bool = True
    keep_alive: int = 0
    client_id: str = ""
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: Properties = field(default_factory=_no_properties)


@dataclass(slots=True)
class Connack:
    """CONNACK. ``reason_code`` is the 3.x return code (0-5) on levels 3/4, the MQTT 5 reason on 5."""

    packet_type: ClassVar[PacketType] = PacketType.CONNACK
    session_present: bool = False
    reason_code: int = 0
    properties: Properties = field(default_factory=_no_properties)


@dataclass(slots=True)
class Publish:
    """PUBLISH. ``packet_id`` is None for QoS 0. On MQTT 5 ``topic`` may be "" with a ``topic_alias``."""

    packet_type: ClassVar[PacketType] = PacketType.PUBLISH
    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: Properties = field(default_factory=_no_properties)


@dataclass(slots=True)
class Puback:
    """PUBACK (QoS 1 acknowledgement)."""

    packet_type: ClassVar[PacketType] = PacketType.PUBACK
    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=_no_properties)


@dataclass(slots=True)
class Pubrec:
    """PUBREC (QoS 2, step 1)."""

    packet_type: ClassVar[PacketType] = PacketType.PUBREC
    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=_no_properties)


@dataclass(slots=True)
class Pubrel:
    """PUBREL (QoS 2, step 2)."""

    packet_type: ClassVar[PacketType] = PacketType.PUBREL
    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=_no_properties)


@dataclass(slots=True)
class Pubcomp:
    """PUBCOMP (QoS 2, step 3)."""

    packet_type: ClassVar[PacketType] = PacketType.PUBCOMP
    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=_no_properties)


@dataclass(slots=True)
class SubscriptionOptions:
    """Per-filter SUBSCRIBE options; on 3.x only ``qos`` is on the wire."""

    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


@dataclass(slots=True)
class Subscribe:
    """SUBSCRIBE: ``subscriptions`` is a list of ``(topic_filter, options)`` in wire order."""

    packet_type: ClassVar[PacketType] = PacketType.SUBSCRIBE
    packet_id: int
    subscriptions: list[tuple[str, SubscriptionOptions]]
    properties: Properties = field(default_factory=_no_properties)


@dataclass(slots=True)
class Suback:
    """SUBACK. ``reason_codes`` may be empty (legacy-A workaround, spec Q2)."""

    packet_type: ClassVar[PacketType] = PacketType.SUBACK
    packet_id: int
    reason_codes: list[int]
    properties: Properties = field(default_factory=_no_properties)


@dataclass(slots=True)
class Unsubscribe:
    """UNSUBSCRIBE."""

    packet_type: ClassVar[PacketType] = PacketType.UNSUBSCRIBE
    packet_id: int
    filters: list[str]
    properties: Properties = field(default_factory=_no_properties)


@dataclass(slots=True)
class Unsuback:
    """UNSUBACK. ``reason_codes`` exist on MQTT 5 only (empty on 3.x)."""

    packet_type: ClassVar[PacketType] = PacketType.UNSUBACK
    packet_id: int
    reason_codes: list[int] = field(default_factory=list)
    properties: Properties = field(default_factory=_no_properties)


@dataclass(slots=True)
class Pingreq:
    """PINGREQ."""

    packet_type: ClassVar[PacketType] = PacketType.PINGREQ


@dataclass(slots=True)
class Pingresp:
    """PINGRESP."""

    packet_type: ClassVar[PacketType] = PacketType.PINGRESP


@dataclass(slots=True)
class Disconnect:
    """DISCONNECT. Reason code and properties exist on MQTT 5 only."""

    packet_type: ClassVar[PacketType] = PacketType.DISCONNECT
    reason_code: int = 0
    properties: Properties = field(default_factory=_no_properties)


@dataclass(slots=True)
class Auth:
    """AUTH (MQTT 5 only)."""

    packet_type: ClassVar[PacketType] = PacketType.AUTH
    reason_code: int = 0
    properties: Properties = field(default_factory=_no_properties)


@dataclass(slots=True)
class Provack:
    """InstaMsg provisioning ack (spec §5.2): type 15 on MQIsdp/3 (and 3.1.1) connections only.

    Wire layout: ``F0 <remaining length = 2 + len(payload)> 00 <return_code> <payload, no length prefix>``.
    """

    packet_type: ClassVar[PacketType] = PacketType.PROVACK
    return_code: int = 0
    payload: bytes = b""


Packet = (
    Connect
    | Connack
    | Publish
    | Puback
    | Pubrec
    | Pubrel
    | Pubcomp
    | Subscribe
    | Suback
    | Unsubscribe
    | Unsuback
    | Pingreq
    | Pingresp
    | Disconnect
    | Auth
    | Provack
)
