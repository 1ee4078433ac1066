"""Device identity from the CONNECT credential layouts, and the connection profile they imply.

Spec §4.1/§4.2: layout B (username = the full UUID) is the broker's standard layout; layout A, sent by
the Python, JS and Telit 1.5 libraries over `MQIsdp`/3, splits the UUID into a 23-character
ClientIdentifier and a 12-character username. The profile (spec §1.5, D10) follows from the protocol
level and the layout: legacy A (paced on raw TCP/TLS, where Python reads one packet per recv()),
legacy B, or standard for MQTT 3.1.1 and 5.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Final

from instamsg.broker.hooks import HookPoint, Priority
from instamsg.broker.profiles import STANDARD, ConnectionProfile
from instamsg.mqtt.packets import MQTT_3_1, Connect
from instamsg.protocol.client_profiles import LEGACY_A, LEGACY_A_STREAM, LEGACY_B

if TYPE_CHECKING:
    from instamsg.broker.channel import Channel
    from instamsg.broker.node import BrokerNode
    from instamsg.broker.ports import ClientRecord
    from instamsg.protocol.plugin import DeviceProtocol

_FULL_UUID: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_UUID_HEAD: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}")
_UUID_TAIL: Final = re.compile(r"[0-9a-fA-F]{12}")
# Python's socket transport reads one packet per recv() and sleeps after CONNACK (Q3, Q4); over
# WebSocket each message is one packet already, so no pacing is needed there.
_STREAM_LISTENERS: Final = frozenset({"mqtt", "mqtts"})


def layout_a_uuid(connect: Connect) -> str | None:
    """The UUID of a layout-A CONNECT (spec §4.2 step 4), or None when the CONNECT is not layout A."""
    if connect.protocol_level != MQTT_3_1 or connect.username is None:
        return None
    if _UUID_HEAD.fullmatch(connect.client_id) and _UUID_TAIL.fullmatch(connect.username):
        return f"{connect.client_id}-{connect.username}".lower()
    return None


def resolve_uuid(connect: Connect) -> str | None:
    """Spec §4.2 steps 3-4: layout B first (the username is a UUID), then layout A."""
    username = connect.username
    if username is not None and _FULL_UUID.fullmatch(username):
        return username.lower()
    return layout_a_uuid(connect)


class Identity:
    """The `client.authenticate` and `client.profile` hooks of the device protocol."""

    def __init__(self, node: BrokerNode) -> None:
        # The legacy profiles take the node's configured keep-alive floor (spec §3.5).
        floor = node.legacy_profile.keepalive_floor
        self.legacy_a = dataclasses.replace(LEGACY_A, keepalive_floor=floor)
        self.legacy_a_stream = dataclasses.replace(LEGACY_A_STREAM, keepalive_floor=floor)
        self.legacy_b = dataclasses.replace(LEGACY_B, keepalive_floor=floor)

    def authenticate(self, channel: Channel, connect: Connect, resolved: object) -> str | None:
        if resolved is not None:
            return None  # an earlier hook decided
        return resolve_uuid(connect)

    def profile(
        self, channel: Channel, connect: Connect, client: ClientRecord, profile: ConnectionProfile
    ) -> ConnectionProfile:
        if connect.protocol_level != MQTT_3_1:
            return STANDARD
        if layout_a_uuid(connect) is not None:
            if channel.connection.listener in _STREAM_LISTENERS:
                return self.legacy_a_stream
            return self.legacy_a
        return self.legacy_b


def install_identity(devices: DeviceProtocol) -> Identity:
    """Register the identity hooks on the device protocol's broker node."""
    identity = Identity(devices.node)
    hooks = devices.node.hooks
    hooks.add(HookPoint.CLIENT_AUTHENTICATE, identity.authenticate, Priority.NORMAL)
    hooks.add(HookPoint.CLIENT_PROFILE, identity.profile, Priority.NORMAL)
    return identity
