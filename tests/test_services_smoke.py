"""Smoke tests of the real services the suite starts itself (tests/support): PostgreSQL and Mosquitto."""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import asyncpg  # type: ignore[import-untyped]
import paho.mqtt.client as mqtt
import psutil
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.fixtures import MosquittoFactory
from tests.support.mosquitto import Listener, MosquittoServer
from tests.support.ports import LOOPBACK, wait_for_port
from tests.support.postgres import PostgresServer

TIMEOUT = 5.0


def _process_tree(pid: int) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def _assert_unprivileged(proc: psutil.Process) -> None:
    """As root the servers must run as a service user; otherwise as ourselves."""
    try:
        uid = proc.uids().real
    except psutil.NoSuchProcess:  # a short-lived backend (e.g. psql's) that has just exited
        return
    if os.geteuid() == 0:
        assert uid != 0, f"{proc.name()} runs as root"
    else:
        assert uid == os.geteuid()


# -- PostgreSQL ------------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_postgres_url_is_a_fresh_database_on_a_fast_cluster(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    assert postgres_url.startswith(f"postgresql+asyncpg://postgres@127.0.0.1:{postgres_server.port}/")
    name = postgres_url.rsplit("/", 1)[1]
    assert name != postgres_server.database
    engine = create_async_engine(postgres_url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("select 1"))).scalar_one() == 1
            assert (await conn.execute(text("select current_database()"))).scalar_one() == name
            assert (await conn.execute(text("show fsync"))).scalar_one() == "off"
            assert (await conn.execute(text("show server_encoding"))).scalar_one() == "UTF8"
            tables = await conn.execute(text("select count(*) from pg_tables where schemaname = 'public'"))
            assert tables.scalar_one() == 0
            await conn.execute(text("create table marker (id int primary key)"))
            await conn.commit()
    finally:
        await engine.dispose()

    # The table lives only in this test's database, not in the server's default one.
    default = create_async_engine(postgres_server.url)
    try:
        async with default.connect() as conn:
            with pytest.raises(ProgrammingError, match="marker"):
                await conn.execute(text("select * from marker"))
    finally:
        await default.dispose()


@pytest.mark.postgres
async def test_postgres_create_and_drop_database(postgres_server: PostgresServer) -> None:
    name = f"smoke_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(name)
    assert name in postgres_server.databases()

    conn = await asyncpg.connect(postgres_server.dsn_for(name))
    try:
        assert await conn.fetchval("select current_database()") == name
        # A connection a test forgot to close must not block the drop (DROP DATABASE ... WITH (FORCE)).
        postgres_server.drop_database(name)
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
            await conn.fetchval("select 1")
    finally:
        conn.terminate()
    assert name not in postgres_server.databases()
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await asyncpg.connect(postgres_server.dsn_for(name))
    postgres_server.drop_database(name)  # dropping a missing database is fine


@pytest.mark.postgres
def test_postgres_server_is_unprivileged_and_leaves_nothing_behind(
    postgres_server: PostgresServer,
) -> None:
    # A server of its own: stopping the session one would break the other tests of this worker.
    server = PostgresServer(bindir=postgres_server.bindir)
    started = time.monotonic()
    server.start()
    directory = server.directory
    try:
        startup = time.monotonic() - started
        assert startup < 15, f"PostgreSQL took {startup:.1f}s to start"
        assert directory is not None and directory.is_dir()
        assert (server.socket_dir / f".s.PGSQL.{server.port}").exists()
        tree = _process_tree(server.pid)
        assert len(tree) > 1  # postmaster and its auxiliary processes
        for proc in tree:
            _assert_unprivileged(proc)
    finally:
        server.stop()
    assert directory is not None and not directory.exists()
    assert psutil.wait_procs(tree, timeout=TIMEOUT)[1] == []
    server.stop()  # idempotent


# -- Mosquitto -------------------------------------------------------------------------------------


@contextmanager
def _mqtt_client(
    port: int, transport: Literal["tcp", "websockets"] = "tcp"
) -> Iterator[tuple[mqtt.Client, queue.Queue[bytes]]]:
    """A connected paho client (API v2) whose received payloads land in the returned queue."""
    received: queue.Queue[bytes] = queue.Queue()
    connected = threading.Event()
    result: list[Any] = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"smoke-{uuid.uuid4().hex[:8]}", transport=transport
    )

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, props: Any) -> None:
        result.append(reason_code)
        connected.set()

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        received.put(bytes(message.payload))

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(LOOPBACK, port, keepalive=10)
    client.loop_start()
    try:
        assert connected.wait(TIMEOUT), "no CONNACK"
        assert not result[0].is_failure, result[0]
        yield client, received
    finally:
        client.disconnect()
        client.loop_stop()


def _subscribe(client: mqtt.Client, topic: str) -> None:
    """Subscribe with QoS 1 and wait for the SUBACK, so that a publish after it cannot be missed."""
    subscribed = threading.Event()
    client.on_subscribe = lambda *args: subscribed.set()
    result, _ = client.subscribe(topic, qos=1)
    assert result == mqtt.MQTT_ERR_SUCCESS
    assert subscribed.wait(TIMEOUT), "no SUBACK"


def _round_trip(publisher: mqtt.Client, subscriber: mqtt.Client, received: queue.Queue[bytes]) -> None:
    topic = f"smoke/{uuid.uuid4().hex}"
    payload = uuid.uuid4().bytes
    _subscribe(subscriber, topic)
    publisher.publish(topic, payload, qos=1).wait_for_publish(TIMEOUT)
    assert received.get(timeout=TIMEOUT) == payload


@pytest.mark.mosquitto
def test_mosquitto_publish_subscribe_round_trip(mosquitto_server: MosquittoServer) -> None:
    with (
        _mqtt_client(mosquitto_server.port) as (subscriber, received),
        _mqtt_client(mosquitto_server.port) as (publisher, _),
    ):
        _round_trip(publisher, subscriber, received)
    _assert_unprivileged(psutil.Process(mosquitto_server.pid))


@pytest.mark.mosquitto
def test_mosquitto_extra_listener_and_config(mosquitto_factory: MosquittoFactory) -> None:
    server = mosquitto_factory(
        extra_config=["max_packet_size 1000"],
        extra_listeners=[Listener("ws", "websockets")],
    )
    assert set(server.ports) == {"mqtt", "ws"} and server.ports["ws"] != server.port
    assert "max_packet_size 1000" in server.config_path.read_text()
    # A websocket subscriber gets what a plain TCP client publishes: one broker, two listeners.
    with (
        _mqtt_client(server.ports["ws"], transport="websockets") as (subscriber, received),
        _mqtt_client(server.port) as (publisher, _),
    ):
        _round_trip(publisher, subscriber, received)
    assert f"port {server.ports['ws']}" in server.log_text()

    directory, tree = server.directory, _process_tree(server.pid)
    assert directory is not None
    server.stop()
    assert not directory.exists()
    assert psutil.wait_procs(tree, timeout=TIMEOUT)[1] == []


# -- ports -----------------------------------------------------------------------------------------


def test_free_port_and_wait_for_port(free_port: Callable[[], int]) -> None:
    first, second = free_port(), free_port()
    assert first != second

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        wait_for_port(LOOPBACK, first, timeout=0.2)
    assert time.monotonic() - started < 2

    with pytest.raises(RuntimeError, match="exited"):
        wait_for_port(LOOPBACK, first, timeout=5, alive=lambda: False)

    with socket.socket() as listener:
        listener.bind((LOOPBACK, second))
        listener.listen()
        wait_for_port(LOOPBACK, second, timeout=1)
