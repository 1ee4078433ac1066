"""Device telemetry ingest: info, metadata, network and signal-info reports (spec §2.4.6, §11, Q16).

Every report is attributed to the publishing connection's client, whatever UUID the topic names (§6.2
item 3). Handlers run on the broker's hot path: they parse leniently (§11.2), normalise (§11.3) and append
to the batched `TelemetryWriter`; nothing here awaits the database. An unparsable payload is stored as
`{"raw": "<text>"}` and logged, never an error.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from instamsg.domain.clock import utc_now
from instamsg.protocol.payloads import normalise_device_report, parse_lenient
from instamsg.protocol.topics import CONNECTION_PREFIX, SpecialTopic, TopicKind
from instamsg.store.telemetry import ConnectionFacts, TelemetryWriter

if TYPE_CHECKING:
    from instamsg.broker.channel import Channel
    from instamsg.broker.message import Message
    from instamsg.protocol.plugin import DeviceProtocol


LIBRARY_NAMES: Final = ("python", "c", "java", "js", "telit", "unknown")
# Telit modules connect with their IMEI as the MQTT ClientIdentifier; C and Java send `EMPTY`.
_IMEI: Final = re.compile(r"[0-9]{15}")
_WEB_LISTENERS: Final = frozenset({"ws", "wss"})
_VERSION_LIMIT: Final = 64  # client_device_state.library_version
_IDENTIFIER_LIMIT: Final = 64  # mac_id, imei, msisdn and iccid columns


def _language_library(language: str) -> str | None:
    text = language.strip().lower()
    if text.startswith("python"):
        return "python"
    if text in ("js", "javascript", "node", "nodejs", "node.js") or text.startswith("javascript"):
        return "js"
    if text.startswith("java"):
        return "java"
    if text in ("c", "c++", "c/c++", "ansi c", "ansi-c"):
        return "c"
    if "telit" in text:
        return "telit"
    return None


def detect_library(
    info: dict[str, Any], facts: ConnectionFacts, previous: str | None
) -> tuple[str, str | None]:
    """§2.4.6 (project decision): the device library, from the reported language, the ClientIdentifier
    and the connection profile, in that order of trust; the version from `instamsg_version`, else
    `client_version`."""
    name: str | None = None
    language = info.get("programming_language")
    if isinstance(language, str):
        name = _language_library(language)
    identifier = facts.client_identifier
    if name is None and _IMEI.fullmatch(identifier):
        name = "telit"
    if name is None and identifier.upper() == "EMPTY":
        # Java publishes `instamsg/client/info`; C only ever sends metadata on the connection topics.
        if facts.connection_attributed and facts.topic_kind == TopicKind.INFO.value:
            name = "java"
        else:
            name = previous if previous in ("c", "java") else "c"
    if name is None and facts.profile == "legacy-a":
        name = "js" if facts.listener in _WEB_LISTENERS else "python"
    if name is None:
        name = previous if previous in LIBRARY_NAMES else "unknown"
    version: str | None = None
    for key in ("instamsg_version", "client_version"):
        value = info.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value).strip():
            version = str(value).strip()[:_VERSION_LIMIT]
            break
    return name, version


def _text_or_none(value: Any, limit: int | None = None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str | int | float):
        text = str(value)
    else:
        return None
    # PostgreSQL text refuses NUL; the original stays in the row's JSON data.
    text = text.replace("\x00", "\ufffd")
    return text[:limit] if limit is not None else text


def _parsed(channel: Channel, message: Message) -> dict[str, Any]:
    report = parse_lenient(message.payload)
    if set(report) == {"raw"}:
        # Throttled per client: a device repeating a broken payload must not flood the log.
        channel.node.throttled_warning(
            ("telemetry_unparsable", channel.client_uuid),
            "telemetry_unparsable client=%s topic=%s bytes=%d",
            channel.client_uuid,
            message.topic,
            len(message.payload),
        )
        return report
    return normalise_device_report(report)


def network_log_row(
    client_id: str, tenant_id: str, topic: str, report: dict[str, Any], time: Any
) -> dict[str, Any]:
    """The client_network_log row of one normalised network or signal-info report (spec §2.4.5)."""
    signal = report.get("signal_strength")
    mac = report.get("mac_id_normalised")
    data = {key: value for key, value in report.items() if key != "mac_id_normalised"}
    return {
        "client_id": client_id,
        "tenant_id": tenant_id,
        "time": time,
        "network_interface": _text_or_none(report.get("network_interface")),
        "antenna_status": _text_or_none(report.get("antenna_status")),
        "signal_strength": signal if isinstance(signal, int) and not isinstance(signal, bool) else None,
        "mac_id": _text_or_none(mac, _IDENTIFIER_LIMIT) if isinstance(mac, str) else None,
        "imei": _text_or_none(report.get("imei"), _IDENTIFIER_LIMIT),
        "msisdn": _text_or_none(report.get("msisdn"), _IDENTIFIER_LIMIT),
        "iccid": _text_or_none(report.get("iccid"), _IDENTIFIER_LIMIT),
        "source_topic": topic,
        "data": data,
    }


class Telemetry:
    """The device→server handlers of the telemetry topics."""

    def __init__(self, writer: TelemetryWriter) -> None:
        self.writer = writer

    def on_info(self, channel: Channel, special: SpecialTopic, message: Message) -> None:
        report = _parsed(channel, message)
        report.pop("mac_id_normalised", None)
        facts = ConnectionFacts(
            profile=channel.profile.name,
            listener=channel.connection.listener,
            client_identifier=channel.client_id,
            topic_kind=special.kind.value,
            connection_attributed=message.topic.startswith(CONNECTION_PREFIX),
        )
        self.writer.append_info(channel.client_uuid, report, utc_now(), facts)

    def on_network(self, channel: Channel, special: SpecialTopic, message: Message) -> None:
        report = _parsed(channel, message)
        self.writer.append_network(
            network_log_row(channel.client_uuid, channel.tenant_id, message.topic, report, utc_now())
        )


def install_telemetry(devices: DeviceProtocol, writer: TelemetryWriter) -> Telemetry:
    """Register the telemetry handlers; the writer should detect libraries with `detect_library`."""
    telemetry = Telemetry(writer)
    devices.on_device_message(TopicKind.INFO, telemetry.on_info)
    devices.on_device_message(TopicKind.METADATA, telemetry.on_info)
    devices.on_device_message(TopicKind.NETWORK, telemetry.on_network)
    devices.on_device_message(TopicKind.SIGNALINFO, telemetry.on_network)
    return telemetry
