"""Device command endpoints reboot, update_firmware and control_action (spec §2.7 S9, §12.1, §12.4,
§12.5, S13, C11) against a real node and a real device connection."""

from __future__ import annotations

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


async def _device_client(live: LiveNode) -> dict[str, Any]:
    return await live.client(await live.tenant())


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"", {}),
        (b"{}", {"Content-Type": "application/json"}),
        (b"{}", {"Content-Type": "text/plain"}),
    ],
)
async def test_reboot_publishes_an_empty_payload_at_qos_1(
    live: LiveNode, content: bytes, headers: dict[str, str]
) -> None:
    client = await _device_client(live)
    device = await live.device(client, "java")
    try:
        response = await live.http.post(client_path(client, "/reboot"), content=content, headers=headers)
        assert response.status_code == 202, response.text
        assert response.json() == {"sent": True}
        received = await device.receive()
        assert (received.topic, received.payload, received.qos) == (
            f"instamsg/clients/{client['id']}/reboot",
            b"",
            1,
        )
    finally:
        await device.close()


async def test_update_firmware_publishes_the_payload_verbatim(live: LiveNode) -> None:
    client = await _device_client(live)
    device = await live.device(client)
    payload = '{"url": "http://x/fw.bin", "md5": "é"}'
    try:
        response = await live.http.post(client_path(client, "/update_firmware"), json={"payload": payload})
        assert response.status_code == 202 and response.json() == {"sent": True}, response.text
        received = await device.receive()
        assert (received.topic, received.payload, received.qos) == (
            f"instamsg/clients/{client['id']}/update_firmware",
            payload.encode(),
            1,
        )
    finally:
        await device.close()


async def test_control_action_sends_a_string_verbatim_and_an_object_as_compact_json(live: LiveNode) -> None:
    client = await _device_client(live)
    device = await live.device(client)
    topic = f"instamsg/clients/{client['id']}/controlaction"
    command = {"v": "1.0", "time": 1700000000, "ttl": 60, "data": "ON", "port": {"port_name": "gpio"}}
    try:
        for body, expected in (
            ({"payload": "relay1 on"}, b"relay1 on"),
            (
                {"payload": command},
                b'{"v":"1.0","time":1700000000,"ttl":60,"data":"ON","port":{"port_name":"gpio"}}',
            ),
        ):
            response = await live.http.post(client_path(client, "/control_action"), json=body)
            assert response.status_code == 202 and response.json() == {"sent": True}, response.text
            received = await device.receive()
            assert (received.topic, received.payload, received.qos) == (topic, expected, 1)
    finally:
        await device.close()


async def test_c11_offline_client_gets_sent_false_and_nothing_is_queued(live: LiveNode) -> None:
    client = await _device_client(live)
    for suffix, body in (
        ("/reboot", {}),
        ("/update_firmware", {"payload": "x"}),
        ("/control_action", {"payload": "x"}),
    ):
        response = await live.http.post(client_path(client, suffix), json=body)
        assert response.status_code == 202 and response.json() == {"sent": False}, response.text
    device = await live.device(client)
    try:
        await device.expect_no_publish()
    finally:
        await device.close()


async def test_command_refusals(live: LiveNode) -> None:
    client = await _device_client(live)
    unknown = {**client, "id": UNKNOWN_UUID}
    assert_error(await live.http.post(client_path(unknown, "/reboot")), 404, "client_not_found")
    not_uuid = {**client, "id": "not-a-uuid"}
    assert_error(await live.http.post(client_path(not_uuid, "/reboot")), 404, "client_not_found")
    other_tenant = {**client, "tenant_id": UNKNOWN_UUID}
    assert_error(await live.http.post(client_path(other_tenant, "/reboot")), 404, "tenant_not_found")
    firmware = client_path(client, "/update_firmware")
    firmware_bodies: list[dict[str, Any]] = [
        {},
        {"payload": 5},
        {"payload": {"a": 1}},
        {"payload": "x", "b": 1},
    ]
    for body in firmware_bodies:
        assert_error(await live.http.post(firmware, json=body), 400)
    control = client_path(client, "/control_action")
    control_bodies: list[dict[str, Any]] = [{"payload": 5}, {"payload": ["a"]}, {"payload": None}]
    for body in control_bodies:
        assert_error(await live.http.post(control, json=body), 400)
    response = await live.http.post(firmware, content=b"x", headers={"Content-Type": "text/plain"})
    assert_error(response, 415, "unsupported_media_type")
    assert (
        await live.http.post(f"/api/beta/tenants/{client['tenant_id']}/clients/{client['id']}/reboot")
    ).json() == {"sent": False}
