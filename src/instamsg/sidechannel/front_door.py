"""The protocol serving the HTTP port: side-channel requests here, everything else to uvicorn.

uvicorn creates one `FrontDoor` per connection (it is passed as the `http` protocol class). The front
door buffers the start of the request; as soon as the bytes show it is not a side-channel request (for
REST calls: on the first packet) it creates uvicorn's own protocol for the connection, switches the
transport to it and replays the buffered bytes, after which uvicorn alone serves the connection. A
side-channel request is read to the end of its head and answered by `SideChannel`, byte for byte.

On a port shared with MQTT over WebSocket (spec S1) the front door also reads the head of every GET:
one with `Upgrade: websocket` goes, with the bytes read so far, to the broker's WebSocket listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from instamsg.sidechannel import http
from instamsg.sidechannel.handlers import SideChannel

logger = logging.getLogger(__name__)

READ_LIMIT_BYTES = 64 * 1024
HEAD_TIMEOUT_SECONDS = 10.0
# After answering, the server stops writing and discards what the client still sends for a moment,
# so a rejected upload's unread body cannot turn the close into a reset that loses the answer.
LINGER_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class SharedWebSocket:
    """MQTT over WebSocket on the HTTP port: `accept(transport, received)` takes over an upgrade
    request, `received` being every byte read from the connection so far."""

    accept: Callable[[asyncio.Transport, bytes], None]


class FrontDoor(asyncio.Protocol):
    """Bind with `front_door_class(side_channel)`; uvicorn instantiates it per connection."""

    side_channel: ClassVar[SideChannel]
    shared_websocket: ClassVar[SharedWebSocket | None] = None
    inner_protocol_class: ClassVar[type[asyncio.Protocol]] = AutoHTTPProtocol
    head_timeout: ClassVar[float] = HEAD_TIMEOUT_SECONDS
    linger: ClassVar[float] = LINGER_SECONDS

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._loop = _loop or asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._route: http.Route | None = None
        self._reader: asyncio.StreamReader | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._writable: asyncio.Future[None] | None = None
        self._closing = False
        self._shutting_down = False
        self._eof = False
        self._lost = False
        self._upgrade_checked = False

    # uvicorn's shutdown asks every tracked connection to shut down, then waits for them to go. A
    # request being served gets the side channel's grace period, then is cancelled.
    def shutdown(self) -> None:
        self._shutting_down = True
        if self._task is None or self._task.done():
            if self._transport is not None:
                self._transport.close()
            return
        self.side_channel.begin_shutdown()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._server_state.connections.add(self)
        self._timer = self._loop.call_later(self.head_timeout, self._head_timed_out)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # lingering: the answer is written, the rest is discarded
        if self._reader is not None:
            self._reader.feed_data(data)
            return
        self._buffer.extend(data)
        if self._route is None:
            if self._checking_upgrade():
                return
            decided = http.may_be_side_channel(self._buffer)
            if decided is None:
                return
            line_end = self._buffer.find(b"\n") if decided else -1
            if decided and line_end < 0 and len(self._buffer) <= http.MAX_HEAD_BYTES:
                return
            route = http.route_of(bytes(self._buffer[:line_end])) if decided and line_end >= 0 else None
            if route is None:
                self._hand_to_uvicorn()
                return
            self._route = route
        self._read_head()

    def _checking_upgrade(self) -> bool:
        """True while the head of a GET is incomplete on a port shared with MQTT over WebSocket, and
        once an upgrade request went to the broker; False when this side serves the request."""
        shared = self.shared_websocket
        if shared is None or self._upgrade_checked:
            return False
        if not self._buffer.startswith(b"GET "):
            # An upgrade request is always a GET (RFC 6455 §4.1).
            self._upgrade_checked = not b"GET ".startswith(self._buffer)
            return not self._upgrade_checked
        end = _head_end(self._buffer)[0]
        if end < 0:
            if len(self._buffer) <= http.MAX_HEAD_BYTES:
                return True
            self._upgrade_checked = True
            return False  # too large for either: answered as an oversized HTTP request
        self._upgrade_checked = True
        upgrade = http.parse_head(bytes(self._buffer[:end])).header("upgrade") or ""
        if not any(token.strip().lower() == "websocket" for token in upgrade.split(",")):
            return False
        assert self._transport is not None
        if self._timer is not None:
            self._timer.cancel()
        self._server_state.connections.discard(self)
        self._closing = True  # the broker's protocol owns the transport from here on
        received = bytes(self._buffer)
        self._buffer.clear()
        shared.accept(self._transport, received)
        return True

    def _read_head(self) -> None:
        end, separator = _head_end(self._buffer)
        if end < 0:
            if len(self._buffer) > http.MAX_HEAD_BYTES:
                self._answer_now(http.error_response(400, "Request head too large."))
            return
        assert self._route is not None and self._transport is not None
        if self._timer is not None:
            self._timer.cancel()
        head = http.parse_head(bytes(self._buffer[:end]))
        reader = self._reader = asyncio.StreamReader(limit=READ_LIMIT_BYTES, loop=self._loop)
        reader.set_transport(self._transport)
        rest = bytes(self._buffer[end + separator :])
        self._buffer.clear()
        if rest:
            reader.feed_data(rest)
        if self._lost:
            reader.feed_eof()
        self._task = self.side_channel.start(self._route, head, reader, self)

    def _hand_to_uvicorn(self) -> asyncio.Protocol:
        assert self._transport is not None
        if self._timer is not None:
            self._timer.cancel()
        self._server_state.connections.discard(self)
        inner = self.inner_protocol_class(  # type: ignore[call-arg]
            config=self._config, server_state=self._server_state, app_state=self._app_state, _loop=self._loop
        )
        inner.connection_made(self._transport)
        self._transport.set_protocol(inner)
        buffered = bytes(self._buffer)
        self._buffer.clear()
        inner.data_received(buffered)
        return inner

    def _head_timed_out(self) -> None:
        self._answer_now(http.error_response(408, "Request timeout."))

    def _answer_now(self, response: bytes) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.write(response)
        self.close()

    # --- the Connection the handlers write to -----------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    async def drain(self) -> None:
        if self._lost:
            raise ConnectionResetError("the client went away")
        if self._writable is not None:
            await asyncio.shield(self._writable)

    def close(self) -> None:
        transport = self._transport
        if transport is None or self._closing:
            return
        self._closing = True
        if transport.is_closing():
            return
        if self._eof or self._shutting_down or not transport.can_write_eof():
            # Nothing to linger for after the client's EOF; when stopping, uvicorn waits for this to go.
            transport.close()
            return
        # Reading may have been paused by the request reader: resume it to see the client's close.
        with contextlib.suppress(RuntimeError):
            transport.resume_reading()
        transport.write_eof()
        self._loop.call_later(self.linger, transport.close)

    # --- flow control ---------------------------------------------------------------------------------

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None:
            if not self._writable.done():
                self._writable.set_result(None)
            self._writable = None

    def eof_received(self) -> bool | None:
        self._eof = True
        if self._closing:
            return None  # the answer is written: close
        if self._reader is not None:
            self._reader.feed_eof()
            return True  # keep the transport open to write the answer
        if self._route is None and self._buffer:
            # A request whose head has no line end yet: uvicorn decides what to answer.
            inner = self._hand_to_uvicorn()
            return inner.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._server_state.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
        if self._reader is not None:
            self._reader.feed_eof()
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(ConnectionResetError("the client went away"))
            self._writable.exception()  # marked retrieved: nobody may be waiting


def _head_end(buffer: bytearray) -> tuple[int, int]:
    """Where a request head ends and the length of its blank line (-1 when incomplete); bare LF
    line ends are tolerated."""
    end, separator = buffer.find(b"\r\n\r\n"), 4
    bare = buffer.find(b"\n\n")
    if bare >= 0 and (end < 0 or bare < end):
        end, separator = bare, 2
    return end, separator


def front_door_class(
    side_channel: SideChannel, shared_websocket: SharedWebSocket | None = None
) -> type[FrontDoor]:
    """A FrontDoor bound to `side_channel`, to pass to `uvicorn.Config(http=...)`; with
    `shared_websocket`, upgrade requests on the port are MQTT over WebSocket (spec S1)."""
    return type(
        "BoundFrontDoor", (FrontDoor,), {"side_channel": side_channel, "shared_websocket": shared_websocket}
    )
