"""Typed results of the REST API (spec §2.4): frozen dataclasses built from the server's JSON."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar, cast

__all__ = [
    "AccessToken",
    "Certificate",
    "ClientInfo",
    "ClientProfile",
    "ClientRecord",
    "ClientState",
    "ClientType",
    "CommandResult",
    "ConfigSide",
    "ConfigState",
    "CreatedClient",
    "LogCreator",
    "LogEntry",
    "LogLevel",
    "Message",
    "MessageType",
    "Metrics",
    "MetricsBucket",
    "MetricsInterval",
    "NetworkLog",
    "Page",
    "ProvisioningParams",
    "Release",
    "ServerLogging",
    "Session",
    "SortBy",
    "SortOrder",
    "StoredFile",
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


# Resources added with the device-data endpoints. Each keeps the server's JSON in ``raw`` so that
# ``to_json()`` gives back exactly what the server said, fields this SDK does not know included.

MessageType = Literal["pub", "p2p"]
MetricsInterval = Literal["day", "month"]
LogLevel = Literal["DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
LogCreator = Literal["InstaMsg", "client"]
ItemT = TypeVar("ItemT")


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


@dataclass(frozen=True, slots=True)
class Page(Generic[ItemT]):
    """One page of a time-series list; pass ``next_cursor`` as ``cursor`` (same filters) for the next."""

    items: tuple[ItemT, ...]
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], build: Callable[[Any], ItemT]) -> Page[ItemT]:
        items = data["items"]
        if not isinstance(items, list):
            raise TypeError("items must be a JSON array")
        return cls(tuple(build(item) for item in items), _optional_str(data.get("next_cursor")))

    def __iter__(self) -> Iterator[ItemT]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True, slots=True)
class Release:
    """One re-delivery of a stored message (releaseMessage)."""

    released_at: datetime
    delivered_to: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """A stored or just-published message (spec §2.4.3). ``qos`` is on the REST 1-3 scale."""

    id: str
    tenant_id: str
    client_id: str
    type: MessageType
    topic: str
    payload: str
    qos: int
    client_message_id: int | None
    duplicate: bool
    saved: bool
    source: str
    direction: str
    envelope: dict[str, Any] | None
    delivered_to: int
    created_at: datetime
    releases: tuple[Release, ...]
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Message:
        envelope = data.get("envelope")
        return cls(
            id=str(data["id"]),
            tenant_id=str(data["tenant_id"]),
            client_id=str(data["client_id"]),
            type=cast(MessageType, data["type"]),
            topic=str(data["topic"]),
            payload=str(data["payload"]),
            qos=int(data["qos"]),
            client_message_id=_optional_int(data.get("client_message_id")),
            duplicate=bool(data.get("duplicate", False)),
            saved=bool(data.get("saved", True)),
            source=str(data.get("source", "")),
            direction=str(data.get("direction", "")),
            envelope=dict(envelope) if isinstance(envelope, Mapping) else None,
            delivered_to=int(data.get("delivered_to", 0)),
            created_at=parse_timestamp(data["created_at"]),
            releases=tuple(
                Release(parse_timestamp(item["released_at"]), int(item["delivered_to"]))
                for item in data.get("releases") or ()
            ),
            raw=dict(data),
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFile:
    """A file stored for a client (spec §2.4.4); ``url`` downloads it without credentials."""

    filename: str
    size: int
    content_type: str
    source: str
    file_id: str
    url: str
    device_status: str | None
    created_at: datetime | None
    updated_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StoredFile:
        return cls(
            filename=str(data["filename"]),
            size=int(data.get("size", 0)),
            content_type=str(data.get("content_type") or "application/octet-stream"),
            source=str(data.get("source", "")),
            file_id=str(data.get("file_id", "")),
            url=str(data.get("url", "")),
            device_status=_optional_str(data.get("device_status")),
            created_at=_optional_timestamp(data.get("created_at")),
            updated_at=_optional_timestamp(data.get("updated_at")),
            raw=dict(data),
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """One connection of a client (spec §2.4.5); ``disconnect_time`` is None while connected."""

    id: str
    connect_time: datetime
    disconnect_time: datetime | None
    duration_seconds: float | None
    transport: str | None
    remote_address: str | None
    protocol: str | None
    profile: str | None
    client_identifier: str | None
    keep_alive: int | None
    clean_session: bool | None
    disconnect_reason: str | None
    data: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Session:
        duration = data.get("duration_seconds")
        clean = data.get("clean_session")
        return cls(
            id=str(data["id"]),
            connect_time=parse_timestamp(data["connect_time"]),
            disconnect_time=_optional_timestamp(data.get("disconnect_time")),
            duration_seconds=None if duration is None else float(duration),
            transport=_optional_str(data.get("transport")),
            remote_address=_optional_str(data.get("remote_address")),
            protocol=_optional_str(data.get("protocol")),
            profile=_optional_str(data.get("profile")),
            client_identifier=_optional_str(data.get("client_identifier")),
            keep_alive=_optional_int(data.get("keep_alive")),
            clean_session=None if clean is None else bool(clean),
            disconnect_reason=_optional_str(data.get("disconnect_reason")),
            data=_mapping(data.get("data")),
            raw=dict(data),
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkLog:
    """One network report of a device (spec §2.4.5, §11)."""

    time: datetime
    network_interface: str | None
    antenna_status: str | None
    signal_strength: int | None
    mac_id: str | None
    imei: str | None
    msisdn: str | None
    iccid: str | None
    source_topic: str | None
    data: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NetworkLog:
        strength = data.get("signal_strength")
        return cls(
            time=parse_timestamp(data["time"]),
            network_interface=_optional_str(data.get("network_interface")),
            antenna_status=_optional_str(data.get("antenna_status")),
            signal_strength=strength if isinstance(strength, int) else None,
            mac_id=_optional_str(data.get("mac_id")),
            imei=_optional_str(data.get("imei")),
            msisdn=_optional_str(data.get("msisdn")),
            iccid=_optional_str(data.get("iccid")),
            source_topic=_optional_str(data.get("source_topic")),
            data=_mapping(data.get("data")),
            raw=dict(data),
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True, slots=True, kw_only=True)
class LogEntry:
    """One client log line (creator ``client``) or server event about it (creator ``InstaMsg``)."""

    time: datetime
    level: str
    creator: str
    message: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LogEntry:
        return cls(
            time=parse_timestamp(data["time"]),
            level=str(data["level"]),
            creator=str(data["creator"]),
            message=str(data["message"]),
            raw=dict(data),
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientInfo:
    """What a device reported about itself and its latest session and network (spec §2.4.6)."""

    client_id: str
    state: str
    profile: str | None
    library: dict[str, Any]
    info: dict[str, Any]
    info_updated_at: datetime | None
    session: dict[str, Any]
    network: dict[str, Any]
    last_connect_at: datetime | None
    last_disconnect_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClientInfo:
        return cls(
            client_id=str(data["client_id"]),
            state=str(data.get("state", "")),
            profile=_optional_str(data.get("profile")),
            library=_mapping(data.get("library")),
            info=_mapping(data.get("info")),
            info_updated_at=_optional_timestamp(data.get("info_updated_at")),
            session=_mapping(data.get("session")),
            network=_mapping(data.get("network")),
            last_connect_at=_optional_timestamp(data.get("last_connect_at")),
            last_disconnect_at=_optional_timestamp(data.get("last_disconnect_at")),
            raw=dict(data),
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsBucket:
    """One hour (interval ``day``) or one day (``month``) of counters."""

    start: datetime
    counters: dict[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Metrics:
    """Traffic counters of a client (spec §2.4.7): totals and 24 hourly or 30 daily buckets."""

    interval: str
    start: datetime
    end: datetime
    totals: dict[str, int]
    buckets: tuple[MetricsBucket, ...]
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Metrics:
        def counters(values: Mapping[str, Any]) -> dict[str, int]:
            return {key: int(value) for key, value in values.items() if key != "start"}

        return cls(
            interval=str(data["interval"]),
            start=parse_timestamp(data["start"]),
            end=parse_timestamp(data["end"]),
            totals=counters(data.get("totals") or {}),
            buckets=tuple(
                MetricsBucket(start=parse_timestamp(bucket["start"]), counters=counters(bucket))
                for bucket in data.get("buckets") or ()
            ),
            raw=dict(data),
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigSide:
    """The desired (operator) or reported (device) side of a client's configuration."""

    values: dict[str, Any]
    version: int
    updated_at: datetime | None

    @classmethod
    def from_json(cls, data: Any) -> ConfigSide:
        side = _mapping(data)
        return cls(
            values=_mapping(side.get("values")),
            version=int(side.get("version") or 0),
            updated_at=_optional_timestamp(side.get("updated_at")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigState:
    """A client's configuration (spec §8.4): ``config`` is reported overlaid with desired."""

    config: dict[str, Any]
    desired: ConfigSide
    reported: ConfigSide
    version: int
    pending: tuple[str, ...]
    # update_client_config only: False when the changed keys wait for the device's next connect.
    sent: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConfigState:
        sent = data.get("sent")
        return cls(
            config=_mapping(data["config"]),
            desired=ConfigSide.from_json(data.get("desired")),
            reported=ConfigSide.from_json(data.get("reported")),
            version=int(data.get("version") or 0),
            pending=tuple(str(key) for key in data.get("pending") or ()),
            sent=None if sent is None else bool(sent),
            raw=dict(data),
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True, slots=True, kw_only=True)
class Certificate:
    """A fresh client certificate and its private key (updateClientCertificate); the key is shown once."""

    certificate: str
    key: str
    not_after: datetime | None
    # False when the updateCert push waits for the client's next connect.
    sent: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Certificate:
        sent = data.get("sent")
        return cls(
            certificate=str(data["certificate"]),
            key=str(data["key"]),
            not_after=_optional_timestamp(data.get("not_after")),
            sent=None if sent is None else bool(sent),
            raw=dict(data),
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerLogging:
    """Whether remote logging is requested for a client, and until when (spec §2.7, §9)."""

    enabled: bool
    until: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServerLogging:
        until = _optional_timestamp(data.get("until"))
        return cls(enabled=bool(data["enabled"]), until=until, raw=dict(data))

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandResult:
    """The answer of a device command (reboot, firmware, control action): ``sent`` is False offline."""

    sent: bool
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CommandResult:
        return cls(sent=bool(data.get("sent", False)), raw=dict(data))

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)
