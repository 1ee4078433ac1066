"""DeviceProtocol: where the device-protocol features meet the broker.

It owns one `message.publish` callback that classifies `instamsg/` topics once and hands each
device→server message to the handlers registered for its kind (spec §6.2 item 3: consumed by the
server, attributed to the publishing connection, never forwarded). Server→device messages go out
through `push`, which the pacing rules of legacy-A connections apply to (Q3, Q4).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from instamsg.broker.hooks import HookPoint, Priority, Stop
from instamsg.protocol.ports import ClientLog, ServerLogOnly
from instamsg.protocol.pushes import PushPacer, is_paced
from instamsg.protocol.topics import DEVICE_TO_SERVER, SpecialTopic, TopicKind, classify, client_topic

if TYPE_CHECKING:
    from instamsg.broker.channel import Channel
    from instamsg.broker.message import Message
    from instamsg.broker.node import BrokerNode

logger = logging.getLogger(__name__)

DeviceHandler = Callable[["Channel", SpecialTopic, "Message"], None]


class DeviceProtocol:
    def __init__(self, node: BrokerNode, log: ClientLog | None = None) -> None:
        self.node = node
        self.directory = node.directory
        self.log: ClientLog = log if log is not None else ServerLogOnly()
        self._handlers: dict[TopicKind, list[DeviceHandler]] = {}
        self._installed = False
        # Set by `pushes.install_push_pacing`; None: every push goes out at once.
        self.pacer: PushPacer | None = None

    def install(self) -> None:
        if not self._installed:
            self.node.hooks.add(HookPoint.MESSAGE_PUBLISH, self._dispatch, Priority.HIGH)
            self._installed = True

    def on_device_message(self, kind: TopicKind, handler: DeviceHandler) -> None:
        """Register a handler for a device→server topic kind; several may share a kind."""
        if kind not in DEVICE_TO_SERVER:
            raise ValueError(f"{kind} is not a device-to-server topic")
        self._handlers.setdefault(kind, []).append(handler)

    def _dispatch(self, channel: Channel | None, message: Message) -> Stop[None] | None:
        topic = message.topic
        if channel is None or not topic.startswith("instamsg/"):
            return None
        special = classify(topic)
        if special is None or special.kind not in DEVICE_TO_SERVER:
            return None
        for handler in self._handlers.get(special.kind, ()):
            try:
                handler(channel, special, message)
            except Exception as error:
                # Nothing a device sends may harm the server: a failing handler is logged, never raised,
                # and throttled, since the same device can repeat the message at will.
                self.node.throttled_warning(
                    ("device_handler_failed", special.kind, channel.client_uuid),
                    "device_handler_failed kind=%s client=%s error=%r",
                    special.kind,
                    channel.client_uuid,
                    error,
                )
                logger.debug("device_handler_failed kind=%s", special.kind, exc_info=True)
        return Stop(None)

    def push(self, client_uuid: str, kind: TopicKind, payload: bytes, qos: int = 1) -> bool:
        """Publish a server→device message on the client's own topic.

        Connections of a paced profile (Q3, Q4) get it through their push queue, after the post-CONNACK
        delay and spaced from the previous push. False when the client is not connected (or its push
        queue is full): the caller keeps the push pending.
        """
        client = self.directory.get_client(client_uuid)
        if client is None:
            return False
        channel = self.node.channels.get(client.uuid)
        if channel is None:
            return False
        topic = client_topic(client.uuid, kind)
        if self.pacer is not None and is_paced(channel):
            return self.pacer.submit(channel, topic, payload, qos)
        self.node.deliver(client.tenant_id, None, topic, payload, qos)
        return True
