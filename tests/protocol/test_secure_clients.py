"""Secure clients on the TLS listener: certificates from the server CA, revocation, first use of a reset
certificate, and the updateCert push owed to an offline client (spec §3.3, §4.2, D11, S10, S11, C16,
§12.3, §15 item 9)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from instamsg.broker import BrokerNode, BrokerSettings, ClientRecord, Directory, TenantRecord
from instamsg.domain.certificates import ACTIVE, PENDING, REVOKED, certificate_serial
from instamsg.mqtt.encoder import encode
from instamsg.mqtt.packets import Connect
from instamsg.pki import CertificateAuthority, IssuedCertificate, server_ssl_contexts
from instamsg.protocol.identity import install_identity
from instamsg.protocol.implicit import install_implicit_delivery
from instamsg.protocol.payloads import certificate_push_payload
from instamsg.protocol.plugin import DeviceProtocol
from instamsg.protocol.secure_clients import SecureClients
from tests.broker.support import RawClient, publish_bytes

SECURE = "aaaaaaaa-0000-4000-8000-000000000001"
OTHER_SECURE = "aaaaaaaa-0000-4000-8000-000000000002"
PLAIN = "aaaaaaaa-0000-4000-8000-000000000003"
TOKEN = "5" * 32


@dataclass
class MemoryRecords:
    """`CertificateRecords` in memory: what the broker side asks storage to do, observable."""

    statuses: dict[str, tuple[str, str]] = field(default_factory=dict)
    pushes: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    activated: list[tuple[str, str]] = field(default_factory=list)

    async def load_statuses(self) -> list[tuple[str, str, str]]:
        return [(client_id, serial, status) for serial, (client_id, status) in self.statuses.items()]

    async def add_active(self, client_id: str, serial: str, not_after: datetime) -> None:
        self.statuses[serial] = (client_id, ACTIVE)

    async def activate(self, client_id: str, serial: str) -> None:
        self.activated.append((client_id, serial))

    async def clients_with_pending_pushes(self, kind: str) -> set[str]:
        return {client_id for client_id, _ in self.pushes.values()}

    async def pending_pushes(self, client_id: str, kind: str) -> list[tuple[str, bytes]]:
        return [(push_id, payload) for push_id, (owner, payload) in self.pushes.items() if owner == client_id]

    async def delete_pending_push(self, push_id: str) -> None:
        del self.pushes[push_id]


@dataclass
class Tls:
    node: BrokerNode
    secure_clients: SecureClients
    records: MemoryRecords
    ca: CertificateAuthority
    directory: Path

    def files(self, issued: IssuedCertificate) -> tuple[Path, Path]:
        serial = certificate_serial(issued.certificate_pem)
        certificate, key = self.directory / f"{serial}.pem", self.directory / f"{serial}.key"
        certificate.write_text(issued.certificate_pem)
        key.write_text(issued.key_pem)
        return certificate, key

    async def open(self, certificate: IssuedCertificate | None = None) -> RawClient:
        # Like the Python and C libraries: no server verification and no SNI (spec §3.3).
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if certificate is not None:
            context.load_cert_chain(*self.files(certificate))
        port = self.node.ports["mqtts"]
        assert port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="")
        return RawClient(reader, writer)


def layout_b(uuid: str, token: str = TOKEN) -> bytes:
    return encode(
        Connect(
            protocol_name="MQIsdp",
            protocol_level=3,
            clean_start=True,
            keep_alive=0,
            client_id="EMPTY",
            username=uuid,
            password=token.encode(),
            will=None,
            properties={},
        ),
        3,
    )


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def issued(ca: CertificateAuthority) -> dict[str, list[IssuedCertificate]]:
    """Two certificates for each secure client and one for the plain client, issued once (RSA is slow)."""
    return {
        SECURE: [ca.issue_client_certificate(SECURE), ca.issue_client_certificate(SECURE)],
        OTHER_SECURE: [ca.issue_client_certificate(OTHER_SECURE)],
        PLAIN: [ca.issue_client_certificate(PLAIN)],
    }


@pytest.fixture
async def tls(ca: CertificateAuthority, tmp_path: Path) -> AsyncIterator[Tls]:
    directory = Directory()
    directory.load(
        [TenantRecord("tenant-1", active=True, max_messages=1000, messages_used=0)],
        [
            ClientRecord(SECURE, "tenant-1", TOKEN, (), (), secure_cert_enabled=True),
            ClientRecord(OTHER_SECURE, "tenant-1", TOKEN, (), (), secure_cert_enabled=True),
            ClientRecord(PLAIN, "tenant-1", TOKEN, (), ()),
        ],
    )
    server_context, _ = server_ssl_contexts(
        ca, tmp_path, certificate=None, key=None, hostnames=["localhost", "127.0.0.1"]
    )
    node = BrokerNode(
        BrokerSettings(
            host="127.0.0.1", mqtt_port=0, mqtts_port=0, ssl_context=server_context, timer_resolution=0.1
        ),
        directory,
    )
    devices = DeviceProtocol(node)
    devices.install()
    install_implicit_delivery(devices)
    install_identity(devices)
    records = MemoryRecords()
    secure_clients = SecureClients(devices, records)
    secure_clients.install()
    await node.start()
    try:
        yield Tls(node, secure_clients, records, ca, tmp_path)
    finally:
        await secure_clients.drain()
        await node.stop()


async def connack(tls: Tls, uuid: str, certificate: IssuedCertificate | None, token: str = TOKEN) -> bytes:
    client = await tls.open(certificate)
    client.send(layout_b(uuid, token))
    answer = await client.read_exactly(4)
    client.close()
    return answer


async def test_checklist_9_tls_without_sni_and_without_a_certificate(tls: Tls) -> None:
    assert await connack(tls, PLAIN, None) == b"\x20\x02\x00\x00"


async def test_checklist_9_secure_client_without_a_certificate_is_refused_with_5(tls: Tls) -> None:
    assert await connack(tls, SECURE, None) == b"\x20\x02\x00\x05"


async def test_checklist_9_secure_client_with_another_clients_certificate_is_refused_with_5(
    tls: Tls, issued: dict[str, list[IssuedCertificate]]
) -> None:
    assert await connack(tls, SECURE, issued[OTHER_SECURE][0]) == b"\x20\x02\x00\x05"


async def test_secure_client_with_its_own_certificate_and_token_is_accepted(
    tls: Tls, issued: dict[str, list[IssuedCertificate]]
) -> None:
    assert await connack(tls, SECURE, issued[SECURE][0]) == b"\x20\x02\x00\x00"
    # The certificate does not replace the token (C16).
    assert await connack(tls, SECURE, issued[SECURE][0], token="0" * 32) == b"\x20\x02\x00\x04"


async def test_s10_any_client_presenting_another_clients_certificate_is_refused(
    tls: Tls, issued: dict[str, list[IssuedCertificate]]
) -> None:
    assert await connack(tls, PLAIN, issued[SECURE][0]) == b"\x20\x02\x00\x05"
    assert await connack(tls, PLAIN, issued[PLAIN][0]) == b"\x20\x02\x00\x00"


async def test_a_revoked_certificate_is_refused_with_5(
    tls: Tls, issued: dict[str, list[IssuedCertificate]]
) -> None:
    first, second = issued[SECURE]
    # Provisioning issued `second`: it replaces `first` at once (S11).
    tls.secure_clients.issued_active(SECURE, first)
    tls.secure_clients.issued_active(SECURE, second)
    assert tls.secure_clients.status(certificate_serial(first.certificate_pem)) == REVOKED
    assert await connack(tls, SECURE, first) == b"\x20\x02\x00\x05"
    assert await connack(tls, SECURE, first, token="0" * 32) == b"\x20\x02\x00\x04"  # step 7 before step 8
    assert await connack(tls, SECURE, second) == b"\x20\x02\x00\x00"
    await tls.secure_clients.drain()
    assert tls.records.statuses[certificate_serial(second.certificate_pem)] == (SECURE, ACTIVE)


async def test_s11_reset_certificate_coexists_until_first_used(
    tls: Tls, issued: dict[str, list[IssuedCertificate]]
) -> None:
    old, new = issued[SECURE]
    old_serial, new_serial = certificate_serial(old.certificate_pem), certificate_serial(new.certificate_pem)
    tls.secure_clients.issued_active(SECURE, old)
    tls.secure_clients.certificate_pending(SECURE, new_serial)  # what reset_certificate reports
    assert await connack(tls, SECURE, old) == b"\x20\x02\x00\x00"  # still accepted
    assert tls.secure_clients.status(new_serial) == PENDING
    assert await connack(tls, SECURE, new) == b"\x20\x02\x00\x00"  # first use activates it
    assert tls.secure_clients.status(new_serial) == ACTIVE
    assert tls.secure_clients.status(old_serial) == REVOKED
    assert await connack(tls, SECURE, old) == b"\x20\x02\x00\x05"
    await tls.secure_clients.drain()
    assert tls.records.activated == [(SECURE, new_serial)]


async def test_owed_update_cert_push_is_published_on_the_next_connect_and_then_forgotten(
    tls: Tls, issued: dict[str, list[IssuedCertificate]]
) -> None:
    new = issued[SECURE][1]
    payload = certificate_push_payload(new.certificate_pem, new.key_pem)
    tls.records.pushes["push-1"] = (SECURE, payload)
    tls.secure_clients.push_owed(SECURE)
    client = await tls.open(issued[SECURE][0])
    client.send(layout_b(SECURE))
    await client.expect(b"\x20\x02\x00\x00")
    # Legacy B gets updateCert implicitly (C and Java never subscribe), at QoS 1.
    expected = publish_bytes(f"instamsg/clients/{SECURE}/updateCert", payload, qos=1, packet_id=1)
    await client.expect(expected, timeout=5.0)
    await tls.secure_clients.drain()
    assert list(tls.records.pushes) == ["push-1"]  # kept until the device acknowledges it
    client.send(b"\x40\x02\x00\x01")
    for _ in range(100):  # bounded wait for the PUBACK to be processed
        await tls.secure_clients.drain()
        if not tls.records.pushes:
            break
        await asyncio.sleep(0.02)
    assert tls.records.pushes == {}
    client.close()
    client = await tls.open(issued[SECURE][0])
    client.send(layout_b(SECURE))
    await client.expect(b"\x20\x02\x00\x00")
    await client.expect_silence(0.3)  # delivered once only
    client.close()


async def test_owed_update_cert_push_never_acknowledged_is_sent_again_on_the_next_connect(
    tls: Tls, issued: dict[str, list[IssuedCertificate]]
) -> None:
    new = issued[SECURE][1]
    payload = certificate_push_payload(new.certificate_pem, new.key_pem)
    tls.records.pushes["push-1"] = (SECURE, payload)
    tls.secure_clients.push_owed(SECURE)
    expected = publish_bytes(f"instamsg/clients/{SECURE}/updateCert", payload, qos=1, packet_id=1)
    client = await tls.open(issued[SECURE][0])
    client.send(layout_b(SECURE))
    await client.expect(b"\x20\x02\x00\x00")
    await client.expect(expected, timeout=5.0)
    client.close()  # gone without a PUBACK: the device may never have stored it
    for _ in range(100):  # bounded wait for the server to see the connection end
        if tls.node.channels.get(SECURE) is None:
            break
        await asyncio.sleep(0.02)
    await tls.secure_clients.drain()
    assert list(tls.records.pushes) == ["push-1"]
    client = await tls.open(issued[SECURE][0])
    client.send(layout_b(SECURE))
    await client.expect(b"\x20\x02\x00\x00")
    await client.expect(expected, timeout=5.0)  # the same push again
    client.send(b"\x40\x02\x00\x01")
    for _ in range(100):  # bounded wait for the PUBACK to be processed
        await tls.secure_clients.drain()
        if not tls.records.pushes:
            break
        await asyncio.sleep(0.02)
    assert tls.records.pushes == {}
    client.close()


async def test_statuses_are_loaded_at_start(tls: Tls, issued: dict[str, list[IssuedCertificate]]) -> None:
    serial = certificate_serial(issued[SECURE][0].certificate_pem)
    records = MemoryRecords(statuses={serial: (SECURE, REVOKED)})
    loaded = SecureClients(tls.secure_clients.devices, records)
    await loaded.load()
    assert loaded.status(serial) == REVOKED
