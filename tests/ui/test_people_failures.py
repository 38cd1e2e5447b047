"""A record the CRM refused shows as failed in the People panel: its state, its error and the sync-state filter."""

from __future__ import annotations

import asyncio

from crm_desktop.app.people import PeopleQuery, PeopleService, SyncState
from crm_desktop.domain.models import SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sandbox.core import FaultKind, FaultRule
from tests.ui.conftest import HubSpotBench


def test_a_refused_record_is_failed_with_its_error(hubspot: HubSpotBench) -> None:
    workspace = hubspot.workspace
    hubspot.sandbox.faults.add(FaultRule(FaultKind.INVALID_RECORD, at=[1]))
    result = asyncio.run(workspace.sync.sync(hubspot.name, SyncDirection.PUSH))
    assert result.counts["failed"] == 1, result.counts
    service = PeopleService(workspace.database, workspace.social, workspace.sync)
    integration = workspace.integrations.get(hubspot.name)
    lines = service.page(PeopleQuery(), None, 10)
    states = {}
    for line in lines:
        link = service.detail(RecordObject.CONTACT, line.id).crm_links[0]
        states[line.email] = (link.state, link.last_error)
    failed = [email for email, (state, _) in states.items() if state == "failed"]
    assert len(failed) == 1, states
    assert states[failed[0]][1], "the CRM's reason is shown"
    assert sorted(email for email, (state, _) in states.items() if state == "linked") == sorted(
        set(states) - set(failed)
    )
    linked = PeopleQuery(integration_id=integration.id, sync_state=SyncState.LINKED)
    assert service.count(linked) == 2
    not_linked = PeopleQuery(integration_id=integration.id, sync_state=SyncState.NOT_LINKED)
    assert [line.email for line in service.page(not_linked, None, 10)] == failed
    failing = PeopleQuery(integration_id=integration.id, sync_state=SyncState.FAILED)
    assert [line.email for line in service.page(failing, None, 10)] == failed


def test_a_record_sent_again_with_success_is_no_longer_failed(hubspot: HubSpotBench) -> None:
    """The sync-state filter goes by the record's newest write, as its detail does: a failure a later push made
    good (a retry, the next sync) is not listed as failed any more."""
    workspace = hubspot.workspace
    hubspot.sandbox.faults.add(FaultRule(FaultKind.INVALID_RECORD, at=[1]))
    first = asyncio.run(workspace.sync.sync(hubspot.name, SyncDirection.PUSH))
    assert first.counts["failed"] == 1, first.counts
    service = PeopleService(workspace.database, workspace.social, workspace.sync)
    integration = workspace.integrations.get(hubspot.name)
    failing = PeopleQuery(integration_id=integration.id, sync_state=SyncState.FAILED)
    assert service.count(failing) == 1

    # Sent again as it is ("Retry failed": the next sync leaves a record the CRM refused until it changes).
    assert first.run_id is not None
    retried = asyncio.run(workspace.monitor.retry_failed(first.run_id))
    again = retried.result
    assert again is not None
    assert again.counts["failed"] == 0 and again.counts["created"] == 1, again.counts
    states = {
        line.email: service.detail(RecordObject.CONTACT, line.id).crm_links[0].state
        for line in service.page(PeopleQuery(), None, 10)
    }
    assert set(states.values()) == {"linked"}, states
    assert service.page(failing, None, 10) == []
    assert service.count(failing) == 0
    linked = PeopleQuery(integration_id=integration.id, sync_state=SyncState.LINKED)
    assert service.count(linked) == 3
