"""Server commands and reply correlation (spec §7.3, §7.4, S14) and file commands (§10.1), against a
real broker and byte-level devices."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from instamsg.broker import ClientRecord, Directory, TenantRecord
from instamsg.broker.message import Message
from instamsg.protocol.commands import CommandTimeout, ServerCommands
from instamsg.protocol.files import FileCommandSender
from instamsg.protocol.plugin import DeviceProtocol
from instamsg.protocol.routing import install_routing
from instamsg.protocol.topics import TopicKind
from tests.support.devices import LegacyDevice, port_of, protocol_node

DEVICE = ("2c0a5d3e-1f6b-4c8e-9a7d-3b5e6f7a8b9c", "device-token")
OTHER = ("7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6", "other-token")


@dataclass
class Setup:
    commands: ServerCommands
    files: FileCommandSender
    port: int


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    directory = Directory()
    directory.load(
        [TenantRecord("tenant-1", active=True, max_messages=1000, messages_used=0)],
        [ClientRecord(uuid, "tenant-1", token, (), ()) for uuid, token in (DEVICE, OTHER)],
    )
    holder: list[ServerCommands] = []

    def install(devices: DeviceProtocol) -> None:
        install_routing(devices, 3600.0)  # the ACL of reserved topics (devices may publish replies)
        commands = ServerCommands(devices, timeout=0.5)
        commands.install()
        holder.append(commands)

    async with protocol_node(directory, install=[install]) as (node, _):
        yield Setup(holder[0], FileCommandSender(holder[0]), port_of(node, "tcp"))


async def connect(setup: Setup, identity: tuple[str, str] = DEVICE) -> LegacyDevice:
    device = await LegacyDevice.connect(
        "127.0.0.1", setup.port, uuid=identity[0], token=identity[1], dialect="c"
    )
    await device.subscribe(f"instamsg/clients/{identity[0]}/files", 1)
    return device


async def test_s14_command_carries_reply_to_and_a_short_id_and_the_reply_resolves_it(setup: Setup) -> None:
    device = await connect(setup)
    uuid = DEVICE[0]
    try:
        pending = asyncio.ensure_future(setup.files.send(uuid, "GET", "a.txt"))
        command = await device.receive()
        assert command.topic == f"instamsg/clients/{uuid}/files"
        assert command.qos == 1
        assert (
            command.payload
            == (
                f'{{"message_id": "1", "reply_to": "instamsg/clients/{uuid}/reply", '
                f'"method": "GET", "filename": "a.txt"}}'
            ).encode()
        )
        # C replies status 0 to GET+filename even after uploading (Q17): the reply is advisory.
        await device.publish(f"instamsg/clients/{uuid}/reply", b'{"response_id": "1", "status": 0}', 1)
        reply = await asyncio.wait_for(pending, 5)
        assert reply is not None and not reply.succeeded

        second = asyncio.ensure_future(setup.files.file_command(uuid, "DELETE", "a.txt"))
        command = await device.receive()
        assert b'"message_id": "2"' in command.payload
        await device.publish(f"instamsg/clients/{uuid}/reply", b'{"response_id": 2, "status": 1}', 1)
        assert await asyncio.wait_for(second, 5) is True
    finally:
        await device.close()


async def test_q21_unquoted_failure_reply_is_parsed_leniently(setup: Setup) -> None:
    device = await connect(setup)
    uuid = DEVICE[0]
    try:
        pending = asyncio.ensure_future(
            setup.files.file_command(uuid, "POST", "f.bin", "http://h/files/x.f.bin")
        )
        await device.receive()
        await device.publish(
            f"instamsg/clients/{uuid}/reply",
            b'{"response_id": "1", "status": 0, "body": {"error_code": 2, "error_msg": disk full}}',
            1,
        )
        assert await asyncio.wait_for(pending, 5) is False
    finally:
        await device.close()


async def test_replies_are_matched_by_the_publishing_client(setup: Setup) -> None:
    device = await connect(setup)
    other = await connect(setup, OTHER)
    try:
        pending = asyncio.ensure_future(setup.files.send(DEVICE[0], "GET"))
        await device.receive()
        # Another client answering with the same response_id on its own reply topic resolves nothing.
        await other.publish(f"instamsg/clients/{OTHER[0]}/reply", b'{"response_id": "1", "status": 1}', 1)
        with pytest.raises(CommandTimeout):
            await asyncio.wait_for(pending, 5)
    finally:
        await device.close()
        await other.close()


async def test_timeout_then_late_reply_is_ignored(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    device = await connect(setup)
    uuid = DEVICE[0]
    try:
        assert await setup.files.file_command(uuid, "DELETE", "x") is False  # no reply within 0.5 s
        await device.receive()
        with caplog.at_level("INFO", logger="instamsg.protocol.commands"):
            await device.publish(f"instamsg/clients/{uuid}/reply", b'{"response_id": "1", "status": 1}', 1)
            for _ in range(100):
                if "command_reply_late_or_unknown" in caplog.text:
                    break
                await asyncio.sleep(0.02)
        assert "command_reply_late_or_unknown" in caplog.text
        # The reply is consumed by the server, never delivered back to anyone.
        await device.expect_no_publish(0.2)
    finally:
        await device.close()


async def test_malformed_response_ids_are_unknown_replies_not_handler_failures(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    device = await connect(setup)
    uuid = DEVICE[0]
    try:
        with caplog.at_level("INFO"):
            # "²" passes str.isdigit; 5000 digits exceed int()'s limit: both made int() raise.
            for response_id in ("\u00b2", "9" * 5000):
                reply = b'{"response_id": "%s", "status": 1}' % response_id.encode()
                await device.publish(f"instamsg/clients/{uuid}/reply", reply, 1)
            for _ in range(100):  # bounded wait for both replies to be handled
                if caplog.text.count("command_reply_late_or_unknown") == 2:
                    break
                await asyncio.sleep(0.02)
        assert caplog.text.count("command_reply_late_or_unknown") == 2
        assert "device_handler_failed" not in caplog.text
    finally:
        await device.close()


async def test_a_failing_device_handler_is_logged_throttled_per_kind_and_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    directory = Directory()
    directory.load(
        [TenantRecord("tenant-1", active=True, max_messages=1000, messages_used=0)],
        [ClientRecord(DEVICE[0], "tenant-1", DEVICE[1], (), ())],
    )
    calls: list[bytes] = []

    def failing(channel: object, special: object, message: Message) -> None:
        calls.append(message.payload)
        raise ValueError("device-triggered failure")

    def install(devices: DeviceProtocol) -> None:
        install_routing(devices, 3600.0)
        devices.on_device_message(TopicKind.REPLY, failing)

    async with protocol_node(directory, install=[install]) as (node, _):
        device = await LegacyDevice.connect(
            "127.0.0.1", port_of(node, "tcp"), uuid=DEVICE[0], token=DEVICE[1], dialect="c"
        )
        try:
            with caplog.at_level("DEBUG", logger="instamsg.protocol.plugin"):
                for index in range(3):
                    await device.publish(f"instamsg/clients/{DEVICE[0]}/reply", b"x%d" % index, 1)
                for _ in range(100):  # bounded wait for the three messages
                    if len(calls) == 3:
                        break
                    await asyncio.sleep(0.02)
            assert len(calls) == 3
            failures = [record for record in caplog.records if "device_handler_failed" in record.getMessage()]
            warnings = [record for record in failures if record.levelname == "WARNING"]
            assert len(warnings) == 1 and "device-triggered failure" in warnings[0].getMessage()
            assert all(record.levelname in ("WARNING", "DEBUG") for record in failures)
        finally:
            await device.close()


async def test_offline_client_gets_nothing_and_none(setup: Setup) -> None:
    assert await setup.files.file_command(DEVICE[0], "GET") is None
    assert await setup.files.list_device_files(DEVICE[0]) is None


async def test_get_without_filename_lists_the_device_files(setup: Setup) -> None:
    device = await connect(setup)
    uuid = DEVICE[0]
    try:
        pending = asyncio.ensure_future(setup.files.list_device_files(uuid))
        command = await device.receive()
        assert (
            command.payload
            == (
                f'{{"message_id": "1", "reply_to": "instamsg/clients/{uuid}/reply", "method": "GET"}}'
            ).encode()
        )
        await device.publish(
            f"instamsg/clients/{uuid}/reply", b'{"response_id": "1", "status": 1, "files": {"a.txt": 12}}', 1
        )
        assert await asyncio.wait_for(pending, 5) == {"a.txt": 12}
    finally:
        await device.close()
