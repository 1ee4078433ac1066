from __future__ import annotations

from instamsg.broker.message import Message
from instamsg.broker.retain import RetainStore


def retained(topic: str, payload: bytes, tenant: str = "a") -> Message:
    return Message(tenant, topic, payload, 1, True, None)


def test_set_replace_clear_per_tenant() -> None:  # MQTT-3.3.1-5, -6, -7 (3.1.1: -10, -11)
    store = RetainStore()
    store.store(retained("x/y", b"1"))
    store.store(retained("x/y", b"2"))
    store.store(retained("x/y", b"b", tenant="b"))
    assert [m.payload for m in store.lookup("a", "x/y")] == [b"2"]
    assert [m.payload for m in store.lookup("a", "x/+")] == [b"2"]
    assert [m.payload for m in store.lookup("b", "#")] == [b"b"]
    store.store(retained("x/y", b""))
    assert store.lookup("a", "#") == []
    assert store.count() == 1


def test_reserved_and_dollar_topics() -> None:
    store = RetainStore()
    assert not store.store(retained("0a1b2c3d-0000-4000-8000-00000000000a", b"x"))
    assert not store.store(retained("instamsg/clients/x/info", b"x"))
    store.store(retained("$app/x", b"x"))
    assert store.lookup("a", "#") == []  # MQTT-4.7.2-1
    assert len(store.lookup("a", "$app/#")) == 1


def test_limits_and_expiry() -> None:
    store = RetainStore(max_per_tenant=1, max_payload=3)
    assert not store.store(retained("big", b"1234"))
    assert store.store(retained("one", b"1"))
    assert not store.store(retained("two", b"2"))
    assert store.store(retained("one", b"3"))  # replacing never counts against the limit
    assert store.refused == 2
    expired = retained("one", b"x")
    expired.expires_at = 0.0
    store.store(expired)
    assert store.lookup("a", "one") == []
