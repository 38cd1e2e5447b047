"""Credentials of each integration in the OS keyring, with no plaintext fallback."""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any, TypeVar

import keyring
import keyring.backends.fail
import keyring.errors
from keyring.backend import KeyringBackend

logger = logging.getLogger(__name__)

_Result = TypeVar("_Result")

SERVICE_NAME = "crm-desktop"

_INSTALL_HINT = (
    "CRM Desktop keeps credentials only in the operating system's keyring and found none it can use. "
    "On Linux install and start a Secret Service provider (e.g. `apt install gnome-keyring` inside a desktop "
    "session, or KWallet); on macOS the Keychain and on Windows the Credential Manager are used automatically. "
    "To choose a backend explicitly set PYTHON_KEYRING_BACKEND."
)
_LOCKED_HINT = (
    "the OS keyring is locked: unlock your login keyring (e.g. log in to the desktop session, or run "
    "`gnome-keyring-daemon --unlock`) and try again"
)
_PLAINTEXT_MODULES = ("keyrings.alt",)


def workspace_service(service: str, workspace: str) -> str:
    """The keyring service of one workspace's entries, e.g. ``crm-desktop/5f0c2a...``."""
    return f"{service}/{workspace}"


class VaultError(Exception):
    """A credential could not be stored, read or deleted; the message says what to do and holds no secret."""


class VaultUnavailableError(VaultError):
    """No usable OS keyring (none installed, or a plaintext one refused)."""


class VaultLockedError(VaultError):
    """The OS keyring exists but is locked."""


def login_session_bus(environ: MutableMapping[str, str]) -> str | None:
    """The D-Bus session bus of this user's login, where ``environ`` names none: ``unix:path=<dir>/bus`` for the
    socket in ``$XDG_RUNTIME_DIR`` or ``/run/user/<uid>``, when it is there and this user's; else ``None``.

    The Secret Service (gnome-keyring, KWallet) is reached over that bus. A job from cron (the README's
    ``sync --due``), or one started over ssh, is given no ``DBUS_SESSION_BUS_ADDRESS``, and the keyring library
    then finds no keyring at all; libdbus itself looks at this socket in that case, and so does the vault.
    """
    if environ.get("DBUS_SESSION_BUS_ADDRESS") or not sys.platform.startswith("linux"):
        return None
    folders = [environ.get("XDG_RUNTIME_DIR") or "", f"/run/user/{os.getuid()}"]
    for folder in filter(None, folders):
        socket_path = Path(folder) / "bus"
        try:
            found = socket_path.stat()
        except OSError:
            continue
        if stat.S_ISSOCK(found.st_mode) and found.st_uid == os.getuid():
            return f"unix:path={socket_path}"
    return None


def _reach_login_session_bus() -> None:
    """Name the login's session bus to the keyring library when this process was given none (see
    :func:`login_session_bus`); before the library picks its backend, which it does once per process."""
    address = login_session_bus(os.environ)
    if address is not None:
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = address
        logger.info("no D-Bus session bus named (as under cron): the keyring is reached on %s", address)


def _backends(backend: KeyringBackend) -> list[KeyringBackend]:
    inner = getattr(backend, "backends", None)
    if isinstance(inner, list | tuple):
        return list(inner)
    return [backend]


def describe_backend(backend: KeyringBackend) -> str:
    """The backend's module and class, e.g. ``keyring.backends.SecretService.Keyring``."""
    return f"{type(backend).__module__}.{type(backend).__qualname__}"


class Vault:
    """One small interface to the OS keyring: get, set, delete and availability.

    A workspace's vault (:meth:`for_workspace`) keeps its entries under a service of its own,
    ``crm-desktop/<workspace id>``: two workspaces on one computer both have an integration 1, and a shared name
    would let one overwrite the other's credentials. Each integration has one entry, account ``integration-<id>``,
    whose value is a JSON object of its credentials (tokens, client secret, ...); the local API's token and the
    proxy password have accounts of their own beside them.

    Attributes:
        service: the keyring service the entries are kept under.
        app_service: the service name without a workspace (every entry was kept under it before workspaces had
            an identity).
        workspace: the workspace's identity, or ``None`` for a vault of no workspace.
    """

    def __init__(self, backend: KeyringBackend | None = None, service: str = SERVICE_NAME, *,
                 workspace: str | None = None, adopt_shared: bool = False) -> None:
        """Make a vault.

        Args:
            backend: the keyring backend; ``None``: the one keyring picks (``PYTHON_KEYRING_BACKEND`` honoured).
            service: the app's service name.
            workspace: the workspace's identity; its entries then go under ``<service>/<workspace>``.
            adopt_shared: whether an entry missing under the workspace's service is looked for under ``service``
                alone, where the app kept it before workspaces had an identity, and copied over when found.
        """
        self._backend = backend
        self.app_service = service
        self.workspace = workspace
        self.service = workspace_service(service, workspace) if workspace else service
        self._shared_service = service if workspace and adopt_shared else None

    def for_workspace(self, workspace: str, *, adopt_shared: bool) -> Vault:
        """A vault on the same keyring whose entries are the workspace's own (see :class:`Vault`)."""
        return Vault(self._backend, self.app_service, workspace=workspace, adopt_shared=adopt_shared)

    @property
    def backend(self) -> KeyringBackend:
        """The keyring backend in use (``PYTHON_KEYRING_BACKEND`` is honoured by keyring itself)."""
        if self._backend is not None:
            return self._backend
        _reach_login_session_bus()
        return keyring.get_keyring()

    def availability(self) -> tuple[bool, str]:
        """Whether secrets can be stored, and a sentence saying which keyring or what to install."""
        backend = self.backend
        usable = [b for b in _backends(backend) if not isinstance(b, keyring.backends.fail.Keyring)]
        if not usable:
            return False, _INSTALL_HINT
        for candidate in usable:
            if describe_backend(candidate).startswith(_PLAINTEXT_MODULES):
                return False, (
                    f"the keyring backend {describe_backend(candidate)} stores secrets in plain text and is refused; "
                    "uninstall keyrings.alt. " + _INSTALL_HINT
                )
        return True, f"credentials are kept in {describe_backend(backend)}"

    def is_available(self) -> bool:
        """Whether :meth:`save` can succeed (a locked keyring still counts as present)."""
        return self.availability()[0]

    @staticmethod
    def account(integration_id: int) -> str:
        """The keyring account of one integration."""
        return f"integration-{integration_id}"

    def _keyring_call(self, refusal: str, operation: Callable[[], _Result]) -> _Result:
        """Run one keyring operation, turning keyring failures into vault errors that name ``refusal``."""
        ok, message = self.availability()
        if not ok:
            raise VaultUnavailableError(message)
        try:
            return operation()
        except keyring.errors.KeyringLocked:
            raise VaultLockedError(_LOCKED_HINT) from None
        except keyring.errors.NoKeyringError:
            raise VaultUnavailableError(_INSTALL_HINT) from None
        except keyring.errors.KeyringError as exc:
            raise VaultError(f"the OS keyring refused to {refusal} ({type(exc).__name__})") from None
        except Exception as exc:
            # A backend's own failure that keyring passes through (SecretStorage's ItemNotFoundException when an
            # entry goes away under it, a D-Bus error of a daemon that stopped): said as the vault's, never as a
            # traceback; only its type is named, as its text may quote what it was given.
            logger.warning("the OS keyring failed to %s: %s", refusal, type(exc).__name__)
            raise VaultError(f"the OS keyring failed to {refusal} ({type(exc).__name__}); try again, or restart "
                             "the keyring (log out and in)") from None

    def _read(self, account: str, what: str) -> str | None:
        """The value under ``account``, or ``None``; ``what`` names it in error messages.

        A workspace that predates workspace identities finds an entry still under the shared service name and adopts
        it: the value is copied under the workspace's own service, which every later read and write uses.
        """
        value = self._keyring_call(f"read {what}", lambda: self.backend.get_password(self.service, account))
        shared = self._shared_service
        if value is not None or shared is None:
            return value
        value = self._keyring_call(f"read {what}", lambda: self.backend.get_password(shared, account))
        if value is None:
            return None
        # The shared entry is copied, not moved. Two workspaces of this computer may both need it (each has an
        # integration 1, and the entry holds whichever of them saved last): there is no telling whose it is, so
        # each gets its own copy; a key of the wrong CRM account is then refused by the account check before a
        # sync sends anything, and replaced once with `integration update`. Deleting it at the first read would
        # hand it to whichever workspace opened first and leave the other with nothing to reconnect from (nor
        # could an older version of the app, run again, find it). It stays in the OS keyring, where secrets belong.
        try:
            self._write(account, value, what)
        except VaultError as exc:
            # The value read is right: it is used now, and copied at the next read instead.
            logger.warning("keyring entry %s could not be copied to the workspace's service yet: %s", account, exc)
        else:
            logger.info("keyring entry %s adopted from service %s into %s", account, shared, self.service)
        return value

    def _write(self, account: str, value: str, what: str) -> None:
        """Store (replace) the value under ``account``; ``what`` names it in error messages."""
        self._keyring_call(f"store {what}", lambda: self.backend.set_password(self.service, account, value))

    def _erase(self, account: str, what: str) -> bool:
        """Delete the value under ``account``; ``False`` when there was none."""

        def delete() -> bool:
            try:
                self.backend.delete_password(self.service, account)
            except keyring.errors.PasswordDeleteError:
                return False
            return True

        return self._keyring_call(f"delete {what}", delete)

    def save(self, integration_id: int, credentials: dict[str, Any]) -> None:
        """Store (replace) the credentials of an integration.

        Raises:
            VaultUnavailableError: when no usable keyring exists.
            VaultLockedError: when the keyring is locked.
            VaultError: for any other keyring failure.
        """
        payload = json.dumps(credentials, separators=(",", ":"), sort_keys=True)
        self._write(self.account(integration_id), payload, "the credentials")
        logger.info("credentials of integration %s saved to the keyring", integration_id)

    def load(self, integration_id: int) -> dict[str, Any] | None:
        """The credentials of an integration, or ``None`` when the keyring holds none.

        Raises:
            VaultUnavailableError, VaultLockedError, VaultError: as for :meth:`save`.
        """
        payload = self._read(self.account(integration_id), "the credentials")
        if payload is None:
            return None
        try:
            data = json.loads(payload)
        except ValueError:
            raise VaultError(f"the keyring entry of integration {integration_id} is damaged; reconnect it") from None
        if not isinstance(data, dict):
            raise VaultError(f"the keyring entry of integration {integration_id} is damaged; reconnect it")
        return data

    def update(self, integration_id: int, **changes: Any) -> dict[str, Any]:
        """Merge new values (e.g. a refreshed access token) into an integration's stored credentials."""
        current = self.load(integration_id) or {}
        current.update(changes)
        self.save(integration_id, current)
        return current

    #: The keyring account of the local API's bearer token.
    API_TOKEN_ACCOUNT = "local-api-token"

    def load_api_token(self) -> str | None:
        """The local API's bearer token, or ``None`` before the first start.

        Raises:
            VaultUnavailableError, VaultLockedError, VaultError: as for :meth:`save`.
        """
        return self._read(self.API_TOKEN_ACCOUNT, "the API token")

    def save_api_token(self, token: str) -> None:
        """Store (replace) the local API's bearer token.

        Raises:
            VaultUnavailableError, VaultLockedError, VaultError: as for :meth:`save`.
        """
        self._write(self.API_TOKEN_ACCOUNT, token, "the API token")
        logger.info("local API token saved to the keyring")

    def delete(self, integration_id: int) -> bool:
        """Delete an integration's credentials; ``False`` when there were none.

        Only the workspace's own entry goes: one still under the shared name of before is left to the other
        workspaces that may need it (see :meth:`_read`).

        Raises:
            VaultUnavailableError, VaultLockedError, VaultError: as for :meth:`save`.
        """
        if not self._erase(self.account(integration_id), "the credentials"):
            return False
        logger.info("credentials of integration %s deleted from the keyring", integration_id)
        return True

    def load_secret(self, account: str) -> str | None:
        """A secret that is not an integration's (a proxy password), or ``None`` when none is stored.

        Raises:
            VaultUnavailableError, VaultLockedError, VaultError: as for :meth:`save`.
        """
        return self._read(account, account)

    def save_secret(self, account: str, secret: str) -> None:
        """Store (replace) a secret that is not an integration's under ``account``.

        Raises:
            VaultUnavailableError, VaultLockedError, VaultError: as for :meth:`save`.
        """
        self._write(account, secret, account)
        logger.info("%s saved to the keyring", account)

    def delete_secret(self, account: str) -> bool:
        """Delete the secret under ``account``; ``False`` when there was none.

        Raises:
            VaultUnavailableError, VaultLockedError, VaultError: as for :meth:`save`.
        """
        if not self._erase(account, account):
            return False
        logger.info("%s deleted from the keyring", account)
        return True
