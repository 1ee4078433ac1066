"""A real HTTP port served by the front door (side channel + uvicorn for REST) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from instamsg.broker.directory import Directory
from instamsg.broker.ports import ClientRecord, TenantRecord
from instamsg.rest.app import create_app
from instamsg.rest.dependencies import Services
from instamsg.services.files import FileService
from instamsg.sidechannel.front_door import front_door_class
from instamsg.sidechannel.handlers import SideChannel
from instamsg.store.file_store import FileStore
from instamsg.store.store import Store
from tests.rest.helpers import create_client, create_tenant

BOUNDARY = b"-----------ThIs_Is_tHe_bouNdaRY_78564$!@"
MAX_FILE_BYTES = 4096


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class SideChannelServer:
    port: int
    files: FileService
    directory: Directory
    files_dir: Path
    tenant_id: str
    client_id: str
    token: str
    auth: dict[str, str]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(self, **changes: object) -> ClientRecord:
        current = self.directory.get_client(self.client_id)
        assert current is not None
        return dataclasses.replace(current, **changes)  # type: ignore[arg-type]

    def stored_names(self) -> list[str]:
        return sorted(path.name for path in self.files_dir.iterdir() if path.is_file())

    def staging_names(self) -> list[str]:
        staging = self.files_dir / ".staging"
        return sorted(path.name for path in staging.iterdir()) if staging.exists() else []


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: these tests are about HTTP bytes; tests/rest/test_files.py covers both databases."""
    return f"sqlite+aiosqlite:///{tmp_path / 'instamsg.db'}"


@pytest.fixture
async def side_channel(
    store: Store, services: Services, api: httpx.AsyncClient, auth: dict[str, str], tmp_path: Path
) -> AsyncIterator[SideChannelServer]:
    tenant = await create_tenant(api, auth)
    client = await create_client(api, auth, tenant["id"])
    directory = Directory()
    directory.load(
        [TenantRecord(tenant["id"], True, 1000, 0)],
        [ClientRecord(client["id"], tenant["id"], client["auth_token"], (), ())],
    )
    files_dir = tmp_path / "files"
    files = FileService(store, FileStore(files_dir), max_file_bytes=MAX_FILE_BYTES)
    await files.prepare()
    app = create_app(dataclasses.replace(services, files=files), max_body_bytes=65536)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    door = front_door_class(SideChannel(directory, files, idle_timeout_seconds=2.0))
    door.linger = 0.5
    config = uvicorn.Config(app, http=door, lifespan="off", log_config=None, access_log=False)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    for _ in range(500):
        if server.started:
            break
        assert not task.done()
        await asyncio.sleep(0.01)
    files.public_url = f"http://127.0.0.1:{port}"
    yield SideChannelServer(
        port, files, directory, files_dir, tenant["id"], client["id"], client["auth_token"], auth
    )
    server.should_exit = True
    await asyncio.wait_for(task, 10)


async def exchange(port: int, request: bytes, *, half_close: bool = False, timeout: float = 5.0) -> bytes:
    """Send raw bytes and read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        if half_close:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def multipart_body(
    content: bytes,
    filename: bytes = b"report.csv",
    *,
    boundary: bytes = BOUNDARY,
    name: bytes = b"file",
    closing: bytes = b"--\r\n",
) -> bytes:
    return (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="' + name + b'"; filename="' + filename + b'"\r\n'
        b"Content-Type: application/octet-stream\r\n"
        b"\r\n" + content + b"\r\n--" + boundary + closing
    )


def upload_request(
    client_id: str,
    body: bytes,
    headers: list[bytes],
    *,
    version: bytes = b"HTTP/1.0",
    path_version: bytes = b"beta",
    boundary: bytes = BOUNDARY,
    content_length: int | None = None,
) -> bytes:
    length = len(body) if content_length is None else content_length
    head = [
        b"POST /api/" + path_version + b"/clients/" + client_id.encode() + b"/files " + version,
        *headers,
        b"Content-Type: multipart/form-data; boundary=" + boundary,
        b"Content-Length: " + str(length).encode(),
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def token_headers(server: SideChannelServer) -> list[bytes]:
    """What the official C and Java libraries send: the raw token and ClientId, no Host."""
    return [b"Authorization: " + server.token.encode(), b"ClientId: " + server.client_id.encode()]


def hashed_headers(server: SideChannelServer) -> list[bytes]:
    """Telit: Client-Authorization = hex sha256(UUID + token)."""
    digest = hashlib.sha256((server.client_id + server.token).encode()).hexdigest()
    return [b"Client-Authorization: " + digest.encode(), b"ClientId: " + server.client_id.encode()]


def split_response(response: bytes) -> tuple[bytes, bytes]:
    head, separator, body = response.partition(b"\r\n\r\n")
    assert separator, response
    return head, body
