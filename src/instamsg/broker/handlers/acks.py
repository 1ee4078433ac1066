"""PUBACK, PUBREC and PUBCOMP from the client for our deliveries; the acknowledgement frames."""

from __future__ import annotations

from typing import TYPE_CHECKING

from instamsg.broker.hooks import HookPoint
from instamsg.mqtt.packets import (
    MQTT_5,
    Puback,
    Pubcomp,
    Pubrec,
)
from instamsg.mqtt.reason_codes import ReasonCode

if TYPE_CHECKING:
    from instamsg.broker.channel import Channel


def handle_puback(channel: Channel, packet: Puback) -> None:
    """QoS 1 delivery acknowledged: it leaves the window, the queue refills it."""
    session = channel.session
    assert session is not None
    entry = session.inflight.get(packet.packet_id)
    if entry is None or entry.qos != 1:
        return  # unknown or wrong-QoS id: ignored (it may be a late duplicate)
    message = session.acknowledge(packet.packet_id)
    if message is not None and channel.node.hooks.has(HookPoint.MESSAGE_ACKED):
        channel.node.hooks.run(HookPoint.MESSAGE_ACKED, channel.client_uuid, message)


def handle_pubrec(channel: Channel, packet: Pubrec) -> None:
    """QoS 2 delivery received: answer PUBREL (MQTT 5: an error PUBREC ends the flow)."""
    session = channel.session
    assert session is not None
    if channel.protocol_level == MQTT_5 and packet.reason_code >= 0x80:
        session.acknowledge(packet.packet_id)  # the receiver refused it: the flow ends here
        return
    if session.received(packet.packet_id):
        channel.connection.write(ack_frame(0x62, packet.packet_id, 0, channel.protocol_level))
    elif channel.protocol_level == MQTT_5:
        channel.connection.write(
            ack_frame(0x62, packet.packet_id, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND, MQTT_5)
        )


def handle_pubcomp(channel: Channel, packet: Pubcomp) -> None:
    """QoS 2 delivery complete: it leaves the window."""
    session = channel.session
    assert session is not None
    entry = session.inflight.get(packet.packet_id)
    if entry is None or entry.qos != 2:
        return
    message = session.acknowledge(packet.packet_id)
    if message is not None and channel.node.hooks.has(HookPoint.MESSAGE_ACKED):
        channel.node.hooks.run(HookPoint.MESSAGE_ACKED, channel.client_uuid, message)


def ack_frame(first_byte: int, packet_id: int, reason_code: int, level: int) -> bytes:
    """PUBACK/PUBREC/PUBREL/PUBCOMP: 4 bytes, or 5 on MQTT 5 with a non-zero reason (MQTT 5 §3.4.2.1)."""
    if level == MQTT_5 and reason_code:
        return bytes((first_byte, 3, packet_id >> 8, packet_id & 0xFF, reason_code))
    return bytes((first_byte, 2, packet_id >> 8, packet_id & 0xFF))
