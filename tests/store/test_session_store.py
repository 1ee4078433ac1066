"""The group-committing durable session store, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from instamsg.broker.ports import StoredMessage, StoredSession, StoredSubscription
from instamsg.rest.dependencies import Services
from instamsg.store.session_store import DurableSessionStore, decode_session, encode_session
from instamsg.store.store import Store


async def _client_ids(services: Services, count: int) -> tuple[str, list[str]]:
    app = await services.apps.create_app("sessions")
    tenant = await services.tenants.create_tenant(app.app.id, name="t", max_clients=count, max_messages=10)
    ids = []
    for index in range(count):
        created = await services.clients.create_client(
            app.app.id, tenant.id, {"type": "device", "name": f"d{index}"}
        )
        ids.append(created.id)
    return tenant.id, ids


def _session(client_uuid: str, tenant_id: str, messages: int = 2) -> StoredSession:
    return StoredSession(
        client_uuid=client_uuid,
        tenant_id=tenant_id,
        expiry_interval=3600,
        subscriptions=[StoredSubscription("a/+", 1, no_local=True, subscription_identifier=7)],
        messages=[
            StoredMessage(
                topic=f"a/{index}",
                payload=bytes([index, 0, 255]),
                qos=1,
                retain=False,
                packet_id=index + 1,
                properties={"correlation_data": b"\x00\x01", "user_property": [("k", "v")]},
                expires_at=123.5,
            )
            for index in range(messages)
        ],
        inbound_unreleased=[5],
        outbound_released=[6],
        disconnected_at=1700000000.25,
    )


def test_encoding_round_trips_bytes_tuples_and_dicts() -> None:
    session = _session("c", "t")
    assert decode_session(encode_session(session)) == session


async def test_saved_sessions_survive_a_new_store_and_callbacks_follow_the_commit(
    store: Store, services: Services
) -> None:
    tenant_id, (first, second) = await _client_ids(services, 2)
    sessions = DurableSessionStore(store)
    committed: list[str] = []
    sessions.save(_session(first, tenant_id), lambda: committed.append(first))
    sessions.save(_session(second, tenant_id, messages=0), lambda: committed.append(second))
    assert committed == []  # acknowledgements wait for the commit, never before
    await sessions.close()
    assert committed == [first, second]

    reloaded = DurableSessionStore(store)
    await reloaded.preload()
    assert sorted(reloaded.load_all(), key=lambda found: found.client_uuid) == sorted(
        [_session(first, tenant_id), _session(second, tenant_id, messages=0)],
        key=lambda found: found.client_uuid,
    )
    reloaded.delete(first)
    await reloaded.close()
    again = DurableSessionStore(store)
    await again.preload()
    assert [found.client_uuid for found in again.load_all()] == [second]


async def test_appended_messages_follow_the_snapshot_in_order(store: Store, services: Services) -> None:
    tenant_id, (client_uuid,) = await _client_ids(services, 1)
    sessions = DurableSessionStore(store)
    sessions.save(_session(client_uuid, tenant_id, messages=1))
    await sessions.close()
    committed: list[int] = []
    for index in range(5):
        message = StoredMessage(f"late/{index}", str(index).encode(), 1, False, None)
        sessions.append(client_uuid, message, lambda index=index: committed.append(index))
    assert committed == []
    await sessions.close()
    assert committed == [0, 1, 2, 3, 4]
    reloaded = DurableSessionStore(store)
    await reloaded.preload()
    (restored,) = reloaded.load_all()
    assert [message.topic for message in restored.messages] == [
        "a/0",
        *(f"late/{index}" for index in range(5)),
    ]
    # A new snapshot replaces the appended rows: nothing is restored twice.
    reloaded.save(_session(client_uuid, tenant_id, messages=2))
    await reloaded.close()
    again = DurableSessionStore(store)
    await again.preload()
    assert [message.topic for message in again.load_all()[0].messages] == ["a/0", "a/1"]


async def test_many_saves_are_grouped_into_few_transactions(store: Store, services: Services) -> None:
    tenant_id, ids = await _client_ids(services, 5)
    sessions = DurableSessionStore(store, flush_interval=0.05)
    committed = 0

    def on_committed() -> None:
        nonlocal committed
        committed += 1

    for round_number in range(40):
        for client_uuid in ids:
            sessions.save(_session(client_uuid, tenant_id, messages=round_number % 3), on_committed)
    await asyncio.sleep(0.3)
    assert committed == 200
    assert sessions.flushes <= 3
    await sessions.close()


async def test_session_of_a_deleted_client_does_not_block_the_batch(store: Store, services: Services) -> None:
    tenant_id, (kept, gone) = await _client_ids(services, 2)
    sessions = DurableSessionStore(store)
    sessions.save(_session(gone, tenant_id))
    sessions.save(_session(kept, tenant_id))
    apps = await services.apps.list_apps()
    await services.clients.delete_client(apps[0].id, tenant_id, gone)
    await sessions.close()
    assert sessions.failed_flushes == 0
    reloaded = DurableSessionStore(store)
    await reloaded.preload()
    assert [found.client_uuid for found in reloaded.load_all()] == [kept]
