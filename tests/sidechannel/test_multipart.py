"""The streaming multipart reader (spec §10.3): device boundaries, any chunking, truncation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from instamsg.sidechannel.multipart import (
    MultipartError,
    PartInfo,
    TruncatedBody,
    boundary_of,
    read_multipart,
)

DEVICE_BOUNDARY = b"-----------ThIs_Is_tHe_bouNdaRY_78564$!@"


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.data.extend(data)


async def chunked(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def parse(body: bytes, boundary: bytes, size: int) -> tuple[int, list[tuple[PartInfo, bytes]]]:
    parts: list[tuple[PartInfo, Sink]] = []

    def open_part(info: PartInfo) -> Sink:
        sink = Sink()
        parts.append((info, sink))
        return sink

    count = await read_multipart(chunked(body, size), boundary, open_part)
    return count, [(info, bytes(sink.data)) for info, sink in parts]


def test_boundary_of_accepts_the_device_boundary_and_quotes() -> None:
    assert boundary_of("multipart/form-data; boundary=" + DEVICE_BOUNDARY.decode()) == DEVICE_BOUNDARY
    assert boundary_of('Multipart/Form-Data; charset=x; boundary="a b"') == b"a b"
    for bad in ("text/plain; boundary=x", "multipart/form-data", "multipart/form-data; boundary=" + "x" * 71):
        with pytest.raises(MultipartError):
            boundary_of(bad)


@pytest.mark.parametrize("size", [1, 3, 7, 64, 100_000])
async def test_any_chunking_gives_the_same_parts(size: int) -> None:
    tricky = b"\r\n--" + DEVICE_BOUNDARY[:-1] + b"\r\n-" * 3
    body = (
        b"--" + DEVICE_BOUNDARY + b'\r\nContent-Disposition: form-data; name="a"\r\n\r\nfirst\r\n'
        b"--"
        + DEVICE_BOUNDARY
        + b'\r\nContent-Disposition: form-data; name="file"; filename="x;\\"y.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + tricky + b"\r\n--" + DEVICE_BOUNDARY + b"--"
    )
    count, parts = await parse(body, DEVICE_BOUNDARY, size)
    assert count == 2
    assert [(info.name, data) for info, data in parts] == [("a", b"first"), ("file", tricky)]
    assert parts[1][0].filename == 'x;\\"y.bin'
    assert parts[1][0].content_type == "application/octet-stream"


async def test_epilogue_after_the_closing_delimiter_is_ignored() -> None:
    body = b"--b\r\nContent-Disposition: form-data; name=file\r\n\r\nv\r\n--b--\r\nepilogue --b"
    count, parts = await parse(body, b"b", 2)
    assert count == 1 and parts[0][1] == b"v" and parts[0][0].name == "file"


@pytest.mark.parametrize("cut", [5, 30, 60])
async def test_truncated_bodies_raise(cut: int) -> None:
    body = b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\n' + b"v" * 40 + b"\r\n--b--"
    with pytest.raises(TruncatedBody):
        await parse(body[:cut], b"b", 4)


async def test_a_body_without_any_delimiter_has_no_parts() -> None:
    count, parts = await parse(b"just text", b"b", 3)
    assert count == 0 and parts == []
