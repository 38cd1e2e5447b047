"""Migration 0010: a run can end "offline"; runs from before keep their status, and a downgrade makes offline runs
failed ones (on SQLite and, in the PostgreSQL pass, PostgreSQL 15)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from crm_desktop.domain.models import Integration, SyncDirection
from crm_desktop.store.database import Database, migrate_to
from crm_desktop.store.models import SyncRunStatus, SyncTrigger
from crm_desktop.store.repositories import IntegrationStore
from crm_desktop.store.sync_store import SyncStore


def _run_at(database: Database, status: str) -> None:
    with database.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO sync_runs (trigger, status, direction, dry_run, created, updated, unchanged, failed, "
            "conflicts, conflicts_decided, api_calls, total, started_at) VALUES ('manual', :status, 'both', false, "
            "0, 0, 0, 0, 0, 0, 0, 0, CURRENT_TIMESTAMP)"), {"status": status})


def test_offline_is_a_run_status_after_0010_and_not_before(blank_database: Database) -> None:
    migrate_to(blank_database.engine, "0009")
    _run_at(blank_database, "failed")
    with pytest.raises(IntegrityError):
        _run_at(blank_database, "offline")
    blank_database.migrate()
    _run_at(blank_database, "offline")
    with pytest.raises(IntegrityError):
        _run_at(blank_database, "asleep")
    with blank_database.engine.begin() as connection:
        assert [row[0] for row in connection.execute(text("SELECT status FROM sync_runs ORDER BY id"))] == [
            "failed", "offline"]
    migrate_to(blank_database.engine, "0009", downgrade=True)
    with blank_database.engine.begin() as connection:
        assert [row[0] for row in connection.execute(text("SELECT status FROM sync_runs ORDER BY id"))] == [
            "failed", "failed"]


def test_the_store_finishes_a_run_offline(database: Database) -> None:
    integration = IntegrationStore(database).add(Integration(provider="hubspot", name="hs"))
    assert integration.id is not None
    store = SyncStore(database)
    run_id = store.start_run(integration.id, SyncTrigger.MANUAL, SyncDirection.BOTH)
    store.finish_run(run_id, SyncRunStatus.OFFLINE, message="the CRM could not be reached")
    assert store.get_run(run_id).status is SyncRunStatus.OFFLINE
