"""``conflicts list`` / ``show`` when the conflict's local record was deleted since the conflict was raised: they say
so, instead of showing the value recorded then as the local value, and do not offer ``--take local``."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_desktop.cli import ExitCode
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from tests.support.cli_runs import run, run_json, workspace_at
from tests.test_cli_sync import crm_value, data_dir, make_conflict, sandbox

__all__ = ["data_dir", "sandbox"]  # the fixtures, shared with the sync slice's tests


def test_list_and_show_say_the_local_record_is_gone(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    conflict_id = make_conflict(data_dir, tmp_path, sandbox, capsys)
    code, [listed] = run_json(data_dir, ["conflicts", "list"], capsys)
    assert code == ExitCode.OK and listed["localDeleted"] is False
    with workspace_at(data_dir) as workspace:
        workspace.contacts.remove("ann@example.com")

    code, [listed] = run_json(data_dir, ["conflicts", "list"], capsys)
    assert code == ExitCode.OK and listed["localDeleted"] is True
    assert (listed["localValue"], listed["localAtConflict"]) == (None, "Annie")
    code, out, _ = run(data_dir, ["conflicts", "list"], capsys)
    [row] = [line for line in out.splitlines() if line.startswith(str(conflict_id))]
    assert "deleted here since (was Annie)" in row and "Anna" in row
    assert "deleted here since: the local record is gone, so --take local and --set have nothing to write" in out

    code, shown = run_json(data_dir, ["conflicts", "show", str(conflict_id)], capsys)
    assert code == ExitCode.OK and shown["localDeleted"] is True and shown["localValue"] is None
    code, out, _ = run(data_dir, ["conflicts", "show", str(conflict_id)], capsys)
    assert "local value:  deleted here since the conflict was raised (it held Annie then" in out
    assert "note:         the local record is gone: --take local and --set have nothing to write here" in out
    assert "--take crm|local" not in out and f"conflicts resolve {conflict_id} --take crm (nothing is written)" in out

    # Resolving behaves as before: keeping the local value is refused with the reason, nothing is written.
    code, _, err = run(data_dir, ["conflicts", "resolve", str(conflict_id), "--take", "local"], capsys)
    assert code != ExitCode.OK and "deleted since the conflict was raised" in err
    assert crm_value(sandbox, "ann@example.com", "firstname") == "Anna"
    # as is a typed value, which has no record to go to here.
    code, _, err = run(data_dir, ["conflicts", "resolve", str(conflict_id), "--set", "firstName=Zed"], capsys)
    assert code != ExitCode.OK and "was deleted" in err and "keep the CRM's value to close it" in err
    assert crm_value(sandbox, "ann@example.com", "firstname") == "Anna"
    code, [listed] = run_json(data_dir, ["conflicts", "list"], capsys)
    assert listed["id"] == conflict_id and listed["localDeleted"] is True

    # Keeping the CRM's value closes it, writing nothing: it does not wait for ever.
    code, _, err = run(data_dir, ["conflicts", "resolve", str(conflict_id), "--take", "crm"], capsys)
    assert code == ExitCode.OK, err
    assert crm_value(sandbox, "ann@example.com", "firstname") == "Anna"
    code, listed_now = run_json(data_dir, ["conflicts", "list"], capsys)
    assert listed_now == []
