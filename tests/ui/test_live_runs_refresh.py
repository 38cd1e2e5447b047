"""The Sync Monitor's live refresh re-reads only new runs and the runs still going, not every run shown."""

from __future__ import annotations

from collections.abc import Sequence

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Integration, Provider, SyncDirection
from crm_desktop.store.models import SyncRunRow, SyncRunStatus, SyncTrigger
from crm_desktop.ui.sync_runs_model import SyncRunsTableModel


def test_the_live_refresh_reads_new_and_unfinished_runs_only(workspace: Workspace) -> None:
    integration = workspace.integrations.add(
        Integration(provider=Provider.HUBSPOT, name="hubspot-marketing"), {"token": "pat-na1-1"}
    )
    assert integration.id is not None
    store = workspace.sync.store

    def run(status: SyncRunStatus | None) -> int:
        run_id = store.start_run(integration.id or 0, SyncTrigger.MANUAL, SyncDirection.BOTH)
        if status is not None:
            store.finish_run(run_id, status, created=1)
        return run_id

    finished = [run(SyncRunStatus.SUCCEEDED) for _ in range(60)]
    going = run(None)
    reads: list[tuple[str, object]] = []

    def load_runs(limit: int) -> list[SyncRunRow]:
        reads.append(("runs", limit))
        return workspace.sync.runs(limit=limit)

    def load_changed(newer_than: int, unfinished: list[int]) -> Sequence[SyncRunRow]:
        found = workspace.sync.runs_changed(newer_than, unfinished)
        reads.append(("changed", (newer_than, list(unfinished), len(found))))
        return found

    model = SyncRunsTableModel(load_runs, lambda: {integration.id or 0: integration.name}, 50,
                               load_changed=load_changed)
    model.refresh()
    assert model.rowCount() == 50 and model.run_at(0).id == going
    reads.clear()

    store.finish_run(going, SyncRunStatus.PARTIAL, created=7)
    started = run(None)
    model.refresh_live()
    assert reads == [("changed", (going, [going], 2))], "one small read: the new run and the one that was going"
    assert [model.run_at(0).id, model.run_at(1).id] == [started, going]
    assert model.run_at(1).status is SyncRunStatus.PARTIAL and model.run_at(1).created == 7
    assert model.run_at(2).id == finished[-1] and model.rowCount() == 51

    reads.clear()
    model.refresh_live()
    assert reads == [("changed", (started, [started], 1))]
