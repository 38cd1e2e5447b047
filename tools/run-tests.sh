#!/bin/sh
# Run the whole test suite the way CI does: inside a D-Bus session with an unlocked gnome-keyring (the real
# Secret Service for the vault tests), Qt offscreen (one test starts the app on Xvfb), then the team-mode suites
# again on a throwaway PostgreSQL 15.
set -eu
VENV="${1:-.venv}"
[ $# -gt 0 ] && shift
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/$VENV/bin/python"
[ -x "$PY" ] || PY="$VENV/bin/python"

WORK="$(mktemp -d)"
export XDG_DATA_HOME="$WORK/xdg-data" XDG_CONFIG_HOME="$WORK/xdg-config" XDG_CACHE_HOME="$WORK/xdg-cache"
export QT_QPA_PLATFORM=offscreen
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" "$XDG_CACHE_HOME"

# A throwaway PostgreSQL 15 cluster for the team-store pass (initdb refuses root, hence runuser).
PGBIN=/usr/lib/postgresql/15/bin
PGDATA="$WORK/pg"
PGPORT="${CRM_TEST_PG_PORT:-54329}"
pg_as() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
stop_pg() { [ -f "$PGDATA/data/postmaster.pid" ] && pg_as "$PGBIN/pg_ctl" -D "$PGDATA/data" -m fast -w stop >/dev/null 2>&1 || true; }
cleanup() { stop_pg; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

PG_URL=""
if [ -x "$PGBIN/initdb" ]; then
    mkdir -p "$PGDATA"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$PGDATA" && chmod 755 "$WORK"
    pg_as "$PGBIN/initdb" -D "$PGDATA/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    pg_as "$PGBIN/pg_ctl" -D "$PGDATA/data" -l "$PGDATA/pg.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGDATA -c fsync=off" start >/dev/null
    pg_as "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres crm_test
    PG_URL="postgresql+psycopg://postgres@127.0.0.1:$PGPORT/crm_test"
elif [ "${CRM_DESKTOP_REQUIRE_POSTGRES:-0}" = 1 ]; then
    echo "PostgreSQL 15 is required (apt-get install postgresql)" >&2; exit 1
else
    echo "note: PostgreSQL 15 not installed; the team-mode suites run on SQLite only" >&2
fi

# pytest-xdist spreads the test files over one worker per core, at most four (each worker peaks near 600 MB): one
# process took 91 minutes on 2 cores. CRM_TEST_WORKERS overrides (0: every test in this one process).
WORKERS="${CRM_TEST_WORKERS:-$(nproc)}"
[ "$WORKERS" -gt 4 ] && WORKERS=4
export WORKERS

# The theme test runs the app on Xvfb with a desktop portal on a bus of its own (tests/ui/test_theme_follows_desktop.py).
export CRM_DESKTOP_REQUIRE_SECRET_SERVICE=1 CRM_DESKTOP_REQUIRE_XVFB=1 PG_URL PY
dbus-run-session -- sh -c '
    set -eu
    printf crm-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null
    echo "== full suite (SQLite, real Secret Service, Qt offscreen)"
    "$PY" -m pytest -n "$WORKERS" --dist loadfile "$@"
    if [ -n "$PG_URL" ]; then
        # The team-mode suites (store, sync engine and lock, scheduler, CLI sync, sync process); tests/conftest.py
        # lists them and gives each test an empty schema, each worker a database of its own. The crash drill stays
        # on SQLite (see SQLITE_ONLY_FILES there).
        echo "== team-mode suites on PostgreSQL 15"
        CRM_DESKTOP_DB_URL="$PG_URL" "$PY" -m pytest -n "$WORKERS" --dist loadfile tests/store tests/sync \
            tests/ui/test_scheduler.py tests/test_cli_sync.py tests/app/test_sync_process.py \
            --ignore=tests/sync/test_crash_drill.py "$@"
    fi
' run-tests "$@"
