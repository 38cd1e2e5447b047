"""Settings: local API, background syncing and schedules, engagement scoring, attribution, notifications, theme, how
long the run history is kept.

Everything here is stored in the workspace's database (the API token in the OS keyring); only the window's own
state (size, panel, docks) lives in QSettings. Nothing is saved until Save, and nothing at all when one value is
refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QGuiApplication, QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from crm_desktop.app.api_access import ApiTokens
from crm_desktop.app.api_port import PORT_ENV, port_env_set, port_from_env
from crm_desktop.app.errors import InvalidRecordError, NotFoundError, VaultError
from crm_desktop.app.history_retention import RETENTION_MEANING
from crm_desktop.app.preferences import DeskPreferences, HistoryRetention, ThemeChoice
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Integration
from crm_desktop.domain.social import DEFAULT_WEIGHTS, AttributionModel, ScoringSettings
from crm_desktop.listening import cannot_listen
from crm_desktop.ui.widgets import AsksFirst, choice_combo
from crm_desktop.ui.wording import MODEL_NAMES

logger = logging.getLogger(__name__)

THEME_NAMES = {
    ThemeChoice.SYSTEM: "Follow the system (light or dark)",
    ThemeChoice.LIGHT: "Light",
    ThemeChoice.DARK: "Dark",
}
RETENTION_NAMES = {
    HistoryRetention.FOREVER: "Forever",
    HistoryRetention.MONTHS_12: "12 months",
    HistoryRetention.MONTHS_6: "6 months",
    HistoryRetention.MONTHS_3: "3 months",
    HistoryRetention.MONTH_1: "1 month",
}
#: The scoring weights as the marketer knows the interactions.
INTERACTION_NAMES = {
    "post_view": "Post view",
    "view": "Profile or page view",
    "click": "Click",
    "like": "Like",
    "comment": "Comment",
    "share": "Share",
    "dm": "Direct message",
    "mention": "Mention",
    "follow": "Follow",
    "form_submit": "Form submitted",
    "conversion": "Conversion",
    "inbound_message": "Message received",
    "outbound_message": "Message sent",
}
#: Schedule limits, as the integrations' own settings take them (minutes).
MIN_INTERVAL, MAX_INTERVAL = 5, 10080


class TypedNumber(QObject):
    """What the marketer last typed into a spin box, while the box has not taken it.

    A spin box given a number out of its range ("80" for a port) keeps its old value and shows it again when the
    keyboard leaves it: Save would quietly keep the old value. Save asks this for the refused text instead.

    Attributes:
        box: the spin box watched (its parent).
        typed: the text typed since the box last took a value, or ``None``.
    """

    def __init__(self, box: QSpinBox | QDoubleSpinBox) -> None:
        super().__init__(box)
        self.box = box
        self.typed: str | None = None
        editor = box.findChild(QLineEdit)
        if editor is not None:
            editor.textEdited.connect(self._edited)
        box.valueChanged.connect(self._taken)

    def _edited(self, text: str) -> None:
        self.typed = text

    def _taken(self, _value: float) -> None:
        self.typed = None  # typed in range, stepped with the arrows, or set by the dialog

    def refusal(self) -> str | None:
        """Why what was typed cannot be saved (naming the field and the range), or ``None`` when it can."""
        box = self.box
        if self.typed is None or box.validate(self.typed, 0)[0] == QValidator.State.Acceptable:
            return None
        text = self.typed.removeprefix(box.prefix()).removesuffix(box.suffix()).strip()
        unit = box.suffix().strip()
        if isinstance(box, QSpinBox):
            lowest, highest = box.textFromValue(box.minimum()), box.textFromValue(box.maximum())
        else:  # the same, for a box of decimals (one branch each, for the type checker)
            lowest, highest = box.textFromValue(box.minimum()), box.textFromValue(box.maximum())
        return (f"{box.accessibleName()}: {f'{text} is out of range' if text else 'no number given'}: type a "
                f"number from {lowest} to {highest}{f' ({unit})' if unit else ''}.")


@dataclass
class ScheduleRow:
    """One integration's schedule controls."""

    integration: Integration
    auto_sync: QCheckBox
    sync_interval: QSpinBox
    push_new_interval: QSpinBox


def minutes_box(value: int, name: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(MIN_INTERVAL, MAX_INTERVAL)
    box.setSuffix(" min")
    box.setValue(value)
    box.setAccessibleName(name)
    return box


def half_life_box(days: float, name: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(0.5, 3650.0)
    box.setDecimals(1)
    box.setSuffix(" days")
    box.setValue(days)
    box.setAccessibleName(name)
    return box


def hinted_grid_tab(hint: str) -> tuple[QWidget, QVBoxLayout, QGridLayout]:
    """A tab that starts with a hint sentence over a grid of settings (the caller fills the grid)."""
    page = QWidget()
    layout = QVBoxLayout(page)
    label = QLabel(hint)
    label.setObjectName("dialogHint")
    label.setWordWrap(True)
    layout.addWidget(label)
    grid = QGridLayout()
    grid.setHorizontalSpacing(16)
    layout.addLayout(grid)
    return page, layout, grid


def env_port_note(preferences: DeskPreferences) -> str:
    """What Settings > Local API says when CRM_DESKTOP_API_PORT sets the port (it wins over these settings)."""
    port = port_from_env()
    if port is None:
        used = "turns the local API off"
    elif port == 0:
        used = "sets the port: the local API listens on a free port the app picks"
    else:
        used = f"sets the port: the local API listens on port {port}"
    stored = f"port {preferences.local_api_port}" if preferences.local_api_enabled else "the API off"
    return (f"{PORT_ENV} is set and {used}, whatever these settings say. The settings here ({stored}) apply "
            "when the variable is unset.")


class SettingsDialog(QDialog, AsksFirst):
    """The workspace's settings in tabs: General, Schedules, Local API, Scoring.

    Attributes:
        tabs: the tabs.
        auto_sync_box, tray_box, notifications_box, theme_combo, model_combo: General.
        retention_combo, retention_note: how long the run history is kept, and what a limit means (General).
        preview_box: whether "Sync all now" shows its dry-run preview first (the Sync Monitor's "Preview first").
        network_button: opens Settings > Network (proxy and certificates).
        schedules: one row of controls per integration.
        api_enabled_box, api_port_box, api_env_note, token_edit, copy_token_button, rotate_token_button: Local API.
        weight_boxes, half_life_box, attribution_half_life_box: Scoring.
        error_label: why the last save was refused.
        typed_numbers: what was typed into each number box, to refuse a number out of range on Save.
        confirm_box: the "rotate the token?" question while it is open.

    Signals:
        saved(object): the :class:`DeskPreferences` just saved.
        scoring_changed(): the saved scoring settings change the engagement scores (they are to be recomputed).
        network_requested(): Settings > Network was asked for.
    """

    saved = Signal(object)
    scoring_changed = Signal()
    network_requested = Signal()

    def __init__(self, workspace: Workspace, *, tray_available: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.tokens = ApiTokens(workspace.vault)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(620)
        preferences = workspace.preferences.get()
        scoring = workspace.social.scoring_settings()

        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Settings sections")
        self.tabs.addTab(self._general_tab(preferences, tray_available), "General")
        self.tabs.addTab(self._schedules_tab(), "Schedules")
        self.api_page = self._api_tab(preferences)
        self.tabs.addTab(self.api_page, "Local API")
        self.tabs.addTab(self._scoring_tab(scoring), "Scoring")

        self.error_label = QLabel()
        self.error_label.setObjectName("dialogError")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        self.save_button.setAccessibleName("Save settings")
        buttons.button(QDialogButtonBox.StandardButton.Cancel).setAccessibleName("Cancel")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

        self.typed_numbers = [TypedNumber(box) for box in self.tabs.findChildren(QAbstractSpinBox)
                              if isinstance(box, QSpinBox | QDoubleSpinBox)]

        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)

    # -- tabs

    def _general_tab(self, preferences: DeskPreferences, tray_available: bool) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.auto_sync_box = QCheckBox("Run scheduled syncs in the background")
        self.auto_sync_box.setChecked(preferences.auto_sync)
        self._auto_sync_shown = preferences.auto_sync
        self.auto_sync_box.setAccessibleName("Auto-sync")
        self.auto_sync_box.setToolTip("Off: nothing syncs until you press Sync now (the tray's “Pause auto-sync”).")
        self.tray_box = QCheckBox("Keep syncing in the system tray when the window is closed")
        self.tray_box.setAccessibleName("Keep running in the tray")
        self.tray_box.setChecked(preferences.keep_in_tray)
        if not tray_available:
            self.tray_box.setEnabled(False)
            self.tray_box.setToolTip("This desktop has no system tray: closing the window quits the app.")
        self.notifications_box = QCheckBox("Show desktop notifications for alerts")
        self.notifications_box.setAccessibleName("Desktop notifications")
        self.notifications_box.setToolTip("Failed syncs, sign-ins to renew, low API quotas, refused records. "
                                          "The Alerts view lists them either way.")
        self.notifications_box.setChecked(preferences.notifications)
        self.preview_box = QCheckBox("Preview what it would change, and ask, before it syncs")
        self.preview_box.setAccessibleName("Preview before Sync all now")
        self.preview_box.setToolTip("The preview's “Don't ask again” turns this off; tick it to be asked again.")
        self.preview_box.setChecked(self.workspace.monitor.preview.asks_first())
        self.theme_combo = choice_combo("Theme", THEME_NAMES, preferences.theme)
        self.model_combo = choice_combo("Default attribution model", MODEL_NAMES, preferences.attribution_model)
        self.network_button = QPushButton("Proxy and certificates…")
        self.network_button.setAccessibleName("Network settings")
        self.network_button.setToolTip("Settings > Network: the proxy, extra CA certificates and trust source.")
        self.network_button.clicked.connect(self.network_requested)
        network_row = QHBoxLayout()
        network_row.addWidget(self.network_button)
        network_row.addStretch(1)
        self.retention_combo = choice_combo("Keep run history for", RETENTION_NAMES, preferences.history_retention)
        self.retention_combo.setToolTip("Forever: nothing is deleted. A limit deletes older runs (checked when the "
                                        "app starts and after scheduled syncs).")
        self.retention_note = QLabel()
        self.retention_note.setObjectName("dialogHint")
        self.retention_note.setWordWrap(True)
        self.retention_note.setAccessibleName("What keeping the run history for a limit means")
        self.retention_combo.currentIndexChanged.connect(self._show_retention_meaning)
        self._show_retention_meaning()

        form.addRow("Auto-sync", self.auto_sync_box)
        form.addRow("Tray", self.tray_box)
        form.addRow("Notifications", self.notifications_box)
        form.addRow("Sync all now", self.preview_box)
        form.addRow("Theme", self.theme_combo)
        form.addRow("Attribution model", self.model_combo)
        form.addRow("Network", network_row)
        form.addRow("Keep run history for", self.retention_combo)
        form.addRow("", self.retention_note)
        return page

    def _show_retention_meaning(self) -> None:
        chosen = HistoryRetention(self.retention_combo.currentData())
        self.retention_note.setText(
            "Every run is kept, and can be undone, for as long as the workspace exists." if chosen.months is None
            else RETENTION_MEANING)

    def _schedules_tab(self) -> QWidget:
        page, layout, grid = hinted_grid_tab(
            "How often each integration syncs while auto-sync runs. A full sync pulls and pushes; "
            "“new contacts” pushes only contacts added since. An integration syncs on its own only when it is ticked "
            "here and Auto-sync is on in General (the tray's “Pause auto-sync” turns that one off).")
        for column, title in enumerate(("Integration", "Auto-sync", "Full sync every", "New contacts every")):
            header = QLabel(title)
            header.setStyleSheet("font-weight: 600")
            grid.addWidget(header, 0, column)
        self.schedules: list[ScheduleRow] = []
        for row, integration in enumerate(self.workspace.integrations.list(), start=1):
            config = integration.sync_config
            auto = QCheckBox()
            auto.setChecked(config.auto_sync)
            auto.setAccessibleName(f"Auto-sync {integration.name}")
            full = minutes_box(config.sync_interval, f"Full sync interval of {integration.name}")
            new = minutes_box(config.push_new_interval, f"New contacts interval of {integration.name}")
            grid.addWidget(QLabel(integration.name), row, 0)
            grid.addWidget(auto, row, 1, Qt.AlignmentFlag.AlignCenter)
            grid.addWidget(full, row, 2)
            grid.addWidget(new, row, 3)
            self.schedules.append(ScheduleRow(integration, auto, full, new))
        if not self.schedules:
            grid.addWidget(QLabel("No integration yet: add one in Integrations."), 1, 0, 1, 4)
        grid.setColumnStretch(0, 1)
        layout.addStretch(1)
        return page

    def _api_tab(self, preferences: DeskPreferences) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.api_enabled_box = QCheckBox("Serve the local API on 127.0.0.1 while the app is open")
        self.api_enabled_box.setAccessibleName("Local API on")
        self.api_enabled_box.setChecked(preferences.local_api_enabled)
        self.api_port_box = QSpinBox()
        self.api_port_box.setRange(1024, 65535)
        self.api_port_box.setValue(preferences.local_api_port)
        self.api_port_box.setAccessibleName("Local API port")
        self.api_port_box.setMaximumWidth(120)
        self.api_port_box.setEnabled(preferences.local_api_enabled)
        self.api_enabled_box.toggled.connect(self.api_port_box.setEnabled)
        # CRM_DESKTOP_API_PORT wins over both: they are kept (and saved) as stored, for when it is unset.
        self.api_env_note = QLabel(env_port_note(preferences))
        self.api_env_note.setObjectName("dialogHint")
        self.api_env_note.setWordWrap(True)
        self.api_env_note.setAccessibleName("Local API port set by CRM_DESKTOP_API_PORT")
        self.api_env_note.setVisible(port_env_set())
        if port_env_set():
            self.api_enabled_box.setEnabled(False)
            self.api_port_box.setEnabled(False)
        self.token_edit = QLineEdit()
        self.token_edit.setReadOnly(True)
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setAccessibleName("Local API token")
        self.show_token_box = QCheckBox("Show")
        self.show_token_box.setAccessibleName("Show the token")
        self.show_token_box.toggled.connect(
            lambda shown: self.token_edit.setEchoMode(
                QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password)
        )
        self.copy_token_button = QPushButton("Copy")
        self.copy_token_button.setAccessibleName("Copy the token")
        self.rotate_token_button = QPushButton("Rotate…")
        self.rotate_token_button.setAccessibleName("Rotate the token")
        self.rotate_token_button.setToolTip("Make a new token; the old one stops working at once.")
        self.copy_token_button.clicked.connect(self.copy_token)
        self.rotate_token_button.clicked.connect(self.confirm_rotate)
        token_row = QHBoxLayout()
        token_row.addWidget(self.token_edit, 1)
        token_row.addWidget(self.show_token_box)
        token_row.addWidget(self.copy_token_button)
        token_row.addWidget(self.rotate_token_button)
        self.token_note = QLabel("Send it as “Authorization: Bearer <token>”. It is kept in the OS keyring.")
        self.token_note.setObjectName("dialogHint")
        self.token_note.setWordWrap(True)
        form.addRow("Local API", self.api_enabled_box)
        form.addRow("Port", self.api_port_box)
        form.addRow("", self.api_env_note)
        form.addRow("Token", token_row)
        form.addRow("", self.token_note)
        self._load_token()
        return page

    def _scoring_tab(self, scoring: ScoringSettings) -> QWidget:
        page, layout, grid = hinted_grid_tab(
            "Points each interaction adds to a person's engagement score (0-100), and how fast interactions fade. "
            "A conversion weighs 0 to start with: it is an outcome, credited in Attribution, not engagement.")
        self.weight_boxes: dict[str, QDoubleSpinBox] = {}
        for number, kind in enumerate(DEFAULT_WEIGHTS):
            box = QDoubleSpinBox()
            box.setRange(0.0, 1000.0)
            box.setDecimals(1)
            box.setSingleStep(0.5)
            box.setValue(scoring.weights.get(kind, DEFAULT_WEIGHTS[kind]))
            name = INTERACTION_NAMES.get(kind, kind.replace("_", " ").capitalize())
            box.setAccessibleName(f"Weight of {name.lower()}")
            label = QLabel(name)
            label.setBuddy(box)
            row, column = divmod(number, 2)
            grid.addWidget(label, row, column * 2)
            grid.addWidget(box, row, column * 2 + 1)
            self.weight_boxes[kind] = box
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        self.half_life_box = half_life_box(scoring.half_life_days, "Engagement half-life")
        self.attribution_half_life_box = half_life_box(scoring.attribution_half_life_days,
                                                       "Time-decay attribution half-life")
        form.addRow("An interaction counts half after", self.half_life_box)
        form.addRow("Time-decay attribution half-life", self.attribution_half_life_box)
        layout.addLayout(form)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Tab goes to its fields (it scrolls to them), not onto it
        scroll.setWidget(page)
        return scroll

    # -- the API token

    def _load_token(self) -> None:
        try:
            token = self.tokens.current()
        except VaultError as exc:
            self.token_edit.clear()
            self.token_edit.setPlaceholderText("unavailable: the OS keyring cannot be read")
            self.token_note.setText(f"The token cannot be shown: {exc}")
            for widget in (self.copy_token_button, self.rotate_token_button, self.show_token_box):
                widget.setEnabled(False)
            return
        self.token_edit.setText(token)
        self.token_edit.setCursorPosition(0)

    def copy_token(self) -> None:
        """Put the token on the clipboard."""
        QGuiApplication.clipboard().setText(self.token_edit.text())
        self.token_note.setText("Token copied to the clipboard.")

    def confirm_rotate(self) -> QMessageBox:
        """Ask before making a new token (window-modal, returns at once)."""
        return self.ask_first(
            "Rotate the API token",
            "Make a new local API token? Scripts and tools using the old one stop working at once.", "Rotate",
            self.rotate_token)

    def rotate_token(self) -> bool:
        """Replace the token now (the old one stops working, also in the running API)."""
        try:
            self.token_edit.setText(self.tokens.rotate())
            self.token_edit.setCursorPosition(0)
        except VaultError as exc:
            self._refuse(f"The token could not be rotated: {exc}")
            return False
        self.token_note.setText("New token made; the old one no longer works.")
        return True

    # -- saving

    def preferences(self) -> DeskPreferences:
        """The preferences as the dialog shows them."""
        return DeskPreferences(
            local_api_enabled=self.api_enabled_box.isChecked(),
            local_api_port=self.api_port_box.value(),
            auto_sync=self.auto_sync_box.isChecked(),
            keep_in_tray=self.tray_box.isChecked(),
            notifications=self.notifications_box.isChecked(),
            theme=ThemeChoice(self.theme_combo.currentData()),
            attribution_model=AttributionModel(self.model_combo.currentData()),
            history_retention=HistoryRetention(self.retention_combo.currentData()),
        )

    def scoring(self) -> ScoringSettings:
        """The scoring settings as the dialog shows them (the others kept as saved).

        Raises:
            InvalidRecordError: naming the refused value.
        """
        current = self.workspace.social.scoring_settings()
        return ScoringSettings.model_validate({
            **current.model_dump(by_alias=True),
            "weights": {kind: box.value() for kind, box in self.weight_boxes.items()},
            "halfLifeDays": self.half_life_box.value(),
            "attributionHalfLifeDays": self.attribution_half_life_box.value(),
        })

    def _schedules_changed(self) -> list[Integration]:
        changed = []
        for row in self.schedules:
            config = row.integration.sync_config.model_copy(update={
                "auto_sync": row.auto_sync.isChecked(),
                "sync_interval": row.sync_interval.value(),
                "push_new_interval": row.push_new_interval.value(),
            })
            if config != row.integration.sync_config:
                changed.append(row.integration.model_copy(update={"sync_config": config}))
        return changed

    def _save_schedule(self, edited: Integration) -> None:
        """Save the schedule edited here onto the integration as it is now: the rest of it (its name, direction,
        pipeline...) may have changed since the dialog opened (the command line, a teammate), and that stands; an
        integration removed meanwhile has no schedule to save."""
        assert edited.id is not None
        schedule = {name: getattr(edited.sync_config, name)
                    for name in ("auto_sync", "sync_interval", "push_new_interval")}
        try:
            current = self.workspace.integrations.get_by_id(edited.id)
            config = current.sync_config.model_copy(update=schedule)
            self.workspace.integrations.update(current.model_copy(update={"sync_config": config}))
        except NotFoundError:
            logger.info("integration %s was removed while Settings were open; its schedule is not saved", edited.name)

    def save(self) -> bool:
        """Check everything, then save it all; say why and save nothing when a value is refused."""
        if not self._numbers_typed_in_range() or not self._some_weight_counts():
            return False
        try:
            scoring = self.scoring()
            preferences = self.preferences()
        except (InvalidRecordError, ValueError) as exc:
            self._refuse(str(exc))
            return False
        if preferences.auto_sync == self._auto_sync_shown:
            # Not changed here: the tray's "Pause auto-sync", which this dialog does not block, may have paused or
            # resumed it since the dialog opened, and that choice stands.
            preferences = preferences.model_copy(update={"auto_sync": self.workspace.preferences.get().auto_sync})
        if not self._api_port_free(preferences):
            return False
        for integration in self._schedules_changed():
            self._save_schedule(integration)
        # The attribution half-life is read when credit is worked out; the rest is in the stored scores.
        attribution_only = {"attribution_half_life_days"}
        scoring_changed = (scoring.model_dump(exclude=attribution_only)
                           != self.workspace.social.scoring_settings().model_dump(exclude=attribution_only))
        self.workspace.social.set_scoring_settings(scoring)
        self.workspace.preferences.save(preferences)
        self.workspace.monitor.preview.set_asks_first(self.preview_box.isChecked())
        logger.info("settings saved")
        self.saved.emit(preferences)
        if scoring_changed:
            self.scoring_changed.emit()
        return True

    def _numbers_typed_in_range(self) -> bool:
        """Refuse the first number typed out of its box's range, showing its box; ``True`` when there is none."""
        for typed in self.typed_numbers:
            refusal = typed.refusal()
            if refusal is None:
                continue
            self._refuse(refusal)
            for index in range(self.tabs.count()):
                tab = self.tabs.widget(index)
                if tab is not None and tab.isAncestorOf(typed.box):
                    self.tabs.setCurrentIndex(index)
            typed.box.setFocus(Qt.FocusReason.OtherFocusReason)
            typed.box.selectAll()
            return False
        return True

    def _some_weight_counts(self) -> bool:
        """Refuse weights that are all 0 (every engagement score would be 0, whatever anyone did), showing the
        Scoring tab; ``True`` when at least one interaction adds points."""
        if any(box.value() > 0 for box in self.weight_boxes.values()):
            return True
        self._refuse("Scoring: every interaction weighs 0 points, so every engagement score would be 0. Give at "
                     "least one interaction some points.")
        first = next(iter(self.weight_boxes.values()))
        for index in range(self.tabs.count()):
            tab = self.tabs.widget(index)
            if tab is not None and tab.isAncestorOf(first):
                self.tabs.setCurrentIndex(index)
        first.setFocus(Qt.FocusReason.OtherFocusReason)
        first.selectAll()
        return False

    def _api_port_free(self, preferences: DeskPreferences) -> bool:
        """Refuse a new local API port that another program listens on (the API would not start there, and the
        old one would be stopped); ``True`` when the port is free or unchanged, or CRM_DESKTOP_API_PORT sets it."""
        saved = self.workspace.preferences.get()
        moving = not port_env_set() and preferences.local_api_enabled and (
            not saved.local_api_enabled or preferences.local_api_port != saved.local_api_port)
        if not moving:
            return True
        from crm_desktop.api.server import HOST  # the API's address (loaded already when the API is served)

        error = cannot_listen(HOST, preferences.local_api_port)
        if error is None:
            return True
        self._refuse(f"Local API port: {preferences.local_api_port} is in use by another program "
                     f"({error.strerror or error}); pick another port, or turn the local API off.")
        self.tabs.setCurrentIndex(self.tabs.indexOf(self.api_page))
        self.api_port_box.setFocus(Qt.FocusReason.OtherFocusReason)
        self.api_port_box.selectAll()
        return False

    def _refuse(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.show()

    def accept(self) -> None:
        """Save, and close only when everything was saved."""
        if self.save():
            super().accept()
