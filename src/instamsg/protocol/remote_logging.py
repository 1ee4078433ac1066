"""Remote (server-controlled) logging on the broker side (spec §9.1, §2.7, S16).

`RemoteLogging` keeps each client's request (`until`, watcher = the requesting app's id) in memory,
as loaded from storage at start and changed by `PUT C/server_logging` through the services' port
(`server_logging_changed`). It sends `{"client_id": "<watcher>", "logging": "1"}` at QoS 0:
- at once when the request is made and the client is connected;
- on every connect while `until` lies in the future (legacy profiles receive it implicitly; a standard
  client receives it when it subscribes to its `enableServerLogging` topic, or on connect when its
  persistent session already holds such a subscription);
and `"0"` when the request is withdrawn or `until` passes while the client is connected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from instamsg.broker.hooks import HookPoint, Priority
from instamsg.domain.clock import utc_now
from instamsg.mqtt.topics import matches
from instamsg.protocol.payloads import logging_command_payload
from instamsg.protocol.topics import TopicKind, client_topic

if TYPE_CHECKING:
    from instamsg.broker.channel import Channel
    from instamsg.protocol.plugin import DeviceProtocol

logger = logging.getLogger(__name__)

LOGGING_QOS = 0


class RemoteLogging:
    def __init__(self, devices: DeviceProtocol, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.devices = devices
        self.clock = clock
        self.requests: dict[str, tuple[datetime, str]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def install(self) -> None:
        hooks = self.devices.node.hooks
        hooks.add(HookPoint.CLIENT_CONNECTED, self._connected, Priority.LOW)
        hooks.add(HookPoint.SESSION_SUBSCRIBED, self._subscribed, Priority.LOW)

    def load(self, requests: Iterable[tuple[str, datetime, str]]) -> None:
        """Requests `(client_id, until, watcher)` found in storage when the server starts."""
        for client_id, until, watcher in requests:
            if until > self.clock():
                self.requests[client_id] = (until, watcher)
                self._arm(client_id, until)

    def server_logging_changed(self, client_id: str, watcher: str, until: datetime | None) -> bool:
        """Apply a request: enable until `until`, or disable (None or past). True when a command
        reached the connected client; the services' `ServerLoggingControl` port."""
        timer = self._timers.pop(client_id, None)
        if timer is not None:
            timer.cancel()
        if until is None or until <= self.clock():
            previous = self.requests.pop(client_id, None)
            # Python keeps one listener per watcher: "0" goes to the watcher that enabled it.
            return self._send(client_id, previous[1] if previous else watcher, False)
        self.requests[client_id] = (until, watcher)
        self._arm(client_id, until)
        return self._send(client_id, watcher, True)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _arm(self, client_id: str, until: datetime) -> None:
        delay = max(0.0, (until - self.clock()).total_seconds())
        self._timers[client_id] = asyncio.get_running_loop().call_later(delay, self._expire, client_id)

    def _expire(self, client_id: str) -> None:
        self._timers.pop(client_id, None)
        request = self.requests.get(client_id)
        if request is None:
            return
        until, watcher = request
        remaining = (until - self.clock()).total_seconds()
        if remaining > 0:
            self._arm(client_id, until)  # the loop's clock ran ahead of the wall clock
            return
        del self.requests[client_id]
        self._send(client_id, watcher, False)

    def _send(self, client_id: str, watcher: str, enabled: bool) -> bool:
        sent = self.devices.push(
            client_id, TopicKind.ENABLE_LOGGING, logging_command_payload(watcher, enabled), LOGGING_QOS
        )
        if sent:
            logger.info("server_logging_sent client=%s enabled=%d", client_id, int(enabled))
        return sent

    def _active_watcher(self, client_id: str) -> str | None:
        request = self.requests.get(client_id)
        if request is None or request[0] <= self.clock():
            return None
        return request[1]

    def _connected(self, channel: Channel) -> None:
        watcher = self._active_watcher(channel.client_uuid)
        if watcher is None:
            return
        session = channel.session
        topic = client_topic(channel.client_uuid, TopicKind.ENABLE_LOGGING)
        subscribed = session is not None and any(
            matches(topic, subscription.topic_filter) for subscription in session.subscriptions.values()
        )
        if channel.profile.implicit_delivery or subscribed:
            self._send(channel.client_uuid, watcher, True)

    def _subscribed(self, channel: Channel, topic_filter: str, granted: int) -> None:
        if channel.profile.implicit_delivery:
            return  # already sent on connect
        watcher = self._active_watcher(channel.client_uuid)
        if watcher is None:
            return
        if not matches(client_topic(channel.client_uuid, TopicKind.ENABLE_LOGGING), topic_filter):
            return
        # After the SUBACK this SUBSCRIBE is answered with.
        asyncio.get_running_loop().call_soon(self._send, channel.client_uuid, watcher, True)
