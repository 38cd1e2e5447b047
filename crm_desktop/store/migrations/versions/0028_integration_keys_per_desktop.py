"""Integrations: when their keys were set is kept per desktop, for each desktop's rotation reminder

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07 16:00:00.000000

On a team database each desktop keeps its own copy of the keys in its own keyring: one person replacing the key on
their desktop must not restart the reminder of the others, which still hold the old key.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_desktop.store.models

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration: the date kept so far stands for every desktop (machine ``''``) until it sets its own."""
    op.create_table(
        "integration_keys",
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("machine", sa.String(length=255), nullable=False),
        sa.Column("keys_set_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"], ["integrations.id"], name=op.f("fk_integration_keys_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("integration_id", "machine", name=op.f("pk_integration_keys")),
    )
    op.execute(sa.text(
        "INSERT INTO integration_keys (integration_id, machine, keys_set_at) "
        "SELECT id, '', keys_set_at FROM integrations WHERE keys_set_at IS NOT NULL"))


def downgrade() -> None:
    """Revert this migration: the integrations keep the date keys were last set on any desktop."""
    op.drop_table("integration_keys")
