"""The Field Mapping panel on real sandboxes over loopback: CRM fields picked by label from the live field list,
types checked as you edit, one real contact previewed, the seed's social fields created, defaults restored."""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QTableWidgetItem, QWidget
from pytestqt.qtbot import QtBot

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration, Provider, SocialPlatform, SocialProfile, SyncConfig
from crm_desktop.domain.social import EngagementEvent, EngagementUser
from crm_desktop.providers.contract import CrmField
from crm_desktop.sandbox.core import Sandbox, SandboxConfig
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.sandbox.server import SandboxServer
from crm_desktop.ui.field_mapping_panel import (
    MAPPING_ROWS_ALWAYS_SHOWN,
    PREVIEW_ROWS_ALWAYS_SHOWN,
    SECONDARY_ROLE,
    CrmFieldPicker,
    FieldMappingPanel,
    MappingColumn,
    PreviewColumn,
)
from crm_desktop.ui.tasks import BackgroundTasks
from crm_desktop.vault import Vault
from tests.support.memory_keyring import MemoryKeyring

pytestmark = pytest.mark.loopback

HEX_KEY = re.compile(r"\b[0-9a-f]{40}\b")


def click(widget: QWidget) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


@pytest.fixture(autouse=True)
def collected_on_the_gui_thread() -> Iterator[None]:
    """Collect the test's Qt objects here: a collection on a sandbox server's thread would destroy them there."""
    yield
    gc.collect()


def served_workspace(tmp_path: Path, keyring: MemoryKeyring, sandbox: Sandbox, provider: Provider,
                     name: str) -> Workspace:
    workspace = Workspace.open(tmp_path / "data", vault=Vault(backend=keyring))
    credentials = sandbox.credentials()
    domain = credentials.pop("companyDomain", None)
    workspace.integrations.add(
        Integration(provider=provider, name=name, base_url=sandbox.base_url, domain=domain,
                    sync_config=SyncConfig(auto_sync=False)),
        credentials,
    )
    workspace.contacts.save(Contact(
        email="ada@example.com", first_name="Ada", company="Analytical Engines",
        phone="+1 415 555 0100",
        social_profiles=[SocialProfile(platform=SocialPlatform.TWITTER, username="ada_l", followers=1200)],
    ))
    return workspace


@pytest.fixture
def salesforce(tmp_path: Path, keyring_backend: MemoryKeyring) -> Iterator[Workspace]:
    sandbox = SalesforceSandbox(SandboxConfig())
    with SandboxServer([sandbox]):
        workspace = served_workspace(tmp_path, keyring_backend, sandbox, Provider.SALESFORCE, "Salesforce")
        try:
            yield workspace
        finally:
            workspace.close()


@pytest.fixture
def pipedrive(tmp_path: Path, keyring_backend: MemoryKeyring) -> Iterator[Workspace]:
    sandbox = PipedriveSandbox(SandboxConfig())
    with SandboxServer([sandbox]):
        workspace = served_workspace(tmp_path, keyring_backend, sandbox, Provider.PIPEDRIVE, "Pipedrive")
        try:
            yield workspace
        finally:
            workspace.close()


def open_panel(qtbot: QtBot, workspace: Workspace) -> FieldMappingPanel:
    panel = FieldMappingPanel(workspace.sync, BackgroundTasks())
    qtbot.addWidget(panel)
    panel.resize(1100, 760)
    panel.show()
    qtbot.waitExposed(panel)
    qtbot.waitUntil(lambda: bool(panel.model.crm_fields), timeout=10_000)
    return panel


def test_the_panel_built_before_the_loop_runs_reads_the_fields_once_shown(
    qtbot: QtBot, salesforce: Workspace, request: pytest.FixtureRequest
) -> None:
    """Seen on Xvfb: the app opened on Field Mapping (the panel of the last session) showed API names and no field
    count until the integration was changed: the window is built before the app's loop runs."""
    panel = FieldMappingPanel(salesforce.sync, BackgroundTasks())
    qtbot.addWidget(panel)
    assert panel.fields_label.text() == "", "no loop runs yet: nothing is read"
    request.getfixturevalue("qasync_loop")
    panel.resize(1100, 760)
    panel.show()
    qtbot.waitUntil(lambda: bool(panel.model.crm_fields), timeout=10_000)
    assert panel.fields_label.text().endswith(" contact fields in the CRM")


def pick(panel: FieldMappingPanel, qtbot: QtBot, local_field: str, search: str) -> CrmFieldPicker:
    """Double-click the local field's CRM field cell and put ``search`` in its search box (the completer's popup
    is not shown: the offscreen platform cannot grab the keyboard for it)."""
    row = panel.model.row_of(local_field)
    assert row is not None
    index = panel.model.index(row, MappingColumn.CRM_FIELD)
    panel.table.scrollTo(index)
    where = panel.table.visualRect(index).center()
    QTest.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, where)
    QTest.mouseDClick(panel.table.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, where)
    picker = panel.table.focusWidget()
    assert isinstance(picker, CrmFieldPicker)
    picker.setEditText(search)
    completer = picker.completer()
    assert completer is not None
    completer.setCompletionPrefix(search)
    return picker


def test_a_crm_field_is_picked_by_label_and_a_wrong_type_is_flagged_inline(
    qtbot: QtBot, salesforce: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    panel = open_panel(qtbot, salesforce)
    email_row = panel.model.row_of("email")
    assert email_row is not None
    assert panel.model.index(email_row, MappingColumn.CRM_FIELD).data() == "Email  ·  email"
    assert "API name: Email" in panel.model.index(email_row, MappingColumn.CRM_FIELD).data(Qt.ItemDataRole.ToolTipRole)

    picker = pick(panel, qtbot, "twitterUsername", "opt out")
    completer = picker.completer()
    assert completer is not None and completer.completionCount() == 1, "the search matches any part of a label"
    offered = picker.findText("Email Opt Out")
    assert picker.itemData(offered, SECONDARY_ROLE) == "boolean  ·  HasOptedOutOfEmail"
    assert completer.currentCompletion() == "Email Opt Out"
    picker.setCurrentIndex(offered)
    QTest.keyClick(picker, Qt.Key.Key_Return)
    row = panel.model.row_of("twitterUsername")
    assert row is not None
    cell = panel.model.index(row, MappingColumn.CRM_FIELD)
    qtbot.waitUntil(lambda: cell.data(Qt.ItemDataRole.EditRole) == "HasOptedOutOfEmail", timeout=2000)
    assert cell.data() == "Email Opt Out  ·  boolean"
    assert row in panel.model.rows_with_problems()
    assert "holds only yes/no (boolean) but string is text" in cell.data(Qt.ItemDataRole.ToolTipRole)
    assert cell.data(Qt.ItemDataRole.DecorationRole) is not None, "a warning sign on the row"

    # A name typed that is not in the CRM's list is refused: CRM fields are never typed.
    picker = pick(panel, qtbot, "phone", "Nickname__c")
    QTest.keyClick(picker, Qt.Key.Key_Return)
    qtbot.wait(200)
    assert "the CRM has no field “Nickname__c”" in panel.notice.text(), (panel.notice.text(), picker.currentText())


def test_the_preview_shows_one_real_contact_as_the_push_writes_it(
    qtbot: QtBot, salesforce: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    panel = open_panel(qtbot, salesforce)
    assert panel.preview_combo.currentText() == "ada@example.com"
    shown = {panel.preview_table.item(r, 0).text(): (panel.preview_table.item(r, 1).text(),
                                                      panel.preview_table.item(r, 2).text(),
                                                      panel.preview_table.item(r, 3).text())
             for r in range(panel.preview_table.rowCount())}
    assert shown["First name"] == ("Ada", "First Name", "Ada")
    assert shown["Phone"] == ("+14155550100", "Business Phone", "+14155550100")
    assert shown["Twitter/X username"] == ("ada_l", "Twitter Username", "ada_l")
    assert shown["Twitter/X followers"] == ("1200", "Twitter Followers", "1200")
    assert shown["Last name"] == ("—", "Last Name", "(unknown)"), "Salesforce's required last name gets its default"
    assert shown["Instagram username"] == ("—", "Instagram Username", "— (blank: nothing is sent)")

    # An unsaved edit shows in the preview at once: the first name pulled only is not sent.
    row = panel.model.row_of("firstName")
    assert row is not None
    from crm_desktop.store.models import FieldDirection

    assert panel.model.setData(panel.model.index(row, MappingColumn.DIRECTION), FieldDirection.PULL_ONLY)
    labels = [panel.preview_table.item(r, 0).text() for r in range(panel.preview_table.rowCount())]
    first = labels.index("First name")
    assert panel.preview_table.item(first, 3).text() == "not sent (pull only or off)"


def test_a_short_window_keeps_rows_of_the_mapping_and_the_preview_in_sight(
    qtbot: QtBot, salesforce: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    panel = open_panel(qtbot, salesforce)
    assert panel.preview_table.rowCount() > PREVIEW_ROWS_ALWAYS_SHOWN
    for height in (760, 520, 300):
        panel.resize(1100, height)
        qtbot.wait(50)
        for table, rows in ((panel.table, MAPPING_ROWS_ALWAYS_SHOWN),
                            (panel.preview_table, PREVIEW_ROWS_ALWAYS_SHOWN)):
            row = table.verticalHeader().defaultSectionSize()
            assert table.viewport().height() >= rows * row, (height, table.accessibleName())


def test_pipedrive_fields_show_by_label_and_create_missing_fields_adds_the_social_ones(
    qtbot: QtBot, pipedrive: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    panel = open_panel(qtbot, pipedrive)
    before = {f.label for f in panel.model.crm_fields}
    click(panel.create_fields_button)
    qtbot.waitUntil(lambda: panel.create_fields_button.isEnabled() and panel.refresh_fields_button.isEnabled(),
                    timeout=15_000)
    qtbot.waitUntil(lambda: {f.label for f in panel.model.crm_fields} != before, timeout=10_000)
    assert panel.notice.tone == "ok", panel.notice.text()
    assert "Created" in panel.notice.text()
    created = [f for f in panel.model.crm_fields if f.custom and f.label not in before]
    assert created and all(HEX_KEY.fullmatch(f.name) for f in created), "Pipedrive keys its custom fields by hash"

    shown = [panel.model.index(r, MappingColumn.CRM_FIELD).data() for r in range(panel.model.rowCount())]
    tips = [panel.model.index(r, MappingColumn.CRM_FIELD).data(Qt.ItemDataRole.ToolTipRole) or ""
            for r in range(panel.model.rowCount())]
    assert not any(HEX_KEY.search(text) for text in shown + tips)
    assert panel.model.rows_with_problems() == [], "every seed field exists now"

    picker = pick(panel, qtbot, "twitterUsername", created[0].label[:4])
    texts = [picker.itemText(i) + str(picker.itemData(i, SECONDARY_ROLE)) for i in range(picker.count())]
    assert not any(HEX_KEY.search(text) for text in texts)
    QTest.keyClick(picker, Qt.Key.Key_Escape)


def test_a_read_only_pipedrive_field_is_said_read_only_in_the_preview_not_missing(
    qtbot: QtBot, pipedrive: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    """Seen exploring: a first name mapped onto Pipedrive's "Update time" previewed as "not sent: is not a Pipedrive
    person field (create it first)", while the field exists (the check rightly says read-only)."""
    panel = open_panel(qtbot, pipedrive)
    picker = pick(panel, qtbot, "firstName", "Update")
    picker.setCurrentIndex(picker.findText("Update time"))
    QTest.keyClick(picker, Qt.Key.Key_Return)
    row = panel.model.row_of("firstName")
    assert row is not None
    cell = panel.model.index(row, MappingColumn.CRM_FIELD)
    qtbot.waitUntil(lambda: cell.data() == "Update time  ·  date", timeout=2000)
    assert "is read-only in the CRM" in panel.notice.text()

    labels = [panel.preview_table.item(r, PreviewColumn.LOCAL_FIELD).text()
              for r in range(panel.preview_table.rowCount())]
    sent = panel.preview_table.item(labels.index("First name"), PreviewColumn.CRM_VALUE).text()
    assert "create it first" not in sent, sent
    assert sent == "not sent: is read-only in Pipedrive (map it pull only)"


def test_reset_to_defaults_puts_the_default_mapping_back_until_saved(
    qtbot: QtBot, salesforce: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    panel = open_panel(qtbot, salesforce)
    integration = salesforce.integrations.get("Salesforce")
    from crm_desktop.domain.outcomes import RecordObject
    from crm_desktop.store.models import FieldDirection

    row = panel.model.row_of("phone")
    assert row is not None
    assert panel.model.setData(panel.model.index(row, MappingColumn.DIRECTION), FieldDirection.OFF)
    click(panel.save_button)
    assert salesforce.sync.mappings(integration, RecordObject.CONTACT)[row].direction is FieldDirection.OFF

    click(panel.defaults_button)
    assert panel.model.dirty and panel.save_button.isEnabled()
    assert panel.model.index(row, MappingColumn.DIRECTION).data() == "Two-way"
    click(panel.save_button)
    phone = next(m for m in salesforce.sync.mappings(integration, RecordObject.CONTACT) if m.local_field == "phone")
    assert phone.direction is FieldDirection.TWO_WAY


def test_a_flagged_field_put_right_again_takes_its_problem_out_of_the_notice(
    qtbot: QtBot, salesforce: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    """Seen exploring: after a wrong pick, Reset to defaults (or picking the right field again) cleared the ⚠ in the
    table, but the notice kept listing the problem under "Unsaved changes", as if the mapping were still wrong."""
    panel = open_panel(qtbot, salesforce)
    picker = pick(panel, qtbot, "twitterUsername", "opt out")
    picker.setCurrentIndex(picker.findText("Email Opt Out"))
    QTest.keyClick(picker, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: bool(panel.model.rows_with_problems()), timeout=2000)
    assert "Twitter/X username → Email Opt Out" in panel.notice.text()

    picker = pick(panel, qtbot, "twitterUsername", "Twitter User")
    picker.setCurrentIndex(picker.findText("Twitter Username"))
    QTest.keyClick(picker, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not panel.model.rows_with_problems(), timeout=2000)
    assert "Email Opt Out" not in panel.notice.text(), panel.notice.text()
    assert panel.notice.text() == "Unsaved changes: Save to use them in the next sync, or Revert."

    picker = pick(panel, qtbot, "twitterUsername", "opt out")
    picker.setCurrentIndex(picker.findText("Email Opt Out"))
    QTest.keyClick(picker, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: bool(panel.model.rows_with_problems()), timeout=2000)
    click(panel.defaults_button)
    assert not panel.model.rows_with_problems()
    assert "Email Opt Out" not in panel.notice.text(), panel.notice.text()
    assert panel.notice.text() == "Unsaved changes: Save to use them in the next sync, or Revert."


def test_the_panel_renders_with_a_flagged_field_and_a_preview(
    qtbot: QtBot, salesforce: Workspace, qasync_loop: qasync.QEventLoop, styled_app: object, tmp_path: Path
) -> None:
    """Rendered to ``field-mapping.png`` (``CRM_DESKTOP_SHOTS=docs/screenshots`` keeps it for the README)."""
    panel = open_panel(qtbot, salesforce)
    picker = pick(panel, qtbot, "twitterFollowers", "opt out")
    picker.setCurrentIndex(picker.findText("Email Opt Out"))
    QTest.keyClick(picker, Qt.Key.Key_Return)
    row = panel.model.row_of("twitterFollowers")
    assert row is not None
    qtbot.waitUntil(lambda: row in panel.model.rows_with_problems(), timeout=2000)
    assert "• Twitter/X followers → Email Opt Out: cannot hold a number (boolean)" in panel.notice.text()
    panel.resize(1100, 900)
    panel.table.clearSelection()
    panel.table.setCurrentIndex(panel.model.index(0, 0))
    panel.table.clearSelection()
    folder = Path(os.environ.get("CRM_DESKTOP_SHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        QApplication.processEvents()
    path = folder / "field-mapping.png"
    assert panel.grab().save(str(path))
    image = QImage(str(path))
    assert not image.isNull() and image.width() >= panel.width()
    problem_red = QColor("#b91c1c").rgb()
    assert any(image.pixel(x, y) == problem_red for y in range(0, image.height(), 2) for x in range(image.width())), (
        "the flagged row is drawn in red"
    )


def test_of_two_fields_with_one_label_the_one_picked_is_taken(qtbot: QtBot) -> None:
    """HubSpot has its own "Twitter Username" (twitterhandle) beside the seed's (twitter_username)."""
    fields = [CrmField("twitter_username", "Twitter Username", "string", custom=True),
              CrmField("twitterhandle", "Twitter Username", "string")]
    picker = CrmFieldPicker(fields, lambda field: field.name)
    qtbot.addWidget(picker)
    picker.setCurrentIndex(1)
    assert picker.chosen() == "twitterhandle"
    picker.setCurrentIndex(0)
    assert picker.chosen() == "twitter_username"
    picker.setCurrentIndex(-1)
    picker.setEditText("twitter username")
    assert picker.chosen() is None, "a typed label two fields share names neither"


def test_the_preview_shows_the_score_and_summary_the_push_sends(
    qtbot: QtBot, salesforce: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    salesforce.social.record_engagements([EngagementEvent(
        platform=SocialPlatform.TWITTER, type=kind, timestamp=datetime.now(UTC) - timedelta(days=1), post_id="p-1",
        user=EngagementUser(email="ada@example.com")) for kind in ("like", "comment", "share")])
    panel = open_panel(qtbot, salesforce)
    shown = {panel.preview_table.item(r, 0).text(): panel.preview_table.item(r, 3).text()
             for r in range(panel.preview_table.rowCount())}
    scored = salesforce.sync.engagement.contact_scores(["ada@example.com"])["ada@example.com"]
    assert float(shown["Social engagement score"]) == scored
    summary = shown["Engagement history (summary)"]
    assert "blank" not in summary and summary.strip()


def test_a_create_report_stays_above_the_check_that_follows_it(
    qtbot: QtBot, tmp_path: Path, keyring_backend: MemoryKeyring, qasync_loop: qasync.QEventLoop
) -> None:
    # A sandbox without the seed's fields, whose new fields stay hidden until an admin grants field-level security:
    # the report says so, and the live check that follows still finds them missing.
    sandbox = SalesforceSandbox(SandboxConfig(), field_access_on_create=False)
    sandbox.set_custom_fields([])
    with SandboxServer([sandbox]):
        workspace = served_workspace(tmp_path, keyring_backend, sandbox, Provider.SALESFORCE, "Salesforce")
        try:
            panel = open_panel(qtbot, workspace)
            qtbot.waitUntil(lambda: "cannot take" in panel.notice.text(), timeout=5000)
            click(panel.create_fields_button)
            qtbot.waitUntil(lambda: panel.notice.text().startswith("Created "), timeout=10_000)
            qtbot.waitUntil(lambda: not panel._creating and panel._loading_fields is None, timeout=10_000)
            qtbot.wait(200)
            assert panel.notice.text().startswith("Created "), panel.notice.text()
            assert "cannot take" in panel.notice.text(), "the check's findings follow the report"
        finally:
            workspace.close()


def test_an_integration_added_again_under_its_name_has_its_own_fields_read(
    qtbot: QtBot, pipedrive: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    panel = open_panel(qtbot, pipedrive)
    assert not any(field.name == "LastName" for field in panel.model.crm_fields), "Pipedrive's person fields"
    salesforce = SalesforceSandbox(SandboxConfig())
    with SandboxServer([salesforce]):
        pipedrive.integrations.remove("Pipedrive")
        pipedrive.integrations.add(Integration(provider=Provider.SALESFORCE, name="Pipedrive",
                                               base_url=salesforce.base_url, sync_config=SyncConfig(auto_sync=False)),
                                   salesforce.credentials())
        panel.reload_integrations()
        qtbot.waitUntil(lambda: any(f.name == "LastName" for f in panel.model.crm_fields), timeout=10_000)
        assert "cannot take" not in panel.notice.text(), panel.notice.text()


def test_the_records_offered_to_preview_after_switching_are_previewed_not_left_blank(
    qtbot: QtBot, salesforce: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    """Seen exploring: after switching to Leads the Record box listed the lead waiting to be pushed but picked none,
    so the preview stayed empty under "No leads waiting to be pushed" (a combo box with a placeholder text does not
    pick the first item added)."""
    from crm_desktop.domain.models import Lead
    from crm_desktop.domain.outcomes import RecordObject

    salesforce.leads.save(Lead(email="lee@example.com", first_name="Lee", last_name="Byron", company="Leads Ltd"))
    panel = open_panel(qtbot, salesforce)
    assert panel.preview_combo.currentText() == "ada@example.com"

    panel.object_combo.setCurrentIndex(panel.object_combo.findData(RecordObject.LEAD))
    qtbot.waitUntil(lambda: bool(panel.model.crm_fields) and panel._loading_fields is None, timeout=10_000)
    assert [panel.preview_combo.itemText(i) for i in range(panel.preview_combo.count())] == ["lee@example.com"]
    assert panel.preview_combo.currentText() == "lee@example.com"
    labels = [panel.preview_table.item(r, PreviewColumn.LOCAL_FIELD).text()
              for r in range(panel.preview_table.rowCount())]
    assert "Company" in labels
    assert panel.preview_table.item(labels.index("Company"), PreviewColumn.CRM_VALUE).text() == "Leads Ltd"

    # Back on Contacts, the contact is previewed again.
    panel.object_combo.setCurrentIndex(panel.object_combo.findData(RecordObject.CONTACT))
    assert panel.preview_combo.currentText() == "ada@example.com"
    assert panel.preview_table.rowCount() > 0


def test_people_added_while_the_preview_had_none_are_previewed(
    qtbot: QtBot, tmp_path: Path, keyring_backend: MemoryKeyring, qasync_loop: qasync.QEventLoop
) -> None:
    """A workspace opened before any contact: the preview says to import some; once they are in (the panel shown
    again), the first is previewed rather than the box keeping its "No contacts yet" text over an empty table."""
    sandbox = SalesforceSandbox(SandboxConfig())
    with SandboxServer([sandbox]):
        workspace = Workspace.open(tmp_path / "data", vault=Vault(backend=keyring_backend))
        try:
            workspace.integrations.add(
                Integration(provider=Provider.SALESFORCE, name="Salesforce", base_url=sandbox.base_url,
                            sync_config=SyncConfig(auto_sync=False)), sandbox.credentials())
            panel = open_panel(qtbot, workspace)
            assert panel.preview_combo.count() == 0
            assert panel.preview_combo.placeholderText() == "No contacts yet: import or add them in People"
            panel.hide()
            workspace.contacts.save(Contact(email="ada@example.com", first_name="Ada", last_name="Lovelace"))
            panel.show()
            qtbot.waitUntil(lambda: panel.preview_combo.count() == 1, timeout=2000)
            assert panel.preview_combo.currentText() == "ada@example.com"
            assert panel.preview_table.rowCount() > 0
        finally:
            workspace.close()


def test_no_local_field_name_is_cut_short(
    qtbot: QtBot, salesforce: Workspace, qasync_loop: qasync.QEventLoop, styled_app: object
) -> None:
    """Seen on the 1280 x 800 window: "Social engagement …" and "Engagement history …" in the Local field column,
    cut to 170 px while the CRM field column beside had room to spare."""
    panel = open_panel(qtbot, salesforce)
    qtbot.waitUntil(lambda: panel.preview_table.rowCount() > 0, timeout=5000)
    for table, column, count in (
        (panel.table, MappingColumn.LOCAL_FIELD, panel.model.rowCount()),
        (panel.preview_table, PreviewColumn.LOCAL_FIELD, panel.preview_table.rowCount()),
    ):
        metrics = table.fontMetrics()
        model = table.model()
        names = [str(model.index(row, column).data()) for row in range(count)]
        assert "Engagement history (summary)" in names
        widest = max(metrics.horizontalAdvance(name) for name in names)
        assert table.columnWidth(column) > widest, (table.accessibleName(), table.columnWidth(column), widest)


def test_a_read_only_salesforce_field_is_not_sent_in_the_preview(
    qtbot: QtBot, salesforce: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    """Seen exploring: a first name mapped onto Salesforce's read-only Full Name (``Name``) previewed as "Ada" sent,
    while the check marked the row read-only and the push failed the record (INVALID_FIELD_FOR_INSERT_UPDATE)."""
    panel = open_panel(qtbot, salesforce)
    row = panel.model.row_of("firstName")
    assert row is not None
    assert panel.model.setData(panel.model.index(row, MappingColumn.CRM_FIELD), "Name")
    assert "is read-only in the CRM" in panel.notice.text()
    labels = [panel.preview_table.item(r, PreviewColumn.LOCAL_FIELD).text()
              for r in range(panel.preview_table.rowCount())]
    sent = panel.preview_table.item(labels.index("First name"), PreviewColumn.CRM_VALUE)
    assert sent.text() == "not sent: is read-only in Salesforce (map it pull only)"
    assert not sent.icon().isNull(), "drawn with a warning sign, as the push fails the record"


def test_a_field_the_crm_lacks_is_not_previewed_as_sent(
    qtbot: QtBot, tmp_path: Path, keyring_backend: MemoryKeyring, qasync_loop: qasync.QEventLoop
) -> None:
    """Seen exploring on a HubSpot without the social properties: the notice said the CRM has no Twitter username
    field, while the preview showed "ada_l" sent to it (the push leaves such a seed field out). A field mapped by
    hand that the CRM lacks fails the record in the push (PROPERTY_DOESNT_EXIST): said in red."""
    from crm_desktop.sandbox.hubspot import HubSpotSandbox

    sandbox = HubSpotSandbox(SandboxConfig(), social_properties=False)
    with SandboxServer([sandbox]):
        workspace = served_workspace(tmp_path, keyring_backend, sandbox, Provider.HUBSPOT, "HubSpot")
        try:
            panel = open_panel(qtbot, workspace)
            qtbot.waitUntil(lambda: panel.preview_table.rowCount() > 0, timeout=5000)

            def sent(label: str) -> QTableWidgetItem:
                labels = [panel.preview_table.item(r, PreviewColumn.LOCAL_FIELD).text()
                          for r in range(panel.preview_table.rowCount())]
                return panel.preview_table.item(labels.index(label), PreviewColumn.CRM_VALUE)

            assert "Twitter/X username → twitter_username: the CRM has no such field" in panel.notice.text()
            assert sent("Twitter/X username").text() == (
                "not sent: the CRM has no such field yet (Create missing fields makes it)")
            assert sent("Twitter/X username").icon().isNull(), "the record still goes: no warning sign"

            row = panel.model.row_of("company")
            assert row is not None
            assert panel.model.setData(panel.model.index(row, MappingColumn.CRM_FIELD), "no_such_property")
            assert sent("Company").text() == "not sent: HubSpot has no such field"
            assert not sent("Company").icon().isNull(), "the push fails the record: drawn as refused"

            click(panel.create_fields_button)
            qtbot.waitUntil(lambda: sent("Twitter/X username").text() == "ada_l", timeout=15_000)
        finally:
            workspace.close()


def test_a_local_field_column_dragged_narrower_keeps_its_width(
    qtbot: QtBot, salesforce: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    panel = open_panel(qtbot, salesforce)
    qtbot.waitUntil(lambda: panel.preview_table.rowCount() > 0, timeout=5000)
    panel.table.horizontalHeader().resizeSection(MappingColumn.LOCAL_FIELD, 120)
    row = panel.model.row_of("phone")
    assert row is not None
    from crm_desktop.store.models import FieldDirection

    assert panel.model.setData(panel.model.index(row, MappingColumn.DIRECTION), FieldDirection.PUSH_ONLY)
    assert panel.table.columnWidth(MappingColumn.LOCAL_FIELD) == 120


def test_a_value_none_of_a_restricted_picklists_values_is_not_sent_in_the_preview(
    qtbot: QtBot, salesforce: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    """Seen exploring: a first name mapped onto Salesforce's restricted Social Sentiment picklist previewed as
    "Ada" sent, and the push failed the record (INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST)."""
    panel = open_panel(qtbot, salesforce)
    row = panel.model.row_of("firstName")
    assert row is not None
    assert panel.model.setData(panel.model.index(row, MappingColumn.CRM_FIELD), "social_sentiment__c")
    labels = [panel.preview_table.item(r, PreviewColumn.LOCAL_FIELD).text()
              for r in range(panel.preview_table.rowCount())]
    sent = panel.preview_table.item(labels.index("First name"), PreviewColumn.CRM_VALUE)
    assert sent.text() == "not sent: 'Ada' is not one of its options (positive, neutral, negative, mixed)"
    assert not sent.icon().isNull(), "drawn with a warning sign, as the push fails the record"
