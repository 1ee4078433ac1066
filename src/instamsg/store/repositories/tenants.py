"""Tenants, always scoped to the app that owns them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from instamsg.domain.tenants import Tenant
from instamsg.store.tables import client, tenant

_clients_count = (
    select(func.count(client.c.id))
    .where(client.c.tenant_id == tenant.c.id)
    .correlate(tenant)
    .scalar_subquery()
)
_SORT_COLUMNS = {"name": tenant.c.name, "created_at": tenant.c.created_at, "updated_at": tenant.c.updated_at}


def _tenant(found: Any) -> Tenant:
    return Tenant(
        id=found["id"],
        app_id=found["app_id"],
        name=found["name"],
        description=found["description"],
        max_clients=found["max_clients"],
        max_messages=found["max_messages"],
        messages_used=found["messages_used"],
        active=found["active"],
        clients_count=found["clients_count"],
        created_at=found["created_at"],
        updated_at=found["updated_at"],
    )


def _select_tenants() -> Any:
    return select(tenant, _clients_count.label("clients_count"))


async def insert_tenant(connection: AsyncConnection, values: dict[str, Any]) -> None:
    await connection.execute(insert(tenant).values(**values))


async def get_tenant(
    connection: AsyncConnection, app_id: str, tenant_id: str, *, for_update: bool = False
) -> Tenant | None:
    query = _select_tenants().where(tenant.c.app_id == app_id, tenant.c.id == tenant_id)
    if for_update and connection.dialect.name == "postgresql":
        # Serialises quota checks of concurrent createClient calls on one tenant.
        await connection.execute(select(tenant.c.id).where(tenant.c.id == tenant_id).with_for_update())
    found = (await connection.execute(query)).mappings().first()
    return _tenant(found) if found else None


async def list_tenants(
    connection: AsyncConnection,
    app_id: str,
    *,
    active: bool | None = None,
    sort_by: str = "created_at",
    descending: bool = False,
) -> list[Tenant]:
    column = _SORT_COLUMNS[sort_by]
    query = _select_tenants().where(tenant.c.app_id == app_id)
    if active is not None:
        query = query.where(tenant.c.active == active)
    order = [column.desc(), tenant.c.id.desc()] if descending else [column.asc(), tenant.c.id.asc()]
    result = await connection.execute(query.order_by(*order))
    return [_tenant(found) for found in result.mappings()]


async def list_all_tenants(connection: AsyncConnection) -> list[Tenant]:
    result = await connection.execute(_select_tenants().order_by(tenant.c.created_at))
    return [_tenant(found) for found in result.mappings()]


async def update_tenant(connection: AsyncConnection, tenant_id: str, values: dict[str, Any]) -> None:
    await connection.execute(update(tenant).where(tenant.c.id == tenant_id).values(**values))


async def delete_tenant(connection: AsyncConnection, tenant_id: str) -> None:
    # Explicit child delete first: correct even where a backend ignores ON DELETE CASCADE.
    await connection.execute(delete(client).where(client.c.tenant_id == tenant_id))
    await connection.execute(delete(tenant).where(tenant.c.id == tenant_id))
