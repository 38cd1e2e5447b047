"""Contacts keep their own engagement score, indexed for the People list's score sort

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 10:40:00.000000

Until now a contact showed (and was filtered and sorted by) the score of the lead with its email, and a contact
with no lead had none, however active. Each contact now keeps the score of its own social activity. A contact's
score starts as its lead's, as it showed before; the next event of the person writes the contact's own.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The store's score sort key (crm_desktop.store.models.score_sort_key), written out as in 0011.
SCORE = "coalesce(engagement_score, -1.0)"


def upgrade() -> None:
    """Apply this migration."""
    op.add_column("contacts", sa.Column("engagement_score", sa.Float(), nullable=True))
    op.execute(
        "UPDATE contacts SET engagement_score = "
        "(SELECT leads.engagement_score FROM leads WHERE leads.email = contacts.email)"
    )
    op.create_index("ix_contacts_score_sort", "contacts", [sa.text(SCORE), "id"], unique=False)


def downgrade() -> None:
    """Revert this migration."""
    op.drop_index("ix_contacts_score_sort", table_name="contacts")
    # A plain DROP COLUMN (SQLite 3.35 and later): a batch copy of the table would lose the expression indexes of
    # 0011, which SQLite cannot reflect.
    op.drop_column("contacts", "engagement_score")
