"""Imports are runs (no integration, trigger ``import``); leads keep social profiles and custom fields

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 06:05:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TRIGGERS = ("manual", "scheduled", "auto", "cli")


def _trigger_type(values: Sequence[str]) -> sa.Enum:
    return sa.Enum(*values, name="sync_trigger", native_enum=False, create_constraint=True, length=32)


def _drop_trigger_check_on_sqlite(batch_op: Any) -> None:
    """Drop the trigger's CHECK before its type changes, where only the table copy would keep the old one.

    On PostgreSQL the column's ALTER drops and re-creates the named CHECK itself, so dropping it first makes
    that fail ("constraint ... does not exist").
    """
    if op.get_bind().dialect.name == "sqlite":
        batch_op.drop_constraint(op.f("ck_sync_runs_sync_trigger"), type_="check")


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("social_profiles", sa.JSON(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("custom_fields", sa.JSON(), server_default="{}", nullable=False))
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        _drop_trigger_check_on_sqlite(batch_op)
        batch_op.alter_column("integration_id", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column(
            "trigger", existing_type=_trigger_type(_TRIGGERS), type_=_trigger_type((*_TRIGGERS, "import")),
            existing_nullable=False,
        )


def downgrade() -> None:
    """Revert this migration (import runs go: they belong to no integration)."""
    op.execute("DELETE FROM sync_runs WHERE integration_id IS NULL OR \"trigger\" = 'import'")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        _drop_trigger_check_on_sqlite(batch_op)
        batch_op.alter_column("integration_id", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column(
            "trigger", existing_type=_trigger_type((*_TRIGGERS, "import")), type_=_trigger_type(_TRIGGERS),
            existing_nullable=False,
        )
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_column("custom_fields")
        batch_op.drop_column("social_profiles")
