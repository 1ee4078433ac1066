"""A streaming multipart/form-data reader that accepts what devices send (spec §10.3).

Any boundary of 1-70 bytes without CR or LF is accepted, including the official libraries'
`-----------ThIs_Is_tHe_bouNdaRY_78564$!@` that RFC 2046 forbids, and the closing delimiter may end
with or without CRLF. Part bodies are handed to a sink chunk by chunk; only a few kilobytes of the
body are ever held in memory.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

MAX_BOUNDARY_BYTES = 70
MAX_PART_HEADER_BYTES = 16 * 1024
_PARAMETER = re.compile(r';\s*([A-Za-z0-9_.*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


class MultipartError(Exception):
    """The body is not a multipart body this reader can use (a 400 for the caller)."""


class TruncatedBody(MultipartError):
    """The body ended inside a part: nothing of that part may be kept."""


class PartSink(Protocol):
    def write(self, data: bytes | bytearray | memoryview) -> None: ...


@dataclass(frozen=True, slots=True)
class PartInfo:
    name: str | None
    filename: str | None
    content_type: str | None


def boundary_of(content_type: str) -> bytes:
    """The boundary parameter of a `multipart/form-data` Content-Type; MultipartError otherwise."""
    media_type, _, parameters = content_type.partition(";")
    if media_type.strip().lower() != "multipart/form-data":
        raise MultipartError("the body is not multipart/form-data")
    for match in _PARAMETER.finditer(";" + parameters):
        if match.group(1).lower() == "boundary":
            value = match.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            boundary = value.encode("latin-1", errors="replace")
            if not 1 <= len(boundary) <= MAX_BOUNDARY_BYTES or b"\r" in boundary or b"\n" in boundary:
                raise MultipartError("the multipart boundary must be 1-70 bytes without CR or LF")
            return boundary
    raise MultipartError("the multipart Content-Type has no boundary")


def _header_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _disposition_value(disposition: str, key: str) -> str | None:
    """A `name`/`filename` parameter; a quoted filename runs to the last quote, so hostile names with
    `"` or `;` inside are kept whole (they are sanitised later)."""
    match = re.search(r"(?:^|;)\s*" + key + r"\s*=\s*", disposition, re.IGNORECASE)
    if match is None:
        return None
    rest = disposition[match.end() :]
    if rest.startswith('"'):
        if key == "filename":
            end = rest.rfind('"')
            return rest[1:end] if end > 0 else rest[1:]
        end = rest.find('"', 1)
        return rest[1:end] if end > 0 else rest[1:]
    return rest.split(";", 1)[0].strip()


def parse_part_headers(raw: bytes) -> PartInfo:
    headers: dict[str, str] = {}
    for line in raw.split(b"\n"):
        name, separator, value = _header_text(line.rstrip(b"\r")).partition(":")
        if separator:
            headers[name.strip().lower()] = value.strip()
    disposition = headers.get("content-disposition", "")
    return PartInfo(
        name=_disposition_value(disposition, "name"),
        filename=_disposition_value(disposition, "filename"),
        content_type=headers.get("content-type"),
    )


async def read_multipart(
    chunks: AsyncIterator[bytes], boundary: bytes, open_part: Callable[[PartInfo], PartSink | None]
) -> int:
    """Read the whole body; `open_part` is called for each part and returns a sink for its bytes, or
    None to skip it. Returns the number of complete parts. TruncatedBody when the body ends inside a
    part (the last sink then received an incomplete part). Exceptions from sinks propagate."""
    opening = b"--" + boundary
    delimiter = b"\r\n--" + boundary
    buffer = bytearray()
    ended = False

    async def more() -> bool:
        nonlocal ended
        if ended:
            return False
        async for chunk in chunks:
            if chunk:
                buffer.extend(chunk)
                return True
        ended = True
        return False

    # Preamble: up to the first delimiter, which may start the body without a CRLF before it.
    while True:
        position = buffer.find(opening)
        if position >= 0:
            del buffer[: position + len(opening)]
            break
        # Keep a tail that could be the start of the delimiter.
        if len(buffer) > len(opening):
            del buffer[: len(buffer) - len(opening)]
        if not await more():
            return 0
    completed = 0
    while True:
        # After a delimiter: `--` closes the body; otherwise the rest of the line is padding.
        while len(buffer) < 2:
            if not await more():
                return completed
        if buffer.startswith(b"--"):
            return completed
        while (line_end := buffer.find(b"\n")) < 0:
            if len(buffer) > MAX_PART_HEADER_BYTES:
                raise MultipartError("malformed multipart delimiter line")
            if not await more():
                raise TruncatedBody("the body ended after a delimiter")
        del buffer[: line_end + 1]
        # Part headers (a part may have none: its blank line follows the delimiter line at once).
        while True:
            if buffer.startswith(b"\r\n") or buffer.startswith(b"\n"):
                end, separator_length = 0, 2 if buffer.startswith(b"\r\n") else 1
                break
            end = buffer.find(b"\r\n\r\n")
            separator_length = 4
            if end < 0:
                end = buffer.find(b"\n\n")
                separator_length = 2
            if end >= 0:
                break
            if len(buffer) > MAX_PART_HEADER_BYTES:
                raise MultipartError("multipart part headers are too large")
            if not await more():
                raise TruncatedBody("the body ended inside part headers")
        info = parse_part_headers(bytes(buffer[:end]))
        del buffer[: end + separator_length]
        sink = open_part(info)
        # Part body, up to the next delimiter.
        while True:
            position = buffer.find(delimiter)
            if position >= 0:
                if sink is not None and position:
                    sink.write(buffer[:position])
                del buffer[: position + len(delimiter)]
                completed += 1
                break
            keep = len(delimiter) - 1
            if len(buffer) > keep:
                flushed = len(buffer) - keep
                if sink is not None:
                    sink.write(buffer[:flushed])
                del buffer[:flushed]
            if not await more():
                raise TruncatedBody("the body ended inside a part")
