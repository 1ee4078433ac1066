"""Fixtures for broker tests: a Directory of two tenants, a live BrokerNode on loopback, raw clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from instamsg.broker import BrokerNode, BrokerSettings, ClientRecord, Directory, TenantRecord
from instamsg.broker.hooks import Hooks
from tests.broker.support import (
    ALICE,
    BOB,
    CAROL,
    MALLORY,
    TENANT_A,
    TENANT_B,
    RawClient,
)


def make_directory() -> Directory:
    directory = Directory()
    directory.load(
        [
            TenantRecord(TENANT_A, active=True, max_messages=1_000_000, messages_used=0),
            TenantRecord(TENANT_B, active=True, max_messages=1_000_000, messages_used=0),
        ],
        [
            ClientRecord(
                ALICE.uuid,
                TENANT_A,
                ALICE.token,
                pub_topics=("#", BOB.uuid),
                sub_topics=("#",),
            ),
            ClientRecord(
                BOB.uuid,
                TENANT_A,
                BOB.token,
                pub_topics=("sensors/#", "a/b", "will/#"),
                sub_topics=("sensors/+", "a/#"),
            ),
            ClientRecord(CAROL.uuid, TENANT_A, CAROL.token, pub_topics=("#",), sub_topics=("#",)),
            ClientRecord(MALLORY.uuid, TENANT_B, MALLORY.token, pub_topics=("#",), sub_topics=("#",)),
        ],
    )
    return directory


@pytest.fixture
def directory() -> Directory:
    return make_directory()


@pytest.fixture
def hooks() -> Hooks:
    return Hooks()


@pytest.fixture
def settings() -> BrokerSettings:
    return BrokerSettings(host="127.0.0.1", mqtt_port=0, timer_resolution=0.1, connect_timeout=2.0)


@pytest.fixture
async def node(settings: BrokerSettings, directory: Directory, hooks: Hooks) -> AsyncIterator[BrokerNode]:
    broker = BrokerNode(settings, directory, hooks)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


@pytest.fixture
async def connect_raw(node: BrokerNode) -> AsyncIterator[Callable[..., Any]]:
    clients: list[RawClient] = []

    async def factory() -> RawClient:
        port = node.ports["mqtt"]
        assert port is not None
        client = await RawClient.open("127.0.0.1", port)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()
    await asyncio.sleep(0)
