"""Crash drill at scale: sync contacts two ways, SIGKILL the syncing process again and again, check both sides.

The sandbox is served on real loopback from this process (so it outlives every worker) with a fixed latency; the
pushes run in worker processes forked by ``python -m tests.sync.crash_worker DATA_DIR --fork-server`` and are
killed with SIGKILL at seeded random moments, then restarted, until the last run is let finish. The drill then
counts every contact the CRM holds by email (duplicates, missing), checks each local contact's link, the outbox and
the run history. Credentials cross processes through the test-only file keyring (``tests/support/file_keyring.py``).
Salesforce runs with its duplicate rules off, so a create sent twice would show as a duplicate.

Two-way (the default, issue 14 section 5): the CRM starts with 20% of the people of its own (pulled), 20% more are
on both sides with another phone locally, the rest are local only (pushed); the workers run two-way syncs, so pull
pages and their one-transaction apply are killed too. The drill also checks that every person is in the local
store exactly once, then undoes the finishing run as ``runs undo`` does and compares every local and CRM value with
what the two sides held before that run (a field the run changed: with the value from before the run that the undo
puts back on both sides, the local one for a pulled field, the CRM's for a pushed one). ``--no-two-way`` runs the
push-only drill of issue 5.

Run from the repository root (POSIX only)::

    python -m bench.crash_drill                                  # all three CRMs, 5,000 contacts, 50 kills, two-way
    python -m bench.crash_drill --crm pipedrive --contacts 1000 --kills 10
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
    if report.local_missing:
        problems.append(f"{len(report.local_missing)} people missing from the local store")
    if report.local_duplicates:
        problems.append(f"{report.local_duplicates} local contacts more than one per person")
    if report.undo.get("local_mismatch_count") or report.undo.get("crm_mismatch_count"):
        problems.append(
            f"undoing the finishing run left {report.undo['local_mismatch_count']} local and "
            f"{report.undo['crm_mismatch_count']} CRM records unlike before it"
        )
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
        f"  local store holds {report.local_contacts} contacts; missing {len(report.local_missing)}, duplicates "
        f"{report.local_duplicates}",
    ]
    if report.undo:
        undo = report.undo
        lines.append(
            f"  undo of run {undo['run']}: restored {undo['restored']}; compared {undo['checked']['local']} local and "
            f"{undo['checked']['crm']} CRM records with before the run (a field it changed: with the value the undo "
            f"puts back on both sides; {undo['edits_carried']} edits it carried): {undo['local_mismatch_count']} "
            f"local and {undo['crm_mismatch_count']} CRM differ; {undo['created_kept']} records the run created kept"
        )
    problems = verdict(report)
    lines.append("  verdict: " + ("PASS" if not problems else "FAIL: " + "; ".join(problems)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--crm", choices=[*CRMS, "all"], action="append", help="default: all three")
    parser.add_argument("--contacts", type=int, default=5000)
    parser.add_argument("--kills", type=int, default=50, help="kills at least")
    parser.add_argument("--two-way", action=argparse.BooleanOptionalAction, default=True,
                        help="sync both ways and check the undo of the finishing run (default); --no-two-way: push")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument(
        "--batches-per-kill", type=int, default=3, help="kill each run after 0..N-1 batches and part of the next"
    )
    parser.add_argument("--seed", type=int, default=20240605)
    parser.add_argument("--finish-timeout", type=float,
                        help="seconds the finishing run may take (default: a contact a 20th of a second, a Pipedrive "
                        "one a quarter: it writes one person a request; at least 120)")
    parser.add_argument("--verbose", action="store_true", help="print every kill")
    parser.add_argument("--json", action="store_true", help="also print the full reports as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    chosen = args.crm or ["all"]
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
            finish_timeout=args.finish_timeout or max(120.0, args.contacts / (4 if crm == "pipedrive" else 20)),
            two_way=args.two_way,
        )
        with tempfile.TemporaryDirectory(prefix=f"crash-drill-{crm}-") as work_dir:
            report = run_drill(settings, Path(work_dir), echo=print if args.verbose else None)
        reports.append(report)
        print(summary(report), flush=True)
        if len(report.kills) < args.kills:
            print(f"  note: the push finished after {len(report.kills)} kills, fewer than asked; add contacts")
    if args.json:
        print(json.dumps([r.to_json() for r in reports], indent=2, default=str))
    return 0 if all(not verdict(r) for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
