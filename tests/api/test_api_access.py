"""The local API's token: made once at first start, kept in the keyring, replaced by a rotation."""

from __future__ import annotations

import keyring.backends.fail
import pytest

from crm_desktop.app.api_access import ApiTokens
from crm_desktop.vault import SERVICE_NAME, Vault, VaultError
from tests.support.memory_keyring import MemoryKeyring


def test_the_token_is_made_once_and_kept_in_the_keyring(memory_keyring: MemoryKeyring) -> None:
    tokens = ApiTokens(Vault())
    first = tokens.current()
    assert len(first) >= 43
    assert tokens.current() == first
    assert memory_keyring.get_password(SERVICE_NAME, Vault.API_TOKEN_ACCOUNT) == first
    assert tokens.accepts(first)
    assert not tokens.accepts(first[:-1]) and not tokens.accepts("") and not tokens.accepts(first + "x")

    rotated = tokens.rotate()
    assert rotated != first and ApiTokens(Vault()).current() == rotated
    assert not tokens.accepts(first) and tokens.accepts(rotated)


def test_no_token_accepts_nothing_and_no_keyring_refuses_to_make_one() -> None:
    assert not ApiTokens(Vault()).accepts("anything")
    without = ApiTokens(Vault(backend=keyring.backends.fail.Keyring()))
    with pytest.raises(VaultError):
        without.current()
