"""Routes per tenant: one TopicTree per tenant, normal and shared subscriptions.

Tenants never share a tree, so no match can ever cross a tenant. `Router` is the interface a cluster
router can wrap later (NATS subjects per local filter); `LocalRouter` is the in-process one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

from instamsg.broker.topic_tree import NO_WILDCARDS, TopicTree

if TYPE_CHECKING:
    from instamsg.broker.session import Session


_HEX_AND_DASH = frozenset("0123456789abcdefABCDEF-")


def is_uuid(topic: str) -> bool:
    """A topic in 8-4-4-4-12 hex shape, any case: an inbox (spec §1.6). Cheap checks first."""
    if len(topic) != 36 or topic[8] != "-" or topic[13] != "-" or topic[18] != "-" or topic[23] != "-":
        return False
    return _HEX_AND_DASH.issuperset(topic)


def is_reserved(topic: str) -> bool:
    """Reserved topics (spec §1.6): inboxes and everything under `instamsg/`."""
    return topic.startswith("instamsg/") or is_uuid(topic)


def min_wildcard_level(topic: str) -> int:
    """The first topic level at which a wildcard may match `topic` (spec §1.6, C8; MQTT-4.7.2-1)."""
    first = topic[:1]
    if first == "i" and topic.startswith("instamsg/"):
        # Only inside a client's own prefix instamsg/clients/<uuid>/...; ACL keeps others out of it.
        return 3 if topic.startswith("instamsg/clients/") else NO_WILDCARDS
    if first == "$":
        return 1
    if len(topic) == 36 and is_uuid(topic):
        return NO_WILDCARDS
    return 0


class Subscription:
    """One client's subscription to one filter, with its MQTT 5 options."""

    __slots__ = (
        "no_local",
        "qos",
        "retain_as_published",
        "retain_handling",
        "session",
        "share_group",
        "subscription_identifier",
        "topic_filter",
    )

    def __init__(
        self,
        session: Session,
        topic_filter: str,
        qos: int,
        no_local: bool = False,
        retain_as_published: bool = False,
        retain_handling: int = 0,
        subscription_identifier: int | None = None,
        share_group: str | None = None,
    ) -> None:
        self.session = session
        self.topic_filter = topic_filter
        self.qos = qos
        self.no_local = no_local
        self.retain_as_published = retain_as_published
        self.retain_handling = retain_handling
        self.subscription_identifier = subscription_identifier
        self.share_group = share_group


class SharedGroup:
    """Members of one `$share/<group>/<filter>`; each message goes to one member, round robin."""

    __slots__ = ("members", "next_index")

    def __init__(self) -> None:
        self.members: dict[str, Subscription] = {}
        self.next_index = 0

    def pick(self) -> Subscription | None:
        """The next member, preferring connected sessions so messages are not parked offline."""
        members = list(self.members.values())
        if not members:
            return None
        count = len(members)
        for offset in range(count):
            candidate = members[(self.next_index + offset) % count]
            if candidate.session.connected:
                self.next_index = (self.next_index + offset + 1) % count
                return candidate
        self.next_index = (self.next_index + 1) % count
        return members[self.next_index - 1]


# Never mutated: `LocalRouter.subscribe` gives a bucket its own dict before adding a group.
_NO_GROUPS: Final[dict[str, SharedGroup]] = {}


class FilterBucket:
    """Everything subscribed to one filter in one tenant."""

    __slots__ = ("groups", "subscribers")

    def __init__(self) -> None:
        self.subscribers: dict[str, Subscription] = {}
        # Shared subscriptions are rare: one empty mapping serves every bucket until the first arrives.
        self.groups: dict[str, SharedGroup] = _NO_GROUPS

    def is_empty(self) -> bool:
        return not self.subscribers and not self.groups


class Router(Protocol):
    def subscribe(self, tenant_id: str, subscription: Subscription) -> None: ...

    def unsubscribe(
        self, tenant_id: str, client_uuid: str, topic_filter: str, share_group: str | None
    ) -> None: ...

    def match(self, tenant_id: str, topic: str) -> list[FilterBucket]: ...

    def remove_tenant(self, tenant_id: str) -> None: ...


class LocalRouter:
    """One TopicTree of FilterBuckets per tenant."""

    __slots__ = ("_trees",)

    def __init__(self) -> None:
        self._trees: dict[str, TopicTree[FilterBucket]] = {}

    def subscribe(self, tenant_id: str, subscription: Subscription) -> None:
        tree = self._trees.get(tenant_id)
        if tree is None:
            tree = self._trees[tenant_id] = TopicTree(FilterBucket)
        bucket = tree.get_or_create(subscription.topic_filter)
        client_uuid = subscription.session.client_uuid
        if subscription.share_group is None:
            bucket.subscribers[client_uuid] = subscription
        else:
            if bucket.groups is _NO_GROUPS:
                bucket.groups = {}
            group = bucket.groups.get(subscription.share_group)
            if group is None:
                group = bucket.groups[subscription.share_group] = SharedGroup()
            group.members[client_uuid] = subscription

    def unsubscribe(
        self, tenant_id: str, client_uuid: str, topic_filter: str, share_group: str | None
    ) -> None:
        tree = self._trees.get(tenant_id)
        if tree is None:
            return
        bucket = tree.get(topic_filter)
        if bucket is None:
            return
        if share_group is None:
            bucket.subscribers.pop(client_uuid, None)
        else:
            group = bucket.groups.get(share_group)
            if group is not None:
                group.members.pop(client_uuid, None)
                if not group.members:
                    del bucket.groups[share_group]
        if bucket.is_empty():
            tree.remove(topic_filter)

    def match(self, tenant_id: str, topic: str) -> list[FilterBucket]:
        tree = self._trees.get(tenant_id)
        if tree is None:
            return []
        return tree.match(topic, min_wildcard_level(topic))

    def remove_tenant(self, tenant_id: str) -> None:
        self._trees.pop(tenant_id, None)

    def subscription_count(self) -> int:
        return sum(len(tree) for tree in self._trees.values())
