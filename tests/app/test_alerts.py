"""Alerts: what a run raises (against a real HubSpot sandbox), the 15-minute storm rule on a hand-moved clock,
and alerts surviving a restart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crm_desktop.app.alerts import QUIET_PERIOD, AlertService
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.alerts import AlertKind
from crm_desktop.domain.models import Contact, Integration, Provider, SyncConfig
from crm_desktop.providers.contract import Quota
from crm_desktop.sandbox.core import FaultKind, FaultRule, SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.store.models import SyncRunStatus, SyncTrigger
from crm_desktop.sync.engine import SyncResult
from crm_desktop.sync.plan import SyncPlan
from crm_desktop.vault import Vault
from tests.support.memory_keyring import MemoryKeyring


class Clock:
    """Now, moved by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def open_workspace(folder: Path, keyring: MemoryKeyring | None, sandbox: HubSpotSandbox | None = None) -> Workspace:
    assert keyring is not None
    return Workspace.open(folder, vault=Vault(backend=keyring),
                          transport=sandbox.transport() if sandbox is not None else None)


@pytest.fixture
def sandbox() -> HubSpotSandbox:
    return HubSpotSandbox(SandboxConfig())


@pytest.fixture
def workspace(tmp_path: Path, memory_keyring: MemoryKeyring | None, sandbox: HubSpotSandbox) -> Iterator[Workspace]:
    opened = open_workspace(tmp_path / "data", memory_keyring, sandbox)
    opened.integrations.add(
        Integration(provider=Provider.HUBSPOT, name="hubspot-marketing", base_url=sandbox.base_url,
                    sync_config=SyncConfig(auto_sync=False)),
        sandbox.credentials(),
    )
    opened.contacts.save_many(
        Contact(email=f"person{n}@example.com", first_name=f"Ada{n}", last_name="Lovelace") for n in range(1, 4)
    )
    try:
        yield opened
    finally:
        opened.close()


def integration(workspace: Workspace, name: str = "hubspot-marketing") -> Integration:
    return workspace.integrations.get(name)


def sync_and_alert(workspace: Workspace, service: AlertService) -> list[tuple[AlertKind, bool, str]]:
    """Run a sync of the HubSpot integration and raise what it gives (as the desktop does on every run)."""
    outcomes: list[SyncResult | Exception] = []
    workspace.sync.add_run_listener(lambda _integration, outcome: outcomes.append(outcome))

    async def run() -> None:
        with contextlib.suppress(Exception):  # the listener heard it
            await workspace.sync.sync("hubspot-marketing")

    asyncio.run(run())
    assert len(outcomes) == 1, "every run is heard once"
    raised = service.alerts_for_run(integration(workspace), outcomes[0])
    return [(r.alert.kind, r.notify, r.alert.message) for r in raised]


# -- what runs raise -----------------------------------------------------------------------------------------------


def test_a_clean_run_raises_nothing(workspace: Workspace) -> None:
    assert sync_and_alert(workspace, workspace.alerts) == []
    assert workspace.alerts.recent() == []


def test_refused_credentials_raise_one_reconnect_alert(workspace: Workspace, sandbox: HubSpotSandbox) -> None:
    current = integration(workspace)
    workspace.integrations.update(current, {"token": "pat-na1-not-a-real-token"})
    raised = sync_and_alert(workspace, workspace.alerts)
    assert [(kind, notify) for kind, notify, _ in raised] == [(AlertKind.AUTH_FAILED, True)]
    assert "Reconnect" in raised[0][2] and "“hubspot-marketing”" in raised[0][2]
    assert "pat-na1-not-a-real-token" not in raised[0][2], "a secret never reaches an alert"


def test_records_the_crm_refuses_raise_a_data_quality_alert_naming_them(
    workspace: Workspace, sandbox: HubSpotSandbox
) -> None:
    sandbox.faults.add(FaultRule(FaultKind.INVALID_RECORD, at=[2]))
    raised = sync_and_alert(workspace, workspace.alerts)
    assert [kind for kind, _, _ in raised] == [AlertKind.REFUSED_RECORDS]
    run = workspace.sync.runs()[0]
    assert raised[0][2].startswith("HubSpot refused 1 record of “hubspot-marketing” in run #")
    assert f"run #{run.id}" in raised[0][2] and "@example.com" in raised[0][2]
    assert workspace.alerts.recent()[0].run_id == run.id


def test_a_refused_record_is_named_once_when_the_crms_message_names_it_already(
    workspace: Workspace, sandbox: HubSpotSandbox
) -> None:
    """Seen in the Alerts view: "(person1@example.com: person1@example.com: email: Email address
    person1@example.com is invalid ...)": the record's message starts with its email already."""
    sandbox.faults.add(FaultRule(FaultKind.INVALID_RECORD, at=[2]))
    outcomes: list[SyncResult | Exception] = []
    workspace.sync.add_run_listener(lambda _integration, outcome: outcomes.append(outcome))
    raised = sync_and_alert(workspace, workspace.alerts)
    [outcome] = outcomes
    assert isinstance(outcome, SyncResult)
    [failure] = outcome.failures
    assert failure.email in failure.message, "the CRM's message names the record"
    assert f"({failure.message})." in raised[0][2]
    assert f"{failure.email}: {failure.email}" not in raised[0][2], raised[0][2]


def test_a_daily_quota_nearly_spent_raises_a_quota_warning(workspace: Workspace, sandbox: HubSpotSandbox) -> None:
    sandbox.apply_config({"daily_limit": 16})  # a first sync of three contacts spends about half of it
    assert sync_and_alert(workspace, workspace.alerts) == []
    raised = sync_and_alert(workspace, workspace.alerts)
    assert [(kind, notify) for kind, notify, _ in raised] == [(AlertKind.QUOTA_LOW, True)]
    assert "of “hubspot-marketing”'s daily HubSpot API quota is left" in raised[0][2]
    assert "of 16 calls" in raised[0][2]


def test_a_run_that_cannot_start_is_a_failed_run(workspace: Workspace, memory_keyring: MemoryKeyring | None) -> None:
    assert memory_keyring is not None
    memory_keyring.entries.clear()  # the keyring lost the integration's credentials
    raised = sync_and_alert(workspace, workspace.alerts)
    assert [kind for kind, _, _ in raised] == [AlertKind.RUN_FAILED]
    assert raised[0][2].startswith("The sync of “hubspot-marketing”")


def test_a_desktop_without_the_key_is_alerted_alone_and_named_not_its_teammates(
    workspace: Workspace, tmp_path: Path, sandbox: HubSpotSandbox, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Team mode: keys live in each desktop's keyring, alerts in the shared database. A desktop lacking the key
    raised "could not run" on every desktop, telling teammates who hold the key to fix something they cannot."""
    failed_everywhere = workspace.alerts.raise_alert(AlertKind.RUN_FAILED, integration(workspace), "HubSpot is down")
    monkeypatch.setenv("CRM_DESKTOP_MACHINE_NAME", "laptop-2")
    laptop2 = open_workspace(tmp_path / "data", MemoryKeyring(), sandbox)  # the same store, an empty keyring
    try:
        raised = sync_and_alert(laptop2, laptop2.alerts)
        assert [(kind, notify) for kind, notify, _ in raised] == [(AlertKind.RUN_FAILED, True)]
        message = raised[0][2]
        assert message.startswith("The sync of “hubspot-marketing” could not run on this desktop (laptop-2): "), message
        assert "has no credentials" in message
        # Listed on laptop-2, not on the desktop that holds the key (which still lists the shared alert).
        assert [a.message for a in laptop2.alerts.recent()] == [message, "HubSpot is down"]
        assert [a.id for a in workspace.alerts.recent()] == [failed_everywhere.alert.id]
        # Its repeats count on it there; the shared alert of the same kind does not swallow it, nor it the shared.
        assert sync_and_alert(laptop2, laptop2.alerts)[0][1] is False
        assert workspace.alerts.raise_alert(AlertKind.RUN_FAILED, integration(workspace), "again").notify is False
        # Clearing the Alerts view here does not take laptop-2's own alert away from it.
        assert workspace.alerts.clear() == 1
        assert [a.message for a in laptop2.alerts.recent()] == [message]
    finally:
        laptop2.close()


# -- no storms -----------------------------------------------------------------------------------------------------


def failed_run(workspace: Workspace, name: str = "hubspot-marketing") -> SyncResult:
    """A failed run, recorded in the store as the engine records one."""
    store = workspace.sync.store
    run_id = store.start_run(integration(workspace, name).id or 0, SyncTrigger.SCHEDULED, "both")
    store.finish_run(run_id, SyncRunStatus.FAILED, message="HubSpot answered 503")
    return SyncResult(run_id, SyncRunStatus.FAILED, {}, 3, SyncPlan(), [], "HubSpot answered 503", 1.0)


def test_the_same_alert_is_not_notified_again_within_fifteen_minutes(workspace: Workspace) -> None:
    clock = Clock()
    service = AlertService(workspace.database, clock=clock)
    hubspot = integration(workspace)
    first = service.alerts_for_run(hubspot, failed_run(workspace))
    clock.advance(minutes=5)
    second = service.alerts_for_run(hubspot, failed_run(workspace))
    clock.advance(minutes=9, seconds=59)
    third_result = failed_run(workspace)
    third_run = third_result.run_id
    third = service.alerts_for_run(hubspot, third_result)
    assert [r.notify for r in first + second + third] == [True, False, False]
    assert first[0].alert.id == second[0].alert.id == third[0].alert.id
    assert third[0].alert.repeats == 2
    assert third[0].alert.run_id == third_run, "the alert links the newest run"
    assert third[0].alert.raised_at == datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    assert third[0].alert.last_seen_at == clock.now

    clock.now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC) + QUIET_PERIOD
    fourth_result = failed_run(workspace)
    fourth = service.alerts_for_run(hubspot, fourth_result)
    assert fourth[0].notify and fourth[0].alert.id != first[0].alert.id
    assert [a.run_id for a in service.recent()] == [fourth_result.run_id, third_run]


def test_another_kind_or_another_integration_is_a_different_alert(
    workspace: Workspace, sandbox: HubSpotSandbox
) -> None:
    clock = Clock()
    service = AlertService(workspace.database, clock=clock)
    workspace.integrations.add(
        Integration(provider=Provider.HUBSPOT, name="hubspot-emea", base_url=sandbox.base_url),
        sandbox.credentials(),
    )
    service.alerts_for_run(integration(workspace), failed_run(workspace))
    clock.advance(minutes=1)
    other_integration = service.alerts_for_run(integration(workspace, "hubspot-emea"),
                                               failed_run(workspace, "hubspot-emea"))
    low_quota = SyncResult(None, SyncRunStatus.SUCCEEDED, {}, 3, SyncPlan(), [], None, 1.0,
                           quota=Quota(used=995, limit=1000, remaining=5))
    other_kind = service.alerts_for_run(integration(workspace), low_quota)
    assert [r.notify for r in other_integration + other_kind] == [True, True]
    assert other_kind[0].alert.kind is AlertKind.QUOTA_LOW


def test_alerts_survive_a_restart(tmp_path: Path, memory_keyring: MemoryKeyring | None) -> None:
    clock = Clock()
    first = open_workspace(tmp_path / "kept", memory_keyring)
    hubspot = first.integrations.add(Integration(provider=Provider.HUBSPOT, name="hs"), {"token": "pat-na1-x"})
    AlertService(first.database, clock=clock).alerts_for_run(hubspot, failed_run_without_row())
    first.close()

    clock.advance(minutes=3)
    again = open_workspace(tmp_path / "kept", memory_keyring)
    try:
        service = AlertService(again.database, clock=clock)
        [kept] = service.recent()
        assert (kept.kind, kept.integration_name) == (AlertKind.RUN_FAILED, "hs")
        repeated = service.alerts_for_run(again.integrations.get("hs"), failed_run_without_row())
        assert not repeated[0].notify, "the quiet period holds across a restart"
    finally:
        again.close()


def failed_run_without_row() -> SyncResult:
    return SyncResult(None, SyncRunStatus.FAILED, {}, 0, SyncPlan(), [], "network down", 0.0)


# -- imports into the local store ----------------------------------------------------------------------------------


def test_an_import_with_refused_rows_raises_one_alert_naming_line_column_and_reason(
    workspace: Workspace, tmp_path: Path
) -> None:
    heard: list[int] = []
    workspace.sync.add_import_listener(lambda _path, report: heard.append(len(report.problems)))
    clean = tmp_path / "clean.csv"
    clean.write_text("email,firstName\nada@example.com,Ada\n", encoding="utf-8")
    assert workspace.alerts.alerts_for_import(clean, workspace.sync.import_file(clean)) == []

    messy = tmp_path / "webinar-signups.csv"
    messy.write_text("email,firstName\nnot-an-email,Bob\ngrace@example.com,Grace\n", encoding="utf-8")
    report = workspace.sync.import_file(messy)
    assert heard == [0, 1], "the listener hears every import"
    [raised] = workspace.alerts.alerts_for_import(messy, report)
    assert (raised.alert.kind, raised.alert.integration_name, raised.notify) == (
        AlertKind.REFUSED_RECORDS, "Local store", True)
    assert raised.alert.message.startswith("1 row of webinar-signups.csv refused (line 2, email: ")
    assert raised.alert.message.endswith("; the other rows were saved.")
    assert raised.alert.run_id == report.run_id is not None


@pytest.mark.parametrize(("error", "reason"), [
    (TimeoutError(), "it timed out"),
    (RuntimeError(), "RuntimeError, without a message (the log has the details)"),
    (RuntimeError("the store is locked"), "the store is locked"),
])
def test_a_failed_run_says_why_even_when_the_error_has_no_message(
    workspace: Workspace, error: Exception, reason: str
) -> None:
    """A bare ``TimeoutError`` raised an alert reading "The sync of “hubspot-marketing” could not run: " and nothing
    after the colon, in the Alerts view and in the notification."""
    [raised] = workspace.alerts.alerts_for_run(integration(workspace), error)
    assert raised.alert.kind is AlertKind.RUN_FAILED
    assert raised.alert.message == f"The sync of “hubspot-marketing” could not run: {reason}"
