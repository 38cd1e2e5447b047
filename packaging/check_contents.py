"""Fail the build when the package holds what the app does not need (test, lint, build or benchmark packages).

Usage (packaging/build.sh): ``python packaging/check_contents.py build/pyinstaller/crm-desktop/PYZ-00.toc
dist/crm-desktop/_internal``: the first is PyInstaller's table of the frozen modules, the second the bundled files.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

#: Top-level packages the venv holds for tests, linting, the benchmark or the build, never for the app.
UNWANTED = {
    "tests", "bench", "pytest", "_pytest", "pytestqt", "mypy", "ruff", "respx", "trustme", "proxy",
    "schemathesis", "hypothesis", "hubspot", "simple_salesforce", "uvloop", "httptools", "PyInstaller",
    "setuptools", "pip", "Cython", "PIL",
}
#: Packages the app cannot work without (a missing one is a broken build, not a lean one).
REQUIRED = {"crm_desktop", "PySide6", "alembic", "sqlalchemy", "fastapi", "uvicorn", "starlette", "httpx",
            "truststore", "certifi", "keyring", "qasync", "pydantic"}


def problems(toc_file: Path, internal: Path) -> list[str]:
    """What is wrong with the package, one line each (empty: nothing)."""
    entries = ast.literal_eval(toc_file.read_text())
    frozen = {entry[0].split(".")[0] for entry in (entries[1] if isinstance(entries, tuple) else entries)}
    files = {path.name.split("-")[0].split(".")[0] for path in internal.iterdir()}
    found = []
    extra = sorted((frozen | files) & UNWANTED)
    if extra:
        found.append(f"holds what the app does not need: {', '.join(extra)}")
    webengine = sorted(p.name for p in internal.joinpath("PySide6").glob("*WebEngine*"))
    if webengine:
        found.append(f"holds QtWebEngine: {', '.join(webengine)}")
    missing = sorted(REQUIRED - frozen - files)
    if missing:
        found.append(f"misses what the app needs: {', '.join(missing)}")
    for folder in ("crm_desktop/store/migrations/versions", "crm_desktop/resources/icons"):
        if not any(internal.joinpath(folder).glob("*")):
            found.append(f"misses {folder}")
    return found


def main(argv: list[str]) -> int:
    found = problems(Path(argv[1]), Path(argv[2]))
    for line in found:
        sys.stderr.write(f"package check: {line}\n")
    if not found:
        print("package check: only what the app needs")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
