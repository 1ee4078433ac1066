"""Test helpers: identities, exact-byte packet builders and a raw socket client."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from instamsg.mqtt.decoder import FrameDecoder
from instamsg.mqtt.encoder import encode
from instamsg.mqtt.packets import Connect, Packet, Will

TENANT_A = "tenant-a"
TENANT_B = "tenant-b"


@dataclass(frozen=True)
class Identity:
    uuid: str
    token: str


ALICE = Identity("0a1b2c3d-0000-4000-8000-00000000000a", "a" * 32)
BOB = Identity("0a1b2c3d-0000-4000-8000-00000000000b", "b" * 32)
CAROL = Identity("0a1b2c3d-0000-4000-8000-00000000000c", "c" * 32)
MALLORY = Identity("0a1b2c3d-0000-4000-8000-0000000000ff", "f" * 32)


def connect_bytes(
    identity: Identity | None,
    *,
    level: int = 4,
    client_id: str = "test",
    clean: bool = True,
    keep_alive: int = 60,
    password: str | None = None,
    will: Will | None = None,
    properties: dict[str, object] | None = None,
) -> bytes:
    name = "MQIsdp" if level == 3 else "MQTT"
    packet = Connect(
        protocol_name=name,
        protocol_level=level,
        clean_start=clean,
        keep_alive=keep_alive,
        client_id=client_id,
        username=None if identity is None else identity.uuid,
        password=(None if identity is None else identity.token.encode())
        if password is None
        else password.encode(),
        will=will,
        properties=properties or {},  # type: ignore[typeddict-item]
    )
    return encode(packet, level)


def utf8(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def publish_bytes(
    topic: str,
    payload: bytes,
    qos: int = 0,
    packet_id: int | None = None,
    retain: bool = False,
    dup: bool = False,
    properties: bytes | None = None,
) -> bytes:
    """PUBLISH built by hand; `properties` (MQTT 5) is the raw property block including its length."""
    body = utf8(topic)
    if qos:
        assert packet_id is not None
        body += packet_id.to_bytes(2, "big")
    if properties is not None:
        body += properties
    body += payload
    first = 0x30 | (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    return bytes((first,)) + remaining_length(len(body)) + body


def subscribe_bytes(packet_id: int, *filters: tuple[str, int], properties: bytes | None = None) -> bytes:
    body = packet_id.to_bytes(2, "big")
    if properties is not None:
        body += properties
    for topic_filter, options in filters:
        body += utf8(topic_filter) + bytes((options,))
    return bytes((0x82,)) + remaining_length(len(body)) + body


def unsubscribe_bytes(packet_id: int, *filters: str, v5: bool = False) -> bytes:
    body = packet_id.to_bytes(2, "big") + (b"\x00" if v5 else b"")
    for topic_filter in filters:
        body += utf8(topic_filter)
    return bytes((0xA2,)) + remaining_length(len(body)) + body


def remaining_length(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


class RawClient:
    """A socket that sends exact bytes and reads exact bytes (or decoded packets)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def read_exactly(self, size: int, timeout: float = 2.0) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(size), timeout)

    async def expect(self, data: bytes, timeout: float = 2.0) -> None:
        got = await self.read_exactly(len(data), timeout)
        if got != data:
            raise AssertionError(f"expected {data.hex(' ')}, got {got.hex(' ')}")

    async def read_packet(self, timeout: float = 2.0) -> bytes:
        """One whole packet's bytes."""
        first = await self.read_exactly(1, timeout)
        length_bytes = b""
        multiplier = 1
        value = 0
        while True:
            byte = (await self.read_exactly(1, timeout))[0]
            length_bytes += bytes((byte,))
            value += (byte & 0x7F) * multiplier
            multiplier *= 128
            if not byte & 0x80:
                break
        return first + length_bytes + await self.read_exactly(value, timeout)

    async def read_decoded(self, level: int = 4, timeout: float = 2.0) -> Packet:
        decoder = FrameDecoder(server_side=False, protocol_level=level)
        packets = decoder.feed(await self.read_packet(timeout))
        assert len(packets) == 1
        return packets[0]

    async def expect_closed(self, timeout: float = 2.0) -> bytes:
        """Read until EOF; returns whatever arrived before it."""
        return await asyncio.wait_for(self.reader.read(), timeout)

    async def expect_silence(self, duration: float = 0.3) -> None:
        try:
            data = await asyncio.wait_for(self.reader.read(1), duration)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected data {data!r}")

    async def connect(self, identity: Identity, level: int = 4, **kwargs: object) -> bytes:
        self.send(connect_bytes(identity, level=level, **kwargs))  # type: ignore[arg-type]
        return await self.read_packet()

    def close(self) -> None:
        self.writer.close()
