"""PUT C/reset_certificate (spec §2.3, §12.3, D11, S11)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from instamsg.domain.certificates import PENDING, certificate_serial
from instamsg.pki import CertificateAuthority
from instamsg.protocol.payloads import certificate_push_payload
from instamsg.rest.app import create_app
from instamsg.rest.dependencies import Services
from instamsg.services.certificates import CertificateService
from instamsg.store.store import Store
from instamsg.store.tables import client_certificate, client_pending_push
from tests.conftest import bearer_for, make_app
from tests.rest.helpers import UNKNOWN_UUID, assert_error, create_client, create_tenant

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@dataclass
class RecordingWatch:
    online: bool = False
    pending: list[tuple[str, str]] = field(default_factory=list)
    pushed: list[tuple[str, bytes]] = field(default_factory=list)
    owed: list[str] = field(default_factory=list)

    def certificate_pending(self, client_id: str, serial: str) -> None:
        self.pending.append((client_id, serial))

    def push_certificate(self, client_id: str, payload: bytes) -> bool:
        if self.online:
            self.pushed.append((client_id, payload))
        return self.online

    def push_owed(self, client_id: str) -> None:
        self.owed.append(client_id)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def watch() -> RecordingWatch:
    return RecordingWatch()


@pytest.fixture
async def certificate_api(
    services: Services, store: Store, ca: CertificateAuthority, watch: RecordingWatch
) -> AsyncIterator[httpx.AsyncClient]:
    with_certificates = dataclasses.replace(
        services,
        certificates=CertificateService(store, services.clients, ca.issue_client_certificate, watch),
    )
    transport = httpx.ASGITransport(app=create_app(with_certificates, max_body_bytes=65536))
    async with httpx.AsyncClient(transport=transport, base_url="http://instamsg.test") as client:
        yield client


@pytest.fixture
async def certificate_auth(certificate_api: httpx.AsyncClient, services: Services) -> dict[str, str]:
    return await bearer_for(certificate_api, await make_app(services, "certificates"))


async def secure_client(api: httpx.AsyncClient, auth: dict[str, str], secure: bool = True) -> tuple[str, str]:
    tenant = await create_tenant(api, auth)
    created = await create_client(api, auth, tenant["id"], secure_cert_enabled=secure)
    return tenant["id"], created["id"]


async def test_reset_certificate_issues_a_pending_certificate_and_owes_the_push_to_an_offline_client(
    certificate_api: httpx.AsyncClient,
    certificate_auth: dict[str, str],
    store: Store,
    ca: CertificateAuthority,
    watch: RecordingWatch,
) -> None:
    tenant_id, client_id = await secure_client(certificate_api, certificate_auth)
    response = await certificate_api.put(
        f"/api/v1/tenants/{tenant_id}/clients/{client_id}/reset_certificate", headers=certificate_auth
    )
    # The client is offline: the updateCert push waits for its next connect (C11).
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"certificate", "key", "not_after", "sent"} and body["sent"] is False
    assert TIMESTAMP.match(body["not_after"])
    certificate = x509.load_pem_x509_certificate(body["certificate"].encode())
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == client_id
    certificate.verify_directly_issued_by(ca.certificate)
    assert body["key"].startswith("-----BEGIN PRIVATE KEY-----\n")
    key = load_pem_private_key(body["key"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048

    serial = certificate_serial(body["certificate"])
    assert watch.pending == [(client_id, serial)]
    assert watch.owed == [client_id]
    async with store.read() as connection:
        rows = (await connection.execute(select(client_certificate))).mappings().all()
        pushes = (await connection.execute(select(client_pending_push))).mappings().all()
    assert [(row["client_id"], row["serial"], row["status"]) for row in rows] == [
        (client_id, serial, PENDING)
    ]
    assert len(pushes) == 1
    assert pushes[0]["topic"] == f"instamsg/clients/{client_id}/updateCert"
    assert pushes[0]["qos"] == 1
    assert pushes[0]["payload"].encode() == certificate_push_payload(body["certificate"], body["key"])


async def test_reset_certificate_pushes_at_once_to_an_online_client(
    certificate_api: httpx.AsyncClient, certificate_auth: dict[str, str], store: Store, watch: RecordingWatch
) -> None:
    watch.online = True
    tenant_id, client_id = await secure_client(certificate_api, certificate_auth)
    response = await certificate_api.put(
        f"/api/beta/tenants/{tenant_id}/clients/{client_id}/reset_certificate",
        headers={**certificate_auth, "Content-Type": "text/plain"},
        content=b"{}",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sent"] is True
    assert watch.pushed == [(client_id, certificate_push_payload(body["certificate"], body["key"]))]
    assert watch.pushed[0][1].startswith(b'{"secure_ssl_certificate": true, "certificate": "-----BEGIN')
    assert watch.owed == []
    async with store.read() as connection:
        assert (await connection.execute(select(client_pending_push))).first() is None


async def test_reset_certificate_needs_secure_cert_enabled(
    certificate_api: httpx.AsyncClient, certificate_auth: dict[str, str], watch: RecordingWatch
) -> None:
    tenant_id, client_id = await secure_client(certificate_api, certificate_auth, secure=False)
    response = await certificate_api.put(
        f"/api/v1/tenants/{tenant_id}/clients/{client_id}/reset_certificate", headers=certificate_auth
    )
    assert_error(response, 409, "secure_cert_not_enabled")
    assert watch.pending == []


async def test_reset_certificate_unknown_client_is_404(
    certificate_api: httpx.AsyncClient, certificate_auth: dict[str, str]
) -> None:
    tenant_id, _ = await secure_client(certificate_api, certificate_auth)
    response = await certificate_api.put(
        f"/api/v1/tenants/{tenant_id}/clients/{UNKNOWN_UUID}/reset_certificate", headers=certificate_auth
    )
    assert_error(response, 404, "client_not_found")


async def test_reset_certificate_without_a_certificate_authority_is_503(services: Services) -> None:
    without_authority = dataclasses.replace(services, certificates=None)
    transport = httpx.ASGITransport(app=create_app(without_authority))
    async with httpx.AsyncClient(transport=transport, base_url="http://instamsg.test") as api:
        credentials = await make_app(services)
        auth = await bearer_for(api, credentials)
        tenant_id, client_id = await secure_client(api, auth)
        response = await api.put(
            f"/api/v1/tenants/{tenant_id}/clients/{client_id}/reset_certificate", headers=auth
        )
    assert_error(response, 503, "service_unavailable")
