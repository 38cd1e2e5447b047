"""A desktop's appearance setting on D-Bus, as GNOME and KDE serve it: xdg-desktop-portal's Settings interface.

Qt (6.5+, ``QGnomeTheme``/``QDBusListener``) reads the desktop's light or dark preference with
``org.freedesktop.portal.Settings.ReadAll`` and follows ``SettingChanged``. This process owns
``org.freedesktop.portal.Desktop`` on the session bus it is given and answers those calls; SIGUSR1 switches the
desktop to dark, SIGUSR2 to light, each announced with ``SettingChanged`` as the real portal does. It prints
``ready`` once it owns the name, and ``read`` each time an app has read the settings.

Usage: ``python -m tests.support.desktop_portal light|dark`` (jeepney, which the keyring already brings).
"""

from __future__ import annotations

import os
import select
import signal
import sys
from types import FrameType

from jeepney import DBusAddress, HeaderFields, MessageType, new_error, new_method_return, new_signal
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

PORTAL_NAME = "org.freedesktop.portal.Desktop"
PORTAL_PATH = "/org/freedesktop/portal/desktop"
SETTINGS_INTERFACE = "org.freedesktop.portal.Settings"
APPEARANCE = "org.freedesktop.appearance"
#: ``color-scheme`` as the portal spec numbers it: 0 no preference, 1 prefer dark, 2 prefer light.
SCHEMES = {"dark": 1, "light": 2}
#: RequestName's flag: fail rather than queue when the name is taken.
DO_NOT_QUEUE = 4


def serve(scheme: int) -> None:
    connection = open_dbus_connection(bus="SESSION")
    answer = connection.send_and_get_reply(message_bus.RequestName(PORTAL_NAME, DO_NOT_QUEUE))
    if answer.body != (1,):  # 1: primary owner
        raise SystemExit(f"cannot own {PORTAL_NAME}: RequestName answered {answer.body}")
    wake_read, wake_write = os.pipe()

    def switch(number: int, _frame: FrameType | None) -> None:
        os.write(wake_write, b"d" if number == signal.SIGUSR1 else b"l")

    signal.signal(signal.SIGUSR1, switch)
    signal.signal(signal.SIGUSR2, switch)
    print("ready", flush=True)
    settings = DBusAddress(PORTAL_PATH, interface=SETTINGS_INTERFACE)
    while True:
        ready, _, _ = select.select([connection.sock, wake_read], [], [])
        if wake_read in ready:
            scheme = SCHEMES["dark"] if os.read(wake_read, 1) == b"d" else SCHEMES["light"]
            connection.send(new_signal(settings, "SettingChanged", "ssv", (APPEARANCE, "color-scheme", ("u", scheme))))
        if connection.sock not in ready:
            continue
        call = connection.receive()
        if call.header.message_type is not MessageType.method_call:
            continue
        member = call.header.fields.get(HeaderFields.member)
        if member == "ReadAll":  # a{sa{sv}}: per namespace asked for, its keys and values
            wanted = call.body[0] if call.body else []
            found = {APPEARANCE: {"color-scheme": ("u", scheme)}} if not wanted or APPEARANCE in wanted else {}
            connection.send(new_method_return(call, "a{sa{sv}}", (found,)))
            print("read", flush=True)
        elif member == "ReadOne" and call.body == (APPEARANCE, "color-scheme"):
            connection.send(new_method_return(call, "v", (("u", scheme),)))
        elif member == "Read" and call.body == (APPEARANCE, "color-scheme"):  # the older call: a variant in a variant
            connection.send(new_method_return(call, "v", (("v", ("u", scheme)),)))
        elif member == "Get":  # org.freedesktop.DBus.Properties: the interface versions Qt asks for
            connection.send(new_method_return(call, "v", (("u", 2),)))
        elif member == "Register":  # org.freedesktop.host.portal.Registry: an app introducing itself
            connection.send(new_method_return(call))
        else:
            connection.send(new_error(call, "org.freedesktop.portal.Error.NotFound", "s", (f"no {member} here",)))


if __name__ == "__main__":
    serve(SCHEMES[sys.argv[1] if len(sys.argv) > 1 else "light"])
