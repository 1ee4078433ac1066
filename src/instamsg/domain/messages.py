"""Stored messages (spec §2.4.3, §6.5) and the two QoS scales (spec C23)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

RESERVED_PREFIX = "instamsg/"


def rest_qos(mqtt_qos: int) -> int:
    """MQTT 0-2 → the product document's 1-3."""
    return mqtt_qos + 1


def mqtt_qos(rest: int) -> int:
    """The product document's 1-3 → MQTT 0-2."""
    return rest - 1


def iso_utc(value: datetime) -> str:
    """ISO 8601 UTC with milliseconds and Z (spec §2.1)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def payload_text(payload: bytes) -> str:
    """History stores text: undecodable bytes become U+FFFD, NUL (which PostgreSQL text refuses) too."""
    return payload.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


@dataclass(frozen=True, slots=True)
class HistoryMessage:
    id: str
    tenant_id: str
    client_id: str
    type: str
    topic: str
    payload: str
    qos: int
    client_message_id: int | None
    duplicate: bool
    saved: bool
    source: str
    delivered_to: int
    releases: list[dict[str, Any]]
    created_at: datetime
