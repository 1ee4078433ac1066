"""Retained messages, one store per tenant.

Lookup for an exact filter is a dict hit; a wildcard filter scans that tenant's retained topics. That
scan happens on SUBSCRIBE only (not on the publish path) and is bounded by `max_retained_per_tenant`.
"""

from __future__ import annotations

import logging
import time

from instamsg.broker.message import Message
from instamsg.broker.router import is_reserved, min_wildcard_level
from instamsg.broker.topic_tree import has_wildcard, topic_matches

logger = logging.getLogger(__name__)


class RetainStore:
    __slots__ = ("_by_tenant", "_max_payload", "_max_per_tenant", "refused")

    def __init__(self, max_per_tenant: int = 10_000, max_payload: int = 262_144) -> None:
        self._by_tenant: dict[str, dict[str, Message]] = {}
        self._max_per_tenant = max_per_tenant
        self._max_payload = max_payload
        self.refused = 0

    def store(self, message: Message) -> bool:
        """Set, replace or (empty payload) clear the retained message of the topic (MQTT-3.3.1-5..7)."""
        if is_reserved(message.topic):
            return False  # spec Q7: never retain on reserved topics
        messages = self._by_tenant.get(message.tenant_id)
        if not message.payload:
            if messages is not None:
                messages.pop(message.topic, None)
            return True
        if messages is None:
            messages = self._by_tenant[message.tenant_id] = {}
        if len(message.payload) > self._max_payload or (
            message.topic not in messages and len(messages) >= self._max_per_tenant
        ):
            self.refused += 1
            logger.warning(
                "retained_refused tenant=%s size=%d count=%d",
                message.tenant_id,
                len(message.payload),
                len(messages),
            )
            return False
        messages[message.topic] = message
        return True

    def get(self, tenant_id: str, topic: str) -> Message | None:
        messages = self._by_tenant.get(tenant_id)
        return None if messages is None else messages.get(topic)

    def lookup(self, tenant_id: str, topic_filter: str) -> list[Message]:
        """Retained messages matching a filter, expired ones removed on the way."""
        messages = self._by_tenant.get(tenant_id)
        if not messages:
            return []
        now = time.monotonic()
        if not has_wildcard(topic_filter):
            found = messages.get(topic_filter)
            if found is None:
                return []
            if found.expired(now):
                del messages[topic_filter]
                return []
            return [found]
        result: list[Message] = []
        expired: list[str] = []
        for topic, message in messages.items():
            if topic_matches(topic, topic_filter, min_wildcard_level(topic)):
                if message.expired(now):
                    expired.append(topic)
                else:
                    result.append(message)
        for topic in expired:
            del messages[topic]
        return result

    def remove_tenant(self, tenant_id: str) -> None:
        self._by_tenant.pop(tenant_id, None)

    def count(self, tenant_id: str | None = None) -> int:
        if tenant_id is not None:
            return len(self._by_tenant.get(tenant_id, {}))
        return sum(len(messages) for messages in self._by_tenant.values())
