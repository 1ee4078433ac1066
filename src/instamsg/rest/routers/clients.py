"""Clients: createClient, getClients, getSingleClient, updateClient, deleteClient and auth tokens."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import Field

from instamsg.domain.clients import Client, public_provisioning_params
from instamsg.domain.errors import ServiceUnavailable
from instamsg.rest.dependencies import (
    ClientIdPath,
    CurrentAppId,
    Services,
    ServicesDep,
    TenantIdPath,
    api_prefix,
)
from instamsg.rest.schemas.clients import AuthTokenOut, ClientCreate, ClientCreated, ClientOut, ClientUpdate
from instamsg.rest.schemas.common import ErrorBody, Flag, ResponseModel, Timestamp

router = APIRouter(tags=["clients"])

_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 415)
}
_CLIENT_PATH = "/tenants/{tenantId}/clients/{clientId}"
SortBy = Literal["name", "created_at", "updated_at"]
SortOrder = Literal["asc", "desc"]
StateFilter = Literal["all", "online", "offline", "blocked", "provisioned", "unprovisioned"]


def client_fields(client: Client, services: Services) -> dict[str, object]:
    return {
        "id": client.id,
        "tenant_id": client.tenant_id,
        "type": client.type.value,
        "name": client.name,
        "description": client.description,
        "sub_topics": list(client.sub_topics),
        "pub_topics": list(client.pub_topics),
        "secure_cert_enabled": client.secure_cert_enabled,
        "blocked": client.blocked,
        "state": services.clients.state_of(client).value,
        "provisioning_params": public_provisioning_params(client.provisioning_params),
        "profile": client.profile,
        "last_connect_at": client.last_connect_at,
        "last_disconnect_at": client.last_disconnect_at,
        "created_at": client.created_at,
        "updated_at": client.updated_at,
    }


def client_out(client: Client, services: Services) -> ClientOut:
    return ClientOut.model_validate(client_fields(client, services))


@router.post(
    "/tenants/{tenantId}/clients",
    status_code=status.HTTP_201_CREATED,
    response_model=ClientCreated,
    responses={**_ERRORS, 201: {"headers": {"Location": {"description": "Path of the new client."}}}},
    summary="createClient",
    description="Creates a device or user client. The response carries its `auth_token` once.",
)
async def create_client(
    tenant_id: TenantIdPath,
    body: ClientCreate,
    request: Request,
    response: Response,
    app_id: CurrentAppId,
    services: ServicesDep,
) -> ClientCreated:
    client = await services.clients.create_client(app_id, tenant_id, body.model_dump(exclude_unset=True))
    response.headers["Location"] = f"{api_prefix(request)}/tenants/{client.tenant_id}/clients/{client.id}"
    return ClientCreated.model_validate({**client_fields(client, services), "auth_token": client.auth_token})


async def _list_clients(
    services: Services,
    app_id: str,
    tenant_id: str | None,
    client_type: Literal["device", "user"] | None,
    secure: bool | None,
    state: StateFilter,
    sort_by: SortBy,
    sort_order: SortOrder,
) -> list[ClientOut]:
    clients = await services.clients.list_clients(
        app_id,
        tenant_id,
        client_type=client_type,
        secure=secure,
        state=state,
        sort_by=sort_by,
        descending=sort_order == "desc",
    )
    return [client_out(client, services) for client in clients]


@router.get(
    "/tenants/{tenantId}/clients", response_model=list[ClientOut], responses=_ERRORS, summary="getClients"
)
async def get_clients(
    tenant_id: TenantIdPath,
    app_id: CurrentAppId,
    services: ServicesDep,
    type: Literal["device", "user"] | None = Query(None),
    secure: Flag | None = Query(None, description="1 lists clients with secure_cert_enabled, 0 the others."),
    state: StateFilter = "all",
    sort_by: SortBy = "created_at",
    sort_order: SortOrder = "asc",
) -> list[ClientOut]:
    return await _list_clients(services, app_id, tenant_id, type, secure, state, sort_by, sort_order)


@router.get(
    "/clients",
    response_model=list[ClientOut],
    responses=_ERRORS,
    summary="getClients (across tenants)",
    description="Without `tenant_id`, lists the clients of all the app's tenants (spec D1).",
)
async def get_clients_across_tenants(
    app_id: CurrentAppId,
    services: ServicesDep,
    tenant_id: str | None = Query(None),
    type: Literal["device", "user"] | None = Query(None),
    secure: Flag | None = Query(None),
    state: StateFilter = "all",
    sort_by: SortBy = "created_at",
    sort_order: SortOrder = "asc",
) -> list[ClientOut]:
    return await _list_clients(services, app_id, tenant_id, type, secure, state, sort_by, sort_order)


@router.get(_CLIENT_PATH, response_model=ClientOut, responses=_ERRORS, summary="getSingleClient")
async def get_single_client(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    app_id: CurrentAppId,
    services: ServicesDep,
) -> ClientOut:
    return client_out(await services.clients.get_client(app_id, tenant_id, client_id), services)


@router.put(
    _CLIENT_PATH,
    response_model=ClientOut,
    responses=_ERRORS,
    summary="updateClient",
    description="Fields left out are unchanged. `blocked: true` disconnects the client and refuses its "
    'connections. Write-only fields sent as `"********"` keep their stored value.',
)
async def update_client(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    body: ClientUpdate,
    app_id: CurrentAppId,
    services: ServicesDep,
) -> ClientOut:
    changes = body.model_dump(exclude_unset=True)
    client = await services.clients.update_client(app_id, tenant_id, client_id, changes)
    return client_out(client, services)


@router.delete(
    _CLIENT_PATH,
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_ERRORS,
    summary="deleteClient",
)
async def delete_client(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    app_id: CurrentAppId,
    services: ServicesDep,
) -> Response:
    await services.clients.delete_client(app_id, tenant_id, client_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    _CLIENT_PATH + "/auth_token",
    response_model=AuthTokenOut,
    responses=_ERRORS,
    summary="getClientAuthToken",
    description="Only `user` clients: a `device` client's token is shown once, at creation or reset "
    "(403 `auth_token_not_retrievable`).",
)
async def get_client_auth_token(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    app_id: CurrentAppId,
    services: ServicesDep,
) -> AuthTokenOut:
    return AuthTokenOut(auth_token=await services.clients.get_auth_token(app_id, tenant_id, client_id))


@router.put(
    _CLIENT_PATH + "/reset_auth_token",
    response_model=AuthTokenOut,
    responses=_ERRORS,
    summary="updateClientAuthToken",
    description="Issues a new auth token; the old one stops working at once for new connections. An "
    "online client gets the raw token on `instamsg/clients/<U>/updateAuthToken` (QoS 1) and its existing "
    "connections are closed at most INSTAMSG_AUTH_TOKEN_RESET_DISCONNECT_SECONDS (default 30) later. "
    "Only the Java device library applies the pushed token by itself: other devices must be "
    "re-provisioned or reconfigured. Takes no body.",
)
async def update_client_auth_token(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    app_id: CurrentAppId,
    services: ServicesDep,
) -> AuthTokenOut:
    client = await services.clients.reset_auth_token(app_id, tenant_id, client_id)
    return AuthTokenOut(auth_token=client.auth_token)


class CertificateOut(ResponseModel):
    certificate: str = Field(description="PEM certificate, subject CN = the client id, signed by the CA.")
    key: str = Field(description="PEM RSA-2048 private key (PKCS#8); the server keeps no copy.")
    not_after: Timestamp
    sent: bool = Field(
        description="Whether updateCert was published now; false (status 202) when it waits for the "
        "client's next connect."
    )


@router.put(
    _CLIENT_PATH + "/reset_certificate",
    response_model=CertificateOut,
    responses=_ERRORS,
    summary="updateClientCertificate",
    description="Issues a new key and certificate for a client with secure_cert_enabled (409 "
    "secure_cert_not_enabled otherwise). It is published on instamsg/clients/<clientId>/updateCert now if "
    "the client is online, else on its next connect; the previous certificate stays accepted until the "
    "client first connects with the new one. 202 with `sent` false when the push waits for the next "
    "connect (C11).",
)
async def reset_client_certificate(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    app_id: CurrentAppId,
    services: ServicesDep,
    response: Response,
) -> CertificateOut:
    if services.certificates is None:
        raise ServiceUnavailable(
            "Certificates cannot be issued here: the server's certificate authority is not loaded."
        )
    issued = await services.certificates.reset_certificate(app_id, tenant_id, client_id)
    response.status_code = 200 if issued.pushed else 202
    return CertificateOut(
        certificate=issued.certificate_pem, key=issued.key_pem, not_after=issued.not_after, sent=issued.pushed
    )
