"""Spec §15 checklist 22 and 34 end to end: one exact message budget shared by device (MQTT) and REST
publishes, refusals with their documented codes, a raised budget lifting the block; and a saved QoS 1
REST publish without `id` answering 201 with a Location that reads the message back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.rest.live import LiveNode, client_path, start_live_node
from tests.support.devices import LegacyDevice


@pytest.fixture
async def node(database_url: str, tmp_path: Path) -> AsyncIterator[LiveNode]:
    async for live in start_live_node(database_url, tmp_path / "data"):
        yield live


async def _quota_warnings(node: LiveNode, client: dict[str, str]) -> list[str]:
    response = await node.http.get(
        client_path(client, "/logs"), params={"creator": "InstaMsg", "level": "WARN"}
    )
    assert response.status_code == 200, response.text
    return [item["message"] for item in response.json()["items"] if "quota" in item["message"]]


async def test_checklist_22_budget_of_two_is_shared_by_mqtt_and_rest(node: LiveNode) -> None:
    tenant = await node.tenant(max_messages=2)
    publisher = await node.client(tenant, pub_topics=["pumps/7"])
    watcher = await node.client(tenant, sub_topics=["pumps/#"])
    device: LegacyDevice = await node.device(publisher)
    subscriber: LegacyDevice = await node.device(watcher)
    try:
        await subscriber.subscribe("pumps/7", qos=1)
        # 1st unit: a device publish over MQTT.
        await device.publish("pumps/7", b"one", qos=1)
        assert (await subscriber.receive()).payload == b"one"
        # 2nd unit: a REST publish on behalf of the same client.
        body = {"type": "pub", "topic": "pumps/7", "payload": "two", "qos": 2, "id": 2}
        response = await node.http.post(client_path(publisher, "/messages"), json=body)
        assert response.status_code == 201, response.text
        assert (await subscriber.receive()).payload == b"two"
        # The third is refused on both paths: REST 429, MQTT acknowledged (3.1) but never delivered.
        response = await node.http.post(client_path(publisher, "/messages"), json={**body, "id": 3})
        assert response.status_code == 429, response.text
        assert response.json()["error"]["code"] == "tenant_message_quota_exceeded"
        assert await device.publish("pumps/7", b"three", qos=1) is not None  # PUBACK still arrives
        await subscriber.expect_no_publish(0.5)
        # A WARN entry with creator InstaMsg (written by a batched writer: poll, bounded).
        for _ in range(50):
            if await _quota_warnings(node, publisher):
                break
            await asyncio.sleep(0.1)
        assert await _quota_warnings(node, publisher)
        # Raising max_messages lifts the block at once, for both paths.
        raised = await node.http.put(f"/api/v1/tenants/{tenant['id']}", json={"max_messages": 4})
        assert raised.status_code == 200, raised.text
        await device.publish("pumps/7", b"four", qos=1)
        assert (await subscriber.receive()).payload == b"four"
        response = await node.http.post(client_path(publisher, "/messages"), json={**body, "id": 5})
        assert response.status_code == 201, response.text
        assert (await subscriber.receive()).payload == b"two"
        # The stored count follows the exact in-memory one within a meter flush interval (1 s).
        for _ in range(50):
            used = (await node.http.get(f"/api/v1/tenants/{tenant['id']}")).json()["messages_used"]
            if used == 4:
                break
            await asyncio.sleep(0.1)
        assert used == 4
    finally:
        await device.close()
        await subscriber.close()


async def test_checklist_34_saved_qos_1_publish_without_id_has_a_location(node: LiveNode) -> None:
    tenant = await node.tenant()
    publisher = await node.client(tenant, pub_topics=["pumps/7"])
    response = await node.http.post(
        client_path(publisher, "/messages"),
        json={"topic": "pumps/7", "payload": "hello", "qos": 1, "id": None},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["saved"] is True and created["client_message_id"] is None and created["qos"] == 1
    location = response.headers["location"]
    assert location == client_path(publisher, f"/messages/{created['id']}")
    stored = await node.http.get(location)
    assert stored.status_code == 200, stored.text
    assert stored.json()["payload"] == "hello"
