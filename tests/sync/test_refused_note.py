"""A Pipedrive social note the CRM refuses: the record is listed with the reason, the person it wrote is kept, and a
retry writes the note, so the social data it carries is not dropped (the fault drill's "listed but landed")."""

from __future__ import annotations

import pytest

from crm_desktop.domain.models import Provider, SyncDirection
from crm_desktop.domain.outcomes import ErrorCategory
from crm_desktop.sandbox.core import FaultKind, FaultRule
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from tests.sync.conftest import SyncBench, person, scenario


def persons_with(sandbox: PipedriveSandbox, email: str) -> list[int]:
    return [p.id for p in sandbox.persons.values() if any(e.get("value") == email for e in p.emails)]


def notes_of(sandbox: PipedriveSandbox, person_id: int) -> list[str]:
    return [note.content for note in sandbox.notes.values() if note.person_id == person_id]


@pytest.mark.parametrize("any_crm", [Provider.PIPEDRIVE], indirect=True, ids=lambda p: p.value)
@scenario
async def test_a_refused_note_is_listed_and_the_retry_writes_it(any_crm: SyncBench) -> None:
    sandbox = any_crm.sandbox
    assert isinstance(sandbox, PipedriveSandbox)
    any_crm.save(person(1), person(2))
    sandbox.faults.add(FaultRule(FaultKind.INVALID_RECORD, probability=1.0, path="/v1/notes", remaining=1))

    first = await any_crm.sync(SyncDirection.PUSH)

    # The person landed, its note was refused: listed with the stage and the CRM's reason.
    [failure] = first.failures
    assert failure.category is ErrorCategory.VALIDATION
    assert "refused the social note" in failure.message and "Validation failed" in failure.message
    [refused_id] = persons_with(sandbox, failure.email)
    assert notes_of(sandbox, refused_id) == []
    [other] = {"person1@example.com", "person2@example.com"} - {failure.email}
    [other_id] = persons_with(sandbox, other)
    assert any("Analytical Engines" in content for content in notes_of(sandbox, other_id))

    assert first.run_id is not None
    retry = await any_crm.workspace.monitor.retry_failed(first.run_id)

    assert retry.result is not None and retry.result.failures == []
    assert persons_with(sandbox, failure.email) == [refused_id]  # found by email, not created again
    assert any_crm.link(failure.email).crm_id == str(refused_id)
    [note] = notes_of(sandbox, refused_id)
    assert "Company: Analytical Engines" in note
