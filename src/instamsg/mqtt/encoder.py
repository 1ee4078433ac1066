"""Encode MQTT packets to bytes for MQTT 3.1 (level 3), 3.1.1 (4) and 5.0 (5).

Level-dependent parts are dropped or adapted rather than refused where the meaning survives: properties
are not sent below level 5, MQTT 5 failure reason codes become 0x80 in a 3.x SUBACK and the matching
return code (:func:`~instamsg.mqtt.reason_codes.connack_return_code`) in a 3.x CONNACK, and
CONNACK to level 3 never carries the session-present bit (spec §3.2). Values that cannot be put on the
wire raise :class:`~instamsg.mqtt.errors.EncodeError`.

For fan-out, :class:`PublishTemplate` encodes one message once and gives each receiver a
``(prefix, payload)`` pair: only the small prefix (fixed header, topic, packet identifier, properties)
is built per receiver, and the payload object is shared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from .errors import EncodeError
from .packets import (
    MQTT_3_1,
    MQTT_5,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    Pingreq,
    Pingresp,
    Properties,
    Provack,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
)
from .properties import WILL_PROPERTIES, encode_properties, encode_varint
from .reason_codes import connack_return_code

__all__ = [
    "PublishTemplate",
    "encode",
    "encode_publish_parts",
    "encode_remaining_length",
]

_SUPPORTED_LEVELS = frozenset({3, 4, 5})
_PINGREQ = b"\xc0\x00"
_PINGRESP = b"\xd0\x00"
_DISCONNECT_NORMAL = b"\xe0\x00"
_AUTH_SUCCESS = b"\xf0\x00"
_U16_MAX = 0xFFFF


def encode_remaining_length(value: int) -> bytes:
    """Encode the fixed header's Remaining Length (a Variable Byte Integer, 0 to 268435455)."""
    return encode_varint(value)


def _frame(first_byte: int, body: bytes) -> bytes:
    length = len(body)
    if length < 0x80:
        return bytes((first_byte, length)) + body
    return bytes((first_byte,)) + encode_varint(length) + body


def _string(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > _U16_MAX:
        raise EncodeError("UTF-8 string longer than 65535 bytes")
    return len(raw).to_bytes(2, "big") + raw


def _binary(data: bytes) -> bytes:
    if len(data) > _U16_MAX:
        raise EncodeError("binary data longer than 65535 bytes")
    return len(data).to_bytes(2, "big") + bytes(data)


def _packet_id(packet_id: int | None) -> bytes:
    if packet_id is None or not 0 < packet_id <= _U16_MAX:
        raise EncodeError(f"packet identifier must be 1-65535, not {packet_id!r}")
    return packet_id.to_bytes(2, "big")


def _reason_byte(reason_code: int) -> bytes:
    if not 0 <= reason_code <= 0xFF:
        raise EncodeError(f"reason code out of range: {reason_code}")
    return bytes((reason_code,))


def _encode_connect(packet: Connect, level: int) -> bytes:
    if packet.protocol_level in _SUPPORTED_LEVELS and packet.protocol_level != level:
        raise EncodeError(f"CONNECT level {packet.protocol_level} encoded for level {level}")
    flags = 0x02 if packet.clean_start else 0
    will = packet.will
    if will is not None:
        if not 0 <= will.qos <= 2:
            raise EncodeError(f"will QoS must be 0-2, not {will.qos}")
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    if packet.username is not None:
        flags |= 0x80
    if packet.password is not None:
        if packet.username is None and level == 4:
            raise EncodeError("MQTT 3.1.1 CONNECT with a password needs a username")
        flags |= 0x40
    if not 0 <= packet.keep_alive <= _U16_MAX:
        raise EncodeError(f"keep alive out of range: {packet.keep_alive}")
    if not 0 <= packet.protocol_level <= 0xFF:
        raise EncodeError(f"protocol level out of range: {packet.protocol_level}")
    parts = [
        _string(packet.protocol_name),
        bytes((packet.protocol_level, flags)),
        packet.keep_alive.to_bytes(2, "big"),
    ]
    if level == MQTT_5:
        parts.append(encode_properties(packet.properties, PacketType.CONNECT))
    parts.append(_string(packet.client_id))
    if will is not None:
        if level == MQTT_5:
            parts.append(encode_properties(will.properties, WILL_PROPERTIES))
        parts.append(_string(will.topic))
        parts.append(_binary(will.payload))
    if packet.username is not None:
        parts.append(_string(packet.username))
    if packet.password is not None:
        parts.append(_binary(packet.password))
    return _frame(0x10, b"".join(parts))


def _encode_connack(packet: Connack, level: int) -> bytes:
    reason_code = packet.reason_code
    if level == MQTT_5:
        return _frame(
            0x20,
            bytes((1 if packet.session_present else 0,))
            + _reason_byte(reason_code)
            + encode_properties(packet.properties, PacketType.CONNACK),
        )
    if not 0 <= reason_code <= 5:
        reason_code = connack_return_code(reason_code)
    # Level 3 has no session-present bit, and legacy clients expect exactly 20 02 00 rc (spec §3.2).
    session_present = 1 if packet.session_present and level != MQTT_3_1 else 0
    return bytes((0x20, 2, session_present, reason_code))


def _encode_publish(packet: Publish, level: int) -> bytes:
    prefix, payload = PublishTemplate(packet.topic, packet.payload, packet.properties).parts(
        level, packet.qos, packet.retain, packet.dup, packet.packet_id
    )
    return prefix + payload


def _encode_acknowledgement(first_byte: int, packet_type: int) -> Callable[[Any, int], bytes]:
    def encode_acknowledgement(packet: Puback | Pubrec | Pubrel | Pubcomp, level: int) -> bytes:
        packet_id = _packet_id(packet.packet_id)
        if level != MQTT_5 or (packet.reason_code == 0 and not packet.properties):
            return bytes((first_byte, 2)) + packet_id
        if not packet.properties:
            return bytes((first_byte, 3)) + packet_id + _reason_byte(packet.reason_code)
        return _frame(
            first_byte,
            packet_id + _reason_byte(packet.reason_code) + encode_properties(packet.properties, packet_type),
        )

    return encode_acknowledgement


def _encode_subscribe(packet: Subscribe, level: int) -> bytes:
    if not packet.subscriptions:
        raise EncodeError("SUBSCRIBE needs at least one topic filter")
    parts = [_packet_id(packet.packet_id)]
    if level == MQTT_5:
        parts.append(encode_properties(packet.properties, PacketType.SUBSCRIBE))
    for topic_filter, options in packet.subscriptions:
        if not 0 <= options.qos <= 2:
            raise EncodeError(f"subscription QoS must be 0-2, not {options.qos}")
        option_byte = options.qos
        if level == MQTT_5:
            if not 0 <= options.retain_handling <= 2:
                raise EncodeError(f"retain handling must be 0-2, not {options.retain_handling}")
            option_byte |= (
                (0x04 if options.no_local else 0)
                | (0x08 if options.retain_as_published else 0)
                | (options.retain_handling << 4)
            )
        parts.append(_string(topic_filter))
        parts.append(bytes((option_byte,)))
    return _frame(0x82, b"".join(parts))


def _encode_suback(packet: Suback, level: int) -> bytes:
    try:
        codes = bytes(packet.reason_codes)
    except ValueError:
        raise EncodeError(f"SUBACK reason code out of range: {packet.reason_codes}") from None
    if level == MQTT_5:
        return _frame(
            0x90,
            _packet_id(packet.packet_id) + encode_properties(packet.properties, PacketType.SUBACK) + codes,
        )
    if max(codes, default=0) > 0x80:
        # Every MQTT 5 failure reason is a plain failure (0x80) to a 3.x client.
        codes = bytes(code if code < 0x80 else 0x80 for code in codes)
    return _frame(0x90, _packet_id(packet.packet_id) + codes)


def _encode_unsubscribe(packet: Unsubscribe, level: int) -> bytes:
    if not packet.filters:
        raise EncodeError("UNSUBSCRIBE needs at least one topic filter")
    parts = [_packet_id(packet.packet_id)]
    if level == MQTT_5:
        parts.append(encode_properties(packet.properties, PacketType.UNSUBSCRIBE))
    parts.extend(_string(topic_filter) for topic_filter in packet.filters)
    return _frame(0xA2, b"".join(parts))


def _encode_unsuback(packet: Unsuback, level: int) -> bytes:
    if level != MQTT_5:
        return b"\xb0\x02" + _packet_id(packet.packet_id)
    try:
        codes = bytes(packet.reason_codes)
    except ValueError:
        raise EncodeError(f"UNSUBACK reason code out of range: {packet.reason_codes}") from None
    return _frame(
        0xB0,
        _packet_id(packet.packet_id) + encode_properties(packet.properties, PacketType.UNSUBACK) + codes,
    )


def _encode_pingreq(packet: Pingreq, level: int) -> bytes:
    return _PINGREQ


def _encode_pingresp(packet: Pingresp, level: int) -> bytes:
    return _PINGRESP


def _encode_disconnect(packet: Disconnect, level: int) -> bytes:
    if level != MQTT_5 or (packet.reason_code == 0 and not packet.properties):
        return _DISCONNECT_NORMAL
    if not packet.properties:
        return b"\xe0\x01" + _reason_byte(packet.reason_code)
    return _frame(
        0xE0, _reason_byte(packet.reason_code) + encode_properties(packet.properties, PacketType.DISCONNECT)
    )


def _encode_auth(packet: Auth, level: int) -> bytes:
    if level != MQTT_5:
        raise EncodeError("AUTH exists on MQTT 5 only")
    if packet.reason_code == 0 and not packet.properties:
        return _AUTH_SUCCESS
    return _frame(
        0xF0, _reason_byte(packet.reason_code) + encode_properties(packet.properties, PacketType.AUTH)
    )


def _encode_provack(packet: Provack, level: int) -> bytes:
    if level == MQTT_5:
        raise EncodeError("PROVACK is not sent on MQTT 5 connections (type 15 is AUTH there)")
    return _frame(0xF0, b"\x00" + _reason_byte(packet.return_code) + bytes(packet.payload))


_ENCODERS: dict[type, Callable[[Any, int], bytes]] = {
    Connect: _encode_connect,
    Connack: _encode_connack,
    Publish: _encode_publish,
    Puback: _encode_acknowledgement(0x40, PacketType.PUBACK),
    Pubrec: _encode_acknowledgement(0x50, PacketType.PUBREC),
    Pubrel: _encode_acknowledgement(0x62, PacketType.PUBREL),
    Pubcomp: _encode_acknowledgement(0x70, PacketType.PUBCOMP),
    Subscribe: _encode_subscribe,
    Suback: _encode_suback,
    Unsubscribe: _encode_unsubscribe,
    Unsuback: _encode_unsuback,
    Pingreq: _encode_pingreq,
    Pingresp: _encode_pingresp,
    Disconnect: _encode_disconnect,
    Auth: _encode_auth,
    Provack: _encode_provack,
}


def encode(packet: Packet, protocol_level: int) -> bytes:
    """Encode ``packet`` for a connection at ``protocol_level`` (3, 4 or 5)."""
    if protocol_level not in _SUPPORTED_LEVELS:
        raise EncodeError(f"unsupported protocol level {protocol_level}")
    encoder = _ENCODERS.get(type(packet))
    if encoder is None:
        raise EncodeError(f"not an MQTT packet: {packet!r}")
    return encoder(packet, protocol_level)


class PublishTemplate:
    """One message encoded once for many receivers.

    ``parts(protocol_level, qos, retain, dup, packet_id)`` returns ``(prefix, payload)``; write both
    (``transport.writelines``) or join them. ``payload`` is the same object for every receiver, and the
    prefix for a given level/QoS/flag combination is cached, so a receiver costs one dict lookup for
    QoS 0 and one small concatenation for QoS 1/2.

    ``extra_properties`` lets each MQTT 5 receiver get its own properties on top of the message's,
    e.g. ``{"subscription_identifier": [7]}`` or ``{"topic_alias": 3}``; that path is not cached.
    """

    __slots__ = ("_heads", "_topic_field", "payload", "properties", "topic")

    def __init__(self, topic: str, payload: bytes, properties: Properties | None = None) -> None:
        self.topic = topic
        self.payload = payload
        self.properties: Properties = properties if properties is not None else {}
        self._topic_field = _string(topic)
        # (first byte | level << 8) → (fixed header + topic, bytes that follow the packet identifier).
        self._heads: dict[int, tuple[bytes, bytes]] = {}

    @staticmethod
    def qos0_frame(topic: str, payload: bytes, protocol_level: int, retain: bool = False) -> bytes:
        """The whole QoS 0 PUBLISH of a message without properties, encoded in one step: the bytes of
        ``PublishTemplate(topic, payload).parts(protocol_level, 0, retain)`` joined, without building
        (and caching in) a template, which only pays off when many receivers share it."""
        if protocol_level not in _SUPPORTED_LEVELS:
            raise EncodeError(f"unsupported protocol level {protocol_level}")
        topic_field = _string(topic)
        if protocol_level == MQTT_5:
            topic_field += b"\x00"  # property length 0
        remaining = len(topic_field) + len(payload)
        first_byte = 0x31 if retain else 0x30
        if remaining < 0x80:
            return bytes((first_byte, remaining)) + topic_field + payload
        return bytes((first_byte,)) + encode_varint(remaining) + topic_field + payload

    def _head(self, key: int, first_byte: int, level: int, properties: Properties) -> tuple[bytes, bytes]:
        qos = (first_byte >> 1) & 3
        after_packet_id = encode_properties(properties, PacketType.PUBLISH) if level == MQTT_5 else b""
        remaining = len(self._topic_field) + (2 if qos else 0) + len(after_packet_id) + len(self.payload)
        head = bytes((first_byte,)) + encode_varint(remaining) + self._topic_field
        if qos == 0:
            head, after_packet_id = head + after_packet_id, b""
        if key >= 0:
            self._heads[key] = (head, after_packet_id)
        return head, after_packet_id

    def parts(
        self,
        protocol_level: int,
        qos: int = 0,
        retain: bool = False,
        dup: bool = False,
        packet_id: int | None = None,
        extra_properties: Properties | None = None,
    ) -> tuple[bytes, bytes]:
        """Return ``(prefix, payload)`` of this message as sent to one receiver."""
        if not 0 <= qos <= 2:
            raise EncodeError(f"PUBLISH QoS must be 0-2, not {qos}")
        first_byte = 0x30 | (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
        if extra_properties and protocol_level == MQTT_5:
            merged = cast(Properties, {**self.properties, **extra_properties})
            head, after_packet_id = self._head(-1, first_byte, protocol_level, merged)
        else:
            key = first_byte | (protocol_level << 8)
            cached = self._heads.get(key)
            if cached is None:
                if protocol_level not in _SUPPORTED_LEVELS:
                    raise EncodeError(f"unsupported protocol level {protocol_level}")
                cached = self._head(key, first_byte, protocol_level, self.properties)
            head, after_packet_id = cached
        if qos:
            if packet_id is None or not 0 < packet_id <= _U16_MAX:
                raise EncodeError(f"packet identifier must be 1-65535 for QoS {qos}, not {packet_id!r}")
            if after_packet_id:
                return head + packet_id.to_bytes(2, "big") + after_packet_id, self.payload
            return head + packet_id.to_bytes(2, "big"), self.payload
        if dup:
            raise EncodeError("DUP must be 0 for QoS 0 [MQTT-3.3.1-2]")
        return head, self.payload

    def packet_size(self, protocol_level: int, qos: int = 0) -> int:
        """Total bytes of the packet for ``protocol_level``/``qos`` (to check a Maximum Packet Size)."""
        prefix, payload = self.parts(protocol_level, qos, packet_id=1 if qos else None)
        return len(prefix) + len(payload)


def encode_publish_parts(publish: Publish, protocol_level: int) -> tuple[bytes, bytes]:
    """Encode ``publish`` as ``(prefix, payload)``; see :class:`PublishTemplate` for many receivers."""
    return PublishTemplate(publish.topic, publish.payload, publish.properties).parts(
        protocol_level, publish.qos, publish.retain, publish.dup, publish.packet_id
    )
