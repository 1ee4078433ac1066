"""TopicTree: exact dict + wildcard trie, checked against a naive matcher."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from instamsg.broker.router import min_wildcard_level
from instamsg.broker.topic_tree import NO_WILDCARDS, TopicTree, topic_matches
from instamsg.mqtt.topics import matches


def build(*filters: str) -> TopicTree[list[str]]:
    tree: TopicTree[list[str]] = TopicTree(list)
    for topic_filter in filters:
        tree.get_or_create(topic_filter).append(topic_filter)
    return tree


def matched(tree: TopicTree[list[str]], topic: str, level: int = 0) -> set[str]:
    return {name for bucket in tree.match(topic, level) for name in bucket}


def test_exact_and_wildcards() -> None:
    tree = build("a/b", "a/+", "a/#", "#", "+/b", "a/b/c", "+/+", "a/+/c")
    assert matched(tree, "a/b") == {"a/b", "a/+", "a/#", "#", "+/b", "+/+"}
    assert matched(tree, "a") == {"a/#", "#"}  # MQTT-4.7.1-2: "a/#" matches the parent "a"
    assert matched(tree, "a/x/c") == {"a/#", "#", "a/+/c", "a/b/c"} - {"a/b/c"}
    assert matched(tree, "b") == {"#"}


def test_plus_matches_empty_level() -> None:
    tree = build("a/+/c", "+", "/+")
    assert matched(tree, "a//c") == {"a/+/c"}
    assert matched(tree, "/x") == {"/+"}
    assert matched(tree, "") == {"+"}


def test_dollar_topics_not_matched_by_leading_wildcards() -> None:  # MQTT-4.7.2-1
    tree = build("#", "+/info", "$SYS/#", "$SYS/info")
    assert matched(tree, "$SYS/info", min_wildcard_level("$SYS/info")) == {"$SYS/#", "$SYS/info"}


def test_reserved_topics_fenced_off() -> None:
    uuid = "0a1b2c3d-0000-4000-8000-00000000000a"
    tree = build("#", "+", uuid, "instamsg/#", f"instamsg/clients/{uuid}/#", "instamsg/clients/+/info")
    assert matched(tree, uuid, min_wildcard_level(uuid)) == {uuid}
    topic = f"instamsg/clients/{uuid}/info"
    assert matched(tree, topic, min_wildcard_level(topic)) == {f"instamsg/clients/{uuid}/#"}
    assert matched(tree, "instamsg/other", min_wildcard_level("instamsg/other")) == set()
    assert min_wildcard_level("instamsg/other") == NO_WILDCARDS


def test_remove_prunes() -> None:
    tree = build("a/+/c", "a/#", "x")
    assert len(tree) == 3
    tree.remove("a/+/c")
    tree.remove("a/#")
    tree.remove("x")
    tree.remove("never/+")
    assert len(tree) == 0
    assert tree.match("a/b/c") == []
    assert list(tree.filters()) == []


def test_get_and_filters() -> None:
    tree = build("a/+/c", "a/#", "x")
    assert tree.get("a/+/c") == ["a/+/c"]
    assert tree.get("a/#") == ["a/#"]
    assert tree.get("a/+") is None
    assert sorted(name for name, _ in tree.filters()) == ["a/#", "a/+/c", "x"]


levels = st.sampled_from(["a", "b", "", "$s", "c"])
topics = st.lists(levels, min_size=1, max_size=4).map("/".join)
filter_levels = st.sampled_from(["a", "b", "", "+", "$s"])


@st.composite
def filters(draw: st.DrawFn) -> str:
    parts = draw(st.lists(filter_levels, min_size=1, max_size=4))
    if draw(st.booleans()):
        parts.append("#")
    return "/".join(parts)


@settings(max_examples=300, deadline=None)
@given(st.lists(filters(), max_size=12), topics)
def test_tree_agrees_with_naive_matcher(filter_list: list[str], topic: str) -> None:
    tree = build(*filter_list)
    expected = {topic_filter for topic_filter in filter_list if matches(topic, topic_filter)}
    assert matched(tree, topic, 1 if topic.startswith("$") else 0) == expected
    assert {f for f in filter_list if topic_matches(topic, f, 1 if topic.startswith("$") else 0)} == expected
