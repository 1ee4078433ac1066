"""The in-memory registry the broker authenticates and authorises from (spec C24).

Loaded at start by the application and kept current by the services; every change takes effect on live
connections through the listeners (the BrokerNode registers itself): a removed or blocked client, or a
deactivated or removed tenant, is disconnected at once; changed topic lists invalidate cached ACL
decisions and drop subscriptions the new `sub_topics` no longer cover.

It also holds the exact per-tenant message budget (spec §6.4, C10): one counter per tenant, shared by
the MQTT path (charged by the broker) and the REST path (`charge_tenant`).
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from instamsg.broker.ports import ClientRecord, TenantRecord

logger = logging.getLogger(__name__)

# Compared against when the client is unknown, so unknown and wrong credentials take the same time.
_DUMMY_TOKEN = b"0" * 32


class AuthOutcome(Enum):
    ACCEPTED = "accepted"
    BAD_CREDENTIALS = "bad_credentials"  # unknown client, missing or wrong token: CONNACK 4 / 0x86
    NOT_AUTHORIZED = "not_authorized"  # blocked client or inactive tenant: CONNACK 5 / 0x87


class DirectoryListener(Protocol):
    def on_client_changed(self, old: ClientRecord, new: ClientRecord) -> None: ...

    def on_client_removed(self, record: ClientRecord) -> None: ...

    def on_tenant_changed(self, record: TenantRecord) -> None: ...

    def on_tenant_removed(self, tenant_id: str) -> None: ...


@dataclass(slots=True)
class TenantBudget:
    max_messages: int
    messages_used: int


class Directory:
    __slots__ = ("_budgets", "_by_provisioning_id", "_clients", "_listeners", "_tenants")

    def __init__(self) -> None:
        self._clients: dict[str, ClientRecord] = {}
        # Provisioning id → client UUID: a provisioning CONNECT names no tenant (spec S2, §5.4).
        self._by_provisioning_id: dict[str, str] = {}
        self._tenants: dict[str, TenantRecord] = {}
        self._budgets: dict[str, TenantBudget] = {}
        self._listeners: list[DirectoryListener] = []

    def add_listener(self, listener: DirectoryListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: DirectoryListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def load(self, tenants: Iterable[TenantRecord], clients: Iterable[ClientRecord]) -> None:
        """Replace the whole content (at start); live connections are not re-checked."""
        self._tenants = {tenant.id: tenant for tenant in tenants}
        self._budgets = {
            tenant.id: TenantBudget(tenant.max_messages, tenant.messages_used)
            for tenant in self._tenants.values()
        }
        self._clients = {client.uuid.lower(): _lower_uuid(client) for client in clients}
        self._by_provisioning_id = {
            client.provisioning_id: uuid
            for uuid, client in self._clients.items()
            if client.provisioning_id is not None
        }

    # ---- tenants ---------------------------------------------------------------------------------

    def upsert_tenant(self, record: TenantRecord) -> None:
        """Add or change a tenant; the budget takes the new limit at once (raising it lifts a block).

        Usage never goes backwards here: the in-memory counter is exact and the stored
        `messages_used` may lag it by one metering period.
        """
        self._tenants[record.id] = record
        budget = self._budgets.get(record.id)
        if budget is None:
            self._budgets[record.id] = TenantBudget(record.max_messages, record.messages_used)
        else:
            budget.max_messages = record.max_messages
            budget.messages_used = max(budget.messages_used, record.messages_used)
        for listener in self._listeners:
            listener.on_tenant_changed(record)

    def remove_tenant(self, tenant_id: str) -> None:
        self._tenants.pop(tenant_id, None)
        self._budgets.pop(tenant_id, None)
        for uuid in [uuid for uuid, client in self._clients.items() if client.tenant_id == tenant_id]:
            self._unindex(self._clients.pop(uuid))
        for listener in self._listeners:
            listener.on_tenant_removed(tenant_id)

    def get_tenant(self, tenant_id: str) -> TenantRecord | None:
        return self._tenants.get(tenant_id)

    def tenant_active(self, tenant_id: str) -> bool:
        tenant = self._tenants.get(tenant_id)
        return tenant is not None and tenant.active

    def charge_tenant(self, tenant_id: str, units: int = 1) -> bool:
        """Charge the budget if it allows; False when exhausted (`used >= max` refuses; 0 allows none)."""
        budget = self._budgets.get(tenant_id)
        if budget is None or budget.messages_used + units > budget.max_messages:
            return False
        budget.messages_used += units
        return True

    def messages_used(self, tenant_id: str) -> int:
        budget = self._budgets.get(tenant_id)
        return 0 if budget is None else budget.messages_used

    # ---- clients ---------------------------------------------------------------------------------

    def upsert_client(self, record: ClientRecord) -> None:
        record = _lower_uuid(record)
        old = self._clients.get(record.uuid)
        self._clients[record.uuid] = record
        if old is not None:
            self._unindex(old)
        if record.provisioning_id is not None:
            self._by_provisioning_id[record.provisioning_id] = record.uuid
        if old is not None:
            for listener in self._listeners:
                listener.on_client_changed(old, record)

    def remove_client(self, uuid: str) -> None:
        record = self._clients.pop(uuid.lower(), None)
        if record is not None:
            self._unindex(record)
            for listener in self._listeners:
                listener.on_client_removed(record)

    def get_client(self, uuid: str) -> ClientRecord | None:
        return self._clients.get(uuid.lower())

    def find_by_provisioning_id(self, provisioning_id: str) -> ClientRecord | None:
        """The client a provisioning CONNECT names, server-wide (exact, case-sensitive match)."""
        uuid = self._by_provisioning_id.get(provisioning_id)
        return None if uuid is None else self._clients.get(uuid)

    def _unindex(self, record: ClientRecord) -> None:
        key = record.provisioning_id
        if key is not None and self._by_provisioning_id.get(key) == record.uuid:
            del self._by_provisioning_id[key]

    def authenticate(self, uuid: str, password: bytes | None) -> tuple[AuthOutcome, ClientRecord | None]:
        """Check a token in constant time; lookup failure and a wrong token are indistinguishable."""
        record = self._clients.get(uuid.lower())
        expected = record.auth_token.encode() if record is not None else _DUMMY_TOKEN
        supplied = password if password is not None else b""
        token_ok = hmac.compare_digest(expected, supplied)
        if record is None or password is None or not token_ok:
            return AuthOutcome.BAD_CREDENTIALS, None
        if record.blocked or not self.tenant_active(record.tenant_id):
            return AuthOutcome.NOT_AUTHORIZED, record
        return AuthOutcome.ACCEPTED, record

    def __len__(self) -> int:
        return len(self._clients)


def _lower_uuid(record: ClientRecord) -> ClientRecord:
    if record.uuid.islower() or record.uuid == record.uuid.lower():
        return record
    return dataclasses.replace(record, uuid=record.uuid.lower())
