"""Client (synchronous) against a real `instamsg serve`: every operation, errors, token renewal."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from instamsg.api import (
    AccessToken,
    AuthTokenNotRetrievableError,
    Client,
    ClientNotFoundError,
    ClientRecord,
    ConnectionFailedError,
    CreatedClient,
    InstaMsgError,
    InvalidClientError,
    ProvisioningParams,
    Tenant,
    TenantClientQuotaExceededError,
    TenantNotFoundError,
    ValidationFailedError,
)
from tests.api.support import UNKNOWN_UUID, RecordingSyncTransport, RunningServer, unique
from tests.support.ports import free_port

# One server per module: keep the module on one xdist worker (make test uses --dist loadgroup).
pytestmark = pytest.mark.xdist_group("sdk-sync")


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def transport() -> RecordingSyncTransport:
    return RecordingSyncTransport()


@pytest.fixture
def api(running: RunningServer, transport: RecordingSyncTransport) -> Iterator[Client]:
    with Client(running.url, running.client_key, running.client_secret, transport=transport) as client:
        yield client


def test_the_sync_client_is_generated_from_the_async_one() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "unasync.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_unasync_drops_awaitable_and_the_import_it_leaves_unused() -> None:
    spec = importlib.util.spec_from_file_location("unasync", ROOT / "scripts" / "unasync.py")
    assert spec is not None and spec.loader is not None
    unasync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(unasync)
    source = (
        "from collections.abc import AsyncIterator, Awaitable, Callable\n\n\n"
        "async def follow(fetch: Callable[[str], Awaitable[dict[str, list[int]]]]) -> AsyncIterator[int]:\n"
        "    yield (await fetch('x'))['x'][0]\n"
    )
    generated = unasync.ruff_format(unasync.unasync(source))
    assert "from collections.abc import Callable, Iterator\n" in generated
    assert "def follow(fetch: Callable[[str], dict[str, list[int]]]) -> Iterator[int]:" in generated
    assert "Awaitable" not in generated


def test_every_operation(api: Client, transport: RecordingSyncTransport) -> None:
    token = api.get_access_token()
    assert isinstance(token, AccessToken) and token.expires_in > 0

    tenant = api.create_tenant(unique("sync"), max_clients=3, max_messages=100, description="d")
    assert isinstance(tenant, Tenant) and tenant.description == "d" and tenant.active
    assert api.get_single_tenant(tenant.id) == tenant
    assert tenant.id in {found.id for found in api.get_tenants(sort_by="name")}
    updated = api.update_tenant(tenant.id, name=unique("renamed"), max_messages=200)
    assert updated.max_messages == 200 and updated.name != tenant.name

    device = api.create_client(
        tenant.id,
        "device",
        "pump",
        pub_topics=["pub1"],
        provisioning_params=ProvisioningParams(provisioning_id=unique("serial"), gsm_send_sms="0"),
    )
    assert isinstance(device, CreatedClient) and device.state == "unprovisioned"
    user = api.create_client(tenant.id, "user", "dashboard", description="ops")
    assert [found.id for found in api.get_clients(tenant.id)] == [device.id, user.id]
    assert {device.id, user.id} <= {found.id for found in api.get_clients()}
    single = api.get_single_client(tenant.id, user.id)
    assert isinstance(single, ClientRecord) and single.description == "ops"
    blocked = api.update_client(tenant.id, device.id, blocked=True)
    assert blocked.state == "blocked"

    assert api.get_client_auth_token(tenant.id, user.id) == user.auth_token
    reset = api.update_client_auth_token(tenant.id, user.id)
    assert reset != user.auth_token
    with pytest.raises(AuthTokenNotRetrievableError):
        api.get_client_auth_token(tenant.id, device.id)

    api.delete_client(tenant.id, user.id)
    with pytest.raises(ClientNotFoundError):
        api.get_single_client(tenant.id, user.id)
    api.delete_tenant(tenant.id)
    with pytest.raises(TenantNotFoundError):
        api.get_single_tenant(tenant.id)

    api.invalidate_access_token()
    assert api.get_tenants(active=True) is not None  # a new token is fetched
    assert transport.count("/oauth2/token") == 2


def test_token_revoked_elsewhere_is_renewed(
    api: Client, running: RunningServer, transport: RecordingSyncTransport
) -> None:
    token = api.get_access_token().access_token
    with Client(running.url, running.client_key, running.client_secret) as other:
        other.invalidate_access_token(token)
    api.get_tenants()
    assert [exchange.status for exchange in transport.exchanges[-3:]] == [401, 200, 200]


def test_token_is_renewed_before_it_expires(
    api: Client, transport: RecordingSyncTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    monkeypatch.setattr("instamsg.api._auth.monotonic", lambda: now[0])
    api.get_tenants()
    now[0] += 3599
    api.get_tenants()
    assert transport.count("/oauth2/token") == 2
    assert all(exchange.status == 200 for exchange in transport.exchanges)


def test_errors(api: Client, running: RunningServer) -> None:
    tenant = api.create_tenant(unique("quota"), max_clients=1, max_messages=1)
    api.create_client(tenant.id, "device", "one")
    with pytest.raises(TenantClientQuotaExceededError) as raised:
        api.create_client(tenant.id, "device", "two")
    assert raised.value.status == 409
    with pytest.raises(ClientNotFoundError):
        api.get_single_client(tenant.id, UNKNOWN_UUID)
    with pytest.raises(TenantNotFoundError):
        api.get_single_tenant(UNKNOWN_UUID)
    with pytest.raises(ValidationFailedError):
        api.update_tenant(tenant.id, max_messages=-5)
    with Client(running.url, running.client_key, "wrong") as wrong, pytest.raises(InvalidClientError):
        wrong.get_tenants()


def test_connection_refused_is_connection_failed() -> None:
    with (
        Client(f"http://127.0.0.1:{free_port()}", "key", "secret") as api,
        pytest.raises(ConnectionFailedError, match="connection refused") as raised,
    ):
        api.get_single_tenant(UNKNOWN_UUID)
    assert isinstance(raised.value, InstaMsgError)


def test_sync_iter_messages_follows_the_cursor(api: Client) -> None:
    tenant = api.create_tenant(unique("tenant"), max_clients=5, max_messages=100)
    device = api.create_client(tenant.id, "device", "pump", pub_topics=["pub1"])
    published = [api.publish_message(tenant.id, device.id, "pub1", f"m{n}").id for n in range(3)]
    assert [item.id for item in api.iter_messages(tenant.id, device.id, page_size=1)] == published[::-1]
    released = api.release_message(tenant.id, device.id, published[0])
    assert len(released.releases) == 1
