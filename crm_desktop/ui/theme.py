"""The app's look: its icon, the sidebar icons and the light stylesheet, read from the resources folder."""

from __future__ import annotations

import logging

from PySide6.QtGui import QIcon

from crm_desktop.resources_path import resource_file

logger = logging.getLogger(__name__)

APP_ICON = "crm-desktop.svg"


def icon(file_name: str) -> QIcon:
    """An icon from ``resources/icons`` (an SVG scales to any size).

    Raises:
        FileNotFoundError: when the icon is not in the resources folder.
    """
    return QIcon(str(resource_file("icons", file_name)))


def app_icon() -> QIcon:
    """The CRM Desktop application icon."""
    return icon(APP_ICON)


def stylesheet() -> str:
    """The Qt stylesheet applied to the whole app.

    Raises:
        FileNotFoundError: when ``style.qss`` is not in the resources folder.
    """
    return resource_file("style.qss").read_text(encoding="utf-8")
