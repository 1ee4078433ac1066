"""Incremental decoding: any split of the byte stream yields the same packets."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from instamsg.mqtt import MQTT_3_1, MQTT_3_1_1, MQTT_5, FrameDecoder, Packet, Publish

from ._helpers import CONNECT_PRELUDE, h
from .test_wire_format import CASES, CLIENT, SERVER


def stream_for(level: int, server_side: bool) -> tuple[bytes, list[Packet]]:
    """All non-CONNECT cases a receiver at ``level`` accepts, concatenated."""
    receiver = SERVER if server_side else CLIENT
    chosen = [
        case
        for case in CASES
        if case.level == level and case.receiver in (receiver, "both") and case.wire[0] >> 4 != 1
    ]
    data = b"".join(case.wire for case in chosen)
    packets = [case.packet for case in chosen]
    if server_side:
        data = CONNECT_PRELUDE[level] + data
    return data, packets


def new_decoder(level: int, server_side: bool) -> FrameDecoder:
    return FrameDecoder() if server_side else FrameDecoder(server_side=False, protocol_level=level)


def feed_in_chunks(decoder: FrameDecoder, data: bytes, cuts: list[int]) -> list[Packet]:
    packets: list[Packet] = []
    previous = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        packets.extend(decoder.feed(data[previous:cut]))
        previous = cut
    return packets


CONFIGURATIONS = [
    (level, server_side) for level in (MQTT_3_1, MQTT_3_1_1, MQTT_5) for server_side in (True, False)
]


def expected(level: int, server_side: bool) -> list[Packet]:
    data, packets = stream_for(level, server_side)
    decoded = new_decoder(level, server_side).feed(data)
    if server_side:
        decoded = decoded[1:]  # the CONNECT prelude
    assert decoded == packets
    return decoded


def test_every_configuration_has_a_non_trivial_stream() -> None:
    for level, server_side in CONFIGURATIONS:
        assert len(stream_for(level, server_side)[1]) >= 5


def test_whole_stream_in_one_chunk_and_byte_by_byte_agree() -> None:
    for level, server_side in CONFIGURATIONS:
        data, _ = stream_for(level, server_side)
        whole = new_decoder(level, server_side).feed(data)
        decoder = new_decoder(level, server_side)
        bytewise = feed_in_chunks(decoder, data, list(range(len(data))))
        assert bytewise == whole
        assert decoder.buffered == 0


@settings(max_examples=150, deadline=None)
@given(
    configuration=st.sampled_from(CONFIGURATIONS),
    cuts=st.lists(st.integers(min_value=0, max_value=100_000), max_size=40),
)
def test_any_split_gives_the_same_packets(configuration: tuple[int, bool], cuts: list[int]) -> None:
    level, server_side = configuration
    data, _ = stream_for(level, server_side)
    whole = new_decoder(level, server_side).feed(data)
    split = feed_in_chunks(new_decoder(level, server_side), data, [cut % (len(data) + 1) for cut in cuts])
    assert split == whole


def test_partial_packet_stays_buffered_until_complete() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(CONNECT_PRELUDE[MQTT_3_1_1][:5]) == []
    assert decoder.buffered == 5
    assert len(decoder.feed(CONNECT_PRELUDE[MQTT_3_1_1][5:])) == 1
    publish = h("30 CB 01 0001 74") + b"x" * 200
    assert decoder.feed(publish[:100]) == []
    assert decoder.feed(publish[100:150]) == []
    assert decoder.feed(publish[150:] + h("C0")) == [Publish("t", b"x" * 200)]
    assert decoder.buffered == 1
    assert len(decoder.feed(h("00"))) == 1


def test_bytearray_and_memoryview_chunks_are_accepted() -> None:
    decoder = FrameDecoder()
    decoder.feed(bytearray(CONNECT_PRELUDE[MQTT_3_1_1]))
    assert decoder.feed(memoryview(h("30 07 0003 612F62 6869"))) == [Publish("a/b", b"hi")]


def test_empty_feed_returns_nothing() -> None:
    assert FrameDecoder().feed(b"") == []


def test_large_publish_in_many_small_chunks() -> None:
    payload = bytes(range(256)) * 1024  # 256 KiB
    decoder = FrameDecoder()
    decoder.feed(CONNECT_PRELUDE[MQTT_3_1_1])
    wire = h("30 83 80 10 0001 74") + payload
    packets: list[Packet] = []
    for start in range(0, len(wire), 1000):
        packets.extend(decoder.feed(wire[start : start + 1000]))
    assert packets == [Publish("t", payload)]
