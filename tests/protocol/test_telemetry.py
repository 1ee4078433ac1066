"""Telemetry ingest through a real Platform: device info, metadata, network and signal info (spec §11,
§2.4.5, §2.4.6, checklist 31), read back over the REST API on a real HTTP port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from instamsg.app import Platform
from instamsg.services.apps import AppService
from instamsg.settings import Settings
from instamsg.store.repositories import telemetry as telemetry_repository
from instamsg.store.repositories.telemetry import NetworkLogFilters
from instamsg.store.store import Store
from tests.support.devices import LegacyDevice


@dataclass
class RunningPlatform:
    platform: Platform
    http: httpx.AsyncClient
    auth: dict[str, str]
    tenant_id: str
    mqtt_port: int

    async def create_device(self) -> tuple[str, str]:
        """A new device client: (UUID, auth token)."""
        response = await self.http.post(
            f"/api/v1/tenants/{self.tenant_id}/clients",
            json={"type": "device", "name": "dev"},
            headers=self.auth,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return body["id"], body["auth_token"]

    def client_path(self, client_id: str, suffix: str) -> str:
        return f"/api/v1/tenants/{self.tenant_id}/clients/{client_id}/{suffix}"

    async def get(self, client_id: str, suffix: str, **params: Any) -> Any:
        response = await self.http.get(self.client_path(client_id, suffix), params=params, headers=self.auth)
        assert response.status_code == 200, response.text
        return response.json()

    async def connect(self, uuid: str, token: str, dialect: Any, **options: Any) -> LegacyDevice:
        return await LegacyDevice.connect(
            "127.0.0.1", self.mqtt_port, uuid=uuid, token=token, dialect=dialect, **options
        )


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """Poll `check` until it returns a truthy value, for at most `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running_platform(
    tmp_path: Path, database_url: str, **overrides: Any
) -> AsyncIterator[RunningPlatform]:
    """A whole InstaMsg node in process, with small delays so the tests stay fast."""
    options: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "host": "127.0.0.1",
        "http_port": 0,
        "mqtt_port": 0,
        "mqtts_port": None,
        "ws_port": None,
        "wss_port": None,
        "telemetry_flush_interval_seconds": 0.02,
        "config_push_on_connect_delay_seconds": 0.2,
        "legacy_push_delay_seconds": 0.05,
        "legacy_push_spacing_seconds": 0.01,
    }
    settings = Settings(**{**options, **overrides})
    platform = Platform(settings)
    ports = await platform.start()
    try:
        assert platform.store is not None and ports["http"] is not None and ports["mqtt"] is not None
        created = await AppService(platform.store).create_app("telemetry-test")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['http']}", timeout=10) as http:
            token = await http.post(
                "/oauth2/token?grant_type=client_credentials",
                auth=(created.app.client_key, created.client_secret),
            )
            assert token.status_code == 200, token.text
            auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
            tenant = await http.post(
                "/api/v1/tenants", json={"name": "t", "max_clients": 100, "max_messages": 1000}, headers=auth
            )
            assert tenant.status_code == 201, tenant.text
            yield RunningPlatform(platform, http, auth, tenant.json()["id"], ports["mqtt"])
    finally:
        await platform.stop()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[RunningPlatform]:
    # SQLite only: the store and REST tests run the same queries on PostgreSQL too.
    async with running_platform(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'instamsg.db'}") as started:
        yield started


async def test_checklist_31_python_json_and_repr_land_normalised(running: RunningPlatform) -> None:
    uuid, token = await running.create_device()
    device = await running.connect(uuid, token, "python", startup=False)
    try:
        info = b'{"model": "test", "programming_language": "python3", "instamsg_version": "1.1.2"}'
        await device.publish(f"instamsg/clients/{uuid}/info", info, 0)
        metadata = b"{'imei': '356938035643809', 'serial_number': 'S1', 'v': 1, 'gps': True, 'x': None}"
        await device.publish(f"instamsg/clients/{uuid}/metadata", metadata, 0)
        network = (
            b'{"network_interface": "wlan0", "antenna_status": "ok", "signal_strength": "-71", '
            b'"mac_id": "AA:BB:CC:DD:EE:FF", "imei": "356938035643809", "msisdn": "919", "iccid": "8991"}'
        )
        await device.publish(f"instamsg/clients/{uuid}/network", network, 0)

        async def info_merged() -> Any:
            body = await running.get(uuid, "info")
            return body if "serial_number" in body["info"] and body["network"] else None

        body = await eventually(info_merged)
        assert body["info"] == {
            "model": "test",
            "programming_language": "python3",
            "instamsg_version": "1.1.2",
            "imei": "356938035643809",
            "serial_number": "S1",
            "v": 1,
            "gps": True,
            "x": None,
        }
        assert body["library"] == {"name": "python", "version": "1.1.2"}
        assert body["state"] == "online"
        assert body["network"]["signal_strength"] == -71

        page = await running.get(uuid, "network_logs", mac_id="aa-bb-cc-dd-ee-ff")
        assert len(page["items"]) == 1
        item = page["items"][0]
        assert item["network_interface"] == "wlan0" and item["antenna_status"] == "ok"
        assert item["signal_strength"] == -71 and item["mac_id"] == "aabbccddeeff"
        assert (item["imei"], item["msisdn"], item["iccid"]) == ("356938035643809", "919", "8991")
        assert item["source_topic"] == f"instamsg/clients/{uuid}/network"
        assert item["data"]["mac_id"] == "AA:BB:CC:DD:EE:FF"
    finally:
        await device.close()


async def test_checklist_31_c_pseudo_json_with_antina_status(running: RunningPlatform) -> None:
    uuid, token = await running.create_device()
    other, _ = await running.create_device()
    device = await running.connect(uuid, token, "c")
    try:
        metadata = b"{'imei' : '', 'serial_number' : 'SN-7', 'model' : 'pi', 'client_version' : '17.6.0'}"
        await device.publish("instamsg/client/metadata", metadata, 0)
        await device.publish(
            "instamsg/client/signalinfo", b"{'antina_status' : '1', 'signal_strength' : '-60'}", 0
        )
        # A UUID-named topic is still attributed to the publishing connection (spec §6.2 item 3).
        await device.publish(f"instamsg/clients/{other}/network", b"{'antina_status' : '0'}", 0)

        async def two_logs() -> Any:
            page = await running.get(uuid, "network_logs", sort_order="asc")
            return page["items"] if len(page["items"]) == 2 else None

        first, second = await eventually(two_logs)
        assert first["antenna_status"] == "1" and first["signal_strength"] == -60
        assert first["data"] == {"antenna_status": "1", "signal_strength": -60}
        assert first["source_topic"] == "instamsg/client/signalinfo"
        assert second["antenna_status"] == "0"
        assert (await running.get(other, "network_logs"))["items"] == []

        body = await eventually(lambda: _info_with(running, uuid, "model"))
        assert body["info"]["serial_number"] == "SN-7"
        assert body["library"] == {"name": "c", "version": "17.6.0"}
        assert body["network"] == {"antenna_status": "0"}
    finally:
        await device.close()


async def test_checklist_31_unparsable_payloads_are_kept_raw(running: RunningPlatform) -> None:
    uuid, token = await running.create_device()
    device = await running.connect(uuid, token, "java")
    try:
        await device.publish("instamsg/client/signalinfo", b"\x00\xffnot json at all", 0)
        await device.publish(
            "instamsg/client/info", b'{"client_version": "3.5_pi", "programming_language": "java"}', 0
        )
        # The connection survives: a later request on it is still answered.
        assert await device.ping() == b"\xd0\x00"

        async def one_log() -> Any:
            page = await running.get(uuid, "network_logs")
            return page["items"] if page["items"] else None

        (item,) = await eventually(one_log)
        assert set(item["data"]) == {"raw"} and "not json at all" in item["data"]["raw"]
        assert item["signal_strength"] is None
        body = await eventually(lambda: _info_with(running, uuid, "client_version"))
        assert body["library"] == {"name": "java", "version": "3.5_pi"}
    finally:
        await device.close()


async def _info_with(running: RunningPlatform, uuid: str, key: str) -> Any:
    body = await running.get(uuid, "info")
    return body if key in body["info"] else None


async def test_pending_telemetry_is_flushed_on_graceful_stop(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'instamsg.db'}"
    # A flush interval far longer than the test: only the stop can write the report.
    async with running_platform(tmp_path, url, telemetry_flush_interval_seconds=3600) as started:
        uuid, token = await started.create_device()
        device = await started.connect(uuid, token, "c")
        await device.publish(
            "instamsg/client/signalinfo", b"{'antina_status' : '1', 'signal_strength' : '-60'}", 1
        )
        await device.close()
        writer = started.platform.telemetry
        assert writer is not None
        await eventually(lambda: _true(writer.pending == 1))
        assert (await started.get(uuid, "network_logs"))["items"] == []
    store = Store.from_url(url)
    try:
        async with store.read() as connection:
            (row,) = await telemetry_repository.list_network_logs(
                connection,
                uuid,
                start=None,
                end=None,
                filters=NetworkLogFilters(),
                descending=True,
                limit=10,
                after=None,
            )
    finally:
        await store.close()
    assert row["signal_strength"] == -60 and row["antenna_status"] == "1"


async def _true(value: bool) -> bool:
    return value
