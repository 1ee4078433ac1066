"""Configuration sync on the device side (spec §8.2, §8.3, D7, S13).

- Device reports on `config/clientToServer` (per-key C/Java form or whole-object Python/Telit form)
  update the reported config.
- The device's PUBACK of a config push acknowledges that key's desired value.
- On connect, after a short delay that lets the device send its own initial reports first (§4.5), every
  key still pending and unacknowledged is pushed again.

The hook callbacks run on the broker's hot path: they only parse and queue. One worker task applies the
queued operations in arrival order (a report and the PUBACK of the push it echoes stay ordered), each in
its own transaction through the `ConfigService`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from instamsg.broker.hooks import HookPoint, Priority
from instamsg.protocol.payloads import ConfigReport, parse_config_report
from instamsg.protocol.topics import SpecialTopic, TopicKind, client_topic
from instamsg.services.configs import ConfigService

if TYPE_CHECKING:
    from instamsg.broker.channel import Channel
    from instamsg.broker.message import Message
    from instamsg.broker.timers import Timer
    from instamsg.protocol.plugin import DeviceProtocol

logger = logging.getLogger(__name__)

_PUSH_SUFFIX = "/" + TopicKind.CONFIG_PUSH.value


@dataclass(frozen=True, slots=True)
class _Report:
    client_id: str
    report: ConfigReport


@dataclass(frozen=True, slots=True)
class _Acknowledgement:
    client_id: str
    key: str
    value_text: str


@dataclass(frozen=True, slots=True)
class _ConnectPush:
    client_id: str
    tenant_id: str
    channel: Channel  # the connection the push is for: none is sent once another one took over


_Operation = _Report | _Acknowledgement | _ConnectPush


class ConfigSync:
    def __init__(
        self,
        devices: DeviceProtocol,
        service: ConfigService,
        *,
        push_on_connect_delay: float = 2.0,
        max_pending: int = 100_000,
        close_timeout: float = 5.0,
    ) -> None:
        self.devices = devices
        self.service = service
        self.push_on_connect_delay = push_on_connect_delay
        self.max_pending = max_pending
        self.close_timeout = close_timeout
        self.dropped_operations = 0
        self._queue: asyncio.Queue[_Operation] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        # Connections waiting for their push-on-connect delay, oldest first (see `on_connected`).
        self._waiting_deadlines: deque[float] = deque()
        self._waiting_channels: deque[Channel] = deque()
        self._waiting_timer: Timer | None = None

    # ---------------------------------------------------------------------------------------------- hooks

    def on_report(self, channel: Channel, special: SpecialTopic, message: Message) -> None:
        report = parse_config_report(message.payload)
        if report.form == "unparsed":
            channel.node.throttled_warning(
                ("config_report_unparsable", channel.client_uuid),
                "config_report_unparsable client=%s topic=%s bytes=%d",
                channel.client_uuid,
                message.topic,
                len(message.payload),
            )
            return
        self._enqueue(_Report(channel.client_uuid, report))

    def on_acked(self, client_uuid: str, message: Message) -> None:
        # Every acknowledged delivery of the node passes here: the cheap suffix test comes first.
        topic = message.topic
        if not topic.endswith(_PUSH_SUFFIX) or topic != client_topic(client_uuid, TopicKind.CONFIG_PUSH):
            return
        try:
            pushed = json.loads(message.payload)
            key, value_text = pushed["key"], pushed["val"]
        except (ValueError, TypeError, KeyError):
            return  # not one of our pushes (e.g. published there by another server component)
        if isinstance(key, str) and isinstance(value_text, str):
            self._enqueue(_Acknowledgement(client_uuid, key, value_text))

    def on_connected(self, channel: Channel) -> None:
        if self._closed or not channel.client_uuid:
            return
        # Every connect waits the same delay, so the waiting channels queue up in deadline order and one
        # timer of the node's wheel serves them all: a connection costs two deque entries while it
        # waits, not a timer, a callback and an operation (reconnect storms and idle fleets stay cheap).
        wheel = self.devices.node.wheel
        self._waiting_deadlines.append(wheel.now() + self.push_on_connect_delay)
        self._waiting_channels.append(channel)
        if self._waiting_timer is None:
            self._waiting_timer = wheel.schedule(self.push_on_connect_delay, self._push_due)

    # ---------------------------------------------------------------------------------------------- worker

    def _is_current(self, operation: _ConnectPush) -> bool:
        return self.devices.node.channels.get(operation.client_id) is operation.channel

    def _push_due(self) -> None:
        """Queue the connect push of every channel whose delay is over and which is still current."""
        self._waiting_timer = None
        deadlines = self._waiting_deadlines
        channels = self._waiting_channels
        wheel = self.devices.node.wheel
        now = wheel.now()
        while deadlines and deadlines[0] <= now:
            deadlines.popleft()
            channel = channels.popleft()
            operation = _ConnectPush(channel.client_uuid, channel.tenant_id, channel)
            if not self._closed and self._is_current(operation):
                self._enqueue(operation)
        if self._closed:
            deadlines.clear()
            channels.clear()
        elif deadlines:
            self._waiting_timer = wheel.schedule(deadlines[0] - now, self._push_due)

    def _enqueue(self, operation: _Operation) -> None:
        if self._closed:
            return
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._queue.qsize() >= self.max_pending:
            self.dropped_operations += 1
            if self.dropped_operations % 10_000 == 1:
                logger.warning("config_operations_dropped total=%d", self.dropped_operations)
            return
        self._queue.put_nowait(operation)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work(), name="config-sync")

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            operation = await self._queue.get()
            try:
                await self._apply(operation)
            except Exception:
                logger.exception("config_operation_failed operation=%r", type(operation).__name__)
            finally:
                self._queue.task_done()

    async def _apply(self, operation: _Operation) -> None:
        if isinstance(operation, _Report):
            await self.service.record_report(operation.client_id, operation.report)
        elif isinstance(operation, _Acknowledgement):
            await self.service.acknowledge(operation.client_id, operation.key, operation.value_text)
        elif self._is_current(operation):
            sent = await self.service.push_unacknowledged(operation.client_id, operation.tenant_id)
            if sent:
                logger.info("config_pushed_on_connect client=%s keys=%s", operation.client_id, ",".join(sent))

    async def drain(self) -> None:
        """Wait until every queued operation is applied (tests, shutdown)."""
        if self._queue is not None and self._worker is not None and not self._worker.done():
            await self._queue.join()

    async def close(self) -> None:
        """Stop accepting work, apply what is queued (for at most `close_timeout` s), stop the worker."""
        self._closed = True
        if self._waiting_timer is not None:
            self._waiting_timer.cancel()
            self._waiting_timer = None
        self._waiting_deadlines.clear()
        self._waiting_channels.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), self.close_timeout)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker


def install_config_sync(
    devices: DeviceProtocol, service: ConfigService, *, push_on_connect_delay: float = 2.0
) -> ConfigSync:
    """Register the config report handler and the PUBACK and connect hooks."""
    sync = ConfigSync(devices, service, push_on_connect_delay=push_on_connect_delay)
    devices.on_device_message(TopicKind.CONFIG_REPORT, sync.on_report)
    hooks = devices.node.hooks
    hooks.add(HookPoint.MESSAGE_ACKED, sync.on_acked, Priority.NORMAL)
    hooks.add(HookPoint.CLIENT_CONNECTED, sync.on_connected, Priority.LOW)
    return sync
