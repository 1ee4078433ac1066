"""Message history rows (spec §6.5), always read through their client.

A client's messages are the rows it published (`client_id`) and the p2p rows addressed to it
(`peer_id`); each side has its own (client, created_at, id) index, so a page is the merge of two
index range scans.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, insert, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection

from instamsg.domain.messages import HistoryMessage
from instamsg.store.tables import message


def _message(found: Any) -> HistoryMessage:
    return HistoryMessage(
        id=found["id"],
        tenant_id=found["tenant_id"],
        client_id=found["client_id"],
        type=found["type"],
        topic=found["topic"],
        payload=found["payload"],
        qos=found["qos"],
        client_message_id=found["client_message_id"],
        duplicate=found["duplicate"],
        saved=found["saved"],
        source=found["source"],
        delivered_to=found["delivered_to"],
        releases=list(found["releases"] or []),
        created_at=found["created_at"],
    )


def history_row(found: HistoryMessage) -> dict[str, Any]:
    """The `message` row of a history message."""
    return {
        "id": found.id,
        "tenant_id": found.tenant_id,
        "client_id": found.client_id,
        "type": found.type,
        # A p2p message's topic is its addressee's canonical UUID.
        "peer_id": found.topic if found.type == "p2p" else None,
        "topic": found.topic,
        "payload": found.payload,
        "qos": found.qos,
        "client_message_id": found.client_message_id,
        "duplicate": found.duplicate,
        "saved": found.saved,
        "source": found.source,
        "delivered_to": found.delivered_to,
        "releases": found.releases,
        "created_at": found.created_at,
    }


async def insert_messages(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await connection.execute(insert(message), rows)


async def get_message(connection: AsyncConnection, client_id: str, message_id: str) -> HistoryMessage | None:
    """A message the client published, or a p2p message addressed to it."""
    result = await connection.execute(
        select(message).where(
            message.c.id == message_id, or_(message.c.client_id == client_id, message.c.peer_id == client_id)
        )
    )
    found = result.mappings().first()
    return _message(found) if found else None


async def set_releases(connection: AsyncConnection, message_id: str, releases: list[dict[str, Any]]) -> None:
    await connection.execute(update(message).where(message.c.id == message_id).values(releases=releases))


async def set_delivered_to(connection: AsyncConnection, message_id: str, delivered_to: int) -> None:
    await connection.execute(
        update(message).where(message.c.id == message_id).values(delivered_to=delivered_to)
    )


def _page_of(
    side: ColumnElement[bool],
    *,
    start: datetime | None,
    end: datetime | None,
    message_type: str | None,
    descending: bool,
    limit: int,
    after: tuple[datetime, str] | None,
) -> Select[Any]:
    """One side's rows of a page in (created_at, id) order; `after` is the previous page's last row."""
    query = select(message).where(side)
    if start is not None:
        query = query.where(message.c.created_at >= start)
    if end is not None:
        query = query.where(message.c.created_at <= end)
    if message_type is not None:
        query = query.where(message.c.type == message_type)
    if after is not None:
        created_at, last_id = after
        if descending:
            query = query.where(
                or_(
                    message.c.created_at < created_at,
                    and_(message.c.created_at == created_at, message.c.id < last_id),
                )
            )
        else:
            query = query.where(
                or_(
                    message.c.created_at > created_at,
                    and_(message.c.created_at == created_at, message.c.id > last_id),
                )
            )
    if descending:
        query = query.order_by(message.c.created_at.desc(), message.c.id.desc())
    else:
        query = query.order_by(message.c.created_at.asc(), message.c.id.asc())
    return query.limit(limit)


async def list_messages(
    connection: AsyncConnection,
    client_id: str,
    *,
    start: datetime | None,
    end: datetime | None,
    message_type: str | None,
    descending: bool,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[HistoryMessage]:
    """One page in (created_at, id) order over the client's sent and received messages (keyset).

    Each side is read through its own index, at most `limit` rows, and the two are merged; a p2p
    message a client sent to itself is listed once, as sent.
    """

    def side_page(side: ColumnElement[bool]) -> Any:
        return _page_of(
            side,
            start=start,
            end=end,
            message_type=message_type,
            descending=descending,
            limit=limit,
            after=after,
        ).subquery()

    sent = side_page(message.c.client_id == client_id)
    if message_type == "pub":
        # Only p2p rows are ever addressed to a client.
        query: Select[Any] = select(sent)
    else:
        received = side_page(and_(message.c.peer_id == client_id, message.c.client_id != client_id))
        both = union_all(select(sent), select(received)).subquery()
        query = select(both)
    query = query.order_by(
        *(
            (query.selected_columns.created_at.desc(), query.selected_columns.id.desc())
            if descending
            else (query.selected_columns.created_at.asc(), query.selected_columns.id.asc())
        )
    ).limit(limit)
    result = await connection.execute(query)
    return [_message(found) for found in result.mappings()]
