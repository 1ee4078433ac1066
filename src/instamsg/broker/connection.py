"""The byte side of one client connection: an `asyncio.Protocol` doing framing, coalesced writes,
back-pressure and close. The MQTT state lives in the Channel it feeds.

Writes are collected and flushed once per event-loop turn with `transport.writelines(frames)`: one
syscall for many packets over TCP, and one WebSocket binary message per packet when the transport is
the WebSocket adapter (spec §3.4 rule 5), so the same Connection serves both.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, Any, cast

from instamsg.broker.channel import Channel
from instamsg.mqtt.decoder import FrameDecoder
from instamsg.mqtt.errors import MalformedPacket, UnsupportedProtocol

if TYPE_CHECKING:
    from instamsg.broker.node import BrokerNode

logger = logging.getLogger(__name__)


class Connection(asyncio.Protocol):
    __slots__ = (
        "_flush_scheduled",
        "_frames",
        "_loop",
        "channel",
        "closed",
        "decoder",
        "listener",
        "node",
        "peer",
        "peer_common_name",
        "transport",
        "writable",
    )

    def __init__(self, node: BrokerNode, listener: str) -> None:
        self.node = node
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.decoder = FrameDecoder(node.settings.max_packet_size, server_side=True)
        self._frames: list[bytes] = []
        self._flush_scheduled = False
        self._loop = asyncio.get_running_loop()
        self.writable = True
        self.closed = False
        self.peer = ""
        self.peer_common_name: str | None = None
        self.channel = Channel(node, self)

    # ---- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check here.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        settings = self.node.settings
        transport.set_write_buffer_limits(settings.write_buffer_high_water, settings.write_buffer_low_water)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            except OSError:
                pass
        peername = transport.get_extra_info("peername")
        self.peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        self.peer_common_name = _peer_common_name(transport.get_extra_info("peercert"))
        if not self.node.connection_opened(self):
            self.closed = True
            transport.abort()
            return
        self.channel.on_open()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        channel = self.channel
        channel.touch()
        try:
            packets = self.decoder.feed(data)
        except UnsupportedProtocol as error:
            channel.on_unsupported_protocol(error)
            return
        except MalformedPacket as error:
            channel.on_malformed(error)
            return
        except Exception:
            # A decoder bug must cost this connection only, never the node.
            logger.exception("decoder_failed peer=%s", self.peer)
            channel.on_malformed(MalformedPacket("decoder failure"))
            return
        for packet in packets:
            if self.closed:
                return
            channel.handle_packet(packet)

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._frames.clear()
        self.transport = None
        self.channel.on_connection_lost()
        self.node.connection_closed(self)

    def pause_writing(self) -> None:
        # The client reads slower than we write: stop reading its socket too (it cannot push more work)
        # and let sessions queue (bounded) instead of growing the transport buffer.
        self.writable = False
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.writable = True
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()
        self.channel.on_writable()

    # ---- writing ---------------------------------------------------------------------------------

    def write(self, frame: bytes) -> None:
        if self.closed:
            return
        self._frames.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        frames = self._frames
        if not frames or self.transport is None or self.closed:
            return
        self._frames = []
        self.transport.writelines(frames)

    def close(self) -> None:
        """Flush what is pending (a CONNACK or DISCONNECT), then close."""
        if self.closed:
            return
        self.flush()
        self.closed = True
        if self.transport is not None:
            self.transport.close()
            # A peer that never reads would keep a graceful close pending forever.
            self.node.wheel.schedule(5.0, self._abort_if_open)

    def _abort_if_open(self) -> None:
        if self.transport is not None:  # connection_lost has not run yet
            self.transport.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def _peer_common_name(certificate: Any) -> str | None:
    """The subject CN of a verified client certificate (spec D11), if one was presented."""
    if not certificate:
        return None
    for attribute in certificate.get("subject", ()):
        for key, value in attribute:
            if key == "commonName":
                return str(value)
    return None
