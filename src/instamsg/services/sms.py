"""Provisioning SMS for GSM devices (spec §5.7, S12).

createClient or updateClient with `gsm_send_sms` = "1" asks for an SMS to the SIM
(`gsm_isd_code` + `gsm_msisdn`) carrying the provisioning parameters. Sending goes through an
`SmsSender`; without one (the default) nothing is sent and the SMS text, with `prov_pin` and `sg_pass`
masked, is written to the client's log so an operator can see what would have gone out.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final, Protocol

from instamsg.domain.clients import Client
from instamsg.domain.clock import utc_now
from instamsg.protocol.payloads import SmsNotSendable, masked_sms_text, provisioning_sms_text
from instamsg.protocol.ports import CREATOR_SERVER, ClientLog, ServerLogOnly

logger = logging.getLogger(__name__)

SEND_SMS: Final = "1"


class SmsSender(Protocol):
    """An SMS gateway; `recipient` is the international number (`gsm_isd_code` + `gsm_msisdn`)."""

    async def send(self, recipient: str, text: str) -> None: ...


def sms_requested(params: dict[str, Any] | None) -> bool:
    return params is not None and params.get("gsm_send_sms") == SEND_SMS


class ProvisioningSms:
    """Builds the provisioning SMS of a client and sends it, or logs it when no gateway is configured."""

    def __init__(self, sender: SmsSender | None = None, log: ClientLog | None = None) -> None:
        self.sender = sender
        self.log: ClientLog = log if log is not None else ServerLogOnly()
        self._tasks: set[asyncio.Task[None]] = set()

    def request(self, client: Client) -> None:
        """Send (in the background) or log the provisioning SMS of a client whose parameters ask for one."""
        params = client.provisioning_params
        if not sms_requested(params):
            return
        assert params is not None
        now_epoch = int(utc_now().timestamp())
        masked = masked_sms_text(params, now_epoch)
        recipient = f"{params.get('gsm_isd_code') or ''}{params.get('gsm_msisdn') or ''}"
        try:
            text = provisioning_sms_text(params, now_epoch)
        except SmsNotSendable as error:
            self._error(
                client, f"Provisioning SMS not sent: {error.field_name} contains whitespace, '\"' or ','."
            )
            return
        if not params.get("gsm_msisdn"):
            self._error(client, "Provisioning SMS not sent: gsm_msisdn is not set.")
            return
        if self.sender is None:
            logger.info(
                "provisioning_sms not sent: no SMS gateway configured client=%s recipient=%s text=%s",
                client.id,
                recipient,
                masked,
            )
            self.log.write(
                client.id,
                client.tenant_id,
                "INFO",
                f"Provisioning SMS to {recipient} not sent (no SMS gateway configured): {masked}",
                creator=CREATOR_SERVER,
            )
            return
        task = asyncio.get_running_loop().create_task(self._send(client, recipient, text, masked))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, client: Client, recipient: str, text: str, masked: str) -> None:
        assert self.sender is not None
        try:
            await self.sender.send(recipient, text)
        except Exception as error:
            logger.exception("provisioning_sms_failed client=%s", client.id)
            self._error(client, f"Provisioning SMS to {recipient} failed: {type(error).__name__}.")
            return
        logger.info("provisioning_sms_sent client=%s recipient=%s", client.id, recipient)
        self.log.write(
            client.id,
            client.tenant_id,
            "INFO",
            f"Provisioning SMS sent to {recipient}: {masked}",
            creator=CREATOR_SERVER,
        )

    def _error(self, client: Client, message: str) -> None:
        logger.error("provisioning_sms_refused client=%s %s", client.id, message)
        self.log.write(client.id, client.tenant_id, "ERROR", message, creator=CREATOR_SERVER)

    async def drain(self) -> None:
        """Wait for SMS still being sent (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
