"""A push stopped in the middle of a batch (Pipedrive's daily token budget spent, or the marketer's cancel) counts,
logs and audits the writes Pipedrive took before the stop; the next run counts only the rest.

Pipedrive creates one person a request, so a push batch of 200 is 200 requests: a stop comes part-way through one.
The sandbox is served on real loopback; a hook on its request log stops the push once the second batch is under way.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration, Provider, SyncDirection
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.sandbox.core import LoggedRequest, SandboxConfig
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.store.models import AuditLogRow, SyncRunStatus
from tests.support.cli_runs import served
from tests.sync.crash_worker import crm_contacts

pytestmark = pytest.mark.loopback

CONTACTS = 300  # two push batches: 200, then 100
#: The person create (of the second batch) on whose arrival the push is stopped.
STOP_AT = 237


def on_person_request(sandbox: PipedriveSandbox, method: str, number: int, action: Callable[[], object]) -> None:
    """Call ``action`` when the ``number``-th person request with ``method`` (``POST`` creates, ``PATCH`` updates)
    reaches the sandbox, before it is worked."""
    logged = sandbox.log_request
    seen = 0

    def log_request(entry: LoggedRequest) -> None:
        nonlocal seen
        logged(entry)
        if entry.method == method and "/persons" in entry.path and "search" not in entry.path:
            seen += 1
            if seen == number:
                action()

    sandbox.log_request = log_request  # type: ignore[method-assign]


def crm_first_names(sandbox: PipedriveSandbox) -> dict[str, str]:
    """Each person's first name in Pipedrive, by primary email."""
    names = {}
    for person in list(sandbox.persons.values()):
        primary = next((e for e in person.emails if e.get("primary")), person.emails[0] if person.emails else {})
        names[str(primary.get("value") or "").lower()] = person.name.split(" ")[0]
    return names


def email_number(email: str) -> int:
    return int(email.removeprefix("person").split("@")[0])


@contextmanager
def workspace_on(sandbox: PipedriveSandbox, tmp_path: Path) -> Iterator[Workspace]:
    """``sandbox`` served on loopback, and a workspace with its contacts and an integration on it, for the block."""
    with served(sandbox):
        workspace = open_workspace(tmp_path / "data", sandbox)
        try:
            yield workspace
        finally:
            workspace.close()


def open_workspace(path: Path, sandbox: PipedriveSandbox) -> Workspace:
    workspace = Workspace.open(path)
    workspace.integrations.add(
        Integration(provider=Provider.PIPEDRIVE, name="crm", base_url=sandbox.base_url, domain="sandbox"),
        {"apiToken": sandbox.credentials()["apiToken"]},
    )
    workspace.contacts.save_many(
        Contact(email=f"person{n}@example.com", first_name=f"Person{n}", last_name="Tester") for n in range(CONTACTS))
    return workspace


def push_audited(workspace: Workspace, run_id: int) -> int:
    """How many records a run's audit rows say it wrote to the CRM."""
    with workspace.database.session() as session:
        return session.scalar(select(func.count(func.distinct(AuditLogRow.entity_id))).where(
            AuditLogRow.run_id == run_id, AuditLogRow.source == "push")) or 0


def logged_created(workspace: Workspace, run_id: int) -> int:
    _, log = workspace.sync.run(run_id)
    return sum(1 for line in log if line.outcome is RecordOutcome.CREATED)


def assert_every_person_once(sandbox: PipedriveSandbox) -> None:
    emails = Counter(email for _, email in crm_contacts(sandbox))
    assert [email for email, count in emails.items() if count > 1] == []
    assert set(emails) == {f"person{n}@example.com" for n in range(CONTACTS)}


@pytest.mark.timeout(300)
def test_a_run_the_daily_budget_stops_counts_the_persons_pipedrive_took(tmp_path: Path) -> None:
    sandbox = PipedriveSandbox(SandboxConfig(contacts=0, latency_ms=20), burst_limit=120)

    def budget_nearly_spent() -> None:
        # Enough for the creates on their way and a few more, then the adapter stops at its reserve.
        sandbox.tokens_spent = sandbox.daily_token_budget - 60

    on_person_request(sandbox, "POST", STOP_AT, budget_nearly_spent)
    with workspace_on(sandbox, tmp_path) as workspace:
        first = asyncio.run(workspace.sync.sync("crm", SyncDirection.PUSH))
        assert (first.status, first.stopped_by) == (SyncRunStatus.PARTIAL, ErrorCategory.RATE_LIMIT), first.message
        landed = len(crm_contacts(sandbox))
        assert 200 < landed < CONTACTS, landed
        # The stopped run counts every person Pipedrive took: its result, its row (runs list/show, the Sync
        # Monitor), its record log and its audit (undo) agree with the CRM.
        assert first.counts["created"] == landed, (first.counts, landed)
        assert first.counts["failed"] == 0, first.failures[:1]
        row, _ = workspace.sync.run(first.run_id or 0)
        assert (row.created, row.status) == (landed, SyncRunStatus.PARTIAL)
        assert logged_created(workspace, first.run_id or 0) == landed
        assert push_audited(workspace, first.run_id or 0) == landed
        integration_id = workspace.integrations.get("crm").id or 0
        assert workspace.sync.store.count_changed_local(integration_id, RecordObject.CONTACT) == CONTACTS - landed

        sandbox.tokens_spent = 0  # a new day
        second = asyncio.run(workspace.sync.sync("crm", SyncDirection.PUSH))
        assert second.status is SyncRunStatus.SUCCEEDED, second.message
        assert second.counts["created"] == CONTACTS - landed, (first.counts, second.counts)
        assert second.counts["unchanged"] == 0, second.counts
        assert_every_person_once(sandbox)


@pytest.mark.timeout(300)
def test_a_cancelled_run_counts_and_audits_the_persons_pipedrive_took(tmp_path: Path) -> None:
    sandbox = PipedriveSandbox(SandboxConfig(contacts=0, latency_ms=20), burst_limit=120)
    with workspace_on(sandbox, tmp_path) as workspace:
        run_id = asyncio.run(push_then_cancel(workspace, sandbox, method="POST", at=STOP_AT))
        row, _ = workspace.sync.run(run_id)
        assert row.status == SyncRunStatus.CANCELLED
        # The second batch's persons Pipedrive answered for before the cancel are this run's, not the next one's.
        assert 200 < row.created <= len(crm_contacts(sandbox)), row.created
        assert logged_created(workspace, run_id) == row.created
        assert push_audited(workspace, run_id) == row.created

        second = asyncio.run(workspace.sync.sync("crm", SyncDirection.PUSH))
        assert second.status is SyncRunStatus.SUCCEEDED, second.message
        assert row.created + second.counts["created"] == CONTACTS, (row.created, second.counts)
        assert_every_person_once(sandbox)

        # Undo knows each person the cancelled run created (and keeps them: sync never deletes).
        undone = asyncio.run(workspace.sync.undo(run_id))
        assert len(undone.kept) == row.created, undone.kept[:3]


async def push_then_cancel(workspace: Workspace, sandbox: PipedriveSandbox, *, method: str, at: int) -> int:
    """Start a push and cancel every task, as the app does when the marketer quits, when the ``at``-th person
    request with ``method`` reaches the sandbox; the run's id."""
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    cancelled = asyncio.Event()

    def cancel_everything() -> None:
        for task in asyncio.all_tasks(loop):
            if task is not me:
                task.cancel()
        cancelled.set()

    on_person_request(sandbox, method, at, lambda: loop.call_soon_threadsafe(cancel_everything))
    run_id = await workspace.sync.start("crm", SyncDirection.PUSH)
    await cancelled.wait()
    others = [task for task in asyncio.all_tasks(loop) if task is not me]
    if others:
        await asyncio.wait(others, timeout=30)
    return run_id


@pytest.mark.timeout(300)
def test_undo_of_a_cancelled_run_puts_back_the_updates_pipedrive_took(tmp_path: Path) -> None:
    sandbox = PipedriveSandbox(SandboxConfig(contacts=0, latency_ms=20), burst_limit=120)
    with workspace_on(sandbox, tmp_path) as workspace:
        assert asyncio.run(workspace.sync.sync("crm", SyncDirection.PUSH)).counts["created"] == CONTACTS
        for n in range(CONTACTS):
            found = workspace.contacts.find(f"person{n}@example.com")
            assert found is not None
            workspace.contacts.save(found.model_copy(update={"first_name": f"Wrong{n}"}))

        run_id = asyncio.run(push_then_cancel(workspace, sandbox, method="PATCH", at=STOP_AT))
        row, _ = workspace.sync.run(run_id)
        assert row.status == SyncRunStatus.CANCELLED
        assert 200 < row.updated <= STOP_AT, row.updated
        assert push_audited(workspace, run_id) == row.updated

        _, log = workspace.sync.run(run_id)
        updated = {line.record_key for line in log if line.outcome is RecordOutcome.UPDATED}
        assert len(updated) == row.updated
        undone = asyncio.run(workspace.sync.undo(run_id))
        assert (undone.restored_crm, undone.failed) == (row.updated, 0), undone
        names = crm_first_names(sandbox)
        wanted = {email: f"Person{email_number(email)}" for email in updated}
        assert {email: names[email] for email in updated} == wanted
