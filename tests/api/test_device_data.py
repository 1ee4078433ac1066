"""AsyncClient operations beyond tenants and clients against a real `instamsg serve`: messages,
files, config, device data and commands (spec §2.3-§2.7), and the exception of every error code."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from instamsg.api import (
    ApiError,
    AsyncClient,
    Certificate,
    ClientInfo,
    CommandResult,
    ConfigNotObjectError,
    ConfigState,
    CreatedClient,
    FileTooLargeError,
    InvalidCursorError,
    InvalidQosError,
    LogEntry,
    Message,
    MessageNotFoundError,
    Metrics,
    MissingFileFieldError,
    Page,
    ReservedTopicError,
    SecureCertNotEnabledError,
    ServerLogging,
    StoredFile,
    StoredFileNotFoundError,
    Tenant,
    TenantMessageQuotaExceededError,
    TopicNotAllowedError,
    UnknownPeerError,
    UnprocessableError,
    ValidationFailedError,
)
from instamsg.api._errors import error_from_response
from tests.api.support import UNKNOWN_UUID, RunningServer, unique

pytestmark = pytest.mark.xdist_group("sdk-device-data")


@pytest.fixture
async def api(running: RunningServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(running.url, running.client_key, running.client_secret) as client:
        yield client


async def make_device(api: AsyncClient, secure_cert_enabled: bool = False) -> tuple[Tenant, CreatedClient]:
    tenant = await api.create_tenant(unique("tenant"), max_clients=10, max_messages=1000)
    device = await api.create_client(
        tenant.id,
        "device",
        unique("pump"),
        sub_topics=["pub1"],
        pub_topics=["pub1"],
        secure_cert_enabled=secure_cert_enabled,
    )
    return tenant, device


# Messages (spec §2.5.5, §2.5.6)


async def test_publish_message_returns_the_typed_stored_message(api: AsyncClient) -> None:
    tenant, device = await make_device(api)
    message = await api.publish_message(tenant.id, device.id, "pub1", "hello", qos=3, id=17)
    assert isinstance(message, Message)
    assert (message.topic, message.payload, message.qos, message.client_message_id) == (
        "pub1",
        "hello",
        3,
        17,
    )
    assert (message.type, message.source, message.direction, message.saved) == ("pub", "rest", "sent", True)
    assert message.client_id == device.id and message.tenant_id == tenant.id
    assert message.releases == () and message.to_json()["id"] == message.id

    again = await api.get_message(tenant.id, device.id, message.id)
    assert again == message


async def test_rest_qos_is_the_one_to_three_scale(api: AsyncClient) -> None:
    tenant, device = await make_device(api)
    with pytest.raises(InvalidQosError) as raised:
        await api.publish_message(tenant.id, device.id, "pub1", "x", qos=0)  # type: ignore[arg-type]
    assert raised.value.status == 400
    with pytest.raises(ValidationFailedError):
        await api.publish_message(tenant.id, device.id, "pub1", "x", qos=2)  # id is required for 2 and 3


async def test_publish_outside_pub_topics_and_on_reserved_topics_are_403(api: AsyncClient) -> None:
    tenant, device = await make_device(api)
    with pytest.raises(TopicNotAllowedError):
        await api.publish_message(tenant.id, device.id, "elsewhere", "x")
    with pytest.raises(ReservedTopicError):
        await api.publish_message(tenant.id, device.id, f"instamsg/clients/{device.id}/reboot", "x")


async def test_get_messages_pages_and_iter_messages_follows_the_cursor(api: AsyncClient) -> None:
    tenant, device = await make_device(api)
    published = [await api.publish_message(tenant.id, device.id, "pub1", f"m{n}") for n in range(5)]

    first = await api.get_messages(tenant.id, device.id, limit=2)
    assert isinstance(first, Page) and len(first) == 2 and first.next_cursor is not None
    assert [item.payload for item in first] == ["m4", "m3"]  # newest first

    every = [item async for item in api.iter_messages(tenant.id, device.id, page_size=2)]
    assert [item.id for item in every] == [message.id for message in reversed(published)]
    oldest_first = [
        item.payload async for item in api.iter_messages(tenant.id, device.id, sort_order="asc", page_size=3)
    ]
    assert oldest_first == ["m0", "m1", "m2", "m3", "m4"]


async def test_get_messages_time_bounds_accept_datetimes(api: AsyncClient) -> None:
    tenant, device = await make_device(api)
    message = await api.publish_message(tenant.id, device.id, "pub1", "now")
    future = datetime.now(UTC) + timedelta(days=1)
    assert len(await api.get_messages(tenant.id, device.id, start=future)) == 0
    page = await api.get_messages(tenant.id, device.id, end=future, start=message.created_at)
    assert [item.id for item in page] == [message.id]


async def test_release_message_records_the_release(api: AsyncClient) -> None:
    tenant, device = await make_device(api)
    message = await api.publish_message(tenant.id, device.id, "pub1", "again")
    released = await api.release_message(tenant.id, device.id, message.id)
    assert released.id == message.id and len(released.releases) == 1
    with pytest.raises(MessageNotFoundError):
        await api.release_message(tenant.id, device.id, UNKNOWN_UUID)
    unsaved = await api.publish_message(tenant.id, device.id, "pub1", "gone", save=False)
    with pytest.raises(MessageNotFoundError):
        await api.get_message(tenant.id, device.id, unsaved.id)


# Files, configuration, device data and commands


async def test_files_upload_list_download_delete(api: AsyncClient, tmp_path: Path) -> None:
    tenant, device = await make_device(api)
    content = b"a,b\n1,2\n" * 1000
    stored = await api.upload_file(tenant.id, device.id, "report.csv", content)
    assert isinstance(stored, StoredFile)
    assert (stored.filename, stored.size, stored.source) == ("report.csv", len(content), "api")
    assert [item.filename for item in await api.get_files(tenant.id, device.id)] == ["report.csv"]

    target = tmp_path / "copy.csv"
    seen: list[int] = []
    count = await api.download_file(
        tenant.id, device.id, "report.csv", target, progress=lambda done, total: seen.append(done)
    )
    assert count == len(content) and target.read_bytes() == content and seen[-1] == len(content)
    buffer = io.BytesIO()
    await api.download_file(tenant.id, device.id, "report.csv", buffer)
    assert buffer.getvalue() == content

    source = tmp_path / "from-disk.bin"
    source.write_bytes(b"\x00\xff" * 10)
    from_path = await api.upload_file(tenant.id, device.id, "from-disk.bin", source)
    with source.open("rb") as stream:
        from_stream = await api.upload_file(tenant.id, device.id, "from-stream.bin", stream)
    assert from_path.size == from_stream.size == 20
    await api.delete_file(tenant.id, device.id, "from-disk.bin")
    await api.delete_file(tenant.id, device.id, "from-stream.bin")

    await api.delete_file(tenant.id, device.id, "report.csv")
    assert await api.get_files(tenant.id, device.id) == []
    with pytest.raises(StoredFileNotFoundError):
        await api.download_file(tenant.id, device.id, "report.csv", io.BytesIO())


async def test_config_update_get_delete(api: AsyncClient) -> None:
    tenant, device = await make_device(api)
    state = await api.update_client_config(tenant.id, device.id, {"PING_REQ_INTERVAL": 120})
    assert isinstance(state, ConfigState)
    assert state.desired.values == {"PING_REQ_INTERVAL": 120} and state.config["PING_REQ_INTERVAL"] == 120
    assert state.pending == ("PING_REQ_INTERVAL",)
    assert state.sent is False  # the device is offline: the push waits for its next connect
    assert (await api.get_client_config(tenant.id, device.id)).desired.values == {"PING_REQ_INTERVAL": 120}
    cleared = await api.delete_client_config(tenant.id, device.id)
    assert cleared.desired.values == {}


async def test_info_sessions_network_logs_metrics_and_logs_of_a_new_device(api: AsyncClient) -> None:
    tenant, device = await make_device(api)
    info = await api.get_client_info(tenant.id, device.id)
    assert isinstance(info, ClientInfo) and info.client_id == device.id
    assert len(await api.get_client_sessions(tenant.id, device.id)) == 0
    assert [item async for item in api.iter_client_network_logs(tenant.id, device.id)] == []
    metrics = await api.get_client_metrics(tenant.id, device.id, "day")
    assert isinstance(metrics, Metrics) and len(metrics.buckets) == 24
    assert metrics.totals["messages_sent"] == 0
    logs = await api.get_client_logs(tenant.id, device.id)
    assert all(isinstance(entry, LogEntry) for entry in logs)


async def test_reset_certificate_needs_secure_cert_enabled(api: AsyncClient) -> None:
    tenant, device = await make_device(api)
    with pytest.raises(SecureCertNotEnabledError):
        await api.update_client_certificate(tenant.id, device.id)
    _, secure = await make_device(api, secure_cert_enabled=True)
    certificate = await api.update_client_certificate(secure.tenant_id, secure.id)
    assert isinstance(certificate, Certificate)
    assert certificate.certificate.startswith("-----BEGIN CERTIFICATE-----")
    assert certificate.key.startswith("-----BEGIN PRIVATE KEY-----")


async def test_commands_to_an_offline_device_are_not_sent(api: AsyncClient) -> None:
    tenant, device = await make_device(api)
    result = await api.reboot_client(tenant.id, device.id)
    assert isinstance(result, CommandResult) and result.sent is False
    assert (await api.update_firmware(tenant.id, device.id, "v2")).sent is False
    assert (await api.control_action(tenant.id, device.id, {"relay": "on"})).sent is False


async def test_server_logging_on_and_off(api: AsyncClient) -> None:
    tenant, device = await make_device(api)
    enabled = await api.set_server_logging(tenant.id, device.id, True, duration_seconds=600)
    assert isinstance(enabled, ServerLogging) and enabled.enabled and enabled.until is not None
    disabled = await api.set_server_logging(tenant.id, device.id, False)
    assert not disabled.enabled


@pytest.mark.parametrize(
    ("status", "code", "error_class"),
    [
        (400, "invalid_cursor", InvalidCursorError),
        (400, "missing_file_field", MissingFileFieldError),
        (400, "invalid_qos", InvalidQosError),
        (403, "topic_not_allowed", TopicNotAllowedError),
        (403, "reserved_topic", ReservedTopicError),
        (404, "message_not_found", MessageNotFoundError),
        (404, "file_not_found", StoredFileNotFoundError),
        (409, "secure_cert_not_enabled", SecureCertNotEnabledError),
        (413, "file_too_large", FileTooLargeError),
        (422, "unknown_peer", UnknownPeerError),
        (422, "config_not_object", ConfigNotObjectError),
        (422, "some_new_code", UnprocessableError),
        (429, "tenant_message_quota_exceeded", TenantMessageQuotaExceededError),
    ],
)
def test_each_error_code_has_its_exception(status: int, code: str, error_class: type[ApiError]) -> None:
    response = httpx.Response(
        status,
        json={"error": {"code": code, "message": "m", "details": {}}},
        request=httpx.Request("GET", "http://x"),
    )
    error = error_from_response(response)
    assert type(error) is error_class and error.code == code and error.status == status


async def test_iter_messages_with_a_cursor_of_other_filters_is_invalid_cursor(api: AsyncClient) -> None:
    tenant, device = await make_device(api)
    for n in range(2):
        await api.publish_message(tenant.id, device.id, "pub1", f"m{n}")
    page = await api.get_messages(tenant.id, device.id, limit=1)
    assert page.next_cursor is not None
    with pytest.raises(InvalidCursorError):
        await api.get_messages(tenant.id, device.id, limit=1, type="p2p", cursor=page.next_cursor)
