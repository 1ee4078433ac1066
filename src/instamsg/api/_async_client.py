"""Asynchronous REST client: one method per operation of the product document (spec §2.3).

Usage::

    async with AsyncClient("http://localhost:8080", client_key, client_secret) as api:
        tenant = await api.create_tenant("Company 1", max_clients=10, max_messages=10_000)
        created = await api.create_client(tenant.id, "device", "pump-7", pub_topics=["pub1"])
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from io import BytesIO
from types import TracebackType
from typing import Any, BinaryIO, Literal, TypeVar
from urllib.parse import quote

import httpx

from instamsg import __version__
from instamsg.api._auth import TokenAuth
from instamsg.api._errors import UnexpectedResponseError, error_from_response, map_exceptions
from instamsg.api._models import (
    AccessToken,
    Certificate,
    ClientInfo,
    ClientRecord,
    ClientState,
    ClientType,
    CommandResult,
    ConfigState,
    CreatedClient,
    LogCreator,
    LogEntry,
    LogLevel,
    Message,
    MessageType,
    Metrics,
    MetricsInterval,
    NetworkLog,
    Page,
    ProvisioningParams,
    ServerLogging,
    Session,
    SortBy,
    SortOrder,
    StoredFile,
    Tenant,
    format_timestamp,
)

__all__ = ["AsyncClient"]

DEFAULT_TIMEOUT_SECONDS = 10.0
API_PREFIX = "/api/v1"
ResultT = TypeVar("ResultT")
ItemT = TypeVar("ItemT")
#: ``start``/``end`` of time-series lists: a datetime, epoch seconds, or any form the server parses.
TimeBound = datetime | int | float | str
#: REST QoS, the product document's scale (C23): 1 at most once, 2 at least once, 3 exactly once.
RestQos = Literal[1, 2, 3]
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


def _bound(value: TimeBound | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_timestamp(value)
    return str(value)


def _number(value: int | None) -> str | None:
    return None if value is None else str(value)


def _page(build: Callable[[Any], ItemT]) -> Callable[[Any], Page[ItemT]]:
    def parse(data: Any) -> Page[ItemT]:
        return Page.from_json(data, build)

    return parse


async def _follow(fetch: Callable[[str | None], Awaitable[Page[ItemT]]]) -> AsyncIterator[ItemT]:
    """Every item of the pages ``fetch(cursor)`` returns, from the first page to the last."""
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        for item in page.items:
            yield item
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _list(build: Callable[[Any], ItemT]) -> Callable[[Any], list[ItemT]]:
    def parse(data: Any) -> list[ItemT]:
        if not isinstance(data, list):
            raise TypeError("expected a JSON array")
        return [build(item) for item in data]

    return parse


@contextmanager
def _open_source(source: str | os.PathLike[str] | bytes | BinaryIO) -> Generator[BinaryIO, None, None]:
    """An upload source as a binary stream, closed afterwards only if this function opened it."""
    if isinstance(source, bytes):
        yield BytesIO(source)
    elif isinstance(source, str | os.PathLike):
        with open(source, "rb") as stream:
            yield stream
    else:
        yield source


@contextmanager
def _open_destination(destination: str | os.PathLike[str] | BinaryIO) -> Generator[BinaryIO, None, None]:
    if isinstance(destination, str | os.PathLike):
        with open(destination, "wb") as stream:
            yield stream
    else:
        yield destination


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

    # Device data (spec §2.3, §2.4.5 to §2.4.7)

    async def get_client_info(self, tenant_id: str, client_id: str) -> ClientInfo:
        """getClientInfo: the device's reported metadata, latest session and network payloads."""
        response = await self._send("GET", self._client_path(tenant_id, client_id) + "/info")
        return _parse(response, ClientInfo.from_json)

    async def get_client_sessions(
        self,
        tenant_id: str,
        client_id: str,
        *,
        start: TimeBound | None = None,
        end: TimeBound | None = None,
        sort_by: Literal["connect_time", "disconnect_time"] | None = None,
        sort_order: SortOrder | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Session]:
        """getClientSessions: one page of connections, newest first by default."""
        params = _query(
            start=_bound(start),
            end=_bound(end),
            sort_by=sort_by,
            sort_order=sort_order,
            limit=_number(limit),
            cursor=cursor,
        )
        response = await self._send(
            "GET", self._client_path(tenant_id, client_id) + "/sessions", params=params
        )
        return _parse(response, _page(Session.from_json))

    def iter_client_sessions(
        self,
        tenant_id: str,
        client_id: str,
        *,
        start: TimeBound | None = None,
        end: TimeBound | None = None,
        sort_by: Literal["connect_time", "disconnect_time"] | None = None,
        sort_order: SortOrder | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[Session]:
        """Every session matching the filters, page after page."""
        return _follow(
            lambda cursor: self.get_client_sessions(
                tenant_id,
                client_id,
                start=start,
                end=end,
                sort_by=sort_by,
                sort_order=sort_order,
                limit=page_size,
                cursor=cursor,
            )
        )

    async def get_client_network_logs(
        self,
        tenant_id: str,
        client_id: str,
        *,
        start: TimeBound | None = None,
        end: TimeBound | None = None,
        mac_id: str | None = None,
        imei: str | None = None,
        msisdn: str | None = None,
        iccid: str | None = None,
        sort_order: SortOrder | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[NetworkLog]:
        """getClientNetworkLogs: one page of network reports; the identifier filters match exactly."""
        params = _query(
            start=_bound(start),
            end=_bound(end),
            mac_id=mac_id,
            imei=imei,
            msisdn=msisdn,
            iccid=iccid,
            sort_order=sort_order,
            limit=_number(limit),
            cursor=cursor,
        )
        path = self._client_path(tenant_id, client_id) + "/network_logs"
        response = await self._send("GET", path, params=params)
        return _parse(response, _page(NetworkLog.from_json))

    def iter_client_network_logs(
        self,
        tenant_id: str,
        client_id: str,
        *,
        start: TimeBound | None = None,
        end: TimeBound | None = None,
        mac_id: str | None = None,
        imei: str | None = None,
        msisdn: str | None = None,
        iccid: str | None = None,
        sort_order: SortOrder | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[NetworkLog]:
        """Every network report matching the filters, page after page."""
        return _follow(
            lambda cursor: self.get_client_network_logs(
                tenant_id,
                client_id,
                start=start,
                end=end,
                mac_id=mac_id,
                imei=imei,
                msisdn=msisdn,
                iccid=iccid,
                sort_order=sort_order,
                limit=page_size,
                cursor=cursor,
            )
        )

    async def get_client_metrics(
        self, tenant_id: str, client_id: str, interval: MetricsInterval = "day"
    ) -> Metrics:
        """getClientMetrics: ``day`` gives 24 hourly buckets, ``month`` 30 daily ones."""
        path = self._client_path(tenant_id, client_id) + "/metrics"
        response = await self._send("GET", path, params={"interval": interval})
        return _parse(response, Metrics.from_json)

    async def get_client_logs(
        self,
        tenant_id: str,
        client_id: str,
        *,
        start: TimeBound | None = None,
        end: TimeBound | None = None,
        level: LogLevel | None = None,
        creator: LogCreator | None = None,
        sort_order: SortOrder | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[LogEntry]:
        """getClientLogs: one page of the device's log lines and the server's events about it."""
        params = _query(
            start=_bound(start),
            end=_bound(end),
            level=level,
            creator=creator,
            sort_order=sort_order,
            limit=_number(limit),
            cursor=cursor,
        )
        response = await self._send("GET", self._client_path(tenant_id, client_id) + "/logs", params=params)
        return _parse(response, _page(LogEntry.from_json))

    def iter_client_logs(
        self,
        tenant_id: str,
        client_id: str,
        *,
        start: TimeBound | None = None,
        end: TimeBound | None = None,
        level: LogLevel | None = None,
        creator: LogCreator | None = None,
        sort_order: SortOrder | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[LogEntry]:
        """Every log entry matching the filters, page after page."""
        return _follow(
            lambda cursor: self.get_client_logs(
                tenant_id,
                client_id,
                start=start,
                end=end,
                level=level,
                creator=creator,
                sort_order=sort_order,
                limit=page_size,
                cursor=cursor,
            )
        )

    async def update_client_certificate(self, tenant_id: str, client_id: str) -> Certificate:
        """updateClientCertificate (reset_certificate): a new certificate and key; the old one is revoked.

        Raises SecureCertNotEnabledError unless the client has ``secure_cert_enabled``.
        """
        path = self._client_path(tenant_id, client_id) + "/reset_certificate"
        response = await self._send("PUT", path)
        return _parse(response, Certificate.from_json)

    # Files (spec §2.4.4, §10.5)

    def _file_path(self, tenant_id: str, client_id: str, filename: str) -> str:
        return self._client_path(tenant_id, client_id) + f"/files/{_segment('filename', filename)}"

    async def get_files(self, tenant_id: str, client_id: str) -> list[StoredFile]:
        """getFiles: the files stored for the client."""
        response = await self._send("GET", self._client_path(tenant_id, client_id) + "/files")
        return _parse(response, _list(StoredFile.from_json))

    async def upload_file(
        self,
        tenant_id: str,
        client_id: str,
        filename: str,
        source: str | os.PathLike[str] | bytes | BinaryIO,
        *,
        content_type: str = "application/octet-stream",
    ) -> StoredFile:
        """uploadFile: store ``source`` (a path, bytes or a binary file object) as ``filename``.

        An online device is sent the file's URL (spec §10.5).
        """
        path = self._file_path(tenant_id, client_id, filename)
        with _open_source(source) as stream:
            files = {"file": (filename, stream, content_type)}
            with map_exceptions(self.base_url):
                response = await self._http.post(path, files=files, auth=self._auth)
        if not response.is_success:
            raise error_from_response(response)
        return _parse(response, StoredFile.from_json)

    async def download_file(
        self,
        tenant_id: str,
        client_id: str,
        filename: str,
        destination: str | os.PathLike[str] | BinaryIO,
        *,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> int:
        """downloadFile: stream the file to a path or a binary file object; returns the byte count.

        ``progress(received, total)`` is called after each chunk (``total`` is None when unknown).
        """
        path = self._file_path(tenant_id, client_id, filename)
        received = 0
        with map_exceptions(self.base_url):
            async with self._http.stream("GET", path, auth=self._auth) as response:
                if not response.is_success:
                    await response.aread()
                    raise error_from_response(response)
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                with _open_destination(destination) as sink:
                    async for chunk in response.aiter_bytes():
                        sink.write(chunk)
                        received += len(chunk)
                        if progress is not None:
                            progress(received, total)
        return received

    async def delete_file(
        self, tenant_id: str, client_id: str, filename: str, *, on_device: bool = False
    ) -> None:
        """deleteFile: delete the stored file and revoke its URL (``on_device`` also asks the device)."""
        params = _query(on_device="1" if on_device else None)
        await self._send("DELETE", self._file_path(tenant_id, client_id, filename), params=params)

    # Configuration (spec §8.4)

    async def get_client_config(self, tenant_id: str, client_id: str) -> ConfigState:
        """getClientConfig: effective, desired and reported configuration and the pending keys."""
        response = await self._send("GET", self._client_path(tenant_id, client_id) + "/config")
        return _parse(response, ConfigState.from_json)

    async def update_client_config(
        self, tenant_id: str, client_id: str, config: Mapping[str, Any]
    ) -> ConfigState:
        """updateClientConfig: merge ``config`` into the desired values (None removes a key) and push."""
        if not isinstance(config, Mapping):
            raise TypeError("config must be a mapping of keys to values")
        path = self._client_path(tenant_id, client_id) + "/config"
        response = await self._send("PUT", path, json={"config": dict(config)})
        return _parse(response, ConfigState.from_json)

    async def delete_client_config(self, tenant_id: str, client_id: str) -> ConfigState:
        """deleteClientConfig: clear the desired values (nothing is pushed)."""
        response = await self._send("DELETE", self._client_path(tenant_id, client_id) + "/config")
        return _parse(response, ConfigState.from_json)

    # Messages (spec §2.5.5, §2.5.6)

    async def publish_message(
        self,
        tenant_id: str,
        client_id: str,
        topic: str,
        payload: str = "",
        *,
        qos: RestQos = 1,
        type: MessageType = "pub",
        id: int | None = None,
        duplicate: bool = False,
        save: bool = True,
    ) -> Message:
        """publishMessage on behalf of the client.

        ``qos`` is the product document's scale: 1 at most once, 2 at least once, 3 exactly once; 2
        and 3 need an ``id`` (1-65535). For ``type="p2p"`` the topic is the peer client's UUID.
        """
        body: dict[str, Any] = {
            "type": type,
            "topic": topic,
            "payload": payload,
            "qos": qos,
            "duplicate": duplicate,
            "save": save,
        }
        if id is not None:
            body["id"] = id
        path = self._client_path(tenant_id, client_id) + "/messages"
        response = await self._send("POST", path, json=body)
        return _parse(response, Message.from_json)

    async def get_messages(
        self,
        tenant_id: str,
        client_id: str,
        *,
        start: TimeBound | None = None,
        end: TimeBound | None = None,
        type: MessageType | None = None,
        sort_order: SortOrder | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Message]:
        """getMessages: one page of the client's stored messages, newest first by default."""
        params = _query(
            start=_bound(start),
            end=_bound(end),
            type=type,
            sort_order=sort_order,
            limit=_number(limit),
            cursor=cursor,
        )
        path = self._client_path(tenant_id, client_id) + "/messages"
        response = await self._send("GET", path, params=params)
        return _parse(response, _page(Message.from_json))

    def iter_messages(
        self,
        tenant_id: str,
        client_id: str,
        *,
        start: TimeBound | None = None,
        end: TimeBound | None = None,
        type: MessageType | None = None,
        sort_order: SortOrder | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[Message]:
        """Every stored message matching the filters, following ``next_cursor`` page after page."""
        return _follow(
            lambda cursor: self.get_messages(
                tenant_id,
                client_id,
                start=start,
                end=end,
                type=type,
                sort_order=sort_order,
                limit=page_size,
                cursor=cursor,
            )
        )

    async def get_message(self, tenant_id: str, client_id: str, message_id: str) -> Message:
        """getMessage (S8): one stored message."""
        path = self._client_path(tenant_id, client_id) + f"/messages/{_segment('message_id', message_id)}"
        response = await self._send("GET", path)
        return _parse(response, Message.from_json)

    async def release_message(self, tenant_id: str, client_id: str, message_id: str) -> Message:
        """releaseMessage: deliver a stored message again (charged to the quota); the release is recorded."""
        path = self._client_path(tenant_id, client_id)
        path += f"/messages/{_segment('message_id', message_id)}/release"
        response = await self._send("PUT", path)
        return _parse(response, Message.from_json)

    # Device commands (spec §2.7)

    async def set_server_logging(
        self, tenant_id: str, client_id: str, enabled: bool, duration_seconds: int | None = None
    ) -> ServerLogging:
        """Start or stop remote logging of the device (its log lines then appear in get_client_logs)."""
        body: dict[str, Any] = {"enabled": enabled}
        if duration_seconds is not None:
            body["duration_seconds"] = duration_seconds
        path = self._client_path(tenant_id, client_id) + "/server_logging"
        response = await self._send("PUT", path, json=body)
        return _parse(response, ServerLogging.from_json)

    async def reboot_client(self, tenant_id: str, client_id: str) -> CommandResult:
        """Send the reboot command; ``sent`` is False when the device is offline."""
        path = self._client_path(tenant_id, client_id) + "/reboot"
        response = await self._send("POST", path, json={})
        return _parse(response, CommandResult.from_json)

    async def update_firmware(self, tenant_id: str, client_id: str, payload: str) -> CommandResult:
        """Publish ``payload`` on the device's ``update_firmware`` topic."""
        path = self._client_path(tenant_id, client_id) + "/update_firmware"
        response = await self._send("POST", path, json={"payload": payload})
        return _parse(response, CommandResult.from_json)

    async def control_action(
        self, tenant_id: str, client_id: str, payload: str | Mapping[str, Any]
    ) -> CommandResult:
        """Publish ``payload`` (text or a JSON object) on the device's ``controlaction`` topic."""
        body = {"payload": payload if isinstance(payload, str) else dict(payload)}
        path = self._client_path(tenant_id, client_id) + "/control_action"
        response = await self._send("POST", path, json=body)
        return _parse(response, CommandResult.from_json)
