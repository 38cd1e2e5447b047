"""People forgotten at their request: a digest of each one's email, so no pull, import or event brings them back

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07 16:40:00.000000

Forgetting a person (GDPR right to erasure) deletes every row about them; this table keeps only the SHA-256 of
their normalised email and when they were forgotten. A downgrade drops it: what was forgotten stays deleted, but
the next pull or import may bring the person back.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_desktop.store.models

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "forgotten_people",
        sa.Column("email_hash", sa.String(length=64), nullable=False),
        sa.Column("forgotten_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("email_hash", name=op.f("pk_forgotten_people")),
    )


def downgrade() -> None:
    """Revert this migration."""
    op.drop_table("forgotten_people")
