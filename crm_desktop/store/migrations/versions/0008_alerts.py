"""Alerts: failed runs, refused sign-ins, low quotas and data-quality issues, kept for the Alerts view

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:55:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_desktop.store.models

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ALERT_KINDS = ("run_failed", "auth_failed", "quota_low", "refused_records", "duplicates_found")


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(*ALERT_KINDS, name="alert_kind", native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column("integration_id", sa.Integer(), nullable=True),
        sa.Column("integration_name", sa.String(length=80), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("raised_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"], ["integrations.id"], name=op.f("fk_alerts_integration_id_integrations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(["run_id"], ["sync_runs.id"], name=op.f("fk_alerts_run_id_sync_runs"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(
        "ix_alerts_kind_integration_raised", "alerts", ["kind", "integration_id", "raised_at"], unique=False
    )


def downgrade() -> None:
    """Revert this migration."""
    op.drop_index("ix_alerts_kind_integration_raised", table_name="alerts")
    op.drop_table("alerts")
