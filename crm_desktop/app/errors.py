"""Errors the GUI and the CLI show to the user, re-exported so they never import the store or vault."""

from __future__ import annotations

from crm_desktop.domain.credentials import CredentialsError
from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.providers.errors import (
    AuthError,
    BudgetExhaustedError,
    ConfigurationError,
    CrmAccountChangedError,
    PermissionRefusedError,
    ProviderError,
    RateLimitError,
    TransientError,
)
from crm_desktop.store.database import StoreConfigError, StoreUnavailableError
from crm_desktop.store.repositories import DuplicateNameError, NotFoundError, StoreError
from crm_desktop.sync.engine import SyncAlreadyRunning
from crm_desktop.vault import VaultError, VaultLockedError, VaultUnavailableError

__all__ = [
    "AuthError",
    "BudgetExhaustedError",
    "ConfigurationError",
    "CredentialsError",
    "CrmAccountChangedError",
    "DuplicateNameError",
    "InvalidRecordError",
    "NotFoundError",
    "PermissionRefusedError",
    "ProviderError",
    "RateLimitError",
    "StoreConfigError",
    "StoreError",
    "StoreUnavailableError",
    "SyncAlreadyRunning",
    "TransientError",
    "VaultError",
    "VaultLockedError",
    "VaultUnavailableError",
]
