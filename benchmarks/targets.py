"""Brokers under test: Mosquitto, InstaMsg and (optionally) amqtt, behind one small interface.

Each target starts its broker as a child process pinned to the broker core, on free loopback ports, and
hands the generator endpoints and credentials. A target that cannot run says why in `unavailable`;
the runner then reports "not available" for it instead of inventing figures.
"""

from __future__ import annotations

import asyncio
import ctypes
import datetime
import ipaddress
import json
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.generator import Credential, Endpoint

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Needs:
    """What one scenario needs from the broker process."""

    transports: frozenset[str] = frozenset({"tcp"})
    database: str | None = None  # "sqlite" or "postgresql" for the history scenarios
    rest: bool = False  # the REST publishMessage endpoint


@dataclass(frozen=True, slots=True)
class RestRequest:
    """A ready-to-send REST publish request (raw HTTP/1.1, so no client library is measured)."""

    host: str
    port: int
    path: str
    headers: dict[str, str]
    body: bytes


class TargetUnavailable(Exception):
    """The broker cannot be started or lacks what the scenario needs; the message says why."""


def free_port() -> int:
    """Ask the kernel for a free loopback port (closed again before the broker binds it)."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def broker_preexec(core: int | None) -> Callable[[], None]:
    """Pin the broker child to its own core; the generator stays on the others."""

    def pin() -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})
        # A new session so that stopping the broker never signals the runner.
        os.setsid()
        # And the broker dies with the runner (PR_SET_PDEATHSIG), so a killed run leaves no broker behind.
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)

    return pin


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = START_TIMEOUT) -> None:
    """Wait until the broker accepts TCP connections, or fail if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TargetUnavailable(f"broker exited with code {process.returncode}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TargetUnavailable(f"broker did not listen on port {port} within {timeout:.0f} s")


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if the broker does not exit in time."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """Generate a throwaway certificate for 127.0.0.1/localhost with the `cryptography` package."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_path = directory / "server.crt"
    key_path = directory / "server.key"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return certificate_path, key_path


def client_ssl_context(ca_path: Path | None) -> ssl.SSLContext:
    """Verify against the given CA when there is one; otherwise encrypt without verification."""
    context = ssl.create_default_context(cafile=str(ca_path) if ca_path else None)
    if ca_path is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Target(ABC):
    """A broker under test."""

    name: str = ""
    label: str = ""
    capabilities: frozenset[str] = frozenset()

    def __init__(self, broker_core: int | None) -> None:
        self.broker_core = broker_core
        self.process: subprocess.Popen[bytes] | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-"))
        self.unavailable: str | None = None
        self.ports: dict[str, int | None] = {}

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def version(self) -> str | None:
        return None

    def supports(self, needs: Needs) -> str | None:
        """None when the target can run a scenario with these needs, else the reason it cannot."""
        missing = sorted(transport for transport in needs.transports if transport not in self.capabilities)
        if missing:
            return f"{self.label} has no {', '.join(missing)} listener in this harness"
        if needs.database and f"history-{needs.database}" not in self.capabilities:
            return f"{self.label} has no message history"
        if needs.rest and "rest-publish" not in self.capabilities:
            return f"{self.label} has no REST API"
        return None

    async def prepare(self, client_count: int, other_clients: int, databases: frozenset[str]) -> None:
        """One-time set-up before the first scenario (provisioning for brokers with auth)."""
        return None

    @abstractmethod
    def start(self, needs: Needs) -> None:
        """Start a fresh broker process for one scenario."""

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def history_rows(self) -> int | None:
        """Rows in the broker's message history, when it keeps one the runner can count."""
        return None

    def endpoint(self, transport: str) -> Endpoint:
        port = self.ports.get(transport)
        if port is None:
            raise TargetUnavailable(f"{self.label} has no {transport} listener")
        context = client_ssl_context(self.ca_path()) if transport in ("tls", "wss") else None
        return Endpoint(LOOPBACK, port, transport, context)

    def ca_path(self) -> Path | None:
        return None

    @abstractmethod
    async def credentials(self, count: int) -> list[Credential]:
        """`count` distinct identities for generator connections."""

    async def rest_publish_request(self, topic: str, payload: str) -> RestRequest:
        raise TargetUnavailable(f"{self.label} has no REST API")

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


class MosquittoTarget(Target):
    """Debian's Mosquitto: anonymous, persistence off, TCP plus TLS and WebSocket listeners on demand."""

    name = "mosquitto"
    label = "Mosquitto"
    capabilities = frozenset({"tcp", "tls", "ws"})

    def __init__(self, broker_core: int | None, binary: str = "/usr/sbin/mosquitto") -> None:
        super().__init__(broker_core)
        self.binary = shutil.which("mosquitto") if not os.path.exists(binary) else binary
        if not self.binary:
            self.unavailable = "mosquitto is not installed (apt-get install -y mosquitto)"
        self.certificate: tuple[Path, Path] | None = None

    def version(self) -> str | None:
        from benchmarks.procstat import mosquitto_version

        return mosquitto_version(self.binary) if self.binary else None

    def ca_path(self) -> Path | None:
        return self.certificate[0] if self.certificate else None

    def config(self, needs: Needs) -> str:
        """The broker configuration: equal conditions with InstaMsg (no persistence, Nagle off)."""
        self.ports = {"tcp": free_port()}
        lines = [
            # Started as root, Mosquitto would switch to the "mosquitto" user and lose access to the
            # certificate in our private directory; both brokers run as the invoking user instead.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            "per_listener_settings false",
            "allow_anonymous true",
            "persistence false",
            "log_dest none",
            # Windows bound the queue; a larger limit only guarantees Mosquitto never drops on QoS 1.
            "max_queued_messages 100000",
            "set_tcp_nodelay true",
            f"listener {self.ports['tcp']} {LOOPBACK}",
            "max_connections -1",
        ]
        if "tls" in needs.transports:
            if self.certificate is None:
                self.certificate = self_signed_certificate(self.workdir)
            self.ports["tls"] = free_port()
            certificate, key = self.certificate
            lines += [
                f"listener {self.ports['tls']} {LOOPBACK}",
                "max_connections -1",
                f"certfile {certificate}",
                f"keyfile {key}",
            ]
        if "ws" in needs.transports:
            self.ports["ws"] = free_port()
            lines += [f"listener {self.ports['ws']} {LOOPBACK}", "max_connections -1", "protocol websockets"]
        return "\n".join(lines) + "\n"

    def start(self, needs: Needs) -> None:
        if self.unavailable:
            raise TargetUnavailable(self.unavailable)
        assert self.binary is not None
        config_path = self.workdir / "mosquitto.conf"
        config_path.write_text(self.config(needs))
        log = open(self.workdir / "mosquitto.log", "ab")  # noqa: SIM115 - owned by the child process
        self.process = subprocess.Popen(
            [self.binary, "-c", str(config_path)],
            stdout=log,
            stderr=log,
            preexec_fn=broker_preexec(self.broker_core),
        )
        log.close()
        for port in self.ports.values():
            if port is not None:
                wait_for_port(port, self.process)

    async def credentials(self, count: int) -> list[Credential]:
        return [Credential(f"bench-{index}") for index in range(count)]


class AmqttTarget(Target):
    """amqtt (PyPI), only when its `amqtt` command is installed; the extra column is skipped otherwise."""

    name = "amqtt"
    label = "amqtt"
    capabilities = frozenset({"tcp"})

    def __init__(self, broker_core: int | None) -> None:
        super().__init__(broker_core)
        self.binary = os.environ.get("INSTAMSG_BENCH_AMQTT") or shutil.which("amqtt")
        if not self.binary:
            self.unavailable = "amqtt is not installed (pip install amqtt, or set INSTAMSG_BENCH_AMQTT)"

    def version(self) -> str | None:
        if not self.binary:
            return None
        completed = subprocess.run(
            [self.binary, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
        return (
            (completed.stdout or completed.stderr).strip().splitlines()[-1]
            if completed.returncode == 0
            else None
        )

    def start(self, needs: Needs) -> None:
        if self.unavailable:
            raise TargetUnavailable(self.unavailable)
        assert self.binary is not None
        self.ports = {"tcp": free_port()}
        config_path = self.workdir / "amqtt.yaml"
        config_path.write_text(
            "listeners:\n"
            "  default:\n"
            "    type: tcp\n"
            f"    bind: {LOOPBACK}:{self.ports['tcp']}\n"
            "    max_connections: 0\n"
            "plugins:\n"
            "  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
            "    allow_anonymous: true\n"
            "  amqtt.plugins.sys.broker.BrokerSysPlugin:\n"
            "    sys_interval: 0\n"
        )
        log = open(self.workdir / "amqtt.log", "ab")  # noqa: SIM115 - owned by the child process
        self.process = subprocess.Popen(
            [self.binary, "-c", str(config_path)],
            stdout=log,
            stderr=log,
            preexec_fn=broker_preexec(self.broker_core),
        )
        log.close()
        port = self.ports["tcp"]
        assert port is not None
        wait_for_port(port, self.process)

    async def credentials(self, count: int) -> list[Credential]:
        return [Credential(f"bench-{index}") for index in range(count)]


@dataclass(slots=True)
class Provisioned:
    """The tenant and clients created through REST for the InstaMsg runs."""

    tenant_id: str = ""
    clients: list[Credential] = field(default_factory=list)
    other_clients: int = 0
    access_token: str = ""
    client_key: str = ""
    client_secret: str = ""


class InstaMsgTarget(Target):
    """`instamsg serve` in a temporary data directory, with auth, ACL and metering on.

    The tenant and its clients are provisioned once through REST API v1 and survive the per-scenario
    restarts because the data directory is kept. Standard MQTT clients log in with username = client
    UUID and password = auth token.
    """

    name = "instamsg"
    label = "InstaMsg"
    capabilities = frozenset({"tcp", "tls", "ws", "history-sqlite", "history-postgresql", "rest-publish"})

    # Topics every benchmark client may use; the ACL is on, so the harness asks for exactly these.
    SUBSCRIBE_TOPICS = ("bench/#", "route/#", "idle/#")
    PUBLISH_TOPICS = ("bench/#",)

    def __init__(self, broker_core: int | None, postgres_url: str | None = None) -> None:
        super().__init__(broker_core)
        self.binary = shutil.which("instamsg", path=str(Path(sys.executable).parent)) or shutil.which(
            "instamsg"
        )
        self.postgres_url = postgres_url or os.environ.get("INSTAMSG_BENCH_POSTGRES_URL")
        self.data_dir = self.workdir / "data"
        self.server: dict[str, object] = {}
        self.provisioned: dict[str, Provisioned] = {}
        self.database_unavailable: dict[str, str] = {}
        self.postgres_server: Any = None
        self.database: str | None = None
        if not self.binary:
            self.unavailable = "the instamsg command is not installed"

    def version(self) -> str | None:
        try:
            from importlib.metadata import version

            return version("instamsg")
        except Exception:
            return None

    def supports(self, needs: Needs) -> str | None:
        reason = super().supports(needs)
        if reason is None and needs.database:
            return self.database_unavailable.get(needs.database)
        return reason

    def cleanup(self) -> None:
        super().cleanup()
        if self.postgres_server is not None:
            self.postgres_server.stop()
            self.postgres_server = None

    def _run_cli(self, *arguments: str) -> str:
        assert self.binary is not None
        completed = subprocess.run(
            [self.binary, *arguments], capture_output=True, text=True, timeout=120, check=False
        )
        if completed.returncode != 0:
            detail = (completed.stderr or completed.stdout).strip().splitlines()
            raise TargetUnavailable(
                f"`instamsg {arguments[0]}` failed: {detail[-1] if detail else 'no output'}"
            )
        return completed.stdout

    def _database_arguments(self, database: str | None) -> list[str]:
        if database == "postgresql" and self.postgres_url:
            return ["--database-url", self.postgres_url]
        return []

    def start(self, needs: Needs) -> None:
        if self.unavailable:
            raise TargetUnavailable(self.unavailable)
        assert self.binary is not None
        self.data_dir.mkdir(exist_ok=True)
        server_file = self.data_dir / "server.json"
        server_file.unlink(missing_ok=True)
        arguments = [
            self.binary,
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--host",
            LOOPBACK,
            "--http-port",
            "0",
            "--mqtt-port",
            "0",
            "--mqtts-port",
            "0" if "tls" in needs.transports else "off",
            "--ws-port",
            "0" if "ws" in needs.transports else "off",
            "--wss-port",
            "off",
            # Mosquitto runs with `log_dest none`; warnings still reach the log file.
            "--log-level",
            "WARNING",
            *self._database_arguments(needs.database),
        ]
        log = open(self.workdir / "instamsg.log", "ab")  # noqa: SIM115 - owned by the child process
        # MQTT history is on by default (every row measures it); the history rows insist on it, and
        # INSTAMSG_MQTT_HISTORY=false in the harness's environment measures the other rows without it.
        environment = {**os.environ, **({"INSTAMSG_MQTT_HISTORY": "true"} if needs.database else {})}
        self.process = subprocess.Popen(
            arguments, stdout=log, stderr=log, env=environment, preexec_fn=broker_preexec(self.broker_core)
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not server_file.exists():
            if self.process.poll() is not None:
                tail = (self.workdir / "instamsg.log").read_text(errors="replace").strip().splitlines()
                self.process = None
                raise TargetUnavailable(f"`instamsg serve` exited: {tail[-1] if tail else 'no output'}"[:200])
            if time.monotonic() > deadline:
                self.stop()
                raise TargetUnavailable("`instamsg serve` did not write server.json in time")
            time.sleep(0.05)
        time.sleep(0.05)  # the file is written once ready; a short pause avoids reading it half-written
        self.server = json.loads(server_file.read_text())
        self.ports = {
            "tcp": _port(self.server.get("mqtt")),
            "tls": _port(self.server.get("mqtts")),
            "ws": _port(self.server.get("ws")),
            "http": _port(self.server.get("http")),
        }
        if self.ports["tcp"] is None:
            self.stop()
            raise TargetUnavailable("`instamsg serve` has no MQTT listener (server.json mqtt is null)")
        server_pid = self.server.get("pid")
        if isinstance(server_pid, int) and server_pid != self.process.pid:
            self._measured_pid = server_pid
        wait_for_port(self.ports["tcp"], self.process)
        self.database = needs.database

    _measured_pid: int | None = None

    def history_rows(self) -> int | None:
        """Rows in the SQLite message history (None on PostgreSQL): the runner compares the rows a
        scenario added with the messages it published, so a broker that drops history shows it."""
        if self.database not in (None, "sqlite"):
            return None
        path = self.data_dir / "instamsg.db"
        if not path.exists():
            return None
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            (count,) = connection.execute("SELECT count(*) FROM message").fetchone()
        finally:
            connection.close()
        return int(count)

    @property
    def pid(self) -> int:
        # server.json names the process that serves MQTT; that is the one to measure.
        if self._measured_pid is not None:
            return self._measured_pid
        return super().pid

    def ca_path(self) -> Path | None:
        # The server certificate is issued by the data directory's CA; the harness encrypts without
        # verifying rather than guessing the CA file name.
        return None

    def http_base(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['http']}"

    async def check_history(self) -> None:
        """Refuse the history rows while the server keeps no message history (no getMessages).

        Without it a "saved-message" rate would only count PUBACKs, which is not what the row claims.
        """
        import httpx

        async with httpx.AsyncClient(base_url=self.http_base(), timeout=30) as http:
            paths = (await http.get("/openapi.json")).json().get("paths", {})
        if not any(path.endswith("/messages") for path in paths):
            raise TargetUnavailable("the server keeps no message history yet (no getMessages endpoint)")

    async def prepare(self, client_count: int, other_clients: int, databases: frozenset[str]) -> None:
        """Create the app, the tenant, the benchmark clients and the other clients, per database.

        SQLite (in the data directory) serves every scenario; PostgreSQL only the history scenario,
        which needs a single publisher, so that database gets one benchmark client and the same
        other clients.
        """
        if self.unavailable:
            return
        try:
            for database in ("sqlite", *sorted(databases - {"sqlite"})):
                if database == "postgresql" and not self._ensure_postgres():
                    continue
                started = time.monotonic()
                wanted = client_count if database == "sqlite" else 1
                await self._provision_database(database, wanted, other_clients)
                print(
                    f"InstaMsg ({database}): provisioned {wanted:,} benchmark and {other_clients:,} other"
                    f" clients in {time.monotonic() - started:.1f} s",
                    file=sys.stderr,
                )
        except TargetUnavailable as error:
            self.unavailable = str(error)
        except Exception as error:  # the broker is being built: report, never crash the run
            self.unavailable = f"provisioning failed: {type(error).__name__}: {error}"[:300]

    def _ensure_postgres(self) -> bool:
        """A PostgreSQL URL from the environment, or a throwaway cluster; False (with a reason) if none."""
        if self.postgres_url:
            return True
        try:
            from tests.support.postgres import PostgresServer, find_bindir
        except ImportError:
            self.database_unavailable["postgresql"] = "no PostgreSQL (set INSTAMSG_BENCH_POSTGRES_URL)"
            return False
        if find_bindir() is None:
            self.database_unavailable["postgresql"] = "PostgreSQL is not installed"
            return False
        # The test suite's throwaway cluster, but durable: fsync and synchronous commit stay on.
        server = PostgresServer(
            database="instamsg_bench",
            settings={"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"},
        )
        server.start()
        self.postgres_server = server
        self.postgres_url = server.url
        return True

    async def _provision_database(self, database: str, client_count: int, other_clients: int) -> None:
        provisioned = self.provisioned.setdefault(database, Provisioned())
        arguments = ["--data-dir", str(self.data_dir), *self._database_arguments(database)]
        if not provisioned.client_key:
            self.data_dir.mkdir(exist_ok=True)
            created = json.loads(self._run_cli("apps", "create", "--name", "bench", "--json", *arguments))
            provisioned.client_key = created["client_key"]
            provisioned.client_secret = created["client_secret"]
        self.start(Needs(database=database if database != "sqlite" else None))
        try:
            await self._provision(provisioned, client_count, other_clients)
        finally:
            self.stop()

    async def _provision(self, provisioned: Provisioned, client_count: int, other_clients: int) -> None:
        import httpx

        async with httpx.AsyncClient(base_url=self.http_base(), timeout=30) as http:
            if not provisioned.access_token:
                response = await http.post(
                    "/oauth2/token",
                    params={"grant_type": "client_credentials"},
                    auth=(provisioned.client_key, provisioned.client_secret),
                )
                response.raise_for_status()
                provisioned.access_token = response.json()["access_token"]
            http.headers["Authorization"] = f"Bearer {provisioned.access_token}"
            if not provisioned.tenant_id:
                response = await http.post(
                    "/api/v1/tenants",
                    json={
                        "name": "bench",
                        "max_clients": client_count + other_clients + 1000,
                        # Metering stays on; the budget is large enough never to refuse a benchmark message.
                        "max_messages": 10**15,
                    },
                )
                response.raise_for_status()
                provisioned.tenant_id = response.json()["id"]
            path = f"/api/v1/tenants/{provisioned.tenant_id}/clients"

            async def create(name: str, subscribe: list[str], publish: list[str]) -> Credential:
                body = {"type": "device", "name": name, "sub_topics": subscribe, "pub_topics": publish}
                reply = await http.post(path, json=body)
                reply.raise_for_status()
                created = reply.json()
                return Credential(created["id"], created["id"], created["auth_token"])

            limiter = asyncio.Semaphore(32)

            async def limited(name: str, subscribe: list[str], publish: list[str]) -> Credential:
                async with limiter:
                    return await create(name, subscribe, publish)

            missing_others = other_clients - provisioned.other_clients
            if missing_others > 0:
                start = provisioned.other_clients
                await asyncio.gather(
                    *(
                        limited(
                            f"other-{index}",
                            [f"fleet/{index}/commands", f"fleet/{index}/+/set"],
                            [f"fleet/{index}/#"],
                        )
                        for index in range(start, start + missing_others)
                    )
                )
                provisioned.other_clients = other_clients
            missing = client_count - len(provisioned.clients)
            if missing > 0:
                start = len(provisioned.clients)
                provisioned.clients += await asyncio.gather(
                    *(
                        limited(f"bench-{index}", list(self.SUBSCRIBE_TOPICS), list(self.PUBLISH_TOPICS))
                        for index in range(start, start + missing)
                    )
                )

    @property
    def current(self) -> Provisioned:
        """The records of the database the running broker uses."""
        return self.provisioned.get(self.database or "sqlite", Provisioned())

    async def credentials(self, count: int) -> list[Credential]:
        clients = self.current.clients
        if len(clients) < count:
            raise TargetUnavailable(f"only {len(clients)} InstaMsg clients were provisioned, {count} needed")
        return clients[:count]

    async def rest_publish_request(self, topic: str, payload: str) -> RestRequest:
        provisioned = self.current
        if not provisioned.clients or self.ports.get("http") is None:
            raise TargetUnavailable("InstaMsg REST API is not available")
        client = provisioned.clients[0]
        path = f"/api/v1/tenants/{provisioned.tenant_id}/clients/{client.client_id}/messages"
        body = json.dumps({"type": "pub", "topic": topic, "payload": payload, "qos": 1, "save": False})
        http_port = self.ports["http"]
        assert http_port is not None
        return RestRequest(
            LOOPBACK,
            http_port,
            path,
            {
                "Authorization": f"Bearer {provisioned.access_token}",
                "Content-Type": "application/json",
            },
            body.encode(),
        )


def _port(address: object) -> int | None:
    """server.json lists each listener as a port, "host:port", {"port": n} or null."""
    if address is None:
        return None
    if isinstance(address, int):
        return address
    if isinstance(address, dict):
        port = address.get("port")
        return int(port) if port is not None else None
    if isinstance(address, str):
        return int(address.rsplit(":", 1)[-1].rstrip("/").split("/")[0]) if ":" in address else int(address)
    return None


TARGETS: dict[str, Callable[[int | None], Target]] = {
    "mosquitto": MosquittoTarget,
    "instamsg": InstaMsgTarget,
    "amqtt": AmqttTarget,
}
