"""`instamsg login`, `tenants` and `clients` against a real `instamsg serve`: output, exit codes, profiles.

Most commands run in process (typer's CliRunner) to keep the module fast; a few run as a real
subprocess to check what a shell sees: the exit code and one error line, never a traceback.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from instamsg.cli import main
from instamsg.cli.output import ExitCode
from tests.support.instamsg_server import InstaMsgServer, run_cli
from tests.support.ports import free_port

# One server per module: keep the module on one xdist worker (make test uses --dist loadgroup).
pytestmark = pytest.mark.xdist_group("cli-resources")


UNKNOWN_UUID = "00000000-0000-4000-8000-000000000000"
CREDENTIAL_VARIABLES = ("INSTAMSG_URL", "INSTAMSG_CLIENT_KEY", "INSTAMSG_CLIENT_SECRET", "INSTAMSG_PROFILE")


@dataclass(frozen=True)
class RunningServer:
    server: InstaMsgServer
    client_key: str
    client_secret: str

    @property
    def url(self) -> str:
        return self.server.base_url

    @property
    def environment(self) -> dict[str, str]:
        return {
            "INSTAMSG_URL": self.url,
            "INSTAMSG_CLIENT_KEY": self.client_key,
            "INSTAMSG_CLIENT_SECRET": self.client_secret,
        }

    def raw(self, path: str) -> Any:
        """The server's own JSON for a GET, fetched without the SDK."""
        token = self.server.token(self.client_key, self.client_secret)
        response = httpx.get(self.url + path, headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = InstaMsgServer(tmp_path_factory.mktemp("serve") / "data").start()
    try:
        client_key, client_secret = server.create_app("cli-tests")
        yield RunningServer(server, client_key, client_secret)
    finally:
        server.stop()


@pytest.fixture
def config_home(tmp_path: Path) -> Path:
    return tmp_path / "config"


def invoke(config_home: Path, *arguments: str, env: dict[str, str] | None = None) -> Result:
    """Run `instamsg ...` in process with only the given credentials in the environment."""
    environment: dict[str, str | None] = dict.fromkeys(CREDENTIAL_VARIABLES)
    environment.update({"XDG_CONFIG_HOME": str(config_home), **(env or {})})
    result = CliRunner().invoke(main.app, list(arguments), env=environment)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture
def cli(running: RunningServer, config_home: Path) -> Any:
    """`cli(*arguments)`: run a command with the server's credentials in the environment."""

    def run(*arguments: str, env: dict[str, str] | None = None) -> Result:
        return invoke(config_home, *arguments, env={**running.environment, **(env or {})})

    return run


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def one_error_line(result: Result, exit_code: int, *fragments: str) -> str:
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


# login and profiles


def test_login_saves_a_0600_profile_that_commands_use(running: RunningServer, config_home: Path) -> None:
    result = invoke(
        config_home,
        "login",
        "--url",
        running.url,
        "--client-key",
        running.client_key,
        "--client-secret",
        running.client_secret,
    )
    assert result.exit_code == 0, result.stderr
    path = config_home / "instamsg" / "profiles.json"
    assert "Saved profile 'default'" in result.stdout and str(path) in result.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())["profiles"]["default"]
    assert saved == {
        "url": running.url,
        "client_key": running.client_key,
        "client_secret": running.client_secret,
    }
    assert isinstance(ok_json(invoke(config_home, "tenants", "list", "--json")), list)

    # A second profile is added next to the first; the file stays 0600.
    named = invoke(
        config_home,
        "login",
        "--profile",
        "staging",
        "--url",
        running.url,
        "--client-key",
        running.client_key,
        "--client-secret",
        running.client_secret,
        "--no-verify",
    )
    assert named.exit_code == 0, named.stderr
    assert set(json.loads(path.read_text())["profiles"]) == {"default", "staging"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert isinstance(ok_json(invoke(config_home, "tenants", "list", "--profile", "staging", "--json")), list)
    from_environment = invoke(config_home, "tenants", "list", "--json", env={"INSTAMSG_PROFILE": "staging"})
    assert isinstance(ok_json(from_environment), list)
    one_error_line(
        invoke(config_home, "tenants", "list", "--profile", "missing"),
        ExitCode.USAGE,
        "no profile 'missing'",
        "instamsg login --profile missing",
    )


def test_login_with_a_wrong_secret_saves_nothing(running: RunningServer, config_home: Path) -> None:
    result = invoke(
        config_home,
        "login",
        "--url",
        running.url,
        "--client-key",
        running.client_key,
        "--client-secret",
        "no",
    )
    one_error_line(result, ExitCode.API_ERROR, "the client key or secret is wrong")
    assert not (config_home / "instamsg" / "profiles.json").exists()
    refused = invoke(
        config_home,
        "login",
        "--url",
        f"http://127.0.0.1:{free_port()}",
        "--client-key",
        "k",
        "--client-secret",
        "s",
    )
    one_error_line(refused, ExitCode.CONNECTION_ERROR, "connection refused")


def test_environment_variables_win_over_the_profile(running: RunningServer, config_home: Path) -> None:
    login = invoke(
        config_home,
        "login",
        "--url",
        running.url,
        "--client-key",
        running.client_key,
        "--client-secret",
        running.client_secret,
    )
    assert login.exit_code == 0, login.stderr
    wrong_secret = invoke(config_home, "tenants", "list", env={"INSTAMSG_CLIENT_SECRET": "wrong"})
    one_error_line(
        wrong_secret, ExitCode.API_ERROR, "the client key or secret is wrong", "INSTAMSG_CLIENT_SECRET"
    )
    refused_url = f"http://127.0.0.1:{free_port()}"
    refused = invoke(config_home, "tenants", "list", env={"INSTAMSG_URL": refused_url})
    one_error_line(refused, ExitCode.CONNECTION_ERROR, refused_url, "connection refused", "INSTAMSG_URL")


def test_missing_or_bad_credentials_are_usage_errors(config_home: Path) -> None:
    one_error_line(
        invoke(config_home, "tenants", "list"),
        ExitCode.USAGE,
        "no credentials",
        "INSTAMSG_URL",
        "instamsg login",
    )
    partial = invoke(config_home, "clients", "list", env={"INSTAMSG_URL": "http://127.0.0.1:1"})
    one_error_line(partial, ExitCode.USAGE, "INSTAMSG_CLIENT_KEY, INSTAMSG_CLIENT_SECRET")
    bad_url = {"INSTAMSG_URL": "localhost:8080", "INSTAMSG_CLIENT_KEY": "k", "INSTAMSG_CLIENT_SECRET": "s"}
    one_error_line(invoke(config_home, "tenants", "list", env=bad_url), ExitCode.USAGE, "INSTAMSG_URL")
    (config_home / "instamsg").mkdir(parents=True)
    (config_home / "instamsg" / "profiles.json").write_text("{not json")
    one_error_line(invoke(config_home, "tenants", "list"), ExitCode.USAGE, "cannot read", "instamsg login")


# tenants


def test_tenants_commands(cli: Any, running: RunningServer) -> None:
    created = ok_json(
        cli("tenants", "create", "--name", "Acme", "--max-clients", "2", "--max-messages", "500", "--json")
    )
    tenant_id = created["id"]
    assert created == running.raw(f"/api/v1/tenants/{tenant_id}")  # --json is the server's JSON

    human = cli("tenants", "create", "--name", "Globex", "--max-clients", "1", "--max-messages", "9")
    assert human.exit_code == 0 and "Created tenant Globex" in human.stdout and "max_clients" in human.stdout

    listed = cli("tenants", "list")
    assert listed.exit_code == 0 and tenant_id in listed.stdout and "Acme" in listed.stdout
    assert "0/2" in listed.stdout  # clients used / max
    by_name = ok_json(cli("tenants", "list", "--sort-by", "name", "--sort-order", "desc", "--json"))
    names = [tenant["name"] for tenant in by_name]
    assert names == sorted(names, reverse=True) and "Acme" in names

    assert ok_json(cli("tenants", "get", tenant_id, "--json")) == created
    shown = cli("tenants", "get", tenant_id)
    assert shown.exit_code == 0 and "Tenant Acme" in shown.stdout and tenant_id in shown.stdout

    updated = ok_json(cli("tenants", "update", tenant_id, "--inactive", "--description", "paused", "--json"))
    assert updated["active"] is False and updated["description"] == "paused"
    inactive = ok_json(cli("tenants", "list", "--inactive", "--json"))
    assert tenant_id in {tenant["id"] for tenant in inactive}
    assert tenant_id not in {tenant["id"] for tenant in ok_json(cli("tenants", "list", "--active", "--json"))}
    renamed = cli("tenants", "update", tenant_id, "--name", "Acme 2", "--max-clients", "3")
    assert renamed.exit_code == 0 and "Acme 2" in renamed.stdout

    deleted = cli("tenants", "delete", tenant_id)
    assert deleted.exit_code == 0 and f"Deleted tenant {tenant_id}" in deleted.stdout
    one_error_line(cli("tenants", "get", tenant_id), ExitCode.API_ERROR, tenant_id, "instamsg tenants list")
    one_error_line(cli("tenants", "delete", UNKNOWN_UUID), ExitCode.API_ERROR, "instamsg tenants list")


def test_tenant_usage_and_validation_errors(cli: Any) -> None:
    one_error_line(cli("tenants", "update", UNKNOWN_UUID), ExitCode.USAGE, "nothing to update")
    assert cli("tenants", "create", "--name", "x").exit_code == ExitCode.USAGE  # missing --max-clients
    assert cli("tenants", "list", "--sort-by", "size").exit_code == ExitCode.USAGE
    invalid = cli("tenants", "create", "--name", "x", "--max-clients", "-1", "--max-messages", "1")
    one_error_line(invalid, ExitCode.API_ERROR, "the server refused the request", "max_clients")


# clients


def test_clients_commands(cli: Any, running: RunningServer) -> None:
    tenant_id = ok_json(
        cli("tenants", "create", "--name", "Plant", "--max-clients", "5", "--max-messages", "9", "--json")
    )["id"]
    other_tenant = ok_json(
        cli("tenants", "create", "--name", "Depot", "--max-clients", "5", "--max-messages", "9", "--json")
    )["id"]

    device = ok_json(
        cli(
            "clients",
            "create",
            "--tenant",
            tenant_id,
            "--type",
            "device",
            "--name",
            "pump-7",
            "--sub-topic",
            "sub1",
            "--sub-topic",
            "alerts/#",
            "--pub-topic",
            "pub1",
            "--provisioning-id",
            "cli-356938035643809",
            "--provisioning-key",
            "KEY01a",
            "--gsm-apn",
            "internet",
            "--no-gsm-send-sms",
            "--json",
        )
    )
    assert device["sub_topics"] == ["sub1", "alerts/#"] and device["pub_topics"] == ["pub1"]
    assert device["provisioning_params"]["provisioning_key"] == "********"
    assert device["provisioning_params"]["gsm_send_sms"] == "0" and len(device["auth_token"]) == 32
    device_id = device["id"]

    user_human = cli("clients", "create", "--tenant", tenant_id, "--type", "user", "--name", "dashboard")
    assert user_human.exit_code == 0 and "Created user client dashboard" in user_human.stdout
    assert "auth_token" in user_human.stdout
    elsewhere = ok_json(
        cli("clients", "create", "--tenant", other_tenant, "--type", "user", "--name", "x", "--json")
    )

    in_tenant = ok_json(cli("clients", "list", "--tenant", tenant_id, "--json"))
    assert [client["name"] for client in in_tenant] == ["pump-7", "dashboard"]
    assert in_tenant == running.raw(f"/api/v1/tenants/{tenant_id}/clients")
    user_id = in_tenant[1]["id"]
    users = ok_json(cli("clients", "list", "--tenant", tenant_id, "--type", "user", "--json"))
    assert [client["id"] for client in users] == [user_id]
    states = ok_json(cli("clients", "list", "--tenant", tenant_id, "--state", "unprovisioned", "--json"))
    assert [client["id"] for client in states] == [device_id]
    everywhere = ok_json(cli("clients", "list", "--json"))
    assert {device_id, user_id, elsewhere["id"]} <= {client["id"] for client in everywhere}
    table = cli("clients", "list")
    assert table.exit_code == 0 and "tenant_id" in table.stdout and elsewhere["id"] in table.stdout
    tenant_table = cli("clients", "list", "--tenant", tenant_id)
    assert device_id in tenant_table.stdout and "tenant_id" not in tenant_table.stdout

    shown = ok_json(cli("clients", "get", device_id, "--tenant", tenant_id, "--json"))
    assert shown == running.raw(f"/api/v1/tenants/{tenant_id}/clients/{device_id}")
    assert "auth_token" not in shown
    human = cli("clients", "get", device_id, "--tenant", tenant_id)
    assert human.exit_code == 0 and "Client pump-7" in human.stdout and "sub1, alerts/#" in human.stdout

    blocked = ok_json(cli("clients", "update", device_id, "--tenant", tenant_id, "--block", "--json"))
    assert blocked["state"] == "blocked" and blocked["blocked"] is True
    unblocked = cli(
        "clients",
        "update",
        device_id,
        "--tenant",
        tenant_id,
        "--unblock",
        "--name",
        "pump-8",
        "--remove-provisioning",
    )
    assert unblocked.exit_code == 0 and "Updated client pump-8" in unblocked.stdout
    assert (
        ok_json(cli("clients", "get", device_id, "--tenant", tenant_id, "--json"))["provisioning_params"]
        is None
    )

    token = cli("clients", "token", user_id, "--tenant", tenant_id)
    assert token.exit_code == 0 and len(token.stdout.strip()) == 32
    assert ok_json(cli("clients", "token", user_id, "--tenant", tenant_id, "--json")) == {
        "auth_token": token.stdout.strip()
    }
    one_error_line(
        cli("clients", "token", device_id, "--tenant", tenant_id),
        ExitCode.API_ERROR,
        "is a device",
        f"instamsg clients reset-token {device_id} --tenant {tenant_id}",
    )
    reset = cli("clients", "reset-token", device_id, "--tenant", tenant_id)
    assert reset.exit_code == 0 and len(reset.stdout.strip()) == 32
    reset_json = ok_json(cli("clients", "reset-token", user_id, "--tenant", tenant_id, "--json"))
    assert reset_json["auth_token"] != token.stdout.strip()

    deleted = cli("clients", "delete", user_id, "--tenant", tenant_id)
    assert deleted.exit_code == 0 and f"Deleted client {user_id}" in deleted.stdout
    one_error_line(
        cli("clients", "get", user_id, "--tenant", tenant_id),
        ExitCode.API_ERROR,
        "instamsg clients list --tenant",
    )


def test_client_errors(cli: Any) -> None:
    tenant_id = ok_json(
        cli("tenants", "create", "--name", "Tiny", "--max-clients", "1", "--max-messages", "1", "--json")
    )["id"]
    first = cli(
        "clients",
        "create",
        "--tenant",
        tenant_id,
        "--type",
        "device",
        "--name",
        "one",
        "--provisioning-id",
        "cli-dup",
    )
    assert first.exit_code == 0, first.stderr
    one_error_line(
        cli("clients", "create", "--tenant", tenant_id, "--type", "device", "--name", "two"),
        ExitCode.API_ERROR,
        "maximum of 1 clients",
        f"instamsg tenants update {tenant_id} --max-clients",
    )
    assert cli("tenants", "update", tenant_id, "--max-clients", "5").exit_code == 0
    one_error_line(
        cli(
            "clients",
            "create",
            "--tenant",
            tenant_id,
            "--type",
            "device",
            "--name",
            "two",
            "--provisioning-id",
            "cli-dup",
        ),
        ExitCode.API_ERROR,
        "--provisioning-id",
    )
    one_error_line(
        cli("clients", "create", "--tenant", UNKNOWN_UUID, "--type", "user", "--name", "x"),
        ExitCode.API_ERROR,
        "instamsg tenants list",
    )
    one_error_line(
        cli("clients", "update", UNKNOWN_UUID, "--tenant", tenant_id), ExitCode.USAGE, "nothing to update"
    )
    assert cli("clients", "create", "--tenant", tenant_id, "--type", "robot", "--name", "x").exit_code == 2
    assert cli("clients", "get", UNKNOWN_UUID).exit_code == 2  # --tenant is required
    one_error_line(
        cli(
            "clients",
            "update",
            UNKNOWN_UUID,
            "--tenant",
            tenant_id,
            "--remove-provisioning",
            "--provisioning-id",
            "x",
        ),
        ExitCode.USAGE,
        "not both",
    )


# What a shell sees


def test_real_process_exit_codes_and_one_line_errors(running: RunningServer, tmp_path: Path) -> None:
    environment = {**running.environment, "XDG_CONFIG_HOME": str(tmp_path)}
    tenant = json.loads(
        run_cli(
            "tenants",
            "create",
            "--name",
            "Shell",
            "--max-clients",
            "2",
            "--max-messages",
            "2",
            "--json",
            env=environment,
        ).stdout
    )
    device = json.loads(
        run_cli(
            "clients",
            "create",
            "--tenant",
            tenant["id"],
            "--type",
            "device",
            "--name",
            "d",
            "--json",
            env=environment,
        ).stdout
    )
    cases = [
        (["clients", "token", device["id"], "--tenant", tenant["id"]], environment, 3, "is a device"),
        (
            ["tenants", "list"],
            {**environment, "INSTAMSG_URL": f"http://127.0.0.1:{free_port()}"},
            4,
            "connection refused",
        ),
        (["tenants", "list"], {**environment, "INSTAMSG_CLIENT_KEY": "ak_wrong"}, 3, "INSTAMSG_CLIENT_KEY"),
        (["tenants", "update", tenant["id"]], environment, 2, "nothing to update"),
    ]
    for arguments, env, exit_code, fragment in cases:
        result = run_cli(*arguments, env=env)
        assert result.returncode == exit_code, (arguments, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and fragment in lines[0], (arguments, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
