"""``contacts list`` / ``leads list``: what an import or a sync left in the store, filtered, sorted and limited."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from crm_desktop.cli import ExitCode
from crm_desktop.cli.listing import MAX_LIMIT
from crm_desktop.domain.models import Contact
from tests.support.cli_runs import run, run_json, workspace_at

CONTACTS = (
    "email,firstName,lastName,company,twitter_username,twitter_followers\n"
    "ann@example.com,Ann,Lee,Acme,annlee,1200\n"
    "bob@example.com,Bob,Ray,Globex,,\n"
    "cat@example.com,Cat,Ng,Acme Labs,,\n"
)
LEADS = "email,firstName,lastName,company,source\ndan@example.com,Dan,Ito,Initech,twitter\n"


@pytest.fixture
def data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    directory = tmp_path / "D"
    (tmp_path / "contacts.csv").write_text(CONTACTS, encoding="utf-8")
    (tmp_path / "leads.csv").write_text(LEADS, encoding="utf-8")
    assert run(directory, ["contacts", "import", str(tmp_path / "contacts.csv")], capsys)[0] == ExitCode.OK
    assert run(directory, ["leads", "import", str(tmp_path / "leads.csv")], capsys)[0] == ExitCode.OK
    return directory


def test_contacts_list_shows_what_the_import_saved(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(data_dir, ["contacts", "list"], capsys)
    assert code == ExitCode.OK
    assert report["total"] == report["shown"] == 3
    assert [p["email"] for p in report["people"]] == ["ann@example.com", "bob@example.com", "cat@example.com"]
    ann = report["people"][0]
    assert (ann["firstName"], ann["lastName"], ann["company"], ann["platforms"]) == ("Ann", "Lee", "Acme", ["twitter"])


def test_filter_sort_and_limit(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, acme = run_json(data_dir, ["contacts", "list", "--filter", "ACME"], capsys)
    assert [p["email"] for p in acme["people"]] == ["ann@example.com", "cat@example.com"]
    _, first = run_json(data_dir, ["contacts", "list", "--sort", "name", "--descending", "--limit", "1"], capsys)
    assert (first["total"], first["shown"], first["people"][0]["email"]) == (3, 1, "cat@example.com")
    code, out, _ = run(data_dir, ["contacts", "list", "--limit", "2"], capsys)
    assert code == ExitCode.OK
    assert out.splitlines()[-1] == "2 contacts (first 2 of 3; raise --limit to see more)"
    assert "ann@example.com  Ann Lee  Acme" in out


def test_leads_list_is_its_own_table(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(data_dir, ["leads", "list"], capsys)
    assert code == ExitCode.OK
    assert "dan@example.com  Dan Ito  Initech" in out and out.splitlines()[-1] == "1 lead"
    _, none = run_json(data_dir, ["leads", "list", "--filter", "ann"], capsys)
    assert none == {"total": 0, "shown": 0, "people": []}


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--limit", "0"], "argument --limit: from 1 to 10,000, not 0"),
        (["--limit", "lots"], "argument --limit: a whole number is needed, not 'lots'"),
        (["--sort", "shoe size"], "argument --sort: invalid choice: 'shoe size' (choose from"),
        (["--min-score", "nan"], "argument --min-score: a number from 0 to 100 is needed, not 'nan'"),
        (["--max-score", "inf"], "argument --max-score: a number from 0 to 100 is needed, not 'inf'"),
        (["--min-score", "101"], "argument --min-score: a number from 0 to 100 is needed, not '101'"),
        (["--max-score", "high"], "argument --max-score: a number is needed, not 'high'"),
    ],
)
def test_malformed_arguments_are_usage_errors(
    data_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        run(data_dir, ["contacts", "list", *argv], capsys)
    assert exited.value.code == ExitCode.USAGE
    assert said in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--state", "failed"], "--state needs --integration NAME"),
        (["--integration", "nowhere"], "nowhere"),
    ],
)
def test_bad_arguments_are_refused_with_the_reason(
    data_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    code, out, err = run(data_dir, ["contacts", "list", *argv], capsys)
    assert code == ExitCode.USAGE, (out, err)
    assert said in err


def test_set_changes_fields_by_hand_as_a_run_that_undoes(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(data_dir, ["contacts", "set", "Ann@Example.com", "company=Acme Corp", "first_name=Anne",
                                       "custom.segment=vip"], capsys)
    assert code == ExitCode.OK
    assert report["changes"] == [{"field": "firstName", "old": "Ann", "new": "Anne"},
                                 {"field": "company", "old": "Acme", "new": "Acme Corp"},
                                 {"field": "custom.segment", "old": None, "new": "vip"}]
    _, listed = run_json(data_dir, ["contacts", "list", "--filter", "ann@"], capsys)
    assert (listed["people"][0]["firstName"], listed["people"][0]["company"]) == ("Anne", "Acme Corp")
    code, out, _ = run(data_dir, ["leads", "set", "dan@example.com", "status=qualified", "company="], capsys)
    assert code == ExitCode.OK
    assert "status: new -> qualified" in out and "company: Initech -> (blank)" in out
    assert "take it back with: crm-desktop runs undo " in out

    code, _, _ = run(data_dir, ["runs", "undo", str(report["runId"])], capsys)
    assert code == ExitCode.OK
    _, listed = run_json(data_dir, ["contacts", "list", "--filter", "ann@"], capsys)
    assert (listed["people"][0]["firstName"], listed["people"][0]["company"]) == ("Ann", "Acme")


def test_set_refuses_bad_values_fields_and_people(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(data_dir, ["contacts", "set", "bob@example.com", "phone=call me", "company=Fine"], capsys)
    assert code == ExitCode.USAGE
    assert "bob@example.com" in err and "phone" in err and not out
    _, listed = run_json(data_dir, ["contacts", "list", "--filter", "bob@"], capsys)
    assert listed["people"][0]["company"] == "Globex", "nothing of a refused edit is written"
    code, _, err = run(data_dir, ["contacts", "set", "bob@example.com", "email=x@example.com"], capsys)
    assert code == ExitCode.USAGE and "'email' is not a field `set` changes" in err
    code, _, err = run(data_dir, ["contacts", "set", "bob@example.com", "company"], capsys)
    assert code == ExitCode.USAGE and "expected FIELD=VALUE" in err
    code, _, err = run(data_dir, ["contacts", "set", "nobody@example.com", "company=X"], capsys)
    assert code == ExitCode.USAGE and "no contact with email nobody@example.com" in err
    # A lead's status cannot be cleared: this said "nothing changed" and exited 0.
    code, out, err = run(data_dir, ["leads", "set", "dan@example.com", "status="], capsys)
    assert code == ExitCode.USAGE and "status: a lead always has a status: give one of new, contacted" in err, out


def test_csv_writes_everyone_the_filters_match_for_an_import(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "acme.csv"
    code, report = run_json(data_dir, ["contacts", "list", "--filter", "acme", "--limit", "1", "--csv", str(path)],
                            capsys)
    assert (code, report["exported"]) == (ExitCode.OK, 2), "--limit does not cut an export"
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("email,firstName,lastName,company,phone,twitter_username,twitter_followers")
    assert [line.split(",")[0] for line in lines[1:]] == ["ann@example.com", "cat@example.com"]
    code, _, err = run(data_dir, ["contacts", "list", "--csv", str(tmp_path / "nowhere" / "x.csv")], capsys)
    assert code == ExitCode.USAGE and "cannot be written" in err


def test_a_store_locked_past_the_wait_is_a_sentence_and_exit_1(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Another program holds the SQLite file's write lock longer than the store waits (10 s).
    holder = sqlite3.connect(data_dir / "crm-desktop.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        (tmp_path / "more.csv").write_text("email\nsue@example.com\n", encoding="utf-8")
        code, report = run_json(data_dir, ["contacts", "import", str(tmp_path / "more.csv")], capsys)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == ExitCode.PARTIAL, report
    assert report["error"]["code"] == "store_busy"
    assert "database is locked" in report["error"]["message"] and "try again" in report["error"]["message"]
    code, listed = run_json(data_dir, ["contacts", "list"], capsys)
    assert code == ExitCode.OK and "sue@example.com" not in str(listed)


def test_a_campaign_is_read_as_the_attribution_report_reads_it(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"platform": "twitter", "type": "like", "timestamp": "2026-11-20T10:00:00Z", '
                    '"campaign": "Winter Sale", "user": {"email": "dan@example.com"}}\n', encoding="utf-8")
    assert run(data_dir, ["social", "import", str(feed)], capsys)[0] == ExitCode.OK
    _, exact = run_json(data_dir, ["leads", "list", "--campaign", "Winter Sale"], capsys)
    assert [p["email"] for p in exact["people"]] == ["dan@example.com"]

    # "winter sale" listed "0 leads" and exit 0, though `attribution report --campaign "winter sale"` reports the
    # campaign's leads; a name no campaign has was "0 leads" too.
    code, other_case = run_json(data_dir, ["leads", "list", "--campaign", "winter sale"], capsys)
    assert code == ExitCode.OK and other_case == exact
    code, out, err = run(data_dir, ["contacts", "list", "--campaign", "wintr sale"], capsys)
    assert code == ExitCode.USAGE and out == ""
    assert err == "crm-desktop: no campaign 'wintr sale' in the local store; the closest: 'Winter Sale'\n"
    code, report = run_json(data_dir, ["contacts", "list", "--campaign", "nope", "--csv", str(tmp_path / "x.csv")],
                            capsys)
    assert (code, report["error"]["code"]) == (ExitCode.USAGE, "not_found") and not (tmp_path / "x.csv").exists()


def test_an_undo_of_an_edit_refused_over_a_newer_value_speaks_of_the_edit(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, edit = run_json(data_dir, ["contacts", "set", "ann@example.com", "company=Acme Corp"], capsys)
    run(data_dir, ["contacts", "set", "ann@example.com", "company=Acme Inc"], capsys)

    code, out, err = run(data_dir, ["runs", "undo", str(edit["runId"])], capsys)

    # It said "--force puts back the values from before the import anyway" of a run that was an edit by hand.
    assert code == ExitCode.PARTIAL and not out
    assert err.endswith("Nothing was undone; --force puts back the values from before the edit anyway\n"), err
    assert "company (locally): the run left 'Acme Corp', now 'Acme Inc'" in err


def test_runs_list_names_an_edit_and_its_undo_an_edit_not_an_import(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, edit = run_json(data_dir, ["contacts", "set", "ann@example.com", "company=Acme Corp"], capsys)
    _, undo = run_json(data_dir, ["runs", "undo", str(edit["runId"])], capsys)

    _, listed = run_json(data_dir, ["runs", "list", "--limit", "2"], capsys)
    # Both were listed as "(local import)", as if a file had been imported.
    assert [(r["id"], r["integration"], r["trigger"]) for r in listed] == [
        (undo["undoRunId"], "(edit by hand)", "edit"), (edit["runId"], "(edit by hand)", "edit")]


def test_past_the_most_one_call_lists_the_last_line_points_to_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "many"
    with workspace_at(directory) as workspace:
        workspace.contacts.save_many([Contact(email=f"p{n:05d}@example.com") for n in range(MAX_LIMIT + 1)])

    code, out, _ = run(directory, ["contacts", "list", "--limit", str(MAX_LIMIT)], capsys)

    # It said "raise --limit to see more", and a larger --limit is refused (at most 10,000).
    assert code == ExitCode.OK
    assert out.splitlines()[-1] == "10,000 contacts (first 10,000 of 10,001; --csv FILE writes every one)"
    with pytest.raises(SystemExit) as refused:
        run(directory, ["contacts", "list", "--limit", str(MAX_LIMIT + 1)], capsys)
    assert refused.value.code == ExitCode.USAGE
