"""Error category "permission" and alert kind "permission_missing": a CRM user or app lacking a permission

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 12:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CATEGORIES_BEFORE = ("auth", "rate_limit", "validation", "duplicate", "not_found", "network", "server")
CATEGORIES_AFTER = (*CATEGORIES_BEFORE, "permission")
KINDS_BEFORE = ("run_failed", "auth_failed", "quota_low", "refused_records", "duplicates_found")
KINDS_AFTER = (*KINDS_BEFORE, "permission_missing")
#: (table, column, name of its CHECK constraint before the ``ck_<table>_`` prefix the naming convention adds).
CATEGORY_COLUMNS = (
    ("sync_record_log", "error_category", "error_category"),
    ("sync_attempt_metrics", "error_category", "attempt_error_category"),
)
KIND_COLUMN = ("alerts", "kind", "alert_kind")


def _allow(column: tuple[str, str, str], values: Sequence[str]) -> None:
    table, name, constraint = column
    allowed = ", ".join(f"'{value}'" for value in values)
    # Batch mode: SQLite cannot alter a CHECK constraint, so the table is copied with the new one.
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f(f"ck_{table}_{constraint}"), type_="check")
        batch_op.create_check_constraint(batch_op.f(f"ck_{table}_{constraint}"), f"{name} IN ({allowed})")


def upgrade() -> None:
    """Apply this migration."""
    for column in CATEGORY_COLUMNS:
        _allow(column, CATEGORIES_AFTER)
    _allow(KIND_COLUMN, KINDS_AFTER)


def downgrade() -> None:
    """Revert this migration: a permission refusal was counted as a refused sign-in before."""
    op.execute("UPDATE sync_record_log SET error_category = 'auth' WHERE error_category = 'permission'")
    op.execute("UPDATE sync_attempt_metrics SET error_category = 'auth' WHERE error_category = 'permission'")
    op.execute("UPDATE alerts SET kind = 'auth_failed' WHERE kind = 'permission_missing'")
    for column in CATEGORY_COLUMNS:
        _allow(column, CATEGORIES_BEFORE)
    _allow(KIND_COLUMN, KINDS_BEFORE)
