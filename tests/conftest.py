"""Test-wide isolation: a fresh data dir per test, an in-memory keyring unless a test needs the real one."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

from crm_desktop.store.models import Base
from tests.support.memory_keyring import MemoryKeyring
from tests.support.postgres import database_of_its_own, reset_postgres_schema

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TESTS_ROOT = Path(__file__).resolve().parent
DB_URL_ENV = "CRM_DESKTOP_DB_URL"
#: The suites that run a second time on PostgreSQL when CRM_DESKTOP_DB_URL is set (tools/run-tests.sh does).
POSTGRES_SUITES = ("store", "sync", "ui/test_scheduler.py", "test_cli_sync.py", "app/test_sync_process.py")
#: Files of those suites that stay on SQLite: the crash drill's workers (tests/sync/crash_worker.py) drop
#: CRM_DESKTOP_DB_URL and push from the workspace's SQLite file, which the drill then checks.
SQLITE_ONLY_FILES = frozenset({"sync/test_crash_drill.py"})


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker of the PostgreSQL pass works in a database of its own (``crm_test_gw0``, ...)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and os.environ.get(DB_URL_ENV):
        os.environ[DB_URL_ENV] = database_of_its_own(os.environ[DB_URL_ENV], worker)


def runs_on_postgres(test_file: Path) -> bool:
    """Whether a test file is part of the PostgreSQL pass (CRM_DESKTOP_DB_URL set), as listed in POSTGRES_SUITES."""
    if not test_file.resolve().is_relative_to(TESTS_ROOT):
        return False
    relative = test_file.resolve().relative_to(TESTS_ROOT).as_posix()
    if relative in SQLITE_ONLY_FILES:
        return False
    return any(relative == suite or relative.startswith(f"{suite}/") for suite in POSTGRES_SUITES)


@pytest.fixture(autouse=True)
def isolated_home(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point CRM_DESKTOP_HOME at a fresh folder; keep CRM_DESKTOP_DB_URL only for the suites that run on it.

    Outside the store suite (which resets the database in its own fixtures), a test of the PostgreSQL pass starts
    on an empty ``public`` schema, as a new SQLite file would be empty.
    """
    home = tmp_path / "crm-home"
    monkeypatch.setenv("CRM_DESKTOP_HOME", str(home))
    # The app serves its local API while open: on a free port, so tests never fight over the default one.
    monkeypatch.setenv("CRM_DESKTOP_API_PORT", "0")
    test_file = Path(str(request.node.path))
    if not runs_on_postgres(test_file):
        monkeypatch.delenv(DB_URL_ENV, raising=False)
    elif os.environ.get(DB_URL_ENV) and "store" not in test_file.parts:
        reset_postgres_schema(os.environ[DB_URL_ENV])
    return home


@pytest.fixture(autouse=True)
def mappers_forget_the_test_engine() -> Iterator[None]:
    """After each test, empty the ORM mappers' statement caches, which are keyed by dialect.

    Each test opens its own engine; kept in those caches, every engine's dialect stayed alive with what it had
    seen (the migrations' tables among it), about 7,600 objects a test: a worker grew past 1.5 GB, and every
    full garbage collection (one per UI test, in tests/ui/conftest.py) took seconds. The app opens one engine.
    """
    yield
    for mapper in Base.registry.mappers:
        mapper._compiled_cache.clear()


@pytest.fixture(autouse=True)
def fastapi_forgets_the_test_api() -> Iterator[None]:
    """After each test, empty FastAPI's caches of endpoint functions (4,096 entries each).

    The local API's endpoints close over their workspace; kept in those caches, every test that served the API kept
    its workspace alive (engine, stores, sandbox answers) to the end of the run. The app builds its API once or twice.
    """
    yield
    models = sys.modules.get("fastapi.dependencies.models")
    for value in vars(models).values() if models else ():
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()


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


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The desktop's local time zone is Berlin for the test (UTC+1 in winter, UTC+2 in summer)."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
