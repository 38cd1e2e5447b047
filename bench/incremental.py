"""Issue 5 benchmark: a full sync of 100,000 local contacts to a sandbox CRM, then a sync of the unchanged contacts.

A workspace (SQLite store) is filled with generated contacts and synced through the app's own sync service to a
sandbox served in-process (no sockets, no added latency; the CRM's rate limits still apply). The second sync of
the unchanged contacts must send no write at all, which the sandbox's request log proves; its time is reported as
a share of the full sync.

Run from the repository root::

    python -m bench.incremental                       # the issue's figures: 100,000 contacts, Salesforce
    python -m bench.incremental --count 5000 --crm hubspot   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration, Provider
from crm_desktop.sandbox.core import LoggedRequest, Sandbox, SandboxConfig
from crm_desktop.sandbox.data import generate_people
from crm_desktop.sandbox.server import make_sandbox
from crm_desktop.vault import Vault
from crm_desktop.vault.ephemeral import EphemeralKeyring

logger = logging.getLogger(__name__)

#: Each CRM's top-plan limits, and a daily budget no run here spends.
LIMITS: dict[str, dict[str, Any]] = {
    "hubspot": {"ten_second_limit": 190, "daily_limit": 100_000_000},
    "salesforce": {"concurrent_limit": 25, "daily_api_limit": 100_000_000},
    "pipedrive": {"burst_limit": 120, "daily_token_budget": 1_000_000_000},
}
#: Contacts saved to the local store per transaction while the workspace is set up.
SAVE_CHUNK = 5_000
#: POSTs that only read (HubSpot's search and batch read) and the OAuth token endpoint, which writes no record.
READ_ONLY_POSTS = ("/search", "/batch/read")


def is_write(entry: LoggedRequest) -> bool:
    """Whether a logged request writes to the CRM (creates, updates or deletes a record, a note, a field)."""
    if "/oauth" in entry.path:
        return False
    if entry.method == "POST":
        return not entry.path.endswith(READ_ONLY_POSTS)
    return entry.method in {"PATCH", "PUT", "DELETE"}


@dataclass
class SyncFigures:
    """One sync run as the benchmark saw it.

    Attributes:
        seconds: wall time of the run.
        cpu_seconds: CPU time of this process over the run (the sandbox's work included): on a shared host the
            fairer figure, as the wall time also counts the other processes.
        status: the run's status.
        counts: created / updated / unchanged / failed / conflicts.
        api_calls: requests the adapter sent.
        requests: requests the sandbox answered, by method and path.
        writes: requests that wrote to the CRM.
    """

    seconds: float
    cpu_seconds: float
    status: str
    counts: dict[str, int]
    api_calls: int
    requests: dict[str, int]
    writes: int


@dataclass
class IncrementalReport:
    """The figures of one benchmark run."""

    crm: str
    contacts: int
    setup_seconds: float
    full: SyncFigures
    second: SyncFigures
    third: SyncFigures | None

    @property
    def ratio(self) -> float:
        return self.second.seconds / self.full.seconds if self.full.seconds else 0.0

    @property
    def cpu_ratio(self) -> float:
        return self.second.cpu_seconds / self.full.cpu_seconds if self.full.cpu_seconds else 0.0


def contacts_of(count: int, seed: int) -> list[Contact]:
    """``count`` generated people as local contacts."""
    return [
        Contact(
            email=person.email,
            first_name=person.first_name,
            last_name=person.last_name,
            company=person.company,
            phone=person.phone,
            social_profiles=person.social_profiles,
        )
        for person in generate_people(count, seed)
    ]


async def timed_sync(workspace: Workspace, sandbox: Sandbox, name: str) -> SyncFigures:
    """Run one sync of ``name`` and read what it sent from the sandbox's request log."""
    sandbox.requests.clear()
    started, cpu_started = time.perf_counter(), time.process_time()
    result = await workspace.sync.sync(name)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    log = list(sandbox.requests)
    return SyncFigures(
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        status=str(result.status),
        counts=dict(result.counts),
        api_calls=result.api_calls,
        requests=dict(Counter(f"{e.method} {e.path}" for e in log).most_common(8)),
        writes=sum(1 for entry in log if is_write(entry)),
    )


async def run(crm: str, count: int, seed: int, data_dir: Path, third: bool) -> IncrementalReport:
    """Set up the workspace, then run the full sync, the second sync (and optionally a third)."""
    sandbox = make_sandbox(crm, SandboxConfig(log_bodies=False, max_log=10_000_000))
    sandbox.apply_config(LIMITS[crm])
    workspace = Workspace.open(data_dir, vault=Vault(backend=EphemeralKeyring()), transport=sandbox.transport())
    try:
        name = f"bench-{crm}"
        workspace.integrations.add(
            Integration(provider=Provider(crm), name=name, base_url=sandbox.base_url), sandbox.credentials()
        )
        started = time.perf_counter()
        contacts = contacts_of(count, seed)
        for start in range(0, len(contacts), SAVE_CHUNK):
            workspace.contacts.save_many(contacts[start : start + SAVE_CHUNK])
        setup_seconds = time.perf_counter() - started
        print(f"workspace: {workspace.contacts.count():,} local contacts saved in {setup_seconds:.1f} s", flush=True)

        full = await timed_sync(workspace, sandbox, name)
        print(f"full sync: {full.seconds:.1f} s ({full.cpu_seconds:.1f} s CPU), {full.counts}, "
              f"{full.api_calls:,} API calls", flush=True)
        second = await timed_sync(workspace, sandbox, name)
        print(f"second sync: {second.seconds:.1f} s ({second.cpu_seconds:.1f} s CPU), {second.counts}, "
              f"{second.api_calls:,} API calls, {second.writes} writes", flush=True)
        later = await timed_sync(workspace, sandbox, name) if third else None
        if later is not None:
            print(f"third sync: {later.seconds:.2f} s, {later.api_calls:,} API calls, {later.writes} writes")
    finally:
        workspace.close()
    return IncrementalReport(crm, count, setup_seconds, full, second, later)


def check(report: IncrementalReport) -> list[str]:
    """What the run got wrong: the full sync must create every contact, the later ones must write nothing."""
    problems = []
    if report.full.counts.get("created") != report.contacts or report.full.counts.get("failed"):
        problems.append(f"the full sync did not create every contact: {report.full.counts}")
    for label, figures in (("second", report.second), ("third", report.third)):
        if figures is None:
            continue
        if figures.writes:
            problems.append(f"the {label} sync of unchanged contacts wrote {figures.writes} times to the CRM")
        if figures.counts.get("created") or figures.counts.get("updated") or figures.counts.get("failed"):
            problems.append(f"the {label} sync changed records: {figures.counts}")
    return problems


def machine() -> str:
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def markdown_table(report: IncrementalReport) -> str:
    rows = [
        "| sync | seconds | share of the full sync | CPU seconds | CPU share | API calls | writes to the CRM "
        "| counts |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for label, figures in (("full", report.full), ("second (unchanged)", report.second), ("third", report.third)):
        if figures is None:
            continue
        share = figures.seconds / report.full.seconds if report.full.seconds else 0.0
        cpu_share = figures.cpu_seconds / report.full.cpu_seconds if report.full.cpu_seconds else 0.0
        counts = ", ".join(f"{k} {v:,}" for k, v in figures.counts.items() if v)
        rows.append(
            f"| {label} | {figures.seconds:,.1f} | {share:.1%} | {figures.cpu_seconds:,.1f} | {cpu_share:.1%} | "
            f"{figures.api_calls:,} | {figures.writes:,} | {counts or 'nothing'} |"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=100_000, help="local contacts (default 100,000)")
    parser.add_argument("--crm", choices=sorted(LIMITS), default="salesforce", help="the sandbox CRM (default "
                        "salesforce: its change query pages 2,000 records; HubSpot's emulated search scans every "
                        "record for each page of 200)")
    parser.add_argument("--seed", type=int, default=5, help="seed of the generated contacts")
    parser.add_argument("--no-third", action="store_true", help="skip the third sync (nothing changed since)")
    parser.add_argument("--data-dir", type=Path, help="workspace folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"incremental sync benchmark: {args.count:,} contacts, {args.crm} sandbox in-process, {machine()}")

    with tempfile.TemporaryDirectory(prefix="crm-bench-") as scratch:
        data_dir = args.data_dir or Path(scratch)
        report = asyncio.run(run(args.crm, args.count, args.seed, data_dir, third=not args.no_third))
    print()
    print(markdown_table(report))
    print(f"\nsecond sync / full sync = {report.ratio:.3f} (CPU time: {report.cpu_ratio:.3f})")
    problems = check(report)
    for problem in problems:
        print(f"FAILED: {problem}")
    if args.json:
        payload = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            **asdict(report),
            "ratio": report.ratio,
            "cpu_ratio": report.cpu_ratio,
            "problems": problems,
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
