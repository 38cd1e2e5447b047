"""Adding and repairing integrations from the CLI, errors as JSON, the display check, and what runs print."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crm_desktop.app.errors import (
    AuthError,
    ConfigurationError,
    CredentialsError,
    CrmAccountChangedError,
    DuplicateNameError,
    InvalidRecordError,
    NotFoundError,
    PermissionRefusedError,
    ProviderError,
    StoreConfigError,
    StoreUnavailableError,
    TransientError,
    VaultError,
    VaultLockedError,
)
from crm_desktop.app.text import duration_text, plural
from crm_desktop.cli import ERROR_EXITS, ExitCode, main, run_command
from crm_desktop.cli import common as cli_common
from crm_desktop.cli.display import missing_display
from crm_desktop.domain.errors import FieldProblem
from crm_desktop.domain.models import Contact, Integration
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.sync.actions import ConflictResolutionError, ConflictResolvedElsewhere
from crm_desktop.sync.engine import SyncAlreadyRunning
from tests.support.cli_runs import workspace_at
from tests.support.memory_keyring import MemoryKeyring


def run(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def hubspot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubSpotSandbox:
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0))
    monkeypatch.setattr(cli_common, "http_transport", sandbox.transport())
    return sandbox


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "D"


def add_hubspot(data_dir: Path, sandbox: HubSpotSandbox, name: str = "hs") -> None:
    with workspace_at(data_dir) as workspace:
        workspace.integrations.add(Integration(provider="hubspot", name=name, base_url=sandbox.base_url),
                                   sandbox.credentials())


# -- errors: one table, the same exit codes, JSON on stdout with --json ------------------------------------------


def _error(cls: type[BaseException]) -> BaseException:
    if cls is InvalidRecordError:
        return InvalidRecordError("contact", "ann@example.com", [FieldProblem("email", "not an email")])
    if cls is KeyboardInterrupt:
        return KeyboardInterrupt()
    return cls("what went wrong")


@pytest.mark.parametrize("cls", list(ERROR_EXITS), ids=lambda cls: cls.__name__)
def test_every_known_error_has_its_exit_code_and_a_json_error(
    cls: type[BaseException], capsys: pytest.CaptureFixture[str]
) -> None:
    error = _error(cls)

    def handler(_args: argparse.Namespace) -> int:
        raise error

    code, error_code = ERROR_EXITS[cls]
    assert run_command(argparse.Namespace(handler=handler, json=False)) == code
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("crm-desktop: ")
    assert run_command(argparse.Namespace(handler=handler, json=True)) == code
    out, _ = capsys.readouterr()
    assert json.loads(out) == {"error": {"code": error_code, "message": err.removeprefix("crm-desktop: ").strip(),
                                         "exitCode": int(code)}}


def test_the_table_says_what_the_ladder_said() -> None:
    expected = {
        InvalidRecordError: ExitCode.USAGE, CredentialsError: ExitCode.USAGE, DuplicateNameError: ExitCode.USAGE,
        NotFoundError: ExitCode.USAGE, StoreConfigError: ExitCode.USAGE, StoreUnavailableError: ExitCode.PARTIAL,
        ConflictResolvedElsewhere: ExitCode.PARTIAL, ConflictResolutionError: ExitCode.USAGE,
        VaultError: ExitCode.USAGE, CrmAccountChangedError: ExitCode.USAGE, ConfigurationError: ExitCode.USAGE,
        AuthError: ExitCode.AUTH,
        PermissionRefusedError: ExitCode.USAGE,
        SyncAlreadyRunning: ExitCode.PARTIAL, ProviderError: ExitCode.PARTIAL, KeyboardInterrupt: ExitCode.PARTIAL,
        OSError: ExitCode.USAGE,
    }
    assert {cls: code for cls, (code, _) in ERROR_EXITS.items()} == expected


def test_a_subclass_takes_its_parents_row_and_a_bug_is_not_hidden(capsys: pytest.CaptureFixture[str]) -> None:
    def raising(error: Exception) -> argparse.Namespace:
        def handler(_args: argparse.Namespace) -> int:
            raise error
        return argparse.Namespace(handler=handler, json=True)

    assert run_command(raising(VaultLockedError("the OS keyring is locked"))) == ExitCode.USAGE
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "keyring_unusable"
    assert run_command(raising(TransientError("the CRM did not answer"))) == ExitCode.PARTIAL
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "crm_error"
    with pytest.raises(RuntimeError):
        run_command(raising(RuntimeError("a bug")))


def test_json_errors_come_on_stdout_with_the_same_exit_codes(
    data_dir: Path, hubspot: HubSpotSandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(["--data-dir", str(data_dir), "integration", "show", "nope", "--json"], capsys, monkeypatch)
    assert code == ExitCode.USAGE and "no integration named 'nope'" in err
    assert json.loads(out) == {"error": {"code": "not_found", "message": "no integration named 'nope'",
                                         "exitCode": 2}}

    code, out, err = run(["integration", "add", "--provider", "zoho", "--name", "x", "--json"], capsys, monkeypatch)
    assert code == ExitCode.USAGE and "invalid choice" in err
    error = json.loads(out)["error"]
    assert error["code"] == "usage" and "invalid choice: 'zoho'" in error["message"] and error["exitCode"] == 2

    with workspace_at(data_dir) as workspace:
        workspace.integrations.add(Integration(provider="hubspot", name="wrong", base_url=hubspot.base_url),
                                   {"token": "pat-na1-not-the-token"})
    code, out, err = run(["--data-dir", str(data_dir), "sync", "wrong", "--json"], capsys, monkeypatch)
    assert code == ExitCode.AUTH
    error = json.loads(out)["error"]
    assert error["code"] == "auth_refused" and error["exitCode"] == 3 and "401" in error["message"]
    assert "pat-na1-not-the-token" not in out + err


# -- no display --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "platform", "can_open"),
    [
        ({}, "linux", False),
        ({"DISPLAY": ":0"}, "linux", True),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", True),
        ({"QT_QPA_PLATFORM": "offscreen"}, "linux", True),
        ({"QT_QPA_PLATFORM": "minimal"}, "linux", True),
        ({"QT_QPA_PLATFORM": "xcb"}, "linux", False),
        ({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":1"}, "linux", True),
        ({"QT_QPA_PLATFORM": "wayland", "DISPLAY": ":1"}, "linux", False),
        ({"QT_QPA_PLATFORM": "wayland;xcb", "DISPLAY": ":1"}, "linux", True),
        ({}, "darwin", True),
        ({}, "win32", True),
    ],
)
def test_missing_display(environ: dict[str, str], platform: str, can_open: bool) -> None:
    assert (missing_display(environ, platform) is None) is can_open


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the window system is found this way on Linux")
def test_no_command_without_a_display_says_so_instead_of_aborting_in_qt(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"}}
    env["CRM_DESKTOP_HOME"] = str(tmp_path / "home")
    for argv in ([], ["--demo"]):
        started = subprocess.run([sys.executable, "-m", "crm_desktop", *argv], capture_output=True, text=True,
                                 env=env, timeout=120)
        assert started.returncode == ExitCode.USAGE, started.stderr
        assert "no display" in started.stderr and "crm-desktop --help" in started.stderr
        assert "sync" in started.stderr and "Qt platform plugin" not in started.stderr


# -- adding: every problem at once, nothing half-created ---------------------------------------------------------


def test_forgetting_the_secret_creates_nothing(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(["--data-dir", str(data_dir), "integration", "add", "--provider", "hubspot", "--name", "hs"],
                       capsys, monkeypatch)
    assert code == ExitCode.USAGE and "--secret-stdin" in err and "was not added" in err
    with workspace_at(data_dir) as workspace:
        assert workspace.integrations.list() == []


def test_an_existing_name_and_a_bad_secret_are_reported_together(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    memory_keyring: MemoryKeyring,
) -> None:
    add = ["--data-dir", str(data_dir), "integration", "add", "--provider", "pipedrive", "--name", "pd",
           "--domain", "acme", "--secret-stdin"]
    code, _, err = run(add, capsys, monkeypatch, "pd-token-12345678")
    assert code == ExitCode.OK, err
    before = dict(memory_keyring.entries)

    code, out, err = run([*add, "--json"], capsys, monkeypatch, "short")
    assert code == ExitCode.USAGE
    assert "already exists" in err and "integration update pd" in err and "apiToken: too short" in err
    error = json.loads(out)["error"]
    assert error["code"] == "invalid_integration" and "already exists" in error["message"]
    assert "apiToken" in error["message"] and "short" not in error["message"].replace("too short", "")

    code, _, err = run(["--data-dir", str(data_dir), "integration", "add", "--provider", "hubspot", "--name", "a/b",
                        "--base-url", "http://example.com", "--secret-stdin"], capsys, monkeypatch, "")
    assert code == ExitCode.USAGE
    assert "--name:" in err and "--base-url: plain http" in err and "no hubspot secret" in err
    with workspace_at(data_dir) as workspace:
        assert [i.name for i in workspace.integrations.list()] == ["pd"]
    assert memory_keyring.entries == before


def test_a_company_domain_is_refused_where_it_means_nothing(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    memory_keyring: MemoryKeyring,
) -> None:
    # Stored on a HubSpot integration and shown by `integration show`, where nothing used it.
    add = ["--data-dir", str(data_dir), "integration", "add", "--provider", "hubspot", "--name", "hs",
           "--secret-stdin"]
    code, _, err = run([*add, "--domain", "acme"], capsys, monkeypatch, "pat-na1-0123456789")
    assert code == ExitCode.USAGE and "--domain: a hubspot integration has no company domain" in err
    assert memory_keyring.entries == {}, "nothing of a refused add is written"
    code, _, err = run(add, capsys, monkeypatch, "pat-na1-0123456789")
    assert code == ExitCode.OK, err
    code, _, err = run(["--data-dir", str(data_dir), "integration", "update", "hs", "--domain", "acme"],
                       capsys, monkeypatch)
    assert code == ExitCode.USAGE and "no company domain" in err


def test_salesforce_access_token_without_refresh_token_is_refused(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    memory_keyring: MemoryKeyring,
) -> None:
    secret = json.dumps({"clientId": "3MVG9-client", "accessToken": "00D-access-token-only",
                         "instanceUrl": "https://acme.my.salesforce.com"})
    code, _, err = run(["--data-dir", str(data_dir), "integration", "add", "--provider", "salesforce",
                        "--name", "sf", "--secret-stdin"], capsys, monkeypatch, secret)
    assert code == ExitCode.USAGE
    assert "refreshToken" in err and "about 2 hours" in err and "crm-desktop integration login sf" in err
    assert "00D-access-token-only" not in err
    assert memory_keyring.entries == {}


def test_salesforce_without_tokens_is_added_and_told_to_sign_in(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(["--data-dir", str(data_dir), "integration", "add", "--provider", "salesforce",
                          "--name", "sf", "--secret-stdin", "--json"], capsys, monkeypatch,
                         '{"clientId": "3MVG9-client", "clientSecret": "connected-app-secret"}')
    assert code == ExitCode.OK, err
    assert json.loads(out)["needsSignIn"] is True
    code, out, err = run(["--data-dir", str(data_dir), "integration", "add", "--provider", "salesforce",
                          "--name", "sf2"], capsys, monkeypatch)
    assert code == ExitCode.OK, err
    assert "crm-desktop integration login sf2 --client-id CONSUMER_KEY" in out


# -- a missing secret: skipped as a configuration error, and the hint that fixes it -------------------------------


def test_all_and_due_skip_an_integration_without_credentials_as_a_configuration_error(
    data_dir: Path, hubspot: HubSpotSandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with workspace_at(data_dir) as workspace:
        workspace.integrations.add(Integration(provider="salesforce", name="sf"), None)
    for argv in (["sync", "--all", "--json"], ["sync", "--due", "--json"]):
        code, out, err = run(["--data-dir", str(data_dir), *argv], capsys, monkeypatch)
        assert code == ExitCode.USAGE, (argv, out, err)
        [result] = json.loads(out)["results"]
        assert result["status"] == "skipped"
        assert "crm-desktop integration update sf --secret-stdin" in result["error"]
        assert "crm-desktop integration login sf" in result["error"]

    add_hubspot(data_dir, hubspot)
    with workspace_at(data_dir) as workspace:
        workspace.contacts.save(Contact(email="ann@example.com", first_name="Ann"))
    code, out, _ = run(["--data-dir", str(data_dir), "sync", "--all"], capsys, monkeypatch)
    assert code == ExitCode.USAGE
    assert "hs: succeeded" in out and "sf: skipped: " in out
    assert hubspot.summary()["contacts"] == 1


# -- the lock before any network call -----------------------------------------------------------------------------


def test_a_sync_held_elsewhere_is_refused_before_any_api_call(
    data_dir: Path, hubspot: HubSpotSandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    add_hubspot(data_dir, hubspot)
    with workspace_at(data_dir) as workspace:
        workspace.contacts.save(Contact(email="ann@example.com", first_name="Ann"))
        integration = workspace.integrations.get("hs")
        assert integration.id is not None
        assert workspace.sync.store.acquire_lock(integration.id, owner="other-host:4242")
    code, _, err = run(["--data-dir", str(data_dir), "sync", "hs"], capsys, monkeypatch)
    assert code == ExitCode.PARTIAL and "already running (on other-host, process 4242" in err
    assert [r.path for r in hubspot.requests] == []
    with workspace_at(data_dir) as workspace:
        assert workspace.sync.store.lock_holder(integration.id) == ("other-host:4242", None)
        workspace.sync.store.release_lock(integration.id, owner="other-host:4242")
    code, _, err = run(["--data-dir", str(data_dir), "sync", "hs"], capsys, monkeypatch)
    assert code == ExitCode.OK, err
    with workspace_at(data_dir) as workspace:
        assert workspace.sync.store.lock_holder(integration.id) is None


def test_an_integration_another_desktop_is_syncing_is_not_removed(
    data_dir: Path, hubspot: HubSpotSandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    add_hubspot(data_dir, hubspot)
    with workspace_at(data_dir) as workspace:
        integration = workspace.integrations.get("hs")
        assert integration.id is not None
        assert workspace.sync.store.acquire_lock(integration.id, owner="other-host:4242")
    code, _, err = run(["--data-dir", str(data_dir), "integration", "remove", "hs"], capsys, monkeypatch)
    assert code == ExitCode.PARTIAL and "a sync of 'hs' is running" in err, err
    with workspace_at(data_dir) as workspace:
        assert workspace.integrations.find("hs") is not None
        assert workspace.sync.store.lock_holder(integration.id) == ("other-host:4242", None)
        workspace.sync.store.release_lock(integration.id, owner="other-host:4242")
    code, _, err = run(["--data-dir", str(data_dir), "integration", "remove", "hs"], capsys, monkeypatch)
    assert code == ExitCode.OK, err
    with workspace_at(data_dir) as workspace:
        assert workspace.integrations.find("hs") is None


def test_a_run_that_cannot_start_gives_its_lock_back(
    data_dir: Path, hubspot: HubSpotSandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with workspace_at(data_dir) as workspace:
        workspace.integrations.add(Integration(provider="hubspot", name="wrong", base_url=hubspot.base_url),
                                   {"token": "pat-na1-not-the-token"})
        integration_id = workspace.integrations.get("wrong").id
    code, _, _ = run(["--data-dir", str(data_dir), "sync", "wrong"], capsys, monkeypatch)
    assert code == ExitCode.AUTH
    with workspace_at(data_dir) as workspace:
        assert integration_id is not None and workspace.sync.store.lock_holder(integration_id) is None


# -- what a test found, and how runs read --------------------------------------------------------------------------


def test_the_scopes_a_test_found_are_listed(
    data_dir: Path, hubspot: HubSpotSandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    add_hubspot(data_dir, hubspot)
    code, out, _ = run(["--data-dir", str(data_dir), "integration", "list", "--json"], capsys, monkeypatch)
    assert json.loads(out)[0]["scopes"] == []
    code, out, err = run(["--data-dir", str(data_dir), "integration", "test", "hs", "--json"], capsys, monkeypatch)
    assert code == ExitCode.OK, err
    found = json.loads(out)["scopes"]
    assert found and "crm.objects.contacts.write" in found
    code, out, _ = run(["--data-dir", str(data_dir), "integration", "list", "--json"], capsys, monkeypatch)
    assert json.loads(out)[0]["scopes"] == sorted(found)
    code, out, _ = run(["--data-dir", str(data_dir), "integration", "list"], capsys, monkeypatch)
    assert "crm.objects.contacts.write" in out
    code, out, _ = run(["--data-dir", str(data_dir), "integration", "show", "hs"], capsys, monkeypatch)
    assert "crm.objects.contacts.write" in out


def test_counts_and_durations_read_the_same_everywhere() -> None:
    assert [plural(n, "API call") for n in (0, 1, 2)] == ["0 API calls", "1 API call", "2 API calls"]
    assert [duration_text(s) for s in (0.04, 9.96, 12.4, 185, 3720)] == [
        "0.0 s", "10.0 s", "12 s", "3 min 05 s", "1 h 02 min"]


def test_sync_and_runs_list_print_the_same_duration_and_call_count(
    data_dir: Path, hubspot: HubSpotSandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    add_hubspot(data_dir, hubspot)
    with workspace_at(data_dir) as workspace:
        workspace.contacts.save(Contact(email="ann@example.com", first_name="Ann"))
    code, out, err = run(["--data-dir", str(data_dir), "sync", "hs"], capsys, monkeypatch)
    assert code == ExitCode.OK, err
    match = re.search(r"; (\d+) API call(s?) in (.+)$", out.splitlines()[0])
    assert match is not None, out
    calls, suffix, took = int(match[1]), match[2], match[3]
    assert suffix == ("" if calls == 1 else "s")
    code, out, _ = run(["--data-dir", str(data_dir), "runs", "list", "--json"], capsys, monkeypatch)
    run_row: dict[str, Any] = json.loads(out)[0]
    assert run_row["apiCalls"] == calls and duration_text(run_row["durationSeconds"]) == took
    code, out, _ = run(["--data-dir", str(data_dir), "runs", "list"], capsys, monkeypatch)
    assert out.splitlines()[1].rstrip().endswith(took)


# -- Salesforce: an ended session names the command that signs in again ------------------------------------------


def test_an_expired_salesforce_session_names_the_login_command(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = SalesforceSandbox(SandboxConfig(contacts=0))
    monkeypatch.setattr(cli_common, "http_transport", sandbox.transport())
    with workspace_at(data_dir) as workspace:
        saved = workspace.integrations.add(Integration(provider="salesforce", name="sf", base_url=sandbox.base_url),
                                           {**sandbox.credentials(), "refreshToken": "5Aep-revoked-refresh"})
        assert saved.id is not None
        # An entry stored before refresh tokens were required: a stale access token and no refresh token.
        workspace.vault.save(saved.id, {"clientId": sandbox.client_id, "accessToken": "00Dstale!token",
                                        "instanceUrl": sandbox.base_url})
        workspace.integrations.add(Integration(provider="salesforce", name="sf-revoked", base_url=sandbox.base_url),
                                   {**sandbox.credentials(), "accessToken": "00Dstale!token2",
                                    "refreshToken": "5Aep-revoked-refresh"})
    code, _, err = run(["--data-dir", str(data_dir), "integration", "test", "sf"], capsys, monkeypatch)
    assert code == ExitCode.AUTH and "crm-desktop integration login sf`" in err
    code, _, err = run(["--data-dir", str(data_dir), "integration", "test", "sf-revoked"], capsys, monkeypatch)
    assert code == ExitCode.AUTH and "crm-desktop integration login sf-revoked`" in err
    assert "revoked" not in err.replace("sf-revoked", "")


def test_giving_credentials_to_an_integration_without_them_does_not_say_old_ones_went(
    data_dir: Path, hubspot: HubSpotSandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a team desktop gives its own copy of the key to an integration a colleague added (or a lost key is put back).
    with workspace_at(data_dir) as workspace:
        workspace.integrations.add(Integration(provider="hubspot", name="hs", base_url=hubspot.base_url), None)
    token = hubspot.credentials()["token"]
    code, out, err = run(["--data-dir", str(data_dir), "integration", "update", "hs", "--secret-stdin"],
                         capsys, monkeypatch, stdin=token)
    assert code == ExitCode.OK, err
    assert "credentials stored in this desktop's OS keyring\n" in out and "old ones" not in out

    code, out, err = run(["--data-dir", str(data_dir), "integration", "update", "hs", "--secret-stdin"],
                         capsys, monkeypatch, stdin=token)
    assert code == ExitCode.OK, err
    assert "new credentials stored in this desktop's OS keyring; the old ones are gone" in out
