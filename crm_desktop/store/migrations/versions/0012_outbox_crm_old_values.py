"""Outbox: the CRM values each write overwrites, so a write resumed after a crash is audited with them

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 12:05:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration (writes already queued keep NULL: the link's base stands in for them)."""
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("crm_old_values", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("crm_old_values")
