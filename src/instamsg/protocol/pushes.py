"""Pacing of server-originated pushes to connections that cannot take them at full speed (Q3, Q4).

Python over raw TCP/TLS sleeps 10 s in its network thread after CONNACK and then handles one inbound
packet per `recv()`, so pushes (config, logging, pending commands) to such a connection — a profile
with `push_delay` or `push_spacing` — are held until `delay` seconds after CONNACK and then sent at
least `spacing` seconds apart, in order, from a bounded per-client queue. The queue belongs to the
connection: it is dropped when that connection closes. Other connections get pushes at once.

The profile's values only say *whether* a connection is paced; the delays come from the settings
(`legacy_push_delay_seconds`, `legacy_push_spacing_seconds`) so they can be tuned and kept small in
tests.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from instamsg.broker.hooks import HookPoint, Priority

if TYPE_CHECKING:
    from instamsg.broker.channel import Channel
    from instamsg.broker.node import BrokerNode
    from instamsg.protocol.plugin import DeviceProtocol

logger = logging.getLogger(__name__)

DEFAULT_DELAY: Final = 11.0  # Q4: Python sleeps 10 s after CONNACK
DEFAULT_SPACING: Final = 0.6  # Q3: Python handles one packet per 0.5 s loop tick
MAX_QUEUED_PUSHES: Final = 256


def is_paced(channel: Channel) -> bool:
    profile = channel.profile
    return profile.push_delay > 0 or profile.push_spacing > 0


@dataclass(slots=True)
class _Queue:
    channel: Channel
    next_send_at: float  # loop time before which nothing may be sent
    items: deque[tuple[str, bytes, int]] = field(default_factory=deque)
    handle: asyncio.TimerHandle | None = None


class PushPacer:
    """Per-connection push queues, driven by `loop.call_later`."""

    def __init__(
        self,
        node: BrokerNode,
        delay: float = DEFAULT_DELAY,
        spacing: float = DEFAULT_SPACING,
        max_queued: int = MAX_QUEUED_PUSHES,
    ) -> None:
        self.node = node
        self.delay = delay
        self.spacing = spacing
        self.max_queued = max_queued
        self._queues: dict[str, _Queue] = {}

    # ---- connection lifecycle (hooks) ----

    def connected(self, channel: Channel) -> None:
        if not is_paced(channel):
            return
        self._drop(channel.client_uuid)
        loop = asyncio.get_running_loop()
        self._queues[channel.client_uuid] = _Queue(channel, loop.time() + self.delay)

    def disconnected(self, channel: Channel, reason: str) -> None:
        queue = self._queues.get(channel.client_uuid)
        if queue is not None and queue.channel is channel:
            self._drop(channel.client_uuid)

    def _drop(self, client_uuid: str) -> None:
        queue = self._queues.pop(client_uuid, None)
        if queue is None:
            return
        if queue.handle is not None:
            queue.handle.cancel()
        if queue.items:
            logger.info(
                "pushes_dropped client=%s count=%d reason=connection_closed", client_uuid, len(queue.items)
            )

    # ---- pushing ----

    def submit(self, channel: Channel, topic: str, payload: bytes, qos: int) -> bool:
        """Queue a push for a paced connection; False when its queue is full."""
        loop = asyncio.get_running_loop()
        queue = self._queues.get(channel.client_uuid)
        if queue is None or queue.channel is not channel:
            # No CONNACK time recorded (pacing installed after the connect): assume it was just now.
            self._drop(channel.client_uuid)
            queue = self._queues[channel.client_uuid] = _Queue(channel, loop.time() + self.delay)
        if len(queue.items) >= self.max_queued:
            self.node.throttled_warning(
                ("push_queue_full", channel.client_uuid),
                "push_queue_full client=%s topic=%s",
                channel.client_uuid,
                topic,
            )
            return False
        queue.items.append((topic, payload, qos))
        if queue.handle is None:
            queue.handle = loop.call_at(
                max(queue.next_send_at, loop.time()), self._send_next, channel.client_uuid
            )
        return True

    def queued(self, client_uuid: str) -> int:
        """Pushes waiting for `client_uuid` (for tests and diagnostics)."""
        queue = self._queues.get(client_uuid)
        return 0 if queue is None else len(queue.items)

    def _send_next(self, client_uuid: str) -> None:
        queue = self._queues.get(client_uuid)
        if queue is None:
            return
        queue.handle = None
        channel = queue.channel
        if self.node.channels.get(client_uuid) is not channel:
            self._drop(client_uuid)
            return
        topic, payload, qos = queue.items.popleft()
        self.node.deliver(channel.tenant_id, None, topic, payload, qos)
        loop = asyncio.get_running_loop()
        queue.next_send_at = loop.time() + self.spacing
        if queue.items:
            queue.handle = loop.call_at(queue.next_send_at, self._send_next, client_uuid)


def install_push_pacing(
    devices: DeviceProtocol, delay: float = DEFAULT_DELAY, spacing: float = DEFAULT_SPACING
) -> PushPacer:
    """Pace `DeviceProtocol.push` for paced profiles; without this, every push goes out at once."""
    pacer = PushPacer(devices.node, delay, spacing)
    hooks = devices.node.hooks
    # First, so pushes other client.connected hooks make (pending commands) are already paced.
    hooks.add(HookPoint.CLIENT_CONNECTED, pacer.connected, Priority.FIRST)
    hooks.add(HookPoint.CLIENT_DISCONNECTED, pacer.disconnected, Priority.NORMAL)
    devices.pacer = pacer
    return pacer
