"""Engine, sessions and migrations of the local store (SQLite by default, PostgreSQL for teams)."""

from __future__ import annotations

import ast
import logging
import re
import sqlite3
import time
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    # Alembic (and Mako under it) costs a second of a cold start: imported only when a migration is due.
    from alembic.config import Config
    from alembic.script import ScriptDirectory

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

#: Keys per ``IN (...)`` list, well under SQLite's and PostgreSQL's parameter limits.
IN_LIST_SIZE = 500

KeyT = TypeVar("KeyT")


def in_list_chunks(keys: Sequence[KeyT]) -> Iterator[Sequence[KeyT]]:
    """``keys`` in slices of :data:`IN_LIST_SIZE`, one ``IN (...)`` list each."""
    for start in range(0, len(keys), IN_LIST_SIZE):
        yield keys[start : start + IN_LIST_SIZE]


class StoreConfigError(Exception):
    """The database URL or file cannot be used; the message says what to fix."""


class StoreUnavailableError(Exception):
    """The database did not answer in time: another program held the SQLite file longer than the wait, or the
    server could not be reached. Nothing of the work was written; trying again later is safe.

    Attributes:
        reason: what did not answer and why, without what that means for the work (which the message adds).
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


@dataclass(frozen=True)
class MigrationReport:
    """What :func:`upgrade_to_head` did.

    Attributes:
        from_revision: the schema revision found (``None`` for an empty database).
        to_revision: the head revision now in place.
        backup: the copy of the SQLite file made before migrating, if one was needed.
    """

    from_revision: str | None
    to_revision: str
    backup: Path | None


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path}"


#: A SQLite function folding case the way Python does, for every alphabet: SQLite's own LIKE and lower() fold
#: ASCII letters only, so "émile" would never find "Émile" (PostgreSQL's ILIKE folds them itself).
CASEFOLD_FUNCTION = "crm_casefold"


def casefolded(text: str) -> str:
    """``text`` folded for a search: composed (an "é" written as e + accent, as macOS files have it, is "é") and
    case-folded in every alphabet."""
    return unicodedata.normalize("NFC", text).casefold()


def _casefold(value: object) -> str | None:
    return None if value is None else casefolded(str(value))


def _on_sqlite_connect(dbapi_connection: Any, connection_record: Any) -> None:
    dbapi_connection.create_function(CASEFOLD_FUNCTION, 1, _casefold, deterministic=True)
    cursor = dbapi_connection.cursor()
    # First: what follows may wait for another writer (a sync, another program holding the file).
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Taken by a new file only (before its first table): a pruned run history's pages can then be given back to the
    # disk a few at a time (store/history_store.py); an older file is rewritten once for it. Asked of a file with
    # tables, the pragma changes nothing but still takes the write lock: a start while a sync wrote would wait.
    if cursor.execute("PRAGMA page_count").fetchone()[0] == 0:
        cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create the engine for ``url``: SQLite gets WAL and foreign keys; others get pre-ping.

    Raises:
        StoreConfigError: when the URL cannot be read or names a driver that is not installed.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreConfigError(
            "CRM_DESKTOP_DB_URL is not a database URL; expected e.g. "
            "sqlite:////path/crm.db or postgresql+psycopg://user@host/db"
        ) from None
    except ValueError:
        # SQLAlchemy's own int() of the port, a traceback otherwise (its text names the port, never the password).
        raise StoreConfigError(
            "CRM_DESKTOP_DB_URL is not a database URL: its port is not a number; expected e.g. "
            "postgresql+psycopg://user@host:5432/db"
        ) from None
    try:
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            # A small pool: opening a SQLite connection (and its pragmas) per session costs half a sync.
            engine = create_engine(url, pool_size=5, max_overflow=10)
            event.listen(engine, "connect", _on_sqlite_connect)
            return engine
        return create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise StoreConfigError(
            f"the database driver {exc.name!r} is not installed; for PostgreSQL install crm-desktop[postgres]"
        ) from None
    except NoSuchModuleError:
        raise StoreConfigError(
            f"CRM Desktop cannot use {parsed.drivername!r} databases; "
            "use sqlite:////path/crm.db or postgresql+psycopg://user@host/db"
        ) from None
    except OSError as exc:
        raise StoreConfigError(f"cannot create the folder of the database file: {exc.strerror}") from None


def _alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction for Alembic; on SQLite with its foreign keys off until the end.

    SQLite cannot alter a constraint, so a migration copies the table into a new one, drops the old and renames the
    copy. With foreign keys on, that ``DROP TABLE`` is a ``DELETE`` of every row first, and it runs each ``ON DELETE``
    of the tables that point at it: rebuilding ``sync_runs`` deleted every run's record log and unlinked its audit
    rows. The foreign keys are checked once the migration has run, and a broken one rolls it back.

    Raises:
        StoreConfigError: when the migrated rows break a foreign key (nothing is committed).
    """
    on_sqlite = engine.url.get_backend_name() == "sqlite"
    with engine.connect() as connection:
        if on_sqlite:
            # A no-op inside a transaction, so set before the migration's begins.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                yield connection
                if on_sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        table, row_id, parent = broken[0][0], broken[0][1], broken[0][2]
                        rows = "1 row" if len(broken) == 1 else f"{len(broken)} rows"
                        raise StoreConfigError(
                            f"the migration left {rows} pointing at missing ones "
                            f"(first: {table} row {row_id} -> {parent}); nothing was changed"
                        )
        finally:
            if on_sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def migrate_to(engine: Engine, revision: str, *, downgrade: bool = False) -> None:
    """Upgrade (or, with ``downgrade``, downgrade) the schema to ``revision`` ("head": the newest), safely on SQLite.

    Raises:
        StoreConfigError: see :func:`migration_connection`.
    """
    from alembic import command

    config = _alembic_config(engine)
    with migration_connection(engine) as connection:
        config.attributes["connection"] = connection
        (command.downgrade if downgrade else command.upgrade)(config, revision)


def head_revision() -> str:
    """The newest migration shipped with this version of the app."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config(create_engine("sqlite://"))).get_current_head()
    if head is None:
        raise RuntimeError("no migrations shipped with the package")
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision of the database (``None`` when it was never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


#: ``revision = "0013"`` / ``down_revision: str | None = "0012"`` at the start of a line of a migration script.
_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.MULTILINE)


def shipped_head_from_scripts() -> str | None:
    """The one head of the shipped migrations, read from the scripts' text without importing them.

    ``None`` when that reading is not certain (a script without a plain ``revision``, a branch with two heads):
    the caller then asks Alembic.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        assigned: dict[str, object] = {}
        for name, value in _REVISION_LINE.findall(script.read_text(encoding="utf-8")):
            try:
                assigned.setdefault(name, ast.literal_eval(value))
            except (ValueError, SyntaxError):
                return None
        revision, down = assigned.get("revision"), assigned.get("down_revision")
        if not isinstance(revision, str) or "down_revision" not in assigned:
            return None
        revisions.add(revision)
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple | list):
            parents.update(str(parent) for parent in down)
        elif down is not None:
            return None
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _stored_revisions(engine: Engine) -> list[str] | None:
    """The rows of ``alembic_version``; ``None`` when they cannot be read (no such table, no database)."""
    try:
        with engine.connect() as connection:
            return [str(row[0]) for row in connection.execute(text("SELECT version_num FROM alembic_version"))]
    except DatabaseError:
        return None


def backup_sqlite(database: Path, revision: str | None) -> Path:
    """Copy a SQLite database (WAL included, consistently) to a timestamped file next to it."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = database.with_name(f"{database.name}.{revision or 'empty'}.{stamp}.bak")
    source = sqlite3.connect(database)
    try:
        destination = sqlite3.connect(target)
        try:
            source.backup(destination)
        finally:
            destination.close()
    finally:
        source.close()
    logger.info("backed up the store to %s before migrating", target)
    return target


def _is_known_revision(scripts: ScriptDirectory, revision: str) -> bool:
    from alembic.util import CommandError

    # Alembic raises for a revision it has no script of, rather than returning None.
    try:
        return scripts.get_revision(revision) is not None
    except CommandError:
        return False


def _at_shipped_head(engine: Engine) -> MigrationReport | None:
    """The report of a database already at the shipped head, found without Alembic; ``None`` when it is not (or
    that cannot be told from the scripts' text)."""
    shipped = shipped_head_from_scripts()
    if shipped is not None and _stored_revisions(engine) == [shipped]:
        return MigrationReport(shipped, shipped, None)
    return None


def upgrade_to_head(engine: Engine) -> MigrationReport:
    """Run ``alembic upgrade head``; back up an existing SQLite file first when a migration is pending.

    A database already at the head is recognised without Alembic (a start of the app, every time but after an
    update): the head is read from the scripts' text and compared with ``alembic_version``.

    Raises:
        StoreConfigError: when the database cannot be reached or is newer than this app.
    """
    at_head = _at_shipped_head(engine)
    if at_head is not None:
        return at_head
    from alembic.script import ScriptDirectory

    head = head_revision()
    try:
        found = current_revision(engine)
    except DatabaseError as exc:
        # OperationalError (unreachable server, locked file) and "file is not a database" alike.
        raise StoreConfigError(f"cannot open the database: {exc.orig}") from None
    if found == head:
        return MigrationReport(found, head, None)
    scripts = ScriptDirectory.from_config(_alembic_config(engine))
    if found is not None and not _is_known_revision(scripts, found):
        raise StoreConfigError(
            f"the database is at schema {found!r}, newer than this version of CRM Desktop knows; update the app"
        )
    backup: Path | None = None
    url: URL = engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        database = Path(url.database)
        if found is not None and database.exists() and database.stat().st_size > 0:
            backup = backup_sqlite(database, found)
    try:
        migrate_to(engine, "head")
    except DatabaseError:
        # Two first starts at once (the app and a cron command on a new store): the other one is migrating, and
        # its tables are in ours' way. Once it is done the store is at the head, and this start goes on.
        if not _reaches_head(engine, head):
            raise
        logger.info("store migrated to %s by another process meanwhile", head)
        return MigrationReport(found, head, backup)
    logger.info("store migrated from %s to %s", found, head)
    return MigrationReport(found, head, backup)


def _reaches_head(engine: Engine, head: str, wait_seconds: float = 60.0) -> bool:
    """Whether the store's schema reaches ``head`` within ``wait_seconds`` (another process migrating it)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        if _stored_revisions(engine) == [head]:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


class Database:
    """The store's engine and session factory.

    Attributes:
        url: the database URL (never logged with its password).
        engine: the SQLAlchemy engine.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> MigrationReport:
        """Bring the schema to the newest revision (see :func:`upgrade_to_head`).

        On an engine of its own, disposed of afterwards (but for an in-memory SQLite database, which lives in its
        engine): an engine's dialect keeps every column type it has compiled, and through them the tables of every
        migration script, for as long as it lives (about 28,000 objects that Python's full garbage collections of
        the app's whole session would walk again and again, each one a pause of the window). A store already at
        the head (every start but the first after an update) is told so on the app's own engine, which reads one
        plain row and compiles no migration's tables, so that engine is never built.
        """
        if self.engine.url.get_backend_name() == "sqlite" and self.engine.url.database in (None, "", ":memory:"):
            return upgrade_to_head(self.engine)
        at_head = _at_shipped_head(self.engine)
        if at_head is not None:
            return at_head
        migrating = make_engine(self.url)
        try:
            return upgrade_to_head(migrating)
        finally:
            migrating.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on error."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except OperationalError as exc:
                session.rollback()
                # A locked file or an unreachable server: said in a sentence (the CLI exits 1 with "store_busy",
                # the app shows it), never a traceback. Nothing was committed.
                reason = (f"the local store did not answer ({self.describe()}): "
                          f"{str(exc.orig).strip() or type(exc.orig).__name__}")
                raise StoreUnavailableError(f"{reason}; nothing was written, try again in a moment", reason) from exc
            except BaseException:
                session.rollback()
                raise

    def delete_by_key(self, row_class: type[Any], key: Any) -> bool:
        """Delete the ``row_class`` row whose primary key is ``key``; ``False`` when there was none."""
        with self.session() as session:
            row = session.get(row_class, key)
            if row is None:
                return False
            session.delete(row)
            return True

    @property
    def is_sqlite(self) -> bool:
        return self.engine.url.get_backend_name() == "sqlite"

    def describe(self) -> str:
        """The URL with any password hidden, for messages and logs (libpq also takes one as a query parameter)."""
        url = self.engine.url
        if "password" not in url.query:
            return url.render_as_string(hide_password=True)
        rest = url.difference_update_query(["password"])
        return rest.render_as_string(hide_password=True) + ("&" if rest.query else "?") + "password=***"

    def close(self) -> None:
        self.engine.dispose()
