"""One typed Settings object, built once by the CLI and passed down (never a module-level singleton).

Every setting has a flat environment name `INSTAMSG_<NAME>` (spec C20); docs/configuration.md lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator
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
    max_session_expiry_seconds: int = Field(
        7 * 24 * 3600, ge=0, description="Cap on the MQTT 5 session expiry a client may ask for."
    )
    persistent_session_expiry_seconds: int = Field(
        7 * 24 * 3600, ge=0, description="When an abandoned MQTT 3.1.1 persistent session is dropped."
    )
    max_retained_per_tenant: int = Field(10_000, ge=0, description="Retained messages kept per tenant.")
    max_retained_payload_bytes: int = Field(262_144, ge=0, description="Largest retained payload kept.")
    max_topic_alias: int = Field(64, ge=0, le=65535, description="MQTT 5 topic aliases a client may use.")
    meter_flush_interval_seconds: float = Field(1.0, gt=0, description="How often counters reach storage.")
    # Off by default for now: the history writer costs the broker 3-5x its throughput (docs/benchmarks.md);
    # spec §6.5 wants it on, which it will be once the writer keeps up with the broker.
    mqtt_history: bool = Field(False, description="Store messages published over MQTT in the history.")
    history_flush_interval_seconds: float = Field(
        0.05, gt=0, description="How often history rows of MQTT publishes are written (one transaction)."
    )
    max_message_payload_bytes: int = Field(
        262_144, ge=1, description="Largest payload publishMessage accepts (UTF-8 bytes); larger gets 413."
    )
    shutdown_grace_seconds: float = Field(10.0, ge=0, description="Time allowed to drain on SIGTERM.")

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str | None) -> str | None:
        from instamsg.store.database import normalise_database_url

        return normalise_database_url(value) if value else None

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'instamsg.db').resolve()}"
