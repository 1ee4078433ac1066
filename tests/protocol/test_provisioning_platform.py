"""Provisioning through the whole platform: REST-created clients, the store, the broker and the client
state (spec §1.4, §5.6, §5.7, §15 items 10, 11 and 13, C3, S12)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from instamsg.app import Platform
from instamsg.mqtt.encoder import encode
from instamsg.mqtt.packets import Connect
from instamsg.services.apps import AppService
from instamsg.settings import Settings
from instamsg.store.tables import client_certificate
from tests.broker.support import RawClient
from tests.rest.helpers import assert_error


@dataclass
class Running:
    platform: Platform
    api: httpx.AsyncClient
    auth: dict[str, str]

    @property
    def mqtt_port(self) -> int:
        port = self.platform.ports["mqtt"]
        assert port is not None
        return port

    async def create_client(self, tenant_id: str, **fields: Any) -> dict[str, Any]:
        response = await self.api.post(
            f"/api/v1/tenants/{tenant_id}/clients",
            json={"type": "device", "name": "d", **fields},
            headers=self.auth,
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def state(self, tenant_id: str, client_id: str) -> str:
        response = await self.api.get(f"/api/v1/tenants/{tenant_id}/clients/{client_id}", headers=self.auth)
        assert response.status_code == 200, response.text
        state: str = response.json()["state"]
        return state

    async def wait_for_state(self, tenant_id: str, client_id: str, expected: str) -> None:
        for _ in range(200):
            if await self.state(tenant_id, client_id) == expected:
                return
            await asyncio.sleep(0.025)
        assert await self.state(tenant_id, client_id) == expected

    async def logs(self, tenant_id: str, client_id: str, count: int) -> list[dict[str, Any]]:
        """The client's log entries, oldest first, once at least `count` of them are stored."""
        items: list[dict[str, Any]] = []
        for _ in range(200):
            response = await self.api.get(
                f"/api/v1/tenants/{tenant_id}/clients/{client_id}/logs?sort_order=asc", headers=self.auth
            )
            assert response.status_code == 200, response.text
            items = response.json()["items"]
            if len(items) >= count:
                break
            await asyncio.sleep(0.025)
        return items

    async def provision(self, provisioning_id: str, key: str | None) -> bytes:
        client = await RawClient.open("127.0.0.1", self.mqtt_port)
        client.send(
            encode(
                Connect(
                    protocol_name="MQIsdp",
                    protocol_level=3,
                    keep_alive=60,
                    client_id="PROVISIONING",
                    username=provisioning_id,
                    password=None if key is None else key.encode(),
                ),
                3,
            )
        )
        try:
            return await client.read_packet(timeout=10.0)
        finally:
            client.close()


@pytest.fixture
async def running(database_url: str, tmp_path: Path) -> AsyncIterator[Running]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        host="127.0.0.1",
        http_port=0,
        mqtt_port=0,
        mqtts_port=None,
        ws_port=None,
        wss_port=None,
        provisioning_close_delay_seconds=1.0,
        activity_flush_interval_seconds=0.05,
    )
    platform = Platform(settings)
    await platform.start()
    try:
        assert platform.store is not None
        created = await AppService(platform.store).create_app("provisioning")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{platform.ports['http']}") as api:
            response = await api.post(
                "/oauth2/token?grant_type=client_credentials",
                auth=(created.app.client_key, created.client_secret),
            )
            assert response.status_code == 200, response.text
            auth = {"Authorization": f"Bearer {response.json()['access_token']}"}
            yield Running(platform, api, auth)
    finally:
        await platform.stop()


async def new_tenant(running: Running) -> str:
    response = await running.api.post(
        "/api/v1/tenants", json={"name": "T", "max_clients": 10, "max_messages": 100}, headers=running.auth
    )
    assert response.status_code == 201, response.text
    tenant_id: str = response.json()["id"]
    return tenant_id


async def test_checklist_10_unprovisioned_then_provisioned_then_online(running: Running) -> None:
    tenant_id = await new_tenant(running)
    created = await running.create_client(
        tenant_id, provisioning_params={"provisioning_id": "prov-10", "provisioning_key": "KEY01a"}
    )
    client_id, token = created["id"], created["auth_token"]
    assert await running.state(tenant_id, client_id) == "unprovisioned"
    answer = await running.provision("prov-10", "KEY01a")
    assert answer == b"\xf0\x47\x00\x00" + f"{client_id}-{token}".encode()
    await running.wait_for_state(tenant_id, client_id, "provisioned")
    device = await RawClient.open("127.0.0.1", running.mqtt_port)
    device.send(
        encode(
            Connect(
                protocol_name="MQIsdp",
                protocol_level=3,
                client_id="EMPTY",
                username=client_id,
                password=token.encode(),
            ),
            3,
        )
    )
    await device.expect(b"\x20\x02\x00\x00")
    assert await running.state(tenant_id, client_id) == "online"
    device.close()
    entries = await running.logs(tenant_id, client_id, 1)
    assert [(entry["level"], entry["creator"]) for entry in entries][:1] == [("INFO", "InstaMsg")]
    assert "Provisioned" in entries[0]["message"]


async def test_checklist_12_unknown_id_and_wrong_key(running: Running) -> None:
    tenant_id = await new_tenant(running)
    created = await running.create_client(
        tenant_id, provisioning_params={"provisioning_id": "prov-12", "provisioning_key": "KEY01a"}
    )
    assert await running.provision("prov-unknown", "KEY01a") == b"\xf0\x02\x00\x02"
    assert await running.provision("prov-12", "KEY01b") == b"\xf0\x02\x00\x04"
    entries = await running.logs(tenant_id, created["id"], 1)
    assert [(entry["level"], entry["creator"]) for entry in entries] == [("WARN", "InstaMsg")]
    assert await running.state(tenant_id, created["id"]) == "unprovisioned"


async def test_checklist_13_keyless_client_and_short_key_refused_at_create(running: Running) -> None:
    tenant_id = await new_tenant(running)
    response = await running.api.post(
        f"/api/v1/tenants/{tenant_id}/clients",
        json={
            "type": "device",
            "name": "d",
            "provisioning_params": {"provisioning_id": "p13", "provisioning_key": "test"},
        },
        headers=running.auth,
    )
    assert_error(response, 400, "validation_failed")
    created = await running.create_client(tenant_id, provisioning_params={"provisioning_id": "p13"})
    for key in ("test", "", None):
        assert (
            await running.provision("p13", key)
            == b"\xf0\x47\x00\x00" + f"{created['id']}-{created['auth_token']}".encode()
        )


async def test_checklist_11_secure_client_certificate_is_recorded_active(running: Running) -> None:
    tenant_id = await new_tenant(running)
    created = await running.create_client(
        tenant_id,
        secure_cert_enabled=True,
        provisioning_params={"provisioning_id": "prov-11", "provisioning_key": "KEY01a"},
    )
    answers = [await running.provision("prov-11", "KEY01a") for _ in range(2)]
    assert all(answer[:1] == b"\xf0" for answer in answers)
    payloads = [json.loads(answer[answer.index(b"{") :]) for answer in answers]
    assert all(payload["client_id"] == created["id"] for payload in payloads)
    await running.wait_for_state(tenant_id, created["id"], "provisioned")
    store = running.platform.store
    assert store is not None
    for _ in range(200):
        async with store.read() as connection:
            rows = (await connection.execute(select(client_certificate))).mappings().all()
        if sorted(row["status"] for row in rows) == ["active", "revoked"]:
            break
        await asyncio.sleep(0.025)
    assert sorted(row["status"] for row in rows) == ["active", "revoked"]


async def test_s12_sms_is_logged_masked_and_not_sent(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    tenant_id = await new_tenant(running)
    caplog.set_level(logging.INFO, logger="instamsg.services.sms")
    created = await running.create_client(
        tenant_id,
        provisioning_params={
            "provisioning_id": "356938035643809",
            "provisioning_key": "KEY01a",
            "gsm_msisdn": "9876543210",
            "gsm_isd_code": "+91",
            "gsm_apn": "internet",
            "gsm_password": "secret",
            "gsm_send_sms": "1",
        },
    )
    lines = [record.getMessage() for record in caplog.records if "provisioning_sms" in record.getMessage()]
    assert len(lines) == 1 and "not sent: no SMS gateway configured" in lines[0]
    assert "KEY01a" not in lines[0] and "secret" not in lines[0]
    assert '"sg_apn":"internet"' in lines[0] and '"prov_pin":"********"' in lines[0]
    assert created["id"] in lines[0]
    entries = await running.logs(tenant_id, created["id"], 1)
    assert [(entry["level"], entry["creator"]) for entry in entries] == [("INFO", "InstaMsg")]
    message = entries[0]["message"]
    assert "not sent" in message and '"sg_pass":"********"' in message and '"prov_pin":"********"' in message
    assert "KEY01a" not in message and "secret" not in message


async def test_s12_sms_with_unsendable_values_is_refused_with_an_error(running: Running) -> None:
    tenant_id = await new_tenant(running)
    created = await running.create_client(tenant_id)
    response = await running.api.put(
        f"/api/v1/tenants/{tenant_id}/clients/{created['id']}",
        json={
            "provisioning_params": {
                "provisioning_id": "356938035643810",
                "gsm_msisdn": "9876543210",
                "gsm_apn": "my apn",
                "gsm_send_sms": "1",
            }
        },
        headers=running.auth,
    )
    assert response.status_code == 200, response.text
    entries = await running.logs(tenant_id, created["id"], 1)
    assert [(entry["level"], entry["creator"]) for entry in entries] == [("ERROR", "InstaMsg")]
    assert "sg_apn" in entries[0]["message"]
