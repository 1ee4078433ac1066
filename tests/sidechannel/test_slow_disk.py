"""A slow disk flush does not stall the event loop: while an upload's fsync is blocked, the same loop
keeps answering other connections, and the upload is acknowledged only after its fsync returned."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from tests.sidechannel.conftest import (
    SideChannelServer,
    exchange,
    multipart_body,
    split_response,
    token_headers,
    upload_request,
)

# Long enough for any loaded machine to serve one small request meanwhile; only reached by the failure.
FSYNC_RELEASE_TIMEOUT_SECONDS = 10.0


class GatedFsync:
    """os.fsync that blocks until the test releases it, and records whether the release came while
    it was blocked (it cannot when fsync runs on the event loop the test itself runs on)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, real: Callable[[int], None]) -> None:
        self.loop = loop
        self.real = real
        self.entered = asyncio.Event()
        self.released = threading.Event()
        self.released_while_blocked: list[bool] = []
        self.finished: list[int] = []

    def __call__(self, descriptor: int) -> None:
        self.loop.call_soon_threadsafe(self.entered.set)
        self.released_while_blocked.append(self.released.wait(FSYNC_RELEASE_TIMEOUT_SECONDS))
        self.real(descriptor)
        self.finished.append(descriptor)


async def test_upload_fsync_runs_off_the_event_loop(
    side_channel: SideChannelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsync = GatedFsync(asyncio.get_running_loop(), os.fsync)
    monkeypatch.setattr(os, "fsync", fsync)
    content = b"durable bytes"
    request = upload_request(side_channel.client_id, multipart_body(content), token_headers(side_channel))
    upload = asyncio.create_task(exchange(side_channel.port, request))

    await asyncio.wait_for(fsync.entered.wait(), FSYNC_RELEASE_TIMEOUT_SECONDS * 2)
    # The disk flush is in progress: another connection is still served by the loop.
    other = await exchange(side_channel.port, b"GET /files/not-a-file.txt HTTP/1.1\r\n\r\n")
    assert other.startswith(b"HTTP/1.1 404 ")
    assert not upload.done()  # not acknowledged before the fsync returned
    fsync.released.set()

    head, url = split_response(await upload)
    assert head.startswith(b"HTTP/1.0 200 OK"), head
    assert fsync.released_while_blocked and all(fsync.released_while_blocked)
    assert fsync.finished  # the stored file was flushed before the upload was acknowledged
    monkeypatch.undo()
    path = urlsplit(url.decode()).path.encode()
    download = await exchange(side_channel.port, b"GET " + path + b" HTTP/1.1\r\n\r\n")
    assert download.endswith(content)
