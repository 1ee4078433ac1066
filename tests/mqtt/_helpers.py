"""Shared helpers for the codec tests (underscore: not collected)."""

from __future__ import annotations

from instamsg.mqtt import MQTT_3_1, MQTT_3_1_1, MQTT_5, FrameDecoder, Packet

#: Minimal CONNECT packets written out by hand, used to put a server-side decoder at a level.
CONNECT_PRELUDE: dict[int, bytes] = {
    # MQIsdp, level 3, clean session, keep alive 0, empty client id
    MQTT_3_1: bytes.fromhex("10 0E 0006 4D5149736470 03 02 0000 0000"),
    MQTT_3_1_1: bytes.fromhex("10 0C 0004 4D515454 04 02 0000 0000"),
    MQTT_5: bytes.fromhex("10 0D 0004 4D515454 05 02 0000 00 0000"),
}

LEVELS = (MQTT_3_1, MQTT_3_1_1, MQTT_5)


def h(text: str) -> bytes:
    """Bytes from hex with optional spaces."""
    return bytes.fromhex(text)


def server_decoder(level: int, max_packet_size: int | None = None) -> FrameDecoder:
    """A server-side decoder that has already received a CONNECT at ``level``."""
    decoder = FrameDecoder() if max_packet_size is None else FrameDecoder(max_packet_size)
    assert len(decoder.feed(CONNECT_PRELUDE[level])) == 1
    assert decoder.protocol_level == level
    return decoder


def client_decoder(level: int) -> FrameDecoder:
    """A client-side decoder at ``level``."""
    return FrameDecoder(server_side=False, protocol_level=level)


def decode(data: bytes, level: int, *, server_side: bool) -> list[Packet]:
    """Decode ``data`` as received by a server (after its CONNECT) or a client at ``level``."""
    if server_side:
        if data and data[0] >> 4 == 1:
            return FrameDecoder().feed(data)
        return server_decoder(level).feed(data)
    return client_decoder(level).feed(data)


def decode_bytewise(data: bytes, level: int, *, server_side: bool) -> list[Packet]:
    """Like :func:`decode` but feeding one byte at a time."""
    if server_side:
        decoder = FrameDecoder() if data and data[0] >> 4 == 1 else server_decoder(level)
    else:
        decoder = client_decoder(level)
    packets: list[Packet] = []
    for index in range(len(data)):
        packets.extend(decoder.feed(data[index : index + 1]))
    return packets
