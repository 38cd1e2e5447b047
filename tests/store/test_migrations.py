"""Alembic migrations: head builds the ORM's schema, SQLite files are backed up first, newer schemas are refused."""

from __future__ import annotations

import json
import multiprocessing
import re
import shutil
import subprocess
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from crm_desktop.domain.models import Contact, SyncDirection
from crm_desktop.domain.social import EngagementEvent, EventAction
from crm_desktop.store import database as database_module
from crm_desktop.store import social_store
from crm_desktop.store.database import (
    Database,
    StoreConfigError,
    current_revision,
    head_revision,
    migrate_to,
    sqlite_url,
)
from crm_desktop.store.models import Base, SyncTrigger
from crm_desktop.store.repositories import ContactStore, IntegrationStore
from crm_desktop.store.sync_store import SyncStore

pytestmark = pytest.mark.postgres

STORE_TABLES = {
    "integrations",
    "integration_keys",
    "contacts",
    "social_profiles",
    "leads",
    "touchpoints",
    "field_mappings",
    "sync_runs",
    "sync_record_log",
    "audit_log",
    "conflicts",
    "crm_links",
    "outbox",
    "sync_cursors",
    "sync_locks",
    "social_identities",
    "conversations",
    "messages",
    "campaigns",
    "conversions",
    "workspace_settings",
    "sync_attempt_metrics",
    "sync_hourly_metrics",
    "alerts",
    "workflow_events",
    "forgotten_people",
}
#: The newest revision this version of the app ships.
SHIPPED_HEAD = "0030"

# A second revision, as a later version of the app would ship it: one new nullable column.
REVISION_0002 = '''"""Contacts get a nickname.

Revision ID: 9001
Revises: {head}
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table("contacts") as batch_op:
        batch_op.add_column(sa.Column("nickname", sa.String(length=40), nullable=True))


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("contacts") as batch_op:
        batch_op.drop_column("nickname")
'''


def ship_revision_0002(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the app's migrations a copy of the shipped ones plus revision 0002, as the next version would be."""
    shutil.copytree(database_module.MIGRATIONS_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "versions" / "9001_contact_nickname.py").write_text(
        REVISION_0002.replace("{head}", SHIPPED_HEAD), encoding="utf-8"
    )
    monkeypatch.setattr(database_module, "MIGRATIONS_DIR", folder)


def test_the_shipped_head_is_the_newest_revision() -> None:
    assert head_revision() == SHIPPED_HEAD


def test_upgrade_head_on_an_empty_database_builds_every_table(blank_database: Database) -> None:
    assert current_revision(blank_database.engine) is None

    report = blank_database.migrate()

    assert (report.from_revision, report.to_revision, report.backup) == (None, head_revision(), None)
    assert current_revision(blank_database.engine) == head_revision()
    tables = set(inspect(blank_database.engine).get_table_names())
    assert tables == STORE_TABLES | {"alembic_version"}
    assert set(Base.metadata.tables) == STORE_TABLES


# The People list's sort indexes are on expressions: SQLAlchemy cannot reflect those from SQLite (it warns and skips
# them, and so does Alembic), and PostgreSQL hands them back rewritten with casts and parentheses Alembic does not
# see through. tests/store/test_people_sort_indexes.py checks them on both instead: built, dropped, and used.
def not_a_sort_index(_object: object, name: str | None, type_: str, _reflected: bool, _compare_to: object) -> bool:
    return not (type_ == "index" and name is not None and name.endswith("_sort"))


def test_migrated_schema_matches_the_orm_metadata(database: Database) -> None:
    with database.engine.connect() as connection, warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"Skipped unsupported reflection of expression-based index ix_\w+_sort")
        warnings.filterwarnings("ignore", r"autogenerate skipping metadata-specified expression-based index")
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": not_a_sort_index})
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


def test_upgrade_at_head_does_nothing(database: Database) -> None:
    ContactStore(database).save(Contact(email="ana@example.com"))

    report = database.migrate()

    assert (report.from_revision, report.to_revision, report.backup) == (head_revision(), head_revision(), None)
    assert ContactStore(database).count() == 1


def test_a_database_newer_than_the_app_is_refused(database: Database) -> None:
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))

    with pytest.raises(StoreConfigError, match=r"schema '0099', newer than this version"):
        database.migrate()

    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0099"


def test_no_column_is_named_like_a_secret(database: Database) -> None:
    secret_like = re.compile(r"token|secret|passw|api_?key|credential", re.IGNORECASE)
    inspector = inspect(database.engine)
    named = [
        f"{table}.{column['name']}"
        for table in inspector.get_table_names()
        for column in inspector.get_columns(table)
        if secret_like.search(column["name"])
    ]
    in_metadata = [str(column) for table in Base.metadata.tables.values() for column in table.c]

    assert named == []
    assert [column for column in in_metadata if secret_like.search(column.split(".")[1])] == []
    assert len(in_metadata) > 100  # the check above did look at every column


def test_migrating_an_existing_sqlite_file_backs_it_up_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data" / "crm.db"
    old_app = Database(sqlite_url(path))
    assert old_app.migrate().to_revision == SHIPPED_HEAD
    ContactStore(old_app).save(Contact(email="ana@example.com", first_name="Ana"))
    old_app.close()
    ship_revision_0002(tmp_path / "migrations", monkeypatch)

    new_app = Database(sqlite_url(path))
    try:
        report = new_app.migrate()
        assert (report.from_revision, report.to_revision) == (SHIPPED_HEAD, "9001")
        assert current_revision(new_app.engine) == "9001"
        assert "nickname" in {column["name"] for column in inspect(new_app.engine).get_columns("contacts")}
    finally:
        new_app.close()

    backup = report.backup
    assert backup is not None
    assert backup.parent == path.parent
    assert re.fullmatch(rf"crm\.db\.{SHIPPED_HEAD}\.\d{{8}}T\d{{12}}Z\.bak", backup.name)
    old_copy = Database(sqlite_url(backup))
    try:
        assert current_revision(old_copy.engine) == SHIPPED_HEAD
        assert "nickname" not in {column["name"] for column in inspect(old_copy.engine).get_columns("contacts")}
        saved = ContactStore(old_copy).find("ana@example.com")
        assert saved is not None
        assert saved.first_name == "Ana"
    finally:
        old_copy.close()


def test_a_new_sqlite_file_is_not_backed_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ship_revision_0002(tmp_path / "migrations", monkeypatch)
    path = tmp_path / "fresh.db"
    store = Database(sqlite_url(path))
    try:
        report = store.migrate()
    finally:
        store.close()

    assert (report.from_revision, report.to_revision, report.backup) == (None, "9001", None)
    assert sorted(p.name for p in tmp_path.iterdir() if ".bak" in p.name) == []


def test_integrations_added_before_keys_were_dated_count_from_when_they_were_added(blank_database: Database) -> None:
    migrate_to(blank_database.engine, "0005")
    added = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    with blank_database.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO integrations (provider, name, description, scopes, sync_config, created_at, updated_at)"
                 " VALUES ('hubspot', 'hs', '', '[]', '{}', :added, :added)"),
            {"added": added},
        )
    blank_database.migrate()
    integration = IntegrationStore(blank_database).get("hs")
    assert integration.keys_set_at == added


def test_a_user_and_password_in_a_stored_base_url_are_taken_out(blank_database: Database) -> None:
    migrate_to(blank_database.engine, "0015")
    added = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    with blank_database.engine.begin() as connection:
        for name, url in (("leaky", "https://user:hunter2@api.example.com/crm"), ("plain", "https://api.example.com"),
                          ("at-in-path", "https://api.example.com/@team")):
            connection.execute(
                text("INSERT INTO integrations (provider, name, description, scopes, sync_config, base_url, "
                     "created_at, updated_at) VALUES ('hubspot', :name, '', '[]', '{}', :url, :added, :added)"),
                {"name": name, "url": url, "added": added},
            )
    blank_database.migrate()  # the app refuses such an address now: loading it would fail
    store = IntegrationStore(blank_database)
    assert [store.get(n).base_url for n in ("leaky", "plain", "at-in-path")] == [
        "https://api.example.com/crm", "https://api.example.com", "https://api.example.com/@team"]
    with blank_database.engine.connect() as connection:
        assert "hunter2" not in str(connection.execute(text("SELECT base_url FROM integrations")).all())


def test_a_run_id_is_never_given_again_after_its_integration_was_removed(blank_database: Database) -> None:
    migrate_to(blank_database.engine, "0016")
    added = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    with blank_database.engine.begin() as connection:
        for name in ("kept", "gone"):
            connection.execute(
                text("INSERT INTO integrations (provider, name, description, scopes, sync_config, created_at, "
                     "updated_at) VALUES ('hubspot', :name, '', '[]', '{}', :added, :added)"),
                {"name": name, "added": added})
        ids = dict(connection.execute(text("SELECT name, id FROM integrations")).all())
        for integration in ("kept", "gone"):
            connection.execute(
                text("INSERT INTO sync_runs (integration_id, \"trigger\", status, direction, dry_run, started_at, "
                     "created, updated, unchanged, failed, conflicts, conflicts_decided, total, api_calls) VALUES "
                     "(:id, 'manual', 'succeeded', 'push', false, :added, 0, 0, 0, 0, 0, 0, 0, 0)"),
                {"id": ids[integration], "added": added})
        connection.execute(text("INSERT INTO sync_record_log (run_id, object, record_key, outcome, at) "
                                "VALUES (1, 'contact', 'ann@example.com', 'created', :added)"), {"added": added})
    blank_database.migrate()  # the runs table is copied with its ids and rows
    IntegrationStore(blank_database).remove("gone")  # and run 2 with it
    next_run = SyncStore(blank_database).start_run(ids["kept"], SyncTrigger.MANUAL, SyncDirection.PUSH)
    assert next_run == 3, "run 2's id was given again: `runs undo 2` would have undone another run"
    assert [row.record_key for row in SyncStore(blank_database).record_log(1)] == ["ann@example.com"]


def test_a_contact_id_is_never_given_again_after_a_merge_deleted_it(blank_database: Database) -> None:
    """SQLite gave a deleted contact's id (the newest's) to the next contact, which took over its History, undo
    and conflicts. Ids freed before the migration, still named by the audit log, are not given again either."""
    migrate_to(blank_database.engine, "0022")
    added = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    with blank_database.engine.begin() as connection:
        for email in ("a@example.com", "b@example.com", "c@example.com"):
            connection.execute(text("INSERT INTO contacts (email, custom_fields, created_at, updated_at) "
                                    "VALUES (:email, '{}', :added, :added)"), {"email": email, "added": added})
        connection.execute(text("INSERT INTO leads (email, contact_id, status, created_at, updated_at) "
                                "VALUES ('l@example.com', 2, 'new', :added, :added)"), {"added": added})
        connection.execute(text("INSERT INTO audit_log (entity, entity_id, field, old_value, new_value, source, "
                                "side, at) VALUES ('contact', '3', 'firstName', NULL, 'Kim', 'edit', 'local', "
                                ":added)"), {"added": added})
        connection.execute(text("DELETE FROM contacts WHERE id = 3"))  # merged away before the migration
    blank_database.migrate()

    contacts = ContactStore(blank_database)
    new = contacts.save(Contact(email="z1@example.com"))
    assert new.id == 4, "contact 3's id was given again: it would have taken over contact 3's History"
    with blank_database.engine.begin() as connection:
        assert connection.execute(text("SELECT contact_id FROM leads")).scalar_one() == 2
        connection.execute(text("DELETE FROM contacts WHERE id = 4"))
    assert contacts.save(Contact(email="z2@example.com")).id == 5
    with warnings.catch_warnings():  # SQLite's reflection skips expression indexes, with a warning: named by SQL
        warnings.simplefilter("ignore")
        names = {index["name"] for table in ("contacts", "leads")
                 for index in inspect(blank_database.engine).get_indexes(table)}
    if blank_database.is_sqlite:
        with blank_database.engine.connect() as connection:
            names |= {row[0] for row in connection.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('contacts', 'leads')"))}
    indexes = names
    assert {"ix_contacts_name_sort", "ix_contacts_company_sort", "ix_contacts_score_sort", "ix_leads_name_sort",
            "ix_leads_company_sort", "ix_leads_score_sort"} <= indexes, "the People sorts keep their indexes"


def test_the_head_read_from_the_scripts_text_is_alembics_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert database_module.shipped_head_from_scripts() == head_revision() == SHIPPED_HEAD

    ship_revision_0002(tmp_path / "migrations", monkeypatch)
    assert database_module.shipped_head_from_scripts() == head_revision() == "9001"

    # A second script on the same parent: two heads, so the text is not trusted and Alembic decides.
    (tmp_path / "migrations" / "versions" / "9002_other_branch.py").write_text(
        REVISION_0002.replace("9001", "9002").replace("{head}", SHIPPED_HEAD), encoding="utf-8"
    )
    assert database_module.shipped_head_from_scripts() is None


def migrate_in_a_fresh_process(path: Path) -> dict[str, object]:
    """Open and migrate the SQLite file as a start of the app does, in a process that has imported nothing yet."""
    script = (
        "import json, sys\n"
        "from crm_desktop.store.database import Database, sqlite_url\n"
        f"store = Database(sqlite_url({str(path)!r}))\n"
        "report = store.migrate()\n"
        "store.close()\n"
        "print(json.dumps({'from': report.from_revision, 'to': report.to_revision,\n"
        "                  'alembic': sorted(m for m in sys.modules if m.split('.')[0] in {'alembic', 'mako'})}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_sqlite_file_at_head_opens_without_importing_alembic(tmp_path: Path) -> None:
    path = tmp_path / "crm.db"
    store = Database(sqlite_url(path))
    store.migrate()
    store.close()

    result = migrate_in_a_fresh_process(path)

    assert result == {"from": SHIPPED_HEAD, "to": SHIPPED_HEAD, "alembic": []}


def test_a_store_at_head_builds_no_second_engine(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Database(database.url)
    built: list[str] = []
    make_engine = database_module.make_engine
    monkeypatch.setattr(database_module, "make_engine", lambda url: built.append(url) or make_engine(url))
    try:
        report = store.migrate()
    finally:
        store.close()

    assert (report.from_revision, report.to_revision, report.backup) == (SHIPPED_HEAD, SHIPPED_HEAD, None)
    assert built == [], "a store at the head is told so on the app's own engine"


def test_a_sqlite_file_behind_head_is_still_migrated_at_start(tmp_path: Path) -> None:
    path = tmp_path / "crm.db"
    store = Database(sqlite_url(path))
    migrate_to(store.engine, "0012")
    store.close()

    result = migrate_in_a_fresh_process(path)

    assert (result["from"], result["to"]) == ("0012", SHIPPED_HEAD)
    assert "alembic" in result["alembic"]
    store = Database(sqlite_url(path))
    try:
        assert current_revision(store.engine) == SHIPPED_HEAD
    finally:
        store.close()


def _first_start(path: str, barrier: Any, errors: Any) -> None:
    """One process's first start on a new store, at the same moment as another's (``barrier``)."""
    opened = Database(sqlite_url(Path(path)))
    barrier.wait()
    try:
        opened.migrate()
    except Exception as exc:  # the parent asserts there was none
        errors.put(repr(exc))
    finally:
        opened.close()


def test_two_first_starts_at_once_both_open_the_new_store(tmp_path: Path) -> None:
    """The app and a cron command starting on a new store at the same moment: one migrates it, the other waits
    for it (it failed with 'table contacts already exists' before)."""
    spawn = multiprocessing.get_context("spawn")
    for trial in range(2):
        barrier, errors = spawn.Barrier(2), spawn.Queue()
        path = str(tmp_path / f"crm-{trial}.db")
        starts = [spawn.Process(target=_first_start, args=(path, barrier, errors)) for _ in range(2)]
        for start in starts:
            start.start()
        for start in starts:
            start.join(timeout=120)
        assert [start.exitcode for start in starts] == [0, 0]
        assert errors.empty(), errors.get()
        assert current_revision(Database(sqlite_url(Path(path))).engine) == SHIPPED_HEAD


def test_engagements_kept_twice_for_one_person_are_merged_and_found_again(blank_database: Database) -> None:
    migrate_to(blank_database.engine, "0021")
    at = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    like = ["twitter", "like", at.isoformat(), "p-1", None, "launch"]
    old_key = social_store.event_key  # the digest is unchanged; 0021 put the sender's name for the person in it
    rows = [  # (key, email, identity): by username; the same like re-sent by email; another person's like
        (old_key("engagement", *like, "username", "maxmoe"), "max@example.com", 1),
        (old_key("engagement", *like, "email", "max@example.com"), "max@example.com", None),
        (old_key("engagement", *like, "username", "lea"), None, 2),
        (old_key("conversation", "twitter", "c-1"), "max@example.com", 1),
    ]
    with blank_database.engine.begin() as connection:
        for name, email in (("maxmoe", "max@example.com"), ("lea", None)):
            connection.execute(text("INSERT INTO social_identities (platform, username, email, created_at) VALUES "
                                    "('twitter', :name, :email, :at)"), {"name": name, "email": email, "at": at})
        for number, (key, email, identity) in enumerate(rows):
            kind, post, conversation = ("dm", None, "c-1") if number == 3 else ("like", "p-1", None)
            connection.execute(
                text("INSERT INTO touchpoints (event_key, email, identity_id, timestamp, platform, type, post_id, "
                     "conversation_id, campaign, created_at) VALUES (:key, :email, :identity, :at, 'twitter', "
                     ":kind, :post, :conversation, 'launch', :at)"),
                {"key": key, "email": email, "identity": identity, "at": at, "kind": kind, "post": post,
                 "conversation": conversation})
        connection.execute(text("INSERT INTO conversions (event_key, email, timestamp, source, created_at) VALUES "
                                "(:key, 'max@example.com', :at, 'api', :at)"), {"key": rows[1][0], "at": at})

    blank_database.migrate()

    with blank_database.engine.connect() as connection:
        kept = connection.execute(text("SELECT event_key, email, identity_id, event_ref IS NOT NULL FROM touchpoints "
                                       "ORDER BY id")).all()
        moved = connection.execute(text("SELECT event_key FROM conversions")).scalars().all()
    assert [tuple(row) for row in kept] == [(rows[0][0], "max@example.com", 1, True), (rows[2][0], None, 2, True),
                                           (rows[3][0], "max@example.com", 1, False)]
    assert moved == [rows[0][0]]  # the removed duplicate's conversion is the kept touchpoint's
    # The reference the migration computed is the one the store computes: a re-send by either name is found.
    store = social_store.SocialStore(blank_database)
    for user in ({"email": "max@example.com"}, {"username": "MaxMoe"}):
        event = EngagementEvent.model_validate({"platform": "twitter", "type": "like", "timestamp": at.isoformat(),
                                                "postId": "p-1", "campaign": "launch", "user": user})
        assert store.record_engagements([event])[0].action is EventAction.UNCHANGED
