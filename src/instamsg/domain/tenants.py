"""Tenants: isolated topic namespaces with client and message quotas."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    app_id: str
    name: str
    description: str
    max_clients: int
    max_messages: int
    messages_used: int
    active: bool
    clients_count: int
    created_at: datetime
    updated_at: datetime


def client_quota_allows(max_clients: int, clients_count: int) -> bool:
    """Whether one more client fits; 0 allows none (spec C10)."""
    return clients_count < max_clients


def message_quota_allows(max_messages: int, messages_used: int) -> bool:
    """Whether one more message fits in the cumulative budget (spec §6.4)."""
    return messages_used < max_messages
