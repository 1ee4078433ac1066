"""BrokerNode: listeners, sessions, router, retained store, timers; the data plane's one object.

A PUBLISH flows: Connection → Channel (decode, ACL, quota) → `BrokerNode.publish` (hooks, retain)
→ `dispatch` (router match, one delivery per session) → `Session.deliver` (QoS, window, queue) →
the receiver's Connection (encoded once, coalesced write). Nothing on that path awaits.

Overlapping subscriptions of one client (MQTT-3.3.5-1, MQTT 5 §3.3.4): the message is delivered
once per client, at the maximum QoS of its matching subscriptions, carrying every matching subscription
identifier, RETAIN as published if any of them asks for it. This is the same for 3.1.1 and 5.0 and
matches spec §6.2 item 5 ("at most once per connection"). Shared subscriptions are delivered apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from instamsg.broker import access
from instamsg.broker.channel import Channel
from instamsg.broker.connection import Connection
from instamsg.broker.directory import Directory
from instamsg.broker.hooks import HookPoint, Hooks
from instamsg.broker.message import Message, forwarded_properties
from instamsg.broker.metrics import MeterDeltas, Meters
from instamsg.broker.persistence import restore_session, snapshot, stored_message
from instamsg.broker.ports import (
    ClientRecord,
    SessionStore,
    TenantRecord,
)
from instamsg.broker.profiles import LEGACY
from instamsg.broker.retain import RetainStore
from instamsg.broker.router import FilterBucket, LocalRouter, Subscription, is_uuid
from instamsg.broker.session import CommitBarrier, Queued, Session
from instamsg.broker.settings import BrokerSettings
from instamsg.broker.states import CONNECTED
from instamsg.broker.timers import TimerWheel
from instamsg.broker.websocket import WebSocketServerProtocol, websocket_protocol_factory
from instamsg.mqtt.packets import Properties
from instamsg.mqtt.reason_codes import ReasonCode

logger = logging.getLogger(__name__)

LISTENERS = ("mqtt", "mqtts", "ws", "wss")


class Counters:
    """Node-wide event counters (plain ints, bumped on the hot path)."""

    __slots__ = (
        "connections_refused_limit",
        "connects_accepted",
        "connects_refused",
        "dropped_too_large",
        "malformed",
        "messages_delivered",
        "messages_published",
        "protocol_errors",
        "publishes_denied",
        "publishes_over_quota",
        "subscribes_denied",
        "wills_published",
    )

    def __init__(self) -> None:
        self.connects_accepted = 0
        self.connects_refused = 0
        self.connections_refused_limit = 0
        self.dropped_too_large = 0
        self.malformed = 0
        self.messages_delivered = 0
        self.messages_published = 0
        self.protocol_errors = 0
        self.publishes_denied = 0
        self.publishes_over_quota = 0
        self.subscribes_denied = 0
        self.wills_published = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


def _set_accepted_socket_options(server: asyncio.Server) -> None:
    """No Nagle delay and TCP keep-alive for every client socket, set once on the listening sockets:
    accepted sockets inherit both (the event loop sets TCP_NODELAY on each accepted socket as well)."""
    for sock in server.sockets:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            except OSError:
                pass


@dataclass(frozen=True, slots=True)
class NodeStatistics:
    connections: int
    clients_connected: int
    sessions: int
    subscriptions: int
    retained_messages: int
    queued_messages: int
    inflight_messages: int
    dropped_queue_overflow: int
    dropped_offline_qos0: int
    dropped_expired: int
    counters: dict[str, int]


class BrokerNode:
    """The broker. See the module docstring; the public surface is `start`, `stop`, `deliver`,
    `statistics`, `take_meter_deltas`, `meters`, `hooks`, `directory`, `settings`."""

    def __init__(
        self,
        settings: BrokerSettings,
        directory: Directory,
        hooks: Hooks | None = None,
        *,
        session_store: SessionStore | None = None,
    ) -> None:
        self.settings = settings
        self.session_store = session_store
        # The acknowledgement barrier of the PUBLISH being routed right now (see `CommitBarrier`).
        self.barrier: CommitBarrier | None = None
        self.directory = directory
        self.hooks = hooks if hooks is not None else Hooks()
        self.router = LocalRouter()
        self.retain = RetainStore(settings.max_retained_per_tenant, settings.max_retained_payload)
        self.wheel = TimerWheel(settings.timer_resolution)
        self.meters = Meters()
        self.counters = Counters()
        self.sessions: dict[str, Session] = {}
        self.channels: dict[str, Channel] = {}  # connected channels by client UUID
        self.connections: set[Connection] = set()
        self.ingest_paused = False  # see `set_ingest_paused`
        self.ports: dict[str, int | None] = dict.fromkeys(LISTENERS)
        # MQTT 3.1 (MQIsdp) connections; the device-protocol plugin refines it per layout.
        self.legacy_profile = dataclasses.replace(LEGACY, keepalive_floor=settings.legacy_keepalive_floor)
        self._servers: list[asyncio.Server] = []
        self._warned: dict[Any, float] = {}
        self._running = False
        directory.add_listener(self)

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> dict[str, int | None]:
        """Bind the configured listeners; returns the bound port per listener name (None = off)."""
        loop = asyncio.get_running_loop()
        settings = self.settings
        self.wheel.start(loop)
        self._running = True
        self.directory.remove_listener(self)
        self.directory.add_listener(self)
        if self.session_store is not None:
            self._restore_sessions(self.session_store)
        wss_context = settings.wss_ssl_context or settings.ssl_context
        plan: list[tuple[str, int | None, ssl.SSLContext | None, bool]] = [
            ("mqtt", settings.mqtt_port, None, False),
            ("mqtts", settings.mqtts_port, settings.ssl_context, True),
            ("ws", settings.ws_port, None, False),
            ("wss", settings.wss_port, wss_context, True),
        ]
        try:
            for name, port, context, secure in plan:
                if port is None:
                    continue
                if secure and context is None:
                    raise ValueError(f"listener {name} needs settings.ssl_context")
                factory: Callable[[], asyncio.Protocol] = functools.partial(Connection, self, name)
                if name in ("ws", "wss"):
                    factory = self._websocket_factory(name, settings.ws_http_fallback)
                server = await loop.create_server(
                    factory,
                    settings.host,
                    port,
                    ssl=context,
                    backlog=settings.backlog,
                    reuse_address=True,
                )
                self._servers.append(server)
                _set_accepted_socket_options(server)
                self.ports[name] = server.sockets[0].getsockname()[1]
                logger.info(
                    "listener_started listener=%s host=%s port=%s", name, settings.host, self.ports[name]
                )
        except BaseException:
            await self.stop()
            raise
        return dict(self.ports)

    def _websocket_factory(
        self, listener: str, http_fallback: Callable[[bytes, asyncio.Transport], None] | None = None
    ) -> Callable[[], WebSocketServerProtocol]:
        return websocket_protocol_factory(
            functools.partial(Connection, self, listener),
            max_message_size=self.settings.max_packet_size + 1024,
            http_fallback=http_fallback,
        )

    def accept_websocket(self, transport: asyncio.Transport, received: bytes) -> None:
        """Serve MQTT over WebSocket, as the "ws" listener, on a connection an HTTP server accepted.

        For a port shared by HTTP and MQTT over WebSocket (spec S1), where `ws_port` is left off:
        `received` is what the HTTP server read so far, from the first byte of the upgrade request.
        """
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Set on the broker's own listening sockets, but not on the HTTP server's.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self._websocket_factory("ws")().take_over(transport, received)

    async def stop(self) -> None:
        """Stop accepting, disconnect every client (MQTT 5: DISCONNECT 0x8B), close."""
        self._running = False
        for server in self._servers:
            server.close()
        for channel in list(self.channels.values()):
            channel.close(ReasonCode.SERVER_SHUTTING_DOWN, "server_shutdown", publish_will=False)
        for connection in list(self.connections):
            connection.channel.close(None, "server_shutdown", publish_will=False)
        # Give the transports one turn to flush their DISCONNECT and close.
        await asyncio.sleep(0)
        for connection in list(self.connections):
            connection.abort()
        for server in self._servers:
            try:
                await asyncio.wait_for(server.wait_closed(), 5.0)
            except TimeoutError:
                logger.warning("listener_close_timeout")
        self._servers.clear()
        self.wheel.stop()
        self.directory.remove_listener(self)

    def connection_opened(self, connection: Connection) -> bool:
        """Register a socket; False (and the caller aborts it) beyond `max_connections` or after stop."""
        if not self._running or len(self.connections) >= self.settings.max_connections:
            self.counters.connections_refused_limit += 1
            return False
        self.connections.add(connection)
        return True

    def connection_closed(self, connection: Connection) -> None:
        self.connections.discard(connection)

    def set_ingest_paused(self, paused: bool) -> None:
        """Stop (or resume) reading every client socket: a writer on the message path (the history)
        cannot keep up, and TCP flow control slows the publishers instead of messages being lost."""
        if paused == self.ingest_paused:
            return
        self.ingest_paused = paused
        logger.warning("ingest_%s connections=%d", "paused" if paused else "resumed", len(self.connections))
        for connection in list(self.connections):
            connection.sync_reading()

    # ---- sessions --------------------------------------------------------------------------------

    def open_session(
        self, channel: Channel, clean_start: bool, expiry_interval: int, window: int
    ) -> tuple[Session, bool]:
        """Take over a live connection of the same UUID, then resume or create its session."""
        client_uuid = channel.client_uuid
        session = self.sessions.get(client_uuid)
        if session is not None and session.channel is not None:
            old = session.channel
            assert isinstance(old, Channel)
            logger.info("session_taken_over client=%s", client_uuid)
            # MQTT-3.1.4-3 (v5: DISCONNECT 0x8E). The old connection's will follows the usual rules.
            old.close(ReasonCode.SESSION_TAKEN_OVER, "taken_over")
            session = self.sessions.get(client_uuid)
        if session is not None:
            if session.expiry_timer is not None:
                session.expiry_timer.cancel()
                session.expiry_timer = None
            if clean_start or session.tenant_id != channel.tenant_id:
                self.end_session(session)
                session = None
            elif session.will_timer is not None:
                # The client is back before its will delay ran out: no will (MQTT 5 §3.1.3.2.2).
                session.will_timer.cancel()
                session.will_timer = None
                session.pending_will = None
        present = session is not None
        if session is not None:
            # The live session is the truth while connected: drop the stored copy, if it has one.
            self._forget_stored(session)
        if session is None:
            settings = self.settings
            session = Session(
                client_uuid,
                channel.tenant_id,
                window=window,
                max_queued=settings.max_queued_messages,
                overflow_policy=settings.overflow_policy,
                queue_qos0_offline=settings.queue_qos0_offline,
            )
            self.sessions[client_uuid] = session
        session.expiry_interval = expiry_interval
        self.channels[client_uuid] = channel
        return session, present

    def session_detached(
        self, session: Session, will: Message | None, will_delay: int, will_expiry: int | None
    ) -> None:
        """The session's connection closed: arm the will, then end or park the session."""
        if will is not None:
            if will_delay > 0 and session.expiry_interval > 0:
                session.pending_will = will
                delay = min(will_delay, session.expiry_interval)
                session.will_timer = self.wheel.schedule(delay, lambda: self._fire_pending_will(session))
                session.pending_will_expiry = will_expiry
            else:
                self.publish_will(will, will_expiry)
        if session.expiry_interval == 0:
            self.end_session(session)
        else:
            session.expiry_timer = self.wheel.schedule(session.expiry_interval, lambda: self._expire(session))
            if self.session_store is not None:
                self.session_store.save(snapshot(session))
                session.persist = self._persist_offline

    def _fire_pending_will(self, session: Session) -> None:
        will = session.pending_will
        session.pending_will = None
        session.will_timer = None
        if will is not None:
            self.publish_will(will, session.pending_will_expiry)

    def _expire(self, session: Session) -> None:
        if session.channel is None and self.sessions.get(session.client_uuid) is session:
            logger.info("session_expired client=%s", session.client_uuid)
            self.end_session(session)

    def end_session(self, session: Session) -> None:
        """Discard a session: its subscriptions, queue, window; a pending will goes out now."""
        if self.sessions.get(session.client_uuid) is session:
            del self.sessions[session.client_uuid]
            self._forget_stored(session)
        session.persist = None
        for subscription in session.subscriptions.values():
            self.router.unsubscribe(
                session.tenant_id, session.client_uuid, subscription.topic_filter, subscription.share_group
            )
        if session.expiry_timer is not None:
            session.expiry_timer.cancel()
            session.expiry_timer = None
        if session.will_timer is not None:
            session.will_timer.cancel()
            session.will_timer = None
            self._fire_pending_will(session)
        session.clear()

    def channel_closed(self, channel: Channel) -> None:
        if self.channels.get(channel.client_uuid) is channel:
            del self.channels[channel.client_uuid]

    # ---- durable sessions (SessionStore) ---------------------------------------------------------

    def _forget_stored(self, session: Session) -> None:
        """Delete the session's stored copy. Only an offline session has one: `persist` is set exactly
        when it is saved (`session_detached`) or restored, so clean sessions never reach the store and
        a connect/disconnect cycle costs the store nothing."""
        if session.persist is not None:
            session.persist = None
            if self.session_store is not None:
                self.session_store.delete(session.client_uuid)

    def _persist_offline(self, session: Session, item: Queued) -> None:
        store = self.session_store
        if store is None:
            return
        barrier = self.barrier
        store.append(session.client_uuid, stored_message(item, None), barrier.hold() if barrier else None)

    def _restore_sessions(self, store: SessionStore) -> None:
        """Rebuild the offline persistent sessions a previous run saved (subscriptions, window, queue)."""
        settings = self.settings
        now = time.time()
        for stored in store.load_all():
            client = self.directory.get_client(stored.client_uuid)
            remaining = stored.expiry_interval - (now - stored.disconnected_at)
            if client is None or client.tenant_id != stored.tenant_id or remaining <= 0:
                store.delete(stored.client_uuid)
                continue
            session = restore_session(stored, settings)
            for subscription in session.subscriptions.values():
                self.router.subscribe(stored.tenant_id, subscription)
            session.persist = self._persist_offline
            session.expiry_timer = self.wheel.schedule(remaining, functools.partial(self._expire, session))
            self.sessions[session.client_uuid] = session
        if self.sessions:
            logger.info("sessions_restored count=%d", len(self.sessions))

    # ---- publishing ------------------------------------------------------------------------------

    def publish(self, message: Message, channel: Channel | None) -> int:
        """Hooks, retain, dispatch; returns sessions handed the message, -1 if a hook consumed it."""
        hooks = self.hooks
        if hooks.has(HookPoint.MESSAGE_PUBLISH):
            result = hooks.run_fold(HookPoint.MESSAGE_PUBLISH, message, channel)
            if result is None:
                return -1
            message = result
        self.counters.messages_published += 1
        if message.retain:
            self.retain.store(message)
        return self.dispatch(message)

    def dispatch(self, message: Message) -> int:
        buckets = self.router.match(message.tenant_id, message.topic)
        if not buckets:
            return 0
        publisher = message.publisher_uuid
        message_qos = message.qos
        message_retain = message.retain
        count = 0
        if len(buckets) == 1:
            bucket = buckets[0]
            for subscription in list(bucket.subscribers.values()):
                session = subscription.session
                if subscription.no_local and session.client_uuid == publisher:
                    continue
                identifier = subscription.subscription_identifier
                if session.deliver(
                    message,
                    message_qos if message_qos < subscription.qos else subscription.qos,
                    message_retain and subscription.retain_as_published,
                    (identifier,) if identifier else None,
                ):
                    count += 1
            if bucket.groups:
                count += self._deliver_shared(bucket, message)
            self.counters.messages_delivered += count
            return count
        merged: dict[str, tuple[Session, int, bool, list[int]]] = {}
        for bucket in buckets:
            for client_uuid, subscription in bucket.subscribers.items():
                if subscription.no_local and client_uuid == publisher:
                    continue
                entry = merged.get(client_uuid)
                identifiers = (
                    [subscription.subscription_identifier] if subscription.subscription_identifier else []
                )
                if entry is None:
                    merged[client_uuid] = (
                        subscription.session,
                        subscription.qos,
                        subscription.retain_as_published,
                        identifiers,
                    )
                else:
                    merged[client_uuid] = (
                        entry[0],
                        max(entry[1], subscription.qos),
                        entry[2] or subscription.retain_as_published,
                        entry[3] + identifiers,
                    )
            if bucket.groups:
                count += self._deliver_shared(bucket, message)
        for session, qos, retain_as_published, identifiers in merged.values():
            if session.deliver(
                message,
                min(message_qos, qos),
                message_retain and retain_as_published,
                tuple(identifiers) if identifiers else None,
            ):
                count += 1
        self.counters.messages_delivered += count
        return count

    def _deliver_shared(self, bucket: FilterBucket, message: Message) -> int:
        count = 0
        for group in bucket.groups.values():
            subscription: Subscription | None = group.pick()
            if subscription is None:
                continue
            identifier = subscription.subscription_identifier
            # Shared subscribers never get RETAIN from normal delivery (MQTT-3.3.1-9 analogue).
            if subscription.session.deliver(
                message,
                min(message.qos, subscription.qos),
                message.retain and subscription.retain_as_published,
                (identifier,) if identifier else None,
            ):
                count += 1
        return count

    def publish_will(self, will: Message, expiry: int | None) -> None:
        """A will is an application publish of its client: charged, then routed like any publish."""
        if expiry is not None:
            will.expires_at = time.monotonic() + expiry
        charged = will.topic.startswith("instamsg/") is False
        if charged and not self.directory.charge_tenant(will.tenant_id):
            self.counters.publishes_over_quota += 1
            logger.warning("will_dropped_quota tenant=%s client=%s", will.tenant_id, will.publisher_uuid)
            return
        self.counters.wills_published += 1
        logger.info("will_published client=%s tenant=%s", will.publisher_uuid, will.tenant_id)
        self.publish(will, None)

    def deliver(
        self,
        tenant_id: str,
        publisher_uuid: str | None,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool = False,
        dup: bool = False,
        properties: Properties | None = None,
    ) -> int:
        """Route a message for the control plane as if `publisher_uuid` had published it.

        Call it on the event loop's thread (it is synchronous and touches connection state). No ACL and
        no quota here: the calling service decides and charges (`Directory.charge_tenant`).
        An inbox topic must name a client of the same tenant. `dup` sets DUP on the first transmission
        of QoS 1/2 deliveries (REST `duplicate`, spec §2.5.5), never at QoS 0. Returns how many
        sessions the message was handed to.
        """
        if is_uuid(topic):
            topic = topic.lower()
            peer = self.directory.get_client(topic)
            if peer is None or peer.tenant_id != tenant_id:
                return 0
        expires_at: float | None = None
        if properties and properties.get("message_expiry_interval") is not None:
            expires_at = time.monotonic() + int(properties["message_expiry_interval"])
        message = Message(
            tenant_id,
            topic,
            bytes(payload),
            max(0, min(qos, 2)),
            retain,
            publisher_uuid,
            forwarded_properties(properties) if properties else None,
            expires_at,
        )
        if dup:
            message.dup = True
        if publisher_uuid is not None:
            meter = self.meters.client(publisher_uuid)
            meter[0] += 1
            meter[1] += len(payload)
        tenant_meter = self.meters.tenant(tenant_id)
        tenant_meter[0] += 1
        tenant_meter[1] += len(payload)
        return max(self.publish(message, None), 0)

    # ---- observability ---------------------------------------------------------------------------

    def is_connected(self, client_uuid: str) -> bool:
        """Whether the client has an authenticated connection now (spec §1.4 state `online`)."""
        return client_uuid.lower() in self.channels

    def take_meter_deltas(self) -> MeterDeltas:
        """Per-client and per-tenant messages/bytes in/out since the previous call (then reset)."""
        return self.meters.take_deltas()

    def statistics(self) -> NodeStatistics:
        sessions = self.sessions.values()
        return NodeStatistics(
            connections=len(self.connections),
            clients_connected=len(self.channels),
            sessions=len(self.sessions),
            subscriptions=self.router.subscription_count(),
            retained_messages=self.retain.count(),
            queued_messages=sum(len(session.queue) for session in sessions),
            inflight_messages=sum(len(session.inflight) for session in sessions),
            dropped_queue_overflow=sum(session.dropped_overflow for session in sessions),
            dropped_offline_qos0=sum(session.dropped_offline_qos0 for session in sessions),
            dropped_expired=sum(session.dropped_expired for session in sessions),
            counters=self.counters.as_dict(),
        )

    def throttled_warning(self, key: Any, message: str, *args: Any) -> None:
        """Log a warning at most once per `log_throttle_seconds` per key (EMQX's log throttler)."""
        now = time.monotonic()
        last = self._warned.get(key)
        if last is not None and now - last < self.settings.log_throttle_seconds:
            return
        if len(self._warned) > 10_000:
            self._warned.clear()
        self._warned[key] = now
        logger.warning(message, *args)

    # ---- directory changes (spec C24) ------------------------------------------------------------

    def on_client_changed(self, old: ClientRecord, new: ClientRecord) -> None:
        channel = self.channels.get(new.uuid)
        if new.blocked or new.tenant_id != old.tenant_id:
            if channel is not None and channel.state == CONNECTED:
                channel.close(ReasonCode.NOT_AUTHORIZED, "client_blocked", publish_will=False)
            if new.tenant_id != old.tenant_id:
                session = self.sessions.get(new.uuid)
                if session is not None:
                    self.end_session(session)
            return
        if old.pub_topics == new.pub_topics and old.sub_topics == new.sub_topics:
            if channel is not None:
                channel.client = new
            return
        if channel is not None:
            channel.client_changed(new)
            return
        session = self.sessions.get(new.uuid)
        if session is not None:
            for key, subscription in list(session.subscriptions.items()):
                if not access.may_subscribe(new, subscription.topic_filter):
                    del session.subscriptions[key]
                    self.router.unsubscribe(
                        session.tenant_id,
                        session.client_uuid,
                        subscription.topic_filter,
                        subscription.share_group,
                    )

    def on_client_removed(self, record: ClientRecord) -> None:
        channel = self.channels.get(record.uuid)
        if channel is not None:
            channel.close(ReasonCode.NOT_AUTHORIZED, "client_removed", publish_will=False)
        session = self.sessions.get(record.uuid)
        if session is not None:
            session.pending_will = None
            self.end_session(session)

    def on_tenant_changed(self, record: TenantRecord) -> None:
        if record.active:
            return
        for channel in [channel for channel in self.channels.values() if channel.tenant_id == record.id]:
            channel.close(ReasonCode.NOT_AUTHORIZED, "tenant_inactive", publish_will=False)

    def on_tenant_removed(self, tenant_id: str) -> None:
        for channel in [channel for channel in self.channels.values() if channel.tenant_id == tenant_id]:
            channel.close(ReasonCode.NOT_AUTHORIZED, "tenant_removed", publish_will=False)
        for session in [session for session in self.sessions.values() if session.tenant_id == tenant_id]:
            session.pending_will = None
            self.end_session(session)
        self.router.remove_tenant(tenant_id)
        self.retain.remove_tenant(tenant_id)
