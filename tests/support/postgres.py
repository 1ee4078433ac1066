"""A throwaway PostgreSQL server for the tests: its own cluster in a temporary directory, on loopback."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from tests.support import processes
from tests.support.ports import LOOPBACK, free_port

SUPERUSER = "postgres"
DEFAULT_DATABASE = "instamsg_test"

# Durability is pointless for a cluster deleted after the run, and costs most of the time.
FAST_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "logging_collector": "off",
    "log_min_messages": "warning",
}

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def _version_key(path: Path) -> tuple[int, ...]:
    """Sort key for /usr/lib/postgresql/<version>/bin: "15" > "9.6"."""
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "postgres"))


def find_bindir() -> Path | None:
    """Directory holding ``initdb`` and ``postgres``, or ``None`` if PostgreSQL is not installed.

    ``pg_config --bindir`` first, then the newest /usr/lib/postgresql/*/bin (Debian keeps the server
    binaries off PATH). pg_config alone is not enough: libpq-dev ships it without a server.
    """
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out and _has_server(Path(out)):
            return Path(out)
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    return next((bindir for bindir in candidates if _has_server(bindir)), None)


def quote_identifier(name: str) -> str:
    """Quote a database name; only plain identifiers are accepted, so no escaping can go wrong."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return f'"{name}"'


class PostgresServer:
    """A PostgreSQL cluster created with initdb in a fresh temporary directory.

    It listens on 127.0.0.1 on a free port and on a unix socket in that directory, trusts every local
    connection as superuser ``postgres`` and holds the database ``database``. As root the cluster runs
    as the ``postgres`` user (or ``nobody``), since PostgreSQL refuses to run as root. ``stop()``
    removes the directory; it is also registered with atexit so an interrupted run leaves nothing.
    """

    def __init__(
        self,
        *,
        bindir: Path | None = None,
        database: str = DEFAULT_DATABASE,
        settings: Mapping[str, str] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise FileNotFoundError("PostgreSQL server binaries (initdb, postgres) not found")
        self.bindir: Path = found
        self.database = database
        self.host = LOOPBACK
        self.user = SUPERUSER
        self.settings: dict[str, str] = {**FAST_SETTINGS, **(settings or {})}
        self.start_timeout = start_timeout
        self.directory: Path | None = None
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner: processes.RunAs | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the cluster, start the server, wait until it accepts connections, create the database."""
        if self._proc is not None:
            raise RuntimeError("PostgresServer already started")
        self._owner = processes.run_as(SUPERUSER)
        self.directory = processes.make_temp_dir("instamsg-pg-", self._owner)
        atexit.register(self.stop)
        try:
            self._initdb()
            self._start_server()
            self.create_database(self.database)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (and its backends) and delete the cluster. Safe to call twice."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None:
            # SIGINT is a fast shutdown (sessions cut, no waiting for clients); SIGQUIT is immediate.
            processes.terminate(proc, ((signal.SIGINT, 10.0), (signal.SIGQUIT, 5.0)))
        directory, self.directory = self.directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def _dir(self) -> Path:
        if self.directory is None:
            raise RuntimeError("PostgresServer is not started")
        return self.directory

    @property
    def data_dir(self) -> Path:
        return self._dir / "data"

    @property
    def socket_dir(self) -> Path:
        """Directory of the server's unix socket (use it as ``host`` for libpq/asyncpg)."""
        return self._dir

    @property
    def log_path(self) -> Path:
        return self._dir / "postgres.log"

    def _env(self) -> dict[str, str]:
        # TZ: initdb otherwise scans the zoneinfo database to guess one; UTC also makes tests repeatable.
        return processes.server_env(self._dir, {"TZ": "UTC"})

    def _initdb(self) -> None:
        processes.run(
            [
                str(self.bindir / "initdb"),
                "--pgdata",
                str(self.data_dir),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
                "--no-instructions",
            ],
            owner=self._owner,
            cwd=self._dir,
            env=self._env(),
        )

    def _start_server(self) -> None:
        # Another process can take the free port before postgres binds it: retry on a new port then.
        for _ in range(5):
            self._port = free_port()
            argv = [
                str(self.bindir / "postgres"),
                "-D",
                str(self.data_dir),
                "-c",
                f"port={self._port}",
                "-c",
                f"listen_addresses={self.host}",
                "-c",
                f"unix_socket_directories={self.socket_dir}",
            ]
            for key, value in self.settings.items():
                argv += ["-c", f"{key}={value}"]
            self.log_path.unlink(missing_ok=True)
            proc = processes.spawn(
                argv,
                owner=self._owner,
                log_path=self.log_path,
                cwd=self._dir,
                env=self._env(),
                # SIGQUIT: immediate shutdown that also ends the backends.
                death_signal=signal.SIGQUIT,
            )
            self._proc = proc
            if self._wait_ready(proc):
                return
            self._proc = None
            proc.wait()
            if "Address already in use" not in self.log_path.read_text(errors="replace"):
                break
        raise RuntimeError(f"PostgreSQL did not start:\n{processes.tail(self.log_path)}")

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        """Wait for postmaster.pid to say "ready" (what ``pg_ctl -w`` checks); False if postgres died."""
        pid_file = self.data_dir / "postmaster.pid"
        deadline = time.monotonic() + self.start_timeout
        delay = 0.005
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                lines = pid_file.read_text().splitlines()
            except OSError:
                lines = []
            # Line 8 is the postmaster status (PM_STATUS_READY), written once connections are accepted.
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return True
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        processes.terminate(proc, ((signal.SIGQUIT, 5.0),))
        raise TimeoutError(
            f"PostgreSQL not ready after {self.start_timeout:.0f}s:\n{processes.tail(self.log_path)}"
        )

    # -- addresses ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        """PID of the postmaster."""
        if self._proc is None:
            raise RuntimeError("PostgresServer is not started")
        return self._proc.pid

    @property
    def port(self) -> int:
        if self._port is None or self._proc is None:
            raise RuntimeError("PostgresServer is not started")
        return self._port

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL (asyncpg driver) of ``database`` on this server."""
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{database}"

    def dsn_for(self, database: str) -> str:
        """libpq/asyncpg DSN of ``database`` on this server."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the default database, e.g. ``postgresql+asyncpg://postgres@127.0.0.1:5433/instamsg_test``."""
        return self.url_for(self.database)

    @property
    def dsn(self) -> str:
        """libpq/asyncpg DSN of the default database, e.g. ``postgresql://postgres@127.0.0.1:5433/instamsg_test``."""
        return self.dsn_for(self.database)

    # -- administration ----------------------------------------------------------------------------

    def execute(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` with psql as the superuser and return its unaligned, tuples-only output."""
        result = processes.run(
            [
                str(self.bindir / "psql"),
                "--no-psqlrc",
                "--quiet",
                "--no-align",
                "--tuples-only",
                "--set",
                "ON_ERROR_STOP=1",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--username",
                self.user,
                "--dbname",
                database,
                "--command",
                sql,
            ],
            owner=None,
            cwd=self._dir,
            env=processes.server_env(self._dir),
            timeout=30.0,
        )
        return result.stdout

    def create_database(self, name: str) -> None:
        """Create an empty database ``name`` (from template1)."""
        self.execute(f"CREATE DATABASE {quote_identifier(name)}")

    def drop_database(self, name: str) -> None:
        """Drop ``name`` if it exists, cutting off any connection a test left open."""
        self.execute(f"DROP DATABASE IF EXISTS {quote_identifier(name)} WITH (FORCE)")

    def databases(self) -> list[str]:
        """Names of the non-template databases."""
        out = self.execute("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY datname")
        return out.split()
