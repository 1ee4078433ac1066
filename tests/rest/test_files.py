"""getFiles, downloadFile, deleteFile and uploadFile (spec §2.3, §2.4.4, §10.5, D6, checklist 30),
on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from instamsg.rest.dependencies import Services
from instamsg.services.files import FileService
from instamsg.store.file_store import FileStore
from instamsg.store.store import Store
from tests.rest.helpers import TIMESTAMP, UNKNOWN_UUID, assert_error, create_client, create_tenant

MAX_FILE_BYTES = 2048
PUBLIC_URL = "http://platform.example.com"


class FakeDevice:
    """The DeviceFileCommands port: records commands and answers like an online device."""

    def __init__(self) -> None:
        self.online = False
        self.answer = True
        self.commands: list[tuple[str, str, str | None, str | None]] = []
        # When set, a GET with a filename makes the "device" upload these bytes over the side channel.
        self.files: FileService | None = None
        self.uploads: dict[str, bytes] = {}
        self.tenant_id = ""

    async def file_command(
        self, client_id: str, method: str, filename: str | None = None, url: str | None = None
    ) -> bool | None:
        if not self.online:
            return None
        self.commands.append((client_id, method, filename, url))
        if method == "GET" and filename in self.uploads and self.files is not None:
            with self.files.stage() as staged:
                staged.write(self.uploads[filename])
                await self.files.store_device_upload(client_id, self.tenant_id, filename, staged, None)
            return False  # C replies status 0 even after uploading (Q17)
        return self.answer


@pytest.fixture
def device() -> FakeDevice:
    return FakeDevice()


@pytest.fixture
async def services(services: Services, store: Store, tmp_path: Path, device: FakeDevice) -> Services:
    files = FileService(
        store,
        FileStore(tmp_path / "files"),
        device,
        public_url=PUBLIC_URL,
        max_file_bytes=MAX_FILE_BYTES,
        fetch_timeout_seconds=0.5,
    )
    await files.prepare()
    return dataclasses.replace(services, files=files)


@pytest.fixture
async def client_path(api: httpx.AsyncClient, auth: dict[str, str]) -> str:
    tenant = await create_tenant(api, auth)
    client = await create_client(api, auth, tenant["id"])
    return f"/api/v1/tenants/{tenant['id']}/clients/{client['id']}"


async def upload(
    api: httpx.AsyncClient,
    auth: dict[str, str],
    path: str,
    content: bytes,
    field: str = "uploadedfile",
    content_type: str = "application/octet-stream",
) -> httpx.Response:
    return await api.post(
        path, files={field: ("local-name.bin", content, content_type)}, data={"note": "ignored"}, headers=auth
    )


def check_file(body: dict[str, Any], filename: str, size: int) -> None:
    assert set(body) == {
        "filename",
        "size",
        "content_type",
        "source",
        "file_id",
        "url",
        "device_status",
        "created_at",
        "updated_at",
    }
    assert body["filename"] == filename
    assert body["size"] == size
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", body["file_id"]
    )
    assert body["url"].startswith(f"{PUBLIC_URL}/files/{body['file_id']}.")
    assert TIMESTAMP.match(body["created_at"]) and TIMESTAMP.match(body["updated_at"])


async def test_upload_list_download_delete(
    api: httpx.AsyncClient, auth: dict[str, str], client_path: str, services: Services
) -> None:
    created = await upload(
        api, auth, f"{client_path}/files/report.csv", b"a,b\n1,2\n", content_type="text/csv"
    )
    assert created.status_code == 201, created.text
    body = created.json()
    check_file(body, "report.csv", 8)
    assert body["url"] == f"{PUBLIC_URL}/files/{body['file_id']}.report.csv"
    assert body["source"] == "api"
    assert body["content_type"] == "text/csv"
    assert body["device_status"] is None
    assert created.headers["location"] == f"{client_path}/files/report.csv"

    listed = await api.get(f"{client_path}/files", headers=auth)
    assert listed.status_code == 200
    assert listed.json() == [body]

    downloaded = await api.get(f"{client_path}/files/report.csv", headers=auth)
    assert downloaded.status_code == 200
    assert downloaded.content == b"a,b\n1,2\n"
    assert downloaded.headers["content-type"] == "application/octet-stream"
    assert downloaded.headers["content-disposition"] == 'attachment; filename="report.csv"'

    deleted = await api.delete(f"{client_path}/files/report.csv", headers=auth)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await api.get(f"{client_path}/files", headers=auth)).json() == []
    assert_error(await api.get(f"{client_path}/files/report.csv", headers=auth), 404, "file_not_found")
    assert_error(await api.delete(f"{client_path}/files/report.csv", headers=auth), 404, "file_not_found")
    # The capability URL is revoked with the file.
    assert services.files is not None
    assert await services.files.find_download(body["file_id"], "report.csv") is None


async def test_field_file_and_beta_alias(
    api: httpx.AsyncClient, auth: dict[str, str], client_path: str
) -> None:
    beta = client_path.replace("/api/v1/", "/api/beta/")
    created = await upload(api, auth, f"{beta}/files/fw.bin", b"\x00\x01", field="file")
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{beta}/files/fw.bin"
    assert (await api.get(f"{beta}/files/fw.bin", headers=auth)).content == b"\x00\x01"


async def test_replacing_a_file_revokes_its_old_url(
    api: httpx.AsyncClient, auth: dict[str, str], client_path: str, services: Services
) -> None:
    first = (await upload(api, auth, f"{client_path}/files/a.txt", b"one")).json()
    second = (await upload(api, auth, f"{client_path}/files/a.txt", b"two!")).json()
    assert first["file_id"] != second["file_id"]
    assert services.files is not None
    assert await services.files.find_download(first["file_id"], "a.txt") is None
    assert await services.files.find_download(second["file_id"], "a.txt") is not None
    listed = (await api.get(f"{client_path}/files", headers=auth)).json()
    assert [(item["file_id"], item["size"]) for item in listed] == [(second["file_id"], 4)]


async def test_non_ascii_filename_gets_rfc_5987_disposition(
    api: httpx.AsyncClient, auth: dict[str, str], client_path: str
) -> None:
    created = await upload(api, auth, f"{client_path}/files/r\u00e9sum\u00e9 1.txt", b"cv")
    assert created.status_code == 201, created.text
    assert created.json()["url"].endswith(".r%C3%A9sum%C3%A9%201.txt")
    downloaded = await api.get(f"{client_path}/files/r\u00e9sum\u00e9 1.txt", headers=auth)
    assert downloaded.status_code == 200
    assert downloaded.headers["content-disposition"] == (
        "attachment; filename=\"r_sum_ 1.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%201.txt"
    )


async def test_missing_file_field(api: httpx.AsyncClient, auth: dict[str, str], client_path: str) -> None:
    only_other = await api.post(
        f"{client_path}/files/a.txt", files={"attachment": ("a.txt", b"x")}, headers=auth
    )
    assert_error(only_other, 400, "missing_file_field")
    not_multipart = await api.post(f"{client_path}/files/a.txt", json={"file": "x"}, headers=auth)
    assert_error(not_multipart, 400, "missing_file_field")
    assert (await api.get(f"{client_path}/files", headers=auth)).json() == []


async def test_file_too_large(
    api: httpx.AsyncClient, auth: dict[str, str], client_path: str, tmp_path: Path
) -> None:
    response = await upload(api, auth, f"{client_path}/files/big.bin", b"x" * (MAX_FILE_BYTES + 1))
    error = assert_error(response, 413, "file_too_large")
    assert error["details"] == {"max_bytes": MAX_FILE_BYTES}
    assert (await api.get(f"{client_path}/files", headers=auth)).json() == []
    assert [p for p in (tmp_path / "files").rglob("*") if p.is_file()] == []


async def test_a_file_of_exactly_the_limit_is_accepted(
    api: httpx.AsyncClient, auth: dict[str, str], client_path: str
) -> None:
    response = await upload(api, auth, f"{client_path}/files/edge.bin", b"x" * MAX_FILE_BYTES)
    assert response.status_code == 201, response.text


async def test_unknown_tenant_client_and_file(
    api: httpx.AsyncClient, auth: dict[str, str], client_path: str
) -> None:
    tenant_path = client_path.rsplit("/clients/", 1)[0]
    assert_error(
        await api.get(f"{tenant_path}/clients/{UNKNOWN_UUID}/files", headers=auth), 404, "client_not_found"
    )
    assert_error(
        await api.get(f"/api/v1/tenants/{UNKNOWN_UUID}/clients/{UNKNOWN_UUID}/files", headers=auth),
        404,
        "tenant_not_found",
    )
    assert_error(
        await upload(api, auth, f"{tenant_path}/clients/not-a-uuid/files/a", b"x"), 404, "client_not_found"
    )
    assert_error(await api.get(f"{client_path}/files/nothing.txt", headers=auth), 404, "file_not_found")
    assert_error(await api.get(f"{client_path}/files", headers={}), 401, "invalid_token")


async def test_filename_a_device_cannot_receive_is_400(
    api: httpx.AsyncClient, auth: dict[str, str], client_path: str
) -> None:
    response = await upload(api, auth, f"{client_path}/files/quo%22te.txt", b"x")
    assert_error(response, 400, "validation_failed")


async def test_online_device_gets_the_post_command_and_its_answer_is_recorded(
    api: httpx.AsyncClient, auth: dict[str, str], client_path: str, services: Services, device: FakeDevice
) -> None:
    assert services.files is not None
    device.online = True
    body = (await upload(api, auth, f"{client_path}/files/ok.bin", b"1")).json()
    await services.files.wait_idle()
    client_id = client_path.rsplit("/", 1)[1]
    assert device.commands == [(client_id, "POST", "ok.bin", body["url"])]
    listed = (await api.get(f"{client_path}/files", headers=auth)).json()
    assert listed[0]["device_status"] == "ok"

    device.answer = False
    await upload(api, auth, f"{client_path}/files/ok.bin", b"2")
    await services.files.wait_idle()
    assert (await api.get(f"{client_path}/files", headers=auth)).json()[0]["device_status"] == "failed"


async def test_delete_on_device(
    api: httpx.AsyncClient, auth: dict[str, str], client_path: str, services: Services, device: FakeDevice
) -> None:
    assert services.files is not None
    await upload(api, auth, f"{client_path}/files/d.bin", b"1")
    await services.files.wait_idle()  # the device was offline: no POST command
    device.online = True
    response = await api.delete(f"{client_path}/files/d.bin?on_device=1", headers=auth)
    assert response.status_code == 204
    await services.files.wait_idle()
    assert [command[1:3] for command in device.commands] == [("DELETE", "d.bin")]


async def test_download_of_a_missing_file_asks_an_online_device_to_upload_it(
    api: httpx.AsyncClient, auth: dict[str, str], client_path: str, services: Services, device: FakeDevice
) -> None:
    device.online = True
    device.files = services.files
    device.uploads["on-device.log"] = b"uploaded on demand"
    device.tenant_id = client_path.split("/")[4]
    response = await api.get(f"{client_path}/files/on-device.log", headers=auth)
    assert response.status_code == 200, response.text
    assert response.content == b"uploaded on demand"
    client_id = client_path.rsplit("/", 1)[1]
    assert device.commands == [(client_id, "GET", "on-device.log", None)]
    listed = (await api.get(f"{client_path}/files", headers=auth)).json()
    assert [(item["filename"], item["source"]) for item in listed] == [("on-device.log", "device")]


async def test_download_of_a_missing_file_is_404_when_the_device_does_not_upload(
    api: httpx.AsyncClient, auth: dict[str, str], client_path: str, device: FakeDevice
) -> None:
    assert_error(await api.get(f"{client_path}/files/absent.txt", headers=auth), 404, "file_not_found")
    assert device.commands == []  # offline: nothing asked
    device.online = True
    assert_error(await api.get(f"{client_path}/files/absent.txt", headers=auth), 404, "file_not_found")
    assert [command[1:3] for command in device.commands] == [("GET", "absent.txt")]
