"""A custom field keeps its type (a number, a yes/no) when it is edited, imported over, pulled or undone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, custom_value_like
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sync.mapping import apply_values


@pytest.mark.parametrize(("stored", "text", "kept"), [
    (5, "6", 6), (5, " -6 ", -6), (5, "6.5", 6.5), (1.5, "2", 2.0), (True, "false", False), (False, "TRUE", True),
    (5, "007", "007"), (5, "six", "six"), (True, "yes please", "yes please"), ("text", "6", "6"), (None, "6", "6"),
    (5, 7, 7),
])
def test_a_custom_value_takes_the_type_of_the_one_it_replaces(stored: Any, text: Any, kept: Any) -> None:
    value = custom_value_like(stored, text)
    assert value == kept and type(value) is type(kept)


def test_an_edit_and_its_undo_keep_numbers_and_yes_no(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "typed.jsonl"
    path.write_text(json.dumps({"email": "ada@example.com", "customFields": {"visits": 5, "vip": True}}) + "\n",
                    encoding="utf-8")
    workspace.sync.import_file(path, RecordObject.CONTACT)
    local_id = workspace.sync.store.local_by_emails(RecordObject.CONTACT, ["ada@example.com"])["ada@example.com"].id

    edit = workspace.sync.imports.edit(RecordObject.CONTACT, local_id, {"custom.visits": "6", "custom.vip": "false"})
    stored = workspace.contacts.find("ada@example.com")
    assert stored is not None and stored.custom_fields == {"visits": 6, "vip": False}
    assert [type(v) for v in stored.custom_fields.values()] == [int, bool]

    assert edit.run_id is not None
    workspace.sync.imports.undo(edit.run_id)
    stored = workspace.contacts.find("ada@example.com")
    assert stored is not None and stored.custom_fields == {"visits": 5, "vip": True}
    assert [type(v) for v in stored.custom_fields.values()] == [int, bool], "the undo put the values back as text"


def test_a_pulled_or_restored_value_keeps_the_stored_type() -> None:
    contact = Contact(email="ada@example.com", custom_fields={"visits": 5, "vip": True, "zip": "02134"})
    pulled = apply_values(contact, {"custom.visits": "12", "custom.vip": "false", "custom.zip": "00501"})
    assert pulled.custom_fields == {"visits": 12, "vip": False, "zip": "00501"}
    assert [type(v) for v in pulled.custom_fields.values()] == [int, bool, str]
