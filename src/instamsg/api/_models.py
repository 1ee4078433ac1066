"""Typed results of the REST API (spec §2.4): frozen dataclasses built from the server's JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Literal, cast

__all__ = [
    "AccessToken",
    "ClientProfile",
    "ClientRecord",
    "ClientState",
    "ClientType",
    "CreatedClient",
    "ProvisioningParams",
    "SortBy",
    "SortOrder",
    "Tenant",
]

ClientType = Literal["device", "user"]
ClientState = Literal["online", "offline", "blocked", "provisioned", "unprovisioned"]
ClientProfile = Literal["legacy-a", "legacy-b", "standard"]
SortBy = Literal["name", "created_at", "updated_at"]
SortOrder = Literal["asc", "desc"]


def parse_timestamp(value: str) -> datetime:
    """ISO 8601 from the server (``2016-05-28T00:00:00.000Z``) as an aware datetime; naive means UTC."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def format_timestamp(value: datetime) -> str:
    """The server's own timestamp format: UTC, milliseconds, ``Z``."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _optional_timestamp(value: Any) -> datetime | None:
    return None if value is None else parse_timestamp(str(value))


def _optional_format(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An OAuth2 access token (getAccessToken)."""

    access_token: str
    token_type: str
    expires_in: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AccessToken:
        return cls(
            access_token=str(data["access_token"]),
            token_type=str(data.get("token_type", "bearer")),
            expires_in=int(data["expires_in"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
        }


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant: an isolated topic namespace with client and message quotas (spec §2.4.1)."""

    id: str
    name: str
    description: str
    max_clients: int
    max_messages: int
    messages_used: int
    clients_count: int
    active: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tenant:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            description=str(data.get("description") or ""),
            max_clients=int(data["max_clients"]),
            max_messages=int(data["max_messages"]),
            messages_used=int(data.get("messages_used", 0)),
            clients_count=int(data.get("clients_count", 0)),
            active=bool(data["active"]),
            created_at=parse_timestamp(data["created_at"]),
            updated_at=parse_timestamp(data["updated_at"]),
        )

    def to_json(self) -> dict[str, Any]:
        """The server's representation of this tenant."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "max_clients": self.max_clients,
            "max_messages": self.max_messages,
            "messages_used": self.messages_used,
            "clients_count": self.clients_count,
            "active": self.active,
            "created_at": format_timestamp(self.created_at),
            "updated_at": format_timestamp(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class ProvisioningParams:
    """Provisioning id and key and the GSM settings of a client (spec §2.5.3).

    As input, fields left ``None`` are not sent: in an update that keeps a stored write-only value
    (``provisioning_key``, ``gsm_password``, ``gsm_sim_pin``). As output, write-only values read
    ``"********"`` when set.
    """

    provisioning_id: str | None = None
    provisioning_key: str | None = None
    gsm_msisdn: str | None = None
    gsm_apn: str | None = None
    gsm_username: str | None = None
    gsm_password: str | None = None
    gsm_sim_pin: str | None = None
    gsm_send_sms: str | None = None
    gsm_isd_code: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProvisioningParams:
        values = {
            field.name: None if data.get(field.name) is None else str(data[field.name])
            for field in fields(cls)
        }
        return cls(**values)

    def to_json(self) -> dict[str, str | None]:
        """Every field, as the server shows it."""
        return {field.name: getattr(self, field.name) for field in fields(self)}

    def to_request(self) -> dict[str, str]:
        """The fields that are set, as a request body sends them."""
        return {name: value for name, value in self.to_json().items() if value is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientRecord:
    """A device or user client (spec §2.4.2). ``auth_token`` is never part of it; see CreatedClient."""

    id: str
    tenant_id: str
    type: ClientType
    name: str
    description: str
    sub_topics: tuple[str, ...]
    pub_topics: tuple[str, ...]
    secure_cert_enabled: bool
    blocked: bool
    state: ClientState
    provisioning_params: ProvisioningParams | None
    profile: ClientProfile | None
    last_connect_at: datetime | None
    last_disconnect_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def _values(data: Mapping[str, Any]) -> dict[str, Any]:
        params = data.get("provisioning_params")
        return {
            "id": str(data["id"]),
            "tenant_id": str(data["tenant_id"]),
            "type": cast(ClientType, data["type"]),
            "name": str(data["name"]),
            "description": str(data.get("description") or ""),
            "sub_topics": tuple(str(topic) for topic in data.get("sub_topics") or ()),
            "pub_topics": tuple(str(topic) for topic in data.get("pub_topics") or ()),
            "secure_cert_enabled": bool(data.get("secure_cert_enabled", False)),
            "blocked": bool(data.get("blocked", False)),
            "state": cast(ClientState, data["state"]),
            "provisioning_params": ProvisioningParams.from_json(params) if isinstance(params, dict) else None,
            "profile": cast("ClientProfile | None", data.get("profile")),
            "last_connect_at": _optional_timestamp(data.get("last_connect_at")),
            "last_disconnect_at": _optional_timestamp(data.get("last_disconnect_at")),
            "created_at": parse_timestamp(data["created_at"]),
            "updated_at": parse_timestamp(data["updated_at"]),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClientRecord:
        return cls(**cls._values(data))

    def to_json(self) -> dict[str, Any]:
        """The server's representation of this client."""
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "type": self.type,
            "name": self.name,
            "description": self.description,
            "sub_topics": list(self.sub_topics),
            "pub_topics": list(self.pub_topics),
            "secure_cert_enabled": self.secure_cert_enabled,
            "blocked": self.blocked,
            "state": self.state,
            "provisioning_params": None
            if self.provisioning_params is None
            else self.provisioning_params.to_json(),
            "profile": self.profile,
            "last_connect_at": _optional_format(self.last_connect_at),
            "last_disconnect_at": _optional_format(self.last_disconnect_at),
            "created_at": format_timestamp(self.created_at),
            "updated_at": format_timestamp(self.updated_at),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CreatedClient(ClientRecord):
    """The answer of createClient: the client plus its auth token, shown this once for devices."""

    auth_token: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CreatedClient:
        return cls(**cls._values(data), auth_token=str(data["auth_token"]))

    def to_json(self) -> dict[str, Any]:
        return {**ClientRecord.to_json(self), "auth_token": self.auth_token}
