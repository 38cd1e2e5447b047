"""A workspace: one data dir with its store, vault and the services built on them."""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from crm_desktop.app.alerts import AlertService
from crm_desktop.app.crm_actions import CrmActions
from crm_desktop.app.history_retention import HistoryRetentionService
from crm_desktop.app.integrations import IntegrationService, rotate_after_days
from crm_desktop.app.paths import AppPaths, resolve_paths
from crm_desktop.app.preferences import PreferencesService
from crm_desktop.app.settings import NetworkSettingsService, SyncPreviewSetting
from crm_desktop.app.social import SocialService
from crm_desktop.app.sync_monitor import SyncMonitorService
from crm_desktop.app.sync_process import SyncProcess
from crm_desktop.app.sync_service import SyncResult, SyncService
from crm_desktop.domain.models import Integration
from crm_desktop.store.database import Database, MigrationReport
from crm_desktop.store.repositories import ContactStore, IntegrationStore, LeadStore
from crm_desktop.store.settings import WorkspaceSettingsStore
from crm_desktop.store.sync_store import SyncStore
from crm_desktop.vault import Vault
from crm_desktop.vault.relayed import relay_to

if TYPE_CHECKING:
    from crm_desktop.providers.factory import Transport

logger = logging.getLogger(__name__)


@dataclass
class Workspace:
    """Everything the GUI and CLI share for one data dir.

    Attributes:
        paths: where things live.
        database: the migrated store.
        vault: the OS keyring, its entries under this workspace's own service name.
        migration: what the start-up migration did.
        integrations: the integrations service.
        contacts: local contacts.
        leads: local leads.
        crm: one-shot CRM actions (test, push a file, fetch, sign in).
        sync: the sync service (runs, schedule, conflicts, history, undo, mappings, import).
        network: the proxy and trust settings every adapter and sign-in uses.
        social: social events in (identity stitching), engagement scores and attribution out.
        monitor: every sync attempt's figures, each integration's health, a run's errors and their retry.
        preferences: the desktop's settings (local API, background syncing, notifications, theme).
        alerts: failed runs, refused sign-ins, low quotas and data-quality issues, kept for the Alerts view.
        history: prunes runs older than the history retention setting (none unless the marketer chose a limit).
    """

    paths: AppPaths
    database: Database
    vault: Vault
    migration: MigrationReport
    integrations: IntegrationService
    contacts: ContactStore
    leads: LeadStore
    crm: CrmActions
    sync: SyncService
    network: NetworkSettingsService
    social: SocialService
    monitor: SyncMonitorService
    preferences: PreferencesService
    alerts: AlertService
    history: HistoryRetentionService

    @classmethod
    def open(
        cls, data_dir: str | Path | None = None, vault: Vault | None = None, transport: Transport | None = None
    ) -> Workspace:
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
        settings_store = WorkspaceSettingsStore(database)
        vault = workspace_vault(vault or Vault(), settings_store, migration)
        integrations = IntegrationService(
            IntegrationStore(database), vault, rotate_after_days=rotate_after_days(os.environ),
            locks=SyncStore(database),
        )
        network = NetworkSettingsService(settings_store, vault)
        crm = CrmActions(integrations, transport=transport, network=network.network, locks=SyncStore(database))
        sync = SyncService(database, integrations, crm)
        preferences = PreferencesService(settings_store)
        return cls(
            paths=paths,
            database=database,
            vault=vault,
            migration=migration,
            integrations=integrations,
            contacts=ContactStore(database),
            leads=LeadStore(database),
            crm=crm,
            sync=sync,
            network=network,
            social=SocialService(database),
            monitor=SyncMonitorService(database, sync, SyncPreviewSetting(settings_store)),
            preferences=preferences,
            alerts=AlertService(database),
            history=HistoryRetentionService(database, preferences),
        )

    def run_syncs_in_process(self) -> bool:
        """Run full syncs from now on in a child process (see :mod:`crm_desktop.app.sync_process`); ``False``,
        and runs stay in this process, when the workspace talks to its CRMs through a transport of its own (an
        in-process sandbox), which another process cannot reach."""
        if self.crm.transport is not None:
            logger.info("syncs run in this process: the workspace's CRMs are reached through an in-process transport")
            return False
        keyring = relay_to(self.vault.backend)  # the child's credentials stay in this process's keyring
        self.sync.run_in_process(SyncProcess(self.paths.data_dir, self.paths.database_url, keyring))
        return True

    def keep_alerts_of_runs(self) -> None:
        """From now on, keep the alerts of every run that ends in this process (a refused sign-in, a failed run,
        records the CRM refused), as the window does for its own: for ``sync --due`` from cron and ``serve``, which
        sync with no one watching, so that the Alerts view lists what they met when the app next opens."""

        def keep(integration: Integration, outcome: SyncResult | Exception) -> None:
            try:
                self.alerts.alerts_for_run(integration, outcome)
            except Exception as exc:  # the store cannot take the alert: the run's own outcome is recorded still
                logger.warning("cannot record the alerts of the run of %s: %s", integration.name, exc)

        self.sync.add_run_listener(keep)

    def close(self) -> None:
        """Stop the sync worker and release the database connections."""
        self.sync.close()
        self.database.close()


#: Store key of the workspace's identity, which names its keyring entries.
IDENTITY_KEY = "workspace.identity"


def workspace_vault(vault: Vault, settings: WorkspaceSettingsStore, migration: MigrationReport) -> Vault:
    """``vault`` with its entries named by the workspace's identity, which is made at the first open.

    The identity lives in the workspace's database, so the desktops of a team on one database share it (each with
    its own keyring), while two data dirs on one computer never share an entry. A database that existed before
    identities were kept (``migration.from_revision`` set) may have its credentials in the keyring under the old
    shared names: its vault adopts them at their first read. A new one has nothing there to adopt (what is there
    belongs to another workspace), so its vault never looks.
    """
    identity = settings.setdefault(IDENTITY_KEY, {
        "id": str(uuid.uuid4()),
        "adoptSharedKeyringEntries": migration.from_revision is not None,
    })
    return vault.for_workspace(str(identity["id"]), adopt_shared=bool(identity.get("adoptSharedKeyringEntries")))
