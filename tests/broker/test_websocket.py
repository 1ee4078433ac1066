"""Tests of the WebSocket adapter: raw bytes on the wire, a fake transport, and the `websockets` client."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from instamsg.broker.websocket import (
    WebSocketProtocolError,
    WebSocketServerProtocol,
    websocket_protocol_factory,
)

# The worked example of RFC 6455 §1.3.
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
MASK = b"\x37\xfa\x21\x3d"
TIMEOUT = 3.0

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


# Client-side wire helpers, written independently of the code under test


def upgrade_request(
    path: str = "/",
    *,
    key: str = KEY,
    version: str = "13",
    protocols: tuple[str, ...] = (),
    method: str = "GET",
    http: str = "HTTP/1.1",
    connection: str = "Upgrade",
    extra: tuple[str, ...] = (),
) -> bytes:
    lines = [
        f"{method} {path} {http}",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        f"Connection: {connection}",
        f"Sec-WebSocket-Key: {key}",
        f"Sec-WebSocket-Version: {version}",
        "Origin: http://127.0.0.1",
        *(f"Sec-WebSocket-Protocol: {value}" for value in protocols),
        *extra,
        "",
        "",
    ]
    return "\r\n".join(lines).encode("latin-1")


def client_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = MASK,
    length: int | None = None,
) -> bytes:
    """A client frame; a byte-by-byte XOR here checks the adapter's integer unmasking."""
    size = len(payload) if length is None else length
    first = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if mask is not None else 0
    if size < 126:
        header = bytes((first, mask_bit | size))
    elif size < 0x10000:
        header = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, size)
    if mask is None:
        return header + payload
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return header + mask + masked


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


class RawClient:
    """A client speaking hand-built bytes over an asyncio stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, request: bytes = b"") -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        if request:
            client.send(request)
        return client

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def head(self) -> bytes:
        return await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), TIMEOUT)

    async def upgrade(self, request: bytes | None = None) -> bytes:
        self.send(upgrade_request() if request is None else request)
        head = await self.head()
        assert head.startswith(b"HTTP/1.1 101 ")
        return head

    async def frame(self) -> tuple[int, bytes]:
        """The next server frame as (first header byte, payload); server frames are never masked."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), TIMEOUT)
        assert not second & 0x80, "server frames must not be masked"
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
            assert size >= 126, "length not minimally encoded"
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
            assert size >= 0x10000, "length not minimally encoded"
        return first, await asyncio.wait_for(self.reader.readexactly(size), TIMEOUT)

    async def rest(self) -> bytes:
        """Everything until the server closes the connection."""
        return await asyncio.wait_for(self.reader.read(), TIMEOUT)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


# Inner protocols and servers


@dataclass
class Recorder(asyncio.Protocol):
    """Inner protocol that records everything and answers each chunk according to ``mode``."""

    mode: str = "writelines"
    transport: Any = None
    received: bytearray = field(default_factory=bytearray)
    lost: list[Exception | None] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data
        if self.mode == "writelines":
            self.transport.writelines([b"A" * 3, b"B" * 5])
        elif self.mode == "echo":
            self.transport.write(data)
        elif self.mode == "close":
            self.transport.close()
            self.transport.write(b"after close")
        self.changed.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)
        self.changed.set()

    async def wait(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


@dataclass
class Served:
    port: int
    recorders: list[Recorder]

    async def recorder(self) -> Recorder:
        async with asyncio.timeout(TIMEOUT):
            while not self.recorders:
                await asyncio.sleep(0.005)
        return self.recorders[0]


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(
        mode: str = "writelines", ssl_context: ssl.SSLContext | None = None, **options: Any
    ) -> Served:
        recorders: list[Recorder] = []

        def inner() -> Recorder:
            recorders.append(Recorder(mode))
            return recorders[-1]

        factory = websocket_protocol_factory(inner, **options)
        server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0, ssl=ssl_context)
        servers.append(server)
        return Served(server.sockets[0].getsockname()[1], recorders)

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


# Handshake


async def test_handshake_answers_exact_101_without_subprotocol_when_none_offered(serve: Serve) -> None:
    served = await serve()
    client = await RawClient.open(served.port)
    head = await client.upgrade()
    assert head == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + ACCEPT.encode() + b"\r\n\r\n"
    )
    recorder = await served.recorder()
    assert recorder.transport.get_extra_info("websocket_subprotocol") is None
    await client.close()


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        (("mqtt, mqttv3.1",), "mqtt"),
        (("mqttv3.1, mqtt",), "mqtt"),
        (("mqttv3.1",), "mqttv3.1"),
        (("chat", "mqttv3.1"), "mqttv3.1"),  # offered over two header lines
        (("chat, superchat",), None),
        (("MQTT",), "MQTT"),  # echoed as the client spelled it
    ],
)
async def test_subprotocol_is_mqtt_then_mqttv31_and_only_one_offered(
    serve: Serve, offered: tuple[str, ...], answered: str | None
) -> None:
    served = await serve()
    client = await RawClient.open(served.port)
    head = await client.upgrade(upgrade_request(protocols=offered))
    header_lines = [
        line for line in head.split(b"\r\n") if line.lower().startswith(b"sec-websocket-protocol")
    ]
    if answered is None:
        assert header_lines == []
    else:
        assert header_lines == [f"Sec-WebSocket-Protocol: {answered}".encode()]
    recorder = await served.recorder()
    assert recorder.transport.get_extra_info("websocket_subprotocol") == answered
    await client.close()


@pytest.mark.parametrize("path", ["/", "/mqtt", "/any/deep/path?client=1"])
async def test_upgrade_is_accepted_on_any_path(serve: Serve, path: str) -> None:
    served = await serve()
    client = await RawClient.open(served.port)
    await client.upgrade(upgrade_request(path))
    recorder = await served.recorder()
    assert recorder.transport.get_extra_info("websocket_path") == path
    await client.close()


async def test_header_parsing_tolerates_case_whitespace_and_bare_line_feeds(serve: Serve) -> None:
    served = await serve()
    request = (
        f"GET /mqtt HTTP/1.1\n"
        f"host:127.0.0.1\n"
        f"UPGRADE:   WebSocket  \n"
        f"connection: keep-alive,  upgrade\n"
        f"sec-websocket-key:{KEY}   \n"
        f"SEC-WEBSOCKET-VERSION: 13\n\n"
    ).encode()
    client = await RawClient.open(served.port)
    head = await client.upgrade(request)
    assert f"Sec-WebSocket-Accept: {ACCEPT}\r\n".encode() in head
    await client.close()


async def test_frames_sent_right_behind_the_handshake_are_not_lost(serve: Serve) -> None:
    served = await serve(mode="none")
    client = await RawClient.open(served.port, upgrade_request() + client_frame(BINARY, b"\x10\x02"))
    await client.head()
    recorder = await served.recorder()
    await recorder.wait(lambda: bytes(recorder.received) == b"\x10\x02")
    await client.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(upgrade_request(key=""), id="missing key"),
        pytest.param(upgrade_request(key="AAAAAAAAAAAAAAAAAAAA"), id="key of 15 bytes"),
        pytest.param(upgrade_request(key="not base64 at all!!!!!=="), id="key not base64"),
        pytest.param(upgrade_request(connection="keep-alive"), id="connection without upgrade"),
        pytest.param(upgrade_request(method="POST"), id="not GET"),
        pytest.param(upgrade_request(http="HTTP/1.0"), id="HTTP/1.0"),
        pytest.param(b"HELLO\r\n\r\n", id="garbage request line"),
        pytest.param(
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nno colon here\r\n\r\n", id="header without colon"
        ),
    ],
)
async def test_bad_handshake_gets_400_and_close(serve: Serve, request_bytes: bytes) -> None:
    served = await serve()
    client = await RawClient.open(served.port, request_bytes)
    head = await client.head()
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert await client.rest() == b""
    assert served.recorders == []
    await client.close()


async def test_unsupported_version_gets_426_naming_version_13(serve: Serve) -> None:
    served = await serve()
    client = await RawClient.open(served.port, upgrade_request(version="8"))
    head = await client.head()
    assert head.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"\r\nSec-WebSocket-Version: 13\r\n" in head
    assert await client.rest() == b""
    await client.close()


async def test_oversized_request_head_is_refused(serve: Serve) -> None:
    served = await serve(max_handshake_size=256)
    client = await RawClient.open(served.port, b"GET / HTTP/1.1\r\nX-Filler: " + b"x" * 300)
    head = await client.head()
    assert head.startswith(b"HTTP/1.1 431 ")
    assert await client.rest() == b""
    await client.close()


async def test_silent_client_is_dropped_after_the_handshake_timeout(serve: Serve) -> None:
    served = await serve(handshake_timeout=0.1)
    client = await RawClient.open(served.port, b"GET / HTTP/1.1\r\n")
    head = await client.head()
    assert head.startswith(b"HTTP/1.1 408 ")
    assert await client.rest() == b""
    assert served.recorders == []
    await client.close()


async def test_plain_http_request_without_fallback_gets_426(serve: Serve) -> None:
    served = await serve()
    client = await RawClient.open(served.port, b"GET /F0EA5EFF05B5F66875C884555C348811.txt HTTP/1.1\r\n\r\n")
    head = await client.head()
    assert head.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"\r\nUpgrade: websocket\r\n" in head
    assert await client.rest() == b""
    assert served.recorders == []
    await client.close()


class LaterBytes(asyncio.Protocol):
    """What an HTTP service installs to read a request body that arrives after the head."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data
        )
        self.transport.close()


async def test_plain_http_request_goes_to_fallback_which_takes_over_the_transport(serve: Serve) -> None:
    calls: list[tuple[bytes, asyncio.Transport]] = []

    def fallback(received: bytes, transport: asyncio.Transport) -> None:
        calls.append((received, transport))
        transport.set_protocol(LaterBytes(transport))

    served = await serve(http_fallback=fallback)
    head = b"POST /api/beta/clients/x/files HTTP/1.1\r\nContent-Length: 7\r\n\r\n"
    client = await RawClient.open(served.port, head + b"abc")
    async with asyncio.timeout(TIMEOUT):
        while not calls:
            await asyncio.sleep(0.005)
    assert calls[0][0] == head + b"abc"
    client.send(b"defg")
    assert await client.rest() == b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndefg"
    assert served.recorders == []
    await client.close()


# Frames from the client


async def test_writelines_sends_each_packet_as_its_own_binary_frame(serve: Serve) -> None:
    served = await serve()
    client = await RawClient.open(served.port)
    await client.upgrade()
    client.send(client_frame(BINARY, b"\x10\x0c\x00\x04MQTT"))
    assert await client.frame() == (0x82, b"AAA")
    assert await client.frame() == (0x82, b"BBBBB")
    recorder = await served.recorder()
    assert bytes(recorder.received) == b"\x10\x0c\x00\x04MQTT"
    await client.close()


async def test_text_and_fragmented_messages_with_a_ping_between_fragments_form_one_stream(
    serve: Serve,
) -> None:
    served = await serve(mode="none")
    client = await RawClient.open(served.port)
    await client.upgrade()
    client.send(
        client_frame(BINARY, b"\x30\x05")
        + client_frame(TEXT, b"\x00\x01", fin=False)
        + client_frame(PING, b"are you there")
        + client_frame(CONTINUATION, b"\xff\xfe", fin=False)  # not UTF-8: text is not validated
        + client_frame(CONTINUATION, b"", fin=False)
        + client_frame(CONTINUATION, b"!", fin=True)
        + client_frame(TEXT, b"tail")
    )
    assert await client.frame() == (0x80 | PONG, b"are you there")
    recorder = await served.recorder()
    expected = b"\x30\x05\x00\x01\xff\xfe!tail"
    await recorder.wait(lambda: len(recorder.received) >= len(expected))
    assert bytes(recorder.received) == expected
    await client.close()


@pytest.mark.parametrize("size", [0, 125, 126, 300, 65535, 65536, 200_000])
async def test_payload_lengths_of_every_header_form_round_trip(serve: Serve, size: int) -> None:
    served = await serve(mode="echo")
    payload = os.urandom(size)
    client = await RawClient.open(served.port)
    await client.upgrade()
    client.send(client_frame(BINARY, payload) + client_frame(PING, b"done"))
    if size:
        assert await client.frame() == (0x82, payload)
    assert await client.frame() == (0x80 | PONG, b"done")
    await client.close()


async def test_ping_gets_pong_with_the_same_payload(serve: Serve) -> None:
    served = await serve()
    client = await RawClient.open(served.port)
    await client.upgrade()
    client.send(client_frame(PING, b"\x01\x02\x03"))
    assert await client.frame() == (0x80 | PONG, b"\x01\x02\x03")
    client.send(client_frame(PONG, b"unsolicited") + client_frame(PING))
    assert await client.frame() == (0x80 | PONG, b"")
    recorder = await served.recorder()
    assert recorder.received == b""
    await client.close()


async def test_close_handshake_echoes_the_code_and_ends_the_inner_connection_cleanly(serve: Serve) -> None:
    served = await serve(mode="none")
    client = await RawClient.open(served.port)
    await client.upgrade()
    client.send(client_frame(BINARY, b"\xe0\x00") + client_frame(CLOSE, close_payload(1000, b"bye")))
    assert await client.frame() == (0x80 | CLOSE, close_payload(1000))
    assert await client.rest() == b""
    recorder = await served.recorder()
    await recorder.wait(lambda: bool(recorder.lost))
    assert recorder.received == b"\xe0\x00"
    assert recorder.lost == [None]
    await client.close()


async def test_empty_close_is_answered_with_an_empty_close(serve: Serve) -> None:
    served = await serve()
    client = await RawClient.open(served.port)
    await client.upgrade()
    client.send(client_frame(CLOSE))
    assert await client.frame() == (0x80 | CLOSE, b"")
    assert await client.rest() == b""
    await client.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param(client_frame(BINARY, b"\x10\x00", mask=None), 1002, id="unmasked"),
        pytest.param(client_frame(BINARY, b"x", rsv=0x40), 1002, id="reserved bit"),
        pytest.param(client_frame(0x3, b"x"), 1002, id="reserved data opcode"),
        pytest.param(client_frame(0xB, b"x"), 1002, id="reserved control opcode"),
        pytest.param(client_frame(CONTINUATION, b"x"), 1002, id="continuation without message"),
        pytest.param(
            client_frame(TEXT, b"a", fin=False) + client_frame(BINARY, b"b"), 1002, id="interleaved message"
        ),
        pytest.param(client_frame(PING, b"x", fin=False), 1002, id="fragmented ping"),
        pytest.param(client_frame(PING, b"x" * 126), 1002, id="ping over 125 bytes"),
        pytest.param(client_frame(CLOSE, b"\x03"), 1002, id="one-byte close"),
        pytest.param(client_frame(CLOSE, close_payload(1005)), 1002, id="close code 1005"),
        pytest.param(client_frame(CLOSE, close_payload(1000, b"\xff")), 1007, id="close reason not UTF-8"),
        pytest.param(client_frame(BINARY, length=1 << 63), 1002, id="64-bit length top bit"),
        pytest.param(client_frame(BINARY, length=65), 1009, id="frame over limit, header only"),
        pytest.param(client_frame(BINARY, length=1 << 40), 1009, id="huge 64-bit length"),
        pytest.param(
            client_frame(BINARY, b"x" * 40, fin=False) + client_frame(CONTINUATION, b"y" * 25),
            1009,
            id="fragments over limit",
        ),
    ],
)
async def test_protocol_violations_fail_the_connection_with_their_close_code(
    serve: Serve, frame: bytes, code: int
) -> None:
    served = await serve(mode="none", max_message_size=64)
    client = await RawClient.open(served.port)
    await client.upgrade()
    client.send(frame)
    assert await client.frame() == (0x80 | CLOSE, close_payload(code))
    assert await client.rest() == b""
    recorder = await served.recorder()
    await recorder.wait(lambda: bool(recorder.lost))
    [error] = recorder.lost
    assert isinstance(error, WebSocketProtocolError)
    assert error.close_code == code
    await client.close()


async def test_message_of_exactly_the_limit_is_accepted(serve: Serve) -> None:
    served = await serve(mode="none", max_message_size=64)
    client = await RawClient.open(served.port)
    await client.upgrade()
    client.send(client_frame(BINARY, b"x" * 30, fin=False) + client_frame(CONTINUATION, b"y" * 34))
    client.send(client_frame(BINARY, b"z" * 64))
    recorder = await served.recorder()
    await recorder.wait(lambda: len(recorder.received) >= 128)
    assert recorder.received == b"x" * 30 + b"y" * 34 + b"z" * 64
    assert recorder.lost == []
    await client.close()


# The transport the inner protocol sees


async def test_inner_close_sends_close_1000_and_drops_later_writes(serve: Serve) -> None:
    served = await serve(mode="close")
    client = await RawClient.open(served.port)
    await client.upgrade()
    client.send(client_frame(BINARY, b"\xe0\x00"))
    assert await client.frame() == (0x80 | CLOSE, close_payload(1000))
    assert await client.rest() == b""
    recorder = await served.recorder()
    await recorder.wait(lambda: bool(recorder.lost))
    assert recorder.lost == [None]
    await client.close()


async def test_abrupt_disconnect_reaches_the_inner_protocol_once(serve: Serve) -> None:
    served = await serve()
    client = await RawClient.open(served.port)
    await client.upgrade()
    recorder = await served.recorder()
    await client.close()
    await recorder.wait(lambda: bool(recorder.lost))
    await asyncio.sleep(0.05)
    assert len(recorder.lost) == 1


async def test_extra_info_delegates_to_the_socket_transport(serve: Serve) -> None:
    served = await serve()
    client = await RawClient.open(served.port)
    await client.upgrade(upgrade_request("/mqtt", protocols=("mqtt",)))
    recorder = await served.recorder()
    transport = recorder.transport
    assert transport.get_extra_info("peername") == client.writer.get_extra_info("sockname")
    assert transport.get_extra_info("socket") is not None
    assert transport.get_extra_info("sslcontext") is None
    assert transport.get_extra_info("websocket_request_headers")["origin"] == "http://127.0.0.1"
    assert transport.get_extra_info("no such thing", "default") == "default"
    assert transport.get_protocol() is recorder
    assert not transport.is_closing()
    await client.close()


class FakeTransport(asyncio.Transport):
    """Records writes and flow-control calls of the adapter."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("192.0.2.1", 4242)}.get(name, default)


class FlowRecorder(Recorder):
    """Pauses reading after its first chunk and records flow-control calls."""

    def __init__(self) -> None:
        super().__init__(mode="none")
        self.chunks: list[bytes] = []
        self.flow: list[str] = []

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.transport.pause_reading()

    def pause_writing(self) -> None:
        self.flow.append("pause")

    def resume_writing(self) -> None:
        self.flow.append("resume")


@pytest.fixture
async def adapter() -> AsyncIterator[tuple[WebSocketServerProtocol, FakeTransport, list[FlowRecorder]]]:
    inners: list[FlowRecorder] = []

    def inner() -> FlowRecorder:
        inners.append(FlowRecorder())
        return inners[-1]

    protocol = websocket_protocol_factory(inner, max_message_size=100)()
    transport = FakeTransport()
    protocol.connection_made(transport)
    yield protocol, transport, inners
    protocol.connection_lost(None)


async def test_handshake_and_frames_split_into_single_bytes_are_reassembled(
    adapter: tuple[WebSocketServerProtocol, FakeTransport, list[FlowRecorder]],
) -> None:
    protocol, transport, inners = adapter
    # 60 + 40 bytes: exactly the limit, which double counting of a partial frame would exceed.
    wire = (
        upgrade_request()
        + client_frame(BINARY, b"a" * 60, fin=False)
        + client_frame(CONTINUATION, b"b" * 40)
        + client_frame(PING, b"!")
    )
    for index in range(len(wire)):
        protocol.data_received(wire[index : index + 1])
        if inners and inners[0].chunks:
            inners[0].transport.resume_reading()
            await asyncio.sleep(0)
    assert b"".join(inners[0].chunks) == b"a" * 60 + b"b" * 40
    assert transport.writes[-1] == b"\x8a\x01!"
    assert not transport.closed


async def test_pause_reading_holds_back_stream_bytes_until_resume(
    adapter: tuple[WebSocketServerProtocol, FakeTransport, list[FlowRecorder]],
) -> None:
    protocol, transport, inners = adapter
    protocol.data_received(upgrade_request() + client_frame(BINARY, b"first"))
    inner = inners[0]
    assert inner.chunks == [b"first"]
    assert not transport.reading and not inner.transport.is_reading()
    protocol.data_received(client_frame(BINARY, b"second") + client_frame(TEXT, b"third"))
    assert inner.chunks == [b"first"]
    inner.transport.resume_reading()
    assert transport.reading
    assert inner.chunks == [b"first"]  # delivered from the loop, not inside resume_reading()
    await asyncio.sleep(0)
    assert inner.chunks == [b"first", b"secondthird"]


async def test_writes_frame_each_packet_and_writelines_makes_one_socket_write(
    adapter: tuple[WebSocketServerProtocol, FakeTransport, list[FlowRecorder]],
) -> None:
    protocol, transport, inners = adapter
    protocol.data_received(upgrade_request())
    ws = inners[0].transport
    transport.writes.clear()
    ws.writelines([b"\x20\x02\x00\x00", bytearray(b"\x90\x03\x00\x01\x00"), memoryview(b"\xd0\x00")])
    assert transport.writes == [b"\x82\x04\x20\x02\x00\x00\x82\x05\x90\x03\x00\x01\x00\x82\x02\xd0\x00"]
    transport.writes.clear()
    ws.write(b"x" * 126)
    ws.write(b"y" * 70000)
    ws.write(b"")
    assert transport.writes == [
        b"\x82\x7e\x00\x7e" + b"x" * 126,
        b"\x82\x7f" + (70000).to_bytes(8, "big") + b"y" * 70000,
    ]
    assert ws.get_extra_info("peername") == ("192.0.2.1", 4242)
    transport.writes.clear()
    ws.close()
    ws.write(b"dropped")
    ws.writelines([b"dropped"])
    assert transport.writes == [b"\x88\x02\x03\xe8"]
    assert transport.closed and ws.is_closing()


async def test_pause_and_resume_writing_are_forwarded_to_the_inner_protocol(
    adapter: tuple[WebSocketServerProtocol, FakeTransport, list[FlowRecorder]],
) -> None:
    protocol, _, inners = adapter
    protocol.pause_writing()  # before the handshake: the inner protocol learns it on creation
    protocol.data_received(upgrade_request())
    protocol.resume_writing()
    protocol.pause_writing()
    assert inners[0].flow == ["pause", "resume", "pause"]


async def test_connection_lost_before_the_handshake_creates_no_inner_protocol(
    adapter: tuple[WebSocketServerProtocol, FakeTransport, list[FlowRecorder]],
) -> None:
    protocol, _, inners = adapter
    protocol.data_received(b"GET / HTTP/1.1\r\n")
    protocol.connection_lost(ConnectionResetError())
    assert inners == []


# The `websockets` client library, over WS and WSS


async def test_websockets_client_without_subprotocol(serve: Serve) -> None:
    served = await serve()
    async with connect(f"ws://127.0.0.1:{served.port}/", proxy=None, ping_interval=None) as websocket:
        assert websocket.subprotocol is None
        await websocket.send(b"\xc0\x00")
        assert await websocket.recv() == b"AAA"
        assert await websocket.recv() == b"BBBBB"
        await websocket.send("text")
        assert await websocket.recv() == b"AAA"
        assert await websocket.recv() == b"BBBBB"
    recorder = await served.recorder()
    await recorder.wait(lambda: bool(recorder.lost))
    assert recorder.received == b"\xc0\x00text"
    assert recorder.lost == [None]


async def test_websockets_client_with_mqtt_subprotocol(serve: Serve) -> None:
    served = await serve(mode="echo")
    uri = f"ws://127.0.0.1:{served.port}/mqtt"
    async with connect(uri, subprotocols=[Subprotocol("mqtt")], proxy=None, ping_interval=None) as websocket:
        assert websocket.subprotocol == "mqtt"
        payload = os.urandom(100_000)
        await websocket.send(payload)
        assert await websocket.recv() == payload


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "instamsg test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("wss")
    certificate_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return certificate_path, key_path


async def test_wss_with_websockets_client(serve: Serve, certificate: tuple[Path, Path]) -> None:
    certificate_path, key_path = certificate
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certificate_path, key_path)
    client_context = ssl.create_default_context(cafile=str(certificate_path))
    served = await serve(ssl_context=server_context)
    uri = f"wss://127.0.0.1:{served.port}/mqtt"
    subprotocols = [Subprotocol("mqttv3.1")]
    async with connect(
        uri, ssl=client_context, subprotocols=subprotocols, proxy=None, ping_interval=None
    ) as websocket:
        assert websocket.subprotocol == "mqttv3.1"
        await websocket.send(b"\x10\x00")
        assert await websocket.recv() == b"AAA"
        assert await websocket.recv() == b"BBBBB"
        recorder = await served.recorder()
        assert recorder.transport.get_extra_info("sslcontext") is server_context
        assert recorder.transport.get_extra_info("ssl_object") is not None
