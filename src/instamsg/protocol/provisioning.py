"""Provisioning: a CONNECT in layout P answered with exactly one PROVACK (spec §5, Q13-Q15, C3).

The device sends ClientIdentifier `PROVISIONING`, username = provisioning id, password = provisioning
key, over `MQIsdp`/3 (also accepted on MQTT 3.1.1; never on MQTT 5, where packet type 15 is AUTH). Every
outcome is a PROVACK (`F0 <remaining length> 00 <rc> <payload>`), never a CONNACK, and the connection
is never reset: it is left for the client to close and closed gracefully after a delay (§5.5).

Secure clients (`secure_cert_enabled`) get rc 6 with a fresh key and certificate. RSA key generation
takes a noticeable time, so it runs in a worker thread and the PROVACK is written when it is done.

Attempts are throttled per peer address and per provisioning id (token buckets), since every attempt
costs a lookup and possibly a key generation. The spec has no code for this: a throttled attempt gets
rc 3 (server unavailable), on which Python waits and retries (§4.3), instead of a code devices treat
as final.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from instamsg.broker.hooks import HookPoint, Priority, Stop
from instamsg.broker.ports import ClientRecord, TenantRecord
from instamsg.broker.profiles import ConnectReply
from instamsg.mqtt.packets import MQTT_3_1, MQTT_3_1_1, Connect
from instamsg.pki import IssuedCertificate
from instamsg.protocol.payloads import provisioning_rc6_payload

if TYPE_CHECKING:
    from instamsg.broker.channel import Channel
    from instamsg.domain.clients import Client
    from instamsg.protocol.plugin import DeviceProtocol
    from instamsg.protocol.secure_clients import SecureClients

logger = logging.getLogger(__name__)

PROVISIONING_CLIENT_ID: Final = "PROVISIONING"

# PROVACK return codes (spec §5.3, §5.4).
ACCEPTED: Final = 0
UNKNOWN_ID: Final = 2
SERVER_UNAVAILABLE: Final = 3
BAD_KEY: Final = 4
NOT_AUTHORIZED: Final = 5
ACCEPTED_WITH_CERTIFICATE: Final = 6

_PROVISIONING_LEVELS: Final = frozenset({MQTT_3_1, MQTT_3_1_1})


def provack(return_code: int, payload: bytes = b"") -> bytes:
    """The PROVACK packet of spec §5.2: type 15, varint remaining length, flags 00, rc, raw payload."""
    remaining = 2 + len(payload)
    length = bytearray()
    while True:
        byte = remaining & 0x7F
        remaining >>= 7
        length.append(byte | (0x80 if remaining else 0))
        if not remaining:
            break
    return b"\xf0" + bytes(length) + bytes((0, return_code)) + payload


def provisioning_open(client: Client) -> bool:
    """Spec C3: whether a keyless client may still provision (state `unprovisioned` or `provisioned`)."""
    return (
        client.provisioned_at is None
        or client.last_connect_at is None
        or client.last_connect_at < client.provisioned_at
    )


class ProvisioningEffects(Protocol):
    """What a successful provisioning changes in storage (spec §5.6); awaited in a task, off the hot path."""

    async def provisioned(self, client_id: str, at: datetime) -> None: ...


class NoEffects:
    """Where nothing is stored (broker-only tests)."""

    async def provisioned(self, client_id: str, at: datetime) -> None:
        return None


CertificateIssuer = Callable[[str], IssuedCertificate]

# Provisioning ids are at most 64 characters (§2.5.3): longer usernames name no client and share a key,
# so that no username can make the throttle's table large.
_MAX_KEY_CHARACTERS: Final = 64


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated_at: float
    refused: int = 0


class AttemptBudget:
    """Token buckets per key: up to `per_minute` attempts at once, refilled at `per_minute` a minute.

    At most `max_keys` keys are kept; beyond that the least recently used one is forgotten. A forgotten
    key starts again with a full budget, which a key unused that long mostly has anyway."""

    def __init__(
        self, per_minute: float, max_keys: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_minute <= 0 or max_keys < 1:
            raise ValueError("an attempt budget needs a positive rate and room for one key")
        self.capacity = max(per_minute, 1.0)
        self.rate_per_second = per_minute / 60.0
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> int:
        """0 when the attempt is within the budget, else how many attempts in a row were refused for
        `key` (1 for the first)."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._buckets.popitem(last=False)
            bucket = self._buckets[key] = _Bucket(self.capacity, now)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(now - bucket.updated_at, 0.0)
            bucket.tokens = min(self.capacity, bucket.tokens + elapsed * self.rate_per_second)
            bucket.updated_at = now
        if bucket.tokens < 1.0:
            bucket.refused += 1
            return bucket.refused
        bucket.tokens -= 1.0
        bucket.refused = 0
        return 0


class ProvisioningThrottle:
    """Attempt budgets per peer address and per provisioning id; a rate of 0 turns that one off."""

    def __init__(
        self,
        *,
        per_peer_per_minute: float,
        per_id_per_minute: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.peers = (
            AttemptBudget(per_peer_per_minute, max_entries, clock=clock) if per_peer_per_minute else None
        )
        self.ids = AttemptBudget(per_id_per_minute, max_entries, clock=clock) if per_id_per_minute else None

    def refusal(self, peer_host: str, provisioning_id: str) -> tuple[str, int] | None:
        """None when the attempt may go on, else (what is throttled, refusals in a row). A refused
        peer does not spend the id's budget."""
        if self.peers is not None:
            refused = self.peers.take(peer_host)
            if refused:
                return "peer", refused
        if self.ids is not None:
            refused = self.ids.take(provisioning_id[:_MAX_KEY_CHARACTERS])
            if refused:
                return "provisioning_id", refused
        return None


class Provisioning:
    """The `client.connect` hook answering layout-P CONNECTs, and the C3 bookkeeping it needs."""

    def __init__(
        self,
        devices: DeviceProtocol,
        *,
        effects: ProvisioningEffects | None = None,
        issue_certificate: CertificateIssuer | None = None,
        secure_clients: SecureClients | None = None,
        close_delay: float = 30.0,
        throttle: ProvisioningThrottle | None = None,
    ) -> None:
        self.devices = devices
        self.throttle = throttle
        self.directory = devices.directory
        self.effects: ProvisioningEffects = effects if effects is not None else NoEffects()
        self.issue_certificate = issue_certificate
        self.secure_clients = secure_clients
        self.close_delay = close_delay
        # Since the records were loaded: clients that connected normally (a keyless client then may not
        # provision again, C3) and clients that provisioned (a further provisioning is a logged repeat).
        self._connected_since: set[str] = set()
        self._provisioned_since: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def install(self) -> None:
        hooks = self.devices.node.hooks
        hooks.add(HookPoint.CLIENT_CONNECT, self.on_connect, Priority.HIGH)
        hooks.add(HookPoint.CLIENT_CONNECTED, self.on_connected, Priority.NORMAL)
        self.directory.add_listener(self)

    # ---- hooks -----------------------------------------------------------------------------------

    def on_connect(self, channel: Channel, connect: Connect, reply: object) -> Stop[ConnectReply] | None:
        if connect.client_id != PROVISIONING_CLIENT_ID or connect.protocol_level not in _PROVISIONING_LEVELS:
            return None
        try:
            return Stop(self._provision(channel, connect))
        except Exception:
            # Never a CONNACK on a provisioning connection, whatever went wrong (§5.1 step 2).
            logger.exception("provisioning_failed peer=%s", channel.connection.peer)
            return Stop(self._reply(provack(SERVER_UNAVAILABLE)))

    def on_connected(self, channel: Channel) -> None:
        client = channel.client
        # Only keyless clients are limited by a normal connect (C3); the others are not tracked.
        if client is not None and client.provisioning_id is not None and not client.provisioning_key:
            self._connected_since.add(client.uuid)

    # ---- Directory listener: an operator setting provisioning parameters anew reopens C3 ----------

    def on_client_changed(self, old: ClientRecord, new: ClientRecord) -> None:
        if old.provisioning_id is None and new.provisioning_id is not None:
            self._connected_since.discard(new.uuid)
            self._provisioned_since.discard(new.uuid)

    def on_client_removed(self, record: ClientRecord) -> None:
        self._connected_since.discard(record.uuid)
        self._provisioned_since.discard(record.uuid)

    def on_tenant_changed(self, record: TenantRecord) -> None:
        return None

    def on_tenant_removed(self, tenant_id: str) -> None:
        return None

    # ---- the checks of §5.4 ----------------------------------------------------------------------

    def _reply(self, data: bytes) -> ConnectReply:
        return ConnectReply(data, close=True, close_delay=self.close_delay)

    def _provision(self, channel: Channel, connect: Connect) -> ConnectReply:
        provisioning_id = connect.username or ""
        if self.throttle is not None:
            peer = channel.connection.peer
            refusal = self.throttle.refusal(peer.rpartition(":")[0] or peer, provisioning_id)
            if refusal is not None:
                throttled, in_a_row = refusal
                if in_a_row == 1:
                    # Once per streak: a flood of attempts must not become a flood of log lines.
                    logger.warning(
                        "provisioning_throttled peer=%s provisioning_id=%r rc=%d by=%s",
                        peer,
                        provisioning_id[:_MAX_KEY_CHARACTERS],
                        SERVER_UNAVAILABLE,
                        throttled,
                    )
                return self._reply(provack(SERVER_UNAVAILABLE))
        record = self.directory.find_by_provisioning_id(provisioning_id)
        if record is None:
            logger.warning(
                "provisioning_refused peer=%s provisioning_id=%r rc=%d reason=unknown_id",
                channel.connection.peer,
                provisioning_id,
                UNKNOWN_ID,
            )
            return self._reply(provack(UNKNOWN_ID))
        stored_key = record.provisioning_key
        keyless = not stored_key
        if not keyless:
            assert stored_key is not None
            supplied = connect.password if connect.password is not None else b""
            if not hmac.compare_digest(stored_key.encode(), supplied):
                return self._refuse(channel, record, BAD_KEY, "the provisioning key does not match")
        if record.blocked:
            return self._refuse(channel, record, NOT_AUTHORIZED, "the client is blocked")
        if not self.directory.tenant_active(record.tenant_id):
            return self._refuse(channel, record, NOT_AUTHORIZED, "the tenant is inactive")
        if keyless and (not record.provisioning_open or record.uuid in self._connected_since):
            return self._refuse(
                channel,
                record,
                NOT_AUTHORIZED,
                "a client without a provisioning key may provision only until it first connects",
            )
        repeat = record.provisioned or record.uuid in self._provisioned_since
        if record.secure_cert_enabled:
            if self.issue_certificate is None:
                return self._refuse(
                    channel, record, SERVER_UNAVAILABLE, "no certificate authority is configured"
                )
            self._spawn(self._provision_secure(channel, record, repeat))
            return ConnectReply(b"", close=True, close_delay=self.close_delay)
        self._succeeded(channel, record, ACCEPTED, repeat)
        return self._reply(provack(ACCEPTED, f"{record.uuid}-{record.auth_token}".encode()))

    async def _provision_secure(self, channel: Channel, record: ClientRecord, repeat: bool) -> None:
        assert self.issue_certificate is not None
        try:
            issued = await asyncio.to_thread(self.issue_certificate, record.uuid)
            # The token may have been reset while the key was generated: send the current one.
            current = self.directory.get_client(record.uuid) or record
            payload = provisioning_rc6_payload(
                current.uuid, current.auth_token, issued.certificate_pem, issued.key_pem
            )
        except Exception:
            logger.exception("provisioning_certificate_failed client=%s", record.uuid)
            channel.connection.write(provack(SERVER_UNAVAILABLE))
            self.devices.log.write(
                record.uuid,
                record.tenant_id,
                "ERROR",
                "Provisioning failed: the certificate could not be issued.",
            )
            return
        if channel.connection.closed:
            # The device never gets this certificate: its previous one must stay valid.
            logger.warning("provisioning_abandoned client=%s reason=connection_closed", record.uuid)
            return
        channel.connection.write(provack(ACCEPTED_WITH_CERTIFICATE, payload))
        if self.secure_clients is not None:
            # A certificate issued by provisioning replaces the previous one at once (S11).
            self.secure_clients.issued_active(record.uuid, issued)
        self._succeeded(channel, record, ACCEPTED_WITH_CERTIFICATE, repeat)

    # ---- effects (§5.6) --------------------------------------------------------------------------

    def _refuse(self, channel: Channel, record: ClientRecord, return_code: int, reason: str) -> ConnectReply:
        logger.warning(
            "provisioning_refused peer=%s client=%s rc=%d reason=%s",
            channel.connection.peer,
            record.uuid,
            return_code,
            reason,
        )
        self.devices.log.write(
            record.uuid,
            record.tenant_id,
            "WARN",
            f"Provisioning refused from {channel.connection.peer} (rc {return_code}): {reason}.",
        )
        return self._reply(provack(return_code))

    def _succeeded(self, channel: Channel, record: ClientRecord, return_code: int, repeat: bool) -> None:
        self._provisioned_since.add(record.uuid)
        self._connected_since.discard(record.uuid)
        peer = channel.connection.peer
        logger.info("provisioned client=%s rc=%d peer=%s repeat=%d", record.uuid, return_code, peer, repeat)
        log = self.devices.log
        log.write(record.uuid, record.tenant_id, "INFO", f"Provisioned from {peer} (rc {return_code}).")
        if repeat:
            log.write(
                record.uuid,
                record.tenant_id,
                "WARN",
                f"Repeated provisioning from {peer}: the client was provisioned before.",
            )
        self._spawn(self.effects.provisioned(record.uuid, datetime.now(UTC)))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("provisioning_effect_failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for pending certificate issues and storage effects (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def install_provisioning(
    devices: DeviceProtocol,
    *,
    effects: ProvisioningEffects | None = None,
    issue_certificate: CertificateIssuer | None = None,
    secure_clients: SecureClients | None = None,
    close_delay: float = 30.0,
    throttle: ProvisioningThrottle | None = None,
) -> Provisioning:
    provisioning = Provisioning(
        devices,
        effects=effects,
        issue_certificate=issue_certificate,
        secure_clients=secure_clients,
        close_delay=close_delay,
        throttle=throttle,
    )
    provisioning.install()
    return provisioning
