"""On a team database each desktop keeps its own copy of an integration's keys, so each has its own key age: one
person replacing the key on their desktop restarts that desktop's rotation reminder, not the others'. Migration 0028
keeps the date known before for every desktop until it sets its keys again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from crm_desktop.app.integrations import IntegrationService
from crm_desktop.domain.models import Integration, Provider
from crm_desktop.store.database import Database, migrate_to
from crm_desktop.store.models import utcnow
from crm_desktop.store.process_owner import MACHINE_NAME_ENV
from crm_desktop.store.repositories import IntegrationStore
from crm_desktop.vault.ephemeral import EphemeralKeyring
from crm_desktop.vault.keyring_vault import Vault

pytestmark = pytest.mark.postgres

OLD_KEY = {"token": "pat-na1-00000000-0000-0000-0000-000000000001"}
NEW_KEY = {"token": "pat-na1-00000000-0000-0000-0000-000000000002"}


def desktop(database: Database, machine: str, monkeypatch: pytest.MonkeyPatch) -> IntegrationService:
    """One desktop of the team: the shared database, its own keyring, and its machine name as the app finds it."""
    with monkeypatch.context() as env:
        env.setenv(MACHINE_NAME_ENV, machine)
        return IntegrationService(IntegrationStore(database), Vault(backend=EphemeralKeyring()), rotate_after_days=90)


def test_replacing_the_key_on_one_desktop_leaves_the_other_desktops_reminder(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    laptop1, laptop2 = desktop(database, "laptop-1", monkeypatch), desktop(database, "laptop-2", monkeypatch)
    added = laptop1.add(Integration(provider=Provider.HUBSPOT, name="hs"), OLD_KEY)
    assert added.id is not None
    long_ago = utcnow() - timedelta(days=120)
    laptop1._store.mark_keys_set(added.id, long_ago)
    # The second desktop stores the same key in its own keyring (the window's Edit… with the key).
    laptop2.update(added, OLD_KEY)
    laptop2._store.mark_keys_set(added.id, long_ago)
    for service in (laptop1, laptop2):
        age = service.key_age(service.get("hs"))
        assert age is not None and (age.days, age.rotation_due) == (120, True)

    laptop1.update(laptop1.get("hs"), NEW_KEY)  # `crm-desktop integration update` on the first desktop

    mine = laptop1.key_age(laptop1.get("hs"))
    assert mine is not None and (mine.days, mine.rotation_due) == (0, False)
    theirs = laptop2.key_age(laptop2.get("hs"))
    assert theirs is not None and (theirs.days, theirs.rotation_due) == (120, True), "their keyring holds the old key"
    # A key set anywhere may reach another CRM account: every desktop reads the account again before a run.
    assert laptop2.crm_account(laptop2.get("hs")).keys_set_at == mine.set_at


def test_0028_keeps_the_date_known_before_for_every_desktop_until_it_sets_its_own(blank_database: Database) -> None:
    migrate_to(blank_database.engine, "0027")
    set_at = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
    with blank_database.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO integrations (provider, name, description, scopes, sync_config, keys_set_at, "
                 "created_at, updated_at) VALUES ('hubspot', 'hs', '', '[]', '{}', :at, :at, :at)"),
            {"at": set_at})
    blank_database.migrate()
    laptop1, laptop2 = IntegrationStore(blank_database, "laptop-1"), IntegrationStore(blank_database, "laptop-2")
    integration_id = laptop1.get("hs").id
    assert integration_id is not None
    assert laptop1.keys_set_here(integration_id) == laptop2.keys_set_here(integration_id) == set_at

    now = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    laptop1.mark_keys_set(integration_id, now)
    assert (laptop1.keys_set_here(integration_id), laptop2.keys_set_here(integration_id)) == (now, set_at)
    laptop2.mark_keys_set(integration_id, now + timedelta(hours=1))
    assert laptop2.keys_set_here(integration_id) == now + timedelta(hours=1)
    assert laptop1.keys_set_here(integration_id) == now

    migrate_to(blank_database.engine, "0027", downgrade=True)
    with blank_database.engine.connect() as connection:
        kept = connection.execute(text("SELECT keys_set_at FROM integrations")).scalar_one()
    assert kept is not None  # the date keys were last set on any desktop


def test_a_removed_integration_takes_its_desktops_dates_along(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    laptop1 = desktop(database, "laptop-1", monkeypatch)
    added = laptop1.add(Integration(provider=Provider.HUBSPOT, name="hs"), OLD_KEY)
    laptop1.remove("hs")
    again = laptop1.add(Integration(provider=Provider.HUBSPOT, name="hs"), OLD_KEY)
    assert again.id is not None and added.id is not None
    with database.engine.connect() as connection:
        rows = connection.execute(text("SELECT integration_id FROM integration_keys")).scalars().all()
    assert rows == [again.id]
