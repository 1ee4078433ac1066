"""Stored files (spec D6, §10.2): one row per (client, filename), keyed by a fresh random file id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from instamsg.store.tables import client_file


@dataclass(frozen=True, slots=True)
class StoredFile:
    file_id: str
    client_id: str
    tenant_id: str
    filename: str
    size: int
    content_type: str
    source: str
    device_status: str | None
    created_at: datetime
    updated_at: datetime


def _stored_file(found: Any) -> StoredFile:
    return StoredFile(
        file_id=found["file_id"],
        client_id=found["client_id"],
        tenant_id=found["tenant_id"],
        filename=found["filename"],
        size=int(found["size"]),
        content_type=found["content_type"],
        source=found["source"],
        device_status=found["device_status"],
        created_at=found["created_at"],
        updated_at=found["updated_at"],
    )


async def get_file(connection: AsyncConnection, client_id: str, filename: str) -> StoredFile | None:
    result = await connection.execute(
        select(client_file).where(client_file.c.client_id == client_id, client_file.c.filename == filename)
    )
    found = result.mappings().first()
    return _stored_file(found) if found else None


async def get_file_by_id(connection: AsyncConnection, file_id: str) -> StoredFile | None:
    result = await connection.execute(select(client_file).where(client_file.c.file_id == file_id))
    found = result.mappings().first()
    return _stored_file(found) if found else None


async def list_files(connection: AsyncConnection, client_id: str) -> list[StoredFile]:
    result = await connection.execute(
        select(client_file)
        .where(client_file.c.client_id == client_id)
        .order_by(client_file.c.filename.asc(), client_file.c.file_id.asc())
    )
    return [_stored_file(found) for found in result.mappings()]


async def replace_file(connection: AsyncConnection, stored: StoredFile) -> StoredFile | None:
    """Store `stored`, removing the row it replaces (same client and filename); returns the old one."""
    previous = await get_file(connection, stored.client_id, stored.filename)
    if previous is not None:
        await connection.execute(delete(client_file).where(client_file.c.file_id == previous.file_id))
    await connection.execute(
        insert(client_file).values(
            file_id=stored.file_id,
            client_id=stored.client_id,
            tenant_id=stored.tenant_id,
            filename=stored.filename,
            size=stored.size,
            content_type=stored.content_type,
            source=stored.source,
            device_status=stored.device_status,
            created_at=stored.created_at,
            updated_at=stored.updated_at,
        )
    )
    return previous


async def delete_file(connection: AsyncConnection, client_id: str, filename: str) -> StoredFile | None:
    previous = await get_file(connection, client_id, filename)
    if previous is not None:
        await connection.execute(delete(client_file).where(client_file.c.file_id == previous.file_id))
    return previous


async def set_device_status(
    connection: AsyncConnection, file_id: str, device_status: str, updated_at: datetime
) -> bool:
    """Record the device's answer to a POST command; False when the file was replaced meanwhile."""
    result = await connection.execute(
        update(client_file)
        .where(client_file.c.file_id == file_id)
        .values(device_status=device_status, updated_at=updated_at)
    )
    return bool(result.rowcount)


async def all_file_ids(connection: AsyncConnection) -> set[str]:
    result = await connection.execute(select(client_file.c.file_id))
    return {row[0] for row in result}
