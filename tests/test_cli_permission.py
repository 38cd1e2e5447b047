"""The CLI when a CRM refuses for a missing permission: the code and message say what to ask the CRM's admin for,
never "reconnect" (exit 3 stays for refused credentials)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_desktop.cli import ExitCode
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.hubspot import DEFAULT_SCOPES, HubSpotSandbox
from tests.support.cli_runs import connect_cli, run_json


def test_sync_refused_for_a_missing_scope_names_it_and_is_no_sign_in_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0),
                             scopes=[s for s in DEFAULT_SCOPES if s != "crm.objects.contacts.write"])
    data_dir = connect_cli(tmp_path / "D", "hubspot", sandbox, monkeypatch)
    people = tmp_path / "people.csv"
    people.write_text("email,first_name,last_name\nann@example.com,Ann,Lee\n", encoding="utf-8")
    code, report = run_json(data_dir, ["contacts", "import", str(people)], capsys)
    assert code == ExitCode.OK, report

    code, report = run_json(data_dir, ["sync", "crm", "--direction", "push"], capsys)

    assert code == ExitCode.PARTIAL, report
    [result] = report["results"]
    assert result["authFailed"] is False and result["status"] == "failed"
    assert [f["category"] for f in result["failures"]] == ["permission"]
    assert "crm.objects.contacts.write" in result["message"] and "super admin" in result["message"]
    assert "reconnect" not in result["message"]
    code, errors = run_json(data_dir, ["runs", "errors", str(result["runId"])], capsys)
    assert code == ExitCode.OK
    assert [(g["category"], g["count"]) for g in errors["groups"]] == [("permission", 1)], errors
