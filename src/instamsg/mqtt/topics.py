"""Topic names and filters: validation, matching, coverage and shared subscriptions.

Rules (MQTT 3.1.1 §4.7, MQTT 5.0 §4.7): names and filters are non-empty, at most 65535 UTF-8 bytes and
free of U+0000; ``+`` and ``#`` occupy a whole level, ``#`` only the last one; topic names hold no
wildcards. Filters whose first level is a wildcard do not match topic names starting with ``$``.
"""

from __future__ import annotations

from .errors import InvalidTopic

__all__ = [
    "SHARED_PREFIX",
    "filter_covers",
    "matches",
    "parse_shared_subscription",
    "split_levels",
    "validate_topic_filter",
    "validate_topic_name",
]

SHARED_PREFIX = "$share/"
_MAX_BYTES = 65535


def split_levels(topic: str) -> list[str]:
    """Split a topic name or filter into its levels (``"a//b"`` → ``["a", "", "b"]``)."""
    return topic.split("/")


def _check_common(topic: str, kind: str, is_filter: bool) -> None:
    if not topic:
        raise InvalidTopic(f"{kind} is empty", is_filter=is_filter)
    # Only strings that could exceed the limit pay for the encode (UTF-8 is at most 4 bytes per char).
    if len(topic) * 4 > _MAX_BYTES and len(topic.encode("utf-8", "surrogatepass")) > _MAX_BYTES:
        raise InvalidTopic(f"{kind} longer than 65535 bytes", is_filter=is_filter)
    if "\x00" in topic:
        raise InvalidTopic(f"{kind} contains U+0000", is_filter=is_filter)


def validate_topic_name(name: str) -> None:
    """Raise :class:`InvalidTopic` unless ``name`` is a valid topic name (no wildcards)."""
    _check_common(name, "topic name", False)
    if "+" in name or "#" in name:
        raise InvalidTopic("topic name contains a wildcard")


def validate_topic_filter(topic_filter: str) -> None:
    """Raise :class:`InvalidTopic` unless ``topic_filter`` is a valid topic filter.

    A ``$share/<group>/<filter>`` filter is checked as a whole level sequence here; use
    :func:`parse_shared_subscription` to check the group and the inner filter.
    """
    _check_common(topic_filter, "topic filter", True)
    if "+" not in topic_filter and "#" not in topic_filter:
        return
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if level in ("+", "#"):
            if level == "#" and index != last:
                raise InvalidTopic("'#' is not the last level", is_filter=True)
        elif "+" in level or "#" in level:
            raise InvalidTopic("wildcard does not occupy a whole level", is_filter=True)


def matches(topic_name: str, topic_filter: str) -> bool:
    """Whether ``topic_name`` matches ``topic_filter`` (both assumed valid).

    ``a/#`` matches ``a``; ``+`` matches an empty level; names starting with ``$`` are not matched by a
    filter starting with ``+`` or ``#``.
    """
    if topic_name == topic_filter:
        return True
    if "+" not in topic_filter and "#" not in topic_filter:
        return False
    if topic_name.startswith("$") and topic_filter[0] in "+#":
        return False
    names = topic_name.split("/")
    filters = topic_filter.split("/")
    name_count = len(names)
    for index, level in enumerate(filters):
        if level == "#":
            return True
        if index >= name_count:
            return False
        if level != "+" and level != names[index]:
            return False
    return name_count == len(filters)


def filter_covers(allowed_filter: str, requested_filter: str) -> bool:
    """Whether every topic name matched by ``requested_filter`` is matched by ``allowed_filter``.

    Used for ACL checks on SUBSCRIBE. The ``$`` rule is applied exactly, which gives:

    - ``#``, and its equivalent ``+/#``, cover every filter whose first level is a wildcard or a
      literal not starting with ``$`` (``#`` covers ``+/x``), and do not cover ``$SYS/#`` or ``$x``;
    - ``$SYS/#`` covers ``$SYS/+``, but not ``+/x`` (which matches no ``$`` topic, yet also matches
      ``a/x``).

    Both filters are assumed valid and not shared (strip ``$share/<group>/`` first).
    """
    if allowed_filter == requested_filter:
        return True
    if allowed_filter in ("#", "+/#") and not requested_filter.startswith("$"):
        # Every topic name has at least one level, so "+/#" (parent rule) matches what "#" matches.
        return True
    allowed = allowed_filter.split("/")
    requested = requested_filter.split("/")
    allowed_count = len(allowed)
    requested_count = len(requested)
    if requested[0].startswith("$") and allowed[0] in ("+", "#"):
        return False
    for index, level in enumerate(allowed):
        if level == "#":
            return True
        if index >= requested_count:
            # requested ``a`` vs allowed ``a/b``: the name ``a`` is not matched.
            return False
        wanted = requested[index]
        if wanted == "#":
            # requested matches the parent name and every depth; only '#' (handled above) covers that.
            return False
        if level == "+":
            continue
        if wanted != level:
            return False
    return requested_count == allowed_count


def parse_shared_subscription(topic_filter: str) -> tuple[str, str] | None:
    """Split ``$share/<group>/<filter>`` into ``(group, filter)``; ``None`` for a non-shared filter.

    Raises :class:`InvalidTopic` when the group is empty or holds a wildcard, or the inner filter is
    missing or invalid.
    """
    if not topic_filter.startswith(SHARED_PREFIX):
        return None
    group, separator, inner = topic_filter[len(SHARED_PREFIX) :].partition("/")
    if not group:
        raise InvalidTopic("shared subscription with an empty group name", is_filter=True)
    if "+" in group or "#" in group:
        raise InvalidTopic("shared subscription group name contains a wildcard", is_filter=True)
    if not separator or not inner:
        raise InvalidTopic("shared subscription without a topic filter", is_filter=True)
    validate_topic_filter(inner)
    return group, inner
