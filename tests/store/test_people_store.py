"""The People reads on SQLite and (with CRM_DESKTOP_DB_URL) PostgreSQL: keyset pages, SQL sorts, filters, series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event

from crm_desktop.app.social import SocialService
from crm_desktop.domain.models import (
    Contact,
    Integration,
    Lead,
    Provider,
    SocialContext,
    SocialPlatform,
    SocialProfile,
    SyncDirection,
)
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject
from crm_desktop.domain.social import AttributionModel, EngagementEvent, EngagementUser
from crm_desktop.store.database import Database
from crm_desktop.store.models import SyncTrigger
from crm_desktop.store.people_store import PeopleColumn, PeopleQuery, PeopleStore, PersonLine, SyncState
from crm_desktop.store.repositories import ContactStore, IntegrationStore, LeadStore
from crm_desktop.store.sync_store import SyncStore

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def people(database: Database) -> PeopleStore:
    ContactStore(database).save_many(
        Contact(
            email=f"p{n:03d}@example.com",
            first_name=("Ada", "Grace", "Alan")[n % 3],
            last_name=f"Tester{n % 5}",
            company=None if n % 4 == 0 else ("Acme 100%", "Globex")[n % 2],
            social_profiles=[SocialProfile(platform=SocialPlatform.LINKEDIN, username=f"li{n}", followers=n)]
            if n % 2 else [],
        )
        for n in range(60)
    )
    LeadStore(database).save_many(
        Lead(email=f"p{n:03d}@example.com", first_name="Lead", last_name=f"L{n}",
             social_context=SocialContext(platform=SocialPlatform.TWITTER, engagement_score=float(n % 7)))
        for n in range(0, 60, 2)
    )
    SocialService(database, clock=lambda: NOW).record_engagements([
        EngagementEvent(platform=SocialPlatform.TWITTER, type="like",  # type: ignore[arg-type]
                        timestamp=NOW - timedelta(days=n % 3), campaign="Launch" if n % 3 == 0 else None,
                        user=EngagementUser(email=f"p{n:03d}@example.com"))
        for n in range(0, 30)
    ])
    return PeopleStore(database)


def every_page(store: PeopleStore, query: PeopleQuery, size: int = 7) -> list[PersonLine]:
    lines: list[PersonLine] = []
    while True:
        after = (lines[-1].sort_key, lines[-1].id) if lines else None
        page = store.page(query, after, size)
        lines.extend(page)
        if len(page) < size:
            return lines


@pytest.mark.parametrize("sort", list(PeopleColumn))
@pytest.mark.parametrize("descending", [False, True])
def test_keyset_pages_give_every_row_once_in_sql_order(people: PeopleStore, sort: PeopleColumn,
                                                       descending: bool) -> None:
    for obj, total in ((RecordObject.CONTACT, 60), (RecordObject.LEAD, 30)):
        lines = every_page(people, PeopleQuery(obj=obj, sort=sort, descending=descending))
        assert len(lines) == total == len({line.id for line in lines}) == people.count(PeopleQuery(obj=obj))
        keys = [(line.sort_key, line.id) for line in lines]
        assert keys == sorted(keys, reverse=descending)


def test_the_text_filter_ignores_case_and_takes_wildcards_literally(people: PeopleStore) -> None:
    assert people.count(PeopleQuery(text="GRACE")) == 20
    assert people.count(PeopleQuery(text="grace tester1")) == len([n for n in range(60) if n % 3 == 1 and n % 5 == 1])
    assert people.count(PeopleQuery(text="P01")) == 10
    assert people.count(PeopleQuery(text="100%")) == len([n for n in range(60) if n % 4 and n % 2 == 0])
    assert people.count(PeopleQuery(text="_")) == 0


def test_the_text_filter_ignores_case_in_every_alphabet(database: Database) -> None:
    ContactStore(database).save_many([
        Contact(email="emile@example.com", first_name="Émile", last_name="Zola", company="Éditions Über"),
        Contact(email="ivan@example.com", first_name="Иван", last_name="Петров", company="Ørsted"),
        Contact(email="jose@example.com", first_name="José", last_name="Ñúñez", company="Straße AG"),
        # Written decomposed (e + combining accent), as files made on macOS have it.
        Contact(email="nfd@example.com", first_name="Rene\u0301e", last_name="Nfd"),
    ])
    people = PeopleStore(database)
    for typed, email in (("Émile", "emile"), ("émile", "emile"), ("ÉDITIONS", "emile"), ("über", "emile"),
                         ("иван", "ivan"), ("ПЕТРОВ", "ivan"), ("ørsted", "ivan"), ("ñúñez", "jose"),
                         ("STRASSE", "jose"), ("strasse ag", "jose"), ("straße", "jose"), ("STRAẞE", "jose"),
                         ("sse ag", "jose"), ("grass", None), ("émile zola", "emile"), ("JOSÉ", "jose"),
                         ("renée", "nfd"), ("RENÉE", "nfd")):
        found = [line.email for line in people.page(PeopleQuery(text=typed), None, 10)]
        assert found == ([f"{email}@example.com"] if email else []), typed


def test_platform_campaign_and_score_filters(people: PeopleStore) -> None:
    assert people.count(PeopleQuery(platform=SocialPlatform.LINKEDIN)) == 30
    assert people.count(PeopleQuery(obj=RecordObject.LEAD, platform=SocialPlatform.TWITTER)) == 30
    assert people.count(PeopleQuery(campaign="Launch")) == 10
    scores = [line.score for line in every_page(people, PeopleQuery(obj=RecordObject.LEAD))]
    assert all(score is not None for score in scores)
    middle = sorted(scores)[len(scores) // 2]  # type: ignore[type-var]
    high = PeopleQuery(obj=RecordObject.LEAD, score_min=middle)
    assert 0 < people.count(high) == len([s for s in scores if s is not None and s >= middle]) < len(scores)
    # A contact's score is its own social activity's, lead or not: the 30 that engaged have one, the others none.
    scored = every_page(people, PeopleQuery(score_min=0))
    assert sorted(line.email for line in scored) == [f"p{n:03d}@example.com" for n in range(30)]
    assert all(line.score is not None and line.score > 0 for line in scored)
    lowest = min(line.score for line in scored if line.score is not None)
    low = every_page(people, PeopleQuery(score_max=lowest))
    assert low and all(line.score == lowest for line in low)


def test_a_conversion_alone_is_no_touchpoint_for_the_campaign_and_reached_on_filters(
    people: PeopleStore, database: Database
) -> None:
    """Seen by hand: a lead whose only Instagram event was a conversion (an engagement of type ``conversion``) was
    listed by "Reached on Instagram" and by the campaign filter, while the Attribution rows People stands for
    (Enter on them) do not count it: a conversion is the outcome, not a touchpoint."""
    social = SocialService(database, clock=lambda: NOW)
    social.record_engagements([
        EngagementEvent(platform=SocialPlatform.INSTAGRAM, type="conversion",  # type: ignore[arg-type]
                        timestamp=NOW - timedelta(hours=1), campaign="Checkout",
                        user=EngagementUser(email="p002@example.com")),
    ])
    report = social.attribution_report(AttributionModel.LINEAR)
    counted = {row.name: row.leads for row in report.by_platform}
    assert people.count(PeopleQuery(obj=RecordObject.LEAD, reached_on=SocialPlatform.INSTAGRAM)) == counted.get(
        "instagram", 0) == 0
    assert people.count(PeopleQuery(obj=RecordObject.LEAD, reached_on=SocialPlatform.TWITTER)) == counted["twitter"]
    campaigns = {row.name: row.leads for row in report.by_campaign}
    assert people.count(PeopleQuery(obj=RecordObject.LEAD, campaign="Checkout")) == campaigns.get("Checkout", 0)
    assert people.count(PeopleQuery(obj=RecordObject.LEAD, campaign="Launch")) == campaigns["Launch"]


def test_touchpoints_per_day_and_the_timeline(people: PeopleStore) -> None:
    series = people.touchpoints_per_day(None, zone=UTC)
    assert [day.isoformat() for day in series.days] == ["2026-11-18", "2026-11-19", "2026-11-20"]
    assert series.per_platform == {"twitter": [10, 10, 10]}
    assert people.touchpoints_per_day(NOW - timedelta(hours=1), zone=UTC).per_platform == {"twitter": [10]}
    timeline = people.timeline("p003@example.com")
    assert [(entry.kind, entry.campaign) for entry in timeline] == [("like", "Launch")]


def test_touchpoints_per_day_are_local_days_with_the_quiet_ones_at_zero(database: Database) -> None:
    """Days are midnight to midnight in the zone asked for (daylight saving included), every day of the period
    listed, a quiet one at 0."""
    berlin = ZoneInfo("Europe/Berlin")
    SocialService(database, clock=lambda: NOW).record_engagements([
        EngagementEvent(platform=SocialPlatform.TWITTER, type="like",  # type: ignore[arg-type]
                        timestamp=when, user=EngagementUser(email=f"q{n}@example.com"))
        for n, when in enumerate([
            datetime(2026, 10, 24, 22, 30, tzinfo=UTC),  # 25 Oct 00:30 in Berlin (summer time, UTC+2)
            datetime(2026, 10, 25, 23, 30, tzinfo=UTC),  # 26 Oct 00:30 in Berlin (winter time, UTC+1)
            datetime(2026, 10, 28, 12, 0, tzinfo=UTC),
        ])
    ])
    store = PeopleStore(database)
    since = datetime(2026, 10, 24, tzinfo=berlin)
    series = store.touchpoints_per_day(since, until=datetime(2026, 10, 30, 9, 0, tzinfo=UTC), zone=berlin)
    assert [day.isoformat() for day in series.days] == [f"2026-10-{d}" for d in range(24, 31)]
    assert series.per_platform == {"twitter": [0, 1, 1, 0, 1, 0, 0]}
    in_utc = store.touchpoints_per_day(None, zone=UTC)
    assert [day.isoformat() for day in in_utc.days] == [f"2026-10-{d}" for d in range(24, 29)]
    assert in_utc.per_platform == {"twitter": [1, 1, 0, 0, 1]}
    assert store.touchpoints_per_day(datetime(2026, 12, 1, tzinfo=UTC), zone=UTC).per_platform == {}


def test_each_line_lists_its_persons_platforms(people: PeopleStore, database: Database) -> None:
    ContactStore(database).save(Contact(email="multi@example.com", social_profiles=[
        SocialProfile(platform=SocialPlatform.TWITTER, username="multi_t"),
        SocialProfile(platform=SocialPlatform.INSTAGRAM, username="multi_i"),
    ]))
    LeadStore(database).save(Lead(email="multi@example.com",
                                  social_context=SocialContext(platform=SocialPlatform.LINKEDIN)))

    contacts = {line.email: line.platforms for line in every_page(people, PeopleQuery())}
    leads = {line.email: line.platforms for line in every_page(people, PeopleQuery(obj=RecordObject.LEAD))}

    assert (contacts["p000@example.com"], contacts["p001@example.com"]) == ((), ("linkedin",))
    assert sorted(contacts["multi@example.com"]) == ["instagram", "twitter"]
    assert leads["p000@example.com"] == ("twitter",)
    assert leads["multi@example.com"] == ("instagram", "linkedin", "twitter")


def test_failed_lists_the_people_whose_newest_write_failed(database: Database, people: PeopleStore) -> None:
    """As a person's CRM records say it: the newest write to that integration failed. A failure a later write made
    good is not listed, nor one in another integration; and the filter reads the outbox by record, not whole."""
    sync = SyncStore(database)
    hubspot, other = (IntegrationStore(database).add(Integration(provider=Provider.HUBSPOT, name=name)).id
                      for name in ("hubspot-marketing", "hubspot-sales"))
    assert hubspot is not None and other is not None
    ids = {line.email: line.id for line in every_page(people, PeopleQuery())}

    def write(integration_id: int, email: str, fails: bool) -> None:
        [outbox_id] = sync.add_outbox(integration_id, None, [
            {"object": RecordObject.CONTACT, "local_id": ids[email], "email": email, "values_hash": "h"}])
        [item] = [i for i in sync.pending_outbox(integration_id, RecordObject.CONTACT) if i.id == outbox_id]
        if fails:
            sync.complete_outbox(integration_id, [], [(item, "refused")])
        else:
            sync.complete_outbox(integration_id, [(item, f"crm-{outbox_id}", None)], [])

    write(hubspot, "p001@example.com", fails=True)   # failed, then made good by a retry
    write(hubspot, "p001@example.com", fails=False)
    write(hubspot, "p002@example.com", fails=False)  # synced, then a later write failed
    write(hubspot, "p002@example.com", fails=True)
    write(hubspot, "p003@example.com", fails=True)   # never written
    write(other, "p004@example.com", fails=True)     # failed in the other integration only

    failed = PeopleQuery(integration_id=hubspot, sync_state=SyncState.FAILED)
    assert [line.email for line in every_page(people, failed)] == ["p002@example.com", "p003@example.com"]
    assert people.count(failed) == 2


def test_a_persons_crm_records_and_a_pages_refused_writes_find_the_log_by_record(
    database: Database, people: PeopleStore
) -> None:
    """The record log grows with every run and is never cut: a person's CRM records and each page a sync pushes
    (its refused writes) read a record's newest entries through its index, never the whole log."""
    if not database.is_sqlite:
        pytest.skip("the plan is SQLite's EXPLAIN QUERY PLAN")
    sync = SyncStore(database)
    hubspot = IntegrationStore(database).add(Integration(provider=Provider.HUBSPOT, name="hubspot")).id
    assert hubspot is not None
    ada = next(line for line in every_page(people, PeopleQuery()) if line.email == "p001@example.com")
    run_id = sync.start_run(hubspot, SyncTrigger.MANUAL, SyncDirection.PUSH)
    [outbox_id] = sync.add_outbox(hubspot, run_id, [
        {"object": RecordObject.CONTACT, "local_id": ada.id, "email": ada.email, "values_hash": "h"}])
    [item] = [i for i in sync.pending_outbox(hubspot, RecordObject.CONTACT) if i.id == outbox_id]
    sync.complete_outbox(hubspot, [], [(item, "refused")])
    statements: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "sync_record_log" in statement and statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", seen)
    try:
        people.crm_links(RecordObject.CONTACT, ada.id, ada.email)
        sync.refused_writes(hubspot, RecordObject.CONTACT, [ada.id], [ErrorCategory.VALIDATION])
    finally:
        event.remove(database.engine, "before_cursor_execute", seen)

    assert len(statements) >= 2
    with database.engine.connect() as connection:
        for statement, parameters in statements:
            plan = [row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
            log_steps = [step for step in plan if "sync_record_log" in step]
            assert log_steps and all("ix_record_log_record" in step for step in log_steps), (statement, plan)
