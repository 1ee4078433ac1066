"""REST p2p messages against a real node and real device connections (spec §2.5.5, §2.5.6, §2.4.3, §6.4,
§7.1, S7, checklist 22 and 24), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.rest.helpers import UNKNOWN_UUID, assert_error
from tests.rest.live import LiveNode, client_path, start_live_node


@pytest.fixture
async def live(database_url: str, tmp_path: Path) -> AsyncIterator[LiveNode]:
    async for node in start_live_node(database_url, tmp_path / "data"):
        yield node


NO_ENVELOPE = {"message_id": None, "response_id": None, "reply_to": None, "status": None}


async def _pair(live: LiveNode, **tenant_fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A REST-side client and a peer device client of the same tenant."""
    tenant = await live.tenant(**tenant_fields)
    sender = await live.client(tenant, type="user", name="operator")
    peer = await live.client(tenant, name="c-device", pub_topics=[sender["id"], "data/#"])
    return sender, peer


async def _p2p(live: LiveNode, sender: dict[str, Any], topic: str, **fields: Any) -> Any:
    body = {"type": "p2p", "topic": topic, "payload": "hello", "qos": 2, "id": 17, **fields}
    return await live.http.post(client_path(sender, "/messages"), json=body)


async def test_checklist_24_p2p_with_id_17_is_wrapped_byte_exact_for_a_c_device(live: LiveNode) -> None:
    sender, peer = await _pair(live)
    device = await live.device(peer, "c")
    try:
        # The topic is the peer's UUID in any case; delivery is under the canonical lowercase one.
        response = await _p2p(live, sender, peer["id"].upper())
        assert response.status_code == 201, response.text
        expected = f'{{"message_id": "17", "reply_to": "{sender["id"]}", "body": "hello"}}'
        received = await device.receive()
        assert (received.topic, received.payload, received.qos) == (peer["id"], expected.encode(), 1)
        message = response.json()
        assert response.headers["location"] == client_path(sender, f"/messages/{message['id']}")
        assert message["type"] == "p2p"
        assert message["topic"] == peer["id"]
        assert message["payload"] == expected
        assert message["client_message_id"] == 17
        assert message["direction"] == "sent"
        assert message["envelope"] == {
            "message_id": "17",
            "response_id": None,
            "reply_to": sender["id"],
            "status": None,
        }
        assert message["delivered_to"] == 1
        assert (await live.http.get(response.headers["location"])).json() == message
    finally:
        await device.close()


async def test_p2p_body_is_json_escaped_in_the_envelope(live: LiveNode) -> None:
    sender, peer = await _pair(live)
    device = await live.device(peer)
    try:
        response = await _p2p(live, sender, peer["id"], payload='say "hi"\\\n', id=5)
        assert response.status_code == 201, response.text
        expected = f'{{"message_id": "5", "reply_to": "{sender["id"]}", "body": "say \\"hi\\"\\\\\\n"}}'
        assert (await device.receive()).payload == expected.encode()
    finally:
        await device.close()


async def test_p2p_payload_that_is_an_envelope_is_delivered_verbatim(live: LiveNode) -> None:
    sender, peer = await _pair(live)
    device = await live.device(peer)
    envelope = '{"reply_to":"somebody", "body": "x",  "message_id": 99999}'
    try:
        response = await _p2p(live, sender, peer["id"], payload=envelope, id=3)
        assert response.status_code == 201, response.text
        assert (await device.receive()).payload == envelope.encode()
        message = response.json()
        assert message["payload"] == envelope
        assert message["envelope"] == {
            "message_id": "99999",
            "response_id": None,
            "reply_to": "somebody",
            "status": None,
        }
        # Not an envelope (no reply_to): wrapped.
        response = await _p2p(live, sender, peer["id"], payload='{"message_id": "1"}', id=4)
        wrapped = (
            f'{{"message_id": "4", "reply_to": "{sender["id"]}", "body": "{{\\"message_id\\": \\"1\\"}}"}}'
        )
        assert (await device.receive()).payload == wrapped.encode()
        assert response.json()["payload"] == wrapped
    finally:
        await device.close()


async def test_p2p_without_id_takes_a_per_client_counter_of_at_most_5_digits(live: LiveNode) -> None:
    sender, peer = await _pair(live)
    device = await live.device(peer)
    try:
        ids = []
        for _ in range(2):
            response = await _p2p(live, sender, peer["id"], qos=1, id=None)
            assert response.status_code == 201, response.text
            payload = json.loads((await device.receive()).payload)
            assert payload["reply_to"] == sender["id"] and payload["body"] == "hello"
            assert re.fullmatch(r"[1-9][0-9]{0,4}", payload["message_id"]), payload
            assert response.json()["envelope"]["message_id"] == payload["message_id"]
            assert response.json()["client_message_id"] is None
            ids.append(int(payload["message_id"]))
        assert ids[1] == ids[0] + 1
    finally:
        await device.close()


async def test_p2p_to_an_unknown_peer_is_422_and_delivers_and_stores_nothing(live: LiveNode) -> None:
    sender, peer = await _pair(live)
    other_tenant = await live.tenant(name="other")
    stranger = await live.client(other_tenant)
    device = await live.device(stranger)
    try:
        for topic in (UNKNOWN_UUID, stranger["id"], "pub1", peer["id"] + "/x"):
            assert_error(await _p2p(live, sender, topic), 422, "unknown_peer")
        await device.expect_no_publish()
    finally:
        await device.close()
    listed = (await live.http.get(client_path(sender, "/messages"))).json()
    assert listed == {"items": [], "next_cursor": None}
    tenant = (await live.http.get(f"/api/v1/tenants/{sender['tenant_id']}")).json()
    assert tenant["messages_used"] == 0


async def test_checklist_22_p2p_is_charged_and_refused_with_429_when_the_budget_is_spent(
    live: LiveNode,
) -> None:
    sender, peer = await _pair(live, max_messages=2)
    device = await live.device(peer)
    try:
        for index in (1, 2):
            response = await _p2p(live, sender, peer["id"], id=index)
            assert response.status_code == 201, response.text
            assert json.loads((await device.receive()).payload)["message_id"] == str(index)
        assert_error(await _p2p(live, sender, peer["id"], id=3), 429, "tenant_message_quota_exceeded")
        await device.expect_no_publish()
        # Nothing stored for the refused one.
        listed = (await live.http.get(client_path(sender, "/messages"))).json()["items"]
        assert [item["client_message_id"] for item in listed] == [2, 1]
        # Raising the budget lifts the refusal.
        update = await live.http.put(f"/api/v1/tenants/{sender['tenant_id']}", json={"max_messages": 3})
        assert update.status_code == 200, update.text
        assert (await _p2p(live, sender, peer["id"], id=3)).status_code == 201
        assert json.loads((await device.receive()).payload)["message_id"] == "3"
    finally:
        await device.close()


async def test_p2p_message_is_listed_as_received_by_its_peer(live: LiveNode) -> None:
    sender, peer = await _pair(live)
    sent = (await _p2p(live, sender, peer["id"])).json()
    peer_view = (await live.http.get(client_path(peer, "/messages"))).json()
    assert peer_view["next_cursor"] is None
    assert [item["id"] for item in peer_view["items"]] == [sent["id"]]
    received = peer_view["items"][0]
    assert received["direction"] == "received"
    assert received["client_id"] == sender["id"]
    assert received["envelope"] == sent["envelope"]
    assert {key: value for key, value in received.items() if key != "direction"} == {
        key: value for key, value in sent.items() if key != "direction"
    }
    single = await live.http.get(client_path(peer, f"/messages/{sent['id']}"))
    assert single.status_code == 200 and single.json() == received
    # Filters apply to both sides.
    assert (await live.http.get(client_path(peer, "/messages"), params={"type": "pub"})).json()["items"] == []
    p2p_only = (await live.http.get(client_path(peer, "/messages"), params={"type": "p2p"})).json()
    assert [item["id"] for item in p2p_only["items"]] == [sent["id"]]
    # A client of the tenant that is neither side sees nothing.
    bystander = await live.client({"id": sender["tenant_id"]}, name="bystander")
    assert (await live.http.get(client_path(bystander, "/messages"))).json()["items"] == []
    assert_error(
        await live.http.get(client_path(bystander, f"/messages/{sent['id']}")), 404, "message_not_found"
    )


async def test_pub_message_has_no_envelope(live: LiveNode) -> None:
    tenant = await live.tenant()
    publisher = await live.client(tenant, pub_topics=["data/#"])
    response = await live.http.post(
        client_path(publisher, "/messages"), json={"topic": "data/1", "payload": '{"message_id": "1"}'}
    )
    assert response.status_code == 201, response.text
    assert response.json()["envelope"] is None and response.json()["direction"] == "sent"


@pytest.mark.parametrize("sort_order", ["desc", "asc"])
async def test_cursor_paging_over_sent_and_received_covers_every_item_once(
    live: LiveNode, sort_order: str
) -> None:
    sender, peer = await _pair(live)
    expected = []
    for index in range(7):
        if index % 3 == 0:
            response = await live.http.post(
                client_path(peer, "/messages"), json={"topic": "data/x", "payload": str(index)}
            )
        else:
            response = await _p2p(live, sender, peer["id"], id=index + 1, payload=str(index))
        assert response.status_code == 201, response.text
        expected.append(response.json()["id"])
    if sort_order == "desc":
        expected.reverse()
    seen: list[str] = []
    directions: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "sort_order": sort_order}
        if cursor is not None:
            params["cursor"] = cursor
        page = (await live.http.get(client_path(peer, "/messages"), params=params)).json()
        seen += [item["id"] for item in page["items"]]
        directions += [item["direction"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert directions.count("sent") == 3 and directions.count("received") == 4


async def test_release_of_a_p2p_message_redelivers_it_to_the_peer(live: LiveNode) -> None:
    sender, peer = await _pair(live)
    sent = (await _p2p(live, sender, peer["id"], duplicate=True)).json()
    device = await live.device(peer)
    try:
        release = await live.http.put(client_path(sender, f"/messages/{sent['id']}/release"))
        assert release.status_code == 200, release.text
        received = await device.receive()
        assert (received.topic, received.payload, received.qos) == (peer["id"], sent["payload"].encode(), 1)
        assert received.dup  # stored `duplicate`, sent again as DUP at QoS >= 1
        releases = release.json()["releases"]
        assert [item["delivered_to"] for item in releases] == [1]
        # The peer's view of the same message can release it too (it is one of its messages).
        again = await live.http.put(client_path(peer, f"/messages/{sent['id']}/release"))
        assert again.status_code == 200 and len(again.json()["releases"]) == 2
        assert again.json()["direction"] == "received"
        assert (await device.receive()).payload == sent["payload"].encode()
    finally:
        await device.close()


async def test_checklist_24_device_reply_is_listed_as_received_with_its_response_id(live: LiveNode) -> None:
    """Depends on the MQTT history of p2p messages (protocol/history.py, `peer_id` = the addressee)."""
    sender, peer = await _pair(live)
    device = await live.device(peer, "c")
    try:
        assert (await _p2p(live, sender, peer["id"])).status_code == 201
        request = json.loads((await device.receive()).payload)
        reply = (
            f'{{"message_id": "2", "response_id": "{request["message_id"]}", '
            f'"reply_to": "{peer["id"]}", "body": "ok", "status": 1}}'
        )
        await device.publish(request["reply_to"], reply.encode(), qos=1)
        received: list[dict[str, Any]] = []
        for _ in range(100):
            items = (await live.http.get(client_path(sender, "/messages"))).json()["items"]
            received = [item for item in items if item["direction"] == "received"]
            if received:
                break
            await asyncio.sleep(0.05)
        assert len(received) == 1, items
        assert received[0]["type"] == "p2p" and received[0]["source"] == "mqtt"
        assert received[0]["client_id"] == peer["id"] and received[0]["payload"] == reply
        assert received[0]["envelope"] == {
            "message_id": "2",
            "response_id": "17",
            "reply_to": peer["id"],
            "status": 1,
        }
    finally:
        await device.close()


async def test_p2p_without_save_is_delivered_but_not_stored(live: LiveNode) -> None:
    sender, peer = await _pair(live)
    device = await live.device(peer)
    try:
        response = await _p2p(live, sender, peer["id"], save=False)
        assert response.status_code == 201, response.text
        assert (await device.receive()).payload == response.json()["payload"].encode()
        assert_error(await live.http.get(response.headers["location"]), 404, "message_not_found")
        assert (await live.http.get(client_path(peer, "/messages"))).json()["items"] == []
    finally:
        await device.close()


async def test_envelope_fields_not_found_are_null(live: LiveNode) -> None:
    sender, peer = await _pair(live)
    # A verbatim envelope whose other fields are absent.
    response = await _p2p(live, sender, peer["id"], payload='{"message_id": "1", "reply_to": "r"}')
    assert response.json()["envelope"] == {**NO_ENVELOPE, "message_id": "1", "reply_to": "r"}
