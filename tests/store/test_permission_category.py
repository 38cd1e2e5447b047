"""Migration 0013: the error category "permission" and the alert kind "permission_missing" are stored wherever a
category or a kind is (on SQLite and, in the PostgreSQL pass, PostgreSQL 15); and every value of every enum the
models declare fits its column's CHECK constraint after the migrations, so a new value cannot ship without one."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Enum, text
from sqlalchemy.exc import IntegrityError

from crm_desktop.domain.alerts import AlertKind
from crm_desktop.domain.outcomes import ErrorCategory
from crm_desktop.store import database as database_module
from crm_desktop.store.database import Database, migrate_to
from crm_desktop.store.models import Base
from tests.store.test_database import ENUM_COLUMNS, one_row_per_table

pytestmark = pytest.mark.postgres

#: Where a category or an alert kind is stored, and the value each gets for lack of a permission.
PERMISSION_COLUMNS = (
    ("sync_record_log", "error_category", ErrorCategory.PERMISSION.value, "auth"),
    ("sync_attempt_metrics", "error_category", ErrorCategory.PERMISSION.value, "auth"),
    ("alerts", "kind", AlertKind.PERMISSION_MISSING.value, "auth_failed"),
)


def _set(database: Database, table: str, column: str, value: str, row_id: int) -> None:
    with database.engine.begin() as connection:
        # Raw SQL, so only the database's CHECK constraint stands in the way.
        connection.execute(text(f"UPDATE {table} SET {column} = :value WHERE id = :id"), {"value": value, "id": row_id})


def _stored(database: Database, table: str, column: str, row_id: int) -> str:
    with database.engine.connect() as connection:
        return str(connection.execute(text(f"SELECT {column} FROM {table} WHERE id = :id"), {"id": row_id}).scalar())


def _down_to_before_0013(database: Database) -> None:
    config = database_module._alembic_config(database.engine)
    before = ScriptDirectory.from_config(config).get_revision("0013").down_revision
    assert isinstance(before, str)
    migrate_to(database.engine, before, downgrade=True)


def test_permission_is_stored_after_0013_and_made_a_sign_in_error_again_by_a_downgrade(database: Database) -> None:
    ids = one_row_per_table(database)
    for table, column, value, _ in PERMISSION_COLUMNS:
        _set(database, table, column, value, ids[table])
        assert _stored(database, table, column, ids[table]) == value

    _down_to_before_0013(database)

    for table, column, value, before in PERMISSION_COLUMNS:
        assert _stored(database, table, column, ids[table]) == before
        with pytest.raises(IntegrityError):
            _set(database, table, column, value, ids[table])
    database.migrate()
    for table, column, value, _ in PERMISSION_COLUMNS:
        _set(database, table, column, value, ids[table])
        with pytest.raises(IntegrityError):
            _set(database, table, column, "permissions", ids[table])


@pytest.mark.parametrize(("table", "column"), ENUM_COLUMNS, ids=[f"{t}.{c}" for t, c in ENUM_COLUMNS])
def test_every_value_the_models_declare_fits_the_migrated_column(database: Database, table: str, column: str) -> None:
    ids = one_row_per_table(database)
    declared = Base.metadata.tables[table].c[column].type
    assert isinstance(declared, Enum)

    for value in declared.enums:
        _set(database, table, column, value, ids[table])
        assert _stored(database, table, column, ids[table]) == value
