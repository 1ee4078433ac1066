"""Records every application message accepted from a client in the history (spec §6.5, §12.2, C18).

Recorded: application publishes (type `pub`), p2p messages to an inbox (type `p2p`, `peer_id` the
addressee) and `instamsg/webhook` data (type `pub`). Not recorded: other special topics, messages the
control plane routes (`channel` None: REST publishes store their own row, wills) and publishes a hook
consumed before this one. The callbacks only build a tuple and append it: no database on the hot path.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from instamsg.broker.channel import Channel
from instamsg.broker.hooks import HookPoint, Priority
from instamsg.broker.message import Message
from instamsg.broker.router import is_uuid
from instamsg.protocol.plugin import DeviceProtocol
from instamsg.protocol.topics import WEBHOOK_TOPIC, SpecialTopic, TopicKind

# (tenant_id, client_id, type, peer_id, topic, payload, qos on the REST 1-3 scale, created_at epoch s);
# the layout of `instamsg.store.history.HistoryRow`.
RecordedRow = tuple[str, str, str, str | None, str, bytes, int, float]
# What the recorder returns (whether the row was kept) is not the hot path's concern.
Record = Callable[[RecordedRow], object]


def history_recorder(record: Record) -> Callable[[Channel | None, Message], None]:
    """A `message.publish` callback recording application publishes and p2p messages."""
    now = time.time

    def on_publish(channel: Channel | None, message: Message) -> None:
        publisher = message.publisher_uuid
        if channel is None or publisher is None:
            return
        topic = message.topic
        if topic.startswith("instamsg/"):
            return
        # The broker has already lowercased an inbox topic (spec §6.2): it is the addressee's UUID.
        if is_uuid(topic):
            record(
                (message.tenant_id, publisher, "p2p", topic, topic, message.payload, message.qos + 1, now())
            )
        else:
            record(
                (message.tenant_id, publisher, "pub", None, topic, message.payload, message.qos + 1, now())
            )

    return on_publish


def webhook_recorder(record: Record) -> Callable[[Channel, SpecialTopic, Message], None]:
    """A device-message handler recording `instamsg/webhook` data, which is stored as `pub` (§12.2)."""
    now = time.time

    def on_webhook(channel: Channel, special: SpecialTopic, message: Message) -> None:
        publisher = message.publisher_uuid or channel.client_uuid
        if publisher is None:
            return
        record(
            (
                message.tenant_id,
                publisher,
                "pub",
                None,
                WEBHOOK_TOPIC,
                message.payload,
                message.qos + 1,
                now(),
            )
        )

    return on_webhook


def install_history(devices: DeviceProtocol, record: Record) -> None:
    """Record application messages after every other `message.publish` hook has had its say."""
    devices.node.hooks.add(HookPoint.MESSAGE_PUBLISH, history_recorder(record), Priority.LAST)
    devices.on_device_message(TopicKind.WEBHOOK, webhook_recorder(record))
