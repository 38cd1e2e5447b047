"""People > Edit… and New…: a contact's or lead's own fields typed by hand, checked as an import checks them."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from crm_desktop.app.field_mapping import local_field_label
from crm_desktop.app.imports import EDITABLE_FIELDS
from crm_desktop.app.people import PersonDetail
from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.domain.models import LeadStatus
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.ui.wording import LEAD_STATUS_NAMES

#: What each field takes, shown as its placeholder (an empty field clears the value).
PLACEHOLDERS: dict[str, str] = {
    "phone": "e.g. +1 415 555 0101 (stored as +14155550101)",
    "source": "lower case, digits and _ (e.g. instagram_dm)",
}


class PersonEditDialog(QDialog):
    """The form of one person's fields, starting from their stored values; Save sends only what changed.

    The email is the record's key in every CRM, so it is shown, not edited (a person added with :meth:`for_new`
    types it). A refusal names each field and why, and keeps the form open with the values typed.

    Attributes:
        detail: the person edited (for a new one: no email, no id, blank fields).
        new: the form adds a person (New…) instead of editing one.
        editors: the field key -> its line edit (the lead status: a list).
        error_label: why the last save was refused.
        save_button: Save, or Add for a new person (enabled once something changed or an email is typed; disabled
            while saving).

    Signals:
        save_requested(dict): the changed values by field key, a blank one as ``None``.
    """

    save_requested = Signal(dict)

    def __init__(self, detail: PersonDetail, parent: QWidget | None = None, *, new: bool = False) -> None:
        super().__init__(parent)
        self.detail = detail
        self.new = new
        self.saving = False
        kind = "lead" if detail.obj is RecordObject.LEAD else "contact"
        self.setWindowTitle(f"New {kind}" if new else f"Edit {kind}")
        self.setMinimumWidth(480)
        heading = QLabel(f"New {kind}" if new else detail.name or detail.email)
        heading.setObjectName("dialogTitle")
        form = QFormLayout()
        self.editors: dict[str, QLineEdit | QComboBox] = {}
        if new:
            typed = QLineEdit()
            typed.setPlaceholderText("name@example.com (required)")
            typed.setToolTip("Every CRM finds the person by their email; it cannot be changed later")
            typed.setAccessibleName("Email")
            typed.textChanged.connect(self._update_save)
            self.editors["email"] = typed
            form.addRow("Email", typed)
        else:
            shown = QLabel(detail.email)
            shown.setAccessibleName("Email")
            shown.setToolTip("The email is the record's key in every CRM, so it is not edited here")
            form.addRow("Email", shown)
        for key, value in detail.fields.items():
            label = local_field_label(detail.obj, key)
            editor: QLineEdit | QComboBox
            if key == "status":
                editor = QComboBox()
                for status, name in LEAD_STATUS_NAMES.items():
                    editor.addItem(name, str(status))
                editor.setCurrentIndex(max(0, editor.findData(value or LeadStatus.NEW.value)))
                editor.currentIndexChanged.connect(self._update_save)
            else:
                editor = QLineEdit(value or "")
                editor.setPlaceholderText(PLACEHOLDERS.get(key, "optional" if new else "empty"))
                editor.setClearButtonEnabled(True)
                editor.textChanged.connect(self._update_save)
            editor.setAccessibleName(label)
            self.editors[key] = editor
            form.addRow(label, editor)
        note = QLabel("Saved here first; the next sync sends the person to your CRMs." if new else
                      "Saved here first; the next sync sends the changes to your CRMs. History lists each change, "
                      "and “Undo this change” puts one back.")
        note.setObjectName("panelSubtitle")
        note.setWordWrap(True)
        self.error_label = QLabel()
        self.error_label.setObjectName("dialogError")
        self.error_label.setWordWrap(True)
        self.error_label.setAccessibleName("Why the edit was not saved")
        self.error_label.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Cancel).setAutoDefault(False)
        self.save_button = QPushButton("Add" if new else "Save")
        self.save_button.setDefault(True)
        buttons.addButton(self.save_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)
        self._update_save()

    @classmethod
    def for_new(cls, obj: RecordObject, parent: QWidget | None = None) -> PersonEditDialog:
        """The form of a contact or lead added by hand: the email and the fields a person's edit offers, blank."""
        blank = PersonDetail(obj, 0, "", "", None)
        blank.fields = dict.fromkeys(EDITABLE_FIELDS[obj])
        return cls(blank, parent, new=True)

    def _value(self, key: str) -> str | None:
        editor = self.editors[key]
        text = str(editor.currentData()) if isinstance(editor, QComboBox) else editor.text().strip()
        return text or None

    def changed_values(self) -> dict[str, str | None]:
        """The fields whose value differs from the stored one, blank ones as ``None`` (a new person: the email and
        every field given)."""
        return {key: self._value(key) for key in self.editors if self._value(key) != self.detail.fields.get(key)}

    def _update_save(self) -> None:
        ready = bool(self._value("email")) if self.new else bool(self.changed_values())
        self.save_button.setEnabled(ready and not self.saving)
        # Disabling the focused Save moves the keyboard to Cancel, which then takes Return for itself: Return in a
        # field must save, never cancel the marketer's typing.
        self.save_button.setDefault(True)

    def save(self) -> None:
        """Ask for the changed values to be saved; the form stays open until the panel closes it once they are
        saved, or :meth:`refuse` says why they were not."""
        values = self.changed_values()
        if not values or self.saving or (self.new and not values.get("email")):
            return
        self.set_saving(True)
        self.save_requested.emit(values)

    def set_saving(self, saving: bool) -> None:
        """While a save is in flight, the form cannot be sent again."""
        self.saving = saving
        self._update_save()

    def refuse(self, reason: str, fields: Sequence[str] = ()) -> None:
        """Say why nothing was saved; the first field named takes the keyboard."""
        self.set_saving(False)
        self.error_label.setText(reason)
        self.error_label.show()
        named = [self.editors[key] for key in fields if key in self.editors]
        if named:
            named[0].setFocus()
            if isinstance(named[0], QLineEdit):
                named[0].selectAll()

    def refuse_record(self, error: InvalidRecordError) -> None:
        """Say which fields were refused and why, each by its label."""
        keys = [self._key_of(problem.field) for problem in error.problems]
        lines = [f"{local_field_label(self.detail.obj, key)}: {problem.reason}"
                 for key, problem in zip(keys, error.problems, strict=True)]
        self.refuse("Not saved, nothing was changed:\n" + "\n".join(lines), keys)

    def _key_of(self, field: str) -> str:
        """The form's key of a refused field (a custom field may be named without its ``custom.``)."""
        if field in self.editors or f"custom.{field}" not in self.editors:
            return field
        return f"custom.{field}"
