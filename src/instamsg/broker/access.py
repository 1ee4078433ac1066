"""Publish and subscribe authorisation (spec §6.2, §6.3, C8, C9) and the per-connection decision cache.

The rules, in one place:
- publish to an application topic: allowed when the topic matches a `pub_topics` filter;
- publish to a reserved topic: only an exact `pub_topics` entry grants it (UUIDs compared
  case-insensitively), or the client's own inbox; wildcards never grant a reserved topic;
- subscribe: allowed when a `sub_topics` filter covers the requested filter (`a/#` covers `a/+/b`,
  `a/+` never covers `a/#`), or the filter is the client's own inbox, or lies in its own
  `instamsg/clients/<uuid>/` namespace (wildcards allowed inside), or is an exact reserved topic listed
  in `sub_topics` (the watcher case).
"""

from __future__ import annotations

from typing import Final

from instamsg.broker.ports import ClientRecord
from instamsg.broker.router import is_reserved, is_uuid
from instamsg.broker.topic_tree import has_wildcard, topic_matches
from instamsg.mqtt.topics import filter_covers

PUBLISH: Final = "publish"
SUBSCRIBE: Final = "subscribe"
# A client whose traffic hits ever-new topics must not grow its cache without bound.
MAX_CACHED_DECISIONS: Final = 4096


def may_publish(client: ClientRecord, topic: str) -> bool:
    if is_reserved(topic):
        if is_uuid(topic):
            inbox = topic.lower()
            return inbox == client.uuid or any(entry.lower() == inbox for entry in client.pub_topics)
        return topic in client.pub_topics
    start = 1 if topic[:1] == "$" else 0
    return any(topic_matches(topic, entry, start) for entry in client.pub_topics)


def may_subscribe(client: ClientRecord, topic_filter: str) -> bool:
    if topic_filter == client.uuid:
        return True
    own_prefix = "instamsg/clients/" + client.uuid + "/"
    if topic_filter.startswith(own_prefix):
        return True
    if topic_filter.startswith("instamsg/") or is_uuid(topic_filter):
        # Someone else's inbox or reserved namespace: only an exact watcher entry grants it.
        return (
            not has_wildcard(topic_filter) and not is_uuid(topic_filter) and topic_filter in client.sub_topics
        )
    return any(filter_covers(entry, topic_filter) for entry in client.sub_topics if not is_reserved(entry))


class AccessCache:
    """Decisions of one connection, per (action, topic or filter); cleared when the client changes.

    Each mapping is created on its first decision: most connections subscribe and never publish (or
    the other way round), and an idle connection should cost little memory."""

    __slots__ = ("_publish", "_subscribe")

    def __init__(self) -> None:
        self._publish: dict[str, bool] | None = None
        self._subscribe: dict[str, bool] | None = None

    def get(self, action: str, topic: str) -> bool | None:
        decisions = self._publish if action == PUBLISH else self._subscribe
        return None if decisions is None else decisions.get(topic)

    def put(self, action: str, topic: str, allowed: bool) -> None:
        if action == PUBLISH:
            decisions = self._publish
            if decisions is None:
                decisions = self._publish = {}
        else:
            decisions = self._subscribe
            if decisions is None:
                decisions = self._subscribe = {}
        if len(decisions) >= MAX_CACHED_DECISIONS:
            decisions.clear()
        decisions[topic] = allowed

    def clear(self) -> None:
        self._publish = None
        self._subscribe = None

    def __len__(self) -> int:
        return len(self._publish or ()) + len(self._subscribe or ())
