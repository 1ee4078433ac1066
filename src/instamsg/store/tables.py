"""Every table of the InstaMsg schema; the single source of truth for migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as naive UTC on every backend and returned timezone-aware.

    SQLite has no time zone type, so one representation for both backends keeps comparisons and
    ordering identical.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


app = Table(
    "app",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("client_key", String(64), nullable=False, unique=True),
    Column("secret_hash", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

access_token = Table(
    "access_token",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("app_id", String(36), ForeignKey("app.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("expires_at", UTCDateTime(), nullable=False, index=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

tenant = Table(
    "tenant",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("app_id", String(36), ForeignKey("app.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(255), nullable=False),
    Column("description", Text(), nullable=False, default=""),
    Column("max_clients", BigInteger(), nullable=False),
    Column("max_messages", BigInteger(), nullable=False),
    Column("messages_used", BigInteger(), nullable=False, default=0),
    Column("active", Boolean(), nullable=False, default=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

client = Table(
    "client",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("type", String(16), nullable=False),
    Column("name", String(255), nullable=False),
    Column("description", Text(), nullable=False, default=""),
    Column("sub_topics", JSON(), nullable=False),
    Column("pub_topics", JSON(), nullable=False),
    Column("secure_cert_enabled", Boolean(), nullable=False, default=False),
    Column("blocked", Boolean(), nullable=False, default=False),
    Column("auth_token", String(64), nullable=False),
    # Unique server-wide: a provisioning CONNECT carries no tenant (spec S2).
    Column("provisioning_id", String(64), nullable=True, unique=True),
    Column("provisioning_params", JSON(), nullable=True),
    Column("provisioned_at", UTCDateTime(), nullable=True),
    Column("profile", String(16), nullable=True),
    Column("last_connect_at", UTCDateTime(), nullable=True),
    Column("last_disconnect_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

Index("ix_client_tenant_created", client.c.tenant_id, client.c.created_at)
Index("ix_tenant_app_created", tenant.c.app_id, tenant.c.created_at)


# Persistent MQTT sessions of standard clients (clean session 0 / session expiry > 0): a snapshot row
# written when the session goes offline, plus one row per message queued to it afterwards.
broker_session = Table(
    "broker_session",
    metadata,
    Column("client_uuid", String(36), ForeignKey("client.id", ondelete="CASCADE"), primary_key=True),
    Column("tenant_id", String(36), nullable=False, index=True),
    Column("state", JSON(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

broker_session_message = Table(
    "broker_session_message",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column(
        "client_uuid",
        String(36),
        ForeignKey("broker_session.client_uuid", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("message", JSON(), nullable=False),
)

# Traffic counters per client and UTC hour, added to by the metering flush (getClientMetrics reads them).
client_traffic_hourly = Table(
    "client_traffic_hourly",
    metadata,
    Column("client_id", String(36), ForeignKey("client.id", ondelete="CASCADE"), primary_key=True),
    Column("hour_start", UTCDateTime(), primary_key=True),
    Column("tenant_id", String(36), nullable=False, index=True),
    Column("messages_in", BigInteger(), nullable=False, default=0),
    Column("bytes_in", BigInteger(), nullable=False, default=0),
    Column("messages_out", BigInteger(), nullable=False, default=0),
    Column("bytes_out", BigInteger(), nullable=False, default=0),
    Column("p2p_sent", BigInteger(), nullable=False, default=0, server_default="0"),
    Column("p2p_received", BigInteger(), nullable=False, default=0, server_default="0"),
    Column("connects", BigInteger(), nullable=False, default=0, server_default="0"),
    Column("disconnects", BigInteger(), nullable=False, default=0, server_default="0"),
    Column("online_seconds", BigInteger(), nullable=False, default=0, server_default="0"),
    Column("errors", BigInteger(), nullable=False, default=0, server_default="0"),
)

# Message history (spec §6.5): application messages accepted from clients over MQTT (written by the
# batched HistoryWriter) and REST publishMessage with save=true (written in the request's transaction).
message = Table(
    "message",
    metadata,
    Column("id", String(36), primary_key=True),
    # Not indexed: no query filters on it (a tenant's rows go with its clients, ON DELETE CASCADE), and
    # every index costs each history insert a B-tree update.
    Column("tenant_id", String(36), nullable=False),
    Column("client_id", String(36), ForeignKey("client.id", ondelete="CASCADE"), nullable=False),
    Column("type", String(8), nullable=False),
    # p2p: the addressee (the inbox UUID), listed by getMessages as `received` for it (spec §2.4.3).
    Column("peer_id", String(36), nullable=True),
    Column("topic", Text(), nullable=False),
    # UTF-8 text; undecodable MQTT payload bytes are stored with U+FFFD replacement characters.
    Column("payload", Text(), nullable=False),
    # The REST 1-3 scale (spec C23).
    Column("qos", Integer(), nullable=False),
    Column("client_message_id", Integer(), nullable=True),
    Column("duplicate", Boolean(), nullable=False, default=False),
    Column("saved", Boolean(), nullable=False, default=True),
    Column("source", String(8), nullable=False),
    Column("delivered_to", Integer(), nullable=False, default=0),
    Column("releases", JSON(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

Index("ix_message_client_created", message.c.client_id, message.c.created_at, message.c.id)
# Only p2p rows have a peer: MQTT history rows (almost all) skip this index.
Index(
    "ix_message_peer_created",
    message.c.peer_id,
    message.c.created_at,
    message.c.id,
    sqlite_where=message.c.peer_id.isnot(None),
    postgresql_where=message.c.peer_id.isnot(None),
)


# ---- device data (spec §2.4.5, §2.4.6, §8, §9, §10, §11) -------------------------------------------
# Time-series rows of devices (sessions, network logs, logs) are written by batched writers off the
# broker's hot path; ids are server-generated strings, ordering is by (time, id).

client_session = Table(
    "client_session",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("client_id", String(36), ForeignKey("client.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", String(36), nullable=False, index=True),
    Column("connect_time", UTCDateTime(), nullable=False),
    Column("disconnect_time", UTCDateTime(), nullable=True),
    Column("transport", String(8), nullable=False),
    Column("remote_address", String(64), nullable=False, default=""),
    Column("protocol", String(16), nullable=False),
    Column("profile", String(16), nullable=False),
    Column("client_identifier", Text(), nullable=False, default=""),
    Column("keep_alive", Integer(), nullable=False, default=0),
    Column("clean_session", Boolean(), nullable=False, default=True),
    Column("disconnect_reason", String(32), nullable=True),
    Column("data", JSON(), nullable=True),
)
Index("ix_client_session_client_connect", client_session.c.client_id, client_session.c.connect_time)

client_network_log = Table(
    "client_network_log",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("client_id", String(36), ForeignKey("client.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", String(36), nullable=False, index=True),
    Column("time", UTCDateTime(), nullable=False),
    Column("network_interface", Text(), nullable=True),
    Column("antenna_status", Text(), nullable=True),
    Column("signal_strength", Integer(), nullable=True),
    # Hexified (lowercase, no separators) for the exact-match filter; the original text stays in data.
    Column("mac_id", String(64), nullable=True),
    Column("imei", String(64), nullable=True),
    Column("msisdn", String(64), nullable=True),
    Column("iccid", String(64), nullable=True),
    Column("source_topic", Text(), nullable=False),
    Column("data", JSON(), nullable=False),
)
Index("ix_client_network_log_client_time", client_network_log.c.client_id, client_network_log.c.time)

client_log = Table(
    "client_log",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("client_id", String(36), ForeignKey("client.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", String(36), nullable=False, index=True),
    Column("time", UTCDateTime(), nullable=False),
    Column("level", String(8), nullable=False),
    Column("creator", String(16), nullable=False),
    Column("message", Text(), nullable=False),
)
Index("ix_client_log_client_time", client_log.c.client_id, client_log.c.time)

# The latest device-reported state of a client (getClientInfo) and its remote-logging request.
client_device_state = Table(
    "client_device_state",
    metadata,
    Column("client_id", String(36), ForeignKey("client.id", ondelete="CASCADE"), primary_key=True),
    Column("info", JSON(), nullable=True),
    Column("info_updated_at", UTCDateTime(), nullable=True),
    Column("session", JSON(), nullable=True),
    Column("network", JSON(), nullable=True),
    Column("library_name", String(16), nullable=True),
    Column("library_version", String(64), nullable=True),
    Column("client_identifier", Text(), nullable=True),
    Column("server_logging_until", UTCDateTime(), nullable=True),
    Column("server_logging_watcher", String(64), nullable=True),
)

# Configuration sync (spec §8, D7): desired and reported values with versions, per-key metadata.
client_config = Table(
    "client_config",
    metadata,
    Column("client_id", String(36), ForeignKey("client.id", ondelete="CASCADE"), primary_key=True),
    Column("desired", JSON(), nullable=False),
    Column("desired_version", BigInteger(), nullable=False, default=0),
    Column("desired_updated_at", UTCDateTime(), nullable=True),
    Column("reported", JSON(), nullable=False),
    Column("reported_version", BigInteger(), nullable=False, default=0),
    Column("reported_updated_at", UTCDateTime(), nullable=True),
    # {key: {"type": "0"|"1", "desc": "..."}} as last reported by a per-key device.
    Column("key_meta", JSON(), nullable=False),
    # Desired keys pushed and not yet acknowledged (PUBACK) since their value last changed.
    Column("unacknowledged", JSON(), nullable=False),
    Column("version", BigInteger(), nullable=False, default=0),
)

# Server → device messages waiting for the client's next connect (updateCert, spec §12.3).
client_pending_push = Table(
    "client_pending_push",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("client_id", String(36), ForeignKey("client.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("topic", Text(), nullable=False),
    Column("payload", Text(), nullable=False),
    Column("qos", Integer(), nullable=False, default=1),
    Column("created_at", UTCDateTime(), nullable=False),
)

# Client certificates issued by the server CA (D11, S11); private keys are never kept.
client_certificate = Table(
    "client_certificate",
    metadata,
    Column("serial", String(64), primary_key=True),
    Column("client_id", String(36), ForeignKey("client.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("not_after", UTCDateTime(), nullable=False),
    # active | pending (reset, until first used) | revoked
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

# Files stored for a client (spec §10, D6), keyed by (client, filename); the bytes live in the file store.
client_file = Table(
    "client_file",
    metadata,
    Column("file_id", String(36), primary_key=True),
    Column("client_id", String(36), ForeignKey("client.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", String(36), nullable=False, index=True),
    Column("filename", String(255), nullable=False),
    Column("size", BigInteger(), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("source", String(8), nullable=False),
    Column("device_status", String(8), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
Index("ux_client_file_client_filename", client_file.c.client_id, client_file.c.filename, unique=True)
