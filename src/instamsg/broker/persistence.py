"""Sessions to and from their stored form (`ports.StoredSession`), for a `SessionStore`.

Pure conversions: wall-clock deadlines at rest, monotonic ones in memory; the window first, then the
queue, so a restored session re-sends in the original order with the original packet ids.
"""

from __future__ import annotations

import time

from instamsg.broker.message import Message
from instamsg.broker.ports import StoredMessage, StoredSession, StoredSubscription
from instamsg.broker.router import Subscription
from instamsg.broker.session import AWAITING_COMPLETE, InflightEntry, Queued, Session
from instamsg.broker.settings import BrokerSettings
from instamsg.mqtt.topics import parse_shared_subscription


def stored_message(item: Queued | InflightEntry, packet_id: int | None) -> StoredMessage:
    message = item.message
    expires_at = None
    if message.expires_at is not None:
        expires_at = time.time() + (message.expires_at - time.monotonic())
    return StoredMessage(
        topic=message.topic,
        payload=message.payload,
        qos=item.qos,
        retain=item.retain,
        packet_id=packet_id,
        properties=dict(message.properties) if message.properties else None,
        expires_at=expires_at,
        subscription_identifiers=item.subscription_identifiers,
    )


def snapshot(session: Session) -> StoredSession:
    """The session as a store keeps it: keyed by client UUID, window first, then the queue."""
    messages = [stored_message(entry, packet_id) for packet_id, entry in session.inflight.items()]
    messages.extend(stored_message(item, None) for item in session.queue)
    return StoredSession(
        client_uuid=session.client_uuid,
        tenant_id=session.tenant_id,
        expiry_interval=session.expiry_interval,
        subscriptions=[
            StoredSubscription(
                topic_filter=key,
                qos=subscription.qos,
                no_local=subscription.no_local,
                retain_as_published=subscription.retain_as_published,
                retain_handling=subscription.retain_handling,
                subscription_identifier=subscription.subscription_identifier,
            )
            for key, subscription in session.subscriptions.items()
        ],
        messages=messages,
        inbound_unreleased=sorted(session.inbound_unreleased),
        outbound_released=[
            packet_id for packet_id, entry in session.inflight.items() if entry.state == AWAITING_COMPLETE
        ],
        disconnected_at=time.time(),
    )


def restore_session(stored: StoredSession, settings: BrokerSettings) -> Session:
    """An offline Session from its stored form (the caller routes its subscriptions and arms expiry)."""
    session = Session(
        stored.client_uuid,
        stored.tenant_id,
        window=settings.max_inflight,
        max_queued=settings.max_queued_messages,
        overflow_policy=settings.overflow_policy,
        queue_qos0_offline=settings.queue_qos0_offline,
        expiry_interval=stored.expiry_interval,
    )
    for stored_subscription in stored.subscriptions:
        key = stored_subscription.topic_filter
        shared = parse_shared_subscription(key)
        group, inner = shared if shared is not None else (None, key)
        session.subscriptions[key] = Subscription(
            session,
            inner,
            stored_subscription.qos,
            no_local=stored_subscription.no_local,
            retain_as_published=stored_subscription.retain_as_published,
            retain_handling=stored_subscription.retain_handling,
            subscription_identifier=stored_subscription.subscription_identifier,
            share_group=group,
        )
    released = set(stored.outbound_released)
    wall_now = time.time()
    monotonic_now = time.monotonic()
    for item in stored.messages:
        expires_at = None if item.expires_at is None else monotonic_now + (item.expires_at - wall_now)
        message = Message(
            stored.tenant_id,
            item.topic,
            item.payload,
            item.qos,
            item.retain,
            None,
            item.properties or None,  # type: ignore[arg-type]
            expires_at,
        )
        if item.packet_id is not None:
            entry = InflightEntry(message, item.qos, item.retain, item.subscription_identifiers)
            if item.packet_id in released:
                entry.state = AWAITING_COMPLETE
            session.restore_inflight(item.packet_id, entry)
        elif len(session.queue) < session.max_queued:
            session.restore_queued(Queued(message, item.qos, item.retain, item.subscription_identifiers))
    session.inbound_unreleased = set(stored.inbound_unreleased)
    return session
