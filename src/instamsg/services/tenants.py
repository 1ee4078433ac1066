"""Tenants: create, list, update and delete, always within the calling app."""

from __future__ import annotations

import logging
from typing import Any

from instamsg.domain import ids
from instamsg.domain.clock import utc_now
from instamsg.domain.errors import TenantNotFound
from instamsg.domain.tenants import Tenant
from instamsg.services.files import StoredBytes, file_ids_of
from instamsg.services.ports import LiveRegistry
from instamsg.store.repositories import tenants as tenant_repository
from instamsg.store.store import Store

logger = logging.getLogger(__name__)

TENANT_FIELDS = ("name", "description", "max_clients", "max_messages", "active")


class TenantService:
    def __init__(self, store: Store, registry: LiveRegistry, file_bytes: StoredBytes | None = None):
        self.store = store
        self.registry = registry
        # Deleting a tenant removes its files' bytes at once (the platform wires the file store).
        self.file_bytes = file_bytes

    async def create_tenant(
        self,
        app_id: str,
        *,
        name: str,
        max_clients: int,
        max_messages: int,
        description: str = "",
        active: bool = True,
    ) -> Tenant:
        now = utc_now()
        tenant_id = ids.new_uuid()
        async with self.store.write() as connection:
            await tenant_repository.insert_tenant(
                connection,
                {
                    "id": tenant_id,
                    "app_id": app_id,
                    "name": name,
                    "description": description,
                    "max_clients": max_clients,
                    "max_messages": max_messages,
                    "messages_used": 0,
                    "active": active,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            created = await tenant_repository.get_tenant(connection, app_id, tenant_id)
        assert created is not None
        self.registry.tenant_changed(created)
        logger.info("tenant_created app=%s tenant=%s", app_id, tenant_id)
        return created

    async def list_tenants(
        self,
        app_id: str,
        *,
        active: bool | None = None,
        sort_by: str = "created_at",
        descending: bool = False,
    ) -> list[Tenant]:
        async with self.store.read() as connection:
            return await tenant_repository.list_tenants(
                connection, app_id, active=active, sort_by=sort_by, descending=descending
            )

    async def get_tenant(self, app_id: str, tenant_id: str) -> Tenant:
        canonical = ids.canonical_uuid(tenant_id)
        if canonical is None:
            raise TenantNotFound(tenant_id)
        async with self.store.read() as connection:
            found = await tenant_repository.get_tenant(connection, app_id, canonical)
        if found is None:
            raise TenantNotFound(tenant_id)
        return found

    async def update_tenant(self, app_id: str, tenant_id: str, changes: dict[str, Any]) -> Tenant:
        unknown = set(changes) - set(TENANT_FIELDS)
        assert not unknown, f"unexpected tenant fields {unknown}"
        canonical = ids.canonical_uuid(tenant_id)
        if canonical is None:
            raise TenantNotFound(tenant_id)
        async with self.store.write() as connection:
            if await tenant_repository.get_tenant(connection, app_id, canonical) is None:
                raise TenantNotFound(tenant_id)
            if changes:
                await tenant_repository.update_tenant(
                    connection, canonical, {**changes, "updated_at": utc_now()}
                )
            updated = await tenant_repository.get_tenant(connection, app_id, canonical)
        assert updated is not None
        self.registry.tenant_changed(updated)
        return updated

    async def delete_tenant(self, app_id: str, tenant_id: str) -> None:
        canonical = ids.canonical_uuid(tenant_id)
        if canonical is None:
            raise TenantNotFound(tenant_id)
        async with self.store.write() as connection:
            if await tenant_repository.get_tenant(connection, app_id, canonical) is None:
                raise TenantNotFound(tenant_id)
            file_ids = await file_ids_of(connection, tenant_id=canonical)
            await tenant_repository.delete_tenant(connection, canonical)
        self.registry.tenant_removed(canonical)
        if self.file_bytes is not None:
            self.file_bytes.remove_all(file_ids)
        logger.info("tenant_deleted app=%s tenant=%s", app_id, canonical)
