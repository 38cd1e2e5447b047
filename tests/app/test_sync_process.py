"""Full sync runs in a child process: results, progress, refusals and log records come back; cancel, a killed child
and closing leave nothing half-done; credentials are read from the app's own keyring."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from crm_desktop.app import sync_process, sync_service
from crm_desktop.app.paths import DB_URL_ENV
from crm_desktop.app.sync_process import SyncProcess, SyncProcessError
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration, SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.providers.errors import AuthError, CrmAccountChangedError, RateLimitError
from crm_desktop.sandbox.core import Sandbox, WorkTurns
from crm_desktop.store.models import SyncRunStatus
from crm_desktop.store.process_owner import MACHINE_NAME_ENV, lock_owner, machine_name
from crm_desktop.sync.engine import CANCELLED_MESSAGE, SyncAlreadyRunning, SyncProgress, SyncResult
from crm_desktop.vault import Vault, VaultLockedError
from crm_desktop.vault.ephemeral import EphemeralKeyring
from crm_desktop.vault.relayed import relay_to
from tests.support.served_crms import ServedCrms, served_crms

pytestmark = pytest.mark.timeout(180)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def keyring_of_this_process() -> EphemeralKeyring:
    """A keyring that exists only in the test's process: a child that reads credentials must ask this process."""
    return EphemeralKeyring()


@contextmanager
def workspace_syncing_in_a_child(
    directory: Path, keyring: EphemeralKeyring, fans: int = 40
) -> Iterator[tuple[ServedCrms, Workspace]]:
    """The three sandboxes on loopback, a workspace on them whose full runs go to a child process (its credentials
    in ``keyring``), ``fans`` local contacts."""
    with served_crms() as served:
        workspace = Workspace.open(directory, vault=Vault(backend=keyring))
        try:
            served.connect(workspace)
            workspace.contacts.save_many(Contact(email=f"fan{n}@example.com", first_name="Fan", last_name=f"No {n}")
                                         for n in range(fans))
            workspace.sync.run_off_thread()
            assert workspace.run_syncs_in_process()
            yield served, workspace
        finally:
            workspace.close()


@pytest.fixture
def syncing_in_a_child(
    tmp_path: Path, keyring_of_this_process: EphemeralKeyring
) -> Iterator[tuple[ServedCrms, Workspace]]:
    """:func:`workspace_syncing_in_a_child` with 40 contacts."""
    with workspace_syncing_in_a_child(tmp_path / "workspace", keyring_of_this_process) as both:
        yield both


def child_pid(workspace: Workspace) -> int | None:
    process = workspace.sync.sync_process
    assert process is not None
    return process.pid


#: The longest a held request waits (under the adapters' 30 s request timeout: a held push never times out).
HOLD_SECONDS = 20.0


class HeldWork:
    """Stands in for a sandbox's work turns: while held, a request that arrives waits (at most
    :data:`HOLD_SECONDS`) before the emulator works on it; then requests take their turns as before."""

    def __init__(self, turns: WorkTurns) -> None:
        self.turns = turns
        self.released = threading.Event()

    async def __aenter__(self) -> None:
        deadline = time.monotonic() + HOLD_SECONDS
        while not self.released.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110 (set from another thread)
            await asyncio.sleep(0.01)
        await self.turns.__aenter__()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.turns.__aexit__(*exc_info)


@contextmanager
def requests_held(sandbox: Sandbox) -> Iterator[None]:
    """``sandbox`` works on no request until the block ends: a run against it goes on until then, however long
    what the test does meanwhile takes on a loaded machine."""
    held = HeldWork(sandbox.work_turns)
    sandbox.work_turns = held  # type: ignore[assignment]
    try:
        yield
    finally:
        held.released.set()
        sandbox.work_turns = held.turns


@asynccontextmanager
async def push_underway(
    served: ServedCrms, workspace: Workspace
) -> AsyncIterator[tuple[asyncio.Future[SyncResult], int]]:
    """A push to a slow Pipedrive (one request per person) started in the child, once the sandbox holds a few of
    its persons; and the child's process id. Until the block ends Pipedrive holds the push's requests (see
    :class:`HeldWork`): the run goes on, however long the test's own steps take meanwhile."""
    served.pipedrive.config.latency_ms = 100.0
    task = asyncio.ensure_future(workspace.sync.sync("pipedrive", SyncDirection.PUSH))
    try:
        async with asyncio.timeout(60):
            while len(served.pipedrive.persons) < 3:  # noqa: ASYNC110 (the sandbox serves from a thread of its own)
                await asyncio.sleep(0.01)
        with requests_held(served.pipedrive):
            pid = child_pid(workspace)
            assert pid is not None
            yield task, pid
    finally:
        served.pipedrive.config.latency_ms = 0.0


def assert_each_fan_once(served: ServedCrms) -> None:
    emails = sorted(person.emails[0]["value"] for person in served.pipedrive.persons.values())
    assert emails == sorted(f"fan{n}@example.com" for n in range(40))


def test_full_runs_of_three_crms_run_in_a_child_and_report_here(
    syncing_in_a_child: tuple[ServedCrms, Workspace], caplog: pytest.LogCaptureFixture
) -> None:
    served, workspace = syncing_in_a_child
    told: list[tuple[str, SyncResult | Exception]] = []
    workspace.sync.add_run_listener(lambda integration, outcome: told.append((integration.name, outcome)))
    progress: list[SyncProgress] = []
    caplog.set_level(logging.INFO, logger="crm_desktop")

    async def sync_all() -> list[SyncResult]:
        return await asyncio.gather(*(workspace.sync.sync(name, progress=progress.append)
                                      for name in ("salesforce", "hubspot", "pipedrive")))

    results = asyncio.run(sync_all())

    pid = child_pid(workspace)
    assert pid is not None and pid != os.getpid()
    # The three runs, sent at once before any child ran, share one child.
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("sync process ")] == [
        f"sync process {pid} started for {workspace.paths.data_dir}"]
    for result in results:
        assert result.status is SyncRunStatus.SUCCEEDED, result.message
        assert result.counts["created"] == 40
        assert result.run_id is not None
    assert {run.id for name in ("salesforce", "hubspot", "pipedrive") for run in workspace.sync.runs(name)} == {
        result.run_id for result in results}
    assert served.hubspot.summary()["contacts"] == 40
    assert served.pipedrive.summary()["persons"] == 40
    # Progress reached this process; the listeners (alerts, run metrics) heard each run once, here.
    assert {update.integration for update in progress} == {"salesforce", "hubspot", "pipedrive"}
    assert sorted(name for name, _ in told) == ["hubspot", "pipedrive", "salesforce"]
    # The child's log records were handled by this process's logging.
    from_child = [r for r in caplog.records if r.processName == "crm-desktop-sync"]
    assert any("conversions of hubspot" in r.getMessage() for r in from_child)


def test_a_push_of_many_chosen_records_runs_in_the_child_and_of_a_few_here(
    syncing_in_a_child: tuple[ServedCrms, Workspace], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local API batch of 10,000 contacts is a push of chosen records: on the window's sync worker its objects
    cost the window full collections, as a full run's did. A few records (an event's contact) go at once, here."""
    served, workspace = syncing_in_a_child
    monkeypatch.setattr(sync_service, "PROCESS_PUSH_MIN", 10)
    told: list[str] = []
    workspace.sync.add_run_listener(lambda integration, outcome: told.append(integration.name))
    local = workspace.sync.store.local_by_emails(RecordObject.CONTACT, [f"fan{n}@example.com" for n in range(40)])
    ids = [local[f"fan{n}@example.com"].id for n in range(40)]

    few = asyncio.run(workspace.sync.push_now("hubspot", {RecordObject.CONTACT: ids[:3]}))
    assert few.counts["created"] == 3
    assert child_pid(workspace) is None, "three records went at once, from this process"
    many = asyncio.run(workspace.sync.push_now("hubspot", {RecordObject.CONTACT: ids[3:]}))
    assert many.status is SyncRunStatus.SUCCEEDED, many.message
    assert many.counts["created"] == 37 and many.counts["unchanged"] == 0, "just the records chosen"
    assert child_pid(workspace) is not None
    assert served.hubspot.summary()["contacts"] == 40
    assert told == ["hubspot", "hubspot"]
    assert [run.id for run in workspace.sync.runs("hubspot")] == [many.run_id, few.run_id]


def test_start_returns_the_run_id_the_child_began(syncing_in_a_child: tuple[ServedCrms, Workspace]) -> None:
    _, workspace = syncing_in_a_child

    async def start_and_wait() -> tuple[int, SyncResult]:
        run_id = await workspace.sync.start("hubspot")
        task = workspace.sync._running[workspace.integrations.get("hubspot").id or 0]
        return run_id, await task

    run_id, result = asyncio.run(start_and_wait())
    assert run_id == result.run_id
    assert workspace.sync.runs("hubspot")[0].status is SyncRunStatus.SUCCEEDED


def test_a_refusal_in_the_child_is_raised_here_as_itself(syncing_in_a_child: tuple[ServedCrms, Workspace]) -> None:
    _, workspace = syncing_in_a_child
    integration = workspace.integrations.get("hubspot")
    assert integration.id is not None
    # This process holds the lock (a run of the CLI or of another window would): the child's run is refused.
    assert workspace.sync.store.acquire_lock(integration.id, lock_owner())
    with pytest.raises(SyncAlreadyRunning, match="hubspot"):
        asyncio.run(workspace.sync.sync("hubspot"))
    workspace.sync.store.release_lock(integration.id, lock_owner())
    assert asyncio.run(workspace.sync.sync("hubspot")).counts["created"] == 40


def teammate_keyring(keyring: EphemeralKeyring, path: Path) -> Path:
    """A file keyring holding a copy of ``keyring``'s secrets: a teammate entered the same ones on their desktop."""
    from tests.support.file_keyring import FileKeyring

    copy = FileKeyring(path)
    for (service, account), secret in keyring._entries.items():
        copy.set_password(service, account, secret)
    return path


def test_a_cli_sync_on_another_desktop_is_refused_while_the_child_runs_it(
    syncing_in_a_child: tuple[ServedCrms, Workspace], keyring_of_this_process: EphemeralKeyring, tmp_path: Path
) -> None:
    """Team mode: the window's sync process holds a run of Pipedrive; ``crm-desktop sync pipedrive`` on a
    teammate's desktop (its own data dir, keyring and machine name; the same database) says "already running"
    and exits 1, and every person is sent once."""
    from tests.support.file_keyring import BACKEND_NAME, KEYRING_FILE_ENV

    served, workspace = syncing_in_a_child
    env = {**os.environ, "CRM_DESKTOP_HOME": str(tmp_path / "teammate"), DB_URL_ENV: workspace.paths.database_url,
           MACHINE_NAME_ENV: "teammate", "PYTHON_KEYRING_BACKEND": BACKEND_NAME,
           KEYRING_FILE_ENV: str(teammate_keyring(keyring_of_this_process, tmp_path / "teammate-keyring.json")),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}

    async def cli_sync_meanwhile() -> tuple[subprocess.CompletedProcess[str], int, SyncResult]:
        async with push_underway(served, workspace) as (task, pid):  # it goes on until the teammate's sync ended
            cli = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "crm_desktop", "sync", "pipedrive"], env=env, cwd=REPO_ROOT,
                capture_output=True, text=True, timeout=120, check=False)
            assert not task.done()
        return cli, pid, await task

    cli, pid, result = asyncio.run(cli_sync_meanwhile())
    assert cli.returncode == 1, cli.stderr
    assert f"a sync of 'pipedrive' is already running (on {machine_name()}, process {pid}" in cli.stderr
    assert result.status is SyncRunStatus.SUCCEEDED, result.message
    assert_each_fan_once(served)
    assert [run.id for run in workspace.sync.runs("pipedrive")] == [result.run_id]


def test_a_second_desktops_sync_process_is_refused_while_the_first_ones_runs_it(
    syncing_in_a_child: tuple[ServedCrms, Workspace], keyring_of_this_process: EphemeralKeyring, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two windows on one database, each running its full syncs in a sync process of its own: the second one's
    run of an integration the first one's process is running is refused as already running, and sent nothing."""
    served, workspace = syncing_in_a_child
    monkeypatch.setenv(DB_URL_ENV, workspace.paths.database_url)
    teammate_keys = EphemeralKeyring()
    teammate_keys._entries.update(keyring_of_this_process._entries)
    teammate = Workspace.open(tmp_path / "teammate", vault=Vault(backend=teammate_keys))
    try:
        assert teammate.run_syncs_in_process()

        async def second_sync_meanwhile() -> tuple[int, SyncResult]:
            async with push_underway(served, workspace) as (task, pid):
                with pytest.raises(SyncAlreadyRunning, match=rf"already running \(on .*, process {pid}\b"):
                    await teammate.sync.sync("pipedrive", SyncDirection.PUSH)
                assert not task.done()
            return pid, await task

        pid, result = asyncio.run(second_sync_meanwhile())
        teammate_process = teammate.sync.sync_process
        assert teammate_process is not None and teammate_process.pid not in (None, pid)  # refused in its own child
    finally:
        teammate.close()
    assert result.status is SyncRunStatus.SUCCEEDED, result.message
    assert_each_fan_once(served)
    assert [run.id for run in workspace.sync.runs("pipedrive")] == [result.run_id]


def test_credentials_refreshed_in_the_child_are_kept_in_the_apps_keyring(
    syncing_in_a_child: tuple[ServedCrms, Workspace], keyring_of_this_process: EphemeralKeyring
) -> None:
    _, workspace = syncing_in_a_child
    integration: Integration = workspace.integrations.get("salesforce")
    assert integration.id is not None
    before = dict(keyring_of_this_process._entries)
    asyncio.run(workspace.sync.sync("salesforce"))
    # Salesforce's adapter signs in and saves the session it got: into this process's keyring, the only one.
    account = workspace.vault.account(integration.id)
    entry = (workspace.vault.service, account)
    assert entry in keyring_of_this_process._entries
    assert set(keyring_of_this_process._entries) >= set(before)


def test_cancelling_a_run_stops_it_in_the_child_and_releases_its_lock(
    syncing_in_a_child: tuple[ServedCrms, Workspace]
) -> None:
    served, workspace = syncing_in_a_child
    integration = workspace.integrations.get("pipedrive")
    assert integration.id is not None

    async def cancel_when_pushing() -> None:
        async with push_underway(served, workspace) as (task, _):
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(cancel_when_pushing())
    run = workspace.sync.runs("pipedrive", limit=1)[0]
    assert (run.status, run.message) == (SyncRunStatus.CANCELLED, CANCELLED_MESSAGE)
    assert workspace.sync.store.lock_holder(integration.id) is None
    pushed = served.pipedrive.summary()["persons"]
    assert 0 < pushed < 40
    # The child recorded the cancelled attempt for the health line and the charts, with what its record log holds.
    attempt = workspace.monitor.store.latest_attempt(integration.id)
    assert attempt is not None and (attempt.run_id, attempt.status) == (run.id, SyncRunStatus.CANCELLED)
    assert attempt.contacts_synced == run.created + run.updated
    # The same child takes the next run, which sends what is left and recognises what was sent.
    pid = child_pid(workspace)
    served.pipedrive.config.latency_ms = 0.0
    result = asyncio.run(workspace.sync.sync("pipedrive", SyncDirection.PUSH))
    assert result.status is SyncRunStatus.SUCCEEDED, result.message
    assert child_pid(workspace) == pid
    assert_each_fan_once(served)


def test_a_run_cancelled_while_its_child_starts_keeps_the_child_and_runs_nothing_here(
    syncing_in_a_child: tuple[ServedCrms, Workspace], caplog: pytest.LogCaptureFixture
) -> None:
    """Seen in the window: "Sync now", then Quit at once. The app's tasks were cancelled while the child was being
    started, which was taken for a child that could not start: the run went on in the app's own process (a run
    recorded while quitting, closing held up for seconds), every later run stayed there, and the child, its pipe
    closed under it, printed a BrokenPipeError traceback."""
    served, workspace = syncing_in_a_child
    process = workspace.sync.sync_process
    assert process is not None

    async def cancel_while_starting_then_sync() -> SyncResult:
        run = asyncio.ensure_future(workspace.sync.sync("pipedrive", SyncDirection.PUSH))
        async with asyncio.timeout(30):
            while process._process is None:  # noqa: ASYNC110 (set just before its start thread)
                await asyncio.sleep(0)
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:  # as the app does on its way out
            task.cancel()
        await asyncio.wait(others, timeout=10)
        assert run.cancelled()
        assert "could not start" not in caplog.text
        assert workspace.sync.runs("pipedrive") == []
        assert served.pipedrive.summary()["persons"] == 0
        # The child started all the same is the one the next run goes to.
        assert workspace.sync.sync_process is process
        return await workspace.sync.sync("pipedrive", SyncDirection.PUSH)

    result = asyncio.run(cancel_while_starting_then_sync())
    assert result.status is SyncRunStatus.SUCCEEDED, result.message
    pid = child_pid(workspace)
    assert pid is not None and pid != os.getpid()
    assert_each_fan_once(served)


def test_a_child_started_for_a_run_cancelled_at_once_is_stopped_when_idle(
    syncing_in_a_child: tuple[ServedCrms, Workspace], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, workspace = syncing_in_a_child
    process = workspace.sync.sync_process
    assert process is not None
    monkeypatch.setattr(sync_process, "IDLE_SECONDS", 0.5)

    async def cancel_while_starting_then_wait() -> int:
        run = asyncio.ensure_future(workspace.sync.sync("pipedrive", SyncDirection.PUSH))
        async with asyncio.timeout(30):
            while process._process is None:  # noqa: ASYNC110 (set just before its start thread)
                await asyncio.sleep(0)
        child = process._process
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:  # as the app does on its way out, or a caller giving up
            task.cancel()
        await asyncio.wait(others, timeout=10)
        assert run.cancelled()
        assert child is not None and child.pid is not None  # started all the same
        async with asyncio.timeout(30):
            while child.is_alive():  # noqa: ASYNC110 (a process: nothing to await)
                await asyncio.sleep(0.05)
        return child.pid

    pid = asyncio.run(cancel_while_starting_then_wait())
    assert child_pid(workspace) is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_killed_child_fails_its_run_and_the_next_run_resumes_without_duplicates(
    syncing_in_a_child: tuple[ServedCrms, Workspace]
) -> None:
    served, workspace = syncing_in_a_child

    async def kill_when_pushing() -> None:
        async with push_underway(served, workspace) as (task, pid):
            os.kill(pid, signal.SIGKILL)
            with pytest.raises(SyncProcessError, match="stopped"):
                await task

    asyncio.run(kill_when_pushing())
    result = asyncio.run(workspace.sync.sync("pipedrive", SyncDirection.PUSH))
    assert result.status is SyncRunStatus.SUCCEEDED, result.message
    assert_each_fan_once(served)


def test_closing_the_workspace_mid_run_stops_the_child(syncing_in_a_child: tuple[ServedCrms, Workspace]) -> None:
    served, workspace = syncing_in_a_child

    async def close_when_pushing() -> int:
        async with push_underway(served, workspace) as (task, pid):
            process = workspace.sync.sync_process
            workspace.sync.close()
            assert process is not None and process.pid is None  # the child ended
            task.cancel()
            with pytest.raises((asyncio.CancelledError, SyncProcessError)):
                await task
        return pid

    pid = asyncio.run(close_when_pushing())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    run = workspace.sync.runs("pipedrive", limit=1)[0]
    assert run.status is not SyncRunStatus.RUNNING


def test_a_workspace_on_an_in_process_transport_keeps_its_runs_here(hubspot_marketing: Workspace) -> None:
    assert not hubspot_marketing.run_syncs_in_process()
    assert hubspot_marketing.sync.sync_process is None


def test_an_idle_child_is_stopped_and_the_next_run_starts_another(
    syncing_in_a_child: tuple[ServedCrms, Workspace], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, workspace = syncing_in_a_child
    monkeypatch.setattr(sync_process, "IDLE_SECONDS", 0.5)

    async def two_runs_apart() -> tuple[int | None, int | None]:
        await workspace.sync.sync("hubspot")
        first = child_pid(workspace)
        async with asyncio.timeout(30):  # stopped while idle: its memory went back to the system
            while child_pid(workspace) is not None:  # noqa: ASYNC110 (stopped by a timer of this loop)
                await asyncio.sleep(0.05)
        await workspace.sync.sync("salesforce")
        return first, child_pid(workspace)

    first, second = asyncio.run(two_runs_apart())
    assert first is not None and second is not None and first != second
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)
    assert served.salesforce.summary()["Contact"] == 40


def test_a_child_that_cannot_open_the_workspace_leaves_the_runs_in_the_app(
    syncing_in_a_child: tuple[ServedCrms, Workspace], keyring_of_this_process: EphemeralKeyring,
    caplog: pytest.LogCaptureFixture,
) -> None:
    served, workspace = syncing_in_a_child
    unusable = SyncProcess(workspace.paths.data_dir, f"postgresql+psycopg://nobody:{PASSWORD}@127.0.0.1:1/nothing",
                           relay_to(keyring_of_this_process))
    workspace.sync.run_in_process(unusable)

    result = asyncio.run(workspace.sync.sync("hubspot"))

    assert result.status is SyncRunStatus.SUCCEEDED, result.message
    assert served.hubspot.summary()["contacts"] == 40
    assert workspace.sync.sync_process is None
    assert any("could not open the workspace" in r.getMessage() and "app's own process" in r.getMessage()
               for r in caplog.records)
    assert_password_never_said(caplog.records)


#: The password of the database URLs below; it must never show in a log record or a message.
PASSWORD = "s3cret-of-the-team-db"


def assert_password_never_said(records: list[logging.LogRecord], *messages: str) -> None:
    said = [logging.Formatter().format(record) for record in records] + list(messages)
    assert said and not [text for text in said if PASSWORD in text]


@pytest.mark.skipif(not os.environ.get(DB_URL_ENV, "").startswith("postgresql"),
                    reason="a database URL with a password: the PostgreSQL pass (tools/run-tests.sh)")
def test_a_database_password_reaches_the_child_but_never_its_command_line_or_the_logs(
    tmp_path: Path, keyring_of_this_process: EphemeralKeyring, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A team database's URL with its password: the child opens the store with it (sent through the spawn pipe),
    yet it shows in no log record of either process, no error of a run, and not in the child's command line."""
    from sqlalchemy import make_url

    url = make_url(os.environ[DB_URL_ENV]).set(password=PASSWORD).render_as_string(hide_password=False)
    monkeypatch.setenv(DB_URL_ENV, url)
    caplog.set_level(logging.DEBUG, logger="crm_desktop")
    with workspace_syncing_in_a_child(tmp_path / "workspace", keyring_of_this_process, fans=5) as (served, workspace):
        result = asyncio.run(workspace.sync.sync("hubspot"))
        pid = child_pid(workspace)
        assert pid is not None
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        integration = workspace.integrations.get("salesforce")
        assert integration.id is not None and workspace.sync.store.acquire_lock(integration.id, lock_owner())
        with pytest.raises(SyncAlreadyRunning) as refused:
            asyncio.run(workspace.sync.sync("salesforce"))
    assert result.status is SyncRunStatus.SUCCEEDED, result.message
    assert served.hubspot.summary()["contacts"] == 5
    assert PASSWORD not in command_line
    assert any(r.processName == "crm-desktop-sync" for r in caplog.records)
    assert_password_never_said(caplog.records, str(refused.value), result.message or "")


@pytest.mark.parametrize("error", [
    AuthError("the CRM refused the token", status=401),
    CrmAccountChangedError("the key reaches portal 2, the links are in portal 1"),
    RateLimitError("daily limit reached", retry_after=30.0),
    VaultLockedError("unlock your login keyring"),
    SyncAlreadyRunning("a sync of 'hubspot' is already running"),
], ids=lambda error: type(error).__name__)
def test_what_a_run_raises_crosses_the_pipe_as_itself(error: Exception) -> None:
    """What the app decides by (reconnect, wait, already running) is the error's class and its fields."""
    crossed = sync_process._portable(error)
    assert type(crossed) is type(error)
    assert str(crossed) == str(error) and vars(crossed) == vars(error)


def test_an_error_that_cannot_cross_is_said_by_its_class_and_text() -> None:
    class Odd(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(f"{a} and {b}")

    crossed = sync_process._portable(Odd(1, 2))
    assert isinstance(crossed, SyncProcessError)
    assert str(crossed) == "Odd: 1 and 2"
