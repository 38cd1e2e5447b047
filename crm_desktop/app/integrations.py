"""Adding, listing, editing and removing integrations, with their credentials in the vault."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crm_desktop.domain.credentials import check_lasting_session, validate_credentials
from crm_desktop.domain.models import Integration
from crm_desktop.store.process_owner import REMOVAL, lock_owner
from crm_desktop.store.repositories import CrmAccountSeen, DuplicateNameError, IntegrationStore
from crm_desktop.store.sync_store import SyncStore
from crm_desktop.sync.lock_refusal import take_lock
from crm_desktop.vault import Vault, VaultError

logger = logging.getLogger(__name__)


#: Days after which the app reminds to rotate an integration's keys, unless ``CRM_DESKTOP_ROTATE_KEYS_DAYS`` says.
DEFAULT_ROTATE_AFTER_DAYS = 90
ROTATE_AFTER_ENV = "CRM_DESKTOP_ROTATE_KEYS_DAYS"


def rotate_after_days(environ: Mapping[str, str]) -> int:
    """The rotation reminder's period in days from the environment (``0`` turns the reminder off).

    A value that is not a whole number of days is ignored, with a warning in the log, rather than stopping the app.
    """
    text = environ.get(ROTATE_AFTER_ENV, "").strip()
    if not text:
        return DEFAULT_ROTATE_AFTER_DAYS
    try:
        days = int(text)
    except ValueError:
        days = -1
    if days < 0:
        logger.warning("%s=%r is not a number of days; reminding after %d days", ROTATE_AFTER_ENV, text,
                       DEFAULT_ROTATE_AFTER_DAYS)
        return DEFAULT_ROTATE_AFTER_DAYS
    return days


@dataclass(frozen=True)
class KeyAge:
    """How old an integration's stored keys are, and whether it is time to rotate them.

    Attributes:
        set_at: when a person last set them.
        days: whole days since.
        rotate_after_days: the reminder's period (``0``: no reminder).
    """

    set_at: datetime
    days: int
    rotate_after_days: int

    @property
    def rotation_due(self) -> bool:
        """Whether the keys are older than the reminder's period."""
        return self.rotate_after_days > 0 and self.days >= self.rotate_after_days

    def text(self) -> str:
        """``set today``, ``set 1 day ago``, ``set 120 days ago``."""
        if self.days == 0:
            return "set today"
        return f"set {self.days} day{'' if self.days == 1 else 's'} ago"


class IntegrationService:
    """What the Integrations panel and ``crm-desktop integration ...`` do, in one place.

    Attributes:
        rotate_after_days: after how many days the app reminds to rotate an integration's keys (``0``: never).
    """

    def __init__(
        self, store: IntegrationStore, vault: Vault, *, rotate_after_days: int = DEFAULT_ROTATE_AFTER_DAYS,
        locks: SyncStore | None = None,
    ) -> None:
        self._store = store
        self._vault = vault
        #: The integrations' sync locks: a removal takes the lock, so it never pulls the store from under a run.
        self._locks = locks
        self.rotate_after_days = rotate_after_days

    def list(self) -> list[Integration]:
        """Every integration, by name."""
        return self._store.list()

    def get(self, name: str) -> Integration:
        """One integration by name (raises ``NotFoundError``)."""
        return self._store.get(name)

    def find(self, name: str) -> Integration | None:
        """The integration with that name, if any."""
        return self._store.find(name)

    def get_by_id(self, integration_id: int) -> Integration:
        """One integration by id (raises ``NotFoundError``)."""
        return self._store.get_by_id(integration_id)

    def add(self, integration: Integration, credentials: dict[str, Any] | None) -> Integration:
        """Create an integration and keep its credentials in the OS keyring; all or nothing.

        Raises:
            CredentialsError: when the credentials do not fit the provider.
            VaultError: when the keyring cannot take them (the integration is then not created).
            DuplicateNameError: when the name is taken.
        """
        checked = self._checked_credentials(integration, credentials)
        if checked is not None:
            ok, message = self._vault.availability()
            if not ok:
                raise VaultError(message)
        saved = self._store.add(integration)
        assert saved.id is not None
        if checked is not None:
            try:
                self._vault.save(saved.id, checked)
            except VaultError:
                self._store.remove(saved.name)
                raise
            self._store.mark_keys_set(saved.id)
            saved = self._store.get_by_id(saved.id)
        logger.info("integration %s (%s) added", saved.name, saved.provider.value)
        return saved

    def update(self, integration: Integration, credentials: dict[str, Any] | None = None) -> Integration:
        """Save an edited integration; replace its credentials when new ones are given.

        The name is checked before the keyring is touched, so a refused edit never leaves new credentials behind
        old settings.

        Raises:
            CredentialsError, VaultError, NotFoundError, DuplicateNameError.
        """
        checked = self._checked_credentials(integration, credentials)
        same_name = self._store.find(integration.name)
        if same_name is not None and same_name.id != integration.id:
            raise DuplicateNameError(f"an integration named {integration.name!r} already exists")
        if checked is not None:
            assert integration.id is not None
            self._vault.save(integration.id, checked)
        saved = self._store.update(integration)
        if checked is not None:
            assert saved.id is not None
            self._store.mark_keys_set(saved.id)
            saved = self._store.get_by_id(saved.id)
            logger.info("credentials of integration %s replaced", saved.name)
        return saved

    def check_credentials(self, integration: Integration, credentials: dict[str, Any]) -> dict[str, Any]:
        """The credentials in the form the keyring keeps, checked for the integration's CRM.

        Raises:
            CredentialsError: naming the bad field (Salesforce tokens without a refresh token included).
        """
        checked = self._checked_credentials(integration, credentials)
        assert checked is not None
        return checked

    @staticmethod
    def _checked_credentials(integration: Integration, credentials: dict[str, Any] | None) -> dict[str, Any] | None:
        if credentials is None:
            return None
        checked = validate_credentials(integration.provider, credentials)
        check_lasting_session(integration.provider, checked, integration.name)
        return checked

    def record_scopes(self, integration: Integration, scopes: Sequence[str]) -> Integration:
        """Keep the scopes a connection test found (a CRM that reports none leaves the known ones)."""
        found = sorted(set(scopes))
        if not found or found == sorted(integration.scopes):
            return integration
        current = self._store.get_by_id(integration.id) if integration.id is not None else integration
        return self._store.update(current.model_copy(update={"scopes": found}))

    def crm_account(self, integration: Integration) -> CrmAccountSeen:
        """Which CRM account the integration's links are in, and whether it must be read again."""
        assert integration.id is not None
        return self._store.crm_account(integration.id)

    def record_crm_account(self, integration: Integration, account_id: str) -> None:
        """Remember that the integration's credentials reach CRM account ``account_id``."""
        assert integration.id is not None
        self._store.record_crm_account(integration.id, account_id)

    def has_credentials(self, integration: Integration) -> bool:
        """Whether the keyring holds credentials for the integration."""
        assert integration.id is not None
        return self._vault.load(integration.id) is not None

    def credentials(self, integration: Integration) -> dict[str, Any] | None:
        """The integration's credentials from the keyring (for the adapters only; never log them)."""
        assert integration.id is not None
        return self._vault.load(integration.id)

    def save_credentials(self, integration: Integration, credentials: dict[str, Any], *, set_by_person: bool = False
                         ) -> None:
        """Replace the integration's credentials: after a token refresh, or (``set_by_person``) a sign-in.

        Only keys a person set restart the rotation reminder; a refresh renews a session, not the keys behind it.
        """
        assert integration.id is not None
        self._vault.save(integration.id, validate_credentials(integration.provider, credentials))
        if set_by_person:
            self._store.mark_keys_set(integration.id)

    def key_age(self, integration: Integration, now: datetime | None = None) -> KeyAge | None:
        """How old the integration's keys in this desktop's keyring are, or ``None`` when nobody recorded setting
        them (on a team database each desktop has its own copy, set when a person there set it)."""
        assert integration.id is not None
        set_at = self._store.keys_set_here(integration.id)
        if set_at is None:
            return None
        elapsed = (now or datetime.now(UTC)) - set_at
        return KeyAge(set_at, max(elapsed.days, 0), self.rotate_after_days)

    def remove(self, name: str) -> Integration:
        """Delete the integration's keyring entry, then the integration and its data in the store.

        The integration's sync lock is taken first: a run going on (on this desktop or another on a team store)
        keeps the integration until it ends, instead of failing on rows deleted under it.

        Raises:
            NotFoundError: when there is no such integration.
            SyncAlreadyRunning: while a sync of the integration runs (nothing is removed).
            VaultError: when the keyring entry cannot be deleted (the integration is then kept).
        """
        integration = self._store.get(name)
        assert integration.id is not None
        remover = lock_owner(REMOVAL)  # not this process's run owner: a run of this desktop holds it too
        if self._locks is not None:
            take_lock(self._locks, integration.id, name, remover, "is running",
                      "remove the integration once it has ended (nothing was removed)")
        try:
            self._vault.delete(integration.id)
            removed = self._store.remove(name)  # the lock goes with the integration
        except BaseException:
            if self._locks is not None:
                self._locks.release_lock(integration.id, remover)
            raise
        logger.info("integration %s removed with its keyring entry", name)
        return removed
