"""The sync store's lookups of one run or one conflict by id."""

from __future__ import annotations

import pytest

from crm_desktop.domain.models import Integration, SyncDirection
from crm_desktop.store.database import Database
from crm_desktop.store.models import SyncRunStatus, SyncTrigger
from crm_desktop.store.repositories import IntegrationStore, NotFoundError
from crm_desktop.store.sync_store import SyncStore

pytestmark = pytest.mark.postgres


def test_a_run_is_read_by_id_and_a_missing_one_is_named(database: Database) -> None:
    integration = IntegrationStore(database).add(Integration(provider="pipedrive", name="pd"))
    assert integration.id is not None
    store = SyncStore(database)
    run_id = store.start_run(integration.id, SyncTrigger.MANUAL, SyncDirection.PUSH)
    store.finish_run(run_id, SyncRunStatus.SUCCEEDED)

    run = store.get_run(run_id)

    assert (run.id, run.integration_id, run.status) == (run_id, integration.id, SyncRunStatus.SUCCEEDED)
    with pytest.raises(NotFoundError, match=rf"^no sync run {run_id + 1}$"):
        store.get_run(run_id + 1)


def test_a_missing_conflict_is_named(database: Database) -> None:
    with pytest.raises(NotFoundError, match=r"^no conflict 7$"):
        SyncStore(database).get_conflict(7)
