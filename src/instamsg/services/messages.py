"""Messages: publishMessage, getMessages, getSingleMessage and releaseMessage (spec §2.5.5, §2.5.6).

Only `pub` messages are supported so far: p2p (envelopes, inbox delivery) is not implemented yet and a
`type: "p2p"` request gets 400 `validation_failed` saying so.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from instamsg.domain import ids
from instamsg.domain.clients import Client
from instamsg.domain.clock import utc_now
from instamsg.domain.errors import (
    ClientNotFound,
    InvalidCursor,
    InvalidQos,
    InvalidTopic,
    MessageNotFound,
    PayloadTooLarge,
    QuotaExceeded,
    ReservedTopic,
    TenantNotFound,
    TopicNotAllowed,
    ValidationFailed,
)
from instamsg.domain.messages import RESERVED_PREFIX, HistoryMessage, iso_utc, mqtt_qos
from instamsg.domain.tenants import Tenant
from instamsg.domain.timestamps import decode_cursor, encode_cursor, parse_time_range
from instamsg.mqtt.topics import matches
from instamsg.services.ports import MessageDelivery
from instamsg.store.repositories import clients as client_repository
from instamsg.store.repositories import messages as message_repository
from instamsg.store.repositories import tenants as tenant_repository
from instamsg.store.store import Store

logger = logging.getLogger(__name__)

MAX_TOPIC_BYTES = 65535
DEFAULT_QOS = 1


@dataclass(frozen=True, slots=True)
class MessagePage:
    items: list[HistoryMessage]
    next_cursor: str | None


def _invalid_cursor(cursor: str) -> InvalidCursor:
    return InvalidCursor(
        "The cursor is malformed or was produced by a different query.", details={"cursor": cursor[:100]}
    )


def _is_inbox(topic: str) -> bool:
    return ids.canonical_uuid(topic) is not None and "/" not in topic


def validate_topic(topic: str) -> None:
    """Non-empty UTF-8, at most 65535 bytes, no `+`, `#` or NUL (400 `invalid_topic`)."""
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidTopic("topic must be valid UTF-8 text.", details={"field": "topic"}) from None
    problem = None
    if not topic:
        problem = "topic must not be empty."
    elif size > MAX_TOPIC_BYTES:
        problem = f"topic must be at most {MAX_TOPIC_BYTES} bytes of UTF-8."
    elif "\x00" in topic:
        problem = "topic must not contain NUL characters."
    elif "+" in topic or "#" in topic:
        problem = "topic must not contain the wildcards '+' or '#': publish to a topic name."
    if problem is not None:
        raise InvalidTopic(problem, details={"field": "topic"})


def validate_qos(qos: Any) -> int:
    if isinstance(qos, bool) or not isinstance(qos, int) or qos not in (1, 2, 3):
        raise InvalidQos(
            "qos must be 1 (at most once), 2 (at least once) or 3 (exactly once).",
            details={"field": "qos", "accepted": [1, 2, 3]},
        )
    return qos


def validate_client_message_id(value: Any, qos: int) -> int | None:
    if value is None and qos == 1:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        rule = "an integer 1-65535" + (" (required for qos 2 and 3)" if qos > 1 else " or null")
        raise ValidationFailed(f"id must be {rule}.", details={"field": "id"})
    return value


class MessageService:
    def __init__(self, store: Store, delivery: MessageDelivery, *, max_payload_bytes: int = 262_144):
        self.store = store
        self.delivery = delivery
        self.max_payload_bytes = max_payload_bytes

    async def _client(
        self, connection: AsyncConnection, app_id: str, tenant_id: str, client_id: str
    ) -> tuple[Tenant, Client]:
        canonical_tenant = ids.canonical_uuid(tenant_id)
        tenant = (
            await tenant_repository.get_tenant(connection, app_id, canonical_tenant)
            if canonical_tenant
            else None
        )
        if tenant is None:
            raise TenantNotFound(tenant_id)
        canonical_client = ids.canonical_uuid(client_id)
        client = (
            await client_repository.get_client(connection, tenant.id, canonical_client)
            if canonical_client
            else None
        )
        if client is None:
            raise ClientNotFound(client_id)
        return tenant, client

    @staticmethod
    def _check_publish_allowed(client: Client, topic: str) -> None:
        if topic.startswith(RESERVED_PREFIX):
            raise ReservedTopic(
                "Topics under instamsg/ are reserved for the platform; device commands have their own "
                "endpoints.",
                details={"field": "topic", "topic": topic},
            )
        if _is_inbox(topic):
            raise ValidationFailed(
                "This topic is a client's inbox: that is a p2p message, which is not supported yet.",
                details={"field": "topic"},
            )
        if not any(matches(topic, allowed) for allowed in client.pub_topics):
            raise TopicNotAllowed(
                "The client may not publish on this topic: it matches none of its pub_topics.",
                details={"field": "topic", "topic": topic, "pub_topics": list(client.pub_topics)},
            )

    def _charge_and_deliver(self, message: HistoryMessage) -> int:
        """Charge one unit (429 when spent, nothing delivered), then deliver; synchronous."""
        if not self.delivery.charge(message.tenant_id):
            raise QuotaExceeded(
                "The tenant's message budget is spent; raise max_messages with updateTenant.",
                details={"tenant_id": message.tenant_id},
            )
        return self.delivery.deliver(
            message.tenant_id,
            message.client_id,
            message.topic,
            message.payload.encode("utf-8"),
            mqtt_qos(message.qos),
            message.duplicate,
        )

    async def publish(
        self, app_id: str, tenant_id: str, client_id: str, fields: dict[str, Any]
    ) -> HistoryMessage:
        """publishMessage; with `save` (the default) it returns after the history row is committed."""
        save = bool(fields.get("save", True))
        async with self.store.write() if save else self.store.read() as connection:
            tenant, client = await self._client(connection, app_id, tenant_id, client_id)
            if fields.get("type", "pub") == "p2p":
                raise ValidationFailed(
                    "type 'p2p' is not supported yet: only 'pub' messages can be published for now.",
                    details={"field": "type"},
                )
            qos = validate_qos(fields.get("qos", DEFAULT_QOS))
            client_message_id = validate_client_message_id(fields.get("id"), qos)
            topic = fields.get("topic")
            if topic is None:
                raise ValidationFailed("topic is required.", details={"field": "topic"})
            validate_topic(topic)
            payload = fields.get("payload") or ""
            size = len(payload.encode("utf-8"))
            if size > self.max_payload_bytes:
                raise PayloadTooLarge(
                    f"The payload is {size} bytes; the limit is {self.max_payload_bytes}.",
                    details={"field": "payload", "max_bytes": self.max_payload_bytes},
                )
            self._check_publish_allowed(client, topic)
            message = HistoryMessage(
                id=ids.new_uuid(),
                tenant_id=tenant.id,
                client_id=client.id,
                type="pub",
                topic=topic,
                payload=payload,
                qos=qos,
                client_message_id=client_message_id,
                duplicate=bool(fields.get("duplicate", False)),
                saved=save,
                source="rest",
                delivered_to=0,
                releases=[],
                created_at=utc_now(),
            )
            if save:
                # Written before delivery so that a failing insert delivers nothing; a refused charge
                # rolls it back. The answer (201) comes only after the commit (spec C18).
                row = message_repository.history_row(message)
                await message_repository.insert_messages(connection, [row])
            delivered = self._charge_and_deliver(message)
            message = dataclasses.replace(message, delivered_to=delivered)
            if save and delivered:
                await message_repository.set_delivered_to(connection, message.id, delivered)
        logger.info(
            "message_published tenant=%s client=%s message=%s delivered_to=%d saved=%s",
            tenant.id,
            client.id,
            message.id,
            delivered,
            save,
        )
        return message

    async def get_message(
        self, app_id: str, tenant_id: str, client_id: str, message_id: str
    ) -> HistoryMessage:
        async with self.store.read() as connection:
            _, client = await self._client(connection, app_id, tenant_id, client_id)
            return await self._message(connection, client, message_id)

    @staticmethod
    async def _message(connection: AsyncConnection, client: Client, message_id: str) -> HistoryMessage:
        canonical = ids.canonical_uuid(message_id)
        found = await message_repository.get_message(connection, client.id, canonical) if canonical else None
        if found is None:
            raise MessageNotFound(message_id)
        return found

    async def release(self, app_id: str, tenant_id: str, client_id: str, message_id: str) -> HistoryMessage:
        """releaseMessage: re-deliver as first published, ACL re-checked, charged, release recorded."""
        async with self.store.write() as connection:
            _, client = await self._client(connection, app_id, tenant_id, client_id)
            message = await self._message(connection, client, message_id)
            self._check_publish_allowed(client, message.topic)
            delivered = self._charge_and_deliver(message)
            releases = [*message.releases, {"released_at": iso_utc(utc_now()), "delivered_to": delivered}]
            await message_repository.set_releases(connection, message.id, releases)
        logger.info("message_released client=%s message=%s delivered_to=%d", client.id, message.id, delivered)
        return dataclasses.replace(message, releases=releases)

    async def list_messages(
        self,
        app_id: str,
        tenant_id: str,
        client_id: str,
        *,
        start: str | None = None,
        end: str | None = None,
        message_type: str | None = None,
        descending: bool = True,
        limit: int = 100,
        cursor: str | None = None,
    ) -> MessagePage:
        start_at, end_at = parse_time_range(start, end)
        async with self.store.read() as connection:
            _, client = await self._client(connection, app_id, tenant_id, client_id)
            query = {
                "client": client.id,
                "start": start_at.isoformat() if start_at else None,
                "end": end_at.isoformat() if end_at else None,
                "type": message_type,
                "desc": descending,
            }
            after: tuple[datetime, str] | None = None
            if cursor is not None:
                position = decode_cursor(cursor, query)
                try:
                    after = (datetime.fromisoformat(position["t"]), str(position["id"]))
                except (KeyError, TypeError, ValueError):
                    raise _invalid_cursor(cursor) from None
                if after[0].tzinfo is None:
                    raise _invalid_cursor(cursor)
            items = await message_repository.list_messages(
                connection,
                client.id,
                start=start_at,
                end=end_at,
                message_type=message_type,
                descending=descending,
                limit=limit + 1,
                after=after,
            )
        next_cursor = None
        if len(items) > limit:
            items = items[:limit]
            last = items[-1]
            next_cursor = encode_cursor(query, {"t": last.created_at.isoformat(), "id": last.id})
        return MessagePage(items, next_cursor)
