"""The CLI says the same thing the same way across commands: error codes, times, record errors, output paths."""

from __future__ import annotations

import ast
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from crm_desktop.cli import ERROR_EXITS, ExitCode
from crm_desktop.domain.models import Contact, Integration
from crm_desktop.sandbox.core import FaultKind, FaultRule, SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from tests.support.cli_runs import connect_cli, run, run_json, workspace_at

REPO_ROOT = Path(__file__).resolve().parents[1]
#: An ISO 8601 time as every ``--json`` report writes it: date ``T`` time, then the offset.
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?[+-]\d{2}:\d{2}")


@pytest.fixture
def sandbox() -> HubSpotSandbox:
    return HubSpotSandbox(SandboxConfig(contacts=0))


@pytest.fixture
def data_dir(tmp_path: Path, sandbox: HubSpotSandbox, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace with one HubSpot integration ``hs`` and two contacts; the CLI talks to the sandbox."""
    directory = connect_cli(tmp_path / "D", "hubspot", sandbox, monkeypatch, name="hs")
    with workspace_at(directory) as workspace:
        workspace.contacts.save_many([Contact(email="ann@example.com", first_name="Ann"),
                                      Contact(email="bob@example.com", first_name="Bob")])
    return directory


def test_sync_all_gives_each_failed_integration_the_code_sync_name_gives(
    data_dir: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    with workspace_at(data_dir) as workspace:
        workspace.integrations.add(Integration(provider="hubspot", name="wrong", base_url=sandbox.base_url),
                                   {"token": "pat-na1-not-the-token"})
    code, alone = run_json(data_dir, ["sync", "wrong"], capsys)
    assert code == ExitCode.AUTH and alone["error"]["code"] == "auth_refused", alone

    code, data = run_json(data_dir, ["sync", "--all"], capsys)

    assert code == ExitCode.AUTH, data
    by_name = {r["integration"]: r for r in data["results"]}
    assert by_name["hs"]["status"] == "succeeded"
    wrong = by_name["wrong"]
    assert wrong["status"] == "error"
    assert (wrong["code"], wrong["exitCode"]) == (alone["error"]["code"], alone["error"]["exitCode"]), wrong


def _times(data: Any, key: str = "") -> list[tuple[str, Any]]:
    """Every value under a key ending in ``At`` (or named ``at``), anywhere in a report."""
    if isinstance(data, dict):
        return [t for k, v in data.items() for t in _times(v, k)]
    if isinstance(data, list):
        return [t for v in data for t in _times(v, key)]
    return [(key, data)] if (key.endswith("At") or key == "at") and data is not None else []


def test_every_json_time_is_iso_8601_with_t_and_offset(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, synced = run_json(data_dir, ["sync", "hs"], capsys)
    assert code == ExitCode.OK, synced
    run_id = str(synced["results"][0]["runId"])
    reports = [run_json(data_dir, argv, capsys)[1] for argv in (
        ["runs", "list"], ["runs", "show", run_id], ["contacts", "history", "bob@example.com"], ["contacts", "list"])]

    times = [t for report in reports for t in _times(report)]

    assert {key for key, _ in times} >= {"startedAt", "finishedAt", "at", "updatedAt"}, times
    for key, value in times:
        assert isinstance(value, str) and ISO_TIME.fullmatch(value), (key, value)
        assert datetime.fromisoformat(value).utcoffset() is not None


def test_a_record_error_that_names_its_email_is_printed_with_it_once(
    data_dir: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox.faults.replace([FaultRule(FaultKind.INVALID_RECORD, at=[1])])
    code, synced = run_json(data_dir, ["sync", "hs"], capsys)
    assert code == ExitCode.PARTIAL
    [failure] = synced["results"][0]["failures"]
    email, message = failure["email"], failure["message"]
    assert message.startswith(f"{email}: "), "the CRM's message names the record first"
    run_id = str(synced["results"][0]["runId"])

    code, out, _ = run(data_dir, ["runs", "errors", run_id], capsys)
    assert code == ExitCode.OK
    assert message in out and f"{email}: {email}" not in out, out

    sandbox.faults.replace([FaultRule(FaultKind.INVALID_RECORD, at=[1])])
    code, out, _ = run(data_dir, ["runs", "retry", run_id], capsys)
    assert code == ExitCode.PARTIAL
    assert message in out and f"{email}: {email}" not in out and out.count(email) == message.count(email), out


def test_diagnostics_export_refuses_a_missing_folder_as_contacts_list_csv_does(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing" / "dir"
    code, _, csv_err = run(data_dir, ["contacts", "list", "--csv", str(missing / "x.csv")], capsys)
    assert code == ExitCode.USAGE

    code, out, err = run(data_dir, ["diagnostics", "export", str(missing / "x.zip")], capsys)

    assert code == ExitCode.USAGE, out
    assert not missing.exists() and not missing.parent.exists(), "no folder is created"
    expected = f"crm-desktop: {missing / 'x.zip'}: cannot be written: no such folder to save in\n"
    assert err == csv_err.replace("x.csv", "x.zip") == expected
    code, data = run_json(data_dir, ["diagnostics", "export", str(missing / "x.zip")], capsys)
    assert (code, data["error"]["code"]) == (ExitCode.USAGE, "file_unusable")


def _unreadable_file(tmp_path: Path) -> Path:
    """A ``.csv`` that exists but cannot be opened for reading: mode 000, or for root (who reads any such file) a
    link to a kernel setting only writable (reading it is refused to root too)."""
    path = tmp_path / "locked.csv"
    path.write_text("email\nann@example.com\n", encoding="utf-8")
    path.chmod(0)
    if os.access(path, os.R_OK):
        path.unlink()
        setting = Path("/proc/sys/vm/drop_caches")
        if not setting.is_file() or os.access(setting, os.R_OK):
            pytest.skip("no file this user cannot read")
        path.symlink_to(setting)
    return path


def test_a_file_to_read_that_cannot_be_is_file_unusable_as_one_to_write(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "people.csv"
    folder.mkdir()
    cases = {
        tmp_path / "missing.csv": "no such file",
        folder: "it is a folder; give a .csv or .jsonl file",
        _unreadable_file(tmp_path): "Permission denied",
    }
    for path, reason in cases.items():
        for argv in (["contacts", "import", str(path)], ["leads", "import", str(path)],
                     ["contacts", "push", "hs", "--file", str(path)], ["leads", "push", "hs", "--file", str(path)],
                     ["social", "import", str(path)]):
            code, out, err = run(data_dir, argv, capsys)
            assert (code, out, err) == (ExitCode.USAGE, "", f"crm-desktop: {path}: cannot be read: {reason}\n"), argv
            code, data = run_json(data_dir, argv, capsys)
            assert code == ExitCode.USAGE, argv
            assert data["error"] == {"code": "file_unusable", "exitCode": 2,
                                     "message": f"{path}: cannot be read: {reason}"}, argv
    with workspace_at(data_dir) as workspace:
        assert workspace.leads.count() == 0 and workspace.contacts.count() == 2, "nothing was imported"


def test_mapping_set_checks_a_named_crm_field_with_the_direction_off_too(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(data_dir, ["mapping", "set", "hs", "company", "--crm-field", "nope", "--direction", "off"],
                       capsys)

    assert code == ExitCode.USAGE and "company -> nope: the CRM has no such field" in err, err
    _, shown = run_json(data_dir, ["mapping", "show", "hs", "--object", "contact"], capsys)
    company = next(m for m in shown["mappings"] if m["field"] == "company")
    assert (company["crmField"], company["direction"]) == ("company", "two_way"), "nothing was saved"
    # Turning a field off without naming a CRM field is not checked (a field the CRM lacks is turned off so).
    code, changed = run_json(data_dir, ["mapping", "set", "hs", "company", "--direction", "off"], capsys)
    assert code == ExitCode.OK and changed["direction"] == "off"
    code, changed = run_json(data_dir, ["mapping", "set", "hs", "company", "--crm-field", "nope", "--no-check"],
                             capsys)
    assert code == ExitCode.OK and changed["crmField"] == "nope"
    code, changed = run_json(data_dir, ["mapping", "set", "hs", "company", "--rule", "prefer_crm"], capsys)
    assert code == ExitCode.OK, "an off field whose CRM field is not named again is not checked"


def _codes_given_by_the_commands() -> set[str]:
    """Every ``--json`` error code the CLI's modules give: ERROR_EXITS' codes, CommandError's defaults, and the
    literal codes of each ``CommandError(...)`` or ``fail(...)`` call."""
    codes = {code for _, code in ERROR_EXITS.values()} | {"usage", "auth_refused", "failed"}
    for module in (REPO_ROOT / "crm_desktop" / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            called = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if called not in {"CommandError", "fail"}:
                continue
            given = node.args[2:3] + [k.value for k in node.keywords if k.arg == "error_code"]
            codes |= {v.value for v in given if isinstance(v, ast.Constant) and isinstance(v.value, str)}
    return codes


def test_the_readme_lists_every_error_code_a_script_can_get() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    listed_part = readme.split("`code` is stable:", 1)[1].split("(the table is `ERROR_EXITS`", 1)[0]
    listed = set(re.findall(r"`([a-z_]+)`", listed_part))
    # changed_since (undo-change), unknown_setting and invalid_setting (config), unknown_pipeline (integration
    # pipeline) were given to scripts but missing from the list README calls stable.
    assert _codes_given_by_the_commands() - listed == set()
