"""The local API's bearer token: made at first start, kept in the OS keyring, checked in constant time."""

from __future__ import annotations

import hmac
import logging
import secrets

from crm_desktop.vault import Vault

logger = logging.getLogger(__name__)

#: Bytes of randomness in a token (``secrets.token_urlsafe`` gives about 43 URL-safe characters for 32).
TOKEN_BYTES = 32


class ApiTokens:
    """The one bearer token of the local API.

    The token is read from the keyring on every check rather than cached, so ``crm-desktop api rotate`` run in
    another process locks the old token out of a running server at once.
    """

    def __init__(self, vault: Vault) -> None:
        self._vault = vault

    def current(self) -> str:
        """The token, made and stored on first use.

        Raises:
            VaultError: when the keyring cannot be read or written (the API then does not start).
        """
        token = self._vault.load_api_token()
        if token:
            return token
        token = secrets.token_urlsafe(TOKEN_BYTES)
        self._vault.save_api_token(token)
        logger.info("local API token created")
        return token

    def rotate(self) -> str:
        """Replace the token; the old one stops working at once, also in a running server."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        self._vault.save_api_token(token)
        logger.info("local API token rotated")
        return token

    def accepts(self, presented: str) -> bool:
        """Whether ``presented`` is the current token (compared in constant time; no token accepts nothing)."""
        expected = self._vault.load_api_token()
        if not expected or not presented:
            return False
        return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))
