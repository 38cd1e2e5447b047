"""Fixtures of the app services' tests: an empty workspace on a SQLite file of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_desktop.app.workspace import Workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """An empty workspace (a test module may give its own, wired to a sandbox)."""
    opened = Workspace.open(tmp_path / "D")
    try:
        yield opened
    finally:
        opened.close()


def write(path: Path, text: str) -> Path:
    """``text`` written to ``path`` in UTF-8; the path."""
    path.write_text(text, encoding="utf-8")
    return path
