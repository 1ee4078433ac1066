"""Inbound PUBLISH and PUBREL: topic alias, ACL, quota, hooks, retain, routing, PUBACK/PUBREC/PUBCOMP."""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

from instamsg.broker import access
from instamsg.broker.handlers.acks import ack_frame
from instamsg.broker.hooks import HookPoint
from instamsg.broker.message import Message, forwarded_properties
from instamsg.broker.metrics import NO_METER
from instamsg.broker.router import is_reserved, is_uuid
from instamsg.broker.session import CommitBarrier
from instamsg.mqtt.encoder import encode
from instamsg.mqtt.packets import (
    MQTT_5,
    Properties,
    Publish,
    Pubrec,
    Pubrel,
)
from instamsg.mqtt.reason_codes import ReasonCode

if TYPE_CHECKING:
    from instamsg.broker.channel import Channel


def handle_publish(channel: Channel, packet: Publish) -> None:
    """One inbound PUBLISH: checks, routing, then the acknowledgement its QoS calls for."""
    node = channel.node
    qos = packet.qos
    level = channel.protocol_level
    packet_id = packet.packet_id
    topic = packet.topic
    properties = packet.properties
    if qos > node.settings.max_qos:
        channel.protocol_error("qos_not_supported", ReasonCode.QOS_NOT_SUPPORTED)  # MQTT-3.2.2-11
        return
    if level == MQTT_5 and properties:
        alias = properties.get("topic_alias")
        if alias is not None:
            if alias == 0 or alias > node.settings.max_topic_alias:
                channel.protocol_error("topic_alias_invalid", ReasonCode.TOPIC_ALIAS_INVALID)  # MQTT-3.3.2-9
                return
            aliases = channel.aliases_in
            if aliases is None:
                aliases = channel.aliases_in = {}
            if topic:
                aliases[alias] = topic
            else:
                known = aliases.get(alias)
                if known is None:
                    channel.protocol_error("topic_alias_unknown")  # MQTT 5 §3.3.2.3.4: alias not yet mapped
                    return
                topic = known
    if not topic:
        channel.protocol_error("topic_empty")
        return
    if "+" in topic or "#" in topic:
        # MQTT-3.3.2-2: a topic name holds no wildcards (the codec leaves this to us).
        channel.protocol_error("topic_name_invalid", ReasonCode.TOPIC_NAME_INVALID)
        return
    session = channel.session
    assert session is not None
    if qos == 2:
        assert packet_id is not None
        if packet_id in session.inbound_unreleased:
            # Re-sent before PUBREL (DUP): acknowledge again, deliver once (MQTT-4.3.3, method B).
            _acknowledge(channel, encode(Pubrec(packet_id), level), None)
            return
        if len(session.inbound_unreleased) >= node.settings.max_inflight:
            channel.protocol_error(
                "receive_maximum_exceeded", ReasonCode.RECEIVE_MAXIMUM_EXCEEDED
            )  # MQTT-3.3.4-9
            return

    barrier: CommitBarrier | None = None
    if qos and node.session_store is not None:
        barrier = node.barrier = CommitBarrier()
    try:
        reason = _accept_publish(channel, topic, packet, properties)
    finally:
        node.barrier = None
    # Metering counts every publish received, accepted or not.
    payload_size = len(packet.payload)
    meter = channel.meter
    if meter is NO_METER:
        meter = channel.own_meter()
    meter[0] += 1
    meter[1] += payload_size
    tenant_meter = channel.tenant_meter
    tenant_meter[0] += 1
    tenant_meter[1] += payload_size

    if qos == 1:
        assert packet_id is not None
        _acknowledge(channel, ack_frame(0x40, packet_id, reason if level == MQTT_5 else 0, level), barrier)
    elif qos == 2:
        assert packet_id is not None
        if level == MQTT_5 and reason >= 0x80:
            # MQTT 5: a PUBREC with an error ends the exchange; no PUBREL follows.
            _acknowledge(channel, ack_frame(0x50, packet_id, reason, level), barrier)
        else:
            session.mark_unreleased(packet_id)
            _acknowledge(
                channel, ack_frame(0x50, packet_id, reason if level == MQTT_5 else 0, level), barrier
            )


def _acknowledge(channel: Channel, frame: bytes, barrier: CommitBarrier | None) -> None:
    """Write a PUBACK/PUBREC now, or once the offline-queue writes it waits for are durable (C18)."""
    pending = channel.pending_acks
    if barrier is not None and barrier.pending:
        if pending is None:
            pending = channel.pending_acks = deque()
        slot = [b""]
        pending.append(slot)

        def committed() -> None:
            slot[0] = frame
            _flush_acknowledgements(channel)

        barrier.callback = committed
    elif pending:
        pending.append([frame])
        _flush_acknowledgements(channel)
    else:
        channel.connection.write(frame)


def _flush_acknowledgements(channel: Channel) -> None:
    pending = channel.pending_acks
    if pending is None:
        return
    while pending and pending[0][0]:
        channel.connection.write(pending.popleft()[0])


def _accept_publish(channel: Channel, topic: str, packet: Publish, properties: Properties) -> int:
    """ACL, quota, hooks, retain, dispatch; returns the MQTT 5 reason code for PUBACK/PUBREC."""
    node = channel.node
    client = channel.client
    assert client is not None
    inbox_target: str | None = None
    if is_uuid(topic):
        topic = inbox_target = topic.lower()  # delivered under the canonical inbox name (spec §6.2)
    if not channel.authorize(access.PUBLISH, topic):
        node.counters.publishes_denied += 1
        if node.hooks.has(HookPoint.MESSAGE_DENIED):
            node.hooks.run(HookPoint.MESSAGE_DENIED, channel, topic, ReasonCode.NOT_AUTHORIZED)
        node.throttled_warning(
            ("publish_denied", channel.client_uuid, topic),
            "publish_denied client=%s tenant=%s topic=%s",
            channel.client_uuid,
            channel.tenant_id,
            topic,
        )
        return ReasonCode.NOT_AUTHORIZED
    if inbox_target is not None:
        peer = node.directory.get_client(inbox_target)
        if peer is None or peer.tenant_id != client.tenant_id:
            node.throttled_warning(
                ("unknown_peer", channel.client_uuid, topic),
                "unknown_peer client=%s tenant=%s",
                channel.client_uuid,
                channel.tenant_id,
            )
            if node.hooks.has(HookPoint.MESSAGE_DENIED):
                node.hooks.run(HookPoint.MESSAGE_DENIED, channel, topic, ReasonCode.TOPIC_NAME_INVALID)
            return ReasonCode.TOPIC_NAME_INVALID
    # Quota (spec §6.4): application publishes and p2p are charged; other reserved topics are not.
    # `instamsg/webhook` carries application data (spec §12.2) and is charged like an application topic.
    charged = inbox_target is not None or not is_reserved(topic) or topic == "instamsg/webhook"
    if charged and not node.directory.charge_tenant(client.tenant_id):
        node.counters.publishes_over_quota += 1
        if node.hooks.has(HookPoint.MESSAGE_DENIED):
            node.hooks.run(HookPoint.MESSAGE_DENIED, channel, topic, ReasonCode.QUOTA_EXCEEDED)
        node.throttled_warning(
            ("quota", channel.tenant_id),
            "tenant_message_quota_exceeded tenant=%s client=%s",
            channel.tenant_id,
            channel.client_uuid,
        )
        return ReasonCode.QUOTA_EXCEEDED
    retain = packet.retain and channel.profile.retain_from_client
    expires_at: float | None = None
    forwarded: Properties | None = None
    if channel.protocol_level == MQTT_5 and properties:
        expiry = properties.get("message_expiry_interval")
        if expiry is not None:
            expires_at = time.monotonic() + expiry
        forwarded = forwarded_properties(properties)
    message = Message(
        client.tenant_id,
        topic,
        packet.payload,
        packet.qos,
        retain,
        channel.client_uuid,
        forwarded,
        expires_at,
    )
    delivered = node.publish(message, channel)
    if delivered < 0:
        return ReasonCode.SUCCESS  # consumed by a hook
    return ReasonCode.SUCCESS if delivered else ReasonCode.NO_MATCHING_SUBSCRIBERS


def handle_pubrel(channel: Channel, packet: Pubrel) -> None:
    """Release of an inbound QoS 2 message: PUBCOMP (MQTT 5: 0x92 for an unknown id)."""
    session = channel.session
    assert session is not None
    if packet.packet_id in session.inbound_unreleased:
        session.release(packet.packet_id)
        channel.connection.write(ack_frame(0x70, packet.packet_id, 0, channel.protocol_level))
    elif channel.protocol_level == MQTT_5:
        channel.connection.write(
            ack_frame(0x70, packet.packet_id, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND, MQTT_5)
        )
    else:
        # 3.1.1: PUBCOMP even for an unknown id, so a PUBREL retried after our PUBCOMP completes.
        channel.connection.write(ack_frame(0x70, packet.packet_id, 0, channel.protocol_level))
