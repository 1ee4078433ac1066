"""Clients (spec §2.3, §2.4.2, §2.5.2-§2.5.4, §1.4, S2, S5, S6, C10, C15)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import select

from instamsg.rest.dependencies import Services
from instamsg.store.store import Store
from instamsg.store.tables import client as client_table
from tests.conftest import bearer_for, make_app
from tests.rest.helpers import TIMESTAMP, UNKNOWN_UUID, UUID_LOWER, assert_error, create_client, create_tenant

CLIENT_KEYS = {
    "id",
    "tenant_id",
    "type",
    "name",
    "description",
    "sub_topics",
    "pub_topics",
    "secure_cert_enabled",
    "blocked",
    "state",
    "provisioning_params",
    "profile",
    "last_connect_at",
    "last_disconnect_at",
    "created_at",
    "updated_at",
}
MASK = "********"
SEED_PARAMS = {
    "provisioning_id": "356938035643809",
    "provisioning_key": "KEY01a",
    "gsm_msisdn": "9876543210",
    "gsm_apn": "internet",
    "gsm_username": "apnuser",
    "gsm_password": "apnpass",
    "gsm_sim_pin": "1234",
    "gsm_send_sms": "0",
    "gsm_isd_code": "+91",
}


async def _tenant(api: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, Any]:
    return await create_tenant(api, auth, max_clients=50)


def _path(tenant: dict[str, Any], client: dict[str, Any] | None = None) -> str:
    path = f"/api/v1/tenants/{tenant['id']}/clients"
    return f"{path}/{client['id']}" if client else path


async def _stored(store: Store, client_id: str) -> dict[str, Any]:
    async with store.read() as connection:
        row = (
            await connection.execute(select(client_table).where(client_table.c.id == client_id))
        ).mappings()
        return dict(row.one())


async def _create_client_with_every_field(
    api: httpx.AsyncClient, auth: dict[str, str], tenant: dict[str, Any], store: Store
) -> None:
    body = {
        "type": "device",
        "name": "pump-7",
        "description": "the pump",
        "sub_topics": ["sub1", "sub2", "a/+/c", "a/#"],
        "pub_topics": ["pub1", "pub2"],
        "secure_cert_enabled": False,
        "provisioning_params": SEED_PARAMS,
    }
    response = await api.post(_path(tenant), json=body, headers=auth)
    assert response.status_code == 201, response.text
    client = response.json()
    assert set(client) == CLIENT_KEYS | {"auth_token"}
    assert response.headers["location"] == f"/api/v1/tenants/{tenant['id']}/clients/{client['id']}"
    assert UUID_LOWER.match(client["id"]) and client["tenant_id"] == tenant["id"]
    assert client["type"] == "device" and client["name"] == "pump-7" and client["description"] == "the pump"
    assert client["sub_topics"] == ["sub1", "sub2", "a/+/c", "a/#"] and client["pub_topics"] == [
        "pub1",
        "pub2",
    ]
    assert client["secure_cert_enabled"] is False and client["blocked"] is False
    assert client["state"] == "unprovisioned"
    assert (
        client["profile"] is None
        and client["last_connect_at"] is None
        and client["last_disconnect_at"] is None
    )
    assert TIMESTAMP.match(client["created_at"]) and TIMESTAMP.match(client["updated_at"])
    assert len(client["auth_token"]) == 32 and all(ch in "0123456789abcdef" for ch in client["auth_token"])
    assert client["provisioning_params"] == {
        **SEED_PARAMS,
        "provisioning_key": MASK,
        "gsm_password": MASK,
        "gsm_sim_pin": MASK,
    }
    # The secrets are stored as given; only their representation is masked.
    stored = await _stored(store, client["id"])
    assert stored["provisioning_params"]["provisioning_key"] == "KEY01a"
    assert stored["provisioning_params"]["gsm_password"] == "apnpass"
    assert stored["provisioning_params"]["gsm_sim_pin"] == "1234"
    assert stored["provisioning_id"] == "356938035643809"
    assert stored["auth_token"] == client["auth_token"]
    # auth_token only in the creation answer.
    fetched = (await api.get(_path(tenant, client), headers=auth)).json()
    assert "auth_token" not in fetched
    assert fetched == {key: value for key, value in client.items() if key != "auth_token"}
    for listed in (await api.get(_path(tenant), headers=auth)).json():
        assert "auth_token" not in listed
    assert "KEY01a" not in (await api.get(_path(tenant), headers=auth)).text


async def _create_minimal_and_flag_forms(
    api: httpx.AsyncClient, auth: dict[str, str], tenant: dict[str, Any]
) -> None:
    client = await create_client(api, auth, tenant["id"], type="user", name="browser")
    assert client["sub_topics"] == [] and client["pub_topics"] == [] and client["description"] == ""
    assert client["provisioning_params"] is None and client["state"] == "offline"
    for given, expected in ((True, True), ("1", True), ("true", True), (0, False), ("false", False)):
        created = await create_client(api, auth, tenant["id"], secure_cert_enabled=given)
        assert created["secure_cert_enabled"] is expected, given
    params = {"provisioning_id": "aa:bb:cc:dd:ee:ff"}
    minimal = await create_client(api, auth, tenant["id"], provisioning_params=params)
    shown = minimal["provisioning_params"]
    assert shown["provisioning_id"] == "aa:bb:cc:dd:ee:ff"
    assert (
        shown["provisioning_key"] is None and shown["gsm_password"] is None and shown["gsm_sim_pin"] is None
    )


async def _gsm_send_sms_is_normalised(
    api: httpx.AsyncClient, auth: dict[str, str], tenant: dict[str, Any]
) -> None:
    for index, (given, expected) in enumerate(
        [(True, "1"), (False, "0"), ("1", "1"), ("0", "0"), (1, "1"), (0, "0"), ("false", "0"), ("true", "1")]
    ):
        params = {"provisioning_id": f"imei-{index}", "gsm_send_sms": given}
        client = await create_client(api, auth, tenant["id"], provisioning_params=params)
        assert client["provisioning_params"]["gsm_send_sms"] == expected, given
    for bad in ("2", "yes", 2, -1, 1.5, [], {}):
        body = {
            "type": "device",
            "name": "d",
            "provisioning_params": {"provisioning_id": "x", "gsm_send_sms": bad},
        }
        error = assert_error(await api.post(_path(tenant), json=body, headers=auth), 400, "validation_failed")
        assert error["details"]["field"].startswith("provisioning_params.gsm_send_sms"), (bad, error)


async def _provisioning_key_rule(
    api: httpx.AsyncClient, auth: dict[str, str], tenant: dict[str, Any], store: Store
) -> None:
    """Alphanumeric, case-sensitive, longer than 5 and shorter than 13 characters (seed, spec §2.5.3)."""
    for key in (
        "test",
        "abcde",
        "A1b2C3d4E5f6G",
        "KEY-01",
        "key 01",
        "KEY01é",
        "\uff2b\uff25\uff39\uff10\uff11a",
        "KEY01\x00",
    ):
        body = {
            "type": "device",
            "name": "d",
            "provisioning_params": {"provisioning_id": "p1", "provisioning_key": key},
        }
        error = assert_error(await api.post(_path(tenant), json=body, headers=auth), 400, "validation_failed")
        assert "provisioning_key" in error["details"]["field"]
        if "\x00" not in key:
            assert "5" in error["message"] and "13" in error["message"]  # the message names the rule
    assert (await api.get(_path(tenant), headers=auth)).json() == []
    for key in ("KEY01a", "key01a", "abcdef", "A1b2C3d4E5f6", "123456"):
        params = {"provisioning_id": f"id-{key}", "provisioning_key": key}
        client = await create_client(api, auth, tenant["id"], provisioning_params=params)
        assert client["provisioning_params"]["provisioning_key"] == MASK
        assert (await _stored(store, client["id"]))["provisioning_params"]["provisioning_key"] == key


async def _ids(api: httpx.AsyncClient, auth: dict[str, str], path: str, **params: str) -> list[str]:
    response = await api.get(path, params=params, headers=auth)
    assert response.status_code == 200, response.text
    return [found["id"] for found in response.json()]


async def _get_clients_on_both_paths(
    api: httpx.AsyncClient, auth: dict[str, str], tenant: dict[str, Any]
) -> None:
    second = await create_tenant(api, auth, name="second")
    a = await create_client(api, auth, tenant["id"], name="a")
    b = await create_client(api, auth, tenant["id"], name="b", type="user")
    c = await create_client(api, auth, second["id"], name="c")
    for prefix in ("/api/v1", "/api/beta"):
        assert await _ids(api, auth, f"{prefix}/tenants/{tenant['id']}/clients") == [a["id"], b["id"]]
        assert await _ids(api, auth, f"{prefix}/clients", tenant_id=tenant["id"]) == [a["id"], b["id"]]
        assert await _ids(api, auth, f"{prefix}/clients", tenant_id=tenant["id"].upper()) == [
            a["id"],
            b["id"],
        ]
        assert await _ids(api, auth, f"{prefix}/clients", tenant_id=second["id"]) == [c["id"]]
        assert sorted(await _ids(api, auth, f"{prefix}/clients")) == sorted([a["id"], b["id"], c["id"]])
        by_type = await _ids(api, auth, f"{prefix}/clients", type="device")
        assert sorted(by_type) == sorted([a["id"], c["id"]])
        for bad in (UNKNOWN_UUID, "not-a-uuid"):
            response = await api.get(f"{prefix}/clients", params={"tenant_id": bad}, headers=auth)
            assert_error(response, 404, "tenant_not_found")
    listed = (await api.get("/api/v1/clients", headers=auth)).json()
    assert all(set(found) == CLIENT_KEYS for found in listed)


async def _filters(api: httpx.AsyncClient, auth: dict[str, str], tenant: dict[str, Any]) -> None:
    path = _path(tenant)
    device = await create_client(api, auth, tenant["id"], name="device")
    user = await create_client(api, auth, tenant["id"], name="user", type="user", secure_cert_enabled=True)
    unprovisioned = await create_client(
        api, auth, tenant["id"], name="unprov", provisioning_params={"provisioning_id": "imei-77"}
    )
    blocked = await create_client(api, auth, tenant["id"], name="blocked")
    response = await api.put(_path(tenant, blocked), json={"blocked": True}, headers=auth)
    assert response.status_code == 200 and response.json()["blocked"] is True
    assert response.json()["state"] == "blocked"

    everyone = [device["id"], user["id"], unprovisioned["id"], blocked["id"]]
    assert await _ids(api, auth, path) == everyone
    assert await _ids(api, auth, path, state="all") == everyone
    assert await _ids(api, auth, path, type="device") == [device["id"], unprovisioned["id"], blocked["id"]]
    assert await _ids(api, auth, path, type="user") == [user["id"]]
    for value in ("1", "true"):
        assert await _ids(api, auth, path, secure=value) == [user["id"]]
    for value in ("0", "false"):
        assert await _ids(api, auth, path, secure=value) == [device["id"], unprovisioned["id"], blocked["id"]]
    assert await _ids(api, auth, path, state="unprovisioned") == [unprovisioned["id"]]
    assert await _ids(api, auth, path, state="blocked") == [blocked["id"]]
    assert await _ids(api, auth, path, state="offline") == [device["id"], user["id"]]
    assert await _ids(api, auth, path, state="online") == []
    assert await _ids(api, auth, path, state="provisioned") == []
    assert await _ids(api, auth, path, state="offline", type="user", secure="1") == [user["id"]]
    assert await _ids(api, auth, "/api/v1/clients", state="blocked") == [blocked["id"]]
    # A blocked client with provisioning params is "blocked": blocked comes first (spec §1.4).
    response = await api.put(_path(tenant, unprovisioned), json={"blocked": "1"}, headers=auth)
    assert response.json()["state"] == "blocked"
    assert await _ids(api, auth, path, state="unprovisioned") == []
    response = await api.put(_path(tenant, unprovisioned), json={"blocked": False}, headers=auth)
    assert response.json()["state"] == "unprovisioned" and response.json()["blocked"] is False
    for name, value in (("state", "xyz"), ("type", "robot"), ("secure", "maybe"), ("state", "ALL")):
        assert_error(await api.get(path, params={name: value}, headers=auth), 400, "invalid_parameter")


async def _sorting(api: httpx.AsyncClient, auth: dict[str, str], tenant: dict[str, Any]) -> None:
    import asyncio

    made = []
    for name in ("bravo", "charlie", "alpha"):
        made.append(await create_client(api, auth, tenant["id"], name=name))
        await asyncio.sleep(0.003)
    bravo, charlie, alpha = made
    assert (await api.put(_path(tenant, bravo), json={"description": "x"}, headers=auth)).status_code == 200
    path = _path(tenant)
    for other_path, params in ((path, {}), ("/api/v1/clients", {"tenant_id": tenant["id"]})):
        order = [bravo["id"], charlie["id"], alpha["id"]]
        assert await _ids(api, auth, other_path, **params) == order
        assert await _ids(api, auth, other_path, sort_order="desc", **params) == order[::-1]
        by_name = [alpha["id"], bravo["id"], charlie["id"]]
        assert await _ids(api, auth, other_path, sort_by="name", **params) == by_name
        assert await _ids(api, auth, other_path, sort_by="name", sort_order="desc", **params) == by_name[::-1]
        by_update = [charlie["id"], alpha["id"], bravo["id"]]
        assert await _ids(api, auth, other_path, sort_by="updated_at", **params) == by_update
        assert (
            await _ids(api, auth, other_path, sort_by="updated_at", sort_order="desc", **params)
            == by_update[::-1]
        )
    for name, value in (("sort_by", "foo"), ("sort_order", "up"), ("sort_by", "id")):
        assert_error(await api.get(path, params={name: value}, headers=auth), 400, "invalid_parameter")


async def _get_single_client(api: httpx.AsyncClient, auth: dict[str, str], tenant: dict[str, Any]) -> None:
    client = await create_client(api, auth, tenant["id"])
    response = await api.get(_path(tenant, client), headers=auth)
    assert response.status_code == 200 and response.json()["id"] == client["id"]
    upper = await api.get(f"{_path(tenant)}/{client['id'].upper()}", headers=auth)
    assert upper.status_code == 200 and upper.json()["id"] == client["id"]
    for bad in (UNKNOWN_UUID, "not-a-uuid", client["id"] + "0"):
        assert_error(await api.get(f"{_path(tenant)}/{bad}", headers=auth), 404, "client_not_found")
    # A client is reached only through its own tenant.
    other = await create_tenant(api, auth, name="other")
    assert_error(await api.get(f"{_path(other)}/{client['id']}", headers=auth), 404, "client_not_found")


async def _update_is_partial(api: httpx.AsyncClient, auth: dict[str, str], tenant: dict[str, Any]) -> None:
    import asyncio

    client = await create_client(
        api,
        auth,
        tenant["id"],
        description="d",
        sub_topics=["s"],
        pub_topics=["p"],
        provisioning_params={**SEED_PARAMS, "provisioning_id": "seed-partial"},
    )
    await asyncio.sleep(0.003)
    response = await api.put(_path(tenant, client), json={"name": "renamed"}, headers=auth)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert set(updated) == CLIENT_KEYS
    assert updated["name"] == "renamed"
    for key in (
        "description",
        "sub_topics",
        "pub_topics",
        "type",
        "provisioning_params",
        "created_at",
        "blocked",
    ):
        assert updated[key] == client[key], key
    assert updated["updated_at"] > client["updated_at"]
    response = await api.put(
        _path(tenant, client),
        json={"sub_topics": ["x/#"], "pub_topics": [], "type": "user", "secure_cert_enabled": "1"},
        headers=auth,
    )
    assert response.status_code == 200
    updated = response.json()
    assert updated["sub_topics"] == ["x/#"] and updated["pub_topics"] == [] and updated["type"] == "user"
    assert updated["secure_cert_enabled"] is True and updated["name"] == "renamed"
    assert (await api.get(_path(tenant, client), headers=auth)).json() == updated


async def _update_provisioning_params(
    api: httpx.AsyncClient, auth: dict[str, str], tenant: dict[str, Any], store: Store
) -> None:
    seed = {**SEED_PARAMS, "provisioning_id": "seed-update"}
    client = await create_client(api, auth, tenant["id"], provisioning_params=seed)
    path = _path(tenant, client)

    # "********" keeps the stored secret (spec C15).
    masked = {
        **seed,
        "provisioning_key": MASK,
        "gsm_password": MASK,
        "gsm_sim_pin": MASK,
        "gsm_apn": "web",
    }
    response = await api.put(path, json={"provisioning_params": masked}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["provisioning_params"]["gsm_apn"] == "web"
    assert response.json()["provisioning_params"]["provisioning_key"] == MASK
    stored = (await _stored(store, client["id"]))["provisioning_params"]
    assert (stored["provisioning_key"], stored["gsm_password"], stored["gsm_sim_pin"]) == (
        "KEY01a",
        "apnpass",
        "1234",
    )

    # An omitted write-only field keeps its value too; an explicit null removes it (spec C15).
    response = await api.put(
        path,
        json={"provisioning_params": {"provisioning_id": "seed-update", "gsm_sim_pin": None}},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    shown = response.json()["provisioning_params"]
    assert (
        shown["provisioning_key"] == MASK and shown["gsm_password"] == MASK and shown["gsm_sim_pin"] is None
    )
    stored = (await _stored(store, client["id"]))["provisioning_params"]
    assert stored["provisioning_key"] == "KEY01a" and stored.get("gsm_sim_pin") is None

    # A new key replaces the stored one.
    response = await api.put(
        path,
        json={"provisioning_params": {"provisioning_id": "new-id", "provisioning_key": "NEWKEY1"}},
        headers=auth,
    )
    assert response.status_code == 200
    assert response.json()["provisioning_params"]["provisioning_id"] == "new-id"
    stored_row = await _stored(store, client["id"])
    assert stored_row["provisioning_params"]["provisioning_key"] == "NEWKEY1"
    assert stored_row["provisioning_id"] == "new-id"

    # null removes the parameters; the old provisioning id is free again.
    response = await api.put(path, json={"provisioning_params": None}, headers=auth)
    assert response.status_code == 200
    assert response.json()["provisioning_params"] is None and response.json()["state"] == "offline"
    assert (await _stored(store, client["id"]))["provisioning_id"] is None
    again = await create_client(api, auth, tenant["id"], provisioning_params={"provisioning_id": "new-id"})
    assert again["provisioning_params"]["provisioning_id"] == "new-id"

    # Setting params again makes the client unprovisioned.
    response = await api.put(path, json={"provisioning_params": {"provisioning_id": "third"}}, headers=auth)
    assert response.json()["state"] == "unprovisioned"


async def _invalid_update_changes_nothing(
    api: httpx.AsyncClient, auth: dict[str, str], tenant: dict[str, Any], store: Store
) -> None:
    client = await create_client(
        api,
        auth,
        tenant["id"],
        sub_topics=["s"],
        provisioning_params={**SEED_PARAMS, "provisioning_id": "seed-invalid"},
    )
    taken = await create_client(api, auth, tenant["id"], provisioning_params={"provisioning_id": "taken"})
    path = _path(tenant, client)
    before = (await api.get(path, headers=auth)).json()
    before_row = await _stored(store, client["id"])
    for body, status, code in (
        ({"name": "new", "sub_topics": ["a/#/b"]}, 400, "invalid_topic_filter"),
        ({"name": "new", "type": "robot"}, 400, "validation_failed"),
        (
            {"name": "new", "provisioning_params": {"provisioning_id": "x", "provisioning_key": "test"}},
            400,
            None,
        ),
        ({"name": "new", "provisioning_params": {"provisioning_id": "taken"}}, 409, "provisioning_id_taken"),
        ({"name": "new", "blocked": "maybe"}, 400, "validation_failed"),
        ({"name": "new", "maxClients": 3}, 400, "unknown_field"),
        ({"name": ""}, 400, "validation_failed"),
    ):
        assert_error(await api.put(path, json=body, headers=auth), status, code)
    assert (await api.get(path, headers=auth)).json() == before
    assert await _stored(store, client["id"]) == before_row
    assert (await api.get(_path(tenant, taken), headers=auth)).json()["provisioning_params"][
        "provisioning_id"
    ] == ("taken")


async def _delete_client(api: httpx.AsyncClient, auth: dict[str, str], tenant: dict[str, Any]) -> None:
    client = await create_client(api, auth, tenant["id"], provisioning_params={"provisioning_id": "gone-id"})
    kept = await create_client(api, auth, tenant["id"], name="kept")
    response = await api.delete(_path(tenant, client), headers=auth)
    assert response.status_code == 204 and response.content == b""
    assert_error(await api.get(_path(tenant, client), headers=auth), 404, "client_not_found")
    assert_error(await api.delete(_path(tenant, client), headers=auth), 404, "client_not_found")
    assert_error(await api.get(f"{_path(tenant, client)}/auth_token", headers=auth), 404, "client_not_found")
    assert await _ids(api, auth, _path(tenant)) == [kept["id"]]
    # Its provisioning id can be used again.
    await create_client(api, auth, tenant["id"], provisioning_params={"provisioning_id": "gone-id"})


async def _auth_token_endpoints(api: httpx.AsyncClient, auth: dict[str, str], tenant: dict[str, Any]) -> None:
    user = await create_client(api, auth, tenant["id"], type="user", name="u")
    device = await create_client(api, auth, tenant["id"], type="device", name="d")
    response = await api.get(f"{_path(tenant, user)}/auth_token", headers=auth)
    assert response.status_code == 200 and response.json() == {"auth_token": user["auth_token"]}
    error = assert_error(
        await api.get(f"{_path(tenant, device)}/auth_token", headers=auth), 403, "auth_token_not_retrievable"
    )
    assert device["auth_token"] not in str(error)

    previous = device["auth_token"]
    for content, headers in (
        (None, {}),
        (b"", {"Content-Type": "application/json"}),
        (b"{}", {"Content-Type": "application/json"}),
        (b"{}", {"Content-Type": "text/plain"}),
        (b"{}", {"Content-Type": "application/x-www-form-urlencoded"}),
        (b"", {"Content-Type": "application/octet-stream"}),
        (b"{}", {}),
    ):
        response = await api.put(
            f"{_path(tenant, device)}/reset_auth_token", content=content, headers={**auth, **headers}
        )
        assert response.status_code == 200, (headers, content, response.text)
        token = response.json()["auth_token"]
        assert set(response.json()) == {"auth_token"}
        assert len(token) == 32 and token != previous
        previous = token
    # The user's token: reset shows up in getClientAuthToken.
    reset = await api.put(f"{_path(tenant, user)}/reset_auth_token", headers=auth)
    assert reset.status_code == 200 and reset.json()["auth_token"] != user["auth_token"]
    fetched = await api.get(f"{_path(tenant, user)}/auth_token", headers=auth)
    assert fetched.json() == reset.json()
    assert_error(
        await api.put(f"{_path(tenant)}/{UNKNOWN_UUID}/reset_auth_token", headers=auth),
        404,
        "client_not_found",
    )


async def _max_clients_enforced(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    tenant = await create_tenant(api, auth, max_clients=2)
    for index in range(2):
        await create_client(api, auth, tenant["id"], name=f"c{index}")
    error = assert_error(
        await api.post(_path(tenant), json={"type": "user", "name": "third"}, headers=auth),
        409,
        "tenant_client_quota_exceeded",
    )
    assert error["details"]["max_clients"] == 2
    fetched = (await api.get(f"/api/v1/tenants/{tenant['id']}", headers=auth)).json()
    assert fetched["clients_count"] == 2
    assert len(await _ids(api, auth, _path(tenant))) == 2
    # Raising the limit lets one more in.
    await api.put(f"/api/v1/tenants/{tenant['id']}", json={"max_clients": 3}, headers=auth)
    await create_client(api, auth, tenant["id"], name="third")


async def _max_clients_zero_allows_none(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    tenant = await create_tenant(api, auth, max_clients=0)
    body = {"type": "device", "name": "d", "provisioning_params": {"provisioning_id": "quota-0"}}
    assert_error(await api.post(_path(tenant), json=body, headers=auth), 409, "tenant_client_quota_exceeded")
    assert (await api.get(_path(tenant), headers=auth)).json() == []
    # The refused request did not take the provisioning id.
    other = await create_tenant(api, auth, name="other")
    await create_client(api, auth, other["id"], provisioning_params={"provisioning_id": "quota-0"})


async def _provisioning_id_unique_server_wide(
    api: httpx.AsyncClient, services: Services, auth: dict[str, str], tenant: dict[str, Any]
) -> None:
    first = await create_client(api, auth, tenant["id"], provisioning_params={"provisioning_id": "IMEI-1"})
    second_tenant = await create_tenant(api, auth, name="second")
    other_auth = await bearer_for(api, await make_app(services, "app-b"))
    foreign_tenant = await create_tenant(api, other_auth, name="foreign")
    for headers, target in ((auth, tenant), (auth, second_tenant), (other_auth, foreign_tenant)):
        body = {"type": "device", "name": "dup", "provisioning_params": {"provisioning_id": "IMEI-1"}}
        error = assert_error(
            await api.post(_path(target), json=body, headers=headers), 409, "provisioning_id_taken"
        )
        assert error["details"]["field"] == "provisioning_params.provisioning_id"
        assert await _ids(api, headers, _path(target)) == ([first["id"]] if target is tenant else [])
    # Updating another client to that id is refused too; updating the owner with its own id is fine.
    other = await create_client(api, other_auth, foreign_tenant["id"], name="o")
    response = await api.put(
        _path(foreign_tenant, other),
        json={"provisioning_params": {"provisioning_id": "IMEI-1"}},
        headers=other_auth,
    )
    assert_error(response, 409, "provisioning_id_taken")
    same = await api.put(
        _path(tenant, first),
        json={"provisioning_params": {"provisioning_id": "IMEI-1", "gsm_apn": "a"}},
        headers=auth,
    )
    assert same.status_code == 200, same.text


async def _run(checks: list[Callable[..., Awaitable[None]]], **fixtures: Any) -> None:
    """Run related checks on one database, each as a fresh app with a fresh tenant (they share nothing)."""
    api: httpx.AsyncClient = fixtures["api"]
    for check in checks:
        auth = await bearer_for(api, await make_app(fixtures["services"], check.__name__))
        available = {**fixtures, "auth": auth, "tenant": await _tenant(api, auth)}
        wanted = inspect.signature(check).parameters
        try:
            await check(**{name: available[name] for name in wanted})
        except AssertionError as error:
            error.add_note(f"in check {check.__name__}")
            raise


async def test_create_list_and_get(api: httpx.AsyncClient, services: Services, store: Store) -> None:
    await _run(
        [
            _create_client_with_every_field,
            _create_minimal_and_flag_forms,
            _gsm_send_sms_is_normalised,
            _provisioning_key_rule,
            _get_clients_on_both_paths,
            _filters,
            _sorting,
            _get_single_client,
        ],
        api=api,
        services=services,
        store=store,
    )


async def test_update_delete_tokens_and_quotas(
    api: httpx.AsyncClient, services: Services, store: Store
) -> None:
    await _run(
        [
            _update_is_partial,
            _update_provisioning_params,
            _invalid_update_changes_nothing,
            _delete_client,
            _auth_token_endpoints,
            _max_clients_enforced,
            _max_clients_zero_allows_none,
            _provisioning_id_unique_server_wide,
        ],
        api=api,
        services=services,
        store=store,
    )
