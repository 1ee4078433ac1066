"""One typed Settings object, built once by the CLI and passed down (never a module-level singleton).

Every setting has a flat environment name `INSTAMSG_<NAME>` (spec C20); docs/configuration.md lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def parse_port(value: Any) -> int | None:
    """A TCP port; 0 picks a free one and `off` disables the listener."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("off", "none", "")):
        return None
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError("a port is 0 to 65535, or off")
    return port


def parse_names(value: Any) -> Any:
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    return value


Port = Annotated[int | None, BeforeValidator(parse_port)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INSTAMSG_", extra="forbid")

    data_dir: Path = Field(Path("instamsg-data"), description="Directory for the SQLite file, CA and files.")
    database_url: str | None = Field(
        None, description="sqlite:// or postgresql:// URL; default SQLite in data dir."
    )
    host: str = Field("0.0.0.0", description="Address every listener binds to.")
    http_port: Port = 8080
    mqtt_port: Port = 1883
    mqtts_port: Port = 8883
    ws_port: Port = 8083
    wss_port: Port = 8084
    public_url: str | None = Field(None, description="Base URL of the HTTP service, for download URLs.")
    tls_cert: Path | None = Field(
        None, description="PEM server certificate; default issued by the data dir CA."
    )
    tls_key: Path | None = Field(None, description="PEM key of --tls-cert.")
    tls_hostname: Annotated[list[str], NoDecode, BeforeValidator(parse_names)] = Field(
        default_factory=list, description="Extra names for the generated server certificate."
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")

    access_token_lifetime_seconds: int = Field(3600, ge=60, description="Lifetime of OAuth2 access tokens.")
    max_request_body_bytes: int = Field(1_048_576, ge=1024, description="Largest accepted REST request body.")

    max_packet_size: int = Field(1_048_576, ge=1024, description="Largest MQTT packet accepted or sent.")
    max_inflight_messages: int = Field(
        32, ge=1, le=65535, description="QoS 1/2 in-flight window per session."
    )
    max_queued_messages: int = Field(1000, ge=1, description="Offline/overflow queue bound per session.")
    queue_overflow_policy: Literal["drop_new", "drop_oldest"] = Field(
        "drop_new", description="What a full session queue drops; every drop is counted and logged."
    )
    queue_qos0_offline: bool = Field(False, description="Also queue QoS 0 messages for offline sessions.")
    max_connections: int = Field(100_000, ge=1, description="Sockets beyond this are closed at once.")
    connect_timeout_seconds: float = Field(10.0, gt=0, description="Time a new socket has to send CONNECT.")
    provisioning_close_delay_seconds: float = Field(
        30.0, ge=0, description="A provisioning connection is closed gracefully this long after PROVACK."
    )
    provisioning_attempts_per_minute_per_peer: float = Field(
        60.0, ge=0, description="Provisioning attempts per IP address a minute (then rc 3); 0: no limit."
    )
    provisioning_attempts_per_minute_per_id: float = Field(
        10.0, ge=0, description="Provisioning attempts per provisioning id a minute (then rc 3); 0: no limit."
    )
    provisioning_throttle_max_entries: int = Field(
        10_000, ge=1, description="Addresses and ids the provisioning throttle remembers (each)."
    )
    max_session_expiry_seconds: int = Field(
        7 * 24 * 3600, ge=0, description="Cap on the MQTT 5 session expiry a client may ask for."
    )
    persistent_session_expiry_seconds: int = Field(
        7 * 24 * 3600, ge=0, description="When an abandoned MQTT 3.1.1 persistent session is dropped."
    )
    max_retained_per_tenant: int = Field(10_000, ge=0, description="Retained messages kept per tenant.")
    max_retained_payload_bytes: int = Field(262_144, ge=0, description="Largest retained payload kept.")
    max_topic_alias: int = Field(64, ge=0, le=65535, description="MQTT 5 topic aliases a client may use.")
    p2p_reply_window_seconds: float = Field(
        3600.0, ge=0, description="How long a client may reply to a p2p sender without a pub_topics entry."
    )
    legacy_push_delay_seconds: float = Field(
        11.0, ge=0, description="Server pushes to paced legacy-A connections start this long after CONNACK."
    )
    legacy_push_spacing_seconds: float = Field(
        0.6, ge=0, description="Minimum gap between two server pushes to a paced legacy-A connection."
    )
    meter_flush_interval_seconds: float = Field(1.0, gt=0, description="How often counters reach storage.")
    telemetry_flush_interval_seconds: float = Field(
        0.2, gt=0, description="How often device info and network reports are written (one transaction)."
    )
    config_push_on_connect_delay_seconds: float = Field(
        2.0, ge=0, description="Pending config keys are pushed this long after a device connects."
    )
    activity_flush_interval_seconds: float = Field(
        0.1, gt=0, description="How often session records and client logs are written (one transaction)."
    )
    server_logging_default_seconds: int = Field(
        600, ge=1, description="Remote logging duration when PUT server_logging gives none."
    )
    server_logging_max_seconds: int = Field(
        86_400, ge=1, description="Longest remote logging duration PUT server_logging accepts."
    )
    # On as spec §6.5 requires; operators who need no MQTT history can save its cost (docs/benchmarks.md).
    mqtt_history: bool = Field(
        True, description="Store messages published over MQTT (pub, p2p, webhook) in the history."
    )
    history_flush_interval_seconds: float = Field(
        0.05, gt=0, description="How often history rows of MQTT publishes are written (one transaction)."
    )
    history_retention_days: float = Field(
        30.0, ge=0, description="Stored messages older than this are deleted (spec §6.5); 0 keeps all."
    )
    max_message_payload_bytes: int = Field(
        262_144, ge=1, description="Largest payload publishMessage accepts (UTF-8 bytes); larger gets 413."
    )
    auth_token_reset_disconnect_seconds: float = Field(
        30.0, ge=0, description="reset_auth_token closes old connections at most this long after the push."
    )
    files_dir: Path | None = Field(None, description="Directory of stored files; default <data_dir>/files.")
    max_file_bytes: int = Field(
        16 * 1024 * 1024, ge=1, description="Largest file a device or uploadFile may store; larger gets 413."
    )
    file_fetch_timeout_seconds: float = Field(
        30.0, ge=0, description="downloadFile waits this long for an online device to upload a missing file."
    )
    command_timeout_seconds: float = Field(
        60.0, gt=0, description="How long the server waits for a device's reply to its command (S14)."
    )
    shutdown_grace_seconds: float = Field(10.0, ge=0, description="Time allowed to drain on SIGTERM.")

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str | None) -> str | None:
        from instamsg.store.database import normalise_database_url

        return normalise_database_url(value) if value else None

    @field_validator("mqtt_port", "mqtts_port", "ws_port", "wss_port")
    @classmethod
    def _distinct_ports(cls, port: int | None, info: ValidationInfo) -> int | None:
        """Two listeners cannot bind one port, except WS on the HTTP port (spec S1); 0 (a free port)
        and off may repeat. Listeners are checked against the ones declared before them."""
        if not port:
            return port
        for earlier in ("http_port", "mqtt_port", "mqtts_port", "ws_port"):
            if earlier == info.field_name:
                break
            if info.data.get(earlier) == port and (earlier, info.field_name) != ("http_port", "ws_port"):
                raise ValueError(f"port {port} is also {earlier}; only ws_port may equal http_port")
        return port

    @property
    def ws_shares_http_port(self) -> bool:
        """MQTT over WebSocket and HTTP on one port: upgrade requests are MQTT (spec S1, C5)."""
        return bool(self.ws_port) and self.ws_port == self.http_port

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'instamsg.db').resolve()}"
