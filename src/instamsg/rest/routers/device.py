"""Device data: getClientInfo, getClientNetworkLogs and the config operations (spec §2.4.5, §2.4.6, §8.4)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Query, Response
from pydantic import Field

from instamsg.domain.errors import ServiceUnavailable
from instamsg.rest.dependencies import ClientIdPath, CurrentAppId, Services, ServicesDep, TenantIdPath
from instamsg.rest.schemas.common import ErrorBody, ResponseModel
from instamsg.services.configs import ConfigService
from instamsg.services.telemetry import TelemetryService

router = APIRouter(tags=["device data"])

_ERRORS: dict[int | str, dict[str, object]] = {code: {"model": ErrorBody} for code in (400, 401, 404)}
_CONFIG_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 413, 415, 422)
}
_CLIENT_PATH = "/tenants/{tenantId}/clients/{clientId}"


def _telemetry(services: Services) -> TelemetryService:
    if services.telemetry is None:
        raise ServiceUnavailable("Device data is not available in this process.")
    return services.telemetry


def _configs(services: Services) -> ConfigService:
    if services.configs is None:
        raise ServiceUnavailable("Config sync is not available in this process.")
    return services.configs


class LibraryOut(ResponseModel):
    name: Literal["python", "c", "java", "js", "telit", "unknown"]
    version: str | None


class InfoOut(ResponseModel):
    client_id: str
    state: str
    profile: str | None
    library: LibraryOut
    info: dict[str, Any]
    info_updated_at: str | None
    session: dict[str, Any] | None
    network: dict[str, Any] | None
    last_connect_at: str | None
    last_disconnect_at: str | None


class NetworkLogOut(ResponseModel):
    time: str
    network_interface: str | None
    antenna_status: str | None
    signal_strength: int | None
    mac_id: str | None
    imei: str | None
    msisdn: str | None
    iccid: str | None
    source_topic: str
    data: dict[str, Any]


class NetworkLogPageOut(ResponseModel):
    items: list[NetworkLogOut]
    next_cursor: str | None


class ConfigSideOut(ResponseModel):
    values: dict[str, Any]
    version: int
    updated_at: str | None


class ConfigOut(ResponseModel):
    config: dict[str, Any]
    desired: ConfigSideOut
    reported: ConfigSideOut
    version: int
    pending: list[str]


class ConfigUpdateOut(ConfigOut):
    sent: bool = Field(
        description="False (with status 202) when a changed key waits for the device's next connect."
    )


@router.get(
    _CLIENT_PATH + "/info",
    response_model=InfoOut,
    responses=_ERRORS,
    summary="getClientInfo",
    description="The latest info and metadata the device reported (merged), its latest session and network "
    "reports, and the device library guessed from them.",
)
async def get_client_info(
    tenant_id: TenantIdPath, client_id: ClientIdPath, app_id: CurrentAppId, services: ServicesDep
) -> dict[str, Any]:
    return await _telemetry(services).get_info(app_id, tenant_id, client_id)


@router.get(
    _CLIENT_PATH + "/network_logs",
    response_model=NetworkLogPageOut,
    responses=_ERRORS,
    summary="getClientNetworkLogs",
)
async def get_client_network_logs(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    app_id: CurrentAppId,
    services: ServicesDep,
    start: str | None = Query(None, description="Epoch s or ms, 'YYYY-MM-DD HH:MM:SS' or ISO 8601."),
    end: str | None = Query(None, description="Inclusive upper bound, same forms as start."),
    mac_id: str | None = Query(None, description="Exact MAC, compared without case and separators."),
    imei: str | None = Query(None),
    msisdn: str | None = Query(None),
    iccid: str | None = Query(None),
    sort_by: Literal["time"] = Query("time"),
    sort_order: Literal["asc", "desc"] = Query("desc", description="Newest first by default."),
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, description="next_cursor of the previous page (same filters)."),
) -> dict[str, Any]:
    page = await _telemetry(services).list_network_logs(
        app_id,
        tenant_id,
        client_id,
        start=start,
        end=end,
        mac_id=mac_id,
        imei=imei,
        msisdn=msisdn,
        iccid=iccid,
        descending=sort_order == "desc",
        limit=limit,
        cursor=cursor,
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get(_CLIENT_PATH + "/config", response_model=ConfigOut, responses=_ERRORS, summary="getClientConfig")
async def get_client_config(
    tenant_id: TenantIdPath, client_id: ClientIdPath, app_id: CurrentAppId, services: ServicesDep
) -> dict[str, Any]:
    return await _configs(services).get_config(app_id, tenant_id, client_id)


@router.put(
    _CLIENT_PATH + "/config",
    response_model=ConfigUpdateOut,
    summary="updateClientConfig",
    description="Merges the keys into the desired config (a null value removes a key) and pushes each "
    "changed key to the device, now if it is online, else on its next connect. The body is "
    '`{"config": {...}}` or the config object itself. Object and array values reach C and Java devices '
    "as JSON text they cannot parse. 202 with `sent` false when the client is offline: the keys stay "
    "pending and are pushed on its next connect.",
    responses={
        **_CONFIG_ERRORS,
        202: {"model": ConfigUpdateOut, "description": "Pushes wait for the next connect."},
    },
)
async def update_client_config(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    app_id: CurrentAppId,
    services: ServicesDep,
    response: Response,
    body: Any = Body(..., examples=[{"config": {"PING_REQ_INTERVAL": 120}}]),
) -> dict[str, Any]:
    state = await _configs(services).update_config(app_id, tenant_id, client_id, body)
    response.status_code = 200 if state["sent"] else 202
    return state


@router.delete(
    _CLIENT_PATH + "/config",
    response_model=ConfigOut,
    responses=_ERRORS,
    summary="deleteClientConfig",
    description="Clears the desired config. Nothing is pushed: devices cannot delete a key.",
)
async def delete_client_config(
    tenant_id: TenantIdPath, client_id: ClientIdPath, app_id: CurrentAppId, services: ServicesDep
) -> dict[str, Any]:
    return await _configs(services).delete_config(app_id, tenant_id, client_id)
