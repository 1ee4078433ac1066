"""Message encoding: once per level for QoS 0 receivers, packet id spliced for QoS 1/2."""

from __future__ import annotations

import time

from instamsg.broker.message import Message
from instamsg.mqtt.decoder import FrameDecoder
from instamsg.mqtt.packets import Publish


def decode(frame: bytes, level: int) -> Publish:
    [packet] = FrameDecoder(server_side=False, protocol_level=level).feed(frame)
    assert isinstance(packet, Publish)
    return packet


def test_qos0_frame_encoded_once_per_level() -> None:
    message = Message("t", "a/b", b"payload", 0, False, None)
    first = message.frame(4, 0, False, None)
    assert message.frame(4, 0, False, None) is first  # the same bytes object for every receiver
    assert first == b"\x30\x0c\x00\x03a/bpayload"
    assert message.frame(5, 0, False, None) == b"\x30\x0d\x00\x03a/b\x00payload"


def test_packet_id_spliced_for_qos1_and_qos2() -> None:
    message = Message("t", "a/b", b"p", 2, True, None)
    assert message.frame(4, 1, False, 7) == b"\x32\x08\x00\x03a/b\x00\x07p"
    assert message.frame(4, 2, True, 0x0102, dup=True) == b"\x3d\x08\x00\x03a/b\x01\x02p"


def test_mqtt5_properties_and_remaining_expiry() -> None:
    message = Message(
        "t", "x", b"p", 1, False, None, {"user_property": [("k", "v")]}, expires_at=time.monotonic() + 30
    )
    packet = decode(message.frame(5, 1, False, 3, extra_properties={"subscription_identifier": [4]}), 5)
    assert packet.properties["user_property"] == [("k", "v")]
    assert packet.properties["subscription_identifier"] == [4]
    assert 29 <= packet.properties["message_expiry_interval"] <= 30
    assert decode(message.frame(4, 1, False, 3), 4).properties == {}


def test_frame_with_alias_topic() -> None:
    message = Message("t", "long/topic", b"p", 0, False, None)
    packet = decode(message.frame_with_topic(5, "", 0, False, None, False, {"topic_alias": 2}), 5)
    assert packet.topic == "" and packet.properties["topic_alias"] == 2
