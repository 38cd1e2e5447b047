"""``contacts import`` / ``leads import``: partial files, blank cells, the per-record report, undo of an import."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from crm_desktop.app import imports
from crm_desktop.app.workspace import Workspace
from crm_desktop.cli import ExitCode
from tests.support.cli_runs import run, run_json

FULL = (
    "email,firstName,lastName,company,phone,twitter_username,twitter_followers\n"
    "ann@example.com,Ann,Lee,Acme,+1 415 555 0132,annlee,1200\n"
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def stored(data_dir: Path, email: str = "ann@example.com") -> dict[str, Any]:
    workspace = Workspace.open(data_dir)
    try:
        contact = workspace.contacts.find(email)
        assert contact is not None
        return contact.to_wire()
    finally:
        workspace.close()


@pytest.fixture
def data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    directory = tmp_path / "D"
    code, _, err = run(directory, ["contacts", "import", str(write(tmp_path, "full.csv", FULL))], capsys)
    assert code == ExitCode.OK, err
    return directory


def test_a_partial_file_changes_only_its_columns(data_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    before = stored(data_dir)
    code, report = run_json(data_dir, ["contacts", "import", str(write(tmp_path, "p.csv",
                                                                       "email,company\nann@example.com,Globex\n"))],
                            capsys)
    assert code == ExitCode.OK
    assert report["updated"] == 1 and report["blankClears"] is False
    [record] = report["records"]
    assert record == {"line": 2, "email": "ann@example.com", "outcome": "updated",
                      "changes": {"company": {"old": "Acme", "new": "Globex"}}}
    assert stored(data_dir) == {**before, "company": "Globex"}


def test_an_empty_cell_erases_only_with_blank_clears(data_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "b.csv", "email,phone,twitter_followers,lastName\nann@example.com,,,Lee-Park\n")
    code, out, _ = run(data_dir, ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.OK and "empty cells left stored values as they were" in out
    kept = stored(data_dir)
    assert kept["phone"] == "+14155550132" and kept["socialProfiles"][0]["followers"] == 1200
    assert kept["lastName"] == "Lee-Park"

    code, report = run_json(data_dir, ["contacts", "import", str(path), "--blank-clears"], capsys)
    assert code == ExitCode.OK and report["blankClears"] is True
    assert report["records"][0]["changes"] == {
        "phone": {"old": "+14155550132", "new": None},
        "twitter_followers": {"old": "1200", "new": "0"},
    }
    cleared = stored(data_dir)
    assert "phone" not in cleared and cleared["socialProfiles"][0]["username"] == "annlee"


def test_an_import_is_a_run_that_undo_takes_back_once(data_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    before = stored(data_dir)
    path = write(tmp_path, "u.csv", "email,company,linkedin_url,new_col\n"
                 "ann@example.com,Globex,https://www.linkedin.com/in/ann-lee,x\n"
                 "bo@example.com,Bo Inc,,\n")
    code, report = run_json(data_dir, ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.OK and (report["created"], report["updated"]) == (1, 1)
    run_id = report["runId"]
    code, runs = run_json(data_dir, ["runs", "list"], capsys)
    newest = runs[0]
    assert (newest["id"], newest["trigger"], newest["counts"]["created"], newest["counts"]["updated"]) == (
        run_id, "import", 1, 1)

    code, undo = run_json(data_dir, ["runs", "undo", str(run_id)], capsys)
    assert code == ExitCode.OK, undo
    assert undo["restoredLocal"] == 1 + 4 + 1  # company, the four parts of the linkedin profile, new_col
    assert any("bo@example.com" in kept and "created by the import" in kept for kept in undo["kept"])
    assert stored(data_dir) == before

    code, _, err = run(data_dir, ["runs", "undo", str(run_id)], capsys)
    assert code == ExitCode.PARTIAL and "already undone" in err
    # A script tells the refusal by its code, as for the undo of a sync run.
    code, refused = run_json(data_dir, ["runs", "undo", str(run_id)], capsys)
    assert code == ExitCode.PARTIAL and refused["error"]["code"] == "undo_refused", refused


def test_undo_refuses_over_a_value_changed_after_the_import_unless_forced(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, first = run_json(data_dir, ["contacts", "import", str(write(tmp_path, "1.csv",
                                                                   "email,company,lastName\n"
                                                                   "ann@example.com,Globex,Park\n"))], capsys)
    run(data_dir, ["contacts", "import", str(write(tmp_path, "2.csv", "email,company\nann@example.com,Initech\n"))],
        capsys)
    code, _, err = run(data_dir, ["runs", "undo", str(first["runId"])], capsys)
    assert code == ExitCode.PARTIAL
    assert "company" in err and "'Globex', now 'Initech'" in err and "--force" in err
    assert stored(data_dir)["company"] == "Initech" and stored(data_dir)["lastName"] == "Park"  # nothing undone
    code, refused = run_json(data_dir, ["runs", "undo", str(first["runId"])], capsys)
    assert code == ExitCode.PARTIAL and refused["error"]["code"] == "undo_refused", refused

    code, undo = run_json(data_dir, ["runs", "undo", str(first["runId"]), "--force"], capsys)
    assert code == ExitCode.OK, undo
    assert undo["restoredLocal"] == 2 and len(undo["overridden"]) == 1
    [change] = undo["changes"]
    assert change["fields"] == {"company": {"from": "Initech", "to": "Acme"}, "lastName": {"from": "Park", "to": "Lee"}}
    assert (stored(data_dir)["company"], stored(data_dir)["lastName"]) == ("Acme", "Lee")


def test_social_columns_without_a_username_warn_by_column(data_dir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "s.csv", "email,tiktok_followers\ncy@example.com,300\n")
    code, report = run_json(data_dir, ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.OK and report["created"] == 1
    [warning] = report["warnings"]
    assert warning["line"] == 2 and warning["columns"] == ["tiktok_followers"]
    code, out, _ = run(data_dir, ["contacts", "import", str(path)], capsys)
    assert "line     2  warning  cy@example.com  tiktok_followers not kept" in out


@pytest.mark.parametrize(("column", "says"), [
    ("instagram_followers", "an Instagram profile needs an instagram_username, or an instagram_url like "
                            "https://instagram.com/NAME"),
    ("linkedin_followers", "a LinkedIn profile needs a linkedin_username"),
    ("youtube_followers", "a YouTube profile needs a youtube_username"),
])
def test_the_warning_names_the_network_as_it_is_spelled_with_its_article(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], column: str, says: str
) -> None:
    """The warning read "a instagram profile needs a instagram_username"."""
    path = write(tmp_path, "s.csv", f"email,{column}\ncy@example.com,300\n")
    code, report = run_json(data_dir, ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.OK
    [warning] = report["warnings"]
    assert warning["reason"].startswith(says), warning


def test_an_existing_profile_takes_a_followers_only_column(data_dir: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "f.csv", "email,twitter_followers\nann@example.com,1500\n")
    code, report = run_json(data_dir, ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.OK and report["warnings"] == []
    assert stored(data_dir)["socialProfiles"][0] == {"platform": "twitter", "username": "annlee",
                                                     "followers": 1500, "engagement": 0.0}


@pytest.mark.parametrize(("text", "words"), [("", "is empty"), ("email,company\n", "has a header but no rows")])
def test_an_empty_file_warns_and_exits_1(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         text: str, words: str) -> None:
    code, out, _ = run(data_dir, ["contacts", "import", str(write(tmp_path, "e.csv", text))], capsys)
    assert code == ExitCode.PARTIAL
    assert f"warning: e.csv {words}: nothing to import" in out


def test_a_notice_about_how_the_file_was_read_does_not_fail_an_import_whose_rows_all_landed(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = write(tmp_path, "report.csv", '"Email","First Name"\r\n"dana@initech.com","Dana"\r\n\r\n'
                   '"Grand Totals (1 record)"\r\n')

    code, out, _ = run(data_dir, ["contacts", "import", str(report)], capsys)

    assert code == ExitCode.OK, out
    assert "report's footer" in out and "1 created" in out


def test_no_email_column_is_a_usage_error_naming_the_headers(data_dir: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "n.csv", "Mail;Name\nann@example.com;Ann\n")
    code, _, err = run(data_dir, ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.USAGE and "headers seen are: 'Mail', 'Name'" in err


def test_a_bad_row_is_reported_once_in_the_users_words(data_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bad.csv", "Email;Twitter_Username;Twitter_Followers;Phone\n"
                 "dee@example.com;dee;-4;12\n")
    code, out, _ = run(data_dir, ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.PARTIAL
    refused = [line for line in out.splitlines() if "refused  dee@example.com" in line]
    assert len(refused) == 1
    assert "Twitter_Followers: must be 0 or more" in refused[0] and "socialProfiles" not in refused[0]
    assert "CRM_DESKTOP_PHONE_REGION" in refused[0] and "region US" in refused[0]
    assert "1 row refused" in out


def test_leads_import_takes_the_social_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "L"
    path = write(tmp_path, "l.csv", "email,firstName,twitter_username,twitter_followers,source,platform\n"
                 "lee@example.com,Lee,leeo,12,twitter_dm,twitter\n")
    code, report = run_json(directory, ["leads", "import", str(path)], capsys)
    assert code == ExitCode.OK and report["created"] == 1, report
    partial = write(tmp_path, "l2.csv", "email,twitter_followers\nlee@example.com,40\n")
    code, report = run_json(directory, ["leads", "import", str(partial)], capsys)
    assert report["records"][0]["changes"] == {"twitter_followers": {"old": "12", "new": "40"}}
    workspace = Workspace.open(directory)
    try:
        lead = workspace.leads.find("lee@example.com")
    finally:
        workspace.close()
    assert lead is not None and lead.first_name == "Lee" and lead.source == "twitter_dm"
    assert [(p.username, p.followers) for p in lead.social_profiles] == [("leeo", 40)]


def test_a_crm_export_fills_the_records_fields_and_names_the_columns_kept_as_custom(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Headers as HubSpot's contact export writes them: Company Name and Phone Number are the contact's own fields.
    directory = tmp_path / "H"
    path = write(tmp_path, "hubspot-export.csv",
                 "Record ID,First Name,Last Name,Email,Phone Number,Company Name,Lifecycle Stage\n"
                 "101,Ann,Lee,Ann.Lee@Example.com,+1 (415) 555-0101,Acme,lead\n")
    code, out, err = run(directory, ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.OK, err
    assert "kept as custom fields: Record ID, Lifecycle Stage" in out
    ann = stored(directory, "ann.lee@example.com")
    assert (ann["company"], ann["phone"]) == ("Acme", "+14155550101")
    assert ann["customFields"] == {"Record ID": "101", "Lifecycle Stage": "lead"}

    # A column with the field's own name wins wherever it stands; the other names stay custom fields, not refused.
    both = write(tmp_path, "both.csv", "Account Name,Email,Company Name,Company\nAccount Co,ann.lee@example.com,"
                 "Other Co,Globex\n")
    code, report = run_json(directory, ["contacts", "import", str(both)], capsys)
    assert code == ExitCode.OK and report["customColumns"] == ["Account Name", "Company Name"]
    assert stored(directory, "ann.lee@example.com")["company"] == "Globex"


def test_a_salesforce_lead_report_fills_the_leads_fields_and_keeps_its_own_values(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "S"
    path = write(tmp_path, "sf.csv", "First Name,Last Name,Email,Company / Account,Lead Source,Lead Status\n"
                 "Lee,Park,lee@example.com,Initech,Web,Open\n")
    code, report = run_json(directory, ["leads", "import", str(path)], capsys)
    assert code == ExitCode.OK and report["customColumns"] == ["Lead Source", "Lead Status"], report
    workspace = Workspace.open(directory)
    try:
        lead = workspace.leads.find("lee@example.com")
    finally:
        workspace.close()
    assert lead is not None and lead.company == "Initech"
    assert lead.custom_fields == {"Lead Source": "Web", "Lead Status": "Open"}


MANY = "email,firstName\n" + "".join(f"p{n}@example.com,P{n}\n" for n in range(10))


@pytest.mark.parametrize("json_out", [False, True])
def test_an_import_prints_no_progress_when_stderr_is_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, json_out: bool
) -> None:
    monkeypatch.setattr(imports, "IMPORT_CHUNK", 2)
    argv = ["contacts", "import", str(write(tmp_path, "people.csv", MANY))] + (["--json"] if json_out else [])
    code, out, err = run(tmp_path / "D", argv, capsys)
    assert code == ExitCode.OK and err == ""
    assert "rows read" not in out
    if json_out:
        assert json.loads(out)["created"] == 10


class Terminal(io.StringIO):
    """A stderr that is a terminal."""

    def isatty(self) -> bool:
        return True


def test_an_import_shows_its_progress_on_a_terminals_stderr_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "IMPORT_CHUNK", 2)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code, out, _ = run(tmp_path / "D", ["contacts", "import", str(write(tmp_path, "people.csv", MANY)), "--json"],
                       capsys)
    assert code == ExitCode.OK and json.loads(out)["created"] == 10  # stdout holds the JSON alone
    shown = [line.strip() for line in terminal.getvalue().split("\r") if line.strip()]
    assert shown == [f"Importing people.csv: {n} of 10 rows read…" for n in (2, 4, 6, 8, 10)] + [
        "Importing people.csv: all 10 rows read; saving them…"]
    assert terminal.getvalue().endswith("\r")  # rubbed out before the report
