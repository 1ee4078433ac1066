"""A throwaway Mosquitto broker for the tests, on loopback, configured by a generated file."""

from __future__ import annotations

import atexit
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from tests.support import processes
from tests.support.ports import LOOPBACK, free_port, wait_for_port

MAIN_LISTENER = "mqtt"
RUNNING_MARK = re.compile(r"mosquitto version \S+ running")


def find_mosquitto() -> Path | None:
    """The mosquitto binary: PATH first, then /usr/sbin (not on a normal user's PATH on Debian)."""
    found = shutil.which("mosquitto")
    if found is not None:
        return Path(found)
    fallback = Path("/usr/sbin/mosquitto")
    return fallback if fallback.is_file() else None


@dataclass(frozen=True)
class Listener:
    """An extra listener; it gets its own free port on 127.0.0.1 when the broker starts.

    ``options`` are mosquitto.conf lines that apply to this listener (e.g. ``max_connections 5``).
    """

    name: str
    protocol: Literal["mqtt", "websockets"] = "mqtt"
    options: Sequence[str] = field(default_factory=tuple)


class MosquittoServer:
    """A Mosquitto broker listening on 127.0.0.1:<free port>, anonymous access, no persistence.

    ``extra_config`` lines are written right after the main listener, so general options apply
    broker-wide and listener options apply to the main listener. ``extra_listeners`` get free ports
    too: see ``ports``. As root the broker runs as the ``mosquitto`` user (or ``nobody``), owning its
    temporary directory, instead of starting as root and dropping privileges.
    """

    def __init__(
        self,
        *,
        extra_config: Sequence[str] = (),
        extra_listeners: Sequence[Listener] = (),
        binary: Path | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        found = binary or find_mosquitto()
        if found is None:
            raise FileNotFoundError("mosquitto binary not found")
        names = [listener.name for listener in extra_listeners]
        if MAIN_LISTENER in names or len(set(names)) != len(names):
            raise ValueError(f"listener names must be unique and not {MAIN_LISTENER!r}: {names}")
        self.binary: Path = found
        self.host = LOOPBACK
        self.extra_config = tuple(extra_config)
        self.extra_listeners = tuple(extra_listeners)
        self.start_timeout = start_timeout
        self.directory: Path | None = None
        self._ports: dict[str, int] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Write the config, start the broker and wait until every listener accepts connections."""
        if self._proc is not None:
            raise RuntimeError("MosquittoServer already started")
        owner = processes.run_as("mosquitto")
        self.directory = processes.make_temp_dir("instamsg-mosquitto-", owner)
        atexit.register(self.stop)
        try:
            self._start(owner)
        except BaseException:
            self.stop()
            raise

    def _start(self, owner: processes.RunAs | None) -> None:
        # Another process can take a free port before mosquitto binds it: retry on new ports then.
        for _ in range(5):
            self._ports = {MAIN_LISTENER: free_port()}
            self._ports.update((listener.name, free_port()) for listener in self.extra_listeners)
            self.config_path.write_text(self.config_text())
            self.log_path.unlink(missing_ok=True)
            self.output_path.unlink(missing_ok=True)
            processes.chown_tree(self._dir, owner)
            proc = processes.spawn(
                [str(self.binary), "-c", str(self.config_path)],
                owner=owner,
                log_path=self.output_path,
                cwd=self._dir,
                env=processes.server_env(self._dir),
            )
            self._proc = proc
            if self._wait_ready(proc):
                return
            self._proc = None
            if "Address already in use" not in self._diagnostics():
                break
        raise RuntimeError(f"mosquitto did not start:\n{self._diagnostics()}")

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        """Wait until the broker listens on all its ports; False if it exited (e.g. port taken).

        Its log says "running" only once every listener is bound. A port accepting connections alone
        proves nothing: it may belong to another process that took the "free" port.
        """
        deadline = time.monotonic() + self.start_timeout
        delay = 0.005
        while proc.poll() is None:
            if RUNNING_MARK.search(self.log_text()):
                for port in self._ports.values():
                    wait_for_port(self.host, port, max(deadline - time.monotonic(), 0.5))
                return True
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"mosquitto not ready after {self.start_timeout:.0f}s:\n{self._diagnostics()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return False

    def stop(self) -> None:
        """Stop the broker and delete its directory. Safe to call twice."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None:
            processes.terminate(proc, ((signal.SIGTERM, 5.0),))
        directory, self.directory = self.directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def __enter__(self) -> MosquittoServer:
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
            raise RuntimeError("MosquittoServer is not started")
        return self.directory

    @property
    def config_path(self) -> Path:
        return self._dir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        """The broker's log (``log_dest file``)."""
        return self._dir / "mosquitto.log"

    @property
    def output_path(self) -> Path:
        """The broker's stdout/stderr: errors from before the log file is opened."""
        return self._dir / "mosquitto.out"

    def config_text(self) -> str:
        """The generated mosquitto.conf for the current ports."""
        lines = [
            "# Generated by tests/support/mosquitto.py",
            # One set of security settings for all listeners, so allow_anonymous covers them all.
            "per_listener_settings false",
            "allow_anonymous true",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            f"listener {self._ports[MAIN_LISTENER]} {self.host}",
            *self.extra_config,
        ]
        for listener in self.extra_listeners:
            lines += [
                "",
                f"listener {self._ports[listener.name]} {self.host}",
                f"protocol {listener.protocol}",
                *listener.options,
            ]
        return "\n".join(lines) + "\n"

    def _diagnostics(self) -> str:
        return f"{processes.tail(self.output_path)}\n{processes.tail(self.log_path)}"

    def log_text(self) -> str:
        """Everything the broker logged so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("MosquittoServer is not started")
        return self._proc.pid

    @property
    def ports(self) -> dict[str, int]:
        """Port of every listener by name: ``"mqtt"`` for the main one, then the extra listeners'."""
        if self._proc is None:
            raise RuntimeError("MosquittoServer is not started")
        return dict(self._ports)

    @property
    def port(self) -> int:
        """Port of the main MQTT listener."""
        return self.ports[MAIN_LISTENER]
