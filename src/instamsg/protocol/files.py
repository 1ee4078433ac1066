"""File commands to devices (spec §10.1) over the server-command channel (§7.4).

`FileCommandSender` is what the file service's `DeviceFileCommands` port is wired to.
"""

from __future__ import annotations

import logging

from instamsg.protocol.commands import CommandReply, CommandTimeout, ServerCommands
from instamsg.protocol.payloads import file_command_payload, parse_lenient
from instamsg.protocol.topics import TopicKind

logger = logging.getLogger(__name__)

# §10.1: commands go out at QoS 1.
FILE_COMMAND_QOS = 1


class FileCommandSender:
    def __init__(self, commands: ServerCommands) -> None:
        self.commands = commands

    async def send(
        self, client_id: str, method: str, filename: str | None = None, url: str | None = None
    ) -> CommandReply | None:
        """The device's reply; None when it is not connected. CommandTimeout without a reply."""

        def build(message_id: int, reply_to: str) -> bytes:
            return file_command_payload(message_id, reply_to, method, filename, url)

        return await self.commands.request(client_id, TopicKind.FILES, build, FILE_COMMAND_QOS)

    async def file_command(
        self, client_id: str, method: str, filename: str | None = None, url: str | None = None
    ) -> bool | None:
        try:
            reply = await self.send(client_id, method, filename, url)
        except CommandTimeout:
            logger.info("file_command_timeout client=%s method=%s", client_id, method)
            return False
        return None if reply is None else reply.succeeded

    async def list_device_files(self, client_id: str) -> dict[str, int] | None:
        """`GET` without filename: the device's `{"files": {name: size}}`; None if offline or no list."""
        reply = await self.send(client_id, "GET")
        if reply is None:
            return None
        files = parse_lenient(reply.payload).get("files")
        if not isinstance(files, dict):
            return None
        return {str(name): size for name, size in files.items() if isinstance(size, int)}
