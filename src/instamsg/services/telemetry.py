"""Device telemetry for the REST API: getClientInfo and getClientNetworkLogs (spec §2.4.5, §2.4.6)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from instamsg.domain.clients import client_state
from instamsg.domain.errors import InvalidParameter
from instamsg.domain.messages import iso_utc
from instamsg.domain.timestamps import parse_time_range
from instamsg.protocol.payloads import hexify_mac
from instamsg.services.lookup import find_client
from instamsg.services.pages import Page, cursor_query, page_of, position_after
from instamsg.services.ports import LiveRegistry, OfflineRegistry
from instamsg.store.repositories import telemetry as telemetry_repository
from instamsg.store.repositories.telemetry import NetworkLogFilters
from instamsg.store.store import Store

NetworkLogPage = Page[dict[str, Any]]


def _stamp(value: datetime | None) -> str | None:
    return iso_utc(value) if value is not None else None


def network_log_item(row: dict[str, Any]) -> dict[str, Any]:
    """The §2.4.5 network-log item of a stored row."""
    return {
        "time": iso_utc(row["time"]),
        "network_interface": row["network_interface"],
        "antenna_status": row["antenna_status"],
        "signal_strength": row["signal_strength"],
        "mac_id": row["mac_id"],
        "imei": row["imei"],
        "msisdn": row["msisdn"],
        "iccid": row["iccid"],
        "source_topic": row["source_topic"],
        "data": row["data"],
    }


# Identifier filters match stored columns of at most 64 characters; control characters never occur
# in them (and PostgreSQL refuses a NUL in a query parameter).
MAX_FILTER_LENGTH = 64


def _checked_filter(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > MAX_FILTER_LENGTH or any(ord(character) < 0x20 for character in value):
        raise InvalidParameter(
            f"{name} must be at most {MAX_FILTER_LENGTH} characters without control characters.",
            details={"field": name},
        )
    return value


class TelemetryService:
    def __init__(self, store: Store, registry: LiveRegistry | None = None):
        self.store = store
        self.registry: LiveRegistry = registry if registry is not None else OfflineRegistry()

    async def get_info(self, app_id: str, tenant_id: str, client_id: str) -> dict[str, Any]:
        """§2.4.6: the latest device-reported info, session and network of the client."""
        async with self.store.read() as connection:
            found = await find_client(connection, app_id, tenant_id, client_id)
            state = await telemetry_repository.get_device_state(connection, found.id) or {}
        return {
            "client_id": found.id,
            "state": client_state(found, online=self.registry.is_online(found.id)).value,
            "profile": found.profile,
            "library": {
                "name": state.get("library_name") or "unknown",
                "version": state.get("library_version"),
            },
            "info": state.get("info") or {},
            "info_updated_at": _stamp(state.get("info_updated_at")),
            "session": state.get("session"),
            "network": state.get("network"),
            "last_connect_at": _stamp(found.last_connect_at),
            "last_disconnect_at": _stamp(found.last_disconnect_at),
        }

    async def list_network_logs(
        self,
        app_id: str,
        tenant_id: str,
        client_id: str,
        *,
        start: str | None = None,
        end: str | None = None,
        mac_id: str | None = None,
        imei: str | None = None,
        msisdn: str | None = None,
        iccid: str | None = None,
        descending: bool = True,
        limit: int = 100,
        cursor: str | None = None,
    ) -> NetworkLogPage:
        start_at, end_at = parse_time_range(start, end)
        mac_id = _checked_filter("mac_id", mac_id)
        filters = NetworkLogFilters(
            mac_id=hexify_mac(mac_id) if mac_id is not None else None,
            imei=_checked_filter("imei", imei),
            msisdn=_checked_filter("msisdn", msisdn),
            iccid=_checked_filter("iccid", iccid),
        )
        async with self.store.read() as connection:
            found = await find_client(connection, app_id, tenant_id, client_id)
            query = cursor_query(
                found.id,
                start_at,
                end_at,
                descending,
                mac_id=filters.mac_id,
                imei=imei,
                msisdn=msisdn,
                iccid=iccid,
            )
            rows = await telemetry_repository.list_network_logs(
                connection,
                found.id,
                start=start_at,
                end=end_at,
                filters=filters,
                descending=descending,
                limit=limit + 1,
                after=position_after(cursor, query),
            )
        page = page_of(rows, limit, query, lambda row: (row["time"], row["id"]))
        return Page([network_log_item(row) for row in page.items], page.next_cursor)
