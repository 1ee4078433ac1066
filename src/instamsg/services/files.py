"""Files (spec D6, §10): the file store shared by REST (getFiles, downloadFile, deleteFile, uploadFile)
and by devices uploading and downloading over the HTTP side channel.

A stored file is keyed by (client, filename) and gets a fresh random file id on every store; its URL
`<public_url>/files/<file_id>.<percent-encoded filename>` is the capability devices download with, so
replacing or deleting the file revokes the URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import unicodedata
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from instamsg.domain import ids
from instamsg.domain.clients import Client
from instamsg.domain.clock import utc_now
from instamsg.domain.errors import ClientNotFound, NotFound, PayloadTooLarge, TenantNotFound, ValidationFailed
from instamsg.services.ports import DeviceFileCommands, OfflineFileCommands
from instamsg.store.file_store import FileStore, StagedFile
from instamsg.store.repositories import clients as client_repository
from instamsg.store.repositories import files as file_repository
from instamsg.store.repositories import tenants as tenant_repository
from instamsg.store.repositories.files import StoredFile
from instamsg.store.store import Store
from instamsg.store.tables import client_file

logger = logging.getLogger(__name__)

MAX_FILENAME_BYTES = 255
DEFAULT_CONTENT_TYPE = "application/octet-stream"
DEFAULT_MAX_FILE_BYTES = 16 * 1024 * 1024
DEFAULT_FETCH_TIMEOUT_SECONDS = 30.0
_FORBIDDEN_CHARACTERS = frozenset('"/\\')

__all__ = [
    "FileNotFound",
    "FileService",
    "FileTooLarge",
    "InvalidFilename",
    "MissingFileField",
    "StoredBytes",
    "StoredFile",
    "file_ids_of",
    "sanitise_device_filename",
]


class StoredBytes(Protocol):
    """Where the bytes of stored files live (the FileStore). Services deleting clients or tenants
    take it optionally: the CLI wires none, and the start-up sweep then removes the bytes."""

    def remove_all(self, file_ids: Iterable[str]) -> None: ...


async def file_ids_of(
    connection: AsyncConnection, *, client_id: str | None = None, tenant_id: str | None = None
) -> list[str]:
    """The file ids of one client's or one tenant's stored files, read before the rows are deleted
    (by the database cascade) so that their bytes can be removed as well."""
    if client_id is None and tenant_id is None:
        raise ValueError("file_ids_of needs a client or a tenant")
    query = select(client_file.c.file_id)
    if client_id is not None:
        query = query.where(client_file.c.client_id == client_id)
    if tenant_id is not None:
        query = query.where(client_file.c.tenant_id == tenant_id)
    return [row[0] for row in await connection.execute(query)]


class FileNotFound(NotFound):
    code = "file_not_found"


class MissingFileField(ValidationFailed):
    code = "missing_file_field"


class FileTooLarge(PayloadTooLarge):
    code = "file_too_large"


class InvalidFilename(ValidationFailed):
    pass


def _is_control(character: str) -> bool:
    return unicodedata.category(character) in ("Cc", "Cf", "Zl", "Zp")


def _truncate_utf8(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", errors="ignore")


def filename_problem(filename: str) -> str | None:
    """Why `filename` cannot name a stored file, or None. Devices must be able to receive it in a
    file command (§10.1: no `"`, `/`, `\\` or control characters) and it is a single base name."""
    if not filename or filename in (".", ".."):
        return "filename must not be empty, '.' or '..'."
    if any(character in _FORBIDDEN_CHARACTERS or _is_control(character) for character in filename):
        return "filename must not contain '\"', '/', '\\' or control characters."
    if len(filename.encode("utf-8")) > MAX_FILENAME_BYTES:
        return f"filename must be at most {MAX_FILENAME_BYTES} bytes of UTF-8."
    if filename != filename.strip():
        return "filename must not start or end with white space."
    return None


def sanitise_device_filename(raw: str) -> str | None:
    """The safe base name a device upload is stored under (§10.3), or None when nothing usable is left.

    Devices send whatever their file system calls the file: directories (either separator), drive
    letters, NUL and control characters are dropped rather than rejected, and the name is cut to 255
    bytes of UTF-8."""
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    if len(base) >= 2 and base[1] == ":" and base[0].isalpha():
        base = base[2:]
    cleaned = "".join(c for c in base if c not in _FORBIDDEN_CHARACTERS and not _is_control(c)).strip()
    cleaned = _truncate_utf8(cleaned, MAX_FILENAME_BYTES).strip()
    if filename_problem(cleaned) is not None:
        return None
    return cleaned


def download_path(stored: StoredFile) -> str:
    """`/files/<file_id>.<percent-encoded filename>` (§10.2, C13)."""
    return f"/files/{stored.file_id}.{quote(stored.filename, safe='')}"


def default_public_url(host: str, http_port: int) -> str:
    """`http://<host>:<http-port>` (C5); a wildcard bind address is replaced by the host name."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{http_port}"


class FileService:
    def __init__(
        self,
        store: Store,
        file_store: FileStore,
        commands: DeviceFileCommands | None = None,
        *,
        public_url: str = "http://localhost:8080",
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        fetch_timeout_seconds: float = DEFAULT_FETCH_TIMEOUT_SECONDS,
    ) -> None:
        self.store = store
        self.file_store = file_store
        self.commands: DeviceFileCommands = commands if commands is not None else OfflineFileCommands()
        # Set by the platform once the HTTP port is bound (port 0 picks one).
        self.public_url = public_url
        self.max_file_bytes = max_file_bytes
        self.fetch_timeout = fetch_timeout_seconds
        self._tasks: set[asyncio.Task[None]] = set()
        # downloadFile requests waiting for a device to upload (client id, filename) (§10.5).
        self._upload_waiters: dict[tuple[str, str], list[asyncio.Future[None]]] = {}

    def url_for(self, stored: StoredFile) -> str:
        return self.public_url.rstrip("/") + download_path(stored)

    def stage(self) -> StagedFile:
        """A staging file for an upload; writing beyond `max_file_bytes` raises FileTooLargeError."""
        return self.file_store.stage(self.max_file_bytes)

    # ---------------------------------------------------------------------------------------------
    # REST (app-scoped)
    # ---------------------------------------------------------------------------------------------

    async def _client(
        self, connection: AsyncConnection, app_id: str, tenant_id: str, client_id: str
    ) -> Client:
        canonical_tenant = ids.canonical_uuid(tenant_id)
        tenant = (
            await tenant_repository.get_tenant(connection, app_id, canonical_tenant)
            if canonical_tenant
            else None
        )
        if tenant is None:
            raise TenantNotFound(tenant_id)
        canonical_client = ids.canonical_uuid(client_id)
        client = (
            await client_repository.get_client(connection, tenant.id, canonical_client)
            if canonical_client
            else None
        )
        if client is None:
            raise ClientNotFound(client_id)
        return client

    async def client_for(self, app_id: str, tenant_id: str, client_id: str) -> Client:
        """The client a file operation addresses (404 tenant_not_found / client_not_found)."""
        async with self.store.read() as connection:
            return await self._client(connection, app_id, tenant_id, client_id)

    async def list_files(self, app_id: str, tenant_id: str, client_id: str) -> list[StoredFile]:
        async with self.store.read() as connection:
            client = await self._client(connection, app_id, tenant_id, client_id)
            return await file_repository.list_files(connection, client.id)

    async def get_file(
        self, app_id: str, tenant_id: str, client_id: str, filename: str
    ) -> tuple[StoredFile, Path]:
        # A name no file can be stored under (NUL, "/", ...) is simply not found; PostgreSQL would
        # refuse a NUL in the query.
        storable = filename_problem(filename) is None
        async with self.store.read() as connection:
            client = await self._client(connection, app_id, tenant_id, client_id)
            stored = await file_repository.get_file(connection, client.id, filename) if storable else None
        if stored is None and storable and await self._fetch_from_device(client.id, filename):
            async with self.store.read() as connection:
                stored = await file_repository.get_file(connection, client.id, filename)
        if stored is None or not self.file_store.path_of(stored.file_id).is_file():
            raise FileNotFound(
                "No file of this name is stored for the client.", details={"filename": filename}
            )
        path = self.file_store.path_of(stored.file_id)
        return stored, path

    async def delete_file(
        self, app_id: str, tenant_id: str, client_id: str, filename: str, *, on_device: bool = False
    ) -> None:
        storable = filename_problem(filename) is None
        async with self.store.write() as connection:
            client = await self._client(connection, app_id, tenant_id, client_id)
            removed = await file_repository.delete_file(connection, client.id, filename) if storable else None
        if removed is not None:
            self.file_store.remove(removed.file_id)
        if on_device and filename_problem(filename) is None:
            self._background(self._delete_on_device(client.id, filename))
        if removed is None and not on_device:
            raise FileNotFound(
                "No file of this name is stored for the client.", details={"filename": filename}
            )

    @staticmethod
    def check_filename(filename: str) -> None:
        """400 validation_failed for a name a device could not receive in a file command (§10.1)."""
        problem = filename_problem(filename)
        if problem is not None:
            raise InvalidFilename(problem, details={"field": "filename"})

    async def upload_file(
        self, client: Client, filename: str, staged: StagedFile, content_type: str | None
    ) -> StoredFile:
        """Store an uploadFile body; if the client is online, send it the POST command (§10.5)."""
        self.check_filename(filename)
        stored = await self._store(client.id, client.tenant_id, filename, staged, content_type, "api")
        self._background(self._push_to_device(stored))
        return stored

    # ---------------------------------------------------------------------------------------------
    # The device side channel (§10.3, §10.4): the caller has authenticated the device
    # ---------------------------------------------------------------------------------------------

    async def store_device_upload(
        self, client_id: str, tenant_id: str, filename: str, staged: StagedFile, content_type: str | None
    ) -> str:
        """Store a device's upload under its (already sanitised) filename; returns the download URL."""
        problem = filename_problem(filename)
        if problem is not None:
            raise InvalidFilename(problem, details={"field": "filename"})
        stored = await self._store(client_id, tenant_id, filename, staged, content_type, "device")
        for waiter in self._upload_waiters.pop((client_id, filename), []):
            if not waiter.done():
                waiter.set_result(None)
        return self.url_for(stored)

    async def list_files_of_client(self, client_id: str) -> list[StoredFile]:
        async with self.store.read() as connection:
            return await file_repository.list_files(connection, client_id)

    async def find_download(self, file_id: str, encoded_name: str) -> tuple[StoredFile, Path] | None:
        """The stored file a `/files/<file_id>.<name>` path names, or None (unknown or revoked)."""
        canonical = ids.canonical_uuid(file_id)
        if canonical is None or canonical != file_id:
            return None
        async with self.store.read() as connection:
            stored = await file_repository.get_file_by_id(connection, canonical)
        if stored is None:
            return None
        if encoded_name not in (stored.filename, quote(stored.filename, safe="")) and (
            # Undecodable escapes (e.g. %ff) name no stored file: not found, never an error.
            unquote(encoded_name, errors="replace") != stored.filename
        ):
            return None
        path = self.file_store.path_of(stored.file_id)
        return (stored, path) if path.is_file() else None

    # ---------------------------------------------------------------------------------------------

    async def _store(
        self,
        client_id: str,
        tenant_id: str,
        filename: str,
        staged: StagedFile,
        content_type: str | None,
        source: str,
    ) -> StoredFile:
        now = utc_now()
        stored = StoredFile(
            file_id=ids.new_uuid(),
            client_id=client_id,
            tenant_id=tenant_id,
            filename=filename,
            size=staged.size,
            content_type=(content_type or DEFAULT_CONTENT_TYPE)[:255],
            source=source,
            device_status=None,
            created_at=now,
            updated_at=now,
        )
        work = asyncio.ensure_future(self._commit_and_insert(staged, stored))
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            # Stopped halfway, a store would leave bytes without a row or a row without bytes: the
            # body is complete, so the store is finished (briefly: an fsync and one insert) first.
            with contextlib.suppress(Exception):
                await work
            raise
        return stored

    async def _commit_and_insert(self, staged: StagedFile, stored: StoredFile) -> None:
        # Bytes first (durable on disk), then the row: a row never names missing bytes, and a failed
        # insert removes them.
        await self.file_store.commit(staged, stored.file_id)
        try:
            previous = await self._insert(stored)
        except BaseException:
            self.file_store.remove(stored.file_id)
            raise
        if previous is not None:
            self.file_store.remove(previous.file_id)

    async def _insert(self, stored: StoredFile) -> StoredFile | None:
        for attempt in range(3):
            try:
                async with self.store.write() as connection:
                    return await file_repository.replace_file(connection, stored)
            except IntegrityError:
                # Two uploads of one filename raced; the later one wins on retry. A client deleted
                # meanwhile keeps failing: it is reported as not found.
                if attempt == 2:
                    raise ClientNotFound(stored.client_id) from None
        return None  # pragma: no cover - the loop returns or raises

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch_from_device(self, client_id: str, filename: str) -> bool:
        """Ask an online device to upload `filename` (GET with filename, §10.1) and wait for the upload.

        False at once when the device is offline, else after `fetch_timeout` without an upload. The
        device's reply is advisory (C always says status 0, Q17): only the upload counts."""
        if filename_problem(filename) is not None or self.fetch_timeout <= 0:
            return False
        loop = asyncio.get_running_loop()
        key = (client_id, filename)
        waiter: asyncio.Future[None] = loop.create_future()
        self._upload_waiters.setdefault(key, []).append(waiter)
        command = asyncio.create_task(self.commands.file_command(client_id, "GET", filename))
        deadline = loop.time() + self.fetch_timeout
        try:
            either: set[asyncio.Future[Any]] = {waiter, command}
            done, _ = await asyncio.wait(
                either, timeout=self.fetch_timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if waiter in done:
                return True
            if command in done and command.exception() is None and command.result() is None:
                return False  # not connected: nothing was asked
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(asyncio.shield(waiter), remaining)
            except TimeoutError:
                return False
            return True
        finally:
            waiters = self._upload_waiters.get(key, [])
            if waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._upload_waiters[key]
            if not command.done():
                command.cancel()
            elif not command.cancelled():
                command.exception()  # retrieved: a failed command only means no upload came

    async def _push_to_device(self, stored: StoredFile) -> None:
        try:
            answer = await self.commands.file_command(
                stored.client_id, "POST", stored.filename, self.url_for(stored)
            )
            if answer is None:
                return
            async with self.store.write() as connection:
                await file_repository.set_device_status(
                    connection, stored.file_id, "ok" if answer else "failed", utc_now()
                )
        except Exception:
            logger.exception("file_push_failed client=%s file_id=%s", stored.client_id, stored.file_id)

    async def _delete_on_device(self, client_id: str, filename: str) -> None:
        try:
            answer = await self.commands.file_command(client_id, "DELETE", filename)
            logger.info("file_delete_on_device client=%s answer=%s", client_id, answer)
        except Exception:
            logger.exception("file_delete_on_device_failed client=%s", client_id)

    async def prepare(self) -> None:
        """Create the directory and remove bytes no stored file refers to (a crash mid-upload)."""
        async with self.store.read() as connection:
            known = await file_repository.all_file_ids(connection)
        self.file_store.sweep(known)

    async def close(self) -> None:
        """Cancel pending device commands (used on shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Wait for background device commands to finish (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
