"""One direction enum: an integration's configured way, each run's way, and what the store keeps of both."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.domain.models import SyncConfig, SyncDirection
from crm_desktop.store.models import IntegrationRow, SyncRunRow, SyncTrigger
from crm_desktop.sync.engine import SyncEngine
from tests.sync.conftest import SyncBench, scenario


def test_an_integration_syncs_push_pull_or_both_never_a_run_only_way() -> None:
    assert SyncConfig().direction is SyncDirection.BOTH
    for way in SyncDirection.configurable():
        assert SyncConfig(direction=way).direction is way
    for way in (SyncDirection.PUSH_NEW, SyncDirection.UNDO, SyncDirection.IMPORT):
        with pytest.raises(InvalidRecordError, match=f"push, pull or both, not {way.value}"):
            SyncConfig(direction=way)


def test_an_integration_stored_as_bidirectional_reads_as_both(hubspot: SyncBench) -> None:
    with hubspot.workspace.database.session() as session:
        row = session.scalar(select(IntegrationRow).where(IntegrationRow.name == hubspot.name))
        assert row is not None
        session.execute(
            update(IntegrationRow)
            .where(IntegrationRow.id == row.id)
            .values(sync_config={**row.sync_config, "direction": "bidirectional"})
        )
    assert hubspot.integration.sync_config.direction is SyncDirection.BOTH
    [due] = hubspot.service.due()
    assert due.direction is SyncDirection.BOTH


@scenario
async def test_a_run_keeps_its_direction_as_the_enum_with_the_same_stored_text(hubspot: SyncBench) -> None:
    result = await hubspot.sync(SyncDirection.PUSH)
    with hubspot.workspace.database.session() as session:
        stored = session.execute(
            select(SyncRunRow.__table__.c.direction).where(SyncRunRow.__table__.c.id == result.run_id)
        ).scalar_one()
        run = session.get(SyncRunRow, result.run_id)
        assert run is not None and run.direction is SyncDirection.PUSH
    assert stored == "push"
    run_id = hubspot.store.start_run(hubspot.integration.id or 0, SyncTrigger.MANUAL, SyncDirection.PUSH_NEW)
    assert hubspot.service.run(run_id)[0].direction is SyncDirection.PUSH_NEW


@scenario
async def test_the_engine_refuses_to_sync_an_undo_or_import_direction(hubspot: SyncBench) -> None:
    engine = SyncEngine.__new__(SyncEngine)
    for way in (SyncDirection.UNDO, SyncDirection.IMPORT):
        with pytest.raises(ValueError, match=f"not {way.value}"):
            await engine.run(way)
