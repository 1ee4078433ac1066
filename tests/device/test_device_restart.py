"""DeviceClient across a server restart (issue 5): it reconnects with backoff and resubscribes by itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from instamsg.api import Client
from instamsg.device import DeviceClient
from tests.api.support import unique
from tests.support.instamsg_server import InstaMsgServer
from tests.support.ports import free_port

pytestmark = pytest.mark.xdist_group("device-sdk")


def fixed_port_server(data_dir: Path, http_port: int, mqtt_port: int) -> InstaMsgServer:
    # The device reconnects to the address it knows: the restarted server must listen on the same port.
    return InstaMsgServer(
        data_dir,
        extra_arguments=["--http-port", str(http_port), "--mqtt-port", str(mqtt_port)],
        ephemeral_listeners=("mqtts", "ws", "wss"),
    )


async def test_device_reconnects_and_resubscribes_after_a_server_restart(tmp_path: Path) -> None:
    http_port, mqtt_port = free_port(), free_port()
    data_dir = tmp_path / "data"
    server = fixed_port_server(data_dir, http_port, mqtt_port).start()
    try:
        client_key, client_secret = server.create_app("restart")
        with Client(server.base_url, client_key, client_secret) as api:
            tenant = api.create_tenant(unique("tenant"), max_clients=5, max_messages=1000)
            device = api.create_client(
                tenant.id, "device", unique("device"), sub_topics=["news"], pub_topics=["news"]
            )
        client = DeviceClient(
            "127.0.0.1",
            mqtt_port,
            device.id,
            device.auth_token,
            reconnect_delay=0.05,
            reconnect_max_delay=0.5,
        )
        async with client:
            await client.subscribe("news", qos=1)
            assert client.connections == 1
            await asyncio.to_thread(server.stop)
            server = await asyncio.to_thread(fixed_port_server(data_dir, http_port, mqtt_port).start)
            for _ in range(200):
                if client.connections >= 2 and client.is_connected:
                    break
                await asyncio.sleep(0.05)
            assert client.connections >= 2 and client.is_connected
            with Client(server.base_url, client_key, client_secret) as api:
                # The subscription was made again by the client itself (its session was clean).
                for _ in range(50):
                    published = api.publish_message(tenant.id, device.id, "news", "after restart")
                    if published.delivered_to:
                        break
                    await asyncio.sleep(0.05)
                assert published.delivered_to == 1

            async def first_text() -> str:
                async for message in client.messages():
                    return message.text
                raise AssertionError("messages() ended")

            assert await asyncio.wait_for(first_text(), 5) == "after restart"
    finally:
        server.stop()
