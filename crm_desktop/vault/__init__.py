"""OS keyring vault for every credential; nothing secret ever reaches the database or logs."""

from __future__ import annotations

from crm_desktop.vault.keyring_vault import (
    SERVICE_NAME,
    Vault,
    VaultError,
    VaultLockedError,
    VaultUnavailableError,
)

__all__ = ["SERVICE_NAME", "Vault", "VaultError", "VaultLockedError", "VaultUnavailableError"]
