#!/bin/sh
# Part of packaging/smoke.sh, run by it inside a D-Bus session of its own: the packaged window syncs. A HubSpot
# sandbox served by the package, an integration on it (its token kept in an unlocked gnome-keyring), three contacts
# imported; then the window opens and its scheduler's first check runs the due sync in the window's sync process,
# a child of the frozen executable started through multiprocessing's freeze support. Passes when that run
# succeeded with the three contacts created and the window closes cleanly on SIGTERM.
# Usage (from smoke.sh): dbus-run-session -- sh packaging/smoke-window-sync.sh APP WORK_DIR
set -eu
APP=$1
cd "$2"
export CRM_DESKTOP_HOME="$2/window-sync" QT_QPA_PLATFORM=offscreen CRM_DESKTOP_API_PORT=off
sandbox_pid=""
gui_pid=""
stop_all() {
    [ -n "$gui_pid" ] && kill -KILL "$gui_pid" 2>/dev/null || true
    [ -n "$sandbox_pid" ] && kill -TERM "$sandbox_pid" 2>/dev/null || true
}
trap stop_all EXIT
fail() { echo "smoke test FAILED: window sync: $*" >&2; exit 1; }

# A keyring of its own (a new login keyring, unlocked with this password), not the user's or the test suite's.
export XDG_DATA_HOME="$2/window-sync-xdg"
mkdir -p "$XDG_DATA_HOME"
printf smoke-test | gnome-keyring-daemon --unlock --components=secrets > /dev/null
"$APP" sandbox --provider hubspot --port 0 > sandbox.out 2> sandbox.err &
sandbox_pid=$!
waited=0
until grep -q '"baseUrl"' sandbox.out 2>/dev/null; do
    [ "$waited" -lt 60 ] || { cat sandbox.err >&2; fail "the HubSpot sandbox did not start within 60 s"; }
    sleep 1
    waited=$((waited + 1))
done
url=$(sed -n 's/.*"baseUrl": "\([^"]*\)".*/\1/p' sandbox.out)
token=$(sed -n 's/.*"token": "\([^"]*\)".*/\1/p' sandbox.out)
printf '%s' "$token" | "$APP" integration add --provider hubspot --name smoke --base-url "$url" --secret-stdin \
    > add.out 2>&1 || { cat add.out >&2; fail "integration add exited with $?"; }
printf 'email,first_name,last_name\nada@example.com,Ada,One\nbo@example.com,Bo,Two\ncy@example.com,Cy,Three\n' \
    > people.csv
"$APP" contacts import people.csv > import.out 2>&1 || { cat import.out >&2; fail "contacts import exited with $?"; }

"$APP" > gui.out 2> gui.err &
gui_pid=$!
waited=0
until "$APP" runs list --integration smoke --json 2>/dev/null | grep -q '"status": "succeeded"'; do
    kill -0 "$gui_pid" 2>/dev/null || { cat gui.err >&2; fail "the window exited before its sync ended"; }
    [ "$waited" -lt 180 ] || { cat gui.err >&2; tail -20 "$CRM_DESKTOP_HOME/logs/crm-desktop.log" >&2
                               fail "no succeeded run within 180 s"; }
    sleep 2
    waited=$((waited + 2))
done
kill -TERM "$gui_pid"
status=0
wait "$gui_pid" || status=$?
gui_pid=""
[ "$status" = 0 ] || { cat gui.err >&2; fail "the window exited with status $status on SIGTERM"; }
log="$CRM_DESKTOP_HOME/logs/crm-desktop.log"
grep -q "sync process [0-9]* started" "$log" || fail "the run did not go to the sync process (see $log)"
runs=$("$APP" runs list --integration smoke --json)
echo "$runs" | grep -q '"created": 3' || { echo "$runs" >&2; fail "the run did not create the 3 contacts"; }
unexpected=$(grep -v "This plugin does not support propagateSizeHints()" gui.err || true)
[ -z "$unexpected" ] || fail "the window wrote to stderr: $unexpected"
echo "ok: the window's scheduled sync ran in its sync process (done within about $waited s): 3 contacts created"
