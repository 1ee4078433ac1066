"""getClientInfo, getClientNetworkLogs and the config operations over REST (spec §2.4.5, §2.4.6, §8.4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from instamsg.protocol.payloads import normalise_device_report, parse_config_report, parse_lenient
from instamsg.protocol.telemetry import detect_library, network_log_row
from instamsg.rest.dependencies import Services
from instamsg.services.apps import AppService
from instamsg.services.clients import ClientService
from instamsg.services.configs import ConfigService
from instamsg.services.messages import MessageService
from instamsg.services.ports import OfflineDelivery, OfflineRegistry
from instamsg.services.telemetry import TelemetryService
from instamsg.services.tenants import TenantService
from instamsg.store.store import Store
from instamsg.store.telemetry import ConnectionFacts, TelemetryWriter
from tests.rest.helpers import TIMESTAMP, UNKNOWN_UUID, assert_error, create_client, create_tenant

BASE_TIME = datetime(2016, 5, 28, 0, 0, 0, tzinfo=UTC)


@pytest.fixture
def services(store: Store) -> Services:
    """The shared fixture plus the device-data services (this module's subject)."""
    registry = OfflineRegistry()
    return Services(
        apps=AppService(store),
        tenants=TenantService(store, registry),
        clients=ClientService(store, registry),
        messages=MessageService(store, OfflineDelivery(), max_payload_bytes=4096),
        telemetry=TelemetryService(store, registry),
        configs=ConfigService(store),
    )


async def _device(api: httpx.AsyncClient, auth: dict[str, str]) -> tuple[str, str]:
    tenant = await create_tenant(api, auth)
    made = await create_client(api, auth, tenant["id"])
    return tenant["id"], made["id"]


async def _store_network_logs(store: Store, tenant_id: str, client_id: str, payloads: list[str]) -> None:
    """One network report per payload, one second apart from BASE_TIME, as the device handler stores them."""
    writer = TelemetryWriter(store, detect_library=detect_library)
    for index, payload in enumerate(payloads):
        report = normalise_device_report(parse_lenient(payload))
        writer.append_network(
            network_log_row(
                client_id,
                tenant_id,
                f"instamsg/clients/{client_id}/network",
                report,
                BASE_TIME + timedelta(seconds=index),
            )
        )
    await writer.close()


# ------------------------------------------------------------------------------------------------ info


async def test_info_of_a_client_that_never_reported(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    tenant_id, client_id = await _device(api, auth)
    response = await api.get(f"/api/v1/tenants/{tenant_id}/clients/{client_id}/info", headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "client_id",
        "state",
        "profile",
        "library",
        "info",
        "info_updated_at",
        "session",
        "network",
        "last_connect_at",
        "last_disconnect_at",
    }
    assert body["client_id"] == client_id
    assert body["library"] == {"name": "unknown", "version": None}
    assert body["info"] == {} and body["session"] is None and body["network"] is None
    single = (await api.get(f"/api/v1/tenants/{tenant_id}/clients/{client_id}", headers=auth)).json()
    assert body["state"] == single["state"]


async def test_info_merges_reports_and_names_the_library(
    api: httpx.AsyncClient, auth: dict[str, str], store: Store
) -> None:
    tenant_id, client_id = await _device(api, auth)
    writer = TelemetryWriter(store, detect_library=detect_library)
    facts = ConnectionFacts("legacy-a", "mqtt", client_id[:23], "metadata", False)
    writer.append_info(client_id, parse_lenient("{'model': 'old', 'imei': '356'}"), BASE_TIME, facts)
    info = parse_lenient('{"model": "test", "programming_language": "python3", "instamsg_version": "1.1.2"}')
    writer.append_info(client_id, info, BASE_TIME + timedelta(seconds=1), facts)
    await writer.close()
    response = await api.get(f"/api/beta/tenants/{tenant_id}/clients/{client_id}/info", headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["info"] == {
        "model": "test",
        "imei": "356",
        "programming_language": "python3",
        "instamsg_version": "1.1.2",
    }
    assert body["library"] == {"name": "python", "version": "1.1.2"}
    assert body["info_updated_at"] == "2016-05-28T00:00:01.000Z"


@pytest.mark.parametrize("suffix", ["info", "network_logs", "config"])
async def test_device_data_of_unknown_clients_and_tenants_is_404(
    api: httpx.AsyncClient, auth: dict[str, str], suffix: str
) -> None:
    tenant_id, _ = await _device(api, auth)
    response = await api.get(f"/api/v1/tenants/{tenant_id}/clients/{UNKNOWN_UUID}/{suffix}", headers=auth)
    assert_error(response, 404, "client_not_found")
    response = await api.get(f"/api/v1/tenants/{tenant_id}/clients/not-a-uuid/{suffix}", headers=auth)
    assert_error(response, 404, "client_not_found")
    response = await api.get(f"/api/v1/tenants/{UNKNOWN_UUID}/clients/{UNKNOWN_UUID}/{suffix}", headers=auth)
    assert_error(response, 404, "tenant_not_found")


# -------------------------------------------------------------------------------------------- network logs

NETWORK_PAYLOADS = [
    '{"network_interface": "wlan0", "signal_strength": "-71", "mac_id": "AA:BB:CC:00:11:22", "imei": "111"}',
    "{'antina_status': '1', 'signal_strength': '-60'}",
    "{'network_interface': 'GPRS', 'antenna_status': True, 'signal_strength': -65, 'imei': '222'}",
    '{"mac_id": "aa-bb-cc-00-11-22", "msisdn": "919999", "iccid": "8991"}',
    "this is not an object",
]


async def test_network_log_items_are_normalised(
    api: httpx.AsyncClient, auth: dict[str, str], store: Store
) -> None:
    tenant_id, client_id = await _device(api, auth)
    await _store_network_logs(store, tenant_id, client_id, NETWORK_PAYLOADS)
    response = await api.get(
        f"/api/v1/tenants/{tenant_id}/clients/{client_id}/network_logs?sort_order=asc", headers=auth
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert response.json()["next_cursor"] is None
    assert len(items) == 5
    assert all(TIMESTAMP.match(item["time"]) for item in items)
    first, c_style, python_repr, _, unparsable = items
    assert first["time"] == "2016-05-28T00:00:00.000Z"
    assert first["signal_strength"] == -71 and first["mac_id"] == "aabbcc001122"
    assert first["network_interface"] == "wlan0" and first["imei"] == "111"
    assert first["data"]["mac_id"] == "AA:BB:CC:00:11:22"
    assert c_style["antenna_status"] == "1" and c_style["signal_strength"] == -60
    assert c_style["data"] == {"antenna_status": "1", "signal_strength": -60}
    assert python_repr["data"]["antenna_status"] is True and python_repr["antenna_status"] == "true"
    assert unparsable["data"] == {"raw": "this is not an object"}
    assert unparsable["signal_strength"] is None
    assert {item["source_topic"] for item in items} == {f"instamsg/clients/{client_id}/network"}


FILTER_CASES = [
    ("mac_id=AA:BB:CC:00:11:22", [3, 0]),
    ("mac_id=aabbcc001122", [3, 0]),
    ("mac_id=AA-BB-CC-00-11-22", [3, 0]),
    ("imei=222", [2]),
    ("msisdn=919999", [3]),
    ("iccid=8991", [3]),
    ("imei=999", []),
    # 2016-05-28 00:00:01 .. 00:00:02 in the D3 forms, bounds inclusive
    ("start=1464393601&end=1464393602", [2, 1]),
    ("start=1464393601000&end=1464393602000", [2, 1]),
    ("start=2016-05-28 00:00:01&end=2016-05-28T00:00:02Z", [2, 1]),
]


async def test_network_log_filters(api: httpx.AsyncClient, auth: dict[str, str], store: Store) -> None:
    tenant_id, client_id = await _device(api, auth)
    await _store_network_logs(store, tenant_id, client_id, NETWORK_PAYLOADS)
    for query, expected in FILTER_CASES:
        await _check_filter(api, auth, tenant_id, client_id, query, expected)


async def _check_filter(
    api: httpx.AsyncClient,
    auth: dict[str, str],
    tenant_id: str,
    client_id: str,
    query: str,
    expected: list[int],
) -> None:
    response = await api.get(
        f"/api/v1/tenants/{tenant_id}/clients/{client_id}/network_logs?{query}", headers=auth
    )
    assert response.status_code == 200, response.text
    times = [item["time"] for item in response.json()["items"]]
    assert times == [f"2016-05-28T00:00:0{index}.000Z" for index in expected], query


@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_network_log_cursor_paging_covers_each_item_once(
    api: httpx.AsyncClient, auth: dict[str, str], store: Store, order: str
) -> None:
    tenant_id, client_id = await _device(api, auth)
    await _store_network_logs(store, tenant_id, client_id, [f'{{"imei": "{index}"}}' for index in range(7)])
    path = f"/api/v1/tenants/{tenant_id}/clients/{client_id}/network_logs"
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3, "sort_order": order}
        if cursor is not None:
            params["cursor"] = cursor
        response = await api.get(path, params=params, headers=auth)
        assert response.status_code == 200, response.text
        seen += [item["imei"] for item in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        pages += 1
        if cursor is None:
            break
    expected = [str(index) for index in range(7)]
    assert seen == (expected if order == "asc" else expected[::-1])
    assert pages == 3


async def test_network_log_cursor_is_bound_to_its_query_and_limits_are_checked(
    api: httpx.AsyncClient, auth: dict[str, str], store: Store
) -> None:
    tenant_id, client_id = await _device(api, auth)
    await _store_network_logs(store, tenant_id, client_id, ['{"imei": "1"}', '{"imei": "1"}'])
    path = f"/api/v1/tenants/{tenant_id}/clients/{client_id}/network_logs"
    first = await api.get(path, params={"limit": 1}, headers=auth)
    cursor = first.json()["next_cursor"]
    assert cursor is not None
    assert_error(
        await api.get(path, params={"limit": 1, "cursor": cursor, "imei": "1"}, headers=auth),
        400,
        "invalid_cursor",
    )
    assert_error(await api.get(path, params={"cursor": "garbage"}, headers=auth), 400, "invalid_cursor")
    assert_error(await api.get(path, params={"limit": 1001}, headers=auth), 400, "invalid_parameter")
    assert_error(await api.get(path, params={"limit": 0}, headers=auth), 400, "invalid_parameter")
    assert_error(await api.get(path, params={"start": "yesterday"}, headers=auth), 400, "invalid_timestamp")
    assert_error(
        await api.get(path, params={"start": "20", "end": "10"}, headers=auth), 400, "invalid_time_range"
    )


# ------------------------------------------------------------------------------------------------ config


async def test_config_of_a_new_client_is_empty(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    tenant_id, client_id = await _device(api, auth)
    response = await api.get(f"/api/v1/tenants/{tenant_id}/clients/{client_id}/config", headers=auth)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "config": {},
        "desired": {"values": {}, "version": 0, "updated_at": None},
        "reported": {"values": {}, "version": 0, "updated_at": None},
        "version": 0,
        "pending": [],
    }


async def test_update_config_representation_and_pending_semantics(
    api: httpx.AsyncClient, auth: dict[str, str], services: Services
) -> None:
    tenant_id, client_id = await _device(api, auth)
    assert services.configs is not None
    path = f"/api/v1/tenants/{tenant_id}/clients/{client_id}/config"
    # The device reports first: C per-key form (single quotes) and Python whole-object form (§8.2).
    await services.configs.record_report(
        client_id,
        parse_config_report("{'key' : 'PING_REQ_INTERVAL', 'type' : '1', 'val' : '180', 'desc' : 'ping'}"),
    )
    await services.configs.record_report(
        client_id,
        parse_config_report('{"NTP_SERVER": "pool.ntp.org", "DEBUG": "1", "instamsg_version": "1.0"}'),
    )
    response = await api.put(path, json={"config": {"PING_REQ_INTERVAL": 120, "DEBUG": True}}, headers=auth)
    # The client is offline: the pushes wait for its next connect (C11).
    assert response.status_code == 202, response.text
    assert response.json()["sent"] is False
    body = response.json()
    assert body["config"] == {"PING_REQ_INTERVAL": 120, "NTP_SERVER": "pool.ntp.org", "DEBUG": True}
    assert body["desired"]["values"] == {"PING_REQ_INTERVAL": 120, "DEBUG": True}
    assert body["desired"]["version"] == 1 and TIMESTAMP.match(body["desired"]["updated_at"])
    assert body["reported"]["values"] == {
        "PING_REQ_INTERVAL": 180,
        "NTP_SERVER": "pool.ntp.org",
        "DEBUG": "1",
    }
    assert body["reported"]["version"] == 2 and TIMESTAMP.match(body["reported"]["updated_at"])
    assert body["version"] == 3
    # true equals "1": only the interval differs from what the device reported.
    assert body["pending"] == ["PING_REQ_INTERVAL"]

    # The device echoes the push: "120" with type "1" becomes 120, and 120 equals "120".
    await services.configs.record_report(
        client_id,
        parse_config_report('{"key": "PING_REQ_INTERVAL", "type": "1", "val": "120", "desc": "ping"}'),
    )
    body = (await api.get(path, headers=auth)).json()
    assert body["pending"] == [] and body["reported"]["values"]["PING_REQ_INTERVAL"] == 120
    assert body["reported"]["version"] == 3 and body["version"] == 4

    # A report that changes nothing keeps the versions.
    await services.configs.record_report(client_id, parse_config_report('{"NTP_SERVER": "pool.ntp.org"}'))
    body = (await api.get(path, headers=auth)).json()
    assert body["reported"]["version"] == 3 and body["version"] == 4


async def test_update_config_forms_and_null_removes(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    tenant_id, client_id = await _device(api, auth)
    path = f"/api/beta/tenants/{tenant_id}/clients/{client_id}/config"
    # An object without `config` is the config itself.
    body = (await api.put(path, json={"A": "x", "B": 2}, headers=auth)).json()
    assert body["desired"]["values"] == {"A": "x", "B": 2} and body["pending"] == ["A", "B"]
    body = (await api.put(path, json={"config": {"A": None, "C": 120}}, headers=auth)).json()
    assert body["desired"]["values"] == {"B": 2, "C": 120}
    assert body["desired"]["version"] == 2 and body["version"] == 2
    # Setting the same values again changes nothing; the device still differs, so the push is repeated
    # (and waits, the client being offline).
    response = await api.put(path, json={"config": {"C": 120}}, headers=auth)
    assert response.status_code == 202 and response.json()["sent"] is False
    assert response.json()["desired"]["version"] == 2
    # Removing a key pushes nothing: nothing waits.
    response = await api.put(path, json={"config": {"C": None}}, headers=auth)
    assert response.status_code == 200 and response.json()["sent"] is True


async def test_update_config_needs_an_object(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    tenant_id, client_id = await _device(api, auth)
    for payload in ([1, 2], "text", 5, {"config": [1]}, {"config": "x"}, {"config": None}):
        path = f"/api/v1/tenants/{tenant_id}/clients/{client_id}/config"
        assert_error(await api.put(path, json=payload, headers=auth), 422, "config_not_object")
    # Nothing was stored by the refused requests.
    assert (await api.get(path, headers=auth)).json()["version"] == 0


async def test_update_config_of_unknown_client_is_404_before_the_body_is_judged(
    api: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    tenant_id, _ = await _device(api, auth)
    response = await api.put(
        f"/api/v1/tenants/{tenant_id}/clients/{UNKNOWN_UUID}/config", json=[1], headers=auth
    )
    assert_error(response, 404, "client_not_found")


async def test_delete_config_clears_desired_and_answers_the_state(
    api: httpx.AsyncClient, auth: dict[str, str], services: Services
) -> None:
    tenant_id, client_id = await _device(api, auth)
    assert services.configs is not None
    await services.configs.record_report(client_id, parse_config_report('{"NTP_SERVER": "a"}'))
    path = f"/api/v1/tenants/{tenant_id}/clients/{client_id}/config"
    await api.put(path, json={"config": {"NTP_SERVER": "b"}}, headers=auth)
    response = await api.delete(path, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["desired"]["values"] == {} and body["desired"]["version"] == 2
    assert body["config"] == {"NTP_SERVER": "a"} and body["pending"] == []
    assert body["version"] == 3
