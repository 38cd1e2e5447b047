"""The relayed keyring: each call answered by another keyring, only keyring calls answered."""

from __future__ import annotations

import pytest
from keyring.errors import KeyringLocked, PasswordDeleteError

from crm_desktop.vault import Vault, VaultLockedError
from crm_desktop.vault.ephemeral import EphemeralKeyring
from crm_desktop.vault.relayed import RelayedKeyring, relay_to


def test_a_vault_on_a_relayed_keyring_keeps_its_entries_in_the_answering_keyring() -> None:
    owner = EphemeralKeyring()
    vault = Vault(backend=RelayedKeyring(relay_to(owner)), workspace="w1")
    vault.save(7, {"access_token": "t-1"})
    assert vault.load(7) == {"access_token": "t-1"}
    assert ("crm-desktop/w1", "integration-7") in owner._entries
    assert vault.delete(7)
    assert owner._entries == {}


def test_what_the_answering_keyring_raises_is_raised_by_the_relayed_one() -> None:
    class Locked(EphemeralKeyring):
        def get_password(self, service: str, username: str) -> str | None:
            raise KeyringLocked("locked")

    with pytest.raises(VaultLockedError):
        Vault(backend=RelayedKeyring(relay_to(Locked()))).load(1)
    with pytest.raises(PasswordDeleteError):
        RelayedKeyring(relay_to(EphemeralKeyring())).delete_password("s", "nobody")


def test_only_keyring_calls_are_answered() -> None:
    answer = relay_to(EphemeralKeyring())
    with pytest.raises(ValueError, match="not a keyring call"):
        answer("__class__")
