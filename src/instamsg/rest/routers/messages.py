"""Messages: publishMessage, getMessages, getSingleMessage (S8) and releaseMessage (spec §2.5.5-2.5.6)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status

from instamsg.domain.messages import HistoryMessage
from instamsg.protocol.payloads import parse_envelope
from instamsg.rest.dependencies import ClientIdPath, CurrentAppId, ServicesDep, TenantIdPath, api_prefix
from instamsg.rest.schemas.common import ErrorBody
from instamsg.rest.schemas.messages import MessageOut, MessagePage, MessagePublish, ReleaseOut

router = APIRouter(tags=["messages"])

_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 415, 422, 429)
}
_MESSAGES_PATH = "/tenants/{tenantId}/clients/{clientId}/messages"
MessageIdPath = Annotated[str, Path(alias="messageId", description="Message ID (a UUID).")]


def envelope_fields(message: HistoryMessage) -> dict[str, Any] | None:
    """For p2p: the envelope fields a lenient parse of the payload finds, null where it finds none."""
    if message.type != "p2p":
        return None
    envelope = parse_envelope(message.payload)
    return {
        "message_id": envelope.message_id,
        "response_id": envelope.response_id,
        "reply_to": envelope.reply_to,
        "status": envelope.status,
    }


def message_out(message: HistoryMessage, client_id: str) -> MessageOut:
    return MessageOut.model_validate(
        {
            "id": message.id,
            "tenant_id": message.tenant_id,
            "client_id": message.client_id,
            "type": message.type,
            "topic": message.topic,
            "payload": message.payload,
            "qos": message.qos,
            "client_message_id": message.client_message_id,
            "duplicate": message.duplicate,
            "saved": message.saved,
            "source": message.source,
            "direction": "sent" if message.client_id == client_id.lower() else "received",
            "envelope": envelope_fields(message),
            "delivered_to": message.delivered_to,
            "created_at": message.created_at,
            "releases": [ReleaseOut.model_validate(release) for release in message.releases],
        }
    )


@router.post(
    _MESSAGES_PATH,
    status_code=status.HTTP_201_CREATED,
    response_model=MessageOut,
    responses={**_ERRORS, 201: {"headers": {"Location": {"description": "Path of the message."}}}},
    summary="publishMessage",
    description="Publishes on behalf of the client: its pub_topics and its tenant's message budget apply "
    "(429 `tenant_message_quota_exceeded`, nothing delivered). With `save` (the default) the answer "
    "comes after the message is stored. `type: p2p` sends to the inbox of the client whose UUID is the "
    "`topic` (same tenant, else 422 `unknown_peer`; pub_topics are not consulted): a payload that is "
    "already an envelope (a JSON object with `message_id` and `reply_to`) goes verbatim, any other is "
    'wrapped as `{"message_id": "<id>", "reply_to": "<clientId>", "body": "<payload>"}` with '
    "`id` or a per-client counter (1-65535). `duplicate` sets DUP on deliveries at MQTT QoS 1 and 2.",
)
async def publish_message(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    body: MessagePublish,
    request: Request,
    response: Response,
    app_id: CurrentAppId,
    services: ServicesDep,
) -> MessageOut:
    message = await services.messages.publish(
        app_id, tenant_id, client_id, body.model_dump(exclude_unset=True)
    )
    response.headers["Location"] = (
        f"{api_prefix(request)}/tenants/{message.tenant_id}/clients/{message.client_id}/messages/{message.id}"
    )
    return message_out(message, message.client_id)


@router.get(
    _MESSAGES_PATH,
    response_model=MessagePage,
    responses=_ERRORS,
    summary="getMessages",
    description="The messages the client published (`direction: sent`) and the p2p messages addressed "
    "to it (`direction: received`), newest first.",
)
async def get_messages(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    app_id: CurrentAppId,
    services: ServicesDep,
    start: str | None = Query(None, description="Epoch s or ms, 'YYYY-MM-DD HH:MM:SS' or ISO 8601."),
    end: str | None = Query(None, description="Inclusive upper bound, same forms as start."),
    type: Literal["pub", "p2p"] | None = Query(None),
    sort_order: Literal["asc", "desc"] = Query("desc", description="Newest first by default."),
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, description="next_cursor of the previous page (same filters)."),
) -> MessagePage:
    page = await services.messages.list_messages(
        app_id,
        tenant_id,
        client_id,
        start=start,
        end=end,
        message_type=type,
        descending=sort_order == "desc",
        limit=limit,
        cursor=cursor,
    )
    return MessagePage(
        items=[message_out(item, client_id) for item in page.items], next_cursor=page.next_cursor
    )


@router.get(
    _MESSAGES_PATH + "/{messageId}", response_model=MessageOut, responses=_ERRORS, summary="getSingleMessage"
)
async def get_single_message(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    message_id: MessageIdPath,
    app_id: CurrentAppId,
    services: ServicesDep,
) -> MessageOut:
    message = await services.messages.get_message(app_id, tenant_id, client_id, message_id)
    return message_out(message, client_id)


@router.put(
    _MESSAGES_PATH + "/{messageId}/release",
    response_model=MessageOut,
    responses=_ERRORS,
    summary="releaseMessage",
    description="Re-delivers a stored message as first published (ACLs re-checked, charged to the "
    "budget) and records the release. Takes no body.",
)
async def release_message(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    message_id: MessageIdPath,
    app_id: CurrentAppId,
    services: ServicesDep,
) -> MessageOut:
    message = await services.messages.release(app_id, tenant_id, client_id, message_id)
    return message_out(message, client_id)
