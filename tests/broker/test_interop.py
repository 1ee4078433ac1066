"""Real clients against the broker: paho-mqtt (3.1.1, 5.0) and aiomqtt, over TCP, TLS and WebSocket."""

from __future__ import annotations

import asyncio
import queue
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from instamsg.broker import BrokerNode, BrokerSettings, ClientRecord
from tests.broker.conftest import make_directory
from tests.broker.support import ALICE, BOB, CAROL, TENANT_A, Identity
from tests.broker.tls_support import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def tls_node(pki: Pki) -> AsyncIterator[BrokerNode]:
    directory = make_directory()
    directory.upsert_client(
        ClientRecord(BOB.uuid, TENANT_A, BOB.token, ("#",), ("#",), secure_cert_enabled=True)
    )
    settings = BrokerSettings(
        mqtt_port=0,
        mqtts_port=0,
        ws_port=0,
        wss_port=0,
        ssl_context=pki.server_context(),
        wss_ssl_context=pki.server_context(request_client_certificates=False),
        timer_resolution=0.1,
    )
    node = BrokerNode(settings, directory)
    await node.start()
    yield node
    await node.stop()


class PahoClient:
    """paho in its own network thread; messages and events land in thread-safe queues."""

    def __init__(
        self,
        identity: Identity,
        protocol: int,
        port: int,
        tls: ssl.SSLContext | None = None,
        transport: str = "tcp",
        clean: bool = True,
    ) -> None:
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        kwargs: dict[str, Any] = {}
        if protocol != paho.MQTTv5:
            kwargs["clean_session"] = clean
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id="paho-" + identity.uuid[-4:],
            protocol=protocol,
            transport=transport,
            **kwargs,
        )
        self.client.username_pw_set(identity.uuid, identity.token)
        if tls is not None:
            self.client.tls_set_context(tls)
        self.client.on_connect = lambda client, userdata, flags, reason, properties: self.events.put(
            ("connect", reason)
        )
        self.client.on_subscribe = lambda client, userdata, mid, reasons, properties: self.events.put(
            ("subscribe", reasons)
        )
        self.client.on_publish = lambda client, userdata, mid, reason, properties: self.events.put(
            ("publish", reason)
        )
        self.client.on_message = lambda client, userdata, message: self.messages.put(message)
        self.port = port

    async def start(self) -> Any:
        self.client.connect_async("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        return await self.event("connect")

    async def event(self, kind: str) -> Any:
        name, value = await asyncio.to_thread(self.events.get, True, 5)
        assert name == kind, (name, value)
        return value

    async def message(self) -> paho.MQTTMessage:
        return await asyncio.to_thread(self.messages.get, True, 5)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.parametrize("protocol", [paho.MQTTv311, paho.MQTTv5], ids=["3.1.1", "5.0"])
async def test_paho_pubsub_all_qos(node: BrokerNode, protocol: int) -> None:
    port = node.ports["mqtt"]
    assert port is not None
    subscriber = PahoClient(CAROL, protocol, port)
    publisher = PahoClient(ALICE, protocol, port)
    try:
        assert not (await subscriber.start()).is_failure
        assert not (await publisher.start()).is_failure
        subscriber.client.subscribe("paho/#", qos=2)
        reasons = await subscriber.event("subscribe")
        assert [reason.value for reason in reasons] == [2]
        for qos in (0, 1, 2):
            properties = None
            if protocol == paho.MQTTv5:
                properties = Properties(PacketTypes.PUBLISH)
                properties.UserProperty = [("k", str(qos))]
            publisher.client.publish(f"paho/{qos}", f"m{qos}".encode(), qos=qos, properties=properties)
            message = await subscriber.message()
            assert (message.topic, message.payload, message.qos) == (f"paho/{qos}", f"m{qos}".encode(), qos)
            if protocol == paho.MQTTv5:
                assert message.properties.UserProperty == [("k", str(qos))]
    finally:
        subscriber.stop()
        publisher.stop()


async def test_paho_bad_credentials_refused(node: BrokerNode) -> None:
    port = node.ports["mqtt"]
    assert port is not None
    client = PahoClient(Identity(ALICE.uuid, "wrong"), paho.MQTTv5, port)
    try:
        reason = await client.start()
        assert reason.is_failure and reason.value == 0x86
    finally:
        client.stop()


async def test_paho_persistent_session(node: BrokerNode) -> None:
    port = node.ports["mqtt"]
    assert port is not None
    subscriber = PahoClient(CAROL, paho.MQTTv311, port, clean=False)
    await subscriber.start()
    subscriber.client.subscribe("persist", qos=1)
    await subscriber.event("subscribe")
    subscriber.stop()
    node.deliver(TENANT_A, None, "persist", b"while-away", 1)
    again = PahoClient(CAROL, paho.MQTTv311, port, clean=False)
    try:
        await again.start()
        message = await again.message()
        assert message.payload == b"while-away"
    finally:
        again.stop()


async def test_aiomqtt_v5_and_v311(node: BrokerNode) -> None:
    port = node.ports["mqtt"]
    assert port is not None
    for version in (aiomqtt.ProtocolVersion.V5, aiomqtt.ProtocolVersion.V311):
        async with aiomqtt.Client(
            "127.0.0.1", port, username=CAROL.uuid, password=CAROL.token, protocol=version, identifier="aio"
        ) as client:
            await client.subscribe("aio/+", qos=1)
            await client.publish("aio/x", b"hello", qos=1)
            async for message in client.messages:
                assert message.payload == b"hello" and str(message.topic) == "aio/x" and message.qos == 1
                break


async def test_aiomqtt_over_tls(tls_node: BrokerNode, pki: Pki) -> None:
    port = tls_node.ports["mqtts"]
    assert port is not None
    async with aiomqtt.Client(
        "localhost",
        port,
        username=ALICE.uuid,
        password=ALICE.token,
        tls_context=pki.client_context(),
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as client:
        await client.subscribe("tls/x", qos=2)
        await client.publish("tls/x", b"secret", qos=2)
        async for message in client.messages:
            assert message.payload == b"secret"
            break


async def test_paho_over_tls_with_client_certificates(tls_node: BrokerNode, pki: Pki) -> None:
    port = tls_node.ports["mqtts"]
    assert port is not None
    # BOB is secure_cert_enabled: without a certificate he is refused (spec §4.2 step 8) ...
    without = PahoClient(BOB, paho.MQTTv311, port, tls=pki.client_context())
    try:
        refusal = await without.start()  # paho maps the 3.1.1 return code 5 onto 0x87
        assert refusal.is_failure and refusal.value == 0x87
    finally:
        without.stop()
    # ... with a certificate whose CN is his UUID he is in; the CN is exposed to the channel.
    with_certificate = PahoClient(
        BOB, paho.MQTTv311, port, tls=pki.client_context(pki.client_certificate(BOB.uuid))
    )
    try:
        assert not (await with_certificate.start()).is_failure
        await asyncio.sleep(0.05)
        assert tls_node.channels[BOB.uuid].connection.peer_common_name == BOB.uuid
    finally:
        with_certificate.stop()
    # A certificate naming another client is refused for anyone (S10).
    mismatched = PahoClient(
        ALICE, paho.MQTTv311, port, tls=pki.client_context(pki.client_certificate(CAROL.uuid))
    )
    try:
        refusal = await mismatched.start()
        assert refusal.is_failure and refusal.value == 0x87
    finally:
        mismatched.stop()


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_paho_over_websocket(tls_node: BrokerNode, pki: Pki, secure: bool) -> None:
    port = tls_node.ports["wss" if secure else "ws"]
    assert port is not None
    context = pki.client_context() if secure else None
    subscriber = PahoClient(CAROL, paho.MQTTv311, port, tls=context, transport="websockets")
    publisher = PahoClient(ALICE, paho.MQTTv5, port, tls=context, transport="websockets")
    try:
        assert not (await subscriber.start()).is_failure
        assert not (await publisher.start()).is_failure
        subscriber.client.subscribe("ws/#", qos=1)
        await subscriber.event("subscribe")
        for index in range(3):
            publisher.client.publish(f"ws/{index}", b"x" * (index * 300), qos=1)
        for index in range(3):
            message = await subscriber.message()
            assert message.topic == f"ws/{index}" and len(message.payload) == index * 300
    finally:
        subscriber.stop()
        publisher.stop()
