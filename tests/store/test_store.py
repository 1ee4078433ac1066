"""Store-level behaviour on SQLite and PostgreSQL: timestamps, uniqueness, cascades, concurrency."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from instamsg.domain import ids
from instamsg.domain.clock import utc_now
from instamsg.domain.errors import ProvisioningIdTaken, TenantClientQuotaExceeded
from instamsg.rest.dependencies import Services
from instamsg.store.repositories import clients as client_repository
from instamsg.store.repositories import tenants as tenant_repository
from instamsg.store.store import Store
from instamsg.store.tables import client, tenant


async def _app_and_tenant(services: Services, *, max_clients: int = 100) -> tuple[str, str]:
    created = await services.apps.create_app("store-test")
    made = await services.tenants.create_tenant(
        created.app.id, name="t", max_clients=max_clients, max_messages=10
    )
    return created.app.id, made.id


def _client_row(tenant_id: str, **values: Any) -> dict[str, Any]:
    now = utc_now()
    return {
        "id": ids.new_uuid(),
        "tenant_id": tenant_id,
        "type": "device",
        "name": "c",
        "description": "",
        "sub_topics": [],
        "pub_topics": [],
        "secure_cert_enabled": False,
        "blocked": False,
        "auth_token": ids.new_client_auth_token(),
        "created_at": now,
        "updated_at": now,
        **values,
    }


async def test_timestamps_round_trip_as_aware_utc(store: Store, services: Services) -> None:
    app_id, tenant_id = await _app_and_tenant(services)
    # Given in another zone, with microseconds: stored as the same instant, returned aware in UTC.
    moment = datetime(2016, 5, 28, 5, 30, 0, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    row = _client_row(tenant_id, created_at=moment, updated_at=moment, last_connect_at=moment)
    async with store.write() as connection:
        await client_repository.insert_client(connection, row)
    async with store.read() as connection:
        found = await client_repository.get_client(connection, tenant_id, row["id"])
    assert found is not None
    for value in (found.created_at, found.updated_at, found.last_connect_at):
        assert value is not None
        assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
        assert value == moment
        assert (value.year, value.month, value.day, value.hour, value.minute) == (2016, 5, 28, 0, 0)
        assert value.microsecond == 123456
    assert found.last_disconnect_at is None and found.provisioned_at is None

    made = await services.tenants.get_tenant(app_id, tenant_id)
    assert made.created_at.tzinfo is not None and made.created_at.utcoffset() == timedelta(0)
    assert abs(made.created_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert made.created_at.microsecond % 1000 == 0  # the clock's millisecond precision


async def test_naive_datetimes_are_refused(store: Store, services: Services) -> None:
    _, tenant_id = await _app_and_tenant(services)
    row = _client_row(tenant_id, created_at=datetime(2016, 5, 28))
    with pytest.raises(Exception, match="naive"):
        async with store.write() as connection:
            await client_repository.insert_client(connection, row)


async def test_provisioning_id_unique_in_the_database(store: Store, services: Services) -> None:
    _, first_tenant = await _app_and_tenant(services)
    _, second_tenant = await _app_and_tenant(services)
    async with store.write() as connection:
        await client_repository.insert_client(connection, _client_row(first_tenant, provisioning_id="IMEI-1"))
        await client_repository.insert_client(connection, _client_row(first_tenant, provisioning_id=None))
        await client_repository.insert_client(connection, _client_row(first_tenant, provisioning_id=None))
    # The database itself refuses a second owner, across tenants (and so across apps).
    with pytest.raises(IntegrityError):
        async with store.write() as connection:
            await connection.execute(
                insert(client).values(**_client_row(second_tenant, provisioning_id="IMEI-1"))
            )
    async with store.read() as connection:
        count = (await connection.execute(select(func.count()).select_from(client))).scalar_one()
    assert count == 3


async def test_concurrent_creations_with_one_provisioning_id(services: Services) -> None:
    app_id, tenant_id = await _app_and_tenant(services)
    body = {"type": "device", "name": "d", "provisioning_params": {"provisioning_id": "RACE-1"}}
    results = await asyncio.gather(
        *(services.clients.create_client(app_id, tenant_id, dict(body)) for _ in range(8)),
        return_exceptions=True,
    )
    created = [result for result in results if not isinstance(result, BaseException)]
    refused = [result for result in results if isinstance(result, BaseException)]
    assert len(created) == 1
    assert all(isinstance(error, ProvisioningIdTaken) for error in refused), refused


async def test_tenant_delete_cascades(store: Store, services: Services) -> None:
    app_id, tenant_id = await _app_and_tenant(services)
    _, other_tenant = await _app_and_tenant(services)
    for _ in range(3):
        await services.clients.create_client(app_id, tenant_id, {"type": "device", "name": "d"})
    async with store.write() as connection:
        await client_repository.insert_client(connection, _client_row(other_tenant))
    await services.tenants.delete_tenant(app_id, tenant_id)
    async with store.read() as connection:
        remaining = (await connection.execute(select(client.c.tenant_id))).scalars().all()
        tenants = (await connection.execute(select(tenant.c.id))).scalars().all()
    assert remaining == [other_tenant]
    assert tenants == [other_tenant]


async def test_database_cascade_without_the_repository(store: Store, services: Services) -> None:
    """The foreign key itself cascades (SQLite needs PRAGMA foreign_keys=ON for that)."""
    from sqlalchemy import delete

    _, tenant_id = await _app_and_tenant(services)
    async with store.write() as connection:
        await client_repository.insert_client(connection, _client_row(tenant_id))
        await connection.execute(delete(tenant).where(tenant.c.id == tenant_id))
    async with store.read() as connection:
        assert (await connection.execute(select(func.count()).select_from(client))).scalar_one() == 0


async def test_failed_write_rolls_back(store: Store, services: Services) -> None:
    _, tenant_id = await _app_and_tenant(services)
    with pytest.raises(RuntimeError):
        async with store.write() as connection:
            await client_repository.insert_client(connection, _client_row(tenant_id))
            raise RuntimeError("boom")
    async with store.read() as connection:
        assert await client_repository.count_clients(connection, tenant_id) == 0


@pytest.mark.parametrize("max_clients", [3, 0])
async def test_concurrent_creations_respect_max_clients(
    store: Store, services: Services, max_clients: int
) -> None:
    app_id, tenant_id = await _app_and_tenant(services, max_clients=max_clients)
    results = await asyncio.gather(
        *(
            services.clients.create_client(app_id, tenant_id, {"type": "device", "name": f"c{index}"})
            for index in range(10)
        ),
        return_exceptions=True,
    )
    created = [result for result in results if not isinstance(result, BaseException)]
    refused = [result for result in results if isinstance(result, BaseException)]
    assert len(created) == max_clients
    assert len(refused) == 10 - max_clients
    assert all(isinstance(error, TenantClientQuotaExceeded) for error in refused), refused
    async with store.read() as connection:
        assert await client_repository.count_clients(connection, tenant_id) == max_clients
        found = await tenant_repository.get_tenant(connection, app_id, tenant_id)
    assert found is not None and found.clients_count == max_clients
