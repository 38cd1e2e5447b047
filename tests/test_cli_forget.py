"""``contacts forget`` / ``leads forget`` / ``unforget``: asked first on a terminal, --yes elsewhere, --json counts,
and a forgotten person's rows skipped by ``import`` and ``push``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import update

from crm_desktop.cli import ExitCode
from crm_desktop.store.models import CrmLinkRow
from tests.support.cli_runs import cli_workspace_on_sandbox, run, run_json, workspace_at

PEOPLE = "email,firstName,company\nann@example.com,Ann,Acme\nbob@example.com,Bob,Initech\n"


class Terminal(io.StringIO):
    """Standard input as a person at a terminal typing the text it is made with."""

    def isatty(self) -> bool:
        return True


def _file(tmp_path: Path, text: str = PEOPLE) -> Path:
    path = tmp_path / "people.csv"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    directory = tmp_path / "D"
    for noun in ("contacts", "leads"):
        code, _, err = run(directory, [noun, "import", str(_file(tmp_path))], capsys)
        assert code == ExitCode.OK, err
    return directory


def _stored(data_dir: Path, email: str) -> tuple[bool, bool]:
    with workspace_at(data_dir) as workspace:
        return workspace.contacts.find(email) is not None, workspace.leads.find(email) is not None


def test_without_a_terminal_forget_needs_yes_and_erases_nothing(data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, report = run_json(data_dir, ["contacts", "forget", "ann@example.com"], capsys)
    assert code == ExitCode.USAGE
    assert report["error"]["code"] == "confirmation_needed" and "--yes" in report["error"]["message"]
    assert _stored(data_dir, "ann@example.com") == (True, True)


def test_on_a_terminal_forget_asks_naming_the_person_and_a_no_keeps_them(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    code, out, err = run(data_dir, ["leads", "forget", "Ann@Example.com"], capsys)
    assert code == ExitCode.PARTIAL
    assert "Forget ann@example.com (contact 1 and lead 1)?" in err and "conversations" in err
    assert "not forgotten: nothing was erased" in err and out == ""
    assert _stored(data_dir, "ann@example.com") == (True, True)

    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    code, out, err = run(data_dir, ["leads", "forget", "ann@example.com"], capsys)
    assert code == ExitCode.OK, err
    assert out.startswith("forgot ann@example.com: contact 1 and lead 1 deleted")
    assert "lift it with: crm-desktop leads unforget ann@example.com" in out
    assert "delete them in each CRM itself" in out
    assert _stored(data_dir, "ann@example.com") == (False, False)
    assert _stored(data_dir, "bob@example.com") == (True, True)


def test_forget_json_counts_then_import_skips_and_unforget_lifts(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(data_dir, ["contacts", "forget", "1", "--yes"], capsys)  # by local id
    assert code == ExitCode.OK
    assert report["email"] == "ann@example.com" and (report["contactId"], report["leadId"]) == (1, 1)
    assert report["deleted"]["contacts"] == report["deleted"]["leads"] == 1
    assert report["deleted"]["fieldChanges"] >= 2 and report["crmRecordsDeleted"] is False
    day = report["forgottenAt"][:10]

    code, imported = run_json(data_dir, ["contacts", "import", str(_file(tmp_path))], capsys)
    assert code == ExitCode.OK  # skipped, not refused: the import succeeds
    assert imported["skipped"] == [{"line": 2, "record": "ann@example.com",
                                    "reason": f"forgotten on {day} at your request; not imported"}]
    assert imported["unchanged"] == 1 and imported["refused"] == []
    code, out, _ = run(data_dir, ["contacts", "import", str(_file(tmp_path))], capsys)
    assert f"line     2  skipped  ann@example.com  forgotten on {day} at your request; not imported" in out
    assert "1 skipped (forgotten)" in out
    assert _stored(data_dir, "ann@example.com") == (False, False)

    code, lifted = run_json(data_dir, ["leads", "unforget", "ANN@example.com"], capsys)
    assert code == ExitCode.OK and lifted == {"email": "ann@example.com", "forgottenAt": report["forgottenAt"],
                                              "lifted": True}
    code, again = run_json(data_dir, ["leads", "unforget", "ann@example.com"], capsys)
    assert code == ExitCode.PARTIAL and again["error"]["code"] == "not_forgotten"
    code, imported = run_json(data_dir, ["contacts", "import", str(_file(tmp_path))], capsys)
    assert imported["created"] == 1 and imported["skipped"] == []


def test_forget_refuses_an_unknown_id_or_a_bad_email(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(data_dir, ["contacts", "forget", "42", "--yes"], capsys)
    assert code == ExitCode.USAGE and report["error"]["code"] == "not_found"
    code, report = run_json(data_dir, ["contacts", "forget", "not-an-email", "--yes"], capsys)
    assert code == ExitCode.USAGE and "not-an-email" in report["error"]["message"]


def test_push_skips_a_forgotten_person(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "D"
    cli_workspace_on_sandbox(directory, "hubspot", monkeypatch)
    code, _ = run_json(directory, ["contacts", "forget", "ann@example.com", "--yes"], capsys)
    assert code == ExitCode.OK

    code, report = run_json(directory, ["contacts", "push", "crm", "--file", str(_file(tmp_path))], capsys)

    assert code == ExitCode.OK
    by_line = {row["line"]: row for row in report["records"]}
    assert by_line[2]["outcome"] == "skipped" and "at your request; not pushed" in by_line[2]["message"]
    assert by_line[3]["outcome"] == "created"
    assert report["summary"]["skipped"] == 1 and report["summary"]["created"] == 1
    code, found = run_json(directory, ["contacts", "get", "crm", "--email", "ann@example.com"], capsys)
    assert code == ExitCode.PARTIAL and found["error"]["code"] == "not_found"


def test_social_import_skips_the_events_of_a_forgotten_person(data_dir: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, forgotten = run_json(data_dir, ["contacts", "forget", "ann@example.com", "--yes"], capsys)
    assert code == ExitCode.OK
    feed = tmp_path / "feed.jsonl"
    feed.write_text(
        '{"conversationId": "c-1", "platform": "twitter", "startedAt": "2026-11-20T10:00:00Z", '
        '"participant": {"email": "Ann@Example.com", "username": "annlee"}}\n'
        '{"platform": "twitter", "type": "like", "timestamp": "2026-11-21T09:00:00Z", "postId": "p-1", '
        '"user": {"email": "bob@example.com"}}\n'
        '{"platform": "twitter", "type": "click", "timestamp": "2026-11-21T09:00:00Z", "postId": "p-2", '
        '"user": {"email": "ann@example.com", "username": "annlee"}}\n', encoding="utf-8")

    code, report = run_json(data_dir, ["social", "import", str(feed)], capsys)

    assert code == ExitCode.OK
    reason = f"forgotten on {forgotten['forgottenAt'][:10]} at your request; not recorded"
    assert report["skipped"] == [{"line": 1, "record": "ann@example.com", "reason": reason},
                                 {"line": 3, "record": "ann@example.com", "reason": reason}]
    assert report["created"] == 1 and report["refused"] == []
    with workspace_at(data_dir) as workspace:
        assert workspace.social.store.touches("ann@example.com") == []
        assert workspace.social.store.conversation("twitter", "c-1") is None
        assert workspace.contacts.find("ann@example.com") is None


def test_in_crms_deletes_the_crm_records_first_and_a_failure_forgets_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "D"
    cli_workspace_on_sandbox(directory, "pipedrive", monkeypatch)
    code, _, err = run(directory, ["contacts", "import", str(_file(tmp_path))], capsys)
    assert code == ExitCode.OK, err
    code, _, err = run(directory, ["sync", "crm", "--direction", "push"], capsys)
    assert code == ExitCode.OK, err
    with workspace_at(directory) as workspace, workspace.database.session() as session:
        # A link whose id Pipedrive cannot take: its delete is refused.
        session.execute(update(CrmLinkRow).where(CrmLinkRow.local_id == 2).values(crm_id="not-a-number"))

    code, refused = run_json(directory, ["contacts", "forget", "bob@example.com", "--in-crms", "--yes"], capsys)
    assert code == ExitCode.PARTIAL and refused["forgotten"] is False
    [record] = refused["crmRecords"]
    assert record["outcome"] == "failed" and "person ids are numbers" in record["reason"]
    assert _stored(directory, "bob@example.com") == (True, False)  # nothing forgotten: the link still finds it

    code, out, err = run(directory, ["contacts", "forget", "ann@example.com", "--in-crms", "--yes"], capsys)
    assert code == ExitCode.OK, err
    assert out.startswith("crm: contact ") and " deleted\nforgot ann@example.com: contact 1 deleted" in out
    code, found = run_json(directory, ["contacts", "get", "crm", "--email", "ann@example.com"], capsys)
    assert code == ExitCode.PARTIAL and found["error"]["code"] == "not_found"
    assert _stored(directory, "ann@example.com") == (False, False)
