"""Social import benchmark: a social tool's export of conversations, messages and engagements, where most people
are first seen by username and later linked to their email, imported into a fresh workspace, then again.

Each person of the file (one in ten rows) starts a conversation by username alone, sends two messages in it,
engages six times by username alone, then once by username and email: that row links the username to the email,
and the person's earlier touchpoints and conversation join it (the linking `crm-desktop social import` spends most
of its time on when a file introduces many people). The second import of the same file finds every event recorded
and links nobody. Wall and CPU seconds are both reported: on a shared machine the CPU seconds are the steadier
figure.

Run from the repository root::

    python -m bench.social_import                   # 50,000 rows (5,000 people)
    python -m bench.social_import --count 10000     # a quick look
    python -m bench.social_import --conversions --count 10000   # a file of 10,000 conversions by email
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import measured_here
from crm_desktop.app.social import SocialImportReport
from crm_desktop.app.workspace import Workspace

#: Rows the file gives each person: a conversation, two messages, six anonymous engagements, one that links.
ROWS_PER_PERSON = 10
START = datetime(2026, 11, 1, tzinfo=UTC)


def write_events(path: Path, people: int) -> None:
    """A JSONL export of ``people`` people's events (:data:`ROWS_PER_PERSON` rows each)."""
    kinds = ("like", "comment", "share", "click", "view", "mention")
    with path.open("w", encoding="utf-8") as handle:
        for number in range(people):
            user = f"fan{number}"
            at = START + timedelta(minutes=number)
            rows: list[dict[str, Any]] = [{
                "conversationId": f"dm-{number}", "platform": "twitter", "startedAt": at.isoformat(),
                "campaign": f"campaign-{number % 20}", "participant": {"username": user, "firstName": f"Fan{number}"},
            }]
            rows += [{
                "conversationId": f"dm-{number}", "messageId": f"m-{number}-{n}", "sentAt":
                (at + timedelta(seconds=30 * (n + 1))).isoformat(), "direction": ("inbound", "outbound")[n],
                "text": f"message {n} of fan {number}",
            } for n in range(2)]
            rows += [{
                "platform": "twitter", "type": kind, "timestamp": (at + timedelta(hours=n + 1)).isoformat(),
                "postId": f"post-{(number + n) % 300}", "campaign": f"campaign-{number % 20}",
                "user": {"username": user},
            } for n, kind in enumerate(kinds)]
            rows.append({
                "platform": "twitter", "type": "form_submit", "timestamp": (at + timedelta(hours=8)).isoformat(),
                "postId": f"post-{number % 300}", "campaign": f"campaign-{number % 20}",
                "user": {"username": user, "email": f"fan{number}@example.com"},
            })
            handle.writelines(json.dumps(row) + "\n" for row in rows)


def imported_twice(workspace: Workspace, source: Path) -> tuple[SocialImportReport, SocialImportReport,
                                                                dict[str, float]]:
    """Import ``source`` twice into ``workspace``: both reports, and each import's wall and CPU seconds."""
    started, cpu = time.perf_counter(), time.process_time()
    first = workspace.social.import_file(source)
    first_seconds, first_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    again = workspace.social.import_file(source)
    again_seconds, again_cpu = time.perf_counter() - started, time.process_time() - cpu
    return first, again, {
        "firstImportSeconds": round(first_seconds, 1),
        "firstImportCpuSeconds": round(first_cpu, 1),
        "sameFileAgainSeconds": round(again_seconds, 1),
        "sameFileAgainCpuSeconds": round(again_cpu, 1),
    }


def run(count: int, directory: Path) -> dict[str, Any]:
    """Import the file twice into a fresh workspace and time each import."""
    people = count // ROWS_PER_PERSON
    source = directory / "social.jsonl"
    write_events(source, people)
    workspace = Workspace.open(directory / "workspace")
    try:
        first, again, timings = imported_twice(workspace, source)
        counts = workspace.social.store.counts()
        contacts = workspace.contacts.count()
    finally:
        workspace.close()
    rows = people * ROWS_PER_PERSON
    assert (first.created, first.refused, first.linked_touchpoints) == (rows, [], people * 7), (
        first.created, first.refused[:3], first.linked_touchpoints)
    assert (again.unchanged, again.created, again.updated, again.linked_touchpoints) == (rows, 0, 0, 0)
    assert (counts["identities"], counts["touchpoints"], contacts) == (people, people * 8, people), (counts, contacts)
    return {
        "rows": rows,
        "people": people,
        "linkedTouchpoints": first.linked_touchpoints,
        **timings,
        **measured_here(),
    }


def write_conversions(path: Path, count: int) -> None:
    """A JSONL export of ``count`` ``conversion`` engagements, each by its own person known by email."""
    with path.open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({
            "platform": "twitter", "type": "conversion", "timestamp": (START + timedelta(minutes=n)).isoformat(),
            "postId": f"post-{n % 300}", "campaign": f"campaign-{n % 20}", "user": {"email": f"buyer{n}@example.com"},
        }) + "\n" for n in range(count))


def run_conversions(count: int, directory: Path) -> dict[str, Any]:
    """Import a file of ``count`` conversions twice into a fresh workspace and time each import."""
    source = directory / "conversions.jsonl"
    write_conversions(source, count)
    workspace = Workspace.open(directory / "workspace")
    try:
        first, again, timings = imported_twice(workspace, source)
        conversions = len(workspace.social.store.conversions())
    finally:
        workspace.close()
    assert (first.created, first.refused, again.unchanged, conversions) == (count, [], count, count), (
        first.created, first.refused[:3], again.unchanged, conversions)
    return {
        "conversions": count,
        **timings,
        **measured_here(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000, help="rows in the file (default 50,000)")
    parser.add_argument("--conversions", action="store_true",
                        help="a file of conversion engagements by email, one person each, instead")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="crm-social-import-bench-") as folder:
        result = (run_conversions if args.conversions else run)(args.count, Path(folder))
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
