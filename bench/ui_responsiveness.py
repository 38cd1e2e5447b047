"""Issue 12 §7 benchmark: does the window stay responsive while it syncs, how fast does it open, how much memory.

- sync stalls: the demo workspace (three sandbox CRMs in a child process, each answering every request after
  ``--latency-ms``) with ``--contacts`` local contacts, the main window open on the People panel, and "Sync all now"
  clicked. A QTimer heartbeat every ``HEARTBEAT_MS`` measures how late each tick fires: that lateness is a stall of
  the event loop (the time the window could not draw or take a click). p50, p99 and max over the whole sync.
  Full runs go to the sync process, as in the app; ``--thread`` runs them on the sync worker thread of the window's
  process instead, and ``--inline`` on the GUI's own loop (no sync worker), for comparison.
- cold start: a fresh process from its start to the first paint of the main window on an empty workspace, its
  compiled modules cached by a first start as an installed app's are (``--no-bytecode-cache`` to compile every time).
- people at scale: ``bench.people_scale`` on ``--people`` contacts in a child process (open, drag to the end).
- peak RSS of each process (the window's, and the sync process's while it runs).

Run from the repository root (Qt offscreen)::

    QT_QPA_PLATFORM=offscreen python -m bench.ui_responsiveness                       # everything
    QT_QPA_PLATFORM=offscreen python -m bench.ui_responsiveness --skip-people --contacts 2000   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
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

#: How often the heartbeat ticks; each tick's lateness beyond this is a stall.
HEARTBEAT_MS = 10


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def sync_stalls(contacts: int, latency_ms: float, mode: str, directory: Path,
                max_seconds: float, freeze: bool = False) -> dict[str, Any]:
    """Stalls of the GUI's event loop during "Sync all now" of the three sandboxes (see the module docstring)."""
    import qasync
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from crm_desktop.app.demo import start_demo
    from crm_desktop.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    filled = time.perf_counter()
    demo = start_demo(directory, local_contacts=contacts, crm_contacts=30, latency_ms=latency_ms)
    fill_seconds = time.perf_counter() - filled
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    window = MainWindow(demo.workspace)
    if mode != "process":
        demo.workspace.sync.run_in_process(None)  # full runs on the sync worker thread
    if mode == "inline":
        demo.workspace.sync.close()  # no worker: runs go back to the GUI's loop
    window.resize(1280, 800)
    window.show()
    people_row = next(i for i, entry in enumerate(window.panels) if entry.title == "People")
    window.sidebar.setCurrentRow(people_row)
    window.scheduler.stop()
    if freeze:
        gc.freeze()  # what the window loaded stays out of later full collections
    collections: list[tuple[int, float]] = []
    collection_started = [0.0]

    def timed_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collection_started[0] = time.perf_counter()
        elif info["generation"] == 2:
            collections.append((2, (time.perf_counter() - collection_started[0]) * 1000))

    gc.callbacks.append(timed_collection)

    stalls: list[float] = []
    clock = QElapsedTimer()
    heartbeat = QTimer()
    heartbeat.setInterval(HEARTBEAT_MS)

    long_stalls: list[dict[str, Any]] = []
    began = [0.0]

    def beat() -> None:
        stall = max(0.0, clock.nsecsElapsed() / 1e6 - HEARTBEAT_MS)
        stalls.append(stall)
        if stall > 100:
            long_stalls.append({"atSeconds": round(time.perf_counter() - began[0], 1), "ms": round(stall),
                                "progress": window.sync_monitor_panel.progress_label.text()[:160]})
        clock.restart()

    heartbeat.timeout.connect(beat)

    async def sync_all() -> float:
        await asyncio.sleep(0.5)  # the window painted and settled
        clock.start()
        heartbeat.start()
        started = began[0] = time.perf_counter()
        panel = window.sync_monitor_panel
        # "Sync all now" without its dry-run preview (sync_all_now where the panel offers the preview first).
        start_all: Any = getattr(panel, "sync_all_now", panel.sync_all)
        tasks: list[asyncio.Task[Any]] = list(start_all())
        _, unfinished = await asyncio.wait(tasks, timeout=max_seconds)
        elapsed = time.perf_counter() - started
        heartbeat.stop()
        capped.extend(t.get_name() for t in unfinished)
        if unfinished:  # the syncs still running, and the runs they wait on, stop as at the app's exit
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
            for task in others:
                task.cancel()
            await asyncio.wait(others, timeout=10)
        return elapsed

    capped: list[str] = []
    sync_process_peak: float | None = None
    try:
        seconds = loop.run_until_complete(sync_all())
        process = demo.workspace.sync.sync_process
        sync_process_peak = peak_rss_of(process.pid) if process is not None and process.pid else None
        runs = [
            {"integration": name, "status": run.status.value, "created": run.created, "updated": run.updated,
             "failed": run.failed, "apiCalls": run.api_calls}
            for name in (i.name for i in demo.workspace.integrations.list())
            for run in demo.workspace.sync.runs(name, limit=1)
        ]
    finally:
        window.close()
        loop.run_until_complete(asyncio.sleep(0.1))
        demo.stop()
        loop.close()
    return {
        "mode": {"inline": "inline (GUI loop)", "thread": "sync worker thread"}.get(mode, "sync process"),
        "contacts": contacts,
        "latencyMs": latency_ms,
        "fillSeconds": round(fill_seconds, 1),
        "syncSeconds": round(seconds, 1),
        "stoppedAtCap": capped,
        "gcFrozen": freeze,
        "fullCollections": len(collections),
        "fullCollectionMaxMs": round(max((ms for _, ms in collections), default=0.0)),
        "fullCollectionsOver100Ms": sum(1 for _, ms in collections if ms > 100),
        "stallsOver100Ms": long_stalls[:40],
        "runs": runs,
        "heartbeats": len(stalls),
        "stallP50Ms": round(percentile(stalls, 0.50), 1),
        "stallP99Ms": round(percentile(stalls, 0.99), 1),
        "stallMaxMs": round(max(stalls, default=0.0), 1),
        "syncProcessPeakRssMb": sync_process_peak,
        "stallMeanMs": round(statistics.fmean(stalls), 2) if stalls else 0.0,
        "peakRssMb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def cold_start_child(data_dir: str) -> None:
    """In a fresh process: import, open the workspace, show the window as ``run_gui`` does (named app, theme), print
    the wall time of its first paint."""
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QApplication

    from crm_desktop.app.workspace import Workspace
    from crm_desktop.ui.app import apply_preferred_theme, configure_application
    from crm_desktop.ui.main_window import MainWindow

    app = QApplication([])
    configure_application(app)
    workspace = Workspace.open(data_dir)
    apply_preferred_theme(app, workspace)
    window = MainWindow(workspace)

    class FirstPaint(QObject):
        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint:
                usage = resource.getrusage(resource.RUSAGE_SELF)
                print(json.dumps({"paintedAt": time.time(), "cpuSeconds": usage.ru_utime + usage.ru_stime,
                                  "peakRssMb": usage.ru_maxrss / 1024}))
                sys.stdout.flush()
                app.quit()
            return False

    watcher = FirstPaint()
    window.installEventFilter(watcher)
    window.show()
    app.exec()
    window.close()
    workspace.close()


def cold_start(directory: Path, tries: int, bytecode: bool = True) -> dict[str, Any]:
    """Seconds from a fresh process's start to the first paint of its window (an empty workspace, migrated once).

    With ``bytecode`` the children may cache compiled modules (in a folder of ``directory``, whatever
    ``PYTHONDONTWRITEBYTECODE`` says), as an installed app has them; without, every start compiles the app's sources.
    """
    data_dir = directory / "cold"
    # The window's remembered state (its panel: Integrations on a first start) in a folder of its own, not the user's.
    env = {**os.environ, "CRM_DESKTOP_API_PORT": "off", "XDG_CONFIG_HOME": str(directory / "config")}
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(directory / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    seconds: list[float] = []
    cpu: list[float] = []  # the process's own CPU time to its first paint: what other load on the host barely moves
    rss = 0.0
    for attempt in range(tries + 1):
        started = time.time()
        out = subprocess.run(
            [sys.executable, "-m", "bench.ui_responsiveness", "--cold-start-child", str(data_dir)],
            capture_output=True, text=True, check=True, env=env,
        )
        line = json.loads(out.stdout.strip().splitlines()[-1])
        if attempt:  # the first start creates and migrates the database: a first run ever, not a cold start
            seconds.append(line["paintedAt"] - started)
            cpu.append(line["cpuSeconds"])
            rss = max(rss, line["peakRssMb"])
    return {"tries": tries, "bytecodeCached": bytecode, "firstPaintSeconds": [round(s, 2) for s in seconds],
            "median": round(statistics.median(seconds), 2) if seconds else None,
            "cpuSeconds": [round(s, 2) for s in cpu], "cpuMedian": round(statistics.median(cpu), 2) if cpu else None,
            "peakRssMb": round(rss, 1)}


def people_scale(count: int) -> dict[str, Any]:
    """``bench.people_scale`` in a child process (its own peak RSS)."""
    out = subprocess.run([sys.executable, "-m", "bench.people_scale", "--count", str(count)],
                         capture_output=True, text=True, check=False)
    if out.returncode:
        return {"failed": out.stderr.strip().splitlines()[-1:] or [f"exit status {out.returncode}"]}
    result: dict[str, Any] = json.loads(out.stdout)
    result["childPeakRssMb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    return result


def peak_rss_of(pid: int) -> float | None:
    """A running process's peak RSS in MB (Linux's ``VmHWM``), or ``None`` where it cannot be read."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10_000, help="local contacts synced")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="each sandbox's answer time")
    parser.add_argument("--inline", action="store_true", help="sync on the GUI's loop (no worker), to compare")
    parser.add_argument("--thread", action="store_true",
                        help="full runs on the sync worker thread of the window's process (no sync process)")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() once the window is open")
    parser.add_argument("--max-seconds", type=float, default=3600.0,
                        help="stop measuring (and cancel the syncs still running) after this long")
    parser.add_argument("--people", type=int, default=1_000_000, help="contacts for the People panel at scale")
    parser.add_argument("--skip-people", action="store_true")
    parser.add_argument("--skip-sync", action="store_true")
    parser.add_argument("--cold-starts", type=int, default=5)
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="cold starts compile the app's sources every time (no __pycache__), to compare")
    parser.add_argument("--cold-start-child", metavar="DATA_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_start_child:
        cold_start_child(args.cold_start_child)
        return
    report: dict[str, Any] = {"host": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                       "loadAverage": [round(v, 2) for v in os.getloadavg()]}}
    with tempfile.TemporaryDirectory() as directory:
        if not args.skip_sync:
            mode = "inline" if args.inline else "thread" if args.thread else "process"
            report["sync"] = sync_stalls(args.contacts, args.latency_ms, mode, Path(directory),
                                         args.max_seconds, args.gc_freeze)
            print(json.dumps({"sync": report["sync"]}), file=sys.stderr, flush=True)  # kept if a later part fails
        report["coldStart"] = cold_start(Path(directory), args.cold_starts, not args.no_bytecode_cache)
        print(json.dumps({"coldStart": report["coldStart"]}), file=sys.stderr, flush=True)
        if not args.skip_people:
            report["people"] = people_scale(args.people)
    report["host"]["loadAverageAfter"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
