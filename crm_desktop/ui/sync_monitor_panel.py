"""The Sync Monitor panel: every sync run with its outcome, counts and errors."""

from __future__ import annotations

from crm_desktop.ui.planned_panel import PlannedPanel


class SyncMonitorPanel(PlannedPanel):
    """Shows each sync run: trigger, status, created/updated/unchanged/failed counts and grouped errors."""

    TITLE = "Sync Monitor"
    PURPOSE = (
        "Every sync run per integration: when and why it ran, how many records were created, updated, "
        "unchanged or failed, the API budget left, and errors grouped by cause."
    )
