"""``crm-desktop sync`` on a run larger than what its result lists: exact counts, and where the rest is."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_desktop.cli import ExitCode
from crm_desktop.sandbox.core import FaultKind, FaultRule
from crm_desktop.sync import engine as sync_engine
from tests.support.cli_runs import cli_workspace_on_sandbox, run, run_json


@pytest.mark.parametrize("as_json", [False, True])
def test_a_large_run_prints_exact_counts_and_points_to_the_failures_it_does_not_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, as_json: bool,
) -> None:
    monkeypatch.setattr(sync_engine, "SAMPLE_SIZE", 2)
    monkeypatch.setattr(sync_engine, "FAILURE_SAMPLE", 1)
    data_dir = tmp_path / "D"
    sandbox = cli_workspace_on_sandbox(data_dir, "hubspot", monkeypatch, name="hs")
    path = tmp_path / "many.csv"
    path.write_text("email,firstName\n" + "".join(f"p{n}@example.com,P{n}\n" for n in range(12)), encoding="utf-8")
    assert run(data_dir, ["contacts", "import", str(path)], capsys)[0] == ExitCode.OK
    sandbox.faults.add(FaultRule(FaultKind.INVALID_RECORD, at=[2, 5, 9]))
    if as_json:
        code, data = run_json(data_dir, ["sync", "hs"], capsys)
        (result,) = data["results"]
        assert (result["counts"]["created"], result["counts"]["failed"]) == (9, 3)
        assert len(result["failures"]) == 1 and result["failuresNotListed"] == 2
        run_id = result["runId"]
    else:
        code, out, _ = run(data_dir, ["sync", "hs"], capsys)
        assert "9 created, 0 updated, 0 unchanged, 3 failed" in out
        assert out.count("  failed   p") == 1
        [line] = [line for line in out.splitlines() if "more failed records" in line]
        run_id = int(line.split("runs errors ")[1].split()[0])
        assert line == f"  and 2 more failed records: crm-desktop runs errors {run_id} --csv FILE lists every one"
    assert code == ExitCode.PARTIAL
    code, errors = run_json(data_dir, ["runs", "errors", str(run_id)], capsys)
    assert [(g["category"], g["count"]) for g in errors["groups"]] == [("validation", 3)]
