"""What the services need from the data plane, as Protocols, so services never import the broker."""

from __future__ import annotations

from typing import Protocol

from instamsg.domain.clients import Client
from instamsg.domain.tenants import Tenant


class LiveRegistry(Protocol):
    """The broker's in-memory view of clients and tenants (spec C24), kept current by the services."""

    def client_changed(self, client: Client, tenant: Tenant) -> None: ...

    def client_removed(self, client_id: str) -> None: ...

    def tenant_changed(self, tenant: Tenant) -> None: ...

    def tenant_removed(self, tenant_id: str) -> None: ...

    def is_online(self, client_id: str) -> bool: ...


class OfflineRegistry:
    """Used where no broker runs in the process (the CLI): changes reach a server on its next start."""

    def client_changed(self, client: Client, tenant: Tenant) -> None:
        pass

    def client_removed(self, client_id: str) -> None:
        pass

    def tenant_changed(self, tenant: Tenant) -> None:
        pass

    def tenant_removed(self, tenant_id: str) -> None:
        pass

    def is_online(self, client_id: str) -> bool:
        return False
