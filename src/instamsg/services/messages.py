"""Messages: publishMessage, getMessages, getSingleMessage and releaseMessage (spec §2.5.5, §2.5.6).

`pub` messages go to the subscribers of an application topic under the publisher's pub_topics. `p2p`
messages go to the inbox of a peer client of the same tenant (an operator action: pub_topics are not
consulted, S15), wrapped in a send envelope unless the payload already is one (S7, §7.1). A client's
history holds what it published (`sent`) and the p2p messages addressed to it (`received`, §6.5).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from instamsg.domain import ids
from instamsg.domain.clients import Client
from instamsg.domain.clock import utc_now
from instamsg.domain.errors import (
    InvalidQos,
    InvalidTopic,
    MessageNotFound,
    PayloadTooLarge,
    QuotaExceeded,
    ReservedTopic,
    TopicNotAllowed,
    UnknownPeer,
    ValidationFailed,
)
from instamsg.domain.messages import RESERVED_PREFIX, HistoryMessage, iso_utc, mqtt_qos
from instamsg.domain.tenants import Tenant
from instamsg.domain.timestamps import parse_time_range
from instamsg.mqtt.topics import matches
from instamsg.protocol.payloads import MessageIdCounter, build_send_envelope
from instamsg.services.lookup import find_client, find_tenant_and_client
from instamsg.services.pages import Page, cursor_query, page_of, position_after
from instamsg.services.ports import MessageDelivery
from instamsg.store.repositories import clients as client_repository
from instamsg.store.repositories import messages as message_repository
from instamsg.store.store import Store

logger = logging.getLogger(__name__)

MAX_TOPIC_BYTES = 65535
DEFAULT_QOS = 1


MessagePage = Page[HistoryMessage]


def _is_inbox(topic: str) -> bool:
    return ids.canonical_uuid(topic) is not None and "/" not in topic


def is_envelope(payload: str) -> bool:
    """Whether a p2p payload is already an envelope: a JSON object with `message_id` and `reply_to`."""
    try:
        parsed = json.loads(payload)
    except (ValueError, RecursionError):
        return False
    return isinstance(parsed, dict) and "message_id" in parsed and "reply_to" in parsed


def _unknown_peer(topic: str) -> UnknownPeer:
    return UnknownPeer(
        "A p2p topic must be the UUID of a client of the same tenant.",
        details={"field": "topic", "topic": topic[:100]},
    )


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
        # Envelope ids of p2p messages published without `id`, one counter per publishing client (§7.3).
        self._envelope_ids: dict[str, MessageIdCounter] = {}

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
                "This topic is a client's inbox: publish it with type 'p2p'.",
                details={"field": "topic"},
            )
        if not any(matches(topic, allowed) for allowed in client.pub_topics):
            raise TopicNotAllowed(
                "The client may not publish on this topic: it matches none of its pub_topics.",
                details={"field": "topic", "topic": topic, "pub_topics": list(client.pub_topics)},
            )

    @staticmethod
    async def _peer(connection: AsyncConnection, tenant: Tenant, topic: str) -> Client:
        """The addressee of a p2p message: a client of the same tenant (422 `unknown_peer`)."""
        canonical = ids.canonical_uuid(topic)
        peer = await client_repository.get_client(connection, tenant.id, canonical) if canonical else None
        if peer is None:
            raise _unknown_peer(topic)
        return peer

    def _p2p_payload(self, client: Client, payload: str, client_message_id: int | None) -> str:
        """The payload as delivered: verbatim if already an envelope, else wrapped byte-exact (§2.5.5)."""
        if is_envelope(payload):
            return payload
        envelope_id = client_message_id
        if envelope_id is None:
            counter = self._envelope_ids.get(client.id)
            if counter is None:
                counter = self._envelope_ids[client.id] = MessageIdCounter()
            envelope_id = counter.next_id()
        return build_send_envelope(envelope_id, reply_to=client.id, body=payload).decode("utf-8")

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
            tenant, client = await find_tenant_and_client(connection, app_id, tenant_id, client_id)
            message_type = fields.get("type", "pub")
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
            if message_type == "p2p":
                topic = (await self._peer(connection, tenant, topic)).id
                payload = self._p2p_payload(client, payload, client_message_id)
            else:
                self._check_publish_allowed(client, topic)
            message = HistoryMessage(
                id=ids.new_uuid(),
                tenant_id=tenant.id,
                client_id=client.id,
                type=message_type,
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
            "message_published tenant=%s client=%s type=%s message=%s delivered_to=%d saved=%s",
            tenant.id,
            client.id,
            message_type,
            message.id,
            delivered,
            save,
        )
        return message

    async def get_message(
        self, app_id: str, tenant_id: str, client_id: str, message_id: str
    ) -> HistoryMessage:
        async with self.store.read() as connection:
            client = await find_client(connection, app_id, tenant_id, client_id)
            return await self._message(connection, client, message_id)

    @staticmethod
    async def _message(connection: AsyncConnection, client: Client, message_id: str) -> HistoryMessage:
        canonical = ids.canonical_uuid(message_id)
        # A client's messages are those it published and the p2p messages addressed to it (§2.5.6).
        found = await message_repository.get_message(connection, client.id, canonical) if canonical else None
        if found is None:
            raise MessageNotFound(message_id)
        return found

    async def release(self, app_id: str, tenant_id: str, client_id: str, message_id: str) -> HistoryMessage:
        """releaseMessage: re-deliver as first published, ACL re-checked, charged, release recorded.

        A p2p message goes to its peer again, which must still be a client of the tenant."""
        async with self.store.write() as connection:
            tenant, client = await find_tenant_and_client(connection, app_id, tenant_id, client_id)
            message = await self._message(connection, client, message_id)
            if message.type == "p2p":
                await self._peer(connection, tenant, message.topic)
            else:
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
            client = await find_client(connection, app_id, tenant_id, client_id)
            query = cursor_query(client.id, start_at, end_at, descending, type=message_type)
            items = await message_repository.list_messages(
                connection,
                client.id,
                start=start_at,
                end=end_at,
                message_type=message_type,
                descending=descending,
                limit=limit + 1,
                after=position_after(cursor, query),
            )
        return page_of(items, limit, query, lambda message: (message.created_at, message.id))
