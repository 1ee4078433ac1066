"""Tenant isolation, ACL escalation attempts, bad credentials, and a bounded fuzz of the live broker."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from instamsg.broker import BrokerNode
from instamsg.mqtt.packets import Will
from tests.broker.support import (
    ALICE,
    BOB,
    CAROL,
    MALLORY,
    TENANT_A,
    RawClient,
    connect_bytes,
    publish_bytes,
    subscribe_bytes,
)

Connect = Callable[[], Any]


async def connected(connect_raw: Connect, identity: Any, level: int = 4, **kwargs: Any) -> RawClient:
    client: RawClient = await connect_raw()
    answer = await client.connect(identity, level=level, **kwargs)
    assert answer[0] == 0x20 and answer[3] == 0, answer
    return client


async def test_no_path_crosses_tenants(connect_raw: Connect, node: BrokerNode) -> None:
    # Tenant A: a retained message and a will waiting to fire.
    alice = await connected(connect_raw, ALICE)
    alice.send(publish_bytes("shared/topic", b"A-retained", retain=True))
    # Tenant B: Mallory has pub_topics/sub_topics "#" and tries every path.
    mallory = await connected(connect_raw, MALLORY)
    mallory.send(
        subscribe_bytes(
            1, ("#", 1), ("+/#", 1), ("shared/topic", 1), ("$share/g/#", 1), ("$share/g/shared/+", 1)
        )
    )
    await mallory.expect(b"\x90\x07\x00\x01\x01\x01\x01\x01\x01")
    mallory.send(subscribe_bytes(2, (ALICE.uuid, 1), (f"instamsg/clients/{ALICE.uuid}/#", 1)))
    await mallory.expect(b"\x90\x04\x00\x02\x80\x80")
    # Tenant A subscribers with the same shared group name.
    carol = await connected(connect_raw, CAROL)
    carol.send(subscribe_bytes(1, ("$share/g/#", 1), ("#", 0)))
    await carol.expect(b"\x90\x04\x00\x01\x01\x00")
    await carol.read_packet()  # its own tenant's retained message (via "#")
    dying = await connected(connect_raw, BOB, will=Will("will/x", b"A-will"))
    dying.writer.transport.abort()
    for _ in range(2):  # the will reaches tenant A only ("#" and the shared subscription)
        assert b"A-will" in await carol.read_packet()
    alice.send(publish_bytes("shared/topic", b"A-live", qos=1, packet_id=1))
    await alice.expect(b"\x40\x02\x00\x01")
    for _ in range(2):  # "#" and the shared subscription
        await carol.read_packet()
    alice.send(publish_bytes(MALLORY.uuid, b"p2p", qos=1, packet_id=2))  # not a peer in tenant A
    await alice.expect(b"\x40\x02\x00\x02")
    mallory.send(publish_bytes(ALICE.uuid, b"to-alice", qos=1, packet_id=3))
    await mallory.expect(b"\x40\x02\x00\x03")
    mallory.send(publish_bytes("shared/topic", b"B-live"))
    # Mallory sees only her own message; tenant A sees nothing from tenant B.
    for _ in range(3):  # the merged normal subscriptions and each of her two shared ones
        packet = await mallory.read_packet()
        assert b"B-live" in packet and b"A-" not in packet
    await mallory.expect_silence()
    await carol.expect_silence()
    assert node.retain.count(TENANT_A) == 1


async def test_acl_escalation_with_wildcards_refused(connect_raw: Connect) -> None:
    bob = await connected(connect_raw, BOB)  # sub_topics: sensors/+, a/#
    attempts = [
        ("sensors/#", 0x80),
        ("#", 0x80),
        ("+/+", 0x80),
        ("sensors/+/x", 0x80),
        ("$share/g/sensors/#", 0x80),
        ("+", 0x80),
        (ALICE.uuid, 0x80),
        ("instamsg/#", 0x80),
        (f"instamsg/clients/{ALICE.uuid}/#", 0x80),
        ("a/b/+", 1),
        ("sensors/t", 1),
        (BOB.uuid, 1),
        (f"instamsg/clients/{BOB.uuid}/#", 1),
    ]
    bob.send(subscribe_bytes(1, *[(topic_filter, 1) for topic_filter, _ in attempts]))
    expected = bytes([0x90, 2 + len(attempts), 0, 1, *[code for _, code in attempts]])
    await bob.expect(expected)


async def test_wildcards_never_match_reserved_topics(connect_raw: Connect, node: BrokerNode) -> None:
    carol = await connected(connect_raw, CAROL)
    carol.send(subscribe_bytes(1, ("#", 0), ("+", 0), ("+/clients/#", 0)))
    await carol.expect(b"\x90\x05\x00\x01\x00\x00\x00")
    assert node.deliver(TENANT_A, None, ALICE.uuid, b"inbox", 0) == 0
    assert node.deliver(TENANT_A, None, f"instamsg/clients/{ALICE.uuid}/x", b"ns", 0) == 0
    assert node.deliver(TENANT_A, None, "instamsg/clients", b"ns", 0) == 0
    await carol.expect_silence()


async def test_publish_acl_denials_are_silent_drops_in_311(connect_raw: Connect) -> None:
    carol = await connected(connect_raw, CAROL)
    carol.send(subscribe_bytes(1, ("#", 0)))
    await carol.expect(b"\x90\x03\x00\x01\x00")
    bob = await connected(connect_raw, BOB)  # pub_topics: sensors/#, a/b, will/#
    bob.send(publish_bytes("other", b"x", qos=1, packet_id=1))
    await bob.expect(b"\x40\x02\x00\x01")
    bob.send(publish_bytes("other", b"x", qos=2, packet_id=2))
    await bob.expect(b"\x50\x02\x00\x02")
    bob.send(b"\x62\x02\x00\x02")
    await bob.expect(b"\x70\x02\x00\x02")
    bob.send(publish_bytes(CAROL.uuid, b"p2p", qos=1, packet_id=3))  # no exact entry: denied
    await bob.expect(b"\x40\x02\x00\x03")
    await carol.expect_silence()


async def test_bad_passwords_then_good(connect_raw: Connect) -> None:
    for attempt in range(20):
        client = await connect_raw()
        client.send(connect_bytes(ALICE, password=f"guess{attempt}"))
        assert await client.expect_closed() == b"\x20\x02\x00\x04"
    client = await connect_raw()
    client.send(connect_bytes(MALLORY, password=ALICE.token))  # another client's token
    assert await client.expect_closed() == b"\x20\x02\x00\x04"
    await connected(connect_raw, ALICE)


def _mutations(rng: random.Random) -> list[bytes]:
    valid = [
        connect_bytes(ALICE),
        connect_bytes(ALICE, level=5, properties={"session_expiry_interval": 5}),
        publish_bytes("a/b", b"payload", qos=1, packet_id=1),
        subscribe_bytes(1, ("a/+", 1)),
        b"\xc0\x00",
        b"\xe0\x00",
    ]
    cases: list[bytes] = []
    for _ in range(60):
        cases.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))))
    for _ in range(120):
        first = rng.choice(valid[:2])
        follow = bytearray(rng.choice(valid))
        for _ in range(rng.randint(1, 4)):
            follow[rng.randrange(len(follow))] = rng.getrandbits(8)
        if rng.random() < 0.3:
            del follow[rng.randrange(len(follow)) :]
        if rng.random() < 0.5:
            cases.append(first + bytes(follow))
        else:
            mutated_connect = bytearray(first)
            mutated_connect[rng.randrange(len(mutated_connect))] = rng.getrandbits(8)
            cases.append(bytes(mutated_connect) + bytes(follow))
    cases.append(b"\x30\xff\xff\xff\xff\x7f")  # remaining length beyond 4 bytes
    cases.append(connect_bytes(ALICE) + b"\x30\xff\xff\xff\x7f")  # 256 MB announced
    return cases


async def test_fuzzed_packets_close_only_their_connection(node: BrokerNode) -> None:
    port = node.ports["mqtt"]
    assert port is not None
    rng = random.Random(1234)
    survivor = await RawClient.open("127.0.0.1", port)
    assert await survivor.connect(CAROL) == b"\x20\x02\x00\x00"

    async def attack(data: bytes) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        try:
            await asyncio.wait_for(reader.read(4096), 0.3)
        except TimeoutError:
            pass
        writer.close()

    cases = _mutations(rng)
    for start in range(0, len(cases), 40):
        await asyncio.gather(*(attack(data) for data in cases[start : start + 40]))
    survivor.send(b"\xc0\x00")
    await survivor.expect(b"\xd0\x00")
    fresh = await RawClient.open("127.0.0.1", port)
    assert await fresh.connect(BOB) == b"\x20\x02\x00\x00"
    fresh.send(subscribe_bytes(1, ("a/z", 0)))
    await fresh.expect(b"\x90\x03\x00\x01\x00")
    survivor.send(publish_bytes("a/z", b"still-alive"))
    await fresh.expect(publish_bytes("a/z", b"still-alive"))
    fresh.close()
    survivor.close()
