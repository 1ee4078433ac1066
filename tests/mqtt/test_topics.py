"""Topic names and filters: validation, matching, coverage, shared subscriptions (MQTT §4.7)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instamsg.mqtt import (
    InvalidTopic,
    ReasonCode,
    filter_covers,
    matches,
    parse_shared_subscription,
    split_levels,
    validate_topic_filter,
    validate_topic_name,
)


@pytest.mark.parametrize(
    "name",
    ["a", "/", "a/b", "/a", "a/", "a//b", "$SYS/x", "instamsg/clients/x/info", "ü/日本", " ", "a" * 65535],
)
def test_valid_topic_names(name: str) -> None:
    validate_topic_name(name)


@pytest.mark.parametrize(
    ("name", "statement"),
    [
        ("", "MQTT-4.7.3-1"),
        ("a/+", "MQTT-4.7.1-1"),
        ("a/#", "MQTT-4.7.1-1"),
        ("+", "MQTT-4.7.1-1"),
        ("a+b", "MQTT-4.7.1-1"),
        ("a\x00b", "MQTT-4.7.3-2"),
        ("a" * 65536, "MQTT-4.7.3-3"),
        ("é" * 32768, "MQTT-4.7.3-3"),
    ],
)
def test_invalid_topic_names(name: str, statement: str) -> None:
    with pytest.raises(InvalidTopic) as raised:
        validate_topic_name(name)
    assert raised.value.reason_code == ReasonCode.TOPIC_NAME_INVALID


@pytest.mark.parametrize(
    "topic_filter",
    [
        "#",
        "+",
        "a/#",
        "a/+",
        "+/+",
        "+/#",
        "/+",
        "a//+",
        "$SYS/#",
        "a/+/b/#",
        "a/b",
        "$share/g/a/#",
        "a" * 65535,
    ],
)
def test_valid_topic_filters(topic_filter: str) -> None:
    validate_topic_filter(topic_filter)


@pytest.mark.parametrize(
    ("topic_filter", "statement"),
    [
        ("", "MQTT-4.7.3-1"),
        ("a/#/b", "MQTT-4.7.1-2"),
        ("#/", "MQTT-4.7.1-2"),
        ("a#", "MQTT-4.7.1-2"),
        ("a/b#", "MQTT-4.7.1-2"),
        ("a+", "MQTT-4.7.1-3"),
        ("a/+b/c", "MQTT-4.7.1-3"),
        ("++", "MQTT-4.7.1-3"),
        ("a\x00", "MQTT-4.7.3-2"),
        ("a" * 65536, "MQTT-4.7.3-3"),
    ],
)
def test_invalid_topic_filters(topic_filter: str, statement: str) -> None:
    with pytest.raises(InvalidTopic) as raised:
        validate_topic_filter(topic_filter)
    assert raised.value.reason_code == ReasonCode.TOPIC_FILTER_INVALID


def test_split_levels() -> None:
    assert split_levels("a//b/") == ["a", "", "b", ""]
    assert split_levels("/") == ["", ""]


MATCHES = [
    # (name, filter, expected)
    ("a/b", "a/b", True),
    ("a/b", "a/c", False),
    ("a/b", "a/+", True),
    ("a/b/c", "a/+", False),
    ("a", "a/+", False),
    ("a/", "a/+", True),  # + matches an empty level
    ("a/b/c", "a/#", True),
    ("a", "a/#", True),  # MQTT 4.7.1.2: sport/# matches sport
    ("ab", "a/#", False),
    ("a/b", "#", True),
    ("/a", "#", True),
    ("/a", "+/a", True),
    ("/a", "/+", True),
    ("a/b/c", "+/+/+", True),
    ("a/b", "+/+/+", False),
    ("a/b/c/d", "a/+/c/#", True),
    ("a/x/c", "a/+/c/#", True),
    ("a/b", "a/b/#", True),
    ("a", "+", True),
    ("a/b", "+", False),
    ("/", "+/+", True),
    ("/", "#", True),
    # [MQTT-4.7.2-1]: wildcards at the first level do not match $ topics
    ("$SYS/x", "#", False),
    ("$SYS/x", "+/x", False),
    ("$SYS", "+", False),
    ("$SYS/x", "$SYS/#", True),
    ("$SYS/x", "$SYS/+", True),
    ("$SYS", "$SYS/#", True),
    ("a/$x", "a/+", True),
    ("a/$x", "a/#", True),
    ("A/b", "a/b", False),  # case-sensitive
]


@pytest.mark.parametrize(("name", "topic_filter", "expected"), MATCHES)
def test_matches(name: str, topic_filter: str, expected: bool) -> None:
    assert matches(name, topic_filter) is expected


COVERS = [
    # (allowed, requested, expected)
    ("a/#", "a/b/+", True),
    ("a/#", "a/#", True),
    ("a/#", "a", True),
    ("a/#", "a/b", True),
    ("a/#", "b/#", False),
    ("a/#", "#", False),
    ("a/#", "+/b", False),
    ("a/+", "a/#", False),
    ("a/+", "a/b", True),
    ("a/+", "a/+", True),
    ("a/+", "a/b/c", False),
    ("a/+", "a", False),
    ("+/+", "a/+", True),
    ("+/+", "+/b", True),
    ("+/+", "a/#", False),
    ("+/+", "+", False),
    ("a/b", "a/+", False),
    ("a/b", "a/b", True),
    ("#", "a/b", True),
    ("#", "+/+/#", True),
    ("#", "#", True),
    ("#", "+", True),
    ("+/#", "#", True),  # every name has at least one level
    ("+/#", "a", True),
    ("+/+/#", "#", False),
    ("a/+/#", "a/#", False),  # a/# matches "a"; a/+/# does not
    # $-rooted subtleties: a leading wildcard never matches $ topics [MQTT-4.7.2-1]
    ("#", "$SYS/#", False),
    ("#", "$SYS/x", False),
    ("+/#", "$SYS/x", False),
    ("+/x", "$a/x", False),
    ("$SYS/#", "$SYS/+", True),
    ("$SYS/#", "$SYS", True),
    ("$SYS/#", "+/x", False),
    ("$SYS/+", "$SYS/x", True),
    ("a/#", "a/$x", True),
]


@pytest.mark.parametrize(("allowed", "requested", "expected"), COVERS)
def test_filter_covers(allowed: str, requested: str, expected: bool) -> None:
    assert filter_covers(allowed, requested) is expected


# Brute-force reference for filter_covers: enumerate topic names over a small alphabet that contains
# every literal level of both filters, one fresh level, a fresh $ level and the empty level; a filter
# pattern cannot tell two levels apart unless one of them is a literal it names.

FILTER_LEVELS = ["a", "b", "$s", "", "+"]


def _filters() -> st.SearchStrategy[str]:
    middle = st.lists(st.sampled_from(FILTER_LEVELS), min_size=1, max_size=4)
    return st.builds(
        lambda levels, hash_tail: "/".join(levels + (["#"] if hash_tail else [])),
        middle,
        st.booleans(),
    ).filter(bool) | st.just("#")


def _reference_covers(allowed: str, requested: str) -> bool:
    literals = {level for level in allowed.split("/") + requested.split("/") if level not in ("+", "#")}
    alphabet = sorted(literals | {"fresh", "$fresh", ""})
    depth = max(len(allowed.split("/")), len(requested.split("/"))) + 1
    for length in range(1, depth + 1):
        for levels in itertools.product(alphabet, repeat=length):
            name = "/".join(levels)
            if matches(name, requested) and not matches(name, allowed):
                return False
    return True


@settings(max_examples=300, deadline=None)
@given(allowed=_filters(), requested=_filters())
def test_filter_covers_agrees_with_brute_force(allowed: str, requested: str) -> None:
    validate_topic_filter(allowed)
    validate_topic_filter(requested)
    assert filter_covers(allowed, requested) is _reference_covers(allowed, requested)


def test_reference_matches_mqtt_spec_examples() -> None:
    # The brute force relies on matches(); pin matches() to the MQTT 3.1.1 §4.7.1 examples.
    assert matches("sport/tennis/player1", "sport/tennis/player1/#")
    assert matches("sport/tennis/player1/ranking", "sport/tennis/player1/#")
    assert matches("sport/tennis/player1/score/wimbledon", "sport/tennis/player1/#")
    assert matches("sport", "sport/#")
    assert matches("sport/tennis/player1", "sport/tennis/+")
    assert not matches("sport/tennis/player1/ranking", "sport/tennis/+")
    assert not matches("sport", "sport/+")
    assert matches("sport/", "sport/+")
    assert matches("/finance", "+/+")
    assert matches("/finance", "/+")
    assert not matches("/finance", "+")


@pytest.mark.parametrize(
    ("topic_filter", "expected"),
    [
        ("$share/group/a/b", ("group", "a/b")),
        ("$share/g/#", ("g", "#")),
        ("$share/g/+/x", ("g", "+/x")),
        ("$share/g//a", ("g", "/a")),
        ("a/b", None),
        ("$SYS/#", None),
        ("$sharex/g/a", None),
        ("$shar/g/a", None),
    ],
)
def test_parse_shared_subscription(topic_filter: str, expected: tuple[str, str] | None) -> None:
    assert parse_shared_subscription(topic_filter) == expected


@pytest.mark.parametrize(
    "topic_filter",
    ["$share//a", "$share/g", "$share/g/", "$share/+/a", "$share/#/a", "$share/g+/a", "$share/g/a/#/b"],
)
def test_invalid_shared_subscriptions(topic_filter: str) -> None:
    with pytest.raises(InvalidTopic) as raised:
        parse_shared_subscription(topic_filter)
    assert raised.value.reason_code == ReasonCode.TOPIC_FILTER_INVALID
