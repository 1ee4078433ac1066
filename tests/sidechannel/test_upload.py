"""Device uploads over the HTTP side channel, byte for byte (spec §10.3, Q18, checklist 28)."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from tests.sidechannel.conftest import (
    MAX_FILE_BYTES,
    SideChannelServer,
    exchange,
    hashed_headers,
    multipart_body,
    split_response,
    token_headers,
    upload_request,
)

UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def expected_success(url: bytes) -> bytes:
    return (
        b"HTTP/1.0 200 OK\r\n"
        b"Content-Type: text/plain\r\n"
        b"Content-Length: " + str(len(url)).encode() + b"\r\n"
        b"Connection: close\r\n"
        b"\r\n" + url
    )


async def uploaded_url(server: SideChannelServer, response: bytes, filename: str = "report.csv") -> str:
    _, url = split_response(response)
    assert response == expected_success(url), response
    pattern = re.escape(f"http://127.0.0.1:{server.port}/files/") + UUID4 + re.escape("." + filename)
    assert re.fullmatch(pattern, url.decode()), url
    return url.decode()


async def rest_download(server: SideChannelServer, filename: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, headers=server.auth) as http:
        path = f"/api/v1/tenants/{server.tenant_id}/clients/{server.client_id}/files/{filename}"
        return await http.get(path)


async def test_checklist_28_raw_token_http10_no_host_dollar_boundary(side_channel: SideChannelServer) -> None:
    content = b"a,b\r\n1,2\r\n\x00\xff binary"
    request = upload_request(side_channel.client_id, multipart_body(content), token_headers(side_channel))
    assert b"Host:" not in request
    response = await exchange(side_channel.port, request)
    await uploaded_url(side_channel, response)
    assert b"\r\nContent-Length: " in response  # this exact capitalisation (C and Java match it)
    stored = await rest_download(side_channel, "report.csv")
    assert stored.status_code == 200
    assert stored.content == content


async def test_checklist_28_client_authorization_sha256(side_channel: SideChannelServer) -> None:
    request = upload_request(side_channel.client_id, multipart_body(b"telit"), hashed_headers(side_channel))
    await uploaded_url(side_channel, await exchange(side_channel.port, request))
    assert (await rest_download(side_channel, "report.csv")).content == b"telit"


async def test_q18_https_version_token_and_api_1_0_path(side_channel: SideChannelServer) -> None:
    request = upload_request(
        side_channel.client_id,
        multipart_body(b"python 2018"),
        token_headers(side_channel),
        version=b"HTTPS/1.1",
        path_version=b"1.0",
    )
    await uploaded_url(side_channel, await exchange(side_channel.port, request))


@pytest.mark.parametrize("closing", [b"--", b"--\r\n"])
async def test_closing_delimiter_with_or_without_crlf_and_any_boundary(
    side_channel: SideChannelServer, closing: bytes
) -> None:
    boundary = b"x"
    body = b"preamble\r\n" + multipart_body(b"data--x-ish", boundary=boundary, closing=closing)
    request = upload_request(side_channel.client_id, body, token_headers(side_channel), boundary=boundary)
    await uploaded_url(side_channel, await exchange(side_channel.port, request))
    assert (await rest_download(side_channel, "report.csv")).content == b"data--x-ish"


async def test_other_parts_are_ignored_and_a_missing_file_part_is_400(
    side_channel: SideChannelServer,
) -> None:
    body = multipart_body(b"not the file", name=b"comment")
    response = await exchange(
        side_channel.port, upload_request(side_channel.client_id, body, token_headers(side_channel))
    )
    assert response.startswith(b"HTTP/1.0 400 "), response
    assert side_channel.stored_names() == []


@pytest.mark.parametrize(
    "headers",
    [
        [b"Authorization: wrong-token"],
        [b"Client-Authorization: " + b"0" * 64],
        [],
    ],
    ids=["wrong-token", "wrong-hash", "no-credentials"],
)
async def test_bad_credentials_get_401_plain_text(
    side_channel: SideChannelServer, headers: list[bytes]
) -> None:
    request = upload_request(side_channel.client_id, multipart_body(b"x"), headers)
    response = await exchange(side_channel.port, request)
    head, _ = split_response(response)
    assert head.startswith(b"HTTP/1.0 401 "), response
    assert b"Content-Type: text/plain" in head
    assert side_channel.stored_names() == []


async def test_client_id_header_must_match_the_path(side_channel: SideChannelServer) -> None:
    headers = [
        b"Authorization: " + side_channel.token.encode(),
        b"ClientId: 00000000-0000-4000-8000-000000000000",
    ]
    response = await exchange(
        side_channel.port, upload_request(side_channel.client_id, multipart_body(b"x"), headers)
    )
    assert response.startswith(b"HTTP/1.0 401 "), response


async def test_unknown_client_gets_401(side_channel: SideChannelServer) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    response = await exchange(
        side_channel.port,
        upload_request(unknown, multipart_body(b"x"), [b"Authorization: " + side_channel.token.encode()]),
    )
    assert response.startswith(b"HTTP/1.0 401 "), response


async def test_blocked_client_gets_403(side_channel: SideChannelServer) -> None:
    side_channel.directory.upsert_client(side_channel.record(blocked=True))
    request = upload_request(side_channel.client_id, multipart_body(b"x"), token_headers(side_channel))
    response = await exchange(side_channel.port, request)
    assert response.startswith(b"HTTP/1.0 403 "), response


async def test_declared_too_large_gets_413_before_the_body(side_channel: SideChannelServer) -> None:
    request = upload_request(
        side_channel.client_id, b"", token_headers(side_channel), content_length=10 * 1024 * 1024
    )
    response = await exchange(side_channel.port, request)
    assert response.startswith(b"HTTP/1.0 413 "), response


async def test_streamed_file_over_the_limit_gets_413_and_nothing_is_kept(
    side_channel: SideChannelServer,
) -> None:
    body = multipart_body(b"z" * (MAX_FILE_BYTES + 1))
    response = await exchange(
        side_channel.port, upload_request(side_channel.client_id, body, token_headers(side_channel))
    )
    assert response.startswith(b"HTTP/1.0 413 "), response
    assert side_channel.stored_names() == []
    assert side_channel.staging_names() == []


async def test_truncated_upload_leaves_no_stored_file(side_channel: SideChannelServer) -> None:
    body = multipart_body(b"y" * 1000)
    request = upload_request(side_channel.client_id, body, token_headers(side_channel))
    truncated = request[: len(request) - len(body) // 2]
    response = await exchange(side_channel.port, truncated, half_close=True)
    assert not response.startswith(b"HTTP/1.0 200"), response
    assert side_channel.stored_names() == []
    assert side_channel.staging_names() == []
    assert await side_channel.files.list_files_of_client(side_channel.client_id) == []


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        (b"../../etc/passwd", "passwd"),
        (b"/absolute/path.txt", "path.txt"),
        (b"C:\\Users\\dev\\log.txt", "log.txt"),
        (b"nul\x00in\x01name.bin", "nulinname.bin"),
        (b'quote"d.txt', "quoted.txt"),
        ("caf\u00e9.txt".encode(), "caf\u00e9.txt"),
        (b"n" * 300, "n" * 255),
    ],
)
async def test_hostile_filenames_are_reduced_to_a_safe_base_name(
    side_channel: SideChannelServer, raw: bytes, stored: str
) -> None:
    before = sorted(p.name for p in side_channel.files_dir.parent.iterdir())
    request = upload_request(side_channel.client_id, multipart_body(b"h", raw), token_headers(side_channel))
    response = await exchange(side_channel.port, request)
    assert response.startswith(b"HTTP/1.0 200 "), response
    listed = await side_channel.files.list_files_of_client(side_channel.client_id)
    assert [item.filename for item in listed] == [stored]
    # Bytes are stored under the random file id only; nothing appeared anywhere else.
    assert side_channel.stored_names() == [listed[0].file_id]
    assert sorted(p.name for p in side_channel.files_dir.parent.iterdir()) == before


@pytest.mark.parametrize("raw", [b"..", b"../", b"\x00\x01", b""])
async def test_filenames_with_nothing_usable_are_rejected(
    side_channel: SideChannelServer, raw: bytes
) -> None:
    request = upload_request(side_channel.client_id, multipart_body(b"h", raw), token_headers(side_channel))
    response = await exchange(side_channel.port, request)
    assert response.startswith(b"HTTP/1.0 400 "), response
    assert side_channel.stored_names() == []


async def test_a_new_upload_replaces_the_file_and_revokes_the_old_url(
    side_channel: SideChannelServer,
) -> None:
    first = await uploaded_url(
        side_channel,
        await exchange(
            side_channel.port,
            upload_request(side_channel.client_id, multipart_body(b"one"), token_headers(side_channel)),
        ),
    )
    second = await uploaded_url(
        side_channel,
        await exchange(
            side_channel.port,
            upload_request(side_channel.client_id, multipart_body(b"two"), token_headers(side_channel)),
        ),
    )
    assert first != second
    old_path = first.removeprefix(side_channel.base_url).encode()
    new_path = second.removeprefix(side_channel.base_url).encode()
    gone = await exchange(side_channel.port, b"GET " + old_path + b" HTTP/1.0\r\n\r\n")
    assert gone.startswith(b"HTTP/1.1 404 "), gone
    fresh = await exchange(side_channel.port, b"GET " + new_path + b" HTTP/1.0\r\n\r\n")
    assert split_response(fresh)[1] == b"two"
    assert len(side_channel.stored_names()) == 1


async def test_expect_100_continue_is_answered_before_the_body(side_channel: SideChannelServer) -> None:
    body = multipart_body(b"curl")
    request = upload_request(
        side_channel.client_id, body, [*token_headers(side_channel), b"Expect: 100-continue"]
    )
    head = request[: len(request) - len(body)]
    reader, writer = await asyncio.open_connection("127.0.0.1", side_channel.port)
    try:
        writer.write(head)
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        response = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    await uploaded_url(side_channel, response)
