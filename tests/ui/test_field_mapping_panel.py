"""The Field Mapping panel: the saved mapping in an editable table, saving, reverting and checking against the CRM."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QComboBox, QListWidget, QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Integration, Provider
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.store.models import ConflictRule, FieldDirection
from crm_desktop.sync.mapping import FieldMapping, Transform
from crm_desktop.ui.field_mapping_panel import (
    FieldMappingPanel,
    MappingColumn,
    MappingsTableModel,
    PreviewColumn,
    parse_transforms,
)
from crm_desktop.ui.tasks import BackgroundTasks
from crm_desktop.vault import Vault
from tests.support.memory_keyring import MemoryKeyring
from tests.ui.conftest import HubSpotBench, person, shown, unfinished_tasks


def click(widget: QWidget) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


@pytest.fixture
def panel(qtbot: QtBot, hubspot: HubSpotBench) -> FieldMappingPanel:
    return shown(qtbot, FieldMappingPanel(hubspot.workspace.sync, BackgroundTasks()), 1000, 640)


def row(panel: FieldMappingPanel, local_field: str) -> int:
    found = panel.model.row_of(local_field)
    assert found is not None, f"{local_field} is not mapped"
    return found


def saved(hubspot: HubSpotBench, local_field: str, obj: RecordObject = RecordObject.CONTACT) -> FieldMapping:
    mappings = hubspot.workspace.sync.mappings(hubspot.workspace.integrations.get(hubspot.name), obj)
    return next(m for m in mappings if m.local_field == local_field)


def test_the_default_hubspot_mapping_is_shown(panel: FieldMappingPanel) -> None:
    model = panel.model
    titles = [model.headerData(c, Qt.Orientation.Horizontal) for c in MappingColumn]
    assert titles == ["Local field", "CRM field", "Direction", "Conflict rule", "Transforms"]
    email = row(panel, "email")
    assert [model.index(email, c).data() for c in MappingColumn][:4] == ["Email", "email", "Two-way",
                                                                          "Newest change wins"]
    assert model.index(row(panel, "twitterUsername"), MappingColumn.CRM_FIELD).data() == "twitter_username"
    assert not model.flags(model.index(email, MappingColumn.LOCAL_FIELD)) & Qt.ItemFlag.ItemIsEditable
    assert not model.flags(model.index(email, MappingColumn.CRM_FIELD)) & Qt.ItemFlag.ItemIsEditable, (
        "without the CRM's field list a CRM field could only be typed"
    )
    assert model.flags(model.index(email, MappingColumn.DIRECTION)) & Qt.ItemFlag.ItemIsEditable
    assert not panel.save_button.isEnabled() and panel.check_button.isEnabled()

    panel.object_combo.setCurrentIndex(panel.object_combo.findData(RecordObject.LEAD))
    assert panel.model.index(row(panel, "status"), MappingColumn.CRM_FIELD).data() == "hs_lead_status"


def with_live_fields(panel: FieldMappingPanel, qtbot: QtBot) -> None:
    """Read the CRM's live field list into the panel (the live check and the pickers need it)."""
    panel.load_crm_fields()
    qtbot.waitUntil(lambda: bool(panel.model.crm_fields), timeout=5000)


def test_editing_in_the_table_then_saving_keeps_the_mapping(
    panel: FieldMappingPanel, qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop
) -> None:
    with_live_fields(panel, qtbot)
    company = row(panel, "company")
    index = panel.model.index(company, MappingColumn.CRM_FIELD)
    panel.table.setCurrentIndex(index)
    panel.table.edit(index)
    editor = panel.table.focusWidget()
    assert isinstance(editor, QComboBox), "the CRM field is picked from the CRM's list"
    editor.setCurrentIndex(editor.findText("Job Title"))
    QTest.keyClick(editor, Qt.Key.Key_Return)  # the delegate commits on the next turn of the event loop
    qtbot.waitUntil(lambda: saved_name(panel, company) == "jobtitle", timeout=1000)
    assert panel.model.dirty
    assert panel.save_button.isEnabled() and not panel.integration_combo.isEnabled()
    assert not panel.check_button.isEnabled(), "the check reads the saved mapping: save first"

    # The conflict rule through its drop-down.
    rule = panel.model.index(company, MappingColumn.CONFLICT_RULE)
    panel.table.setCurrentIndex(rule)
    panel.table.edit(rule)
    combo = panel.table.focusWidget()
    assert isinstance(combo, QComboBox)
    combo.setCurrentIndex(combo.findData(ConflictRule.MANUAL))
    QTest.keyClick(combo, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: rule.data() == "Ask me (Conflicts)", timeout=1000)

    click(panel.save_button)
    assert not panel.model.dirty and panel.integration_combo.isEnabled()
    assert panel.notice.text() == "Saved the contacts mapping of “hubspot-marketing”."
    mapping = saved(hubspot, "company")
    assert (mapping.crm_field, mapping.conflict_rule) == ("jobtitle", ConflictRule.MANUAL)


def saved_name(panel: FieldMappingPanel, row_number: int) -> str:
    return str(panel.model.index(row_number, MappingColumn.CRM_FIELD).data(Qt.ItemDataRole.EditRole))


def test_revert_drops_the_edits(panel: FieldMappingPanel, hubspot: HubSpotBench) -> None:
    phone = panel.model.index(row(panel, "phone"), MappingColumn.DIRECTION)
    assert panel.model.setData(phone, FieldDirection.OFF)
    assert phone.data() == "Off"
    click(panel.revert_button)
    assert panel.model.index(row(panel, "phone"), MappingColumn.DIRECTION).data() == "Two-way"
    assert saved(hubspot, "phone").direction is FieldDirection.TWO_WAY


def test_an_unknown_transform_is_refused_with_a_sentence(panel: FieldMappingPanel) -> None:
    transforms = panel.model.index(row(panel, "email"), MappingColumn.TRANSFORMS)
    before = transforms.data()
    assert not panel.model.setData(transforms, "trim, shout")
    assert transforms.data() == before
    assert panel.notice.tone == "error"
    assert "“shout” is not a transform; use Trim spaces, Lower case" in panel.notice.text()
    assert panel.model.setData(transforms, "trim; lower")
    assert transforms.data() == "Trim spaces, Lower case"
    assert transforms.data(Qt.ItemDataRole.EditRole) == (Transform.TRIM, Transform.LOWER)


def test_transforms_parse_in_order() -> None:
    assert parse_transforms(" trim , LOWER,,") == (Transform.TRIM, Transform.LOWER)
    assert parse_transforms("International phone format, trim spaces") == (Transform.E164, Transform.TRIM)
    assert parse_transforms("") == ()
    with pytest.raises(ValueError, match="use Trim spaces, Lower case, International phone format"):
        parse_transforms("upper")


def test_transforms_show_in_words_with_the_mappings_own_length_and_default() -> None:
    model = MappingsTableModel()
    mapping = FieldMapping("company", "Company", FieldDirection.TWO_WAY, ConflictRule.LAST_WRITE_WINS,
                           (Transform.TRIM, Transform.TRUNCATE, Transform.DEFAULT), length=80,
                           default_value="(unknown)")
    phone = FieldMapping("phone", "Phone", FieldDirection.TWO_WAY, ConflictRule.LAST_WRITE_WINS, (Transform.E164,))
    model.show_mappings([mapping, phone], RecordObject.LEAD)
    cell = model.index(0, MappingColumn.TRANSFORMS)
    assert cell.data() == "Trim spaces, Cut to 80 characters, “(unknown)” when blank"
    assert "cut to fit instead of being refused" in cell.data(Qt.ItemDataRole.ToolTipRole)
    assert model.index(1, MappingColumn.TRANSFORMS).data() == "International phone format"
    assert "e164" not in model.index(1, MappingColumn.TRANSFORMS).data(Qt.ItemDataRole.ToolTipRole)


def test_transforms_are_ticked_in_a_list_by_name(panel: FieldMappingPanel, qtbot: QtBot) -> None:
    phone = row(panel, "phone")
    cell = panel.model.index(phone, MappingColumn.TRANSFORMS)
    assert cell.data() == "International phone format"
    panel.table.setCurrentIndex(cell)
    panel.table.edit(cell)
    editor = panel.table.focusWidget()
    assert isinstance(editor, QListWidget), "transforms are ticked, not typed"
    names = [editor.item(r).text() for r in range(editor.count())]
    assert names == ["Trim spaces", "Lower case", "International phone format", "Cut to the CRM's length"], (
        "no default value: no “Fill in when blank”"
    )
    ticked = [editor.item(r).text() for r in range(editor.count())
              if editor.item(r).checkState() == Qt.CheckState.Checked]
    assert ticked == ["International phone format"]
    assert editor.geometry().bottom() < panel.table.viewport().height(), "the whole list is in sight"
    QTest.keyClick(editor, Qt.Key.Key_Space)  # on the first line: Trim spaces
    QTest.keyClick(editor, Qt.Key.Key_Down)
    QTest.keyClick(editor, Qt.Key.Key_Down)
    QTest.keyClick(editor, Qt.Key.Key_Space)  # International phone format, off
    QTest.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: cell.data() == "Trim spaces", timeout=1000)
    assert panel.model.dirty

    # Escape drops the ticks.
    panel.table.edit(cell)
    editor = panel.table.focusWidget()
    assert isinstance(editor, QListWidget)
    QTest.keyClick(editor, Qt.Key.Key_Down)
    QTest.keyClick(editor, Qt.Key.Key_Space)
    QTest.keyClick(editor, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not editor.isVisible(), timeout=1000)
    assert cell.data() == "Trim spaces"


def test_ticked_transforms_keep_their_order_and_new_ones_apply_after() -> None:
    model = MappingsTableModel()
    mapping = FieldMapping("email", "email", FieldDirection.TWO_WAY, ConflictRule.LAST_WRITE_WINS,
                           (Transform.LOWER, Transform.TRIM))
    model.show_mappings([mapping], RecordObject.CONTACT)
    cell = model.index(0, MappingColumn.TRANSFORMS)
    assert model.setData(cell, [Transform.TRIM, Transform.E164, Transform.LOWER])
    assert cell.data(Qt.ItemDataRole.EditRole) == (Transform.LOWER, Transform.TRIM, Transform.E164)


def test_the_model_refuses_a_blank_crm_field() -> None:
    model = MappingsTableModel()
    refused: list[str] = []
    model.edit_refused.connect(refused.append)
    model.show_mappings([FieldMapping("email", "email")])
    assert not model.setData(model.index(0, MappingColumn.CRM_FIELD), "  ")
    assert refused == ["Email: the CRM field cannot be blank; set the direction to Off instead"]
    assert not model.dirty


@pytest.mark.parametrize(("obj", "field", "label"), [
    (RecordObject.CONTACT, "firstName", "First name"),
    (RecordObject.CONTACT, "twitterFollowers", "Twitter/X followers"),
    (RecordObject.LEAD, "engagementScore", "Engagement score"),
    (RecordObject.CONTACT, "custom.segment", "segment (custom field)"),
])
def test_local_fields_show_by_their_names_for_the_marketer(obj: RecordObject, field: str, label: str) -> None:
    """The mapping lists "First name", as the preview does; the wire name (what files and the command line use)
    is in the tooltip and is what an edit works on."""
    model = MappingsTableModel()
    model.show_mappings([FieldMapping(field, "crm_name")], obj)
    cell = model.index(0, MappingColumn.LOCAL_FIELD)
    assert cell.data() == label
    assert cell.data(Qt.ItemDataRole.EditRole) == field
    assert f"on the command line: {field}" in cell.data(Qt.ItemDataRole.ToolTipRole)


def test_check_against_crm_lists_the_problems_and_marks_their_rows(
    panel: FieldMappingPanel, qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop
) -> None:
    twitter = row(panel, "twitterUsername")
    assert panel.model.setData(panel.model.index(twitter, MappingColumn.CRM_FIELD), "twitter_handle_old")
    assert panel.save()
    click(panel.check_button)
    assert not panel.check_button.isEnabled()
    qtbot.waitUntil(panel.check_button.isEnabled, timeout=5000)
    text = panel.notice.text()
    assert panel.notice.tone == "error"
    assert "• Twitter/X username → twitter_handle_old: the CRM has no such field" in text
    assert panel.model.rows_with_problems() == [row(panel, "twitterUsername")]
    cell = panel.model.index(row(panel, "twitterUsername"), MappingColumn.CRM_FIELD)
    assert cell.data(Qt.ItemDataRole.ToolTipRole) == "the CRM has no such field"

    # Fixed and checked again: all clear.
    assert panel.model.setData(cell, "twitter_username")
    assert panel.save()
    click(panel.check_button)
    qtbot.waitUntil(panel.check_button.isEnabled, timeout=5000)
    assert panel.notice.tone == "ok"
    assert panel.model.rows_with_problems() == []
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=10_000)


def test_saving_a_row_marked_as_impossible_asks_first(
    panel: FieldMappingPanel, qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop
) -> None:
    with_live_fields(panel, qtbot)
    first = row(panel, "firstName")
    assert panel.model.setData(panel.model.index(first, MappingColumn.CRM_FIELD), "no_such_field_xyz")
    assert panel.model.rows_with_problems() == [first], "the live check marks the row"
    assert not panel.save(), "saved without a word about the marked row"
    box = panel.confirm_box
    assert box is not None and "Save anyway?" in box.text()
    assert "(First name)" in box.text(), "the row named as the table names it, not by its wire name firstName"
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert panel.model.dirty and panel.confirm_box is None
    integration = hubspot.workspace.integrations.get(hubspot.name)
    saved = {m.local_field: m.crm_field for m in hubspot.workspace.sync.mappings(integration, RecordObject.CONTACT)}
    assert saved["firstName"] != "no_such_field_xyz"

    panel.save()
    assert panel.confirm_box is not None
    panel.confirm_box.button(QMessageBox.StandardButton.Yes).click()
    assert not panel.model.dirty
    saved = {m.local_field: m.crm_field for m in hubspot.workspace.sync.mappings(integration, RecordObject.CONTACT)}
    assert saved["firstName"] == "no_such_field_xyz"


def test_a_value_the_crm_field_cannot_take_is_shown_refused_in_the_preview(
    qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop
) -> None:
    """A date written day first, mapped to a HubSpot date property: the push would fail the record, unsent; the
    preview says so in red with the reason, not the text as if it would land."""
    workspace = hubspot.workspace
    integration = workspace.integrations.get(hubspot.name)

    async def create_signup() -> None:
        adapter = workspace.crm.adapter_for(integration)
        try:
            await adapter.create_field(RecordObject.CONTACT, "signup", "Signup", "date")
        finally:
            await adapter.aclose()

    created = asyncio.ensure_future(create_signup())
    qtbot.waitUntil(created.done, timeout=5000)
    created.result()
    workspace.contacts.save(person(1).model_copy(update={"custom_fields": {"signup": "05/12/2026"}}))
    workspace.sync.save_mappings(integration, RecordObject.CONTACT, [
        *workspace.sync.mappings(integration, RecordObject.CONTACT),
        FieldMapping("custom.signup", "signup", FieldDirection.TWO_WAY),
    ])

    panel = shown(qtbot, FieldMappingPanel(workspace.sync, BackgroundTasks()), 1000, 640)
    with_live_fields(panel, qtbot)
    panel.preview_combo.setCurrentIndex(panel.preview_combo.findText("person1@example.com"))
    table = panel.preview_table
    labels = [table.item(r, PreviewColumn.LOCAL_FIELD).text() for r in range(table.rowCount())]
    cell = table.item(labels.index("signup (custom field)"), PreviewColumn.CRM_VALUE)
    assert cell.text() == "not sent: '05/12/2026' is not a date (YYYY-MM-DD)"
    assert cell.foreground().color() == QColor("#b91c1c"), "drawn in red, as the mapping's flagged rows are"
    assert not cell.icon().isNull(), "with the warning sign"
    assert "'05/12/2026' is not a date (YYYY-MM-DD)" in cell.toolTip()
    assert "fails this record" in cell.toolTip()
    assert table.accessibleName() == "Preview of one record mapped"
    first = table.item(labels.index("First name"), PreviewColumn.CRM_VALUE)
    assert first.text() == "Ada1" and first.icon().isNull(), "a value the CRM takes is shown as it goes"


def test_people_saved_while_another_panel_is_shown_can_be_previewed_on_return(
    qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop
) -> None:
    """A first session: Field Mapping opened before anyone is imported offers the three people there are; people
    imported meanwhile (another panel shown) are offered once it is shown again, the record looked at kept."""
    panel = shown(qtbot, FieldMappingPanel(hubspot.workspace.sync, BackgroundTasks()), 1000, 640)
    with_live_fields(panel, qtbot)
    choices = [panel.preview_combo.itemText(i) for i in range(panel.preview_combo.count())]
    assert "person4@example.com" not in choices
    panel.preview_combo.setCurrentIndex(panel.preview_combo.findText("person2@example.com"))
    panel.hide()
    hubspot.save_people(2, start=4)  # an import, while People is shown

    panel.show()
    choices = [panel.preview_combo.itemText(i) for i in range(panel.preview_combo.count())]
    assert "person4@example.com" in choices and "person5@example.com" in choices
    assert panel.preview_combo.currentText() == "person2@example.com"
    assert panel.preview_table.rowCount() > 0


def test_with_nobody_to_preview_the_record_list_says_why(
    qtbot: QtBot, tmp_path: Path, keyring_backend: MemoryKeyring, qasync_loop: qasync.QEventLoop
) -> None:
    """A first session: an integration added, nobody imported yet. The empty preview says where people come from
    rather than showing a blank list and a blank table."""
    sandbox = HubSpotSandbox(SandboxConfig())
    workspace = Workspace.open(tmp_path / "first", vault=Vault(backend=keyring_backend),
                               transport=sandbox.transport())
    try:
        workspace.integrations.add(
            Integration(provider=Provider.HUBSPOT, name="hubspot", base_url=sandbox.base_url), sandbox.credentials())
        panel = shown(qtbot, FieldMappingPanel(workspace.sync, BackgroundTasks()), 1000, 640)
        with_live_fields(panel, qtbot)
        combo = panel.preview_combo
        assert combo.count() == 0 and combo.currentIndex() == -1
        assert combo.placeholderText() == "No contacts yet: import or add them in People"
        assert combo.fontMetrics().horizontalAdvance(combo.placeholderText()) < combo.width(), "not cut"
        panel.object_combo.setCurrentIndex(panel.object_combo.findData(RecordObject.LEAD))
        assert combo.placeholderText() == "No leads waiting to be pushed"
        panel.close()
    finally:
        workspace.close()
