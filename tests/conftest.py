"""Test-wide isolation: a fresh data dir per test, an in-memory keyring unless a test needs the real one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

from tests.support.memory_keyring import MemoryKeyring

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def isolated_home(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point CRM_DESKTOP_HOME at a fresh folder; keep CRM_DESKTOP_DB_URL only for the store suite."""
    home = tmp_path / "crm-home"
    monkeypatch.setenv("CRM_DESKTOP_HOME", str(home))
    # The app serves its local API while open: on a free port, so tests never fight over the default one.
    monkeypatch.setenv("CRM_DESKTOP_API_PORT", "0")
    if "store" not in Path(str(request.node.path)).parts:
        monkeypatch.delenv("CRM_DESKTOP_DB_URL", raising=False)
    return home


@pytest.fixture(autouse=True)
def memory_keyring(request: pytest.FixtureRequest) -> Iterator[MemoryKeyring | None]:
    """Every test gets an empty in-memory keyring, except those marked ``secret_service``."""
    if request.node.get_closest_marker("secret_service"):
        yield None
        return
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """respx mocks at the httpx client (``using="httpx"``), whatever transport the client was given."""
    for item in items:
        if "respx_mock" in getattr(item, "fixturenames", ()) and item.get_closest_marker("respx") is None:
            item.add_marker(pytest.mark.respx(using="httpx"))
