"""Hand-built MQTT 3.1.1 packets and an incremental frame parser.

The generator encodes and decodes bytes itself so that no client library sits in the measured path.
Only the packets the benchmark needs exist here: CONNECT, SUBSCRIBE, PUBLISH, PUBACK, DISCONNECT;
the hot loops build and check PUBLISH frames in bulk through `PublishLayout`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
SUBSCRIBE = 8
SUBACK = 9
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14

DISCONNECT_PACKET = b"\xe0\x00"

# The benchmark payload: publisher index, sequence number, send time (perf_counter_ns), then padding.
PAYLOAD_HEADER = struct.Struct(">HQq")
MINIMUM_PAYLOAD = PAYLOAD_HEADER.size


class ProtocolError(Exception):
    """The broker sent bytes the generator cannot accept."""


def encode_length(length: int) -> bytes:
    """Encode an MQTT variable byte integer (remaining length)."""
    encoded = bytearray()
    while True:
        digit, length = length % 128, length // 128
        if length:
            encoded.append(digit | 0x80)
        else:
            encoded.append(digit)
            return bytes(encoded)


def encode_string(value: str | bytes) -> bytes:
    """Encode a length-prefixed UTF-8 string."""
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack(">H", len(raw)) + raw


def connect_packet(
    client_id: str, username: str | None = None, password: str | None = None, keepalive: int = 600
) -> bytes:
    """Build a clean-session MQTT 3.1.1 CONNECT."""
    flags = 0x02
    payload = encode_string(client_id)
    if username is not None:
        flags |= 0x80
        payload += encode_string(username)
    if password is not None:
        flags |= 0x40
        payload += encode_string(password)
    variable = encode_string("MQTT") + bytes([4, flags]) + struct.pack(">H", keepalive)
    body = variable + payload
    return b"\x10" + encode_length(len(body)) + body


def subscribe_packet(packet_id: int, filters: list[str], qos: int) -> bytes:
    """Build one SUBSCRIBE carrying every filter at the same QoS."""
    body = bytearray(struct.pack(">H", packet_id))
    for topic_filter in filters:
        body += encode_string(topic_filter)
        body.append(qos)
    return b"\x82" + encode_length(len(body)) + bytes(body)


@dataclass(frozen=True, slots=True)
class PublishLayout:
    """The fixed byte layout of every benchmark PUBLISH on one topic.

    All messages of a flow have the same size, so a whole receive buffer can be validated with slices
    and decoded with `struct.iter_unpack`, which keeps the generator far cheaper per message than the
    broker it measures.
    """

    topic: bytes
    qos: int
    payload_size: int

    @property
    def remaining_length(self) -> int:
        return 2 + len(self.topic) + (2 if self.qos else 0) + self.payload_size

    @property
    def header_byte(self) -> int:
        return 0x30 | (self.qos << 1)

    @property
    def frame(self) -> struct.Struct:
        """Header byte, remaining length, topic, [packet id], publisher, sequence, stamp, padding."""
        if self.remaining_length > 127:
            raise ValueError("benchmark frames must have a one-byte remaining length")
        packet_id = "H" if self.qos else ""
        padding = self.payload_size - MINIMUM_PAYLOAD
        return struct.Struct(f">BBH{len(self.topic)}s{packet_id}HQq{padding}x")

    @property
    def packet_id_offset(self) -> int:
        return 4 + len(self.topic)


def puback_packet(packet_id: int) -> bytes:
    return b"\x40\x02" + struct.pack(">H", packet_id)


def next_frame(buffer: bytearray) -> tuple[int, bytes] | None:
    """Incremental parser: pop the first complete frame as (first byte, body); None if incomplete."""
    size = len(buffer)
    if size < 2:
        return None
    length = 0
    index = 1
    for shift in (0, 7, 14, 21):
        if index >= size:
            return None
        digit = buffer[index]
        index += 1
        length |= (digit & 0x7F) << shift
        if not digit & 0x80:
            break
    else:
        raise ProtocolError("malformed remaining length")
    end = index + length
    if end > size:
        return None
    frame = (buffer[0], bytes(buffer[index:end]))
    del buffer[:end]
    return frame
