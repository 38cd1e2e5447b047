"""The outbox gets an index by record (integration, object, local id, id): the People list's "failed" filter and a
person's CRM records ask for a record's newest write, which read the whole outbox per person without it

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 13:35:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_index("ix_outbox_record", "outbox", ["integration_id", "object", "local_id", "id"])


def downgrade() -> None:
    """Revert this migration."""
    op.drop_index("ix_outbox_record", table_name="outbox")
