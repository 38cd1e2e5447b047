"""Issue 5 crash drill, the long version: push contacts, SIGKILL the pushing process again and again, check the CRM.

The sandbox is served on real loopback from this process (so it outlives every worker) with a fixed latency; the
pushes run in worker processes forked by ``python -m tests.sync.crash_worker DATA_DIR --fork-server`` and are
killed with SIGKILL at seeded random moments, then restarted, until the last run is let finish. The drill then
counts every contact the CRM holds by email (duplicates, missing), checks each local contact's link, the outbox and
the run history. Credentials cross processes through the test-only file keyring (``tests/support/file_keyring.py``).
Salesforce runs with its duplicate rules off, so a create sent twice would show as a duplicate.

Run from the repository root (POSIX only)::

    python -m bench.crash_drill                                  # HubSpot and Salesforce, 5,000 contacts, 40 kills
    python -m bench.crash_drill --crm salesforce --contacts 2000 --kills 10 --json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from tests.sync.crash_worker import DrillReport, DrillSettings, run_drill

logger = logging.getLogger(__name__)

CRMS = ("hubspot", "salesforce", "pipedrive")


def verdict(report: DrillReport) -> list[str]:
    """What went wrong, one line per problem (empty: every contact landed exactly once and is linked)."""
    problems = []
    if report.final.get("status") != "succeeded":
        problems.append(f"the finishing run ended {report.final.get('status')}: {report.final.get('message')}")
    if report.duplicates:
        problems.append(f"{len(report.duplicates)} contacts created more than once")
    if report.missing:
        problems.append(f"{len(report.missing)} contacts missing from the CRM")
    if report.unexpected:
        problems.append(f"{len(report.unexpected)} CRM contacts no local contact has")
    if report.unlinked or report.wrong_links:
        problems.append(f"{len(report.unlinked)} contacts unlinked, {len(report.wrong_links)} linked wrongly")
    if report.pending_outbox:
        problems.append(f"{report.pending_outbox} writes still pending in the outbox")
    if report.running_runs:
        problems.append(f"{report.running_runs} killed runs still marked running")
    if not report.outbox_kills or not report.ambiguous_kills:
        problems.append("the kills missed a crash window (add kills)")
    return problems


def summary(report: DrillReport) -> str:
    lines = [
        f"{report.provider}: {report.contacts} contacts, {len(report.kills)} kills, {report.workers} workers, "
        f"{report.seconds:.1f} s in all (finishing run {report.finish_seconds:.1f} s)",
        f"  kills inside the outbox window: {report.outbox_kills}; after a CRM write landed and before it was "
        f"recorded: {report.ambiguous_kills}",
        f"  CRM holds {report.crm_records} contacts; duplicates {len(report.duplicates)}, missing "
        f"{len(report.missing)}, unlinked {len(report.unlinked)}, wrong links {len(report.wrong_links)}, "
        f"pending writes {report.pending_outbox}, runs left running {report.running_runs}",
    ]
    problems = verdict(report)
    lines.append("  verdict: " + ("PASS" if not problems else "FAIL: " + "; ".join(problems)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--crm", choices=[*CRMS, "all"], action="append", help="default: hubspot and salesforce")
    parser.add_argument("--contacts", type=int, default=5000)
    parser.add_argument("--kills", type=int, default=40, help="kills at least")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument(
        "--batches-per-kill", type=int, default=3, help="kill each run after 0..N-1 batches and part of the next"
    )
    parser.add_argument("--seed", type=int, default=20240605)
    parser.add_argument("--verbose", action="store_true", help="print every kill")
    parser.add_argument("--json", action="store_true", help="also print the full reports as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    chosen = args.crm or ["hubspot", "salesforce"]
    crms = list(CRMS) if "all" in chosen else list(dict.fromkeys(chosen))
    print(f"crash drill {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
          f"{platform.system()} {platform.machine()}")
    reports = []
    for crm in crms:
        settings = DrillSettings(
            crm,
            contacts=args.contacts,
            min_kills=args.kills,
            max_kills=args.kills * 2,
            batch_size=args.batch_size,
            latency_ms=args.latency_ms,
            batches_per_kill=args.batches_per_kill,
            seed=args.seed,
            finish_timeout=max(120.0, args.contacts / 20),
        )
        with tempfile.TemporaryDirectory(prefix=f"crash-drill-{crm}-") as work_dir:
            report = run_drill(settings, Path(work_dir), echo=print if args.verbose else None)
        reports.append(report)
        print(summary(report), flush=True)
        if len(report.kills) < args.kills:
            print(f"  note: the push finished after {len(report.kills)} kills, fewer than asked; add contacts")
    if args.json:
        print(json.dumps([r.to_json() for r in reports], indent=2))
    return 0 if all(not verdict(r) for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
