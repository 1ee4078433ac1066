"""Extension points of the broker (EMQX's hooks): ordered, prioritised, synchronous callbacks.

A callback receives the hook point's arguments and, for folded points, the accumulator last. It returns:
- ``None``: no opinion, the chain continues with the accumulator unchanged;
- any other value: the new accumulator (folded points), the chain continues;
- ``Stop(value)``: the chain ends here and ``value`` is the result.

A callback that raises is logged and skipped, except on the fail-closed points (authentication and
authorisation), where the exception ends the chain with the caller's ``on_error`` value: a broken
plugin must never let a client in.

Hook points and what they receive (args → accumulator):

- ``client.connect`` (channel, connect) → None. Before authentication. Return ``Stop(ConnectReply)``
  to answer the CONNECT with other bytes (e.g. PROVACK) and a close policy of your own.
- ``client.authenticate`` (channel, connect) → client UUID | None. Resolve identity from a CONNECT
  credential layout; None defers to the standard layout (username = UUID). ``Stop(Refusal(code))``
  refuses. Fail-closed.
- ``client.profile`` (channel, connect, client) → ConnectionProfile. Per-profile quirks.
- ``client.authorize`` (channel, action, topic) → bool. Overrides the ACL decision (cached). Fail-closed.
- ``client.refused`` (channel, reason code, reason) → None. After a refusing CONNACK (spec §4.2 logs).
- ``client.connected`` (channel) → None.
- ``client.disconnected`` (channel, reason) → None.
- ``session.implicit_subscriptions`` (channel) → list[(topic filter, qos)]. Subscriptions added to the
  connection without SUBSCRIBE or ACL (legacy implicit delivery).
- ``session.subscribed`` (channel, topic filter, granted qos) → None.
- ``session.subscribe_denied`` (channel, topic filter) → None. Refused by ACL (legacy-A cannot see it).
- ``session.unsubscribed`` (channel, topic filter) → None.
- ``message.publish`` (channel | None, message) → Message. Return ``Stop(None)`` to consume the
  message (reserved-topic handlers); the publisher is acknowledged normally.
- ``message.denied`` (channel, topic, reason code) → None. A publish refused by ACL (0x87), quota (0x97)
  or for an unknown peer (0x90); the publisher was still acknowledged as MQTT requires.
- ``message.delivered`` (client uuid, message) → None. After a delivery was written to a connection.
- ``message.acked`` (client uuid, message) → None.
- ``message.dropped`` (client uuid, message, reason) → None.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import IntEnum, StrEnum
from typing import Any, Final, Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class HookPoint(StrEnum):
    CLIENT_CONNECT = "client.connect"
    CLIENT_AUTHENTICATE = "client.authenticate"
    CLIENT_PROFILE = "client.profile"
    CLIENT_AUTHORIZE = "client.authorize"
    CLIENT_REFUSED = "client.refused"
    CLIENT_CONNECTED = "client.connected"
    CLIENT_DISCONNECTED = "client.disconnected"
    SESSION_IMPLICIT_SUBSCRIPTIONS = "session.implicit_subscriptions"
    SESSION_SUBSCRIBED = "session.subscribed"
    SESSION_SUBSCRIBE_DENIED = "session.subscribe_denied"
    SESSION_UNSUBSCRIBED = "session.unsubscribed"
    MESSAGE_PUBLISH = "message.publish"
    MESSAGE_DENIED = "message.denied"
    MESSAGE_DELIVERED = "message.delivered"
    MESSAGE_ACKED = "message.acked"
    MESSAGE_DROPPED = "message.dropped"


class Priority(IntEnum):
    """Higher runs first; callbacks of equal priority run in registration order."""

    FIRST = 1000
    HIGH = 100
    NORMAL = 0
    LOW = -100
    LAST = -1000


FAIL_CLOSED: Final = frozenset({HookPoint.CLIENT_AUTHENTICATE, HookPoint.CLIENT_AUTHORIZE})


class Stop(Generic[T]):
    """Returned by a callback to end the chain with `value` as the result."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value


Callback = Callable[..., Any]


class Hooks:
    """The registry: an immutable tuple of callbacks per hook point, rebuilt on (un)registration."""

    __slots__ = ("_chains", "_entries", "_sequence")

    def __init__(self) -> None:
        self._entries: dict[HookPoint, list[tuple[int, int, Callback]]] = {}
        self._chains: dict[HookPoint, tuple[Callback, ...]] = {}
        self._sequence = 0

    def add(self, point: HookPoint, callback: Callback, priority: int = Priority.NORMAL) -> None:
        self._sequence += 1
        entries = self._entries.setdefault(point, [])
        entries.append((-int(priority), self._sequence, callback))
        entries.sort(key=lambda entry: (entry[0], entry[1]))
        self._chains[point] = tuple(entry[2] for entry in entries)

    def remove(self, point: HookPoint, callback: Callback) -> None:
        entries = [entry for entry in self._entries.get(point, []) if entry[2] is not callback]
        self._entries[point] = entries
        self._chains[point] = tuple(entry[2] for entry in entries)

    def has(self, point: HookPoint) -> bool:
        """Cheap test so hot paths skip building arguments for an empty chain."""
        return bool(self._chains.get(point))

    def run(self, point: HookPoint, *args: Any) -> None:
        """Call each callback in order; a `Stop` ends the chain. Errors are logged and skipped."""
        for callback in self._chains.get(point, ()):
            try:
                result = callback(*args)
            except Exception:
                logger.exception("hook_failed point=%s callback=%r", point.value, callback)
                continue
            if isinstance(result, Stop):
                return

    def run_fold(self, point: HookPoint, accumulator: Any, *args: Any, on_error: Any = None) -> Any:
        """Fold the accumulator through the chain; see the module docstring for the return protocol."""
        for callback in self._chains.get(point, ()):
            try:
                result = callback(*args, accumulator)
            except Exception:
                logger.exception("hook_failed point=%s callback=%r", point.value, callback)
                if point in FAIL_CLOSED:
                    return on_error
                continue
            if isinstance(result, Stop):
                return result.value
            if result is not None:
                accumulator = result
        return accumulator
