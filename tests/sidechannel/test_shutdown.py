"""Stopping the platform while a device upload is stalled mid-body: the request gets a short grace
period, is then cancelled, its connection is closed, and the partial file is neither stored nor listed."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

from instamsg.store.tables import client_file
from tests.rest.live import HOST, LiveNode, start_live_node
from tests.sidechannel.conftest import multipart_body, upload_request

# Generous bounds for a loaded machine; the side channel's own idle timeout (30 s) is far beyond them,
# so only a cancelled request can end within them.
WAIT_SECONDS = 15.0


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    received = bytearray()
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            received += chunk
    return bytes(received)


async def finish(nodes: AsyncIterator[LiveNode]) -> None:
    """Run the rest of `start_live_node`: it stops the platform."""
    with contextlib.suppress(StopAsyncIteration):
        await anext(nodes)


def stored_rows(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        (count,) = connection.execute(f"SELECT count(*) FROM {client_file.name}").fetchone()
    return int(count)


async def test_stop_cancels_a_stalled_upload_and_keeps_nothing(database_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    nodes = start_live_node(database_url, data_dir, shutdown_grace_seconds=2.0)
    live = await anext(nodes)
    stopped = False
    try:
        tenant = await live.tenant()
        client = await live.client(tenant)
        port = live.platform.ports["http"]
        assert port is not None
        body = multipart_body(b"x" * 20_000)
        headers = [b"Authorization: " + client["auth_token"].encode(), b"ClientId: " + client["id"].encode()]
        request = upload_request(client["id"], body, headers)
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(request[: len(request) - len(body) // 2])  # the head and half the body
        await writer.drain()
        staging = data_dir / "files" / ".staging"
        while not (staging.exists() and any(staging.iterdir())):
            await asyncio.sleep(0.02)  # the upload is being written

        side_channel = live.platform._side_channel
        assert side_channel is not None and side_channel.requests_in_flight == 1
        stop = asyncio.create_task(finish(nodes))
        stopped = True
        answer = await asyncio.wait_for(read_until_closed(reader), WAIT_SECONDS)
        await asyncio.wait_for(stop, WAIT_SECONDS)
        writer.close()

        # The answer may be lost to the reset of a close with unread input; the close is what counts.
        assert answer == b"" or answer.startswith(b"HTTP/1.0 503 "), answer
        assert side_channel.requests_in_flight == 0
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        assert [task for task in others if "serve" in repr(task.get_coro())] == []
        assert list(staging.iterdir()) == []
        assert [path for path in (data_dir / "files").iterdir() if path.is_file()] == []
        assert stored_rows(Path(database_url.split(":///", 1)[1])) == 0
    finally:
        if not stopped:
            await finish(nodes)
