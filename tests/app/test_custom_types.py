"""A custom field keeps its type (a number, a yes/no) when it is edited, imported over, pulled or undone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from crm_desktop.app.change_undo import ChangeUndoService
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, custom_value_like
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.store.models import AuditLogRow
from crm_desktop.store.people_store import PeopleStore
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


def typed(values: dict[str, Any]) -> dict[str, tuple[type, Any]]:
    """Values with their types, so that 42 and "42" (or True and 1) are told apart."""
    return {name: (type(value), value) for name, value in values.items()}


def seed_ada(workspace: Workspace, tmp_path: Path, custom: dict[str, Any]) -> int:
    """Ada imported from a JSON Lines file with these custom values (their types kept); her local id."""
    path = tmp_path / "typed.jsonl"
    path.write_text(json.dumps({"email": "ada@example.com", "firstName": "Ada", "customFields": custom}) + "\n",
                    encoding="utf-8")
    workspace.sync.import_file(path, RecordObject.CONTACT)
    return workspace.sync.store.local_by_emails(RecordObject.CONTACT, ["ada@example.com"])["ada@example.com"].id


def ada_custom(workspace: Workspace) -> dict[str, Any]:
    stored = workspace.contacts.find("ada@example.com")
    assert stored is not None
    return dict(stored.custom_fields)


def test_undo_of_one_change_puts_back_the_number_and_the_history_shows_its_text(
        workspace: Workspace, tmp_path: Path) -> None:
    local_id = seed_ada(workspace, tmp_path, {"visits": 42, "vip": True, "ratio": 0.5})
    workspace.sync.imports.edit(RecordObject.CONTACT, local_id, {
        "custom.visits": "forty-two", "custom.vip": "maybe", "custom.ratio": "half", "custom.segment": "gold"})
    assert typed(ada_custom(workspace)) == typed(
        {"visits": "forty-two", "vip": "maybe", "ratio": "half", "segment": "gold"})

    people = PeopleStore(workspace.database)
    history = {line.field: line for line in people.audit(RecordObject.CONTACT, local_id) if line.source == "edit"}
    # The History tab reads the values as the marketer typed or saw them, not an encoding of their types.
    assert {name: (line.before, line.after) for name, line in history.items()} == {
        "custom.visits": ("42", "forty-two"), "custom.vip": ("true", "maybe"), "custom.ratio": ("0.5", "half"),
        "custom.segment": (None, "gold")}

    changes = ChangeUndoService(workspace.database)
    for name in ("custom.visits", "custom.vip", "custom.ratio", "custom.segment"):
        changes.undo(history[name].id)
    assert typed(ada_custom(workspace)) == typed({"visits": 42, "vip": True, "ratio": 0.5})
    undone = {line.field: line for line in people.audit(RecordObject.CONTACT, local_id) if line.source == "undo"}
    assert (undone["custom.visits"].before, undone["custom.visits"].after) == ("forty-two", "42")
    assert (undone["custom.segment"].before, undone["custom.segment"].after) == ("gold", None)


def test_undo_of_an_edit_puts_back_text_that_reads_as_a_number_as_text(workspace: Workspace, tmp_path: Path) -> None:
    local_id = seed_ada(workspace, tmp_path, {"code": "42", "flag": "true"})
    path = tmp_path / "over.jsonl"
    path.write_text(json.dumps({"email": "ada@example.com", "customFields": {"code": 43, "flag": False}}) + "\n",
                    encoding="utf-8")
    report = workspace.sync.import_file(path, RecordObject.CONTACT)
    assert typed(ada_custom(workspace)) == typed({"code": 43, "flag": False})

    assert report.run_id is not None
    workspace.sync.imports.undo(report.run_id)
    assert typed(ada_custom(workspace)) == typed({"code": "42", "flag": "true"})
    assert local_id == workspace.sync.store.local_by_emails(RecordObject.CONTACT, ["ada@example.com"])[
        "ada@example.com"].id


def test_audit_rows_written_before_types_were_kept_undo_as_they_did(workspace: Workspace, tmp_path: Path) -> None:
    local_id = seed_ada(workspace, tmp_path, {"visits": 42, "kept": 5})
    edit = workspace.sync.imports.edit(RecordObject.CONTACT, local_id, {"custom.visits": "forty-two",
                                                                        "custom.kept": "6"})
    # As a version without the type columns wrote them: text only.
    with workspace.database.session() as session:
        session.execute(update(AuditLogRow).values(old_type=None, new_type=None))

    assert edit.run_id is not None
    workspace.sync.imports.undo(edit.run_id)
    # Read as text: laid over the value it replaces as an edit is (a number stays a number where the text reads
    # as one, and text stays text).
    assert typed(ada_custom(workspace)) == typed({"visits": "42", "kept": 5})
