"""SUBSCRIBE and UNSUBSCRIBE: filter checks, ACL, shared subscriptions, retained replay, SUBACK/UNSUBACK."""

from __future__ import annotations

from typing import TYPE_CHECKING

from instamsg.broker import access
from instamsg.broker.hooks import HookPoint
from instamsg.broker.message import Message
from instamsg.broker.router import Subscription
from instamsg.mqtt.encoder import encode
from instamsg.mqtt.errors import InvalidTopic
from instamsg.mqtt.packets import (
    MQTT_5,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
)
from instamsg.mqtt.reason_codes import ReasonCode
from instamsg.mqtt.topics import parse_shared_subscription, validate_topic_filter

if TYPE_CHECKING:
    from instamsg.broker.channel import Channel


def add_subscription(channel: Channel, key: str, subscription: Subscription) -> bool:
    """Install (or replace) a subscription; True if it is new (MQTT 5 retain handling 1)."""
    session = channel.session
    assert session is not None
    existing = session.subscriptions.get(key)
    session.subscriptions[key] = subscription
    channel.node.router.subscribe(channel.tenant_id, subscription)
    return existing is None


def handle_subscribe(channel: Channel, packet: Subscribe) -> None:
    """Authorise and install each filter; SUBACK first, then retained messages."""
    node = channel.node
    session = channel.session
    assert session is not None
    level = channel.protocol_level
    subscription_identifier: int | None = None
    if level == MQTT_5:
        identifiers = packet.properties.get("subscription_identifier")
        if identifiers:
            subscription_identifier = identifiers[0]
    codes: list[int] = []
    retained: list[tuple[Subscription, list[Message]]] = []
    for topic_filter, options in packet.subscriptions:
        try:
            validate_topic_filter(topic_filter)
            shared = parse_shared_subscription(topic_filter)
        except InvalidTopic:
            codes.append(ReasonCode.TOPIC_FILTER_INVALID if level == MQTT_5 else 0x80)
            continue
        group: str | None = None
        inner = topic_filter
        if shared is not None:
            group, inner = shared
            if options.no_local and level == MQTT_5:
                channel.protocol_error("no_local_on_shared_subscription")  # MQTT-3.8.3-4
                return
        if not channel.authorize(access.SUBSCRIBE, inner):
            node.counters.subscribes_denied += 1
            if node.hooks.has(HookPoint.SESSION_SUBSCRIBE_DENIED):
                node.hooks.run(HookPoint.SESSION_SUBSCRIBE_DENIED, channel, topic_filter)
            node.throttled_warning(
                ("subscribe_denied", channel.client_uuid, topic_filter),
                "subscribe_denied client=%s tenant=%s filter=%s",
                channel.client_uuid,
                channel.tenant_id,
                topic_filter,
            )
            codes.append(ReasonCode.NOT_AUTHORIZED if level == MQTT_5 else 0x80)
            continue
        granted = min(options.qos, session.max_qos)
        subscription = Subscription(
            session,
            inner,
            granted,
            no_local=options.no_local,
            retain_as_published=options.retain_as_published,
            retain_handling=options.retain_handling,
            subscription_identifier=subscription_identifier,
            share_group=group,
        )
        is_new = add_subscription(channel, topic_filter, subscription)
        codes.append(granted)
        if (
            group is None  # shared subscriptions get no retained messages (MQTT 5 §4.8.2)
            and channel.profile.retained_replay
            and (options.retain_handling == 0 or (options.retain_handling == 1 and is_new))
        ):
            found = node.retain.lookup(channel.tenant_id, inner)
            if found:
                retained.append((subscription, found))
        if node.hooks.has(HookPoint.SESSION_SUBSCRIBED):
            node.hooks.run(HookPoint.SESSION_SUBSCRIBED, channel, topic_filter, granted)
    if not channel.profile.suback_return_codes:
        codes = []
    channel.connection.write(encode(Suback(packet.packet_id, codes), level))
    # Retained messages follow the SUBACK, with RETAIN set (MQTT-3.3.1-8).
    for subscription, messages in retained:
        retained_identifiers = (
            (subscription.subscription_identifier,) if subscription.subscription_identifier else None
        )
        for message in messages:
            session.deliver(message, min(message.qos, subscription.qos), True, retained_identifiers)


def handle_unsubscribe(channel: Channel, packet: Unsubscribe) -> None:
    """Remove each filter; UNSUBACK (MQTT 5: a reason code per filter, in order)."""
    session = channel.session
    assert session is not None
    codes: list[int] = []
    for topic_filter in packet.filters:
        subscription = session.subscriptions.pop(topic_filter, None)
        if subscription is None:
            codes.append(ReasonCode.NO_SUBSCRIPTION_EXISTED)
            continue
        channel.node.router.unsubscribe(
            channel.tenant_id, channel.client_uuid, subscription.topic_filter, subscription.share_group
        )
        codes.append(ReasonCode.SUCCESS)
        if channel.node.hooks.has(HookPoint.SESSION_UNSUBSCRIBED):
            channel.node.hooks.run(HookPoint.SESSION_UNSUBSCRIBED, channel, topic_filter)
    channel.connection.write(
        encode(
            Unsuback(packet.packet_id, codes if channel.protocol_level == MQTT_5 else []),
            channel.protocol_level,
        )
    )
