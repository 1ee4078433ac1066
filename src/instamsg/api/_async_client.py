"""Asynchronous REST client: one method per operation of the product document (spec §2.3).

Usage::

    async with AsyncClient("http://localhost:8080", client_key, client_secret) as api:
        tenant = await api.create_tenant("Company 1", max_clients=10, max_messages=10_000)
        created = await api.create_client(tenant.id, "device", "pump-7", pub_topics=["pub1"])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx

from instamsg import __version__
from instamsg.api._auth import TokenAuth
from instamsg.api._errors import UnexpectedResponseError, error_from_response, map_exceptions
from instamsg.api._models import (
    AccessToken,
    ClientRecord,
    ClientState,
    ClientType,
    CreatedClient,
    ProvisioningParams,
    SortBy,
    SortOrder,
    Tenant,
)

__all__ = ["AsyncClient"]

DEFAULT_TIMEOUT_SECONDS = 10.0
API_PREFIX = "/api/v1"
ResultT = TypeVar("ResultT")
_FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def _segment(name: str, value: str) -> str:
    """A path parameter, percent-encoded so that an id can never change the path."""
    if not value:
        raise ValueError(f"{name} must not be empty")
    return quote(value, safe="")


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("1" if value else "0")


def _topics(name: str, value: Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError(f"{name} must be a list of topic filters, not a string")
    return list(value)


def _query(**values: str | None) -> dict[str, str]:
    return {name: value for name, value in values.items() if value is not None}


def _parse(response: httpx.Response, build: Callable[[Any], ResultT]) -> ResultT:
    """Decode a success body with ``build``; anything unexpected is an UnexpectedResponseError."""
    try:
        return build(response.json())
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UnexpectedResponseError(
            f"{response.request.method} {response.url.path} answered {response.status_code} with a body "
            "this SDK cannot read; is the URL an InstaMsg server of a matching version?",
            status=response.status_code,
        ) from None


def _tenants(data: Any) -> list[Tenant]:
    if not isinstance(data, list):
        raise TypeError("expected a JSON array")
    return [Tenant.from_json(item) for item in data]


def _clients(data: Any) -> list[ClientRecord]:
    if not isinstance(data, list):
        raise TypeError("expected a JSON array")
    return [ClientRecord.from_json(item) for item in data]


def _auth_token(data: Any) -> str:
    return str(data["auth_token"])


class AsyncClient:
    """Asynchronous client of the InstaMsg REST API, authenticated as one app.

    The access token is obtained from ``client_key`` and ``client_secret`` on first use, renewed before
    it expires and once more when the server rejects it. Errors are raised as ``InstaMsgError``
    subclasses: ``ApiError`` (one class per error code) or ``ConnectionFailedError``.
    """

    def __init__(
        self,
        base_url: str,
        client_key: str,
        client_secret: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL as error:
            raise ValueError(f"invalid base URL {base_url!r}: {error}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"invalid base URL {base_url!r}: use http://host:port or https://host")
        self.client_key = client_key
        self._http = httpx.AsyncClient(
            base_url=url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": f"instamsg-python/{__version__}", "Accept": "application/json"},
        )
        self.base_url = str(self._http.base_url).rstrip("/")
        self._auth = TokenAuth(self._http.base_url.join("oauth2/token"), client_key, client_secret)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, client_key={self.client_key!r})"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exception_type: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
    ) -> httpx.Response:
        with map_exceptions(self.base_url):
            response = await self._http.request(
                method, path, params=params, json=json, headers=headers, auth=auth or self._auth
            )
        if not response.is_success:
            raise error_from_response(response)
        return response

    # OAuth2 (spec §2.2)

    async def get_access_token(self) -> AccessToken:
        """getAccessToken: request a new access token; the client uses it from now on."""
        response = await self._send(
            "POST",
            "/oauth2/token",
            params={"grant_type": "client_credentials"},
            headers=_FORM_HEADERS,
            auth=self._auth.basic_auth(),
        )
        return self._auth.store(response)

    async def invalidate_access_token(self, token: str | None = None) -> None:
        """invalidateAccessToken: revoke ``token``, by default the one this client holds (if any)."""
        token = token or self._auth.token
        if token is None:
            return
        await self._send(
            "POST",
            "/oauth2/invalidate_token",
            params={"access_token": token},
            headers=_FORM_HEADERS,
            auth=self._auth.basic_auth(),
        )
        self._auth.forget(token)

    # Tenants (spec §2.5.1)

    async def create_tenant(
        self,
        name: str,
        max_clients: int,
        max_messages: int,
        description: str = "",
        active: bool = True,
    ) -> Tenant:
        """createTenant."""
        body = {
            "name": name,
            "description": description,
            "max_clients": max_clients,
            "max_messages": max_messages,
            "active": active,
        }
        response = await self._send("POST", f"{API_PREFIX}/tenants", json=body)
        return _parse(response, Tenant.from_json)

    async def get_tenants(
        self,
        active: bool | None = None,
        sort_by: SortBy = "created_at",
        sort_order: SortOrder = "asc",
    ) -> list[Tenant]:
        """getTenants: the app's tenants; ``active`` None lists active and inactive ones."""
        params = _query(active=_flag(active), sort_by=sort_by, sort_order=sort_order)
        response = await self._send("GET", f"{API_PREFIX}/tenants", params=params)
        return _parse(response, _tenants)

    async def get_single_tenant(self, tenant_id: str) -> Tenant:
        """getSingleTenant."""
        response = await self._send("GET", f"{API_PREFIX}/tenants/{_segment('tenant_id', tenant_id)}")
        return _parse(response, Tenant.from_json)

    async def update_tenant(
        self,
        tenant_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        max_clients: int | None = None,
        max_messages: int | None = None,
        active: bool | None = None,
    ) -> Tenant:
        """updateTenant: fields left None are unchanged."""
        changes = {
            "name": name,
            "description": description,
            "max_clients": max_clients,
            "max_messages": max_messages,
            "active": active,
        }
        body = {field: value for field, value in changes.items() if value is not None}
        path = f"{API_PREFIX}/tenants/{_segment('tenant_id', tenant_id)}"
        response = await self._send("PUT", path, json=body)
        return _parse(response, Tenant.from_json)

    async def delete_tenant(self, tenant_id: str) -> None:
        """deleteTenant: also deletes the tenant's clients and their data."""
        await self._send("DELETE", f"{API_PREFIX}/tenants/{_segment('tenant_id', tenant_id)}")

    # Clients (spec §2.5.2 to §2.5.4)

    def _client_path(self, tenant_id: str, client_id: str) -> str:
        tenant = _segment("tenant_id", tenant_id)
        return f"{API_PREFIX}/tenants/{tenant}/clients/{_segment('client_id', client_id)}"

    async def create_client(
        self,
        tenant_id: str,
        type: ClientType,
        name: str,
        description: str | None = None,
        sub_topics: Sequence[str] | None = None,
        pub_topics: Sequence[str] | None = None,
        secure_cert_enabled: bool = False,
        provisioning_params: ProvisioningParams | None = None,
    ) -> CreatedClient:
        """createClient: the result carries the client's ``auth_token`` (shown once for devices)."""
        body: dict[str, Any] = {"type": type, "name": name, "secure_cert_enabled": secure_cert_enabled}
        if description is not None:
            body["description"] = description
        if (subscribe := _topics("sub_topics", sub_topics)) is not None:
            body["sub_topics"] = subscribe
        if (publish := _topics("pub_topics", pub_topics)) is not None:
            body["pub_topics"] = publish
        if provisioning_params is not None:
            body["provisioning_params"] = provisioning_params.to_request()
        path = f"{API_PREFIX}/tenants/{_segment('tenant_id', tenant_id)}/clients"
        response = await self._send("POST", path, json=body)
        return _parse(response, CreatedClient.from_json)

    async def get_clients(
        self,
        tenant_id: str | None = None,
        type: ClientType | None = None,
        secure: bool | None = None,
        state: ClientState | Literal["all"] | None = None,
        sort_by: SortBy = "created_at",
        sort_order: SortOrder = "asc",
    ) -> list[ClientRecord]:
        """getClients: the clients of one tenant, or of all the app's tenants when ``tenant_id`` is None."""
        params = _query(type=type, secure=_flag(secure), state=state, sort_by=sort_by, sort_order=sort_order)
        if tenant_id is None:
            path = f"{API_PREFIX}/clients"
        else:
            path = f"{API_PREFIX}/tenants/{_segment('tenant_id', tenant_id)}/clients"
        response = await self._send("GET", path, params=params)
        return _parse(response, _clients)

    async def get_single_client(self, tenant_id: str, client_id: str) -> ClientRecord:
        """getSingleClient."""
        response = await self._send("GET", self._client_path(tenant_id, client_id))
        return _parse(response, ClientRecord.from_json)

    async def update_client(
        self,
        tenant_id: str,
        client_id: str,
        *,
        type: ClientType | None = None,
        name: str | None = None,
        description: str | None = None,
        sub_topics: Sequence[str] | None = None,
        pub_topics: Sequence[str] | None = None,
        secure_cert_enabled: bool | None = None,
        provisioning_params: ProvisioningParams | None = None,
        remove_provisioning_params: bool = False,
        blocked: bool | None = None,
    ) -> ClientRecord:
        """updateClient: fields left None are unchanged; ``blocked=True`` disconnects the client.

        ``provisioning_params`` replaces the stored ones (write-only values left None are kept);
        ``remove_provisioning_params=True`` removes them.
        """
        if remove_provisioning_params and provisioning_params is not None:
            raise ValueError("give provisioning_params or remove_provisioning_params, not both")
        changes: dict[str, Any] = {
            "type": type,
            "name": name,
            "description": description,
            "sub_topics": _topics("sub_topics", sub_topics),
            "pub_topics": _topics("pub_topics", pub_topics),
            "secure_cert_enabled": secure_cert_enabled,
            "blocked": blocked,
        }
        body = {field: value for field, value in changes.items() if value is not None}
        if provisioning_params is not None:
            body["provisioning_params"] = provisioning_params.to_request()
        elif remove_provisioning_params:
            body["provisioning_params"] = None
        response = await self._send("PUT", self._client_path(tenant_id, client_id), json=body)
        return _parse(response, ClientRecord.from_json)

    async def delete_client(self, tenant_id: str, client_id: str) -> None:
        """deleteClient: disconnects the client and deletes its data."""
        await self._send("DELETE", self._client_path(tenant_id, client_id))

    async def get_client_auth_token(self, tenant_id: str, client_id: str) -> str:
        """getClientAuthToken: ``user`` clients only; a device raises AuthTokenNotRetrievableError."""
        response = await self._send("GET", self._client_path(tenant_id, client_id) + "/auth_token")
        return _parse(response, _auth_token)

    async def update_client_auth_token(self, tenant_id: str, client_id: str) -> str:
        """updateClientAuthToken: issue a new auth token; the old one stops working at once."""
        path = self._client_path(tenant_id, client_id) + "/reset_auth_token"
        response = await self._send("PUT", path)
        return _parse(response, _auth_token)
