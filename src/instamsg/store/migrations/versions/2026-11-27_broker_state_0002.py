"""Broker state at rest: persistent MQTT sessions, their queued messages, hourly traffic counters.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 03:19:23.438416
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_session",
        sa.Column("client_uuid", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_uuid"],
            ["client.id"],
            name=op.f("fk_broker_session_client_uuid_client"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_uuid", name=op.f("pk_broker_session")),
    )
    with op.batch_alter_table("broker_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_broker_session_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "client_traffic_hourly",
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("hour_start", sa.DateTime(), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("messages_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("messages_out", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["client.id"],
            name=op.f("fk_client_traffic_hourly_client_id_client"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "hour_start", name=op.f("pk_client_traffic_hourly")),
    )
    with op.batch_alter_table("client_traffic_hourly", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_client_traffic_hourly_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "broker_session_message",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("client_uuid", sa.String(length=36), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_uuid"],
            ["broker_session.client_uuid"],
            name=op.f("fk_broker_session_message_client_uuid_broker_session"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broker_session_message")),
    )
    with op.batch_alter_table("broker_session_message", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_broker_session_message_client_uuid"), ["client_uuid"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("broker_session_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_broker_session_message_client_uuid"))

    op.drop_table("broker_session_message")
    with op.batch_alter_table("client_traffic_hourly", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_client_traffic_hourly_tenant_id"))

    op.drop_table("client_traffic_hourly")
    with op.batch_alter_table("broker_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_broker_session_tenant_id"))

    op.drop_table("broker_session")
