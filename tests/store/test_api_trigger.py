"""Migration 0015: a run the local API started is recorded as such ("api"), and goes back to "manual" on downgrade."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from crm_desktop.store.database import Database, migrate_to

INSERT_RUN = ("INSERT INTO sync_runs (\"trigger\", status, direction, dry_run, created, updated, unchanged, failed, "
              "conflicts, conflicts_decided, api_calls, total, started_at) "
              "VALUES (:trigger, 'succeeded', 'both', false, 0, 0, 0, 0, 0, 0, 0, 0, '2026-12-04 10:00:00')")


def test_0015_allows_the_api_trigger_and_its_downgrade_calls_those_runs_manual(blank_database: Database) -> None:
    blank_database.migrate()
    with blank_database.engine.begin() as connection:
        connection.execute(text(INSERT_RUN), {"trigger": "api"})
        connection.execute(text(INSERT_RUN), {"trigger": "cli"})
    migrate_to(blank_database.engine, "0014", downgrade=True)
    with blank_database.engine.connect() as connection:
        triggers = sorted(connection.execute(text("SELECT \"trigger\" FROM sync_runs")).scalars())
    assert triggers == ["cli", "manual"]
    with pytest.raises(IntegrityError), blank_database.engine.begin() as connection:
        connection.execute(text(INSERT_RUN), {"trigger": "api"})  # 0014's CHECK refuses it
    blank_database.migrate()
    with blank_database.engine.begin() as connection:
        connection.execute(text(INSERT_RUN), {"trigger": "api"})
