"""A bulk resolution records each CRM batch in one transaction: a failure while a batch's local writes are made
leaves none of that batch written (records, audit, conflicts closed), the batches before it whole, and no
conflict told resolved that is not."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from crm_desktop.app.sync_service import ConflictOutcome, ResolutionStatus
from crm_desktop.providers.hubspot import HubSpotAdapter
from crm_desktop.store.models import ConflictRule, ConflictStatus, SyncRunStatus
from crm_desktop.store.sync_store import SyncStore
from crm_desktop.sync import actions
from tests.sync.conftest import SyncBench, person, scenario

PEOPLE = 4


async def conflicts_on_company(bench: SyncBench, *, surname: bool = False) -> dict[str, int]:
    """The company of ``PEOPLE`` contacts changed on both sides under a manual rule: their conflict ids, by email
    (and, with ``surname``, the last name of the first one too: its conflict id under ``"surname"``)."""
    bench.set_rule("company", ConflictRule.MANUAL)
    bench.set_rule("lastName", ConflictRule.MANUAL)
    bench.save(*(person(n) for n in range(1, PEOPLE + 1)))
    assert (await bench.sync()).status is SyncRunStatus.SUCCEEDED
    for n in range(1, PEOPLE + 1):
        email = f"person{n}@example.com"
        local, crm = {"company": f"Local Co {n}"}, {"company": f"CRM Co {n}"}
        if surname and n == 1:
            local["last_name"], crm["lastname"] = "Here", "There"
        bench.change(email, **local)
        bench.sandbox.clock.advance(2)
        await bench.edit(bench.link(email).crm_id, crm)
    assert (await bench.sync()).counts["conflicts"] == PEOPLE + surname
    return {"surname" if c.field == "lastName" else c.record_key: c.id for c in bench.service.conflicts()}


class CrashingWrite(RuntimeError):
    """The store failing under a batch's local writes (a full disk, a lost connection, a bug)."""


@scenario
async def test_a_failure_within_a_batch_leaves_none_of_it_written(
    hubspot: SyncBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await conflicts_on_company(hubspot)
    emails = sorted(ids)
    monkeypatch.setattr(actions, "BULK_CHUNK", 2)
    fill_row = SyncStore._fill_row
    filled: list[str] = []

    def crashing_on_the_fourth(row: Any, record: Any, profiles_later: Any = None) -> None:
        filled.append(record.email)
        if len(filled) == 4:  # the second record of the second batch
            raise CrashingWrite("disk I/O error")
        fill_row(row, record, profiles_later)

    monkeypatch.setattr(SyncStore, "_fill_row", staticmethod(crashing_on_the_fourth))
    told: list[ConflictOutcome] = []
    with pytest.raises(CrashingWrite):
        await hubspot.service.resolve_many([ids[email] for email in emails], take="crm", progress=told.append)

    first, second = emails[:2], emails[2:]
    assert [(o.conflict.record_key, o.status) for o in told] == [(e, ResolutionStatus.RESOLVED) for e in first], \
        "only the batch committed is told resolved"
    for email in first:
        conflict = hubspot.service.conflict(ids[email])
        assert (conflict.status, conflict.resolved_value) == (ConflictStatus.RESOLVED, conflict.crm_value)
        assert hubspot.contact(email).company == conflict.crm_value
        assert len(hubspot.audit_rows(f"conflict:{ids[email]}")) == 1
    for email in second:
        conflict = hubspot.service.conflict(ids[email])
        assert (conflict.status, conflict.resolved_at) == (ConflictStatus.OPEN, None), "open, and not claimed"
        number = email.removeprefix("person").split("@")[0]
        assert hubspot.contact(email).company == f"Local Co {number}", "the batch's first record is not written"
        assert hubspot.audit_rows(f"conflict:{ids[email]}") == []
        assert hubspot.link(email).base_values["company"] == "Analytical Engines", "nor its merge base moved"

    # The store answers again: the conflicts left open are resolved as asked.
    monkeypatch.setattr(SyncStore, "_fill_row", staticmethod(fill_row))
    again = await hubspot.service.resolve_many([ids[email] for email in second], take="crm")
    assert [o.status for o in again] == [ResolutionStatus.RESOLVED] * 2
    assert hubspot.service.conflict_count() == 0
    assert [hubspot.contact(email).company for email in emails] == [f"CRM Co {n}" for n in range(1, PEOPLE + 1)]


@scenario
async def test_two_fields_of_a_record_and_a_refusal_in_one_batch(
    hubspot: SyncBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written together, a record's second field still sees the first one's merge base, and a conflict whose
    record changed while the CRM answered is left open in the same transaction that records the others."""
    ids = await conflicts_on_company(hubspot, surname=True)
    email, surname = "person1@example.com", ids["surname"]
    changed = "person2@example.com"
    upsert = HubSpotAdapter.upsert

    async def edited_meanwhile(adapter: Any, obj: Any, records: Any) -> Any:
        hubspot.change(changed, company="Edited Meanwhile")
        return await upsert(adapter, obj, records)

    monkeypatch.setattr(HubSpotAdapter, "upsert", edited_meanwhile)
    outcomes = await hubspot.service.resolve_many([ids[email], surname, ids[changed]], take="local")
    assert [o.status for o in outcomes] == [ResolutionStatus.RESOLVED, ResolutionStatus.RESOLVED,
                                            ResolutionStatus.FAILED]
    assert "changed here to 'Edited Meanwhile'" in outcomes[2].reason
    assert hubspot.service.conflict(ids[changed]).resolved_at is None, "left open, its claim let go"
    base = hubspot.link(email).base_values
    assert (base["company"], base["lastName"]) == ("Local Co 1", "Here"), "both fields' merge base moved"
    assert hubspot.service.conflict_count() == PEOPLE + 1 - 2


@scenario
async def test_a_sync_pulling_while_the_crm_is_written_keeps_its_merge_base(
    hubspot: SyncBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync that pulls another field of a record while its conflict's value goes to the CRM moves the record's
    merge base and sync mark; recording the resolution builds on them rather than putting back what was read
    before, else the marketer's next edit of that field looks like a conflict and the CRM's value wins it."""
    ids = await conflicts_on_company(hubspot)
    email = "person1@example.com"
    upsert = HubSpotAdapter.upsert
    pulled: list[SyncRunStatus] = []

    async def pulled_meanwhile(adapter: Any, obj: Any, records: Any, **options: Any) -> Any:
        if not pulled:  # the sync's own writes go straight through
            pulled.append(SyncRunStatus.RUNNING)
            hubspot.sandbox.clock.advance(2)
            await hubspot.edit(hubspot.link(email).crm_id, {"phone": "+14155559999"})
            pulled[0] = (await hubspot.sync()).status
        return await upsert(adapter, obj, records, **options)

    monkeypatch.setattr(HubSpotAdapter, "upsert", pulled_meanwhile)
    outcomes = await hubspot.service.resolve_many(list(ids.values()), take="local")
    assert pulled == [SyncRunStatus.SUCCEEDED]
    assert [o.status for o in outcomes] == [ResolutionStatus.RESOLVED] * PEOPLE
    base = hubspot.link(email).base_values
    assert (base["company"], base["phone"]) == ("Local Co 1", "+14155559999"), "the pull's merge base is kept"

    hubspot.change(email, phone="+14155558888")
    run = await hubspot.sync()
    assert (run.status, run.counts["conflicts"], run.counts["decided"]) == (SyncRunStatus.SUCCEEDED, 0, 0)
    assert hubspot.contact(email).phone == "+14155558888"
    assert await hubspot.crm_value(email, "phone") == "+14155558888", "the edit made after is pushed"


@scenario
async def test_two_fields_of_a_record_resolved_at_once_by_two_windows_keep_both_merge_bases(
    hubspot: SyncBench,
) -> None:
    """Two windows (or desktops) resolving different fields of one record at the same moment: each records its
    field on the merge base the other left, so neither field's base goes back to what was read before."""
    ids = await conflicts_on_company(hubspot, surname=True)
    email = "person1@example.com"
    first, second = await asyncio.gather(hubspot.service.resolve_many([ids[email]], take="local"),
                                         hubspot.service.resolve_many([ids["surname"]], take="local"))
    assert [o.status for o in (*first, *second)] == [ResolutionStatus.RESOLVED] * 2
    base = hubspot.link(email).base_values
    assert (base["company"], base["lastName"]) == ("Local Co 1", "Here")
