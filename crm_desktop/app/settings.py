"""Workspace settings: the network's (proxy, CA bundle, trust) for ``config`` and the GUI, and the Sync Monitor's."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from crm_desktop.providers.network import (
    NetworkSettings,
    NetworkSetupError,
    ProxyUrl,
    Trust,
    check_ca_bundle,
    parse_proxy_url,
)
from crm_desktop.store.settings import WorkspaceSettingsStore
from crm_desktop.vault import Vault, VaultError

logger = logging.getLogger(__name__)

__all__ = [
    "NetworkSettings", "NetworkSettingsService", "SettingKey", "SettingValue", "SettingsError", "SyncPreviewSetting",
]


class SettingKey(StrEnum):
    """The settings ``crm-desktop config`` reads and writes."""

    PROXY = "proxy"
    CA_BUNDLE = "ca-bundle"
    TRUST = "trust"


DESCRIPTIONS = {
    SettingKey.PROXY: "HTTP(S) proxy for every CRM request, http[s]://[user[:password]@]host:port "
    "(the password goes to the OS keyring); unset: HTTPS_PROXY/HTTP_PROXY/ALL_PROXY/NO_PROXY apply",
    SettingKey.CA_BUNDLE: "PEM file of CA certificates trusted in addition (e.g. a company's TLS-inspection root)",
    SettingKey.TRUST: "root certificates: system (the OS trust store, default) or certifi (Mozilla's bundle)",
}

#: Store keys, namespaced so other workspace settings cannot collide with them.
_STORE_KEYS = {key: f"network.{key.value}" for key in SettingKey}


class SettingsError(ValueError):
    """A setting's name or value is refused; the message says which and why (never echoing a password)."""


@dataclass(frozen=True)
class SettingValue:
    """One setting as shown: its value (a proxy password redacted), ``None`` when unset, and the default.

    Attributes:
        key: the setting.
        value: what is set, as it may be shown.
        default: what applies when it is unset.
        description: what it does.
        note: what this desktop lacks to use it, if anything (a proxy password kept in another desktop's keyring).
    """

    key: SettingKey
    value: str | None
    default: str
    description: str
    note: str | None = None

    def as_json(self) -> dict[str, Any]:
        data = {"key": self.key.value, "value": self.value, "default": self.default, "description": self.description}
        return data if self.note is None else {**data, "note": self.note}


#: Said of a proxy whose password the store names but this desktop's keyring lacks: on a team database the
#: setting is shared and the password is each desktop's own, so another desktop set it.
PASSWORD_ELSEWHERE = ("its password is not in this desktop's OS keyring: another desktop sharing this database set "
                      "it; give it yours with `crm-desktop config set proxy --stdin` or in Settings > Network")


_DEFAULTS = {SettingKey.PROXY: "environment", SettingKey.CA_BUNDLE: "none", SettingKey.TRUST: Trust.SYSTEM.value}


def setting_key(name: str) -> SettingKey:
    """The setting named ``name``.

    Raises:
        SettingsError: for an unknown name, listing the known ones.
    """
    try:
        return SettingKey(name.strip().lower())
    except ValueError:
        known = ", ".join(key.value for key in SettingKey)
        raise SettingsError(f"unknown setting {name!r}; the settings are: {known}") from None


class NetworkSettingsService:
    """Reads, checks and writes a workspace's network settings; the proxy password lives in the vault.

    Attributes:
        store: the workspace's settings table.
        vault: the OS keyring.
    """

    def __init__(self, store: WorkspaceSettingsStore, vault: Vault) -> None:
        self.store = store
        self.vault = vault

    def get(self, key: SettingKey) -> SettingValue:
        """One setting as it may be shown."""
        stored = self.store.get(_STORE_KEYS[key])
        value: str | None = None
        note: str | None = None
        if stored is not None and key is SettingKey.PROXY:
            value = self._stored_proxy(stored).shown
            if self._password_elsewhere(stored):
                value = ProxyUrl(str(stored["address"]), stored.get("username")).shown
                note = PASSWORD_ELSEWHERE
        elif stored is not None:
            value = str(stored.get("value"))
        return SettingValue(key, value, _DEFAULTS[key], DESCRIPTIONS[key], note)

    def _password_elsewhere(self, stored: dict[str, Any]) -> bool:
        """Whether the stored proxy has a password that this desktop's keyring does not hold (a keyring that
        cannot be read is not taken for one without it: the sync says what is wrong with it)."""
        account = stored.get("passwordAccount")
        if not account:
            return False
        try:
            return self.vault.load_secret(str(account)) is None
        except VaultError:
            return False

    def list(self) -> list[SettingValue]:
        """Every setting, in a stable order."""
        return [self.get(key) for key in SettingKey]

    def set(self, key: SettingKey, text: str) -> SettingValue:
        """Check and save one setting; a proxy password goes to the keyring, never to the store.

        Raises:
            SettingsError: when the value is refused (the message says why).
            VaultError: when the proxy password cannot be stored.
        """
        try:
            if key is SettingKey.PROXY:
                self._set_proxy(parse_proxy_url(text))
            elif key is SettingKey.CA_BUNDLE:
                self.store.put(_STORE_KEYS[key], {"value": str(check_ca_bundle(text))})
            else:
                self.store.put(_STORE_KEYS[key], {"value": _trust(text).value})
        except NetworkSetupError as exc:
            raise SettingsError(f"{key.value}: {exc}") from None
        logger.info("setting %s changed", key.value)
        return self.get(key)

    def unset(self, key: SettingKey) -> bool:
        """Remove a setting (and a proxy's password from the keyring); ``False`` when it was not set."""
        stored = self.store.get(_STORE_KEYS[key])
        if stored is None:
            return False
        account = stored.get("passwordAccount")
        if key is SettingKey.PROXY and account:
            self.vault.delete_secret(str(account))
        self.store.delete(_STORE_KEYS[key])
        logger.info("setting %s removed", key.value)
        return True

    def proxy_for_editing(self) -> tuple[str, bool]:
        """The proxy URL without its password (``""``: none set), and whether this desktop's keyring holds a
        password for it."""
        stored = self.store.get(_STORE_KEYS[SettingKey.PROXY])
        if stored is None:
            return "", False
        shown = ProxyUrl(str(stored["address"]), stored.get("username")).shown
        return shown, bool(stored.get("passwordAccount")) and not self._password_elsewhere(stored)

    def save(self, *, proxy: str, proxy_password: str | None, ca_bundle: str, trust: str) -> None:
        """Check every value, then save them all (the settings dialog): nothing is written when one is refused.

        Args:
            proxy: the proxy URL (``""``: none, the environment's apply).
            proxy_password: its password; ``None`` keeps the stored one while the user name stays the same.
            ca_bundle: a PEM file (``""``: none).
            trust: ``system`` or ``certifi``.

        Raises:
            SettingsError: naming the setting refused and why.
            VaultError: when the proxy password cannot be stored.
        """
        try:
            parsed = parse_proxy_url(proxy) if proxy.strip() else None
        except NetworkSetupError as exc:
            raise SettingsError(f"{SettingKey.PROXY.value}: {exc}") from None
        try:
            bundle = check_ca_bundle(ca_bundle) if ca_bundle.strip() else None
        except NetworkSetupError as exc:
            raise SettingsError(f"{SettingKey.CA_BUNDLE.value}: {exc}") from None
        try:
            chosen = _trust(trust)
        except NetworkSetupError as exc:
            raise SettingsError(f"{SettingKey.TRUST.value}: {exc}") from None
        keep_password = False
        if parsed is not None and parsed.password is None and proxy_password:
            if parsed.username is None:
                raise SettingsError(f"{SettingKey.PROXY.value}: a proxy password needs a user name in the URL")
            parsed = parsed.with_password(proxy_password)
        elif parsed is not None and parsed.password is None and proxy_password is None:
            stored = self.store.get(_STORE_KEYS[SettingKey.PROXY]) or {}
            keep_password = bool(stored.get("passwordAccount")) and stored.get("username") == parsed.username
        if parsed is None:
            self.unset(SettingKey.PROXY)
        else:
            self._set_proxy(parsed, keep_password=keep_password)
        if bundle is None:
            self.unset(SettingKey.CA_BUNDLE)
        else:
            self.store.put(_STORE_KEYS[SettingKey.CA_BUNDLE], {"value": str(bundle)})
        if chosen is Trust.SYSTEM:
            self.unset(SettingKey.TRUST)
        else:
            self.store.put(_STORE_KEYS[SettingKey.TRUST], {"value": chosen.value})
        logger.info("network settings saved")

    def network(self) -> NetworkSettings:
        """The settings every adapter and sign-in of the workspace uses (the proxy with its password).

        Raises:
            VaultError: when the proxy's password cannot be read from the keyring.
        """
        proxy_stored = self.store.get(_STORE_KEYS[SettingKey.PROXY])
        proxy: ProxyUrl | None = None
        if proxy_stored is not None:
            proxy = self._stored_proxy(proxy_stored)
            account = proxy_stored.get("passwordAccount")
            if account:
                proxy = proxy.with_password(self.vault.load_secret(str(account)))
        bundle = self.store.get(_STORE_KEYS[SettingKey.CA_BUNDLE])
        trust = self.store.get(_STORE_KEYS[SettingKey.TRUST])
        return NetworkSettings(
            proxy=proxy,
            trust=Trust(trust["value"]) if trust else Trust.SYSTEM,
            ca_bundle=Path(bundle["value"]) if bundle else None,
        )

    def _set_proxy(self, proxy: ProxyUrl, *, keep_password: bool = False) -> None:
        previous = self.store.get(_STORE_KEYS[SettingKey.PROXY]) or {}
        old_account = previous.get("passwordAccount")
        value: dict[str, Any] = {"address": proxy.address, "username": proxy.username}
        if keep_password and old_account:
            value["passwordAccount"] = old_account
        elif proxy.password:
            # A fresh account per workspace and setting: two workspaces' proxies never share a keyring entry.
            account = str(old_account or f"network-proxy-{secrets.token_hex(6)}")
            self.vault.save_secret(account, proxy.password)
            value["passwordAccount"] = account
        elif old_account:
            self.vault.delete_secret(str(old_account))
        self.store.put(_STORE_KEYS[SettingKey.PROXY], value)

    @staticmethod
    def _stored_proxy(stored: dict[str, Any]) -> ProxyUrl:
        # The stored form never holds the password: a placeholder marks that the keyring has one.
        return ProxyUrl(
            str(stored["address"]), stored.get("username"), "***" if stored.get("passwordAccount") else None
        )


def _trust(text: str) -> Trust:
    try:
        return Trust(text.strip().lower())
    except ValueError:
        raise NetworkSetupError(
            f"{text!r} is not a trust source; use system (the OS trust store) or certifi (Mozilla's bundle)"
        ) from None


#: Store key of whether "Sync all now" shows the dry-run preview first.
_PREVIEW_FIRST_KEY = "monitor.preview-before-sync-all"


class SyncPreviewSetting:
    """Whether "Sync all now" first shows what it would change (on unless "Don't ask again" was ticked).

    Attributes:
        store: the workspace's settings table.
    """

    def __init__(self, store: WorkspaceSettingsStore) -> None:
        self.store = store

    def asks_first(self) -> bool:
        stored = self.store.get(_PREVIEW_FIRST_KEY)
        return True if stored is None else bool(stored.get("ask", True))

    def set_asks_first(self, ask: bool) -> None:
        self.store.put(_PREVIEW_FIRST_KEY, {"ask": bool(ask)})
