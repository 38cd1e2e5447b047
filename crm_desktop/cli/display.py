"""Whether the desktop app can open a window here, checked before Qt is loaded (Qt aborts the process otherwise)."""

from __future__ import annotations

import sys
from collections.abc import Mapping

#: Qt platform plugins that draw without a window system (a headless server, a framebuffer, a VNC client).
HEADLESS_PLATFORMS = frozenset({"offscreen", "minimal", "minimalegl", "vnc", "eglfs", "linuxfb", "vkkhrdisplay"})

#: The commands that work without a display, named in the hint.
HEADLESS_COMMANDS = "integration, contacts, leads, sync, conflicts, runs, demo --headless"


def _display_of(platform_name: str, environ: Mapping[str, str]) -> bool:
    name = platform_name.split(":", 1)[0].strip().lower()
    if name in HEADLESS_PLATFORMS:
        return True
    if name.startswith("wayland"):
        return bool(environ.get("WAYLAND_DISPLAY"))
    if name == "xcb":
        return bool(environ.get("DISPLAY"))
    # A plugin this check does not know: let Qt decide.
    return True


def missing_display(environ: Mapping[str, str], platform: str = sys.platform) -> str | None:
    """Why no window can be opened here, or ``None`` when one can (or this check cannot tell).

    Only Linux and the BSDs need a window system found through the environment; macOS and Windows always have one.
    ``QT_QPA_PLATFORM`` may list fallbacks separated by ``;``: any usable one is enough.
    """
    if not platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return None
    requested = environ.get("QT_QPA_PLATFORM", "").strip()
    if requested:
        if any(_display_of(name, environ) for name in requested.split(";") if name.strip()):
            return None
        return (
            f"QT_QPA_PLATFORM is {requested!r} but no display for it was found "
            "(DISPLAY and WAYLAND_DISPLAY are unset or do not match)"
        )
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    return "no display was found (DISPLAY and WAYLAND_DISPLAY are unset), so the desktop app cannot open a window"


def no_display_message(reason: str) -> str:
    """The whole message: why, and what works instead."""
    return (
        f"{reason}. Run it inside a desktop session, or use the command line: `crm-desktop --help` lists the "
        f"commands that need no display ({HEADLESS_COMMANDS})"
    )
