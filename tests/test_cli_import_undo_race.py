"""``runs undo`` of an import from two processes at once (two desktops on one team store, or a desktop and cron):
the import is undone once, and the undo that comes second says it was already undone and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crm_desktop.cli import ExitCode, main
from crm_desktop.store.import_log import ImportLog
from crm_desktop.store.repositories import ContactStore
from tests.support.cli_runs import run, run_json, workspace_at
from tests.support.meanwhile import run_meanwhile
from tests.test_cli_import import FULL, stored, write


def other_undo_at(monkeypatch: pytest.MonkeyPatch, owner: type[Any], name: str, data_dir: Path, run_id: int,
                  *, before: bool) -> list[int]:
    """Make the first call of ``owner.name`` run another ``runs undo RUN_ID`` whole, on its own thread and event
    loop as another process would (before the call, or once it returned); the exit codes it collects."""
    codes: list[int] = []
    run_meanwhile(monkeypatch, owner, name,
                  lambda: codes.append(main(["--data-dir", str(data_dir), "runs", "undo", str(run_id)])), codes,
                  before=before)
    return codes


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "forced"])
@pytest.mark.parametrize(("owner", "name", "before"), [
    # Right after the first look: this undo then finds the values put back already, and has nothing to write.
    (ImportLog, "undone_by", False),
    # Between the plan and the write: this undo lays its values over those the other one put back.
    (ContactStore, "save_many", True),
], ids=["after-the-look", "before-the-write"])
def test_an_import_undone_by_another_process_meanwhile_is_undone_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    owner: type[Any], name: str, before: bool, force: list[str],
) -> None:
    data_dir = tmp_path / "D"
    assert run(data_dir, ["contacts", "import", str(write(tmp_path, "full.csv", FULL))], capsys)[0] == ExitCode.OK
    before_import = stored(data_dir)
    path = write(tmp_path, "u.csv", "email,company,lastName\nann@example.com,Globex,Park\n")
    code, report = run_json(data_dir, ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.OK and report["updated"] == 1
    run_id = report["runId"]

    other_codes = other_undo_at(monkeypatch, owner, name, data_dir, run_id, before=before)
    code, _, err = run(data_dir, ["runs", "undo", str(run_id), *force], capsys)
    assert other_codes == [-1, ExitCode.OK]

    _, runs = run_json(data_dir, ["runs", "list"], capsys)
    undos = [r for r in runs if r["direction"] == "undo"]
    assert [(r["message"], r["status"]) for r in undos] == [(f"undo of run {run_id}", "succeeded")]
    [winner] = undos
    assert code == ExitCode.PARTIAL
    assert f"run {run_id} was already undone (by run {winner['id']})" in err
    # The values from before the import, put back once: one undo's audit rows, none left by the other.
    assert stored(data_dir) == before_import
    with workspace_at(data_dir) as workspace:
        audited = [(row.field, row.old_value, row.new_value, row.run_id)
                   for row in workspace.sync.store.audit_for_run(winner["id"])]
        assert sorted(audited) == [("company", "Globex", "Acme", winner["id"]),
                                   ("lastName", "Park", "Lee", winner["id"])]
        # The other undo's run, recorded with the next id or the one before, kept no audit row.
        assert [row.id for other in (winner["id"] - 1, winner["id"] + 1) if other != run_id
                for row in workspace.sync.store.audit_for_run(other)] == []
    # And the import stays undone once: another undo is refused at the first look.
    code, _, err = run(data_dir, ["runs", "undo", str(run_id), *force], capsys)
    assert code == ExitCode.PARTIAL and f"already undone (by run {winner['id']})" in err
