"""Client activity over REST, in process: getClientSessions, getClientLogs, getClientMetrics and
`PUT C/server_logging` (spec §2.1 D3/D13, §2.3, §2.4.5, §2.4.7, §2.7, §9.1, C12), on both databases."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from instamsg.rest.dependencies import Services
from instamsg.services.activity import ActivityService
from instamsg.services.apps import AppService
from instamsg.services.clients import ClientService
from instamsg.services.messages import MessageService
from instamsg.services.ports import OfflineDelivery, OfflineRegistry
from instamsg.services.tenants import TenantService
from instamsg.store.repositories import activity as activity_repository
from instamsg.store.repositories import traffic as traffic_repository
from instamsg.store.repositories.traffic import ActivityDelta, TrafficDelta
from instamsg.store.store import Store
from tests.rest.helpers import TIMESTAMP, UNKNOWN_UUID, assert_error, create_client, create_tenant

NOW = datetime(2026, 11, 27, 10, 30, 15, 250000, tzinfo=UTC)
SESSION_KEYS = {
    "id",
    "connect_time",
    "disconnect_time",
    "duration_seconds",
    "transport",
    "remote_address",
    "protocol",
    "profile",
    "client_identifier",
    "keep_alive",
    "clean_session",
    "disconnect_reason",
    "data",
}
METRIC_KEYS = {
    "messages_sent",
    "messages_received",
    "p2p_sent",
    "p2p_received",
    "bytes_in",
    "bytes_out",
    "connects",
    "disconnects",
    "online_seconds",
    "errors",
}


@dataclass
class RecordingControl:
    """The broker's remote logging as the service sees it."""

    online: bool = True
    calls: list[tuple[str, str, datetime | None]] = field(default_factory=list)

    def server_logging_changed(self, client_id: str, watcher: str, until: datetime | None) -> bool:
        self.calls.append((client_id, watcher, until))
        return self.online


@pytest.fixture
def control() -> RecordingControl:
    return RecordingControl()


@pytest.fixture
def services(store: Store, control: RecordingControl) -> Services:
    registry = OfflineRegistry()
    return Services(
        apps=AppService(store),
        tenants=TenantService(store, registry),
        clients=ClientService(store, registry),
        messages=MessageService(store, OfflineDelivery(), max_payload_bytes=4096),
        activity=ActivityService(store, control, max_logging_seconds=3600, clock=lambda: NOW),
    )


@pytest.fixture
async def device(api: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, Any]:
    tenant = await create_tenant(api, auth)
    return await create_client(api, auth, tenant["id"])


def _path(device: dict[str, Any], suffix: str, prefix: str = "/api/v1") -> str:
    return f"{prefix}/tenants/{device['tenant_id']}/clients/{device['id']}/{suffix}"


def _session(index: int, device: dict[str, Any], **changes: Any) -> dict[str, Any]:
    connect = NOW - timedelta(hours=10 - index)
    row = {
        "id": f"session-{index:02d}",
        "client_id": device["id"],
        "tenant_id": device["tenant_id"],
        "connect_time": connect,
        "disconnect_time": connect + timedelta(minutes=30),
        "transport": "tcp",
        "remote_address": "10.0.0.1:4000",
        "protocol": "MQIsdp/3",
        "profile": "legacy-b",
        "client_identifier": "EMPTY",
        "keep_alive": 60,
        "clean_session": True,
        "disconnect_reason": "client_disconnect",
        "data": None,
    }
    row.update(changes)
    return row


async def _seed_sessions(store: Store, device: dict[str, Any], count: int) -> None:
    async with store.write() as connection:
        await activity_repository.insert_sessions(connection, [_session(i, device) for i in range(count)])


async def _seed_logs(store: Store, device: dict[str, Any]) -> None:
    entries = [
        ("INFO", "InstaMsg", "connect (transport tcp, profile legacy-b, remote address 10.0.0.1:4000)"),
        ("INFO", "client", "[2026-11-27 10:00:00] INFO in main:10: started"),
        ("WARN", "InstaMsg", "publish denied on a/b"),
        ("ERROR", "client", "[2026-11-27 10:00:03] ERROR in main:20: sensor failed"),
        ("DEBUG", "client", "raw C line"),
    ]
    rows = [
        {
            "id": f"log-{index:02d}",
            "client_id": device["id"],
            "tenant_id": device["tenant_id"],
            "time": NOW - timedelta(minutes=10 - index),
            "level": level,
            "creator": creator,
            "message": message,
        }
        for index, (level, creator, message) in enumerate(entries)
    ]
    async with store.write() as connection:
        await activity_repository.insert_logs(connection, rows)


# ---- sessions ------------------------------------------------------------------------------------


async def test_sessions_are_listed_newest_first_with_every_field(
    api: httpx.AsyncClient, auth: dict[str, str], store: Store, device: dict[str, Any]
) -> None:
    await _seed_sessions(store, device, 2)
    async with store.write() as connection:
        await activity_repository.insert_sessions(
            connection,
            [
                _session(
                    5,
                    device,
                    disconnect_time=None,
                    disconnect_reason=None,
                    data={"network_interface": "wifi"},
                    transport="wss",
                    protocol="MQTT/5",
                    profile="standard",
                    client_identifier="my-id",
                    clean_session=False,
                )
            ],
        )
    response = await api.get(_path(device, "sessions"), headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    assert [item["id"] for item in body["items"]] == ["session-05", "session-01", "session-00"]
    open_session, closed = body["items"][0], body["items"][1]
    assert set(open_session) == SESSION_KEYS
    assert open_session["disconnect_time"] is None
    assert open_session["disconnect_reason"] is None
    assert open_session["data"] == {"network_interface": "wifi"}
    assert (open_session["transport"], open_session["protocol"], open_session["profile"]) == (
        "wss",
        "MQTT/5",
        "standard",
    )
    assert open_session["client_identifier"] == "my-id"
    assert open_session["clean_session"] is False
    assert TIMESTAMP.match(closed["connect_time"]) and TIMESTAMP.match(closed["disconnect_time"])
    assert closed["duration_seconds"] == 1800
    assert closed["disconnect_reason"] == "client_disconnect"
    assert closed["keep_alive"] == 60


async def test_sessions_pages_follow_the_cursor_in_both_orders(
    api: httpx.AsyncClient, auth: dict[str, str], store: Store, device: dict[str, Any]
) -> None:
    await _seed_sessions(store, device, 5)
    for order, expected in (("desc", [4, 3, 2, 1, 0]), ("asc", [0, 1, 2, 3, 4])):
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 2, "sort_order": order}
            if cursor:
                params["cursor"] = cursor
            response = await api.get(_path(device, "sessions"), params=params, headers=auth)
            assert response.status_code == 200, response.text
            body = response.json()
            seen += [item["id"] for item in body["items"]]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == [f"session-{index:02d}" for index in expected]
        assert pages == 3


async def test_sessions_filter_on_the_sort_column(
    api: httpx.AsyncClient, auth: dict[str, str], store: Store, device: dict[str, Any]
) -> None:
    await _seed_sessions(store, device, 5)  # connect times NOW-10h .. NOW-6h, each 30 min long
    start = (NOW - timedelta(hours=9)).timestamp()
    end = (NOW - timedelta(hours=7)).isoformat()
    response = await api.get(_path(device, "sessions"), params={"start": start, "end": end}, headers=auth)
    assert [item["id"] for item in response.json()["items"]] == ["session-03", "session-02", "session-01"]
    # By disconnect time (30 minutes after each connect): sessions 0 and 1 ended by NOW-8h30.
    response = await api.get(
        _path(device, "sessions"),
        params={"sort_by": "disconnect_time", "end": (NOW - timedelta(hours=8, minutes=30)).isoformat()},
        headers=auth,
    )
    assert [item["id"] for item in response.json()["items"]] == ["session-01", "session-00"]


async def test_sessions_reject_bad_parameters(
    api: httpx.AsyncClient, auth: dict[str, str], store: Store, device: dict[str, Any]
) -> None:
    await _seed_sessions(store, device, 3)
    path = _path(device, "sessions")
    assert_error(await api.get(path, params={"sort_by": "time"}, headers=auth), 400, "invalid_parameter")
    assert_error(await api.get(path, params={"limit": 0}, headers=auth), 400, "invalid_parameter")
    assert_error(await api.get(path, params={"limit": 1001}, headers=auth), 400, "invalid_parameter")
    assert_error(await api.get(path, params={"start": "yesterday"}, headers=auth), 400, "invalid_timestamp")
    assert_error(
        await api.get(path, params={"start": "2026-01-02", "end": "2026-01-01"}, headers=auth),
        400,
        "invalid_time_range",
    )
    cursor = (await api.get(path, params={"limit": 1}, headers=auth)).json()["next_cursor"]
    assert cursor
    assert_error(
        await api.get(path, params={"limit": 1, "cursor": cursor, "sort_order": "asc"}, headers=auth),
        400,
        "invalid_cursor",
    )
    assert_error(await api.get(path, params={"cursor": "garbage"}, headers=auth), 400, "invalid_cursor")


# ---- logs ----------------------------------------------------------------------------------------


async def test_logs_filter_by_level_creator_and_time_and_paginate(
    api: httpx.AsyncClient, auth: dict[str, str], store: Store, device: dict[str, Any]
) -> None:
    await _seed_logs(store, device)
    path = _path(device, "logs", "/api/beta")
    body = (await api.get(path, headers=auth)).json()
    assert [item["level"] for item in body["items"]] == ["DEBUG", "ERROR", "WARN", "INFO", "INFO"]
    assert set(body["items"][0]) == {"time", "level", "creator", "message"}
    assert TIMESTAMP.match(body["items"][0]["time"])
    client_lines = (await api.get(path, params={"creator": "client"}, headers=auth)).json()["items"]
    assert [item["message"] for item in client_lines] == [
        "raw C line",
        "[2026-11-27 10:00:03] ERROR in main:20: sensor failed",
        "[2026-11-27 10:00:00] INFO in main:10: started",
    ]
    server = (await api.get(path, params={"creator": "InstaMsg", "level": "WARN"}, headers=auth)).json()
    assert [item["message"] for item in server["items"]] == ["publish denied on a/b"]
    start = (NOW - timedelta(minutes=8)).isoformat()
    ranged = (
        await api.get(path, params={"start": start, "sort_order": "asc", "limit": 2}, headers=auth)
    ).json()
    assert [item["level"] for item in ranged["items"]] == ["WARN", "ERROR"]
    following = (
        await api.get(
            path,
            params={"start": start, "sort_order": "asc", "limit": 2, "cursor": ranged["next_cursor"]},
            headers=auth,
        )
    ).json()
    assert [item["level"] for item in following["items"]] == ["DEBUG"]
    assert following["next_cursor"] is None


async def test_logs_reject_unknown_levels_and_creators(
    api: httpx.AsyncClient, auth: dict[str, str], device: dict[str, Any]
) -> None:
    path = _path(device, "logs")
    assert_error(await api.get(path, params={"level": "WARNING"}, headers=auth), 400, "invalid_parameter")
    assert_error(await api.get(path, params={"creator": "server"}, headers=auth), 400, "invalid_parameter")


@pytest.mark.parametrize("suffix", ["sessions", "logs", "metrics"])
async def test_unknown_foreign_or_malformed_ids_are_not_found(
    api: httpx.AsyncClient, auth: dict[str, str], services: Services, device: dict[str, Any], suffix: str
) -> None:
    tenant_id, client_id = device["tenant_id"], device["id"]
    assert_error(
        await api.get(f"/api/v1/tenants/{tenant_id}/clients/{UNKNOWN_UUID}/{suffix}", headers=auth),
        404,
        "client_not_found",
    )
    assert_error(
        await api.get(f"/api/v1/tenants/{tenant_id}/clients/not-a-uuid/{suffix}", headers=auth),
        404,
        "client_not_found",
    )
    assert_error(
        await api.get(f"/api/v1/tenants/{UNKNOWN_UUID}/clients/{client_id}/{suffix}", headers=auth),
        404,
        "tenant_not_found",
    )
    other = await services.apps.create_app("other")
    token = await api.post(
        "/oauth2/token?grant_type=client_credentials",
        auth=(other.app.client_key, other.client_secret),
    )
    foreign = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert_error(await api.get(_path(device, suffix), headers=foreign), 404, "tenant_not_found")


# ---- metrics -------------------------------------------------------------------------------------


async def _seed_traffic(store: Store, device: dict[str, Any]) -> None:
    current_hour = NOW.replace(minute=0, second=0, microsecond=0)
    async with store.write() as connection:
        for hours_ago, traffic, activity in (
            (0, (1, 10, 2, 20), (1, 0, 1, 0, 0, 0)),  # the current, partial bucket
            (5, (3, 30, 4, 40), (0, 2, 2, 2, 600, 1)),
            (23, (5, 50, 6, 60), (0, 0, 1, 1, 30, 0)),  # the first bucket of the day
            (24, (100, 100, 100, 100), (9, 9, 9, 9, 9, 9)),  # outside the day, inside the month
            (24 * 30, (1000, 1000, 1000, 1000), (7, 7, 7, 7, 7, 7)),  # outside both
        ):
            hour = current_hour - timedelta(hours=hours_ago)
            await traffic_repository.add_hourly_traffic(
                connection, hour, [TrafficDelta(device["id"], *traffic)]
            )
            await traffic_repository.add_hourly_activity(
                connection, [ActivityDelta(device["id"], hour, activity)]
            )


async def test_metrics_day_has_24_hourly_buckets_ending_with_the_current_hour(
    api: httpx.AsyncClient, auth: dict[str, str], store: Store, device: dict[str, Any]
) -> None:
    await _seed_traffic(store, device)
    response = await api.get(_path(device, "metrics"), headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["interval"] == "day"
    assert body["start"] == "2026-11-26T11:00:00.000Z"
    assert body["end"] == "2026-11-27T10:30:15.250Z"
    buckets = body["buckets"]
    assert len(buckets) == 24
    assert buckets[0]["start"] == "2026-11-26T11:00:00.000Z"
    assert buckets[-1]["start"] == "2026-11-27T10:00:00.000Z"
    assert set(buckets[0]) == METRIC_KEYS | {"start"}
    assert set(body["totals"]) == METRIC_KEYS
    assert {key: buckets[-1][key] for key in METRIC_KEYS} == {
        "messages_sent": 1,
        "bytes_in": 10,
        "messages_received": 2,
        "bytes_out": 20,
        "p2p_sent": 1,
        "p2p_received": 0,
        "connects": 1,
        "disconnects": 0,
        "online_seconds": 0,
        "errors": 0,
    }
    assert buckets[18]["online_seconds"] == 600 and buckets[18]["errors"] == 1
    assert buckets[0]["messages_sent"] == 5
    assert sum(1 for bucket in buckets if any(bucket[key] for key in METRIC_KEYS)) == 3
    assert body["totals"] == {
        "messages_sent": 9,
        "bytes_in": 90,
        "messages_received": 12,
        "bytes_out": 120,
        "p2p_sent": 1,
        "p2p_received": 2,
        "connects": 4,
        "disconnects": 3,
        "online_seconds": 630,
        "errors": 1,
    }


async def test_metrics_month_has_30_daily_buckets(
    api: httpx.AsyncClient, auth: dict[str, str], store: Store, device: dict[str, Any]
) -> None:
    await _seed_traffic(store, device)
    body = (await api.get(_path(device, "metrics"), params={"interval": "month"}, headers=auth)).json()
    buckets = body["buckets"]
    assert len(buckets) == 30
    assert body["start"] == buckets[0]["start"] == "2026-10-29T00:00:00.000Z"
    assert buckets[-1]["start"] == "2026-11-27T00:00:00.000Z"
    # Today: hours 0 and 5 ago (10:00, 05:00); yesterday: 23 and 24 hours ago (11:00 and 10:00).
    assert buckets[-1]["messages_sent"] == 1 + 3
    assert buckets[-2]["messages_sent"] == 5 + 100
    assert body["totals"]["messages_sent"] == 109
    assert body["totals"]["connects"] == 1 + 2 + 1 + 9


async def test_metrics_reject_other_intervals(
    api: httpx.AsyncClient, auth: dict[str, str], device: dict[str, Any]
) -> None:
    error = assert_error(
        await api.get(_path(device, "metrics"), params={"interval": "week"}, headers=auth),
        400,
        "invalid_parameter",
    )
    assert error["details"]["field"] == "interval"


# ---- server logging ------------------------------------------------------------------------------


async def test_server_logging_enable_and_disable(
    api: httpx.AsyncClient,
    auth: dict[str, str],
    store: Store,
    device: dict[str, Any],
    control: RecordingControl,
    services: Services,
) -> None:
    path = _path(device, "server_logging")
    app_id = await services.apps.verify_token(auth["Authorization"].split()[1])
    response = await api.put(path, json={"enabled": True, "duration_seconds": 120}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json() == {"enabled": True, "until": "2026-11-27T10:32:15.250Z"}
    assert control.calls == [(device["id"], app_id, NOW + timedelta(seconds=120))]
    async with store.read() as connection:
        stored = await activity_repository.get_server_logging(connection, device["id"])
    assert stored is not None and (stored.until, stored.watcher) == (NOW + timedelta(seconds=120), app_id)

    response = await api.put(path, json={"enabled": "1"}, headers=auth)
    assert response.json() == {"enabled": True, "until": "2026-11-27T10:40:15.250Z"}  # default 600 s

    response = await api.put(path, json={"enabled": False}, headers=auth)
    assert response.json() == {"enabled": False, "until": None}
    assert control.calls[-1] == (device["id"], app_id, None)
    async with store.read() as connection:
        assert await activity_repository.get_server_logging(connection, device["id"]) is None


async def test_server_logging_validation(
    api: httpx.AsyncClient, auth: dict[str, str], device: dict[str, Any], control: RecordingControl
) -> None:
    path = _path(device, "server_logging")
    assert_error(await api.put(path, json={}, headers=auth), 400, "validation_failed")
    assert_error(await api.put(path, json={"enabled": "maybe"}, headers=auth), 400, "validation_failed")
    for duration in (0, 3601, "60", 1.5):
        assert_error(
            await api.put(path, json={"enabled": True, "duration_seconds": duration}, headers=auth),
            400,
            "validation_failed",
        )
    assert_error(
        await api.put(path, json={"enabled": True, "durationSeconds": 60}, headers=auth), 400, "unknown_field"
    )
    assert_error(
        await api.put(
            f"/api/v1/tenants/{device['tenant_id']}/clients/{UNKNOWN_UUID}/server_logging",
            json={"enabled": True},
            headers=auth,
        ),
        404,
        "client_not_found",
    )
    assert control.calls == []
