"""Composition root: builds the store, services, broker and REST API, and owns their lifecycle.

start → (listeners bound) → server.json + "ready" → run → SIGTERM/SIGINT → drain → flush → stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import json
import logging
import os
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from instamsg.broker import BrokerNode, BrokerSettings, ClientRecord, Directory, TenantRecord
from instamsg.broker.settings import OverflowPolicy
from instamsg.domain.clients import Client
from instamsg.domain.clock import utc_now
from instamsg.domain.tenants import Tenant
from instamsg.pki import CertificateAuthority, default_server_hostnames, server_ssl_contexts
from instamsg.protocol.activity import ActivityMeters, install_activity
from instamsg.protocol.commands import ServerCommands
from instamsg.protocol.config_sync import ConfigSync, install_config_sync
from instamsg.protocol.files import FileCommandSender
from instamsg.protocol.history import install_history
from instamsg.protocol.identity import install_identity
from instamsg.protocol.implicit import install_implicit_delivery
from instamsg.protocol.plugin import DeviceProtocol
from instamsg.protocol.provisioning import (
    Provisioning,
    ProvisioningThrottle,
    install_provisioning,
    provisioning_open,
)
from instamsg.protocol.pushes import install_push_pacing
from instamsg.protocol.remote_logging import RemoteLogging
from instamsg.protocol.routing import install_routing
from instamsg.protocol.secure_clients import SecureClients, install_secure_clients
from instamsg.protocol.telemetry import detect_library, install_telemetry
from instamsg.protocol.topics import TopicKind
from instamsg.rest.app import create_app
from instamsg.rest.dependencies import Services
from instamsg.services.activity import ActivityService
from instamsg.services.apps import AppService
from instamsg.services.certificates import CertificateService, StoredCertificateRecords
from instamsg.services.clients import ClientService
from instamsg.services.commands import CommandService
from instamsg.services.configs import ConfigService
from instamsg.services.files import FileService, default_public_url
from instamsg.services.messages import MessageService
from instamsg.services.ports import (
    DevicePushes,
    LiveRegistry,
    MessageDelivery,
    OfflineDelivery,
    OfflinePushes,
)
from instamsg.services.sms import ProvisioningSms
from instamsg.services.telemetry import TelemetryService
from instamsg.services.tenants import TenantService
from instamsg.settings import Settings
from instamsg.sidechannel.front_door import SharedWebSocket, front_door_class
from instamsg.sidechannel.handlers import SideChannel
from instamsg.store.activity import ActivityWriter, StoreClientLog, activity_deltas, load_activity_state
from instamsg.store.file_store import FileStore
from instamsg.store.history import HistoryWriter
from instamsg.store.repositories import clients as client_repository
from instamsg.store.repositories import tenants as tenant_repository
from instamsg.store.repositories import traffic as traffic_repository
from instamsg.store.repositories.traffic import TrafficDelta
from instamsg.store.retention import HistoryRetention
from instamsg.store.session_store import DurableSessionStore
from instamsg.store.store import Store
from instamsg.store.telemetry import TelemetryWriter

logger = logging.getLogger(__name__)


def client_record(client: Client) -> ClientRecord:
    params = client.provisioning_params or {}
    return ClientRecord(
        uuid=client.id,
        tenant_id=client.tenant_id,
        auth_token=client.auth_token,
        pub_topics=client.pub_topics,
        sub_topics=client.sub_topics,
        blocked=client.blocked,
        secure_cert_enabled=client.secure_cert_enabled,
        client_type=client.type.value,
        provisioning_id=params.get("provisioning_id"),
        provisioning_key=params.get("provisioning_key"),
        provisioned=client.provisioned_at is not None,
        provisioning_open=provisioning_open(client),
    )


def tenant_record(tenant: Tenant) -> TenantRecord:
    return TenantRecord(
        id=tenant.id,
        active=tenant.active,
        max_messages=tenant.max_messages,
        messages_used=tenant.messages_used,
    )


class BrokerRegistry(LiveRegistry):
    """Keeps the broker's Directory in step with every change the services commit (spec C24)."""

    def __init__(self, directory: Directory, node: BrokerNode):
        self.directory = directory
        self.node = node

    def client_changed(self, client: Client, tenant: Tenant) -> None:
        if self.directory.get_tenant(tenant.id) is None:
            self.directory.upsert_tenant(tenant_record(tenant))
        self.directory.upsert_client(client_record(client))

    def client_removed(self, client_id: str) -> None:
        self.directory.remove_client(client_id)

    def tenant_changed(self, tenant: Tenant) -> None:
        # The Directory keeps the larger of its exact count and the stored one, which may lag it.
        self.directory.upsert_tenant(tenant_record(tenant))

    def tenant_removed(self, tenant_id: str) -> None:
        self.directory.remove_tenant(tenant_id)

    def is_online(self, client_id: str) -> bool:
        return self.node.is_connected(client_id)


class BrokerDelivery(MessageDelivery):
    """REST publishes and releases go through the broker and the Directory's exact budget (spec C10)."""

    def __init__(self, directory: Directory, node: BrokerNode):
        self.directory = directory
        self.node = node

    def charge(self, tenant_id: str) -> bool:
        return self.directory.charge_tenant(tenant_id)

    def deliver(
        self, tenant_id: str, publisher_uuid: str, topic: str, payload: bytes, mqtt_qos: int, dup: bool
    ) -> int:
        return self.node.deliver(tenant_id, publisher_uuid, topic, payload, mqtt_qos, dup=dup)


class BrokerPushes:
    """The services' `DevicePushes` port: pushes (paced for legacy A) and disconnects via the broker."""

    def __init__(self, devices: DeviceProtocol):
        self.devices = devices

    def push(self, client_id: str, kind: str, payload: bytes, qos: int) -> bool:
        return self.devices.push(client_id, TopicKind(kind), payload, qos)

    def disconnect(self, client_id: str, reason: str, after_seconds: float = 0.0) -> None:
        channel = self.devices.node.channels.get(client_id)
        if channel is None:
            return
        if after_seconds <= 0:
            channel.close(None, reason, publish_will=False)
            return
        # Only the connection open now: one the client opens meanwhile (say with a new token) stays.
        asyncio.get_running_loop().call_later(
            after_seconds, functools.partial(channel.close, None, reason, publish_will=False)
        )


def build_services(
    store: Store,
    registry: LiveRegistry,
    settings: Settings,
    delivery: MessageDelivery | None = None,
    pushes: DevicePushes | None = None,
) -> Services:
    return Services(
        apps=AppService(store, token_lifetime_seconds=settings.access_token_lifetime_seconds),
        tenants=TenantService(store, registry),
        clients=ClientService(
            store,
            registry,
            pushes,
            auth_token_reset_disconnect_seconds=settings.auth_token_reset_disconnect_seconds,
        ),
        commands=CommandService(
            store,
            pushes if pushes is not None else OfflinePushes(),
            max_payload_bytes=settings.max_message_payload_bytes,
        ),
        messages=MessageService(
            store,
            delivery if delivery is not None else OfflineDelivery(),
            max_payload_bytes=settings.max_message_payload_bytes,
        ),
    )


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the platform decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


@dataclass
class Platform:
    """One InstaMsg node: everything `instamsg serve` runs."""

    settings: Settings
    store: Store | None = None
    node: BrokerNode | None = None
    devices: DeviceProtocol | None = None
    session_store: DurableSessionStore | None = None
    history: HistoryWriter | None = None
    activity: ActivityWriter | None = None
    activity_meters: ActivityMeters | None = None
    remote_logging: RemoteLogging | None = None
    retention: HistoryRetention | None = None
    telemetry: TelemetryWriter | None = None
    config_sync: ConfigSync | None = None
    commands: ServerCommands | None = None
    files: FileService | None = None
    provisioning: Provisioning | None = None
    secure_clients: SecureClients | None = None
    ports: dict[str, int | None] = field(default_factory=dict)
    _http: _EmbeddedUvicorn | None = None
    _http_task: asyncio.Task[None] | None = None
    _side_channel: SideChannel | None = None
    _meter_task: asyncio.Task[None] | None = None
    directory: Directory | None = None
    _pending_traffic: dict[str, list[int]] = field(default_factory=dict)
    _written_usage: dict[str, int] = field(default_factory=dict)
    _unwritten_usage: dict[str, int] = field(default_factory=dict)

    @property
    def server_json_path(self) -> Path:
        return self.settings.data_dir / "server.json"

    async def start(self) -> dict[str, int | None]:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store.from_url(settings.resolved_database_url())
        await self.store.upgrade()

        ca = CertificateAuthority(settings.data_dir / "pki")
        directory = self.directory = Directory()
        async with self.store.read() as connection:
            tenants = await tenant_repository.list_all_tenants(connection)
            clients = await client_repository.list_all_clients(connection)
        directory.load(
            [tenant_record(tenant) for tenant in tenants], [client_record(client) for client in clients]
        )

        tls_needed = settings.mqtts_port is not None or settings.wss_port is not None
        ssl_context = wss_ssl_context = None
        if tls_needed:
            ssl_context, wss_ssl_context = server_ssl_contexts(
                ca,
                settings.data_dir / "pki",
                certificate=settings.tls_cert,
                key=settings.tls_key,
                hostnames=default_server_hostnames(settings.tls_hostname),
            )
        self.session_store = DurableSessionStore(self.store)
        await self.session_store.preload()
        self.node = BrokerNode(
            BrokerSettings(
                host=settings.host,
                mqtt_port=settings.mqtt_port,
                mqtts_port=settings.mqtts_port,
                # A WS port shared with HTTP is served through the HTTP server's front door (S1).
                ws_port=None if settings.ws_shares_http_port else settings.ws_port,
                wss_port=settings.wss_port,
                ssl_context=ssl_context,
                wss_ssl_context=wss_ssl_context,
                max_packet_size=settings.max_packet_size,
                max_inflight=settings.max_inflight_messages,
                max_queued_messages=settings.max_queued_messages,
                overflow_policy=OverflowPolicy(settings.queue_overflow_policy),
                queue_qos0_offline=settings.queue_qos0_offline,
                max_connections=settings.max_connections,
                connect_timeout=settings.connect_timeout_seconds,
                max_session_expiry=settings.max_session_expiry_seconds,
                persistent_session_expiry_v311=settings.persistent_session_expiry_seconds,
                max_retained_per_tenant=settings.max_retained_per_tenant,
                max_retained_payload=settings.max_retained_payload_bytes,
                max_topic_alias=settings.max_topic_alias,
            ),
            directory,
            session_store=self.session_store,
        )
        # The device protocol (spec §3-§13): each feature installs its hooks and handlers here.
        self.devices = DeviceProtocol(self.node)
        self.devices.install()
        # Client activity (sessions, client logs, metrics, remote logging): its log is `devices.log`.
        self.activity = ActivityWriter(self.store, flush_interval=settings.activity_flush_interval_seconds)
        self.activity_meters = ActivityMeters()
        install_activity(self.devices, self.activity, StoreClientLog(self.activity), self.activity_meters)
        self.remote_logging = RemoteLogging(self.devices)
        self.remote_logging.install()
        self.remote_logging.load(await load_activity_state(self.store))
        install_routing(self.devices, settings.p2p_reply_window_seconds)
        install_implicit_delivery(self.devices)
        install_push_pacing(
            self.devices, settings.legacy_push_delay_seconds, settings.legacy_push_spacing_seconds
        )
        install_identity(self.devices)
        certificate_records = StoredCertificateRecords(self.store)
        secure_clients = self.secure_clients = await install_secure_clients(self.devices, certificate_records)
        self.provisioning = install_provisioning(
            self.devices,
            effects=certificate_records,
            issue_certificate=ca.issue_client_certificate,
            secure_clients=secure_clients,
            close_delay=settings.provisioning_close_delay_seconds,
            throttle=ProvisioningThrottle(
                per_peer_per_minute=settings.provisioning_attempts_per_minute_per_peer,
                per_id_per_minute=settings.provisioning_attempts_per_minute_per_id,
                max_entries=settings.provisioning_throttle_max_entries,
            ),
        )
        if settings.mqtt_history:
            self.history = HistoryWriter(
                self.store,
                flush_interval=settings.history_flush_interval_seconds,
                # Publishers are slowed down (sockets not read) rather than history rows dropped.
                on_backlog=self.node.set_ingest_paused,
            )
            install_history(self.devices, self.history.record)
        if settings.history_retention_days > 0:
            self.retention = HistoryRetention(self.store, settings.history_retention_days)
            self.retention.start()
        services = build_services(
            self.store,
            BrokerRegistry(directory, self.node),
            settings,
            BrokerDelivery(directory, self.node),
            BrokerPushes(self.devices),
        )
        services = dataclasses.replace(
            services,
            certificates=CertificateService(
                self.store, services.clients, ca.issue_client_certificate, secure_clients
            ),
        )
        # No SMS gateway is configurable yet: provisioning SMS are written to the client's log (S12).
        services.clients.sms = ProvisioningSms(log=self.devices.log)
        # Device telemetry and config sync (spec §8, §11): handlers on the hot path, writers off it.
        self.telemetry = TelemetryWriter(
            self.store,
            detect_library=detect_library,
            flush_interval=settings.telemetry_flush_interval_seconds,
        )
        install_telemetry(self.devices, self.telemetry)
        configs = ConfigService(self.store, BrokerPushes(self.devices), self.devices.log)
        self.config_sync = install_config_sync(
            self.devices, configs, push_on_connect_delay=settings.config_push_on_connect_delay_seconds
        )
        services = dataclasses.replace(
            services,
            telemetry=TelemetryService(self.store, BrokerRegistry(directory, self.node)),
            configs=configs,
        )
        services = dataclasses.replace(
            services,
            activity=ActivityService(
                self.store,
                self.remote_logging,
                default_logging_seconds=settings.server_logging_default_seconds,
                max_logging_seconds=settings.server_logging_max_seconds,
            ),
        )
        # Server commands and their replies (S14), files and the device side channel (§10).
        self.commands = ServerCommands(self.devices, timeout=settings.command_timeout_seconds)
        self.commands.install()
        self.files = FileService(
            self.store,
            FileStore(settings.files_dir or settings.data_dir / "files"),
            FileCommandSender(self.commands),
            max_file_bytes=settings.max_file_bytes,
            fetch_timeout_seconds=settings.file_fetch_timeout_seconds,
        )
        await self.files.prepare()
        services = dataclasses.replace(services, files=self.files)
        # Deleting a client or tenant removes its files' bytes at once, not at the next start-up sweep.
        services.clients.file_bytes = services.tenants.file_bytes = self.files.file_store
        broker_ports = await self.node.start()

        http_port: int | None = None
        if settings.http_port is not None:
            api = create_app(
                services,
                max_body_bytes=settings.max_request_body_bytes,
                ca_certificate_pem=ca.certificate_pem,
            )
            http_socket = _bind(settings.host, settings.http_port)
            http_port = http_socket.getsockname()[1]
            self.files.public_url = settings.public_url or default_public_url(settings.host, http_port)
            # The front door answers device side-channel requests itself and hands the rest to uvicorn.
            # Its requests get half the shutdown grace to finish, so that uvicorn stops within it.
            self._side_channel = SideChannel(
                directory, self.files, shutdown_grace_seconds=settings.shutdown_grace_seconds / 2
            )
            config = uvicorn.Config(
                api,
                http=front_door_class(
                    self._side_channel,
                    SharedWebSocket(self.node.accept_websocket) if settings.ws_shares_http_port else None,
                ),
                lifespan="off",
                log_config=None,
                access_log=False,
                server_header=False,
            )
            self._http = _EmbeddedUvicorn(config)
            self._http_task = asyncio.create_task(self._http.serve(sockets=[http_socket]), name="http")
            while not self._http.started:
                if self._http_task.done():
                    await self._http_task
                    raise RuntimeError("the HTTP server stopped during start-up")
                await asyncio.sleep(0.01)

        self._meter_task = asyncio.create_task(self._flush_meters_periodically(), name="meters")
        self.ports = {
            "http": http_port,
            **{name: broker_ports.get(name) for name in ("mqtt", "mqtts", "ws", "wss")},
        }
        if settings.ws_shares_http_port:
            self.ports["ws"] = http_port
        self._write_server_json()
        logger.info(
            "ready %s data_dir=%s",
            " ".join(f"{name}={port if port is not None else 'off'}" for name, port in self.ports.items()),
            settings.data_dir,
        )
        return self.ports

    def _write_server_json(self) -> None:
        content = json.dumps({"pid": os.getpid(), **self.ports})
        temporary = self.server_json_path.with_suffix(".json.tmp")
        temporary.write_text(content)
        # Atomic: tooling polling for the file never reads half of it.
        temporary.replace(self.server_json_path)

    async def _flush_meters_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.settings.meter_flush_interval_seconds)
            try:
                await self.flush_meters()
            except Exception:
                logger.exception("meter_flush_failed")

    async def flush_meters(self) -> None:
        """Move the broker's counters to storage: hourly traffic per client, and tenants' usage."""
        if self.node is None or self.store is None or self.directory is None:
            return
        deltas = self.node.take_meter_deltas()
        for client_id, delta in deltas.clients.items():
            pending = self._pending_traffic.setdefault(client_id, [0, 0, 0, 0])
            pending[0] += delta.messages_in
            pending[1] += delta.bytes_in
            pending[2] += delta.messages_out
            pending[3] += delta.bytes_out
        usage = {
            tenant_id: self.directory.messages_used(tenant_id)
            for tenant_id in set(deltas.tenants) | set(self._unwritten_usage)
        }
        usage = {
            tenant_id: used for tenant_id, used in usage.items() if used != self._written_usage.get(tenant_id)
        }
        activity_counts = self.activity_meters.take() if self.activity_meters is not None else {}
        if not self._pending_traffic and not usage and not activity_counts:
            return
        traffic = [TrafficDelta(client_id, *counts) for client_id, counts in self._pending_traffic.items()]
        hour_start = utc_now().replace(minute=0, second=0, microsecond=0)
        try:
            async with self.store.write() as connection:
                await traffic_repository.add_hourly_traffic(connection, hour_start, traffic)
                for tenant_id, used in usage.items():
                    await traffic_repository.raise_messages_used(connection, tenant_id, used)
                await traffic_repository.add_hourly_activity(connection, activity_deltas(activity_counts))
        except Exception:
            if self.activity_meters is not None:
                self.activity_meters.restore(activity_counts)
            # Counters stay pending and are retried on the next tick: nothing metered is dropped.
            self._unwritten_usage.update(usage)
            raise
        self._pending_traffic.clear()
        self._unwritten_usage.clear()
        self._written_usage.update(usage)

    async def stop(self) -> None:
        """Stop accepting, drain, flush everything pending to storage, close."""
        if self._meter_task is not None:
            self._meter_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._meter_task
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._http_task, timeout=self.settings.shutdown_grace_seconds)
        if self._side_channel is not None:
            # Whatever uvicorn left running is cancelled before the store it writes to closes.
            await self._side_channel.close(0)
        if self.commands is not None:
            self.commands.close()
        if self.files is not None:
            await self.files.close()
        if self.node is not None:
            await self.node.stop()
        # Certificates being issued and provisioning marks still to write (spec §5.6).
        if self.provisioning is not None:
            await self.provisioning.drain()
        if self.secure_clients is not None:
            await self.secure_clients.drain()
        if self.session_store is not None:
            await self.session_store.close()
        if self.retention is not None:
            await self.retention.stop()
        if self.history is not None:
            await self.history.close()
        if self.remote_logging is not None:
            self.remote_logging.close()
        if self.activity is not None:
            await self.activity.close()
        if self.config_sync is not None:
            await self.config_sync.close()
        if self.telemetry is not None:
            await self.telemetry.close()
        try:
            await self.flush_meters()
        except Exception:
            # The store is closed and server.json removed anyway: a stop never hangs on a dead database.
            logger.exception("meter_flush_failed_at_stop")
        if self.store is not None:
            await self.store.close()
        with contextlib.suppress(FileNotFoundError):
            self.server_json_path.unlink()
        logger.info("stopped")


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully."""
    platform = Platform(settings)
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop_requested.set)
    try:
        await platform.start()
        # Everything built so far (modules, the directory, the web app) lives as long as the process:
        # move it out of the collector's generations so full collections only scan what connections
        # create (Instagram's gc.freeze pattern; refcounting still frees frozen objects).
        gc.collect()
        gc.freeze()
        await stop_requested.wait()
        logger.info("stopping")
    finally:
        await platform.stop()


def run(settings: Settings) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        asyncio.run(serve(settings))
        return
    uvloop.run(serve(settings))


def server_info(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / "server.json"
    return json.loads(path.read_text()) if path.exists() else None
