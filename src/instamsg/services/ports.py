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


class MessageDelivery(Protocol):
    """The broker's delivery and the tenants' exact message budget (spec C10), for the REST paths."""

    def charge(self, tenant_id: str) -> bool:
        """Charge one message to the tenant's budget; False (nothing charged) when it is spent."""
        ...

    def deliver(
        self, tenant_id: str, publisher_uuid: str, topic: str, payload: bytes, mqtt_qos: int, dup: bool
    ) -> int:
        """Route the message as if the publisher had sent it; returns the sessions handed it."""
        ...


class OfflineDelivery:
    """Where no broker runs in the process: nothing is charged and nothing is delivered."""

    def charge(self, tenant_id: str) -> bool:
        return True

    def deliver(
        self, tenant_id: str, publisher_uuid: str, topic: str, payload: bytes, mqtt_qos: int, dup: bool
    ) -> int:
        return 0
