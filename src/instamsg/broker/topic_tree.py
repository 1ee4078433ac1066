"""Subscription index: a dict for exact filters plus a trie for wildcard filters.

Matching costs one dict lookup plus a walk bounded by the topic's levels and the wildcard branches
present, never a scan over all subscriptions. Each filter owns one bucket (whatever the caller stores:
subscribers, shared groups); `match` returns the buckets of every filter matching a topic.

`min_wildcard_level` lets the caller fence topics off from wildcards: level-0 wildcards never match
`$`-topics (MQTT-4.7.2-1), and InstaMsg's reserved topics admit wildcards only inside a client's own
`instamsg/clients/<uuid>/` prefix (spec C8) or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

B = TypeVar("B")

NO_WILDCARDS = 1 << 30


class _Node(Generic[B]):
    __slots__ = ("bucket", "children", "hash_bucket", "plus")

    def __init__(self) -> None:
        self.children: dict[str, _Node[B]] = {}
        self.plus: _Node[B] | None = None
        self.bucket: B | None = None  # a wildcard filter ending at this node (after a `+`)
        self.hash_bucket: B | None = None  # the filter "<path to here>/#"

    def is_empty(self) -> bool:
        return not self.children and self.plus is None and self.bucket is None and self.hash_bucket is None


def has_wildcard(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter


class TopicTree(Generic[B]):
    __slots__ = ("_exact", "_factory", "_root", "_wildcard_count")

    def __init__(self, factory: Callable[[], B]) -> None:
        self._factory = factory
        self._exact: dict[str, B] = {}
        self._root: _Node[B] = _Node()
        self._wildcard_count = 0

    def __len__(self) -> int:
        return len(self._exact) + self._wildcard_count

    def get(self, topic_filter: str) -> B | None:
        if not has_wildcard(topic_filter):
            return self._exact.get(topic_filter)
        node: _Node[B] | None = self._root
        levels = topic_filter.split("/")
        for level in levels[:-1] if levels[-1] == "#" else levels:
            if node is None:
                return None
            node = node.plus if level == "+" else node.children.get(level)
        if node is None:
            return None
        return node.hash_bucket if levels[-1] == "#" else node.bucket

    def get_or_create(self, topic_filter: str) -> B:
        if not has_wildcard(topic_filter):
            bucket = self._exact.get(topic_filter)
            if bucket is None:
                bucket = self._exact[topic_filter] = self._factory()
            return bucket
        levels = topic_filter.split("/")
        is_hash = levels[-1] == "#"
        node = self._root
        for level in levels[:-1] if is_hash else levels:
            if level == "+":
                if node.plus is None:
                    node.plus = _Node()
                node = node.plus
            else:
                child = node.children.get(level)
                if child is None:
                    child = node.children[level] = _Node()
                node = child
        if is_hash:
            if node.hash_bucket is None:
                node.hash_bucket = self._factory()
                self._wildcard_count += 1
            return node.hash_bucket
        if node.bucket is None:
            node.bucket = self._factory()
            self._wildcard_count += 1
        return node.bucket

    def remove(self, topic_filter: str) -> None:
        """Drop the filter's bucket and prune empty trie nodes."""
        if not has_wildcard(topic_filter):
            self._exact.pop(topic_filter, None)
            return
        levels = topic_filter.split("/")
        is_hash = levels[-1] == "#"
        path: list[tuple[_Node[B], str]] = []
        node: _Node[B] | None = self._root
        for level in levels[:-1] if is_hash else levels:
            assert node is not None
            path.append((node, level))
            node = node.plus if level == "+" else node.children.get(level)
            if node is None:
                return
        assert node is not None
        if is_hash:
            if node.hash_bucket is None:
                return
            node.hash_bucket = None
        else:
            if node.bucket is None:
                return
            node.bucket = None
        self._wildcard_count -= 1
        for parent, level in reversed(path):
            if not node.is_empty():
                break
            if level == "+":
                parent.plus = None
            else:
                del parent.children[level]
            node = parent

    def match(self, topic: str, min_wildcard_level: int = 0) -> list[B]:
        """Buckets of every filter matching `topic`; wildcards only at levels >= min_wildcard_level."""
        result: list[B] = []
        exact = self._exact.get(topic)
        if exact is not None:
            result.append(exact)
        if self._wildcard_count == 0 or min_wildcard_level >= NO_WILDCARDS:
            return result
        levels = topic.split("/")
        self._walk(self._root, levels, 0, min_wildcard_level, result)
        return result

    def _walk(self, node: _Node[B], levels: list[str], index: int, min_level: int, result: list[B]) -> None:
        if index >= min_level and node.hash_bucket is not None:
            result.append(node.hash_bucket)  # "x/#" matches "x" and everything below it
        if index == len(levels):
            # Only a filter that used a wildcard sits in the trie; exact ones were found in the dict.
            if node.bucket is not None:
                result.append(node.bucket)
            return
        child = node.children.get(levels[index])
        if child is not None:
            self._walk(child, levels, index + 1, min_level, result)
        if node.plus is not None and index >= min_level:
            self._walk(node.plus, levels, index + 1, min_level, result)

    def filters(self) -> Iterator[tuple[str, B]]:
        """Every (filter, bucket); for diagnostics and tests, not the hot path."""
        yield from self._exact.items()
        stack: list[tuple[_Node[B], list[str]]] = [(self._root, [])]
        while stack:
            node, path = stack.pop()
            if node.bucket is not None:
                yield "/".join(path), node.bucket
            if node.hash_bucket is not None:
                yield "/".join([*path, "#"]), node.hash_bucket
            for level, child in node.children.items():
                stack.append((child, [*path, level]))
            if node.plus is not None:
                stack.append((node.plus, [*path, "+"]))


def topic_matches(topic: str, topic_filter: str, min_wildcard_level: int = 0) -> bool:
    """Whether one filter matches one topic (retained replay; the tree is for the many-filter case)."""
    topic_levels = topic.split("/")
    filter_levels = topic_filter.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return index >= min_wildcard_level
        if index >= len(topic_levels):
            return False
        if level == "+":
            if index < min_wildcard_level:
                return False
            continue
        if level != topic_levels[index]:
            return False
    return len(topic_levels) == len(filter_levels)
