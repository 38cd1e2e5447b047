"""Sync metrics: one row per sync attempt and one per integration and hour, for the Sync Monitor

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 08:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_desktop.store.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUN_STATUSES = ("running", "succeeded", "partial", "failed", "cancelled")
ERROR_CATEGORIES = ("auth", "rate_limit", "validation", "duplicate", "not_found", "network", "server")


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "sync_attempt_metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum(*RUN_STATUSES, name="attempt_status", native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column(
            "error_category",
            sa.Enum(
                *ERROR_CATEGORIES, name="attempt_error_category", native_enum=False, create_constraint=True, length=32
            ),
            nullable=True,
        ),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("contacts_synced", sa.Integer(), nullable=False),
        sa.Column("leads_synced", sa.Integer(), nullable=False),
        sa.Column("records_failed", sa.Integer(), nullable=False),
        sa.Column("api_calls", sa.Integer(), nullable=False),
        sa.Column("api_errors", sa.Integer(), nullable=False),
        sa.Column("quota_limit", sa.Integer(), nullable=True),
        sa.Column("quota_remaining", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"], ["integrations.id"],
            name=op.f("fk_sync_attempt_metrics_integration_id_integrations"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sync_runs.id"], name=op.f("fk_sync_attempt_metrics_run_id_sync_runs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_attempt_metrics")),
    )
    op.create_index(
        "ix_sync_attempt_metrics_integration_at", "sync_attempt_metrics", ["integration_id", "at"], unique=False
    )
    op.create_table(
        "sync_hourly_metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("hour", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("runs_succeeded", sa.Integer(), nullable=False),
        sa.Column("contacts_synced", sa.Integer(), nullable=False),
        sa.Column("leads_synced", sa.Integer(), nullable=False),
        sa.Column("records_failed", sa.Integer(), nullable=False),
        sa.Column("api_calls", sa.Integer(), nullable=False),
        sa.Column("api_errors", sa.Integer(), nullable=False),
        sa.Column("latency_seconds", sa.Float(), nullable=False),
        sa.Column("latency_events", sa.Integer(), nullable=False),
        sa.Column("quota_used", sa.Integer(), nullable=True),
        sa.Column("quota_limit", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"], ["integrations.id"],
            name=op.f("fk_sync_hourly_metrics_integration_id_integrations"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_hourly_metrics")),
        sa.UniqueConstraint("integration_id", "hour", name="integration_hour"),
    )
    op.create_index(op.f("ix_sync_hourly_metrics_hour"), "sync_hourly_metrics", ["hour"], unique=False)


def downgrade() -> None:
    """Revert this migration."""
    op.drop_index(op.f("ix_sync_hourly_metrics_hour"), table_name="sync_hourly_metrics")
    op.drop_table("sync_hourly_metrics")
    op.drop_index("ix_sync_attempt_metrics_integration_at", table_name="sync_attempt_metrics")
    op.drop_table("sync_attempt_metrics")
