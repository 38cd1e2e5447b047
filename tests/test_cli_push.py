"""The adapters' CLI slice: integration test, contacts/leads push and get, against in-process sandboxes."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_desktop.app.workspace import Workspace
from crm_desktop.cli import ExitCode, main
from crm_desktop.cli import common as cli_common
from crm_desktop.domain.models import Integration
from crm_desktop.sandbox.core import Sandbox, SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from tests.support.cli_runs import cli_workspace_on_sandbox, run_json

CONTACTS_CSV = (
    "email,firstName,lastName,company,phone,twitter_username,twitter_followers\n"
    "ann@example.com,Ann,Lee,Acme,+1 415 555 0132,annlee,1200\n"
    "not-an-email,Bob,Roe,Acme,,,\n"
    "cy@example.com,Cy,Day,Initech,,cyday,30\n"
    "dee@example.com,Dee,Fox,Initech,12,,\n"
)
LEADS_JSONL = (
    '{"email": "lea@example.com", "firstName": "Lea", "lastName": "Park", "company": "Globex", '
    '"source": "twitter_dm", "socialContext": {"platform": "twitter", "sentiment": "positive", '
    '"engagementScore": 72}}\n'
    '{"email": "max@example.com", "lastName": "Moe", "socialContext": {"platform": "tiktok", "sentiment": "angry"}}\n'
)


@pytest.fixture(params=["hubspot", "salesforce", "pipedrive"])
def crm(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Sandbox]:
    directory = tmp_path / "D"
    return directory, cli_workspace_on_sandbox(directory, str(request.param), monkeypatch)


def test_integration_test_reports_who_and_quota(crm: tuple[Path, Sandbox], capsys: pytest.CaptureFixture[str]) -> None:
    data_dir, _ = crm
    code, report = run_json(data_dir, ["integration", "test", "crm"], capsys)
    assert code == ExitCode.OK
    assert report["ok"] is True and report["account"] and report["user"]


def test_push_validates_every_row_and_pushes_the_valid_ones(
    crm: tuple[Path, Sandbox], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, _ = crm
    path = tmp_path / "contacts.csv"
    path.write_text(CONTACTS_CSV, encoding="utf-8")
    code, report = run_json(data_dir, ["contacts", "push", "crm", "--file", str(path)], capsys)
    assert code == ExitCode.PARTIAL  # two rows were refused
    by_line = {row["line"]: row for row in report["records"]}
    assert by_line[3]["outcome"] == "invalid" and by_line[3]["field"] == "email"
    assert by_line[5]["outcome"] == "invalid" and by_line[5]["field"] == "phone"
    assert by_line[2]["outcome"] == "created" and by_line[2]["crmId"]
    assert by_line[4]["outcome"] == "created"
    assert report["summary"]["created"] == 2 and report["summary"]["invalidRows"] == 2
    assert report["summary"]["apiCalls"] >= 1

    # Pushing the same file again creates nothing new.
    code, again = run_json(data_dir, ["contacts", "push", "crm", "--file", str(path)], capsys)
    assert again["summary"]["created"] == 0
    assert again["summary"]["updated"] + again["summary"]["unchanged"] == 2

    code, found = run_json(data_dir, ["contacts", "get", "crm", "--email", "ANN@example.com"], capsys)
    assert code == ExitCode.OK
    assert found["email"] == "ann@example.com" and found["crmId"] == by_line[2]["crmId"]
    code, missing = run_json(data_dir, ["contacts", "get", "crm", "--email", "nobody@example.com"], capsys)
    # A script is told why, as by any other error (it printed a bare null).
    assert code == ExitCode.PARTIAL and missing["error"]["code"] == "not_found"
    assert missing["error"]["message"] == "no contact with email nobody@example.com in crm"



def test_an_excel_windows_1252_file_pushes_and_exits_0_with_its_notice(
    crm: tuple[Path, Sandbox], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # How the file was read is said, but is no failure: every row went, so a script must see success.
    data_dir, _ = crm
    path = tmp_path / "kunden.csv"
    path.write_bytes("email;firstName;lastName;company\nzoe@example.com;Zoë;Müller;Café € GmbH\n".encode("cp1252"))
    code, report = run_json(data_dir, ["contacts", "push", "crm", "--file", str(path)], capsys)
    assert [row["outcome"] for row in report["records"]] == ["created"], report
    assert any("Windows-1252" in notice for notice in report["notices"]), report
    assert code == ExitCode.OK
    empty = tmp_path / "empty.csv"
    empty.write_text("email,firstName\n", encoding="utf-8")
    code, nothing = run_json(data_dir, ["contacts", "push", "crm", "--file", str(empty)], capsys)
    assert code == ExitCode.PARTIAL and nothing["notices"], nothing

def test_leads_push_reports_bad_rows_by_line(
    crm: tuple[Path, Sandbox], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, _ = crm
    path = tmp_path / "leads.jsonl"
    path.write_text(LEADS_JSONL, encoding="utf-8")
    code, report = run_json(data_dir, ["leads", "push", "crm", "--file", str(path)], capsys)
    assert code == ExitCode.PARTIAL
    by_line = {row["line"]: row for row in report["records"]}
    assert by_line[1]["outcome"] == "created", by_line[1]
    assert by_line[2]["outcome"] == "invalid" and by_line[2]["field"] == "socialContext.sentiment"
    code, found = run_json(data_dir, ["leads", "get", "crm", "--email", "Lea@example.com"], capsys)
    assert code == ExitCode.OK and (found["email"], found["crmId"]) == ("lea@example.com", by_line[1]["crmId"])


def test_refused_credentials_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0))
    monkeypatch.setattr(cli_common, "http_transport", sandbox.transport())
    workspace = Workspace.open(tmp_path / "D")
    try:
        workspace.integrations.add(Integration(provider="hubspot", name="crm", base_url=sandbox.base_url),
                                   {"token": "pat-na1-wrong-token-0000"})
    finally:
        workspace.close()
    code = main(["--data-dir", str(tmp_path / "D"), "integration", "test", "crm"])
    _, err = capsys.readouterr()
    assert code == ExitCode.AUTH
    assert "pat-na1-wrong-token-0000" not in err
