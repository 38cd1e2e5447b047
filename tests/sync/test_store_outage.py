"""The database going away in the middle of a sync (a team's PostgreSQL server restarted, the network to it down)
and coming back: the run that could not record its end is closed as interrupted by the next run, even when the
next run is this same process's (the app's window or ``crm-desktop serve`` stay open through the outage).

The outage is the database refusing every new connection (the pool emptied first), as a stopped server does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from crm_desktop.domain.models import Contact
from crm_desktop.store.database import Database, StoreUnavailableError
from crm_desktop.store.models import SyncRunStatus
from crm_desktop.store.sync_store import SyncStore
from tests.sync.conftest import SyncBench, scenario


class Outage:
    """While on, the store's database refuses every connection, as a stopped server does."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.on = False
        event.listen(database.engine, "do_connect", self._connect)

    def _connect(self, *args: Any) -> None:
        if self.on:
            raise self.database.engine.dialect.dbapi.OperationalError("connection refused: the server is down")

    def start(self) -> None:
        self.on = True
        self.database.engine.dispose()  # the pooled connections die with the server

    def end(self) -> None:
        self.on = False

    def remove(self) -> None:
        event.remove(self.database.engine, "do_connect", self._connect)


@pytest.fixture
def outage(hubspot: SyncBench) -> Iterator[Outage]:
    down = Outage(hubspot.workspace.database)
    yield down
    down.remove()


def server_goes_down_at_the_first_heartbeat(monkeypatch: pytest.MonkeyPatch, outage: Outage) -> None:
    original = SyncStore.heartbeat

    def heartbeat(self: SyncStore, integration_id: int, run_id: int | None = None, owner: str | None = None) -> None:
        if run_id is not None and not outage.on:
            monkeypatch.setattr(SyncStore, "heartbeat", original)
            outage.start()
        original(self, integration_id, run_id, owner)

    monkeypatch.setattr(SyncStore, "heartbeat", heartbeat)


@scenario
async def test_a_run_cut_off_by_the_database_is_closed_by_the_same_process_s_next_run(
    hubspot: SyncBench, outage: Outage, monkeypatch: pytest.MonkeyPatch
) -> None:
    hubspot.save(*(Contact(email=f"member{n}@example.com", first_name=f"Member{n}") for n in range(5)))
    server_goes_down_at_the_first_heartbeat(monkeypatch, outage)

    with pytest.raises(StoreUnavailableError) as stopped:
        await hubspot.sync()
    outage.end()
    cut_off = hubspot.store.list_runs(hubspot.integration.id)[0]
    assert cut_off.status is SyncRunStatus.RUNNING  # nothing could be written when it stopped
    # Not "nothing was written": a run's pages and writes before the outage are committed.
    assert "nothing was written" not in str(stopped.value)
    assert f"the sync of 'crm' stopped in run {cut_off.id}: what it did before is kept" in str(stopped.value)

    result = await hubspot.sync()  # the same process, once the server is back

    assert result.status is SyncRunStatus.SUCCEEDED
    assert result.counts["created"] == 5
    runs = {run.id: run for run in hubspot.store.list_runs(hubspot.integration.id)}
    assert runs[cut_off.id].status is SyncRunStatus.FAILED
    assert runs[cut_off.id].message is not None and runs[cut_off.id].message.startswith("interrupted")
    assert [run.id for run in runs.values() if run.status is SyncRunStatus.RUNNING] == []
