"""Byte streams to the broker: MQTT over TCP, TLS, WebSocket or secure WebSocket."""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Any, Literal, Protocol

from instamsg.device._errors import DeviceConnectionError

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

Transport = Literal["tcp", "tls", "ws", "wss"]
READ_SIZE = 65536


class Stream(Protocol):
    """What the client needs of a connection: read some bytes (b"" at the end), write, close."""

    async def read(self) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class SocketStream:
    """MQTT over TCP or TLS."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self) -> bytes:
        try:
            return await self._reader.read(READ_SIZE)
        except (ConnectionError, OSError):
            return b""

    async def write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, OSError) as error:
            raise DeviceConnectionError(f"connection lost: {error}") from error

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError, ssl.SSLError):
            pass


class WebSocketStream:
    """MQTT over WebSocket: one MQTT packet per binary message out, any split accepted in."""

    def __init__(self, connection: ClientConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        self._connection = connection
        self._closed_errors: tuple[type[BaseException], ...] = (ConnectionClosed, OSError)

    async def read(self) -> bytes:
        try:
            message = await self._connection.recv()
        except self._closed_errors:
            return b""
        return message.encode() if isinstance(message, str) else bytes(message)

    async def write(self, data: bytes) -> None:
        try:
            await self._connection.send(data)
        except self._closed_errors as error:
            raise DeviceConnectionError(f"connection lost: {error}") from error

    async def close(self) -> None:
        try:
            await self._connection.close()
        except self._closed_errors:
            pass


def _websocket_library() -> Any:
    """The ``websockets`` package, needed for ws/wss only (imported on use, so TCP/TLS work without it)."""
    try:
        import websockets.asyncio.client
        import websockets.exceptions
    except ImportError:
        raise DeviceConnectionError(
            "MQTT over WebSocket needs the websockets package: pip install websockets"
        ) from None
    return websockets


def client_ssl_context(
    *,
    verify: bool = True,
    ca_file: str | None = None,
    certificate_file: str | None = None,
    key_file: str | None = None,
) -> ssl.SSLContext:
    """A TLS context for the broker; ``certificate_file``/``key_file`` present a client certificate."""
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if certificate_file is not None:
        context.load_cert_chain(certificate_file, key_file)
    return context


async def open_stream(
    host: str,
    port: int,
    transport: Transport,
    *,
    ssl_context: ssl.SSLContext | None = None,
    path: str = "/mqtt",
    connect_timeout: float = 10.0,
) -> Stream:
    """Connect; failures (refused, DNS, TLS, handshake, timeout) are DeviceConnectionError."""
    secure = transport in ("tls", "wss")
    context = (ssl_context or client_ssl_context()) if secure else None
    library = _websocket_library() if transport in ("ws", "wss") else None
    failures: tuple[type[BaseException], ...] = (OSError, ssl.SSLError)
    if library is not None:
        failures += (library.exceptions.WebSocketException,)
    try:
        async with asyncio.timeout(connect_timeout):
            if transport in ("tcp", "tls"):
                reader, writer = await asyncio.open_connection(host, port, ssl=context)
                return SocketStream(reader, writer)
            assert library is not None
            scheme = "wss" if secure else "ws"
            connection = await library.asyncio.client.connect(
                f"{scheme}://{host}:{port}{path}",
                ssl=context,
                subprotocols=["mqtt"],
                max_size=None,
                ping_interval=None,
                compression=None,
            )
            return WebSocketStream(connection)
    except TimeoutError:
        raise DeviceConnectionError(f"cannot reach {host}:{port} ({transport}): timed out") from None
    except failures as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DeviceConnectionError(f"cannot reach {host}:{port} ({transport}): {reason}") from None
