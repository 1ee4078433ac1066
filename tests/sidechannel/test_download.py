"""Device downloads over the HTTP side channel (spec §10.4, Q18, checklist 29), and the front door
handing every other request to the REST app unchanged."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import httpx

from tests.sidechannel.conftest import (
    SideChannelServer,
    exchange,
    multipart_body,
    split_response,
    token_headers,
    upload_request,
)


async def upload(server: SideChannelServer, content: bytes, filename: str = "fw.bin") -> str:
    """Upload over the side channel; returns the URL's path."""
    request = upload_request(
        server.client_id, multipart_body(content, filename.encode()), token_headers(server)
    )
    _, url = split_response(await exchange(server.port, request))
    path = url.decode().removeprefix(server.base_url)
    assert path.startswith("/files/"), url
    return path


def expected_download(content: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"Content-Length: " + str(len(content)).encode() + b"\r\n"
        b"Connection: close\r\n"
        b"\r\n" + content
    )


async def test_checklist_29_origin_form_http10_no_host(side_channel: SideChannelServer) -> None:
    content = bytes(range(256)) * 5
    path = await upload(side_channel, content)
    # `exchange` reads until the server closes: the connection is closed after the body.
    response = await exchange(side_channel.port, b"GET " + path.encode() + b" HTTP/1.0\r\n\r\n")
    assert response == expected_download(content)
    assert b"chunked" not in response.lower().split(b"\r\n\r\n")[0]


async def test_checklist_29_absolute_form_target_and_https_token(side_channel: SideChannelServer) -> None:
    path = await upload(side_channel, b"firmware image")
    for request_line in (
        b"GET http://platform.instamsg.io" + path.encode() + b" HTTP/1.1",
        b"GET https://platform.instamsg.io:443" + path.encode() + b" HTTPS/1.1",
    ):
        response = await exchange(side_channel.port, request_line + b"\r\nAccept-Encoding: gzip\r\n\r\n")
        assert response == expected_download(b"firmware image"), request_line


async def test_percent_encoded_names_are_served(side_channel: SideChannelServer) -> None:
    name = "my file \u00e9.txt"
    path = await upload(side_channel, b"spaces", name)
    assert path.endswith("." + quote(name, safe=""))
    response = await exchange(side_channel.port, b"GET " + path.encode() + b" HTTP/1.0\r\n\r\n")
    assert response == expected_download(b"spaces")


async def test_unknown_paths_get_404(side_channel: SideChannelServer) -> None:
    path = await upload(side_channel, b"known")
    file_id = path.split("/")[2].split(".")[0]
    for target in (
        b"/files/00000000-0000-4000-8000-000000000000.fw.bin",
        b"/files/" + file_id.encode() + b".other-name.bin",
        # An escape that decodes to no UTF-8 text names no file (it used to raise: a 500).
        b"/files/" + file_id.encode() + b".%ff%fe.bin",
        b"/files/" + file_id.encode() + b".%25ff",
        b"/files/not-an-id",
        b"/files/",
    ):
        response = await exchange(side_channel.port, b"GET " + target + b" HTTP/1.0\r\n\r\n")
        assert response.startswith(b"HTTP/1.1 404 "), (target, response)


async def test_empty_file(side_channel: SideChannelServer) -> None:
    path = await upload(side_channel, b"")
    response = await exchange(side_channel.port, b"GET " + path.encode() + b" HTTP/1.0\r\n\r\n")
    assert response == expected_download(b"")


async def test_rest_requests_pass_through_the_front_door_unchanged(side_channel: SideChannelServer) -> None:
    path = await upload(side_channel, b"listed")
    async with httpx.AsyncClient(base_url=side_channel.base_url, headers=side_channel.auth) as http:
        # Several requests on one kept-alive connection: after the hand-over uvicorn serves them all.
        assert (await http.get("/health")).status_code == 200
        listed = await http.get(
            f"/api/v1/tenants/{side_channel.tenant_id}/clients/{side_channel.client_id}/files"
        )
        assert listed.status_code == 200
        assert [item["url"] for item in listed.json()] == [side_channel.base_url + path]
        created = await http.post("/api/v1/tenants", json={"name": "x", "max_clients": 1, "max_messages": 1})
        assert created.status_code == 201, created.text
        assert created.headers["content-type"].startswith("application/json")
        # The side channel's own path is served by the front door even through an HTTP client.
        downloaded = await http.get(path)
        assert downloaded.status_code == 200
        assert downloaded.content == b"listed"


async def test_rest_request_split_across_packets_is_handed_over(side_channel: SideChannelServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", side_channel.port)
    for piece in (b"GE", b"T /hea", b"lth HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.02)
    response = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert response.startswith(b"HTTP/1.1 200 OK\r\n"), response
