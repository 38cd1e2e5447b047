"""A workspace: one data dir with its store, vault and the services built on them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from crm_desktop.app.integrations import IntegrationService
from crm_desktop.app.paths import AppPaths, resolve_paths
from crm_desktop.store.database import Database, MigrationReport
from crm_desktop.store.repositories import ContactStore, IntegrationStore, LeadStore
from crm_desktop.vault import Vault

logger = logging.getLogger(__name__)


@dataclass
class Workspace:
    """Everything the GUI and CLI share for one data dir.

    Attributes:
        paths: where things live.
        database: the migrated store.
        vault: the OS keyring.
        migration: what the start-up migration did.
        integrations: the integrations service.
        contacts: local contacts.
        leads: local leads.
    """

    paths: AppPaths
    database: Database
    vault: Vault
    migration: MigrationReport
    integrations: IntegrationService
    contacts: ContactStore
    leads: LeadStore

    @classmethod
    def open(cls, data_dir: str | Path | None = None, vault: Vault | None = None) -> Workspace:
        """Open (creating if needed) the workspace and bring its store to the newest schema.

        Raises:
            StoreConfigError: when the database cannot be used.
        """
        paths = resolve_paths(data_dir)
        paths.data_dir.mkdir(parents=True, exist_ok=True)
        database = Database(paths.database_url)
        migration = database.migrate()
        if migration.backup is not None:
            logger.info("store backed up to %s before migrating", migration.backup)
        vault = vault or Vault()
        return cls(
            paths=paths,
            database=database,
            vault=vault,
            migration=migration,
            integrations=IntegrationService(IntegrationStore(database), vault),
            contacts=ContactStore(database),
            leads=LeadStore(database),
        )

    def close(self) -> None:
        """Release the database connections."""
        self.database.close()
