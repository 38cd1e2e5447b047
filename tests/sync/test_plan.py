"""A dry run's plan is the plan a real run applies, for the same state, on every CRM."""

from __future__ import annotations

from typing import Any

from crm_desktop.domain.models import Lead, LeadStatus, Provider, SocialContext
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.providers.contract import OutboundRecord
from crm_desktop.store.models import ConflictRule, SyncRunStatus
from crm_desktop.sync.engine import SyncResult
from crm_desktop.sync.plan import ChangeAction, ConflictDecision, PlannedChange, Side
from tests.sync.conftest import SyncBench, person, scenario, values_of


def first_name_edit(provider: Provider, first_name: str) -> dict[str, Any]:
    """A salesperson's change of a person's first name, in each CRM's own fields."""
    if provider is Provider.HUBSPOT:
        return {"properties": {"firstname": first_name}}
    if provider is Provider.SALESFORCE:
        return {"FirstName": first_name}
    return {"name": f"{first_name} Lovelace"}


def lead(number: int) -> Lead:
    return Lead(
        email=f"lead{number}@example.com",
        first_name=f"Lena{number}",
        last_name="Prospect",
        company="Looms Ltd",
        source="twitter_dm",
        status=LeadStatus.NEW,
        social_context=SocialContext(platform="twitter", conversation_id=f"dm-{number}", sentiment="positive"),
    )


def plan_of(result: SyncResult) -> list[tuple[Any, ...]]:
    """Every change of a run (unchanged records included), comparable and in a stable order."""
    return sorted(
        (c.key, tuple(sorted((name, f.old, f.new, f.reason) for name, f in c.fields.items())), c.reason,
         c.decision.value if c.decision else "")
        for c in result.plan.changes
    )


def counts_of(result: SyncResult) -> dict[str, int]:
    return {k: v for k, v in result.counts.items() if k != "failed"}


async def put_in_crm(bench: SyncBench, email: str, fields: dict[str, Any]) -> None:
    """A record someone else created in the CRM, through the adapter (as a salesperson's tool would)."""
    adapter = bench.workspace.crm.adapter_for(bench.integration)
    try:
        [result] = await adapter.upsert(RecordObject.CONTACT, [OutboundRecord(email, fields)])
    finally:
        await adapter.aclose()
    assert result.ok, result.message


def find(result: SyncResult, email: str, side: Side, action: ChangeAction) -> list[PlannedChange]:
    return [c for c in result.plan.changes if (c.email, c.side, c.action) == (email, side, action)]


@scenario
async def test_a_dry_run_plans_exactly_what_the_run_then_applies(any_crm: SyncBench) -> None:
    bench = any_crm
    bench.save(person(1), person(2), person(3), person(4))
    bench.save_lead(lead(1))
    bench.save_lead(lead(2))
    first = await bench.sync()
    assert first.status is SyncRunStatus.SUCCEEDED, first.failures
    bench.set_rule("firstName", ConflictRule.PREFER_CRM)

    # person1: first name changed on both sides, the rule keeps the CRM's value.
    bench.change("person1@example.com", first_name="Local Ada")
    bench.sandbox.clock.advance(2)
    await bench.edit(bench.link("person1@example.com").crm_id, first_name_edit(bench.provider, "Augusta"))
    # person2: changed in the CRM only; person3: changed locally only; person4 untouched.
    await bench.edit(bench.link("person2@example.com").crm_id, first_name_edit(bench.provider, "Grace"))
    bench.change("person3@example.com", phone="+14155550999")
    # person5: new locally; person6: new locally, already in the CRM with the same values.
    bench.save(person(5), person(6))
    await put_in_crm(bench, "person6@example.com",
                     {bench.crm_field("firstName"): "Ada6", bench.crm_field("lastName"): "Lovelace"})

    before = bench.snapshot()
    mark = bench.mark()
    dry = await bench.sync(dry_run=True)
    assert bench.writes_since(mark) == []
    assert bench.snapshot() == before, "a dry run wrote to the local store"

    real = await bench.sync()
    assert real.status is SyncRunStatus.SUCCEEDED, real.failures
    assert plan_of(dry) == plan_of(real)
    assert counts_of(dry) == counts_of(real)

    # The rule kept the CRM's value: the local store takes it and nothing goes back to the CRM.
    [decided] = find(real, "person1@example.com", Side.LOCAL, ChangeAction.CONFLICT)
    assert decided.decision is ConflictDecision.CRM_KEPT
    assert values_of(decided) == {"firstName": ("Local Ada", "Augusta")}
    assert find(dry, "person1@example.com", Side.CRM, ChangeAction.UPDATE) == []
    assert bench.contact("person1@example.com").first_name == "Augusta"
    assert real.counts["conflicts"] == 0, "a rule decided every conflict: none waits"
    # No lead changed on either side: no lead is planned for an update, and none is written.
    assert [c for c in dry.changes if c.object is RecordObject.LEAD] == []
    # A second run finds nothing to do, in its plan and on the wire.
    mark = bench.mark()
    again_dry = await bench.sync(dry_run=True)
    again = await bench.sync()
    assert again_dry.changes == [] and again.changes == []
    assert bench.writes_since(mark) == []
    assert counts_of(again_dry) == counts_of(again)
