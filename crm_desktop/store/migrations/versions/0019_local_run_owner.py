"""Local runs (imports, edits, undos) name the process doing them, so one killed mid-way is seen as interrupted;
the undo of one change made by hand is listed as an edit, not as a file import

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 15:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UNDOS_OF_ONE_CHANGE = "integration_id IS NULL AND message LIKE 'undo of change %'"


def upgrade() -> None:
    """Apply this migration (a nullable column: SQLite adds it without copying the table)."""
    op.add_column("sync_runs", sa.Column("owner", sa.String(length=255), nullable=True))
    op.execute(f"UPDATE sync_runs SET \"trigger\" = 'edit' WHERE \"trigger\" = 'import' AND {UNDOS_OF_ONE_CHANGE}")


def downgrade() -> None:
    """Revert this migration."""
    op.execute(f"UPDATE sync_runs SET \"trigger\" = 'import' WHERE \"trigger\" = 'edit' AND {UNDOS_OF_ONE_CHANGE}")
    with op.batch_alter_table("sync_runs", schema=None, table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_column("owner")
