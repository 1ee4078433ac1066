"""One port for HTTP and MQTT over WebSocket (spec S1, §1.1, C5): a real `instamsg serve` started with
`--ws-port` equal to `--http-port` serves the REST API, the device side channel and MQTT over WebSocket
on that port, dispatching on `Upgrade: websocket`."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from instamsg.settings import Settings
from tests.support.devices import LegacyDevice
from tests.support.instamsg_server import InstaMsgServer, run_cli
from tests.support.ports import free_port

BOUNDARY = b"----shared-port-boundary"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstaMsgServer]:
    shared = str(free_port())
    running = InstaMsgServer(
        tmp_path_factory.mktemp("shared") / "data",
        extra_arguments=["--http-port", shared, "--ws-port", shared],
        ephemeral_listeners=("mqtt", "mqtts", "wss"),
    ).start()
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(scope="module")
def clients(server: InstaMsgServer) -> dict[str, Any]:
    """A tenant with a device that publishes `data/#` and a user that subscribes to it."""
    client_key, client_secret = server.create_app("shared")
    headers = {"Authorization": f"Bearer {server.token(client_key, client_secret)}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=10) as http:
        tenant = http.post(
            "/api/v1/tenants", json={"name": "t", "max_clients": 10, "max_messages": 1000}
        ).json()
        path = f"/api/v1/tenants/{tenant['id']}/clients"
        device = http.post(path, json={"type": "device", "name": "d", "pub_topics": ["data/#"]}).json()
        user = http.post(path, json={"type": "user", "name": "u", "sub_topics": ["data/#"]}).json()
    return {"device": device, "user": user, "headers": headers, "tenant": tenant}


class WebSocketClient:
    """A paho MQTT 3.1.1 client over WebSocket; what arrives goes to a queue as (topic, payload)."""

    def __init__(self, credentials: dict[str, Any], port: int):
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="any", transport="websockets")
        self.client.ws_set_options(path="/mqtt")
        self.client.username_pw_set(credentials["id"], credentials["auth_token"])
        self.client.on_connect = lambda client, userdata, flags, reason, properties: connected.set()
        self.client.on_message = lambda client, userdata, message: self.received.put(
            (message.topic, bytes(message.payload))
        )
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        assert connected.wait(10), "no CONNACK over WebSocket"

    def subscribe(self, topic_filter: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *arguments: done.set()
        self.client.subscribe(topic_filter, qos=1)
        assert done.wait(10)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def raw_http(port: int, *chunks: bytes) -> bytes:
    """Send `chunks` one by one (a request head split anywhere), then read to the server's close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for chunk in chunks:
        writer.write(chunk)
        await writer.drain()
        await asyncio.sleep(0.02)
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return response


def test_server_json_shows_the_shared_port_for_http_and_ws(server: InstaMsgServer) -> None:
    assert isinstance(server.ports["http"], int)
    assert server.ports["ws"] == server.ports["http"]
    assert server.ports["mqtt"] not in (None, server.ports["http"])


def test_s1_paho_over_websocket_pub_sub_and_rest_on_one_port(
    server: InstaMsgServer, clients: dict[str, Any]
) -> None:
    port = server.ports["http"]
    assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
    subscriber = WebSocketClient(clients["user"], port)
    publisher = WebSocketClient(clients["device"], port)
    try:
        subscriber.subscribe("data/#")
        publisher.publish("data/temperature", b"21.5")
        assert subscriber.received.get(timeout=10) == ("data/temperature", b"21.5")
        # HTTP still answers on the port while WebSocket connections are open on it.
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
    finally:
        publisher.close()
        subscriber.close()


async def test_s1_device_simulator_over_ws_on_the_http_port(
    server: InstaMsgServer, clients: dict[str, Any]
) -> None:
    port = server.ports["http"]
    device, user = clients["device"], clients["user"]
    subscriber = await LegacyDevice.connect(
        "127.0.0.1", port, uuid=user["id"], token=user["auth_token"], dialect="js", transport="ws"
    )
    publisher = await LegacyDevice.connect(
        "127.0.0.1", port, uuid=device["id"], token=device["auth_token"], dialect="c", transport="ws"
    )
    try:
        assert subscriber.connack == b"\x20\x02\x00\x00"
        assert publisher.handshake.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        await subscriber.subscribe("data/#", 1)
        await publisher.publish("data/x", b"over ws", 1)
        received = await subscriber.receive(timeout=5)
        assert (received.topic, received.payload) == ("data/x", b"over ws")
        # One MQTT packet per binary frame from the server (spec §3.4).
        assert all(frame.fin and frame.opcode == 0x2 for frame in subscriber.frames)
    finally:
        await publisher.close()
        await subscriber.close()


async def test_s1_device_side_channel_upload_on_the_shared_port(
    server: InstaMsgServer, clients: dict[str, Any]
) -> None:
    port = server.ports["http"]
    device = clients["device"]
    uuid = device["id"].encode()
    body = (
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="log.txt"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\nline 1\r\n--" + BOUNDARY + b"--\r\n"
    )
    request = (
        b"POST /api/beta/clients/" + uuid + b"/files HTTP/1.0\r\n"
        b"Authorization: " + device["auth_token"].encode() + b"\r\n"
        b"ClientId: " + uuid + b"\r\n"
        b"Content-Type: multipart/form-data; boundary=" + BOUNDARY + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    response = await raw_http(port, request)
    head, _, url = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n"), response
    assert url.startswith(f"http://127.0.0.1:{port}/files/".encode()) and url.endswith(b".log.txt")
    # The device downloads it again over the same port (§10.4).
    downloaded = await raw_http(port, b"GET " + url[len(f"http://127.0.0.1:{port}") :] + b" HTTP/1.0\r\n\r\n")
    assert downloaded.endswith(b"\r\n\r\nline 1"), downloaded


async def test_s1_a_get_without_upgrade_split_across_packets_reaches_the_rest_api(
    server: InstaMsgServer,
) -> None:
    response = await raw_http(
        server.ports["http"], b"GE", b"T /health HTTP/1.1\r\nHost: x\r\n", b"Connection: close\r\n\r\n"
    )
    assert response.startswith(b"HTTP/1.1 200 "), response


async def test_s1_an_upgrade_split_across_packets_is_mqtt(
    server: InstaMsgServer, clients: dict[str, Any]
) -> None:
    """The head of a GET is read to its end before deciding; the CONNECT behind it reaches the broker."""
    user = clients["user"]
    handshake = (
        b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    username, password = user["id"].encode(), user["auth_token"].encode()
    variable = b"\x00\x04MQTT\x04\xc2\x00\x1e"
    payload = b"\x00\x03any" + len(username).to_bytes(2, "big") + username
    payload += len(password).to_bytes(2, "big") + password
    connect = b"\x10" + bytes([len(variable) + len(payload)]) + variable + payload
    mask = b"\x01\x02\x03\x04"
    frame = bytes([0x82, 0x80 | len(connect)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(connect))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.ports["http"])
    try:
        for chunk in (handshake[:10], handshake[10:40], handshake[40:] + frame):
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.02)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
        # CONNACK, accepted, in one unmasked binary frame.
        assert await asyncio.wait_for(reader.readexactly(6), 10) == b"\x82\x04\x20\x02\x00\x00"
    finally:
        writer.close()


def test_only_ws_may_share_the_http_port() -> None:
    assert Settings(http_port=9000, ws_port=9000).ws_shares_http_port
    assert not Settings(http_port=0, ws_port=0).ws_shares_http_port  # two free ports, not one
    assert not Settings().ws_shares_http_port
    for other in ("mqtt_port", "wss_port", "mqtts_port"):
        with pytest.raises(ValidationError, match="only ws_port may equal http_port"):
            Settings.model_validate({"http_port": 9000, other: 9000})
    with pytest.raises(ValidationError, match="port 9001 is also mqtt_port"):
        Settings(mqtt_port=9001, ws_port=9001)
    assert Settings(mqtt_port=None, mqtts_port=None).mqtt_port is None  # off may repeat


def test_serve_refuses_equal_ports_other_than_http_and_ws(tmp_path: Path) -> None:
    result = run_cli(
        "serve", "--data-dir", str(tmp_path), "--http-port", "9000", "--mqtt-port", "9000", timeout=30
    )
    assert result.returncode == 2
    assert "--mqtt-port (INSTAMSG_MQTT_PORT): port 9000 is also http_port" in result.stderr


async def test_delete_client_removes_its_uploaded_bytes_from_the_data_dir(
    server: InstaMsgServer, clients: dict[str, Any]
) -> None:
    """The platform wires the file store into deleteClient: the bytes go with the client, at once."""
    tenant_path = f"/api/v1/tenants/{clients['tenant']['id']}/clients"
    async with httpx.AsyncClient(base_url=server.base_url, headers=clients["headers"], timeout=10) as http:
        client = (await http.post(tenant_path, json={"type": "device", "name": "gone"})).json()
        created = await http.post(
            f"{tenant_path}/{client['id']}/files/fw.bin", files={"uploadedfile": ("fw.bin", b"firmware")}
        )
        assert created.status_code == 201, created.text
        stored = server.data_dir / "files" / created.json()["file_id"]
        assert stored.read_bytes() == b"firmware"
        assert (await http.delete(f"{tenant_path}/{client['id']}")).status_code == 204
    assert not stored.exists()
