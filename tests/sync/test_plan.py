"""A dry run's plan is the plan a real run applies, for the same state, on every CRM."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event

from crm_desktop.domain.models import Lead, LeadStatus, Provider, SocialContext, SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.providers.contract import OutboundRecord, RecordResult
from crm_desktop.providers.hubspot import HubSpotAdapter
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.store.models import ConflictRule, SyncRunStatus
from crm_desktop.sync.engine import CANCELLED_MESSAGE, SyncResult
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
    """Every change of a run worth showing (records left unchanged are compared by their count, which is all a real
    run's plan keeps of them), comparable and in a stable order."""
    return sorted(
        (c.key, tuple(sorted((name, f.old, f.new, f.reason) for name, f in c.fields.items())), c.reason,
         c.decision.value if c.decision else "")
        for c in result.changes
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


@scenario
async def test_a_pulled_record_after_the_last_changed_one_is_planned_once(hubspot: SyncBench) -> None:
    # The dry run adds the pulled records that must go back to the CRM to its push pages; one whose local id came
    # after the last changed record's was added by the last (short) page and again by the empty one after it, so
    # the dry run counted it twice: "3 updated" where the run then updated 2.
    bench = hubspot
    bench.save(person(1), person(2))
    assert (await bench.sync()).status is SyncRunStatus.SUCCEEDED
    bench.change("person1@example.com", phone="+14155550999")
    bench.sandbox.clock.advance(2)
    # A salesperson blanks person2's company: a blank never wipes a value, so the pull sends ours back.
    await bench.edit(bench.link("person2@example.com").crm_id, {"properties": {"company": ""}})

    dry = await bench.sync(dry_run=True)
    real = await bench.sync()
    assert real.status is SyncRunStatus.SUCCEEDED, real.failures
    assert [c.email for c in dry.changes] == ["person1@example.com", "person2@example.com"]
    assert plan_of(dry) == plan_of(real)
    assert counts_of(dry) == counts_of(real) == {"created": 0, "updated": 2, "unchanged": 0, "conflicts": 0,
                                                 "decided": 0}
    assert await bench.crm_value("person2@example.com", "company") == "Analytical Engines"


@scenario
async def test_the_lock_is_released_when_a_run_cannot_even_be_recorded(hubspot: SyncBench,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(hubspot.store, "start_run", refuse)
    with pytest.raises(OSError, match="disk full"):
        await hubspot.sync()
    assert hubspot.store.lock_holder(hubspot.integration.id or 0) is None
    monkeypatch.undo()
    result = await hubspot.sync()
    assert result.status is SyncRunStatus.SUCCEEDED


@scenario
async def test_a_cancelled_run_is_recorded_as_cancelled_and_frees_its_lock(hubspot: SyncBench,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A run stopped mid-push (the app closing) says it was cancelled, not that it failed, and the next run sends
    what it had not."""
    hubspot.save(person(1), person(2))
    pushing = asyncio.Event()

    async def held(*_args: object, **_kwargs: object) -> list[RecordResult]:
        pushing.set()
        await asyncio.sleep(60)
        raise AssertionError("the run was not cancelled")

    monkeypatch.setattr(HubSpotAdapter, "upsert", held)
    run = asyncio.ensure_future(hubspot.sync(SyncDirection.PUSH))
    await asyncio.wait_for(pushing.wait(), 30)
    # As the app closing does: every task is cancelled, the run's own too (it outlives a cancelled caller).
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
    assert run.cancelled()
    [row] = hubspot.service.runs(hubspot.name, limit=1)
    assert (row.status, row.message) == (SyncRunStatus.CANCELLED, CANCELLED_MESSAGE)
    assert hubspot.store.lock_holder(hubspot.integration.id or 0) is None
    monkeypatch.undo()
    result = await hubspot.sync(SyncDirection.PUSH)
    assert result.status is SyncRunStatus.SUCCEEDED and result.counts["created"] == 2


@scenario
async def test_a_pulled_page_is_written_whole_or_not_at_all(hubspot: SyncBench,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    hubspot.save(person(1), person(2))
    await hubspot.sync()
    for email, name in (("person1@example.com", "Grace"), ("person2@example.com", "Augusta")):
        await hubspot.edit(hubspot.link(email).crm_id, first_name_edit(Provider.HUBSPOT, name))
    integration_id = hubspot.integration.id or 0
    cursor = hubspot.store.get_cursor(integration_id, RecordObject.CONTACT)
    audit_before = len(hubspot.audit_rows())

    def crash(*_args: object, **_kwargs: object) -> None:
        raise OSError("killed while writing the page")

    # The links are written after the local values and before the audit rows and the cursor.
    monkeypatch.setattr(type(hubspot.store), "_save_links", staticmethod(crash))
    with pytest.raises(OSError):
        await hubspot.sync(SyncDirection.PULL)
    assert [hubspot.contact(e).first_name for e in ("person1@example.com", "person2@example.com")] == ["Ada1", "Ada2"]
    assert hubspot.store.get_cursor(integration_id, RecordObject.CONTACT) == cursor
    assert len(hubspot.audit_rows()) == audit_before

    monkeypatch.undo()
    again = await hubspot.sync(SyncDirection.PULL)
    assert again.counts["updated"] == 2
    assert [hubspot.contact(e).first_name for e in ("person1@example.com", "person2@example.com")] == [
        "Grace", "Augusta"]


async def statements_to_pull(bench: SyncBench, count: int, first: int) -> int:
    """SQL statements the store runs to apply a pulled page of ``count`` new CRM contacts and ``count`` edits."""
    assert isinstance(bench.sandbox, HubSpotSandbox)
    bench.sandbox.seed_contacts(
        {"email": f"crm{n}@example.com", "firstname": f"Crm{n}"} for n in range(first, first + count)
    )
    for n in range(first, first + count):
        await bench.edit(bench.link(f"person{n}@example.com").crm_id, {"firstname": f"Edited{n}"})
    engine = bench.workspace.database.engine
    executed: list[str] = []
    store_type = type(bench.store)
    apply = store_type.apply_record_writes

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            executed.append(statement.split("(")[0][:60])

        event.listen(engine, "before_cursor_execute", count)
        try:
            apply(self, *args, **kwargs)
        finally:
            event.remove(engine, "before_cursor_execute", count)

    store_type.apply_record_writes = counting  # type: ignore[method-assign]
    try:
        result = await bench.sync(SyncDirection.PULL)
    finally:
        store_type.apply_record_writes = apply  # type: ignore[method-assign]
    assert (result.counts["created"], result.counts["updated"]) == (count, count)
    return len(executed)


@scenario
async def test_applying_a_pulled_page_costs_no_query_per_record(hubspot: SyncBench) -> None:
    hubspot.save(*(person(n) for n in range(60)))
    await hubspot.sync()
    few = await statements_to_pull(hubspot, 5, 0)
    many = await statements_to_pull(hubspot, 50, 5)
    assert many == few, f"{few} statements for a page of 10 records, {many} for one of 100"
