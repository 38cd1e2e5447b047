"""Adding, listing, editing and removing integrations, with their credentials in the vault."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from crm_desktop.domain.credentials import check_lasting_session, validate_credentials
from crm_desktop.domain.models import Integration
from crm_desktop.store.repositories import DuplicateNameError, IntegrationStore
from crm_desktop.vault import Vault, VaultError

logger = logging.getLogger(__name__)


class IntegrationService:
    """What the Integrations panel and ``crm-desktop integration ...`` do, in one place."""

    def __init__(self, store: IntegrationStore, vault: Vault) -> None:
        self._store = store
        self._vault = vault

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
        return self._store.update(integration)

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

    def has_credentials(self, integration: Integration) -> bool:
        """Whether the keyring holds credentials for the integration."""
        assert integration.id is not None
        return self._vault.load(integration.id) is not None

    def credentials(self, integration: Integration) -> dict[str, Any] | None:
        """The integration's credentials from the keyring (for the adapters only; never log them)."""
        assert integration.id is not None
        return self._vault.load(integration.id)

    def save_credentials(self, integration: Integration, credentials: dict[str, Any]) -> None:
        """Replace the integration's credentials (after a sign-in or a token refresh)."""
        assert integration.id is not None
        self._vault.save(integration.id, validate_credentials(integration.provider, credentials))

    def remove(self, name: str) -> Integration:
        """Delete the integration's keyring entry, then the integration and its data in the store.

        Raises:
            NotFoundError: when there is no such integration.
            VaultError: when the keyring entry cannot be deleted (the integration is then kept).
        """
        integration = self._store.get(name)
        assert integration.id is not None
        self._vault.delete(integration.id)
        removed = self._store.remove(name)
        logger.info("integration %s removed with its keyring entry", name)
        return removed
