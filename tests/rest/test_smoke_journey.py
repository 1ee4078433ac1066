"""A first pass through the REST journey, in process, on both databases."""

from __future__ import annotations

import httpx


async def test_tenant_and_client_round_trip(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    created = await api.post(
        "/api/v1/tenants", json={"name": "Company 1", "max_clients": 2, "max_messages": 100}, headers=auth
    )
    assert created.status_code == 201, created.text
    tenant = created.json()
    assert created.headers["location"] == f"/api/v1/tenants/{tenant['id']}"
    assert tenant["messages_used"] == 0 and tenant["clients_count"] == 0 and tenant["active"] is True

    client = await api.post(
        f"/api/v1/tenants/{tenant['id']}/clients",
        json={"type": "device", "name": "pump-7", "sub_topics": ["sub1"], "pub_topics": ["pub1"]},
        headers=auth,
    )
    assert client.status_code == 201, client.text
    body = client.json()
    assert len(body["auth_token"]) == 32 and body["state"] == "offline"

    listed = await api.get(f"/api/beta/tenants/{tenant['id']}/clients", headers=auth)
    assert [found["id"] for found in listed.json()] == [body["id"]]
    assert "auth_token" not in listed.json()[0]
