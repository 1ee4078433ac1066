"""`instamsg messages|config|files|clients ...` and the device tools `pub`/`sub`/`provision`
against a real `instamsg serve`: JSON output, exit codes, one error line."""

from __future__ import annotations

import json
import os
import select
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from instamsg.cli import main
from instamsg.cli.commands.clients import sparkline
from tests.api.support import unique
from tests.support.instamsg_server import InstaMsgServer
from tests.support.ports import free_port

pytestmark = pytest.mark.xdist_group("cli-device-commands")

CREDENTIAL_VARIABLES = (
    "INSTAMSG_URL",
    "INSTAMSG_CLIENT_KEY",
    "INSTAMSG_CLIENT_SECRET",
    "INSTAMSG_PROFILE",
    "INSTAMSG_BROKER",
    "INSTAMSG_DEVICE_ID",
    "INSTAMSG_DEVICE_TOKEN",
)


@dataclass(frozen=True)
class Running:
    server: InstaMsgServer
    environment: dict[str, str]

    @property
    def broker(self) -> str:
        return f"mqtt://127.0.0.1:{self.server.ports['mqtt']}"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    server = InstaMsgServer(tmp_path_factory.mktemp("serve") / "data").start()
    try:
        client_key, client_secret = server.create_app("cli-device")
        environment = {
            "INSTAMSG_URL": server.base_url,
            "INSTAMSG_CLIENT_KEY": client_key,
            "INSTAMSG_CLIENT_SECRET": client_secret,
        }
        yield Running(server, environment)
    finally:
        server.stop()


def cli(running: Running, tmp_path: Path, *arguments: str, env: dict[str, str] | None = None) -> Result:
    environment: dict[str, str | None] = dict.fromkeys(CREDENTIAL_VARIABLES)
    environment.update({"XDG_CONFIG_HOME": str(tmp_path / "config"), **running.environment, **(env or {})})
    result = CliRunner().invoke(main.app, list(arguments), env=environment)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def one_error_line(result: Result, exit_code: int, *fragments: str) -> None:
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def device(running: Running, tmp_path: Path) -> dict[str, Any]:
    """A tenant and a device allowed to publish and subscribe on `pub1`."""
    tenant = ok_json(
        cli(running, tmp_path, "tenants", "create", "--name", unique("t"), "--max-clients", "5",
            "--max-messages", "100", "--json")
    )  # fmt: skip
    created = ok_json(
        cli(running, tmp_path, "clients", "create", "--tenant", tenant["id"], "--type", "device",
            "--name", unique("d"), "--pub-topic", "pub1", "--sub-topic", "pub1", "--json")
    )  # fmt: skip
    assert isinstance(created, dict)
    return created


def test_messages_publish_list_get_release(running: Running, tmp_path: Path, device: dict[str, Any]) -> None:
    ids = ["--tenant", device["tenant_id"]]
    published = ok_json(
        cli(running, tmp_path, "messages", "publish", device["id"], *ids, "--topic", "pub1",
            "--payload", "hello", "--qos", "3", "--id", "5", "--json")
    )  # fmt: skip
    assert (published["topic"], published["payload"], published["qos"]) == ("pub1", "hello", 3)
    cli(
        running, tmp_path, "messages", "publish", device["id"], *ids, "--topic", "pub1", "--payload", "second"
    )

    page = ok_json(cli(running, tmp_path, "messages", "list", device["id"], *ids, "--limit", "1", "--json"))
    assert [item["payload"] for item in page["items"]] == ["second"] and page["next_cursor"]
    every = ok_json(
        cli(running, tmp_path, "messages", "list", device["id"], *ids, "--all", "--limit", "1", "--json")
    )
    assert [item["payload"] for item in every["items"]] == ["second", "hello"]
    table = cli(running, tmp_path, "messages", "list", device["id"], *ids)
    assert table.exit_code == 0 and "hello" in table.stdout and published["id"] in table.stdout

    single = ok_json(
        cli(running, tmp_path, "messages", "get", published["id"], "--client", device["id"], *ids, "--json")
    )
    assert single["id"] == published["id"]
    released = ok_json(
        cli(
            running,
            tmp_path,
            "messages",
            "release",
            published["id"],
            "--client",
            device["id"],
            *ids,
            "--json",
        )
    )
    assert len(released["releases"]) == 1


@pytest.mark.parametrize(
    ("arguments", "exit_code", "fragment"),
    [
        (["--topic", "pub1", "--qos", "0"], 2, "--qos"),
        (["--topic", "pub1", "--qos", "2"], 2, "--qos 2 needs --id"),
        (["--topic", "elsewhere"], 3, "pub_topics"),
        (["--topic", "instamsg/clients/x/reboot"], 3, "reserved"),
    ],
)
def test_messages_publish_errors_are_one_line(
    running: Running,
    tmp_path: Path,
    device: dict[str, Any],
    arguments: list[str],
    exit_code: int,
    fragment: str,
) -> None:
    result = cli(
        running, tmp_path, "messages", "publish", device["id"], "--tenant", device["tenant_id"], *arguments
    )
    if exit_code == 2 and fragment == "--qos":
        assert result.exit_code == 2 and "--qos" in result.stderr
        return
    one_error_line(result, exit_code, fragment)


def test_unknown_message_is_one_line(running: Running, tmp_path: Path, device: dict[str, Any]) -> None:
    result = cli(
        running, tmp_path, "messages", "release", "00000000-0000-4000-8000-000000000000",
        "--client", device["id"], "--tenant", device["tenant_id"],
    )  # fmt: skip
    one_error_line(result, 3, "message")


def _start_sub(running: Running, device: dict[str, Any], *arguments: str) -> subprocess.Popen[str]:
    environment = {
        **os.environ,
        "INSTAMSG_DEVICE_ID": device["id"],
        "INSTAMSG_DEVICE_TOKEN": device["auth_token"],
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "instamsg", "sub", "--broker", running.broker, *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    assert process.stderr is not None
    line = process.stderr.readline()  # blocks until subscribed (or the error line)
    assert line.startswith("Subscribed to"), line + process.stderr.read()
    return process


def test_sub_receives_what_pub_and_the_rest_api_publish(
    running: Running, tmp_path: Path, device: dict[str, Any]
) -> None:
    # Another client publishes: a second connection of the same UUID would take the first one over.
    publisher = ok_json(
        cli(running, tmp_path, "clients", "create", "--tenant", device["tenant_id"], "--type", "device",
            "--name", unique("p"), "--pub-topic", "pub1", "--json")
    )  # fmt: skip
    process = _start_sub(running, device, "pub1", "--qos", "1", "--count", "2", "--timeout", "20")
    try:
        credentials = [
            "--client-id",
            publisher["id"],
            "--token",
            publisher["auth_token"],
            "--broker",
            running.broker,
        ]
        sent = cli(running, tmp_path, "pub", "pub1", "over mqtt", "--qos", "1", *credentials)
        assert sent.exit_code == 0, sent.stderr
        cli(running, tmp_path, "messages", "publish", device["id"], "--tenant", device["tenant_id"],
            "--topic", "pub1", "--payload", "over rest")  # fmt: skip
        output, errors = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0, errors
    assert output.splitlines() == ["pub1 over mqtt", "pub1 over rest"]


def test_pub_with_a_wrong_token_is_one_line_exit_3(
    running: Running, tmp_path: Path, device: dict[str, Any]
) -> None:
    result = cli(
        running, tmp_path, "pub", "pub1", "x", "--client-id", device["id"], "--token", "0" * 32,
        "--broker", running.broker,
    )  # fmt: skip
    one_error_line(result, 3, "wrong auth token")


def test_pub_to_a_closed_port_is_one_line_exit_4(
    running: Running, tmp_path: Path, device: dict[str, Any]
) -> None:
    result = cli(
        running, tmp_path, "pub", "pub1", "x", "--client-id", device["id"], "--token", device["auth_token"],
        "--broker", f"mqtt://127.0.0.1:{free_port()}",
    )  # fmt: skip
    one_error_line(result, 4, "is the server running")


def test_pub_without_credentials_and_with_a_bad_broker_url_are_usage_errors(
    running: Running, tmp_path: Path
) -> None:
    one_error_line(cli(running, tmp_path, "pub", "t", "x"), 2, "--client-id")
    result = cli(
        running, tmp_path, "pub", "t", "x", "--client-id", "a", "--token", "b", "--broker", "http://h"
    )
    one_error_line(result, 2, "--broker")
    assert cli(running, tmp_path, "pub", "t", "x", "--qos", "3").exit_code == 2


def test_provision_prints_the_client_id_and_token(running: Running, tmp_path: Path) -> None:
    tenant = ok_json(
        cli(running, tmp_path, "tenants", "create", "--name", unique("t"), "--max-clients", "5",
            "--max-messages", "100", "--json")
    )  # fmt: skip
    imei = unique("imei")
    created = ok_json(
        cli(running, tmp_path, "clients", "create", "--tenant", tenant["id"], "--type", "device",
            "--name", "p", "--provisioning-id", imei, "--provisioning-key", "KEY01a", "--json")
    )  # fmt: skip
    result = ok_json(
        cli(running, tmp_path, "provision", imei, "--key", "KEY01a", "--broker", running.broker, "--json",
            "--timeout", "10")
    )  # fmt: skip
    assert result == {"client_id": created["id"], "auth_token": created["auth_token"]}
    wrong = cli(running, tmp_path, "provision", imei, "--key", "NOPE01", "--broker", running.broker)
    one_error_line(wrong, 3, "wrong provisioning key")


def test_device_data_commands_print_the_servers_json(
    running: Running, tmp_path: Path, device: dict[str, Any]
) -> None:
    ids = [device["id"], "--tenant", device["tenant_id"]]
    state = ok_json(
        cli(running, tmp_path, "config", "set", *ids, "PING_REQ_INTERVAL=120", "NTP=pool", "--json")
    )
    assert state["desired"]["values"] == {"PING_REQ_INTERVAL": 120, "NTP": "pool"}
    assert ok_json(cli(running, tmp_path, "config", "get", *ids, "--json"))["config"]["NTP"] == "pool"
    assert ok_json(cli(running, tmp_path, "config", "delete", *ids, "--json"))["desired"]["values"] == {}

    info = ok_json(cli(running, tmp_path, "clients", "info", *ids, "--json"))
    assert info["client_id"] == device["id"]
    assert ok_json(cli(running, tmp_path, "clients", "sessions", *ids, "--json")) == {
        "items": [],
        "next_cursor": None,
    }
    assert ok_json(cli(running, tmp_path, "clients", "network-logs", *ids, "--json"))["items"] == []
    metrics = ok_json(cli(running, tmp_path, "clients", "metrics", *ids, "--interval", "month", "--json"))
    assert metrics["interval"] == "month" and len(metrics["buckets"]) == 30
    chart = cli(running, tmp_path, "clients", "metrics", *ids)
    assert chart.exit_code == 0 and "messages_sent" in chart.stdout and "▁" in chart.stdout
    logging_on = ok_json(
        cli(running, tmp_path, "clients", "logging", *ids, "on", "--duration", "60", "--json")
    )
    assert logging_on["enabled"] is True
    assert "is off" in cli(running, tmp_path, "clients", "logging", *ids, "off").stdout
    reboot = cli(running, tmp_path, "clients", "reboot", *ids)
    assert reboot.exit_code == 0 and "offline" in reboot.stdout
    firmware = ok_json(
        cli(running, tmp_path, "clients", "update-firmware", *ids, "http://x/fw.bin", "--json")
    )
    assert firmware["sent"] is False
    action = cli(running, tmp_path, "clients", "control-action", *ids, '{"relay": "on"}')
    assert action.exit_code == 0 and "offline" in action.stdout
    one_error_line(cli(running, tmp_path, "clients", "reset-cert", *ids), 3, "--secure-cert")


def test_files_upload_list_download_delete(running: Running, tmp_path: Path, device: dict[str, Any]) -> None:
    ids = [device["id"], "--tenant", device["tenant_id"]]
    source = tmp_path / "report.csv"
    source.write_bytes(b"a,b\n" * 5000)
    stored = ok_json(cli(running, tmp_path, "files", "upload", *ids, str(source), "--json"))
    assert (stored["filename"], stored["size"]) == ("report.csv", 20000)
    assert [
        item["filename"] for item in ok_json(cli(running, tmp_path, "files", "list", *ids, "--json"))
    ] == ["report.csv"]
    target = tmp_path / "copy.csv"
    fetched = cli(running, tmp_path, "files", "download", *ids, "report.csv", "-o", str(target))
    assert fetched.exit_code == 0 and target.read_bytes() == source.read_bytes()
    assert cli(running, tmp_path, "files", "delete", *ids, "report.csv").exit_code == 0
    missing = cli(running, tmp_path, "files", "download", *ids, "report.csv", "-o", str(tmp_path / "gone"))
    one_error_line(missing, 3)
    assert not (tmp_path / "gone").exists() and not (tmp_path / "gone.part").exists()
    one_error_line(
        cli(running, tmp_path, "files", "upload", *ids, str(tmp_path / "nothing")), 2, "readable file"
    )


def read_line_within(process: subprocess.Popen[str], seconds: float) -> str:
    """The next stdout line of ``process``; fails instead of blocking when none comes in time."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], seconds)
    assert ready, "no output in time"
    return process.stdout.readline()


def test_logs_follow_prints_new_entries(running: Running, tmp_path: Path, device: dict[str, Any]) -> None:
    environment = {**os.environ, **running.environment, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    process = subprocess.Popen(
        [sys.executable, "-m", "instamsg", "clients", "logs", device["id"], "--tenant", device["tenant_id"],
         "--follow", "--poll", "0.2", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
    )  # fmt: skip
    try:
        # A connection writes a server log entry (connect) that the follower then prints.
        sent = cli(running, tmp_path, "pub", "pub1", "x", "--client-id", device["id"],
                   "--token", device["auth_token"], "--broker", running.broker)  # fmt: skip
        assert sent.exit_code == 0, sent.stderr
        entry = json.loads(read_line_within(process, 20.0))
        assert entry["creator"] == "InstaMsg" and entry["message"].startswith(("connect", "disconnect"))
    finally:
        process.kill()
        process.wait()


def test_config_set_needs_key_value(running: Running, tmp_path: Path, device: dict[str, Any]) -> None:
    result = cli(running, tmp_path, "config", "set", device["id"], "--tenant", device["tenant_id"], "novalue")
    one_error_line(result, 2, "KEY=VALUE")


def test_sparkline_scales_to_the_largest_bucket() -> None:
    assert sparkline([0, 4, 8]) == "▁▅█"
    assert sparkline([0, 0]) == "▁▁"


def test_download_into_a_missing_directory_is_one_line(
    running: Running, tmp_path: Path, device: dict[str, Any]
) -> None:
    ids = [device["id"], "--tenant", device["tenant_id"]]
    source = tmp_path / "a.txt"
    source.write_text("a")
    assert cli(running, tmp_path, "files", "upload", *ids, str(source)).exit_code == 0
    result = cli(running, tmp_path, "files", "download", *ids, "a.txt", "-o", str(tmp_path / "no" / "a.txt"))
    one_error_line(result, 2, "cannot write")


def test_tls_without_the_ca_says_how_to_trust_the_server(
    running: Running, tmp_path: Path, device: dict[str, Any]
) -> None:
    broker = f"mqtts://127.0.0.1:{running.server.ports['mqtts']}"
    credentials = ["--client-id", device["id"], "--token", device["auth_token"], "--broker", broker]
    one_error_line(cli(running, tmp_path, "pub", "pub1", "x", *credentials), 4, "--ca-file")
    assert cli(running, tmp_path, "pub", "pub1", "x", "--insecure", *credentials).exit_code == 0


@pytest.mark.parametrize(
    "command",
    [
        ["messages", "list"],
        ["config", "get"],
        ["files", "list"],
        ["clients", "metrics"],
        ["clients", "sessions"],
        ["clients", "logs"],
    ],
)
def test_an_unknown_client_is_one_line(
    running: Running, tmp_path: Path, device: dict[str, Any], command: list[str]
) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    result = cli(running, tmp_path, *command, unknown, "--tenant", device["tenant_id"])
    one_error_line(result, 3, "instamsg clients list")


def test_a_wrong_url_is_one_line_exit_4(running: Running, tmp_path: Path, device: dict[str, Any]) -> None:
    result = cli(
        running, tmp_path, "messages", "list", device["id"], "--tenant", device["tenant_id"],
        env={"INSTAMSG_URL": f"http://127.0.0.1:{free_port()}"},
    )  # fmt: skip
    one_error_line(result, 4, "is the server running")


def test_provision_of_a_secure_client_writes_its_certificate(
    running: Running, tmp_path: Path, device: dict[str, Any]
) -> None:
    imei = unique("imei")
    created = ok_json(
        cli(running, tmp_path, "clients", "create", "--tenant", device["tenant_id"], "--type", "device",
            "--name", "s", "--secure-cert", "--provisioning-id", imei, "--json")
    )  # fmt: skip
    certs = tmp_path / "certs"
    result = cli(running, tmp_path, "provision", imei, "--broker", running.broker, "--output-dir", str(certs))
    assert result.exit_code == 0, result.stderr
    assert (certs / f"{created['id']}.crt").read_text().startswith("-----BEGIN CERTIFICATE-----")
    key = certs / f"{created['id']}.key"
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
