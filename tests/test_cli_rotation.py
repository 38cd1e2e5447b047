"""Rotation without loss: `integration update` replaces credentials in place, tested first; the keys' age."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from crm_desktop.app.workspace import Workspace
from crm_desktop.cli import ExitCode, main
from crm_desktop.cli import common as cli_common
from crm_desktop.domain.models import Contact, Integration
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.providers.contract import AdapterOptions
from crm_desktop.providers.errors import ProviderError
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.hubspot import AccessToken, HubSpotSandbox
from crm_desktop.store.models import ConflictRule, utcnow
from tests.support.cli_runs import workspace_at
from tests.support.memory_keyring import MemoryKeyring

NEW_TOKEN = "pat-na1-rotated-0000-1111-2222"


def run(data_dir: Path, argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        code = main(["--data-dir", str(data_dir), *argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> HubSpotSandbox:
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0))
    monkeypatch.setattr(cli_common, "http_transport", sandbox.transport())
    return sandbox


@pytest.fixture
def data_dir(tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str],
             monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HubSpot integration ``hs`` that has synced once: a run, links, a cursor and a changed mapping."""
    directory = tmp_path / "D"
    with workspace_at(directory) as workspace:
        integration = workspace.integrations.add(
            Integration(provider="hubspot", name="hs", base_url=sandbox.base_url), sandbox.credentials()
        )
        workspace.contacts.save(Contact(email="ann@example.com", first_name="Ann"))
        workspace.sync.set_rule(integration, RecordObject.CONTACT, "firstName", ConflictRule.MANUAL)
    code, _, err = run(directory, ["sync", "hs"], capsys, monkeypatch)
    assert code == ExitCode.OK, err
    return directory


def rotate_in_sandbox(sandbox: HubSpotSandbox) -> None:
    """HubSpot's "rotate token": a new private-app token works, the old one no longer does."""
    sandbox._tokens[NEW_TOKEN] = AccessToken(NEW_TOKEN, utcnow(), oauth=False, lifetime_seconds=0.0)
    sandbox._tokens[sandbox.private_app_token].expired = True


def history(workspace: Workspace, integration_id: int) -> tuple[object, ...]:
    """Everything that must survive a rotation: runs, links, cursors, mappings."""
    store = workspace.sync.store
    integration = workspace.integrations.get_by_id(integration_id)
    return (
        [r.id for r in workspace.sync.store.list_runs(integration_id, 50)],
        store.get_cursor(integration_id, RecordObject.CONTACT),
        [(m.local_field, m.conflict_rule) for m in workspace.sync.mappings(integration, RecordObject.CONTACT)],
        {local_id: link.crm_id for local_id, link in store.links_for_local(
            integration_id, RecordObject.CONTACT, list(range(1, 100))).items()},
    )


def test_update_replaces_the_secret_in_place_and_keeps_the_history(
    data_dir: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    memory_keyring: MemoryKeyring,
) -> None:
    with workspace_at(data_dir) as workspace:
        before_integration = workspace.integrations.get("hs")
        assert before_integration.id is not None
        before = history(workspace, before_integration.id)
        workspace.integrations._store.mark_keys_set(before_integration.id, utcnow() - timedelta(days=120))
    rotate_in_sandbox(sandbox)

    code, out, err = run(data_dir, ["integration", "update", "hs", "--name", "hubspot-prod", "--description",
                                    "main portal", "--secret-stdin", "--json"], capsys, monkeypatch, NEW_TOKEN)
    assert code == ExitCode.OK, err
    data = json.loads(out)
    assert data["id"] == before_integration.id and data["name"] == "hubspot-prod"
    assert data["tested"] is True and data["credentialsReplaced"] is True
    assert data["keyAgeDays"] == 0 and data["rotationDue"] is False
    assert NEW_TOKEN not in out + err
    with workspace_at(data_dir) as workspace:
        service = workspace.vault.service
    assert memory_keyring.entries == {(service, f"integration-{before_integration.id}"):
                                      json.dumps({"token": NEW_TOKEN}, separators=(",", ":"))}
    with workspace_at(data_dir) as workspace:
        assert history(workspace, before_integration.id) == before
    # The next sync runs with the new token, as an update of the same links (nothing created twice).
    with workspace_at(data_dir) as workspace:
        workspace.contacts.save(Contact(email="ann@example.com", first_name="Anna"))
    code, out, err = run(data_dir, ["sync", "hubspot-prod", "--json"], capsys, monkeypatch)
    assert code == ExitCode.OK, err
    assert json.loads(out)["results"][0]["counts"]["updated"] == 1
    assert sandbox.summary()["contacts"] == 1


def test_refused_credentials_are_not_saved_and_nothing_changes(
    data_dir: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    memory_keyring: MemoryKeyring,
) -> None:
    before_keyring = dict(memory_keyring.entries)
    with workspace_at(data_dir) as workspace:
        before = workspace.integrations.get("hs")
    asked = len(sandbox.requests)

    code, out, err = run(data_dir, ["integration", "update", "hs", "--name", "renamed", "--secret-stdin", "--json"],
                         capsys, monkeypatch, "pat-na1-not-a-real-token")
    assert code == ExitCode.AUTH
    error = json.loads(out)["error"]
    assert error["code"] == "auth_refused" and "old ones stay" in error["message"]
    assert "pat-na1-not-a-real-token" not in out + err
    assert [r.status for r in list(sandbox.requests)[asked:]][:1] == [401]
    assert memory_keyring.entries == before_keyring
    with workspace_at(data_dir) as workspace:
        assert workspace.integrations.get("hs") == before
        assert workspace.integrations.find("renamed") is None

    code, _, err = run(data_dir, ["integration", "update", "hs", "--secret-stdin"], capsys, monkeypatch, "short")
    assert code == ExitCode.USAGE and "too short" in err
    code, _, err = run(data_dir, ["integration", "update", "hs"], capsys, monkeypatch)
    assert code == ExitCode.USAGE and "nothing to change" in err
    code, _, err = run(data_dir, ["integration", "update", "hs", "--base-url", "http://example.com"], capsys,
                       monkeypatch)
    assert code == ExitCode.USAGE and "--base-url: plain http" in err
    code, _, err = run(data_dir, ["integration", "update", "nope", "--description", "x"], capsys, monkeypatch)
    assert code == ExitCode.USAGE and "no integration named 'nope'" in err
    assert memory_keyring.entries == before_keyring


def test_a_taken_name_leaves_the_old_credentials(
    data_dir: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    memory_keyring: MemoryKeyring,
) -> None:
    with workspace_at(data_dir) as workspace:
        workspace.integrations.add(Integration(provider="hubspot", name="other", base_url=sandbox.base_url),
                                   sandbox.credentials())
    before_keyring = dict(memory_keyring.entries)
    rotate_in_sandbox(sandbox)
    code, _, err = run(data_dir, ["integration", "update", "hs", "--name", "other", "--secret-stdin"], capsys,
                       monkeypatch, NEW_TOKEN)
    assert code == ExitCode.USAGE and "already exists" in err
    assert memory_keyring.entries == before_keyring


def test_old_keys_are_flagged_for_rotation(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(data_dir, ["integration", "list", "--json"], capsys, monkeypatch)
    [item] = json.loads(out)
    assert (item["keyAgeDays"], item["rotateAfterDays"], item["rotationDue"]) == (0, 90, False)
    assert item["keysSetAt"] is not None
    with workspace_at(data_dir) as workspace:
        integration_id = workspace.integrations.get("hs").id
        assert integration_id is not None
        workspace.integrations._store.mark_keys_set(integration_id, utcnow() - timedelta(days=91))
    code, out, _ = run(data_dir, ["integration", "list"], capsys, monkeypatch)
    assert "keys: set 91 days ago (rotate!)" in out
    assert "rotate: the keys of 'hs' were set 91 days ago (reminder after 90 days)" in out
    assert "crm-desktop integration update hs --secret-stdin" in out
    code, out, _ = run(data_dir, ["integration", "show", "hs", "--json"], capsys, monkeypatch)
    assert json.loads(out)["rotationDue"] is True

    monkeypatch.setenv("CRM_DESKTOP_ROTATE_KEYS_DAYS", "180")
    code, out, _ = run(data_dir, ["integration", "list", "--json"], capsys, monkeypatch)
    assert json.loads(out)[0]["rotationDue"] is False
    monkeypatch.setenv("CRM_DESKTOP_ROTATE_KEYS_DAYS", "0")
    code, out, _ = run(data_dir, ["integration", "list", "--json"], capsys, monkeypatch)
    assert code == ExitCode.OK
    assert (json.loads(out)[0]["rotationDue"], json.loads(out)[0]["rotateAfterDays"]) == (False, None)


def test_a_token_refresh_is_not_a_rotation_but_a_sign_in_is(tmp_path: Path) -> None:
    with workspace_at(tmp_path / "D") as workspace:
        saved = workspace.integrations.add(
            Integration(provider="salesforce", name="sf"), {"clientId": "3MVG9-client"}
        )
        assert saved.id is not None and saved.keys_set_at is not None
        workspace.integrations._store.mark_keys_set(saved.id, utcnow() - timedelta(days=200))
        tokens = {"clientId": "3MVG9-client", "accessToken": "00D-new-access", "refreshToken": "5Aep-refresh"}
        workspace.integrations.save_credentials(saved, tokens)
        age = workspace.integrations.key_age(workspace.integrations.get("sf"))
        assert age is not None and age.days == 200 and age.rotation_due
        workspace.integrations.save_credentials(saved, tokens, set_by_person=True)
        age = workspace.integrations.key_age(workspace.integrations.get("sf"))
        assert age is not None and age.days == 0 and not age.rotation_due



def test_a_crm_out_of_reach_changes_nothing(data_dir: Path, memory_keyring: MemoryKeyring) -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    before_keyring = dict(memory_keyring.entries)
    with workspace_at(data_dir) as workspace:
        before = workspace.integrations.get("hs")
        workspace.crm.transport = httpx.MockTransport(unreachable)
        workspace.crm.options = AdapterOptions(max_attempts=1)
        with pytest.raises(ProviderError, match="network"):
            asyncio.run(workspace.crm.update_integration("hs", {"name": "moved"}, {"token": NEW_TOKEN}))
        assert workspace.integrations.get("hs") == before
        assert workspace.integrations.find("moved") is None
    assert memory_keyring.entries == before_keyring
