"""The local API's token in the real Secret Service: made once, read back by a new vault, replaced by a rotation."""

from __future__ import annotations

import pytest

from crm_desktop.app.api_access import ApiTokens
from crm_desktop.vault import Vault
from tests.vault.test_vault import secret_service_vault  # noqa: F401  (the fixture)


@pytest.mark.secret_service
def test_the_api_token_lives_in_the_secret_service(secret_service_vault: Vault) -> None:  # noqa: F811
    vault = secret_service_vault
    first = ApiTokens(vault).rotate()
    assert vault.load_api_token() == first
    assert ApiTokens(Vault(backend=vault.backend, service=vault.service)).current() == first
    assert vault.backend.get_password(vault.service, Vault.API_TOKEN_ACCOUNT) == first
    second = ApiTokens(vault).rotate()
    assert second != first and not ApiTokens(vault).accepts(first) and ApiTokens(vault).accepts(second)
    vault.backend.delete_password(vault.service, Vault.API_TOKEN_ACCOUNT)
    assert vault.load_api_token() is None
