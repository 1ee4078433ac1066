"""A byte-level simulator of the official InstaMsg device libraries (spec §3, §4, §5, §13).

Written from the specification, not from an MQTT library: every packet is built by hand so tests can
assert the exact bytes each library sends and receives. Transports: raw TCP, TLS, WebSocket and
WebSocket over TLS (one MQTT packet per masked binary frame from the client, as Python and JS do).

Usage::

    device = await LegacyDevice.connect(host, port, uuid=U, token=T, dialect="python")
    device.connack                      # b"\\x20\\x02\\x00\\x00"
    await device.publish("a/b", b"x", qos=1)          # waits for PUBACK
    suback = await device.subscribe("a/#", 1)         # raw SUBACK bytes
    message = await device.receive(timeout=2)         # ReceivedPublish (QoS 1 is PUBACKed)
    await device.close()

    result = await provision(host, port, "prov-id", "key", dialect="c")  # ProvisionResult

Dialects (spec §4.1, §3.5, §4.5; the Python topics are ``instamsg/clients/<U>/...``, both QoS 0):

| dialect | ClientIdentifier | username | keep-alive | after CONNACK (``startup=True``) |
|---|---|---|---|---|
| python | ``uuid[:23]`` (layout A) | ``uuid[24:]`` | 60 | PUBLISH info, SUBSCRIBE enableServerLogging |
| js | ``uuid[:23]`` (layout A) | ``uuid[24:]`` | 100 | nothing |
| c | ``EMPTY`` (layout B) | full UUID | 0 | nothing |
| java | ``EMPTY`` (layout B) | full UUID | 60 | nothing |
| telit | the IMEI (layout B) | full UUID | 60 | nothing |

Every CONNECT is ``MQIsdp`` level 3 with flags ``0xC2`` (username, password, clean session).
SUBSCRIBE, UNSUBSCRIBE and PUBREL go out with the fixed headers the libraries use (``0x82``, ``0xA2``,
``0x62``). Packet identifiers cycle 1-65535 (python, js) or 1-10000 (c, java, telit) (Q28).

Every packet received is recorded in ``packets`` (raw bytes, in order); over WebSocket every server
frame is recorded in ``frames`` as ``WebSocketFrame(fin, opcode, payload)`` so tests can check the
one-packet-per-frame rule (§3.4). A background reader acknowledges QoS 1 deliveries with PUBACK like
every library; QoS 2 deliveries are not acknowledged (Python sends no PUBREC, Q1).

For tests that need a broker with the device protocol, ``protocol_node(directory, install=(...))``
starts a real BrokerNode on 127.0.0.1 (TCP and WS; TLS and WSS with ``ssl_context``) with the
DeviceProtocol and identity hooks, and ``port_of(node, transport)`` gives a listener's port.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from instamsg.broker import BrokerNode, Directory
    from instamsg.protocol.plugin import DeviceProtocol

Dialect = Literal["python", "js", "c", "java", "telit"]
Transport = Literal["tcp", "tls", "ws", "wss"]

DIALECTS: Final[tuple[Dialect, ...]] = ("python", "js", "c", "java", "telit")
LAYOUT_A_DIALECTS: Final = frozenset({"python", "js"})
DEFAULT_KEEP_ALIVE: Final[dict[str, int]] = {"python": 60, "js": 100, "c": 0, "java": 60, "telit": 60}
# The packet-id counter wraps at these values (Q28).
PACKET_ID_LIMIT: Final[dict[str, int]] = {
    "python": 65535,
    "js": 65535,
    "c": 10000,
    "java": 10000,
    "telit": 10000,
}
DEFAULT_IMEI: Final = "356938035643809"
CONNECT_FLAGS: Final = 0xC2  # username, password, clean session (spec §3.1)
PROVISIONING_CLIENT_ID: Final = "PROVISIONING"

PUBLISH: Final = 0x30
PUBACK: Final = 0x40
PUBREC: Final = 0x50
PUBREL: Final = 0x62
PUBCOMP: Final = 0x70
SUBSCRIBE: Final = 0x82
SUBACK: Final = 0x90
UNSUBSCRIBE: Final = 0xA2
UNSUBACK: Final = 0xB0
PINGREQ: Final = b"\xc0\x00"
PINGRESP: Final = b"\xd0\x00"
DISCONNECT: Final = b"\xe0\x00"
PROVACK: Final = 0xF0


class DeviceError(Exception):
    """The server did something the simulated library would not accept."""


class ConnectRefused(DeviceError):
    """CONNACK with a non-zero return code; `connack` holds its raw bytes."""

    def __init__(self, connack: bytes) -> None:
        super().__init__(f"CONNACK refused: {connack.hex(' ')}")
        self.connack = connack


class ConnectionClosed(DeviceError):
    """The server closed the connection while a packet was awaited."""


@dataclass(frozen=True, slots=True)
class ReceivedPublish:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    packet_id: int | None
    raw: bytes


@dataclass(frozen=True, slots=True)
class ProvisionResult:
    rc: int
    payload: bytes
    raw: bytes


@dataclass(frozen=True, slots=True)
class WebSocketFrame:
    fin: bool
    opcode: int
    payload: bytes


# ---- encoding helpers --------------------------------------------------------------------------


def remaining_length(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def utf8(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return len(raw).to_bytes(2, "big") + raw


def packet(first_byte: int, body: bytes) -> bytes:
    return bytes((first_byte,)) + remaining_length(len(body)) + body


def connect_packet(
    client_id: str, username: str | None, password: bytes | None, keep_alive: int, *, clean: bool = True
) -> bytes:
    """An `MQIsdp`/3 CONNECT as the libraries build it; flags follow the fields present."""
    flags = (
        (0x80 if username is not None else 0) | (0x40 if password is not None else 0) | (0x02 if clean else 0)
    )
    body = utf8("MQIsdp") + bytes((3, flags)) + keep_alive.to_bytes(2, "big") + utf8(client_id)
    if username is not None:
        body += utf8(username)
    if password is not None:
        body += utf8(password)
    return packet(0x10, body)


def publish_packet(
    topic: str,
    payload: bytes,
    qos: int = 0,
    packet_id: int | None = None,
    retain: bool = False,
    dup: bool = False,
) -> bytes:
    body = utf8(topic)
    if qos:
        assert packet_id is not None
        body += packet_id.to_bytes(2, "big")
    first = PUBLISH | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    return packet(first, body + payload)


def parse_publish(raw: bytes) -> ReceivedPublish:
    first = raw[0]
    position = 1
    while raw[position] & 0x80:
        position += 1
    position += 1
    topic_length = int.from_bytes(raw[position : position + 2], "big")
    position += 2
    topic = raw[position : position + topic_length].decode()
    position += topic_length
    qos = (first >> 1) & 3
    packet_id: int | None = None
    if qos:
        packet_id = int.from_bytes(raw[position : position + 2], "big")
        position += 2
    return ReceivedPublish(topic, raw[position:], qos, bool(first & 1), bool(first & 8), packet_id, raw)


def split_packets(data: bytes) -> list[bytes]:
    """Whole MQTT packets in `data`; raises DeviceError if bytes are left over (a partial packet)."""
    packets: list[bytes] = []
    position = 0
    while position < len(data):
        length, header = _decode_length(data, position + 1)
        if length is None:
            raise DeviceError(f"partial packet header in {data.hex(' ')}")
        end = position + 1 + header + length
        if end > len(data):
            raise DeviceError(f"partial packet in {data.hex(' ')}")
        packets.append(data[position:end])
        position = end
    return packets


def _decode_length(data: bytes | bytearray, start: int) -> tuple[int | None, int]:
    """(remaining length, size of its encoding), or (None, 0) when more bytes are needed."""
    value = 0
    multiplier = 1
    for index in range(4):
        if start + index >= len(data):
            return None, 0
        byte = data[start + index]
        value += (byte & 0x7F) * multiplier
        multiplier *= 128
        if not byte & 0x80:
            return value, index + 1
    raise DeviceError("remaining length longer than 4 bytes")


# ---- transports ----------------------------------------------------------------------------------


class _Link:
    """One connection's byte stream: raw TCP/TLS, or WebSocket messages (recorded frame by frame)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, websocket: bool) -> None:
        self.reader = reader
        self.writer = writer
        self.websocket = websocket
        self.frames: list[WebSocketFrame] = []
        self.handshake = b""
        self._message = bytearray()

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        transport: Transport,
        *,
        path: str,
        ssl_context: ssl.SSLContext | None,
        origin: bool,
        subprotocols: tuple[str, ...] = (),
    ) -> _Link:
        secure = transport in ("tls", "wss")
        context: ssl.SSLContext | None = None
        if secure:
            context = ssl_context if ssl_context is not None else _insecure_context()
        # Python and C verify nothing and send no SNI (Q24): an empty server_hostname sends none.
        reader, writer = await asyncio.open_connection(
            host,
            port,
            ssl=context,
            server_hostname="" if context is not None and not context.check_hostname else None,
        )
        link = cls(reader, writer, transport in ("ws", "wss"))
        if link.websocket:
            await link._upgrade(host, port, path, origin, subprotocols)
        return link

    async def _upgrade(
        self, host: str, port: int, path: str, origin: bool, subprotocols: tuple[str, ...]
    ) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if origin:
            lines.append(f"Origin: http://{host}:{port}")  # Python's websocket-client (spec §3.4 item 3)
        if subprotocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.handshake = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5.0)
        if not self.handshake.startswith(b"HTTP/1.1 101"):
            raise DeviceError(f"WebSocket upgrade refused: {self.handshake!r}")

    def send(self, data: bytes) -> None:
        if self.websocket:
            self.writer.write(_client_frame(0x2, data))
        else:
            self.writer.write(data)

    async def read(self) -> bytes:
        """The next chunk of the MQTT byte stream; b"" at the end."""
        if not self.websocket:
            return await self.reader.read(65536)
        while True:
            frame = await self._read_frame()
            if frame is None:
                return b""
            self.frames.append(frame)
            if frame.opcode == 0x9:
                self.writer.write(_client_frame(0xA, frame.payload))
                continue
            if frame.opcode == 0x8:
                with contextlib.suppress(Exception):
                    self.writer.write(_client_frame(0x8, frame.payload[:2]))
                return b""
            if frame.opcode in (0x0, 0x1, 0x2):
                self._message += frame.payload
                if frame.fin:
                    data = bytes(self._message)
                    self._message.clear()
                    return data

    async def _read_frame(self) -> WebSocketFrame | None:
        try:
            head = await self.reader.readexactly(2)
            length = head[1] & 0x7F
            if length == 126:
                length = int.from_bytes(await self.reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await self.reader.readexactly(8), "big")
            mask = await self.reader.readexactly(4) if head[1] & 0x80 else None
            payload = await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        if mask is not None:
            payload = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        return WebSocketFrame(bool(head[0] & 0x80), head[0] & 0x0F, payload)

    async def close(self) -> None:
        if self.websocket:
            with contextlib.suppress(Exception):
                self.writer.write(_client_frame(0x8, (1000).to_bytes(2, "big")))
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """One unfragmented, masked client frame (RFC 6455 §5.3)."""
    length = len(payload)
    if length < 126:
        head = bytes((0x80 | opcode, 0x80 | length))
    elif length < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    mask = os.urandom(4)
    return head + mask + bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))


def _insecure_context() -> ssl.SSLContext:
    """What Python and C do: TLS without verifying the server (Q24)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _default_path(dialect: str) -> str:
    return "/mqtt" if dialect == "js" else "/"


# ---- the device ----------------------------------------------------------------------------------


@dataclass
class _Incoming:
    """Received packets not yet taken by a waiter, and the signal that new ones arrived."""

    pending: deque[bytes] = field(default_factory=deque)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False


class LegacyDevice:
    """One device connection speaking the dialect of an official library (see the module docstring)."""

    def __init__(self, link: _Link, dialect: Dialect, uuid: str) -> None:
        self.link = link
        self.dialect: Dialect = dialect
        self.uuid = uuid
        self.connack = b""
        self.startup_suback: bytes | None = None
        self.packets: list[bytes] = []
        self._incoming = _Incoming()
        limit = PACKET_ID_LIMIT[dialect]
        self._ids = itertools.cycle(range(1, limit + 1))
        self._reader: asyncio.Task[None] | None = None

    # ---- connecting ----

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        uuid: str,
        token: str,
        dialect: Dialect,
        transport: Transport = "tcp",
        path: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        keep_alive: int | None = None,
        imei: str = DEFAULT_IMEI,
        startup: bool = True,
        require_accept: bool = True,
        subprotocols: tuple[str, ...] = (),
        timeout: float = 5.0,
    ) -> LegacyDevice:
        """Open the transport, send the dialect's CONNECT, read the 4-byte CONNACK.

        `startup`: the Python dialect then publishes its info and subscribes to enableServerLogging
        (spec §4.5). `require_accept`: raise ConnectRefused on a non-zero return code; otherwise the
        refused device is returned with `connack` set and the connection closed by the server.
        `subprotocols`: offered in `Sec-WebSocket-Protocol` (the libraries offer none, spec §3.4).
        """
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}")
        link = await _Link.open(
            host,
            port,
            transport,
            path=path if path is not None else _default_path(dialect),
            ssl_context=ssl_context,
            origin=dialect == "python",
            subprotocols=subprotocols,
        )
        device = cls(link, dialect, uuid)
        device._reader = asyncio.get_running_loop().create_task(device._read_loop())
        if dialect in LAYOUT_A_DIALECTS:
            client_id, username = uuid[:23], uuid[24:]
        elif dialect == "telit":
            client_id, username = imei, uuid
        else:
            client_id, username = "EMPTY", uuid
        alive = DEFAULT_KEEP_ALIVE[dialect] if keep_alive is None else keep_alive
        link.send(connect_packet(client_id, username, token.encode(), alive))
        device.connack = await device._take(lambda raw: raw[0] == 0x20, timeout)
        if len(device.connack) != 4:
            # Python rejects any CONNACK whose remaining length is not 2 (Q29).
            raise DeviceError(f"CONNACK is not 4 bytes: {device.connack.hex(' ')}")
        if device.connack[3] != 0:
            if require_accept:
                await device.close()
                raise ConnectRefused(device.connack)
            return device
        if startup and dialect == "python":
            await device.publish(f"instamsg/clients/{uuid}/info", b'{"client_version": "1.1.2"}', 0)
            device.startup_suback = await device.subscribe(f"instamsg/clients/{uuid}/enableServerLogging", 0)
        return device

    @property
    def accepted(self) -> bool:
        return len(self.connack) == 4 and self.connack[3] == 0

    @property
    def frames(self) -> list[WebSocketFrame]:
        """Every WebSocket frame the server sent (empty on TCP/TLS)."""
        return self.link.frames

    @property
    def handshake(self) -> bytes:
        """The raw HTTP upgrade response (WebSocket transports only)."""
        return self.link.handshake

    @property
    def closed(self) -> bool:
        """Whether the server closed the connection (every received packet is still readable)."""
        return self._incoming.closed

    def next_packet_id(self) -> int:
        return next(self._ids)

    # ---- sending ----

    def send_raw(self, data: bytes) -> None:
        """Exact bytes into the stream (over WebSocket: as one binary message)."""
        self.link.send(data)

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        dup: bool = False,
        *,
        timeout: float = 5.0,
        pubrel_header: int = PUBREL,
    ) -> bytes | None:
        """PUBLISH; QoS 1 waits for PUBACK, QoS 2 runs PUBREC → PUBREL → PUBCOMP. Returns the last
        acknowledgement's raw bytes (None for QoS 0)."""
        packet_id = self.next_packet_id() if qos else None
        self.link.send(publish_packet(topic, payload, qos, packet_id, retain, dup))
        if qos == 0:
            return None
        assert packet_id is not None
        id_bytes = packet_id.to_bytes(2, "big")
        if qos == 1:
            return await self._take(lambda raw: raw[0] == PUBACK and raw[2:4] == id_bytes, timeout)
        await self._take(lambda raw: raw[0] == PUBREC and raw[2:4] == id_bytes, timeout)
        self.link.send(bytes((pubrel_header, 2)) + id_bytes)
        return await self._take(lambda raw: raw[0] == PUBCOMP and raw[2:4] == id_bytes, timeout)

    async def subscribe(
        self, topic: str, qos: int = 0, *, header: int = SUBSCRIBE, timeout: float = 5.0
    ) -> bytes:
        """SUBSCRIBE one filter; returns the raw SUBACK (legacy A: `90 02 id id`, spec Q2)."""
        packet_id = self.next_packet_id()
        id_bytes = packet_id.to_bytes(2, "big")
        self.link.send(packet(header, id_bytes + utf8(topic) + bytes((qos,))))
        return await self._take(lambda raw: raw[0] == SUBACK and raw[2:4] == id_bytes, timeout)

    async def unsubscribe(self, topic: str, *, header: int = UNSUBSCRIBE, timeout: float = 5.0) -> bytes:
        packet_id = self.next_packet_id()
        id_bytes = packet_id.to_bytes(2, "big")
        self.link.send(packet(header, id_bytes + utf8(topic)))
        return await self._take(lambda raw: raw[0] == UNSUBACK and raw[2:4] == id_bytes, timeout)

    async def ping(self, timeout: float = 5.0) -> bytes:
        """PINGREQ; returns the PINGRESP (`D0 00`)."""
        self.link.send(PINGREQ)
        return await self._take(lambda raw: raw == PINGRESP, timeout)

    # ---- receiving ----

    async def receive(self, timeout: float = 5.0) -> ReceivedPublish:
        """The next PUBLISH from the server (already PUBACKed when QoS 1)."""
        return parse_publish(await self._take(lambda raw: raw[0] & 0xF0 == PUBLISH, timeout))

    async def receive_raw(self, timeout: float = 5.0) -> bytes:
        """The next packet of any type, raw."""
        return await self._take(lambda raw: True, timeout)

    async def expect_no_publish(self, duration: float = 0.3) -> None:
        """Raise if a PUBLISH arrives within `duration` seconds."""
        try:
            unexpected = await self.receive(duration)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected PUBLISH {unexpected.topic!r} {unexpected.payload!r}")

    async def wait_closed(self, timeout: float = 5.0) -> None:
        """Wait until the server closes the connection."""
        if self._reader is not None:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)

    async def close(self, *, disconnect: bool = False) -> None:
        """Close the socket (the libraries mostly just drop it; `disconnect` sends DISCONNECT first)."""
        if disconnect and not self._incoming.closed:
            with contextlib.suppress(Exception):
                self.link.send(DISCONNECT)
        await self.link.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    # ---- internals ----

    async def _take(self, predicate: Callable[[bytes], bool], timeout: float) -> bytes:
        """The first received packet matching `predicate`, in arrival order; others stay queued."""
        incoming = self._incoming

        async def wait() -> bytes:
            while True:
                for index, raw in enumerate(incoming.pending):
                    if predicate(raw):
                        del incoming.pending[index]
                        return raw
                if incoming.closed:
                    raise ConnectionClosed("connection closed by the server")
                incoming.changed.clear()
                await incoming.changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    async def _read_loop(self) -> None:
        buffer = bytearray()
        incoming = self._incoming
        try:
            while True:
                chunk = await self.link.read()
                if not chunk:
                    break
                buffer += chunk
                while buffer:
                    length, header = _decode_length(buffer, 1)
                    if length is None or len(buffer) < 1 + header + length:
                        break
                    raw = bytes(buffer[: 1 + header + length])
                    del buffer[: 1 + header + length]
                    self.packets.append(raw)
                    if raw[0] & 0xF0 == PUBLISH and (raw[0] >> 1) & 3 == 1:
                        # Every library acknowledges QoS 1 deliveries (spec §3.6).
                        self.link.send(bytes((PUBACK, 2)) + parse_publish(raw).packet_id.to_bytes(2, "big"))  # type: ignore[union-attr]
                    incoming.pending.append(raw)
                    incoming.changed.set()
        except (ConnectionError, DeviceError, ssl.SSLError):
            pass
        finally:
            incoming.closed = True
            incoming.changed.set()


async def provision(
    host: str,
    port: int,
    provisioning_id: str,
    key: str,
    *,
    dialect: Dialect,
    transport: Transport = "tcp",
    path: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 5.0,
) -> ProvisionResult:
    """Send the layout-P CONNECT (spec §4.1, §5) and read the PROVACK (§5.2, byte-exact)."""
    link = await _Link.open(
        host,
        port,
        transport,
        path=path if path is not None else _default_path(dialect),
        ssl_context=ssl_context,
        origin=dialect == "python",
    )
    try:
        # Python omits the password flag when the key is empty (Q15).
        password = None if (dialect == "python" and not key) else key.encode()
        link.send(
            connect_packet(PROVISIONING_CLIENT_ID, provisioning_id, password, DEFAULT_KEEP_ALIVE[dialect])
        )
        raw = await asyncio.wait_for(_read_one_packet(link), timeout)
    finally:
        await link.close()
    if raw[0] != PROVACK:
        raise DeviceError(f"expected PROVACK, got {raw.hex(' ')}")
    _, header = _decode_length(raw, 1)
    body = raw[1 + header :]
    if len(body) < 2 or body[0] != 0:
        raise DeviceError(f"malformed PROVACK {raw.hex(' ')}")
    return ProvisionResult(body[1], body[2:], raw)


async def _read_one_packet(link: _Link) -> bytes:
    buffer = bytearray()
    while True:
        length, header = _decode_length(buffer, 1) if buffer else (None, 0)
        if length is not None and len(buffer) >= 1 + header + length:
            return bytes(buffer[: 1 + header + length])
        chunk = await link.read()
        if not chunk:
            raise ConnectionClosed(f"connection closed after {bytes(buffer).hex(' ')!r}")
        buffer += chunk


# ---- an in-process broker with the device protocol, for tests -------------------------------------


@contextlib.asynccontextmanager
async def protocol_node(
    directory: Directory,
    *,
    install: Sequence[Callable[[DeviceProtocol], object]] = (),
    ssl_context: ssl.SSLContext | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[BrokerNode, DeviceProtocol]]:
    """A real BrokerNode on 127.0.0.1 (TCP and WS, plus TLS/WSS with `ssl_context`) with the
    DeviceProtocol and identity hooks installed, then each `install(devices)` in order."""
    from instamsg.broker import BrokerNode, BrokerSettings
    from instamsg.protocol.identity import install_identity
    from instamsg.protocol.plugin import DeviceProtocol

    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "mqtt_port": 0,
        "ws_port": 0,
        "timer_resolution": 0.1,
        "connect_timeout": 2.0,
    }
    if ssl_context is not None:
        options.update(mqtts_port=0, wss_port=0, ssl_context=ssl_context)
    options.update(settings)
    node = BrokerNode(BrokerSettings(**options), directory)
    devices = DeviceProtocol(node)
    devices.install()
    install_identity(devices)
    for installer in install:
        installer(devices)
    await node.start()
    try:
        yield node, devices
    finally:
        await node.stop()


def port_of(node: BrokerNode, transport: Transport) -> int:
    listener = {"tcp": "mqtt", "tls": "mqtts", "ws": "ws", "wss": "wss"}[transport]
    port = node.ports[listener]
    assert port is not None, f"listener {listener} is off"
    return port
