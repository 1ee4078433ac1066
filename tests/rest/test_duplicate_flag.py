"""publishMessage `duplicate` is the DUP flag of deliveries at MQTT QoS 1 and 2, never at QoS 0
(spec §2.5.5, D4), checked on the raw PUBLISH bytes a subscriber receives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.broker.support import Identity, RawClient, subscribe_bytes
from tests.rest.live import HOST, LiveNode, client_path, start_live_node


@pytest.fixture
async def live(database_url: str, tmp_path: Path) -> AsyncIterator[LiveNode]:
    async for node in start_live_node(database_url, tmp_path / "data"):
        yield node


DUP_BIT = 0x08


async def _publish(live: LiveNode, publisher: dict[str, Any], qos: int, duplicate: bool) -> dict[str, Any]:
    body = {"topic": "data/x", "payload": "p", "qos": qos, "id": 9, "duplicate": duplicate}
    response = await live.http.post(client_path(publisher, "/messages"), json=body)
    assert response.status_code == 201, response.text
    assert response.json()["duplicate"] is duplicate and response.json()["delivered_to"] == 1
    stored: dict[str, Any] = response.json()
    return stored


async def test_duplicate_sets_dup_at_mqtt_qos_1_only_for_a_legacy_subscriber(live: LiveNode) -> None:
    tenant = await live.tenant()
    publisher = await live.client(tenant, pub_topics=["data/#"])
    subscriber = await live.client(tenant, sub_topics=["data/#"])
    device = await live.device(subscriber, "c")
    try:
        await device.subscribe("data/#", 1)
        for rest_qos, duplicate, expected_qos, expected_dup in (
            (2, True, 1, True),
            (1, True, 0, False),  # never DUP at QoS 0
            (2, False, 1, False),
        ):
            await _publish(live, publisher, rest_qos, duplicate)
            received = await device.receive()
            assert (received.qos, received.dup) == (expected_qos, expected_dup), received.raw.hex(" ")
            assert received.raw[0] & DUP_BIT == (DUP_BIT if expected_dup else 0)
    finally:
        await device.close()


async def test_duplicate_sets_dup_at_mqtt_qos_2_for_a_standard_subscriber(live: LiveNode) -> None:
    tenant = await live.tenant()
    publisher = await live.client(tenant, pub_topics=["data/#"])
    subscriber = await live.client(tenant, sub_topics=["data/#"])
    raw = await RawClient.open(HOST, live.mqtt_port)
    try:
        connack = await raw.connect(Identity(subscriber["id"], subscriber["auth_token"]), level=4)
        assert connack == b"\x20\x02\x00\x00"
        raw.send(subscribe_bytes(1, ("data/#", 2)))
        assert await raw.read_packet() == b"\x90\x03\x00\x01\x02"
        await _publish(live, publisher, 3, True)
        first = await raw.read_packet()
        assert first[0] == 0x30 | DUP_BIT | (2 << 1), first.hex(" ")
        await _publish(live, publisher, 1, True)
        second = await raw.read_packet()
        assert second[0] == 0x30, second.hex(" ")
    finally:
        raw.close()
