"""CONNECT: protocol and hooks, identity and credentials, certificates, will, session, keep-alive, CONNACK."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from instamsg.broker import access
from instamsg.broker.directory import AuthOutcome
from instamsg.broker.handlers.subscribe import add_subscription
from instamsg.broker.hooks import HookPoint
from instamsg.broker.message import Message, forwarded_properties
from instamsg.broker.profiles import STANDARD, ConnectReply, Refusal
from instamsg.broker.router import Subscription, is_uuid
from instamsg.broker.states import CLOSED, CONNECTED
from instamsg.mqtt.encoder import encode
from instamsg.mqtt.errors import InvalidTopic
from instamsg.mqtt.packets import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Connect,
    Properties,
)
from instamsg.mqtt.reason_codes import ReasonCode
from instamsg.mqtt.topics import validate_topic_name

if TYPE_CHECKING:
    from instamsg.broker.channel import Channel

logger = logging.getLogger(__name__)

# CONNACK accepted at levels 3 and 4 (no properties), by (level, session present): encoded once.
_CONNACK_ACCEPTED_3: Final = {
    (level, present): encode(Connack(session_present=present, reason_code=0), level)
    for level in (MQTT_3_1, MQTT_3_1_1)
    for present in (False, True)
}


def refuse(channel: Channel, reason_code: int, reason: str) -> None:
    """CONNACK with a refusal (3.x return code or MQTT 5 reason), then close."""
    node = channel.node
    node.throttled_warning(
        ("connect_refused", channel.client_uuid or channel.connection.peer.rsplit(":", 1)[0], reason),
        "connect_refused peer=%s client=%s reason=%s code=0x%02X",
        channel.connection.peer,
        channel.client_uuid or "-",
        reason,
        reason_code,
    )
    node.counters.connects_refused += 1
    if node.hooks.has(HookPoint.CLIENT_REFUSED):
        node.hooks.run(HookPoint.CLIENT_REFUSED, channel, reason_code, reason)
    # The encoder maps MQTT 5 reasons to 3.x return codes and writes `20 02 00 rc` for level 3.
    channel.connection.write(encode(Connack(reason_code=reason_code), channel.protocol_level))
    channel.close(None, reason)


def handle_connect(channel: Channel, packet: Connect) -> None:
    """The CONNECT sequence of spec §4.2, ending in CONNACK and the session resumed or created."""
    node = channel.node
    settings = node.settings
    level = packet.protocol_level
    channel.protocol_level = level
    channel.client_id = packet.client_id
    channel.connection.decoder.protocol_level = level
    hooks = node.hooks

    if hooks.has(HookPoint.CLIENT_CONNECT):
        reply = hooks.run_fold(HookPoint.CLIENT_CONNECT, None, channel, packet)
        if isinstance(reply, ConnectReply):
            if reply.data:  # empty: the hook writes its answer later (e.g. after issuing a certificate)
                channel.connection.write(reply.data)
            if reply.close and reply.close_delay <= 0:
                channel.close(None, "connect_replied")
                return
            # The socket stays open but no further packet is handled; it is closed after the delay,
            # or (close=False) when the peer closes it, and at the latest after the CONNECT timeout.
            channel.state = CLOSED
            delay = reply.close_delay if reply.close else settings.connect_timeout
            node.wheel.schedule(delay, channel.connection.close)
            return
        if isinstance(reply, Refusal):
            refuse(channel, reply.reason_code, "refused_by_hook")
            return

    # Identity: a hook may resolve other credential layouts; the standard layout is username = UUID.
    client_uuid: str | None = None
    if hooks.has(HookPoint.CLIENT_AUTHENTICATE):
        resolved = hooks.run_fold(
            HookPoint.CLIENT_AUTHENTICATE,
            None,
            channel,
            packet,
            on_error=Refusal(ReasonCode.SERVER_UNAVAILABLE),
        )
        if isinstance(resolved, Refusal):
            refuse(channel, resolved.reason_code, "refused_by_hook")
            return
        if isinstance(resolved, str):
            client_uuid = resolved.lower()
    if client_uuid is None and packet.username is not None and is_uuid(packet.username):
        client_uuid = packet.username.lower()
    if client_uuid is None:
        refuse(channel, ReasonCode.BAD_USER_NAME_OR_PASSWORD, "unresolvable_identity")
        return
    channel.client_uuid = client_uuid
    outcome, client = node.directory.authenticate(client_uuid, packet.password)
    if client is None:
        refuse(channel, ReasonCode.BAD_USER_NAME_OR_PASSWORD, "bad_credentials")
        return
    if outcome is not AuthOutcome.ACCEPTED:
        refuse(channel, ReasonCode.NOT_AUTHORIZED, "blocked_or_tenant_inactive")
        return
    # The same value, held once: the directory's string serves every connection of this client.
    client_uuid = channel.client_uuid = client.uuid
    if channel.client_id == client_uuid:
        channel.client_id = client_uuid  # the identifier is usually the UUID: keep one string, not two
    # Certificates (spec §4.2 step 8, D11, S10).
    common_name = channel.connection.peer_common_name
    if common_name is not None and common_name.lower() != client_uuid:
        refuse(channel, ReasonCode.NOT_AUTHORIZED, "certificate_mismatch")
        return
    if client.secure_cert_enabled and channel.connection.listener == "mqtts" and common_name is None:
        refuse(channel, ReasonCode.NOT_AUTHORIZED, "certificate_missing")
        return
    if level == MQTT_3_1_1 and not packet.client_id and not packet.clean_start:
        refuse(channel, ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "empty_client_id_persistent")  # MQTT-3.1.3-8
        return
    channel.client = client
    channel.tenant_id = client.tenant_id

    profile = node.legacy_profile if level == MQTT_3_1 else STANDARD
    if hooks.has(HookPoint.CLIENT_PROFILE):
        profile = hooks.run_fold(HookPoint.CLIENT_PROFILE, profile, channel, packet, client)
    channel.profile = profile

    properties = packet.properties
    if level == MQTT_5 and "authentication_method" in properties:
        refuse(
            channel, ReasonCode.BAD_AUTHENTICATION_METHOD, "authentication_method_unsupported"
        )  # MQTT-4.12.0-1
        return
    # Will: its topic must pass the publish ACL (spec §3.6).
    will = packet.will
    if will is not None and profile.will_allowed:
        try:
            validate_topic_name(will.topic)
        except InvalidTopic:
            refuse(channel, ReasonCode.TOPIC_NAME_INVALID, "will_topic_invalid")
            return
        if will.qos > settings.max_qos:
            refuse(channel, ReasonCode.QOS_NOT_SUPPORTED, "will_qos_not_supported")
            return
        if not channel.authorize(access.PUBLISH, will.topic):
            refuse(channel, ReasonCode.NOT_AUTHORIZED, "will_topic_denied")
            return
        will_properties = will.properties
        expiry = will_properties.get("message_expiry_interval") if level == MQTT_5 else None
        channel.will = Message(
            client.tenant_id,
            will.topic.lower() if is_uuid(will.topic) else will.topic,
            will.payload,
            will.qos,
            will.retain and profile.retain_from_client,
            client_uuid,
            forwarded_properties(will_properties) if level == MQTT_5 else None,
            None,
        )
        channel.will_delay = int(will_properties.get("will_delay_interval", 0)) if level == MQTT_5 else 0
        # Relative: the node turns it into a deadline when the will is published (MQTT 5 §3.1.3.2.4).
        channel.will_expiry = None if expiry is None else int(expiry)

    # Session expiry (MQTT 5) or clean session (3.x).
    clean_start = packet.clean_start or not profile.persistent_sessions
    if level == MQTT_5:
        requested_expiry = int(properties.get("session_expiry_interval", 0))
        expiry_interval = min(requested_expiry, settings.max_session_expiry)
    else:
        requested_expiry = expiry_interval = 0 if clean_start else settings.persistent_session_expiry_v311
    if not profile.persistent_sessions:
        expiry_interval = 0  # announced in CONNACK below when the client asked for more
    channel.session_expiry_at_connect = expiry_interval

    # Keep-alive (spec §3.5); MQTT 5 may get a shorter Server Keep Alive.
    keep_alive = packet.keep_alive
    server_keep_alive: int | None = None
    if (
        level == MQTT_5
        and settings.max_keepalive
        and (keep_alive == 0 or keep_alive > settings.max_keepalive)
    ):
        keep_alive = server_keep_alive = settings.max_keepalive
    if keep_alive:
        channel.keepalive_timeout = max(1.5 * keep_alive, profile.keepalive_floor)
    if level == MQTT_5:
        channel.client_max_packet_size = int(properties.get("maximum_packet_size", 0))
        channel.alias_maximum_out = int(properties.get("topic_alias_maximum", 0))
        receive_maximum = int(properties.get("receive_maximum", 65535))
        window = min(settings.max_inflight, receive_maximum)
    else:
        window = settings.max_inflight

    session, session_present = node.open_session(channel, clean_start, expiry_interval, window)
    channel.session = session
    session.max_qos = min(profile.max_qos, settings.max_qos)
    channel.tenant_meter = node.meters.tenant(client.tenant_id)
    if channel.keepalive_timer is not None:
        channel.keepalive_timer.cancel()
        channel.keepalive_timer = None
    channel.state = CONNECTED
    channel.touch()
    if channel.keepalive_timeout:
        channel.arm_keepalive(channel.keepalive_timeout)

    connack_properties: Properties = {}
    if level == MQTT_5:
        connack_properties["receive_maximum"] = settings.max_inflight
        connack_properties["maximum_packet_size"] = settings.max_packet_size
        connack_properties["topic_alias_maximum"] = settings.max_topic_alias
        if settings.max_qos < 2:
            connack_properties["maximum_qos"] = settings.max_qos
        if expiry_interval != requested_expiry:
            connack_properties["session_expiry_interval"] = expiry_interval
        if server_keep_alive is not None:
            connack_properties["server_keep_alive"] = server_keep_alive
        if not packet.client_id:
            # Identity comes from the username; the identifier is only an echo for the client.
            channel.client_id = "instamsg-" + client_uuid
            connack_properties["assigned_client_identifier"] = channel.client_id
    if level == MQTT_5:
        connack = encode(
            Connack(session_present=session_present, reason_code=0, properties=connack_properties), level
        )
    else:
        connack = _CONNACK_ACCEPTED_3[level, session_present]
    channel.connection.write(connack)
    node.counters.connects_accepted += 1
    # Per-connect events are for hooks (client.connected / client.disconnected carry the channel);
    # a log line per connect is debugging output, not something every connect should pay for.
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "client_connected client=%s tenant=%s level=%d profile=%s session_present=%d peer=%s",
            client_uuid,
            client.tenant_id,
            level,
            profile.name,
            int(session_present),
            channel.connection.peer,
        )

    if hooks.has(HookPoint.SESSION_IMPLICIT_SUBSCRIPTIONS):
        implicit = hooks.run_fold(HookPoint.SESSION_IMPLICIT_SUBSCRIPTIONS, [], channel)
        for topic_filter, qos in implicit or ():
            add_subscription(
                channel, topic_filter, Subscription(session, topic_filter, min(qos, session.max_qos))
            )
    session.resume(channel, window)
    if hooks.has(HookPoint.CLIENT_CONNECTED):
        hooks.run(HookPoint.CLIENT_CONNECTED, channel)
