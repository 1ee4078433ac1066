"""Differential testing support: one scenario, two brokers (InstaMsg in-process, Mosquitto 2.0.x).

A scenario is an ``async def scenario(net: Net) -> dict`` that drives `ScenarioClient`s through
``net`` and returns a normalised record: the CONNACK / SUBACK / PUBACK / UNSUBACK reason codes it saw
and, per subscriber, the deliveries as ``(topic, payload, qos, retain, dup)`` tuples (MQTT 5 adds the
sorted subscription identifiers when present). `run_both` runs the same scenario against both brokers
concurrently so the slow scenarios (expiry, keep-alive) cost their wall time once.

The clients are raw sockets with the project's own codec (`instamsg.mqtt`), so every byte, flag and
timing is under the scenario's control: a will is triggered by closing the socket without DISCONNECT,
a keep-alive timeout by staying silent. Received QoS 1/2 messages are acknowledged at once.

Synchronisation is by round trips, not sleeps: `Net.settle` sends two rounds of PINGREQ on every live
client (a broker answers one only after the packets received before it, and both brokers route a PUBLISH
before reading the next packet), then waits until no packet arrived for a short quiet period. Fixed
sleeps remain only where time is the subject (expiry, will delay, keep-alive) or to conclude that
something (a will) did not happen.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from instamsg.broker import BrokerNode, BrokerSettings, ClientRecord, Directory, TenantRecord
from instamsg.mqtt.decoder import FrameDecoder
from instamsg.mqtt.encoder import encode
from instamsg.mqtt.packets import (
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Properties,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    SubscriptionOptions,
    Unsuback,
    Unsubscribe,
    Will,
)

__all__ = [
    "V5",
    "V311",
    "Delivery",
    "Net",
    "ScenarioClient",
    "Target",
    "instamsg_target",
    "mosquitto_target",
    "run_both",
]

V311 = 4
V5 = 5
TENANT = "tenant-diff"
TOKEN = "d" * 32
NAMESPACE = uuid.UUID("6c1a0d54-6f0e-4f5e-9d3b-2f51d1c0ffee")
# Quiet period that ends `settle` (loopback, both brokers answer within a few ms).
QUIET = 0.12
TIMEOUT = 3.0

Delivery = tuple[Any, ...]


@dataclass
class Target:
    """A broker under test: where it listens and which credentials a logical client name gets."""

    name: str
    host: str
    port: int
    credentials: Callable[[str], tuple[str, str, str]]  # name -> (client id, username, password)


def instamsg_directory() -> Directory:
    directory = Directory()
    directory.load([TenantRecord(TENANT, active=True, max_messages=10_000_000, messages_used=0)], [])
    return directory


# InstaMsg's ACL treats `#` like a subscription filter: it never covers a topic starting with `$`
# (MQTT-4.7.2-1 applied to pub_topics/sub_topics, access.py). The `$`-topic scenario uses `$d/...`, so the
# clients are granted that tree explicitly; everything else is covered by `#`.
TOPICS = ("#", "$d/#")


def instamsg_target(node: BrokerNode) -> Target:
    """Every logical client is a standard client of one tenant whose pub_topics and sub_topics are `#`
    (and `$d/#`), so ACLs never interfere; username = its UUID, password = its token."""
    port = node.ports["mqtt"]
    assert port is not None

    def credentials(name: str) -> tuple[str, str, str]:
        client_uuid = str(uuid.uuid5(NAMESPACE, name))
        if node.directory.get_client(client_uuid) is None:
            node.directory.upsert_client(ClientRecord(client_uuid, TENANT, TOKEN, TOPICS, TOPICS))
        return name, client_uuid, TOKEN

    return Target("instamsg", "127.0.0.1", port, credentials)


def instamsg_settings() -> BrokerSettings:
    return BrokerSettings(host="127.0.0.1", mqtt_port=0, timer_resolution=0.1, connect_timeout=2.0)


def mosquitto_target(host: str, port: int) -> Target:
    """Anonymous Mosquitto: the client identifier is the session key, so it is the logical name."""
    return Target("mosquitto", host, port, lambda name: (name, name, "unused"))


class ScenarioClient:
    """One MQTT connection over a raw socket; records what it receives (see the module docstring)."""

    def __init__(self, net: Net, name: str) -> None:
        self.net = net
        self.name = name
        self.version = net.version
        self.received: list[Delivery] = []
        # False: received QoS 1/2 messages stay unacknowledged (ids in `unacked`) until `acknowledge`.
        self.auto_ack = True
        self.unacked: list[tuple[int, int]] = []  # (qos, packet id)
        self.raw: list[Publish] = []
        self.server_disconnect: int | None = None  # MQTT 5 DISCONNECT reason from the server
        self.closed = asyncio.Event()
        self.closed_at: float | None = None
        self.last_activity = 0.0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiters: dict[tuple[type[Any], int], asyncio.Future[Any]] = {}
        self._pings: list[asyncio.Future[None]] = []
        self._connack: asyncio.Future[Connack] | None = None
        self._ids = itertools.cycle(range(1, 65536))

    # ---- connection --------------------------------------------------------------------------------

    async def connect(
        self,
        *,
        clean: bool = True,
        keep_alive: int = 60,
        will: Will | None = None,
        properties: Properties | None = None,
    ) -> Connack:
        client_id, username, password = self.net.target.credentials(self.name)
        loop = asyncio.get_running_loop()
        self._reader, self._writer = await asyncio.open_connection(self.net.target.host, self.net.target.port)
        self.closed = asyncio.Event()
        self.closed_at = None
        self.server_disconnect = None
        self._connack = loop.create_future()
        self._task = asyncio.create_task(
            self._read_loop(FrameDecoder(server_side=False, protocol_level=self.version))
        )
        self.send(
            Connect(
                protocol_name="MQTT",
                protocol_level=self.version,
                clean_start=clean,
                keep_alive=keep_alive,
                client_id=client_id,
                username=username,
                password=password.encode(),
                will=will,
                properties=properties or {},
            )
        )
        return await asyncio.wait_for(self._connack, TIMEOUT)

    def send(self, packet: Packet) -> None:
        assert self._writer is not None
        self._writer.write(encode(packet, self.version))

    def send_raw(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)

    async def disconnect(self, reason: int = 0, properties: Properties | None = None) -> None:
        """A clean DISCONNECT (MQTT 5: with `reason`), then close the socket and wait for EOF."""
        self.send(Disconnect(reason, properties or {}))
        await self._close()

    async def drop(self) -> None:
        """Close the socket without DISCONNECT: an abnormal close for the broker (will published)."""
        await self._close()

    async def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            await asyncio.wait_for(asyncio.shield(self._task), TIMEOUT)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
        if self._task is not None:
            self._task.cancel()

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self.closed.is_set()

    # ---- operations ----------------------------------------------------------------------------

    def _next_id(self) -> int:
        return next(self._ids)

    def _expect(self, kind: type[Any], packet_id: int) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[(kind, packet_id)] = future
        return future

    async def subscribe(
        self,
        *filters: tuple[str, int | SubscriptionOptions],
        identifier: int | None = None,
    ) -> list[int]:
        """SUBSCRIBE; returns the SUBACK reason codes. A filter's options may be just a QoS."""
        packet_id = self._next_id()
        subscriptions = [
            (
                topic_filter,
                options if isinstance(options, SubscriptionOptions) else SubscriptionOptions(options),
            )
            for topic_filter, options in filters
        ]
        properties: Properties = {}
        if identifier is not None:
            properties["subscription_identifier"] = [identifier]
        future = self._expect(Suback, packet_id)
        self.send(Subscribe(packet_id, subscriptions, properties))
        suback: Suback = await asyncio.wait_for(future, TIMEOUT)
        return list(suback.reason_codes)

    async def unsubscribe(self, *filters: str) -> list[int]:
        """UNSUBSCRIBE; returns the UNSUBACK reason codes (empty on 3.1.1)."""
        packet_id = self._next_id()
        future = self._expect(Unsuback, packet_id)
        self.send(Unsubscribe(packet_id, list(filters)))
        unsuback: Unsuback = await asyncio.wait_for(future, TIMEOUT)
        return list(unsuback.reason_codes)

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> tuple[int, ...]:
        """PUBLISH and run its QoS flow: () for QoS 0, (PUBACK,) or (PUBREC, PUBCOMP) reason codes."""
        if qos == 0:
            self.send(Publish(topic, payload, 0, retain, False, None, properties or {}))
            return ()
        packet_id = self._next_id()
        if qos == 1:
            future = self._expect(Puback, packet_id)
            self.send(Publish(topic, payload, 1, retain, False, packet_id, properties or {}))
            puback: Puback = await asyncio.wait_for(future, TIMEOUT)
            return (puback.reason_code,)
        future = self._expect(Pubrec, packet_id)
        self.send(Publish(topic, payload, 2, retain, False, packet_id, properties or {}))
        pubrec: Pubrec = await asyncio.wait_for(future, TIMEOUT)
        if pubrec.reason_code >= 0x80:
            return (pubrec.reason_code,)
        done = self._expect(Pubcomp, packet_id)
        self.send(Pubrel(packet_id))
        pubcomp: Pubcomp = await asyncio.wait_for(done, TIMEOUT)
        return (pubrec.reason_code, pubcomp.reason_code)

    async def exchange(self, packet: Packet, reply: type[Any], packet_id: int) -> Any:
        """Send `packet` as is and wait for the `reply` packet type carrying `packet_id`."""
        future = self._expect(reply, packet_id)
        self.send(packet)
        return await asyncio.wait_for(future, TIMEOUT)

    async def ping(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pings.append(future)
        self.send(Pingreq())
        await asyncio.wait_for(future, TIMEOUT)

    async def wait_for(self, count: int, timeout: float = TIMEOUT) -> None:
        """Wait until `count` messages arrived (fails after `timeout`)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.received) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"{self.name}: {len(self.received)} of {count} messages after {timeout}s"
                )
            await asyncio.sleep(0.01)

    # ---- reading -------------------------------------------------------------------------------

    async def _read_loop(self, decoder: FrameDecoder) -> None:
        assert self._reader is not None
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    chunk = await self._reader.read(65536)
                except (ConnectionError, OSError):
                    break
                if not chunk:
                    break
                self.last_activity = loop.time()
                for packet in decoder.feed(chunk):
                    self._handle(packet)
        finally:
            self.closed_at = loop.time()
            self.closed.set()
            if self._writer is not None:
                self._writer.close()
            for future in [*self._waiters.values(), *self._pings]:
                if not future.done():
                    future.set_exception(ConnectionError(f"{self.name}: connection closed"))
            if self._connack is not None and not self._connack.done():
                self._connack.set_exception(ConnectionError(f"{self.name}: closed before CONNACK"))
            self._waiters.clear()
            self._pings.clear()

    def _handle(self, packet: Packet) -> None:
        if isinstance(packet, Publish):
            self._on_publish(packet)
        elif isinstance(packet, Connack):
            assert self._connack is not None
            self._connack.set_result(packet)
        elif isinstance(packet, Pubrel):
            self.send(Pubcomp(packet.packet_id))
        elif isinstance(packet, Pingresp):
            if self._pings:
                self._pings.pop(0).set_result(None)
        elif isinstance(packet, Disconnect):
            self.server_disconnect = packet.reason_code
        elif isinstance(packet, Puback | Pubrec | Pubcomp | Suback | Unsuback):
            future = self._waiters.pop((type(packet), packet.packet_id), None)
            if future is not None and not future.done():
                future.set_result(packet)
        else:
            raise AssertionError(f"{self.name}: unexpected {packet!r}")

    def _on_publish(self, packet: Publish) -> None:
        self.raw.append(packet)
        entry: tuple[Any, ...] = (
            packet.topic,
            packet.payload,
            packet.qos,
            int(packet.retain),
            int(packet.dup),
        )
        identifiers = packet.properties.get("subscription_identifier")
        if identifiers:
            entry += (("sid", tuple(sorted(identifiers))),)
        self.received.append(entry)
        if packet.qos:
            assert packet.packet_id is not None
            if self.auto_ack:
                self._acknowledge(packet.qos, packet.packet_id)
            else:
                self.unacked.append((packet.qos, packet.packet_id))

    def _acknowledge(self, qos: int, packet_id: int) -> None:
        self.send(Puback(packet_id) if qos == 1 else Pubrec(packet_id))

    def acknowledge(self) -> None:
        """Acknowledge (PUBACK / PUBREC) what arrived unacknowledged; acknowledge at once from now on."""
        self.auto_ack = True
        for qos, packet_id in self.unacked:
            self._acknowledge(qos, packet_id)
        self.unacked.clear()

    def take(self) -> list[Delivery]:
        """The deliveries so far, then forget them."""
        received, self.received = self.received, []
        return received


@dataclass
class Net:
    """One scenario run against one target at one protocol version; owns its clients."""

    target: Target
    version: int
    clients: list[ScenarioClient] = field(default_factory=list)

    @property
    def v5(self) -> bool:
        return self.version == MQTT_5

    def client(self, name: str) -> ScenarioClient:
        client = ScenarioClient(self, name)
        self.clients.append(client)
        return client

    async def connected(self, name: str, **kwargs: Any) -> ScenarioClient:
        """A new client, connected (asserting CONNACK success)."""
        client = self.client(name)
        connack = await client.connect(**kwargs)
        assert connack.reason_code == 0, (self.target.name, name, connack)
        return client

    async def settle(self, quiet: float = QUIET) -> None:
        """Two rounds of PINGREQ on every live client, then `quiet` seconds without traffic.

        The first round returns once each broker has handled everything every client sent before it
        (so every PUBLISH has been routed); the second once the deliveries that routing queued to each
        client have been written ahead of its PINGRESP. The quiet period covers what is not ordered by
        either (broker timers, messages released by acknowledgements).
        """
        loop = asyncio.get_running_loop()
        for _ in range(2):
            live = [client for client in self.clients if client.connected]
            results = await asyncio.gather(*(client.ping() for client in live), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException) and not isinstance(result, ConnectionError):
                    raise result
        while True:
            last = max((client.last_activity for client in self.clients), default=0.0)
            wait = last + quiet - loop.time()
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    def close_all(self) -> None:
        for client in self.clients:
            client.abort()


Scenario = Callable[[Net], Awaitable[dict[str, Any]]]


async def run(scenario: Scenario, target: Target, version: int) -> dict[str, Any]:
    net = Net(target, version)
    try:
        return await scenario(net)
    finally:
        net.close_all()


async def run_both(
    scenario: Scenario, instamsg: Target, mosquitto: Target, version: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The scenario's records from InstaMsg and from Mosquitto, run concurrently."""
    first, second = await asyncio.gather(run(scenario, instamsg, version), run(scenario, mosquitto, version))
    return first, second
