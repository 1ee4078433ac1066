"""Fuzzing: the decoder raises nothing but codec errors on any input, and encode/decode round-trip."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instamsg.mqtt import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    FrameDecoder,
    MalformedPacket,
    MqttError,
    Packet,
    Publish,
    Subscribe,
    SubscriptionOptions,
    UnsupportedProtocol,
    encode,
)

from ._helpers import CONNECT_PRELUDE, client_decoder, server_decoder
from .test_incremental import CONFIGURATIONS, stream_for

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def feed_safely(decoder: FrameDecoder, chunks: list[bytes]) -> list[Packet]:
    """Feed chunks; codec errors end the feed, any other exception fails the test."""
    packets: list[Packet] = []
    try:
        for chunk in chunks:
            packets.extend(decoder.feed(chunk))
    except MqttError as error:
        assert isinstance(error, MalformedPacket | UnsupportedProtocol)
        assert 0 <= error.reason_code <= 0xFF
        # A failed decoder keeps failing with codec errors only.
        try:
            decoder.feed(b"\x00")
        except MqttError:
            pass
        else:
            raise AssertionError("decoder accepted input after an error") from None
    return packets


def make_decoder(configuration: tuple[int, bool], connected: bool) -> FrameDecoder:
    level, server_side = configuration
    if not server_side:
        return client_decoder(level)
    return server_decoder(level) if connected else FrameDecoder()


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    return [data[start:end] for start, end in zip([0, *points], [*points, len(data)], strict=True)]


@FUZZ
@given(
    configuration=st.sampled_from(CONFIGURATIONS),
    connected=st.booleans(),
    data=st.binary(max_size=300),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=5),
)
def test_random_bytes_raise_only_codec_errors(
    configuration: tuple[int, bool], connected: bool, data: bytes, cuts: list[int]
) -> None:
    feed_safely(make_decoder(configuration, connected), chunked(data, cuts))


@FUZZ
@given(
    configuration=st.sampled_from(CONFIGURATIONS),
    data=st.data(),
)
def test_mutated_valid_streams_raise_only_codec_errors(
    configuration: tuple[int, bool], data: st.DataObject
) -> None:
    level, server_side = configuration
    stream = bytearray(stream_for(level, server_side)[0])
    for _ in range(data.draw(st.integers(min_value=1, max_value=6), label="mutations")):
        position = data.draw(st.integers(min_value=0, max_value=len(stream)), label="position")
        action = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]), label="action")
        if action == "flip" and position < len(stream):
            stream[position] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
        elif action == "set" and position < len(stream):
            stream[position] = data.draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x02, 0x30]))
        elif action == "insert":
            stream[position:position] = data.draw(st.binary(min_size=1, max_size=4))
        elif action == "delete":
            del stream[position : position + data.draw(st.integers(min_value=1, max_value=4))]
        else:
            del stream[position:]
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=6), label="cuts")
    decoder = FrameDecoder() if server_side else client_decoder(level)
    feed_safely(decoder, chunked(bytes(stream), cuts))


@FUZZ
@given(
    level=st.sampled_from([MQTT_3_1, MQTT_3_1_1, MQTT_5]),
    body=st.binary(max_size=120),
    first_byte=st.integers(min_value=0, max_value=255),
)
def test_any_single_packet_body_raises_only_codec_errors(level: int, body: bytes, first_byte: int) -> None:
    wire = bytes((first_byte, len(body))) + body
    feed_safely(server_decoder(level), [wire])
    feed_safely(client_decoder(level), [wire])


@FUZZ
@given(connect_body=st.binary(max_size=80), prefix=st.sampled_from(list(CONNECT_PRELUDE.values())))
def test_random_connect_bodies_raise_only_codec_errors(connect_body: bytes, prefix: bytes) -> None:
    # Keep a real protocol name and level so the fuzzing reaches the flags and payload.
    head = prefix[2:-2]
    body = head + connect_body
    feed_safely(FrameDecoder(), [bytes((0x10, len(body))) + body])


topics = st.text(
    alphabet=st.characters(exclude_characters="+#\x00", exclude_categories=["Cs"]),
    min_size=1,
    max_size=30,
)
user_properties = st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=3).map(
    lambda pairs: [(key.replace("\x00", ""), value.replace("\x00", "")) for key, value in pairs]
)


@FUZZ
@given(
    level=st.sampled_from([MQTT_3_1, MQTT_3_1_1, MQTT_5]),
    topic=topics,
    payload=st.binary(max_size=300),
    qos=st.integers(min_value=0, max_value=2),
    retain=st.booleans(),
    dup=st.booleans(),
    packet_id=st.integers(min_value=1, max_value=65535),
    expiry=st.none() | st.integers(min_value=0, max_value=2**32 - 1),
    pairs=user_properties,
)
def test_publish_round_trip(
    level: int,
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    dup: bool,
    packet_id: int,
    expiry: int | None,
    pairs: list[tuple[str, str]],
) -> None:
    properties: dict[str, object] = {}
    if level == MQTT_5:
        if expiry is not None:
            properties["message_expiry_interval"] = expiry
        if pairs:
            properties["user_property"] = pairs
    publish = Publish(
        topic,
        payload,
        qos,
        retain,
        dup and qos > 0,
        packet_id if qos else None,
        properties,  # type: ignore[arg-type]
    )
    wire = encode(publish, level)
    assert server_decoder(level).feed(wire) == [publish]
    decoder = client_decoder(level)
    packets: list[Packet] = []
    for index in range(len(wire)):
        packets.extend(decoder.feed(wire[index : index + 1]))
    assert packets == [publish]


@FUZZ
@given(
    level=st.sampled_from([MQTT_3_1, MQTT_3_1_1, MQTT_5]),
    packet_id=st.integers(min_value=1, max_value=65535),
    filters=st.lists(
        st.tuples(
            st.text(
                alphabet=st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=20
            ),
            st.integers(0, 2),
            st.booleans(),
            st.booleans(),
            st.integers(0, 2),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_subscribe_round_trip(
    level: int, packet_id: int, filters: list[tuple[str, int, bool, bool, int]]
) -> None:
    version_5 = level == MQTT_5
    subscriptions = [
        (
            name,
            SubscriptionOptions(
                qos, no_local and version_5, as_published and version_5, handling if version_5 else 0
            ),
        )
        for name, qos, no_local, as_published, handling in filters
    ]
    subscribe = Subscribe(packet_id, subscriptions)
    assert server_decoder(level).feed(encode(subscribe, level)) == [subscribe]
