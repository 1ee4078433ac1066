"""Configuration sync (spec §8, D7): desired config set over REST, reported config from the device.

Every read-modify-write of a client's config runs inside one `store.write()` transaction, so REST updates
and device reports racing each other never lose a change. Pushes (§8.3) go out after the commit through
the `DevicePushes` port: one message per key on `instamsg/clients/<U>/config/serverToClient`, QoS 1, in
key order. A key stays "unacknowledged" from the moment its desired value changes until the device's
PUBACK of a push carrying that value; on connect, the keys still pending and unacknowledged are pushed
again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from instamsg.domain.clock import utc_now
from instamsg.domain.errors import Unprocessable
from instamsg.domain.messages import iso_utc
from instamsg.protocol.payloads import ConfigReport, config_push_payload, push_form
from instamsg.protocol.ports import ClientLog, ServerLogOnly
from instamsg.services.lookup import find_client
from instamsg.services.ports import DevicePushes, OfflinePushes
from instamsg.store.repositories import configs as config_repository
from instamsg.store.repositories import telemetry as telemetry_repository
from instamsg.store.repositories.configs import ConfigState
from instamsg.store.store import Store

CONFIG_PUSH_KIND: Final = "config/serverToClient"  # protocol.topics.TopicKind.CONFIG_PUSH
CONFIG_PUSH_QOS: Final = 1  # S13


class ConfigNotObject(Unprocessable):
    code = "config_not_object"


@dataclass(frozen=True, slots=True)
class ConfigPush:
    key: str
    payload: bytes
    unsafe_for_c: bool  # needed JSON escaping that C and Java misread (Q10)


def pending_keys(state: ConfigState) -> list[str]:
    """§8.4: desired keys whose reported value differs, both compared in push form (True == "1")."""
    return sorted(
        key
        for key, value in state.desired.items()
        if key not in state.reported or push_form(state.reported[key]) != push_form(value)
    )


def config_representation(state: ConfigState) -> dict[str, Any]:
    """The §8.4 JSON object."""

    def stamp(value: datetime | None) -> str | None:
        return iso_utc(value) if value is not None else None

    return {
        "config": {**state.reported, **state.desired},
        "desired": {
            "values": dict(state.desired),
            "version": state.desired_version,
            "updated_at": stamp(state.desired_updated_at),
        },
        "reported": {
            "values": dict(state.reported),
            "version": state.reported_version,
            "updated_at": stamp(state.reported_updated_at),
        },
        "version": state.version,
        "pending": pending_keys(state),
    }


def _same_value(left: Any, right: Any) -> bool:
    # 1 == True and 1 == 1.0 in Python, but they are different JSON values (and push types).
    return type(left) is type(right) and left == right


def config_from_body(body: Any) -> dict[str, Any]:
    """§8.4: `{"config": {...}}`, or an object without `config` taken as the config itself."""
    if not isinstance(body, dict):
        raise ConfigNotObject("The request body must be a JSON object of config keys and values.")
    config = body.get("config", body)
    if not isinstance(config, dict):
        raise ConfigNotObject(
            "config must be a JSON object of config keys and values.", details={"field": "config"}
        )
    for key in config:
        if not key:
            raise ConfigNotObject("Config keys must not be empty.", details={"field": "config"})
    return config


class ConfigService:
    def __init__(self, store: Store, pushes: DevicePushes | None = None, log: ClientLog | None = None):
        self.store = store
        self.pushes: DevicePushes = pushes if pushes is not None else OfflinePushes()
        self.log: ClientLog = log if log is not None else ServerLogOnly()

    # ---------------------------------------------------------------------------------------------- REST

    async def get_config(self, app_id: str, tenant_id: str, client_id: str) -> dict[str, Any]:
        async with self.store.read() as connection:
            found = await find_client(connection, app_id, tenant_id, client_id)
            state = await config_repository.get_config(connection, found.id)
        return config_representation(state)

    async def update_config(self, app_id: str, tenant_id: str, client_id: str, body: Any) -> dict[str, Any]:
        """Merge the keys into `desired` (null removes one) and push the changed keys if online."""
        async with self.store.write() as connection:
            found = await find_client(connection, app_id, tenant_id, client_id)
            config = config_from_body(body)
            state = await config_repository.lock_config(connection, found.id)
            changed: list[str] = []
            to_push: list[str] = []
            unacknowledged = set(state.unacknowledged)
            pending_before = set(pending_keys(state))
            for key, value in config.items():
                if value is None:
                    if key in state.desired:
                        del state.desired[key]
                        unacknowledged.discard(key)
                        changed.append(key)
                    continue
                if key in state.desired and _same_value(state.desired[key], value):
                    # Unchanged, but the device still differs: repeating the update repeats the push.
                    if key in pending_before:
                        to_push.append(key)
                    continue
                state.desired[key] = value
                unacknowledged.add(key)
                changed.append(key)
                to_push.append(key)
            if changed:
                state.desired_version += 1
                state.version += 1
                state.desired_updated_at = utc_now()
            state.unacknowledged = sorted(unacknowledged & set(state.desired))
            pushes = [self._push_for(state, key) for key in sorted(set(to_push))]
            await config_repository.save_config(connection, state)
        sent = self._send(found.id, found.tenant_id, pushes)
        # C11: when a push has to wait for the next connect, the caller is told so (202, sent false).
        return {**config_representation(state), "sent": len(sent) == len(pushes)}

    async def delete_config(self, app_id: str, tenant_id: str, client_id: str) -> dict[str, Any]:
        """Clear `desired`; nothing is pushed, because devices cannot delete a key (§8.4)."""
        async with self.store.write() as connection:
            found = await find_client(connection, app_id, tenant_id, client_id)
            state = await config_repository.lock_config(connection, found.id)
            if state.desired:
                state.desired = {}
                state.desired_version += 1
                state.version += 1
                state.desired_updated_at = utc_now()
            state.unacknowledged = []
            await config_repository.save_config(connection, state)
        return config_representation(state)

    # ---------------------------------------------------------------------------------------------- device

    async def record_report(self, client_id: str, report: ConfigReport) -> bool:
        """§8.2: update `reported` from a device report; False when the client no longer exists."""
        if report.form == "unparsed" or not report.values:
            return True
        async with self.store.write() as connection:
            if not await telemetry_repository.existing_client_ids(connection, [client_id]):
                return False
            state = await config_repository.lock_config(connection, client_id)
            value_changed = False
            for key, value in report.values.items():
                if key not in state.reported or not _same_value(state.reported[key], value):
                    state.reported[key] = value
                    value_changed = True
            for key, type_text in report.types.items():
                state.key_meta.setdefault(key, {})["type"] = type_text
            for key, description in report.descriptions.items():
                state.key_meta.setdefault(key, {})["desc"] = description
            if value_changed:
                state.reported_version += 1
                state.version += 1
            state.reported_updated_at = utc_now()
            await config_repository.save_config(connection, state)
        return True

    async def acknowledge(self, client_id: str, key: str, value_text: str) -> None:
        """The device PUBACKed a push of `key` carrying `value_text`: acknowledged if still desired."""
        async with self.store.write() as connection:
            if not await telemetry_repository.existing_client_ids(connection, [client_id]):
                return
            state = await config_repository.lock_config(connection, client_id)
            if key not in state.unacknowledged or key not in state.desired:
                return
            if push_form(state.desired[key]) != value_text:
                return  # an older value's PUBACK: the newer one is still on its way
            state.unacknowledged = [other for other in state.unacknowledged if other != key]
            await config_repository.save_config(connection, state)

    async def push_unacknowledged(self, client_id: str, tenant_id: str) -> list[str]:
        """§8.3 on connect: push every pending key not acknowledged since its desired value changed."""
        async with self.store.read() as connection:
            state = await config_repository.get_config(connection, client_id)
        unacknowledged = set(state.unacknowledged)
        pushes = [self._push_for(state, key) for key in pending_keys(state) if key in unacknowledged]
        return self._send(client_id, tenant_id, pushes)

    # ---------------------------------------------------------------------------------------------- pushes

    @staticmethod
    def _push_for(state: ConfigState, key: str) -> ConfigPush:
        description = state.key_meta.get(key, {}).get("desc", "")
        payload, unsafe = config_push_payload(key, state.desired[key], description)
        return ConfigPush(key, payload, unsafe)

    def _send(self, client_id: str, tenant_id: str, pushes: list[ConfigPush]) -> list[str]:
        """Push in key order; the keys sent (none when the client is offline: they stay pending)."""
        sent: list[str] = []
        for push in pushes:
            if not self.pushes.push(client_id, CONFIG_PUSH_KIND, push.payload, CONFIG_PUSH_QOS):
                break
            sent.append(push.key)
            if push.unsafe_for_c:
                self.log.write(
                    client_id,
                    tenant_id,
                    "WARN",
                    f"config key {push.key!r} was pushed with quotes, backslashes or control characters, "
                    "which C and Java devices misread",
                )
        return sent
