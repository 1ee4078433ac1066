"""Device uploads (`POST /api/beta|1.0/clients/<UUID>/files`, §10.3) and downloads
(`GET /files/<file_id>.<name>`, §10.4) over the HTTP side channel."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from instamsg.broker.directory import Directory
from instamsg.broker.ports import ClientRecord
from instamsg.domain.errors import DomainError
from instamsg.services.files import sanitise_device_filename
from instamsg.sidechannel import http
from instamsg.sidechannel.multipart import (
    MultipartError,
    PartInfo,
    PartSink,
    TruncatedBody,
    boundary_of,
    read_multipart,
)
from instamsg.store.file_store import FileTooLargeError, StagedFile
from instamsg.store.repositories.files import StoredFile

logger = logging.getLogger(__name__)

UPLOAD_FIELD = "file"
CHUNK_BYTES = 64 * 1024
# Room for the multipart framing around the file when Content-Length is checked up front.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
_DUMMY_TOKEN = "0" * 32


class DeviceFiles(Protocol):
    """The file service as the side channel uses it."""

    max_file_bytes: int

    def stage(self) -> StagedFile: ...

    async def store_device_upload(
        self, client_id: str, tenant_id: str, filename: str, staged: StagedFile, content_type: str | None
    ) -> str: ...

    async def find_download(self, file_id: str, encoded_name: str) -> tuple[StoredFile, Path] | None: ...


class Connection(Protocol):
    """The client connection as the handlers write to it."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...


class _Rejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _same_text(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", errors="replace"), expected.encode("utf-8"))


def _authenticated(head: http.RequestHead, path_uuid: str, client: ClientRecord | None) -> bool:
    """Raw token in `Authorization` (a `Bearer` scheme is tolerated), or `Client-Authorization` =
    hex sha256(UUID + token) (Telit); compared in constant time, unknown clients included."""
    token = client.auth_token if client is not None else _DUMMY_TOKEN
    accepted = False
    authorization = head.header("authorization")
    if authorization is not None:
        value = authorization.strip()
        scheme, _, rest = value.partition(" ")
        if scheme.lower() == "bearer" and rest.strip():
            value = rest.strip()
        accepted = _same_text(value, token)
    hashed = head.header("client-authorization")
    if hashed is not None and not accepted:
        digests = {
            hashlib.sha256((uuid + token).encode("utf-8")).hexdigest()
            for uuid in (path_uuid, path_uuid.upper())
        }
        given = hashed.strip().lower()
        accepted = any([_same_text(given, digest) for digest in sorted(digests)])
    if client is None or not accepted:
        return False
    client_id_header = head.header("clientid")
    return client_id_header is None or client_id_header.strip().lower() == path_uuid


class SideChannel:
    """Serves side-channel requests, one task each; the tasks are tracked so that a shutdown can give
    them `shutdown_grace_seconds` to finish and then cancel the rest (a stalled upload is dropped)."""

    def __init__(
        self,
        directory: Directory,
        files: DeviceFiles,
        *,
        idle_timeout_seconds: float = 30.0,
        shutdown_grace_seconds: float = 5.0,
    ) -> None:
        self.directory = directory
        self.files = files
        self.idle_timeout = idle_timeout_seconds
        self.shutdown_grace = shutdown_grace_seconds
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping: asyncio.Task[None] | None = None

    @property
    def requests_in_flight(self) -> int:
        return len(self._tasks)

    def start(
        self, route: http.Route, head: http.RequestHead, reader: asyncio.StreamReader, connection: Connection
    ) -> asyncio.Task[None]:
        """Serve one request in a tracked task."""
        task = asyncio.get_running_loop().create_task(self.serve(route, head, reader, connection))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def begin_shutdown(self) -> None:
        """Start `close()` in the background (once): uvicorn's shutdown calls this per connection."""
        if self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_task(self._close(self.shutdown_grace))

    async def close(self, grace_seconds: float | None = None) -> None:
        """Give requests in flight `grace_seconds` (default: the shutdown grace) to finish, then
        cancel the rest and wait for them to end."""
        if self._stopping is None:
            grace = self.shutdown_grace if grace_seconds is None else grace_seconds
            self._stopping = asyncio.get_running_loop().create_task(self._close(grace))
        elif grace_seconds is not None and grace_seconds <= 0:
            self._cancel_all()
        await asyncio.shield(self._stopping)
        # Requests whose head completed after the first close ended.
        await self._close(0)

    async def _close(self, grace: float) -> None:
        while self._tasks:
            pending = set(self._tasks)
            if grace > 0:
                await asyncio.wait(pending, timeout=grace)
                grace = 0
            self._cancel_all()
            await asyncio.gather(*pending, return_exceptions=True)

    def _cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def serve(
        self, route: http.Route, head: http.RequestHead, reader: asyncio.StreamReader, connection: Connection
    ) -> None:
        try:
            if isinstance(route, http.Upload):
                url = await self._upload(route, head, reader, connection)
                connection.write(http.upload_response(url))
            else:
                await self._download(route, connection)
        except _Rejected as rejected:
            version = b"HTTP/1.1" if isinstance(route, http.Download) else b"HTTP/1.0"
            connection.write(http.error_response(rejected.status, rejected.message, version))
        except asyncio.CancelledError:
            # The server is stopping: an upload cut short is discarded (by `_upload`), never stored.
            # A download may have sent part of its body already: it is only cut off.
            if isinstance(route, http.Upload):
                connection.write(http.error_response(503, "The server is shutting down."))
            raise
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            logger.exception("side_channel_failed")
            connection.write(http.error_response(500, "Internal error."))
        finally:
            connection.close()

    # --------------------------------------------------------------------------------------------

    async def _upload(
        self, route: http.Upload, head: http.RequestHead, reader: asyncio.StreamReader, connection: Connection
    ) -> str:
        client = self.directory.get_client(route.client_uuid)
        if not _authenticated(head, route.client_uuid, client):
            raise _Rejected(401, "Unauthorized: send the client's auth token in Authorization.")
        assert client is not None
        if client.blocked or not self.directory.tenant_active(client.tenant_id):
            raise _Rejected(403, "Forbidden: the client is blocked or its tenant is inactive.")
        if "chunked" in (head.header("transfer-encoding") or "").lower():
            raise _Rejected(411, "Chunked uploads are not supported: send Content-Length.")
        length_text = head.header("content-length")
        length: int | None = None
        if length_text is not None:
            if not length_text.strip().isdigit():
                raise _Rejected(400, "Content-Length must be a number.")
            length = int(length_text.strip())
            if length > self.files.max_file_bytes + MULTIPART_OVERHEAD_BYTES:
                raise _Rejected(413, f"The file exceeds the limit of {self.files.max_file_bytes} bytes.")
        try:
            boundary = boundary_of(head.header("content-type") or "")
        except MultipartError as error:
            raise _Rejected(400, f"Bad request: {error}.") from None
        if (head.header("expect") or "").strip().lower() == "100-continue":
            # Devices never ask; generic HTTP clients (curl) wait for this before sending the body.
            connection.write(b"HTTP/1.1 100 Continue\r\n\r\n")

        staged: StagedFile | None = None
        filename: str | None = None
        content_type: str | None = None
        bad_filename = False

        def open_part(info: PartInfo) -> PartSink | None:
            nonlocal staged, filename, content_type, bad_filename
            if info.name != UPLOAD_FIELD or staged is not None:
                return None
            filename = sanitise_device_filename(info.filename or "")
            if filename is None:
                bad_filename = True
                return None
            content_type = info.content_type
            staged = self.files.stage()
            return staged

        try:
            try:
                await read_multipart(self._body(reader, length), boundary, open_part)
            except FileTooLargeError:
                raise _Rejected(
                    413, f"The file exceeds the limit of {self.files.max_file_bytes} bytes."
                ) from None
            except TruncatedBody:
                raise _Rejected(400, "The upload is incomplete.") from None
            except MultipartError as error:
                raise _Rejected(400, f"Bad request: {error}.") from None
            if bad_filename:
                raise _Rejected(400, "The file part's filename is not usable.")
            if staged is None or filename is None:
                raise _Rejected(400, f"The multipart body has no part named {UPLOAD_FIELD!r}.")
            try:
                url = await self.files.store_device_upload(
                    client.uuid, client.tenant_id, filename, staged, content_type
                )
            except DomainError as error:
                raise _Rejected(400, error.message) from None
        finally:
            if staged is not None:
                staged.discard()
        logger.info("device_upload client=%s filename=%r", client.uuid, filename)
        return url

    async def _body(self, reader: asyncio.StreamReader, length: int | None) -> AsyncIterator[bytes]:
        """The body: exactly `length` bytes, or up to EOF without Content-Length (HTTP/1.0)."""
        remaining = length
        while remaining is None or remaining > 0:
            size = CHUNK_BYTES if remaining is None else min(CHUNK_BYTES, remaining)
            try:
                chunk = await asyncio.wait_for(reader.read(size), self.idle_timeout)
            except TimeoutError:
                raise TruncatedBody("the client stopped sending") from None
            if not chunk:
                if remaining is not None:
                    raise TruncatedBody("the body is shorter than Content-Length")
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk

    async def _download(self, route: http.Download, connection: Connection) -> None:
        found = await self.files.find_download(route.file_id, route.name) if route.file_id else None
        if found is None:
            raise _Rejected(404, "Not found.")
        _, path = found
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise _Rejected(404, "Not found.") from None
        with handle:
            size = os.fstat(handle.fileno()).st_size
            connection.write(http.download_head(size))
            remaining = size
            while remaining > 0:
                chunk = handle.read(min(CHUNK_BYTES, remaining))
                if not chunk:
                    break  # cannot happen for an open unlinked file; never send more than announced
                remaining -= len(chunk)
                connection.write(chunk)
                await connection.drain()
