"""deleteClient and deleteTenant remove the bytes of the deleted clients' files at once, not at the
next start-up sweep (spec §2.3, §10.2), on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest

from instamsg.rest.dependencies import Services
from instamsg.services.files import FileService
from instamsg.store.file_store import FileStore
from instamsg.store.store import Store
from tests.rest.helpers import create_client, create_tenant


@pytest.fixture
def file_store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "stored-files")


@pytest.fixture
async def services(services: Services, store: Store, file_store: FileStore) -> Services:
    """The services as the platform wires them: client and tenant deletion know the file store."""
    files = FileService(store, file_store)
    await files.prepare()
    services.clients.file_bytes = services.tenants.file_bytes = file_store
    return dataclasses.replace(services, files=files)


async def upload(api: httpx.AsyncClient, auth: dict[str, str], client_path: str, filename: str) -> str:
    response = await api.post(
        f"{client_path}/files/{filename}", files={"uploadedfile": ("x", filename.encode())}, headers=auth
    )
    assert response.status_code == 201, response.text
    file_id: str = response.json()["file_id"]
    return file_id


def stored(file_store: FileStore, *file_ids: str) -> list[bool]:
    return [file_store.path_of(file_id).is_file() for file_id in file_ids]


async def test_delete_client_removes_its_files_bytes_and_only_its(
    api: httpx.AsyncClient, auth: dict[str, str], file_store: FileStore
) -> None:
    tenant = await create_tenant(api, auth)
    tenant_path = f"/api/v1/tenants/{tenant['id']}/clients"
    deleted = f"{tenant_path}/{(await create_client(api, auth, tenant['id']))['id']}"
    kept = f"{tenant_path}/{(await create_client(api, auth, tenant['id']))['id']}"
    deleted_files = [await upload(api, auth, deleted, name) for name in ("a.bin", "b.log")]
    kept_file = await upload(api, auth, kept, "a.bin")
    assert stored(file_store, *deleted_files, kept_file) == [True, True, True]

    assert (await api.delete(deleted, headers=auth)).status_code == 204

    assert stored(file_store, *deleted_files, kept_file) == [False, False, True]
    assert (await api.get(f"{kept}/files/a.bin", headers=auth)).content == b"a.bin"


async def test_delete_tenant_removes_the_bytes_of_every_client_file(
    api: httpx.AsyncClient, auth: dict[str, str], file_store: FileStore
) -> None:
    deleted_tenant, kept_tenant = await create_tenant(api, auth), await create_tenant(api, auth)
    deleted_files = []
    for _ in range(2):
        client = await create_client(api, auth, deleted_tenant["id"])
        path = f"/api/v1/tenants/{deleted_tenant['id']}/clients/{client['id']}"
        deleted_files.append(await upload(api, auth, path, "report.csv"))
    kept_client = await create_client(api, auth, kept_tenant["id"])
    kept_file = await upload(
        api, auth, f"/api/v1/tenants/{kept_tenant['id']}/clients/{kept_client['id']}", "report.csv"
    )

    assert (await api.delete(f"/api/v1/tenants/{deleted_tenant['id']}", headers=auth)).status_code == 204

    assert stored(file_store, *deleted_files, kept_file) == [False, False, True]


async def test_without_a_file_store_deletion_works_and_the_sweep_removes_the_bytes(
    api: httpx.AsyncClient, auth: dict[str, str], file_store: FileStore, services: Services, store: Store
) -> None:
    """The CLI wires no file store: the rows go, the bytes wait for the next start-up sweep."""
    services.clients.file_bytes = services.tenants.file_bytes = None
    tenant = await create_tenant(api, auth)
    client = await create_client(api, auth, tenant["id"])
    client_path = f"/api/v1/tenants/{tenant['id']}/clients/{client['id']}"
    file_id = await upload(api, auth, client_path, "left.bin")

    assert (await api.delete(client_path, headers=auth)).status_code == 204
    assert stored(file_store, file_id) == [True]

    await FileService(store, file_store).prepare()
    assert stored(file_store, file_id) == [False]


def test_remove_all_skips_missing_and_foreign_names(file_store: FileStore) -> None:
    file_store.prepare()
    present = "0f8fad5b-d9cb-469f-a165-70867728950e"
    file_store.path_of(present).write_bytes(b"x")
    file_store.remove_all(["7c9e6679-7425-40de-944b-e07fc1f90ae7", "../escape", present])
    assert stored(file_store, present) == [False]
