"""Shared fixtures: a store on SQLite and on PostgreSQL, services, an in-process REST client."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from instamsg.pki import CertificateAuthority, IssuedCertificate
from instamsg.rest.app import create_app
from instamsg.rest.dependencies import Services
from instamsg.services.activity import ActivityService
from instamsg.services.apps import AppService
from instamsg.services.certificates import CertificateService
from instamsg.services.clients import ClientService
from instamsg.services.commands import CommandService
from instamsg.services.configs import ConfigService
from instamsg.services.files import FileService
from instamsg.services.messages import MessageService
from instamsg.services.ports import OfflineDelivery, OfflinePushes, OfflineRegistry
from instamsg.services.telemetry import TelemetryService
from instamsg.services.tenants import TenantService
from instamsg.store.file_store import FileStore
from instamsg.store.store import Store
from tests.support.fixtures import *  # noqa: F403
from tests.support.instamsg_server import RUNNING


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same tests run against an SQLite file and a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'instamsg.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = Store.from_url(database_url)
    await store.upgrade()
    yield store
    await store.close()


@pytest.fixture
def delivery() -> OfflineDelivery:
    """The broker as the services see it; tests that check delivery and quota override this fixture."""
    return OfflineDelivery()


@pytest.fixture
def services(store: Store, delivery: OfflineDelivery, tmp_path: Path) -> Services:
    registry = OfflineRegistry()
    clients = ClientService(store, registry)
    authorities: list[CertificateAuthority] = []

    def issue_client_certificate(client_uuid: str) -> IssuedCertificate:
        # Created on first use: an RSA CA key costs time most REST tests do not need to spend.
        if not authorities:
            authorities.append(CertificateAuthority(tmp_path / "pki"))
        return authorities[0].issue_client_certificate(client_uuid)

    return Services(
        apps=AppService(store),
        tenants=TenantService(store, registry),
        clients=clients,
        certificates=CertificateService(store, clients, issue_client_certificate),
        messages=MessageService(store, delivery, max_payload_bytes=4096),
        files=FileService(store, FileStore(tmp_path / "files")),
        commands=CommandService(store, OfflinePushes(), max_payload_bytes=4096),
        activity=ActivityService(store),
        telemetry=TelemetryService(store, registry),
        configs=ConfigService(store),
    )


@dataclass(frozen=True)
class AppCredentials:
    client_key: str
    client_secret: str

    @property
    def basic(self) -> dict[str, str]:
        encoded = base64.b64encode(f"{self.client_key}:{self.client_secret}".encode()).decode()
        return {"Authorization": f"Basic {encoded}"}


@pytest.fixture
async def api(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The REST API in process, through httpx's ASGI transport."""
    transport = httpx.ASGITransport(app=create_app(services, max_body_bytes=65536))
    async with httpx.AsyncClient(transport=transport, base_url="http://instamsg.test") as client:
        yield client


async def make_app(services: Services, name: str = "test-app") -> AppCredentials:
    created = await services.apps.create_app(name)
    return AppCredentials(created.app.client_key, created.client_secret)


@pytest.fixture
async def credentials(services: Services) -> AppCredentials:
    return await make_app(services)


async def bearer_for(api: httpx.AsyncClient, credentials: AppCredentials) -> dict[str, str]:
    response = await api.post("/oauth2/token?grant_type=client_credentials", headers=credentials.basic)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
async def auth(api: httpx.AsyncClient, credentials: AppCredentials) -> dict[str, str]:
    """Authorization header of a fresh access token for `credentials`."""
    return await bearer_for(api, credentials)


@pytest.fixture(autouse=True)
def _stop_servers_left_by_the_test() -> Iterator[None]:
    """A test that fails half-way must not leave an `instamsg serve` process behind."""
    already_running = list(RUNNING)
    yield
    for server in [server for server in RUNNING if server not in already_running]:
        server.stop(timeout=10)
