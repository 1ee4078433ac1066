"""Codec micro-benchmark (not a test): ``.venv/bin/python -m tests.mqtt._bench_codec``.

Prints operations per second for the broker's hot path: decoding inbound PUBLISH/PUBACK, and encoding
deliveries through ``PublishTemplate`` (once per message, spliced per receiver).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from instamsg.mqtt import (
    MQTT_3_1_1,
    MQTT_5,
    FrameDecoder,
    Puback,
    Publish,
    PublishTemplate,
    encode,
)

CONNECT_3_1_1 = bytes.fromhex("100f00044d5154540402003c0003616263")
CONNECT_5 = bytes.fromhex("10100004" + "4d515454" + "0502003c" + "00" + "0003616263")


def _rate(label: str, operations: int, function: Callable[[], object], repeat: int = 5) -> None:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    print(f"{label:<58} {operations / best:>12,.0f} ops/s")


def main() -> None:
    batch = 20_000
    payload = b"x" * 64
    topic = "instamsg/clients/cbf7d550-7204-11e4-a2ad-543530e3bc65/info"
    for level, connect in ((MQTT_3_1_1, CONNECT_3_1_1), (MQTT_5, CONNECT_5)):
        qos0 = encode(Publish(topic, payload), level)
        qos1 = encode(Publish(topic, payload, 1, packet_id=17), level)
        puback = encode(Puback(17), level)
        stream0 = qos0 * batch
        stream1 = qos1 * batch
        chunks0 = [qos0] * batch
        acks = puback * batch

        def decode_stream(stream: bytes = stream0, connect: bytes = connect) -> None:
            decoder = FrameDecoder()
            decoder.feed(connect)
            assert len(decoder.feed(stream)) == batch

        def decode_stream_qos1(stream: bytes = stream1, connect: bytes = connect) -> None:
            decoder = FrameDecoder()
            decoder.feed(connect)
            decoder.feed(stream)

        def decode_one_per_feed(chunks: list[bytes] = chunks0, connect: bytes = connect) -> None:
            decoder = FrameDecoder()
            decoder.feed(connect)
            feed = decoder.feed
            for chunk in chunks:
                feed(chunk)

        def decode_acks(stream: bytes = acks, connect: bytes = connect) -> None:
            decoder = FrameDecoder()
            decoder.feed(connect)
            decoder.feed(stream)

        name = "3.1.1" if level == MQTT_3_1_1 else "5.0"
        _rate(f"[{name}] decode PUBLISH QoS 0, one {batch}-packet chunk", batch, decode_stream)
        _rate(f"[{name}] decode PUBLISH QoS 1, one {batch}-packet chunk", batch, decode_stream_qos1)
        _rate(f"[{name}] decode PUBLISH QoS 0, one feed() per packet", batch, decode_one_per_feed)
        _rate(f"[{name}] decode PUBACK, one chunk", batch, decode_acks)

        if level == MQTT_5:
            with_properties = encode(
                Publish(
                    topic,
                    payload,
                    1,
                    packet_id=3,
                    properties={"content_type": "json", "user_property": [("k", "v")]},
                ),
                level,
            )
            stream_properties = with_properties * batch

            def decode_with_properties(stream: bytes = stream_properties, connect: bytes = connect) -> None:
                decoder = FrameDecoder()
                decoder.feed(connect)
                decoder.feed(stream)

            _rate("[5.0] decode PUBLISH QoS 1 + 2 properties, one chunk", batch, decode_with_properties)

        template = PublishTemplate(topic, payload)

        def deliver_qos0(template: PublishTemplate = template, level: int = level) -> None:
            parts = template.parts
            for _ in range(batch):
                parts(level)

        def deliver_qos1(template: PublishTemplate = template, level: int = level) -> None:
            parts = template.parts
            for packet_id in range(1, batch + 1):
                parts(level, 1, False, False, packet_id)

        def encode_full(level: int = level) -> None:
            for _ in range(batch):
                encode(Publish(topic, payload, 1, packet_id=5), level)

        def encode_ack(level: int = level) -> None:
            for _ in range(batch):
                encode(Puback(5), level)

        _rate(f"[{name}] deliver QoS 0 via PublishTemplate.parts", batch, deliver_qos0)
        _rate(f"[{name}] deliver QoS 1 via PublishTemplate.parts (packet id)", batch, deliver_qos1)
        _rate(f"[{name}] encode(Publish QoS 1) from scratch", batch, encode_full)
        _rate(f"[{name}] encode(Puback)", batch, encode_ack)


if __name__ == "__main__":
    main()
