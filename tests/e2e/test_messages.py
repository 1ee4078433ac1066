"""Message history and publishMessage against a real `instamsg serve` with real paho-mqtt clients
(spec §2.5.5, §2.5.6, §6.4, §6.5, C10, C18, C23)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.instamsg_server import InstaMsgServer


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InstaMsgServer]:
    # Default settings: MQTT history is on (spec §6.5), whatever the environment running the tests says.
    monkeypatch.delenv("INSTAMSG_MQTT_HISTORY", raising=False)
    running = InstaMsgServer(tmp_path / "data").start()
    yield running
    assert running.stop() == 0, running.log()


def _http(server: InstaMsgServer, credentials: tuple[str, str] | None = None) -> httpx.Client:
    client_key, client_secret = credentials or server.create_app("messages")
    headers = {"Authorization": f"Bearer {server.token(client_key, client_secret)}"}
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=10)


def _setup(http: httpx.Client, max_messages: int = 10_000) -> tuple[str, dict[str, Any], dict[str, Any]]:
    tenant = http.post(
        "/api/v1/tenants", json={"name": "t", "max_clients": 5, "max_messages": max_messages}
    ).json()
    clients = f"/api/v1/tenants/{tenant['id']}/clients"
    publisher = http.post(clients, json={"type": "device", "name": "p", "pub_topics": ["data/#"]}).json()
    subscriber = http.post(clients, json={"type": "user", "name": "s", "sub_topics": ["data/#"]}).json()
    return f"{clients}/{publisher['id']}/messages", publisher, subscriber


class Device:
    """A paho MQTT 3.1.1 client; what arrives goes to a queue as (topic, payload, qos)."""

    def __init__(self, credentials: dict[str, Any], port: int):
        self.received: queue.Queue[tuple[str, bytes, int]] = queue.Queue()
        connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="any")
        self.client.username_pw_set(credentials["id"], credentials["auth_token"])
        self.client.on_connect = lambda client, userdata, flags, reason, properties: connected.set()
        self.client.on_message = lambda client, userdata, message: self.received.put(
            (message.topic, message.payload, message.qos)
        )
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        assert connected.wait(10)

    def subscribe(self, topic_filter: str, qos: int = 2) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *arguments: done.set()
        self.client.subscribe(topic_filter, qos=qos)
        assert done.wait(10)

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(10)

    def next(self, timeout: float = 10.0) -> tuple[str, bytes, int]:
        return self.received.get(timeout=timeout)

    def nothing_more(self, wait: float = 0.5) -> bool:
        time.sleep(wait)
        return self.received.empty()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait_for_items(http: httpx.Client, path: str, count: int, timeout: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        items: list[Any] = http.get(path, params={"limit": 1000}).json()["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return items
        time.sleep(0.05)


def test_rest_publish_reaches_a_subscriber_at_the_mqtt_qos(server: InstaMsgServer) -> None:
    with _http(server) as http:
        path, _, subscriber_credentials = _setup(http)
        subscriber = Device(subscriber_credentials, server.ports["mqtt"])
        try:
            subscriber.subscribe("data/#", qos=2)
            for rest_qos in (1, 2, 3):
                body = {"topic": "data/x", "payload": f"q{rest_qos}", "qos": rest_qos, "id": 7}
                response = http.post(path, json=body)
                assert response.status_code == 201, response.text
                assert response.json()["delivered_to"] == 1
                assert subscriber.next() == ("data/x", f"q{rest_qos}".encode(), rest_qos - 1)
                location = response.headers["location"]
                assert http.get(location).json() == response.json()
        finally:
            subscriber.close()


def test_device_publish_appears_in_history_with_source_mqtt(server: InstaMsgServer) -> None:
    """With default settings; switching MQTT history off is checked below."""
    with _http(server) as http:
        path, publisher_credentials, _ = _setup(http)
        device = Device(publisher_credentials, server.ports["mqtt"])
        try:
            device.publish("data/a", b"one", qos=1)
            device.publish("data/b", b"\xff\xfe two", qos=2)
            device.publish("instamsg/clients/x/logs", b"reserved", qos=1)
        finally:
            device.close()
        items = _wait_for_items(http, path, 2)
        assert items[0]["created_at"] >= items[1]["created_at"]  # newest first
        by_topic = {item["topic"]: item for item in items}
        assert len(items) == 2 and set(by_topic) == {"data/a", "data/b"}  # not the reserved topic
        assert [(by_topic[topic]["source"], by_topic[topic]["qos"]) for topic in ("data/a", "data/b")] == [
            ("mqtt", 2),
            ("mqtt", 3),
        ]
        assert by_topic["data/a"]["payload"] == "one"
        assert by_topic["data/b"]["payload"] == "\ufffd\ufffd two"  # undecodable bytes are replaced
        assert all(item["direction"] == "sent" and item["type"] == "pub" for item in items)


def test_p2p_and_webhook_publishes_appear_in_history(server: InstaMsgServer) -> None:
    """Spec §6.5 (pub and p2p from MQTT) and §12.2 (webhook data stored as `pub`)."""
    with _http(server) as http:
        tenant = http.post(
            "/api/v1/tenants", json={"name": "t", "max_clients": 5, "max_messages": 100}
        ).json()
        clients = f"/api/v1/tenants/{tenant['id']}/clients"
        peer = http.post(clients, json={"type": "user", "name": "peer"}).json()
        sender = http.post(clients, json={"type": "device", "name": "s", "pub_topics": [peer["id"]]}).json()
        device = Device(sender, server.ports["mqtt"])
        envelope = f'{{"message_id": "1", "reply_to": "{sender["id"]}", "body": "hi"}}'.encode()
        try:
            device.publish(peer["id"].upper(), envelope, qos=1)
            device.publish("instamsg/webhook", b'{"data": {"t": 21}}', qos=1)
        finally:
            device.close()
        items = _wait_for_items(http, f"{clients}/{sender['id']}/messages", 2)
        by_type = {item["type"]: item for item in items}
        assert len(items) == 2 and set(by_type) == {"p2p", "pub"}
        assert (by_type["p2p"]["topic"], by_type["p2p"]["payload"]) == (peer["id"], envelope.decode())
        assert (by_type["pub"]["topic"], by_type["pub"]["payload"]) == (
            "instamsg/webhook",
            '{"data": {"t": 21}}',
        )
        assert {item["source"] for item in items} == {"mqtt"}
        # The addressee lists the p2p message as received (spec §2.4.3).
        received = _wait_for_items(http, f"{clients}/{peer['id']}/messages", 1)
        assert [(item["id"], item["direction"]) for item in received] == [(by_type["p2p"]["id"], "received")]


def test_quota_exhaustion_is_429_and_nothing_is_delivered(server: InstaMsgServer) -> None:
    with _http(server) as http:
        path, _, subscriber_credentials = _setup(http, max_messages=2)
        subscriber = Device(subscriber_credentials, server.ports["mqtt"])
        try:
            subscriber.subscribe("data/#", qos=1)
            for index in range(2):
                response = http.post(path, json={"topic": "data/x", "payload": f"m{index}"})
                assert response.status_code == 201, response.text
            response = http.post(path, json={"topic": "data/x", "payload": "refused"})
            assert response.status_code == 429
            assert response.json()["error"]["code"] == "tenant_message_quota_exceeded"
            assert [subscriber.next()[1] for _ in range(2)] == [b"m0", b"m1"]
            assert subscriber.nothing_more()
            stored = http.get(path).json()["items"]
            assert sorted(item["payload"] for item in stored) == ["m0", "m1"]
            release = http.put(f"{path}/{stored[0]['id']}/release")
            assert release.status_code == 429  # a release is charged like a publish
            assert subscriber.nothing_more(0.2)
        finally:
            subscriber.close()


def test_release_redelivers_and_appends_the_release(server: InstaMsgServer) -> None:
    with _http(server) as http:
        path, _, subscriber_credentials = _setup(http)
        subscriber = Device(subscriber_credentials, server.ports["mqtt"])
        try:
            subscriber.subscribe("data/#", qos=2)
            created = http.post(path, json={"topic": "data/r", "payload": "again", "qos": 3, "id": 1}).json()
            assert subscriber.next() == ("data/r", b"again", 2)
            for count in (1, 2):
                response = http.put(f"{path}/{created['id']}/release", content=b"")
                assert response.status_code == 200, response.text
                releases = response.json()["releases"]
                assert len(releases) == count and releases[-1]["delivered_to"] == 1
                assert subscriber.next() == ("data/r", b"again", 2)
            assert http.get(f"{path}/{created['id']}").json()["releases"] == releases
        finally:
            subscriber.close()


def test_cursor_paging_covers_every_item_exactly_once(server: InstaMsgServer) -> None:
    with _http(server) as http:
        path, publisher_credentials, _ = _setup(http)
        device = Device(publisher_credentials, server.ports["mqtt"])
        try:
            for index in range(12):
                device.publish("data/m", f"mqtt{index}".encode(), qos=1)
        finally:
            device.close()
        for index in range(13):
            assert http.post(path, json={"topic": "data/r", "payload": f"rest{index}"}).status_code == 201
        everything = _wait_for_items(http, path, 25)
        assert len(everything) == 25
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 4}
            if cursor is not None:
                params["cursor"] = cursor
            page = http.get(path, params=params).json()
            seen.extend(item["id"] for item in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(item["id"] for item in everything)
        assert len(seen) == len(set(seen)) == 25


def test_graceful_stop_flushes_pending_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    # A flush interval far longer than the test: only the shutdown flush can write the rows.
    monkeypatch.setenv("INSTAMSG_HISTORY_FLUSH_INTERVAL_SECONDS", "60")
    server = InstaMsgServer(data_dir).start()
    monkeypatch.delenv("INSTAMSG_HISTORY_FLUSH_INTERVAL_SECONDS")
    credentials = server.create_app("flush")
    try:
        with _http(server, credentials) as http:
            path, publisher_credentials, _ = _setup(http)
            device = Device(publisher_credentials, server.ports["mqtt"])
            try:
                for index in range(5):
                    device.publish("data/s", f"s{index}".encode(), qos=1)
            finally:
                device.close()
            assert http.get(path).json()["items"] == []
    finally:
        assert server.stop() == 0, server.log()
    restarted = InstaMsgServer(data_dir).start()
    try:
        with _http(restarted, credentials) as http:
            items = http.get(path).json()["items"]
            assert sorted(item["payload"] for item in items) == [f"s{index}" for index in range(5)]
    finally:
        assert restarted.stop() == 0, restarted.log()


def test_mqtt_history_can_be_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSTAMSG_MQTT_HISTORY", "false")
    server = InstaMsgServer(tmp_path / "data").start()
    monkeypatch.delenv("INSTAMSG_MQTT_HISTORY")
    try:
        with _http(server) as http:
            path, publisher_credentials, _ = _setup(http)
            device = Device(publisher_credentials, server.ports["mqtt"])
            try:
                device.publish("data/off", b"x", qos=1)
            finally:
                device.close()
            time.sleep(0.5)  # ten flush intervals: a recorded row would be there by now
            rest = http.post(path, json={"topic": "data/rest", "payload": "y", "qos": 1})
            assert rest.status_code == 201
            assert [item["topic"] for item in http.get(path).json()["items"]] == ["data/rest"]
    finally:
        assert server.stop() == 0, server.log()
