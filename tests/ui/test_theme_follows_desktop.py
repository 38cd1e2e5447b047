"""The app follows the desktop's light/dark switch end to end: the real ``crm-desktop`` on a real X server (Xvfb,
Qt's xcb platform), told by the desktop's portal over D-Bus, as GNOME and KDE tell it; its screen is read back.

The offscreen platform of the other UI tests cannot switch the system's colour scheme; this test runs where Qt
hears the desktop. It needs Xvfb and dbus-daemon (tools/system-packages.sh installs both); CI requires them
(``CRM_DESKTOP_REQUIRE_XVFB=1``), elsewhere it is skipped without them.
"""

from __future__ import annotations

import itertools
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from crm_desktop.app.preferences import ThemeChoice
from crm_desktop.app.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = os.environ.get("CRM_DESKTOP_REQUIRE_XVFB") == "1"
MISSING = [tool for tool in ("Xvfb", "dbus-daemon") if shutil.which(tool) is None]

pytestmark = pytest.mark.skipif(bool(MISSING) and not REQUIRED, reason=f"not installed: {', '.join(MISSING)}")

#: Reads the X screen back as a PNG (a second Qt client of the same display: the app's own pixels, as drawn).
GRAB = (
    "import sys\n"
    "from PySide6.QtGui import QGuiApplication\n"
    "app = QGuiApplication(sys.argv[:1])\n"
    "sys.exit(0 if app.primaryScreen().grabWindow(0).save(sys.argv[1]) else 1)\n"
)


def lightness(png: Path) -> float | None:
    """The mean lightness (0-255) of what is drawn on the screen; ``None`` while nothing is (Xvfb's black root)."""
    image = QImage(str(png))
    assert not image.isNull(), png
    drawn = [image.pixelColor(x, y).lightness() for y in range(0, image.height(), 6)
             for x in range(0, image.width(), 6) if image.pixel(x, y) & 0xFFFFFF]
    return sum(drawn) / len(drawn) if len(drawn) > 1000 else None


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    with log.open("w") as errors:  # the child keeps its own copy of the file
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=errors, text=True, cwd=ROOT)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A desktop of its own: an X server and a session bus, with the environment a desktop session gives apps."""
    assert not MISSING, f"CRM_DESKTOP_REQUIRE_XVFB=1 but not installed: {', '.join(MISSING)}"
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", "1", "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert xvfb.stdout is not None and bus.stdout is not None
        display = xvfb.stdout.readline().strip()
        address = bus.stdout.readline().strip()
        assert display and address, "Xvfb or dbus-daemon did not start"
        env = {key: value for key, value in os.environ.items() if not key.startswith(("QT_", "DBUS_", "XDG_"))}
        for folder in ("config", "data", "cache", "runtime"):
            (tmp_path / folder).mkdir(mode=0o700)
        env.update(DISPLAY=f":{display}", QT_QPA_PLATFORM="xcb", XDG_CURRENT_DESKTOP="GNOME",
                   DBUS_SESSION_BUS_ADDRESS=address, XDG_CONFIG_HOME=str(tmp_path / "config"),
                   XDG_DATA_HOME=str(tmp_path / "data"), XDG_CACHE_HOME=str(tmp_path / "cache"),
                   XDG_RUNTIME_DIR=str(tmp_path / "runtime"), PYTHONDONTWRITEBYTECODE="1")
        yield env
    finally:
        for process in (bus, xvfb):
            _stop(process)


SHOTS = itertools.count(1)


def screen_lightness(env: dict[str, str], png: Path) -> float | None:
    subprocess.run([sys.executable, "-c", GRAB, str(png)], env=env, check=True, timeout=30)
    return lightness(png)


def wait_for_screen(env: dict[str, str], tmp_path: Path, done: object, what: str, timeout: float = 30) -> float:
    """Read the screen back until ``done(lightness)`` holds; fails naming ``what`` with the last reading."""
    deadline = time.monotonic() + timeout
    last: float | None = None
    while time.monotonic() < deadline:
        last = screen_lightness(env, tmp_path / f"screen-{next(SHOTS)}.png")
        if last is not None and done(last):  # type: ignore[operator]
            return last
        time.sleep(0.3)
    pytest.fail(f"{what}: the screen's lightness stayed {last}")


def workspace_choosing(folder: Path, theme: ThemeChoice) -> Path:
    """A workspace whose Settings say ``theme``, its local API off (the app under test serves nothing)."""
    workspace = Workspace.open(folder)
    try:
        workspace.preferences.update(theme=theme, local_api_enabled=False)
    finally:
        workspace.close()
    return folder


def has_read_the_desktop(portal: subprocess.Popen[str], timeout: float = 10) -> bool:
    """Whether the app read the portal's settings (Qt then listens to its changes), waiting up to ``timeout``."""
    assert portal.stdout is not None
    ready, _, _ = select.select([portal.stdout], [], [], timeout)
    return bool(ready) and portal.stdout.readline().strip() == "read"


def launch(env: dict[str, str], tmp_path: Path, args: list[str], name: str) -> subprocess.Popen[str]:
    return _start([sys.executable, "-m", *args], env, tmp_path / f"{name}.log")


@contextmanager
def app_on_desktop(desktop: dict[str, str], tmp_path: Path, choice: ThemeChoice,
                   desktop_scheme: str) -> Iterator[subprocess.Popen[str]]:
    """The desktop's portal (``desktop_scheme`` to start with) and ``crm-desktop`` on a workspace whose Settings
    say ``choice``; yields the portal (signal it to switch the desktop) and checks the app is still running."""
    data = workspace_choosing(tmp_path / "workspace", choice)
    portal = launch(desktop, tmp_path, ["tests.support.desktop_portal", desktop_scheme], "portal")
    app: subprocess.Popen[str] | None = None
    try:
        assert portal.stdout is not None and portal.stdout.readline().strip() == "ready"
        app = launch(desktop, tmp_path, ["crm_desktop", "--data-dir", str(data)], "app")
        yield portal
        assert app.poll() is None, (tmp_path / "app.log").read_text()
    finally:
        if app is not None:
            _stop(app)
        _stop(portal)


def test_the_app_follows_the_desktop_from_light_to_dark_and_back(desktop: dict[str, str], tmp_path: Path) -> None:
    with app_on_desktop(desktop, tmp_path, ThemeChoice.SYSTEM, "light") as portal:
        light = wait_for_screen(desktop, tmp_path, lambda value: value > 150,
                                "the app on a light desktop (Settings: follow the system)")
        portal.send_signal(signal.SIGUSR1)  # the marketer switches the desktop to dark
        dark = wait_for_screen(desktop, tmp_path, lambda value: value < 100, "after the desktop switched to dark")
        portal.send_signal(signal.SIGUSR2)  # and back
        wait_for_screen(desktop, tmp_path, lambda value: value > 150, "after the desktop switched back to light")
    assert light - dark > 80


def test_a_light_choice_in_settings_ignores_the_desktop_going_dark(desktop: dict[str, str], tmp_path: Path) -> None:
    with app_on_desktop(desktop, tmp_path, ThemeChoice.LIGHT, "dark") as portal:
        wait_for_screen(desktop, tmp_path, lambda value: value > 150, "the app on a dark desktop (Settings: light)")
        assert has_read_the_desktop(portal), "the app never asked the desktop for its colour scheme"
        for _ in range(3):  # the desktop goes light and dark again, and stays dark
            portal.send_signal(signal.SIGUSR2)
            time.sleep(0.3)
            portal.send_signal(signal.SIGUSR1)
            time.sleep(0.3)
        time.sleep(1.5)  # what a follower would have done by now (the first test sees it within one reading)
        assert (screen_lightness(desktop, tmp_path / "after.png") or 0) > 150
