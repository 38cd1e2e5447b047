"""Undoing a run after a salesperson changed, in the CRM, a value the run wrote there."""

from __future__ import annotations

import pytest

from crm_desktop.domain.models import Contact
from crm_desktop.sync.actions import UndoRefused
from crm_desktop.sync.plan import Side
from tests.sync.conftest import SyncBench, scenario

EMAIL = "ada@example.com"
#: A salesperson renames Ada "Annie" in each CRM's own shape.
RENAME = {"hubspot": {"firstname": "Annie"}, "salesforce": {"FirstName": "Annie"},
          "pipedrive": {"name": "Annie Lovelace"}}


@scenario
async def test_a_crm_edit_since_the_run_is_not_overwritten_unasked(any_crm: SyncBench) -> None:
    any_crm.save(Contact(email=EMAIL, first_name="Ada", last_name="Lovelace"))
    await any_crm.sync()
    any_crm.change(EMAIL, first_name="ADA")  # a bad import
    pushed = await any_crm.sync()
    assert await any_crm.crm_value(EMAIL, "firstName") == "ADA"
    await any_crm.edit(any_crm.link(EMAIL).crm_id, RENAME[any_crm.provider.value])  # not pulled yet
    before = any_crm.snapshot()
    mark = any_crm.mark()

    with pytest.raises(UndoRefused) as refused:
        await any_crm.service.undo(pushed.run_id or 0)
    assert f"{EMAIL} firstName (in the CRM): the run left 'ADA', now 'Annie'" in str(refused.value)
    assert any_crm.writes_since(mark) == []
    assert any_crm.snapshot() == before, "a refused undo wrote something"
    assert await any_crm.crm_value(EMAIL, "firstName") == "Annie"

    report = await any_crm.service.undo(pushed.run_id or 0, force=True)
    assert [str(c) for c in report.overridden] == [
        f"{EMAIL} firstName (in the CRM): the run left 'ADA', now 'Annie'"]
    crm_side = [c for c in report.plan.changes if c.side is Side.CRM]
    assert [(c.fields["firstName"].old, c.fields["firstName"].new) for c in crm_side] == [("Annie", "Ada")]
    assert await any_crm.crm_value(EMAIL, "firstName") == "Ada"
    assert any_crm.contact(EMAIL).first_name == "Ada"


@scenario
async def test_a_crm_edit_of_another_field_does_not_block_the_undo(any_crm: SyncBench) -> None:
    any_crm.save(Contact(email=EMAIL, first_name="Ada", last_name="Lovelace", phone="+14155550101"))
    await any_crm.sync()
    any_crm.change(EMAIL, phone="+14155559999")
    pushed = await any_crm.sync()
    await any_crm.edit(any_crm.link(EMAIL).crm_id, RENAME[any_crm.provider.value])

    report = await any_crm.service.undo(pushed.run_id or 0)
    assert report.overridden == []
    assert any_crm.contact(EMAIL).phone == "+14155550101"
    assert await any_crm.crm_value(EMAIL, "firstName") == "Annie"
