"""Small helpers shared by the REST tests: create resources, check the error shape."""

from __future__ import annotations

import re
from typing import Any

import httpx

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID_LOWER = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
UNKNOWN_UUID = "00000000-0000-4000-8000-000000000000"


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is the D12 error shape with this status (and code); returns the `error` object."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and re.fullmatch(r"[a-z][a-z_]*", error["code"]), error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["details"], dict), error
    if code is not None:
        assert error["code"] == code, error
    assert_no_leak(response)
    return error


def assert_no_leak(response: httpx.Response) -> None:
    text = response.text
    for marker in ("Traceback", 'File "', "/work/", "site-packages", "sqlalchemy", "asyncpg", "pydantic"):
        assert marker not in text, (marker, text)


async def create_tenant(
    api: httpx.AsyncClient, auth: dict[str, str], prefix: str = "/api/v1", **fields: Any
) -> dict[str, Any]:
    body = {"name": "Company 1", "max_clients": 100, "max_messages": 1000, **fields}
    response = await api.post(f"{prefix}/tenants", json=body, headers=auth)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def create_client(
    api: httpx.AsyncClient, auth: dict[str, str], tenant_id: str, **fields: Any
) -> dict[str, Any]:
    body = {"type": "device", "name": "pump-7", **fields}
    response = await api.post(f"/api/v1/tenants/{tenant_id}/clients", json=body, headers=auth)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
