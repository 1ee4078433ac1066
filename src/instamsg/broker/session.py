"""A client's session: subscriptions, the outbound QoS 1/2 in-flight window and the bounded queue.

Keyed on the client UUID (spec §4.4). Owned by its channel while connected and by the node's session
table while offline. Outbound flow (MQTT-4.3, 4.4, 4.9):

    deliver → window has room (and nothing queued ahead) → packet id, in-flight, PUBLISH written
            → otherwise queued (bounded; when full the overflow policy drops one message, counted)
    PUBACK / PUBCOMP → leaves the window → the queue refills the window in order
    PUBREC → state "released", PUBREL written
    reconnect → every in-flight PUBLISH re-sent with DUP and its packet id, PUBRELs re-sent, then the queue

No retransmission while connected: MQTT 5 forbids it (MQTT-4.4.0-1) and 3.1.1 only needs it on
reconnect; a lost TCP connection is the only way a packet is lost.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from instamsg.broker.message import Message
from instamsg.broker.settings import OverflowPolicy

if TYPE_CHECKING:
    from instamsg.broker.router import Subscription
    from instamsg.broker.timers import Timer

logger = logging.getLogger(__name__)

AWAITING_ACK: Final = 0  # PUBLISH sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2)
AWAITING_COMPLETE: Final = 1  # PUBREL sent, waiting for PUBCOMP

_NO_PACKET_IDS: Final[frozenset[int]] = frozenset()


class Outbound(Protocol):
    """What a session needs from its live connection (the Channel)."""

    @property
    def writable(self) -> bool: ...

    def send_publish(
        self,
        message: Message,
        qos: int,
        retain: bool,
        packet_id: int | None,
        dup: bool,
        subscription_identifiers: tuple[int, ...] | None,
    ) -> bool: ...

    def send_pubrel(self, packet_id: int) -> None: ...


class CommitBarrier:
    """Holds back one PUBLISH's acknowledgement until every offline-queue write it caused is durable.

    The channel installs one as `node.barrier` around routing a QoS 1/2 PUBLISH; each append to the
    session store takes a hold; the last release runs the callback (spec C18). With the in-memory
    store every release happens synchronously and the acknowledgement is never delayed.
    """

    __slots__ = ("callback", "pending")

    def __init__(self) -> None:
        self.pending = 0
        self.callback: Callable[[], None] | None = None

    def hold(self) -> Callable[[], None]:
        self.pending += 1
        return self._release

    def _release(self) -> None:
        self.pending -= 1
        if self.pending == 0 and self.callback is not None:
            callback, self.callback = self.callback, None
            callback()


class InflightEntry:
    __slots__ = ("message", "qos", "retain", "state", "subscription_identifiers")

    def __init__(
        self, message: Message, qos: int, retain: bool, subscription_identifiers: tuple[int, ...] | None
    ) -> None:
        self.message = message
        self.qos = qos
        self.retain = retain
        self.subscription_identifiers = subscription_identifiers
        self.state = AWAITING_ACK


class Queued:
    __slots__ = ("message", "qos", "retain", "subscription_identifiers")

    def __init__(
        self, message: Message, qos: int, retain: bool, subscription_identifiers: tuple[int, ...] | None
    ) -> None:
        self.message = message
        self.qos = qos
        self.retain = retain
        self.subscription_identifiers = subscription_identifiers


class Session:
    __slots__ = (
        "channel",
        "client_uuid",
        "dropped_expired",
        "dropped_offline_qos0",
        "dropped_overflow",
        "expiry_interval",
        "expiry_timer",
        "inbound_unreleased",
        "inflight",
        "max_qos",
        "max_queued",
        "next_packet_id",
        "overflow_policy",
        "pending_will",
        "pending_will_expiry",
        "persist",
        "queue",
        "queue_qos0_offline",
        "subscriptions",
        "tenant_id",
        "will_timer",
        "window",
    )

    def __init__(
        self,
        client_uuid: str,
        tenant_id: str,
        *,
        window: int = 64,
        max_queued: int = 1000,
        overflow_policy: OverflowPolicy = OverflowPolicy.DROP_NEW,
        queue_qos0_offline: bool = False,
        expiry_interval: int = 0,
    ) -> None:
        self.client_uuid = client_uuid
        self.tenant_id = tenant_id
        self.channel: Outbound | None = None
        # Key: the filter as subscribed, `$share/<group>/` prefix included.
        self.subscriptions: dict[str, Subscription] = {}
        # The window starts as one shared empty dict and gets its own on the first QoS 1/2 delivery
        # (`_send_new`, `restore_inflight`); nothing else adds to it. The queue and the unreleased
        # QoS 2 ids likewise start as shared empty immutables and become a deque and a set on first
        # use (`_enqueue`, `mark_unreleased`): an idle session costs ~1 KiB less.
        self.inflight: dict[int, InflightEntry] = _NO_INFLIGHT
        self.queue: deque[Queued] | tuple[()] = ()
        self.inbound_unreleased: set[int] | frozenset[int] = _NO_PACKET_IDS
        self.next_packet_id = 1
        self.window = window
        self.max_queued = max_queued
        self.overflow_policy = overflow_policy
        self.queue_qos0_offline = queue_qos0_offline
        self.expiry_interval = expiry_interval
        self.expiry_timer: Timer | None = None
        self.max_qos = 2
        # A will waiting for its MQTT 5 delay (or the session's end), cancelled if the client returns.
        self.pending_will: Message | None = None
        self.pending_will_expiry: int | None = None
        # Set by the node while the session is offline and a SessionStore is configured: called for
        # each message queued, so the store can make it durable before the publisher is acknowledged.
        self.persist: Callable[[Session, Queued], None] | None = None
        self.will_timer: Timer | None = None
        self.dropped_overflow = 0
        self.dropped_offline_qos0 = 0
        self.dropped_expired = 0

    @property
    def connected(self) -> bool:
        return self.channel is not None

    def deliver(
        self,
        message: Message,
        qos: int,
        retain: bool,
        subscription_identifiers: tuple[int, ...] | None = None,
    ) -> bool:
        """Hand one message to this session; False if it was dropped (and counted)."""
        if qos > self.max_qos:
            qos = self.max_qos
        channel = self.channel
        if channel is None:
            if qos == 0 and not self.queue_qos0_offline:
                self.dropped_offline_qos0 += 1
                return False
            item = Queued(message, qos, retain, subscription_identifiers)
            if not self._enqueue(item):
                return False
            if self.persist is not None:
                self.persist(self, item)
            return True
        if not channel.writable:
            # A slow reader (its transport passed high water): park the message in the bounded queue,
            # whatever its QoS, so a burst is absorbed and a stuck reader costs at most the queue bound.
            return self._enqueue(Queued(message, qos, retain, subscription_identifiers))
        if qos == 0:
            if self.queue:
                return self._enqueue(Queued(message, qos, retain, subscription_identifiers))  # keep order
            return channel.send_publish(message, 0, retain, None, False, subscription_identifiers)
        if self.queue or len(self.inflight) >= self.window:
            return self._enqueue(Queued(message, qos, retain, subscription_identifiers))
        self._send_new(channel, message, qos, retain, subscription_identifiers)
        return True

    def _enqueue(self, item: Queued) -> bool:
        queue = self.queue
        if not isinstance(queue, deque):
            queue = self.queue = deque()
        if len(queue) >= self.max_queued:
            self.dropped_overflow += 1
            dropped = self.dropped_overflow
            if dropped & (dropped - 1) == 0:  # log the 1st, 2nd, 4th, 8th... drop: a slow reader cannot flood
                logger.warning(
                    "queue_full_dropped client=%s policy=%s queued=%d dropped=%d",
                    self.client_uuid,
                    self.overflow_policy.value,
                    len(queue),
                    dropped,
                )
            if self.overflow_policy is OverflowPolicy.DROP_NEW:
                return False
            queue.popleft()
        queue.append(item)
        return True

    def restore_queued(self, item: Queued) -> None:
        """Append a message read back from a session store (bounded like any other)."""
        self._enqueue(item)

    def mark_unreleased(self, packet_id: int) -> None:
        """An inbound QoS 2 PUBLISH was acknowledged with PUBREC; its PUBREL is awaited."""
        unreleased = self.inbound_unreleased
        if not isinstance(unreleased, set):
            unreleased = self.inbound_unreleased = set()
        unreleased.add(packet_id)

    def release(self, packet_id: int) -> None:
        """PUBREL for an inbound QoS 2 message: its packet id is free again."""
        unreleased = self.inbound_unreleased
        if isinstance(unreleased, set):
            unreleased.discard(packet_id)

    def allocate_packet_id(self) -> int:
        packet_id = self.next_packet_id
        inflight = self.inflight
        while packet_id in inflight:
            packet_id = packet_id % 65535 + 1
        self.next_packet_id = packet_id % 65535 + 1
        return packet_id

    def _send_new(
        self,
        channel: Outbound,
        message: Message,
        qos: int,
        retain: bool,
        subscription_identifiers: tuple[int, ...] | None,
    ) -> None:
        packet_id = self.allocate_packet_id()
        inflight = self.inflight
        if inflight is _NO_INFLIGHT:
            inflight = self.inflight = {}
        inflight[packet_id] = InflightEntry(message, qos, retain, subscription_identifiers)
        if not channel.send_publish(message, qos, retain, packet_id, message.dup, subscription_identifiers):
            # Refused by the connection (larger than the client's Maximum Packet Size, MQTT-3.1.2-25).
            del inflight[packet_id]

    def restore_inflight(self, packet_id: int, entry: InflightEntry) -> None:
        """Put back a window entry read from a session store."""
        if self.inflight is _NO_INFLIGHT:
            self.inflight = {}
        self.inflight[packet_id] = entry

    def pump(self) -> None:
        """Move queued messages into the window while it has room and the connection is writable."""
        channel = self.channel
        if channel is None:
            return
        queue = self.queue
        if not queue:
            return
        assert isinstance(queue, deque)
        now = time.monotonic()
        while queue and channel.writable:
            item = queue[0]
            if item.qos and len(self.inflight) >= self.window:
                return
            queue.popleft()
            if item.message.expires_at is not None and item.message.expired(now):
                self.dropped_expired += 1  # MQTT-3.3.2-5: an expired message is not delivered
                continue
            if item.qos == 0:
                channel.send_publish(item.message, 0, item.retain, None, False, item.subscription_identifiers)
            else:
                self._send_new(channel, item.message, item.qos, item.retain, item.subscription_identifiers)

    def acknowledge(self, packet_id: int) -> Message | None:
        """PUBACK (QoS 1) or PUBCOMP (QoS 2) from the client: the message leaves the window."""
        entry = self.inflight.pop(packet_id, None)
        if entry is None:
            return None
        if self.queue:
            self.pump()
        return entry.message

    def received(self, packet_id: int) -> bool:
        """PUBREC from the client; True if we now owe a PUBREL (the packet id is ours, QoS 2)."""
        entry = self.inflight.get(packet_id)
        if entry is None or entry.qos != 2:
            return False
        entry.state = AWAITING_COMPLETE
        return True

    def resume(self, channel: Outbound, window: int) -> None:
        """A connection took this session: re-send the window (MQTT-4.4.0-1), then the queue."""
        self.channel = channel
        self.window = window
        now = time.monotonic()
        for packet_id, entry in list(self.inflight.items()):
            if entry.state == AWAITING_COMPLETE:
                channel.send_pubrel(packet_id)
            elif entry.message.expires_at is not None and entry.message.expired(now):
                del self.inflight[packet_id]
                self.dropped_expired += 1
            else:
                channel.send_publish(
                    entry.message, entry.qos, entry.retain, packet_id, True, entry.subscription_identifiers
                )
        self.pump()

    def detach(self) -> None:
        self.channel = None

    def clear(self) -> None:
        """Forget all state but the identity (a clean start)."""
        self.inflight = _NO_INFLIGHT
        self.queue = ()
        self.inbound_unreleased = _NO_PACKET_IDS
        self.subscriptions.clear()


# Never added to: `Session._send_new` and `restore_inflight` give a session its own dict first.
_NO_INFLIGHT: Final[dict[int, InflightEntry]] = {}
