"""Integrations: when their credentials were last set, for the rotation reminder

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 06:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_desktop.store.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("keys_set_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=True)
        )
    # An existing integration's keys were set when it was added at the latest (an edit may have replaced them
    # since, which nothing recorded): the oldest date errs towards reminding early rather than never.
    op.execute(sa.text("UPDATE integrations SET keys_set_at = created_at"))


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.drop_column("keys_set_at")
