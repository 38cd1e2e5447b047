"""Runs of edits by hand go the direction "edit", no longer "import" (they read as imports in `runs list`)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07 13:55:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration: the edits already recorded (trigger ``edit``, direction ``import``) go ``edit``; their
    undos keep the direction ``undo``. The column has no CHECK constraint, so only the rows change."""
    op.execute("UPDATE sync_runs SET direction = 'edit' WHERE \"trigger\" = 'edit' AND direction = 'import'")


def downgrade() -> None:
    """Revert this migration: an edit's run went the direction ``import`` before."""
    op.execute("UPDATE sync_runs SET direction = 'import' WHERE direction = 'edit'")
