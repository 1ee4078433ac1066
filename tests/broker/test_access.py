"""ACL rules of spec §6.2/§6.3/C8/C9 and the per-connection cache."""

from __future__ import annotations

import pytest

from instamsg.broker.access import PUBLISH, SUBSCRIBE, AccessCache, may_publish, may_subscribe
from instamsg.broker.ports import ClientRecord

ME = "0a1b2c3d-0000-4000-8000-00000000000a"
PEER = "0a1b2c3d-0000-4000-8000-00000000000b"


def client(pub: tuple[str, ...] = (), sub: tuple[str, ...] = ()) -> ClientRecord:
    return ClientRecord(ME, "t", "token", pub_topics=pub, sub_topics=sub)


@pytest.mark.parametrize(
    ("allowed", "requested", "expected"),
    [
        ("a/+", "a/b", True),
        ("a/+", "a/#", False),  # the amqtt escalation
        ("a/#", "a/b/+", True),
        ("a/#", "a", True),
        ("a/+", "a/+/b", False),
        ("#", "x/#", True),
        ("#", "$SYS/x", False),
        ("a/b", "a/+", False),
    ],
)
def test_subscribe_coverage(allowed: str, requested: str, expected: bool) -> None:
    assert may_subscribe(client(sub=(allowed,)), requested) is expected


def test_own_inbox_and_namespace_always_allowed() -> None:
    record = client()
    assert may_subscribe(record, ME)
    assert may_subscribe(record, f"instamsg/clients/{ME}/#")
    assert may_subscribe(record, f"instamsg/clients/{ME}/+/x")
    assert not may_subscribe(record, PEER)
    assert not may_subscribe(record, f"instamsg/clients/{PEER}/#")


def test_reserved_filters_need_exact_entries() -> None:
    record = client(sub=("#", f"instamsg/clients/{PEER}/logs", PEER))
    assert may_subscribe(record, f"instamsg/clients/{PEER}/logs")
    assert not may_subscribe(record, f"instamsg/clients/{PEER}/+")
    assert not may_subscribe(record, "instamsg/#")
    assert not may_subscribe(record, PEER)  # another client's inbox is never subscribable


def test_publish_rules() -> None:
    record = client(pub=("a/+", "#"))
    assert may_publish(record, "a/b")
    assert not may_publish(record, PEER)  # wildcards never grant p2p (C9)
    assert may_publish(record, ME)  # loopback
    assert not may_publish(record, "instamsg/clients/x/files")
    assert not may_publish(record, "$SYS/x")
    granted = client(pub=(PEER.upper(), f"instamsg/clients/{PEER}/files"))
    assert may_publish(granted, PEER)
    assert may_publish(granted, f"instamsg/clients/{PEER}/files")
    assert not may_publish(granted, "a")


def test_cache_is_bounded_and_clearable() -> None:
    cache = AccessCache()
    cache.put(PUBLISH, "a", True)
    cache.put(SUBSCRIBE, "a", False)
    assert cache.get(PUBLISH, "a") is True and cache.get(SUBSCRIBE, "a") is False
    for index in range(5000):
        cache.put(PUBLISH, str(index), True)
    assert len(cache) <= 4097
    cache.clear()
    assert cache.get(PUBLISH, "a") is None
