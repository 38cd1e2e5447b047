"""Issue 12 §1/§7 benchmark: the People panel on a million contacts — time to open, and the stalls of scrolling to
the end.

A fresh SQLite workspace is filled with N contacts (a third of them with a Twitter profile). Filling uses bulk
Core inserts into the store's tables, because the validated import would spend minutes on rows whose only job is to
exist; the panel then reads them through the same service and model the app uses.

- open: from creating the panel to its first page painted (the count and the first keyset page).
- scroll to the end: the view is scrolled to the bottom again and again, as a user dragging the scroll bar down
  would; each step lets the model fetch one more page (``fetchMore``) and repaints. A step's wall time is a stall
  of the event loop. Also: the filter typed on the full table, and a sort by name (no index: a full scan).

Run from the repository root (Qt offscreen)::

    QT_QPA_PLATFORM=offscreen python -m bench.people_scale                  # 1,000,000 contacts
    QT_QPA_PLATFORM=offscreen python -m bench.people_scale --count 100000   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from sqlalchemy import insert

from crm_desktop.app.people import PeopleService
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import SocialPlatform
from crm_desktop.store.models import ContactRow, SocialProfileRow, utcnow
from crm_desktop.ui.people_model import PersonColumn
from crm_desktop.ui.people_panel import PeoplePanel

BATCH = 20_000


def fill(workspace: Workspace, count: int) -> float:
    """Insert ``count`` contacts (and a Twitter profile for every third) in batches; returns the seconds taken."""
    started = time.perf_counter()
    now = utcnow()
    with workspace.database.session() as session:
        for first in range(0, count, BATCH):
            numbers = range(first, min(first + BATCH, count))
            session.execute(insert(ContactRow), [
                {"id": n + 1, "email": f"person{n:07d}@example.com", "first_name": f"First{n % 997}",
                 "last_name": f"Last{n % 991}", "company": f"Company {n % 500}", "custom_fields": {},
                 "created_at": now, "updated_at": now}
                for n in numbers
            ])
            session.execute(insert(SocialProfileRow), [
                {"contact_id": n + 1, "platform": SocialPlatform.TWITTER, "username": f"handle{n}",
                 "followers": n % 50_000, "engagement": 0.0}
                for n in numbers if n % 3 == 0
            ])
        session.commit()
    return time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(count: int, directory: Path, max_steps: int | None) -> dict[str, Any]:
    app = QApplication.instance() or QApplication([])
    workspace = Workspace.open(directory / "workspace")
    try:
        fill_seconds = fill(workspace, count)
        service = PeopleService(workspace.database, workspace.social, workspace.sync)
        started = time.perf_counter()
        panel = PeoplePanel(service)
        panel.resize(1240, 760)
        panel.show()
        app.processEvents()
        open_ms = (time.perf_counter() - started) * 1000
        assert panel.model.total == count, (panel.model.total, count)

        steps: list[float] = []
        scroll_started = time.perf_counter()
        while panel.model.canFetchMore() and (max_steps is None or len(steps) < max_steps):
            step = time.perf_counter()
            panel.table.scrollToBottom()
            app.processEvents()
            steps.append((time.perf_counter() - step) * 1000)
        scroll_seconds = time.perf_counter() - scroll_started
        rows_loaded = panel.model.rowCount()

        started = time.perf_counter()
        panel.filter_edit.setText("person00001")
        panel.apply_filters()
        app.processEvents()
        filter_ms = (time.perf_counter() - started) * 1000
        filtered = panel.model.total
        panel.filter_edit.setText("")
        panel.apply_filters()
        started = time.perf_counter()
        panel.model.sort(PersonColumn.NAME, Qt.SortOrder.AscendingOrder)
        app.processEvents()
        sort_ms = (time.perf_counter() - started) * 1000
        panel.close()
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        workspace.close()
    return {
        "contacts": count,
        "fill_seconds": round(fill_seconds, 1),
        "open_ms": round(open_ms, 1),
        "scroll_steps": len(steps),
        "rows_loaded": rows_loaded,
        "scroll_seconds": round(scroll_seconds, 1),
        "step_ms_p50": round(statistics.median(steps), 2) if steps else None,
        "step_ms_p99": round(percentile(steps, 0.99), 2) if steps else None,
        "step_ms_max": round(max(steps), 2) if steps else None,
        "steps_over_100ms": sum(1 for s in steps if s > 100),
        "filter_ms": round(filter_ms, 1),
        "filter_matches": filtered,
        "sort_by_name_ms": round(sort_ms, 1),
        "peak_rss_mb": round(peak_rss_mb),
        "python": platform.python_version(),
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="contacts in the store")
    parser.add_argument("--max-steps", type=int, default=None, help="stop scrolling after this many pages")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        print(json.dumps(run(args.count, Path(directory), args.max_steps), indent=2))


if __name__ == "__main__":
    main()
