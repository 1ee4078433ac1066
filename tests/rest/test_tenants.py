"""Tenants (spec §2.3, §2.4.1, §2.5.1, S4) and isolation between apps (§1.2, D2)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from instamsg.rest.dependencies import Services
from instamsg.store.store import Store
from instamsg.store.tables import client as client_table
from instamsg.store.tables import tenant as tenant_table
from tests.conftest import bearer_for, make_app
from tests.rest.helpers import (
    TIMESTAMP,
    UNKNOWN_UUID,
    UUID_LOWER,
    assert_error,
    create_client,
    create_tenant,
)

TENANT_KEYS = {
    "id",
    "name",
    "description",
    "max_clients",
    "max_messages",
    "messages_used",
    "clients_count",
    "active",
    "created_at",
    "updated_at",
}


async def _tick() -> None:
    """Let the millisecond clock move on, so timestamps order the rows."""
    await asyncio.sleep(0.003)


async def _create_tenant(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await api.post(
        "/api/v1/tenants",
        json={"name": "Company 1", "description": "first", "max_clients": 5, "max_messages": 10_000},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    tenant = response.json()
    assert set(tenant) == TENANT_KEYS
    assert UUID_LOWER.match(tenant["id"])
    assert response.headers["location"] == f"/api/v1/tenants/{tenant['id']}"
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert tenant["name"] == "Company 1" and tenant["description"] == "first"
    assert tenant["max_clients"] == 5 and tenant["max_messages"] == 10_000
    assert tenant["messages_used"] == 0 and tenant["clients_count"] == 0
    assert tenant["active"] is True
    assert TIMESTAMP.match(tenant["created_at"]) and TIMESTAMP.match(tenant["updated_at"])
    assert tenant["created_at"] == tenant["updated_at"]
    fetched = await api.get(response.headers["location"], headers=auth)
    assert fetched.status_code == 200 and fetched.json() == tenant


async def _create_tenant_defaults_and_flags(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    tenant = await create_tenant(api, auth, max_clients=0, max_messages=0)
    assert tenant["description"] == "" and tenant["active"] is True and tenant["max_clients"] == 0
    for given, expected in ((False, False), ("0", False), (0, False), ("true", True), (1, True)):
        created = await create_tenant(api, auth, active=given)
        assert created["active"] is expected, given
    big = await create_tenant(api, auth, max_clients=2**63 - 1, max_messages=2**63 - 1)
    assert big["max_clients"] == 2**63 - 1


async def _create_tenant_requires_fields(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    for missing in ("name", "max_clients", "max_messages"):
        body = {"name": "x", "max_clients": 1, "max_messages": 1}
        del body[missing]
        error = assert_error(await api.post("/api/v1/tenants", json=body, headers=auth), 400)
        assert error["code"] == "validation_failed" and error["details"]["field"] == missing
    for field, value in (("max_clients", -1), ("max_messages", 1.5), ("max_clients", "3"), ("name", "")):
        body = {"name": "x", "max_clients": 1, "max_messages": 1, field: value}
        error = assert_error(await api.post("/api/v1/tenants", json=body, headers=auth), 400)
        assert error["code"] == "validation_failed" and error["details"]["field"] == field
    assert (await api.get("/api/v1/tenants", headers=auth)).json() == []


async def _names(api: httpx.AsyncClient, auth: dict[str, str], **params: str) -> list[str]:
    response = await api.get("/api/v1/tenants", params=params, headers=auth)
    assert response.status_code == 200, response.text
    assert isinstance(response.json(), list)
    return [tenant["name"] for tenant in response.json()]


async def _list_sorting(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    # Created in an order that differs from name order; then "charlie" is updated last.
    for name in ("bravo", "charlie", "alpha"):
        await create_tenant(api, auth, name=name)
        await _tick()
    tenants = {tenant["name"]: tenant for tenant in (await api.get("/api/v1/tenants", headers=auth)).json()}
    await _tick()
    updated = await api.put(
        f"/api/v1/tenants/{tenants['charlie']['id']}", json={"max_messages": 7}, headers=auth
    )
    assert updated.status_code == 200
    assert updated.json()["updated_at"] > updated.json()["created_at"]

    assert await _names(api, auth) == ["bravo", "charlie", "alpha"]  # default: created_at asc
    assert await _names(api, auth, sort_by="created_at") == ["bravo", "charlie", "alpha"]
    assert await _names(api, auth, sort_by="created_at", sort_order="desc") == ["alpha", "charlie", "bravo"]
    assert await _names(api, auth, sort_by="name") == ["alpha", "bravo", "charlie"]
    assert await _names(api, auth, sort_by="name", sort_order="asc") == ["alpha", "bravo", "charlie"]
    assert await _names(api, auth, sort_by="name", sort_order="desc") == ["charlie", "bravo", "alpha"]
    assert await _names(api, auth, sort_by="updated_at") == ["bravo", "alpha", "charlie"]
    assert await _names(api, auth, sort_by="updated_at", sort_order="desc") == ["charlie", "alpha", "bravo"]
    assert await _names(api, auth, sort_order="desc") == ["alpha", "charlie", "bravo"]


async def _list_active_filter(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    await create_tenant(api, auth, name="on")
    await create_tenant(api, auth, name="off", active=False)
    assert sorted(await _names(api, auth)) == ["off", "on"]
    for value in ("1", "true"):
        assert await _names(api, auth, active=value) == ["on"]
    for value in ("0", "false"):
        assert await _names(api, auth, active=value) == ["off"]
    for value in ("maybe", "2", "yes", ""):
        response = await api.get("/api/v1/tenants", params={"active": value}, headers=auth)
        if value == "":
            # An empty value is either "omitted" or invalid; never a 500 and never a wrong filter.
            assert response.status_code in (200, 400), response.text
            if response.status_code == 200:
                assert sorted(t["name"] for t in response.json()) == ["off", "on"]
            continue
        assert_error(response, 400, "invalid_parameter")


async def _get_single_tenant(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    tenant = await create_tenant(api, auth)
    response = await api.get(f"/api/v1/tenants/{tenant['id']}", headers=auth)
    assert response.status_code == 200 and response.json() == tenant
    upper = await api.get(f"/api/v1/tenants/{tenant['id'].upper()}", headers=auth)
    assert upper.status_code == 200 and upper.json()["id"] == tenant["id"]
    assert_error(await api.get(f"/api/v1/tenants/{UNKNOWN_UUID}", headers=auth), 404, "tenant_not_found")
    assert_error(await api.get("/api/v1/tenants/not-a-uuid", headers=auth), 404, "tenant_not_found")


async def _update_is_partial(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    tenant = await create_tenant(api, auth, description="keep me", max_clients=3, max_messages=30)
    await _tick()
    path = f"/api/v1/tenants/{tenant['id']}"
    response = await api.put(path, json={"name": "Renamed"}, headers=auth)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["name"] == "Renamed"
    for unchanged in ("id", "description", "max_clients", "max_messages", "active", "created_at"):
        assert updated[unchanged] == tenant[unchanged], unchanged
    assert updated["updated_at"] > tenant["updated_at"]
    assert (await api.get(path, headers=auth)).json() == updated

    response = await api.put(
        path, json={"max_clients": 10, "max_messages": 0, "description": ""}, headers=auth
    )
    assert response.status_code == 200
    assert response.json()["max_clients"] == 10 and response.json()["max_messages"] == 0
    assert response.json()["description"] == "" and response.json()["name"] == "Renamed"

    empty = await api.put(path, json={}, headers=auth)
    assert empty.status_code == 200 and empty.json()["name"] == "Renamed"


async def _update_toggles_active(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    tenant = await create_tenant(api, auth)
    path = f"/api/v1/tenants/{tenant['id']}"
    for value, expected in ((False, False), ("1", True), ("false", False), (1, True), ("0", False)):
        response = await api.put(path, json={"active": value}, headers=auth)
        assert response.status_code == 200 and response.json()["active"] is expected, value
        assert (await api.get(path, headers=auth)).json()["active"] is expected
    assert await _names(api, auth, active="0") == ["Company 1"]


async def _update_rejects_bad_values_and_changes_nothing(
    api: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    tenant = await create_tenant(api, auth, max_clients=3)
    path = f"/api/v1/tenants/{tenant['id']}"
    for body in (
        {"max_clients": -1},
        {"max_clients": "5"},
        {"max_clients": 2**63},
        {"name": "x" * 256},
        {"active": "maybe"},
        {"name": "ok", "max_messages": -5},
    ):
        error = assert_error(await api.put(path, json=body, headers=auth), 400, "validation_failed")
        assert error["details"]["field"] in body
    assert (await api.get(path, headers=auth)).json() == tenant


async def _lowering_max_clients_below_count(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    tenant = await create_tenant(api, auth, max_clients=3)
    for index in range(3):
        await create_client(api, auth, tenant["id"], name=f"c{index}")
    path = f"/api/v1/tenants/{tenant['id']}"
    response = await api.put(path, json={"max_clients": 1}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["max_clients"] == 1 and response.json()["clients_count"] == 3
    assert len((await api.get(f"{path}/clients", headers=auth)).json()) == 3
    refused = await api.post(f"{path}/clients", json={"type": "user", "name": "more"}, headers=auth)
    assert_error(refused, 409, "tenant_client_quota_exceeded")


async def _client_rows(store: Store, tenant_id: str) -> int:
    async with store.read() as connection:
        result = await connection.execute(
            select(func.count()).select_from(client_table).where(client_table.c.tenant_id == tenant_id)
        )
        return int(result.scalar_one())


async def test_delete_tenant(api: httpx.AsyncClient, auth: dict[str, str], store: Store) -> None:
    tenant = await create_tenant(api, auth)
    other = await create_tenant(api, auth, name="other")
    clients = [await create_client(api, auth, tenant["id"], name=f"c{index}") for index in range(2)]
    kept = await create_client(api, auth, other["id"])
    assert await _client_rows(store, tenant["id"]) == 2
    path = f"/api/v1/tenants/{tenant['id']}"
    response = await api.delete(path, headers=auth)
    assert response.status_code == 204
    assert response.content == b""
    assert_error(await api.get(path, headers=auth), 404, "tenant_not_found")
    assert_error(await api.delete(path, headers=auth), 404, "tenant_not_found")
    assert_error(await api.get(f"{path}/clients", headers=auth), 404, "tenant_not_found")
    for found in clients:
        assert_error(await api.get(f"{path}/clients/{found['id']}", headers=auth), 404, "tenant_not_found")
    assert await _client_rows(store, tenant["id"]) == 0
    async with store.read() as connection:
        tenants = (await connection.execute(select(tenant_table.c.id))).scalars().all()
    assert tenants == [other["id"]]
    everything = (await api.get("/api/v1/clients", headers=auth)).json()
    assert [found["id"] for found in everything] == [kept["id"]]
    assert [found["name"] for found in (await api.get("/api/v1/tenants", headers=auth)).json()] == ["other"]


async def test_delete_tenant_is_one_transaction(
    api: httpx.AsyncClient, auth: dict[str, str], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If deleting the tenant row fails, its clients are not deleted either."""
    from instamsg.store.repositories import tenants as tenant_repository

    tenant = await create_tenant(api, auth)
    await create_client(api, auth, tenant["id"])
    original = tenant_repository.delete_tenant

    async def failing(connection: Any, tenant_id: str) -> None:
        await original(connection, tenant_id)
        raise RuntimeError("simulated failure after the deletes")

    monkeypatch.setattr(tenant_repository, "delete_tenant", failing)
    services: Services = api._transport.app.state.services  # type: ignore[attr-defined]
    app_id = await _app_id_of(services, tenant["id"], store)
    with pytest.raises(RuntimeError):
        await services.tenants.delete_tenant(app_id, tenant["id"])
    monkeypatch.undo()
    assert await _client_rows(store, tenant["id"]) == 1
    assert (await api.get(f"/api/v1/tenants/{tenant['id']}", headers=auth)).json()["clients_count"] == 1


async def _app_id_of(services: Services, tenant_id: str, store: Store) -> str:
    async with store.read() as connection:
        result = await connection.execute(select(tenant_table.c.app_id).where(tenant_table.c.id == tenant_id))
        return str(result.scalar_one())


async def test_isolation_between_apps(
    api: httpx.AsyncClient, services: Services, auth: dict[str, str]
) -> None:
    for prefix in ("/api/v1", "/api/beta"):
        await _check_isolation(api, services, auth, prefix)


async def _check_isolation(
    api: httpx.AsyncClient, services: Services, auth: dict[str, str], prefix: str
) -> None:
    tenant = await create_tenant(api, auth, name="A's tenant")
    device = await create_client(api, auth, tenant["id"])
    user = await create_client(api, auth, tenant["id"], type="user", name="u")
    other_auth = await bearer_for(api, await make_app(services, "app-b"))
    mine = await create_tenant(api, other_auth, name="B's tenant")

    t = f"{prefix}/tenants/{tenant['id']}"
    for client in (device, user):
        c = f"{t}/clients/{client['id']}"
        for method, path, body in (
            ("GET", t, None),
            ("PUT", t, {"name": "stolen"}),
            ("DELETE", t, None),
            ("GET", f"{t}/clients", None),
            ("POST", f"{t}/clients", {"type": "device", "name": "intruder"}),
            ("GET", c, None),
            ("PUT", c, {"name": "stolen", "blocked": True}),
            ("DELETE", c, None),
            ("GET", f"{c}/auth_token", None),
            ("PUT", f"{c}/reset_auth_token", None),
            ("GET", f"{prefix}/clients?tenant_id={tenant['id']}", None),
        ):
            response = await api.request(method, path, json=body, headers=other_auth)
            assert_error(response, 404, "tenant_not_found")
    # Lists of app B never show A's data.
    assert [found["id"] for found in (await api.get(f"{prefix}/tenants", headers=other_auth)).json()] == [
        mine["id"]
    ]
    assert (await api.get(f"{prefix}/clients", headers=other_auth)).json() == []
    # Nothing of A changed.
    assert (await api.get(t, headers=auth)).json() == {**tenant, "clients_count": 2}
    listed = (await api.get(f"{t}/clients", headers=auth)).json()
    assert [found["id"] for found in listed] == [device["id"], user["id"]]
    assert all(found["name"] != "stolen" and not found["blocked"] for found in listed)
    token = await api.get(f"{t}/clients/{user['id']}/auth_token", headers=auth)
    assert token.json()["auth_token"] == user["auth_token"]


async def _beta_alias_answers_like_v1(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    created = await api.post(
        "/api/beta/tenants", json={"name": "beta", "max_clients": 1, "max_messages": 1}, headers=auth
    )
    assert created.status_code == 201
    tenant = created.json()
    assert created.headers["location"] in (
        f"/api/beta/tenants/{tenant['id']}",
        f"/api/v1/tenants/{tenant['id']}",
    )
    for suffix, params in (
        ("/tenants", {}),
        ("/tenants", {"sort_by": "name", "sort_order": "desc"}),
        (f"/tenants/{tenant['id']}", {}),
        (f"/tenants/{UNKNOWN_UUID}", {}),
        ("/tenants", {"sort_by": "foo"}),
        (f"/tenants/{tenant['id']}/clients", {}),
        ("/clients", {"tenant_id": tenant["id"]}),
        ("/nothing-here", {}),
    ):
        v1 = await api.get(f"/api/v1{suffix}", params=params, headers=auth)
        beta = await api.get(f"/api/beta{suffix}", params=params, headers=auth)
        assert (v1.status_code, v1.headers["content-type"]) == (
            beta.status_code,
            beta.headers["content-type"],
        )
        if suffix == "/nothing-here":
            assert v1.json()["error"]["code"] == beta.json()["error"]["code"] == "not_found"
        else:
            assert v1.json() == beta.json(), suffix
    put = await api.put(f"/api/beta/tenants/{tenant['id']}", json={"name": "renamed"}, headers=auth)
    assert put.status_code == 200 and put.json()["name"] == "renamed"
    client = await api.post(
        f"/api/beta/tenants/{tenant['id']}/clients", json={"type": "user", "name": "u"}, headers=auth
    )
    assert client.status_code == 201
    assert client.headers["location"].endswith(f"/tenants/{tenant['id']}/clients/{client.json()['id']}")
    quota = await api.post(
        f"/api/beta/tenants/{tenant['id']}/clients", json={"type": "user", "name": "u2"}, headers=auth
    )
    assert_error(quota, 409, "tenant_client_quota_exceeded")
    deleted = await api.delete(f"/api/beta/tenants/{tenant['id']}", headers=auth)
    assert deleted.status_code == 204 and deleted.content == b""
    assert_error(await api.get(f"/api/v1/tenants/{tenant['id']}", headers=auth), 404, "tenant_not_found")


async def _clients_count_follows_clients(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    tenant = await create_tenant(api, auth)
    client = await create_client(api, auth, tenant["id"])
    await create_client(api, auth, tenant["id"], name="second")
    path = f"/api/v1/tenants/{tenant['id']}"
    assert (await api.get(path, headers=auth)).json()["clients_count"] == 2
    assert (await api.delete(f"{path}/clients/{client['id']}", headers=auth)).status_code == 204
    assert (await api.get(path, headers=auth)).json()["clients_count"] == 1
    listed: list[dict[str, Any]] = (await api.get("/api/v1/tenants", headers=auth)).json()
    assert listed[0]["clients_count"] == 1


async def test_tenant_operations(api: httpx.AsyncClient, services: Services) -> None:
    """Related checks on one database, each as a fresh app: they share nothing."""
    for check in (
        _create_tenant,
        _create_tenant_defaults_and_flags,
        _create_tenant_requires_fields,
        _list_sorting,
        _list_active_filter,
        _get_single_tenant,
        _update_is_partial,
        _update_toggles_active,
        _update_rejects_bad_values_and_changes_nothing,
        _lowering_max_clients_below_count,
        _beta_alias_answers_like_v1,
        _clients_count_follows_clients,
    ):
        auth = await bearer_for(api, await make_app(services, check.__name__))
        try:
            await check(api, auth)
        except AssertionError as error:
            error.add_note(f"in check {check.__name__}")
            raise
