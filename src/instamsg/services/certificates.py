"""Client certificates: reset_certificate (spec §12.3, D11, S11) and the stored records behind
provisioning and certificate checks (tables `client_certificate`, `client_pending_push`).

reset_certificate issues a fresh RSA-2048 key and certificate (in a worker thread: key generation is
slow), stores the certificate as `pending` (the previous one stays accepted until the client first
authenticates with the new one), and publishes it on `instamsg/clients/<U>/updateCert` if the client
is online, otherwise on its next connect. The private key is kept only as long as that push is owed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from instamsg.domain import ids
from instamsg.domain.certificates import ACTIVE, PENDING, certificate_serial
from instamsg.domain.clock import utc_now
from instamsg.domain.errors import SecureCertNotEnabled
from instamsg.pki import IssuedCertificate
from instamsg.protocol.payloads import certificate_push_payload
from instamsg.services.clients import ClientService
from instamsg.store.repositories import certificates as certificate_repository
from instamsg.store.store import Store

logger = logging.getLogger(__name__)

UPDATE_CERT_QOS: Final = 1
# The topic kind of `protocol.topics.TopicKind.UPDATE_CERT`, named here so REST never loads the broker.
UPDATE_CERT_KIND: Final = "updateCert"


def _update_cert_topic(client_id: str) -> str:
    return f"instamsg/clients/{client_id}/{UPDATE_CERT_KIND}"


CertificateIssuer = Callable[[str], IssuedCertificate]


class CertificateWatch(Protocol):
    """The broker side's in-memory view of certificates (implemented by `protocol.secure_clients`)."""

    def certificate_pending(self, client_id: str, serial: str) -> None: ...

    def push_certificate(self, client_id: str, payload: bytes) -> bool:
        """Publish on the client's `updateCert` topic at QoS 1; False when it is not connected."""
        ...

    def push_owed(self, client_id: str) -> None: ...


class NoCertificateWatch:
    """Where no broker runs in the process: a server picks the stored rows up on its next start."""

    def certificate_pending(self, client_id: str, serial: str) -> None:
        return None

    def push_certificate(self, client_id: str, payload: bytes) -> bool:
        return False

    def push_owed(self, client_id: str) -> None:
        return None


@dataclass(frozen=True, slots=True)
class ResetCertificate:
    certificate_pem: str
    key_pem: str
    not_after: datetime
    pushed: bool  # published at once (the client was online); otherwise owed to its next connect


class CertificateService:
    def __init__(
        self,
        store: Store,
        clients: ClientService,
        issue: CertificateIssuer,
        watch: CertificateWatch | None = None,
    ) -> None:
        self.store = store
        self.clients = clients
        self.issue = issue
        self.watch: CertificateWatch = watch if watch is not None else NoCertificateWatch()

    async def reset_certificate(self, app_id: str, tenant_id: str, client_id: str) -> ResetCertificate:
        found = await self.clients.get_client(app_id, tenant_id, client_id)
        if not found.secure_cert_enabled:
            raise SecureCertNotEnabled(
                "This client does not use certificates; set secure_cert_enabled with updateClient first.",
                details={"client_id": found.id},
            )
        issued = await asyncio.to_thread(self.issue, found.id)
        serial = certificate_serial(issued.certificate_pem)
        now = utc_now()
        async with self.store.write() as connection:
            await certificate_repository.add_certificate(
                connection, found.id, serial, issued.not_after, PENDING, now
            )
        self.watch.certificate_pending(found.id, serial)
        payload = certificate_push_payload(issued.certificate_pem, issued.key_pem)
        pushed = self.watch.push_certificate(found.id, payload)
        if not pushed:
            async with self.store.write() as connection:
                await certificate_repository.add_pending_push(
                    connection,
                    ids.new_uuid(),
                    found.id,
                    _update_cert_topic(found.id),
                    payload.decode("ascii"),
                    UPDATE_CERT_QOS,
                    now,
                )
            self.watch.push_owed(found.id)
        logger.info("client_certificate_reset client=%s serial=%s pushed=%d", found.id, serial, pushed)
        return ResetCertificate(issued.certificate_pem, issued.key_pem, issued.not_after, pushed)


class StoredCertificateRecords:
    """`protocol.secure_clients.CertificateRecords` and `protocol.provisioning.ProvisioningEffects` on
    the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def provisioned(self, client_id: str, at: datetime) -> None:
        async with self.store.write() as connection:
            await certificate_repository.mark_provisioned(connection, client_id, at)

    async def load_statuses(self) -> list[tuple[str, str, str]]:
        async with self.store.read() as connection:
            return await certificate_repository.certificate_statuses(connection)

    async def add_active(self, client_id: str, serial: str, not_after: datetime) -> None:
        async with self.store.write() as connection:
            await certificate_repository.add_certificate(
                connection, client_id, serial, not_after, ACTIVE, utc_now()
            )
            await certificate_repository.activate_certificate(connection, client_id, serial)

    async def activate(self, client_id: str, serial: str) -> None:
        async with self.store.write() as connection:
            await certificate_repository.activate_certificate(connection, client_id, serial)

    async def clients_with_pending_pushes(self, kind: str) -> set[str]:
        async with self.store.read() as connection:
            return await certificate_repository.clients_with_pending_pushes(connection, kind)

    async def pending_pushes(self, client_id: str, kind: str) -> list[tuple[str, bytes]]:
        topic = f"instamsg/clients/{client_id}/{kind}"
        async with self.store.read() as connection:
            rows = await certificate_repository.pending_pushes(connection, client_id, topic)
        return [(push_id, payload.encode("ascii")) for push_id, payload in rows]

    async def delete_pending_push(self, push_id: str) -> None:
        async with self.store.write() as connection:
            await certificate_repository.delete_pending_push(connection, push_id)
