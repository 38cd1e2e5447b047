#!/bin/sh
# Create the virtual environment with CRM Desktop installed editable, with its test tools.
set -eu
PYTHON="$1"; VENV="$2"
if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    # Debian's own python3 needs python3-venv for `-m venv`.
    if [ "$(id -u)" = 0 ]; then apt-get install -y -q python3-venv >/dev/null || { apt-get update -q >/dev/null; apt-get install -y -q python3-venv >/dev/null; }
    else sudo -n apt-get install -y -q python3-venv >/dev/null; fi
    rm -rf "$VENV"; "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -m pip install -q -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -c "import crm_desktop, PySide6, pytestqt" >/dev/null
