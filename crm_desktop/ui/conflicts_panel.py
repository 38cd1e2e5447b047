"""The Conflicts panel: records changed both here and in the CRM, waiting for a decision."""

from __future__ import annotations

from crm_desktop.ui.planned_panel import PlannedPanel


class ConflictsPanel(PlannedPanel):
    """Lists records that changed on both sides since the last sync, to keep one version or merge them."""

    TITLE = "Conflicts"
    PURPOSE = (
        "Records changed both here and in the CRM since the last sync, shown side by side, so you can keep "
        "the local version, keep the CRM's, or merge them field by field."
    )
