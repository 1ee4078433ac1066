"""Provisioning on the broker: PROVACK bytes, failure codes, keyless clients, connection handling
(spec §5, Q13-Q15, C3, §15 items 10-13)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import NameOID

from instamsg.broker import BrokerNode, BrokerSettings, ClientRecord, Directory, TenantRecord
from instamsg.domain.certificates import ACTIVE, REVOKED, certificate_serial
from instamsg.mqtt.encoder import encode
from instamsg.mqtt.packets import Connect
from instamsg.pki import CertificateAuthority, IssuedCertificate
from instamsg.protocol.identity import install_identity
from instamsg.protocol.plugin import DeviceProtocol
from instamsg.protocol.provisioning import Provisioning, install_provisioning, provack
from instamsg.protocol.secure_clients import SecureClients
from tests.broker.support import RawClient

# The example of spec §5.3.
PLAIN_UUID = "cbf7d550-7204-11e4-a2ad-543530e3bc65"
PLAIN_TOKEN = "0bd3a1c7817a4a1da772a89fcca48523"
KEYLESS_UUID = "22222222-0000-4000-8000-000000000001"
SECURE_UUID = "33333333-0000-4000-8000-000000000001"
BLOCKED_UUID = "44444444-0000-4000-8000-000000000001"
INACTIVE_UUID = "55555555-0000-4000-8000-000000000001"
CLOSED_UUID = "66666666-0000-4000-8000-000000000001"
TOKEN = "7" * 32
IMEI = "356938035643809"


@dataclass
class RecordedLog:
    entries: list[tuple[str, str, str, str]] = field(default_factory=list)

    def write(
        self, client_id: str, tenant_id: str, level: str, message: str, *, creator: str = "InstaMsg"
    ) -> None:
        self.entries.append((client_id, level, creator, message))

    def levels(self, client_id: str) -> list[str]:
        return [level for uuid, level, _, _ in self.entries if uuid == client_id]


@dataclass
class RecordedEffects:
    provisioned_clients: list[str] = field(default_factory=list)

    async def provisioned(self, client_id: str, at: datetime) -> None:
        self.provisioned_clients.append(client_id)


@dataclass
class Harness:
    node: BrokerNode
    provisioning: Provisioning
    secure_clients: SecureClients
    log: RecordedLog
    effects: RecordedEffects
    ca: CertificateAuthority
    open: Callable[[], Awaitable[RawClient]]


def provisioning_connect(
    provisioning_id: str | None, key: str | None, *, level: int = 3, client_id: str = "PROVISIONING"
) -> bytes:
    return encode(
        Connect(
            protocol_name="MQIsdp" if level == 3 else "MQTT",
            protocol_level=level,
            clean_start=True,
            keep_alive=60,
            client_id=client_id,
            username=provisioning_id,
            password=None if key is None else key.encode(),
            will=None,
            properties={},
        ),
        level,
    )


def normal_connect(uuid: str, token: str) -> bytes:
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


def records() -> list[ClientRecord]:
    def record(uuid: str, provisioning_id: str, key: str | None, **extra: object) -> ClientRecord:
        tenant = str(extra.pop("tenant", "tenant-1"))
        return ClientRecord(
            uuid,
            tenant,
            TOKEN,
            (),
            (),
            provisioning_id=provisioning_id,
            provisioning_key=key,
            **extra,  # type: ignore[arg-type]
        )

    return [
        ClientRecord(
            PLAIN_UUID,
            "tenant-1",
            PLAIN_TOKEN,
            (),
            (),
            provisioning_id="prov-plain",
            provisioning_key="KEY01a",
        ),
        record(KEYLESS_UUID, IMEI, None),
        record(SECURE_UUID, "prov-secure", "SECret1", secure_cert_enabled=True),
        record(BLOCKED_UUID, "prov-blocked", "KEY01a", blocked=True),
        record(INACTIVE_UUID, "prov-inactive", "KEY01a", tenant="tenant-off"),
        record(CLOSED_UUID, "prov-closed", None, provisioned=True, provisioning_open=False),
    ]


@pytest.fixture
async def harness(ca: CertificateAuthority) -> AsyncIterator[Harness]:
    directory = Directory()
    directory.load(
        [
            TenantRecord("tenant-1", active=True, max_messages=1000, messages_used=0),
            TenantRecord("tenant-off", active=False, max_messages=1000, messages_used=0),
        ],
        records(),
    )
    node = BrokerNode(
        BrokerSettings(host="127.0.0.1", mqtt_port=0, ws_port=0, timer_resolution=0.05, connect_timeout=5.0),
        directory,
    )
    log = RecordedLog()
    devices = DeviceProtocol(node, log)
    devices.install()
    install_identity(devices)
    secure_clients = SecureClients(devices)
    secure_clients.install()
    effects = RecordedEffects()
    provisioning = install_provisioning(
        devices,
        effects=effects,
        issue_certificate=ca.issue_client_certificate,
        secure_clients=secure_clients,
        close_delay=0.5,
    )
    await node.start()
    clients: list[RawClient] = []

    async def open_client() -> RawClient:
        port = node.ports["mqtt"]
        assert port is not None
        client = await RawClient.open("127.0.0.1", port)
        clients.append(client)
        return client

    try:
        yield Harness(node, provisioning, secure_clients, log, effects, ca, open_client)
    finally:
        for client in clients:
            client.close()
        await provisioning.drain()
        await node.stop()


async def provision(
    harness: Harness, provisioning_id: str | None, key: str | None, **kwargs: object
) -> bytes:
    client = await harness.open()
    client.send(provisioning_connect(provisioning_id, key, **kwargs))  # type: ignore[arg-type]
    packet = await client.read_packet(timeout=10.0)
    client.close()
    return packet


def test_provack_remaining_length_is_a_varint() -> None:
    assert provack(4) == b"\xf0\x02\x00\x04"
    assert provack(6, b"x" * 3100)[:5] == b"\xf0\x9e\x18\x00\x06"  # 3102, the example of §5.2


async def test_checklist_10_rc0_is_uuid_dash_token_and_nothing_else(harness: Harness) -> None:
    client = await harness.open()
    client.send(provisioning_connect("prov-plain", "KEY01a"))
    expected = b"\xf0\x47\x00\x00" + f"{PLAIN_UUID}-{PLAIN_TOKEN}".encode()
    assert len(expected) == 4 + 69
    await client.expect(expected)
    # No CONNACK, nothing else; the connection is left open for the device to close (§5.5).
    await client.expect_silence(0.2)
    assert not harness.node.is_connected(PLAIN_UUID)
    await harness.provisioning.drain()
    assert harness.effects.provisioned_clients == [PLAIN_UUID]
    assert harness.log.entries[-1][:3] == (PLAIN_UUID, "INFO", "InstaMsg")


@pytest.mark.parametrize(
    ("provisioning_id", "key", "expected"),
    [
        ("no-such-id", "KEY01a", b"\xf0\x02\x00\x02"),
        (None, None, b"\xf0\x02\x00\x02"),
        ("PROV-PLAIN", "KEY01a", b"\xf0\x02\x00\x02"),  # ids are exact
        ("prov-plain", "KEY01b", b"\xf0\x02\x00\x04"),
        ("prov-plain", "key01a", b"\xf0\x02\x00\x04"),  # keys are case-sensitive
        ("prov-plain", "", b"\xf0\x02\x00\x04"),
        ("prov-plain", None, b"\xf0\x02\x00\x04"),
        ("prov-blocked", "KEY01a", b"\xf0\x02\x00\x05"),
        ("prov-blocked", "wrong1", b"\xf0\x02\x00\x04"),
        ("prov-inactive", "KEY01a", b"\xf0\x02\x00\x05"),
    ],
)
async def test_checklist_12_failures_are_bare_provacks(
    harness: Harness, provisioning_id: str | None, key: str | None, expected: bytes
) -> None:
    client = await harness.open()
    client.send(provisioning_connect(provisioning_id, key))
    await client.expect(expected)
    await client.expect_silence(0.2)  # never a CONNACK on a provisioning connection


async def test_failures_are_logged_as_warn_on_the_matching_client(harness: Harness) -> None:
    assert await provision(harness, "prov-plain", "nope00") == b"\xf0\x02\x00\x04"
    assert await provision(harness, "prov-blocked", "KEY01a") == b"\xf0\x02\x00\x05"
    assert harness.log.levels(PLAIN_UUID) == ["WARN"]
    assert harness.log.levels(BLOCKED_UUID) == ["WARN"]
    assert harness.effects.provisioned_clients == []


@pytest.mark.parametrize("key", ["test", "", None])
async def test_checklist_13_keyless_client_accepts_any_password(harness: Harness, key: str | None) -> None:
    expected = b"\xf0\x47\x00\x00" + f"{KEYLESS_UUID}-{TOKEN}".encode()
    assert await provision(harness, IMEI, key) == expected


async def test_c3_keyless_client_may_not_provision_after_a_normal_connect(harness: Harness) -> None:
    assert (await provision(harness, IMEI, "test"))[3] == 0
    assert (await provision(harness, IMEI, None))[3] == 0  # still `provisioned`: a logged repeat
    assert harness.log.levels(KEYLESS_UUID) == ["INFO", "INFO", "WARN"]
    device = await harness.open()
    device.send(normal_connect(KEYLESS_UUID, TOKEN))
    await device.expect(b"\x20\x02\x00\x00")
    assert await provision(harness, IMEI, "test") == b"\xf0\x02\x00\x05"
    assert await provision(harness, "prov-closed", "") == b"\xf0\x02\x00\x05"


async def test_c3_operator_setting_provisioning_params_again_reopens_provisioning(harness: Harness) -> None:
    directory = harness.node.directory
    closed = directory.get_client(CLOSED_UUID)
    assert closed is not None
    assert await provision(harness, "prov-closed", "") == b"\xf0\x02\x00\x05"
    directory.upsert_client(ClientRecord(CLOSED_UUID, "tenant-1", TOKEN, (), ()))  # parameters removed
    assert await provision(harness, "prov-closed", "") == b"\xf0\x02\x00\x02"
    directory.upsert_client(
        ClientRecord(CLOSED_UUID, "tenant-1", TOKEN, (), (), provisioning_id="prov-closed-2")
    )
    assert (await provision(harness, "prov-closed-2", ""))[3] == 0


async def test_c3_client_with_a_key_provisions_again_after_connecting(harness: Harness) -> None:
    assert (await provision(harness, "prov-plain", "KEY01a"))[3] == 0
    device = await harness.open()
    device.send(normal_connect(PLAIN_UUID, PLAIN_TOKEN))
    await device.expect(b"\x20\x02\x00\x00")
    assert (await provision(harness, "prov-plain", "KEY01a"))[3] == 0
    assert harness.log.levels(PLAIN_UUID) == ["INFO", "INFO", "WARN"]


async def test_provisioning_on_mqtt_311_and_never_on_mqtt_5(harness: Harness) -> None:
    expected = b"\xf0\x47\x00\x00" + f"{PLAIN_UUID}-{PLAIN_TOKEN}".encode()
    assert await provision(harness, "prov-plain", "KEY01a", level=4) == expected
    # MQTT 5: packet type 15 is AUTH, so this is an ordinary CONNECT with an unresolvable identity.
    refused = await provision(harness, "prov-plain", "KEY01a", level=5)
    assert refused[0] == 0x20 and refused[3] == 0x86


async def test_connection_is_closed_gracefully_after_the_delay_never_reset(harness: Harness) -> None:
    client = await harness.open()
    # Unread input after the CONNECT (a PINGREQ) must not turn the close into a reset (§5.5).
    client.send(provisioning_connect("prov-plain", "KEY01a") + b"\xc0\x00")
    await client.read_packet()
    assert await client.expect_closed(timeout=5.0) == b""  # FIN after close_delay (0.5 s); no RST


async def test_directory_index_follows_changes(harness: Harness) -> None:
    directory = harness.node.directory
    assert directory.find_by_provisioning_id("prov-plain") is not None
    directory.remove_client(PLAIN_UUID)
    assert directory.find_by_provisioning_id("prov-plain") is None
    assert await provision(harness, "prov-plain", "KEY01a") == b"\xf0\x02\x00\x02"
    directory.remove_tenant("tenant-off")
    assert directory.find_by_provisioning_id("prov-inactive") is None


def parse_provack(packet: bytes) -> tuple[int, bytes]:
    assert packet[0] == 0xF0
    remaining, multiplier, index = 0, 1, 1
    while True:
        byte = packet[index]
        remaining += (byte & 0x7F) * multiplier
        multiplier *= 128
        index += 1
        if not byte & 0x80:
            break
    body = packet[index:]
    assert len(body) == remaining and body[0] == 0
    return body[1], body[2:]


async def test_checklist_11_secure_client_gets_rc6_json(harness: Harness) -> None:
    return_code, payload = parse_provack(await provision(harness, "prov-secure", "SECret1"))
    assert return_code == 6
    text = payload.decode("ascii")
    assert b"\n" not in payload and b"\r" not in payload
    match = re.fullmatch(
        r'\{"client_id": "(?P<uuid>[^"]+)", "auth_token": "(?P<token>[^"]+)", '
        r'"secure_ssl_certificate": true, "certificate": "(?P<cert>[^"]+)", "key": "(?P<key>[^"]+)"\}',
        text,
    )
    assert match is not None, text
    assert match["uuid"] == SECURE_UUID and match["token"] == TOKEN
    for name in ("cert", "key"):
        assert len(match[name]) < 1900
        assert "\\n" in match[name] and set(match[name].replace("\\n", "")) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=- "
        )
    decoded = json.loads(text)
    assert decoded["secure_ssl_certificate"] is True
    assert decoded["key"].startswith("-----BEGIN PRIVATE KEY-----\n")
    key = load_pem_private_key(decoded["key"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    certificate = x509.load_pem_x509_certificate(decoded["certificate"].encode())
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == SECURE_UUID
    certificate.verify_directly_issued_by(harness.ca.certificate)
    certificate_key = certificate.public_key()
    assert isinstance(certificate_key, rsa.RSAPublicKey)
    assert certificate_key.public_numbers() == key.public_key().public_numbers()
    await harness.provisioning.drain()
    assert harness.effects.provisioned_clients == [SECURE_UUID]


async def test_rc6_replaces_the_previous_certificate_at_once(harness: Harness) -> None:
    serials = []
    for _ in range(2):
        _, payload = parse_provack(await provision(harness, "prov-secure", "SECret1"))
        serials.append(certificate_serial(json.loads(payload)["certificate"]))
    await harness.provisioning.drain()
    assert harness.secure_clients.status(serials[0]) == REVOKED
    assert harness.secure_clients.status(serials[1]) == ACTIVE


async def test_rc6_failure_to_issue_is_rc3(harness: Harness, tmp_path: Path) -> None:
    def broken(uuid: str) -> object:
        raise OSError("CA key unreadable")

    harness.provisioning.issue_certificate = broken  # type: ignore[assignment]
    assert await provision(harness, "prov-secure", "SECret1") == b"\xf0\x02\x00\x03"
    assert harness.log.levels(SECURE_UUID) == ["ERROR"]


async def test_store_failure_in_the_checks_is_rc3_not_connack(harness: Harness) -> None:
    class FailingDirectory:
        def find_by_provisioning_id(self, provisioning_id: str) -> None:
            raise RuntimeError("directory unavailable")

    harness.provisioning.directory = FailingDirectory()  # type: ignore[assignment]
    assert await provision(harness, "prov-plain", "KEY01a") == b"\xf0\x02\x00\x03"


async def test_rc6_abandoned_when_the_device_left_before_the_certificate_was_ready(harness: Harness) -> None:
    issue = harness.ca.issue_client_certificate
    started = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow_issue(uuid: str) -> IssuedCertificate:
        loop.call_soon_threadsafe(started.set)
        time.sleep(0.3)  # the device gives up meanwhile
        return issue(uuid)

    harness.provisioning.issue_certificate = slow_issue
    client = await harness.open()
    client.send(provisioning_connect("prov-secure", "SECret1"))
    await asyncio.wait_for(started.wait(), 5)
    client.close()
    await harness.provisioning.drain()
    assert harness.effects.provisioned_clients == []
    assert harness.log.levels(SECURE_UUID) == []


async def test_provack_over_websocket_is_one_binary_message(harness: Harness) -> None:
    port = harness.node.ports["ws"]
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        payload = provisioning_connect("prov-plain", "KEY01a")
        mask = b"\x0a\x0b\x0c\x0d"
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        writer.write(bytes((0x82, 0x80 | len(payload))) + mask + masked)
        expected = b"\xf0\x47\x00\x00" + f"{PLAIN_UUID}-{PLAIN_TOKEN}".encode()
        assert await asyncio.wait_for(reader.readexactly(2 + len(expected)), 2) == b"\x82\x49" + expected
    finally:
        writer.close()


def test_directory_provisioning_index_moves_with_the_id() -> None:
    directory = Directory()
    first = ClientRecord("A0000000-0000-4000-8000-000000000001", "t", TOKEN, (), (), provisioning_id="p")
    second = ClientRecord("a0000000-0000-4000-8000-000000000002", "t", TOKEN, (), ())
    directory.load([], [first, second])
    found = directory.find_by_provisioning_id("p")
    assert found is not None and found.uuid == first.uuid.lower()
    # The id moves to the second client (the first update frees it, the second takes it), in either order.
    directory.upsert_client(dataclasses.replace(second, provisioning_id="p"))
    directory.upsert_client(dataclasses.replace(first, provisioning_id=None))
    found = directory.find_by_provisioning_id("p")
    assert found is not None and found.uuid == second.uuid
    directory.remove_client(first.uuid)
    assert directory.find_by_provisioning_id("p") is not None
