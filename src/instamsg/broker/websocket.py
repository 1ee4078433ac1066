"""WebSocket (RFC 6455) server adapter that runs an unchanged asyncio protocol over WS and WSS.

`WebSocketServerProtocol` sits between an asyncio transport and an inner protocol (the broker's MQTT
`Connection`). It answers the HTTP upgrade, then hands the inner protocol a `WebSocketTransport`, so
the MQTT code path is the same for TCP, TLS, WS and WSS (spec §3.4):

- client → server: the payloads of binary and text messages, fragmented or not, form one byte stream
  passed to ``inner.data_received`` as frames arrive;
- server → client: every ``write()`` is one binary message in one unfragmented frame, and
  ``writelines()`` sends one message per element in a single write on the socket.

A request without ``Upgrade: websocket`` goes to an optional HTTP fallback, so one port can serve
MQTT over WebSocket and HTTP (spec S1); the other way round, an HTTP server that owns the port hands an
upgrade request it has started reading to ``WebSocketServerProtocol.take_over``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, cast

__all__ = [
    "HttpFallback",
    "WebSocketProtocolError",
    "WebSocketServerProtocol",
    "WebSocketTransport",
    "websocket_protocol_factory",
]

HttpFallback = Callable[[bytes, asyncio.Transport], None]
"""Takes over a non-WebSocket request: the bytes read so far (request head and any body bytes that
came with it) and the transport. It installs its own protocol with ``transport.set_protocol()``;
bytes that still reach the WebSocket adapter afterwards are discarded."""

DEFAULT_MAX_HANDSHAKE_SIZE: Final = 16 * 1024
DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0
# A message may carry several MQTT packets, so this bounds frames and messages, not MQTT packets;
# the MQTT decoder enforces its own maximum packet size on the stream.
DEFAULT_MAX_MESSAGE_SIZE: Final = 1024 * 1024 + 1024

_ACCEPT_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# Preferred subprotocols, best first (spec §3.4 item 2).
_SUBPROTOCOL_PREFERENCE: Final = ("mqtt", "mqttv3.1")

_OPCODE_CONTINUATION: Final = 0x0
_OPCODE_TEXT: Final = 0x1
_OPCODE_BINARY: Final = 0x2
_OPCODE_CLOSE: Final = 0x8
_OPCODE_PING: Final = 0x9
_OPCODE_PONG: Final = 0xA

CLOSE_NORMAL: Final = 1000
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_INVALID_PAYLOAD: Final = 1007
CLOSE_MESSAGE_TOO_BIG: Final = 1009

_FIN: Final = 0x80
_RESERVED_BITS: Final = 0x70
_MASK_BIT: Final = 0x80
_MAX_CONTROL_PAYLOAD: Final = 125

_BINARY_HEADER: Final = _FIN | _OPCODE_BINARY
# Server frames are never masked, so the header of a short frame depends only on its length.
_SHORT_BINARY_HEADERS: Final = tuple(bytes((_BINARY_HEADER, length)) for length in range(126))
_MEDIUM_HEADER: Final = struct.Struct("!BBH")
_LONG_HEADER: Final = struct.Struct("!BBQ")
_CLOSE_CODE: Final = struct.Struct("!H")

_REASON_PHRASES: Final = {
    400: "Bad Request",
    408: "Request Timeout",
    426: "Upgrade Required",
    431: "Request Header Fields Too Large",
}


class WebSocketProtocolError(Exception):
    """A client broke RFC 6455; ``close_code`` is the status code sent in the close frame."""

    def __init__(self, close_code: int, reason: str) -> None:
        super().__init__(f"WebSocket close {close_code}: {reason}")
        self.close_code = close_code
        self.reason = reason


class _BadRequest(Exception):
    """A handshake request the server refuses; carries the HTTP status and extra header lines."""

    def __init__(self, status: int, detail: str, headers: tuple[str, ...] = ()) -> None:
        super().__init__(detail)
        self.status = status
        self.headers = headers


def _binary_frame_header(length: int) -> bytes:
    """The header of an unmasked, final, binary frame with a payload of ``length`` bytes."""
    if length < 126:
        return _SHORT_BINARY_HEADERS[length]
    if length < 0x10000:
        return _MEDIUM_HEADER.pack(_BINARY_HEADER, 126, length)
    return _LONG_HEADER.pack(_BINARY_HEADER, 127, length)


def _control_frame(opcode: int, payload: bytes = b"") -> bytes:
    return bytes((_FIN | opcode, len(payload))) + payload


def _close_frame(code: int) -> bytes:
    return _control_frame(_OPCODE_CLOSE, _CLOSE_CODE.pack(code))


def _unmask(payload: bytes | bytearray, mask: bytes | bytearray) -> bytes:
    """XOR ``payload`` with the repeated 4-byte ``mask`` as one big integer, not byte by byte."""
    length = len(payload)
    if length == 0:
        return b""
    key = int.from_bytes((mask * ((length + 3) // 4))[:length], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(length, "big")


def _is_valid_close_code(code: int) -> bool:
    # RFC 6455 §7.4 and the IANA registry: 1004-1006 and 1015 never go on the wire.
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999


def _accept_value(key: str) -> str:
    digest = hashlib.sha1(key.encode("ascii") + _ACCEPT_GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def _header_tokens(value: str) -> list[str]:
    return [token.strip() for token in value.split(",") if token.strip()]


def _choose_subprotocol(offered: str | None) -> str | None:
    """The subprotocol to answer: ``mqtt``, else ``mqttv3.1``, and only one the client offered."""
    if offered is None:
        return None
    # Matched case-insensitively but echoed as the client spelled it, since clients compare exactly.
    by_lower: dict[str, str] = {}
    for token in _header_tokens(offered):
        by_lower.setdefault(token.lower(), token)
    for name in _SUBPROTOCOL_PREFERENCE:
        if name in by_lower:
            return by_lower[name]
    return None


class _Request:
    """The parts of an HTTP request head the handshake needs."""

    __slots__ = ("headers", "method", "target", "version")

    def __init__(self, method: str, target: str, version: tuple[int, int], headers: dict[str, str]) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers


def _parse_request_head(head: bytes) -> _Request:
    """Parse a request line and header fields, tolerant of case and surrounding whitespace.

    Repeated fields are joined with ", " as HTTP allows for list-valued fields.
    """
    lines = head.decode("latin-1").split("\n")
    request_line = lines[0].strip()
    parts = request_line.split()
    if len(parts) != 3:
        raise _BadRequest(400, "malformed request line")
    method, target, protocol = parts
    name, _, number = protocol.upper().partition("/")
    major, _, minor = number.partition(".")
    if name != "HTTP" or not major.isdigit() or not minor.isdigit():
        raise _BadRequest(400, "malformed HTTP version")
    headers: dict[str, str] = {}
    previous: str | None = None
    for raw_line in lines[1:]:
        line = raw_line.rstrip("\r")
        if not line:
            continue
        if line[0] in " \t":
            # Obsolete line folding: a continuation of the previous field.
            if previous is None:
                raise _BadRequest(400, "continuation line before any header")
            headers[previous] = f"{headers[previous]} {line.strip()}".strip()
            continue
        field, colon, value = line.partition(":")
        field = field.strip().lower()
        if not colon or not field or any(character in field for character in " \t"):
            raise _BadRequest(400, "malformed header line")
        value = value.strip()
        headers[field] = f"{headers[field]}, {value}" if field in headers else value
        previous = field
    return _Request(method, target, (int(major), int(minor)), headers)


def _is_websocket_upgrade(request: _Request) -> bool:
    upgrade = request.headers.get("upgrade", "")
    return any(token.lower() == "websocket" for token in _header_tokens(upgrade))


def _http_response(status: int, extra_headers: Iterable[str] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASON_PHRASES[status]}", *extra_headers]
    lines += ["Connection: close", "Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _validate_upgrade(request: _Request) -> str:
    """Check an upgrade request (RFC 6455 §4.2.1) and return its ``Sec-WebSocket-Key``."""
    if request.method != "GET":
        raise _BadRequest(400, "WebSocket upgrade needs GET")
    if request.version < (1, 1):
        raise _BadRequest(400, "WebSocket upgrade needs HTTP/1.1")
    connection = request.headers.get("connection", "")
    if not any(token.lower() == "upgrade" for token in _header_tokens(connection)):
        raise _BadRequest(400, "Connection header lacks upgrade")
    key = request.headers.get("sec-websocket-key", "")
    try:
        decoded = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _BadRequest(400, "Sec-WebSocket-Key is not base64") from None
    if len(decoded) != 16:
        raise _BadRequest(400, "Sec-WebSocket-Key is not 16 bytes")
    if request.headers.get("sec-websocket-version", "").strip() != "13":
        raise _BadRequest(426, "unsupported WebSocket version", ("Sec-WebSocket-Version: 13",))
    return key


class WebSocketTransport(asyncio.Transport):
    """What the inner protocol writes to: one binary WebSocket message per packet."""

    def __init__(
        self, adapter: WebSocketServerProtocol, transport: asyncio.Transport, extra: Mapping[str, Any]
    ) -> None:
        super().__init__()
        self._extra_info = dict(extra)
        self._adapter = adapter
        self._transport = transport
        self._closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` as exactly one binary message in one frame (spec §3.4 item 5)."""
        if self._closing or not data:
            return
        self._transport.write(b"".join((_binary_frame_header(len(data)), data)))

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        """Send each element as its own binary message, all frames in one transport write."""
        if self._closing:
            return
        pieces: list[bytes | bytearray | memoryview] = []
        append = pieces.append
        short_headers = _SHORT_BINARY_HEADERS
        for data in list_of_data:
            length = len(data)
            if length:
                append(short_headers[length] if length < 126 else _binary_frame_header(length))
                append(data)
        if pieces:
            self._transport.write(b"".join(pieces))

    def close(self) -> None:
        """Send a normal-closure frame, then close the connection once the buffer is flushed."""
        if self._closing:
            return
        self._closing = True
        self._adapter._close_with(CLOSE_NORMAL)

    def abort(self) -> None:
        self._closing = True
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def can_write_eof(self) -> bool:
        # Half-close has no WebSocket equivalent short of the close handshake.
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in self._extra_info:
            return self._extra_info[name]
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._adapter._pause_inner_reading()

    def resume_reading(self) -> None:
        self._adapter._resume_inner_reading()

    def is_reading(self) -> bool:
        return not self._adapter._inner_paused and self._transport.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._adapter._set_inner(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        inner = self._adapter._inner
        assert inner is not None  # this transport exists only once the inner protocol does
        return inner


class WebSocketServerProtocol(asyncio.Protocol):
    """Server side of one WebSocket connection, feeding an inner protocol as if it were a plain socket."""

    def __init__(
        self,
        inner_factory: Callable[[], asyncio.Protocol],
        *,
        max_handshake_size: int = DEFAULT_MAX_HANDSHAKE_SIZE,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        http_fallback: HttpFallback | None = None,
    ) -> None:
        self._inner_factory = inner_factory
        self._max_handshake_size = max_handshake_size
        self._handshake_timeout = handshake_timeout
        self._max_message_size = max_message_size
        self._http_fallback = http_fallback

        self._transport: asyncio.Transport | None = None
        self._inner: asyncio.Protocol | None = None
        self._ws_transport: WebSocketTransport | None = None
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._handed_off = False  # the HTTP fallback owns the transport
        self._buffer = bytearray()  # handshake bytes, then an incomplete frame
        self._in_message = False  # a fragmented data message awaits continuation frames
        self._message_size = 0
        self._closing = False  # a close frame was sent: read nothing more
        self._error: WebSocketProtocolError | None = None
        self._inner_lost = False
        self._inner_paused = False  # the inner protocol asked for no more data_received calls
        self._pending = bytearray()  # stream bytes held back while the inner protocol is paused
        self._writing_paused = False

    # asyncio.Protocol callbacks from the underlying transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport: no isinstance check.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        loop = asyncio.get_running_loop()
        self._handshake_timer = loop.call_later(self._handshake_timeout, self._on_handshake_timeout)

    def data_received(self, data: bytes) -> None:
        if self._closing or self._handed_off:
            return
        if self._inner is None:
            self._receive_handshake(data)
        elif self._buffer:
            self._buffer += data
            consumed = self._receive_frames(self._buffer)
            del self._buffer[:consumed]
        else:
            # Common case: parse straight from the chunk and keep only an incomplete tail.
            consumed = self._receive_frames(data)
            if consumed < len(data) and not self._closing:
                self._buffer += data[consumed:]

    def eof_received(self) -> bool | None:
        # Without a close frame this is an abrupt end; let the transport close.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_handshake_timer()
        self._buffer.clear()
        self._pending.clear()
        if self._inner is not None and not self._inner_lost:
            self._inner_lost = True
            self._inner.connection_lost(exc if exc is not None else self._error)

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._inner is not None:
            self._inner.resume_writing()

    # Handshake

    def _receive_handshake(self, data: bytes) -> None:
        self._buffer += data
        end, separator = self._find_head_end()
        if end < 0 or end + separator > self._max_handshake_size:
            if len(self._buffer) > self._max_handshake_size:
                self._refuse(_BadRequest(431, "request head too large"))
            return
        received = bytes(self._buffer)
        self._buffer.clear()
        try:
            request = _parse_request_head(received[:end])
            if not _is_websocket_upgrade(request):
                self._hand_off_http(received)
                return
            key = _validate_upgrade(request)
        except _BadRequest as refusal:
            self._refuse(refusal)
            return
        self._accept(request, key, received[end + separator :])

    def _find_head_end(self) -> tuple[int, int]:
        """Where the request head ends and the length of its blank line; bare LF endings are tolerated."""
        crlf = self._buffer.find(b"\r\n\r\n")
        lf = self._buffer.find(b"\n\n")
        if lf >= 0 and (crlf < 0 or lf < crlf):
            return lf, 2
        return crlf, 4

    def _hand_off_http(self, received: bytes) -> None:
        assert self._transport is not None
        self._cancel_handshake_timer()
        if self._http_fallback is None:
            refusal = _BadRequest(426, "not a WebSocket request", ("Upgrade: websocket",))
            self._refuse(refusal)
            return
        self._handed_off = True
        self._http_fallback(received, self._transport)

    def _refuse(self, refusal: _BadRequest) -> None:
        assert self._transport is not None
        self._cancel_handshake_timer()
        self._closing = True
        self._buffer.clear()
        self._transport.write(_http_response(refusal.status, refusal.headers))
        self._transport.close()

    def _accept(self, request: _Request, key: str, rest: bytes) -> None:
        assert self._transport is not None
        self._cancel_handshake_timer()
        subprotocol = _choose_subprotocol(request.headers.get("sec-websocket-protocol"))
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {_accept_value(key)}",
        ]
        if subprotocol is not None:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
        # No extensions are negotiated: an offered permessage-deflate is declined by silence.
        lines += ["", ""]
        self._transport.write("\r\n".join(lines).encode("latin-1"))

        extra = {
            "websocket_path": request.target,
            "websocket_subprotocol": subprotocol,
            "websocket_request_headers": dict(request.headers),
        }
        self._ws_transport = WebSocketTransport(self, self._transport, extra)
        inner = self._inner_factory()
        self._inner = inner
        inner.connection_made(self._ws_transport)
        if self._writing_paused:
            inner.pause_writing()
        if rest and not self._closing:
            # Frames the client sent right behind its handshake.
            self.data_received(rest)

    def _on_handshake_timeout(self) -> None:
        self._handshake_timer = None
        if self._inner is None and not self._handed_off and not self._closing:
            self._refuse(_BadRequest(408, "handshake timed out"))

    def _cancel_handshake_timer(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None

    # Frames from the client

    def _receive_frames(self, data: bytes | bytearray) -> int:
        """Handle every complete frame in ``data``; return how many bytes were consumed.

        Data payloads of one chunk go to the inner protocol in one call, which keeps the per-call
        overhead off the hot path when a client packs many small frames into one segment.
        """
        stream: list[bytes] = []
        position = 0
        size = len(data)
        try:
            while not self._closing and size - position >= 2:
                first, second = data[position], data[position + 1]
                opcode = first & 0x0F
                length = second & 0x7F
                header_end = position + 2
                if length == 126:
                    if size - position < 4:
                        break
                    length = (data[position + 2] << 8) | data[position + 3]
                    header_end = position + 4
                elif length == 127:
                    if size - position < 10:
                        break
                    length = int.from_bytes(data[position + 2 : position + 10], "big")
                    header_end = position + 10
                # Checked before waiting for the payload, so a bad or oversized header is refused at once.
                message_size = self._check_frame_header(first, second, opcode, length)
                payload_start = header_end + 4
                payload_end = payload_start + length
                if payload_end > size:
                    break
                payload = _unmask(data[payload_start:payload_end], data[header_end:payload_start])
                position = payload_end
                if opcode <= _OPCODE_BINARY:
                    self._in_message = not first & _FIN
                    self._message_size = message_size
                    if payload:
                        stream.append(payload)
                elif opcode == _OPCODE_PING:
                    # Data before the ping goes first, so the pong follows whatever it provokes.
                    self._deliver(stream)
                    stream = []
                    if not self._closing:
                        self._send_control(_OPCODE_PONG, payload)
                elif opcode == _OPCODE_CLOSE:
                    self._deliver(stream)
                    stream = []
                    self._receive_close(payload)
                # A pong needs no action: the server never sends pings (spec §3.4 item 6).
        except WebSocketProtocolError as error:
            self._deliver(stream)
            self._fail(error)
            return size
        self._deliver(stream)
        return position

    def _check_frame_header(self, first: int, second: int, opcode: int, length: int) -> int:
        """Validate a frame header; return the size of the data message once this frame is added.

        Changes no state: a header is checked again on every chunk until its payload is complete.
        """
        if first & _RESERVED_BITS:
            # No extension is negotiated, so no reserved bit may be set.
            raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, "reserved bits set")
        if not second & _MASK_BIT:
            raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, "client frame not masked")
        if length >> 63:
            raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, "64-bit length has its top bit set")
        if opcode >= _OPCODE_CLOSE:
            if opcode > _OPCODE_PONG:
                raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
            if not first & _FIN or length > _MAX_CONTROL_PAYLOAD:
                raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, "fragmented or oversized control frame")
            return self._message_size
        if opcode > _OPCODE_BINARY:
            raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
        if opcode == _OPCODE_CONTINUATION:
            if not self._in_message:
                raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, "continuation without a message")
            message_size = self._message_size + length
        else:
            if self._in_message:
                raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
            message_size = length
        if message_size > self._max_message_size:
            raise WebSocketProtocolError(CLOSE_MESSAGE_TOO_BIG, "message too big")
        return message_size

    def _receive_close(self, payload: bytes) -> None:
        """Answer a client's close frame with the same code, then close the connection."""
        if not payload:
            reply = _control_frame(_OPCODE_CLOSE)
        else:
            if len(payload) < 2:
                raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, "one-byte close payload")
            (code,) = _CLOSE_CODE.unpack_from(payload)
            if not _is_valid_close_code(code):
                raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
            try:
                payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                raise WebSocketProtocolError(CLOSE_INVALID_PAYLOAD, "close reason not UTF-8") from None
            reply = _close_frame(code)
        assert self._transport is not None
        if self._closing:
            return  # the inner protocol closed the connection while taking the data before this frame
        self._mark_closing()
        self._transport.write(reply)
        self._transport.close()

    def _send_control(self, opcode: int, payload: bytes) -> None:
        assert self._transport is not None
        self._transport.write(_control_frame(opcode, payload))

    def _fail(self, error: WebSocketProtocolError) -> None:
        """Fail the connection (RFC 6455 §7.1.7): close frame with the error's code, then close."""
        self._error = error
        self._close_with(error.close_code)

    def _close_with(self, code: int) -> None:
        assert self._transport is not None
        if self._closing:
            return
        self._mark_closing()
        self._transport.write(_close_frame(code))
        self._transport.close()

    def _mark_closing(self) -> None:
        self._closing = True
        self._buffer.clear()
        if self._ws_transport is not None:
            self._ws_transport._closing = True

    # Stream delivery to the inner protocol, honouring its pause_reading()

    def _deliver(self, stream: list[bytes]) -> None:
        if not stream or self._inner is None:
            return
        data = stream[0] if len(stream) == 1 else b"".join(stream)
        if self._inner_paused:
            self._pending += data
        else:
            self._inner.data_received(data)

    def _pause_inner_reading(self) -> None:
        assert self._transport is not None
        if self._inner_paused:
            return
        self._inner_paused = True
        if not self._transport.is_closing():
            self._transport.pause_reading()

    def _resume_inner_reading(self) -> None:
        assert self._transport is not None
        if not self._inner_paused:
            return
        self._inner_paused = False
        if self._pending:
            # Deliver held-back bytes from the loop, not from inside the caller's resume_reading().
            asyncio.get_running_loop().call_soon(self._flush_pending)
        if not self._transport.is_closing():
            self._transport.resume_reading()

    def _flush_pending(self) -> None:
        if self._inner_paused or self._inner is None or self._inner_lost or not self._pending:
            return
        data = bytes(self._pending)
        self._pending.clear()
        self._inner.data_received(data)

    def take_over(self, transport: asyncio.Transport, received: bytes) -> None:
        """Serve a connection another server accepted and started reading (one port for HTTP and WS).

        ``received`` is everything read from it so far, from the first byte of the upgrade request.
        """
        transport.set_protocol(self)
        self.connection_made(transport)
        if received:
            self.data_received(received)

    def _set_inner(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self._inner = protocol


def websocket_protocol_factory(
    inner_factory: Callable[[], asyncio.Protocol],
    *,
    max_handshake_size: int = DEFAULT_MAX_HANDSHAKE_SIZE,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    http_fallback: HttpFallback | None = None,
) -> Callable[[], WebSocketServerProtocol]:
    """A protocol factory for ``loop.create_server`` that wraps each ``inner_factory()`` in WebSocket."""

    def factory() -> WebSocketServerProtocol:
        return WebSocketServerProtocol(
            inner_factory,
            max_handshake_size=max_handshake_size,
            handshake_timeout=handshake_timeout,
            max_message_size=max_message_size,
            http_fallback=http_fallback,
        )

    return factory
