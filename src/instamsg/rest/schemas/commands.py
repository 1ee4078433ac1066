"""Device command bodies and answers (spec §2.7)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from instamsg.rest.schemas.common import RequestModel, ResponseModel, Text


class FirmwareCommand(RequestModel):
    payload: Text = Field(description="Published verbatim on update_firmware (§12.5).")


class ControlActionCommand(RequestModel):
    payload: Text | dict[str, Any] = Field(
        description="A bare command string, or a JSON object sent as compact JSON text (§12.1)."
    )


class CommandSent(ResponseModel):
    sent: bool = Field(description="False when the client is offline: nothing is queued for it.")
