"""Clients, always scoped to their tenant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from instamsg.domain.clients import Client, ClientType
from instamsg.store.tables import client

_SORT_COLUMNS = {"name": client.c.name, "created_at": client.c.created_at, "updated_at": client.c.updated_at}


def _client(found: Any) -> Client:
    return Client(
        id=found["id"],
        tenant_id=found["tenant_id"],
        type=ClientType(found["type"]),
        name=found["name"],
        description=found["description"],
        sub_topics=tuple(found["sub_topics"]),
        pub_topics=tuple(found["pub_topics"]),
        secure_cert_enabled=found["secure_cert_enabled"],
        blocked=found["blocked"],
        auth_token=found["auth_token"],
        provisioning_params=found["provisioning_params"],
        provisioned_at=found["provisioned_at"],
        profile=found["profile"],
        last_connect_at=found["last_connect_at"],
        last_disconnect_at=found["last_disconnect_at"],
        created_at=found["created_at"],
        updated_at=found["updated_at"],
    )


async def insert_client(connection: AsyncConnection, values: dict[str, Any]) -> None:
    await connection.execute(insert(client).values(**values))


async def get_client(connection: AsyncConnection, tenant_id: str, client_id: str) -> Client | None:
    result = await connection.execute(
        select(client).where(client.c.tenant_id == tenant_id, client.c.id == client_id)
    )
    found = result.mappings().first()
    return _client(found) if found else None


async def count_clients(connection: AsyncConnection, tenant_id: str) -> int:
    result = await connection.execute(select(func.count(client.c.id)).where(client.c.tenant_id == tenant_id))
    return int(result.scalar_one())


async def provisioning_id_owner(connection: AsyncConnection, provisioning_id: str) -> str | None:
    result = await connection.execute(select(client.c.id).where(client.c.provisioning_id == provisioning_id))
    return result.scalar_one_or_none()


async def list_clients(
    connection: AsyncConnection,
    tenant_ids: Sequence[str],
    *,
    client_type: str | None = None,
    secure: bool | None = None,
    sort_by: str = "created_at",
    descending: bool = False,
) -> list[Client]:
    if not tenant_ids:
        return []
    query = select(client).where(client.c.tenant_id.in_(tenant_ids))
    if client_type is not None:
        query = query.where(client.c.type == client_type)
    if secure is not None:
        query = query.where(client.c.secure_cert_enabled == secure)
    column = _SORT_COLUMNS[sort_by]
    order = [column.desc(), client.c.id.desc()] if descending else [column.asc(), client.c.id.asc()]
    result = await connection.execute(query.order_by(*order))
    return [_client(found) for found in result.mappings()]


async def list_all_clients(connection: AsyncConnection) -> list[Client]:
    result = await connection.execute(select(client).order_by(client.c.created_at))
    return [_client(found) for found in result.mappings()]


async def update_client(connection: AsyncConnection, client_id: str, values: dict[str, Any]) -> None:
    await connection.execute(update(client).where(client.c.id == client_id).values(**values))


async def delete_client(connection: AsyncConnection, client_id: str) -> None:
    await connection.execute(delete(client).where(client.c.id == client_id))
