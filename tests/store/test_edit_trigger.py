"""Migration 0018: a run of an edit by hand is recorded as such ("edit"), the edits 0017 recorded as imports (and
their undos) become edits, and a downgrade calls them imports again. Migration 0026: their direction too."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from crm_desktop.domain.models import SyncDirection
from crm_desktop.store.database import Database, migrate_to
from crm_desktop.store.sync_store import SyncStore

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


def directions(database: Database) -> list[tuple[str, str, str]]:
    with database.engine.connect() as connection:
        return [(row[0], row[1], row[2]) for row in connection.execute(
            text("SELECT message, \"trigger\", direction FROM sync_runs ORDER BY id"))]


def test_0026_gives_the_edits_recorded_before_it_the_direction_edit_and_its_downgrade_import(
        blank_database: Database) -> None:
    migrate_to(blank_database.engine, "0025")
    with blank_database.engine.begin() as connection:
        for message, trigger, direction in (("import of people.csv", "import", "import"),
                                            ("edit of ada@example.com", "edit", "import"),
                                            ("undo of run 2", "edit", "undo"), ("undo of run 1", "import", "undo")):
            connection.execute(text(INSERT_RUN), {"trigger": trigger, "direction": direction, "message": message})
    blank_database.migrate()
    assert directions(blank_database) == [
        ("import of people.csv", "import", "import"), ("edit of ada@example.com", "edit", "edit"),
        ("undo of run 2", "edit", "undo"), ("undo of run 1", "import", "undo")]
    # The store reads them back as such (the column's type turns the text into the enum).
    runs = SyncStore(blank_database).list_runs(None, limit=10)
    assert {(run.message, run.direction) for run in runs} >= {("edit of ada@example.com", SyncDirection.EDIT)}
    migrate_to(blank_database.engine, "0025", downgrade=True)
    assert [direction for *_, direction in directions(blank_database)] == ["import", "import", "undo", "undo"]
