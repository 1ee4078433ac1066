"""Pytest fixtures for the real external services; ``from tests.support.fixtures import *`` in conftest.

Session-scoped servers are per process, so each xdist worker gets its own. All fixtures are synchronous
on purpose: pytest-asyncio (auto mode) runs them outside any event loop, so they work for sync and
async tests alike with no event-loop scope to get wrong.

Missing binaries fail the tests when the ``CI`` environment variable is set (CI must never silently
skip them) and skip them otherwise; ``make services`` installs them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import NoReturn

import pytest

from tests.support import ports
from tests.support.mosquitto import Listener, MosquittoServer, find_mosquitto
from tests.support.postgres import PostgresServer, find_bindir

__all__ = [
    "free_port",
    "mosquitto_factory",
    "mosquitto_server",
    "postgres_server",
    "postgres_url",
]

MosquittoFactory = Callable[..., MosquittoServer]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing(what: str) -> NoReturn:
    reason = f"{what} not installed; run `make services` (bash scripts/ensure-services.sh)"
    if _in_ci():
        pytest.fail(f"{reason} [CI is set, so this is an error, not a skip]", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster for this test process (xdist worker), stopped at the end."""
    bindir = find_bindir()
    if bindir is None:
        _missing("PostgreSQL (initdb/postgres)")
    with PostgresServer(bindir=bindir) as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """``postgresql+asyncpg://`` URL of a fresh, empty database of its own, dropped after the test."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"test_{worker}_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(name)
    try:
        yield postgres_server.url_for(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def mosquitto_server() -> Iterator[MosquittoServer]:
    """A Mosquitto broker shared by this test process: use topics unique to the test."""
    binary = find_mosquitto()
    if binary is None:
        _missing("Mosquitto")
    with MosquittoServer(binary=binary) as server:
        yield server


@pytest.fixture
def mosquitto_factory() -> Iterator[MosquittoFactory]:
    """Start brokers of a test's own (``extra_config=``, ``extra_listeners=``); stopped after the test.

    ``mosquitto_factory(extra_listeners=[Listener("ws", "websockets")]).ports["ws"]``
    """
    binary = find_mosquitto()
    if binary is None:
        _missing("Mosquitto")
    started: list[MosquittoServer] = []

    def start(
        *, extra_config: Sequence[str] = (), extra_listeners: Sequence[Listener] = ()
    ) -> MosquittoServer:
        server = MosquittoServer(binary=binary, extra_config=extra_config, extra_listeners=extra_listeners)
        started.append(server)
        server.start()
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def free_port() -> Callable[[], int]:
    """Factory of free loopback TCP ports, each distinct (like pytest-asyncio's unused_tcp_port_factory)."""
    return ports.free_port
