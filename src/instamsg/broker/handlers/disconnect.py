"""DISCONNECT from the client: MQTT 5 session expiry update and the will decision."""

from __future__ import annotations

from typing import TYPE_CHECKING

from instamsg.mqtt.packets import (
    MQTT_5,
    Disconnect,
)
from instamsg.mqtt.reason_codes import ReasonCode

if TYPE_CHECKING:
    from instamsg.broker.channel import Channel


def handle_disconnect(channel: Channel, packet: Disconnect) -> None:
    """Normal close: no will unless MQTT 5 reason 0x04; MQTT 5 may update the session expiry."""
    session = channel.session
    if channel.protocol_level == MQTT_5:
        expiry = packet.properties.get("session_expiry_interval")
        if expiry is not None:
            if channel.session_expiry_at_connect == 0 and expiry != 0:
                channel.protocol_error("session_expiry_after_zero")  # MQTT-3.14.2-2
                return
            if session is not None:
                session.expiry_interval = min(expiry, channel.node.settings.max_session_expiry)
        # 0x04: disconnect with will message; anything else normal discards the will (MQTT-3.14.4-3).
        publish_will = packet.reason_code == ReasonCode.DISCONNECT_WITH_WILL_MESSAGE
    else:
        publish_will = False
    channel.close(None, "client_disconnect", publish_will=publish_will)
