"""The history retention setting: nothing pruned while it says forever, calendar months back when it says a limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_desktop.app.history_retention import HistoryRetentionService, months_before
from crm_desktop.app.preferences import HistoryRetention
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Integration, SyncDirection
from crm_desktop.store.models import SyncRunStatus, SyncTrigger

NOW = datetime(2026, 3, 31, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(("months", "expected"), [
    (1, datetime(2026, 2, 28, 9, 30, tzinfo=UTC)),  # no 31 February: its last day
    (3, datetime(2025, 12, 31, 9, 30, tzinfo=UTC)),
    (6, datetime(2025, 9, 30, 9, 30, tzinfo=UTC)),
    (12, datetime(2025, 3, 31, 9, 30, tzinfo=UTC)),
    (13, datetime(2025, 2, 28, 9, 30, tzinfo=UTC)),
])
def test_a_limit_is_calendar_months_back(months: int, expected: datetime) -> None:
    assert months_before(NOW, months) == expected


def test_every_choice_but_forever_is_a_number_of_months() -> None:
    assert [choice.months for choice in HistoryRetention] == [None, 12, 6, 3, 1]


def test_nothing_is_pruned_while_the_setting_says_forever(workspace: Workspace) -> None:
    integration = workspace.integrations.add(Integration(provider="pipedrive", name="crm"),
                                             {"apiToken": "token-of-the-test"})
    assert integration.id is not None
    store = workspace.sync.store
    runs = [store.start_run(integration.id, SyncTrigger.SCHEDULED, SyncDirection.BOTH) for _ in range(3)]
    for run_id, age in zip(runs, (800, 400, 1), strict=True):
        store.finish_run(run_id, SyncRunStatus.SUCCEEDED)
        store.update_run(run_id, started_at=NOW - timedelta(days=age), finished_at=NOW - timedelta(days=age))
    service = HistoryRetentionService(workspace.database, workspace.preferences, clock=lambda: NOW)

    assert workspace.history.retention() is HistoryRetention.FOREVER
    assert service.prune_by_setting() is None
    assert [run.id for run in workspace.sync.runs()] == runs[::-1]

    workspace.preferences.update(history_retention=HistoryRetention.MONTHS_12)
    pruned = service.prune_by_setting()

    assert pruned is not None and pruned.older_than == datetime(2025, 3, 31, 9, 30, tzinfo=UTC)
    assert (pruned.counts.runs, pruned.counts.kept) == (2, 0)
    assert [run.id for run in workspace.sync.runs()] == [runs[2]]
