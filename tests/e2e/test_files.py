"""Files end to end: a real `instamsg serve`, a byte-level Java-library device, the REST API and the
HTTP side channel (spec §7.4, §10, checklist 28-30)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.devices import LegacyDevice
from tests.support.instamsg_server import InstaMsgServer

BOUNDARY = b"-----------ThIs_Is_tHe_bouNdaRY_78564$!@"


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InstaMsgServer]:
    # Small delays keep the test fast: server pushes to legacy devices start at once here.
    monkeypatch.setenv("INSTAMSG_LEGACY_PUSH_DELAY_SECONDS", "0")
    monkeypatch.setenv("INSTAMSG_LEGACY_PUSH_SPACING_SECONDS", "0")
    monkeypatch.setenv("INSTAMSG_COMMAND_TIMEOUT_SECONDS", "5")
    running = InstaMsgServer(tmp_path / "data").start()
    yield running
    assert running.stop() == 0, running.log()


async def raw_http(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return response


def device_get(url: str) -> bytes:
    """What C and Java send: scheme and host stripped, HTTP/1.0, no headers at all (§10.4)."""
    path = re.sub(r"^https?://[^/]+", "", url)
    return b"GET " + path.encode() + b" HTTP/1.0\r\n\r\n"


async def wait_for_device_status(http: httpx.AsyncClient, files_path: str, expected: str) -> dict[str, Any]:
    for _ in range(200):
        listed = (await http.get(files_path)).json()
        if listed and listed[0]["device_status"] == expected:
            item: dict[str, Any] = listed[0]
            return item
        await asyncio.sleep(0.05)
    raise AssertionError(f"device_status never became {expected!r}: {listed}")


async def test_checklist_30_upload_command_reply_download_delete(server: InstaMsgServer) -> None:
    client_key, client_secret = server.create_app("files")
    headers = {"Authorization": f"Bearer {server.token(client_key, client_secret)}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=10) as http:
        tenant = (
            await http.post("/api/v1/tenants", json={"name": "t", "max_clients": 5, "max_messages": 100})
        ).json()
        client = (
            await http.post(f"/api/v1/tenants/{tenant['id']}/clients", json={"type": "device", "name": "d"})
        ).json()
        uuid, token = client["id"], client["auth_token"]
        files_path = f"/api/v1/tenants/{tenant['id']}/clients/{uuid}/files"
        device = await LegacyDevice.connect(
            "127.0.0.1", server.ports["mqtt"], uuid=uuid, token=token, dialect="java"
        )
        try:
            content = b"\x7fELF firmware \x00\xff" * 100
            created = await http.post(f"{files_path}/fw.bin", files={"uploadedfile": ("fw.bin", content)})
            assert created.status_code == 201, created.text
            url = created.json()["url"]
            assert re.fullmatch(
                rf"http://127\.0\.0\.1:{server.ports['http']}/files/[0-9a-f-]{{36}}\.fw\.bin", url
            ), url

            command = await device.receive(timeout=5)
            assert command.topic == f"instamsg/clients/{uuid}/files"
            assert command.qos == 1
            message_id = json.loads(command.payload)["message_id"]
            assert re.fullmatch(r"[0-9]{1,5}", message_id)
            assert (
                command.payload
                == (
                    f'{{"message_id": "{message_id}", "reply_to": "instamsg/clients/{uuid}/reply", '
                    f'"method": "POST", "filename": "fw.bin", "url": "{url}"}}'
                ).encode()
            )

            # The device downloads the URL over the side channel, byte for byte.
            downloaded = await raw_http(server.ports["http"], device_get(url))
            assert downloaded == (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: " + str(len(content)).encode() + b"\r\nConnection: close\r\n\r\n" + content
            )

            # Its reply goes to the reply topic with the command's QoS, and lands in device_status.
            await device.publish(
                f"instamsg/clients/{uuid}/reply",
                f'{{"response_id": "{message_id}", "status": 1}}'.encode(),
                1,
            )
            item = await wait_for_device_status(http, files_path, "ok")
            assert item["url"] == url
            await device.expect_no_publish(0.2)  # the reply was consumed, not echoed back

            # downloadFile streams it as an attachment.
            streamed = await http.get(f"{files_path}/fw.bin")
            assert streamed.content == content
            assert streamed.headers["content-disposition"] == 'attachment; filename="fw.bin"'

            # deleteFile → 204, after which the URL gives 404.
            assert (await http.delete(f"{files_path}/fw.bin")).status_code == 204
            gone = await raw_http(server.ports["http"], device_get(url))
            assert gone.startswith(b"HTTP/1.1 404 "), gone
        finally:
            await device.close()


async def test_checklist_28_device_upload_to_a_real_server(server: InstaMsgServer) -> None:
    client_key, client_secret = server.create_app("files")
    headers = {"Authorization": f"Bearer {server.token(client_key, client_secret)}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=10) as http:
        tenant = (
            await http.post("/api/v1/tenants", json={"name": "t", "max_clients": 5, "max_messages": 100})
        ).json()
        client = (
            await http.post(f"/api/v1/tenants/{tenant['id']}/clients", json={"type": "device", "name": "d"})
        ).json()
        uuid, token = client["id"], client["auth_token"]
        for auth_header in (
            b"Authorization: " + token.encode(),
            b"Client-Authorization: " + hashlib.sha256((uuid + token).encode()).hexdigest().encode(),
        ):
            body = (
                b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="log.txt"\r\n'
                b"Content-Type: application/octet-stream\r\n\r\nline 1\r\n--" + BOUNDARY + b"--\r\n"
            )
            request = (
                b"POST /api/beta/clients/" + uuid.encode() + b"/files HTTP/1.0\r\n" + auth_header + b"\r\n"
                b"ClientId: " + uuid.encode() + b"\r\n"
                b"Content-Type: multipart/form-data; boundary=" + BOUNDARY + b"\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            response = await raw_http(server.ports["http"], request)
            head, _, url = response.partition(b"\r\n\r\n")
            assert head == (
                b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                + str(len(url)).encode()
                + b"\r\nConnection: close"
            ), response
            assert url.startswith(f"http://127.0.0.1:{server.ports['http']}/files/".encode()), url
            assert url.endswith(b".log.txt")
        listed = (await http.get(f"/api/v1/tenants/{tenant['id']}/clients/{uuid}/files")).json()
        assert [(item["filename"], item["source"], item["size"]) for item in listed] == [
            ("log.txt", "device", 6)
        ]
        assert listed[0]["url"] == url.decode()
