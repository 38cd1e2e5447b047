"""Integrations remember which CRM account their links are in (HubSpot portal, Pipedrive company, Salesforce org)

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 04:45:00.000000

A token of another account put in later would otherwise send the links' record ids to that account, where
Pipedrive's and HubSpot's ids of unrelated people can be the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_desktop.store.models

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table("integrations") as batch:
        batch.add_column(sa.Column("crm_account_id", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("crm_account_seen_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("integrations") as batch:
        batch.drop_column("crm_account_seen_at")
        batch.drop_column("crm_account_id")
