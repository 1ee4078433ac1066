"""A whole InstaMsg node in the test's event loop (store, broker, device protocol, REST over real HTTP),
for REST tests whose effect must reach real device connections. Runs on SQLite and PostgreSQL through
the `database_url` fixture.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from instamsg.app import Platform
from instamsg.services.apps import AppService
from instamsg.settings import Settings
from tests.support.devices import Dialect, LegacyDevice

HOST = "127.0.0.1"


@dataclass
class LiveNode:
    platform: Platform
    http: httpx.AsyncClient

    @property
    def mqtt_port(self) -> int:
        port = self.platform.ports["mqtt"]
        assert port is not None
        return port

    async def tenant(self, **fields: Any) -> dict[str, Any]:
        body = {"name": "t", "max_clients": 20, "max_messages": 1000, **fields}
        response = await self.http.post("/api/v1/tenants", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def client(self, tenant: dict[str, Any], **fields: Any) -> dict[str, Any]:
        body = {"type": "device", "name": "d", **fields}
        response = await self.http.post(f"/api/v1/tenants/{tenant['id']}/clients", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def device(self, client: dict[str, Any], dialect: Dialect = "c") -> LegacyDevice:
        """A connected legacy device of the client (C and Java: layout B, implicit delivery)."""
        return await LegacyDevice.connect(
            HOST, self.mqtt_port, uuid=client["id"], token=client["auth_token"], dialect=dialect
        )


def client_path(client: dict[str, Any], suffix: str = "") -> str:
    return f"/api/v1/tenants/{client['tenant_id']}/clients/{client['id']}{suffix}"


async def start_live_node(database_url: str, data_dir: Path, **settings: Any) -> AsyncIterator[LiveNode]:
    platform = Platform(
        Settings(
            data_dir=data_dir,
            database_url=database_url,
            host=HOST,
            http_port=0,
            mqtt_port=0,
            mqtts_port="off",
            ws_port="off",
            wss_port="off",
            **settings,
        )
    )
    try:
        ports = await platform.start()
        assert platform.store is not None
        created = await AppService(platform.store).create_app("live")
        base_url = f"http://{HOST}:{ports['http']}"
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            token = await http.post(
                "/oauth2/token?grant_type=client_credentials",
                auth=(created.app.client_key, created.client_secret),
            )
            assert token.status_code == 200, token.text
            http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            yield LiveNode(platform, http)
    finally:
        await platform.stop()
