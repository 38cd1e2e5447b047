"""Sync trigger "edit": a person changed or added by hand, no longer listed as a file import

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 12:05:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGERS_BEFORE = ("manual", "scheduled", "auto", "cli", "import", "api")
TRIGGERS_AFTER = (*TRIGGERS_BEFORE, "edit")


def _allow(values: Sequence[str]) -> None:
    allowed = ", ".join(f"'{value}'" for value in values)
    # Batch mode: SQLite cannot alter a CHECK constraint, so the table is copied with the new one, and with the
    # AUTOINCREMENT 0017 gave it (run ids are never given twice).
    with op.batch_alter_table("sync_runs", schema=None, table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_sync_runs_sync_trigger"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_sync_runs_sync_trigger"), f"\"trigger\" IN ({allowed})")


def upgrade() -> None:
    """Apply this migration: the edits already recorded (their run says ``edit of EMAIL``) and their undos
    (``undo of run N``) are listed as edits."""
    _allow(TRIGGERS_AFTER)
    connection = op.get_bind()
    local_runs = "FROM sync_runs WHERE \"trigger\" = 'import' AND integration_id IS NULL"
    edits = [row[0] for row in connection.execute(sa.text(f"SELECT id {local_runs} AND message LIKE 'edit of %'"))]
    undos = [row[0] for row in connection.execute(sa.text(f"SELECT id, message {local_runs}"
                                                          " AND message LIKE 'undo of run %'"))
             if row[1] in {f"undo of run {edit}" for edit in edits}]
    for run_id in [*edits, *undos]:
        connection.execute(sa.text("UPDATE sync_runs SET \"trigger\" = 'edit' WHERE id = :id"), {"id": run_id})


def downgrade() -> None:
    """Revert this migration: an edit was recorded as an import before."""
    op.execute("UPDATE sync_runs SET \"trigger\" = 'import' WHERE \"trigger\" = 'edit'")
    _allow(TRIGGERS_BEFORE)
