"""A CRM that goes away in the middle of a sync: the run ends "offline", what was not delivered waits, and the next
run once the CRM is back delivers it exactly once.

The sandbox is served on real loopback and its server is stopped while the push is under way (connections are
then refused, as when the laptop loses the network or the CRM's host is unreachable), then served again on the
same port with the same data.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from pathlib import Path

import pytest

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration, SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.providers.contract import AdapterOptions
from crm_desktop.sandbox.core import FaultKind, FaultRule, SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.server import SandboxServer
from crm_desktop.store.models import SyncRunStatus
from tests.sync.crash_worker import crm_contacts

pytestmark = pytest.mark.loopback

CONTACTS = 1500
#: Each request takes this long, so that the push is still going when the CRM goes away.
LATENCY_MS = 250


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def batch_writes(sandbox: HubSpotSandbox) -> int:
    return sum(1 for r in list(sandbox.requests)
               if r.method == "POST" and r.path.endswith(("/batch/create", "/batch/upsert")))


def wait_for_writes(sandbox: HubSpotSandbox, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while batch_writes(sandbox) < count:
        assert time.monotonic() < deadline, "the push did not get going"
        time.sleep(0.05)


def undelivered(workspace: Workspace) -> int:
    """Local contacts not yet delivered: in the outbox (sent when the CRM went away) or changed and not pushed."""
    integration_id = workspace.integrations.get("crm").id
    assert integration_id is not None
    return workspace.sync.store.count_changed_local(integration_id, RecordObject.CONTACT)


@pytest.mark.timeout(300)  # real processes and waits out retries: minutes on a loaded CI host
def test_a_crm_gone_mid_sync_ends_the_run_offline_and_the_next_run_delivers_once(tmp_path: Path) -> None:
    port = free_port()
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0, latency_ms=LATENCY_MS))
    server = SandboxServer([sandbox], ports=[port])
    server.start()
    workspace = Workspace.open(tmp_path / "data")
    try:
        workspace.integrations.add(Integration(provider="hubspot", name="crm", base_url=sandbox.base_url),
                                   sandbox.credentials())
        workspace.contacts.save_many(
            Contact(email=f"person{n}@example.com", first_name=f"Person{n}") for n in range(CONTACTS))

        async def sync_while_the_crm_goes_away() -> object:
            run = asyncio.ensure_future(workspace.sync.sync("crm", SyncDirection.BOTH))
            await asyncio.to_thread(wait_for_writes, sandbox, 5)
            await asyncio.to_thread(server.stop)  # the CRM is unreachable from here on
            return await run

        first = asyncio.run(sync_while_the_crm_goes_away())
        assert first.status is SyncRunStatus.OFFLINE, (first.status, first.message)
        delivered = {email for _, email in crm_contacts(sandbox)}
        assert 0 < len(delivered) < CONTACTS
        assert f"{CONTACTS - len(delivered):,} records wait for the next run" in (first.message or ""), first.message
        row, _ = workspace.sync.run(first.run_id)
        assert row.status is SyncRunStatus.OFFLINE
        # The records that wait were not refused: none is counted or listed as failed.
        assert first.counts["failed"] == row.failed == 0 and first.failures == [], first.counts
        assert first.counts["created"] == row.created == len(delivered)
        left = undelivered(workspace)
        assert left == CONTACTS - len(delivered), left

        server = SandboxServer([sandbox], ports=[port])  # back, same address, same data
        server.start()
        second = asyncio.run(workspace.sync.sync("crm", SyncDirection.BOTH))
        assert second.status is SyncRunStatus.SUCCEEDED, (second.status, second.message)
        emails = Counter(email for _, email in crm_contacts(sandbox))
        assert [email for email, count in emails.items() if count > 1] == []
        assert set(emails) == {f"person{n}@example.com" for n in range(CONTACTS)}
        assert undelivered(workspace) == 0
        assert dict(second.counts)["created"] == CONTACTS - len(delivered)
    finally:
        workspace.close()
        server.stop()


def test_a_batch_that_cannot_reach_the_crm_waits_and_is_not_counted_failed(tmp_path: Path) -> None:
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0, faults=[
        FaultRule(FaultKind.CONNECTION_RESET, probability=1.0, path="/batch/upsert")]))
    server = SandboxServer([sandbox])
    server.start()
    workspace = Workspace.open(tmp_path / "data")
    try:
        workspace.crm.options = AdapterOptions(max_attempts=1, timeout=5.0)
        workspace.integrations.add(Integration(provider="hubspot", name="crm", base_url=sandbox.base_url),
                                   sandbox.credentials())
        workspace.contacts.save_many(Contact(email=f"person{n}@example.com", first_name=f"P{n}") for n in range(3))
        first = asyncio.run(workspace.sync.sync("crm", SyncDirection.PUSH))
        assert first.status is SyncRunStatus.OFFLINE, (first.status, first.message)
        assert first.counts["failed"] == 0 and first.failures == [], first.counts
        assert "3 records wait for the next run" in (first.message or ""), first.message
        assert undelivered(workspace) == 3

        sandbox.faults.replace([])  # the network is back
        second = asyncio.run(workspace.sync.sync("crm", SyncDirection.PUSH))
        assert second.status is SyncRunStatus.SUCCEEDED, (second.status, second.message)
        assert second.counts["created"] == 3
        assert sorted(email for _, email in crm_contacts(sandbox)) == [f"person{n}@example.com" for n in range(3)]
    finally:
        workspace.close()
        server.stop()
