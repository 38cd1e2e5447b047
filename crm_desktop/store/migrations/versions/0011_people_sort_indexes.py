"""People list: indexes for the keyset sorts by name, company and a lead's score

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 09:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The expressions are the store's sort keys (crm_desktop.store.models.name_sort_key and the others), written out
# here so that this migration keeps building the same indexes whatever the models become.
NAME = "lower(coalesce(first_name, '') || ' ' || coalesce(last_name, ''))"
COMPANY = "lower(coalesce(company, ''))"
LEAD_SCORE = "coalesce(engagement_score, -1.0)"
#: (index, table, sort expression); each index ends with the id, the keyset's tie-break.
SORT_INDEXES = (
    ("ix_contacts_name_sort", "contacts", NAME),
    ("ix_contacts_company_sort", "contacts", COMPANY),
    ("ix_leads_name_sort", "leads", NAME),
    ("ix_leads_company_sort", "leads", COMPANY),
    ("ix_leads_score_sort", "leads", LEAD_SCORE),
)


def upgrade() -> None:
    """Apply this migration."""
    for name, table, expression in SORT_INDEXES:
        op.create_index(name, table, [sa.text(expression), "id"], unique=False)


def downgrade() -> None:
    """Revert this migration."""
    for name, table, _expression in reversed(SORT_INDEXES):
        op.drop_index(name, table_name=table)
