"""The load generator: MQTT connections on `asyncio.Protocol` and the windowed message flows.

Every benchmark message carries (publisher index, sequence number, send time) in its payload, so loss,
duplicates and latency are measured exactly per message. Publishing is windowed end to end: a publisher
may have at most `window` messages that have not yet arrived at every subscriber, so the measured rate
is one the broker sustains without queueing or dropping.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from benchmarks import wire
from benchmarks.websocket import WebSocketClient

CONNECT_TIMEOUT = 30.0
# A flow with messages outstanding and no arrival for this long is reported as stalled.
STALL_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to reach one listener of the broker under test."""

    host: str
    port: int
    transport: str = "tcp"  # tcp, tls, ws or wss
    ssl_context: ssl.SSLContext | None = None
    path: str = "/mqtt"


@dataclass(frozen=True, slots=True)
class Credential:
    """What one generator connection presents in CONNECT."""

    client_id: str
    username: str | None = None
    password: str | None = None


class Sink:
    """Subscriber-side accounting for one connection: exact sequence checks and sampled latency."""

    __slots__ = (
        "acks",
        "delivered",
        "duplicates",
        "expected",
        "frame_size",
        "gaps",
        "header_check",
        "length_check",
        "on_batch",
        "packet_id_offset",
        "qos",
        "sample_mask",
        "samples",
        "unpacker",
    )

    def __init__(
        self,
        layout: wire.PublishLayout,
        publishers: int,
        delivered: list[int],
        samples: list[int],
        sample_mask: int,
        on_batch: Callable[[], None],
    ) -> None:
        self.qos = layout.qos
        self.frame_size = layout.frame.size
        self.header_check = layout.header_byte
        self.length_check = layout.remaining_length
        self.packet_id_offset = layout.packet_id_offset
        # Skip the header, topic and packet id: only (publisher, sequence, stamp) reach Python.
        skipped = 4 + len(layout.topic) + (2 if layout.qos else 0)
        padding = layout.payload_size - wire.MINIMUM_PAYLOAD
        self.unpacker = struct.Struct(f">{skipped}xHQq{padding}x")
        self.expected = [0] * publishers
        self.delivered = delivered
        self.samples = samples
        self.sample_mask = sample_mask
        self.on_batch = on_batch
        self.gaps = 0
        self.duplicates = 0
        self.acks = bytearray()

    def consume(self, buffer: bytearray) -> int:
        """Account for the leading run of benchmark frames in buffer; return the bytes used."""
        size = self.frame_size
        count = len(buffer) // size
        if not count:
            return 0
        chunk = bytes(buffer[: count * size])
        # Validate every frame header with two C-level slice comparisons instead of a Python loop.
        if (
            chunk[0::size] != bytes((self.header_check,)) * count
            or chunk[1::size] != bytes((self.length_check,)) * count
        ):
            if buffer[0] != self.header_check or buffer[1] != self.length_check:
                return 0
            count = 1
            chunk = chunk[:size]
        now = time.perf_counter_ns()
        expected = self.expected
        delivered = self.delivered
        samples = self.samples
        mask = self.sample_mask
        for publisher, sequence, stamp in self.unpacker.iter_unpack(chunk):
            wanted = expected[publisher]
            if sequence != wanted:
                if sequence < wanted:
                    self.duplicates += 1
                    continue
                self.gaps += sequence - wanted
            expected[publisher] = sequence + 1
            delivered[publisher] += 1
            if not sequence & mask:
                samples.append(now - stamp)
        if self.qos:
            self.acks = _pubacks(chunk, count, size, self.packet_id_offset)
        return count * size


def _pubacks(chunk: bytes, count: int, size: int, offset: int) -> bytearray:
    """Build one PUBACK per frame with slice assignments (no per-message Python work)."""
    acks = bytearray(4 * count)
    acks[0::4] = b"\x40" * count
    acks[1::4] = b"\x02" * count
    acks[2::4] = chunk[offset::size]
    acks[3::4] = chunk[offset + 1 :: size]
    return acks


class MqttConnection(asyncio.Protocol):
    """One generator connection: CONNECT on open, then PUBLISH accounting or PUBACK counting."""

    def __init__(self, credential: Credential, keepalive: int = 600) -> None:
        loop = asyncio.get_running_loop()
        self.credential = credential
        self.keepalive = keepalive
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.connected: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.subacks: dict[int, asyncio.Future[bytes]] = {}
        self.next_packet_id = 1
        self.sink: Sink | None = None
        self.pubacks = 0
        self.on_puback: Callable[[int], None] | None = None
        self.unexpected_frames = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        credential = self.credential
        self.transport.write(
            wire.connect_packet(
                credential.client_id, credential.username, credential.password, self.keepalive
            )
        )

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        sink = self.sink
        while buffer:
            if sink is not None:
                used = sink.consume(buffer)
                if used:
                    del buffer[:used]
                    if sink.acks:
                        assert self.transport is not None
                        self.transport.write(sink.acks)
                        sink.acks = bytearray()
                    continue
            if self.pubacks_fast(buffer):
                continue
            frame = wire.next_frame(buffer)
            if frame is None:
                break
            first, body = frame
            self.handle(first, body)
        if sink is not None:
            sink.on_batch()

    def pubacks_fast(self, buffer: bytearray) -> bool:
        """Count a run of PUBACKs (all 4 bytes long) at C speed."""
        count = len(buffer) // 4
        if not count or buffer[0] != 0x40:
            return False
        if buffer[0 : count * 4 : 4] != b"\x40" * count or buffer[1 : count * 4 : 4] != b"\x02" * count:
            return False
        del buffer[: count * 4]
        self.pubacks += count
        if self.on_puback is not None:
            self.on_puback(count)
        return True

    def handle(self, first: int, body: bytes) -> None:
        kind = first >> 4
        if kind == wire.CONNACK:
            if not self.connected.done():
                if len(body) >= 2 and body[1] == 0:
                    self.connected.set_result(None)
                else:
                    code = body[1] if len(body) >= 2 else -1
                    self.connected.set_exception(ConnectionRefusedError(f"CONNACK return code {code}"))
        elif kind == wire.SUBACK:
            (packet_id,) = struct.unpack_from(">H", body)
            future = self.subacks.pop(packet_id, None)
            if future is not None and not future.done():
                future.set_result(body[2:])
        elif kind == wire.PUBACK:
            self.pubacks += 1
            if self.on_puback is not None:
                self.on_puback(1)
        elif kind == wire.PINGRESP:
            pass
        else:
            # A PUBLISH that is not a benchmark frame (e.g. a retained or system message) lands here.
            self.unexpected_frames += 1
            if kind == wire.PUBLISH and first & 0x06 and self.transport is not None:
                topic_length = struct.unpack_from(">H", body)[0]
                packet_id = struct.unpack_from(">H", body, 2 + topic_length)[0]
                self.transport.write(wire.puback_packet(packet_id))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_exception(exc or ConnectionResetError("closed before CONNACK"))
        for future in self.subacks.values():
            if not future.done():
                future.set_exception(ConnectionResetError("closed before SUBACK"))
        if not self.closed.done():
            self.closed.set_result(None)
        self.transport = None

    async def subscribe(self, filters: Sequence[str], qos: int, per_packet: int = 500) -> None:
        """Subscribe in packets of `per_packet` filters and wait for every SUBACK."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        futures = []
        for start in range(0, len(filters), per_packet):
            packet_id = self.next_packet_id
            self.next_packet_id = packet_id % 65535 + 1
            future: asyncio.Future[bytes] = loop.create_future()
            self.subacks[packet_id] = future
            futures.append(future)
            self.transport.write(
                wire.subscribe_packet(packet_id, list(filters[start : start + per_packet]), qos)
            )
        for granted in await asyncio.wait_for(asyncio.gather(*futures), CONNECT_TIMEOUT):
            if 0x80 in granted:
                raise PermissionError("the broker refused a subscription")

    def write(self, data: bytes | bytearray) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def disconnect(self, wait_for_server: bool = False) -> None:
        """Send DISCONNECT; close now, or let the server close first (its side then holds TIME_WAIT)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(wire.DISCONNECT_PACKET)
            if not wait_for_server:
                self.transport.close()


async def open_connection(
    endpoint: Endpoint, credential: Credential, local_host: str | None = None, keepalive: int = 600
) -> MqttConnection:
    """Connect, send CONNECT and wait for a successful CONNACK."""
    loop = asyncio.get_running_loop()
    connection = MqttConnection(credential, keepalive)
    secure = endpoint.transport in ("tls", "wss")
    local_address = (local_host, 0) if local_host else None

    def factory() -> asyncio.Protocol:
        if endpoint.transport in ("ws", "wss"):
            return WebSocketClient(connection, f"{endpoint.host}:{endpoint.port}", endpoint.path)
        return connection

    # asyncio.timeout rather than wait_for: no extra task per connection on the connect-rate path.
    async with asyncio.timeout(CONNECT_TIMEOUT):
        await loop.create_connection(
            factory,
            endpoint.host,
            endpoint.port,
            ssl=endpoint.ssl_context if secure else None,
            local_addr=local_address,
        )
        await connection.connected
    return connection


class Flow:
    """One publisher and its windowed sequence of messages."""

    __slots__ = (
        "connection",
        "count",
        "fanout",
        "header",
        "index",
        "layout",
        "low_water",
        "packer",
        "sent",
        "window",
    )

    def __init__(
        self, connection: MqttConnection, layout: wire.PublishLayout, index: int, count: int, window: int
    ) -> None:
        self.connection = connection
        self.layout = layout
        self.index = index
        self.count = count
        self.window = window
        # Refill at half the window so each write carries many messages (one syscall per batch).
        self.low_water = window // 2
        self.fanout = 1
        self.sent = 0
        self.packer = layout.frame

    def refill(self, delivered: int) -> None:
        """Send more messages while fewer than `window` are outstanding (by arrivals)."""
        remaining = self.count - self.sent
        if remaining <= 0:
            return
        outstanding = self.sent * self.fanout - delivered
        if outstanding > self.low_water * self.fanout:
            return
        batch = min(remaining, self.window - math.ceil(outstanding / self.fanout))
        if batch <= 0:
            return
        layout = self.layout
        packer = self.packer
        size = packer.size
        buffer = bytearray(size * batch)
        header = layout.header_byte
        length = layout.remaining_length
        topic = layout.topic
        topic_length = len(topic)
        index = self.index
        sequence = self.sent
        stamp = time.perf_counter_ns()
        pack_into = packer.pack_into
        if layout.qos:
            for offset in range(0, size * batch, size):
                pack_into(
                    buffer,
                    offset,
                    header,
                    length,
                    topic_length,
                    topic,
                    sequence % 65535 + 1,
                    index,
                    sequence,
                    stamp,
                )
                sequence += 1
        else:
            for offset in range(0, size * batch, size):
                pack_into(buffer, offset, header, length, topic_length, topic, index, sequence, stamp)
                sequence += 1
        self.sent = sequence
        self.connection.write(buffer)


@dataclass(slots=True)
class FlowResult:
    """What one windowed flow measured."""

    published: int
    expected_deliveries: int
    delivered: int
    gaps: int
    duplicates: int
    duration: float
    latencies_ns: list[int] = field(default_factory=list)
    pubacks: int = 0
    completed: bool = True
    stalled: bool = False


class FlowRun:
    """Publishers, subscribers and the shared arrival counters of one throughput measurement."""

    def __init__(
        self,
        publishers: list[MqttConnection],
        subscribers: list[MqttConnection],
        topics: list[str],
        qos: int,
        payload_size: int,
        messages_per_publisher: int,
        window: int,
        sample_every: int,
        fanout: int,
        acks_are_arrivals: bool = False,
    ) -> None:
        """`fanout` is how many subscribers receive each message (1 when PUBACKs count as arrivals)."""
        self.loop = asyncio.get_running_loop()
        self.delivered = [0] * len(publishers)
        self.samples: list[int] = []
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.flows = [
            Flow(
                connection,
                wire.PublishLayout(topics[index].encode(), qos, payload_size),
                index,
                messages_per_publisher,
                window,
            )
            for index, connection in enumerate(publishers)
        ]
        self.subscribers = subscribers
        self.qos = qos
        self.acks_are_arrivals = acks_are_arrivals
        for flow in self.flows:
            flow.fanout = fanout
        self.expected_total = sum(flow.count * flow.fanout for flow in self.flows)
        # Sample latency on sequence numbers that are multiples of a power of two (cheap bit test).
        self.sample_mask = (1 << max(0, int(math.log2(max(1, sample_every))))) - 1
        self.sinks: list[Sink] = []
        for subscriber in subscribers:
            sink = Sink(
                self.flows[0].layout,
                len(publishers),
                self.delivered,
                self.samples,
                self.sample_mask,
                self.on_arrivals,
            )
            subscriber.sink = sink
            self.sinks.append(sink)
        if acks_are_arrivals:
            for flow in self.flows:
                flow.connection.on_puback = self._puback_counter(flow.index)

    def _puback_counter(self, index: int) -> Callable[[int], None]:
        def counted(count: int) -> None:
            self.delivered[index] += count
            self.on_arrivals()

        return counted

    def on_arrivals(self) -> None:
        delivered = self.delivered
        for flow in self.flows:
            flow.refill(delivered[flow.index])
        if not self.done.done() and sum(delivered) >= self.expected_total:
            self.done.set_result(None)

    async def run(self, time_limit: float) -> FlowResult:
        """Start every flow and wait for all arrivals or the time limit."""
        started = time.perf_counter()
        for flow in self.flows:
            flow.refill(0)
        completed = True
        stalled = False
        deadline = started + time_limit
        last_progress = (started, 0)
        while not self.done.done():
            await asyncio.wait([self.done], timeout=0.5)
            now = time.perf_counter()
            delivered = sum(self.delivered)
            if delivered != last_progress[1]:
                last_progress = (now, delivered)
            elif now - last_progress[0] > STALL_SECONDS:
                # Nothing arrived for seconds with messages outstanding: the broker lost or holds them.
                stalled = True
                break
            if now > deadline:
                break
        if not self.done.done():
            completed = False
            self.done.cancel()
        duration = time.perf_counter() - started
        if self.qos and not self.acks_are_arrivals:
            # Give the last PUBACKs to the publishers a moment; they are outside the measured interval.
            deadline = time.perf_counter() + 2.0
            while time.perf_counter() < deadline and any(  # noqa: ASYNC110 - polling plain counters
                flow.connection.pubacks < flow.sent for flow in self.flows
            ):
                await asyncio.sleep(0.01)
        return FlowResult(
            published=sum(flow.sent for flow in self.flows),
            expected_deliveries=self.expected_total,
            delivered=sum(self.delivered),
            gaps=sum(sink.gaps for sink in self.sinks),
            duplicates=sum(sink.duplicates for sink in self.sinks),
            duration=duration,
            latencies_ns=self.samples,
            pubacks=sum(flow.connection.pubacks for flow in self.flows),
            completed=completed,
            stalled=stalled,
        )
