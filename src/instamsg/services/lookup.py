"""The client a REST call addresses: a client of one of the calling app's tenants (404 otherwise)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from instamsg.domain import ids
from instamsg.domain.clients import Client
from instamsg.domain.errors import ClientNotFound, TenantNotFound
from instamsg.domain.tenants import Tenant
from instamsg.store.repositories import clients as client_repository
from instamsg.store.repositories import tenants as tenant_repository


async def find_tenant_and_client(
    connection: AsyncConnection, app_id: str, tenant_id: str, client_id: str
) -> tuple[Tenant, Client]:
    """The app's tenant and its client; an unknown, foreign or malformed id raises TenantNotFound or
    ClientNotFound, so that another app's ids look like ids that do not exist."""
    canonical_tenant = ids.canonical_uuid(tenant_id)
    tenant = (
        await tenant_repository.get_tenant(connection, app_id, canonical_tenant) if canonical_tenant else None
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


async def find_client(connection: AsyncConnection, app_id: str, tenant_id: str, client_id: str) -> Client:
    """The app's client, as find_tenant_and_client."""
    _, client = await find_tenant_and_client(connection, app_id, tenant_id, client_id)
    return client
