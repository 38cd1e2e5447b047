"""Start and stop a throwaway PostgreSQL 15 cluster for the store suite: `python -m tests.support.postgres start|stop`.

``start`` runs initdb in a fresh temporary folder, starts the server on 127.0.0.1 (a free port unless ``--port``
is given), creates the ``crm_test`` database and prints its SQLAlchemy URL, so a shell can do::

    export CRM_DESKTOP_DB_URL="$(python -m tests.support.postgres start)"
    pytest tests/store
    python -m tests.support.postgres stop

The cluster's folder, port and URL are kept in a state file (``--state``, default in the temp dir), which ``stop``
reads to shut the server down and delete the folder. Run as root, the server runs as the ``postgres`` user
(initdb refuses root).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

logger = logging.getLogger(__name__)

DATABASE_NAME = "crm_test"
SUPERUSER = "postgres"
DEFAULT_STATE_FILE = Path(tempfile.gettempdir()) / f"crm-desktop-test-postgres-{os.getuid()}.json"
PREFERRED_MAJOR = "15"


class PostgresSetupError(RuntimeError):
    """The throwaway cluster could not be started or stopped; the message says why."""


@dataclass(frozen=True)
class RunningPostgres:
    """A cluster started by :func:`start_cluster`.

    Attributes:
        folder: the temporary folder holding the data dir, the log and the socket.
        port: the TCP port on 127.0.0.1.
        url: the SQLAlchemy URL of the test database.
        bin_dir: where the PostgreSQL programs live.
    """

    folder: str
    port: int
    url: str
    bin_dir: str

    @property
    def data_dir(self) -> Path:
        return Path(self.folder) / "data"

    @property
    def log_file(self) -> Path:
        return Path(self.folder) / "postgres.log"


def reset_postgres_schema(url: str) -> None:
    """Drop everything in the database's ``public`` schema (tables, alembic_version) and make it anew."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


def database_of_its_own(url: str, suffix: str) -> str:
    """The URL of ``<database>_<suffix>`` on the same server, created empty if missing.

    Each pytest-xdist worker of the PostgreSQL pass gets one, as the tests drop and make the ``public`` schema.
    """
    parsed = make_url(url)
    name = f"{parsed.database}_{suffix}"
    engine = create_engine(parsed, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name})
            if exists.first() is None:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def find_bin_dir() -> Path:
    """The folder of initdb/pg_ctl: ``$PGBIN``, else Debian's PostgreSQL 15, else the newest installed.

    Raises:
        PostgresSetupError: when no PostgreSQL server programs are installed.
    """
    candidates: list[Path] = []
    if os.environ.get("PGBIN"):
        candidates.append(Path(os.environ["PGBIN"]))
    candidates.append(Path("/usr/lib/postgresql") / PREFERRED_MAJOR / "bin")
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name, reverse=True)
    candidates.extend(installed)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    raise PostgresSetupError("PostgreSQL server programs not found; install them with: apt-get install postgresql")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    if os.getuid() == 0:
        return ["runuser", "-u", SUPERUSER, "--", *command]
    return command


def _run(command: list[str], what: str) -> None:
    completed = subprocess.run(_as_server_user(command), capture_output=True, text=True, check=False, timeout=120)
    if completed.returncode != 0:
        detail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
        raise PostgresSetupError(f"{what} failed (exit {completed.returncode}): " + " | ".join(detail))


def start_cluster(port: int | None = None) -> RunningPostgres:
    """initdb a fresh cluster in a temporary folder, start it on 127.0.0.1 and create the test database.

    Raises:
        PostgresSetupError: when a step fails (the half-made folder is removed).
    """
    bin_dir = find_bin_dir()
    folder = Path(tempfile.mkdtemp(prefix="crm-desktop-pg-"))
    chosen_port = port or free_port()
    running = RunningPostgres(
        folder=str(folder),
        port=chosen_port,
        url=f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{chosen_port}/{DATABASE_NAME}",
        bin_dir=str(bin_dir),
    )
    if os.getuid() == 0:
        # mkdtemp makes a 0700 folder owned by root; the server runs as postgres.
        shutil.chown(folder, SUPERUSER, SUPERUSER)
    try:
        _run(
            [str(bin_dir / "initdb"), "-D", str(running.data_dir), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
             # As CI's cluster (tools/run-tests.sh): lower() folds every alphabet only in a UTF-8 locale.
             "--locale=C.UTF-8"],
            "initdb",
        )
        server_options = f"-c listen_addresses=127.0.0.1 -p {chosen_port} -k {folder} -c fsync=off"
        _run(
            [str(bin_dir / "pg_ctl"), "-D", str(running.data_dir), "-l", str(running.log_file), "-w", "-o",
             server_options, "start"],
            "pg_ctl start",
        )
        _run(
            [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(chosen_port), "-U", SUPERUSER, DATABASE_NAME],
            "createdb",
        )
    except (PostgresSetupError, subprocess.TimeoutExpired):
        stop_cluster(running)
        raise
    logger.info("PostgreSQL test cluster running in %s on port %d", folder, chosen_port)
    return running


def stop_cluster(running: RunningPostgres) -> None:
    """Stop the server (if it runs) and delete its folder."""
    data_dir = running.data_dir
    if (data_dir / "postmaster.pid").exists():
        try:
            pg_ctl = str(Path(running.bin_dir) / "pg_ctl")
            _run([pg_ctl, "-D", str(data_dir), "-m", "fast", "-w", "stop"], "pg_ctl stop")
        except PostgresSetupError as exc:
            logger.warning("%s", exc)
    shutil.rmtree(running.folder, ignore_errors=True)


def read_state(state_file: Path) -> RunningPostgres | None:
    """The cluster recorded in ``state_file``, if the file exists."""
    if not state_file.exists():
        return None
    return RunningPostgres(**json.loads(state_file.read_text(encoding="utf-8")))


def main(argv: list[str] | None = None) -> int:
    """Command line: ``start`` prints the URL of a running cluster, ``stop`` removes it."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.postgres", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "url"])
    parser.add_argument("--port", type=int, default=None, help="TCP port (default: a free one)")
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE_FILE, help="where the cluster is recorded")
    arguments = parser.parse_args(argv)
    state_file: Path = arguments.state
    recorded = read_state(state_file)
    try:
        if arguments.action == "start":
            if recorded is not None and (recorded.data_dir / "postmaster.pid").exists():
                print(recorded.url)
                return 0
            running = start_cluster(arguments.port)
            state_file.write_text(json.dumps(asdict(running)), encoding="utf-8")
            print(running.url)
            return 0
        if recorded is None:
            print(f"no test cluster recorded in {state_file}", file=sys.stderr)
            return 1 if arguments.action == "url" else 0
        if arguments.action == "url":
            print(recorded.url)
            return 0
        stop_cluster(recorded)
        state_file.unlink(missing_ok=True)
        return 0
    except PostgresSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
