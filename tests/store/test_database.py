"""The store's engine and sessions: URLs, SQLite pragmas, CHECK constraints, aware UTC datetimes."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Enum, MetaData, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from crm_desktop.domain.alerts import AlertKind
from crm_desktop.domain.models import LeadStatus, Provider, Sentiment, SocialPlatform, TouchpointType
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.domain.social import ConversionSource, MessageDirection
from crm_desktop.store.alerts_store import AlertStore
from crm_desktop.store.database import (
    IN_LIST_SIZE,
    Database,
    StoreConfigError,
    in_list_chunks,
    make_engine,
    sqlite_url,
    upgrade_to_head,
)
from crm_desktop.store.models import (
    AlertRow,
    AuditLogRow,
    Base,
    CampaignRow,
    ConflictRow,
    ContactRow,
    ConversationRow,
    ConversionRow,
    CrmLinkRow,
    DeliveryStatus,
    FieldMappingRow,
    IntegrationRow,
    LeadRow,
    MessageRow,
    OutboxRow,
    SocialIdentityRow,
    SocialProfileRow,
    SyncAttemptMetricsRow,
    SyncCursorRow,
    SyncRecordLogRow,
    SyncRunRow,
    SyncRunStatus,
    SyncTrigger,
    TouchpointRow,
    WorkflowEventKind,
    WorkflowEventRow,
    utc_from_store,
)
from crm_desktop.store.settings import WorkspaceSettingsStore

pytestmark = pytest.mark.postgres

ENUM_COLUMNS = sorted(
    (table.name, column.name)
    for table in Base.metadata.tables.values()
    for column in table.c
    if isinstance(column.type, Enum)
)


def one_row_per_table(database: Database) -> dict[str, int]:
    """Insert one valid row in every table that has an enum column; return each row's id by table."""
    with database.session() as session:
        integration = IntegrationRow(provider=Provider.HUBSPOT, name="HubSpot EU", scopes=[], sync_config={})
        contact = ContactRow(email="ana@example.com", custom_fields={})
        contact.social_profiles.append(SocialProfileRow(platform=SocialPlatform.TWITTER, username="ana"))
        session.add_all([integration, contact])
        session.flush()
        run = SyncRunRow(integration_id=integration.id, trigger=SyncTrigger.MANUAL)
        session.add(run)
        session.flush()
        rows: list[Any] = [
            LeadRow(email="ana@example.com", social_platform=SocialPlatform.TWITTER, sentiment=Sentiment.POSITIVE),
            TouchpointRow(
                event_key="1" * 64,
                email=contact.email,
                timestamp=datetime(2026, 11, 27, 10, tzinfo=UTC),
                platform=SocialPlatform.INSTAGRAM,
                type=TouchpointType.COMMENT,
            ),
            SocialIdentityRow(platform=SocialPlatform.TIKTOK, username="ana"),
            ConversationRow(
                conversation_id="c-1",
                platform=SocialPlatform.TWITTER,
                email=contact.email,
                started_at=datetime(2026, 11, 27, 9, tzinfo=UTC),
                latest_sentiment=Sentiment.MIXED,
                crm_links={},
            ),
            MessageRow(
                message_id="m-1",
                conversation_id="c-1",
                direction=MessageDirection.INBOUND,
                sent_at=datetime(2026, 11, 27, 9, 5, tzinfo=UTC),
                text="Hello",
                sentiment=Sentiment.POSITIVE,
            ),
            CampaignRow(name="Black Friday", platform=SocialPlatform.INSTAGRAM, tags=[]),
            ConversionRow(
                event_key="2" * 64,
                email=contact.email,
                timestamp=datetime(2026, 11, 28, tzinfo=UTC),
                source=ConversionSource.API,
            ),
            FieldMappingRow(
                integration_id=integration.id, object=RecordObject.CONTACT, local_field="email", crm_field="email"
            ),
            SyncRecordLogRow(
                run_id=run.id, object=RecordObject.CONTACT, record_key="ana@example.com", outcome=RecordOutcome.CREATED
            ),
            ConflictRow(
                integration_id=integration.id,
                object=RecordObject.CONTACT,
                local_id=contact.id,
                record_key="ana@example.com",
                field="company",
            ),
            AuditLogRow(entity="contact", entity_id=str(contact.id), field="company", source="sync"),
            CrmLinkRow(integration_id=integration.id, object=RecordObject.CONTACT, local_id=contact.id, crm_id="1"),
            OutboxRow(
                integration_id=integration.id,
                object=RecordObject.CONTACT,
                local_id=contact.id,
                email="ana@example.com",
                values_hash="0" * 64,
            ),
            SyncCursorRow(integration_id=integration.id, object=RecordObject.CONTACT, cursor="2026-11-27T00:00:00Z"),
            SyncAttemptMetricsRow(integration_id=integration.id, run_id=run.id, status=SyncRunStatus.FAILED,
                                  error_category=ErrorCategory.NETWORK),
            AlertRow(kind=AlertKind.RUN_FAILED, integration_id=integration.id, integration_name="HubSpot EU",
                     message="the run failed", run_id=run.id),
            WorkflowEventRow(integration_id=integration.id, event_key="e" * 64, kind=WorkflowEventKind.MESSAGE,
                             payload={}, status=DeliveryStatus.PENDING),
        ]
        session.add_all(rows)
        session.flush()
        ids = {row.__tablename__: row.id for row in rows}
        ids.update(
            {
                "integrations": integration.id,
                "contacts": contact.id,
                "social_profiles": contact.social_profiles[0].id,
                "sync_runs": run.id,
            }
        )
        return ids


def test_every_enum_column_is_covered() -> None:
    assert ("integrations", "provider") in ENUM_COLUMNS
    assert ("leads", "sentiment") in ENUM_COLUMNS
    assert len(ENUM_COLUMNS) >= 15


@pytest.mark.parametrize(("table", "column"), ENUM_COLUMNS, ids=[f"{t}.{c}" for t, c in ENUM_COLUMNS])
def test_enum_check_constraints_refuse_bad_values_in_the_database(database: Database, table: str, column: str) -> None:
    ids = one_row_per_table(database)

    with pytest.raises(IntegrityError), database.engine.begin() as connection:
        # Raw SQL, so only the database's CHECK constraint stands in the way.
        connection.execute(text(f"UPDATE {table} SET {column} = 'bogus' WHERE id = :id"), {"id": ids[table]})

    with database.engine.connect() as connection:
        stored = connection.execute(text(f"SELECT {column} FROM {table} WHERE id = :id"), {"id": ids[table]})
        assert stored.scalar_one() != "bogus"


def test_enum_columns_store_the_wire_values(database: Database) -> None:
    ids = one_row_per_table(database)
    with database.engine.connect() as connection:
        lead = connection.execute(text("SELECT status, sentiment FROM leads WHERE id = :id"), {"id": ids["leads"]})
        assert tuple(lead.one()) == (LeadStatus.NEW.value, "positive")


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 11, 27, 10, 30, 15, 123456, tzinfo=UTC),
        datetime(2026, 11, 27, 23, 30, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2026, 3, 29, 1, 59, 59, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ],
    ids=["utc-with-microseconds", "new-york-evening", "india"],
)
def test_aware_datetimes_come_back_as_the_same_instant_in_utc(database: Database, when: datetime) -> None:
    ids = one_row_per_table(database)
    with database.session() as session:
        run = session.get(SyncRunRow, ids["sync_runs"])
        assert run is not None
        run.started_at = when
        run.finished_at = when + timedelta(seconds=90)

    with database.session() as session:
        if not database.is_sqlite:
            # A session time zone far from UTC: values must still come back in UTC.
            session.execute(text("SET TIME ZONE 'Pacific/Auckland'"))
        started, finished = session.execute(
            select(SyncRunRow.started_at, SyncRunRow.finished_at).where(SyncRunRow.id == ids["sync_runs"])
        ).one()

    assert started == when
    assert started.utcoffset() == timedelta(0)
    assert finished is not None
    assert finished.utcoffset() == timedelta(0)
    assert finished - started == timedelta(seconds=90)


def test_datetimes_compare_as_instants_in_queries(database: Database) -> None:
    ids = one_row_per_table(database)
    with database.session() as session:
        run = session.get(SyncRunRow, ids["sync_runs"])
        assert run is not None
        run.started_at = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    just_before = datetime(2026, 11, 27, 12, 59, tzinfo=timezone(timedelta(hours=1)))  # 11:59 UTC
    just_after = datetime(2026, 11, 27, 13, 1, tzinfo=timezone(timedelta(hours=1)))  # 12:01 UTC

    with database.session() as session:
        assert session.scalar(select(SyncRunRow.id).where(SyncRunRow.started_at > just_before)) == ids["sync_runs"]
        assert session.scalar(select(SyncRunRow.id).where(SyncRunRow.started_at > just_after)) is None


def test_naive_datetimes_are_refused(database: Database) -> None:
    ids = one_row_per_table(database)
    with pytest.raises(StatementError, match="naive datetime"), database.session() as session:
        run = session.get(SyncRunRow, ids["sync_runs"])
        assert run is not None
        run.finished_at = datetime(2026, 11, 27, 10, 0)


def test_created_rows_get_aware_utc_timestamps(database: Database) -> None:
    before = datetime.now(UTC)
    ids = one_row_per_table(database)
    with database.session() as session:
        integration = session.get(IntegrationRow, ids["integrations"])
        assert integration is not None
        assert integration.created_at.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= integration.created_at <= datetime.now(UTC)


def test_a_session_rolls_back_on_error(database: Database) -> None:
    with pytest.raises(RuntimeError), database.session() as session:
        session.add(ContactRow(email="ana@example.com", custom_fields={}))
        session.flush()
        raise RuntimeError("the caller failed half-way")

    with database.session() as session:
        assert session.scalars(select(ContactRow)).all() == []


def test_a_migration_leaves_nothing_of_its_scripts_alive(blank_database: Database) -> None:
    """The tables the migration scripts build die with the migration: an engine's dialect keeps the column types it
    compiled, and through them every script's tables, for as long as it lives; the app's engine lives all session."""
    if blank_database.engine.url.get_backend_name() != "sqlite":
        pytest.skip("SQLAlchemy's PostgreSQL dialect caches a reflection query by dialect, which keeps the "
                    "migration's engine alive with its tables: what this test counts holds on SQLite only")
    before = {id(metadata) for metadata in gc.get_objects() if isinstance(metadata, MetaData)}

    blank_database.migrate()
    gc.collect()

    left = [
        sorted(metadata.tables) for metadata in gc.get_objects()
        if isinstance(metadata, MetaData) and id(metadata) not in before
        and set(metadata.tables) & set(Base.metadata.tables)  # not a module's of SQLAlchemy imported meanwhile
    ]
    assert left == []
    with blank_database.session() as session:  # the app's engine still serves the migrated store
        assert session.scalars(select(ContactRow)).all() == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_database: Database) -> None:
    with sqlite_database.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar_one() >= 1000


def test_sqlite_enforces_foreign_keys(sqlite_database: Database) -> None:
    with pytest.raises(IntegrityError), sqlite_database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO social_profiles (contact_id, platform, username, followers, engagement) "
                "VALUES (4242, 'twitter', 'ghost', 0, 0)"
            )
        )


def test_make_engine_creates_the_folder_of_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "deeper" / "crm.db"
    store = Database(sqlite_url(path))
    try:
        store.migrate()
    finally:
        store.close()
    assert path.is_file()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a database url", "not a database URL"),
        ("", "not a database URL"),
        ("postgresql+nodriver://crm@127.0.0.1/crm", "cannot use 'postgresql\\+nodriver'"),
        ("mysql://crm@127.0.0.1/crm", "driver 'MySQLdb' is not installed"),
        ("postgresql+psycopg://crm:s3cret@db.example:54x2/crm", "its port is not a number"),
    ],
    ids=["words", "empty", "unknown-driver", "driver-not-installed", "port-not-a-number"],
)
def test_unusable_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(StoreConfigError, match=message) as refused:
        make_engine(url)
    assert "s3cret" not in str(refused.value)


def test_a_sqlite_file_below_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(StoreConfigError, match="cannot create the folder"):
        make_engine(sqlite_url(blocker / "crm.db"))


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are meeting notes, not a SQLite database " * 40)
    engine = make_engine(sqlite_url(path))
    try:
        with pytest.raises(StoreConfigError, match="cannot open the database"):
            upgrade_to_head(engine)
    finally:
        engine.dispose()


def test_an_unreachable_server_is_refused_without_its_password() -> None:
    engine = make_engine("postgresql+psycopg://crm:S3cr3t-pass@127.0.0.1:1/crm?connect_timeout=2")
    try:
        with pytest.raises(StoreConfigError, match="cannot open the database") as caught:
            upgrade_to_head(engine)
    finally:
        engine.dispose()
    assert "S3cr3t-pass" not in str(caught.value)


def test_describe_hides_the_password() -> None:
    store = Database("postgresql+psycopg://crm:S3cr3t-pass@db.example.com/crm")
    try:
        assert "S3cr3t-pass" not in store.describe()
        assert "db.example.com" in store.describe()
        assert not store.is_sqlite
    finally:
        store.close()


def test_describe_hides_a_password_given_as_a_query_parameter() -> None:
    # libpq reads a password from the URL's query as well (postgresql://crm@db/crm?password=...).
    store = Database("postgresql+psycopg://crm@db.example.com/crm?password=S3cr3t-pass&connect_timeout=5")
    try:
        assert "S3cr3t-pass" not in store.describe()
        assert store.describe() == "postgresql+psycopg://crm@db.example.com/crm?connect_timeout=5&password=***"
    finally:
        store.close()


def test_an_alert_and_a_setting_are_deleted_once(database: Database) -> None:
    alerts, settings = AlertStore(database), WorkspaceSettingsStore(database)
    kept = alerts.add(AlertKind.RUN_FAILED, None, "HubSpot", "kept", None, datetime(2026, 1, 1, tzinfo=UTC))
    gone = alerts.add(AlertKind.RUN_FAILED, None, "HubSpot", "gone", None, datetime(2026, 1, 2, tzinfo=UTC))
    settings.put("theme", {"name": "dark"})
    settings.put("window", {"width": 900})

    assert alerts.delete(gone.id) is True
    assert alerts.delete(gone.id) is False
    assert settings.delete("theme") is True
    assert settings.delete("theme") is False
    assert settings.delete("never-set") is False

    assert [a.id for a in alerts.recent()] == [kept.id]
    assert settings.all() == {"window": {"width": 900}}


@pytest.mark.parametrize("count", [0, 1, IN_LIST_SIZE, IN_LIST_SIZE + 1, 3 * IN_LIST_SIZE - 1])
def test_in_list_chunks_keep_every_key_once_in_order_and_no_list_too_long(count: int) -> None:
    keys = [f"person{i}@example.com" for i in range(count)]
    chunks = list(in_list_chunks(keys))
    assert [key for chunk in chunks for key in chunk] == keys
    assert all(0 < len(chunk) <= IN_LIST_SIZE for chunk in chunks)
    assert len(chunks) == -(-count // IN_LIST_SIZE)



@pytest.mark.parametrize(
    "stored",
    [
        datetime(2026, 11, 27, 10, 0),  # SQLite's naive UTC
        datetime(2026, 11, 27, 11, 0, tzinfo=timezone(timedelta(hours=1))),  # PostgreSQL in its session's zone
        "2026-11-27 10:00:00.000000",  # an aggregate SQLite hands back as text
    ],
)
def test_a_moment_read_back_from_the_store_is_aware_utc(stored: datetime | str) -> None:
    moment = utc_from_store(stored)
    assert moment == datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert moment.utcoffset() == timedelta(0)
