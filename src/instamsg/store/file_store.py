"""The bytes of stored files (spec §10.2): one file per file id in a local directory.

Files are named by their random file id, never by the user's filename, so no filename can reach
outside the directory. Uploads are written to a staging file first and renamed into place only when
complete: a truncated or rejected upload never becomes a stored file.

Committing flushes the bytes to disk (fsync), which can take a long time on a busy disk: it runs in a
worker thread so that the event loop, and with it every connection of the broker, keeps being served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger(__name__)

_FILE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_STAGING = ".staging"


class FileTooLargeError(Exception):
    """More bytes than the configured limit were written to a staged file."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"file larger than {limit} bytes")
        self.limit = limit


class StagedFile:
    """An upload in progress; `discard()` (or leaving the `with` block without commit) removes it."""

    def __init__(self, path: Path, handle: BinaryIO, max_bytes: int | None) -> None:
        self.path = path
        self._handle: BinaryIO | None = handle
        self.size = 0
        self.max_bytes = max_bytes

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._handle is None:
            raise ValueError("the staged file is closed")
        self.size += len(data)
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise FileTooLargeError(self.max_bytes)
        self._handle.write(data)

    def finish(self) -> None:
        """Flush to disk and close; the bytes stay staged until committed. Blocking: see `commit`."""
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    def discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> StagedFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Committed files were renamed away: unlinking the staging path is then a no-op.
        self.discard()


class FileStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._staging = directory / _STAGING

    def prepare(self) -> None:
        self._staging.mkdir(parents=True, exist_ok=True)

    def stage(self, max_bytes: int | None = None) -> StagedFile:
        self.prepare()
        descriptor, name = tempfile.mkstemp(dir=self._staging, prefix="upload-")
        return StagedFile(Path(name), os.fdopen(descriptor, "wb"), max_bytes)

    def path_of(self, file_id: str) -> Path:
        if not _FILE_ID.match(file_id):
            raise ValueError("not a file id")
        return self.directory / file_id

    async def commit(self, staged: StagedFile, file_id: str) -> Path:
        """Flush the complete staged file to disk and move it into place under `file_id` (an atomic
        rename); durable when this returns. The disk work runs in a worker thread.

        A thread cannot be interrupted: when the caller is cancelled, this still waits for the thread
        to finish, so that the caller's clean-up sees the file where it ends up."""
        target = self.path_of(file_id)
        work = asyncio.ensure_future(asyncio.to_thread(self._commit_now, staged, target))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await work
            raise

    def _commit_now(self, staged: StagedFile, target: Path) -> Path:
        staged.finish()
        os.replace(staged.path, target)
        _sync_directory(self.directory)
        return target

    def remove(self, file_id: str) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            self.path_of(file_id).unlink()

    def remove_all(self, file_ids: Iterable[str]) -> None:
        """Remove the bytes of files whose rows are already deleted; a failure is only logged, since
        the start-up sweep removes what is left."""
        for file_id in file_ids:
            try:
                self.remove(file_id)
            except OSError as error:
                logger.warning("file_store_remove_failed file_id=%s error=%s", file_id, error)

    def sweep(self, known_file_ids: Iterable[str]) -> int:
        """Remove staging leftovers and bytes no stored file refers to; returns how many were removed."""
        self.prepare()
        known = set(known_file_ids)
        removed = 0
        for path in list(self._staging.iterdir()) + list(self.directory.iterdir()):
            if path.is_file() and (path.parent == self._staging or path.name not in known):
                if path.parent != self._staging and not _FILE_ID.match(path.name):
                    continue  # not ours: never delete what the store did not write
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        if removed:
            logger.info("file_store_swept removed=%d", removed)
        return removed


def _sync_directory(directory: Path) -> None:
    """Make a rename into `directory` durable; skipped where directories cannot be opened (Windows)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError as error:
        logger.debug("directory_sync_failed directory=%s error=%s", directory, error)
    finally:
        os.close(descriptor)
