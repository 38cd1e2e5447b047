#!/bin/sh
# Smoke-test the built package (dist/crm-desktop/, from packaging/build.sh) as a user's machine would run it:
# `crm-desktop version`, a headless demo with a first sync of the three sandbox CRMs, the GUI starting offscreen and
# closing cleanly on a polite kill (SIGTERM: the window closes and saves its state, exit status 0), a scheduled sync
# run by the window's sync process (packaging/smoke-window-sync.sh), and the desktop entry and AppStream metainfo
# passing their validators. Runs nothing from the source tree or the venv.
# Usage: sh packaging/smoke.sh [PACKAGE_DIR]   (default dist/crm-desktop)
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PACKAGE=$(cd "${1:-dist/crm-desktop}" && pwd)
APP="$PACKAGE/crm-desktop"
work=$(mktemp -d)
gui_pid=""
xvfb_pid=""
cleanup() {
    [ -n "$gui_pid" ] && kill -KILL "$gui_pid" 2>/dev/null || true
    [ -n "$xvfb_pid" ] && kill -TERM "$xvfb_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "smoke test FAILED: $*" >&2; exit 1; }
# Outside the checkout, with no Python of the project on the path: only the package is tested.
cd "$work"
export CRM_DESKTOP_HOME="$work/data" QT_QPA_PLATFORM=offscreen CRM_DESKTOP_API_PORT=off
unset PYTHONPATH VIRTUAL_ENV

# 1. version
expected=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/pyproject.toml")
got=$("$APP" version) || fail "crm-desktop version exited with $?"
[ "$got" = "crm-desktop $expected" ] || fail "crm-desktop version said '$got', expected 'crm-desktop $expected'"
echo "ok: $got"

# 2. the demo, headless, with a first sync of each sandbox CRM
"$APP" demo --headless --sync --contacts 60 --json > demo.json 2> demo.err || {
    cat demo.err >&2; fail "crm-desktop demo --headless --sync exited with $?"; }
runs=$(grep -c '"status": "succeeded"' demo.json || true)
[ "$runs" = 3 ] || { cat demo.json demo.err >&2; fail "demo: $runs of 3 first syncs succeeded"; }
echo "ok: demo --headless --sync: 3 first syncs succeeded"

# 3. the GUI: wait for the window's scheduler to start (the window is built), then a polite kill. Offscreen, and
# on X11 (xcb) under Xvfb where xvfb-run is installed. The first run also opens the welcome over the window.
log="$CRM_DESKTOP_HOME/logs/crm-desktop.log"
open_and_close_gui() {  # $1: Qt platform; the rest: the command that runs the app
    platform=$1
    shift
    opened_before=$(grep -c "sync scheduler started" "$log" 2>/dev/null || true)
    closed_before=$(grep -c "GUI closed" "$log" 2>/dev/null || true)
    QT_QPA_PLATFORM=$platform "$@" > gui.out 2> gui.err &
    gui_pid=$!
    waited=0
    until [ "$(grep -c "sync scheduler started" "$log" 2>/dev/null || true)" -gt "${opened_before:-0}" ]; do
        kill -0 "$gui_pid" 2>/dev/null || { cat gui.err >&2; fail "$platform: the GUI exited before its window opened"; }
        [ "$waited" -lt 120 ] || fail "$platform: the GUI's window did not open within 120 s"
        sleep 1
        waited=$((waited + 1))
    done
    sleep 2  # let the welcome and the panels settle before closing
    kill -TERM "$gui_pid"
    status=0
    wait "$gui_pid" || status=$?
    gui_pid=""
    [ "$status" = 0 ] || { cat gui.err >&2; fail "$platform: the GUI exited with status $status on SIGTERM"; }
    [ "$(grep -c "GUI closed" "$log")" -gt "${closed_before:-0}" ] || fail "$platform: no clean close in the log"
    # Qt's offscreen platform says this about every top-level window; anything else on stderr is a problem.
    unexpected=$(grep -v "This plugin does not support propagateSizeHints()" gui.err || true)
    [ -z "$unexpected" ] || fail "$platform: the GUI wrote to stderr: $unexpected"
    echo "ok: GUI ($platform) opened in about $waited s and closed cleanly (status 0)"
}
open_and_close_gui offscreen "$APP"
grep -q "first run: showing the welcome" "$log" || fail "the first run did not open the welcome"
echo "ok: the first run opened the welcome"
if command -v Xvfb >/dev/null 2>&1; then
    Xvfb -displayfd 1 -screen 0 1280x800x24 -nolisten tcp > xvfb.display 2> xvfb.err &
    xvfb_pid=$!
    waited=0
    until [ -s xvfb.display ]; do
        [ "$waited" -lt 30 ] || fail "Xvfb did not start: $(cat xvfb.err)"
        sleep 1
        waited=$((waited + 1))
    done
    export DISPLAY=":$(cat xvfb.display)"
    open_and_close_gui xcb "$APP"
    kill -TERM "$xvfb_pid"
    wait "$xvfb_pid" || true
    xvfb_pid=""
fi

# 4. a sync from the window, in its sync process (a child of the frozen executable), where a D-Bus session and
# gnome-keyring exist to keep the integration's token (CI installs both)
if command -v dbus-run-session >/dev/null 2>&1 && command -v gnome-keyring-daemon >/dev/null 2>&1; then
    dbus-run-session -- sh "$ROOT/packaging/smoke-window-sync.sh" "$APP" "$work" || fail "window sync"
else
    echo "skipped: the window's sync (no dbus-run-session or gnome-keyring-daemon)"
fi

# 5. the desktop entry and the AppStream metainfo
desktop-file-validate "$PACKAGE/share/applications/crm-desktop.desktop" || fail "desktop-file-validate"
echo "ok: desktop-file-validate"
if command -v appstreamcli >/dev/null 2>&1; then
    appstreamcli validate --no-net "$PACKAGE"/share/metainfo/*.metainfo.xml || fail "appstreamcli validate"
    echo "ok: appstreamcli validate"
fi
echo "smoke test passed: $PACKAGE"
