"""MQTT 3.1 (`MQIsdp`/3) connections: the legacy profile (spec §1.5, §3.2, §3.5, §3.6, C6)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from instamsg.broker import BrokerNode
from instamsg.mqtt.packets import Will
from tests.broker.support import ALICE, CAROL, RawClient, connect_bytes, publish_bytes, subscribe_bytes

Connect = Callable[[], Any]


async def legacy(connect_raw: Connect, identity: Any = ALICE, **kwargs: Any) -> RawClient:
    client: RawClient = await connect_raw()
    client.send(connect_bytes(identity, level=3, **kwargs))
    await client.expect(b"\x20\x02\x00\x00")  # exactly 4 bytes, no session-present bit
    return client


async def test_connack_is_exactly_four_bytes_even_with_clean_session_0(connect_raw: Connect) -> None:
    client = await legacy(connect_raw, clean=False, client_id="EMPTY")
    client.send(b"\xe0\x00")
    await client.expect_closed()
    client = await legacy(connect_raw, clean=False, client_id="EMPTY")  # always clean: nothing resumed


async def test_refusal_codes_are_3x(connect_raw: Connect) -> None:
    client = await connect_raw()
    client.send(connect_bytes(ALICE, level=3, password="bad"))
    assert await client.expect_closed() == b"\x20\x02\x00\x04"


async def test_long_and_empty_client_identifiers_accepted(connect_raw: Connect) -> None:
    await legacy(connect_raw, client_id="x" * 40)
    await legacy(connect_raw, client_id="")


async def test_qos_capped_at_1_granted_and_delivered(connect_raw: Connect) -> None:
    client = await legacy(connect_raw, CAROL)
    client.send(subscribe_bytes(1, ("l", 2)))
    await client.expect(b"\x90\x03\x00\x01\x01")
    sender = await connect_raw()
    await sender.connect(ALICE)
    sender.send(publish_bytes("l", b"v", qos=2, packet_id=3))
    await client.expect(publish_bytes("l", b"v", qos=1, packet_id=1))


async def test_inbound_qos2_full_flow_and_lenient_flags(connect_raw: Connect) -> None:
    client = await legacy(connect_raw)
    client.send(publish_bytes("x", b"v", qos=2, packet_id=3))
    await client.expect(b"\x50\x02\x00\x03")
    client.send(b"\x60\x02\x00\x03")  # PUBREL with flags 0000 (spec §3.2)
    await client.expect(b"\x70\x02\x00\x03")
    client.send(b"\x80\x06\x00\x04\x00\x01x\x00")  # SUBSCRIBE with flags 0000
    await client.expect(b"\x90\x03\x00\x04\x00")


async def test_retain_from_legacy_treated_as_0_and_no_retained_replay(
    connect_raw: Connect, node: BrokerNode
) -> None:
    client = await legacy(connect_raw)
    client.send(publish_bytes("lr", b"v", retain=True))
    client.send(b"\xc0\x00")
    await client.expect(b"\xd0\x00")
    assert node.retain.count() == 0
    standard = await connect_raw()
    await standard.connect(CAROL)
    standard.send(publish_bytes("kept", b"v", retain=True))
    standard.send(b"\xc0\x00")
    await standard.expect(b"\xd0\x00")
    client.send(subscribe_bytes(2, ("kept", 0)))
    await client.expect(b"\x90\x03\x00\x02\x00")
    await client.expect_silence()


async def test_will_ignored(connect_raw: Connect) -> None:
    watcher = await connect_raw()
    await watcher.connect(CAROL)
    watcher.send(subscribe_bytes(1, ("w", 0)))
    await watcher.expect(b"\x90\x03\x00\x01\x00")
    client = await legacy(connect_raw, will=Will("w", b"x"))
    client.writer.transport.abort()
    await watcher.expect_silence()


async def test_keep_alive_floor_270s(connect_raw: Connect, node: BrokerNode) -> None:
    await legacy(connect_raw, keep_alive=10)
    channel = node.channels[ALICE.uuid]
    assert channel.keepalive_timeout == 270.0
    assert channel.profile.name == "legacy"
