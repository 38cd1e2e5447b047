"""The Field Mapping panel: which CRM field each local field goes to, per integration."""

from __future__ import annotations

from crm_desktop.ui.planned_panel import PlannedPanel


class FieldMappingPanel(PlannedPanel):
    """Maps local contact and lead fields to each integration's CRM fields."""

    TITLE = "Field Mapping"
    PURPOSE = (
        "Map each local field (email, name, company, social profiles, followers, sentiment, engagement score) "
        "to a CRM field, per integration, and see which custom fields the CRM still lacks."
    )
