"""Conversions pulled from the three sandbox CRMs over loopback, credited in the attribution report, and Pipedrive
deals made once in a pipeline chosen by name."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm_desktop.app.conversions import ConversionService, PipelineChoiceError
from crm_desktop.app.forget import ForgetService
from crm_desktop.app.people import PeopleService
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Lead, LeadStatus, SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.domain.social import AttributionModel, Conversion, EngagementEvent
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.store.models import SyncRunStatus, WorkspaceSettingRow
from crm_desktop.sync.plan import ChangeAction
from tests.support.cli_runs import workspace_at
from tests.support.served_crms import served_crms

pytestmark = pytest.mark.loopback


@dataclass
class Crms:
    workspace: Workspace
    conversions: ConversionService
    salesforce: SalesforceSandbox
    hubspot: HubSpotSandbox
    pipedrive: PipedriveSandbox

    def salesperson(self, sandbox: Any, action: str, body: dict[str, Any]) -> httpx.Response:
        """A salesperson's step through the sandbox's control endpoint, over the socket."""
        return httpx.post(f"{sandbox.base_url}/__sandbox__/salesperson/{action}", json=body, timeout=10)

    def pull(self, name: str) -> Any:
        return asyncio.run(self.conversions.pull(name))


@pytest.fixture
def crms(tmp_path: Path) -> Iterator[Crms]:
    with served_crms(salesforce_contacts=8, pipedrive_contacts=8) as served, \
            workspace_at(tmp_path / "workspace") as workspace:
        served.connect(workspace)
        conversions = ConversionService(workspace.database, workspace.integrations, workspace.crm, workspace.social)
        yield Crms(workspace, conversions, served.salesforce, served.hubspot, served.pipedrive)


def touch(crms: Crms, email: str, campaign: str, *, days_ago: float = 2, kind: str = "click") -> None:
    """A social touchpoint of the person in a campaign, before the salesperson's step."""
    crms.workspace.social.record_engagement(
        EngagementEvent.model_validate({
            "platform": "twitter", "type": kind, "campaign": campaign, "user": {"email": email},
            "timestamp": (datetime.now(UTC) - timedelta(days=days_ago)).isoformat(),
        })
    )


def campaign_row(crms: Crms, campaign: str) -> dict[str, Any]:
    report = crms.workspace.social.attribution_report(AttributionModel.LINEAR).to_wire()
    rows = {row.get("name"): row for row in report["byCampaign"]}
    return rows.get(campaign, {"conversionsCredited": 0, "valueCredited": {}})


def test_salesforce_converted_lead_is_pulled_once_and_credited(crms: Crms) -> None:
    lead = next(iter(crms.salesforce.records["Lead"].values()))
    email = str(lead["Email"]).lower()
    touch(crms, email, "SF spring")
    assert crms.pull("salesforce").pulled == 0  # nothing converted yet

    answer = crms.salesperson(crms.salesforce, "convert-lead", {"email": email})
    assert answer.status_code == 200, answer.text
    assert answer.json()["IsConverted"] is True

    report = crms.pull("salesforce")
    assert (report.pulled, report.created) == (1, 1)
    assert campaign_row(crms, "SF spring")["conversionsCredited"] == pytest.approx(1.0)

    assert crms.pull("salesforce").created == 0
    with crms.workspace.database.session() as session:  # a pull from the very start reads the lead again
        session.delete(session.get(WorkspaceSettingRow, "conversions.cursor.1"))
    again = crms.pull("salesforce")
    assert (again.pulled, again.created, again.unchanged) == (1, 0, 1)
    assert crms.workspace.social.attribution_report(AttributionModel.LINEAR).conversions == 1
    # A converted lead cannot be converted again: Salesforce's own refusal.
    refused = crms.salesperson(crms.salesforce, "convert-lead", {"email": email})
    assert refused.status_code == 400 and "CANNOT_UPDATE_CONVERTED_LEAD" in refused.text


def test_a_lead_converted_in_salesforce_is_not_pushed_again(crms: Crms) -> None:
    """Salesforce refuses every write to a converted Lead (CANNOT_UPDATE_CONVERTED_LEAD): once its conversion is
    pulled, a change to the local lead (a new score, an edit) is skipped with the reason, not failed at every run."""
    workspace = crms.workspace
    lead_id = workspace.leads.save(Lead(email="lea@example.com", first_name="Lea", last_name="Park",
                                        company="Park AG")).id
    first = asyncio.run(workspace.sync.sync("salesforce", SyncDirection.PUSH))
    assert first.counts["created"] == 1, first
    answer = crms.salesperson(crms.salesforce, "convert-lead", {"email": "lea@example.com"})
    assert answer.status_code == 200, answer.text
    assert crms.pull("salesforce").created == 1

    people = PeopleService(workspace.database, workspace.social, workspace.sync)
    people.edit(RecordObject.LEAD, lead_id, {"company": "Park & Co"})
    planned = asyncio.run(workspace.sync.sync("salesforce", SyncDirection.PUSH, dry_run=True))
    after = asyncio.run(workspace.sync.sync("salesforce", SyncDirection.PUSH))
    for result in (planned, after):
        assert result.status is SyncRunStatus.SUCCEEDED, result.failures
        assert result.counts["failed"] == 0
        [skip] = [c for c in result.plan.changes if c.email == "lea@example.com"]
        assert skip.action is ChangeAction.SKIP and "converted in Salesforce" in skip.reason
    [converted] = [r for r in crms.salesforce.records["Lead"].values() if r.get("Email") == "lea@example.com"]
    assert converted["Company"] == "Park AG"


def test_hubspot_lifecycle_customer_is_a_conversion(crms: Crms) -> None:
    created = httpx.post(
        f"{crms.hubspot.base_url}/crm/v3/objects/contacts",
        headers={"Authorization": f"Bearer {crms.hubspot.credentials()['token']}"},
        json={"properties": {"email": "ana@example.com", "firstname": "Ana", "lifecyclestage": "lead"}},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    touch(crms, "ana@example.com", "HS launch")
    assert crms.pull("hubspot").pulled == 0  # a lead is not a conversion

    moved = crms.salesperson(crms.hubspot, "lifecycle", {"email": "ana@example.com", "stage": "opportunity"})
    assert moved.status_code == 200, moved.text
    became = moved.json()["properties"]["hs_lifecyclestage_opportunity_date"]
    first = crms.pull("hubspot")
    assert (first.pulled, first.created) == (1, 1)
    # Reaching customer later is the same conversion, still dated when it reached opportunity.
    assert crms.salesperson(crms.hubspot, "lifecycle", {"email": "ana@example.com"}).status_code == 200
    second = crms.pull("hubspot")
    assert (second.pulled, second.created, second.unchanged) == (1, 0, 1)
    (stored,) = crms.workspace.social.store.conversions()
    assert stored.timestamp == datetime.fromisoformat(became.replace("Z", "+00:00"))
    assert campaign_row(crms, "HS launch")["conversionsCredited"] == pytest.approx(1.0)
    # HubSpot's lifecycle only moves forward.
    back = crms.salesperson(crms.hubspot, "lifecycle", {"email": "ana@example.com", "stage": "lead"})
    assert back.status_code == 400 and "forward" in back.text
    assert crms.salesperson(crms.hubspot, "lifecycle", {"email": "nobody@example.com"}).status_code == 404


def test_pipedrive_won_deal_brings_its_value(crms: Crms) -> None:
    person = next(iter(crms.pipedrive.persons.values()))
    email = str(person.emails[0]["value"]).lower()
    touch(crms, email, "PD webinar", days_ago=3)
    touch(crms, email, "PD retarget", days_ago=1)
    won = crms.salesperson(crms.pipedrive, "win-deal", {"email": email, "value": 1200, "currency": "EUR"})
    assert won.status_code == 200, won.text
    assert won.json()["status"] == "won"

    report = crms.pull("pipedrive")
    assert (report.pulled, report.created) == (1, 1)
    assert campaign_row(crms, "PD webinar")["valueCredited"] == {"EUR": pytest.approx(600.0)}
    assert campaign_row(crms, "PD retarget")["conversionsCredited"] == pytest.approx(0.5)
    assert crms.pull("pipedrive").created == 0
    assert crms.workspace.social.attribution_report(AttributionModel.LINEAR).value == {"EUR": 1200.0}


def test_pipeline_is_chosen_by_name_and_unknown_names_are_refused(crms: Crms) -> None:
    with pytest.raises(PipelineChoiceError) as unknown:
        asyncio.run(crms.conversions.choose_pipeline("pipedrive", "Enterprise"))
    assert "Pipeline, Social leads" in str(unknown.value)
    assert "Social leads / New social lead" in unknown.value.choices
    with pytest.raises(PipelineChoiceError) as no_stage:
        asyncio.run(crms.conversions.choose_pipeline("pipedrive", "social leads", "Won"))
    assert "New social lead, Qualified, Proposal" in str(no_stage.value)
    with pytest.raises(PipelineChoiceError, match="Pipedrive integrations"):
        asyncio.run(crms.conversions.pipelines("hubspot"))

    choice = asyncio.run(crms.conversions.choose_pipeline("pipedrive", "social leads", "qualified"))
    assert (choice.pipeline_name, choice.stage_name) == ("Social leads", "Qualified")
    stage = crms.pipedrive.stages[int(choice.stage_id)]
    assert (stage.name, stage.pipeline_id) == ("Qualified", int(choice.pipeline_id))
    saved = crms.workspace.integrations.get("pipedrive").sync_config.deal_pipeline
    assert saved == choice


def test_qualified_lead_gets_one_deal_in_the_chosen_pipeline(crms: Crms) -> None:
    asyncio.run(crms.conversions.choose_pipeline("pipedrive", "Social leads", "New social lead"))
    persons = list(crms.pipedrive.persons.values())
    qualified = str(persons[0].emails[0]["value"]).lower()
    converted = str(persons[1].emails[0]["value"]).lower()
    crms.workspace.leads.save(Lead(email=qualified, first_name="Qia", last_name="Lee", status=LeadStatus.QUALIFIED))
    crms.workspace.leads.save(Lead(email="later@example.com", last_name="Later", status=LeadStatus.CONVERTED))
    crms.workspace.leads.save(Lead(email=str(persons[2].emails[0]["value"]), status=LeadStatus.NEW))
    touch(crms, converted, "API")  # a conversion recorded by the API, not by this CRM
    crms.workspace.social.record_conversion(
        Conversion.model_validate(
            {"email": converted, "timestamp": datetime.now(UTC).isoformat(), "value": 99.5, "currency": "USD"}
        )
    )

    report = crms.pull("pipedrive")
    made = dict(report.deals_created)
    assert set(made) == {qualified, converted}
    assert report.deals_waiting == ["later@example.com"]  # no person in Pipedrive yet
    deal = crms.pipedrive.deals[int(made[qualified])]
    assert deal.person_id == persons[0].id
    assert (deal.pipeline_id, deal.stage_id) == (2, 6)
    assert deal.title == "Qia Lee (social lead)"
    priced = crms.pipedrive.deals[int(made[converted])]
    assert (priced.value, priced.currency) == (99.5, "USD")

    count = len(crms.pipedrive.deals)
    again = crms.pull("pipedrive")
    assert again.deals_created == [] and len(crms.pipedrive.deals) == count  # never a second deal

    # The desktop's memory lost (another desktop, a restored backup): the CRM's own deal is found, not duplicated.
    fresh = Workspace.open(crms.workspace.paths.data_dir)
    try:
        with fresh.database.session() as session:
            session.delete(session.get(WorkspaceSettingRow, "conversions.deals.3"))
        service = ConversionService(fresh.database, fresh.integrations, fresh.crm, fresh.social)
        rebuilt = asyncio.run(service.pull("pipedrive"))
        assert rebuilt.deals_created == [] and rebuilt.deals_found == 2
        assert len(crms.pipedrive.deals) == count
        # The deal won by the salesperson comes back as a conversion, with its value.
        assert httpx.post(f"{crms.pipedrive.base_url}/__sandbox__/salesperson/win-deal",
                          json={"dealId": deal.id, "value": 5000, "currency": "EUR"}, timeout=10).status_code == 200
        won = asyncio.run(service.pull("pipedrive"))
        assert (won.pulled, won.created) == (1, 1)
        assert fresh.social.attribution_report(AttributionModel.LINEAR).value["EUR"] == 5000.0
    finally:
        fresh.close()


def test_a_converted_contact_s_deal_is_titled_by_its_name(crms: Crms) -> None:
    """A person who converted as a contact (a HubSpot customer, a purchase sent to the API), not as a lead, has
    the deal titled by the name the contact holds, as a lead's is, not by the email."""
    asyncio.run(crms.conversions.choose_pipeline("pipedrive", "Social leads", "New social lead"))
    person = next(iter(crms.pipedrive.persons.values()))
    email = str(person.emails[0]["value"]).lower()
    crms.workspace.contacts.save(Contact(email=email, first_name="Ana", last_name="García"))
    crms.workspace.social.record_conversion(
        Conversion.model_validate({"email": email, "timestamp": datetime.now(UTC).isoformat()}))

    made = dict(crms.pull("pipedrive").deals_created)
    assert crms.pipedrive.deals[int(made[email])].title == "Ana García (social lead)"


def test_a_sync_pulls_the_conversions_too(crms: Crms) -> None:
    person = next(iter(crms.pipedrive.persons.values()))
    email = str(person.emails[0]["value"]).lower()
    touch(crms, email, "Sync pulled")
    assert crms.salesperson(crms.pipedrive, "win-deal", {"email": email, "value": 300, "currency": "USD"}
                            ).status_code == 200
    asyncio.run(crms.workspace.sync.sync("pipedrive"))
    report = crms.workspace.social.attribution_report(AttributionModel.LAST_TOUCH)
    assert report.conversions == 1 and report.value == {"USD": 300.0}
    assert campaign_row(crms, "Sync pulled")["conversionsCredited"] == pytest.approx(1.0)


def test_hubspot_conversion_is_worth_the_contacts_won_deals(crms: Crms) -> None:
    token = {"Authorization": f"Bearer {crms.hubspot.credentials()['token']}"}
    contact = httpx.post(f"{crms.hubspot.base_url}/crm/v3/objects/contacts", headers=token, timeout=10,
                         json={"properties": {"email": "bo@example.com", "lifecyclestage": "salesqualifiedlead"}})
    contact_id = contact.json()["id"]
    open_deal = httpx.post(f"{crms.hubspot.base_url}/crm/v3/objects/deals", headers=token, timeout=10, json={
        "properties": {"dealname": "Open", "dealstage": "contractsent", "amount": "999", "deal_currency_code": "EUR"},
        "associations": [{"to": {"id": contact_id},
                          "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}],
    })
    assert open_deal.status_code == 201, open_deal.text
    touch(crms, "bo@example.com", "HS deals")
    # The salesperson closes a deal won and makes the contact a customer.
    won = crms.salesperson(crms.hubspot, "lifecycle", {"email": "bo@example.com", "amount": 1500, "currency": "EUR"})
    assert won.status_code == 200, won.text
    report = crms.pull("hubspot")
    assert (report.pulled, report.created) == (1, 1)
    (stored,) = crms.workspace.social.store.conversions()
    assert (stored.value, stored.currency) == (Decimal("1500.00"), "EUR")  # the open deal is not counted
    assert campaign_row(crms, "HS deals")["valueCredited"] == {"EUR": pytest.approx(1500.0)}


def test_a_large_backlog_of_deals_is_made_over_several_pulls(crms: Crms) -> None:
    asyncio.run(crms.conversions.choose_pipeline("pipedrive", "Pipeline"))
    emails = [str(p.emails[0]["value"]).lower() for p in list(crms.pipedrive.persons.values())[:3]]
    for email in emails:
        crms.workspace.leads.save(Lead(email=email, status=LeadStatus.QUALIFIED))
    crms.conversions.deals_per_pull = 2
    first = crms.pull("pipedrive")
    assert (len(first.deals_created), first.deals_deferred) == (2, 1)
    second = crms.pull("pipedrive")
    assert (len(second.deals_created), second.deals_deferred) == (1, 0)
    assert sorted(d.person_id for d in crms.pipedrive.deals.values()) == sorted(
        p.id for p in list(crms.pipedrive.persons.values())[:3]
    )


def test_a_conversion_with_no_valid_email_is_refused_and_the_others_recorded(crms: Crms) -> None:
    # Pipedrive takes any text as a person's email: a won deal of such a person must not stop every pull.
    bad, good = list(crms.pipedrive.persons.values())[:2]
    bad.emails[0]["value"] = "bad at example"
    good_email = str(good.emails[0]["value"]).lower()
    touch(crms, good_email, "PD good")
    for email, value in (("bad at example", 99), (good_email, 250)):
        won = crms.salesperson(crms.pipedrive, "win-deal", {"email": email, "value": value, "currency": "EUR"})
        assert won.status_code == 200, won.text

    report = crms.pull("pipedrive")
    assert (report.pulled, report.created) == (2, 1)
    assert [(external_id.startswith("deal:"), "not a valid email" in reason) for external_id, reason
            in report.refused] == [(True, True)]
    assert crms.workspace.social.attribution_report(AttributionModel.LINEAR).value == {"EUR": 250.0}
    again = crms.pull("pipedrive")  # the CRMs filter from the cursor inclusively: both may be seen again
    assert again.created == 0 and len(again.refused) <= 1
    # And a sync, which pulls conversions after its records, ends with its own report (the person is refused
    # there, as a record): it used to end in the conversion's InvalidRecordError, and so did every later sync.
    result = asyncio.run(crms.workspace.sync.sync("pipedrive"))
    assert len(result.failures) == 1 and "bad at example" in result.failures[0].email, result.failures


def test_a_conversion_of_a_forgotten_person_is_skipped_saying_why(crms: Crms) -> None:
    created = httpx.post(
        f"{crms.hubspot.base_url}/crm/v3/objects/contacts",
        headers={"Authorization": f"Bearer {crms.hubspot.credentials()['token']}"},
        json={"properties": {"email": "gone@example.com", "firstname": "Gone", "lifecyclestage": "lead"}},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    forgotten = ForgetService(crms.workspace.database).forget("gone@example.com")
    assert crms.salesperson(crms.hubspot, "lifecycle", {"email": "gone@example.com"}).status_code == 200

    report = crms.pull("hubspot")

    assert (report.pulled, report.created) == (1, 0)
    reason = f"forgotten on {forgotten.forgotten_at:%Y-%m-%d} at your request; not recorded"
    assert report.skipped == [(f"contact:{created.json()['id']}", reason)]
    assert crms.workspace.social.store.conversions() == []
