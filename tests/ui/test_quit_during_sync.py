"""Quitting while a sync runs: the sync stops, the outbox keeps what was not confirmed, and the next start delivers
it exactly once; the app never waits long on the network to close (issue 15)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from crm_desktop.app.sync_monitor import HealthState
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration, Provider, SyncConfig
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sandbox.core import FaultKind, FaultRule, SandboxConfig
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.sandbox.server import SandboxServer
from crm_desktop.store.models import SyncRunStatus
from crm_desktop.ui.app import run_gui
from crm_desktop.ui.main_window import MainWindow
from crm_desktop.vault import Vault
from tests.support.memory_keyring import MemoryKeyring
from tests.sync.crash_worker import crm_contacts

pytestmark = pytest.mark.loopback

INTEGRATION = "Salesforce (sales team)"
CONTACTS = 1_000
#: The most the app may spend closing while its sync waits on the network.
SHUTDOWN_LIMIT_SECONDS = 5.0


@dataclass
class Session:
    """One start of the app on the test's workspace: what the user did and how long closing took."""

    closed_at: float = 0.0
    returned_at: float = 0.0
    exit_code: int | None = None

    @property
    def closing_seconds(self) -> float:
        return self.returned_at - self.closed_at


@pytest.fixture
def restore_app(qapp: QApplication) -> Iterator[QApplication]:
    """run_gui names and styles the shared test QApplication: give it back as it was."""
    names = (qapp.organizationName(), qapp.applicationName())
    try:
        yield qapp
    finally:
        qapp.setOrganizationName(names[0])
        qapp.setApplicationName(names[1])
        qapp.setStyleSheet("")


def emails(count: int) -> list[str]:
    return [f"lead{number:05d}@quit-test.example" for number in range(count)]


def prepare(data_dir: Path, keyring: MemoryKeyring, sandbox: SalesforceSandbox) -> None:
    """A workspace with one Salesforce integration and CONTACTS local contacts, none synced yet."""
    workspace = Workspace.open(data_dir, vault=Vault(backend=keyring))
    try:
        workspace.integrations.add(
            Integration(provider=Provider.SALESFORCE, name=INTEGRATION, base_url=sandbox.base_url,
                        sync_config=SyncConfig(auto_sync=False)),
            sandbox.credentials(),
        )
        workspace.contacts.save_many(
            Contact(email=email, first_name="Grace", last_name=f"Hopper {n}", company="Navy")
            for n, email in enumerate(emails(CONTACTS))
        )
    finally:
        workspace.close()


def window() -> MainWindow | None:
    return next((w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()), None)


def sync_all(shown: MainWindow) -> None:
    shown.sync_monitor_panel.sync_all_now()  # at once, without the preview dialog


def start_app(
    data_dir: Path,
    keyring: MemoryKeyring,
    when_to_quit: Callable[[MainWindow], bool],
    first: Callable[[MainWindow], None] = sync_all,
) -> Session:
    """Open the app, do ``first`` (click "Sync all now"), and quit (File > Quit) once ``when_to_quit`` says so."""
    session = Session()

    def begin(attempts: int = 500) -> None:
        shown = window()
        if shown is None:
            if attempts:
                QTimer.singleShot(10, lambda: begin(attempts - 1))
            return
        first(shown)
        QTimer.singleShot(5, lambda: watch(shown))

    def watch(shown: MainWindow) -> None:
        if not when_to_quit(shown):
            QTimer.singleShot(5, lambda: watch(shown))
            return
        session.closed_at = time.monotonic()
        shown.quit_action.trigger()

    QTimer.singleShot(0, begin)
    session.exit_code = run_gui(lambda: Workspace.open(data_dir, vault=Vault(backend=keyring)), ["crm-desktop"])
    session.returned_at = time.monotonic()
    return session


def held_requests(sandbox: SalesforceSandbox) -> int:
    return sum(1 for entry in list(sandbox.requests) if entry.fault == FaultKind.READ_TIMEOUT.value)


def sync_finished(shown: MainWindow) -> bool:
    panel = shown.sync_monitor_panel
    return not panel.running_integrations and panel.progress_label.text() == panel.IDLE_TEXT


@pytest.mark.timeout(120)
def test_quitting_mid_sync_keeps_the_outbox_and_the_next_start_delivers_each_contact_once(
    restore_app: QApplication, tmp_path: Path, keyring_backend: MemoryKeyring
) -> None:
    # Duplicate rules off: a contact created twice would be kept twice. Every answer takes 300 ms.
    sandbox = SalesforceSandbox(SandboxConfig(latency_ms=300, jitter_ms=50), duplicate_rules=False)
    data_dir = tmp_path / "data"
    with SandboxServer([sandbox]):
        prepare(data_dir, keyring_backend, sandbox)

        # Quit the moment Salesforce has saved the first contacts: their answers are still on the way.
        first = start_app(data_dir, keyring_backend, lambda _: len(crm_contacts(sandbox)) > 0)
        assert first.exit_code == 0
        assert first.closing_seconds < SHUTDOWN_LIMIT_SECONDS
        landed = len(crm_contacts(sandbox))
        workspace = Workspace.open(data_dir, vault=Vault(backend=keyring_backend))
        try:
            integration_id = workspace.integrations.get(INTEGRATION).id or 0
            pending = workspace.sync.store.pending_outbox(integration_id, RecordObject.CONTACT)
            runs = workspace.sync.runs(INTEGRATION)
            [health] = workspace.monitor.health()
            attempt = workspace.monitor.store.latest_attempt(integration_id)
        finally:
            workspace.close()
        # The next start's health line says the run was cancelled (not "not synced yet"), counting what it did.
        assert health.state is HealthState.CANCELLED, health
        assert attempt is not None and (attempt.run_id, attempt.status) == (runs[0].id, SyncRunStatus.CANCELLED)
        assert attempt.contacts_synced == runs[0].created + runs[0].updated
        assert 0 < landed < CONTACTS, "the quit came in the middle of the push"
        assert pending, "the writes not confirmed stay in the outbox"
        assert [run.status for run in runs] and all(run.status is not SyncRunStatus.RUNNING for run in runs)

        second = start_app(data_dir, keyring_backend, sync_finished)
        assert second.exit_code == 0

    held = Counter(email for _, email in crm_contacts(sandbox))
    assert sorted(held) == sorted(emails(CONTACTS))
    assert [email for email, count in held.items() if count > 1] == []
    workspace = Workspace.open(data_dir, vault=Vault(backend=keyring_backend))
    try:
        integration_id = workspace.integrations.get(INTEGRATION).id or 0
        assert workspace.sync.store.pending_outbox(integration_id, RecordObject.CONTACT) == []
        assert workspace.sync.runs(INTEGRATION)[0].status is SyncRunStatus.SUCCEEDED
    finally:
        workspace.close()


@pytest.mark.timeout(120)
def test_quitting_while_the_crm_holds_requests_takes_less_than_five_seconds(
    restore_app: QApplication, tmp_path: Path, keyring_backend: MemoryKeyring
) -> None:
    # Every SOQL query (the pull's first request) is held open for a minute, longer than the client's own timeout.
    sandbox = SalesforceSandbox(
        SandboxConfig(faults=[FaultRule(FaultKind.READ_TIMEOUT, probability=1.0, path="/query")], hang_seconds=60)
    )
    data_dir = tmp_path / "data"
    with SandboxServer([sandbox]):
        prepare(data_dir, keyring_backend, sandbox)
        session = start_app(data_dir, keyring_backend, lambda _: held_requests(sandbox) > 0)
    assert session.exit_code == 0
    assert session.closing_seconds < SHUTDOWN_LIMIT_SECONDS


@pytest.mark.timeout(120)
def test_a_clean_up_waiting_on_the_network_does_not_hold_the_quit_past_five_seconds(
    restore_app: QApplication, tmp_path: Path, keyring_backend: MemoryKeyring
) -> None:
    sandbox = SalesforceSandbox(
        SandboxConfig(faults=[FaultRule(FaultKind.READ_TIMEOUT, probability=1.0, path="/limits")], hang_seconds=60)
    )

    async def tell_the_crm_on_the_way_out() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            # A clean-up that sends one last request, which the CRM holds for a minute.
            async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=60) as client:
                await client.get("/services/data/v61.0/limits")

    def start_the_task(shown: MainWindow) -> None:
        shown.tasks.start(tell_the_crm_on_the_way_out(), name="last word to the CRM")

    data_dir = tmp_path / "data"
    with SandboxServer([sandbox]):
        prepare(data_dir, keyring_backend, sandbox)
        session = start_app(data_dir, keyring_backend, lambda _: True, first=start_the_task)
        assert held_requests(sandbox) == 1
    assert session.exit_code == 0
    assert session.closing_seconds < SHUTDOWN_LIMIT_SECONDS
