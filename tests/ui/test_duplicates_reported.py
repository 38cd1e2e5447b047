"""The Duplicates dialog merges a pair a CRM refused as a duplicate: picking the CRM's report offers the contact
linked to the record that holds the email, and the refused one (as the refusal's advice says: merge the two)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from crm_desktop.app.people import PeopleService
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration, Provider
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.store.models import SyncTrigger
from crm_desktop.ui.people_panel import PeoplePanel
from tests.support.cli_runs import PIPEDRIVE_UNTHROTTLED, served
from tests.ui.conftest import drive

pytestmark = pytest.mark.loopback


@pytest.fixture
def pipedrive() -> Iterator[PipedriveSandbox]:
    sandbox = PipedriveSandbox(SandboxConfig(contacts=0, seed=5))
    sandbox.apply_config(PIPEDRIVE_UNTHROTTLED)
    with served(sandbox):
        yield sandbox


def test_a_crms_duplicate_report_offers_the_two_to_merge(
    qtbot: QtBot, workspace: Workspace, pipedrive: PipedriveSandbox, qasync_loop: qasync.QEventLoop
) -> None:
    workspace.integrations.add(Integration(provider=Provider.PIPEDRIVE, name="pd", base_url=pipedrive.base_url,
                                           domain="sandbox-company"),
                              {"apiToken": pipedrive.credentials()["apiToken"]})
    # A salesperson's person holds both emails; here they are two contacts with nothing else in common.
    token = pipedrive.credentials()["apiToken"]
    body = {"name": "Quinn Roe", "emails": [{"value": "quinn@example.net", "primary": True},
                                            {"value": "q.roe@example.net", "primary": False}]}
    assert httpx.post(f"{pipedrive.base_url}/api/v2/persons?api_token={token}", json=body).status_code in (200, 201)
    workspace.contacts.save_many([Contact(email="quinn@example.net", first_name="Quinn", last_name="Roe"),
                                  Contact(email="q.roe@example.net", first_name="Q", company="Roe Ltd")])
    ids = [c.id for c in workspace.sync.store.local_by_emails(
        RecordObject.CONTACT, ["quinn@example.net", "q.roe@example.net"]).values()]
    result = drive(qtbot, workspace.sync.push_now("pd", {RecordObject.CONTACT: ids}, SyncTrigger.MANUAL))
    [failure] = result.failures
    assert failure.email == "q.roe@example.net" and failure.category is ErrorCategory.DUPLICATE

    panel = PeoplePanel(PeopleService(workspace.database, workspace.social, workspace.sync))
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    QTest.mouseClick(panel.duplicates_button, Qt.MouseButton.LeftButton)
    dialog = panel.duplicates_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.report is not None and not dialog.searching, timeout=10_000)
    assert dialog.report is not None and dialog.report.groups == []
    assert dialog.reported_table.rowCount() == 1
    dialog.reported_table.selectRow(0)
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=10_000)
    assert (dialog.keep_combo.currentText(), dialog.other_combo.currentText()) == (
        "quinn@example.net", "q.roe@example.net")

    with qtbot.waitSignal(dialog.merged, timeout=10_000):
        QTest.mouseClick(dialog.merge_button, Qt.MouseButton.LeftButton)
        box = dialog.confirm_box
        assert box is not None
        QTest.mouseClick(next(b for b in box.buttons() if b.text() == "Merge"), Qt.MouseButton.LeftButton)
    kept = workspace.contacts.find("quinn@example.net")
    assert kept is not None and kept.company == "Roe Ltd"
    assert workspace.contacts.find("q.roe@example.net") is None
    again = drive(qtbot, workspace.sync.push_now("pd", {RecordObject.CONTACT: [ids[0]]}, SyncTrigger.MANUAL))
    assert not again.failures
    qtbot.waitUntil(lambda: not panel.tasks.pending and not dialog.tasks.pending, timeout=10_000)
    dialog.close()
