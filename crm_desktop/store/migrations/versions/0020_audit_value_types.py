"""Audit rows keep the type of a value beside its text (a custom field's 42, true), so an undo puts back the number
or the yes/no, not its text; rows written before keep NULL and are read as text, as they were

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 19:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration (nullable columns: SQLite adds them without copying the table)."""
    op.add_column("audit_log", sa.Column("old_type", sa.String(length=8), nullable=True))
    op.add_column("audit_log", sa.Column("new_type", sa.String(length=8), nullable=True))


def downgrade() -> None:
    """Revert this migration (the values' text stays)."""
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("new_type")
        batch_op.drop_column("old_type")
