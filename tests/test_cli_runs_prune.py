"""``runs prune --older-than DAYS``: says what would go and asks (or --yes), deletes exactly the old runs, and a kept
run is undone as before."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from crm_desktop.cli import ExitCode
from crm_desktop.store.forget_store import ForgetStore
from crm_desktop.store.models import AuditLogRow, SyncRunRow, utcnow
from tests.support.cli_runs import run, run_json, workspace_at


class Terminal(io.StringIO):
    """Standard input as a person at a terminal typing the text it is made with."""

    def isatty(self) -> bool:
        return True


def _import(directory: Path, tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> int:
    path = tmp_path / "people.csv"
    path.write_text(text, encoding="utf-8")
    code, report = run_json(directory, ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.OK, report
    return int(report["runId"])


@pytest.fixture
def data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A year-old import of Ann and Bob, then a recent one moving Ann to Globex; Bob forgotten at his request."""
    directory = tmp_path / "D"
    first = _import(directory, tmp_path, "email,firstName,company\nann@example.com,Ann,Acme\n"
                    "bob@example.com,Bob,Initech\n", capsys)
    second = _import(directory, tmp_path, "email,company\nann@example.com,Globex\n", capsys)
    assert (first, second) == (1, 2)
    code, _, err = run(directory, ["contacts", "forget", "bob@example.com", "--yes"], capsys)
    assert code == ExitCode.OK, err
    with workspace_at(directory) as workspace, workspace.database.session() as session:
        year_ago = utcnow() - timedelta(days=400)
        session.execute(update(SyncRunRow).where(SyncRunRow.id == first)
                        .values(started_at=year_ago, finished_at=year_ago))
    return directory


def _stored(directory: Path) -> tuple[list[int], int, int]:
    """The runs' ids, the field changes and the people forgotten."""
    with workspace_at(directory) as workspace:
        with workspace.database.session() as session:
            runs = list(session.scalars(select(SyncRunRow.id).order_by(SyncRunRow.id)))
            changes = int(session.scalar(select(func.count()).select_from(AuditLogRow)) or 0)
        return runs, changes, ForgetStore(workspace.database).count()


def test_without_a_terminal_prune_needs_yes_and_deletes_nothing(data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    before = _stored(data_dir)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    code, report = run_json(data_dir, ["runs", "prune", "--older-than", "365"], capsys)

    assert code == ExitCode.USAGE
    assert report["error"]["code"] == "confirmation_needed"
    assert report["error"]["message"].startswith("pruning deletes 1 run (0 record log lines, 1 field change) "
                                                 "started before ")
    assert "--yes" in report["error"]["message"]
    assert _stored(data_dir) == before


def test_on_a_terminal_prune_says_what_goes_asks_and_a_no_keeps_everything(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    before = _stored(data_dir)
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))

    code, out, err = run(data_dir, ["runs", "prune", "--older-than", "365"], capsys)

    assert code == ExitCode.PARTIAL
    assert "Pruning deletes 1 run (0 record log lines, 1 field change) started before" in err
    assert "they can no longer be undone, retried or shown" in err and "Delete them? [y/N]" in err
    assert "nothing was pruned" in err and out == ""
    assert _stored(data_dir) == before


def test_a_yes_prunes_the_old_run_alone_and_the_kept_one_is_still_undone(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    runs, changes, forgotten = _stored(data_dir)
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))

    code, out, err = run(data_dir, ["runs", "prune", "--older-than", "365"], capsys)

    assert code == ExitCode.OK, err
    assert out.startswith("deleted 1 run (0 record log lines, 1 field change) started before ")
    assert _stored(data_dir) == ([2, *runs[2:]], changes - 1, forgotten)
    code, report = run_json(data_dir, ["runs", "show", "1"], capsys)
    assert code == ExitCode.USAGE and report["error"]["message"] == "no sync run 1"

    code, undone = run_json(data_dir, ["runs", "undo", "2"], capsys)
    assert code == ExitCode.OK, undone
    with workspace_at(data_dir) as workspace:
        ann = workspace.contacts.find("ann@example.com")
        assert ann is not None and ann.company == "Acme"
        assert ForgetStore(workspace.database).forgotten_among(["bob@example.com"])

    code, again = run_json(data_dir, ["runs", "prune", "--older-than", "365", "--yes"], capsys)
    assert code == ExitCode.OK
    assert again["pruned"] is False and again["deleted"]["runs"] == 0


@pytest.mark.parametrize(("arguments", "said"), [
    (["--older-than", "0"], "from 1 to 36,500, not 0"),
    (["--older-than", "a year"], "a whole number is needed, not 'a year'"),
    ([], "the following arguments are required: --older-than"),
])
def test_older_than_takes_a_whole_number_of_days(arguments: list[str], said: str, data_dir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run(data_dir, ["runs", "prune", *arguments, "--yes"], capsys)
    assert exited.value.code == ExitCode.USAGE
    assert said in capsys.readouterr().err
    assert _stored(data_dir)[0] == [1, 2]
