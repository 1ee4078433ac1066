"""What the services need from the data plane, as Protocols, so services never import the broker."""

from __future__ import annotations

from datetime import datetime
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


class DevicePushes(Protocol):
    """Server→device messages on a client's own `instamsg/clients/<U>/<kind>` topics (spec §6.1)."""

    def push(self, client_id: str, kind: str, payload: bytes, qos: int) -> bool:
        """Publish to the client if it is connected now; False (nothing queued) when it is not.

        `kind` is a `protocol.topics.TopicKind` value, e.g. "reboot" or "updateAuthToken"."""
        ...

    def disconnect(self, client_id: str, reason: str, after_seconds: float = 0.0) -> None:
        """Close the connection the client has now, if any, `after_seconds` from now (0: at once).

        A connection the client opens meanwhile is kept (e.g. after its credentials changed)."""
        ...


class OfflinePushes:
    """Where no broker runs in the process: no client is ever connected."""

    def push(self, client_id: str, kind: str, payload: bytes, qos: int) -> bool:
        return False

    def disconnect(self, client_id: str, reason: str, after_seconds: float = 0.0) -> None:
        pass


class DeviceFileCommands(Protocol):
    """File commands to a connected device (spec §10.1), answered on its reply topic (S14)."""

    async def file_command(
        self, client_id: str, method: str, filename: str | None = None, url: str | None = None
    ) -> bool | None:
        """Send the command and wait for the device's reply.

        True when the device replied status 1; False for any other status or no reply in time;
        None when the client is not connected (nothing was sent)."""
        ...


class OfflineFileCommands:
    """Where no broker runs in the process: no client is ever connected."""

    async def file_command(
        self, client_id: str, method: str, filename: str | None = None, url: str | None = None
    ) -> bool | None:
        return None


class ServerLoggingControl(Protocol):
    """Remote logging of connected devices (spec §9.1): implemented by `protocol.remote_logging`."""

    def server_logging_changed(self, client_id: str, watcher: str, until: datetime | None) -> bool:
        """Enable logging until `until` (None or a past time disables it) for the app `watcher`;
        True when the command reached the connected client now."""
        ...


class OfflineServerLogging:
    """Where no broker runs in the process: the request is stored and applied on the next start."""

    def server_logging_changed(self, client_id: str, watcher: str, until: datetime | None) -> bool:
        return False
