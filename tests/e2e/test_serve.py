"""`instamsg serve` as a user runs it: the serve contract and the whole REST journey over real HTTP."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.instamsg_server import InstaMsgServer, run_cli


@pytest.fixture
def server(tmp_path: Path) -> Iterator[InstaMsgServer]:
    running = InstaMsgServer(tmp_path / "data").start()
    yield running
    running.stop()


def test_server_json_names_every_bound_listener(server: InstaMsgServer) -> None:
    info = json.loads((server.data_dir / "server.json").read_text())
    assert set(info) == {"pid", "http", "mqtt", "mqtts", "ws", "wss"}
    assert info["pid"] == server.process.pid if server.process else False
    for name in ("http", "mqtt", "mqtts", "ws", "wss"):
        with socket.create_connection(("127.0.0.1", info[name]), timeout=5):
            pass
    assert "ready" in server.log()


def test_disabled_listener_is_null_and_not_bound(tmp_path: Path) -> None:
    running = InstaMsgServer(tmp_path / "data", ["--ws-port", "off", "--wss-port", "off"]).start()
    try:
        assert running.ports["ws"] is None and running.ports["wss"] is None
        assert isinstance(running.ports["mqtt"], int)
    finally:
        assert running.stop() == 0


def test_options_also_come_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSTAMSG_WSS_PORT", "off")
    monkeypatch.setenv("INSTAMSG_WS_PORT", "0")
    running = InstaMsgServer(tmp_path / "data", ephemeral_listeners=("http", "mqtt", "mqtts")).start()
    try:
        assert running.ports["wss"] is None
        assert isinstance(running.ports["ws"], int) and running.ports["ws"] != 8083
    finally:
        assert running.stop() == 0


def test_sigterm_and_sigint_exit_zero_and_remove_server_json(tmp_path: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        running = InstaMsgServer(tmp_path / f"data-{sig}").start()
        assert running.stop(sig) == 0, running.log()
        assert not (running.data_dir / "server.json").exists()
        assert "stopped" in running.log()


def test_rest_journey_survives_restart(tmp_path: Path) -> None:
    """Create an app with the CLI, then tenants and clients over HTTP; everything is back after a restart."""
    running = InstaMsgServer(tmp_path / "data").start()
    client_key, client_secret = running.create_app("journey")
    token = running.token(client_key, client_secret)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=running.base_url, headers=headers) as http:
        tenants = []
        for name in ("Beta", "Alpha", "Gamma"):
            response = http.post(
                "/api/v1/tenants", json={"name": name, "max_clients": 5, "max_messages": 1000}
            )
            assert response.status_code == 201, response.text
            tenants.append(response.json())
        assert [t["name"] for t in http.get("/api/v1/tenants?sort_by=name").json()] == [
            "Alpha",
            "Beta",
            "Gamma",
        ]
        assert [t["name"] for t in http.get("/api/v1/tenants?sort_order=desc").json()] == [
            "Gamma",
            "Alpha",
            "Beta",
        ]
        http.put(f"/api/v1/tenants/{tenants[2]['id']}", json={"active": False}).raise_for_status()
        assert [t["name"] for t in http.get("/api/v1/tenants?active=0").json()] == ["Gamma"]

        tenant_id = tenants[0]["id"]
        device = http.post(
            f"/api/v1/tenants/{tenant_id}/clients",
            json={"type": "device", "name": "pump-7", "pub_topics": ["pub1"], "sub_topics": ["sub1"]},
        ).json()
        user = http.post(
            f"/api/v1/tenants/{tenant_id}/clients", json={"type": "user", "name": "dashboard"}
        ).json()
        assert http.get(f"/api/v1/tenants/{tenant_id}/clients?type=user").json()[0]["id"] == user["id"]
        user_path = f"/api/v1/tenants/{tenant_id}/clients/{user['id']}"
        assert http.get(f"{user_path}/auth_token").json() == {"auth_token": user["auth_token"]}
        reset = http.put(f"{user_path}/reset_auth_token").json()["auth_token"]
        assert reset != user["auth_token"]
        device_path = f"/api/v1/tenants/{tenant_id}/clients/{device['id']}"
        assert http.get(f"{device_path}/auth_token").json()["error"]["code"] == "auth_token_not_retrievable"
        updated = http.put(device_path, json={"blocked": True, "description": "in repair"}).json()
        assert updated["state"] == "blocked" and updated["description"] == "in repair"
        assert http.delete(f"/api/v1/tenants/{tenants[1]['id']}").status_code == 204

    assert running.stop() == 0, running.log()
    restarted = InstaMsgServer(running.data_dir).start()
    try:
        with httpx.Client(base_url=restarted.base_url, headers=headers) as http:
            # The access token, tenants, clients and the reset token all survived the restart.
            assert [t["name"] for t in http.get("/api/v1/tenants?sort_by=name").json()] == ["Beta", "Gamma"]
            assert http.get(f"{user_path}/auth_token").json() == {"auth_token": reset}
            assert http.get(device_path).json()["blocked"] is True
            invalidated = httpx.post(
                f"{restarted.base_url}/oauth2/invalidate_token",
                params={"access_token": token},
                auth=(client_key, client_secret),
            )
            assert invalidated.json() == {"invalidated": True}
            refused = http.get("/api/v1/tenants")
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_token"
            assert refused.headers["www-authenticate"].startswith("Bearer")
    finally:
        assert restarted.stop() == 0


def test_openapi_and_docs_are_served(server: InstaMsgServer) -> None:
    spec = httpx.get(f"{server.base_url}/openapi.json").json()
    summaries = {operation["summary"] for path in spec["paths"].values() for operation in path.values()}
    for operation in (
        "getAccessToken", "invalidateAccessToken",
        "createTenant", "getTenants", "getSingleTenant", "updateTenant", "deleteTenant",
        "createClient", "getClients", "getSingleClient", "updateClient", "deleteClient",
        "getClientAuthToken", "updateClientAuthToken",
    ):  # fmt: skip
        assert operation in summaries
    docs = httpx.get(f"{server.base_url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_ca_certificate_is_served(server: InstaMsgServer) -> None:
    response = httpx.get(f"{server.base_url}/ca.pem")
    assert response.status_code == 200
    assert response.text.startswith("-----BEGIN CERTIFICATE-----")
    assert (server.data_dir / "pki" / "ca.pem").read_text() == response.text


def test_apps_cli_works_with_and_without_a_running_server(server: InstaMsgServer, tmp_path: Path) -> None:
    data_dir = str(server.data_dir)
    created = json.loads(run_cli("apps", "create", "--name", "one", "--json", "--data-dir", data_dir).stdout)
    listed = json.loads(run_cli("apps", "list", "--json", "--data-dir", data_dir).stdout)
    assert [app["client_key"] for app in listed] == [created["client_key"]]
    assert "client_secret" not in listed[0]
    # The running server accepts the app created by another process at once (spec C19).
    assert server.token(created["client_key"], created["client_secret"])
    deleted = run_cli("apps", "delete", created["client_key"], "--data-dir", data_dir)
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(run_cli("apps", "list", "--json", "--data-dir", data_dir).stdout) == []
    missing = run_cli("apps", "delete", created["client_key"], "--data-dir", data_dir)
    assert missing.returncode == 3 and "No app" in missing.stderr and "Traceback" not in missing.stderr
    offline_dir = str(tmp_path / "offline")
    assert run_cli("apps", "create", "--name", "offline", "--data-dir", offline_dir).returncode == 0
    assert run_cli("db", "upgrade", "--data-dir", offline_dir).returncode == 0
