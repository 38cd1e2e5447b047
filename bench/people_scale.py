"""Issue 12 §1/§7 benchmark: the People panel on a million contacts — time to open, and the stalls of scrolling to
the end.

A fresh SQLite workspace is filled with N contacts (a third of them with a Twitter profile). Filling uses bulk
Core inserts into the store's tables, because the validated import would spend minutes on rows whose only job is to
exist; the panel then reads them through the same service and model the app uses.

- open: from creating the panel to its first page painted (the count and the first keyset page).
- drag to the end: the scroll bar dragged from the top to the bottom in ``--drag-steps`` even moves, as a user
  dragging it does; each move repaints the rows now in view (a page not read yet is asked for on the model's
  reading thread and drawn when it arrives). A step's wall time is a stall of the event loop; after the last step,
  the time until the rows on screen are all read.
- page down: ``--page-steps`` presses of Page Down from the top (each page read next to the last one).
- jump to the end: the view scrolled from the top straight to the bottom (what Ctrl+End does).
- Also: the filter typed on the full table (and, for comparison, its count then first page read on the calling
  thread, as the GUI thread did before); a sort by name without its index (dropped for the measure, a full scan
  and sort) and with it (built again, how long that takes on N rows is the migration's cost), and after it a jump to
  the end. A new filter or sort is counted and its first page read on the model's reading thread: each is measured
  until its rows are in, and as the longest stall of the event loop meanwhile (what the user feels).

The store is made and filled in a child process, and the measuring process opens it as it exists, as every start
of the app after a workspace's first does: the first start migrates the new store with Alembic in the window's
process, and the modules Alembic imports (with a SQL dialect's catalog tables) stay loaded there for that session
(about 42,000 more objects for the collector to walk in each full collection). ``--first-start`` fills the store
in the measuring process instead, to measure that session. The report gives the objects the collector tracks once
the panel is open and how long one full collection of them takes.

Run from the repository root (Qt offscreen)::

    QT_QPA_PLATFORM=offscreen python -m bench.people_scale                  # 1,000,000 contacts
    QT_QPA_PLATFORM=offscreen python -m bench.people_scale --count 100000   # a quick look
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtWidgets import QAbstractSlider, QApplication
from sqlalchemy import insert

from crm_desktop.app.people import PeopleService
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import SocialPlatform
from crm_desktop.store.models import ContactRow, SocialProfileRow, utcnow
from crm_desktop.ui.people_model import PAGE_SIZE, PersonColumn
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


def until_read(app: QCoreApplication, panel: PeoplePanel, started: float) -> tuple[float, float]:
    """Run the event loop until the panel's new query is read: (ms since ``started``, longest event-loop step in
    ms, including the call that started the read)."""
    stall = (time.perf_counter() - started) * 1000
    while True:
        step = time.perf_counter()
        app.processEvents()
        stall = max(stall, (time.perf_counter() - step) * 1000)
        if not panel.model.busy:
            return (time.perf_counter() - started) * 1000, stall
        time.sleep(0.001)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def fill_in_child(directory: Path, count: int) -> float:
    """Make and fill the workspace in a child process; returns the seconds the filling took there."""
    out = subprocess.run([sys.executable, "-m", "bench.people_scale", "--count", str(count),
                          "--fill-into", str(directory)], check=True, capture_output=True, text=True)
    return float(out.stdout)


def tracked_objects() -> tuple[int, float]:
    """How many objects the collector tracks, and the milliseconds one full collection of them takes."""
    gc.collect()
    started = time.perf_counter()
    gc.collect()
    return len(gc.get_objects()), (time.perf_counter() - started) * 1000


class FullCollections:
    """The full (oldest-generation) garbage collections while it is on, and how long each took, in ms."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._started = 0.0
        self.on = False

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if not self.on or info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.durations.append((time.perf_counter() - self._started) * 1000)


def run(count: int, directory: Path, drag_steps: int, page_steps: int, first_start: bool) -> dict[str, Any]:
    app = QApplication.instance() or QApplication([])
    load_at_start = os.getloadavg()[0]
    fill_seconds = 0.0 if first_start else fill_in_child(directory / "workspace", count)
    workspace = Workspace.open(directory / "workspace")
    try:
        if first_start:
            fill_seconds = fill(workspace, count)
        service = PeopleService(workspace.database, workspace.social, workspace.sync)
        started = time.perf_counter()
        panel = PeoplePanel(service)
        panel.resize(1240, 760)
        panel.show()
        open_ms, open_stall_ms = until_read(app, panel, started)
        assert panel.model.total == count, (panel.model.total, count)
        objects_tracked, full_collection_ms = tracked_objects()
        full_collections = FullCollections()
        gc.callbacks.append(full_collections)
        full_collections.on = True

        bar = panel.table.verticalScrollBar()
        drag: list[float] = []
        for step in range(1, drag_steps + 1):
            started = time.perf_counter()
            bar.setValue(bar.maximum() * step // drag_steps)
            app.processEvents()
            drag.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        while panel.model.pages_waiting:
            app.processEvents()
            time.sleep(0.001)
        app.processEvents()
        drag_fill_ms = (time.perf_counter() - started) * 1000
        last_shown = panel.table.model().data(panel.table.model().index(count - 1, PersonColumn.EMAIL))
        assert last_shown == f"person{count - 1:07d}@example.com", last_shown

        bar.setValue(0)
        app.processEvents()
        page_down: list[float] = []
        panel.table.setFocus()
        for _ in range(page_steps):
            started = time.perf_counter()
            bar.triggerAction(QAbstractSlider.SliderAction.SliderPageStepAdd)
            app.processEvents()
            page_down.append((time.perf_counter() - started) * 1000)
        bar.setValue(0)
        app.processEvents()
        started = time.perf_counter()
        panel.table.scrollToBottom()
        app.processEvents()
        jump_ms = (time.perf_counter() - started) * 1000
        full_collections.on = False
        gc.callbacks.remove(full_collections)
        pages_held = panel.model.pages_held

        panel.filter_edit.setText("person00001")
        started = time.perf_counter()
        panel.apply_filters()
        filter_ms, filter_stall_ms = until_read(app, panel, started)
        filtered = panel.model.total
        # Before: the GUI thread itself counted the filter's rows, then read its first page.
        started = time.perf_counter()
        service.count(panel.model.query)
        service.page(panel.model.query, None, PAGE_SIZE)
        filter_on_gui_thread_ms = (time.perf_counter() - started) * 1000
        panel.filter_edit.setText("")
        panel.apply_filters()
        until_read(app, panel, time.perf_counter())

        contacts = ContactRow.metadata.tables[ContactRow.__tablename__]
        name_index = next(index for index in contacts.indexes if index.name == "ix_contacts_name_sort")
        name_index.drop(workspace.database.engine)
        started = time.perf_counter()
        panel.model.sort(PersonColumn.NAME, Qt.SortOrder.AscendingOrder)
        unindexed_sort_ms, unindexed_sort_stall_ms = until_read(app, panel, started)
        panel.model.sort(PersonColumn.EMAIL, Qt.SortOrder.AscendingOrder)
        until_read(app, panel, time.perf_counter())
        started = time.perf_counter()
        name_index.create(workspace.database.engine)
        index_build_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        panel.model.sort(PersonColumn.NAME, Qt.SortOrder.AscendingOrder)
        sort_ms, sort_stall_ms = until_read(app, panel, started)
        first_by_name = panel.model.line(0)
        assert first_by_name is not None and first_by_name.first_name == "First0", first_by_name
        started = time.perf_counter()
        panel.table.scrollToBottom()
        app.processEvents()
        sorted_jump_ms = (time.perf_counter() - started) * 1000
        panel.close()
        panel.stop_reading()
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        workspace.close()
    return {
        "contacts": count,
        "store": "filled and migrated in this process (first start)" if first_start else "opened as it exists",
        "fill_seconds": round(fill_seconds, 1),
        "objects_tracked_with_panel_open": objects_tracked,
        "full_collection_ms": round(full_collection_ms, 1),
        "open_ms": round(open_ms, 1),
        "open_longest_stall_ms": round(open_stall_ms, 1),
        "drag_steps": len(drag),
        "drag_step_ms_p50": round(statistics.median(drag), 2),
        "drag_step_ms_p99": round(percentile(drag, 0.99), 2),
        "drag_step_ms_max": round(max(drag), 2),
        "rows_filled_after_drag_ms": round(drag_fill_ms, 1),
        "page_down_steps": len(page_down),
        "page_down_ms_p50": round(statistics.median(page_down), 2) if page_down else None,
        "page_down_ms_max": round(max(page_down), 2) if page_down else None,
        "jump_to_end_ms": round(jump_ms, 1),
        "steps_over_100ms": sum(1 for s in drag + page_down + [jump_ms] if s > 100),
        "full_collections_while_scrolling": len(full_collections.durations),
        "full_collections_while_scrolling_ms": [round(ms, 1) for ms in full_collections.durations],
        "pages_held": pages_held,
        "filter_ms": round(filter_ms, 1),
        "filter_longest_stall_ms": round(filter_stall_ms, 1),
        "filter_count_then_page_on_gui_thread_ms": round(filter_on_gui_thread_ms, 1),
        "filter_matches": filtered,
        "sort_by_name_without_index_ms": round(unindexed_sort_ms, 1),
        "sort_by_name_without_index_longest_stall_ms": round(unindexed_sort_stall_ms, 1),
        "name_index_build_ms": round(index_build_ms, 1),
        "sort_by_name_ms": round(sort_ms, 1),
        "sort_by_name_longest_stall_ms": round(sort_stall_ms, 1),
        "sorted_by_name_jump_to_end_ms": round(sorted_jump_ms, 1),
        "peak_rss_mb": round(peak_rss_mb),
        "python": platform.python_version(),
        "load_average_at_start": load_at_start,
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="contacts in the store")
    parser.add_argument("--drag-steps", type=int, default=1000, help="moves of the scroll bar from top to bottom")
    parser.add_argument("--page-steps", type=int, default=1000, help="Page Down presses from the top")
    parser.add_argument("--first-start", action="store_true",
                        help="make and fill the store in the measuring process (a workspace's first start)")
    parser.add_argument("--fill-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill_into is not None:
        workspace = Workspace.open(args.fill_into)
        try:
            print(fill(workspace, args.count))
        finally:
            workspace.close()
        return
    with tempfile.TemporaryDirectory() as directory:
        report = run(args.count, Path(directory), args.drag_steps, args.page_steps, args.first_start)
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
