"""Sync run ids are never given again (SQLite AUTOINCREMENT), even after an integration's runs were removed

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 08:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _recreate(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return  # PostgreSQL's sequences never give an id twice
    # The table is copied with its rows and ids (foreign keys are off while the store migrates).
    with op.batch_alter_table("sync_runs", recreate="always",
                              table_kwargs={"sqlite_autoincrement": autoincrement}) as batch_op:
        del batch_op


def upgrade() -> None:
    """Apply this migration."""
    _recreate(True)


def downgrade() -> None:
    """Revert this migration."""
    _recreate(False)
