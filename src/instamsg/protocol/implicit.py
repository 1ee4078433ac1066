"""Implicit delivery to legacy connections (spec §6.1 "Implicit", S3, C7).

The C and Java libraries never subscribe to their inbox or their server→device topics, so every
connection whose profile has `implicit_delivery` gets those subscriptions at CONNECT, without SUBSCRIBE
or ACL. Standard clients get nothing implicit: they subscribe themselves (S3).

Duplicates (§6.2 item 5): the session keys subscriptions by filter, so an explicit SUBSCRIBE to the
same topic (Python subscribes to `enableServerLogging`) replaces the implicit one, and an overlapping
wildcard (`instamsg/clients/<U>/#`) is merged per client by the broker's dispatch: one delivery, at the
highest matching QoS capped by the profile. Because the explicit subscription takes the implicit one's
place, it keeps at least the implicit QoS, and an UNSUBSCRIBE of it puts the implicit one back: the
implicit rule matches whatever the client subscribes to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from instamsg.broker.handlers.subscribe import add_subscription
from instamsg.broker.hooks import HookPoint, Priority
from instamsg.broker.router import Subscription
from instamsg.protocol.topics import IMPLICIT_KINDS, TopicKind, client_topic

if TYPE_CHECKING:
    from instamsg.broker.channel import Channel
    from instamsg.protocol.plugin import DeviceProtocol

IMPLICIT_QOS: Final = 1  # the broker caps it by the profile's max_qos


def implicit_subscriptions(channel: Channel) -> list[tuple[str, int]]:
    """The inbox and every server→device topic of the connection's client, at QoS 1."""
    client_uuid = channel.client_uuid
    filters = [client_uuid, *(client_topic(client_uuid, kind) for kind in IMPLICIT_KINDS)]
    return [(topic_filter, IMPLICIT_QOS) for topic_filter in filters]


_IMPLICIT_SUFFIXES: Final = frozenset(kind.value for kind in IMPLICIT_KINDS)


def is_implicit_filter(channel: Channel, topic_filter: str) -> bool:
    """Whether `topic_filter` is one of the connection's implicit subscriptions."""
    client_uuid = channel.client_uuid
    if topic_filter == client_uuid:
        return True
    prefix = client_topic(client_uuid, TopicKind.REBOOT)[: -len(TopicKind.REBOOT.value)]
    return topic_filter.startswith(prefix) and topic_filter[len(prefix) :] in _IMPLICIT_SUFFIXES


def _implicit(channel: Channel, accumulated: list[tuple[str, int]]) -> list[tuple[str, int]] | None:
    if not channel.profile.implicit_delivery or not channel.client_uuid:
        return None
    return [*accumulated, *implicit_subscriptions(channel)]


def _subscribed(channel: Channel, topic_filter: str, granted: int) -> None:
    session = channel.session
    if (
        session is None
        or not channel.profile.implicit_delivery
        or not is_implicit_filter(channel, topic_filter)
    ):
        return
    subscription = session.subscriptions.get(topic_filter)
    if subscription is not None:
        subscription.qos = max(subscription.qos, min(IMPLICIT_QOS, session.max_qos))


def _unsubscribed(channel: Channel, topic_filter: str) -> None:
    session = channel.session
    if (
        session is None
        or not channel.profile.implicit_delivery
        or not is_implicit_filter(channel, topic_filter)
    ):
        return
    add_subscription(
        channel, topic_filter, Subscription(session, topic_filter, min(IMPLICIT_QOS, session.max_qos))
    )


def install_implicit_delivery(devices: DeviceProtocol) -> None:
    """Register the implicit-delivery hooks on the device protocol's broker node."""
    hooks = devices.node.hooks
    hooks.add(HookPoint.SESSION_IMPLICIT_SUBSCRIPTIONS, _implicit, Priority.NORMAL)
    hooks.add(HookPoint.SESSION_SUBSCRIBED, _subscribed, Priority.NORMAL)
    hooks.add(HookPoint.SESSION_UNSUBSCRIBED, _unsubscribed, Priority.NORMAL)
