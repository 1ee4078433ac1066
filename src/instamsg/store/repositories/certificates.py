"""Client certificates (spec D11, S11), server→device pushes owed to offline clients, provisioning marks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from instamsg.store.tables import client, client_certificate, client_pending_push


async def certificate_statuses(connection: AsyncConnection) -> list[tuple[str, str, str]]:
    """Every (client id, serial, status)."""
    result = await connection.execute(
        select(client_certificate.c.client_id, client_certificate.c.serial, client_certificate.c.status)
    )
    return [(row[0], row[1], row[2]) for row in result]


async def certificate_status(connection: AsyncConnection, serial: str) -> str | None:
    result = await connection.execute(
        select(client_certificate.c.status).where(client_certificate.c.serial == serial)
    )
    return result.scalar_one_or_none()


async def add_certificate(
    connection: AsyncConnection,
    client_id: str,
    serial: str,
    not_after: datetime,
    status: str,
    created_at: datetime,
) -> None:
    await connection.execute(
        insert(client_certificate).values(
            serial=serial, client_id=client_id, not_after=not_after, status=status, created_at=created_at
        )
    )


async def activate_certificate(connection: AsyncConnection, client_id: str, serial: str) -> None:
    """The serial becomes the client's only usable certificate; every other one is revoked."""
    await connection.execute(
        update(client_certificate)
        .where(client_certificate.c.client_id == client_id, client_certificate.c.serial != serial)
        .values(status="revoked")
    )
    await connection.execute(
        update(client_certificate)
        .where(client_certificate.c.client_id == client_id, client_certificate.c.serial == serial)
        .values(status="active")
    )


async def mark_provisioned(connection: AsyncConnection, client_id: str, at: datetime) -> None:
    await connection.execute(update(client).where(client.c.id == client_id).values(provisioned_at=at))


async def add_pending_push(
    connection: AsyncConnection,
    push_id: str,
    client_id: str,
    topic: str,
    payload: str,
    qos: int,
    created_at: datetime,
) -> None:
    await connection.execute(
        insert(client_pending_push).values(
            id=push_id, client_id=client_id, topic=topic, payload=payload, qos=qos, created_at=created_at
        )
    )


async def clients_with_pending_pushes(connection: AsyncConnection, topic_suffix: str) -> set[str]:
    result = await connection.execute(
        select(client_pending_push.c.client_id)
        .where(client_pending_push.c.topic.like(f"%/{topic_suffix}"))
        .distinct()
    )
    return {row[0] for row in result}


async def pending_pushes(connection: AsyncConnection, client_id: str, topic: str) -> list[tuple[str, str]]:
    """(push id, payload) of the pushes owed on one topic, oldest first."""
    result = await connection.execute(
        select(client_pending_push.c.id, client_pending_push.c.payload)
        .where(client_pending_push.c.client_id == client_id, client_pending_push.c.topic == topic)
        .order_by(client_pending_push.c.created_at, client_pending_push.c.id)
    )
    return [(row[0], row[1]) for row in result]


async def delete_pending_push(connection: AsyncConnection, push_id: str) -> None:
    await connection.execute(delete(client_pending_push).where(client_pending_push.c.id == push_id))
