"""AsyncClient against a real `instamsg serve`: every operation, typed results, errors, token renewal."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from instamsg.api import (
    AccessToken,
    ApiError,
    AsyncClient,
    AuthTokenNotRetrievableError,
    ClientNotFoundError,
    ClientRecord,
    ConnectionFailedError,
    CreatedClient,
    InvalidClientError,
    NotFoundError,
    PayloadTooLargeError,
    ProvisioningIdTakenError,
    ProvisioningParams,
    ServerError,
    Tenant,
    TenantClientQuotaExceededError,
    TenantNotFoundError,
    UnexpectedResponseError,
    UnknownFieldError,
    ValidationFailedError,
)
from instamsg.api._errors import error_from_response
from tests.api.support import UNKNOWN_UUID, RecordingTransport, RunningServer, unique
from tests.support.ports import free_port

# One server per module: keep the module on one xdist worker (make test uses --dist loadgroup).
pytestmark = pytest.mark.xdist_group("sdk-async")


TOKEN_PATH = "/oauth2/token"


@pytest.fixture
def transport() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
async def api(running: RunningServer, transport: RecordingTransport) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(
        running.url, running.client_key, running.client_secret, transport=transport
    ) as client:
        yield client


async def make_tenant(api: AsyncClient, max_clients: int = 10) -> Tenant:
    return await api.create_tenant(unique("tenant"), max_clients=max_clients, max_messages=1000)


# OAuth2 and the token cache


async def test_get_access_token_returns_a_bearer_token_the_client_then_uses(
    api: AsyncClient, transport: RecordingTransport
) -> None:
    token = await api.get_access_token()
    assert isinstance(token, AccessToken)
    assert token.token_type == "bearer" and token.expires_in == 3600 and len(token.access_token) >= 32
    await api.get_tenants()
    await api.get_tenants()
    assert transport.count(TOKEN_PATH) == 1


async def test_the_token_is_fetched_once_for_concurrent_first_requests(
    api: AsyncClient, transport: RecordingTransport
) -> None:
    results = await asyncio.gather(*(api.get_tenants() for _ in range(5)))
    assert all(isinstance(result, list) for result in results)
    assert transport.count(TOKEN_PATH) == 1


async def test_invalidated_token_is_forgotten_and_a_new_one_fetched(
    api: AsyncClient, transport: RecordingTransport
) -> None:
    await api.get_tenants()
    await api.invalidate_access_token()
    await api.get_tenants()
    assert transport.count(TOKEN_PATH) == 2
    assert [exchange.status for exchange in transport.exchanges if exchange.path == "/api/v1/tenants"] == [
        200,
        200,
    ]


async def test_token_revoked_elsewhere_is_renewed_once_on_401(
    api: AsyncClient, running: RunningServer, transport: RecordingTransport
) -> None:
    token = (await api.get_access_token()).access_token
    async with AsyncClient(running.url, running.client_key, running.client_secret) as other:
        await other.invalidate_access_token(token)
    tenants = await api.get_tenants()
    assert isinstance(tenants, list)
    statuses = [(exchange.path, exchange.status) for exchange in transport.exchanges]
    assert statuses[-3:] == [("/api/v1/tenants", 401), (TOKEN_PATH, 200), ("/api/v1/tenants", 200)]


async def test_token_is_renewed_before_it_expires(
    api: AsyncClient, transport: RecordingTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr("instamsg.api._auth.monotonic", lambda: now[0])
    await api.get_tenants()  # token issued at t=1000 for 3600 s
    now[0] += 3600 - 61
    await api.get_tenants()
    assert transport.count(TOKEN_PATH) == 1
    now[0] += 2  # less than the 60 s renewal margin left
    await api.get_tenants()
    assert transport.count(TOKEN_PATH) == 2
    # A long idle period (token long expired on the server too): renewed before the request, no 401.
    now[0] += 10 * 3600
    await api.get_tenants()
    assert transport.count(TOKEN_PATH) == 3
    assert all(exchange.status == 200 for exchange in transport.exchanges)


async def test_wrong_secret_is_invalid_client_for_every_operation(running: RunningServer) -> None:
    async with AsyncClient(running.url, running.client_key, "not-the-secret") as api:
        with pytest.raises(InvalidClientError) as raised:
            await api.get_tenants()
        assert raised.value.status == 401 and raised.value.code == "invalid_client"
        with pytest.raises(InvalidClientError):
            await api.get_access_token()
        with pytest.raises(InvalidClientError):
            await api.invalidate_access_token("whatever")


async def test_invalidate_without_a_token_sends_nothing(
    api: AsyncClient, transport: RecordingTransport
) -> None:
    await api.invalidate_access_token()
    assert transport.exchanges == []


# Tenants


async def test_tenant_operations_return_typed_tenants(api: AsyncClient) -> None:
    name = unique("Company")
    created = await api.create_tenant(name, max_clients=5, max_messages=10_000, description="first")
    assert isinstance(created, Tenant)
    assert (created.name, created.description, created.max_clients, created.max_messages) == (
        name,
        "first",
        5,
        10_000,
    )
    assert created.active and created.messages_used == 0 and created.clients_count == 0
    assert created.created_at.tzinfo is not None
    assert abs((datetime.now(UTC) - created.created_at).total_seconds()) < 60

    assert await api.get_single_tenant(created.id) == created
    updated = await api.update_tenant(created.id, description="second", max_clients=7, active=False)
    assert (updated.name, updated.description, updated.max_clients, updated.active) == (
        name,
        "second",
        7,
        False,
    )
    inactive = await api.get_tenants(active=False)
    assert created.id in {tenant.id for tenant in inactive}
    assert all(not tenant.active for tenant in inactive)
    assert created.id not in {tenant.id for tenant in await api.get_tenants(active=True)}

    await api.delete_tenant(created.id)
    with pytest.raises(TenantNotFoundError) as raised:
        await api.get_single_tenant(created.id)
    assert raised.value.status == 404 and raised.value.details == {"tenant_id": created.id}


async def test_get_tenants_sorts(api: AsyncClient) -> None:
    names = [unique("sort-b"), unique("sort-a"), unique("sort-c")]
    ids = [(await api.create_tenant(name, max_clients=1, max_messages=1)).id for name in names]

    def ours(tenants: list[Tenant]) -> list[str]:
        return [tenant.name for tenant in tenants if tenant.id in ids]

    assert ours(await api.get_tenants()) == names
    assert ours(await api.get_tenants(sort_by="name")) == sorted(names)
    assert ours(await api.get_tenants(sort_by="name", sort_order="desc")) == sorted(names, reverse=True)


async def test_unknown_and_malformed_tenant_ids_are_tenant_not_found(api: AsyncClient) -> None:
    for tenant_id in (UNKNOWN_UUID, "not-a-uuid"):
        with pytest.raises(TenantNotFoundError):
            await api.get_single_tenant(tenant_id)
    # Ids are percent-encoded: a crafted one cannot reach another endpoint (the tenant list here).
    with pytest.raises(NotFoundError):
        await api.get_single_tenant("../tenants")
    with pytest.raises(TenantNotFoundError):
        await api.update_tenant(UNKNOWN_UUID, name="x")
    with pytest.raises(TenantNotFoundError):
        await api.delete_tenant(UNKNOWN_UUID)
    with pytest.raises(TenantNotFoundError):
        await api.get_clients(UNKNOWN_UUID)
    with pytest.raises(ValueError, match="tenant_id must not be empty"):
        await api.get_single_tenant("")


async def test_bad_values_are_validation_failed(api: AsyncClient) -> None:
    with pytest.raises(ValidationFailedError) as raised:
        await api.create_tenant("x", max_clients=-1, max_messages=1)
    assert raised.value.status == 400 and raised.value.details["field"] == "max_clients"
    tenant = await make_tenant(api)
    with pytest.raises(ValidationFailedError):
        await api.create_client(tenant.id, "robot", "r2")  # type: ignore[arg-type]
    with pytest.raises(ValidationFailedError):
        await api.update_tenant(tenant.id, name="")


# Clients


async def test_client_operations_return_typed_clients(api: AsyncClient) -> None:
    tenant = await make_tenant(api)
    provisioning_id = unique("imei")
    created = await api.create_client(
        tenant.id,
        "device",
        "pump-7",
        description="north well",
        sub_topics=["sub1", "alerts/#"],
        pub_topics=["pub1"],
        provisioning_params=ProvisioningParams(
            provisioning_id=provisioning_id, provisioning_key="KEY01a", gsm_apn="internet"
        ),
    )
    assert isinstance(created, CreatedClient)
    assert len(created.auth_token) == 32 and created.auth_token.isalnum()
    assert (created.type, created.name, created.description, created.tenant_id) == (
        "device",
        "pump-7",
        "north well",
        tenant.id,
    )
    assert created.sub_topics == ("sub1", "alerts/#") and created.pub_topics == ("pub1",)
    assert created.state == "unprovisioned" and created.profile is None and created.last_connect_at is None
    assert created.provisioning_params is not None
    assert created.provisioning_params.provisioning_id == provisioning_id
    assert created.provisioning_params.provisioning_key == "********"
    assert created.provisioning_params.gsm_apn == "internet"

    single = await api.get_single_client(tenant.id, created.id)
    assert isinstance(single, ClientRecord) and not isinstance(single, CreatedClient)
    assert single.id == created.id and single.created_at == created.created_at

    user = await api.create_client(tenant.id, "user", "dashboard", secure_cert_enabled=True)
    assert user.provisioning_params is None and user.state == "offline" and user.secure_cert_enabled
    assert [client.id for client in await api.get_clients(tenant.id)] == [created.id, user.id]
    assert [client.id for client in await api.get_clients(tenant.id, type="user")] == [user.id]
    assert [client.id for client in await api.get_clients(tenant.id, secure=True)] == [user.id]
    assert [client.id for client in await api.get_clients(tenant.id, state="unprovisioned")] == [created.id]
    by_name = await api.get_clients(tenant.id, sort_by="name", sort_order="desc")
    assert [client.name for client in by_name] == ["pump-7", "dashboard"]

    other = await make_tenant(api)
    elsewhere = await api.create_client(other.id, "user", "elsewhere")
    everywhere = {client.id for client in await api.get_clients()}
    assert {created.id, user.id, elsewhere.id} <= everywhere

    blocked = await api.update_client(
        tenant.id, created.id, blocked=True, sub_topics=["sub2"], remove_provisioning_params=True
    )
    assert blocked.blocked and blocked.state == "blocked"
    assert blocked.sub_topics == ("sub2",) and blocked.pub_topics == ("pub1",)
    assert blocked.provisioning_params is None
    assert blocked.updated_at >= created.updated_at
    renamed = await api.update_client(tenant.id, created.id, name="pump-8", blocked=False)
    assert (renamed.name, renamed.blocked, renamed.state) == ("pump-8", False, "offline")

    await api.delete_client(tenant.id, created.id)
    with pytest.raises(ClientNotFoundError) as raised:
        await api.get_single_client(tenant.id, created.id)
    assert raised.value.status == 404 and raised.value.code == "client_not_found"
    for operation in (api.delete_client, api.get_client_auth_token, api.update_client_auth_token):
        with pytest.raises(ClientNotFoundError):
            await operation(tenant.id, UNKNOWN_UUID)
    with pytest.raises(ClientNotFoundError):
        await api.update_client(tenant.id, UNKNOWN_UUID, name="x")


async def test_auth_tokens_of_user_and_device_clients(api: AsyncClient) -> None:
    tenant = await make_tenant(api)
    user = await api.create_client(tenant.id, "user", "dashboard")
    assert await api.get_client_auth_token(tenant.id, user.id) == user.auth_token
    reset = await api.update_client_auth_token(tenant.id, user.id)
    assert reset != user.auth_token and len(reset) == 32
    assert await api.get_client_auth_token(tenant.id, user.id) == reset

    device = await api.create_client(tenant.id, "device", "pump")
    with pytest.raises(AuthTokenNotRetrievableError) as raised:
        await api.get_client_auth_token(tenant.id, device.id)
    assert raised.value.status == 403 and raised.value.details["client_id"] == device.id
    assert await api.update_client_auth_token(tenant.id, device.id) != device.auth_token


async def test_client_quota_is_a_409(api: AsyncClient) -> None:
    tenant = await make_tenant(api, max_clients=1)
    await api.create_client(tenant.id, "device", "one")
    with pytest.raises(TenantClientQuotaExceededError) as raised:
        await api.create_client(tenant.id, "device", "two")
    assert raised.value.status == 409 and raised.value.details["max_clients"] == 1
    await api.update_tenant(tenant.id, max_clients=2)
    await api.create_client(tenant.id, "device", "two")


async def test_provisioning_id_taken_is_a_409(api: AsyncClient) -> None:
    tenant = await make_tenant(api)
    params = ProvisioningParams(provisioning_id=unique("mac"))
    await api.create_client(tenant.id, "device", "one", provisioning_params=params)
    with pytest.raises(ProvisioningIdTakenError) as raised:
        await api.create_client(tenant.id, "device", "two", provisioning_params=params)
    assert raised.value.status == 409


async def test_topics_must_be_a_list(api: AsyncClient) -> None:
    tenant = await make_tenant(api)
    with pytest.raises(TypeError, match="sub_topics must be a list"):
        await api.create_client(tenant.id, "device", "x", sub_topics="sub1")


# Connection failures


async def test_connection_refused_is_connection_failed(running: RunningServer) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with AsyncClient(url, running.client_key, running.client_secret) as api:
        with pytest.raises(ConnectionFailedError) as raised:
            await api.get_tenants()
    assert raised.value.url == url and "connection refused" in str(raised.value)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A socket that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


async def test_timeout_is_connection_failed(silent_server: str) -> None:
    async with AsyncClient(silent_server, "key", "secret", timeout=0.3) as api:
        with pytest.raises(ConnectionFailedError, match="timed out"):
            await api.get_tenants()


def test_invalid_base_url_is_a_value_error() -> None:
    for url in ("localhost:8080", "ftp://example.com", "http://"):
        with pytest.raises(ValueError, match="invalid base URL"):
            AsyncClient(url, "key", "secret")


# Error mapping of answers the server does not give today


def _response(status: int, content: bytes, content_type: str = "application/json") -> httpx.Response:
    request = httpx.Request("GET", "http://instamsg.test/api/v1/tenants")
    return httpx.Response(status, content=content, headers={"content-type": content_type}, request=request)


def test_unknown_codes_fall_back_to_the_class_of_their_status() -> None:
    error = error_from_response(
        _response(404, b'{"error": {"code": "gadget_not_found", "message": "No gadget.", "details": {}}}')
    )
    assert type(error) is NotFoundError and error.code == "gadget_not_found" and error.message == "No gadget."
    teapot = error_from_response(_response(418, b'{"error": {"code": "teapot", "message": "Tea."}}'))
    assert type(teapot) is ApiError and teapot.status == 418 and teapot.details == {}
    proxy = error_from_response(_response(502, b"<html>Bad Gateway</html>", "text/html"))
    assert isinstance(proxy, ServerError) and proxy.code == "http_error" and "502" in proxy.message
    unknown_field = error_from_response(
        _response(400, b'{"error": {"code": "unknown_field", "message": "m", "details": {"field": "x"}}}')
    )
    assert isinstance(unknown_field, UnknownFieldError) and unknown_field.details == {"field": "x"}
    # 413 is mapped here: against the real server a large upload races the early answer and may
    # end as a reset connection instead (the server closes without reading the body).
    too_large = error_from_response(
        _response(413, b'{"error": {"code": "payload_too_large", "message": "Too big.", "details": {}}}')
    )
    assert isinstance(too_large, PayloadTooLargeError) and too_large.status == 413


async def test_a_success_that_is_not_the_api_json_is_unexpected_response() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == TOKEN_PATH:
            return httpx.Response(200, json={"access_token": "t", "token_type": "bearer", "expires_in": 60})
        return httpx.Response(200, text="<html>hello</html>")

    async with AsyncClient("http://example.test", "k", "s", transport=httpx.MockTransport(handler)) as api:
        with pytest.raises(UnexpectedResponseError) as raised:
            await api.get_tenants()
    assert raised.value.status == 200


async def test_a_second_invalid_token_is_raised_not_retried_forever() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == TOKEN_PATH:
            return httpx.Response(200, json={"access_token": "t", "token_type": "bearer", "expires_in": 3600})
        body = {"error": {"code": "invalid_token", "message": "Expired.", "details": {"reason": "expired"}}}
        return httpx.Response(401, json=body, headers={"WWW-Authenticate": "Bearer"})

    async with AsyncClient("http://example.test", "k", "s", transport=httpx.MockTransport(handler)) as api:
        with pytest.raises(ApiError) as raised:
            await api.get_tenants()
    assert raised.value.code == "invalid_token" and raised.value.details == {"reason": "expired"}
    assert seen == [TOKEN_PATH, "/api/v1/tenants", TOKEN_PATH, "/api/v1/tenants"]


def test_base_url_path_prefix_is_kept() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.endswith(TOKEN_PATH):
            return httpx.Response(200, json={"access_token": "t", "token_type": "bearer", "expires_in": 3600})
        return httpx.Response(200, json=[])

    async def main() -> None:
        transport = httpx.MockTransport(handler)
        async with AsyncClient("http://example.test/instamsg/", "k", "s", transport=transport) as api:
            assert await api.get_tenants() == []

    asyncio.run(main())
    assert seen == ["/instamsg/oauth2/token", "/instamsg/api/v1/tenants"]
