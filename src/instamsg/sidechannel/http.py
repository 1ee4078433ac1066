"""Reading the head of a side-channel request and writing its byte-exact responses (spec §10.3, §10.4).

Only what the official device libraries send is needed: a request line with `HTTP/1.0`, `HTTP/1.1`
or `HTTPS/1.1` (Q18), origin-form or absolute-form targets, and headers without `Host`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

SIDE_CHANNEL_VERSIONS = frozenset({b"HTTP/1.0", b"HTTP/1.1", b"HTTPS/1.1"})
MAX_HEAD_BYTES = 16 * 1024

# Request-line prefixes that may be side-channel requests; any other request goes to the REST app at
# once, so the front door only ever waits for a full request line on these.
_CANDIDATE_PREFIXES = (
    b"GET /files/",
    b"GET http://",
    b"GET https://",
    b"POST /api/beta/clients/",
    b"POST /api/1.0/clients/",
    b"POST http://",
    b"POST https://",
)
_UPLOAD_PATH = re.compile(
    rb"^/api/(?:beta|1\.0)/clients/"
    rb"([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})/files/?$"
)
_DOWNLOAD_PREFIX = b"/files/"
_ABSOLUTE = re.compile(rb"^https?://[^/?#]*", re.IGNORECASE)

STATUS_TEXT = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    411: "Length Required",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def may_be_side_channel(start: bytes | bytearray) -> bool | None:
    """True/False once the first bytes decide whether this may be a side-channel request; None when
    more bytes are needed to tell."""
    undecided = False
    for prefix in _CANDIDATE_PREFIXES:
        length = min(len(start), len(prefix))
        if start[:length] == prefix[:length]:
            if len(start) >= len(prefix):
                return True
            undecided = True
    return None if undecided else False


@dataclass(frozen=True, slots=True)
class Upload:
    client_uuid: str


@dataclass(frozen=True, slots=True)
class Download:
    file_id: str
    name: str


Route = Upload | Download


def _origin_path(target: bytes) -> bytes:
    """The path of an origin-form or absolute-form target, without query or fragment."""
    match = _ABSOLUTE.match(target)
    if match is not None:
        target = target[match.end() :] or b"/"
    for separator in (b"?", b"#"):
        target = target.split(separator, 1)[0]
    return target


def route_of(request_line: bytes) -> Route | None:
    """The side-channel route of a request line, or None when the REST app should serve it."""
    parts = request_line.strip().split()
    if len(parts) != 3:
        return None
    method, target, version = parts
    if version not in SIDE_CHANNEL_VERSIONS:
        return None
    path = _origin_path(target)
    if method == b"POST":
        upload = _UPLOAD_PATH.match(path)
        return Upload(upload.group(1).decode("ascii").lower()) if upload else None
    if method == b"GET" and path.startswith(_DOWNLOAD_PREFIX):
        # Any /files/ path is ours: unknown ones get the side channel's 404.
        rest = path[len(_DOWNLOAD_PREFIX) :]
        file_id, _, name = rest.partition(b".")
        try:
            decoded_name = unquote_to_bytes(name).decode("utf-8")
            return Download(file_id.decode("ascii"), decoded_name)
        except UnicodeDecodeError:
            return Download("", "")
    return None


@dataclass(frozen=True, slots=True)
class RequestHead:
    request_line: bytes
    headers: dict[str, str]

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def parse_head(head: bytes) -> RequestHead:
    """Split a head (request line and header lines, CRLF or LF) into the request line and headers.

    Header names are matched case-insensitively; the first occurrence of a name wins."""
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, separator, value = line.partition(b":")
        if not separator:
            continue
        key = name.strip().decode("latin-1").lower()
        headers.setdefault(key, value.strip().decode("latin-1"))
    return RequestHead(lines[0], headers)


def upload_response(url: str) -> bytes:
    """§10.3, byte-exact: HTTP/1.0 200, `Content-Length` in this capitalisation, no trailing newline."""
    body = url.encode("utf-8")
    return (
        b"HTTP/1.0 200 OK\r\n"
        b"Content-Type: text/plain\r\n"
        b"Content-Length: " + str(len(body)).encode("ascii") + b"\r\n"
        b"Connection: close\r\n"
        b"\r\n" + body
    )


def download_head(size: int) -> bytes:
    """§10.4, byte-exact: the head before the file bytes (no chunking, closed after the body)."""
    return (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"Content-Length: " + str(size).encode("ascii") + b"\r\n"
        b"Connection: close\r\n"
        b"\r\n"
    )


def error_response(status: int, message: str, version: bytes = b"HTTP/1.0") -> bytes:
    """A plain-text error; devices only look at the status code."""
    body = message.encode("utf-8") + b"\n"
    return (
        version + b" " + str(status).encode("ascii") + b" " + STATUS_TEXT[status].encode("ascii") + b"\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: " + str(len(body)).encode("ascii") + b"\r\n"
        b"Connection: close\r\n"
        b"\r\n" + body
    )
