"""Settings > Network: the workspace's proxy, extra CA bundle and trust source, checked before anything is saved."""

from __future__ import annotations

import logging

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from crm_desktop.app.errors import VaultError
from crm_desktop.app.settings import NetworkSettingsService, SettingKey, SettingsError
from crm_desktop.ui.widgets import fit_placeholder

logger = logging.getLogger(__name__)

#: Trust sources as the combo box shows them, with the value the service takes.
TRUST_CHOICES = (
    ("The operating system's certificates (recommended)", "system"),
    ("Mozilla's certificates (certifi)", "certifi"),
)


class NetworkSettingsDialog(QDialog):
    """Edits the proxy (its password goes to the OS keyring), the extra CA bundle and the trust source.

    Attributes:
        settings: the workspace's network settings service.
        proxy_edit: the proxy URL, without its password.
        password_edit: the proxy password (left empty: the stored one stays).
        bundle_edit: the PEM file of extra CA certificates.
        trust_combo: where root certificates come from.
        error_label: why the last save was refused.
    """

    def __init__(self, settings: NetworkSettingsService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.setWindowTitle("Network settings")
        # No fixed minimum width: the layout's, which fits the placeholders (fit_placeholder), is the dialog's.

        proxy, has_password = settings.proxy_for_editing()
        self.proxy_edit = QLineEdit(proxy)
        self.proxy_edit.setPlaceholderText("http://proxy.example.com:3128 (empty: HTTPS_PROXY applies)")
        self.proxy_edit.setToolTip(
            "The HTTP proxy every CRM request goes through, as http[s]://[user@]host:port. Left empty, the "
            "HTTPS_PROXY, HTTP_PROXY and ALL_PROXY variables apply. Hosts named in NO_PROXY are still reached directly."
        )
        self.password_edit = QLineEdit()
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.password_edit.setPlaceholderText(
            "unchanged (kept in the OS keyring)" if has_password else "none; kept in the OS keyring when given"
        )
        bundle = settings.get(SettingKey.CA_BUNDLE).value or ""
        self.bundle_edit = QLineEdit(bundle)
        self.bundle_edit.setPlaceholderText("none; e.g. your company's TLS-inspection root (PEM)")
        self.bundle_edit.setToolTip("A PEM file of CA certificates to trust as well, such as the root certificate "
                                    "of your company's TLS-inspecting proxy.")
        # Named here: in a row of its own layout the form's label is not their buddy, and a screen reader read the
        # placeholder for the field and a bare "Browse" for its button.
        self.bundle_edit.setAccessibleName("Extra CA certificates file")
        browse = QPushButton("Browse…")
        browse.setAccessibleName("Browse for the extra CA certificates file")
        browse.clicked.connect(self._browse_bundle)
        self.browse_button = browse
        bundle_row = QHBoxLayout()
        bundle_row.addWidget(self.bundle_edit, 1)
        bundle_row.addWidget(browse)
        # The placeholders say what an empty field means: whole, whatever the font, at the dialog's minimum width.
        for edit in (self.proxy_edit, self.password_edit, self.bundle_edit):
            fit_placeholder(edit)
        self.trust_combo = QComboBox()
        for label, value in TRUST_CHOICES:
            self.trust_combo.addItem(label, value)
        current_trust = settings.get(SettingKey.TRUST).value or "system"
        self.trust_combo.setCurrentIndex(max(0, self.trust_combo.findData(current_trust)))

        form = QFormLayout()
        form.addRow("Proxy", self.proxy_edit)
        form.addRow("Proxy password", self.password_edit)
        form.addRow("Extra CA certificates", bundle_row)
        form.addRow("Trust", self.trust_combo)
        note = QLabel(
            "Certificates are always verified. The extra CA certificates are trusted in addition to the source chosen."
        )
        note.setWordWrap(True)
        self.error_label = QLabel()
        self.error_label.setObjectName("dialogError")  # the stylesheet's error box, as in the other dialogs
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        self.buttons = buttons

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)

    def _browse_bundle(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Extra CA certificates", self.bundle_edit.text(), "PEM certificates (*.pem *.crt *.cer);;All (*)"
        )
        if path:
            self.bundle_edit.setText(path)

    def save(self) -> None:
        """Check and save every setting; on a refusal, say why and keep the dialog open (nothing is saved)."""
        password = self.password_edit.text()
        try:
            self.settings.save(
                proxy=self.proxy_edit.text(),
                proxy_password=password or None,
                ca_bundle=self.bundle_edit.text(),
                trust=str(self.trust_combo.currentData()),
            )
        except (SettingsError, VaultError) as exc:
            self.error_label.setText(str(exc))
            self.error_label.show()
            return
        self.accept()
