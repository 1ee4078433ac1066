"""MQTT 5 property table and codec (MQTT 5.0 §2.2.2).

Decoding rules:

- an unknown identifier, or one not allowed in the packet, or a value that does not fit in the
  property block → :class:`MalformedPacket` 0x81 (§2.2.2.2);
- a property given twice where only one is allowed → :class:`ProtocolError` 0x82;
- an out-of-range value (a 0/1 flag holding 2, Receive Maximum 0, ...) → :class:`ProtocolError` 0x82,
  Topic Alias 0 → 0x94.

``user_property`` may repeat and is a list of ``(key, value)`` pairs; ``subscription_identifier`` is a
list of ints, which may hold several values in PUBLISH and exactly one in SUBSCRIBE.
Will properties (inside CONNECT's payload) use the pseudo packet type :data:`WILL_PROPERTIES`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, NamedTuple, cast

from .errors import EncodeError, MalformedPacket, ProtocolError
from .packets import PacketType, Properties

__all__ = [
    "PROPERTY_BY_ID",
    "PROPERTY_BY_NAME",
    "PROPERTY_TABLE",
    "WILL_PROPERTIES",
    "PropertyId",
    "PropertySpec",
    "PropertyType",
    "decode_properties",
    "decode_varint",
    "encode_properties",
    "encode_varint",
]

#: Pseudo packet type for the will properties inside CONNECT (real packet types are 1-15).
WILL_PROPERTIES = 0

_VARINT_MAX = 268_435_455


class PropertyType(IntEnum):
    """Wire data types of property values (MQTT 5.0 §1.5)."""

    BYTE = 1
    TWO_BYTE_INTEGER = 2
    FOUR_BYTE_INTEGER = 3
    VARIABLE_BYTE_INTEGER = 4
    UTF8_STRING = 5
    BINARY_DATA = 6
    UTF8_STRING_PAIR = 7


class PropertyId(IntEnum):
    """MQTT 5 property identifiers."""

    PAYLOAD_FORMAT_INDICATOR = 0x01
    MESSAGE_EXPIRY_INTERVAL = 0x02
    CONTENT_TYPE = 0x03
    RESPONSE_TOPIC = 0x08
    CORRELATION_DATA = 0x09
    SUBSCRIPTION_IDENTIFIER = 0x0B
    SESSION_EXPIRY_INTERVAL = 0x11
    ASSIGNED_CLIENT_IDENTIFIER = 0x12
    SERVER_KEEP_ALIVE = 0x13
    AUTHENTICATION_METHOD = 0x15
    AUTHENTICATION_DATA = 0x16
    REQUEST_PROBLEM_INFORMATION = 0x17
    WILL_DELAY_INTERVAL = 0x18
    REQUEST_RESPONSE_INFORMATION = 0x19
    RESPONSE_INFORMATION = 0x1A
    SERVER_REFERENCE = 0x1C
    REASON_STRING = 0x1F
    RECEIVE_MAXIMUM = 0x21
    TOPIC_ALIAS_MAXIMUM = 0x22
    TOPIC_ALIAS = 0x23
    MAXIMUM_QOS = 0x24
    RETAIN_AVAILABLE = 0x25
    USER_PROPERTY = 0x26
    MAXIMUM_PACKET_SIZE = 0x27
    WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
    SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
    SHARED_SUBSCRIPTION_AVAILABLE = 0x2A


class PropertySpec(NamedTuple):
    """One row of the property table."""

    identifier: int
    name: str
    wire_type: PropertyType
    allowed_in: frozenset[int]
    #: Packet types in which the property may appear more than once (stored as a list).
    repeatable_in: frozenset[int]
    #: Stored as a list even where it may appear once only.
    is_list: bool
    #: Smallest and largest valid value for integers; out of range → ProtocolError.
    minimum: int
    maximum: int


_P = PacketType
_ALL_PACKETS = frozenset(
    {
        _P.CONNECT,
        _P.CONNACK,
        _P.PUBLISH,
        _P.PUBACK,
        _P.PUBREC,
        _P.PUBREL,
        _P.PUBCOMP,
        _P.SUBSCRIBE,
        _P.SUBACK,
        _P.UNSUBSCRIBE,
        _P.UNSUBACK,
        _P.DISCONNECT,
        _P.AUTH,
        WILL_PROPERTIES,
    }
)
_NONE: frozenset[int] = frozenset()
_B = PropertyType.BYTE
_U16 = PropertyType.TWO_BYTE_INTEGER
_U32 = PropertyType.FOUR_BYTE_INTEGER
_VAR = PropertyType.VARIABLE_BYTE_INTEGER
_STR = PropertyType.UTF8_STRING
_BIN = PropertyType.BINARY_DATA
_PAIR = PropertyType.UTF8_STRING_PAIR
_U16_MAX = 0xFFFF
_U32_MAX = 0xFFFF_FFFF


def _spec(
    identifier: PropertyId,
    wire_type: PropertyType,
    allowed_in: set[int] | frozenset[int],
    *,
    minimum: int = 0,
    maximum: int | None = None,
    repeatable_in: frozenset[int] = _NONE,
    is_list: bool = False,
) -> PropertySpec:
    if maximum is None:
        maximum = {_B: 0xFF, _U16: _U16_MAX, _U32: _U32_MAX, _VAR: _VARINT_MAX}.get(wire_type, 0)
    return PropertySpec(
        int(identifier),
        identifier.name.lower(),
        wire_type,
        frozenset(allowed_in),
        repeatable_in,
        is_list,
        minimum,
        maximum,
    )


_I = PropertyId
_RESPONSES = {_P.PUBACK, _P.PUBREC, _P.PUBREL, _P.PUBCOMP, _P.SUBACK, _P.UNSUBACK}

#: The full MQTT 5 property table (MQTT 5.0 §2.2.2.2).
PROPERTY_TABLE: tuple[PropertySpec, ...] = (
    _spec(_I.PAYLOAD_FORMAT_INDICATOR, _B, {_P.PUBLISH, WILL_PROPERTIES}, maximum=1),
    _spec(_I.MESSAGE_EXPIRY_INTERVAL, _U32, {_P.PUBLISH, WILL_PROPERTIES}),
    _spec(_I.CONTENT_TYPE, _STR, {_P.PUBLISH, WILL_PROPERTIES}),
    _spec(_I.RESPONSE_TOPIC, _STR, {_P.PUBLISH, WILL_PROPERTIES}),
    _spec(_I.CORRELATION_DATA, _BIN, {_P.PUBLISH, WILL_PROPERTIES}),
    _spec(
        _I.SUBSCRIPTION_IDENTIFIER,
        _VAR,
        {_P.PUBLISH, _P.SUBSCRIBE},
        minimum=1,
        repeatable_in=frozenset({_P.PUBLISH}),
        is_list=True,
    ),
    _spec(_I.SESSION_EXPIRY_INTERVAL, _U32, {_P.CONNECT, _P.CONNACK, _P.DISCONNECT}),
    _spec(_I.ASSIGNED_CLIENT_IDENTIFIER, _STR, {_P.CONNACK}),
    _spec(_I.SERVER_KEEP_ALIVE, _U16, {_P.CONNACK}),
    _spec(_I.AUTHENTICATION_METHOD, _STR, {_P.CONNECT, _P.CONNACK, _P.AUTH}),
    _spec(_I.AUTHENTICATION_DATA, _BIN, {_P.CONNECT, _P.CONNACK, _P.AUTH}),
    _spec(_I.REQUEST_PROBLEM_INFORMATION, _B, {_P.CONNECT}, maximum=1),
    _spec(_I.WILL_DELAY_INTERVAL, _U32, {WILL_PROPERTIES}),
    _spec(_I.REQUEST_RESPONSE_INFORMATION, _B, {_P.CONNECT}, maximum=1),
    _spec(_I.RESPONSE_INFORMATION, _STR, {_P.CONNACK}),
    _spec(_I.SERVER_REFERENCE, _STR, {_P.CONNACK, _P.DISCONNECT}),
    _spec(_I.REASON_STRING, _STR, {_P.CONNACK, _P.DISCONNECT, _P.AUTH} | _RESPONSES),
    _spec(_I.RECEIVE_MAXIMUM, _U16, {_P.CONNECT, _P.CONNACK}, minimum=1),
    _spec(_I.TOPIC_ALIAS_MAXIMUM, _U16, {_P.CONNECT, _P.CONNACK}),
    _spec(_I.TOPIC_ALIAS, _U16, {_P.PUBLISH}, minimum=1),
    _spec(_I.MAXIMUM_QOS, _B, {_P.CONNACK}, maximum=1),
    _spec(_I.RETAIN_AVAILABLE, _B, {_P.CONNACK}, maximum=1),
    _spec(_I.USER_PROPERTY, _PAIR, _ALL_PACKETS, repeatable_in=_ALL_PACKETS, is_list=True),
    _spec(_I.MAXIMUM_PACKET_SIZE, _U32, {_P.CONNECT, _P.CONNACK}, minimum=1),
    _spec(_I.WILDCARD_SUBSCRIPTION_AVAILABLE, _B, {_P.CONNACK}, maximum=1),
    _spec(_I.SUBSCRIPTION_IDENTIFIER_AVAILABLE, _B, {_P.CONNACK}, maximum=1),
    _spec(_I.SHARED_SUBSCRIPTION_AVAILABLE, _B, {_P.CONNACK}, maximum=1),
)

PROPERTY_BY_ID: dict[int, PropertySpec] = {spec.identifier: spec for spec in PROPERTY_TABLE}
PROPERTY_BY_NAME: dict[str, PropertySpec] = {spec.name: spec for spec in PROPERTY_TABLE}

# Per packet type: identifier → spec for the properties allowed there (one dict lookup per property).
# Decoding rows as plain tuples (faster to unpack than NamedTuple attributes):
# (name, wire type as int, minimum, maximum, is_list, may repeat in this packet type).
_DecodeRow = tuple[str, int, int, int, bool, bool]
_ALLOWED: dict[int, dict[int, _DecodeRow]] = {
    packet_type: {
        spec.identifier: (
            spec.name,
            int(spec.wire_type),
            spec.minimum,
            spec.maximum,
            spec.is_list,
            packet_type in spec.repeatable_in,
        )
        for spec in PROPERTY_TABLE
        if packet_type in spec.allowed_in
    }
    for packet_type in _ALL_PACKETS
}
_BYTE = int(PropertyType.BYTE)
_TWO_BYTE = int(PropertyType.TWO_BYTE_INTEGER)
_FOUR_BYTE = int(PropertyType.FOUR_BYTE_INTEGER)
_VARIABLE = int(PropertyType.VARIABLE_BYTE_INTEGER)
_STRING = int(PropertyType.UTF8_STRING)
_BINARY = int(PropertyType.BINARY_DATA)


def encode_varint(value: int) -> bytes:
    """Encode a Variable Byte Integer (0 to 268435455) as 1 to 4 bytes."""
    if value < 0x80:
        if value < 0:
            raise EncodeError(f"variable byte integer out of range: {value}")
        return bytes((value,))
    if value > _VARINT_MAX:
        raise EncodeError(f"variable byte integer out of range: {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes, position: int, end: int) -> tuple[int, int]:
    """Decode a Variable Byte Integer at ``position``; it must end before ``end``.

    Returns ``(value, next position)``; raises :class:`MalformedPacket` if it is truncated or longer
    than four bytes.
    """
    value = 0
    shift = 0
    for index in range(position, min(position + 4, end)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, index + 1
        shift += 7
    if end - position >= 4:
        raise MalformedPacket("variable byte integer longer than 4 bytes")
    raise MalformedPacket("truncated variable byte integer")


def _read_string(data: bytes, position: int, end: int) -> tuple[str, int]:
    if position + 2 > end:
        raise MalformedPacket("truncated string length")
    stop = position + 2 + ((data[position] << 8) | data[position + 1])
    if stop > end:
        raise MalformedPacket("string longer than its packet")
    try:
        text = data[position + 2 : stop].decode()
    except UnicodeDecodeError:
        raise MalformedPacket("invalid UTF-8 string") from None
    if "\x00" in text:
        raise MalformedPacket("U+0000 in a UTF-8 string")
    return text, stop


def decode_properties(data: bytes, position: int, end: int, packet_type: int) -> tuple[Properties, int]:
    """Decode the property block (length + properties) at ``position`` of a ``packet_type`` packet.

    Returns ``(properties, position after the block)``.
    """
    if position >= end:
        raise MalformedPacket("missing property length")
    if data[position] == 0:
        return {}, position + 1
    length, position = decode_varint(data, position, end)
    stop = position + length
    if stop > end:
        raise MalformedPacket("property length beyond the packet")
    allowed = _ALLOWED[packet_type]
    result: dict[str, Any] = {}
    while position < stop:
        identifier = data[position]
        row = allowed.get(identifier)
        if row is None:
            if identifier in PROPERTY_BY_ID:
                raise MalformedPacket(
                    f"property {PROPERTY_BY_ID[identifier].name} not allowed in {_packet_name(packet_type)}"
                )
            raise MalformedPacket(f"unknown property identifier 0x{identifier:02X}")
        name, wire_type, minimum, maximum, is_list, repeatable = row
        position += 1
        value: Any
        if wire_type == _BYTE:
            if position + 1 > stop:
                raise MalformedPacket(f"truncated property {name}")
            value = data[position]
            position += 1
        elif wire_type == _TWO_BYTE:
            if position + 2 > stop:
                raise MalformedPacket(f"truncated property {name}")
            value = (data[position] << 8) | data[position + 1]
            position += 2
        elif wire_type == _FOUR_BYTE:
            if position + 4 > stop:
                raise MalformedPacket(f"truncated property {name}")
            value = int.from_bytes(data[position : position + 4], "big")
            position += 4
        elif wire_type == _VARIABLE:
            value, position = decode_varint(data, position, stop)
        elif wire_type == _STRING:
            value, position = _read_string(data, position, stop)
        elif wire_type == _BINARY:
            if position + 2 > stop:
                raise MalformedPacket(f"truncated property {name}")
            value_end = position + 2 + ((data[position] << 8) | data[position + 1])
            if value_end > stop:
                raise MalformedPacket(f"truncated property {name}")
            value = data[position + 2 : value_end]
            position = value_end
        else:
            key, position = _read_string(data, position, stop)
            text, position = _read_string(data, position, stop)
            value = (key, text)
        if wire_type <= _VARIABLE and not minimum <= value <= maximum:
            raise ProtocolError(
                f"property {name} out of range: {value}",
                0x94 if identifier == PropertyId.TOPIC_ALIAS else None,
            )
        if is_list:
            values = result.get(name)
            if values is None:
                result[name] = [value]
            elif repeatable:
                values.append(value)
            else:
                raise ProtocolError(f"property {name} more than once")
        elif name in result:
            raise ProtocolError(f"property {name} more than once")
        else:
            result[name] = value
    return cast(Properties, result), stop


def _packet_name(packet_type: int) -> str:
    return "will properties" if packet_type == WILL_PROPERTIES else PacketType(packet_type).name


def _encode_string(text: str, name: str) -> bytes:
    if not isinstance(text, str):
        raise EncodeError(f"property {name} must be a str")
    raw = text.encode()
    if len(raw) > _U16_MAX:
        raise EncodeError(f"property {name} longer than 65535 bytes")
    return len(raw).to_bytes(2, "big") + raw


def _encode_value(spec: PropertySpec, value: Any) -> bytes:
    wire_type = spec.wire_type
    if wire_type <= _VAR:
        if not isinstance(value, int) or not spec.minimum <= value <= spec.maximum:
            raise EncodeError(f"property {spec.name} out of range: {value!r}")
        if wire_type is _B:
            return bytes((spec.identifier, value))
        if wire_type is _U16:
            return bytes((spec.identifier,)) + value.to_bytes(2, "big")
        if wire_type is _U32:
            return bytes((spec.identifier,)) + value.to_bytes(4, "big")
        return bytes((spec.identifier,)) + encode_varint(value)
    if wire_type is _STR:
        return bytes((spec.identifier,)) + _encode_string(value, spec.name)
    if wire_type is _BIN:
        if not isinstance(value, bytes | bytearray | memoryview) or len(value) > _U16_MAX:
            raise EncodeError(f"property {spec.name} must be bytes of at most 65535 bytes")
        return bytes((spec.identifier,)) + len(value).to_bytes(2, "big") + bytes(value)
    key, text = value
    return bytes((spec.identifier,)) + _encode_string(key, spec.name) + _encode_string(text, spec.name)


def encode_properties(properties: Properties | None, packet_type: int) -> bytes:
    """Encode ``properties`` as a property block (length + properties) for a ``packet_type`` packet.

    Raises :class:`EncodeError` for unknown names, properties not allowed in that packet, values out of
    range, and several values where only one is allowed.
    """
    if not properties:
        return b"\x00"
    parts: list[bytes] = []
    for name, value in properties.items():
        spec = PROPERTY_BY_NAME.get(name)
        if spec is None:
            raise EncodeError(f"unknown property {name!r}")
        if packet_type not in spec.allowed_in:
            raise EncodeError(f"property {name} not allowed in {_packet_name(packet_type)}")
        if spec.is_list:
            if not isinstance(value, list | tuple):
                raise EncodeError(f"property {name} must be a list")
            if len(value) > 1 and packet_type not in spec.repeatable_in:
                raise EncodeError(f"property {name} allowed once in {_packet_name(packet_type)}")
            parts.extend(_encode_value(spec, item) for item in value)
        else:
            parts.append(_encode_value(spec, value))
    body = b"".join(parts)
    return encode_varint(len(body)) + body
