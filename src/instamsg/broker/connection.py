"""The byte side of one client connection: an `asyncio.Protocol` doing framing, coalesced writes,
back-pressure and close. The MQTT state lives in the Channel it feeds.

Writes are collected and flushed once per event-loop turn with `transport.writelines(frames)`: one
syscall for many packets over TCP, and one WebSocket binary message per packet when the transport is
the WebSocket adapter (spec §3.4 rule 5), so the same Connection serves both. A turn that collects
`WRITE_BATCH_FRAMES` frames writes them out at once, so a long read (a publisher's whole window in one
chunk) keeps the receiver busy instead of leaving it idle until the read is routed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final, cast

from instamsg.broker.channel import Channel
from instamsg.mqtt.decoder import FrameDecoder
from instamsg.mqtt.errors import MalformedPacket, UnsupportedProtocol

if TYPE_CHECKING:
    from instamsg.broker.node import BrokerNode
    from instamsg.broker.timers import Timer

logger = logging.getLogger(__name__)

# Frames coalesced before a write goes out within the same loop turn (one syscall per batch either way).
WRITE_BATCH_FRAMES: Final = 256

# Listeners whose transport can carry a client certificate.
_SECURE_LISTENERS: Final = frozenset({"mqtts", "wss"})


class Connection(asyncio.Protocol):
    __slots__ = (
        "_abort_timer",
        "_flush_scheduled",
        "_frames",
        "_loop",
        "_peer",
        "channel",
        "closed",
        "decoder",
        "listener",
        "node",
        "peer_certificate_serial",
        "peer_common_name",
        "transport",
        "writable",
    )

    def __init__(self, node: BrokerNode, listener: str) -> None:
        self.node = node
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.decoder = FrameDecoder(node.settings.max_packet_size, server_side=True)
        # Frames waiting for this turn's flush; None while there are none (most of an idle connection's life).
        self._frames: list[bytes] | None = None
        self._flush_scheduled = False
        self._abort_timer: Timer | None = None
        self._loop = asyncio.get_running_loop()
        self.writable = True
        self.closed = False
        self._peer = ""
        self.peer_common_name: str | None = None
        self.peer_certificate_serial: str | None = None  # lowercase hex, no leading zeros
        self.channel = Channel(node, self)

    @property
    def peer(self) -> str:
        """The client's address as host:port, for logs and the session record."""
        return self._peer

    # ---- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check here.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        settings = self.node.settings
        transport.set_write_buffer_limits(settings.write_buffer_high_water, settings.write_buffer_low_water)
        # TCP_NODELAY and SO_KEEPALIVE come from the listening socket (`BrokerNode.start`): accepted
        # sockets inherit them, which saves two system calls and a socket object per connect.
        # Formatted once here: one string is smaller than the (host, port) tuple with its two objects,
        # and every accepted connect formats it anyway for its session record.
        self._peer = _format_peer(transport.get_extra_info("peername"))
        if self.listener in _SECURE_LISTENERS:
            peer_certificate = transport.get_extra_info("peercert")
            self.peer_common_name = _peer_common_name(peer_certificate)
            self.peer_certificate_serial = _peer_certificate_serial(peer_certificate)
        if not self.node.connection_opened(self):
            self.closed = True
            transport.abort()
            return
        if self.node.ingest_paused:
            transport.pause_reading()
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
        self._frames = None
        self.transport = None
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        self.channel.on_connection_lost()
        self.node.connection_closed(self)

    def pause_writing(self) -> None:
        # The client reads slower than we write: stop reading its socket too (it cannot push more work)
        # and let sessions queue (bounded) instead of growing the transport buffer.
        self.writable = False
        self.sync_reading()

    def resume_writing(self) -> None:
        self.writable = True
        self.sync_reading()
        self.channel.on_writable()

    def sync_reading(self) -> None:
        """Read the socket only while this client can be written to and the node takes in messages."""
        transport = self.transport
        if transport is None or self.closed:
            return
        if self.writable and not self.node.ingest_paused:
            transport.resume_reading()
        else:
            transport.pause_reading()

    # ---- writing ---------------------------------------------------------------------------------

    def write(self, frame: bytes) -> None:
        if self.closed:
            return
        frames = self._frames
        if frames is None:
            frames = self._frames = [frame]
        else:
            frames.append(frame)
        if len(frames) >= WRITE_BATCH_FRAMES:
            # A long read (a publisher's whole window in one chunk) must not hold every delivery back
            # until the turn ends: the receiver can start on the first batch while we route the rest.
            self._write_out()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        self._write_out()

    def _write_out(self) -> None:
        frames = self._frames
        if frames is None or self.transport is None or self.closed:
            return
        self._frames = None
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
            self._abort_timer = self.node.wheel.schedule(5.0, self._abort_if_open)

    def _abort_if_open(self) -> None:
        self._abort_timer = None
        if self.transport is not None:  # connection_lost has not run yet
            self.transport.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def _format_peer(peername: Any) -> str:
    if isinstance(peername, tuple):
        return f"{peername[0]}:{peername[1]}"
    return str(peername)


def _peer_common_name(certificate: Any) -> str | None:
    """The subject CN of a verified client certificate (spec D11), if one was presented."""
    if not certificate:
        return None
    for attribute in certificate.get("subject", ()):
        for key, value in attribute:
            if key == "commonName":
                return str(value)
    return None


def _peer_certificate_serial(certificate: Any) -> str | None:
    """The serial number of a verified client certificate, normalised for revocation checks."""
    if not certificate or "serialNumber" not in certificate:
        return None
    return format(int(certificate["serialNumber"], 16), "x")
