"""``contacts history`` / ``leads history`` and ``undo-change``: one person's changes and the undo of one of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crm_desktop.app.people import PeopleService
from crm_desktop.cli import ExitCode
from crm_desktop.domain.outcomes import RecordObject
from tests.support.cli_runs import connect_cli, make_sandbox, run, run_json, workspace_at

PEOPLE = "email,firstName,company\nann@example.com,Ann,Acme\n"
UPDATE = "email,company,lastName\nann@example.com,Initech,Lee\n"


@pytest.fixture
def data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A data directory with Ann imported (company Acme), imported again (Initech, and a last name), then edited by
    hand (company Globex)."""
    directory = tmp_path / "D"
    path, update = tmp_path / "people.csv", tmp_path / "update.csv"
    path.write_text(PEOPLE, encoding="utf-8")
    update.write_text(UPDATE, encoding="utf-8")
    for argv in (["contacts", "import", str(path)], ["contacts", "import", str(update)],
                 ["contacts", "set", "ann@example.com", "company=Globex"]):
        code, _, err = run(directory, argv, capsys)
        assert code == ExitCode.OK, err
    return directory


def company(data_dir: Path) -> str | None:
    with workspace_at(data_dir) as workspace:
        contact = workspace.contacts.find("ann@example.com")
        assert contact is not None
        return contact.company


def changes(data_dir: Path, capsys: pytest.CaptureFixture[str], key: str = "ann@example.com") -> list[dict[str, Any]]:
    code, report = run_json(data_dir, ["contacts", "history", key], capsys)
    assert code == ExitCode.OK
    return list(report["changes"])


def change_id(data_dir: Path, capsys: pytest.CaptureFixture[str], before: str | None, after: str | None) -> int:
    return next(int(c["id"]) for c in changes(data_dir, capsys)
                if c["field"] == "company" and (c["before"], c["after"]) == (before, after))


def test_history_lists_the_import_and_the_edit_newest_first(data_dir: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    listed = changes(data_dir, capsys)
    company_changes = [(c["before"], c["after"], c["source"]) for c in listed if c["field"] == "company"]
    assert company_changes == [("Initech", "Globex", "edit"), ("Acme", "Initech", "import")]
    assert [c["id"] for c in listed] == sorted((c["id"] for c in listed), reverse=True)
    # By local id as by email; text mode shows the ids to undo with.
    with workspace_at(data_dir) as workspace:
        local_id = workspace.sync.store.local_by_emails(RecordObject.CONTACT, ["ann@example.com"])["ann@example.com"].id
    assert changes(data_dir, capsys, str(local_id)) == listed
    code, out, _ = run(data_dir, ["contacts", "history", "ann@example.com", "--limit", "1"], capsys)
    assert code == ExitCode.OK
    assert f"{listed[0]['id']}" in out and "Initech -> Globex" in out and "Acme -> Initech" not in out
    assert "older changes were left off" in out and "crm-desktop contacts undo-change ID" in out
    code, out, err = run(data_dir, ["leads", "history", "ann@example.com"], capsys)
    assert code == ExitCode.USAGE and "no lead with email ann@example.com" in err


def test_runs_list_and_show_name_an_edit_by_hand_as_one_not_as_an_import(
        data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, runs = run_json(data_dir, ["runs", "list"], capsys)
    assert code == ExitCode.OK
    assert [(r["integration"], r["trigger"], r["direction"]) for r in runs] == [
        ("(edit by hand)", "edit", "edit"), ("(local import)", "import", "import"),
        ("(local import)", "import", "import")]
    code, out, _ = run(data_dir, ["runs", "list"], capsys)
    edit_line = next(line for line in out.splitlines() if line.startswith(str(runs[0]["id"]) + " "))
    assert "(edit by hand)" in edit_line and "import" not in edit_line
    code, out, _ = run(data_dir, ["runs", "show", str(runs[0]["id"])], capsys)
    assert "integration:  (edit by hand)" in out and "trigger:      edit, direction edit" in out
    # Its undo is an undo of an edit by hand too.
    code, _, err = run(data_dir, ["runs", "undo", str(runs[0]["id"])], capsys)
    assert code == ExitCode.OK, err
    code, runs = run_json(data_dir, ["runs", "list", "--limit", "1"], capsys)
    assert [(r["integration"], r["trigger"], r["direction"]) for r in runs] == [("(edit by hand)", "edit", "undo")]


def test_undo_change_puts_back_one_value_and_says_the_sync_sends_it(data_dir: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    edit = change_id(data_dir, capsys, "Initech", "Globex")
    code, report = run_json(data_dir, ["contacts", "undo-change", str(edit)], capsys)
    assert code == ExitCode.OK
    assert report["restored"] == "Initech" and report["replaced"] == "Globex" and report["sentToCrms"] is True
    assert company(data_dir) == "Initech"
    # The undo is a change of its own in the history, and a second undo of the same change is refused.
    assert changes(data_dir, capsys)[0] | {"id": 0, "at": "", "runId": 0} == {
        "id": 0, "at": "", "runId": 0, "field": "company", "label": "Company", "before": "Globex", "after": "Initech",
        "source": "undo", "side": "local", "undoable": True}
    code, out, err = run(data_dir, ["contacts", "undo-change", str(edit)], capsys)
    assert code == ExitCode.PARTIAL and out == ""
    assert f"change {edit} (company) was already undone (by run {report['runId']})" in err


def test_undo_change_to_a_blank_says_the_crms_keep_theirs(data_dir: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    last_name = next(int(c["id"]) for c in changes(data_dir, capsys) if c["after"] == "Lee")
    code, out, _ = run(data_dir, ["contacts", "undo-change", str(last_name)], capsys)
    assert code == ExitCode.OK
    with workspace_at(data_dir) as workspace:
        contact = workspace.contacts.find("ann@example.com")
        assert contact is not None and contact.last_name is None
    # No integration sends a blank: the text says so rather than promising that the next sync sends it.
    assert out.strip().endswith(" is (blank) again (was Lee; run 4); blank here only: a blank never clears a CRM's "
                                "value, so the CRMs keep theirs")


def test_undo_change_is_refused_when_the_value_changed_since(data_dir: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    imported = change_id(data_dir, capsys, "Acme", "Initech")
    code, report = run_json(data_dir, ["contacts", "undo-change", str(imported)], capsys)
    assert code == ExitCode.PARTIAL and report["error"]["code"] == "changed_since"
    assert report["error"]["message"] == (
        "ann@example.com: company changed since this change (it wrote Initech, it is now Globex); nothing was "
        "undone. Undo anyway to put back Acme over the newer value: add --force to do so")
    assert company(data_dir) == "Globex"
    code, out, _ = run(data_dir, ["contacts", "undo-change", str(imported), "--force"], capsys)
    assert code == ExitCode.OK and "company is Acme again (was Globex" in out
    assert out.rstrip().endswith("the next sync sends it to the CRMs") and company(data_dir) == "Acme"


def test_an_unknown_change_or_one_of_the_other_kind_is_a_usage_error(data_dir: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(data_dir, ["contacts", "undo-change", "999999"], capsys)
    assert code == ExitCode.USAGE and out == ""
    assert "there is no recorded change 999999 of a contact or lead" in err
    code, report = run_json(data_dir, ["leads", "undo-change", "999999"], capsys)
    assert code == ExitCode.USAGE and report["error"]["code"] == "not_found"
    edit = change_id(data_dir, capsys, "Initech", "Globex")
    code, _, err = run(data_dir, ["leads", "undo-change", str(edit)], capsys)
    assert code == ExitCode.USAGE and f"crm-desktop contacts undo-change {edit}" in err
    assert company(data_dir) == "Globex"


def test_a_contact_created_in_a_crm_by_a_push_lists_its_email_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The push that creates the CRM record keeps a CRM-side row for its email (``runs undo`` reads it to keep the
    record it created), but the email did not change: History lists it once, as the import made it."""
    directory = connect_cli(tmp_path / "D", "hubspot", make_sandbox("hubspot"), monkeypatch, name="hs")
    path = tmp_path / "people.csv"
    path.write_text(PEOPLE, encoding="utf-8")
    assert run(directory, ["contacts", "import", str(path)], capsys)[0] == ExitCode.OK
    code, _, err = run(directory, ["sync", "hs", "--direction", "push"], capsys)
    assert code == ExitCode.OK, err
    listed = [(c["field"], c["before"], c["after"], c["source"], c["side"], c["runId"])
              for c in changes(directory, capsys)]
    assert sorted(listed) == sorted([
        ("email", None, "ann@example.com", "import", "local", 1),
        ("firstName", None, "Ann", "push · hs", "crm", 2),
        ("company", None, "Acme", "push · hs", "crm", 2),
    ])
    code, out, _ = run(directory, ["contacts", "history", "ann@example.com"], capsys)
    assert code == ExitCode.OK and out.count("ann@example.com") == 2  # the heading and the import's row
    # The People panel's detail reads the same history.
    with workspace_at(directory) as workspace:
        people = PeopleService(workspace.database, workspace.social, workspace.sync)
        local_id = workspace.sync.store.local_by_emails(RecordObject.CONTACT, ["ann@example.com"])["ann@example.com"].id
        assert [(a.field, a.source) for a in people.detail(RecordObject.CONTACT, local_id).audit
                if a.field == "email"] == [("email", "import")]
    # The row is still there for the run's undo, which keeps the record the push created in the CRM.
    code, report = run_json(directory, ["runs", "undo", "2"], capsys)
    assert any("ann@example.com: created in the CRM by the run; kept" in line for line in report["kept"]), report


def test_the_row_of_a_created_email_is_not_offered_for_undo(data_dir: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The email is the record's key: its row (blank -> the email, by the import that made Ann) cannot be undone,
    and the history says so rather than promise an undo that ``undo-change`` refuses."""
    listed = changes(data_dir, capsys)
    created = next(c for c in listed if c["field"] == "email")
    assert (created["before"], created["after"], created["source"]) == (None, "ann@example.com", "import")
    assert created["undoable"] is False
    assert all(c["undoable"] for c in listed if c["field"] != "email")
    code, _, err = run(data_dir, ["contacts", "undo-change", str(created["id"])], capsys)
    assert code == ExitCode.PARTIAL and "'email' is not a field value that can be put back" in err


def test_a_value_of_several_lines_keeps_to_its_row_of_the_table(data_dir: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A long value of several lines (an engagement summary, a note) is shown on its row, cut short; --json keeps
    it whole."""
    summary = "Conversations: 3 (twitter 2, linkedin 1)\nLast interaction: 2026-12-05\n" + "- a touchpoint\n" * 20
    path = tmp_path / "notes.csv"
    path.write_text('email,notes\nann@example.com,"' + summary + '"\n', encoding="utf-8")
    code, _, err = run(data_dir, ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.OK, err
    code, out, _ = run(data_dir, ["contacts", "history", "ann@example.com"], capsys)
    assert code == ExitCode.OK
    lines = out.splitlines()
    assert len(lines) == 2 + len(changes(data_dir, capsys)) + 2, out  # heading, header, one row each, two notes
    [row] = [line for line in lines if "Conversations: 3" in line]
    assert "(blank) -> Conversations: 3 (twitter 2, linkedin 1) / Last interaction…  import" in row
    assert max(len(line) for line in lines) < 200
    assert "long values are shown on one line and cut short (…): --json has them in full" in out
    assert next(c for c in changes(data_dir, capsys) if c["after"] and "Conversations" in c["after"])["after"] == (
        summary.rstrip("\n"))
