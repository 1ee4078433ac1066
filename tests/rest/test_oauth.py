"""OAuth2 client credentials (spec §2.2, D2, C1): issue, use, invalidate and expire access tokens.

Related checks share one test (and so one database) to keep the suite fast on PostgreSQL.
"""

from __future__ import annotations

import base64
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from instamsg.domain.clock import utc_now
from instamsg.domain.ids import hash_secret
from instamsg.rest.dependencies import Services
from instamsg.services.apps import AppService
from instamsg.store.store import Store
from instamsg.store.tables import access_token
from tests.conftest import AppCredentials, bearer_for, make_app
from tests.rest.helpers import assert_error

TOKEN = "/oauth2/token"
INVALIDATE = "/oauth2/invalidate_token"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BASIC_REALM = 'Basic realm="instamsg"'


def _basic(raw: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}


async def _token(api: httpx.AsyncClient, credentials: AppCredentials) -> str:
    header = await bearer_for(api, credentials)
    return header["Authorization"].removeprefix("Bearer ")


async def _tenants(api: httpx.AsyncClient, token: str) -> httpx.Response:
    return await api.get("/api/v1/tenants", headers={"Authorization": f"Bearer {token}"})


async def test_issue_token(api: httpx.AsyncClient, credentials: AppCredentials) -> None:
    issued = []
    for request in (
        {"url": f"{TOKEN}?grant_type=client_credentials", "headers": {**credentials.basic, **FORM}},
        {"url": f"{TOKEN}?grant_type=client_credentials", "headers": credentials.basic},
        {"url": TOKEN, "data": {"grant_type": "client_credentials"}, "headers": credentials.basic},
    ):
        response = await api.post(**request)  # type: ignore[arg-type]
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"access_token", "token_type", "expires_in"}
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 3600
        assert isinstance(body["access_token"], str) and len(body["access_token"]) >= 43
        assert response.headers["content-type"].startswith("application/json")
        issued.append(body["access_token"])
    assert len(set(issued)) == 3
    for token in issued:
        assert (await _tenants(api, token)).status_code == 200


async def test_bad_basic_credentials(api: httpx.AsyncClient, credentials: AppCredentials) -> None:
    services: Services = api._transport.app.state.services  # type: ignore[attr-defined]
    other = await make_app(services, "other")
    for headers in (
        {},
        {"Authorization": "Bearer something"},
        {"Authorization": "Basic"},
        {"Authorization": "Basic !!!not-base64!!!"},
        _basic("no-colon-here"),
        _basic("ak_unknown:secret"),
        _basic(":"),
        _basic("ak_\x00nul:secret"),
        _basic("k" * 5000 + ":secret"),
        {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()},
        AppCredentials(credentials.client_key, credentials.client_secret + "x").basic,
        AppCredentials(credentials.client_key, "").basic,
        # Another app's secret does not open this app.
        AppCredentials(credentials.client_key, other.client_secret).basic,
    ):
        for path in (f"{TOKEN}?grant_type=client_credentials", f"{INVALIDATE}?access_token=x", TOKEN):
            response = await api.post(path, headers=headers)
            assert_error(response, 401, "invalid_client")
            assert response.headers["www-authenticate"] == BASIC_REALM


async def test_grant_type_errors(api: httpx.AsyncClient, credentials: AppCredentials) -> None:
    for grant_type in (
        "password",
        "authorization_code",
        "CLIENT_CREDENTIALS",
        "x\x00",
        "client_credentials ",
    ):
        response = await api.post(TOKEN, params={"grant_type": grant_type}, headers=credentials.basic)
        assert_error(response, 400, "unsupported_grant_type")
        response = await api.post(TOKEN, data={"grant_type": grant_type}, headers=credentials.basic)
        assert_error(response, 400, "unsupported_grant_type")
    assert_error(await api.post(TOKEN, headers=credentials.basic), 400, "invalid_request")
    assert_error(
        await api.post(TOKEN, data={"other": "x"}, headers=credentials.basic), 400, "invalid_request"
    )
    # RFC 6749 §3.1: a parameter without a value counts as omitted, in the query and in a form alike.
    assert_error(await api.post(f"{TOKEN}?grant_type=", headers=credentials.basic), 400, "invalid_request")
    response = await api.post(TOKEN, data={"grant_type": ""}, headers=credentials.basic)
    assert_error(response, 400, "invalid_request")


async def test_invalidate_token(api: httpx.AsyncClient, credentials: AppCredentials) -> None:
    keep = await _token(api, credentials)
    for request in (
        lambda token: {"url": INVALIDATE, "params": {"access_token": token}},
        lambda token: {"url": INVALIDATE, "data": {"token": token}},
        lambda token: {"url": INVALIDATE, "data": {"access_token": token}},
    ):
        token = await _token(api, credentials)
        assert (await _tenants(api, token)).status_code == 200
        response = await api.post(**request(token), headers=credentials.basic)  # type: ignore[arg-type]
        assert response.status_code == 200, response.text
        assert response.json() == {"invalidated": True}
        response = await _tenants(api, token)
        error = assert_error(response, 401, "invalid_token")
        assert error["details"]["reason"] == "invalidated"
        assert response.headers["www-authenticate"].startswith("Bearer")
        # Invalidating again is idempotent.
        again = await api.post(**request(token), headers=credentials.basic)  # type: ignore[arg-type]
        assert again.status_code == 200 and again.json() == {"invalidated": True}
    # Only those tokens: another token of the same app still works.
    assert (await _tenants(api, keep)).status_code == 200
    assert_error(await api.post(INVALIDATE, headers=credentials.basic), 400, "invalid_request")


async def test_invalidate_unknown_or_foreign_token_has_no_effect(
    api: httpx.AsyncClient, services: Services, credentials: AppCredentials
) -> None:
    mine = await _token(api, credentials)
    other = await make_app(services, "other")
    others_token = await _token(api, other)
    for token in ("no-such-token", others_token, "\x00", mine + "x"):
        response = await api.post(INVALIDATE, params={"access_token": token}, headers=credentials.basic)
        assert response.status_code == 200 and response.json() == {"invalidated": True}
    assert (await _tenants(api, others_token)).status_code == 200
    assert (await _tenants(api, mine)).status_code == 200
    # The owner can invalidate it.
    response = await api.post(INVALIDATE, params={"access_token": others_token}, headers=other.basic)
    assert response.status_code == 200
    assert_error(await _tenants(api, others_token), 401, "invalid_token")


async def test_expired_token(api: httpx.AsyncClient, store: Store, credentials: AppCredentials) -> None:
    token = await _token(api, credentials)
    assert (await _tenants(api, token)).status_code == 200
    async with store.write() as connection:
        result = await connection.execute(
            update(access_token)
            .where(access_token.c.token_hash == hash_secret(token))
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )
        assert result.rowcount == 1
    response = await _tenants(api, token)
    error = assert_error(response, 401, "invalid_token")
    assert error["details"]["reason"] == "expired"
    assert response.headers["www-authenticate"].startswith("Bearer")
    # Only the hash of a token is stored (spec §2.2).
    async with store.read() as connection:
        stored = (await connection.execute(select(access_token))).mappings().all()
    assert stored and all(token not in str(dict(row)) for row in stored)

    # The lifetime is configurable and reported in expires_in.
    service = AppService(store, token_lifetime_seconds=120)
    issued = await service.issue_token(credentials.client_key, credentials.client_secret)
    assert issued.expires_in == 120
    assert await service.verify_token(issued.access_token)
    expired = AppService(store, token_lifetime_seconds=0)
    gone = await expired.issue_token(credentials.client_key, credentials.client_secret)
    error = assert_error(await _tenants(api, gone.access_token), 401, "invalid_token")
    assert error["details"]["reason"] == "expired"


async def test_missing_or_garbage_bearer(api: httpx.AsyncClient, credentials: AppCredentials) -> None:
    token = await _token(api, credentials)
    for authorization in (
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer garbage",
        "Basic Zm9vOmJhcg==",
        "Token abc",
        "Bearer \t",
        f"Basic {token}",
        f"Bearer {token}x",
        f"Bearer {token[:-1]}",
        "Bearer " + "a" * 5000,
    ):
        headers = {} if authorization is None else {"Authorization": authorization}
        for method, path in (
            ("GET", "/api/v1/tenants"),
            ("POST", "/api/v1/tenants"),
            ("GET", "/api/beta/clients"),
        ):
            response = await api.request(method, path, headers=headers, json={"name": "x"})
            error = assert_error(response, 401, "invalid_token")
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert token not in str(error)
    # The scheme is case-insensitive.
    response = await api.get("/api/v1/tenants", headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200, response.text
