"""Alerts about one desktop only (its keyring lacks an integration's key) name that desktop, and show only there

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07 14:00:00.000000

On a team database every desktop lists the alerts; one desktop's missing key is not the others' to fix.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration: the alerts kept so far concern every desktop (no machine)."""
    op.add_column("alerts", sa.Column("machine", sa.String(length=255), nullable=True))


def downgrade() -> None:
    """Revert this migration: a desktop's own alerts are dropped (they would show on every desktop again)."""
    op.execute("DELETE FROM alerts WHERE machine IS NOT NULL")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("machine")
