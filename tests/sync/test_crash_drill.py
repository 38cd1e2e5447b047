"""Crash drill: a push of 2,000 contacts killed with SIGKILL at random moments and restarted lands each one once.

The sandbox runs on real loopback in this process; the pushing workers are separate processes (see
:mod:`tests.sync.crash_worker`) that die mid-batch. Salesforce's collection create is not idempotent and its
duplicate rules are switched off in the drill, so a write resent blindly after a crash would show as a duplicate.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.sync.crash_worker import DrillReport, DrillSettings, run_drill

pytestmark = [
    pytest.mark.loopback,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the drill forks its workers (POSIX only)"),
]

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
