#!/bin/sh
# Install the Debian packages CRM Desktop and its tests need: Qt's xcb/EGL libraries and fonts, a D-Bus session
# bus and gnome-keyring (the OS keyring), Xvfb (a virtual screen), PostgreSQL 15 (team store tests), and the
# validators of the packaged app's desktop entry and AppStream metainfo (desktop-file-utils, appstream).
# Installs only what is missing, and only where apt-get can run (as root, or with passwordless sudo).
set -eu
PACKAGES="libgl1 libegl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libglib2.0-0
libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0
libxcb-xfixes0 libxcb-xkb1 fonts-dejavu-core dbus dbus-x11 gnome-keyring xvfb xauth postgresql
desktop-file-utils appstream"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && { echo "system packages: all present"; exit 0; }

if [ "$(id -u)" = 0 ]; then SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"
else
    echo "system packages missing:$missing"
    echo "install them with: sudo apt-get install -y$missing"
    exit 1
fi
echo "installing system packages:$missing"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
}
