"""What points at a run is indexed by it: deleting a run (pruning the run history) sets these to no run, which read
each whole table per run deleted without an index (two seconds a transaction of 200 runs in a store of 50,000)

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07 19:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Each table's column naming a run (ON DELETE SET NULL), and its new index.
INDEXES = (
    ("sync_runs", "undoes_run_id"),
    ("conflicts", "run_id"),
    ("outbox", "run_id"),
    ("sync_attempt_metrics", "run_id"),
    ("alerts", "run_id"),
)


def upgrade() -> None:
    """Apply this migration."""
    for table, column in INDEXES:
        op.create_index(f"ix_{table}_{column}", table, [column])


def downgrade() -> None:
    """Revert this migration."""
    for table, column in INDEXES:
        op.drop_index(f"ix_{table}_{column}", table_name=table)
