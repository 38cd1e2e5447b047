"""Repositories: integrations, contacts with social profiles and leads, in domain terms, on every backend."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import IntegrityError

from crm_desktop.domain.models import (
    Contact,
    Integration,
    Lead,
    LeadStatus,
    Provider,
    SocialPlatform,
    SyncConfig,
    SyncDirection,
    TouchpointType,
)
from crm_desktop.store.database import Database
from crm_desktop.store.models import ContactRow, LeadRow, SocialProfileRow, SyncRunRow, SyncTrigger, TouchpointRow
from crm_desktop.store.repositories import (
    SAVE_BATCH,
    ContactStore,
    DuplicateNameError,
    IntegrationStore,
    LeadStore,
    NotFoundError,
)

pytestmark = pytest.mark.postgres


def hubspot(name: str = "HubSpot EU", **changes: object) -> Integration:
    return Integration.model_validate(
        {"provider": "hubspot", "name": name, "scopes": ["crm.objects.contacts.read"]} | changes
    )


def ana(**changes: object) -> Contact:
    record: dict[str, object] = {
        "email": "Ana.Lopez@Example.com",
        "firstName": "Ana",
        "lastName": "Lopez",
        "company": "Acme",
        "phone": "+1 415 555 2671",
        "socialProfiles": [
            {"platform": "twitter", "username": "@analopez", "followers": 1200, "engagement": 4.5},
            {"platform": "linkedin", "username": "ana-lopez", "url": "https://www.linkedin.com/in/ana-lopez"},
        ],
        "customFields": {"plan": "pro", "seats": 12},
    }
    return Contact.model_validate(record | changes)


# --- integrations -------------------------------------------------------------------------------------------------


def test_integration_add_get_list_update_remove(database: Database) -> None:
    store = IntegrationStore(database)

    added = store.add(hubspot(description="EU portal", base_url="https://api.hubapi.com/"))
    other = store.add(Integration(provider=Provider.PIPEDRIVE, name="Pipedrive sales", domain="Acme"))

    assert added.id is not None
    assert added.base_url == "https://api.hubapi.com"
    assert store.get("HubSpot EU") == added
    assert store.get_by_id(added.id) == added
    assert store.find("HubSpot US") is None
    assert [i.name for i in store.list()] == ["HubSpot EU", "Pipedrive sales"]
    assert other.domain == "acme"

    changed = added.model_copy(
        update={
            "name": "HubSpot Europe",
            "sync_config": SyncConfig(direction=SyncDirection.PUSH, sync_interval=30, auto_sync=False),
            "scopes": ["crm.objects.contacts.write"],
        }
    )
    updated = store.update(changed)

    assert updated.id == added.id
    assert store.get("HubSpot Europe").sync_config == SyncConfig(
        direction=SyncDirection.PUSH, sync_interval=30, auto_sync=False
    )
    assert store.get("HubSpot Europe").scopes == ["crm.objects.contacts.write"]
    assert store.find("HubSpot EU") is None

    removed = store.remove("HubSpot Europe")

    assert removed == updated
    assert [i.name for i in store.list()] == ["Pipedrive sales"]


def test_integration_names_are_unique(database: Database) -> None:
    store = IntegrationStore(database)
    store.add(hubspot("HubSpot EU"))
    second = store.add(hubspot("HubSpot US"))

    with pytest.raises(DuplicateNameError, match="'HubSpot EU' already exists"):
        store.add(Integration(provider=Provider.SALESFORCE, name="HubSpot EU"))
    with pytest.raises(DuplicateNameError, match="'HubSpot EU' already exists"):
        store.update(second.model_copy(update={"name": "HubSpot EU"}))

    assert sorted(i.name for i in store.list()) == ["HubSpot EU", "HubSpot US"]


@pytest.mark.parametrize(
    "action",
    ["get", "get_by_id", "remove", "update_missing_id", "update_unsaved"],
)
def test_missing_integrations_are_not_found(database: Database, action: str) -> None:
    store = IntegrationStore(database)
    store.add(hubspot("HubSpot EU"))

    with pytest.raises(NotFoundError):
        if action == "get":
            store.get("Salesforce")
        elif action == "get_by_id":
            store.get_by_id(9999)
        elif action == "remove":
            store.remove("Salesforce")
        elif action == "update_missing_id":
            store.update(hubspot("Salesforce", id=9999))
        else:
            store.update(hubspot("Salesforce"))

    assert [i.name for i in store.list()] == ["HubSpot EU"]


def test_integration_ids_are_never_reused(database: Database) -> None:
    store = IntegrationStore(database)
    store.add(hubspot("first"))
    last = store.add(hubspot("second"))
    assert last.id is not None

    store.remove("second")  # the highest id: plain SQLite rowids would hand it out again
    again = store.add(hubspot("third"))

    assert again.id is not None
    assert again.id > last.id


def test_removing_an_integration_removes_its_runs(database: Database) -> None:
    store = IntegrationStore(database)
    added = store.add(hubspot())
    assert added.id is not None
    with database.session() as session:
        session.add(SyncRunRow(integration_id=added.id, trigger=SyncTrigger.MANUAL))

    store.remove(added.name)

    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(SyncRunRow)) == 0


# --- contacts -----------------------------------------------------------------------------------------------------


def test_contact_round_trips_with_profiles_and_custom_fields(database: Database) -> None:
    store = ContactStore(database)
    saved = store.save(ana())

    found = store.find("ana.lopez@example.com")

    assert saved.email == "ana.lopez@example.com"
    assert found == ana()
    assert found is not None
    assert found.phone == "+14155552671"
    assert [p.username for p in found.social_profiles] == ["analopez", "ana-lopez"]
    assert found.custom_fields == {"plan": "pro", "seats": 12}


def test_save_many_reports_created_updated_and_unchanged(database: Database) -> None:
    store = ContactStore(database)
    first = store.save_many([ana(), Contact(email="bo@example.com")])

    second = store.save_many(
        [
            ana(company="Acme Europe"),
            Contact(email="BO@example.com"),
            Contact(email="cy@example.com", first_name="Cy"),
        ]
    )

    assert [(r.email, r.created, r.changed) for r in first] == [
        ("ana.lopez@example.com", True, True),
        ("bo@example.com", True, True),
    ]
    assert [(r.email, r.created, r.changed) for r in second] == [
        ("ana.lopez@example.com", False, True),
        ("bo@example.com", False, False),
        ("cy@example.com", True, True),
    ]
    assert [r.id for r in second[:2]] == [r.id for r in first]
    assert store.count() == 3
    assert [c.email for c in store.page(offset=1, limit=5)] == ["bo@example.com", "cy@example.com"]


def test_save_many_past_one_flush_batch_keeps_ids_in_order_and_repeats_as_updates(database: Database) -> None:
    store = ContactStore(database)
    count = SAVE_BATCH * 2 + 7
    people = [Contact(email=f"p{n}@example.com", first_name=f"P{n}") for n in range(count)]
    # The same person again inside the same save, past a flush boundary, with a change.
    saved = store.save_many([*people, Contact(email="p3@example.com", first_name="Pat")])
    assert len(saved) == count + 1
    assert [r.email for r in saved[:count]] == [p.email for p in people]
    assert all(r.created and r.changed and r.id for r in saved[:count])
    assert len({r.id for r in saved[:count]}) == count
    assert (saved[-1].id, saved[-1].created, saved[-1].changed) == (saved[3].id, False, True)
    assert store.count() == count
    assert store.find("p3@example.com") == Contact(email="p3@example.com", first_name="Pat")
    again = store.save_many(people[:5])
    assert [(r.id, r.created) for r in again] == [(r.id, False) for r in saved[:5]]


def test_save_many_updates_stored_contacts_in_bulk_writing_only_changed_columns(database: Database) -> None:
    store = ContactStore(database)
    count = 90
    people = [
        Contact.model_validate({"email": f"p{n}@example.com", "firstName": f"P{n}", "company": "Old",
                                "socialProfiles": [{"platform": "twitter", "username": f"p{n}", "followers": n}]})
        for n in range(count)
    ]
    first = store.save_many(people)
    with database.engine.begin() as connection:
        # A column a save of contacts never writes (an event's score): it must stay as it is.
        connection.execute(text("UPDATE contacts SET engagement_score = 7.5"))
        stamped = {email: at for email, at in connection.execute(select(ContactRow.email, ContactRow.updated_at))}
    time.sleep(0.01)
    moved = [p.model_copy(update={"company": "New"}) for p in people[:30]]
    followed = [p.model_copy(update={"social_profiles": [p.social_profiles[0].model_copy(update={"followers": 999})]})
                for p in people[30:60]]
    statements: list[tuple[str, bool]] = []

    def capture(_conn: object, _cursor: object, statement: str, _parameters: object, _context: object,
                many: bool) -> None:
        if statement.lstrip().upper().startswith("UPDATE CONTACTS"):
            statements.append((" ".join(statement.split()), many))

    event.listen(database.engine, "before_cursor_execute", capture)
    try:
        saved = store.save_many([*moved, *followed, *people[60:]], relay=lambda record, _now: record)
    finally:
        event.remove(database.engine, "before_cursor_execute", capture)

    assert [(r.id, r.created, r.changed) for r in saved] == [(r.id, False, n < 60) for n, r in enumerate(first)]
    # One statement per set of changed columns (the write hold aside), not one per contact; a profile-only
    # change touches updated_at alone, and no statement writes a column that did not change.
    writes = [statement for statement, many in statements if many]
    assert len(writes) == 2, writes
    sets = sorted(statement.split(" SET ")[1].split(" WHERE ")[0] for statement in writes)
    assert [[part.split("=")[0].strip() for part in assignment.split(",")] for assignment in sets] == [
        ["company", "updated_at"], ["updated_at"]]
    with database.engine.begin() as connection:
        rows = {row.email: row for row in connection.execute(select(ContactRow))}
    assert {rows[p.email].company for p in people[:30]} == {"New"}
    assert {rows[p.email].company for p in people[30:]} == {"Old"}
    assert {rows[p.email].engagement_score for p in people} == {7.5}
    assert all(rows[p.email].updated_at > stamped[p.email] for p in people[:60])
    assert all(rows[p.email].updated_at == stamped[p.email] for p in people[60:])
    assert store.find_many([p.email for p in people]) == {
        p.email: p for p in [*moved, *followed, *people[60:]]}


def test_save_many_of_stored_contacts_loads_no_orm_objects(database: Database) -> None:
    # An import of 100,000 changed contacts spent most of its save in the ORM's per-object work (identity map,
    # attribute history, unit of work); the save reads and writes plain rows.
    store = ContactStore(database)
    people = [Contact(email=f"p{n}@example.com", company="Old") for n in range(20)]
    store.save_many(people)
    loaded: list[object] = []

    def count(target: object, _context: object) -> None:
        loaded.append(target)

    event.listen(ContactRow, "load", count)
    event.listen(SocialProfileRow, "load", count)
    try:
        saved = store.save_many([p.model_copy(update={"company": "New"}) for p in people],
                                relay=lambda record, _now: record)
    finally:
        event.remove(ContactRow, "load", count)
        event.remove(SocialProfileRow, "load", count)
    assert [(r.created, r.changed) for r in saved] == [(False, True)] * 20
    assert loaded == []
    assert {c.company for c in store.find_many([p.email for p in people]).values()} == {"New"}


def test_contacts_are_unique_by_normalised_email(database: Database) -> None:
    store = ContactStore(database)
    first = store.save(Contact(email="Ana.Lopez@EXAMPLE.com"))
    again = store.save(Contact(email="  ana.lopez@example.COM "))

    assert again.id == first.id
    assert not again.created
    assert store.count() == 1
    with pytest.raises(IntegrityError), database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO contacts (email, custom_fields, created_at, updated_at)"
                " VALUES ('ana.lopez@example.com', '{}', :now, :now)"
            ),
            {"now": datetime.now(UTC).replace(tzinfo=None).isoformat(" ")},
        )


@pytest.mark.parametrize(
    ("profiles", "changed"),
    [
        # Same profiles, other order: nothing to write.
        (
            [
                {"platform": "linkedin", "username": "ana-lopez", "url": "https://www.linkedin.com/in/ana-lopez"},
                {"platform": "twitter", "username": "analopez", "followers": 1200, "engagement": 4.5},
            ],
            False,
        ),
        # More followers on the same profile: updated in place (same unique key).
        (
            [
                {"platform": "twitter", "username": "analopez", "followers": 1350, "engagement": 5.0},
                {"platform": "linkedin", "username": "ana-lopez", "url": "https://www.linkedin.com/in/ana-lopez"},
            ],
            True,
        ),
        # One profile dropped, one added.
        (
            [
                {"platform": "twitter", "username": "analopez", "followers": 1200, "engagement": 4.5},
                {"platform": "instagram", "username": "ana.lopez", "followers": 800},
            ],
            True,
        ),
        ([], True),
    ],
    ids=["reordered", "followers-grew", "swapped", "all-removed"],
)
def test_saving_profiles_again(database: Database, profiles: list[dict[str, object]], changed: bool) -> None:
    store = ContactStore(database)
    store.save(ana())

    result = store.save(ana(socialProfiles=profiles))

    assert result.changed is changed
    found = store.find("ana.lopez@example.com")
    assert found is not None
    expected = {(p["platform"], p["username"], p.get("followers", 0)) for p in profiles}
    assert {(p.platform.value, p.username, p.followers) for p in found.social_profiles} == expected
    assert store.save(ana(socialProfiles=profiles)).changed is False


def test_removing_a_contact_cascades_to_profiles_and_touchpoints(database: Database) -> None:
    contacts = ContactStore(database)
    saved = contacts.save(ana())
    kept = contacts.save(
        Contact.model_validate(
            {"email": "bo@example.com", "socialProfiles": [{"platform": "tiktok", "username": "bo"}]}
        )
    )
    LeadStore(database).save(Lead(email="ana.lopez@example.com"))
    with database.session() as session:
        for number, email in enumerate((saved.email, kept.email)):
            session.add(
                TouchpointRow(
                    event_key=str(number) * 64,
                    email=email,
                    timestamp=datetime(2026, 11, 27, 9, tzinfo=UTC),
                    platform=SocialPlatform.TWITTER,
                    type=TouchpointType.DM,
                )
            )

    contacts.remove("ana.lopez@example.com")
    contacts.remove("bo@example.com")

    with database.session() as session:
        assert session.scalars(select(SocialProfileRow.contact_id)).all() == []
        # Ana's touchpoints stay with her lead (same email); Bo's went with him.
        assert session.scalars(select(TouchpointRow.email)).all() == ["ana.lopez@example.com"]
        lead = session.scalars(select(LeadRow)).one()
        assert lead.contact_id is None  # the lead stays, unlinked
    assert contacts.find("ana.lopez@example.com") is None
    with pytest.raises(NotFoundError):
        contacts.remove("ana.lopez@example.com")


# --- leads --------------------------------------------------------------------------------------------------------


def test_leads_link_to_the_contact_with_the_same_email(database: Database) -> None:
    contact = ContactStore(database).save(ana())
    leads = LeadStore(database)

    linked = leads.save(
        Lead.model_validate(
            {
                "email": "ANA.LOPEZ@example.com",
                "source": "twitter_dm",
                "socialContext": {
                    "platform": "twitter",
                    "conversationId": "c-1",
                    "sentiment": "positive",
                    "engagementScore": 72.5,
                },
            }
        )
    )
    alone = leads.save(Lead(email="newcomer@example.com", status=LeadStatus.CONTACTED))

    with database.session() as session:
        links = {email: owner for email, owner in session.execute(select(LeadRow.email, LeadRow.contact_id))}
    assert links == {"ana.lopez@example.com": contact.id, "newcomer@example.com": None}
    assert linked.created and alone.created
    found = leads.find("ana.lopez@example.com")
    assert found is not None
    assert found.social_context is not None
    assert found.social_context.sentiment == "positive"
    assert found.social_context.engagement_score == 72.5
    assert found.to_wire()["socialContext"]["conversationId"] == "c-1"
    assert leads.find("newcomer@example.com") == Lead(email="newcomer@example.com", status=LeadStatus.CONTACTED)


def test_lead_save_reports_changes(database: Database) -> None:
    leads = LeadStore(database)
    first = leads.save(Lead(email="lee@example.com", source="instagram_comment"))
    same = leads.save(Lead(email="lee@example.com", source="instagram_comment"))
    qualified = leads.save(Lead(email="lee@example.com", source="instagram_comment", status=LeadStatus.QUALIFIED))

    assert (first.created, first.changed) == (True, True)
    assert (same.created, same.changed) == (False, False)
    assert (qualified.created, qualified.changed) == (False, True)
    assert first.id == same.id == qualified.id
    assert leads.count() == 1
    found = leads.find("lee@example.com")
    assert found is not None
    assert found.status is LeadStatus.QUALIFIED


@pytest.mark.parametrize("kind", ["contact", "lead"])
def test_a_relayed_save_holds_its_rows_until_it_writes(database: Database, kind: str) -> None:
    """A save with a relay reads the stored record under a lock: another relayed save started meanwhile waits,
    then lays its change over this one's (both custom fields kept, in one JSON column) instead of being lost."""
    store: ContactStore | LeadStore = ContactStore(database) if kind == "contact" else LeadStore(database)
    first: Contact | Lead = (Contact(email="ada@example.com", company="Acme") if kind == "contact"
                             else Lead(email="ada@example.com", company="Acme"))
    store.save(first)  # type: ignore[arg-type]
    other: list[BaseException] = []

    def the_other_writer() -> None:
        try:
            store.save_many([first], relay=lambda _, now: now.model_copy(
                update={"custom_fields": now.custom_fields | {"source": "pull"}}))
        except BaseException as exc:  # pragma: no cover - reported below
            other.append(exc)

    racing = threading.Thread(target=the_other_writer)

    def relay(record: Contact | Lead, now: Contact | Lead | None) -> Contact | Lead:
        assert now is not None and now.company == "Acme"
        racing.start()
        time.sleep(0.5)  # time for the other writer to read and write, were the row not held
        return now.model_copy(update={"custom_fields": now.custom_fields | {"tier": "gold"}})

    saved = store.save_many([first], relay=relay)  # type: ignore[list-item]
    racing.join(timeout=30)
    assert not racing.is_alive() and not other
    assert [(s.email, s.changed) for s in saved] == [("ada@example.com", True)]
    stored = store.find("ada@example.com")
    assert stored is not None and stored.custom_fields == {"tier": "gold", "source": "pull"}


def test_a_relayed_save_over_a_contact_inserted_meanwhile_is_made_again(database: Database) -> None:
    """PostgreSQL holds only rows already stored: another desktop inserting the same new email between the read
    and the insert fails the insert, and the save is made once more, laid over that contact. (SQLite's write lock,
    taken before the read, keeps the other writer waiting instead.)"""
    if database.is_sqlite:
        pytest.skip("SQLite holds the whole database from before the read")
    store = ContactStore(database)
    other = Database(str(database.engine.url.render_as_string(hide_password=False)))
    seen: list[Contact | None] = []

    def relay(record: Contact, now: Contact | None) -> Contact:
        seen.append(now)
        if len(seen) == 1:
            ContactStore(other).save(Contact(email=record.email, first_name="Other", company="Initech"))
        return record if now is None else now.model_copy(update={"phone": "+14155550123"})

    try:
        [saved] = store.save_many([Contact(email="new@example.com", phone="+14155550123")], relay=relay)
    finally:
        other.close()
    assert [None if s is None else s.first_name for s in seen] == [None, "Other"]
    assert not saved.created
    stored = store.find("new@example.com")
    assert stored is not None and (stored.first_name, stored.company, stored.phone) == (
        "Other", "Initech", "+14155550123")
