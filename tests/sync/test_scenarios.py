"""Sync scenarios end to end: workspace -> sync service -> engine -> adapter -> in-process CRM sandbox."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from crm_desktop.domain.models import Lead, LeadStatus, Provider, SocialContext
from crm_desktop.domain.outcomes import RecordObject, RecordOutcome
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.store.models import ConflictRule, SyncLockRow, SyncRunStatus, utcnow
from crm_desktop.sync.engine import SyncAlreadyRunning
from tests.sync.conftest import SEARCHES_PER_SECOND, SyncBench, open_bench, person, scenario, values_of

EMAILS = [f"person{n}@example.com" for n in (1, 2, 3)]


def first_name_edit(provider: Provider, first_name: str) -> dict[str, Any]:
    """A salesperson's change of a person's first name, in each CRM's own fields."""
    if provider is Provider.HUBSPOT:
        return {"properties": {"firstname": first_name}}
    if provider is Provider.SALESFORCE:
        return {"FirstName": first_name}
    return {"name": f"{first_name} Lovelace"}


async def seed(bench: SyncBench) -> None:
    """Three local contacts, synced once."""
    bench.save(person(1), person(2), person(3))
    result = await bench.sync()
    assert result.status is SyncRunStatus.SUCCEEDED, result.failures


# -- the core round trip on every CRM -----------------------------------------------------------------------------


@scenario
async def test_first_sync_creates_and_a_second_sends_no_writes(any_crm: SyncBench) -> None:
    bench = any_crm
    bench.save(person(1), person(2), person(3))
    first = await bench.sync()
    assert first.status is SyncRunStatus.SUCCEEDED, first.failures
    assert first.counts["created"] == 3
    for number, email in enumerate(EMAILS, start=1):
        assert bench.link(email).crm_id
        assert await bench.crm_value(email, "firstName") == f"Ada{number}"
    [run] = bench.service.runs()
    assert (run.status, run.created) == (SyncRunStatus.SUCCEEDED, 3)

    mark = bench.mark()
    second = await bench.sync()
    assert second.status is SyncRunStatus.SUCCEEDED
    assert bench.writes_since(mark) == [], "unchanged records were written again"
    assert second.counts["created"] == second.counts["updated"] == second.counts["conflicts"] == 0
    assert bench.workspace.contacts.count() == 3


@scenario
async def test_a_local_change_sends_only_that_field(any_crm: SyncBench) -> None:
    bench = any_crm
    await seed(bench)
    bench.change("person2@example.com", first_name="Augusta")
    mark = bench.mark()
    pushed = await bench.sync()
    assert len(bench.writes_since(mark)) == 1
    assert pushed.counts["updated"] == 1
    [change] = [c for c in pushed.changes if c.side == "crm"]
    assert (change.email, set(change.fields)) == ("person2@example.com", {"firstName"})
    assert await bench.crm_value("person1@example.com", "firstName") == "Ada1"
    assert await bench.crm_value("person2@example.com", "firstName") == "Augusta"
    assert await bench.crm_value("person2@example.com", "lastName") == "Lovelace"

    mark = bench.mark()
    settled = await bench.sync()
    assert bench.writes_since(mark) == [], "the pushed change came back as a change"
    assert bench.contact("person2@example.com").first_name == "Augusta"
    assert bench.contact("person2@example.com").last_name == "Lovelace"
    assert settled.counts["conflicts"] == 0


@scenario
async def test_a_crm_change_flows_to_the_local_store(any_crm: SyncBench) -> None:
    bench = any_crm
    await seed(bench)
    await bench.edit(bench.link("person3@example.com").crm_id, first_name_edit(bench.provider, "Grace"))
    mark = bench.mark()
    pulled = await bench.sync()
    assert bench.contact("person3@example.com").first_name == "Grace"
    assert bench.contact("person3@example.com").last_name == "Lovelace"
    assert bench.writes_since(mark) == [], "a pulled change was echoed back to the CRM"
    assert [(c.email, values_of(c)) for c in pulled.changes if c.side == "local"] == [
        ("person3@example.com", {"firstName": ("Ada3", "Grace")})
    ]
    assert [r.field for r in bench.audit_rows("pull")] == ["firstName"]

    mark = bench.mark()
    await bench.sync()
    assert bench.writes_since(mark) == []
    assert bench.contact("person3@example.com").first_name == "Grace"


@pytest.mark.parametrize("any_crm", [Provider.SALESFORCE], indirect=True, ids=lambda p: p.value)
@scenario
async def test_what_a_push_trims_or_fills_in_is_no_change_later(any_crm: SyncBench) -> None:
    bench = any_crm
    long_name = "Augusta Ada Byron King Countess of Lovelace"  # Salesforce's FirstName holds 40 characters
    bench.save(person(1, first_name=long_name), person(2, last_name=None))  # LastName is required: "(unknown)"
    await bench.sync()
    assert await bench.crm_value("person1@example.com", "firstName") == long_name[:40]
    assert await bench.crm_value("person2@example.com", "lastName") == "(unknown)"
    await bench.edit(bench.link("person1@example.com").crm_id, {"Title": "Countess"})  # touched, not mapped
    await bench.edit(bench.link("person2@example.com").crm_id, {"Title": "Engineer"})

    mark = bench.mark()
    again = await bench.sync()
    assert bench.writes_since(mark) == []
    assert again.counts["updated"] == again.counts["conflicts"] == 0
    assert bench.contact("person1@example.com").first_name == long_name
    assert bench.contact("person2@example.com").last_name is None


# -- HubSpot scenarios ---------------------------------------------------------------------------------------------


@scenario
async def test_the_write_body_holds_only_the_changed_field(hubspot: SyncBench) -> None:
    await seed(hubspot)
    hubspot.change("person1@example.com", company="Difference Engines")
    mark = hubspot.mark()
    await hubspot.sync()
    [write] = hubspot.writes_since(mark)
    [item] = write.body["inputs"]
    assert item["id"] == hubspot.link("person1@example.com").crm_id
    assert set(item["properties"]) - {"email"} == {"company"}
    assert item["properties"]["company"] == "Difference Engines"


@scenario
async def test_crm_only_contacts_are_pulled_once(data_dir: Path) -> None:
    sandbox = HubSpotSandbox(SandboxConfig(contacts=6, seed=3), search_per_second_limit=SEARCHES_PER_SECOND)
    bench = open_bench(Provider.HUBSPOT, data_dir, sandbox)
    try:
        first = await bench.sync()
        assert first.status is SyncRunStatus.SUCCEEDED, first.failures
        assert bench.workspace.contacts.count() == 6
        assert bench.workspace.leads.count() == sandbox.summary()["leads"] > 0
        assert first.counts["created"] == 6 + sandbox.summary()["leads"]
        mark = bench.mark()
        second = await bench.sync()
        assert bench.writes_since(mark) == []
        assert second.counts["created"] == second.counts["updated"] == 0
    finally:
        bench.workspace.close()


@scenario
async def test_a_local_blank_never_wipes_the_crm_value(hubspot: SyncBench) -> None:
    await seed(hubspot)
    hubspot.change("person1@example.com", company=None)
    mark = hubspot.mark()
    await hubspot.sync()
    assert hubspot.writes_since(mark) == []
    assert await hubspot.crm_value("person1@example.com", "company") == "Analytical Engines"
    assert hubspot.contact("person1@example.com").company is None


@scenario
async def test_a_crm_blank_never_wipes_the_local_value(hubspot: SyncBench) -> None:
    await seed(hubspot)
    await hubspot.edit(hubspot.link("person1@example.com").crm_id, {"company": ""})
    await hubspot.sync()
    assert hubspot.contact("person1@example.com").company == "Analytical Engines"
    # The value the CRM lost is sent back, and the records then agree.
    assert await hubspot.crm_value("person1@example.com", "company") == "Analytical Engines"
    mark = hubspot.mark()
    await hubspot.sync()
    assert hubspot.writes_since(mark) == []


@scenario
async def test_blank_wipes_when_the_mapping_allows_it(hubspot: SyncBench) -> None:
    hubspot.set_blank_wipes("company")
    await seed(hubspot)
    hubspot.change("person1@example.com", company=None)
    await hubspot.sync()
    assert not await hubspot.crm_value("person1@example.com", "company")

    await hubspot.edit(hubspot.link("person2@example.com").crm_id, {"company": ""})
    await hubspot.sync()
    assert hubspot.contact("person2@example.com").company is None
    mark = hubspot.mark()
    await hubspot.sync()
    assert hubspot.writes_since(mark) == []


@scenario
async def test_an_email_change_updates_the_same_crm_record(hubspot: SyncBench) -> None:
    await seed(hubspot)
    link = hubspot.link("person1@example.com")
    local_id = hubspot.local_id("person1@example.com")
    renamed = hubspot.contact("person1@example.com").model_copy(update={"email": "ada@engines.example.com"})
    hubspot.store.save_local(RecordObject.CONTACT, local_id, renamed)

    result = await hubspot.sync()
    assert result.counts["created"] == 0
    assert result.counts["updated"] == 1
    assert hubspot.sandbox.summary()["contacts"] == 3, "the email change created a duplicate"
    assert hubspot.link("ada@engines.example.com").crm_id == link.crm_id
    moved = await hubspot.crm_record("ada@engines.example.com")
    assert moved is not None and moved.crm_id == link.crm_id
    assert await hubspot.crm_record("person1@example.com") is None

    mark = hubspot.mark()
    await hubspot.sync()
    assert hubspot.writes_since(mark) == []
    assert hubspot.workspace.contacts.count() == 3


@scenario
async def test_a_crm_email_change_moves_the_local_record(hubspot: SyncBench) -> None:
    await seed(hubspot)
    local_id = hubspot.local_id("person2@example.com")
    await hubspot.edit(hubspot.link("person2@example.com").crm_id, {"email": "countess@engines.example.com"})
    await hubspot.sync()
    assert hubspot.workspace.contacts.count() == 3
    assert hubspot.local_id("countess@engines.example.com") == local_id
    assert hubspot.workspace.contacts.find("person2@example.com") is None


@pytest.mark.parametrize(
    "any_crm",
    [Provider.HUBSPOT, Provider.SALESFORCE, Provider.PIPEDRIVE],
    indirect=True,
    ids=lambda p: p.value,
)
@scenario
async def test_a_contact_deleted_in_the_crm_is_skipped_and_not_recreated(any_crm: SyncBench) -> None:
    bench = any_crm
    await seed(bench)
    await bench.delete_in_crm(bench.link("person1@example.com").crm_id)
    bench.change("person1@example.com", first_name="Ghost")

    result = await bench.sync()
    assert await bench.crm_record("person1@example.com") is None, "a contact deleted in the CRM was re-created"
    assert result.counts["created"] == 0
    assert bench.link("person1@example.com").deleted_in_crm
    _run, log = bench.service.run(result.run_id or 0)
    assert [row.outcome for row in log if row.record_key == "person1@example.com"] == [RecordOutcome.SKIPPED]

    bench.change("person1@example.com", first_name="Still a ghost")
    mark = bench.mark()
    again = await bench.sync()
    assert bench.writes_since(mark) == []
    assert again.counts["created"] == 0
    assert await bench.crm_record("person1@example.com") is None


@scenario
async def test_a_dry_run_plans_everything_and_writes_nothing(hubspot: SyncBench) -> None:
    await seed(hubspot)
    hubspot.set_rule("company", ConflictRule.MANUAL)
    hubspot.save(person(4))  # new locally: a CRM create
    assert isinstance(hubspot.sandbox, HubSpotSandbox)
    hubspot.sandbox.seed_contacts([{"email": "crm.only@example.com", "firstname": "Charles"}])  # a local create
    hubspot.change("person1@example.com", first_name="Augusta")  # a CRM update
    await hubspot.edit(hubspot.link("person2@example.com").crm_id, {"firstname": "Grace"})  # a local update
    hubspot.change("person3@example.com", company="Local Engines")  # a conflict (manual rule)
    await hubspot.edit(hubspot.link("person3@example.com").crm_id, {"company": "CRM Engines"})

    before = hubspot.snapshot()
    mark = hubspot.mark()
    plan = await hubspot.sync(dry_run=True)
    assert hubspot.writes_since(mark) == []
    assert hubspot.snapshot() == before, "a dry run wrote to the local store"
    assert plan.run_id is None
    planned = {(c.email, c.side, c.action) for c in plan.changes}
    assert planned >= {
        ("person4@example.com", "crm", "create"),
        ("crm.only@example.com", "local", "create"),
        ("person1@example.com", "crm", "update"),
        ("person2@example.com", "local", "update"),
        ("person3@example.com", "local", "conflict"),
    }
    assert (plan.counts["created"], plan.counts["updated"], plan.counts["conflicts"]) == (2, 2, 1)

    real = await hubspot.sync()
    assert (real.counts["created"], real.counts["updated"], real.counts["conflicts"]) == (2, 2, 1)
    assert {(c.email, c.side, c.action) for c in real.changes} == planned


# -- one run at a time -----------------------------------------------------------------------------------------


@scenario
async def test_a_sync_is_refused_while_another_process_holds_the_lock(hubspot: SyncBench) -> None:
    hubspot.save(person(1))
    integration_id = hubspot.integration.id or 0
    assert hubspot.store.acquire_lock(integration_id, owner="other-host:4242")
    with pytest.raises(SyncAlreadyRunning):
        await hubspot.sync()
    assert hubspot.sandbox.summary()["contacts"] == 0
    assert hubspot.service.runs() == []

    # A lock whose owner stopped beating its heart is taken over.
    with hubspot.workspace.database.session() as session:
        session.execute(update(SyncLockRow).values(heartbeat_at=utcnow() - timedelta(hours=1)))
    result = await hubspot.sync()
    assert result.status is SyncRunStatus.SUCCEEDED
    assert hubspot.store.lock_holder(integration_id) is None


@scenario
async def test_a_second_call_in_the_same_process_joins_the_running_sync(hubspot: SyncBench) -> None:
    hubspot.save(person(1), person(2))
    first, second = await asyncio.gather(hubspot.sync(), hubspot.sync())
    assert first.run_id == second.run_id
    assert len(hubspot.service.runs()) == 1
    assert hubspot.sandbox.summary()["contacts"] == 2


# -- leads ------------------------------------------------------------------------------------------------------


def social_lead(number: int, status: LeadStatus = LeadStatus.NEW) -> Lead:
    return Lead(
        email=f"lead{number}@example.com",
        first_name=f"Lena{number}",
        last_name="Prospect",
        company="Looms Ltd",
        source="twitter_dm",
        status=status,
        social_context=SocialContext(platform="twitter", conversation_id=f"dm-{number}", sentiment="positive"),
    )


@scenario
async def test_leads_round_trip_on_hubspot(hubspot: SyncBench) -> None:
    hubspot.save_lead(social_lead(1))
    first = await hubspot.sync()
    assert first.status is SyncRunStatus.SUCCEEDED, first.failures
    assert first.counts["created"] == 1
    assert hubspot.link("lead1@example.com", RecordObject.LEAD).crm_id
    record = await hubspot.crm_record("lead1@example.com", RecordObject.LEAD)
    assert record is not None and record.fields.get("hs_lead_status") == "NEW"

    mark = hubspot.mark()
    await hubspot.sync()
    assert hubspot.writes_since(mark) == []

    hubspot.save_lead(social_lead(1, LeadStatus.CONTACTED))
    await hubspot.sync()
    assert await hubspot.crm_value("lead1@example.com", "status", RecordObject.LEAD) == "ATTEMPTED_TO_CONTACT"
    mark = hubspot.mark()
    await hubspot.sync()
    assert hubspot.writes_since(mark) == []


@scenario
async def test_a_lead_status_changed_in_hubspot_is_pulled(hubspot: SyncBench) -> None:
    hubspot.save_lead(social_lead(1))
    await hubspot.sync()
    await hubspot.sync()
    contact = await hubspot.crm_record("lead1@example.com")  # HubSpot keeps the lead status on its contact
    assert contact is not None
    await hubspot.edit(contact.crm_id, {"hs_lead_status": "UNQUALIFIED"})
    await hubspot.sync()
    assert lead_status(hubspot, "lead1@example.com") is LeadStatus.UNQUALIFIED


@pytest.mark.parametrize("any_crm", [Provider.SALESFORCE], indirect=True, ids=lambda p: p.value)
@scenario
async def test_leads_round_trip_on_salesforce(any_crm: SyncBench) -> None:
    bench = any_crm
    bench.save_lead(social_lead(1, LeadStatus.QUALIFIED))
    bench.save_lead(social_lead(2, LeadStatus.CONTACTED))
    bench.save_lead(social_lead(3))
    first = await bench.sync()
    assert first.status is SyncRunStatus.SUCCEEDED, first.failures
    assert first.counts["created"] == 3
    assert await bench.crm_value("lead1@example.com", "status", RecordObject.LEAD) == "Working - Contacted"

    mark = bench.mark()
    await bench.sync()
    assert bench.writes_since(mark) == []
    # "qualified" and "contacted" share one Salesforce status: reading it back changes neither lead.
    assert lead_status(bench, "lead1@example.com") is LeadStatus.QUALIFIED
    assert lead_status(bench, "lead2@example.com") is LeadStatus.CONTACTED

    crm_id = bench.link("lead3@example.com", RecordObject.LEAD).crm_id
    await bench.edit(crm_id, {"Status": "Closed - Not Converted"}, RecordObject.LEAD)
    mark = bench.mark()
    await bench.sync()
    assert lead_status(bench, "lead3@example.com") is LeadStatus.UNQUALIFIED
    assert bench.writes_since(mark) == []


def lead_status(bench: SyncBench, email: str) -> LeadStatus:
    lead = bench.workspace.leads.find(email)
    assert lead is not None
    return lead.status
