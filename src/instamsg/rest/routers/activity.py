"""Client activity: getClientSessions, getClientLogs, getClientMetrics and `PUT C/server_logging`
(spec §2.3, §2.4.5, §2.4.7, §2.7)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field, Strict

from instamsg.domain.clock import utc_now
from instamsg.domain.errors import ServiceUnavailable
from instamsg.rest.dependencies import ClientIdPath, CurrentAppId, Services, ServicesDep, TenantIdPath
from instamsg.rest.schemas.common import ErrorBody, Flag, RequestModel, ResponseModel, Timestamp
from instamsg.services.activity import ActivityService
from instamsg.store.repositories.activity import LogRecord, SessionRecord

router = APIRouter(tags=["activity"])

_ERRORS: dict[int | str, dict[str, object]] = {code: {"model": ErrorBody} for code in (400, 401, 404, 415)}
_CLIENT_PATH = "/tenants/{tenantId}/clients/{clientId}"


class SessionOut(ResponseModel):
    id: str
    connect_time: Timestamp
    disconnect_time: Timestamp | None = Field(description="null while connected.")
    duration_seconds: int = Field(description="Until the disconnect, or until now while connected.")
    transport: Literal["tcp", "tls", "ws", "wss"]
    remote_address: str
    protocol: str = Field(examples=["MQIsdp/3", "MQTT/4", "MQTT/5"])
    profile: str
    client_identifier: str = Field(description="The raw MQTT ClientIdentifier, for diagnosis only.")
    keep_alive: int
    clean_session: bool
    disconnect_reason: str | None
    data: dict[str, Any] | None = Field(description="The normalised session payload of this connection.")


class SessionPage(ResponseModel):
    items: list[SessionOut]
    next_cursor: str | None


class LogOut(ResponseModel):
    time: Timestamp
    level: Literal["DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
    creator: Literal["InstaMsg", "client"]
    message: str


class LogPage(ResponseModel):
    items: list[LogOut]
    next_cursor: str | None


class MetricsBucket(ResponseModel):
    start: Timestamp
    messages_sent: int
    messages_received: int
    p2p_sent: int
    p2p_received: int
    bytes_in: int
    bytes_out: int
    connects: int
    disconnects: int
    online_seconds: int
    errors: int


class MetricsTotals(ResponseModel):
    messages_sent: int
    messages_received: int
    p2p_sent: int
    p2p_received: int
    bytes_in: int
    bytes_out: int
    connects: int
    disconnects: int
    online_seconds: int
    errors: int


class MetricsOut(ResponseModel):
    interval: Literal["day", "month"]
    start: Timestamp
    end: Timestamp
    totals: MetricsTotals
    buckets: list[MetricsBucket]


class ServerLoggingIn(RequestModel):
    """Optional here so that an unknown tenant or client is reported first (404)."""

    enabled: Flag | None = Field(None, description="Required: start (true) or stop (false) remote logging.")
    duration_seconds: Annotated[int, Strict()] | None = Field(
        None, description="How long logging stays on; default 600 s."
    )


class ServerLoggingOut(ResponseModel):
    enabled: bool
    until: Timestamp | None


def _activity(services: Services) -> ActivityService:
    activity: ActivityService | None = services.activity
    if activity is None:
        raise ServiceUnavailable("Client activity is not available on this server.")
    return activity


def session_out(session: SessionRecord, now: datetime) -> SessionOut:
    finished = session.disconnect_time if session.disconnect_time is not None else now
    return SessionOut(
        id=session.id,
        connect_time=session.connect_time,
        disconnect_time=session.disconnect_time,
        duration_seconds=max(0, round((finished - session.connect_time).total_seconds())),
        transport=session.transport,
        remote_address=session.remote_address,
        protocol=session.protocol,
        profile=session.profile,
        client_identifier=session.client_identifier,
        keep_alive=session.keep_alive,
        clean_session=session.clean_session,
        disconnect_reason=session.disconnect_reason,
        data=session.data,
    )


def log_out(entry: LogRecord) -> LogOut:
    return LogOut(
        time=entry.time,
        level=entry.level,
        creator=entry.creator,
        message=entry.message,
    )


@router.get(
    _CLIENT_PATH + "/sessions", response_model=SessionPage, responses=_ERRORS, summary="getClientSessions"
)
async def get_client_sessions(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    app_id: CurrentAppId,
    services: ServicesDep,
    start: str | None = Query(None, description="Epoch s or ms, 'YYYY-MM-DD HH:MM:SS' or ISO 8601."),
    end: str | None = Query(None, description="Inclusive upper bound, same forms as start."),
    sort_by: str = Query("connect_time", description="connect_time (default) or disconnect_time."),
    sort_order: Literal["asc", "desc"] = Query("desc", description="Newest first by default."),
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, description="next_cursor of the previous page (same filters)."),
) -> SessionPage:
    page = await _activity(services).list_sessions(
        app_id,
        tenant_id,
        client_id,
        start=start,
        end=end,
        sort_by=sort_by,
        descending=sort_order == "desc",
        limit=limit,
        cursor=cursor,
    )
    now = utc_now()
    return SessionPage(items=[session_out(item, now) for item in page.items], next_cursor=page.next_cursor)


@router.get(_CLIENT_PATH + "/logs", response_model=LogPage, responses=_ERRORS, summary="getClientLogs")
async def get_client_logs(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    app_id: CurrentAppId,
    services: ServicesDep,
    start: str | None = Query(None, description="Epoch s or ms, 'YYYY-MM-DD HH:MM:SS' or ISO 8601."),
    end: str | None = Query(None, description="Inclusive upper bound, same forms as start."),
    level: str | None = Query(None, description="DEBUG, INFO, WARN, ERROR or FATAL."),
    creator: str | None = Query(None, description="InstaMsg (the server) or client (the device)."),
    sort_order: Literal["asc", "desc"] = Query("desc", description="Newest first by default."),
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, description="next_cursor of the previous page (same filters)."),
) -> LogPage:
    page = await _activity(services).list_logs(
        app_id,
        tenant_id,
        client_id,
        start=start,
        end=end,
        level=level,
        creator=creator,
        descending=sort_order == "desc",
        limit=limit,
        cursor=cursor,
    )
    return LogPage(items=[log_out(item) for item in page.items], next_cursor=page.next_cursor)


@router.get(
    _CLIENT_PATH + "/metrics", response_model=MetricsOut, responses=_ERRORS, summary="getClientMetrics"
)
async def get_client_metrics(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    app_id: CurrentAppId,
    services: ServicesDep,
    interval: str = Query("day", description="day (24 hourly buckets) or month (30 daily buckets)."),
) -> MetricsOut:
    metrics = await _activity(services).metrics(app_id, tenant_id, client_id, interval)
    return MetricsOut.model_validate(metrics)


@router.put(
    _CLIENT_PATH + "/server_logging",
    response_model=ServerLoggingOut,
    responses=_ERRORS,
    summary="updateServerLogging",
    description="Starts or stops remote logging of the device (spec §9.1): a connected device is sent "
    '`{"client_id": "<your app id>", "logging": "1"}` now and on every connect until `until`, then "0".',
)
async def put_server_logging(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    body: ServerLoggingIn,
    app_id: CurrentAppId,
    services: ServicesDep,
) -> ServerLoggingOut:
    state = await _activity(services).set_server_logging(
        app_id, tenant_id, client_id, enabled=body.enabled, duration_seconds=body.duration_seconds
    )
    return ServerLoggingOut(enabled=state.enabled, until=state.until)
