from __future__ import annotations

from instamsg.broker.router import LocalRouter, SharedGroup, Subscription, is_reserved, is_uuid
from instamsg.broker.session import Session


def subscribe(
    router: LocalRouter, tenant: str, uuid: str, topic_filter: str, group: str | None = None
) -> Subscription:
    subscription = Subscription(Session(uuid, tenant), topic_filter, 1, share_group=group)
    router.subscribe(tenant, subscription)
    return subscription


def test_tenants_have_separate_trees() -> None:
    router = LocalRouter()
    subscribe(router, "a", "u1", "#")
    subscribe(router, "b", "u2", "x")
    assert [list(bucket.subscribers) for bucket in router.match("a", "x")] == [["u1"]]
    assert [list(bucket.subscribers) for bucket in router.match("b", "x")] == [["u2"]]
    assert router.match("c", "x") == []


def test_unsubscribe_removes_empty_buckets() -> None:
    router = LocalRouter()
    subscribe(router, "a", "u1", "x/+")
    subscribe(router, "a", "u2", "x/+", group="g")
    router.unsubscribe("a", "u1", "x/+", None)
    assert router.subscription_count() == 1
    router.unsubscribe("a", "u2", "x/+", "g")
    assert router.subscription_count() == 0
    router.remove_tenant("a")


def test_shared_group_round_robin_prefers_connected() -> None:
    group = SharedGroup()
    members = [Subscription(Session(f"u{index}", "t"), "x", 1, share_group="g") for index in range(3)]
    for member in members:
        group.members[member.session.client_uuid] = member
    assert all(group.pick() is not None for _ in range(3))  # offline: still picked
    members[1].session.channel = object()  # type: ignore[assignment]
    assert {id(group.pick()) for _ in range(4)} == {id(members[1])}


def test_reserved_topic_shapes() -> None:
    assert is_uuid("0A1B2C3D-0000-4000-8000-00000000000A")
    assert not is_uuid("0a1b2c3d-0000-4000-8000-00000000000g")
    assert not is_uuid("0a1b2c3d00000-4000-8000-00000000000a")
    assert is_reserved("instamsg/anything")
    assert not is_reserved("instamsgx/anything")
