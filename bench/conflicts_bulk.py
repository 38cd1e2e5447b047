"""Bulk conflict resolution: 3,000 open conflicts read for the Conflicts panel, then resolved in one decision.

A workspace (SQLite store on disk) is synced with a HubSpot sandbox served in-process (its rate limits raised);
the company of every contact is then changed on both sides under a manual rule, so the next sync leaves one open
conflict per contact. The figures are the read the Conflicts panel makes (the open conflicts and each record's
value now), and ``SyncService.resolve_many`` of them all, keeping the local values (each written to the CRM in
its batches of 100) or the CRM's (written here only). Each decision gets a workspace of its own.

Run from the repository root::

    python -m bench.conflicts_bulk                     # 3,000 conflicts, both decisions
    python -m bench.conflicts_bulk --count 500 --take local   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crm_desktop.app.sync_service import ResolutionStatus
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration, Provider
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.store.models import ConflictRule
from crm_desktop.vault import Vault
from crm_desktop.vault.ephemeral import EphemeralKeyring

logger = logging.getLogger(__name__)

NAME = "bench-hubspot"
#: Limits no run here reaches: the figures are the local store's and the app's, not the rate limit's.
LIMITS = {"ten_second_limit": 100_000, "daily_limit": 100_000_000}


@dataclass(frozen=True)
class BulkFigures:
    """One decision on every open conflict."""

    take: str
    conflicts: int
    read_seconds: float
    resolve_seconds: float
    statuses: dict[str, int]
    crm_writes: int


async def run(take: str, count: int, data_dir: Path) -> BulkFigures:
    """Set up ``count`` open conflicts, read them as the panel does, and resolve them all taking ``take``."""
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0, log_bodies=False, max_log=10_000_000),
                             search_per_second_limit=100_000)
    sandbox.apply_config(LIMITS)
    workspace = Workspace.open(data_dir, vault=Vault(backend=EphemeralKeyring()), transport=sandbox.transport())
    try:
        workspace.integrations.add(Integration(provider=Provider.HUBSPOT, name=NAME, base_url=sandbox.base_url),
                                   sandbox.credentials())
        emails = [f"person{n:05d}@example.com" for n in range(count)]
        workspace.contacts.save_many([Contact(email=email, first_name="Ada", company="Base Co") for email in emails])
        await workspace.sync.sync(NAME)
        integration = workspace.integrations.get(NAME)
        assert integration.id is not None
        workspace.sync.set_rule(integration, RecordObject.CONTACT, "company", ConflictRule.MANUAL)
        workspace.contacts.save_many([Contact(email=email, first_name="Ada", company=f"Local Co {n}")
                                      for n, email in enumerate(emails)])
        store = workspace.sync.store
        locals_ = store.local_by_emails(RecordObject.CONTACT, emails)
        links = store.links_for_local(integration.id, RecordObject.CONTACT, [local.id for local in locals_.values()])
        for n, email in enumerate(emails):
            sandbox.edit_record("contacts", links[locals_[email].id].crm_id, {"company": f"CRM Co {n}"})
        result = await workspace.sync.sync(NAME)
        print(f"{take}: {result.counts.get('conflicts', 0):,} open conflicts set up", flush=True)

        started = time.perf_counter()
        conflicts = workspace.sync.conflicts()
        workspace.sync.local_values_now(conflicts)
        read_seconds = time.perf_counter() - started

        sandbox.requests.clear()
        started = time.perf_counter()
        outcomes = await workspace.sync.resolve_many([c.id for c in conflicts], take=take)
        resolve_seconds = time.perf_counter() - started
        writes = sum(1 for entry in sandbox.requests
                     if entry.method in ("POST", "PATCH") and "/search" not in entry.path and "/read" not in entry.path)
        statuses = dict(Counter(str(outcome.status) for outcome in outcomes))
        if statuses != {str(ResolutionStatus.RESOLVED): len(conflicts)} or workspace.sync.conflict_count():
            raise SystemExit(f"not every conflict was resolved: {statuses}")
        return BulkFigures(take, len(conflicts), read_seconds, resolve_seconds, statuses, writes)
    finally:
        workspace.close()


def machine() -> str:
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=3_000, help="open conflicts (default 3,000)")
    parser.add_argument("--take", choices=("local", "crm", "both"), default="both", help="the decision")
    parser.add_argument("--data-dir", type=Path, help="parent of the workspace folders (default: a temporary one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"bulk conflict benchmark: {args.count:,} conflicts, HubSpot sandbox in-process, {machine()}")
    takes = ("local", "crm") if args.take == "both" else (args.take,)
    rows = ["| decision | conflicts | panel's read (s) | resolve_many (s) | per conflict (ms) | CRM writes |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    with tempfile.TemporaryDirectory(prefix="crm-bench-", dir=args.data_dir) as scratch:
        for take in takes:
            figures = asyncio.run(run(take, args.count, Path(scratch) / take))
            per = figures.resolve_seconds / figures.conflicts * 1000 if figures.conflicts else 0.0
            rows.append(f"| keep {take} | {figures.conflicts:,} | {figures.read_seconds:.2f} | "
                        f"{figures.resolve_seconds:.2f} | {per:.2f} | {figures.crm_writes:,} |")
    print()
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
