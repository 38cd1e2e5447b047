"""Sync trigger "api": a run another program started through the local API, no longer counted as manual

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 14:35:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGERS_BEFORE = ("manual", "scheduled", "auto", "cli", "import")
TRIGGERS_AFTER = (*TRIGGERS_BEFORE, "api")


def _allow(values: Sequence[str]) -> None:
    allowed = ", ".join(f"'{value}'" for value in values)
    # Batch mode: SQLite cannot alter a CHECK constraint, so the table is copied with the new one.
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_sync_runs_sync_trigger"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_sync_runs_sync_trigger"), f"\"trigger\" IN ({allowed})")


def upgrade() -> None:
    """Apply this migration."""
    _allow(TRIGGERS_AFTER)


def downgrade() -> None:
    """Revert this migration: a run the local API started was recorded as manual before."""
    op.execute("UPDATE sync_runs SET \"trigger\" = 'manual' WHERE \"trigger\" = 'api'")
    _allow(TRIGGERS_BEFORE)
