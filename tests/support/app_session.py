"""Drive the real app process as a user would: demo mode offscreen, a CSV imported, "Sync all now", then Quit.

The parent (:func:`run_app_session`) writes the CSV and starts ``python -m tests.support.app_session SETTINGS``; that
child opens the app through ``crm-desktop --demo`` and plays the session from Qt timers: it imports the CSV with
``crm-desktop contacts import`` into the demo's data dir, clicks "Sync all now", waits for "No sync running",
optionally forces a full garbage collection, and chooses File > Quit. While the syncs run it measures how late the
GUI's event loop wakes up. The parent returns the exit status, what the process wrote to stderr and the child's
report (the runs, the stalls, the collector's and the event loop's state at quit).
"""

from __future__ import annotations

import asyncio
import csv
import gc
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: What Qt's offscreen platform says about every top-level window; nothing to do with the app.
EXPECTED_STDERR = ("This plugin does not support propagateSizeHints()",)
#: How often the stall meter asks the GUI loop to wake it up.
TICK_SECONDS = 0.01


@dataclass
class SessionSettings:
    """What the session does.

    Attributes:
        data_dir: the app's data dir (the demo builds its workspace in ``<data_dir>/demo``).
        contacts: contacts in the CSV imported before the sync.
        collect_before_quit: force a full garbage collection just before quitting.
        pipedrive_burst: requests (and searches) per 2 s the Pipedrive sandbox allows (``None``: the demo's top
            plan), so a CI-sized session is not spent waiting on a rate limit.
        timeout: seconds the whole session may take.
    """

    data_dir: Path
    contacts: int
    collect_before_quit: bool = False
    pipedrive_burst: int | None = None
    timeout: float = 600.0


@dataclass
class Stalls:
    """How late the GUI loop woke a 10 ms timer while the syncs ran (a blocked loop is a frozen window)."""

    ticks: int = 0
    max_ms: float = 0.0
    p99_ms: float = 0.0
    over_100ms: int = 0

    @classmethod
    def of(cls, lateness: list[float]) -> Stalls:
        if not lateness:
            return cls()
        ordered = sorted(lateness)
        return cls(
            ticks=len(ordered),
            max_ms=round(ordered[-1] * 1000, 1),
            p99_ms=round(ordered[int(len(ordered) * 0.99)] * 1000, 1),
            over_100ms=sum(1 for late in ordered if late > 0.1),
        )


@dataclass
class SessionReport:
    """What the app process did and how it ended.

    Attributes:
        exit_code: the app process's exit status (negative: killed by that signal).
        unexpected_stderr: lines on stderr other than :data:`EXPECTED_STDERR`.
        runs: per integration, the sync run's status and counts (from the app's own run history).
        stalls: the GUI loop's lateness during the syncs.
        sync_seconds: from the click to "No sync running".
        at_quit: the process's state when it quit (frozen objects, collector thresholds, modules loaded).
        seconds: the whole session.
    """

    exit_code: int
    unexpected_stderr: list[str]
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    stalls: Stalls = field(default_factory=Stalls)
    sync_seconds: float = 0.0
    at_quit: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def write_people_csv(path: Path, count: int) -> None:
    """``count`` generated people as a contacts CSV (addresses of their own, so none is one of the demo's)."""
    from crm_desktop.sandbox.data import generate_people

    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["email", "firstName", "lastName", "company"])
        for person in generate_people(count, 4_015):
            local, _, domain = person.email.partition("@")
            writer.writerow([f"{local}+import@{domain}", person.first_name, person.last_name, person.company])


def run_app_session(settings: SessionSettings) -> SessionReport:
    """Run the session in a new app process and report how it went."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    write_people_csv(settings.data_dir / "people.csv", settings.contacts)
    report_path = settings.data_dir / "session-report.json"
    report_path.unlink(missing_ok=True)
    started = time.monotonic()
    child = subprocess.run(
        [sys.executable, "-m", "tests.support.app_session", json.dumps(_to_json(settings))],
        capture_output=True,
        text=True,
        timeout=settings.timeout,
        env=_child_environment(),
        cwd=Path(__file__).resolve().parents[2],
    )
    seconds = time.monotonic() - started
    unexpected = [
        line for line in child.stderr.splitlines() if line.strip() and line.strip() not in EXPECTED_STDERR
    ]
    report = SessionReport(exit_code=child.returncode, unexpected_stderr=unexpected, seconds=round(seconds, 1))
    if report_path.exists():
        facts = json.loads(report_path.read_text(encoding="utf-8"))
        report.runs = facts["runs"]
        report.stalls = Stalls(**facts["stalls"])
        report.sync_seconds = facts["sync_seconds"]
        report.at_quit = facts["at_quit"]
    return report


def _to_json(settings: SessionSettings) -> dict[str, Any]:
    data = asdict(settings)
    data["data_dir"] = str(settings.data_dir)
    return data


def _child_environment() -> dict[str, str]:
    environment = dict(os.environ)
    environment["QT_QPA_PLATFORM"] = "offscreen"
    return environment


# -- the app process ---------------------------------------------------------------------------------------------


class _Session:
    """The user's actions, played from Qt timers on the app's own loop."""

    def __init__(self, settings: SessionSettings) -> None:
        self.settings = settings
        self.lateness: list[float] = []
        self.sync_started = 0.0
        self.facts: dict[str, Any] = {}
        self._meter: asyncio.Task[None] | None = None

    def window(self) -> Any:
        from PySide6.QtWidgets import QApplication

        from crm_desktop.ui.main_window import MainWindow

        return next(
            (w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()), None
        )

    def begin(self) -> None:
        from PySide6.QtCore import QTimer

        window = self.window()
        if window is None:
            QTimer.singleShot(50, self.begin)
            return
        demo_dir = self.settings.data_dir / "demo"
        imported = subprocess.run(
            [sys.executable, "-m", "crm_desktop", "--data-dir", str(demo_dir), "contacts", "import",
             str(self.settings.data_dir / "people.csv")],
            capture_output=True, text=True, check=False,
        )
        if imported.returncode != 0:
            sys.stderr.write(f"contacts import failed ({imported.returncode}): {imported.stderr}\n")
            window.quit_action.trigger()
            return
        if self.settings.pipedrive_burst is not None:
            self._set_pipedrive_burst(window, self.settings.pipedrive_burst)
        self._meter = asyncio.ensure_future(self._measure_stalls())
        self.sync_started = time.monotonic()
        window.sync_monitor_panel.sync_all_now()
        QTimer.singleShot(200, self.wait_for_syncs)

    def _set_pipedrive_burst(self, window: Any, burst: int) -> None:
        import httpx

        for integration in window.workspace.integrations.list():
            if integration.provider.value == "pipedrive":
                limits = {"burst_limit": burst, "search_burst_limit": burst}
                answer = httpx.patch(f"{integration.base_url}/__sandbox__/config", json=limits)
                answer.raise_for_status()

    async def _measure_stalls(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = loop.time()
            self.lateness.append(max(0.0, now - last - TICK_SECONDS))
            last = now

    def wait_for_syncs(self) -> None:
        from PySide6.QtCore import QTimer

        window = self.window()
        panel = window.sync_monitor_panel
        if panel.running_integrations or panel.progress_label.text() != panel.IDLE_TEXT:
            QTimer.singleShot(100, self.wait_for_syncs)
            return
        sync_seconds = time.monotonic() - self.sync_started
        if self._meter is not None:
            self._meter.cancel()
        runs = {}
        for run in window.workspace.sync.runs():
            # The sync the session started, not the pushes the social workflows make after it (the demo's feed).
            if run.integration_id is None or run.trigger.value == "auto":
                continue
            name = window.workspace.sync.integration_of_run(run.id).name
            runs.setdefault(name, {"status": run.status.value, "created": run.created, "updated": run.updated,
                                   "failed": run.failed, "total": run.total})
        self.facts = {"runs": runs, "stalls": asdict(Stalls.of(self.lateness)), "sync_seconds": round(sync_seconds, 1)}
        if self.settings.collect_before_quit:
            gc.collect()
        self.facts["at_quit"] = {
            "frozen_objects": gc.get_freeze_count(),
            "gc_threshold": list(gc.get_threshold()),
            "uvloop_loaded": "uvloop" in sys.modules,
            "threads": sorted(thread.name for thread in threading.enumerate()),
            "loop": type(asyncio.get_event_loop()).__module__,
        }
        (self.settings.data_dir / "session-report.json").write_text(json.dumps(self.facts), encoding="utf-8")
        window.quit_action.trigger()


def _main(argv: list[str]) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from crm_desktop.cli import main

    raw = json.loads(argv[0])
    raw["data_dir"] = Path(raw["data_dir"])
    session = _Session(SessionSettings(**raw))
    # The app's entry point uses the QApplication that exists: the session's timers are armed on it first.
    app = QApplication(sys.argv[:1])
    QTimer.singleShot(0, session.begin)
    return main(["--data-dir", str(session.settings.data_dir), "--demo", *app.arguments()[1:]])


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
