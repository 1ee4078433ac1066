"""The `message` table's schema: upgrading a database with history rows keeps them, and the indexes
the history queries need are the ones there (spec §6.5)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import JSON, Boolean, Connection, DateTime, Integer, MetaData, Table, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from instamsg.store.database import MIGRATIONS_DIRECTORY, create_engine
from instamsg.store.repositories import messages as message_repository
from instamsg.store.retention import HistoryRetention
from instamsg.store.store import Store

BASE_TIME = datetime(2026, 11, 1, 12, 0, 0)


def _upgrade(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIRECTORY))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def _upgrade_to(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, revision)


def _filled(table: Table, given: dict[str, Any]) -> dict[str, Any]:
    """`given` plus a plain value for every other required column of the table as it was reflected."""
    row = dict(given)
    for column in table.columns:
        if column.name in row or column.nullable:
            continue
        if isinstance(column.type, Boolean):
            row[column.name] = False
        elif isinstance(column.type, Integer):
            row[column.name] = 0
        elif isinstance(column.type, DateTime):
            row[column.name] = BASE_TIME
        elif isinstance(column.type, JSON):
            row[column.name] = []
        else:
            row[column.name] = uuid.uuid4().hex[:16]
    return row


def _seed_at_0003(connection: Connection) -> tuple[str, str, list[str]]:
    """One app, tenant and two clients, and 40 history rows (20 each), written with the 0003 schema."""
    metadata = MetaData()
    metadata.reflect(connection, only=["app", "tenant", "client", "message"])
    app_id, tenant_id = str(uuid.uuid4()), str(uuid.uuid4())
    client_ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    connection.execute(metadata.tables["app"].insert(), [_filled(metadata.tables["app"], {"id": app_id})])
    connection.execute(
        metadata.tables["tenant"].insert(),
        [_filled(metadata.tables["tenant"], {"id": tenant_id, "app_id": app_id})],
    )
    connection.execute(
        metadata.tables["client"].insert(),
        [_filled(metadata.tables["client"], {"id": cid, "tenant_id": tenant_id}) for cid in client_ids],
    )
    message_table = metadata.tables["message"]
    rows: list[dict[str, Any]] = [
        {
            "id": f"00000000-0000-7000-8000-{index:012x}",
            "tenant_id": tenant_id,
            "client_id": client_ids[index % 2],
            "type": "pub",
            "topic": f"data/{index}",
            "payload": f"payload {index}",
            "qos": 1,
            "client_message_id": None,
            "duplicate": False,
            "saved": True,
            "source": "mqtt",
            "delivered_to": 1,
            "releases": [],
            "created_at": BASE_TIME + timedelta(seconds=index),
        }
        for index in range(40)
    ]
    connection.execute(message_table.insert(), rows)
    return app_id, tenant_id, client_ids


def _message_indexes(connection: Connection) -> dict[str, dict[str, Any]]:
    return {str(found["name"]): dict(found) for found in inspect(connection).get_indexes("message")}


async def test_upgrade_from_0003_keeps_history_rows_and_queries_work(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await _upgrade_to(engine, "0003")
        async with engine.begin() as connection:
            _, _, client_ids = await connection.run_sync(_seed_at_0003)
        await _upgrade_to(engine, "head")
    finally:
        await engine.dispose()

    store = Store.from_url(database_url)
    try:
        await store.upgrade()  # already at head: a no-op
        async with store.read() as connection:
            count = (await connection.execute(text("SELECT count(*) FROM message"))).scalar_one()
            peers = (
                await connection.execute(text("SELECT count(*) FROM message WHERE peer_id IS NOT NULL"))
            ).scalar_one()
            first = await message_repository.list_messages(
                connection,
                client_ids[0],
                start=None,
                end=None,
                message_type=None,
                descending=False,
                limit=5,
                after=None,
            )
            newest = await message_repository.list_messages(
                connection,
                client_ids[1],
                start=None,
                end=None,
                message_type=None,
                descending=True,
                limit=3,
                after=None,
            )
            found = await message_repository.get_message(
                connection, client_ids[1], "00000000-0000-7000-8000-000000000027"
            )
        assert count == 40
        assert peers == 0
        assert [row.topic for row in first] == ["data/0", "data/2", "data/4", "data/6", "data/8"]
        assert [row.created_at for row in first] == [
            (BASE_TIME + timedelta(seconds=n)).replace(tzinfo=UTC) for n in (0, 2, 4, 6, 8)
        ]
        assert [row.payload for row in newest] == ["payload 39", "payload 37", "payload 35"]
        assert found is not None and found.topic == "data/39"

        # Retention still finds the old rows after the upgrade.
        retention = HistoryRetention(store, retention_days=1, pause=0)
        now = (BASE_TIME + timedelta(days=1, seconds=10)).replace(tzinfo=UTC)
        assert await retention.purge(now=now) == 10
        async with store.read() as connection:
            left = (await connection.execute(text("SELECT count(*) FROM message"))).scalar_one()
        assert left == 30
    finally:
        await store.close()


async def test_message_indexes_skip_tenant_and_rows_without_peer(database_url: str) -> None:
    store = Store.from_url(database_url)
    try:
        await store.upgrade()
        async with store.read() as connection:
            indexes = await connection.run_sync(_message_indexes)
        assert "ix_message_tenant_id" not in indexes
        assert indexes["ix_message_client_created"]["column_names"] == ["client_id", "created_at", "id"]
        peer = indexes["ix_message_peer_created"]
        assert peer["column_names"] == ["peer_id", "created_at", "id"]
        where = peer.get("dialect_options", {}).get(f"{store.engine.dialect.name}_where")
        assert where is not None and "peer_id IS NOT NULL" in str(where)
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (
            "SELECT id FROM message WHERE peer_id = 'p' AND client_id != 'p' ORDER BY created_at, id LIMIT 5",
            "ix_message_peer_created",
        ),
        (
            "SELECT id FROM message WHERE client_id = 'c' ORDER BY created_at DESC, id DESC LIMIT 5",
            "ix_message_client_created",
        ),
    ],
)
async def test_sqlite_history_pages_are_index_range_scans(tmp_path: Path, query: str, index: str) -> None:
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'instamsg.db'}")
    try:
        await store.upgrade()
        async with store.read() as connection:
            plan = " ".join(
                str(row[-1]) for row in await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}")
            )
        assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
    finally:
        await store.close()
