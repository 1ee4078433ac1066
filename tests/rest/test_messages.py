"""Messages over REST, in process (spec §2.4.3, §2.5.5, §2.5.6, §2.7 S8, §6.4, D3, D13, C10, C23)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from instamsg.domain.errors import InvalidTimestamp, InvalidTopic
from instamsg.domain.ids import new_uuid
from instamsg.domain.timestamps import parse_timestamp
from instamsg.services.messages import validate_topic
from instamsg.services.ports import OfflineDelivery
from instamsg.store.history import HistoryWriter
from instamsg.store.store import Store
from instamsg.store.tables import message as message_table
from tests.rest.helpers import TIMESTAMP, UNKNOWN_UUID, UUID_LOWER, assert_error, create_client, create_tenant

MESSAGE_KEYS = {
    "id",
    "tenant_id",
    "client_id",
    "type",
    "topic",
    "payload",
    "qos",
    "client_message_id",
    "duplicate",
    "saved",
    "source",
    "direction",
    "envelope",
    "delivered_to",
    "created_at",
    "releases",
}


@dataclass
class FakeDelivery(OfflineDelivery):
    """The broker as the message service sees it: an exact budget per tenant and a delivery log."""

    budget: int | None = None
    receivers: int = 2
    charged: int = 0
    delivered: list[tuple[str, str, str, bytes, int, bool]] = field(default_factory=list)

    def charge(self, tenant_id: str) -> bool:
        if self.budget is not None and self.charged >= self.budget:
            return False
        self.charged += 1
        return True

    def deliver(
        self, tenant_id: str, publisher_uuid: str, topic: str, payload: bytes, mqtt_qos: int, dup: bool
    ) -> int:
        self.delivered.append((tenant_id, publisher_uuid, topic, payload, mqtt_qos, dup))
        return self.receivers


@pytest.fixture
def delivery() -> FakeDelivery:
    return FakeDelivery()


@dataclass
class Publisher:
    tenant: dict[str, Any]
    client: dict[str, Any]

    @property
    def path(self) -> str:
        return f"/api/v1/tenants/{self.tenant['id']}/clients/{self.client['id']}/messages"


@pytest.fixture
async def publisher(api: httpx.AsyncClient, auth: dict[str, str]) -> Publisher:
    tenant = await create_tenant(api, auth)
    client = await create_client(api, auth, tenant["id"], pub_topics=["pub1", "sensors/+/temp"])
    return Publisher(tenant, client)


async def publish(
    api: httpx.AsyncClient, auth: dict[str, str], publisher: Publisher, **body: Any
) -> httpx.Response:
    return await api.post(publisher.path, json={"topic": "pub1", "payload": "hello", **body}, headers=auth)


async def test_publish_delivers_at_the_mqtt_qos_and_stores_the_message(
    api: httpx.AsyncClient,
    auth: dict[str, str],
    publisher: Publisher,
    delivery: FakeDelivery,
    store: Store,
) -> None:
    response = await publish(api, auth, publisher, id=17, qos=2, duplicate=True)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == MESSAGE_KEYS
    assert UUID_LOWER.match(body["id"]) and TIMESTAMP.match(body["created_at"])
    assert response.headers["location"] == f"{publisher.path}/{body['id']}"
    assert body | {"id": None, "created_at": None} == {
        "id": None,
        "tenant_id": publisher.tenant["id"],
        "client_id": publisher.client["id"],
        "type": "pub",
        "topic": "pub1",
        "payload": "hello",
        "qos": 2,
        "client_message_id": 17,
        "duplicate": True,
        "saved": True,
        "source": "rest",
        "direction": "sent",
        "envelope": None,
        "delivered_to": 2,
        "created_at": None,
        "releases": [],
    }
    # REST qos 2 is MQTT QoS 1 (spec C23); the publisher is the client in the path.
    assert delivery.delivered == [(publisher.tenant["id"], publisher.client["id"], "pub1", b"hello", 1, True)]
    assert delivery.charged == 1
    # The row was committed before the answer.
    async with store.read() as connection:
        assert (await connection.execute(select(func.count()).select_from(message_table))).scalar_one() == 1
    fetched = await api.get(response.headers["location"], headers=auth)
    assert fetched.status_code == 200 and fetched.json() == body
    beta = await api.get(response.headers["location"].replace("/api/v1/", "/api/beta/"), headers=auth)
    assert beta.status_code == 200 and beta.json() == body


@pytest.mark.parametrize(("rest_qos", "mqtt_qos"), [(1, 0), (2, 1), (3, 2)])
async def test_qos_scale(
    api: httpx.AsyncClient,
    auth: dict[str, str],
    publisher: Publisher,
    delivery: FakeDelivery,
    rest_qos: int,
    mqtt_qos: int,
) -> None:
    response = await publish(api, auth, publisher, qos=rest_qos, id=5, topic="sensors/a/temp")
    assert response.status_code == 201, response.text
    assert response.json()["qos"] == rest_qos
    assert delivery.delivered[-1][4] == mqtt_qos


async def test_save_false_delivers_without_a_row(
    api: httpx.AsyncClient, auth: dict[str, str], publisher: Publisher, delivery: FakeDelivery
) -> None:
    response = await publish(api, auth, publisher, save=False)
    assert response.status_code == 201, response.text
    assert response.json()["saved"] is False
    assert len(delivery.delivered) == 1
    location = response.headers["location"]
    assert_error(await api.get(location, headers=auth), 404, "message_not_found")
    assert_error(await api.put(f"{location}/release", headers=auth), 404, "message_not_found")
    assert (await api.get(publisher.path, headers=auth)).json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"qos": 0}, 400, "invalid_qos"),
        ({"qos": 4}, 400, "invalid_qos"),
        ({"qos": "2"}, 400, "invalid_qos"),
        ({"qos": True}, 400, "invalid_qos"),
        ({"qos": 2.5}, 400, "invalid_qos"),
        ({"qos": None}, 400, "invalid_qos"),
        ({"qos": 2}, 400, "validation_failed"),  # id required for qos 2 and 3
        ({"qos": 3, "id": 0}, 400, "validation_failed"),
        ({"qos": 2, "id": 65536}, 400, "validation_failed"),
        ({"qos": 1, "id": -1}, 400, "validation_failed"),
        ({"topic": None}, 400, "validation_failed"),
        ({"topic": ""}, 400, "invalid_topic"),
        ({"topic": "pub1/#"}, 400, "invalid_topic"),
        ({"topic": "a+b"}, 400, "invalid_topic"),
        ({"topic": "a\x00b"}, 400, "invalid_topic"),
        ({"topic": "instamsg/clients/x/reboot"}, 403, "reserved_topic"),
        ({"topic": "pub2"}, 403, "topic_not_allowed"),
        ({"topic": "sensors/a/b/temp"}, 403, "topic_not_allowed"),
        ({"type": "p2p"}, 422, "unknown_peer"),  # topic pub1 is no client's UUID
        ({"type": "other"}, 400, "validation_failed"),
        ({"payload": "x" * 4097}, 413, "payload_too_large"),
        ({"payload": "é" * 2049}, 413, "payload_too_large"),
        ({"payload": 5}, 400, "validation_failed"),
        ({"save": "maybe"}, 400, "validation_failed"),
        ({"qos": 1, "bogus": 1}, 400, "unknown_field"),
    ],
)
async def test_publish_refusals_deliver_and_charge_nothing(
    api: httpx.AsyncClient,
    auth: dict[str, str],
    publisher: Publisher,
    delivery: FakeDelivery,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    response = await publish(api, auth, publisher, **body)
    assert_error(response, status, code)
    assert delivery.delivered == [] and delivery.charged == 0


async def test_inbox_topic_is_refused_as_p2p(
    api: httpx.AsyncClient, auth: dict[str, str], delivery: FakeDelivery
) -> None:
    tenant = await create_tenant(api, auth)
    peer = await create_client(api, auth, tenant["id"])
    client = await create_client(api, auth, tenant["id"], pub_topics=[peer["id"], "#"])
    path = f"/api/v1/tenants/{tenant['id']}/clients/{client['id']}/messages"
    response = await api.post(path, json={"topic": peer["id"], "payload": "x"}, headers=auth)
    assert "p2p" in assert_error(response, 400, "validation_failed")["message"]
    assert delivery.delivered == []


async def test_unknown_resources(api: httpx.AsyncClient, auth: dict[str, str], publisher: Publisher) -> None:
    tenant_path = f"/api/v1/tenants/{UNKNOWN_UUID}/clients/{publisher.client['id']}/messages"
    assert_error(await api.post(tenant_path, json={}, headers=auth), 404, "tenant_not_found")
    client_path = f"/api/v1/tenants/{publisher.tenant['id']}/clients/{UNKNOWN_UUID}/messages"
    assert_error(await api.post(client_path, json={"qos": 0}, headers=auth), 404, "client_not_found")
    assert_error(await api.get(client_path, headers=auth), 404, "client_not_found")
    for message_id in (UNKNOWN_UUID, "nope"):
        assert_error(await api.get(f"{publisher.path}/{message_id}", headers=auth), 404, "message_not_found")
        assert_error(
            await api.put(f"{publisher.path}/{message_id}/release", headers=auth), 404, "message_not_found"
        )


async def test_another_clients_message_is_not_found(
    api: httpx.AsyncClient, auth: dict[str, str], publisher: Publisher
) -> None:
    other = await create_client(api, auth, publisher.tenant["id"], pub_topics=["pub1"])
    created = (await publish(api, auth, publisher)).json()
    other_path = f"/api/v1/tenants/{publisher.tenant['id']}/clients/{other['id']}/messages/{created['id']}"
    assert_error(await api.get(other_path, headers=auth), 404, "message_not_found")


async def test_quota_exhaustion_is_429_and_nothing_delivered(
    api: httpx.AsyncClient, auth: dict[str, str], publisher: Publisher, delivery: FakeDelivery
) -> None:
    delivery.budget = 2
    for _ in range(2):
        assert (await publish(api, auth, publisher)).status_code == 201
    response = await publish(api, auth, publisher)
    assert_error(response, 429, "tenant_message_quota_exceeded")
    assert len(delivery.delivered) == 2
    page = (await api.get(publisher.path, headers=auth)).json()
    assert len(page["items"]) == 2  # the refused message is not stored either


async def test_release_redelivers_and_records_each_release(
    api: httpx.AsyncClient, auth: dict[str, str], publisher: Publisher, delivery: FakeDelivery
) -> None:
    created = (await publish(api, auth, publisher, qos=3, id=9)).json()
    location = f"{publisher.path}/{created['id']}"
    delivery.receivers = 1
    for content, headers in ((b"", {}), (b"{}", {"Content-Type": "text/plain"})):
        response = await api.put(f"{location}/release", content=content, headers={**auth, **headers})
        assert response.status_code == 200, response.text
    released = response.json()
    assert len(released["releases"]) == 2
    for release in released["releases"]:
        assert set(release) == {"released_at", "delivered_to"}
        assert TIMESTAMP.match(release["released_at"]) and release["delivered_to"] == 1
    assert {key: value for key, value in released.items() if key != "releases"} == {
        key: value for key, value in created.items() if key != "releases"
    }
    assert (await api.get(location, headers=auth)).json() == released
    assert [item[2:5] for item in delivery.delivered] == [("pub1", b"hello", 2)] * 3
    assert delivery.charged == 3


async def test_release_rechecks_the_acl_and_the_quota(
    api: httpx.AsyncClient, auth: dict[str, str], publisher: Publisher, delivery: FakeDelivery
) -> None:
    created = (await publish(api, auth, publisher)).json()
    location = f"{publisher.path}/{created['id']}"
    delivery.budget = 1
    assert_error(await api.put(f"{location}/release", headers=auth), 429, "tenant_message_quota_exceeded")
    delivery.budget = None
    client_path = publisher.path.removesuffix("/messages")
    response = await api.put(client_path, json={"pub_topics": ["other"]}, headers=auth)
    assert response.status_code == 200
    assert_error(await api.put(f"{location}/release", headers=auth), 403, "topic_not_allowed")
    assert len(delivery.delivered) == 1
    assert (await api.get(location, headers=auth)).json()["releases"] == []


async def _publish_many(
    api: httpx.AsyncClient, auth: dict[str, str], publisher: Publisher, count: int
) -> list[dict[str, Any]]:
    return [(await publish(api, auth, publisher, payload=f"m{index}")).json() for index in range(count)]


async def test_cursor_paging_covers_every_item_once_newest_first(
    api: httpx.AsyncClient, auth: dict[str, str], publisher: Publisher
) -> None:
    created = await _publish_many(api, auth, publisher, 7)
    for sort_order, expected in (("desc", created[::-1]), ("asc", created)):
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 3, "sort_order": sort_order}
            if cursor:
                params["cursor"] = cursor
            response = await api.get(publisher.path, params=params, headers=auth)
            assert response.status_code == 200, response.text
            page = response.json()
            assert set(page) == {"items", "next_cursor"}
            seen.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        ids = [item["id"] for item in seen]
        assert sorted(ids) == sorted(item["id"] for item in created) and len(set(ids)) == 7
        stamps = [item["created_at"] for item in seen]
        assert stamps == sorted(stamps, reverse=sort_order == "desc")
        if len({item["created_at"] for item in created}) == 7:
            assert ids == [item["id"] for item in expected]
    default = (await api.get(publisher.path, headers=auth)).json()
    assert len(default["items"]) == 7 and default["next_cursor"] is None


async def test_cursor_is_bound_to_its_query(
    api: httpx.AsyncClient, auth: dict[str, str], publisher: Publisher
) -> None:
    await _publish_many(api, auth, publisher, 3)
    cursor = (await api.get(publisher.path, params={"limit": 1}, headers=auth)).json()["next_cursor"]
    assert cursor
    for params in (
        {"limit": 1, "cursor": cursor, "sort_order": "asc"},
        {"limit": 1, "cursor": cursor, "type": "pub"},
        {"limit": 1, "cursor": cursor, "start": "0"},
        {"cursor": "garbage"},
        {"cursor": cursor[:-3]},
    ):
        response = await api.get(publisher.path, params=params, headers=auth)
        assert_error(response, 400, "invalid_cursor")
    response = await api.get(publisher.path, params={"limit": 2, "cursor": cursor}, headers=auth)
    assert response.status_code == 200 and len(response.json()["items"]) == 2


async def test_filters_and_bad_parameters(
    api: httpx.AsyncClient, auth: dict[str, str], publisher: Publisher
) -> None:
    created = await _publish_many(api, auth, publisher, 2)
    stamp = datetime.fromisoformat(created[0]["created_at"].replace("Z", "+00:00"))
    before = stamp - timedelta(hours=1)
    after = stamp + timedelta(hours=1)
    for start, end in (
        (str(int(before.timestamp())), str(int(after.timestamp()))),
        (str(int(before.timestamp() * 1000)), str(after.timestamp() * 1000)),
        (before.strftime("%Y-%m-%d %H:%M:%S"), after.strftime("%Y-%m-%d %H:%M:%S")),
        (before.isoformat(), after.replace(tzinfo=None).isoformat()),
    ):
        page = (await api.get(publisher.path, params={"start": start, "end": end}, headers=auth)).json()
        assert len(page["items"]) == 2, (start, end)
    future = str(int(after.timestamp()))
    assert (await api.get(publisher.path, params={"start": future}, headers=auth)).json()["items"] == []
    assert (await api.get(publisher.path, params={"type": "p2p"}, headers=auth)).json()["items"] == []
    assert len((await api.get(publisher.path, params={"type": "pub"}, headers=auth)).json()["items"]) == 2
    for params, code in (
        ({"start": "yesterday"}, "invalid_timestamp"),
        ({"end": "2016-13-01 00:00:00"}, "invalid_timestamp"),
        ({"start": "2016-05-29 00:00:00", "end": "2016-05-28 00:00:00"}, "invalid_time_range"),
        ({"limit": 0}, "invalid_parameter"),
        ({"limit": 1001}, "invalid_parameter"),
        ({"type": "x"}, "invalid_parameter"),
        ({"sort_order": "up"}, "invalid_parameter"),
    ):
        assert_error(await api.get(publisher.path, params=params, headers=auth), 400, code)


def test_topic_length_limit_counts_utf8_bytes() -> None:
    validate_topic("é" * 32767)
    for topic in ("é" * 32768, "x" * 65536, "\ud800"):
        with pytest.raises(InvalidTopic):
            validate_topic(topic)


def test_timestamp_forms() -> None:
    expected = datetime(2016, 5, 28, tzinfo=UTC)
    for text in (
        "1464393600",
        "1464393600.0",
        "1464393600000",
        "2016-05-28 00:00:00",
        "2016-05-28T00:00:00",
        "2016-05-28T00:00:00Z",
        "2016-05-28T02:00:00+02:00",
    ):
        assert parse_timestamp(text) == expected, text
    for text in ("", "abc", "nan", "inf", "1e400", "2" * 400, "2016-02-30 00:00:00"):
        with pytest.raises(InvalidTimestamp):
            parse_timestamp(text)


async def test_history_writer_batches_and_skips_rows_of_deleted_clients(
    api: httpx.AsyncClient, auth: dict[str, str], publisher: Publisher, store: Store
) -> None:
    writer = HistoryWriter(store, flush_interval=0.01)
    created_at = datetime.now(UTC)
    for client_id in (publisher.client["id"], UNKNOWN_UUID, publisher.client["id"]):
        writer.append(
            {
                "id": new_uuid(),
                "tenant_id": publisher.tenant["id"],
                "client_id": client_id,
                "type": "pub",
                "topic": "pub1",
                "payload": "from mqtt",
                "qos": 1,
                "client_message_id": None,
                "duplicate": False,
                "saved": True,
                "source": "mqtt",
                "delivered_to": 0,
                "releases": [],
                "created_at": created_at,
            }
        )
    await writer.close()
    assert writer.pending == 0 and writer.skipped_rows == 1 and writer.flushes == 1
    items = (await api.get(publisher.path, headers=auth)).json()["items"]
    assert [item["source"] for item in items] == ["mqtt", "mqtt"]
    # Deleting the client deletes its history (ON DELETE CASCADE).
    assert (await api.delete(publisher.path.removesuffix("/messages"), headers=auth)).status_code == 204
    async with store.read() as connection:
        assert (await connection.execute(select(func.count()).select_from(message_table))).scalar_one() == 0


async def test_history_writer_bounds_what_it_holds(store: Store) -> None:
    writer = HistoryWriter(store, flush_interval=60, max_pending=2)
    for _ in range(3):
        writer.append({"client_id": UNKNOWN_UUID})
    assert writer.pending == 2 and writer.dropped_rows == 1
    await writer.close()
    assert writer.pending == 0 and writer.skipped_rows == 2
