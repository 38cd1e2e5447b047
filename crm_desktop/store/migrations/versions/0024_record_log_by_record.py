"""The record log gets an index by record (record key, object, id): a person's CRM records and each page a sync
pushes (its refused writes) ask for a record's newest log entry, which read the log whole without it

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 02:40:00.000000

The log grows with every run and is never cut: at 1.5 million rows, one person's newest entry took about 110 ms
to find per integration (0.04 ms with the index).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_index("ix_record_log_record", "sync_record_log", ["record_key", "object", "id"])


def downgrade() -> None:
    """Revert this migration."""
    op.drop_index("ix_record_log_record", table_name="sync_record_log")
