"""Migration 0018: a run of an edit by hand is recorded as such ("edit"), the edits 0017 recorded as imports (and
their undos) become edits, and a downgrade calls them imports again."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from crm_desktop.store.database import Database, migrate_to

INSERT_RUN = ("INSERT INTO sync_runs (\"trigger\", status, direction, dry_run, created, updated, unchanged, failed, "
              "conflicts, conflicts_decided, api_calls, total, started_at, message) "
              "VALUES (:trigger, 'succeeded', :direction, false, 0, 0, 0, 0, 0, 0, 0, 0, '2026-12-05 10:00:00', "
              ":message)")


def triggers(database: Database) -> list[tuple[str, str]]:
    with database.engine.connect() as connection:
        return [(row[0], row[1]) for row in connection.execute(
            text("SELECT message, \"trigger\" FROM sync_runs ORDER BY id"))]


def test_0018_lists_edits_as_edits_and_its_downgrade_as_imports(blank_database: Database) -> None:
    migrate_to(blank_database.engine, "0017")
    with blank_database.engine.begin() as connection:
        for message, direction in (("import of people.csv", "import"), ("edit of ada@example.com", "import"),
                                   ("undo of run 1", "undo"), ("undo of run 2", "undo")):
            connection.execute(text(INSERT_RUN), {"trigger": "import", "direction": direction, "message": message})
    blank_database.migrate()
    assert triggers(blank_database) == [
        ("import of people.csv", "import"), ("edit of ada@example.com", "edit"),
        ("undo of run 1", "import"), ("undo of run 2", "edit")]
    if blank_database.is_sqlite:
        with blank_database.engine.connect() as connection:
            table = connection.execute(text("SELECT sql FROM sqlite_master WHERE name = 'sync_runs'")).scalar_one()
        assert "AUTOINCREMENT" in table, "the copy made for the new CHECK lost 0017's AUTOINCREMENT"

    migrate_to(blank_database.engine, "0017", downgrade=True)
    assert {trigger for _, trigger in triggers(blank_database)} == {"import"}
    with pytest.raises(IntegrityError), blank_database.engine.begin() as connection:
        connection.execute(text(INSERT_RUN), {"trigger": "edit", "direction": "import", "message": "x"})
