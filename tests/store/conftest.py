"""Store fixtures: a fresh migrated database per test, on SQLite or, with CRM_DESKTOP_DB_URL, on PostgreSQL.

With ``CRM_DESKTOP_DB_URL`` set (CI's second pass, or ``python -m tests.support.postgres start``), every test gets
the PostgreSQL database with its ``public`` schema dropped and made anew; otherwise a new SQLite file in the test's
temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url

from crm_desktop.store.database import Database, sqlite_url
from tests.support.postgres import reset_postgres_schema

DB_URL_ENV = "CRM_DESKTOP_DB_URL"


def postgres_url() -> str | None:
    """The PostgreSQL URL the suite runs against, or ``None`` for SQLite."""
    return os.environ.get(DB_URL_ENV) or None


def pytest_report_header(config: pytest.Config) -> str:
    """Say in pytest's header which backend the store suite runs on."""
    url = postgres_url()
    if url is None:
        return "store backend: SQLite (set CRM_DESKTOP_DB_URL to run on PostgreSQL too)"
    return f"store backend: {make_url(url).render_as_string(hide_password=True)}"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The URL of an empty database: the reset PostgreSQL one, or a new SQLite file."""
    url = postgres_url()
    if url is None:
        return sqlite_url(tmp_path / "store" / "crm.db")
    backend = make_url(url).get_backend_name()
    if backend != "postgresql":
        pytest.fail(f"{DB_URL_ENV} must name a PostgreSQL database for the store suite, not {backend}")
    reset_postgres_schema(url)
    return url


@pytest.fixture
def blank_database(database_url: str) -> Iterator[Database]:
    """A store on an empty, never migrated database."""
    database = Database(database_url)
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def database(blank_database: Database) -> Database:
    """A store migrated to the newest schema."""
    blank_database.migrate()
    return blank_database


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite store whatever the backend of the run (for what only SQLite has: a file, pragmas)."""
    database = Database(sqlite_url(tmp_path / "sqlite" / "crm.db"))
    database.migrate()
    try:
        yield database
    finally:
        database.close()
