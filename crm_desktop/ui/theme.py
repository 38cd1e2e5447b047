"""The app's look: its icon, the sidebar icons, the light and dark themes (palette and stylesheet), and
following the desktop's light or dark mode.

The stylesheet is written once, in light colours; the dark theme is the same sheet with every colour swapped
for its dark counterpart (:data:`DARK_COLOURS`), so the two never drift apart.
"""

from __future__ import annotations

import logging
import re
import sys
from enum import StrEnum
from typing import TYPE_CHECKING

from PySide6.QtCore import QDir, QObject, Qt, Slot
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from crm_desktop.resources_path import resource_file

if TYPE_CHECKING:
    # QtCharts loads with the first panel that draws a chart, not with the app's start.
    from PySide6.QtCharts import QChart

logger = logging.getLogger(__name__)

APP_ICON = "crm-desktop.svg"
#: The prefix the stylesheet names its images by (``url(crmicons:check.svg)``).
ICONS_SEARCH_PREFIX = "crmicons"


class Theme(StrEnum):
    """The two sets of colours the app draws with."""

    LIGHT = "light"
    DARK = "dark"


#: Each colour of ``style.qss`` and what it becomes in the dark theme (slate greys inverted, accents kept,
#: tinted notices darkened with light text).
DARK_COLOURS = {
    "#ffffff": "#0f172a",
    "#f8fafc": "#172033",
    "#f1f5f9": "#1e293b",
    "#e2e8f0": "#334155",
    "#cbd5e1": "#475569",
    "#94a3b8": "#64748b",
    "#64748b": "#94a3b8",
    "#475569": "#a3b1c6",
    "#334155": "#cbd5e1",
    "#1e293b": "#e2e8f0",
    "#0f172a": "#f8fafc",
    "#dbeafe": "#1e3a8a",
    "#1e3a8a": "#dbeafe",
    "#bfdbfe": "#1d4ed8",
    "#93c5fd": "#1e293b",  # a disabled main button: slate, not a dimmer accent that reads as enabled
    "#eff6ff": "#64748b",
    "#2563eb": "#2563eb",
    "#1d4ed8": "#3b82f6",
    "#fef2f2": "#3b1219",
    "#fff7f7": "#3b1219",
    "#fecaca": "#7f1d1d",
    "#991b1b": "#fca5a5",
    "#dc2626": "#f87171",
    "#f0fdf4": "#052e16",
    "#bbf7d0": "#166534",
    "#166534": "#86efac",
    "#fffbeb": "#3a2a0a",
    "#fde68a": "#92400e",
    "#92400e": "#fcd34d",
    "#b45309": "#fbbf24",
}

#: The colours tables write some of their text in (a run's status, a change's kind, a problem in red), each with what
#: it becomes in the dark theme: the light theme's shades are too dark to read on the dark window (the failed red,
#: the running blue under 3:1), and the stylesheet's dark counterparts of some are background shades.
DARK_TEXT_COLOURS = {
    "#15803d": "#4ade80",
    "#b45309": "#fbbf24",
    "#b91c1c": "#f87171",
    "#1d4ed8": "#60a5fa",
    "#64748b": "#94a3b8",
}

_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}\b")


def icon(file_name: str) -> QIcon:
    """An icon from ``resources/icons`` (an SVG: sharp at any size and device pixel ratio).

    Raises:
        FileNotFoundError: when the icon is not in the resources folder.
    """
    return QIcon(str(resource_file("icons", file_name)))


def app_icon() -> QIcon:
    """The CRM Desktop application icon."""
    return icon(APP_ICON)


def stylesheet(theme: Theme = Theme.LIGHT) -> str:
    """The Qt stylesheet applied to the whole app, in ``theme``'s colours.

    Raises:
        FileNotFoundError: when ``style.qss`` is not in the resources folder.
        KeyError: when ``style.qss`` uses a colour the dark theme has no counterpart for.
    """
    text = resource_file("style.qss").read_text(encoding="utf-8")
    # The sheet's images (``url(crmicons:check.svg)``) are found in the icons folder, wherever it is installed.
    QDir.setSearchPaths(ICONS_SEARCH_PREFIX, [str(resource_file("icons", APP_ICON).parent)])
    if theme is Theme.LIGHT:
        return text
    return _HEX_COLOUR.sub(lambda match: DARK_COLOURS[match.group(0).lower()], text)


def palette(theme: Theme) -> QPalette:
    """The palette for what the stylesheet leaves to the style (menus, scroll bars, check boxes, charts)."""
    dark = theme is Theme.DARK
    colours = {
        QPalette.ColorRole.Window: "#0f172a" if dark else "#ffffff",
        QPalette.ColorRole.WindowText: "#e2e8f0" if dark else "#1e293b",
        QPalette.ColorRole.Base: "#0f172a" if dark else "#ffffff",
        QPalette.ColorRole.AlternateBase: "#172033" if dark else "#f8fafc",
        QPalette.ColorRole.Text: "#e2e8f0" if dark else "#1e293b",
        QPalette.ColorRole.PlaceholderText: "#94a3b8" if dark else "#64748b",
        QPalette.ColorRole.Button: "#1e293b" if dark else "#f8fafc",
        QPalette.ColorRole.ButtonText: "#e2e8f0" if dark else "#1e293b",
        QPalette.ColorRole.BrightText: "#ffffff",
        QPalette.ColorRole.Highlight: "#1d4ed8" if dark else "#bfdbfe",
        QPalette.ColorRole.HighlightedText: "#f8fafc" if dark else "#0f172a",
        QPalette.ColorRole.ToolTipBase: "#1e293b" if dark else "#ffffff",
        QPalette.ColorRole.ToolTipText: "#e2e8f0" if dark else "#1e293b",
        QPalette.ColorRole.Link: "#60a5fa" if dark else "#1d4ed8",
        QPalette.ColorRole.LinkVisited: "#a78bfa" if dark else "#6d28d9",
        QPalette.ColorRole.Light: "#475569" if dark else "#ffffff",
        QPalette.ColorRole.Midlight: "#334155" if dark else "#f1f5f9",
        QPalette.ColorRole.Mid: "#475569" if dark else "#cbd5e1",
        QPalette.ColorRole.Dark: "#020617" if dark else "#94a3b8",
        QPalette.ColorRole.Shadow: "#000000" if dark else "#64748b",
    }
    result = QPalette()
    for role, colour in colours.items():
        result.setColor(role, QColor(colour))
    for role, colour in ((QPalette.ColorRole.WindowText, "#64748b"), (QPalette.ColorRole.Text, "#64748b"),
                         (QPalette.ColorRole.ButtonText, "#64748b")):
        result.setColor(QPalette.ColorGroup.Disabled, role, QColor(colour))
    return result


def system_theme() -> Theme:
    """The desktop's light or dark mode (light when the platform does not say)."""
    scheme = QGuiApplication.styleHints().colorScheme()
    return Theme.DARK if scheme == Qt.ColorScheme.Dark else Theme.LIGHT


def resolve_theme(choice: str, scheme: Qt.ColorScheme | None = None) -> Theme:
    """The theme for a preference: ``light``, ``dark``, or ``system`` (``scheme`` when the desktop just reported
    it, else the desktop's mode now)."""
    if choice == Theme.DARK.value:
        return Theme.DARK
    if choice == Theme.LIGHT.value:
        return Theme.LIGHT
    if scheme is not None:
        return Theme.DARK if scheme == Qt.ColorScheme.Dark else Theme.LIGHT
    return system_theme()


def style_chart(chart: QChart, theme: Theme) -> None:
    """Draw a chart in the theme: Qt's light or dark chart theme on the window's own background.

    The chart theme also colours the series and axes a panel adds later.
    """
    from PySide6.QtCharts import QChart

    dark = theme is Theme.DARK
    chart.setTheme(QChart.ChartTheme.ChartThemeDark if dark else QChart.ChartTheme.ChartThemeLight)
    chart.setBackgroundBrush(QColor("#0f172a" if dark else "#ffffff"))


def apply_theme(app: QApplication, theme: Theme) -> None:
    """Dress the whole app in ``theme``: the palette, the stylesheet in its colours, and every chart shown now.

    Charts are drawn, not styled: a panel that makes a chart later dresses it with :func:`style_chart` and
    :func:`current_theme`.
    """
    app.setPalette(palette(theme))
    app.setStyleSheet(stylesheet(theme))
    app.setProperty("crmTheme", theme.value)
    charts = sys.modules.get("PySide6.QtCharts")  # not imported yet: no chart exists to dress
    if charts is not None:
        for widget in app.allWidgets():
            if isinstance(widget, charts.QChartView):
                style_chart(widget.chart(), theme)
    logger.info("%s theme applied", theme.value)


def current_theme(app: QApplication | None = None) -> Theme:
    """The theme :func:`apply_theme` last applied (light until then)."""
    instance = app or QApplication.instance()
    value = instance.property("crmTheme") if instance is not None else None
    return Theme(value) if value in (Theme.LIGHT.value, Theme.DARK.value) else Theme.LIGHT


def text_colour(light: str) -> QColor:
    """A table's text colour (one of :data:`DARK_TEXT_COLOURS`, as the light theme writes it) in the theme applied
    now: asked for when a cell is drawn, so a table follows a switch of theme at its next paint.

    Raises:
        KeyError: for a colour the dark theme has no counterpart for.
    """
    dark = DARK_TEXT_COLOURS[light.lower()]
    return QColor(dark if current_theme() is Theme.DARK else light)


class SystemThemeFollower(QObject):
    """Dresses the app in the theme Settings chose and, while that choice is "system", follows the desktop
    switching between light and dark (``QStyleHints.colorSchemeChanged``) at once; a light or dark choice
    overrides the desktop, so its switches are ignored.

    Attributes:
        choice: the preference followed: ``system``, ``light`` or ``dark``.
    """

    def __init__(self, app: QApplication, choice: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._app = app
        self.choice = choice
        app.styleHints().colorSchemeChanged.connect(self.system_scheme_changed)

    def set_choice(self, choice: str) -> Theme:
        """Follow ``choice`` from now on (Settings saved) and apply the theme it means now."""
        self.choice = choice
        theme = resolve_theme(choice)
        apply_theme(self._app, theme)
        return theme

    @Slot(Qt.ColorScheme)
    def system_scheme_changed(self, scheme: Qt.ColorScheme) -> Theme | None:
        """The desktop switched to ``scheme``: apply its theme, unless Settings override the desktop (``None``)."""
        if self.choice in (Theme.LIGHT.value, Theme.DARK.value):
            return None
        theme = resolve_theme(self.choice, scheme)
        if theme is not current_theme(self._app):
            apply_theme(self._app, theme)
        return theme
