"""Migration 0027: alerts about one desktop (its keyring lacks a key) are listed on that desktop alone; the alerts
kept before it concern every desktop, and a downgrade drops the desktops' own."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from crm_desktop.domain.alerts import AlertKind
from crm_desktop.store.alerts_store import AlertStore
from crm_desktop.store.database import Database, migrate_to

AT = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)


def test_0027_keeps_earlier_alerts_for_every_desktop_and_lists_a_desktop_s_own_there_alone(
        blank_database: Database) -> None:
    migrate_to(blank_database.engine, "0026")
    with blank_database.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO alerts (kind, integration_name, message, raised_at, last_seen_at, repeats) "
            "VALUES ('run_failed', 'hs', 'HubSpot is down', :at, :at, 0)"), {"at": AT})
    blank_database.migrate()
    laptop1, laptop2 = AlertStore(blank_database, "laptop-1"), AlertStore(blank_database, "laptop-2")
    assert [a.message for a in laptop1.recent()] == [a.message for a in laptop2.recent()] == ["HubSpot is down"]

    own = laptop2.add(AlertKind.RUN_FAILED, None, "hs", "no key on laptop-2", None, AT, own=True)
    assert own.machine == "laptop-2"
    assert [a.message for a in laptop2.recent()] == ["no key on laptop-2", "HubSpot is down"]
    assert [a.message for a in laptop1.recent()] == ["HubSpot is down"]
    assert (laptop1.count(), laptop2.count()) == (1, 2)
    shared = laptop2.latest(AlertKind.RUN_FAILED, None)  # a repeat of the shared alert is counted on it, not on own
    assert shared is not None and shared.message == "HubSpot is down"
    assert laptop2.latest(AlertKind.RUN_FAILED, None, own=True) == own
    assert laptop1.latest(AlertKind.RUN_FAILED, None, own=True) is None

    migrate_to(blank_database.engine, "0026", downgrade=True)
    with blank_database.engine.connect() as connection:
        assert [row[0] for row in connection.execute(text("SELECT message FROM alerts"))] == ["HubSpot is down"]
