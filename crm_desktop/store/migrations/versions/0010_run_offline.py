"""Sync runs: the status "offline", for a run that ended because the CRM could not be reached

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 09:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = ("running", "succeeded", "partial", "failed", "cancelled")
AFTER = (*BEFORE, "offline")
#: The tables whose status column holds a run status, and the name of its CHECK constraint (before the
#: ``ck_<table>_`` prefix the naming convention adds).
STATUS_COLUMNS = (("sync_runs", "sync_run_status"), ("sync_attempt_metrics", "attempt_status"))


def _allow(statuses: Sequence[str]) -> None:
    allowed = ", ".join(f"'{status}'" for status in statuses)
    for table, constraint in STATUS_COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f(f"ck_{table}_{constraint}"), type_="check")
            batch_op.create_check_constraint(batch_op.f(f"ck_{table}_{constraint}"), f"status IN ({allowed})")


def upgrade() -> None:
    """Apply this migration."""
    _allow(AFTER)


def downgrade() -> None:
    """Revert this migration (offline runs become failed ones)."""
    op.execute("UPDATE sync_runs SET status = 'failed' WHERE status = 'offline'")
    op.execute("UPDATE sync_attempt_metrics SET status = 'failed' WHERE status = 'offline'")
    _allow(BEFORE)
