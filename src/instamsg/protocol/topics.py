"""The special-topic catalogue (spec §6.1): classify a topic name, and build server→device topics."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from instamsg.broker.router import is_uuid

CLIENTS_PREFIX: Final = "instamsg/clients/"
CONNECTION_PREFIX: Final = "instamsg/client/"  # C and Java: no UUID, the connection names the sender
WEBHOOK_TOPIC: Final = "instamsg/webhook"


class Direction(StrEnum):
    DEVICE_TO_SERVER = "d2s"
    SERVER_TO_DEVICE = "s2d"


class TopicKind(StrEnum):
    # device → server
    INFO = "info"
    METADATA = "metadata"
    SESSION = "session"
    NETWORK = "network"
    SIGNALINFO = "signalinfo"
    CONFIG_REPORT = "config/clientToServer"
    LOGS = "logs"
    NOTIFICATIONS = "notifications"
    REPLY = "reply"
    MEDIA = "media"
    WEBHOOK = "webhook"
    # server → device
    CONFIG_PUSH = "config/serverToClient"
    ENABLE_LOGGING = "enableServerLogging"
    REBOOT = "reboot"
    UPDATE_FIRMWARE = "update_firmware"
    UPDATE_CERT = "updateCert"
    UPDATE_AUTH_TOKEN = "updateAuthToken"
    CONTROL_ACTION = "controlaction"
    CONTROL_ACTION_OLD = "config/controlAction"
    PROXY = "proxy"
    FILES = "files"
    MEDIA_REPLY = "mediareply"
    MEDIA_STOP = "mediastop"
    MEDIA_PAUSE = "mediapause"
    MEDIA_STREAMS = "mediastreams"


DEVICE_TO_SERVER: Final = frozenset(
    {
        TopicKind.INFO,
        TopicKind.METADATA,
        TopicKind.SESSION,
        TopicKind.NETWORK,
        TopicKind.SIGNALINFO,
        TopicKind.CONFIG_REPORT,
        TopicKind.LOGS,
        TopicKind.NOTIFICATIONS,
        TopicKind.REPLY,
        TopicKind.MEDIA,
        TopicKind.WEBHOOK,
    }
)
SERVER_TO_DEVICE: Final = frozenset(set(TopicKind) - DEVICE_TO_SERVER)

# Server→device kinds legacy connections receive without SUBSCRIBE (spec §6.1 "Implicit = yes").
IMPLICIT_KINDS: Final = tuple(sorted(SERVER_TO_DEVICE))
# A client may publish to another client's topics of these kinds when its pub_topics lists the exact
# topic (user clients driving devices, spec §6.2 item 2).
USER_DRIVABLE_KINDS: Final = frozenset(
    {
        TopicKind.FILES,
        TopicKind.MEDIA_REPLY,
        TopicKind.MEDIA_STOP,
        TopicKind.MEDIA_PAUSE,
        TopicKind.MEDIA_STREAMS,
    }
)

_PER_CLIENT_KINDS: Final[dict[str, TopicKind]] = {
    kind.value: kind for kind in TopicKind if kind is not TopicKind.WEBHOOK
}
_CONNECTION_KINDS: Final[dict[str, TopicKind]] = {
    "session": TopicKind.SESSION,
    "metadata": TopicKind.METADATA,
    "info": TopicKind.INFO,
    "signalinfo": TopicKind.SIGNALINFO,
    "config/clientToServer": TopicKind.CONFIG_REPORT,
    "notifications": TopicKind.NOTIFICATIONS,
}


@dataclass(frozen=True, slots=True)
class SpecialTopic:
    """A classified special topic. `client_uuid` is the UUID the topic names (lowercase), or None
    for the connection-attributed `instamsg/client/...` topics and `instamsg/webhook`."""

    kind: TopicKind
    client_uuid: str | None

    @property
    def direction(self) -> Direction:
        return Direction.DEVICE_TO_SERVER if self.kind in DEVICE_TO_SERVER else Direction.SERVER_TO_DEVICE


def classify(topic: str) -> SpecialTopic | None:
    """The special topic `topic` names, or None (an application topic, an inbox, or an unknown
    `instamsg/` topic: callers tell those apart with `is_uuid` and `startswith("instamsg/")`)."""
    if not topic.startswith("instamsg/"):
        return None
    if topic.startswith(CLIENTS_PREFIX):
        rest = topic[len(CLIENTS_PREFIX) :]
        uuid, separator, suffix = rest.partition("/")
        if not separator or not is_uuid(uuid):
            return None
        kind = _PER_CLIENT_KINDS.get(suffix)
        return None if kind is None else SpecialTopic(kind, uuid.lower())
    if topic.startswith(CONNECTION_PREFIX):
        kind = _CONNECTION_KINDS.get(topic[len(CONNECTION_PREFIX) :])
        return None if kind is None else SpecialTopic(kind, None)
    if topic == WEBHOOK_TOPIC:
        return SpecialTopic(TopicKind.WEBHOOK, None)
    # Python 2015: instamsg/<U>/logs
    uuid, separator, suffix = topic[len("instamsg/") :].partition("/")
    if separator and suffix == "logs" and is_uuid(uuid):
        return SpecialTopic(TopicKind.LOGS, uuid.lower())
    return None


def client_topic(client_uuid: str, kind: TopicKind) -> str:
    """`instamsg/clients/<U>/<kind>`: where the server publishes to a device, or a device reports."""
    return CLIENTS_PREFIX + client_uuid + "/" + kind.value
