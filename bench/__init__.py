"""Benchmarks, run by hand; results go to docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from typing import Any


def measured_here() -> dict[str, Any]:
    """Where and when a figure was taken, for its report: the load average, the time and the machine."""
    return {
        "loadAverage": round(os.getloadavg()[0], 1),
        "measuredAt": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
