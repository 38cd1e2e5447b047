"""The desktop's workspace preferences: local API, background syncing, notifications, theme, attribution model,
how long the run history is kept.

They are stored in the workspace's database (so every desktop on a shared database sees the same), never a
secret: the API token stays in the keyring (``api_access``) and the scoring weights in ``SocialService``.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crm_desktop.domain.social import AttributionModel
from crm_desktop.store.settings import WorkspaceSettingsStore

logger = logging.getLogger(__name__)

#: The workspace setting holding :class:`DeskPreferences`.
PREFERENCES_SETTING = "desk.preferences"
#: The local API's port unless the marketer picks another.
DEFAULT_API_PORT = 8765


class ThemeChoice(StrEnum):
    """The app's colours: the system's light or dark mode, or one of them whatever the system says."""

    SYSTEM = "system"
    LIGHT = "light"
    DARK = "dark"


class HistoryRetention(StrEnum):
    """How long the run history (runs, their record logs and field changes) is kept: forever, or some months."""

    FOREVER = "forever"
    MONTHS_12 = "12-months"
    MONTHS_6 = "6-months"
    MONTHS_3 = "3-months"
    MONTH_1 = "1-month"

    @property
    def months(self) -> int | None:
        """The months kept; ``None``: forever."""
        return None if self is HistoryRetention.FOREVER else int(self.value.split("-")[0])


class DeskPreferences(BaseModel):
    """What the Settings dialog edits (per workspace).

    Attributes:
        local_api_enabled: serve the local API while the app is open.
        local_api_port: the port it listens on (127.0.0.1 only).
        auto_sync: run the integrations' scheduled syncs in the background ("Pause auto-sync" turns it off).
        keep_in_tray: closing the window keeps the app in the system tray while auto-sync is on.
        notifications: show desktop notifications for alerts (the Alerts view lists them either way).
        theme: light, dark, or the system's.
        attribution_model: the model the Attribution panel opens with.
        history_retention: how long runs are kept (older ones are deleted with their record log and field changes,
            and can no longer be undone); forever unless the marketer chooses.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    local_api_enabled: bool = True
    local_api_port: Annotated[int, Field(ge=1024, le=65535)] = DEFAULT_API_PORT
    auto_sync: bool = True
    keep_in_tray: bool = True
    notifications: bool = True
    theme: ThemeChoice = ThemeChoice.SYSTEM
    attribution_model: AttributionModel = AttributionModel.LINEAR
    history_retention: HistoryRetention = HistoryRetention.FOREVER


class PreferencesService:
    """Reads and writes the workspace's :class:`DeskPreferences`."""

    def __init__(self, store: WorkspaceSettingsStore) -> None:
        self.store = store

    def get(self) -> DeskPreferences:
        """The saved preferences (defaults for what was never saved, or what a newer version saved unreadably)."""
        stored = self.store.get(PREFERENCES_SETTING)
        if not stored:
            return DeskPreferences()
        try:
            return DeskPreferences.model_validate(stored)
        except ValidationError as exc:
            logger.warning("stored desktop preferences are unreadable; using the defaults: %s",
                           "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
            return DeskPreferences()

    def save(self, preferences: DeskPreferences) -> DeskPreferences:
        """Save every preference at once."""
        self.store.put(PREFERENCES_SETTING, preferences.model_dump(mode="json"))
        logger.info("desktop preferences saved")
        return preferences

    def update(self, **changes: object) -> DeskPreferences:
        """Change some preferences, keeping the others.

        Raises:
            ValueError: when a value is refused (the message names the setting and why).
        """
        try:
            changed = DeskPreferences.model_validate({**self.get().model_dump(), **changes})
        except ValidationError as exc:
            raise ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
        return self.save(changed)
