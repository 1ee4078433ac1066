"""Device commands (spec §2.7 S9, §12.1, §12.4, §12.5): reboot, update_firmware and control_action.

Each publishes one message at QoS 1 (S13) on the client's `instamsg/clients/<U>/<kind>` topic if the
client is connected now; nothing is queued for an offline client (C11: `sent` is false). Server pushes
are not charged to the tenant's message budget (§6.4).
"""

from __future__ import annotations

import json
import logging
from enum import StrEnum
from typing import Any

from instamsg.domain.errors import PayloadTooLarge, ValidationFailed
from instamsg.services.lookup import find_client
from instamsg.services.ports import DevicePushes
from instamsg.store.store import Store

logger = logging.getLogger(__name__)

COMMAND_QOS = 1


class DeviceCommand(StrEnum):
    """The command and the topic kind it is published on (`protocol.topics.TopicKind` values)."""

    REBOOT = "reboot"
    UPDATE_FIRMWARE = "update_firmware"
    CONTROL_ACTION = "controlaction"


def command_payload(command: DeviceCommand, payload: Any) -> bytes:
    """The bytes published: reboot sends none; firmware takes text; a control action takes text or a
    JSON object (sent as compact JSON text). Other types get 400 `validation_failed`."""
    if command is DeviceCommand.REBOOT:
        return b""
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if command is DeviceCommand.CONTROL_ACTION and isinstance(payload, dict):
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    accepted = "a string or a JSON object" if command is DeviceCommand.CONTROL_ACTION else "a string"
    raise ValidationFailed(f"payload must be {accepted}.", details={"field": "payload"})


class CommandService:
    def __init__(self, store: Store, pushes: DevicePushes, *, max_payload_bytes: int = 262_144):
        self.store = store
        self.pushes = pushes
        self.max_payload_bytes = max_payload_bytes

    async def send(
        self, app_id: str, tenant_id: str, client_id: str, command: DeviceCommand, payload: Any = None
    ) -> bool:
        """Publish the command to the client; True if it was connected and handed the message."""
        async with self.store.read() as connection:
            client = await find_client(connection, app_id, tenant_id, client_id)
        data = command_payload(command, payload)
        if len(data) > self.max_payload_bytes:
            raise PayloadTooLarge(
                f"The payload is {len(data)} bytes; the limit is {self.max_payload_bytes}.",
                details={"field": "payload", "max_bytes": self.max_payload_bytes},
            )
        sent = self.pushes.push(client.id, command.value, data, COMMAND_QOS)
        logger.info("device_command client=%s command=%s sent=%s", client.id, command.value, sent)
        return sent
