"""Where CRM Desktop keeps its data: the data dir, the database URL and the logs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_data_dir

APP_NAME = "crm-desktop"
APP_AUTHOR = "CRM Desktop"
HOME_ENV = "CRM_DESKTOP_HOME"
DB_URL_ENV = "CRM_DESKTOP_DB_URL"


@dataclass(frozen=True)
class AppPaths:
    """Resolved locations of one workspace.

    Attributes:
        data_dir: the folder holding the database, logs and demo state.
        database_url: the SQLAlchemy URL of the store.
        log_file: the rotating log file.
    """

    data_dir: Path
    database_url: str
    log_file: Path

    @property
    def database_file(self) -> Path | None:
        """The SQLite file, when the store is the default SQLite database."""
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix):
            return Path(self.database_url[len(prefix) :])
        return None


def resolve_paths(data_dir: str | Path | None = None) -> AppPaths:
    """Resolve paths: ``data_dir`` argument, else ``CRM_DESKTOP_HOME``, else the platform's user data dir.

    ``CRM_DESKTOP_DB_URL`` selects another database than the SQLite file in the data dir.
    """
    if data_dir is not None:
        base = Path(data_dir)
    elif os.environ.get(HOME_ENV):
        base = Path(os.environ[HOME_ENV])
    else:
        base = Path(user_data_dir(APP_NAME, APP_AUTHOR))
    base = base.expanduser().resolve()
    url = os.environ.get(DB_URL_ENV) or f"sqlite:///{base / 'crm-desktop.db'}"
    return AppPaths(data_dir=base, database_url=url, log_file=base / "logs" / "crm-desktop.log")
