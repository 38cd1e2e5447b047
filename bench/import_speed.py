"""Issue 14 §6 benchmark: importing a CSV of new contacts into the local store, the same file again, then a file
that changes every one of them.

A fresh workspace (SQLite store) imports a generated file through the same service `crm-desktop contacts import`
uses: every row read, matched by email, validated (email, phone, profiles), saved, and recorded as an undoable run.
The second import of the same file changes nothing and writes nothing but its run. The third gives every contact
a new company and follower count: each is updated, with an audit row per changed field (what `runs undo` reads).
Wall and CPU seconds are both reported: on a shared machine the CPU seconds are the steadier figure.

Run from the repository root::

    python -m bench.import_speed                   # the issue's figure: 100,000 contacts
    python -m bench.import_speed --count 10000     # a quick look
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import measured_here
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.outcomes import RecordObject

HEADER = ("email", "firstName", "lastName", "company", "phone", "twitter_username", "twitter_followers",
          "linkedin_url", "favorite_color")


def write_contacts(path: Path, count: int, moved: int = 0) -> None:
    """A contacts CSV of ``count`` distinct people: names, a company, a phone on two rows of three, a Twitter
    profile, a LinkedIn link on every other row, and one other column (``moved`` shifts every company and follower
    count: a file that changes everyone)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for number in range(count):
            writer.writerow((
                f"person{number}@example.com", f"First{number % 997}", f"Last{number % 991}",
                f"Company {(number + moved) % 500}", f"+1 415 555 {number % 10_000:04d}" if number % 3 else "",
                f"handle{number}", str((number + moved) % 50_000),
                f"https://www.linkedin.com/in/person-{number}" if number % 2 else "", ("blue", "green")[number % 2],
            ))


def run(count: int, directory: Path) -> dict[str, Any]:
    """Import the file twice into a fresh workspace and time each import."""
    source = directory / "contacts.csv"
    write_contacts(source, count)
    workspace = Workspace.open(directory / "workspace")
    try:
        started, cpu = time.perf_counter(), time.process_time()
        first = workspace.sync.import_file(source, RecordObject.CONTACT)
        first_seconds, first_cpu = time.perf_counter() - started, time.process_time() - cpu
        started, cpu = time.perf_counter(), time.process_time()
        again = workspace.sync.import_file(source, RecordObject.CONTACT)
        again_seconds, again_cpu = time.perf_counter() - started, time.process_time() - cpu
        changed_source = directory / "changed.csv"
        write_contacts(changed_source, count, moved=1)
        started, cpu = time.perf_counter(), time.process_time()
        changed = workspace.sync.import_file(changed_source, RecordObject.CONTACT)
        changed_seconds, changed_cpu = time.perf_counter() - started, time.process_time() - cpu
        stored = workspace.contacts.count()
    finally:
        workspace.close()
    assert (first.created, len(first.problems), stored) == (count, 0, count), (first.created, first.problems[:3])
    assert (again.unchanged, again.updated, again.created) == (count, 0, 0)
    assert (changed.updated, changed.created, len(changed.problems)) == (count, 0, 0)
    return {
        "contacts": count,
        "firstImportSeconds": round(first_seconds, 1),
        "firstImportCpuSeconds": round(first_cpu, 1),
        "rowsPerSecond": round(count / first_seconds),
        "sameFileAgainSeconds": round(again_seconds, 1),
        "sameFileAgainCpuSeconds": round(again_cpu, 1),
        "everyoneChangedSeconds": round(changed_seconds, 1),
        "everyoneChangedCpuSeconds": round(changed_cpu, 1),
        **measured_here(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="contacts in the file (default 100,000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="crm-import-bench-") as folder:
        print(json.dumps(run(args.count, Path(folder)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
