"""Crash drill: a push of 2,000 contacts killed with SIGKILL at random moments and restarted lands each one once.

The sandbox runs on real loopback in this process; the pushing workers are separate processes (see
:mod:`tests.sync.crash_worker`) that die mid-batch. Salesforce's collection create is not idempotent and its
duplicate rules are switched off in the drill, so a write resent blindly after a crash would show as a duplicate.
The in-process tests at the end check that a write resumed after a crash can still be undone.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import update

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration, Provider, SocialProfile, SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.providers.contract import OutboundRecord, RecordResult
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.store.models import SyncLockRow, SyncRunStatus, SyncTrigger, utcnow
from crm_desktop.store.sync_store import INTERRUPTED_MESSAGE, LOCK_STALE_AFTER
from crm_desktop.sync.engine import SyncEngine
from tests.sync.crash_worker import DrillReport, DrillSettings, run_drill

CONTACTS = 2000
MIN_KILLS = 10


def check(report: DrillReport) -> None:
    """Every contact exactly once in the CRM, linked to that record, nothing pending, no run left open."""
    summary = f"{report.provider}: {len(report.kills)} kills, final run {report.final}"
    assert len(report.kills) >= MIN_KILLS, summary
    # The drill must have hit both crash windows, or it proved nothing about them.
    assert report.outbox_kills >= 1, f"no kill left intended writes pending; {summary}"
    assert report.ambiguous_kills >= 1, f"no kill fell between a CRM write and its recording; {summary}"
    assert report.final.get("status") == "succeeded", summary
    assert report.final["counts"]["failed"] == 0, summary
    assert report.duplicates == {}, f"contacts created twice: {list(report.duplicates.items())[:5]}"
    assert report.missing == [], f"{len(report.missing)} contacts never reached the CRM: {report.missing[:5]}"
    assert report.unexpected == [], report.unexpected[:5]
    assert report.crm_records == CONTACTS
    assert report.unlinked == [], f"{len(report.unlinked)} local contacts are not linked: {report.unlinked[:5]}"
    assert report.wrong_links == [], f"linked to the wrong CRM record: {report.wrong_links[:5]}"
    assert report.pending_outbox == 0
    assert report.running_runs == 0, "a killed run still shows as running"


@pytest.mark.loopback
@pytest.mark.skipif(not hasattr(os, "fork"), reason="the drill forks its workers (POSIX only)")
@pytest.mark.parametrize("provider", ["hubspot", "salesforce"])
def test_a_push_killed_again_and_again_lands_every_contact_exactly_once(provider: str, tmp_path: Path) -> None:
    settings = DrillSettings(
        provider,
        contacts=CONTACTS,
        min_kills=MIN_KILLS,
        max_kills=25,
        batch_size=50,
        latency_ms=20,
        batches_per_kill=3,
        seed=5150,
    )
    check(run_drill(settings, tmp_path))


class ProcessDied(BaseException):
    """Stands for the process dying at that point (nothing after it runs, as after a SIGKILL)."""


@pytest.mark.parametrize("dies", ["before the write is sent", "after the write landed"])
def test_a_write_resumed_after_a_crash_is_audited_and_can_be_undone(
    dies: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0))
    workspace = Workspace.open(tmp_path / "workspace", transport=sandbox.transport())
    email = "ada@example.com"

    async def scenario() -> None:
        integration = workspace.integrations.add(
            Integration(provider=Provider.HUBSPOT, name="crm", base_url=sandbox.base_url), sandbox.credentials()
        )
        workspace.contacts.save(
            Contact(email=email, first_name="Ada", last_name="Lovelace",
                    social_profiles=[SocialProfile(platform="twitter", username="ada")])
        )
        first = await workspace.sync.sync("crm", SyncDirection.PUSH)
        assert first.counts["created"] == 1
        local = workspace.contacts.find(email)
        assert local is not None
        workspace.contacts.save(local.model_copy(update={"first_name": "Augusta"}))

        adapter = workspace.crm.adapter_for(integration)
        send = adapter.upsert

        async def dying_upsert(obj: RecordObject, records: Sequence[OutboundRecord],
                               answers: list[RecordResult | None] | None = None) -> list[RecordResult]:
            # The process dies before the answers are recorded: they are not passed on.
            if dies == "after the write landed":
                await send(obj, records)
            raise ProcessDied

        monkeypatch.setattr(adapter, "upsert", dying_upsert)
        mappings = {RecordObject.CONTACT: workspace.sync.mappings(integration, RecordObject.CONTACT)}
        engine = SyncEngine(workspace.sync.store, integration, adapter, mappings)
        with pytest.raises(ProcessDied):
            await engine.run(SyncDirection.PUSH, objects=(RecordObject.CONTACT,))
        assert integration.id is not None
        store = workspace.sync.store
        [pending] = store.pending_outbox(integration.id, RecordObject.CONTACT)
        assert pending.email == email
        crm = await sandbox_first_name(workspace, email)
        assert crm == ("Augusta" if dies == "after the write landed" else "Ada")

        resumed = await workspace.sync.sync("crm", SyncDirection.PUSH)
        assert resumed.status is SyncRunStatus.SUCCEEDED
        assert store.pending_outbox(integration.id, RecordObject.CONTACT) == []
        assert await sandbox_first_name(workspace, email) == "Augusta"
        assert resumed.run_id is not None
        audit = {row.field: (row.old_value, row.new_value) for row in store.audit_for_run(resumed.run_id)}
        assert audit == {"firstName": ("Ada", "Augusta")}, "the resumed write's old values are lost"

        report = await workspace.sync.undo(resumed.run_id)
        assert report.kept == []
        assert await sandbox_first_name(workspace, email) == "Ada"
        restored = workspace.contacts.find(email)
        assert restored is not None and restored.first_name == "Ada"

    try:
        asyncio.run(scenario())
    finally:
        workspace.close()


async def sandbox_first_name(workspace: Workspace, email: str) -> str | None:
    record = await workspace.crm.get_record("crm", RecordObject.CONTACT, email)
    assert record is not None
    value = record.fields.get("firstname")
    return str(value) if value is not None else None


def test_a_run_whose_process_died_is_closed_by_the_next_run(tmp_path: Path) -> None:
    """The dead owner's lock is taken over and its run, which would show "running" for ever, is closed."""
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0))
    workspace = Workspace.open(tmp_path / "workspace", transport=sandbox.transport())
    try:
        integration = workspace.integrations.add(
            Integration(provider=Provider.HUBSPOT, name="crm", base_url=sandbox.base_url), sandbox.credentials()
        )
        assert integration.id is not None
        store = workspace.sync.store
        dead_owner = "crashed-host:1"  # another host's lock is only taken over once stale: make it stale
        assert store.acquire_lock(integration.id, owner=dead_owner)
        ghost = store.start_run(integration.id, SyncTrigger.MANUAL, "push")
        store.heartbeat(integration.id, ghost, owner=dead_owner)
        assert not store.acquire_lock(integration.id), "a live lock was taken over"
        with workspace.database.session() as session:
            session.execute(
                update(SyncLockRow).values(heartbeat_at=utcnow() - LOCK_STALE_AFTER * 2)
            )
        result = asyncio.run(workspace.sync.sync("crm", SyncDirection.PUSH))
        assert result.status is SyncRunStatus.SUCCEEDED
        closed = store.get_run(ghost)
        assert closed.status is SyncRunStatus.FAILED
        assert closed.message == INTERRUPTED_MESSAGE
        assert closed.finished_at is not None
        assert store.get_run(result.run_id or 0).status is SyncRunStatus.SUCCEEDED
    finally:
        workspace.close()
