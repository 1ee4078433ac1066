"""reset_auth_token on an online client (spec §12.3 steps 1-4, S13): the raw new token is pushed on
`updateAuthToken` at QoS 1, the old token stops working at once, and the old connection is closed
within `auth_token_reset_disconnect_seconds`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.rest.live import HOST, LiveNode, client_path, start_live_node
from tests.support.devices import LegacyDevice

DISCONNECT_SECONDS = 0.3


@pytest.fixture
async def live(database_url: str, tmp_path: Path) -> AsyncIterator[LiveNode]:
    async for node in start_live_node(
        database_url, tmp_path / "data", auth_token_reset_disconnect_seconds=DISCONNECT_SECONDS
    ):
        yield node


async def test_online_java_device_gets_the_raw_token_then_its_old_connection_is_closed(
    live: LiveNode,
) -> None:
    client = await live.client(await live.tenant())
    device = await live.device(client, "java")
    try:
        response = await live.http.put(client_path(client, "/reset_auth_token"))
        assert response.status_code == 200, response.text
        new_token = response.json()["auth_token"]
        assert new_token != client["auth_token"]
        pushed = await device.receive()
        assert (pushed.topic, pushed.payload, pushed.qos) == (
            f"instamsg/clients/{client['id']}/updateAuthToken",
            new_token.encode(),
            1,
        )
        # The old connection is closed by the server (bounded wait; the configured delay is short).
        await device.wait_closed(timeout=5 + DISCONNECT_SECONDS)
        assert device.closed
    finally:
        await device.close()
    # Old token refused, new token accepted (a Java device saves it and reconnects).
    refused = await LegacyDevice.connect(
        HOST,
        live.mqtt_port,
        uuid=client["id"],
        token=client["auth_token"],
        dialect="java",
        require_accept=False,
    )
    await refused.close()
    assert refused.connack == b"\x20\x02\x00\x04"
    renewed = await LegacyDevice.connect(
        HOST, live.mqtt_port, uuid=client["id"], token=new_token, dialect="java"
    )
    try:
        assert renewed.connack == b"\x20\x02\x00\x00"
    finally:
        await renewed.close()


async def test_old_token_is_refused_while_the_old_connection_is_still_open(live: LiveNode) -> None:
    client = await live.client(await live.tenant())
    device = await live.device(client, "java")
    try:
        response = await live.http.put(client_path(client, "/reset_auth_token"))
        assert response.status_code == 200, response.text
        await device.receive()  # the push: the reset is committed and applied
        refused = await LegacyDevice.connect(
            HOST,
            live.mqtt_port,
            uuid=client["id"],
            token=client["auth_token"],
            dialect="c",
            require_accept=False,
        )
        await refused.close()
        assert refused.connack == b"\x20\x02\x00\x04"
    finally:
        await device.close()


async def test_offline_client_reset_pushes_nothing(live: LiveNode) -> None:
    client = await live.client(await live.tenant())
    response = await live.http.put(client_path(client, "/reset_auth_token"), content=b"{}")
    assert response.status_code == 200, response.text
    new_token = response.json()["auth_token"]
    device = await LegacyDevice.connect(
        HOST, live.mqtt_port, uuid=client["id"], token=new_token, dialect="java"
    )
    try:
        await device.expect_no_publish()
    finally:
        await device.close()
