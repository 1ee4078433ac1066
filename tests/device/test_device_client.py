"""DeviceClient against a real `instamsg serve`: connect, pub/sub, p2p, reconnect, provisioning."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from instamsg.api import ProvisioningParams
from instamsg.device import (
    BadCredentialsError,
    DeviceClient,
    DeviceConnectionError,
    DeviceMessage,
    NotAuthorizedError,
    ProvisioningKeyRejectedError,
    ReplyTimeoutError,
    UnknownProvisioningIdError,
    client_ssl_context,
    parse_provack,
    provision,
)
from instamsg.mqtt import Provack
from tests.api.support import unique
from tests.device.conftest import Platform
from tests.support.ports import free_port

pytestmark = pytest.mark.xdist_group("device-sdk")

WAIT = 5.0


def device_client(platform: Platform, client_id: str, token: str, **options: object) -> DeviceClient:
    options.setdefault("reconnect_delay", 0.05)
    return DeviceClient("127.0.0.1", platform.mqtt_port, client_id, token, **options)  # type: ignore[arg-type]


async def next_message(device: DeviceClient) -> DeviceMessage:
    async def first() -> DeviceMessage:
        async for message in device.messages():
            return message
        raise AssertionError("messages() ended")

    return await asyncio.wait_for(first(), WAIT)


async def test_publish_and_subscribe_between_two_standard_clients(platform: Platform) -> None:
    tenant = platform.tenant()
    sender = platform.device(tenant, pub_topics=["data/#"])
    receiver = platform.device(tenant, sub_topics=["data/#"])
    async with (
        device_client(platform, sender.id, sender.auth_token) as publisher,
        device_client(platform, receiver.id, receiver.auth_token) as subscriber,
    ):
        assert await subscriber.subscribe("data/+", qos=1) == 1
        await publisher.publish("data/temperature", "21.5", qos=1)
        message = await next_message(subscriber)
        assert (message.topic, message.payload, message.qos) == ("data/temperature", b"21.5", 1)
        assert not message.is_p2p

        await publisher.publish("data/exact", b"\x00\x01", qos=2)
        message = await next_message(subscriber)
        assert (message.topic, message.payload) == ("data/exact", b"\x00\x01")


async def test_rest_publish_reaches_the_device(platform: Platform) -> None:
    tenant = platform.tenant()
    device = platform.device(tenant, sub_topics=["alerts"], pub_topics=["alerts"])
    async with device_client(platform, device.id, device.auth_token) as client:
        await client.subscribe("alerts", qos=1)
        platform.api.publish_message(tenant.id, device.id, "alerts", "from rest", qos=2, id=7)
        message = await next_message(client)
        assert (message.topic, message.text, message.qos) == ("alerts", "from rest", 1)


async def test_wrong_token_is_bad_credentials(platform: Platform) -> None:
    device = platform.device(platform.tenant())
    with pytest.raises(BadCredentialsError) as raised:
        await device_client(platform, device.id, "0" * 32).connect()
    assert raised.value.code == 4


async def test_refused_connection_is_a_device_connection_error() -> None:
    client = DeviceClient("127.0.0.1", free_port(), "00000000-0000-4000-8000-000000000000", "x")
    with pytest.raises(DeviceConnectionError):
        await client.connect()


async def test_p2p_send_waits_for_the_matching_reply(platform: Platform) -> None:
    tenant = platform.tenant()
    asker = platform.device(tenant)
    answerer = platform.device(tenant)
    # C9: p2p needs the peer's UUID in pub_topics; the reply is allowed by the reply window (S15).
    platform.api.update_client(tenant.id, asker.id, pub_topics=[answerer.id])
    async with (
        device_client(platform, asker.id, asker.auth_token) as a,
        device_client(platform, answerer.id, answerer.auth_token) as b,
    ):

        async def serve_one() -> None:
            request = await next_message(b)
            assert request.is_p2p and request.reply_to == asker.id and request.body == "ping?"
            envelope = json.loads(request.payload)
            assert list(envelope) == ["message_id", "reply_to", "body"]
            await b.reply(request, "pong!")

        server = asyncio.create_task(serve_one())
        reply = await a.send(answerer.id, "ping?", timeout=WAIT)
        await server
        assert (reply.body, reply.status, reply.reply_to) == ("pong!", 1, answerer.id)

        async def fail_one() -> None:
            request = await next_message(b)
            await b.fail(request, 42, "no such sensor")

        server = asyncio.create_task(fail_one())
        failure = await a.send(answerer.id, "read sensor 9", timeout=WAIT)
        await server
        assert failure.status == 0 and failure.body == {"error_code": 42, "error_msg": "no such sensor"}


async def test_send_without_a_reply_times_out(platform: Platform) -> None:
    tenant = platform.tenant()
    asker = platform.device(tenant)
    silent = platform.device(tenant)
    platform.api.update_client(tenant.id, asker.id, pub_topics=[silent.id])
    async with device_client(platform, asker.id, asker.auth_token) as a:
        with pytest.raises(ReplyTimeoutError):
            await a.send(silent.id, "anyone?", timeout=0.3)


async def test_reconnects_and_resubscribes_after_a_takeover(platform: Platform) -> None:
    tenant = platform.tenant()
    device = platform.device(tenant, sub_topics=["news"], pub_topics=["news"])
    async with device_client(platform, device.id, device.auth_token) as client:
        await client.subscribe("news", qos=1)
        assert client.connections == 1
        # A second connection with the same UUID takes the first one over (spec §4.4).
        intruder = device_client(platform, device.id, device.auth_token, reconnect=False)
        await intruder.connect()
        await intruder.close()
        for _ in range(100):
            if client.connections >= 2 and client.is_connected:
                break
            await asyncio.sleep(0.05)
        assert client.connections >= 2 and client.is_connected
        platform.api.publish_message(tenant.id, device.id, "news", "after reconnect")
        message = await next_message(client)
        assert message.text == "after reconnect"


async def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(int(WAIT / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_config_push_reaches_the_handler_and_reports_reach_the_server(platform: Platform) -> None:
    tenant = platform.tenant()
    device = platform.device(tenant)
    async with device_client(platform, device.id, device.auth_token) as client:
        pushes: list[dict[str, object]] = []
        client.on_config(pushes.append)
        platform.api.update_client_config(tenant.id, device.id, {"PING_REQ_INTERVAL": 180})
        await wait_until(lambda: bool(pushes))
        assert pushes == [{"key": "PING_REQ_INTERVAL", "type": "1", "val": "180", "desc": ""}]

        await client.report_config({"PING_REQ_INTERVAL": 180})
        await client.report_info({"model": "test-rig"})
        await client.report_network_info({"signal_strength": -71, "imei": "356938035643809"})

        def reported() -> bool:
            state = platform.api.get_client_config(tenant.id, device.id)
            return state.reported.values.get("PING_REQ_INTERVAL") == 180

        await wait_until(reported)
        assert platform.api.get_client_config(tenant.id, device.id).pending == ()
        await wait_until(
            lambda: platform.api.get_client_info(tenant.id, device.id).info.get("model") == "test-rig"
        )
        await wait_until(lambda: len(platform.api.get_client_network_logs(tenant.id, device.id)) == 1)
        network = platform.api.get_client_network_logs(tenant.id, device.id).items[0]
        assert (network.signal_strength, network.imei) == (-71, "356938035643809")


async def test_remote_logging_follows_the_server_command(platform: Platform) -> None:
    tenant = platform.tenant()
    device = platform.device(tenant)
    async with device_client(platform, device.id, device.auth_token) as client:
        logger = logging.getLogger(unique("app"))
        logger.addHandler(client.log_handler())
        logger.setLevel(logging.INFO)
        logger.info("before: not sent")
        platform.api.set_server_logging(tenant.id, device.id, True, duration_seconds=600)
        await wait_until(lambda: client.server_logging)
        logger.warning("pressure %d bar", 7)

        def client_lines() -> list[str]:
            page = platform.api.get_client_logs(tenant.id, device.id, creator="client")
            return [entry.message for entry in page]

        await wait_until(lambda: any("pressure 7 bar" in line for line in client_lines()))
        assert not any("before" in line for line in client_lines())
        warning = next(e for e in platform.api.get_client_logs(tenant.id, device.id, creator="client"))
        assert warning.level == "WARN"

        platform.api.set_server_logging(tenant.id, device.id, False)
        await wait_until(lambda: not client.server_logging)


async def test_integer_one_does_not_enable_logging(platform: Platform) -> None:
    device = platform.device(platform.tenant())
    async with device_client(platform, device.id, device.auth_token) as client:
        client._on_logging_command(b'{"client_id": "watcher", "logging": 1}')
        assert not client.server_logging
        client._on_logging_command(b'{"client_id": "watcher", "logging": "1"}')
        assert client.server_logging


async def test_upload_file_through_the_http_side_channel(platform: Platform) -> None:
    tenant = platform.tenant()
    device = platform.device(tenant)
    async with device_client(
        platform, device.id, device.auth_token, http_url=platform.server.base_url
    ) as client:
        url = await client.upload_file(b"x,y\n1,2\n", "readings.csv")
    assert "/files/" in url and url.endswith(".readings.csv")
    files = platform.api.get_files(tenant.id, device.id)
    assert [(item.filename, item.source, item.size) for item in files] == [("readings.csv", "device", 8)]


def test_provack_rc0_is_uuid_dash_token() -> None:
    uuid = "cbf7d550-7204-11e4-a2ad-543530e3bc65"
    token = "0bd3a1c7817a4a1da772a89fcca48523"
    credentials = parse_provack(Provack(0, f"{uuid}-{token}".encode()))
    assert (credentials.client_id, credentials.auth_token, credentials.certificate) == (uuid, token, None)


def test_provack_rc6_carries_certificate_and_key() -> None:
    payload = (
        '{"client_id": "cbf7d550-7204-11e4-a2ad-543530e3bc65", "auth_token": "t0k", '
        '"secure_ssl_certificate": true, "certificate": "-----BEGIN CERTIFICATE-----\\nA\\n", '
        '"key": "-----BEGIN PRIVATE KEY-----\\nB\\n"}'
    )
    credentials = parse_provack(Provack(6, payload.encode()))
    assert credentials.auth_token == "t0k" and credentials.certificate == "-----BEGIN CERTIFICATE-----\nA\n"
    assert credentials.key == "-----BEGIN PRIVATE KEY-----\nB\n"


@pytest.mark.parametrize(
    ("code", "error_class"), [(2, UnknownProvisioningIdError), (4, ProvisioningKeyRejectedError)]
)
def test_provack_failures_are_exceptions(code: int, error_class: type[Exception]) -> None:
    with pytest.raises(error_class):
        parse_provack(Provack(code, b""))


async def test_provision_against_the_server(platform: Platform) -> None:
    tenant = platform.tenant()
    provisioning_id = unique("imei")
    device = platform.device(
        tenant,
        provisioning_params=ProvisioningParams(provisioning_id=provisioning_id, provisioning_key="KEY01a"),
    )
    credentials = await provision("127.0.0.1", platform.mqtt_port, provisioning_id, "KEY01a", timeout=WAIT)
    assert credentials.client_id == device.id and credentials.auth_token == device.auth_token
    with pytest.raises(ProvisioningKeyRejectedError):
        await provision("127.0.0.1", platform.mqtt_port, provisioning_id, "WRONG1", timeout=WAIT)
    with pytest.raises(UnknownProvisioningIdError):
        await provision("127.0.0.1", platform.mqtt_port, unique("nobody"), "KEY01a", timeout=WAIT)
    async with device_client(platform, credentials.client_id, credentials.auth_token) as client:
        assert client.is_connected


@pytest.mark.parametrize("transport", ["tls", "ws", "wss"])
async def test_other_transports(platform: Platform, transport: str) -> None:
    device = platform.device(platform.tenant(), sub_topics=["t"], pub_topics=["t"])
    listener = {"tls": "mqtts", "ws": "ws", "wss": "wss"}[transport]
    context = client_ssl_context(verify=False) if transport in ("tls", "wss") else None
    client = DeviceClient(
        "127.0.0.1",
        platform.port(listener),
        device.id,
        device.auth_token,
        transport=transport,  # type: ignore[arg-type]
        ssl_context=context,
    )
    async with client:
        await client.subscribe("t", qos=1)
        await client.publish("t", "over " + transport, qos=1)
        message = await next_message(client)
        assert message.text == "over " + transport


async def test_mqtt_5(platform: Platform) -> None:
    device = platform.device(platform.tenant(), sub_topics=["five"], pub_topics=["five"])
    async with device_client(platform, device.id, device.auth_token, protocol_level=5) as client:
        assert await client.subscribe("five", qos=2) == 2
        await client.publish("five", "v5", qos=2)
        assert (await next_message(client)).text == "v5"
    with pytest.raises(BadCredentialsError) as raised:
        await device_client(platform, device.id, "0" * 32, protocol_level=5).connect()
    assert raised.value.code == 0x86


async def test_secure_client_connects_over_tls_with_its_certificate(
    platform: Platform, tmp_path: Path
) -> None:
    tenant = platform.tenant()
    device = platform.device(tenant, secure_cert_enabled=True)
    certificate = platform.api.update_client_certificate(tenant.id, device.id)
    (tmp_path / "client.crt").write_text(certificate.certificate)
    (tmp_path / "client.key").write_text(certificate.key)
    port = platform.port("mqtts")

    def tls_client(with_certificate: bool) -> DeviceClient:
        context = client_ssl_context(
            verify=False,
            certificate_file=str(tmp_path / "client.crt") if with_certificate else None,
            key_file=str(tmp_path / "client.key") if with_certificate else None,
        )
        return DeviceClient(
            "127.0.0.1",
            port,
            device.id,
            device.auth_token,
            transport="tls",
            ssl_context=context,
            reconnect=False,
        )

    async with tls_client(with_certificate=True) as client:
        assert client.is_connected
    # D11: without its certificate a secure client is refused with code 5.
    with pytest.raises(NotAuthorizedError):
        await tls_client(with_certificate=False).connect()


async def test_rest_p2p_message_is_an_envelope_the_device_can_answer(platform: Platform) -> None:
    tenant = platform.tenant()
    device = platform.device(tenant)
    operator = platform.api.create_client(tenant.id, "user", unique("operator"))
    async with device_client(platform, device.id, device.auth_token) as client:
        platform.api.publish_message(tenant.id, operator.id, device.id, "status?", type="p2p", qos=2, id=77)
        request = await next_message(client)
        assert request.is_p2p and request.topic == device.id
        assert (request.message_id, request.reply_to, request.body) == ("77", operator.id, "status?")
        await client.reply(request, "all good")

    def reply_stored() -> bool:
        page = platform.api.get_messages(tenant.id, operator.id, type="p2p")
        return any(item.envelope and item.envelope.get("response_id") == "77" for item in page)

    await wait_until(reply_stored)


async def test_a_closed_client_can_connect_again(platform: Platform) -> None:
    device = platform.device(platform.tenant(), sub_topics=["again"], pub_topics=["again"])
    client = device_client(platform, device.id, device.auth_token)
    await client.connect()
    await client.close()
    assert not client.is_connected
    async with client:
        await client.subscribe("again", qos=1)
        await client.publish("again", "second life", qos=1)
        assert (await next_message(client)).text == "second life"


async def test_provisioning_a_secure_client_returns_its_certificate(platform: Platform) -> None:
    tenant = platform.tenant()
    provisioning_id = unique("mac")
    device = platform.device(
        tenant,
        secure_cert_enabled=True,
        provisioning_params=ProvisioningParams(provisioning_id=provisioning_id, provisioning_key="KEY01a"),
    )
    credentials = await provision("127.0.0.1", platform.mqtt_port, provisioning_id, "KEY01a", timeout=WAIT)
    assert credentials.client_id == device.id
    assert credentials.certificate is not None and credentials.certificate.startswith(
        "-----BEGIN CERTIFICATE-----"
    )
    assert credentials.key is not None and credentials.key.startswith("-----BEGIN PRIVATE KEY-----")


async def test_server_commands_arrive_on_the_own_namespace(platform: Platform) -> None:
    tenant = platform.tenant()
    device = platform.device(tenant)
    async with device_client(platform, device.id, device.auth_token) as client:
        assert platform.api.reboot_client(tenant.id, device.id).sent is True
        assert (await next_message(client)).topic == client.topic("reboot")
        assert platform.api.update_firmware(tenant.id, device.id, "http://x/fw.bin").sent is True
        firmware = await next_message(client)
        assert (firmware.topic, firmware.text) == (client.topic("update_firmware"), "http://x/fw.bin")


async def test_unsubscribe_stops_delivery(platform: Platform) -> None:
    device = platform.device(platform.tenant(), sub_topics=["a", "b"], pub_topics=["a", "b"])
    async with device_client(platform, device.id, device.auth_token) as client:
        await client.subscribe("a", qos=1)
        await client.unsubscribe("a")
        await client.publish("a", "dropped", qos=1)
        await client.subscribe("b", qos=1)
        await client.publish("b", "kept", qos=1)
        # Deliveries keep their order: had "a" still been subscribed, "dropped" would come first.
        assert (await next_message(client)).text == "kept"
