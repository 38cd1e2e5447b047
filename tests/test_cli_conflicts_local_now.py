"""``conflicts list`` / ``show``: the local value is the record's now, not the stale one recorded when the conflict was
raised (kept as ``localAtConflict``); ``--take local`` keeps the value now (tests/test_cli_conflicts_keep_local.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_desktop.cli import ExitCode
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from tests.support.cli_runs import run, run_json, workspace_at
from tests.test_cli_sync import crm_value, data_dir, make_conflict, sandbox

__all__ = ["data_dir", "sandbox"]  # the fixtures, shared with the sync slice's tests


def test_the_list_shows_the_local_value_now_and_the_one_when_raised(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    conflict_id = make_conflict(data_dir, tmp_path, sandbox, capsys)
    code, [listed] = run_json(data_dir, ["conflicts", "list"], capsys)
    assert code == ExitCode.OK and (listed["localValue"], listed["localAtConflict"]) == ("Annie", "Annie")
    code, out, _ = run(data_dir, ["conflicts", "list"], capsys)
    assert "(was " not in out

    # The person is edited after the conflict was raised.
    code, _, err = run(data_dir, ["contacts", "set", "ann@example.com", "firstName=Annabel"], capsys)
    assert code == ExitCode.OK, err
    code, [listed] = run_json(data_dir, ["conflicts", "list"], capsys)
    assert (listed["localValue"], listed["localAtConflict"], listed["crmValue"]) == ("Annabel", "Annie", "Anna")
    code, out, _ = run(data_dir, ["conflicts", "list"], capsys)
    [row] = [line for line in out.splitlines() if line.startswith(str(conflict_id))]
    assert "Annabel (was Annie)" in row and "Anna" in row
    code, shown = run_json(data_dir, ["conflicts", "show", str(conflict_id)], capsys)
    assert (shown["localValue"], shown["localAtConflict"]) == ("Annabel", "Annie")
    code, out, _ = run(data_dir, ["conflicts", "list"], capsys)
    assert "LOCAL is the value now, which --take local keeps; (was ...) the one when the conflict was raised" in out
    code, out, _ = run(data_dir, ["conflicts", "show", str(conflict_id)], capsys)
    assert "local value:  Annabel  (when the conflict was raised: Annie, changed " in out
    assert "--take local keeps Annabel, the value now, not Annie, the one when the conflict was raised" in out

    # --set keeps a value of one's own, the value now included.
    code, resolved = run_json(data_dir, ["conflicts", "resolve", str(conflict_id), "--set", "firstName=Annabel"],
                              capsys)
    assert code == ExitCode.OK and resolved["value"] == "Annabel"
    assert crm_value(sandbox, "ann@example.com", "firstname") == "Annabel"
    with workspace_at(data_dir) as workspace:
        ann = workspace.contacts.find("ann@example.com")
        assert ann is not None and ann.first_name == "Annabel"
