"""A start of the app imports only what its first window needs: no Alembic at head, no local API before the paint,
no panel but the one on show."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

#: What a start must not import before its window is painted: migrations (the store is at head), HTTP clients (no
#: CRM is called before the window is up), the local API server, which starts once the window has painted, and the
#: email and phone validators (no record is checked before the window is up).
NOT_ON_THE_START_PATH = {"alembic", "mako", "fastapi", "starlette", "uvicorn", "httpx", "httpcore", "email_validator",
                         "phonenumbers"}
#: The modules of the panels a start does not show (it shows Integrations), and QtCharts, which only Attribution and
#: the Sync Monitor's metrics draw with: they load when their panel is first opened.
NOT_BEFORE_THEIR_PANEL = {
    "PySide6.QtCharts",
    "crm_desktop.ui.attribution_panel",
    "crm_desktop.ui.conflicts_panel",
    "crm_desktop.ui.field_mapping_panel",
    "crm_desktop.ui.people_model",
    "crm_desktop.ui.people_panel",
    "crm_desktop.ui.sync_metrics_charts",
    "crm_desktop.ui.sync_monitor_panel",
}

# A start as crm_desktop.ui.app.run_gui makes it, up to the window's first paint, then the top-level packages loaded.
START = """
import json, sys
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication

from crm_desktop.app.workspace import Workspace
from crm_desktop.ui.app import apply_preferred_theme, configure_application
from crm_desktop.ui.main_window import MainWindow
from crm_desktop.vault import Vault
from crm_desktop.vault.ephemeral import EphemeralKeyring

app = QApplication([])
configure_application(app)
workspace = Workspace.open(sys.argv[1], vault=Vault(backend=EphemeralKeyring()))
apply_preferred_theme(app, workspace)
window = MainWindow(workspace)
painted = []


class FirstPaint(QObject):
    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint and not painted:
            painted.append(sorted({name.split(".")[0] for name in sys.modules}))
            painted.append(sorted(name for name in sys.modules
                                  if name.startswith(("crm_desktop.ui.", "PySide6.", "sqlalchemy.dialects."))))
            app.quit()
        return False


watcher = FirstPaint()
window.installEventFilter(watcher)
window.show()
app.exec()
window.close()
workspace.close()
print(json.dumps({"migratedFrom": workspace.migration.from_revision, "packages": painted[0], "modules": painted[1]}))
"""


def start(data_dir: Path) -> dict[str, object]:
    # The window's QSettings (its remembered panel) in the test's folder, not the user's.
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "CRM_DESKTOP_API_PORT": "off",
           "XDG_CONFIG_HOME": str(data_dir.parent / "config")}
    done = subprocess.run([sys.executable, "-c", START, str(data_dir)], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_start_on_a_migrated_workspace_paints_without_alembic_or_the_local_api(tmp_path: Path) -> None:
    first = start(tmp_path / "data")  # a first run ever creates and migrates the store: Alembic is due then
    assert first["migratedFrom"] is None
    assert "alembic" in first["packages"]  # type: ignore[operator]

    again = start(tmp_path / "data")

    packages = set(again["packages"])  # type: ignore[call-overload]
    assert again["migratedFrom"] is not None
    assert "PySide6" in packages and "sqlalchemy" in packages  # the list is the real one
    assert packages & NOT_ON_THE_START_PATH == set()
    modules = set(again["modules"])  # type: ignore[call-overload]
    assert "crm_desktop.ui.integrations_panel" in modules and "PySide6.QtWidgets" in modules  # the real list
    assert modules & NOT_BEFORE_THEIR_PANEL == set()
    # A SQLite store's start does not load PostgreSQL's dialect.
    assert "sqlalchemy.dialects.sqlite" in modules and "sqlalchemy.dialects.postgresql" not in modules


# The app itself (run_gui) with its local API on: at the first paint the API server is not imported yet, and it is
# served afterwards.
START_WITH_API = """
import json, socket, sys
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication

import crm_desktop.ui.app as gui
from crm_desktop.app.workspace import Workspace
from crm_desktop.vault import Vault
from crm_desktop.vault.ephemeral import EphemeralKeyring

port = int(sys.argv[2])
seen = {}


def wait_for_the_api(window, attempts=400):
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            seen["apiServed"] = True
            window.close()
            return
    if attempts:
        QTimer.singleShot(25, lambda: wait_for_the_api(window, attempts - 1))
    else:
        window.close()


class FirstPaint(QObject):
    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint and "apiImportedAtFirstPaint" not in seen:
            seen["apiImportedAtFirstPaint"] = "crm_desktop.api.server" in sys.modules
            QTimer.singleShot(0, lambda: wait_for_the_api(watched))
        return False


watcher = FirstPaint()


class WatchedWindow(gui.MainWindow):
    def __init__(self, workspace):
        super().__init__(workspace)
        self.installEventFilter(watcher)


gui.MainWindow = WatchedWindow
vault = Vault(backend=EphemeralKeyring())
code = gui.run_gui(lambda: Workspace.open(sys.argv[1], vault=vault), ["crm-desktop"])
print(json.dumps({"exit": code, **seen}))
"""


def test_the_app_paints_its_window_before_it_imports_and_starts_the_local_api(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "CRM_DESKTOP_API_PORT": str(port),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    done = subprocess.run([sys.executable, "-c", START_WITH_API, str(tmp_path / "data"), str(port)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr

    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "exit": 0, "apiImportedAtFirstPaint": False, "apiServed": True}
