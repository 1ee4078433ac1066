"""One real `instamsg serve` per module for the device SDK tests, and helpers to create clients."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from instamsg.api import Client, CreatedClient, Tenant
from tests.api.support import unique
from tests.support.instamsg_server import InstaMsgServer


@dataclass
class Platform:
    server: InstaMsgServer
    api: Client

    @property
    def mqtt_port(self) -> int:
        return int(self.server.ports["mqtt"])

    def port(self, listener: str) -> int:
        return int(self.server.ports[listener])

    def tenant(self) -> Tenant:
        return self.api.create_tenant(unique("tenant"), max_clients=20, max_messages=10_000)

    def device(self, tenant: Tenant, **options: object) -> CreatedClient:
        return self.api.create_client(tenant.id, "device", unique("device"), **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data: Path = tmp_path_factory.mktemp("serve") / "data"
    server = InstaMsgServer(data).start()
    try:
        client_key, client_secret = server.create_app("device-tests")
        with Client(server.base_url, client_key, client_secret) as api:
            yield Platform(server, api)
    finally:
        server.stop()
