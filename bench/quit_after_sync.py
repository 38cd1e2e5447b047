"""Issue 15, the long version: the app syncs 10,000 imported contacts to the three demo CRMs, then quits cleanly.

A new app process opens in demo mode offscreen (``crm-desktop --demo``), imports the contacts with
``crm-desktop contacts import``, clicks "Sync all now", waits for "No sync running" and quits from File > Quit
(``tests/support/app_session.py`` plays it). The demo's own top-plan API limits apply unless ``--pipedrive-burst``
says otherwise. Pass when the process exits 0 with nothing on stderr but Qt's offscreen notice and every run
succeeded; the GUI loop's stalls during the syncs are reported too.

Run from the repository root (POSIX only)::

    python -m bench.quit_after_sync                       # 10,000 contacts, a full collection before quitting
    python -m bench.quit_after_sync --contacts 2000 --json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from tests.support.app_session import SessionReport, SessionSettings, run_app_session


def problems(report: SessionReport, contacts: int) -> list[str]:
    """What went wrong, one line each (empty: a clean quit after a complete sync)."""
    found = []
    if report.exit_code != 0:
        found.append(f"the app exited with status {report.exit_code}")
    found += [f"stderr: {line}" for line in report.unexpected_stderr]
    if len(report.runs) != 3:
        found.append(f"{len(report.runs)} integrations synced, not 3")
    for name, run in report.runs.items():
        if run["status"] != "succeeded" or run["failed"] or run["created"] < contacts:
            found.append(f"{name}: {run}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10_000, help="contacts imported before the sync")
    parser.add_argument("--no-collect", action="store_true", help="skip the full collection before quitting")
    parser.add_argument("--pipedrive-burst", type=int, default=None,
                        help="requests and searches per 2 s the Pipedrive sandbox allows (default: the demo's)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="crm-quit-after-sync-") as folder:
        report = run_app_session(
            SessionSettings(
                data_dir=Path(folder) / "data",
                contacts=args.contacts,
                collect_before_quit=not args.no_collect,
                pipedrive_burst=args.pipedrive_burst,
                timeout=3_600,
            )
        )
    found = problems(report, args.contacts)
    if args.json:
        facts = asdict(report) | {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
            "contacts": args.contacts,
            "problems": found,
        }
        sys.stdout.write(json.dumps(facts, indent=2) + "\n")
    else:
        stalls = report.stalls
        lines = [f"{args.contacts} contacts: exit status {report.exit_code}, sync {report.sync_seconds:.1f} s, "
                 f"session {report.seconds:.1f} s"]
        lines += [f"  {name}: {run['status']}, {run['created']} created, {run['failed']} failed"
                  for name, run in report.runs.items()]
        lines.append(f"  GUI loop while syncing: {stalls.ticks} ticks, max {stalls.max_ms:.0f} ms late, "
                     f"p99 {stalls.p99_ms:.1f} ms, {stalls.over_100ms} over 100 ms")
        lines += [f"  PROBLEM: {line}" for line in found] or ["  clean quit"]
        sys.stdout.write("\n".join(lines) + "\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
