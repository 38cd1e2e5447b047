"""Sync runs: conflicts decided by rule, and the run an undo undid

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 05:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("conflicts_decided", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("undoes_run_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_sync_runs_undoes_run_id_sync_runs"), "sync_runs", ["undoes_run_id"], ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_sync_runs_undoes_run_id_sync_runs"), type_="foreignkey")
        batch_op.drop_column("undoes_run_id")
        batch_op.drop_column("conflicts_decided")
