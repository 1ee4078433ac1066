"""Incremental, sans-I/O MQTT decoder for MQTT 3.1 (level 3), 3.1.1 (4) and 5.0 (5).

``FrameDecoder.feed(chunk)`` returns the packets completed by ``chunk``; any split of the stream gives
the same packets. On bad input it raises :class:`MalformedPacket` (or a subclass) or
:class:`UnsupportedProtocol` and nothing else; the decoder then stays failed (every later ``feed``
raises the same error) and the connection must be closed.

Server side, the first packet must be CONNECT; the decoder takes the protocol level from it. Client
side, set ``protocol_level`` up front (it defaults to 3.1.1). Type 15 is AUTH on level 5 and, client
side only, InstaMsg's PROVACK on levels 3 and 4.

Strictness follows MQTT 3.1.1 / 5.0, except for level 3 (MQIsdp, spec §3.2): SUBSCRIBE, UNSUBSCRIBE
and PUBREL may carry fixed-header flags 0000 as well as 0010, CONNECT's reserved flag bit, a password
without a username, DUP on a QoS 0 PUBLISH, CONNACK's first byte and return codes above 5 are not
checked, and a SUBACK may have no return codes. Client identifiers are never length-checked at any
level (the broker decides, e.g. CONNACK 2 for an empty one with clean session 0 on 3.1.1).

What is left to the caller: topic filter syntax (so that MQTT 5 can answer SUBACK 0x8F per filter; use
``topics.validate_topic_filter``), the will topic's syntax (CONNACK 0x90 on MQTT 5), topic alias
resolution, and limits negotiated in CONNECT/CONNACK other than the maximum packet size.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import MalformedPacket, MqttError, PacketTooLarge, ProtocolError, UnsupportedProtocol
from .packets import (
    MQTT_3_1,
    MQTT_3_1_1,
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
    SubscriptionOptions,
    Unsuback,
    Unsubscribe,
    Will,
)
from .properties import WILL_PROPERTIES, decode_properties
from .reason_codes import ReasonCode

__all__ = ["DEFAULT_MAX_PACKET_SIZE", "FrameDecoder", "decode_remaining_length"]

#: Default limit on the total packet size (fixed header included): the largest Remaining Length, so
#: in practice no limit. The broker sets its own (and MQTT 5 announces it as Maximum Packet Size).
DEFAULT_MAX_PACKET_SIZE = 268_435_455

_SUPPORTED = {("MQIsdp", MQTT_3_1), ("MQTT", MQTT_3_1_1), ("MQTT", MQTT_5)}
_RC = ReasonCode
_TOPIC_NAME_INVALID = int(_RC.TOPIC_NAME_INVALID)
_TOPIC_ALIAS_INVALID = int(_RC.TOPIC_ALIAS_INVALID)

# MQTT 5 reason codes each packet may carry (MQTT 5.0 §2.4 table and the per-packet lists).
_CONNACK_REASONS = frozenset(
    {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97}
    | {0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F}
)
_PUBACK_REASONS = frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99})
_PUBREL_REASONS = frozenset({0x00, 0x92})
_SUBACK_REASONS = frozenset({0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2})
_SUBACK_RETURN_CODES = frozenset({0x00, 0x01, 0x02, 0x80})
_UNSUBACK_REASONS = frozenset({0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91})
_DISCONNECT_REASONS = frozenset(
    {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95}
    | {0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2}
)
_AUTH_REASONS = frozenset({0x00, 0x18, 0x19})

# Plain functions taking the decoder (not bound methods) so the table holds no reference cycle.
_Handler = Callable[["FrameDecoder", int, bytes, int, int], Packet]


def decode_remaining_length(data: bytes, position: int = 0) -> tuple[int, int] | None:
    """Decode a Remaining Length starting at ``data[position]``.

    Returns ``(value, position after it)``, or ``None`` when ``data`` ends first. Raises
    :class:`MalformedPacket` when four bytes all have the continuation bit set.
    """
    value = 0
    size = len(data)
    for index in range(4):
        if position + index >= size:
            return None
        byte = data[position + index]
        value |= (byte & 0x7F) << (7 * index)
        if byte < 0x80:
            return value, position + index + 1
    raise MalformedPacket("remaining length longer than 4 bytes")


def _read_string(data: bytes, position: int, end: int, what: str) -> tuple[str, int]:
    if position + 2 > end:
        raise MalformedPacket(f"{what}: truncated length")
    stop = position + 2 + ((data[position] << 8) | data[position + 1])
    if stop > end:
        raise MalformedPacket(f"{what}: longer than the packet")
    try:
        text = data[position + 2 : stop].decode()
    except UnicodeDecodeError:
        raise MalformedPacket(f"{what}: invalid UTF-8 [MQTT-1.5.3-1]") from None
    if "\x00" in text:
        raise MalformedPacket(f"{what}: U+0000 [MQTT-1.5.3-2]")
    return text, stop


def _read_binary(data: bytes, position: int, end: int, what: str) -> tuple[bytes, int]:
    if position + 2 > end:
        raise MalformedPacket(f"{what}: truncated length")
    stop = position + 2 + ((data[position] << 8) | data[position + 1])
    if stop > end:
        raise MalformedPacket(f"{what}: longer than the packet")
    return data[position + 2 : stop], stop


def _read_packet_id(data: bytes, position: int, end: int, what: str) -> int:
    if position + 2 > end:
        raise MalformedPacket(f"{what}: truncated packet identifier")
    packet_id = (data[position] << 8) | data[position + 1]
    if not packet_id:
        raise ProtocolError(f"{what}: packet identifier 0 [MQTT-2.3.1-1]")
    return packet_id


# (server side, CONNECT seen, protocol level) -> packet type -> decoder; see `_build_handlers`.
_HANDLER_TABLES: dict[tuple[bool, bool, int | None], tuple[_Handler | None, ...]] = {}


class FrameDecoder:
    """Incremental MQTT decoder for one connection (see the module docstring)."""

    __slots__ = (
        "_connect_seen",
        "_error",
        "_handlers",
        "_needed",
        "_pending",
        "_pending_size",
        "_protocol_level",
        "max_packet_size",
        "server_side",
    )

    def __init__(
        self,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        *,
        server_side: bool = True,
        protocol_level: int | None = None,
    ) -> None:
        if max_packet_size < 2:
            raise ValueError("max_packet_size must be at least 2")
        self.max_packet_size = max_packet_size
        self.server_side = server_side
        self._connect_seen = False
        self._error: MqttError | None = None
        # Bytes of an incomplete packet; a shared empty tuple while there are none (the usual case).
        self._pending: list[bytes] | tuple[()] = ()
        self._pending_size = 0
        self._needed = 0
        self._protocol_level: int | None = None
        self._handlers: tuple[_Handler | None, ...] = ()
        self.protocol_level = MQTT_3_1_1 if protocol_level is None and not server_side else protocol_level

    @property
    def protocol_level(self) -> int | None:
        """Protocol level in use: 3, 4 or 5; ``None`` on a server side that has not seen CONNECT."""
        return self._protocol_level

    @protocol_level.setter
    def protocol_level(self, level: int | None) -> None:
        if level not in (None, MQTT_3_1, MQTT_3_1_1, MQTT_5):
            raise ValueError(f"unsupported protocol level {level}")
        self._protocol_level = level
        self._handlers = self._build_handlers()

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete packet."""
        return self._pending_size

    def _build_handlers(self) -> tuple[_Handler | None, ...]:
        """The dispatch table for this side, stage and level: built once, shared by every decoder."""
        key = (self.server_side, self._connect_seen, self._protocol_level)
        table = _HANDLER_TABLES.get(key)
        if table is None:
            table = _HANDLER_TABLES[key] = tuple(self._new_handler_table())
        return table

    def _new_handler_table(self) -> list[_Handler | None]:
        handlers: list[_Handler | None] = [None] * 16
        level = self._protocol_level
        if self.server_side:
            if not self._connect_seen:
                # Nothing but CONNECT may come first [MQTT-3.1.0-1].
                handlers[PacketType.CONNECT] = FrameDecoder._decode_connect
                return handlers
            handlers[PacketType.SUBSCRIBE] = FrameDecoder._decode_subscribe
            handlers[PacketType.UNSUBSCRIBE] = FrameDecoder._decode_unsubscribe
            handlers[PacketType.PINGREQ] = FrameDecoder._decode_pingreq
            handlers[PacketType.DISCONNECT] = FrameDecoder._decode_disconnect
            if level == MQTT_5:
                handlers[PacketType.AUTH] = FrameDecoder._decode_auth
        else:
            handlers[PacketType.CONNACK] = FrameDecoder._decode_connack
            handlers[PacketType.SUBACK] = FrameDecoder._decode_suback
            handlers[PacketType.UNSUBACK] = FrameDecoder._decode_unsuback
            handlers[PacketType.PINGRESP] = FrameDecoder._decode_pingresp
            if level == MQTT_5:
                handlers[PacketType.DISCONNECT] = FrameDecoder._decode_disconnect
                handlers[PacketType.AUTH] = FrameDecoder._decode_auth
            else:
                handlers[PacketType.PROVACK] = FrameDecoder._decode_provack
        handlers[PacketType.PUBLISH] = FrameDecoder._decode_publish
        handlers[PacketType.PUBACK] = FrameDecoder._decode_acknowledgement
        handlers[PacketType.PUBREC] = FrameDecoder._decode_acknowledgement
        handlers[PacketType.PUBREL] = FrameDecoder._decode_acknowledgement
        handlers[PacketType.PUBCOMP] = FrameDecoder._decode_acknowledgement
        return handlers

    def _unexpected(self, first_byte: int) -> MalformedPacket:
        packet_type = first_byte >> 4
        if packet_type == 0:
            return MalformedPacket("reserved packet type 0")
        name = PacketType(packet_type).name
        if self.server_side and not self._connect_seen:
            return ProtocolError(f"first packet is {name}, not CONNECT [MQTT-3.1.0-1]")
        if packet_type == PacketType.CONNECT and self.server_side:
            return ProtocolError("second CONNECT [MQTT-3.1.0-2]")
        if packet_type == 15:
            return ProtocolError(f"packet type 15 not allowed here (level {self._protocol_level})")
        side = "a server" if self.server_side else "a client"
        return ProtocolError(f"{name} is never sent to {side} at level {self._protocol_level}")

    def feed(self, data: bytes | bytearray | memoryview) -> list[Packet]:
        """Add received bytes; return the packets they complete, in order."""
        if self._error is not None:
            raise self._error
        pending = self._pending
        if pending:
            pending.append(bytes(data))
            self._pending_size += len(data)
            if self._pending_size < self._needed:
                return []
            data = b"".join(pending)
            self._pending = ()
            self._pending_size = 0
        elif type(data) is not bytes:
            data = bytes(data)
        packets: list[Packet] = []
        append = packets.append
        position = 0
        size = len(data)
        handlers = self._handlers
        max_packet_size = self.max_packet_size
        needed = 0
        try:
            while position < size:
                first_byte = data[position]
                handler = handlers[first_byte >> 4]
                if handler is None:
                    raise self._unexpected(first_byte)
                if position + 1 >= size:
                    break
                length = data[position + 1]
                if length < 0x80:
                    start = position + 2
                else:
                    decoded = decode_remaining_length(data, position + 1)
                    if decoded is None:
                        break
                    length, start = decoded
                end = start + length
                if end - position > max_packet_size:
                    raise PacketTooLarge(
                        f"packet of {end - position} bytes exceeds the maximum of {self.max_packet_size}"
                    )
                if end > size:
                    needed = end - position
                    break
                append(handler(self, first_byte, data, start, end))
                position = end
                # CONNECT changes the table (level known, CONNECT no longer allowed).
                handlers = self._handlers
        except MqttError as error:
            self._error = error
            raise
        except (IndexError, ValueError, TypeError, OverflowError, KeyError) as error:
            # Safety net: every bounds check above should make this unreachable.
            self._error = MalformedPacket(f"undecodable packet: {error!r}")
            raise self._error from error
        if position < size:
            rest = data[position:] if position else data
            self._pending = [rest]
            self._pending_size = len(rest)
            self._needed = needed
        return packets

    # Packet decoders: ``data[start:end]`` is the packet after its fixed header.

    def _decode_connect(self, first_byte: int, data: bytes, start: int, end: int) -> Connect:
        if first_byte & 0x0F:
            raise MalformedPacket("CONNECT fixed-header flags not 0000 [MQTT-2.2.2-2]")
        protocol_name, position = _read_string(data, start, end, "CONNECT protocol name")
        if position >= end:
            raise MalformedPacket("CONNECT truncated after the protocol name")
        level = data[position]
        if (protocol_name, level) not in _SUPPORTED:
            raise UnsupportedProtocol(protocol_name, level)
        if position + 4 > end:
            raise MalformedPacket("CONNECT variable header truncated")
        flags = data[position + 1]
        keep_alive = (data[position + 2] << 8) | data[position + 3]
        position += 4
        if flags & 0x01 and level != MQTT_3_1:
            raise MalformedPacket("CONNECT reserved flag set [MQTT-3.1.2-3]")
        will_flag = flags & 0x04
        will_qos = (flags >> 3) & 3
        will_retain = bool(flags & 0x20)
        if will_qos == 3:
            raise MalformedPacket("CONNECT will QoS 3 [MQTT-3.1.2-14]")
        if not will_flag and (will_qos or will_retain):
            raise MalformedPacket("CONNECT will QoS/retain without will flag [MQTT-3.1.2-13] [MQTT-3.1.2-15]")
        if flags & 0x40 and not flags & 0x80 and level == MQTT_3_1_1:
            raise MalformedPacket("CONNECT password without username [MQTT-3.1.2-22]")
        properties: Properties
        if level == MQTT_5:
            properties, position = decode_properties(data, position, end, PacketType.CONNECT)
        else:
            properties = {}
        client_id, position = _read_string(data, position, end, "CONNECT client identifier")
        will = None
        if will_flag:
            will_properties: Properties
            if level == MQTT_5:
                will_properties, position = decode_properties(data, position, end, WILL_PROPERTIES)
            else:
                will_properties = {}
            will_topic, position = _read_string(data, position, end, "CONNECT will topic")
            will_payload, position = _read_binary(data, position, end, "CONNECT will payload")
            will = Will(will_topic, will_payload, will_qos, will_retain, will_properties)
        username = None
        if flags & 0x80:
            username, position = _read_string(data, position, end, "CONNECT user name")
        password = None
        if flags & 0x40:
            password, position = _read_binary(data, position, end, "CONNECT password")
        if position != end:
            raise MalformedPacket("CONNECT has trailing bytes")
        self._connect_seen = True
        self.protocol_level = level
        return Connect(
            protocol_name,
            level,
            bool(flags & 0x02),
            keep_alive,
            client_id,
            username,
            password,
            will,
            properties,
        )

    def _decode_connack(self, first_byte: int, data: bytes, start: int, end: int) -> Connack:
        if first_byte & 0x0F:
            raise MalformedPacket("CONNACK fixed-header flags not 0000 [MQTT-2.2.2-2]")
        level = self._protocol_level
        if level != MQTT_5:
            if end - start != 2:
                raise MalformedPacket("CONNACK remaining length not 2")
            acknowledge_flags = data[start]
            return_code = data[start + 1]
            if level == MQTT_3_1:
                # MQTT 3.1 has no session-present bit; the byte is unused.
                return Connack(False, return_code, {})
            if acknowledge_flags & 0xFE:
                raise MalformedPacket("CONNACK reserved acknowledge flags set [MQTT-3.2.2-1]")
            if return_code > 5:
                raise MalformedPacket(f"CONNACK return code {return_code} is reserved")
            return Connack(bool(acknowledge_flags), return_code, {})
        if end - start < 3:
            raise MalformedPacket("CONNACK truncated")
        acknowledge_flags = data[start]
        reason_code = data[start + 1]
        if acknowledge_flags & 0xFE:
            raise MalformedPacket("CONNACK reserved acknowledge flags set [MQTT-3.2.2-1]")
        if reason_code not in _CONNACK_REASONS:
            raise MalformedPacket(f"CONNACK reason code 0x{reason_code:02X} not allowed")
        properties, position = decode_properties(data, start + 2, end, PacketType.CONNACK)
        if position != end:
            raise MalformedPacket("CONNACK has trailing bytes")
        return Connack(bool(acknowledge_flags), reason_code, properties)

    def _decode_publish(self, first_byte: int, data: bytes, start: int, end: int) -> Publish:
        qos = (first_byte >> 1) & 3
        if qos == 3:
            raise MalformedPacket("PUBLISH QoS 3 [MQTT-3.3.1-4]")
        if start + 2 > end:
            raise MalformedPacket("PUBLISH truncated topic length")
        position = start + 2 + ((data[start] << 8) | data[start + 1])
        if position > end:
            raise MalformedPacket("PUBLISH topic longer than the packet")
        try:
            topic = data[start + 2 : position].decode()
        except UnicodeDecodeError:
            raise MalformedPacket("PUBLISH topic is not valid UTF-8 [MQTT-1.5.3-1]") from None
        if "+" in topic or "#" in topic:
            raise MalformedPacket("PUBLISH topic contains a wildcard [MQTT-3.3.2-2]", _TOPIC_NAME_INVALID)
        if "\x00" in topic:
            raise MalformedPacket("PUBLISH topic contains U+0000 [MQTT-1.5.3-2]")
        packet_id = None
        if qos:
            if position + 2 > end:
                raise MalformedPacket("PUBLISH truncated packet identifier")
            packet_id = (data[position] << 8) | data[position + 1]
            if not packet_id:
                raise ProtocolError("PUBLISH packet identifier 0 [MQTT-2.3.1-1]")
            position += 2
        elif first_byte & 0x08 and self._protocol_level != MQTT_3_1:
            raise MalformedPacket("PUBLISH QoS 0 with DUP set [MQTT-3.3.1-2]")
        properties: Properties
        if self._protocol_level == MQTT_5:
            properties, position = decode_properties(data, position, end, PacketType.PUBLISH)
            if not topic and "topic_alias" not in properties:
                raise ProtocolError("PUBLISH with an empty topic and no topic alias", _TOPIC_ALIAS_INVALID)
        else:
            if not topic:
                raise MalformedPacket("PUBLISH topic is empty [MQTT-4.7.3-1]", _TOPIC_NAME_INVALID)
            properties = {}
        return Publish(
            topic,
            data[position:end],
            qos,
            bool(first_byte & 0x01),
            bool(first_byte & 0x08),
            packet_id,
            properties,
        )

    def _decode_acknowledgement(
        self, first_byte: int, data: bytes, start: int, end: int
    ) -> Puback | Pubrec | Pubrel | Pubcomp:
        packet_type = first_byte >> 4
        flags = first_byte & 0x0F
        if packet_type == PacketType.PUBREL:
            if flags != 0x02 and not (flags == 0 and self._protocol_level == MQTT_3_1):
                raise MalformedPacket("PUBREL fixed-header flags not 0010 [MQTT-3.6.1-1]")
        elif flags:
            raise MalformedPacket(
                f"{PacketType(packet_type).name} fixed-header flags not 0000 [MQTT-2.2.2-2]"
            )
        length = end - start
        if length < 2:
            raise MalformedPacket(f"{PacketType(packet_type).name} truncated")
        packet_id = (data[start] << 8) | data[start + 1]
        if not packet_id:
            raise ProtocolError(f"{PacketType(packet_type).name} packet identifier 0 [MQTT-2.3.1-1]")
        cls = _ACKNOWLEDGEMENTS[packet_type]
        if length == 2:
            return cls(packet_id, 0, {})
        if self._protocol_level != MQTT_5:
            raise MalformedPacket(f"{PacketType(packet_type).name} remaining length not 2")
        reason_code = data[start + 2]
        allowed = _PUBACK_REASONS if packet_type <= PacketType.PUBREC else _PUBREL_REASONS
        if reason_code not in allowed:
            raise MalformedPacket(
                f"{PacketType(packet_type).name} reason code 0x{reason_code:02X} not allowed"
            )
        if length == 3:
            return cls(packet_id, reason_code, {})
        properties, position = decode_properties(data, start + 3, end, packet_type)
        if position != end:
            raise MalformedPacket(f"{PacketType(packet_type).name} has trailing bytes")
        return cls(packet_id, reason_code, properties)

    def _check_subscribe_flags(self, first_byte: int, name: str, statement: str) -> None:
        flags = first_byte & 0x0F
        # Level 3 (MQIsdp) clients may send 0000 here (spec §3.2); the official ones send 0010.
        if flags != 0x02 and not (flags == 0 and self._protocol_level == MQTT_3_1):
            raise MalformedPacket(f"{name} fixed-header flags not 0010 [{statement}]")

    def _decode_subscribe(self, first_byte: int, data: bytes, start: int, end: int) -> Subscribe:
        self._check_subscribe_flags(first_byte, "SUBSCRIBE", "MQTT-3.8.1-1")
        packet_id = _read_packet_id(data, start, end, "SUBSCRIBE")
        position = start + 2
        version_5 = self._protocol_level == MQTT_5
        properties: Properties
        if version_5:
            properties, position = decode_properties(data, position, end, PacketType.SUBSCRIBE)
        else:
            properties = {}
        subscriptions: list[tuple[str, SubscriptionOptions]] = []
        while position < end:
            topic_filter, position = _read_string(data, position, end, "SUBSCRIBE topic filter")
            if position >= end:
                raise MalformedPacket("SUBSCRIBE topic filter without options")
            options = data[position]
            position += 1
            qos = options & 0x03
            if qos == 3:
                raise MalformedPacket("SUBSCRIBE requested QoS 3 [MQTT-3.8.3-4]")
            if version_5:
                if options & 0xC0:
                    raise MalformedPacket("SUBSCRIBE reserved option bits set [MQTT-3.8.3-5]")
                retain_handling = (options >> 4) & 0x03
                if retain_handling == 3:
                    raise ProtocolError("SUBSCRIBE retain handling 3")
                subscriptions.append(
                    (
                        topic_filter,
                        SubscriptionOptions(qos, bool(options & 0x04), bool(options & 0x08), retain_handling),
                    )
                )
            else:
                if options & 0xFC:
                    raise MalformedPacket("SUBSCRIBE reserved option bits set [MQTT-3-8.3-4]")
                subscriptions.append((topic_filter, SubscriptionOptions(qos)))
        if not subscriptions:
            raise ProtocolError("SUBSCRIBE without topic filters [MQTT-3.8.3-3]")
        return Subscribe(packet_id, subscriptions, properties)

    def _decode_suback(self, first_byte: int, data: bytes, start: int, end: int) -> Suback:
        if first_byte & 0x0F:
            raise MalformedPacket("SUBACK fixed-header flags not 0000 [MQTT-2.2.2-2]")
        packet_id = _read_packet_id(data, start, end, "SUBACK")
        position = start + 2
        level = self._protocol_level
        properties: Properties
        if level == MQTT_5:
            properties, position = decode_properties(data, position, end, PacketType.SUBACK)
            allowed = _SUBACK_REASONS
        else:
            properties = {}
            allowed = _SUBACK_RETURN_CODES
        reason_codes = list(data[position:end])
        if not reason_codes and level != MQTT_3_1:
            raise ProtocolError("SUBACK without return codes")
        for code in reason_codes:
            if code not in allowed:
                raise MalformedPacket(f"SUBACK return code 0x{code:02X} not allowed [MQTT-3.9.3-2]")
        return Suback(packet_id, reason_codes, properties)

    def _decode_unsubscribe(self, first_byte: int, data: bytes, start: int, end: int) -> Unsubscribe:
        self._check_subscribe_flags(first_byte, "UNSUBSCRIBE", "MQTT-3.10.1-1")
        packet_id = _read_packet_id(data, start, end, "UNSUBSCRIBE")
        position = start + 2
        properties: Properties
        if self._protocol_level == MQTT_5:
            properties, position = decode_properties(data, position, end, PacketType.UNSUBSCRIBE)
        else:
            properties = {}
        filters: list[str] = []
        while position < end:
            topic_filter, position = _read_string(data, position, end, "UNSUBSCRIBE topic filter")
            filters.append(topic_filter)
        if not filters:
            raise ProtocolError("UNSUBSCRIBE without topic filters [MQTT-3.10.3-2]")
        return Unsubscribe(packet_id, filters, properties)

    def _decode_unsuback(self, first_byte: int, data: bytes, start: int, end: int) -> Unsuback:
        if first_byte & 0x0F:
            raise MalformedPacket("UNSUBACK fixed-header flags not 0000 [MQTT-2.2.2-2]")
        packet_id = _read_packet_id(data, start, end, "UNSUBACK")
        if self._protocol_level != MQTT_5:
            if end - start != 2:
                raise MalformedPacket("UNSUBACK remaining length not 2")
            return Unsuback(packet_id, [], {})
        properties, position = decode_properties(data, start + 2, end, PacketType.UNSUBACK)
        reason_codes = list(data[position:end])
        for code in reason_codes:
            if code not in _UNSUBACK_REASONS:
                raise MalformedPacket(f"UNSUBACK reason code 0x{code:02X} not allowed")
        return Unsuback(packet_id, reason_codes, properties)

    def _decode_pingreq(self, first_byte: int, data: bytes, start: int, end: int) -> Pingreq:
        if first_byte & 0x0F or end != start:
            raise MalformedPacket("PINGREQ must be C0 00")
        return Pingreq()

    def _decode_pingresp(self, first_byte: int, data: bytes, start: int, end: int) -> Pingresp:
        if first_byte & 0x0F or end != start:
            raise MalformedPacket("PINGRESP must be D0 00")
        return Pingresp()

    def _decode_disconnect(self, first_byte: int, data: bytes, start: int, end: int) -> Disconnect:
        if first_byte & 0x0F:
            raise MalformedPacket("DISCONNECT fixed-header flags not 0000 [MQTT-3.14.1-1]")
        if self._protocol_level != MQTT_5:
            if end != start:
                raise MalformedPacket("DISCONNECT remaining length not 0")
            return Disconnect(0, {})
        if end == start:
            return Disconnect(0, {})
        reason_code = data[start]
        if reason_code not in _DISCONNECT_REASONS:
            raise MalformedPacket(f"DISCONNECT reason code 0x{reason_code:02X} not allowed")
        if end - start == 1:
            return Disconnect(reason_code, {})
        properties, position = decode_properties(data, start + 1, end, PacketType.DISCONNECT)
        if position != end:
            raise MalformedPacket("DISCONNECT has trailing bytes")
        return Disconnect(reason_code, properties)

    def _decode_auth(self, first_byte: int, data: bytes, start: int, end: int) -> Auth:
        if first_byte & 0x0F:
            raise MalformedPacket("AUTH fixed-header flags not 0000 [MQTT-3.15.1-1]")
        if end == start:
            return Auth(0, {})
        reason_code = data[start]
        if reason_code not in _AUTH_REASONS:
            raise MalformedPacket(f"AUTH reason code 0x{reason_code:02X} not allowed [MQTT-3.15.2-1]")
        properties, position = decode_properties(data, start + 1, end, PacketType.AUTH)
        if position != end:
            raise MalformedPacket("AUTH has trailing bytes")
        return Auth(reason_code, properties)

    def _decode_provack(self, first_byte: int, data: bytes, start: int, end: int) -> Provack:
        if first_byte & 0x0F:
            raise MalformedPacket("PROVACK fixed-header flags not 0000")
        if end - start < 2:
            raise MalformedPacket("PROVACK shorter than 2 bytes")
        return Provack(data[start + 1], data[start + 2 : end])


_ACKNOWLEDGEMENTS: dict[int, type[Puback] | type[Pubrec] | type[Pubrel] | type[Pubcomp]] = {
    PacketType.PUBACK: Puback,
    PacketType.PUBREC: Pubrec,
    PacketType.PUBREL: Pubrel,
    PacketType.PUBCOMP: Pubcomp,
}
