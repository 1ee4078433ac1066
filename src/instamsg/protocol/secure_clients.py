"""Client certificates on the TLS listener: revocation, first use of a reset certificate, and the
`updateCert` push owed to a client that was offline when its certificate was reset (spec D11, S10, S11,
C16, §12.3).

The broker core already refuses a certificate whose CN is not the client's UUID and a secure client
without a certificate on the TLS listener. Here: a certificate whose serial is revoked is refused with
code 5; a `pending` certificate (from reset_certificate) becomes `active` on its first successful use
and revokes the client's other certificates; a certificate issued by provisioning replaces the others
at once. The statuses are held in memory for the CONNECT path and written to storage in tasks. An owed
push is forgotten only when the device acknowledges it (PUBACK); one still unacknowledged when the
device disconnects is sent again on its next connect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from instamsg.broker.directory import AuthOutcome
from instamsg.broker.hooks import HookPoint, Priority, Stop
from instamsg.broker.profiles import Refusal
from instamsg.domain.certificates import ACTIVE, PENDING, REVOKED, certificate_serial
from instamsg.mqtt.packets import Connect
from instamsg.mqtt.reason_codes import ReasonCode
from instamsg.pki import IssuedCertificate
from instamsg.protocol.identity import resolve_uuid
from instamsg.protocol.topics import TopicKind, client_topic

if TYPE_CHECKING:
    from instamsg.broker.channel import Channel
    from instamsg.broker.message import Message
    from instamsg.protocol.plugin import DeviceProtocol

logger = logging.getLogger(__name__)


class CertificateRecords(Protocol):
    """Where certificate statuses and owed `updateCert` pushes are kept (table `client_certificate`,
    `client_pending_push`)."""

    async def load_statuses(self) -> list[tuple[str, str, str]]:
        """Every (client id, serial, status)."""
        ...

    async def add_active(self, client_id: str, serial: str, not_after: datetime) -> None:
        """Record a certificate as active and revoke the client's others."""
        ...

    async def activate(self, client_id: str, serial: str) -> None:
        """Make a pending certificate active and revoke the client's others."""
        ...

    async def clients_with_pending_pushes(self, kind: str) -> set[str]: ...

    async def pending_pushes(self, client_id: str, kind: str) -> list[tuple[str, bytes]]:
        """The (push id, payload) owed to a client on its `kind` topic, oldest first."""
        ...

    async def delete_pending_push(self, push_id: str) -> None: ...


class SecureClients:
    """The certificate statuses of every client, and the hooks that enforce and advance them."""

    def __init__(self, devices: DeviceProtocol, records: CertificateRecords | None = None) -> None:
        self.devices = devices
        self.records = records
        self._statuses: dict[str, tuple[str, str]] = {}  # serial → (client id, status)
        self._serials: dict[str, set[str]] = {}  # client id → its serials
        self._owed_pushes: set[str] = set()  # clients with an updateCert push waiting for their connect
        # Owed pushes sent but not yet acknowledged: client id → payload → push id.
        self._unacknowledged: dict[str, dict[bytes, str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def load(self) -> None:
        if self.records is None:
            return
        for client_id, serial, status in await self.records.load_statuses():
            self._set(client_id, serial, status)
        self._owed_pushes = await self.records.clients_with_pending_pushes(TopicKind.UPDATE_CERT.value)

    def install(self) -> None:
        hooks = self.devices.node.hooks
        # Before the identity hooks: a revoked certificate must win over any later resolution.
        hooks.add(HookPoint.CLIENT_AUTHENTICATE, self.on_authenticate, Priority.HIGH)
        hooks.add(HookPoint.CLIENT_CONNECTED, self.on_connected, Priority.NORMAL)
        hooks.add(HookPoint.CLIENT_DISCONNECTED, self.on_disconnected, Priority.NORMAL)
        hooks.add(HookPoint.MESSAGE_ACKED, self.on_acked, Priority.NORMAL)

    # ---- in-memory statuses ----------------------------------------------------------------------

    def _set(self, client_id: str, serial: str, status: str) -> None:
        self._statuses[serial] = (client_id, status)
        self._serials.setdefault(client_id, set()).add(serial)

    def _revoke_others(self, client_id: str, keep: str) -> None:
        for serial in self._serials.get(client_id, set()):
            if serial != keep:
                self._statuses[serial] = (client_id, REVOKED)

    def status(self, serial: str) -> str | None:
        found = self._statuses.get(serial)
        return None if found is None else found[1]

    def issued_active(self, client_id: str, issued: IssuedCertificate) -> None:
        """A certificate issued by provisioning: it replaces the client's others at once (S11)."""
        serial = certificate_serial(issued.certificate_pem)
        self._set(client_id, serial, ACTIVE)
        self._revoke_others(client_id, serial)
        if self.records is not None:
            self._spawn(self.records.add_active(client_id, serial, issued.not_after))

    def certificate_pending(self, client_id: str, serial: str) -> None:
        """A certificate issued by reset_certificate (already stored as pending): active on first use."""
        self._set(client_id, serial, PENDING)

    def push_certificate(self, client_id: str, payload: bytes) -> bool:
        """Publish on the client's `updateCert` topic at QoS 1 (spec §12.3); False when it is offline."""
        return self.devices.push(client_id, TopicKind.UPDATE_CERT, payload, 1)

    def push_owed(self, client_id: str) -> None:
        """An `updateCert` push was stored for the client's next connect."""
        self._owed_pushes.add(client_id)

    # ---- hooks -----------------------------------------------------------------------------------

    def on_authenticate(self, channel: Channel, connect: Connect, resolved: object) -> Stop[Refusal] | None:
        serial = channel.connection.peer_certificate_serial
        if serial is None or self.status(serial) != REVOKED:
            return None
        # Bad credentials still get code 4 (spec §4.2 step 7 before step 8): refuse only a valid login.
        uuid = resolve_uuid(connect)
        if uuid is None:
            return None
        outcome, _ = self.devices.directory.authenticate(uuid, connect.password)
        if outcome is AuthOutcome.BAD_CREDENTIALS:
            return None
        logger.warning(
            "certificate_revoked client=%s serial=%s peer=%s", uuid, serial, channel.connection.peer
        )
        return Stop(Refusal(ReasonCode.NOT_AUTHORIZED))

    def on_connected(self, channel: Channel) -> None:
        client_id = channel.client_uuid
        serial = channel.connection.peer_certificate_serial
        if serial is not None:
            found = self._statuses.get(serial)
            if found is not None and found == (client_id, PENDING):
                self._set(client_id, serial, ACTIVE)
                self._revoke_others(client_id, serial)
                logger.info("certificate_activated client=%s serial=%s", client_id, serial)
                if self.records is not None:
                    self._spawn(self.records.activate(client_id, serial))
        if client_id in self._owed_pushes and self.records is not None:
            self._owed_pushes.discard(client_id)
            self._spawn(self._deliver_owed_pushes(client_id))

    def on_disconnected(self, channel: Channel, reason: str) -> None:
        # Sent but never acknowledged (dropped from a push queue, or lost with a clean session): the
        # stored rows are still there, so the next connect sends them again.
        client_id = channel.client_uuid
        if not self._unacknowledged.pop(client_id, None) or self.records is None:
            return
        current = self.devices.node.channels.get(client_id)
        if current is not None and current is not channel:
            # Taken over by a connection that is already up: it gets them now.
            self._spawn(self._deliver_owed_pushes(client_id))
        else:
            self._owed_pushes.add(client_id)

    def on_acked(self, client_uuid: str, message: Message) -> None:
        # Every acknowledged delivery of the node passes here: the cheapest test comes first.
        if not self._unacknowledged:
            return
        waiting = self._unacknowledged.get(client_uuid)
        if waiting is None or message.topic != client_topic(client_uuid, TopicKind.UPDATE_CERT):
            return
        push_id = waiting.pop(message.payload, None)
        if push_id is None:
            return
        if not waiting:
            del self._unacknowledged[client_uuid]
        assert self.records is not None
        logger.info("certificate_push_delivered client=%s", client_uuid)
        self._spawn(self.records.delete_pending_push(push_id))

    async def _deliver_owed_pushes(self, client_id: str) -> None:
        assert self.records is not None
        kind = TopicKind.UPDATE_CERT
        for push_id, payload in await self.records.pending_pushes(client_id, kind.value):
            if not self.devices.push(client_id, kind, payload, 1):
                self._owed_pushes.add(client_id)  # gone again: try on the next connect
                return
            # Handed over is not delivered: the row is deleted when the device acknowledges it.
            self._unacknowledged.setdefault(client_id, {})[payload] = push_id
            logger.info("certificate_push_sent client=%s", client_id)

    # ---- tasks -----------------------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("certificate_record_failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for pending storage writes (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


async def install_secure_clients(
    devices: DeviceProtocol, records: CertificateRecords | None = None
) -> SecureClients:
    secure_clients = SecureClients(devices, records)
    await secure_clients.load()
    secure_clients.install()
    return secure_clients
