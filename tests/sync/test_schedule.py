"""The schedule: full syncs every sync_interval, new contacts pushed every push_new_interval, gaps caught up once."""

from __future__ import annotations

from datetime import datetime, timedelta

from crm_desktop.domain.models import Integration, SyncConfig, SyncDirection
from crm_desktop.providers.errors import AuthError
from crm_desktop.store.models import SyncRunStatus, SyncTrigger, utcnow
from tests.sync.conftest import SyncBench, person, scenario

HOUR = timedelta(hours=1)


def configure(bench: SyncBench, **settings: object) -> None:
    config = bench.integration.sync_config.model_copy(update=settings)
    bench.workspace.integrations.update(bench.integration.model_copy(update={"sync_config": config}))


def record_run(bench: SyncBench, direction: str, started_at: datetime,
               status: SyncRunStatus = SyncRunStatus.SUCCEEDED) -> int:
    """A finished run in the store, as if it had started at ``started_at``."""
    run_id = bench.store.start_run(bench.integration.id or 0, SyncTrigger.SCHEDULED, direction)
    bench.store.finish_run(run_id, status)
    bench.store.update_run(run_id, started_at=started_at)
    return run_id


def due(bench: SyncBench, now: datetime) -> list[tuple[str, SyncDirection]]:
    return [(item.integration.name, item.direction) for item in bench.service.due(now)]


def test_a_sync_never_run_is_due(hubspot: SyncBench) -> None:
    [item] = hubspot.service.due(utcnow())
    assert (item.integration.name, item.direction, item.due_since) == ("crm", SyncDirection.BOTH, None)
    next_due = hubspot.service.next_due(hubspot.integration)
    assert next_due is not None and next_due <= utcnow()


@scenario
async def test_not_due_right_after_a_success_then_push_new_hourly_and_full_every_six_hours(hubspot: SyncBench) -> None:
    hubspot.save(person(1))
    result = await hubspot.sync()
    assert result.status is SyncRunStatus.SUCCEEDED
    [run] = hubspot.service.runs()
    start = run.started_at
    assert due(hubspot, utcnow()) == []
    assert due(hubspot, start + 59 * 60 * timedelta(seconds=1)) == []
    assert due(hubspot, start + HOUR) == [("crm", SyncDirection.PUSH_NEW)]
    assert due(hubspot, start + 5 * HOUR + timedelta(minutes=59)) == [("crm", SyncDirection.PUSH_NEW)]
    assert due(hubspot, start + 6 * HOUR) == [("crm", SyncDirection.BOTH)]
    assert hubspot.service.next_due(hubspot.integration) == start + HOUR

    # An hourly push at +1 h moves the next push, not the next full sync.
    record_run(hubspot, "push_new", start + HOUR)
    assert due(hubspot, start + HOUR + timedelta(minutes=30)) == []
    assert due(hubspot, start + 2 * HOUR) == [("crm", SyncDirection.PUSH_NEW)]
    assert due(hubspot, start + 6 * HOUR) == [("crm", SyncDirection.BOTH)]


def test_a_long_gap_is_caught_up_once(hubspot: SyncBench) -> None:
    now = utcnow()
    record_run(hubspot, "both", now - 3 * 24 * HOUR)
    record_run(hubspot, "push_new", now - 3 * 24 * HOUR + HOUR)
    [item] = hubspot.service.due(now)
    assert item.direction is SyncDirection.BOTH
    assert item.due_since == now - 3 * 24 * HOUR + 6 * HOUR
    # Once the catch-up ran, nothing is due until the next slot.
    record_run(hubspot, "both", now)
    assert due(hubspot, now + timedelta(minutes=1)) == []
    assert due(hubspot, now + HOUR) == [("crm", SyncDirection.PUSH_NEW)]


def test_failed_runs_do_not_count_as_done(hubspot: SyncBench) -> None:
    now = utcnow()
    record_run(hubspot, "both", now - 7 * HOUR)
    record_run(hubspot, "both", now - HOUR, SyncRunStatus.FAILED)
    assert due(hubspot, now) == [("crm", SyncDirection.BOTH)]
    record_run(hubspot, "both", now - timedelta(minutes=30), SyncRunStatus.PARTIAL)
    assert due(hubspot, now) == [], "a partial run did its records: it counts"


def test_the_configured_direction_and_intervals_are_followed(hubspot: SyncBench) -> None:
    now = utcnow()
    configure(hubspot, direction=SyncDirection.PULL, sync_interval=30)
    assert due(hubspot, now) == [("crm", SyncDirection.PULL)]
    record_run(hubspot, "pull", now)
    assert due(hubspot, now + timedelta(minutes=29)) == []
    assert due(hubspot, now + timedelta(minutes=30)) == [("crm", SyncDirection.PULL)]
    assert due(hubspot, now + 5 * HOUR) == [("crm", SyncDirection.PULL)], "a pull-only sync never pushes"

    configure(hubspot, direction=SyncDirection.BOTH, push_new_interval=15)
    record_run(hubspot, "both", now)
    assert due(hubspot, now + timedelta(minutes=15)) == [("crm", SyncDirection.PUSH_NEW)]

    configure(hubspot, auto_sync=False)
    assert due(hubspot, now + 24 * HOUR) == []
    assert hubspot.service.next_due(hubspot.integration) is None


@scenario
async def test_run_due_catches_up_and_push_new_sends_only_new_contacts(hubspot: SyncBench) -> None:
    hubspot.save(person(1), person(2))
    [(name, first)] = await hubspot.service.run_due()
    assert name == "crm" and not isinstance(first, Exception)
    assert first.counts["created"] == 2
    assert await hubspot.service.run_due() == []

    # An hour later: a new contact and an edited one; the hourly push sends only the new one.
    hubspot.save(person(3))
    hubspot.change("person1@example.com", first_name="Augusta")
    for run in hubspot.service.runs():
        hubspot.store.update_run(run.id, started_at=run.started_at - HOUR)
    mark = hubspot.mark()
    [(_, hourly)] = await hubspot.service.run_due()
    assert not isinstance(hourly, Exception)
    assert hubspot.service.runs()[0].direction == "push_new"
    assert hourly.counts["created"] == 1 and hourly.counts["updated"] == 0
    [write] = hubspot.writes_since(mark)
    assert [i["id"] for i in write.body["inputs"]] == ["person3@example.com"]
    assert await hubspot.crm_value("person1@example.com", "firstName") == "Ada1"
    # The edit goes with the next full sync.
    await hubspot.sync()
    assert await hubspot.crm_value("person1@example.com", "firstName") == "Augusta"


def add_second(bench: SyncBench, name: str = "crm2") -> None:
    """A second integration with auto-sync on, to the same CRM: due with the first, synced after it."""
    bench.workspace.integrations.add(
        Integration(provider=bench.provider, name=name, base_url=bench.sandbox.base_url,
                    sync_config=SyncConfig(auto_sync=True)),
        bench.sandbox.credentials())


@scenario
async def test_a_schedule_turned_off_while_its_batch_runs_is_passed_over(hubspot: SyncBench) -> None:
    """Seen in the window: with two integrations due, unticking the second's auto-sync while the first synced (or
    removing the second) did not stop it: the batch, listed at its start, synced it all the same."""
    add_second(hubspot)
    assert due(hubspot, utcnow()) == [("crm", SyncDirection.BOTH), ("crm2", SyncDirection.BOTH)]

    def first_starts(name: str) -> None:
        if name == "crm":
            second = hubspot.workspace.integrations.get("crm2")
            hubspot.workspace.integrations.update(second.model_copy(
                update={"sync_config": second.sync_config.model_copy(update={"auto_sync": False})}))

    outcomes = await hubspot.service.run_due(on_start=first_starts)
    assert [name for name, _ in outcomes] == ["crm"]
    assert [run.integration_id for run in hubspot.service.runs()] == [hubspot.integration.id]


@scenario
async def test_a_batch_passes_over_an_integration_synced_meanwhile_and_stops_when_paused(hubspot: SyncBench) -> None:
    add_second(hubspot)
    add_second(hubspot, "crm3")

    def second_synced_by_hand(name: str) -> None:
        if name == "crm":  # "Sync now" on crm2 while the batch syncs crm
            second = hubspot.workspace.integrations.get("crm2").id or 0
            hubspot.store.finish_run(hubspot.store.start_run(second, SyncTrigger.MANUAL, "both"),
                                     SyncRunStatus.SUCCEEDED)

    outcomes = await hubspot.service.run_due(on_start=second_synced_by_hand)
    assert [name for name, _ in outcomes] == ["crm", "crm3"], "crm2 was synced by hand: not twice"
    assert sorted(run.trigger for run in hubspot.service.runs()) == ["manual", "scheduled", "scheduled"]

    # Everything due again: auto-sync paused after the first sync of the batch starts no other.
    for run in hubspot.service.runs():
        hubspot.store.update_run(run.id, started_at=run.started_at - 7 * HOUR)
    started: list[str] = []
    outcomes = await hubspot.service.run_due(on_start=started.append, keep_going=lambda: not started)
    assert [name for name, _ in outcomes] == started == ["crm"]


@scenario
async def test_a_refused_sign_in_waits_for_a_reconnect_instead_of_being_tried_every_tick(hubspot: SyncBench) -> None:
    """Seen with `sync --due` from cron (and the window's minute timer): an integration whose token the CRM had
    revoked was tried again at every tick, each time a refused request to the CRM and a new failure, for as long as
    nobody reconnected it."""
    configure(hubspot, auto_sync=False)
    revoked = hubspot.workspace.integrations.add(
        Integration(provider=hubspot.provider, name="revoked", base_url=hubspot.sandbox.base_url,
                    sync_config=SyncConfig(auto_sync=True)),
        {"token": "pat-na1-00000000-0000-0000-0000-000000000000"})
    [(name, refused)] = await hubspot.service.run_due()
    assert name == "revoked" and isinstance(refused, AuthError)
    mark = hubspot.mark()
    now = utcnow()
    assert await hubspot.service.run_due() == [], "the next tick does not ask the CRM again"
    assert hubspot.mark() == mark
    held = hubspot.service.waiting_for_reconnect(revoked)
    assert held is not None and now + 5 * HOUR < held <= now + 6 * HOUR
    assert hubspot.service.next_due(revoked) == held
    assert due(hubspot, now + 5 * HOUR) == []
    assert due(hubspot, held) == [("revoked", SyncDirection.BOTH)], "a full sync interval later, it is tried again"

    # Reconnected with a token the CRM takes: due at once, and it syncs.
    reconnected = hubspot.workspace.integrations.update(revoked, hubspot.sandbox.credentials())
    assert hubspot.service.waiting_for_reconnect(reconnected) is None
    [(name, result)] = await hubspot.service.run_due()
    assert name == "revoked" and not isinstance(result, Exception)
