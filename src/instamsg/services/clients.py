"""Clients: create, list, update, delete, and their auth tokens."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from instamsg.domain import ids
from instamsg.domain.clients import (
    Client,
    ClientState,
    ClientType,
    client_state,
    normalise_provisioning_params,
    validate_topic_list,
)
from instamsg.domain.clock import utc_now
from instamsg.domain.errors import (
    AuthTokenNotRetrievable,
    ClientNotFound,
    ProvisioningIdTaken,
    TenantClientQuotaExceeded,
    TenantNotFound,
)
from instamsg.domain.tenants import Tenant, client_quota_allows
from instamsg.services.files import StoredBytes, file_ids_of
from instamsg.services.ports import DevicePushes, LiveRegistry, OfflinePushes
from instamsg.services.sms import ProvisioningSms
from instamsg.store.repositories import clients as client_repository
from instamsg.store.repositories import tenants as tenant_repository
from instamsg.store.store import Store

logger = logging.getLogger(__name__)

# `protocol.topics.TopicKind.UPDATE_AUTH_TOKEN` (services do not import the broker side).
UPDATE_AUTH_TOKEN_KIND = "updateAuthToken"

CLIENT_FIELDS = (
    "type",
    "name",
    "description",
    "sub_topics",
    "pub_topics",
    "secure_cert_enabled",
    "provisioning_params",
    "blocked",
)


class ClientService:
    def __init__(
        self,
        store: Store,
        registry: LiveRegistry,
        pushes: DevicePushes | None = None,
        *,
        auth_token_reset_disconnect_seconds: float = 30.0,
        sms: ProvisioningSms | None = None,
        file_bytes: StoredBytes | None = None,
    ):
        self.store = store
        self.registry = registry
        # Provisioning SMS (spec §5.7, S12): without a gateway it is logged, not sent.
        self.sms = sms if sms is not None else ProvisioningSms()
        self.pushes: DevicePushes = pushes if pushes is not None else OfflinePushes()
        self.auth_token_reset_disconnect_seconds = auth_token_reset_disconnect_seconds
        # Deleting a client removes its files' bytes at once (the platform wires the file store).
        self.file_bytes = file_bytes

    def state_of(self, client: Client) -> ClientState:
        return client_state(client, online=self.registry.is_online(client.id))

    async def _tenant(
        self, connection: AsyncConnection, app_id: str, tenant_id: str, *, for_update: bool = False
    ) -> Tenant:
        canonical = ids.canonical_uuid(tenant_id)
        found = (
            await tenant_repository.get_tenant(connection, app_id, canonical, for_update=for_update)
            if canonical
            else None
        )
        if found is None:
            raise TenantNotFound(tenant_id)
        return found

    async def _client(self, connection: AsyncConnection, tenant: Tenant, client_id: str) -> Client:
        canonical = ids.canonical_uuid(client_id)
        found = await client_repository.get_client(connection, tenant.id, canonical) if canonical else None
        if found is None:
            raise ClientNotFound(client_id)
        return found

    @staticmethod
    async def _check_provisioning_id(
        connection: AsyncConnection, params: dict[str, Any] | None, client_id: str | None
    ) -> None:
        if params is None:
            return
        owner = await client_repository.provisioning_id_owner(connection, params["provisioning_id"])
        if owner is not None and owner != client_id:
            raise ProvisioningIdTaken(
                "Another client already uses this provisioning_id; it must be unique server-wide.",
                details={"field": "provisioning_params.provisioning_id"},
            )

    async def create_client(self, app_id: str, tenant_id: str, fields: dict[str, Any]) -> Client:
        now = utc_now()
        client_id = ids.new_uuid()
        provisioning_params = (
            normalise_provisioning_params(fields["provisioning_params"])
            if fields.get("provisioning_params") is not None
            else None
        )
        values = {
            "id": client_id,
            "type": ClientType(fields["type"]).value,
            "name": fields["name"],
            "description": fields.get("description") or "",
            "sub_topics": list(validate_topic_list(fields.get("sub_topics") or [], "sub_topics")),
            "pub_topics": list(validate_topic_list(fields.get("pub_topics") or [], "pub_topics")),
            "secure_cert_enabled": bool(fields.get("secure_cert_enabled", False)),
            "blocked": bool(fields.get("blocked", False)),
            "auth_token": ids.new_client_auth_token(),
            "provisioning_id": provisioning_params["provisioning_id"] if provisioning_params else None,
            "provisioning_params": provisioning_params,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self.store.write() as connection:
                tenant = await self._tenant(connection, app_id, tenant_id, for_update=True)
                count = await client_repository.count_clients(connection, tenant.id)
                if not client_quota_allows(tenant.max_clients, count):
                    raise TenantClientQuotaExceeded(
                        f"The tenant already holds its maximum of {tenant.max_clients} clients; "
                        "raise max_clients with updateTenant to add more.",
                        details={"max_clients": tenant.max_clients, "clients_count": count},
                    )
                await self._check_provisioning_id(connection, provisioning_params, None)
                await client_repository.insert_client(connection, {**values, "tenant_id": tenant.id})
                created = await client_repository.get_client(connection, tenant.id, client_id)
                tenant = await self._tenant(connection, app_id, tenant.id)
        except IntegrityError as error:
            # Two concurrent creations with one provisioning_id: the unique index decides.
            raise ProvisioningIdTaken(
                "Another client already uses this provisioning_id; it must be unique server-wide.",
                details={"field": "provisioning_params.provisioning_id"},
            ) from error
        assert created is not None
        self.registry.client_changed(created, tenant)
        logger.info("client_created tenant=%s client=%s type=%s", tenant.id, client_id, created.type.value)
        self.sms.request(created)
        return created

    async def list_clients(
        self,
        app_id: str,
        tenant_id: str | None,
        *,
        client_type: str | None = None,
        secure: bool | None = None,
        state: str | None = None,
        sort_by: str = "created_at",
        descending: bool = False,
    ) -> list[Client]:
        async with self.store.read() as connection:
            if tenant_id is None:
                tenant_ids = [found.id for found in await tenant_repository.list_tenants(connection, app_id)]
            else:
                tenant_ids = [(await self._tenant(connection, app_id, tenant_id)).id]
            clients = await client_repository.list_clients(
                connection,
                tenant_ids,
                client_type=client_type,
                secure=secure,
                sort_by=sort_by,
                descending=descending,
            )
        if state is not None and state != "all":
            clients = [found for found in clients if self.state_of(found).value == state]
        return clients

    async def get_client(self, app_id: str, tenant_id: str, client_id: str) -> Client:
        async with self.store.read() as connection:
            tenant = await self._tenant(connection, app_id, tenant_id)
            return await self._client(connection, tenant, client_id)

    async def update_client(
        self, app_id: str, tenant_id: str, client_id: str, changes: dict[str, Any]
    ) -> Client:
        unknown = set(changes) - set(CLIENT_FIELDS)
        assert not unknown, f"unexpected client fields {unknown}"
        try:
            async with self.store.write() as connection:
                tenant = await self._tenant(connection, app_id, tenant_id)
                current = await self._client(connection, tenant, client_id)
                values: dict[str, Any] = {}
                for field in ("name", "secure_cert_enabled", "blocked"):
                    if changes.get(field) is not None:
                        values[field] = changes[field]
                if "description" in changes:
                    values["description"] = changes["description"] or ""
                if changes.get("type") is not None:
                    values["type"] = ClientType(changes["type"]).value
                for field in ("sub_topics", "pub_topics"):
                    if field in changes:
                        values[field] = list(validate_topic_list(changes[field] or [], field))
                if "provisioning_params" in changes:
                    given = changes["provisioning_params"]
                    params = (
                        normalise_provisioning_params(given, previous=current.provisioning_params)
                        if given is not None
                        else None
                    )
                    await self._check_provisioning_id(connection, params, current.id)
                    values["provisioning_params"] = params
                    values["provisioning_id"] = params["provisioning_id"] if params else None
                    if params is not None and current.provisioning_params is None:
                        # A device given provisioning parameters anew must provision again (spec C3).
                        values["provisioned_at"] = None
                if values:
                    values["updated_at"] = utc_now()
                    await client_repository.update_client(connection, current.id, values)
                updated = await self._client(connection, tenant, current.id)
        except IntegrityError as error:
            raise ProvisioningIdTaken(
                "Another client already uses this provisioning_id; it must be unique server-wide.",
                details={"field": "provisioning_params.provisioning_id"},
            ) from error
        self.registry.client_changed(updated, tenant)
        if "provisioning_params" in changes:
            self.sms.request(updated)
        return updated

    async def delete_client(self, app_id: str, tenant_id: str, client_id: str) -> None:
        async with self.store.write() as connection:
            tenant = await self._tenant(connection, app_id, tenant_id)
            current = await self._client(connection, tenant, client_id)
            file_ids = await file_ids_of(connection, client_id=current.id)
            await client_repository.delete_client(connection, current.id)
        self.registry.client_removed(current.id)
        if self.file_bytes is not None:
            self.file_bytes.remove_all(file_ids)
        logger.info("client_deleted tenant=%s client=%s", tenant.id, current.id)

    async def get_auth_token(self, app_id: str, tenant_id: str, client_id: str) -> str:
        found = await self.get_client(app_id, tenant_id, client_id)
        if found.type is not ClientType.USER:
            raise AuthTokenNotRetrievable(
                "The auth token of a device client is shown only when it is created or reset; "
                "use reset_auth_token to issue a new one.",
                details={"client_id": found.id, "type": found.type.value},
            )
        return found.auth_token

    async def reset_auth_token(self, app_id: str, tenant_id: str, client_id: str) -> Client:
        async with self.store.write() as connection:
            tenant = await self._tenant(connection, app_id, tenant_id)
            current = await self._client(connection, tenant, client_id)
            await client_repository.update_client(
                connection, current.id, {"auth_token": ids.new_client_auth_token(), "updated_at": utc_now()}
            )
            updated = await self._client(connection, tenant, current.id)
        # Committed: new CONNECTs need the new token from here on (spec §12.3 step 1).
        self.registry.client_changed(updated, tenant)
        # Steps 2-3: an online client gets the raw token on updateAuthToken (only Java applies it),
        # then its existing connections, still on the old token, are closed.
        pushed = self.pushes.push(updated.id, UPDATE_AUTH_TOKEN_KIND, updated.auth_token.encode(), 1)
        if pushed:
            self.pushes.disconnect(
                updated.id, "auth_token_reset", after_seconds=self.auth_token_reset_disconnect_seconds
            )
        logger.info("client_auth_token_reset tenant=%s client=%s pushed=%s", tenant.id, current.id, pushed)
        return updated
