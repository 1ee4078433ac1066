"""A real `instamsg serve` subprocess on ephemeral loopback ports, for end-to-end tests."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

START_TIMEOUT_SECONDS = 30.0

# Every server started and not yet stopped, so a failing test cannot leave one running.
RUNNING: list[InstaMsgServer] = []


def run_cli(
    *arguments: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run `python -m instamsg ...` as a user would run `instamsg ...`."""
    return subprocess.run(
        [sys.executable, "-m", "instamsg", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


@dataclass(eq=False)
class InstaMsgServer:
    data_dir: Path
    extra_arguments: list[str] = field(default_factory=list)
    # Listeners given `0` on the command line; the others come from the environment or defaults.
    ephemeral_listeners: tuple[str, ...] = ("http", "mqtt", "mqtts", "ws", "wss")
    process: subprocess.Popen[bytes] | None = None
    ports: dict[str, Any] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}-serve.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    def start(self) -> InstaMsgServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        server_json = self.data_dir / "server.json"
        server_json.unlink(missing_ok=True)
        arguments = [
            sys.executable,
            "-m",
            "instamsg",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--host",
            "127.0.0.1",
        ]
        for listener in self.ephemeral_listeners:
            arguments += [f"--{listener}-port", "0"]
        arguments += self.extra_arguments
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(arguments, stdout=log, stderr=subprocess.STDOUT)
        RUNNING.append(self)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"instamsg serve exited with {self.process.returncode}:\n{self.log()}")
            if server_json.exists():
                info = json.loads(server_json.read_text())
                if info.get("pid") == self.process.pid:
                    self.ports = info
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"instamsg serve was not ready within {START_TIMEOUT_SECONDS} s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the server and wait for it; returns its exit code."""
        assert self.process is not None
        if self in RUNNING:
            RUNNING.remove(self)
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def create_app(self, name: str = "e2e") -> tuple[str, str]:
        result = run_cli("apps", "create", "--name", name, "--json", "--data-dir", str(self.data_dir))
        assert result.returncode == 0, result.stderr
        created = json.loads(result.stdout)
        return created["client_key"], created["client_secret"]

    def token(self, client_key: str, client_secret: str) -> str:
        basic = base64.b64encode(f"{client_key}:{client_secret}".encode()).decode()
        response = httpx.post(
            f"{self.base_url}/oauth2/token?grant_type=client_credentials",
            headers={"Authorization": f"Basic {basic}"},
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token
