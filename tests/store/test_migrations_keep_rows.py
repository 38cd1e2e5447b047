"""Migrations keep every row: a table SQLite rebuilds to change a constraint takes no row of another table with it
(on SQLite and, in the PostgreSQL pass, PostgreSQL 15)."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from crm_desktop.store.database import Database, StoreConfigError, migrate_to, migration_connection
from tests.store.test_database import one_row_per_table

pytestmark = pytest.mark.postgres

#: The last revision before 0010, the first migration that rebuilds ``sync_runs`` (the parent of the record log,
#: audit rows, conflicts, outbox, metrics and alerts).
BEFORE_RUN_REBUILDS = "0009"


def _rows_and_links(database: Database) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows as (primary key, then each foreign-key column) at the schema in place now."""
    found: dict[str, list[tuple[object, ...]]] = {}
    with database.engine.connect() as connection:
        inspector = inspect(connection)
        for table in inspector.get_table_names():
            if table == "alembic_version":
                continue
            key_columns = inspector.get_pk_constraint(table)["constrained_columns"]
            linked = {column for key in inspector.get_foreign_keys(table) for column in key["constrained_columns"]}
            listed = ", ".join(f'"{column}"' for column in [*key_columns, *sorted(linked - set(key_columns))])
            order = ", ".join(f'"{column}"' for column in key_columns)
            rows = connection.execute(text(f'SELECT {listed} FROM "{table}" ORDER BY {order}'))
            found[table] = [tuple(row) for row in rows]
    return found


def test_migrating_up_past_the_rebuilds_of_sync_runs_keeps_every_row_and_link(database: Database) -> None:
    one_row_per_table(database)
    migrate_to(database.engine, BEFORE_RUN_REBUILDS, downgrade=True)
    before = _rows_and_links(database)
    assert before["sync_record_log"] and before["alerts"][0][-1] is not None

    database.migrate()

    after = _rows_and_links(database)
    for table, rows in before.items():
        assert [row[: len(rows[0])] for row in after[table]] == rows, table


def test_migrating_down_keeps_the_rows_of_the_tables_it_keeps(database: Database) -> None:
    one_row_per_table(database)
    at_head = _rows_and_links(database)

    migrate_to(database.engine, BEFORE_RUN_REBUILDS, downgrade=True)

    for table, rows in _rows_and_links(database).items():
        assert len(rows) == len(at_head[table]), table


def test_foreign_keys_are_on_again_after_a_migration(sqlite_database: Database) -> None:
    one_row_per_table(sqlite_database)
    migrate_to(sqlite_database.engine, BEFORE_RUN_REBUILDS, downgrade=True)
    sqlite_database.migrate()
    with sqlite_database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_a_migration_that_breaks_a_foreign_key_is_rolled_back(sqlite_database: Database) -> None:
    ids = one_row_per_table(sqlite_database)
    broken = r"3 rows pointing at missing ones \(first: \w+ row 1 -> sync_runs\); nothing was changed"
    with pytest.raises(StoreConfigError, match=broken), migration_connection(sqlite_database.engine) as connection:
        connection.exec_driver_sql("DELETE FROM sync_runs")
    with sqlite_database.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM sync_runs").scalar() == 1
        assert connection.exec_driver_sql(
            "SELECT run_id FROM sync_record_log WHERE id = ?", (ids["sync_record_log"],)).scalar() is not None
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
