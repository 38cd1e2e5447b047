"""Each workspace's keyring entries are its own: two data dirs on one keyring, upgrades, a team on one database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend

from crm_desktop.app.api_access import ApiTokens
from crm_desktop.app.settings import SettingKey
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Integration, Provider
from crm_desktop.store.database import Database, sqlite_url
from crm_desktop.store.settings import WorkspaceSettingsStore
from crm_desktop.vault import SERVICE_NAME, Vault
from tests.support.memory_keyring import MemoryKeyring
from tests.vault.test_vault import secret_service_vault  # noqa: F401  (the fixture)

ACCOUNT_1 = "integration-1"
#: Where a workspace's identity is kept in its database (what an older version never wrote).
IDENTITY_KEY = "workspace.identity"


def hubspot(name: str = "clients-crm") -> Integration:
    return Integration(provider=Provider.HUBSPOT, name=name)


@contextmanager
def opened(data_dir: Path, backend: KeyringBackend, service: str = SERVICE_NAME) -> Iterator[Workspace]:
    with closing(Workspace.open(data_dir, vault=Vault(backend=backend, service=service))) as workspace:
        yield workspace


def set_up(data_dir: Path, backend: KeyringBackend, token: str, proxy_password: str,
           service: str = SERVICE_NAME) -> str:
    """A workspace with integration 1, a proxy with a password and a local API token; returns that token."""
    with opened(data_dir, backend, service) as workspace:
        saved = workspace.integrations.add(hubspot(), {"token": token})
        assert saved.id == 1
        workspace.network.set(SettingKey.PROXY, f"http://ann:{proxy_password}@proxy.corp:3128")
        return ApiTokens(workspace.vault).current()


def as_before_the_upgrade(data_dir: Path, backend: KeyringBackend, service: str = SERVICE_NAME) -> set[str]:
    """Leave the workspace as an older version of the app left it: no identity in its database, and its keyring
    entries under the one shared service name; returns their accounts."""
    with opened(data_dir, backend, service) as workspace:
        own = workspace.vault.service
        accounts = (ACCOUNT_1, Vault.API_TOKEN_ACCOUNT, *proxy_accounts(workspace))
        WorkspaceSettingsStore(workspace.database).delete(IDENTITY_KEY)
    moved = set()
    for account in accounts:
        value = backend.get_password(own, account)
        if value is not None:
            backend.set_password(service, account, value)
            backend.delete_password(own, account)
            moved.add(account)
    return moved


def proxy_accounts(workspace: Workspace) -> list[str]:
    stored = WorkspaceSettingsStore(workspace.database).all()
    return [str(value["passwordAccount"]) for value in stored.values() if value.get("passwordAccount")]


def credentials_of(workspace: Workspace, name: str = "clients-crm") -> dict[str, object] | None:
    return workspace.integrations.credentials(workspace.integrations.get(name))


def proxy_password(workspace: Workspace) -> str | None:
    proxy = workspace.network.network().proxy
    return None if proxy is None else proxy.password


def test_two_workspaces_on_one_keyring_keep_their_own_credentials(
    tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    agency_a, agency_b = tmp_path / "client-a", tmp_path / "client-b"
    token_a = set_up(agency_a, memory_keyring, "pat-na1-client-a-0001", "proxy-a-pw")
    token_b = set_up(agency_b, memory_keyring, "pat-na1-client-b-0002", "proxy-b-pw")
    with opened(agency_a, memory_keyring) as a, opened(agency_b, memory_keyring) as b:
        assert credentials_of(a) == {"token": "pat-na1-client-a-0001"}
        assert credentials_of(b) == {"token": "pat-na1-client-b-0002"}
        assert token_a != token_b
        assert a.vault.service != b.vault.service
        assert (proxy_password(a), proxy_password(b)) == ("proxy-a-pw", "proxy-b-pw")
        assert ApiTokens(a.vault).accepts(token_a) and not ApiTokens(a.vault).accepts(token_b)
        assert ApiTokens(b.vault).accepts(token_b) and not ApiTokens(b.vault).accepts(token_a)
        # Replacing, rotating and removing in one leaves the other as it was.
        a.integrations.update(a.integrations.get("clients-crm"), {"token": "pat-na1-client-a-0003"})
        ApiTokens(a.vault).rotate()
        assert credentials_of(b) == {"token": "pat-na1-client-b-0002"} and ApiTokens(b.vault).accepts(token_b)
        a.integrations.remove("clients-crm")
        assert credentials_of(b) == {"token": "pat-na1-client-b-0002"}
    # Nothing is left under the shared name: every entry is some workspace's own.
    assert all(service.startswith(f"{SERVICE_NAME}/") for service, _ in memory_keyring.entries)


def test_the_identity_is_kept_so_a_workspace_finds_its_entries_again(tmp_path: Path, memory_keyring: MemoryKeyring
                                                                      ) -> None:
    with opened(tmp_path / "ws", memory_keyring) as first:
        service = first.vault.service
        first.integrations.add(hubspot(), {"token": "pat-na1-kept-0001"})
    with opened(tmp_path / "ws", memory_keyring) as again:
        assert again.vault.service == service and credentials_of(again) == {"token": "pat-na1-kept-0001"}
    assert memory_keyring.entries == {(service, ACCOUNT_1): json.dumps({"token": "pat-na1-kept-0001"},
                                                                       separators=(",", ":"))}


def test_entries_under_the_old_name_are_adopted_on_upgrade(tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    data_dir = tmp_path / "ws"
    api_token = set_up(data_dir, memory_keyring, "pat-na1-before-0001", "proxy-before")
    moved = as_before_the_upgrade(data_dir, memory_keyring)
    assert len(moved) == 3 and {ACCOUNT_1, Vault.API_TOKEN_ACCOUNT} < moved  # and the proxy's password
    shared = {(SERVICE_NAME, account) for account in moved}
    assert set(memory_keyring.entries) == shared
    with opened(data_dir, memory_keyring) as workspace:
        own = workspace.vault.service
        assert credentials_of(workspace) == {"token": "pat-na1-before-0001"}
        assert ApiTokens(workspace.vault).current() == api_token
        assert proxy_password(workspace) == "proxy-before"
    # Copied under the workspace's own service; the old entries are kept (another workspace may need them).
    assert set(memory_keyring.entries) == shared | {(own, account) for _, account in shared}
    for _, account in shared:
        assert memory_keyring.entries[(own, account)] == memory_keyring.entries[(SERVICE_NAME, account)]
    # From then on the workspace's own entry is the one read and written.
    with opened(data_dir, memory_keyring) as workspace:
        workspace.integrations.update(workspace.integrations.get("clients-crm"), {"token": "pat-na1-after-0002"})
        memory_keyring.delete_password(SERVICE_NAME, ACCOUNT_1)
        assert credentials_of(workspace) == {"token": "pat-na1-after-0002"}
    assert memory_keyring.entries[(own, ACCOUNT_1)] == json.dumps({"token": "pat-na1-after-0002"},
                                                                  separators=(",", ":"))


def test_two_workspaces_that_shared_an_entry_each_adopt_a_copy_then_part(tmp_path: Path,
                                                                         memory_keyring: MemoryKeyring) -> None:
    agency_a, agency_b = tmp_path / "client-a", tmp_path / "client-b"
    set_up(agency_a, memory_keyring, "pat-na1-client-a-0001", "proxy-a")
    as_before_the_upgrade(agency_a, memory_keyring)
    # Before the upgrade B's integration 1 overwrote A's: the shared entry holds B's key.
    set_up(agency_b, memory_keyring, "pat-na1-client-b-0002", "proxy-b")
    as_before_the_upgrade(agency_b, memory_keyring)
    with opened(agency_a, memory_keyring) as a, opened(agency_b, memory_keyring) as b:
        assert credentials_of(a) == credentials_of(b) == {"token": "pat-na1-client-b-0002"}
        # A gets its own key back once; B keeps its key, and neither touches the other's again.
        a.integrations.update(a.integrations.get("clients-crm"), {"token": "pat-na1-client-a-0003"})
        assert credentials_of(a) == {"token": "pat-na1-client-a-0003"}
        assert credentials_of(b) == {"token": "pat-na1-client-b-0002"}
    assert memory_keyring.entries[(SERVICE_NAME, ACCOUNT_1)] == json.dumps({"token": "pat-na1-client-b-0002"},
                                                                           separators=(",", ":"))


def test_a_new_workspace_adopts_nothing_of_the_old_shared_entries(tmp_path: Path,
                                                                  memory_keyring: MemoryKeyring) -> None:
    # Another workspace's entries from before the upgrade, never adopted.
    memory_keyring.set_password(SERVICE_NAME, ACCOUNT_1, json.dumps({"token": "pat-na1-someone-else"}))
    memory_keyring.set_password(SERVICE_NAME, Vault.API_TOKEN_ACCOUNT, "the-other-workspaces-api-token")
    with opened(tmp_path / "new", memory_keyring) as workspace:
        workspace.integrations.add(hubspot(), None)  # as after a teammate added it to a shared database
        assert credentials_of(workspace) is None
        assert ApiTokens(workspace.vault).current() != "the-other-workspaces-api-token"
    with opened(tmp_path / "new", memory_keyring) as workspace:  # nor later: the database was new
        assert credentials_of(workspace) is None


def test_team_desktops_on_one_database_share_its_identity_with_keyrings_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_DESKTOP_DB_URL", sqlite_url(tmp_path / "team.db"))
    laptop_1, laptop_2 = MemoryKeyring(), MemoryKeyring()
    with opened(tmp_path / "laptop-1", laptop_1) as first:
        first.integrations.add(hubspot(), {"token": "pat-na1-team-key-0001"})
        service = first.vault.service
    with opened(tmp_path / "laptop-2", laptop_2) as second:
        assert second.vault.service == service
        assert credentials_of(second) is None  # keys stay on the desktop that was given them
        integration = second.integrations.get("clients-crm")
        second.integrations.save_credentials(integration, {"token": "pat-na1-team-key-0001"})
    assert laptop_1.entries == laptop_2.entries and list(laptop_1.entries) == [(service, ACCOUNT_1)]


def test_a_team_database_from_before_the_upgrade_lets_each_desktop_adopt_its_own_keyring_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_DESKTOP_DB_URL", sqlite_url(tmp_path / "team.db"))
    laptop_1, laptop_2 = MemoryKeyring(), MemoryKeyring()
    with opened(tmp_path / "laptop-1", laptop_1) as first:
        first.integrations.add(hubspot(), None)
        WorkspaceSettingsStore(first.database).delete(IDENTITY_KEY)
    for laptop in (laptop_1, laptop_2):
        laptop.set_password(SERVICE_NAME, ACCOUNT_1, json.dumps({"token": "pat-na1-team-key-0001"}))
    with opened(tmp_path / "laptop-1", laptop_1) as first:
        assert credentials_of(first) == {"token": "pat-na1-team-key-0001"}
    with opened(tmp_path / "laptop-2", laptop_2) as second:  # upgraded later, after the identity was made
        assert credentials_of(second) == {"token": "pat-na1-team-key-0001"}
        assert (second.vault.service, ACCOUNT_1) in laptop_2.entries


def test_desktops_making_the_identity_at_once_agree_on_one(tmp_path: Path) -> None:
    database = Database(sqlite_url(tmp_path / "race.db"))
    database.migrate()
    try:
        class LateSecond(WorkspaceSettingsStore):
            """Read before the first desktop inserted, insert after it did."""

            def get(self, key: str) -> dict[str, object] | None:  # type: ignore[override]
                if not hasattr(self, "asked"):
                    self.asked = True
                    return None
                return super().get(key)

        first, second = WorkspaceSettingsStore(database), LateSecond(database)
        mine = first.setdefault(IDENTITY_KEY, {"id": "first"})
        theirs = second.setdefault(IDENTITY_KEY, {"id": "second"})
        assert mine == theirs == {"id": "first"}
    finally:
        database.close()


@pytest.mark.secret_service
def test_two_workspaces_keep_their_own_credentials_in_the_secret_service(
    tmp_path: Path, secret_service_vault: Vault  # noqa: F811
) -> None:
    backend, service = secret_service_vault.backend, secret_service_vault.service
    services: list[str] = []
    try:
        for name, token in (("client-a", "pat-na1-client-a-0001"), ("client-b", "pat-na1-client-b-0002")):
            with opened(tmp_path / name, backend, service) as workspace:
                services.append(workspace.vault.service)
                workspace.integrations.add(hubspot(), {"token": token})
        assert len(set(services)) == 2 and all(s.startswith(f"{service}/") for s in services)
        with opened(tmp_path / "client-a", backend, service) as a, opened(tmp_path / "client-b", backend, service) as b:
            assert credentials_of(a) == {"token": "pat-na1-client-a-0001"}
            assert credentials_of(b) == {"token": "pat-na1-client-b-0002"}
        raw = backend.get_password(services[0], ACCOUNT_1)
        assert raw is not None and json.loads(raw) == {"token": "pat-na1-client-a-0001"}
        assert backend.get_password(service, ACCOUNT_1) is None
    finally:
        for own in services:
            for account in (ACCOUNT_1, Vault.API_TOKEN_ACCOUNT):
                if backend.get_password(own, account) is not None:
                    backend.delete_password(own, account)


@pytest.mark.secret_service
def test_an_entry_under_the_old_name_is_adopted_from_the_secret_service(
    tmp_path: Path, secret_service_vault: Vault  # noqa: F811
) -> None:
    backend, service = secret_service_vault.backend, secret_service_vault.service
    data_dir = tmp_path / "ws"
    own = ""
    try:
        with opened(data_dir, backend, service) as workspace:
            workspace.integrations.add(hubspot(), None)
            api_token = ApiTokens(workspace.vault).current()
        as_before_the_upgrade(data_dir, backend, service)
        backend.set_password(service, ACCOUNT_1, json.dumps({"token": "pat-na1-before-0001"}))
        with opened(data_dir, backend, service) as workspace:
            own = workspace.vault.service
            assert credentials_of(workspace) == {"token": "pat-na1-before-0001"}
            assert ApiTokens(workspace.vault).current() == api_token
        assert json.loads(backend.get_password(own, ACCOUNT_1) or "null") == {"token": "pat-na1-before-0001"}
        assert backend.get_password(own, Vault.API_TOKEN_ACCOUNT) == api_token
        assert backend.get_password(service, ACCOUNT_1) is not None  # kept: another workspace may need it
    finally:
        for entry_service in (service, own):
            for account in (ACCOUNT_1, Vault.API_TOKEN_ACCOUNT):
                if entry_service and backend.get_password(entry_service, account) is not None:
                    backend.delete_password(entry_service, account)


def test_the_default_keyring_is_used_when_none_is_injected(tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    assert keyring.get_keyring() is memory_keyring
    with closing(Workspace.open(tmp_path / "ws")) as workspace:
        workspace.integrations.add(hubspot(), {"token": "pat-na1-default-0001"})
        assert (workspace.vault.service, ACCOUNT_1) in memory_keyring.entries
