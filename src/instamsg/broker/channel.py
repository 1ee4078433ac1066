"""Per-connection MQTT state (EMQX's channel): lifecycle, dispatch, authorisation, outbound writes.

Everything is synchronous: a packet arrives from `Connection.data_received`, `handle_packet` passes it
to its family's handler in `handlers/` (Mosquitto's handle_*.c), and any reply is appended to the
connection's coalesced write list. Codec and protocol errors become MQTT 5 reason codes in one place
(`on_malformed`, `protocol_error`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Final

from instamsg.broker import access
from instamsg.broker.handlers import acks, connect, disconnect, publish, subscribe
from instamsg.broker.hooks import HookPoint
from instamsg.broker.message import Message
from instamsg.broker.metrics import NO_METER
from instamsg.broker.profiles import STANDARD, ConnectionProfile
from instamsg.broker.session import Session
from instamsg.broker.states import CLOSED, CONNECTED, CONNECTING
from instamsg.mqtt.encoder import encode
from instamsg.mqtt.errors import MalformedPacket, UnsupportedProtocol
from instamsg.mqtt.packets import (
    MQTT_3_1_1,
    MQTT_5,
    Auth,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Properties,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscribe,
    Unsubscribe,
)
from instamsg.mqtt.reason_codes import ReasonCode

if TYPE_CHECKING:
    from instamsg.broker.connection import Connection
    from instamsg.broker.node import BrokerNode
    from instamsg.broker.ports import ClientRecord
    from instamsg.broker.timers import Timer

logger = logging.getLogger(__name__)


_PINGRESP: Final = b"\xd0\x00"


class Channel:
    __slots__ = (
        "access_cache",
        "alias_maximum_out",
        "aliases_in",
        "aliases_out",
        "client",
        "client_id",
        "client_max_packet_size",
        "client_uuid",
        "connection",
        "disconnect_reason",
        "keepalive_timeout",
        "keepalive_timer",
        "last_seen",
        "meter",
        "node",
        "pending_acks",
        "profile",
        "protocol_level",
        "publish_will_on_close",
        "session",
        "session_expiry_at_connect",
        "state",
        "tenant_id",
        "tenant_meter",
        "will",
        "will_delay",
        "will_expiry",
    )

    def __init__(self, node: BrokerNode, connection: Connection) -> None:
        self.node = node
        self.connection = connection
        self.state = CONNECTING
        self.protocol_level = MQTT_3_1_1
        self.profile: ConnectionProfile = STANDARD
        self.client: ClientRecord | None = None
        self.client_uuid = ""
        self.client_id = ""
        self.tenant_id = ""
        self.session: Session | None = None
        self.last_seen = time.monotonic()
        self.keepalive_timeout = 0.0
        self.keepalive_timer: Timer | None = None
        self.will: Message | None = None
        self.will_delay = 0
        self.will_expiry: int | None = None
        self.publish_will_on_close = True
        self.access_cache = access.AccessCache()
        # MQTT 5 topic aliases (in: the client's, out: ours); created on first use, like pending_acks:
        # most connections never need them, and an idle connection should cost little memory.
        self.aliases_in: dict[int, str] | None = None
        self.aliases_out: dict[str, int] | None = None
        self.alias_maximum_out = 0  # the client's Topic Alias Maximum: aliases we may use towards it
        self.client_max_packet_size = 0  # 0: no limit announced by the client
        self.session_expiry_at_connect = 0
        self.disconnect_reason = ""
        # Acknowledgements waiting for a durable write ahead of them, in PUBLISH order (MQTT-4.6.0-2).
        self.pending_acks: deque[list[bytes]] | None = None
        # The client's meter row is created on its first message (`own_meter`): idle clients hold none.
        self.meter: list[int] = NO_METER
        self.tenant_meter: list[int] = NO_METER

    # ---- lifecycle -------------------------------------------------------------------------------

    @property
    def writable(self) -> bool:
        return self.connection.writable

    def on_open(self) -> None:
        # A socket that never sends CONNECT must not hold a slot for ever.
        self.keepalive_timer = self.node.wheel.schedule_call(
            self.node.settings.connect_timeout, Channel._connect_timeout, self
        )

    def arm_keepalive(self, delay: float) -> None:
        # The plain function and the channel, not a bound method: one object less per connection.
        self.keepalive_timer = self.node.wheel.schedule_call(delay, Channel._keepalive_check, self)

    def touch(self) -> None:
        self.last_seen = time.monotonic()

    def _connect_timeout(self) -> None:
        if self.state == CONNECTING:
            logger.info("connect_timeout peer=%s", self.connection.peer)
            self.close(None, "connect_timeout")

    def _keepalive_check(self) -> None:
        if self.state != CONNECTED:
            return
        idle = time.monotonic() - self.last_seen
        if idle >= self.keepalive_timeout:
            logger.info("keepalive_timeout client=%s idle=%.1f", self.client_uuid, idle)
            self.close(ReasonCode.KEEP_ALIVE_TIMEOUT, "keepalive_timeout")
            return
        self.arm_keepalive(self.keepalive_timeout - idle)

    def close(self, reason_code: int | None, reason: str, *, publish_will: bool = True) -> None:
        """Close this connection (MQTT 5: DISCONNECT with `reason_code` first, if connected)."""
        if self.state == CLOSED:
            return
        if reason_code is not None and self.protocol_level == MQTT_5 and self.state == CONNECTED:
            self.connection.write(encode(Disconnect(reason_code=reason_code), MQTT_5))
        if not publish_will:
            self.publish_will_on_close = False
        self.disconnect_reason = reason
        self._finish()
        self.connection.close()

    def on_connection_lost(self) -> None:
        if self.state != CLOSED:
            self.disconnect_reason = self.disconnect_reason or "connection_lost"
            self._finish()

    def _finish(self) -> None:
        """Leave the session (or end it) and publish the will; runs once per connection."""
        was_connected = self.state == CONNECTED
        self.state = CLOSED
        if self.keepalive_timer is not None:
            self.keepalive_timer.cancel()
            self.keepalive_timer = None
        if not was_connected:
            return
        session = self.session
        if session is not None and session.channel is self:
            session.detach()
            will = self.will if self.publish_will_on_close else None
            self.node.session_detached(session, will, self.will_delay, self.will_expiry)
        self.node.channel_closed(self)
        if self.node.hooks.has(HookPoint.CLIENT_DISCONNECTED):
            self.node.hooks.run(HookPoint.CLIENT_DISCONNECTED, self, self.disconnect_reason)

    def on_unsupported_protocol(self, error: UnsupportedProtocol) -> None:
        logger.info(
            "unsupported_protocol peer=%s name=%s level=%s",
            self.connection.peer,
            error.protocol_name,
            error.protocol_level,
        )
        # MQTT-3.1.2-2 (3.1.1) / MQTT 5 §3.1.2.2: return code 1 in the layout every level can read.
        self.connection.write(b"\x20\x02\x00\x01")
        self.close(None, "unsupported_protocol")

    def on_malformed(self, error: MalformedPacket) -> None:
        self.node.throttled_warning(
            ("malformed", self.client_uuid or self.connection.peer),
            "malformed_packet client=%s peer=%s reason=%s code=0x%02X",
            self.client_uuid or "-",
            self.connection.peer,
            str(error),
            error.reason_code,
        )
        self.node.counters.malformed += 1
        self.close(error.reason_code, "malformed_packet")

    def protocol_error(self, reason: str, reason_code: int = ReasonCode.PROTOCOL_ERROR) -> None:
        self.node.counters.protocol_errors += 1
        logger.info(
            "protocol_error client=%s reason=%s code=0x%02X", self.client_uuid or "-", reason, reason_code
        )
        self.close(reason_code, reason)

    def on_writable(self) -> None:
        if self.session is not None and self.session.channel is self:
            self.session.pump()

    # ---- dispatch --------------------------------------------------------------------------------

    def handle_packet(self, packet: Packet) -> None:
        if self.state == CONNECTED:
            kind = type(packet)
            if kind is Publish:
                publish.handle_publish(self, packet)  # type: ignore[arg-type]
            elif kind is Puback:
                acks.handle_puback(self, packet)  # type: ignore[arg-type]
            elif kind is Pubrec:
                acks.handle_pubrec(self, packet)  # type: ignore[arg-type]
            elif kind is Pubrel:
                publish.handle_pubrel(self, packet)  # type: ignore[arg-type]
            elif kind is Pubcomp:
                acks.handle_pubcomp(self, packet)  # type: ignore[arg-type]
            elif kind is Pingreq:
                self.connection.write(_PINGRESP)  # spec §3.5: answer at once
            elif kind is Subscribe:
                subscribe.handle_subscribe(self, packet)  # type: ignore[arg-type]
            elif kind is Unsubscribe:
                subscribe.handle_unsubscribe(self, packet)  # type: ignore[arg-type]
            elif kind is Disconnect:
                disconnect.handle_disconnect(self, packet)  # type: ignore[arg-type]
            elif kind is Connect:
                self.protocol_error("second_connect")  # MQTT-3.1.0-2
            elif kind is Auth:
                # No enhanced authentication method is offered, so AUTH is never expected (MQTT-4.12.0-1).
                self.protocol_error("unexpected_auth")
            else:
                self.protocol_error("unexpected_packet")
        elif self.state == CONNECTING:
            if type(packet) is Connect:
                connect.handle_connect(self, packet)
            else:
                self.protocol_error("first_packet_not_connect")  # MQTT-3.1.0-1

    # ---- authorisation ---------------------------------------------------------------------------

    def authorize(self, action: str, topic: str) -> bool:
        """ACL decision for this client, cached per (action, topic); hooks may override (fail-closed)."""
        cache = self.access_cache
        allowed = cache.get(action, topic)
        if allowed is not None:
            return allowed
        client = self.client
        if client is None:
            return False
        allowed = (
            access.may_publish(client, topic)
            if action == access.PUBLISH
            else access.may_subscribe(client, topic)
        )
        hooks = self.node.hooks
        if hooks.has(HookPoint.CLIENT_AUTHORIZE):
            allowed = bool(
                hooks.run_fold(HookPoint.CLIENT_AUTHORIZE, allowed, self, action, topic, on_error=False)
            )
        cache.put(action, topic, allowed)
        return allowed

    # ---- outbound (the session's Outbound protocol) ----------------------------------------------

    def send_publish(
        self,
        message: Message,
        qos: int,
        retain: bool,
        packet_id: int | None,
        dup: bool,
        subscription_identifiers: tuple[int, ...] | None,
    ) -> bool:
        level = self.protocol_level
        extra: Properties | None = None
        if subscription_identifiers and level == MQTT_5:
            extra = {"subscription_identifier": list(subscription_identifiers)}
        if self.alias_maximum_out:
            frame = self._aliased_frame(message, qos, retain, packet_id, dup, extra)
        else:
            frame = message.frame(level, qos, retain, packet_id, dup, extra)
        if self.client_max_packet_size and len(frame) > self.client_max_packet_size:
            # MQTT-3.1.2-25: never send more than the client accepts; the message is discarded for it.
            self.node.counters.dropped_too_large += 1
            return False
        self.connection.write(frame)
        payload_size = len(message.payload)
        meter = self.meter
        if meter is NO_METER:
            meter = self.own_meter()
        meter[2] += 1
        meter[3] += payload_size
        tenant_meter = self.tenant_meter
        tenant_meter[2] += 1
        tenant_meter[3] += payload_size
        if self.node.hooks.has(HookPoint.MESSAGE_DELIVERED):
            self.node.hooks.run(HookPoint.MESSAGE_DELIVERED, self.client_uuid, message)
        return True

    def _aliased_frame(
        self,
        message: Message,
        qos: int,
        retain: bool,
        packet_id: int | None,
        dup: bool,
        extra: Properties | None,
    ) -> bytes:
        """MQTT 5 topic aliases towards the client: the first topics sent get an alias (first come,
        first served up to the client's maximum); later sends of them carry an empty topic name."""
        topic = message.topic
        aliases = self.aliases_out
        if aliases is None:
            aliases = self.aliases_out = {}
        alias = aliases.get(topic)
        properties: Properties = dict(extra) if extra else {}  # type: ignore[assignment]
        if alias is not None:
            properties["topic_alias"] = alias
            topic = ""
        elif len(aliases) < self.alias_maximum_out:
            alias = aliases[topic] = len(aliases) + 1
            properties["topic_alias"] = alias
        else:
            return message.frame(MQTT_5, qos, retain, packet_id, dup, extra)
        return message.frame_with_topic(MQTT_5, topic, qos, retain, packet_id, dup, properties)

    def own_meter(self) -> list[int]:
        """The client's meter row, made on the connection's first message in or out."""
        meter = self.meter = self.node.meters.client(self.client_uuid)
        return meter

    def send_pubrel(self, packet_id: int) -> None:
        self.connection.write(acks.ack_frame(0x62, packet_id, 0, self.protocol_level))

    # ---- directory changes -----------------------------------------------------------------------

    def client_changed(self, record: ClientRecord) -> None:
        """New topic lists: forget cached decisions, drop subscriptions no longer allowed."""
        self.client = record
        self.access_cache.clear()
        session = self.session
        if session is None:
            return
        for key, subscription in list(session.subscriptions.items()):
            if not self.authorize(access.SUBSCRIBE, subscription.topic_filter):
                del session.subscriptions[key]
                self.node.router.unsubscribe(
                    self.tenant_id, self.client_uuid, subscription.topic_filter, subscription.share_group
                )
                logger.info("subscription_revoked client=%s filter=%s", self.client_uuid, key)
