"""The CLI contract: commands, --json, exit codes, secrets only on stdin and only in the keyring."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import keyring.backends.fail
import pytest

from crm_desktop import __version__
from crm_desktop.cli import ExitCode, main
from tests.support.memory_keyring import MemoryKeyring


def run(argv: list[str], capsys: pytest.CaptureFixture[str], stdin: str | None = None,
        monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["version", "--json"], capsys)
    assert code == ExitCode.OK
    assert json.loads(out) == {"name": "crm-desktop", "version": __version__}


def test_add_list_show_remove(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, memory_keyring: MemoryKeyring
) -> None:
    data = str(tmp_path / "D")
    code, out, err = run(
        ["--data-dir", data, "integration", "add", "--provider", "hubspot", "--name", "demo", "--secret-stdin"],
        capsys, "pat-demo-123\n", monkeypatch,
    )
    assert code == ExitCode.OK, err
    assert "pat-demo-123" not in out + err
    code, out, _ = run(["--data-dir", data, "integration", "list", "--json"], capsys)
    listed = json.loads(out)
    assert [i["name"] for i in listed] == ["demo"]
    assert listed[0]["provider"] == "hubspot" and listed[0]["credentials"] == "stored in OS keyring"
    assert list(memory_keyring.entries.values()) == ['{"token":"pat-demo-123"}']
    for path in Path(data).rglob("*"):
        if path.is_file():
            assert b"pat-demo-123" not in path.read_bytes(), path
    code, out, _ = run(["--data-dir", data, "integration", "show", "demo"], capsys)
    assert code == ExitCode.OK and "stored in OS keyring" in out
    code, out, _ = run(["--data-dir", data, "integration", "remove", "demo"], capsys)
    assert code == ExitCode.OK
    assert memory_keyring.entries == {}
    code, out, _ = run(["--data-dir", data, "integration", "list", "--json"], capsys)
    assert json.loads(out) == []


def test_salesforce_takes_a_json_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, memory_keyring: MemoryKeyring
) -> None:
    secret = json.dumps({
        "clientId": "3MVG9-client", "clientSecret": "s3cr3t-value", "accessToken": "00D-access-token",
        "refreshToken": "5Aep-refresh-token", "instanceUrl": "https://acme.my.salesforce.com",
    })
    code, _, err = run(
        ["integration", "add", "--provider", "salesforce", "--name", "sf", "--secret-stdin",
         "--base-url", "https://acme.my.salesforce.com"], capsys, secret, monkeypatch,
    )
    assert code == ExitCode.OK, err
    stored = json.loads(next(iter(memory_keyring.entries.values())))
    assert stored["refreshToken"] == "5Aep-refresh-token"


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["integration", "add", "--provider", "hubspot"], None, "--name"),
        (["integration", "add", "--provider", "zoho", "--name", "x"], None, "invalid choice"),
        (["integration", "add", "--provider", "hubspot", "--name", "x", "--base-url", "http://example.com"],
         None, "--base-url: plain http is allowed only to loopback"),
        # It would be stored and listed as the address: a secret in argv, the store and `integration show`.
        (["integration", "add", "--provider", "hubspot", "--name", "x", "--base-url",
          "https://user:tok-secret-value@api.example.com"], None, "--base-url: must not hold a user name or password"),
        (["integration", "add", "--provider", "hubspot", "--name", "x", "--secret-stdin"], "", "no hubspot secret"),
        (["integration", "add", "--provider", "salesforce", "--name", "x", "--secret-stdin"], "not-json",
         "JSON object"),
        (["integration", "add", "--provider", "salesforce", "--name", "x", "--secret-stdin"],
         '{"clientId": "c", "accessToken": "tok-secret-value", "bogus": 1}', "unexpected field"),
        (["integration", "show", "nope"], None, "no integration named 'nope'"),
        (["integration", "remove", "nope"], None, "no integration named 'nope'"),
        (["integration"], None, "required"),
    ],
)
def test_usage_and_configuration_errors_exit_2(
    argv: list[str], stdin: str | None, message: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    _, err = capsys.readouterr()
    assert code == ExitCode.USAGE
    assert message in err
    assert "tok-secret-value" not in err


def test_duplicate_name_is_refused(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for expected in (ExitCode.OK, ExitCode.USAGE):
        code, _, err = run(["integration", "add", "--provider", "pipedrive", "--name", "pd", "--domain", "acme",
                            "--secret-stdin"], capsys, "pd-token-12345678", monkeypatch)
        assert code == expected
    assert "already exists" in err


def test_without_a_keyring_nothing_is_created(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring.set_keyring(keyring.backends.fail.Keyring())
    code, _, err = run(["integration", "add", "--provider", "hubspot", "--name", "x", "--secret-stdin"],
                       capsys, "pat-demo-123", monkeypatch)
    assert code == ExitCode.USAGE and "gnome-keyring" in err
    code, out, _ = run(["integration", "list", "--json"], capsys)
    assert json.loads(out) == []


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["version", "--help"], ["integration", "--help"], ["integration", "add", "--help"],
                 ["integration", "list", "--help"], ["integration", "show", "--help"],
                 ["integration", "remove", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
        assert "usage:" in capsys.readouterr().out


def test_secret_is_never_an_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["integration", "add", "--help"])
    help_text = capsys.readouterr().out
    assert "--secret-stdin" in help_text
    assert "--token" not in help_text and "--secret " not in help_text


@pytest.mark.secret_service
def test_done_when_flow_with_the_real_keyring(tmp_path: Path) -> None:
    """The issue's own check, as a user types it, against gnome-keyring."""
    from tests.vault.test_vault import _need_secret_service

    _need_secret_service()
    exe = [sys.executable, "-m", "crm_desktop"]
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHON_KEYRING_BACKEND", "CRM_DESKTOP_DB_URL"}}
    data = tmp_path / "D"
    name = f"demo-{os.getpid()}"
    added = subprocess.run([*exe, "--data-dir", str(data), "integration", "add", "--provider", "hubspot",
                            "--name", name, "--secret-stdin"], input="pat-demo-123", text=True,
                           capture_output=True, env=env)
    assert added.returncode == 0, added.stderr
    listed = subprocess.run([*exe, "--data-dir", str(data), "integration", "list", "--json"], text=True,
                            capture_output=True, env=env, check=True)
    integration = json.loads(listed.stdout)[0]
    assert integration["name"] == name and integration["credentials"] == "stored in OS keyring"
    for path in data.rglob("*"):
        if path.is_file():
            assert b"pat-demo-123" not in path.read_bytes(), path
    account = f"integration-{integration['id']}"
    # Under the workspace's own service (its identity is in its database), read straight from the keyring.
    probe = ("import keyring,sys; from crm_desktop.app.workspace import Workspace; w = Workspace.open(sys.argv[2]); "
             "print(w.vault.service, keyring.get_password(w.vault.service, sys.argv[1])); w.close()")
    before = subprocess.run([sys.executable, "-c", probe, account, str(data)], text=True, capture_output=True, env=env)
    assert before.stdout.startswith("crm-desktop/") and "pat-demo-123" in before.stdout
    removed = subprocess.run([*exe, "--data-dir", str(data), "integration", "remove", name], text=True,
                             capture_output=True, env=env)
    assert removed.returncode == 0, removed.stderr
    after = subprocess.run([sys.executable, "-c", probe, account, str(data)], text=True, capture_output=True, env=env)
    assert after.stdout.split() == [before.stdout.split()[0], "None"]


@pytest.mark.parametrize("argv, said", [
    (["serve", "--port", "99999"], "argument --port: from 0 to 65,535, not 99,999"),
    (["serve", "--port", "-1"], "argument --port: from 0 to 65,535, not -1"),
    (["sandbox", "--provider", "hubspot", "--port", "99999"], "argument --port: from 0 to 65,533, not 99,999"),
    (["sandbox", "--contacts", "-5"], "argument --contacts: 0 or more, not -5"),
    (["demo", "--headless", "--contacts", "-5"], "argument --contacts: 0 or more, not -5"),
    (["demo", "--headless", "--serve", "--api-port", "70000"], "argument --api-port: from 0 to 65,535"),
    (["integration", "login", "sf", "--port", "99999"], "argument --port: from 1 to 65,535, not 99,999"),
    (["runs", "list", "--limit", "0"], "argument --limit: 1 or more, not 0"),
    (["runs", "list", "--limit", "-3"], "argument --limit: 1 or more, not -3"),
    (["runs", "show", "1", "--offset", "-2"], "argument --offset: 0 or more, not -2"),
    (["runs", "show", "1", "--limit", "0"], "argument --limit: 1 or more, not 0"),
    (["contacts", "duplicates", "--limit", "-1"], "argument --limit: 1 or more, not -1"),
    (["conflicts", "list", "--limit", "x"], "argument --limit: a whole number is needed, not 'x'"),
])
def test_a_port_or_count_out_of_range_is_a_usage_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    # These crashed with OverflowError or ValueError from deep inside, or listed everything for a negative limit.
    with pytest.raises(SystemExit) as stopped:
        main(["--data-dir", str(tmp_path / "D"), *argv])
    assert stopped.value.code == ExitCode.USAGE
    assert said in capsys.readouterr().err
