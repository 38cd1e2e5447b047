"""Issue 12 §7 benchmark: does the window stay responsive while a script posts a large batch to the local API?

The local API is served on the window's own event loop. This opens the demo workspace (three sandbox CRMs in a child
process, each answering every request after ``--latency-ms``) in the main window on the People panel, starts the
local API as the app does, and posts ``--rows`` contacts in one request to
``/api/crm/integrations/{id}/contacts/batch-sync`` from a process of its own, as a marketer's script would. A QTimer
heartbeat every ``HEARTBEAT_MS`` measures how late each tick fires while the request is handled: that lateness is a
stall of the window (p50, p99, max), reported with the request's own time, the rows created, and the full garbage
collections the window's process made meanwhile.

Run from the repository root (Qt offscreen)::

    QT_QPA_PLATFORM=offscreen python -m bench.api_batch_stall                 # 10,000 contacts to HubSpot
    QT_QPA_PLATFORM=offscreen python -m bench.api_batch_stall --rows 2000     # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.ui_responsiveness import HEARTBEAT_MS, percentile

#: The script that posts the batch (argv: the URL, the body's file; the token in ``BATCH_TOKEN``).
SCRIPT = """
import json, os, sys
import httpx
headers = {"Authorization": "Bearer " + os.environ["BATCH_TOKEN"], "Content-Type": "application/json"}
answer = httpx.post(sys.argv[1], content=open(sys.argv[2], "rb").read(), headers=headers, timeout=3600.0)
print(json.dumps([answer.status_code, answer.json()]))
"""


def contact_rows(count: int) -> list[dict[str, Any]]:
    """``count`` contacts in the API's Contact shape, each with a social profile."""
    return [
        {"email": f"script{n}@example.com", "first_name": f"Sam{n}", "last_name": "Script", "company": "Acme",
         "phone": f"+1415555{n % 10_000:04d}", "social_profiles": [{"platform": "twitter", "username": f"sam{n}",
                                                        "followers": n}]}
        for n in range(count)
    ]


def api_batch_stalls(rows: int, latency_ms: float, integration_name: str, directory: Path) -> dict[str, Any]:
    """Stalls of the window's event loop while the local API handles one batch-sync request of ``rows`` contacts."""
    import qasync
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from crm_desktop.api.server import LocalApiServer
    from crm_desktop.app.demo import start_demo
    from crm_desktop.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    demo = start_demo(directory, local_contacts=100, crm_contacts=30, latency_ms=latency_ms)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    window = MainWindow(demo.workspace)
    window.resize(1280, 800)
    window.show()
    window.sidebar.setCurrentRow(next(i for i, entry in enumerate(window.panels) if entry.title == "People"))
    window.scheduler.stop()
    integration = demo.workspace.integrations.get(integration_name)
    body = contact_rows(rows)
    stalls: list[float] = []
    clock = QElapsedTimer()
    heartbeat = QTimer()
    heartbeat.setInterval(HEARTBEAT_MS)

    def beat() -> None:
        stalls.append(max(0.0, clock.nsecsElapsed() / 1e6 - HEARTBEAT_MS))
        clock.restart()

    heartbeat.timeout.connect(beat)
    collections: list[float] = []
    collection_started = [0.0]

    def timed_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collection_started[0] = time.perf_counter()
        elif info["generation"] == 2 and heartbeat.isActive():
            collections.append((time.perf_counter() - collection_started[0]) * 1000)

    gc.callbacks.append(timed_collection)

    body_file = directory / "batch.json"
    body_file.write_text(json.dumps(body))

    async def post(url: str, token: str) -> tuple[int, dict[str, Any], float]:
        """Post the batch as a script would: from a process of its own, so that none of its work is the window's."""
        started = time.perf_counter()
        # A thread waits for the script (qasync's loop runs no subprocess pipes); waiting holds no interpreter lock.
        script = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", SCRIPT, f"{url}/api/crm/integrations/{integration.id}/contacts/batch-sync",
             str(body_file)],
            capture_output=True, text=True, env={**os.environ, "BATCH_TOKEN": token}, check=False,
        )
        if script.returncode != 0:
            raise RuntimeError(f"the posting script failed: {script.stderr[-2000:]}")
        status, answer = json.loads(script.stdout)
        return status, answer, time.perf_counter() - started

    async def measure() -> tuple[int, dict[str, Any], float]:
        server = LocalApiServer(demo.workspace, 0)
        url = await server.start()
        try:
            await asyncio.sleep(0.5)  # the window painted and settled
            clock.start()
            heartbeat.start()
            result = await post(url, server.tokens.current())
            heartbeat.stop()
            return result
        finally:
            await server.stop()

    try:
        status, answer, seconds = loop.run_until_complete(measure())
    finally:
        window.close()
        loop.run_until_complete(asyncio.sleep(0.1))
        demo.stop()
        loop.close()
    summary = answer.get("summary", {}) if isinstance(answer, dict) else {}
    return {
        "rows": rows,
        "integration": integration_name,
        "latencyMs": latency_ms,
        "status": status,
        "requestSeconds": round(seconds, 1),
        "created": summary.get("created"),
        "failed": summary.get("failed"),
        "invalid": summary.get("invalid"),
        "heartbeats": len(stalls),
        "stallP50Ms": round(percentile(stalls, 0.50), 1),
        "stallP99Ms": round(percentile(stalls, 0.99), 1),
        "stallMaxMs": round(max(stalls, default=0.0), 1),
        "stallsOver100Ms": sum(1 for s in stalls if s > 100),
        # Full collections in the window's process while the request was handled, and the longest (ms).
        "fullCollections": len(collections),
        "fullCollectionMaxMs": round(max(collections, default=0.0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="contacts in the one request (the API takes 10,000)")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="each sandbox's answer time")
    parser.add_argument("--integration", default="HubSpot (demo)", help="the demo integration posted to")
    args = parser.parse_args()
    report: dict[str, Any] = {"host": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                       "loadAverage": [round(v, 2) for v in os.getloadavg()]}}
    with tempfile.TemporaryDirectory() as directory:
        report["batch"] = api_batch_stalls(args.rows, args.latency_ms, args.integration, Path(directory))
    report["host"]["loadAverageAfter"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
