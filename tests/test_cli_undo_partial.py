"""``runs undo`` of a run the CRM takes back only in part: it says so, and the same undo again finishes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_desktop.cli import ExitCode
from crm_desktop.sandbox.core import FaultKind, FaultRule
from tests.support.cli_runs import cli_workspace_on_sandbox, run, run_json


def test_an_undo_refused_in_part_says_to_run_it_again_and_then_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "D"
    sandbox = cli_workspace_on_sandbox(data_dir, "hubspot", monkeypatch)
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("email,firstName\nann@example.com,Ann\nbob@example.com,Bob\n", encoding="utf-8")
    bad.write_text("email,firstName\nann@example.com,WRONG\nbob@example.com,WRONG\n", encoding="utf-8")
    for path in (good, bad):
        assert run(data_dir, ["contacts", "import", str(path)], capsys)[0] == ExitCode.OK
        code, synced = run_json(data_dir, ["sync", "crm"], capsys)
        assert code == ExitCode.OK, synced
    run_id = synced["results"][0]["runId"]

    sandbox.faults.add(FaultRule(FaultKind.INVALID_RECORD, probability=1.0, remaining=1))
    code, out, _ = run(data_dir, ["runs", "undo", str(run_id)], capsys)
    assert code == ExitCode.PARTIAL
    assert f"1 record not put back: once the CRM takes them, crm-desktop runs undo {run_id} again" in out

    code, report = run_json(data_dir, ["runs", "undo", str(run_id)], capsys)
    assert code == ExitCode.OK, report
    assert (report["status"], report["restoredLocal"], report["overridden"]) == ("succeeded", 1, [])
    code, _, err = run(data_dir, ["runs", "undo", str(run_id)], capsys)
    assert code == ExitCode.PARTIAL and f"already undone (by run {report['undoRunId']})" in err
