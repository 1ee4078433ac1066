"""Device commands: reboot, update_firmware and control_action (spec §2.7 S9, C11)."""

from __future__ import annotations

from fastapi import APIRouter, status

from instamsg.domain.errors import ServiceUnavailable
from instamsg.rest.dependencies import ClientIdPath, CurrentAppId, Services, ServicesDep, TenantIdPath
from instamsg.rest.schemas.commands import CommandSent, ControlActionCommand, FirmwareCommand
from instamsg.rest.schemas.common import ErrorBody
from instamsg.services.commands import CommandService, DeviceCommand

router = APIRouter(tags=["commands"])

_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 413, 415)
}
_CLIENT_PATH = "/tenants/{tenantId}/clients/{clientId}"
_OFFLINE = ' 202 `{"sent": false}` when the client is offline: nothing is queued for its next connect.'


def _commands(services: Services) -> CommandService:
    if services.commands is None:
        raise ServiceUnavailable("Device commands are not available in this process.")
    return services.commands


@router.post(
    _CLIENT_PATH + "/reboot",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CommandSent,
    responses=_ERRORS,
    summary="rebootClient",
    description="Publishes the reboot command (empty payload, QoS 1) on `instamsg/clients/<U>/reboot` "
    "(§12.4). Takes no body: an empty body, `{}` and any Content-Type are accepted." + _OFFLINE,
)
async def reboot(
    tenant_id: TenantIdPath, client_id: ClientIdPath, app_id: CurrentAppId, services: ServicesDep
) -> CommandSent:
    return CommandSent(
        sent=await _commands(services).send(app_id, tenant_id, client_id, DeviceCommand.REBOOT)
    )


@router.post(
    _CLIENT_PATH + "/update_firmware",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CommandSent,
    responses=_ERRORS,
    summary="updateClientFirmware",
    description="Publishes `payload` verbatim at QoS 1 on `instamsg/clients/<U>/update_firmware` (§12.5)."
    + _OFFLINE,
)
async def update_firmware(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    body: FirmwareCommand,
    app_id: CurrentAppId,
    services: ServicesDep,
) -> CommandSent:
    sent = await _commands(services).send(
        app_id, tenant_id, client_id, DeviceCommand.UPDATE_FIRMWARE, body.payload
    )
    return CommandSent(sent=sent)


@router.post(
    _CLIENT_PATH + "/control_action",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CommandSent,
    responses=_ERRORS,
    summary="sendControlAction",
    description="Publishes `payload` at QoS 1 on `instamsg/clients/<U>/controlaction` (§12.1): a string "
    "verbatim, an object as compact JSON text." + _OFFLINE,
)
async def control_action(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    body: ControlActionCommand,
    app_id: CurrentAppId,
    services: ServicesDep,
) -> CommandSent:
    sent = await _commands(services).send(
        app_id, tenant_id, client_id, DeviceCommand.CONTROL_ACTION, body.payload
    )
    return CommandSent(sent=sent)
