"""Client activity on the broker: session records, client log entries and activity metering.

Hooks (all synchronous, append-only: nothing awaits the database here):
- `client.profile` (last) notes the CONNECT's keep-alive, clean-session flag and raw identifier;
- `client.connected` opens a session record, logs the connect and stamps the client's connect time;
- `client.disconnected` closes it with a reason of spec §2.4.5 and logs it (§9.3, §3.2);
- `client.refused`, `message.denied`, `session.subscribe_denied` write the WARN entries of §4.2, §6.3, §6.4;
- `message.publish` (first) counts p2p messages, sent and received, for getClientMetrics (§2.4.7).

Device→server topics: `logs` (§9.2), `notifications` (§5.1 step 4), `session` (§11.4), `media` (§12.6).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

from instamsg.broker.hooks import HookPoint, Priority
from instamsg.broker.router import is_uuid
from instamsg.domain.clock import utc_now
from instamsg.mqtt.packets import MQTT_3_1, MQTT_5, Connect
from instamsg.mqtt.reason_codes import ReasonCode
from instamsg.protocol.payloads import normalise_device_report, parse_lenient, parse_log_line
from instamsg.protocol.ports import CREATOR_CLIENT, ClientLog
from instamsg.protocol.topics import SpecialTopic, TopicKind

if TYPE_CHECKING:
    from instamsg.broker.channel import Channel
    from instamsg.broker.message import Message
    from instamsg.broker.ports import ClientRecord
    from instamsg.broker.profiles import ConnectionProfile
    from instamsg.protocol.plugin import DeviceProtocol

logger = logging.getLogger(__name__)

TRANSPORTS: Final = {"mqtt": "tcp", "mqtts": "tls", "ws": "ws", "wss": "wss"}
PROTOCOLS: Final = {MQTT_3_1: "MQIsdp/3", 4: "MQTT/4", MQTT_5: "MQTT/5"}

CLIENT_DISCONNECT: Final = "client_disconnect"
CONNECTION_LOST: Final = "connection_lost"
KEEPALIVE_TIMEOUT: Final = "keepalive_timeout"
TAKEN_OVER: Final = "taken_over"
PROTOCOL_ERROR: Final = "protocol_error"
KICKED: Final = "kicked"
SERVER_SHUTDOWN: Final = "server_shutdown"

# The broker's reasons (`Channel.close` callers) → spec §2.4.5. The MQTT rules `Channel.protocol_error`
# and `on_malformed` enforce are protocol errors; any other reason is the server closing the connection
# on purpose (blocked, deleted, credentials reset...), which is `kicked`.
_REASONS: Final = {
    "client_disconnect": CLIENT_DISCONNECT,
    "connection_lost": CONNECTION_LOST,
    "keepalive_timeout": KEEPALIVE_TIMEOUT,
    "taken_over": TAKEN_OVER,
    "server_shutdown": SERVER_SHUTDOWN,
    **dict.fromkeys(
        (
            "malformed_packet",
            "second_connect",
            "unexpected_auth",
            "unexpected_packet",
            "first_packet_not_connect",
            "qos_not_supported",
            "topic_alias_invalid",
            "topic_alias_unknown",
            "topic_empty",
            "topic_name_invalid",
            "receive_maximum_exceeded",
            "session_expiry_after_zero",
            "no_local_on_shared_subscription",
        ),
        PROTOCOL_ERROR,
    ),
}

# Indexes into a meter row; the order of `traffic.ACTIVITY_COUNTERS`.
P2P_SENT, P2P_RECEIVED, CONNECTS, DISCONNECTS, ONLINE_SECONDS, ERRORS = range(6)
MEDIA_LOG_TEXT_LIMIT: Final = 200


def disconnect_reason(broker_reason: str) -> str:
    """The spec's `disconnect_reason` for a reason string of the broker."""
    return _REASONS.get(broker_reason, KICKED)


class ActivityRecorder(Protocol):
    """Where the records go (implemented by `instamsg.store.activity.ActivityWriter`)."""

    def open_session(self, row: dict[str, Any]) -> str:
        """Record a new session row (without `id`); returns the id given to it."""
        ...

    def update_session(self, client_id: str, session_id: str, values: dict[str, Any]) -> None: ...

    def update_client(self, client_id: str, values: dict[str, Any]) -> None: ...

    def set_device_state(self, client_id: str, values: dict[str, Any]) -> None: ...


HourlyCounts = dict[tuple[str, datetime], list[int]]


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


class ActivityMeters:
    """Per-client, per-UTC-hour activity counters, drained by the platform's meter flush."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: HourlyCounts = {}

    def add(self, client_id: str, hour_start: datetime, index: int, amount: int = 1) -> None:
        row = self._counts.get((client_id, hour_start))
        if row is None:
            row = self._counts[client_id, hour_start] = [0, 0, 0, 0, 0, 0]
        row[index] += amount

    def add_online(self, client_id: str, connected_at: datetime, disconnected_at: datetime) -> int:
        """Spread the whole seconds of a connection over the hours it covered; returns the total."""
        total = max(0, round((disconnected_at - connected_at).total_seconds()))
        remaining = total
        start = connected_at
        while remaining > 0:
            hour = hour_of(start)
            boundary = hour + timedelta(hours=1)
            if boundary >= disconnected_at:
                share = remaining
            else:
                share = min(remaining, int((boundary - start).total_seconds()))
            if share:
                self.add(client_id, hour, ONLINE_SECONDS, share)
            remaining -= share
            start = boundary
        return total

    def take(self) -> HourlyCounts:
        counts, self._counts = self._counts, {}
        return counts

    def restore(self, counts: HourlyCounts) -> None:
        """Put back counters a failed flush could not write."""
        for (client_id, hour_start), row in counts.items():
            for index, amount in enumerate(row):
                if amount:
                    self.add(client_id, hour_start, index, amount)


@dataclass(slots=True)
class _ConnectDetails:
    keep_alive: int
    clean_session: bool
    client_identifier: str


@dataclass(slots=True)
class OpenSession:
    id: str
    client_id: str
    tenant_id: str
    connected_at: datetime


class ClientActivity:
    def __init__(
        self,
        devices: DeviceProtocol,
        recorder: ActivityRecorder,
        log: ClientLog,
        meters: ActivityMeters | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        answer_media_offers: bool = True,
    ) -> None:
        self.devices = devices
        self.node = devices.node
        self.recorder = recorder
        self.log = log
        self.meters = meters if meters is not None else ActivityMeters()
        self.clock = clock
        self.answer_media_offers = answer_media_offers
        self._connecting: dict[Channel, _ConnectDetails] = {}
        self.open_sessions: dict[Channel, OpenSession] = {}

    def install(self) -> None:
        hooks = self.node.hooks
        hooks.add(HookPoint.CLIENT_PROFILE, self._note_connect, Priority.LAST)
        hooks.add(HookPoint.CLIENT_CONNECTED, self._connected, Priority.HIGH)
        hooks.add(HookPoint.CLIENT_DISCONNECTED, self._disconnected, Priority.HIGH)
        hooks.add(HookPoint.CLIENT_REFUSED, self._refused)
        hooks.add(HookPoint.MESSAGE_DENIED, self._denied)
        hooks.add(HookPoint.SESSION_SUBSCRIBE_DENIED, self._subscribe_denied)
        hooks.add(HookPoint.MESSAGE_PUBLISH, self._count_p2p, Priority.FIRST)
        self.devices.on_device_message(TopicKind.LOGS, self._log_line)
        self.devices.on_device_message(TopicKind.NOTIFICATIONS, self._notification)
        self.devices.on_device_message(TopicKind.SESSION, self._session_payload)
        self.devices.on_device_message(TopicKind.MEDIA, self._media)

    # ---- connection lifecycle ----------------------------------------------------------------------

    def _note_connect(
        self, channel: Channel, connect: Connect, client: ClientRecord, profile: ConnectionProfile
    ) -> None:
        # Runs after authentication; every later outcome is `client.connected` or `client.refused`.
        self._connecting[channel] = _ConnectDetails(
            connect.keep_alive, connect.clean_start, connect.client_id
        )

    def _connected(self, channel: Channel) -> None:
        details = self._connecting.pop(channel, None)
        if details is None:
            details = _ConnectDetails(0, True, channel.client_id)
        now = self.clock()
        client_id = channel.client_uuid
        tenant_id = channel.tenant_id
        connection = channel.connection
        transport = TRANSPORTS.get(connection.listener, connection.listener)
        remote_address = connection.peer
        profile = channel.profile.name
        session_id = self.recorder.open_session(
            {
                "client_id": client_id,
                "tenant_id": tenant_id,
                "connect_time": now,
                "disconnect_time": None,
                "transport": transport,
                "remote_address": remote_address[:64],
                "protocol": PROTOCOLS.get(channel.protocol_level, f"MQTT/{channel.protocol_level}"),
                "profile": profile[:16],
                "client_identifier": details.client_identifier,
                "keep_alive": details.keep_alive,
                "clean_session": details.clean_session,
                "disconnect_reason": None,
                "data": None,
            }
        )
        self.open_sessions[channel] = OpenSession(session_id, client_id, tenant_id, now)
        self.recorder.update_client(client_id, {"last_connect_at": now, "profile": profile[:16]})
        self.log.write(
            client_id,
            tenant_id,
            "INFO",
            f"connect (transport {transport}, profile {profile}, remote address {remote_address})",
        )
        self.meters.add(client_id, hour_of(now), CONNECTS)

    def _disconnected(self, channel: Channel, broker_reason: str) -> None:
        session = self.open_sessions.pop(channel, None)
        if session is None:
            return
        now = self.clock()
        reason = disconnect_reason(broker_reason)
        client_id = session.client_id
        tenant_id = session.tenant_id
        self.recorder.update_session(
            client_id, session.id, {"disconnect_time": now, "disconnect_reason": reason}
        )
        self.recorder.update_client(client_id, {"last_disconnect_at": now})
        if reason == TAKEN_OVER:
            self.log.write(
                client_id, tenant_id, "INFO", "disconnect (taken_over: a new connection took over)"
            )
        else:
            self.log.write(client_id, tenant_id, "INFO", f"disconnect ({reason})")
        if reason == KEEPALIVE_TIMEOUT:
            self.log.write(client_id, tenant_id, "WARN", "keep-alive timeout")
        elif reason == PROTOCOL_ERROR:
            if broker_reason == "malformed_packet":
                self.log.write(client_id, tenant_id, "ERROR", "malformed packet")
            else:
                self.log.write(client_id, tenant_id, "ERROR", f"protocol violation ({broker_reason})")
        meters = self.meters
        hour = hour_of(now)
        meters.add(client_id, hour, DISCONNECTS)
        if reason == PROTOCOL_ERROR:
            meters.add(client_id, hour, ERRORS)
        meters.add_online(client_id, session.connected_at, now)

    def _refused(self, channel: Channel, reason_code: int, reason: str) -> None:
        self._connecting.pop(channel, None)
        client_id = channel.client_uuid
        if not client_id:
            return
        client = self.devices.directory.get_client(client_id)
        if client is None:
            return  # no resolved client: only the server log has it
        self.log.write(client.uuid, client.tenant_id, "WARN", f"connect refused ({reason})")

    # ---- refusals ----------------------------------------------------------------------------------

    def _denied(self, channel: Channel, topic: str, reason_code: int) -> None:
        # The subject comes after the words naming the kind: the log rate-limits the kind (§9.3),
        # so a device naming ever-new topics does not get ever-new entries.
        if reason_code == ReasonCode.QUOTA_EXCEEDED:
            message = "tenant message quota exceeded"
        elif reason_code == ReasonCode.TOPIC_NAME_INVALID:
            message = f"unknown_peer: {topic}"
        else:
            message = f"publish denied on {topic}"
        self.log.write(channel.client_uuid, channel.tenant_id, "WARN", message)

    def _subscribe_denied(self, channel: Channel, topic_filter: str) -> None:
        self.log.write(channel.client_uuid, channel.tenant_id, "WARN", f"subscribe denied on {topic_filter}")

    # ---- p2p metering ------------------------------------------------------------------------------

    def _count_p2p(self, channel: Channel | None, message: Message) -> None:
        # Counted once per accepted inbox publish (ACL, peer and quota checks passed), for the sender
        # and for the inbox owner, rather than per delivery: no cost on the delivery path.
        topic = message.topic
        if channel is not None and is_uuid(topic):
            hour = hour_of(self.clock())
            self.meters.add(channel.client_uuid, hour, P2P_SENT)
            self.meters.add(topic, hour, P2P_RECEIVED)

    # ---- device → server topics --------------------------------------------------------------------

    def _log_line(self, channel: Channel, special: SpecialTopic, message: Message) -> None:
        # Attributed to the publishing connection's client, whatever UUID the topic names (Q20).
        level, text = parse_log_line(message.payload)
        self.log.write(channel.client_uuid, channel.tenant_id, level, text, creator=CREATOR_CLIENT)

    def _notification(self, channel: Channel, special: SpecialTopic, message: Message) -> None:
        text = message.payload.decode("utf-8", "replace").strip()
        if text == "SECRET RECEIVED":
            self.log.write(channel.client_uuid, channel.tenant_id, "INFO", "SECRET RECEIVED")
        else:
            self.log.write(channel.client_uuid, channel.tenant_id, "INFO", f"notification: {text}")

    def _session_payload(self, channel: Channel, special: SpecialTopic, message: Message) -> None:
        data = normalise_device_report(parse_lenient(message.payload))
        session = self.open_sessions.get(channel)
        if session is not None:
            self.recorder.update_session(session.client_id, session.id, {"data": data})
        self.recorder.set_device_state(channel.client_uuid, {"session": data})

    def _media(self, channel: Channel, special: SpecialTopic, message: Message) -> None:
        text = message.payload.decode("utf-8", "replace")
        self.log.write(
            channel.client_uuid, channel.tenant_id, "DEBUG", f"media: {text[:MEDIA_LOG_TEXT_LIMIT]}"
        )
        if not self.answer_media_offers:
            return
        offer = parse_lenient(message.payload)
        stream_id = offer.get("stream_id")
        if "sdp_offer" in offer and stream_id is not None:
            # An empty answer stops the device's retries; RTP is not implemented (§12.6).
            answer = json.dumps({"stream_id": str(stream_id), "sdp_answer": ""}).encode()
            uuid = channel.client_uuid
            asyncio.get_running_loop().call_soon(self.devices.push, uuid, TopicKind.MEDIA_REPLY, answer, 1)


def install_activity(
    devices: DeviceProtocol,
    recorder: ActivityRecorder,
    log: ClientLog,
    meters: ActivityMeters | None = None,
) -> ClientActivity:
    """Register the activity hooks and handlers; `log` also becomes `devices.log` for other features."""
    devices.log = log
    activity = ClientActivity(devices, recorder, log, meters)
    activity.install()
    return activity
