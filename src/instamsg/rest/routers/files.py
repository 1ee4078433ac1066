"""Files: getFiles, downloadFile, deleteFile and uploadFile (spec §2.3, §2.4.4, §10.5, D6)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path as FilePath
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import Field

from instamsg.domain.errors import NotFound, ServiceUnavailable, ValidationFailed
from instamsg.rest.dependencies import (
    ClientIdPath,
    CurrentAppId,
    Services,
    ServicesDep,
    TenantIdPath,
    api_prefix,
)
from instamsg.rest.schemas.common import ErrorBody, Flag, ResponseModel, Timestamp
from instamsg.services.files import FileService, FileTooLarge, MissingFileField, StoredFile
from instamsg.sidechannel.multipart import (
    MultipartError,
    PartInfo,
    PartSink,
    TruncatedBody,
    boundary_of,
    read_multipart,
)
from instamsg.store.file_store import FileTooLargeError, StagedFile

router = APIRouter(tags=["files"])

_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 413, 503)
}
_FILES_PATH = "/tenants/{tenantId}/clients/{clientId}/files"
FilenamePath = Annotated[str, Path(alias="filename", description="The file's name.")]
UPLOAD_FIELDS = ("uploadedfile", "file")
_CHUNK_BYTES = 64 * 1024


class FileOut(ResponseModel):
    filename: str
    size: int
    content_type: str
    source: str = Field(description="`device` (side-channel upload) or `api` (uploadFile).")
    file_id: str
    url: str = Field(
        description="Download URL given to devices; revoked when the file is replaced or deleted."
    )
    device_status: str | None = Field(
        description='The device\'s answer to the last POST command: "ok", "failed" or null.'
    )
    created_at: Timestamp
    updated_at: Timestamp


def _files(services: Services) -> FileService:
    files = services.files
    if files is None:
        raise ServiceUnavailable("Files are not available in this process.")
    return files


def file_out(files: FileService, stored: StoredFile) -> FileOut:
    return FileOut(
        filename=stored.filename,
        size=stored.size,
        content_type=stored.content_type,
        source=stored.source,
        file_id=stored.file_id,
        url=files.url_for(stored),
        device_status=stored.device_status,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
    )


def content_disposition(filename: str) -> str:
    """`attachment; filename="<name>"`, plus `filename*=UTF-8''…` for non-ASCII names (§10.5)."""
    try:
        filename.encode("ascii")
    except UnicodeEncodeError:
        fallback = filename.encode("ascii", errors="replace").decode("ascii").replace("?", "_")
        return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
    return f'attachment; filename="{filename}"'


@router.get(_FILES_PATH, response_model=list[FileOut], responses=_ERRORS, summary="getFiles")
async def get_files(
    tenant_id: TenantIdPath, client_id: ClientIdPath, app_id: CurrentAppId, services: ServicesDep
) -> list[FileOut]:
    files = _files(services)
    return [file_out(files, stored) for stored in await files.list_files(app_id, tenant_id, client_id)]


def _read_chunks(path: FilePath, size: int) -> Iterator[bytes]:
    with path.open("rb") as handle:
        remaining = size
        while remaining > 0:
            chunk = handle.read(min(_CHUNK_BYTES, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


@router.get(
    _FILES_PATH + "/{filename}",
    response_class=Response,
    responses={**_ERRORS, 200: {"content": {"application/octet-stream": {}}}},
    summary="downloadFile",
    description="Streams the stored file as an attachment. When none is stored and the client is online, "
    "the server first asks the device to upload it (GET file command) and waits for the upload up to "
    "a configured time; otherwise 404 `file_not_found`.",
)
async def download_file(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    filename: FilenamePath,
    app_id: CurrentAppId,
    services: ServicesDep,
) -> Response:
    stored, path = await _files(services).get_file(app_id, tenant_id, client_id, filename)
    return StreamingResponse(
        _read_chunks(path, stored.size),
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": content_disposition(stored.filename),
            "Content-Length": str(stored.size),
        },
    )


@router.delete(
    _FILES_PATH + "/{filename}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_ERRORS,
    summary="deleteFile",
    description="Deletes the stored file and revokes its URL. With `on_device=1` the server also sends "
    "the client a DELETE file command if it is online (S9).",
)
async def delete_file(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    filename: FilenamePath,
    app_id: CurrentAppId,
    services: ServicesDep,
    on_device: Flag = Query(False, description="Also delete the file on the device (if online)."),
) -> Response:
    await _files(services).delete_file(app_id, tenant_id, client_id, filename, on_device=on_device)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    _FILES_PATH + "/{filename}",
    status_code=status.HTTP_201_CREATED,
    response_model=FileOut,
    responses={**_ERRORS, 201: {"headers": {"Location": {"description": "Path of the file."}}}},
    summary="uploadFile",
    description="`multipart/form-data` with the file in the field `uploadedfile` or `file` (other fields "
    "are ignored). Stores it for the client (replacing a file of the same name) and, if the client is "
    "online, sends it the POST file command with the download URL; its answer appears later in "
    "`device_status`.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"uploadedfile": {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    },
)
async def upload_file(
    tenant_id: TenantIdPath,
    client_id: ClientIdPath,
    filename: FilenamePath,
    request: Request,
    response: Response,
    app_id: CurrentAppId,
    services: ServicesDep,
) -> FileOut:
    files = _files(services)
    client = await files.client_for(app_id, tenant_id, client_id)
    files.check_filename(filename)
    declared = request.headers.get("content-length", "")
    too_large = FileTooLarge(
        f"The file exceeds the limit of {files.max_file_bytes} bytes.",
        details={"max_bytes": files.max_file_bytes},
    )
    if declared.isdigit() and int(declared) > files.max_file_bytes + 64 * 1024:
        raise too_large
    try:
        boundary = boundary_of(request.headers.get("content-type", ""))
    except MultipartError:
        raise MissingFileField(
            "Send the file as multipart/form-data in the field 'uploadedfile' or 'file'.",
            details={"fields": list(UPLOAD_FIELDS)},
        ) from None
    staged: StagedFile | None = None
    part_type: str | None = None

    def open_part(info: PartInfo) -> PartSink | None:
        nonlocal staged, part_type
        if info.name not in UPLOAD_FIELDS or staged is not None:
            return None
        part_type = info.content_type
        staged = files.stage()
        return staged

    async def body() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            yield chunk

    try:
        try:
            await read_multipart(body(), boundary, open_part)
        except FileTooLargeError:
            raise too_large from None
        except TruncatedBody:
            raise ValidationFailed("The multipart body is incomplete.") from None
        except MultipartError as error:
            raise ValidationFailed(f"The multipart body is malformed: {error}.") from None
        if staged is None:
            raise MissingFileField(
                "The multipart body has no field 'uploadedfile' or 'file'.",
                details={"fields": list(UPLOAD_FIELDS)},
            )
        stored = await files.upload_file(client, filename, staged, part_type)
    finally:
        if staged is not None:
            staged.discard()
    response.headers["Location"] = (
        f"{api_prefix(request)}/tenants/{stored.tenant_id}/clients/{stored.client_id}/files/"
        f"{quote(stored.filename, safe='')}"
    )
    return file_out(files, stored)


# Device downloads are answered by the side channel's front door on a fresh connection (byte-exact,
# §10.4). A client that reuses a kept-alive connection after another request reaches the REST app
# instead, so the same capability URL is served here too.
download_router = APIRouter(tags=["files"], include_in_schema=False)


@download_router.get("/files/{capability}")
async def device_download(capability: str, services: ServicesDep) -> Response:
    file_id, _, name = capability.partition(".")
    found = await _files(services).find_download(file_id, name)
    if found is None:
        raise NotFound("Not found.")
    stored, path = found
    return StreamingResponse(
        _read_chunks(path, stored.size),
        media_type="application/octet-stream",
        headers={"Content-Length": str(stored.size)},
    )
