"""An explicit null on a field that cannot be empty is a 400 that names it, not a silent no-op."""

from __future__ import annotations

import httpx
import pytest

from tests.rest.helpers import assert_error, create_client, create_tenant


@pytest.mark.parametrize("field", ["name", "max_clients", "max_messages", "active"])
async def test_null_tenant_field_is_refused(api: httpx.AsyncClient, auth: dict[str, str], field: str) -> None:
    tenant = await create_tenant(api, auth)
    response = await api.put(f"/api/v1/tenants/{tenant['id']}", json={field: None}, headers=auth)
    error = assert_error(response, 400, "validation_failed")
    assert error["details"]["field"] == field
    assert (await api.get(f"/api/v1/tenants/{tenant['id']}", headers=auth)).json() == tenant


async def test_null_client_fields(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    tenant = await create_tenant(api, auth)
    client = await create_client(api, auth, tenant["id"], description="kept", sub_topics=["a/#"])
    path = f"/api/v1/tenants/{tenant['id']}/clients/{client['id']}"
    for field in ("type", "name", "secure_cert_enabled", "blocked"):
        error = assert_error(await api.put(path, json={field: None}, headers=auth), 400, "validation_failed")
        assert error["details"]["field"] == field
    # Nullable fields: description empties, topic lists empty.
    updated = (await api.put(path, json={"description": None, "sub_topics": None}, headers=auth)).json()
    assert updated["description"] == "" and updated["sub_topics"] == []
