"""Clients (devices and users): their topic lists, provisioning parameters and state."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from instamsg.domain.errors import InvalidTopicFilter, ValidationFailed
from instamsg.domain.ids import UUID_PATTERN
from instamsg.mqtt.errors import InvalidTopic as MqttInvalidTopic
from instamsg.mqtt.topics import validate_topic_filter

MASK: Final = "********"
WRITE_ONLY_PROVISIONING_FIELDS: Final = ("provisioning_key", "gsm_password", "gsm_sim_pin")
PROVISIONING_FIELDS: Final = (
    "provisioning_id",
    "provisioning_key",
    "gsm_msisdn",
    "gsm_apn",
    "gsm_username",
    "gsm_password",
    "gsm_sim_pin",
    "gsm_send_sms",
    "gsm_isd_code",
)
PROVISIONING_KEY_PATTERN: Final = re.compile(r"^[0-9A-Za-z]{6,12}$")
PROVISIONING_ID_PATTERN: Final = re.compile(r"^[\x21-\x7e]{1,64}$")
MAX_TOPICS_PER_LIST: Final = 1000

# Server-to-device topics a user client may be granted on another client (spec §6.2 item 2).
_GRANTABLE_SERVER_TO_DEVICE = ("files", "media", "mediareply", "mediastop", "mediapause", "mediastreams")
# Device-to-server topics a watcher may subscribe to exactly (spec §6.2 item 3).
_WATCHABLE_DEVICE_TO_SERVER = (
    "info",
    "metadata",
    "session",
    "network",
    "logs",
    "config/clientToServer",
    "media",
)


class ClientType(StrEnum):
    DEVICE = "device"
    USER = "user"


class ClientState(StrEnum):
    BLOCKED = "blocked"
    ONLINE = "online"
    UNPROVISIONED = "unprovisioned"
    PROVISIONED = "provisioned"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class Client:
    id: str
    tenant_id: str
    type: ClientType
    name: str
    description: str
    sub_topics: tuple[str, ...]
    pub_topics: tuple[str, ...]
    secure_cert_enabled: bool
    blocked: bool
    auth_token: str
    provisioning_params: dict[str, Any] | None
    provisioned_at: datetime | None
    profile: str | None
    last_connect_at: datetime | None
    last_disconnect_at: datetime | None
    created_at: datetime
    updated_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)


def client_state(client: Client, *, online: bool) -> ClientState:
    """The state of spec §1.4, evaluated in its order."""
    if client.blocked:
        return ClientState.BLOCKED
    if online:
        return ClientState.ONLINE
    if client.provisioning_params is not None and client.provisioned_at is None:
        return ClientState.UNPROVISIONED
    if client.provisioned_at is not None and (
        client.last_connect_at is None or client.last_connect_at < client.provisioned_at
    ):
        return ClientState.PROVISIONED
    return ClientState.OFFLINE


def _reserved_entry_allowed(entry: str, list_name: str) -> bool:
    """`instamsg/` entries are accepted only in the forms of spec §6.2 items 2 and 3."""
    parts = entry.split("/")
    if len(parts) < 4 or parts[0] != "instamsg" or parts[1] != "clients" or not UUID_PATTERN.match(parts[2]):
        return False
    suffix = "/".join(parts[3:])
    allowed = _GRANTABLE_SERVER_TO_DEVICE if list_name == "pub_topics" else _WATCHABLE_DEVICE_TO_SERVER
    return suffix in allowed


def validate_topic_list(entries: list[str], list_name: str) -> tuple[str, ...]:
    """Validate an ACL list of MQTT topic filters; duplicates are dropped, order kept."""
    if len(entries) > MAX_TOPICS_PER_LIST:
        raise ValidationFailed(
            f"{list_name} holds at most {MAX_TOPICS_PER_LIST} entries.",
            details={"field": list_name},
        )
    seen: dict[str, None] = {}
    for index, entry in enumerate(entries):
        location = f"{list_name}[{index}]"
        try:
            entry.encode("utf-8")  # MQTT topics are well-formed UTF-8: no lone surrogates
            validate_topic_filter(entry)
        except UnicodeEncodeError:
            raise InvalidTopicFilter(
                f"{location} is not a valid MQTT topic filter: it is not valid UTF-8 text.",
                details={"field": location},
            ) from None
        except MqttInvalidTopic as error:
            raise InvalidTopicFilter(
                f"{location} is not a valid MQTT topic filter: {error}.",
                details={"field": location, "value": entry},
            ) from None
        if entry.startswith("instamsg/") and not _reserved_entry_allowed(entry, list_name):
            raise InvalidTopicFilter(
                f"{location} names a reserved instamsg/ topic that cannot be granted in {list_name}.",
                details={"field": location, "value": entry},
            )
        seen.setdefault(entry, None)
    return tuple(seen)


def _as_flag_string(value: Any, location: str) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if value in (0, 1) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.lower() in ("0", "1", "true", "false"):
        return "1" if value.lower() in ("1", "true") else "0"
    raise ValidationFailed(f'{location} must be "1" or "0".', details={"field": location})


def normalise_provisioning_params(
    params: dict[str, Any], *, previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Validate provisioning parameters (spec §2.5.3) and keep masked write-only values (C15)."""
    result: dict[str, Any] = {}
    for key, value in params.items():
        location = f"provisioning_params.{key}"
        if key not in PROVISIONING_FIELDS:
            raise ValidationFailed(
                f"{location} is not a provisioning parameter.", details={"field": location}
            )
        if key in WRITE_ONLY_PROVISIONING_FIELDS and value == MASK:
            if previous is not None and previous.get(key) is not None:
                result[key] = previous[key]
            continue
        if value is None:
            continue
        if key == "gsm_send_sms":
            result[key] = _as_flag_string(value, location)
            continue
        if not isinstance(value, str):
            raise ValidationFailed(f"{location} must be a string.", details={"field": location})
        result[key] = value
    if previous is not None:
        # Spec C15: an omitted write-only field keeps its stored value; only an explicit null removes it.
        for key in WRITE_ONLY_PROVISIONING_FIELDS:
            if key not in params and previous.get(key) is not None:
                result[key] = previous[key]
    provisioning_id = result.get("provisioning_id")
    if provisioning_id is None:
        raise ValidationFailed(
            "provisioning_params.provisioning_id is required when provisioning_params is given.",
            details={"field": "provisioning_params.provisioning_id"},
        )
    if not PROVISIONING_ID_PATTERN.match(provisioning_id):
        raise ValidationFailed(
            "provisioning_params.provisioning_id must be 1 to 64 printable ASCII characters without spaces.",
            details={"field": "provisioning_params.provisioning_id"},
        )
    provisioning_key = result.get("provisioning_key")
    if (
        provisioning_key is not None
        and provisioning_key != ""
        and not PROVISIONING_KEY_PATTERN.match(provisioning_key)
    ):
        raise ValidationFailed(
            "provisioning_params.provisioning_key must be alphanumeric (0-9, A-Z, a-z), "
            "longer than 5 and shorter than 13 characters.",
            details={"field": "provisioning_params.provisioning_key"},
        )
    if provisioning_key == "":
        result.pop("provisioning_key")
    return result


def public_provisioning_params(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """Provisioning parameters as shown to API callers: write-only fields masked (spec S6)."""
    if params is None:
        return None
    shown: dict[str, Any] = {}
    for key in PROVISIONING_FIELDS:
        if key in WRITE_ONLY_PROVISIONING_FIELDS:
            shown[key] = MASK if params.get(key) else None
        else:
            shown[key] = params.get(key)
    return shown
