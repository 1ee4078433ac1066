"""The README quick start, run as written against a real `instamsg serve`, so that it cannot drift.

Every ``$ `` line of the README's ```console blocks is a command; they run in order in one bash
process (variables carry over). Only plumbing is changed: the default URLs point at the test
server's ephemeral ports, and a command sent to the background with ``&`` is waited for until it
printed its ``Subscribed`` line, as a reader would.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.instamsg_server import InstaMsgServer

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CONSOLE_BLOCK = re.compile(r"^```console\n(.*?)^```", re.DOTALL | re.MULTILINE)
READY_WAIT = 'timeout 30 bash -c \'until grep -q "^Subscribed" "$QUICKSTART_READY"; do sleep 0.05; done\''


def readme_commands() -> list[str]:
    """The ``$ `` lines of the README's console blocks, in order."""
    section = README.read_text(encoding="utf-8")
    return [
        line.removeprefix("$ ")
        for block in CONSOLE_BLOCK.findall(section)
        for line in block.splitlines()
        if line.startswith("$ ")
    ]


def script_for(commands: list[str], server: InstaMsgServer) -> str:
    lines = ["set -euo pipefail"]
    for command in commands:
        command = command.replace("http://localhost:8080", server.base_url)
        command = command.replace("mqtt://localhost:1883", f"mqtt://127.0.0.1:{server.ports['mqtt']}")
        if command.rstrip().endswith("&"):
            lines.append(command.rstrip().removesuffix("&") + ' 2>>"$QUICKSTART_READY" &')
            lines.append(READY_WAIT)
        else:
            lines.append(command)
    return "\n".join(lines) + "\n"


def test_readme_has_the_walkthrough_commands() -> None:
    commands = " ".join(readme_commands())
    for step in ("apps create", "login", "tenants create", "clients create", "sub ", "messages publish"):
        assert f"instamsg {step}" in commands, step
    assert "instamsg messages list" in commands


def test_readme_quick_start_runs(tmp_path: Path) -> None:
    if shutil.which("jq") is None:
        # `make test` installs jq (scripts/ensure-services.sh); under CI a missing jq is a failure.
        if os.environ.get("CI"):
            pytest.fail("jq is missing: the README walkthrough needs it (scripts/ensure-services.sh)")
        pytest.skip("the README walkthrough uses jq; run scripts/ensure-services.sh")
    server = InstaMsgServer(tmp_path / "data").start()
    try:
        bin_dir = str(Path(sys.executable).parent)
        environment = {
            **{name: value for name, value in os.environ.items() if not name.startswith("INSTAMSG_")},
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "INSTAMSG_DATA_DIR": str(server.data_dir),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "QUICKSTART_READY": str(tmp_path / "ready.log"),
            "COLUMNS": "200",
        }
        result = subprocess.run(
            ["bash", "-c", script_for(readme_commands(), server)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=environment,
            timeout=120,
            check=False,
        )
    finally:
        server.stop()
    assert result.returncode == 0, (result.stdout, result.stderr, server.log()[-3000:])
    # The device received the REST message ...
    assert "pumps/7/commands start" in result.stdout.splitlines()
    # ... and the history lists it (the table of `messages list`).
    history = result.stdout.split("pumps/7/commands start", 1)[1]
    assert "pumps/7/commands" in history and "start" in history
    assert "Traceback" not in result.stderr
