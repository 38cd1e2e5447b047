"""``crm-desktop runs errors`` and ``runs retry`` on an in-process HubSpot sandbox: group, export, re-send failures."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from crm_desktop.cli import ExitCode
from crm_desktop.domain.models import Contact
from crm_desktop.sandbox.core import FaultKind, FaultRule, SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from tests.support.cli_runs import connect_cli, run, run_json, workspace_at


@pytest.fixture
def sandbox() -> HubSpotSandbox:
    return HubSpotSandbox(SandboxConfig(contacts=0))


@pytest.fixture
def data_dir(tmp_path: Path, sandbox: HubSpotSandbox, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace with one HubSpot integration ``hs`` and three contacts; the CLI talks to the sandbox."""
    directory = connect_cli(tmp_path / "D", "hubspot", sandbox, monkeypatch, name="hs")
    with workspace_at(directory) as workspace:
        workspace.contacts.save_many(Contact(email=f"p{n}@example.com", first_name=f"P{n}") for n in range(1, 4))
    return directory


def test_errors_then_retry_sends_only_the_failed_record(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox.faults.replace([FaultRule(FaultKind.INVALID_RECORD, at=[3])])
    code, synced = run_json(data_dir, ["sync", "hs"], capsys)
    assert code == ExitCode.PARTIAL
    run_id = synced["results"][0]["runId"]

    code, out, _ = run(data_dir, ["runs", "errors", str(run_id), "--csv", str(tmp_path / "e.csv")], capsys)
    assert code == ExitCode.OK
    assert out.splitlines()[0].split()[:3] == ["CATEGORY", "RECORDS", "SAMPLE"]
    assert out.splitlines()[1].split()[:2] == ["validation", "1"]
    assert "wrote 1 failed record to" in out
    with (tmp_path / "e.csv").open(encoding="utf-8-sig", newline="") as handle:
        [header, row] = list(csv.reader(handle))
    assert header[:3] == ["run", "object", "record"] and row[4] == "validation"
    failed_email = row[2]

    code, retried = run_json(data_dir, ["runs", "retry", str(run_id)], capsys)

    assert code == ExitCode.OK, retried
    assert (retried["retried"], retried["status"], retried["direction"], retried["trigger"]) == (
        1, "succeeded", "push", "cli")
    assert retried["counts"]["created"] == 1 and retried["total"] == 1
    assert sandbox.summary()["contacts"] == 3
    code, shown = run_json(data_dir, ["runs", "show", str(retried["retryRunId"])], capsys)
    assert [r["record"] for r in shown["records"]] == [failed_email]

    code, _, err = run(data_dir, ["runs", "retry", str(retried["retryRunId"])], capsys)
    assert code == ExitCode.PARTIAL and "has no failed records" in err
    code, out, _ = run(data_dir, ["runs", "errors", str(retried["retryRunId"])], capsys)
    assert code == ExitCode.OK and "has no failed records" in out
