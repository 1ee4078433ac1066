"""Server commands to devices and the correlation of their replies (spec §7.3, §7.4, S14).

A command is sent on one of the device's server→device topics with a `message_id` from a per-client
counter (at most 5 digits, for C's 6-byte buffer) and `"reply_to": "instamsg/clients/<U>/reply"`.
The device publishes its reply there; it is matched by (publishing client, `response_id`), resolves
the waiting future, and is never forwarded nor charged (DeviceProtocol consumes reserved topics).
Replies after the timeout are logged and ignored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from instamsg.protocol.payloads import Envelope, MessageIdCounter, parse_envelope
from instamsg.protocol.topics import SpecialTopic, TopicKind, client_topic

if TYPE_CHECKING:
    from instamsg.broker.channel import Channel
    from instamsg.broker.message import Message
    from instamsg.protocol.plugin import DeviceProtocol

logger = logging.getLogger(__name__)

DEFAULT_COMMAND_TIMEOUT_SECONDS = 60.0

# Builds the payload from the message id and the reply_to topic.
PayloadBuilder = Callable[[int, str], bytes]


class CommandTimeout(Exception):
    """The device did not reply to a server command in time."""


@dataclass(frozen=True, slots=True)
class CommandReply:
    envelope: Envelope
    payload: bytes

    @property
    def succeeded(self) -> bool:
        """`"status": 1` (a number or the text "1"); anything else, or none, is a failure."""
        status = self.envelope.status
        return status == 1 or (isinstance(status, str) and status.strip() == "1")


# Our ids have at most 5 digits; a device may pad them, but not to thousands of digits.
MAX_ID_DIGITS = 10


def _correlation_id(identifier: str) -> str:
    # C formats ids back from an atoi'd int, so "007" and "7" are the same command. ASCII digits only:
    # `isdigit` also accepts "²", which `int` refuses.
    text = identifier.strip()
    if text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS:
        return str(int(text))
    return text


class ServerCommands:
    def __init__(self, devices: DeviceProtocol, *, timeout: float = DEFAULT_COMMAND_TIMEOUT_SECONDS) -> None:
        self.devices = devices
        self.timeout = timeout
        self._counters: dict[str, MessageIdCounter] = {}
        self._pending: dict[tuple[str, str], asyncio.Future[CommandReply]] = {}
        self._installed = False

    def install(self) -> None:
        if not self._installed:
            self.devices.on_device_message(TopicKind.REPLY, self._on_reply)
            self._installed = True

    def _next_id(self, client_uuid: str) -> int:
        counter = self._counters.get(client_uuid)
        if counter is None:
            counter = self._counters[client_uuid] = MessageIdCounter()
        # Skip ids still awaiting a reply (only possible with 65535 commands in flight).
        for _ in range(65535):
            message_id = counter.next_id()
            if (client_uuid, str(message_id)) not in self._pending:
                return message_id
        raise RuntimeError("too many commands awaiting a reply")

    def send(
        self, client_uuid: str, kind: TopicKind, build: PayloadBuilder, qos: int = 1
    ) -> asyncio.Future[CommandReply] | None:
        """Send a command; the future resolves with the reply or fails with CommandTimeout.

        None when the client is not connected (nothing sent). `build` may raise ValueError for a
        payload it cannot make; nothing is sent then."""
        client_uuid = client_uuid.lower()
        message_id = self._next_id(client_uuid)
        payload = build(message_id, client_topic(client_uuid, TopicKind.REPLY))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[CommandReply] = loop.create_future()
        key = (client_uuid, str(message_id))
        self._pending[key] = future
        if not self.devices.push(client_uuid, kind, payload, qos):
            del self._pending[key]
            return None
        timer = loop.call_later(self.timeout, self._expire, key, future)
        future.add_done_callback(lambda _: timer.cancel())
        return future

    async def request(
        self, client_uuid: str, kind: TopicKind, build: PayloadBuilder, qos: int = 1
    ) -> CommandReply | None:
        """Send and wait: the reply, None when not connected; CommandTimeout without a reply."""
        future = self.send(client_uuid, kind, build, qos)
        return None if future is None else await future

    def _expire(self, key: tuple[str, str], future: asyncio.Future[CommandReply]) -> None:
        if self._pending.get(key) is future:
            del self._pending[key]
        if not future.done():
            future.set_exception(CommandTimeout(f"no reply from {key[0]} to command {key[1]}"))

    def _on_reply(self, channel: Channel, special: SpecialTopic, message: Message) -> None:
        client_uuid = channel.client_uuid or special.client_uuid
        payload = bytes(message.payload)
        envelope = parse_envelope(payload)
        if client_uuid is None or envelope.response_id is None:
            logger.info("command_reply_unmatched client=%s response_id=None", client_uuid)
            return
        key = (client_uuid.lower(), _correlation_id(envelope.response_id))
        future = self._pending.pop(key, None)
        if future is None or future.done():
            logger.info("command_reply_late_or_unknown client=%s response_id=%.64s", key[0], key[1])
            return
        future.set_result(CommandReply(envelope, payload))

    def close(self) -> None:
        """Fail every command still waiting (shutdown)."""
        pending = list(self._pending.values())
        self._pending.clear()
        for future in pending:
            if not future.done():
                future.set_exception(CommandTimeout("the server is stopping"))
