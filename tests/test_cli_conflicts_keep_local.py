"""``conflicts resolve --take local`` keeps the record's value now (what ``conflicts list`` shows as LOCAL), not the
one recorded when the conflict was raised, and gives it to a HubSpot sandbox served over real loopback sockets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from crm_desktop.cli import ExitCode
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.store.models import AuditLogRow
from tests.support.cli_runs import connect_cli_over_loopback, run, run_json, served, workspace_at
from tests.test_cli_sync import crm_value, crm_writes, last_request, make_conflict

pytestmark = pytest.mark.loopback


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    """A HubSpot sandbox listening on 127.0.0.1 (its ``base_url`` is the real URL)."""
    with served(HubSpotSandbox(SandboxConfig(contacts=0))) as sandbox:
        yield sandbox


@pytest.fixture
def data_dir(tmp_path: Path, sandbox: HubSpotSandbox, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace with one HubSpot integration ``hs`` at the sandbox's loopback URL, reached over sockets."""
    return connect_cli_over_loopback(tmp_path / "D", "hubspot", sandbox, monkeypatch, name="hs")


def test_take_local_keeps_the_value_now_and_writes_it_to_the_crm(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sandbox.base_url.startswith("http://127.0.0.1:")
    conflict_id = make_conflict(data_dir, tmp_path, sandbox, capsys)
    # The person is edited after the conflict was raised (Annie here, Anna in the CRM).
    code, _, err = run(data_dir, ["contacts", "set", "ann@example.com", "firstName=Annabel"], capsys)
    assert code == ExitCode.OK, err
    code, out, _ = run(data_dir, ["conflicts", "show", str(conflict_id)], capsys)
    assert "--take local keeps Annabel, the value now, not Annie, the one when the conflict was raised" in out
    code, out, _ = run(data_dir, ["conflicts", "list"], capsys)
    assert "LOCAL is the value now, which --take local keeps" in out

    code, out, err = run(data_dir, ["conflicts", "resolve", str(conflict_id), "--take", "local"], capsys)
    assert code == ExitCode.OK, err
    assert (f"conflict {conflict_id} resolved (took the local value now): ann@example.com firstName = Annabel "
            "locally and in the CRM") in out
    assert "the local value changed since the conflict was raised (then Annie)" in out
    assert crm_value(sandbox, "ann@example.com", "firstname") == "Annabel"
    with workspace_at(data_dir) as workspace:
        ann = workspace.contacts.find("ann@example.com")
        assert ann is not None and ann.first_name == "Annabel"
        resolved = workspace.sync.conflict(conflict_id)
        assert (resolved.resolution, resolved.resolved_value) == ("local", "Annabel")
        with workspace.database.session() as session:
            audit = [(row.side, row.field, row.old_value, row.new_value) for row in session.scalars(
                select(AuditLogRow).where(AuditLogRow.source == f"conflict:{conflict_id}"))]
    assert audit == [("crm", "firstName", "Anna", "Annabel")]
    code, shown = run_json(data_dir, ["conflicts", "show", str(conflict_id)], capsys)
    assert (shown["status"], shown["resolvedValue"]) == ("resolved", "Annabel")
    # The next sync has nothing to write: both sides hold the kept value.
    after = last_request(sandbox)
    code, synced = run_json(data_dir, ["sync", "hs"], capsys)
    assert code == ExitCode.OK and synced["results"][0]["counts"]["conflicts"] == 0
    assert crm_writes(sandbox, after) == []
    assert crm_value(sandbox, "ann@example.com", "firstname") == "Annabel"
