"""A minimal WebSocket client transport (RFC 6455) for MQTT over WebSockets.

It wraps an `asyncio.Protocol` so the same MQTT connection code runs over TCP, TLS and WebSockets:
the adapter performs the upgrade, masks outgoing binary frames and unwraps incoming ones.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from typing import Any, cast


class WebSocketError(Exception):
    """The server refused the upgrade or sent a frame the client cannot handle."""


def mask_payload(payload: bytes | bytearray, key: bytes) -> bytes:
    """XOR the payload with the 4-byte key, using one big-integer operation rather than a byte loop."""
    size = len(payload)
    if not size:
        return b""
    repeated = (key * (size // 4 + 1))[:size]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return masked.to_bytes(size, "big")


def binary_frame(payload: bytes | bytearray, opcode: int = 2) -> bytes:
    """A final, masked client frame."""
    key = os.urandom(4)
    size = len(payload)
    if size < 126:
        header = struct.pack(">BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        header = struct.pack(">BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack(">BBQ", 0x80 | opcode, 0x80 | 127, size)
    return header + key + mask_payload(payload, key)


class WebSocketTransport(asyncio.Transport):
    """What the inner protocol sees: writes become WebSocket binary frames."""

    def __init__(self, outer: WebSocketClient) -> None:
        super().__init__()
        self._outer = outer

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert self._outer.transport is not None
        self._outer.transport.write(binary_frame(bytes(data)))

    def close(self) -> None:
        if self._outer.transport is not None:
            self._outer.transport.close()

    def abort(self) -> None:
        if self._outer.transport is not None:
            self._outer.transport.abort()

    def is_closing(self) -> bool:
        return self._outer.transport is None or self._outer.transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if self._outer.transport is None:
            return default
        return self._outer.transport.get_extra_info(name, default)


class WebSocketClient(asyncio.Protocol):
    """Performs the HTTP upgrade, then relays binary frames to and from the inner protocol."""

    def __init__(self, inner: asyncio.Protocol, host: str, path: str = "/mqtt") -> None:
        self.inner = inner
        self.host = host
        self.path = path
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: mqtt\r\n\r\n"
        )
        self.transport.write(request.encode())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status_line = bytes(self.buffer[: self.buffer.find(b"\r\n")])
            del self.buffer[: end + 4]
            if b" 101 " not in status_line + b" ":
                raise WebSocketError(f"upgrade refused: {status_line!r}")
            self.upgraded = True
            self.inner.connection_made(WebSocketTransport(self))
        self._relay_frames()

    def _relay_frames(self) -> None:
        buffer = self.buffer
        position = 0
        size = len(buffer)
        chunks: list[bytes] = []
        while size - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length = second & 0x7F
            start = position + 2
            if length == 126:
                if size - start < 2:
                    break
                (length,) = struct.unpack_from(">H", buffer, start)
                start += 2
            elif length == 127:
                if size - start < 8:
                    break
                (length,) = struct.unpack_from(">Q", buffer, start)
                start += 8
            if second & 0x80:
                raise WebSocketError("servers must not mask frames")
            end = start + length
            if end > size:
                break
            opcode = first & 0x0F
            if opcode in (0, 1, 2):
                chunks.append(bytes(buffer[start:end]))
            elif opcode == 8:
                if self.transport is not None:
                    self.transport.close()
            elif opcode == 9 and self.transport is not None:
                self.transport.write(binary_frame(bytes(buffer[start:end]), opcode=10))
            position = end
        if position:
            del buffer[:position]
        if chunks:
            # One call per receive batch keeps the inner fast path working on large buffers.
            self.inner.data_received(b"".join(chunks))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()
