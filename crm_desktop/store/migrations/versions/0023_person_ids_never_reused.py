"""Contact and lead ids are never given again (SQLite AUTOINCREMENT), even after a merge deleted one

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 17:20:00.000000

Without AUTOINCREMENT, SQLite gives a new row the largest id plus one, so the id of a contact deleted by a merge
(when it was the newest) went to the next new contact: that contact took over the deleted one's History, the
undo of its single changes and runs, and its conflicts. The two tables are copied into AUTOINCREMENT tables with
their rows and ids (foreign keys are off while the store migrates), and each table's sequence starts after the
largest id the audit log, the conflicts, the outbox or the CRM links still name, so an id freed before this
migration is not given again either. PostgreSQL's sequences never give an id twice: nothing changes there.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A batch copy of a table loses its expression indexes (SQLite's reflection skips them, with a warning): the People
# list's sort indexes of 0011 and 0014 are dropped before the copy and made again after it, their expressions
# written out as there.
NAME = "lower(coalesce(first_name, '') || ' ' || coalesce(last_name, ''))"
COMPANY = "lower(coalesce(company, ''))"
SCORE = "coalesce(engagement_score, -1.0)"
SORT_INDEXES = {
    "contacts": (("ix_contacts_name_sort", NAME), ("ix_contacts_company_sort", COMPANY),
                 ("ix_contacts_score_sort", SCORE)),
    "leads": (("ix_leads_name_sort", NAME), ("ix_leads_company_sort", COMPANY), ("ix_leads_score_sort", SCORE)),
}
#: The record kind each table's rows are named by elsewhere (``audit_log.entity``, the ``object`` columns).
KINDS = {"contacts": "contact", "leads": "lead"}


def _recreate(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # All dropped first: copying leads reflects contacts too (its foreign key), indexes included.
    for indexes in SORT_INDEXES.values():
        for name, _expression in indexes:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    for table in SORT_INDEXES:
        with op.batch_alter_table(table, recreate="always",
                                  table_kwargs={"sqlite_autoincrement": autoincrement}) as batch_op:
            del batch_op
        if autoincrement:
            _start_after_named_ids(table)
    for table, indexes in SORT_INDEXES.items():
        for name, expression in indexes:
            op.execute(f"CREATE INDEX {name} ON {table} ({expression}, id)")


def _start_after_named_ids(table: str) -> None:
    """Start ``table``'s sequence after the largest of its ids and of those other tables still name."""
    kind = KINDS[table]
    named = " UNION ALL ".join([
        f"SELECT max(id) AS id FROM {table}",
        f"SELECT max(CAST(entity_id AS INTEGER)) FROM audit_log WHERE entity = '{kind}'",
        *(f"SELECT max(local_id) FROM {other} WHERE object = '{kind}'" for other in ("conflicts", "outbox",
                                                                                      "crm_links")),
    ])
    op.execute(f"DELETE FROM sqlite_sequence WHERE name = '{table}'")
    op.execute(f"INSERT INTO sqlite_sequence (name, seq) SELECT '{table}', coalesce(max(id), 0) FROM ({named})")


def upgrade() -> None:
    """Apply this migration."""
    _recreate(True)


def downgrade() -> None:
    """Revert this migration."""
    _recreate(False)
