"""The vault: real Secret Service round trips, and refusals when no safe keyring exists."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked
from secretstorage.exceptions import ItemNotFoundException

from crm_desktop.vault import SERVICE_NAME, Vault, VaultError, VaultLockedError, VaultUnavailableError
from crm_desktop.vault.keyring_vault import login_session_bus
from tests.support.memory_keyring import MemoryKeyring

REPO = Path(__file__).resolve().parents[2]


def _secret_service_ready() -> bool:
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return False
    try:
        from keyring.backends import SecretService

        return bool(SecretService.Keyring.viable)
    except Exception:
        return False


def _need_secret_service() -> None:
    if _secret_service_ready():
        return
    if os.environ.get("CRM_DESKTOP_REQUIRE_SECRET_SERVICE") == "1":
        pytest.fail("the real Secret Service is required here (CI runs the suite under dbus-run-session)")
    pytest.skip("no Secret Service on a session bus; CI runs these under gnome-keyring")


@pytest.fixture
def secret_service_vault() -> Vault:
    _need_secret_service()
    from keyring.backends import SecretService

    return Vault(backend=SecretService.Keyring(), service="crm-desktop-test")


@pytest.mark.secret_service
def test_secret_service_round_trip(secret_service_vault: Vault) -> None:
    vault = secret_service_vault
    ok, message = vault.availability()
    assert ok, message
    assert "SecretService" in message
    credentials = {"token": "pat-na1-0000-secret", "refreshToken": "r" * 20}
    vault.save(41, credentials)
    assert vault.load(41) == credentials
    raw = vault.backend.get_password("crm-desktop-test", "integration-41")
    assert raw is not None and json.loads(raw) == credentials
    vault.update(41, token="pat-na1-rotated-token")
    loaded = vault.load(41)
    assert loaded is not None and loaded["token"] == "pat-na1-rotated-token"
    assert vault.delete(41) is True
    assert vault.load(41) is None
    assert vault.delete(41) is False


@pytest.mark.secret_service
def test_secret_service_is_what_keyring_picks_by_itself() -> None:
    _need_secret_service()
    code = "import keyring; print(type(keyring.get_keyring()).__module__)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_KEYRING_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "SecretService" in out.stdout or "chainer" in out.stdout


def test_no_keyring_refuses_to_store_and_says_what_to_install() -> None:
    vault = Vault(backend=keyring.backends.fail.Keyring())
    ok, message = vault.availability()
    assert not ok
    assert "gnome-keyring" in message and "PYTHON_KEYRING_BACKEND" in message
    with pytest.raises(VaultUnavailableError, match="Secret Service"):
        vault.save(1, {"token": "pat-never-stored"})


class _LockedKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringLocked("collection is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringLocked("collection is locked")

    def delete_password(self, service: str, username: str) -> None:
        raise KeyringLocked("collection is locked")


def test_locked_keyring_says_to_unlock_and_never_shows_the_secret() -> None:
    vault = Vault(backend=_LockedKeyring())
    with pytest.raises(VaultLockedError) as caught:
        vault.save(1, {"token": "pat-very-secret-value"})
    assert "unlock" in str(caught.value)
    assert "pat-very-secret-value" not in str(caught.value)
    with pytest.raises(VaultLockedError):
        vault.load(1)


class _VanishingKeyring(KeyringBackend):
    """A Secret Service whose item went away under it (another daemon over the same keyring folder): SecretStorage's
    own exception, which keyring passes through."""

    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        raise ItemNotFoundException("Item does not exist!")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise ItemNotFoundException(f"Item does not exist! {password}")

    def delete_password(self, service: str, username: str) -> None:
        raise ItemNotFoundException("Item does not exist!")


def test_a_backends_own_failure_is_a_vault_error_that_never_shows_the_secret() -> None:
    vault = Vault(backend=_VanishingKeyring())
    with pytest.raises(VaultError) as caught:
        vault.save(1, {"token": "pat-very-secret-value"})
    assert "store the credentials" in str(caught.value) and "ItemNotFoundException" in str(caught.value)
    assert "pat-very-secret-value" not in str(caught.value)
    with pytest.raises(VaultError, match="read the credentials"):
        vault.load(1)
    with pytest.raises(VaultError, match="delete"):
        vault.delete(1)


def test_plaintext_keyring_is_refused() -> None:
    plaintext = type("PlaintextKeyring", (MemoryKeyring,), {"__module__": "keyrings.alt.file"})
    vault = Vault(backend=plaintext())
    ok, message = vault.availability()
    assert not ok and "plain text" in message
    with pytest.raises(VaultUnavailableError):
        vault.save(1, {"token": "pat-x-12345678"})


def test_python_keyring_backend_variable_is_honoured(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHON_KEYRING_BACKEND="tests.support.memory_keyring.MemoryKeyring", PYTHONPATH=str(REPO))
    code = "from crm_desktop.vault import Vault; print(Vault().availability()[1])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "tests.support.memory_keyring.MemoryKeyring" in out.stdout


def test_entries_are_per_integration_under_the_app_service(memory_keyring: MemoryKeyring) -> None:
    vault = Vault()
    vault.save(1, {"token": "pat-one-11111111"})
    vault.save(2, {"apiToken": "two-22222222"})
    assert set(memory_keyring.entries) == {(SERVICE_NAME, "integration-1"), (SERVICE_NAME, "integration-2")}
    vault.delete(1)
    assert set(memory_keyring.entries) == {(SERVICE_NAME, "integration-2")}


@pytest.mark.secret_service
def test_a_secret_of_its_own_account_round_trips_through_the_secret_service(secret_service_vault: Vault) -> None:
    vault = secret_service_vault
    vault.save_secret("network-proxy-test", "proxy pass: w0rd")
    assert vault.load_secret("network-proxy-test") == "proxy pass: w0rd"
    assert vault.backend.get_password("crm-desktop-test", "network-proxy-test") == "proxy pass: w0rd"
    assert vault.delete_secret("network-proxy-test") is True
    assert vault.load_secret("network-proxy-test") is None
    assert vault.delete_secret("network-proxy-test") is False


def test_a_secret_of_its_own_account_is_refused_without_a_safe_keyring_and_never_shown() -> None:
    with pytest.raises(VaultUnavailableError, match="Secret Service"):
        Vault(backend=keyring.backends.fail.Keyring()).save_secret("network-proxy-x", "pw-never-stored")
    locked = Vault(backend=_LockedKeyring())
    with pytest.raises(VaultLockedError) as caught:
        locked.save_secret("network-proxy-x", "pw-very-secret")
    assert "pw-very-secret" not in str(caught.value)
    with pytest.raises(VaultLockedError):
        locked.load_secret("network-proxy-x")
    with pytest.raises(VaultLockedError):
        locked.delete_secret("network-proxy-x")


def _bus_socket(folder: Path) -> socket.socket:
    """A unix socket at ``folder/bus``, as a login session's D-Bus daemon leaves one."""
    folder.mkdir(parents=True, exist_ok=True)
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(str(folder / "bus"))
    return listening


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the session bus socket is Linux's")
def test_a_process_given_no_session_bus_finds_its_logins(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    with _bus_socket(runtime):
        assert login_session_bus({"XDG_RUNTIME_DIR": str(runtime)}) == f"unix:path={runtime / 'bus'}"
        named = {"XDG_RUNTIME_DIR": str(runtime), "DBUS_SESSION_BUS_ADDRESS": "unix:path=/elsewhere"}
        assert login_session_bus(named) is None, "a bus named is the one used"
    (tmp_path / "file").mkdir()
    (tmp_path / "file" / "bus").write_text("not a socket")
    assert login_session_bus({"XDG_RUNTIME_DIR": str(tmp_path / "file")}) != f"unix:path={tmp_path / 'file' / 'bus'}"


@pytest.mark.secret_service
def test_sync_due_from_cron_reaches_the_keyring_of_the_login(tmp_path: Path) -> None:
    """Seen following the README's cron recipe: cron gives its jobs no DBUS_SESSION_BUS_ADDRESS, so `sync --due`
    found "no keyring it can use" and told to install gnome-keyring, which ran and held the token all along."""
    _need_secret_service()
    address = os.environ["DBUS_SESSION_BUS_ADDRESS"]
    bus_path = next(part.split("=", 1)[1] for part in address.split(":", 1)[1].split(",") if part.startswith("path="))
    runtime = tmp_path / "run"
    runtime.mkdir()
    (runtime / "bus").symlink_to(bus_path)
    exe = [sys.executable, "-m", "crm_desktop", "--data-dir", str(tmp_path / "D")]
    desktop = {k: v for k, v in os.environ.items() if k not in {"PYTHON_KEYRING_BACKEND", "CRM_DESKTOP_DB_URL"}}
    added = subprocess.run([*exe, "integration", "add", "--provider", "hubspot", "--name", "hs", "--secret-stdin"],
                           input="pat-cron-123", text=True, capture_output=True, env=desktop)
    assert added.returncode == 0, added.stderr
    # What cron gives a job: no session bus named (the login's runtime folder is where it always is).
    cron = {"HOME": os.environ.get("HOME", str(tmp_path)), "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh",
            "XDG_RUNTIME_DIR": str(runtime), "PYTHONPATH": str(REPO)}
    shown = subprocess.run([*exe, "integration", "show", "hs", "--json"], text=True, capture_output=True, env=cron)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["credentials"] == "stored in OS keyring"
