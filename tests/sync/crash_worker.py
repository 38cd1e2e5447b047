"""The crash drill: worker processes pushing contacts to a loopback sandbox CRM, killed with SIGKILL and restarted.

``python -m tests.sync.crash_worker DATA_DIR [--integration NAME] [--batch-size N]`` pushes once: it opens the
workspace in DATA_DIR (credentials from the keyring named by ``PYTHON_KEYRING_BACKEND``, in tests the file keyring
of :mod:`tests.support.file_keyring`), prints ``ready`` just before the sync run starts, ``progress`` lines, and a
final ``result {json}`` line. Exit codes: 0 done, 75 another run holds the lock.

With ``--fork-server`` the same command becomes a launcher that loads the app's modules once and then, per
``go NUMBER OUTFILE`` line on stdin, forks a worker that pushes once (its output in OUTFILE), prints
``started NUMBER PID``, reaps it and prints ``exited NUMBER CODE``. Each worker is its own process with its own
pid (the sync lock's owner), killed for real with SIGKILL; the fork only spares the drill a 2-4 s interpreter
start per kill.

:func:`run_drill` is the driver the crash-drill test and ``bench/crash_drill.py`` share: it serves a sandbox on real
loopback from the calling process (so it outlives every worker), imports the contacts once, then starts workers,
kills each at a seeded random moment, restarts, finally lets one finish, and checks what the CRM holds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Exit code of a worker that found another run holding the integration's lock.
EXIT_LOCKED = 75
#: The repository root (workers run there so ``tests.*`` and the keyring backend import).
REPO_ROOT = Path(__file__).resolve().parents[2]
INTEGRATION_NAME = "drill"
#: The local fields the two-way drill compares before a run and after its undo.
SNAPSHOT_FIELDS = ("first_name", "last_name", "phone")
#: The same fields as the audit (and the mappings) name them.
AUDITED_FIELDS = ("firstName", "lastName", "phone")
#: What the fork server loads once, so a forked worker starts at once.
WARM_MODULES = (
    "crm_desktop.app.workspace",
    "crm_desktop.sync.engine",
    "crm_desktop.providers.hubspot",
    "crm_desktop.providers.salesforce",
    "crm_desktop.providers.pipedrive",
)


# -- the worker process ------------------------------------------------------------------------------------------
def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def push_once(data_dir: Path, integration_name: str, batch_size: int, direction: str = "push") -> int:
    """Sync the workspace's contacts through the engine once (``push`` or ``both`` ways); the process exit code."""
    from crm_desktop.app.workspace import Workspace
    from crm_desktop.domain.models import SyncDirection
    from crm_desktop.domain.outcomes import RecordObject
    from crm_desktop.store.models import SyncTrigger
    from crm_desktop.sync.engine import SyncAlreadyRunning, SyncEngine, SyncProgress
    from crm_desktop.sync.mapping import run_mappings

    workspace = Workspace.open(data_dir)
    try:
        integration = workspace.integrations.get(integration_name)
        adapter = workspace.crm.adapter_for(integration)
        mappings = workspace.sync.mappings(integration, RecordObject.CONTACT)
        try:
            fields = await adapter.list_fields(RecordObject.CONTACT)
            mappings = run_mappings(integration.provider, RecordObject.CONTACT, mappings, fields)
        except BaseException:
            await adapter.aclose()
            raise

        def progress(update: SyncProgress) -> None:
            _say(f"progress {update.phase} {update.done}")

        engine = SyncEngine(
            workspace.sync.store,
            integration,
            adapter,
            {RecordObject.CONTACT: mappings},
            batch_size=batch_size,
            progress=progress,
        )
        _say("ready")
        try:
            result = await engine.run(SyncDirection(direction), SyncTrigger.MANUAL, objects=(RecordObject.CONTACT,))
        except SyncAlreadyRunning:
            await adapter.aclose()
            _say("locked")
            return EXIT_LOCKED
        summary = {
            "runId": result.run_id,
            "status": result.status.value,
            "counts": result.counts,
            "apiCalls": result.api_calls,
            "failures": [[f.email, f.category.value, f.message] for f in result.failures[:20]],
            "message": result.message,
            "seconds": round(result.duration, 2),
        }
        _say("result " + json.dumps(summary))
        return 0
    finally:
        workspace.close()


def serve_forks(data_dir: Path, integration_name: str, batch_size: int, direction: str = "push") -> int:
    """The ``--fork-server`` launcher: fork one pushing worker per ``go NUMBER OUTFILE`` line, one at a time."""
    for module in WARM_MODULES:
        importlib.import_module(module)  # the slow part of a start, done once
    _say("warm")
    for line in sys.stdin:
        parts = line.rstrip("\n").split(" ", 2)
        if len(parts) != 3 or parts[0] != "go":
            continue
        number, out_path = parts[1], parts[2]
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                handle = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(handle, 1)
                os.dup2(handle, 2)
                os.close(handle)
                code = asyncio.run(push_once(data_dir, integration_name, batch_size, direction))
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _say(f"started {number} {pid}")
        _, status = os.waitpid(pid, 0)
        _say(f"exited {number} {os.waitstatus_to_exitcode(status)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="crash-drill worker: push a workspace's contacts once")
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--integration", default=INTEGRATION_NAME)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--fork-server", action="store_true", help="fork one worker per 'go N OUTFILE' on stdin")
    parser.add_argument("--direction", choices=("push", "both"), default="push", help="push only or two-way")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.fork_server:
        return serve_forks(args.data_dir, args.integration, args.batch_size, args.direction)
    return asyncio.run(push_once(args.data_dir, args.integration, args.batch_size, args.direction))


# -- the driver ----------------------------------------------------------------------------------------------------
@dataclass
class DrillSettings:
    """One crash drill.

    Attributes:
        provider: ``hubspot``, ``salesforce`` or ``pipedrive``.
        contacts: local contacts to push.
        min_kills: kills before the worker may finish.
        max_kills: kills at most (past ``min_kills`` the drill keeps killing until both crash windows were hit).
        batch_size: records per push batch (small batches: more moments to die in).
        latency_ms: the sandbox's delay per request, so kills land while a batch is on the wire.
        batches_per_kill: each run is killed after 0..N-1 finished batches plus a random part of the next one
            (counted in batches rather than seconds, so a faster machine does not push everything before the kills).
        seed: seeds the kill moments and the generated people.
        finish_timeout: seconds the last, uninterrupted run may take.
        two_way: sync both ways: the CRM starts with contacts of its own (``crm_only_share`` of the people, to
            pull) and ``shared_share`` more that the local store also holds with another phone (changed on both
            sides); the rest are local only (to push). The drill then also undoes the finishing run and compares
            both sides with what they held before it.
        crm_only_share: share of the people only the CRM holds at the start (two-way only).
        shared_share: share of the people both sides hold at the start (two-way only).
        edits_per_run: two-way only: before each run, this many linked contacts get a new first name in the CRM
            (a salesperson's edit, to pull) and as many others locally (to push), so every run, the finishing
            one too, updates both sides.
    """

    provider: str
    contacts: int = 2000
    min_kills: int = 10
    max_kills: int = 30
    batch_size: int = 50
    latency_ms: float = 20.0
    batches_per_kill: int = 3
    seed: int = 20240605
    finish_timeout: float = 90.0
    two_way: bool = False
    crm_only_share: float = 0.2
    shared_share: float = 0.2
    edits_per_run: int = 5


@dataclass
class Kill:
    """What one kill left behind.

    Attributes:
        delay: seconds between the worker's ``ready`` (its run about to start) and the SIGKILL.
        batches: batches the worker reported done before dying.
        pending_outbox: writes recorded as intended and not marked done (killed inside the outbox window).
        landed_unlinked: contacts the CRM holds that the local store had not linked (the write landed and the
            process died before recording it: the window where a resend could duplicate).
        linked: local contacts linked after the kill.
    """

    delay: float
    batches: int
    pending_outbox: int
    landed_unlinked: int
    linked: int


@dataclass
class DrillReport:
    """What a drill did and found.

    Attributes:
        provider: the CRM.
        contacts: local contacts pushed.
        kills: every kill, in order.
        workers: worker processes started (kills + lock refusals + the finishing run).
        final: the finishing run's result line.
        crm_records: contact records the CRM holds.
        duplicates: emails the CRM holds more than once, with their count.
        missing: local emails the CRM lacks.
        unexpected: CRM emails no local contact has.
        unlinked: local contacts without a link.
        wrong_links: local contacts linked to another CRM id than the CRM's record of their email.
        pending_outbox: writes still pending at the end.
        local_contacts: local contacts at the end.
        local_missing: emails of the drill's people the local store lacks (a pulled record lost).
        local_duplicates: local contacts more than one per email of the drill's people.
        undo: what undoing the finishing run restored (two-way only): ``checked`` records compared on each side,
            ``local_mismatches`` / ``crm_mismatches`` (email: before, after undo), ``created_kept`` records the
            finishing run created (an undo restores values; it deletes nothing), ``kept`` the undo's own notes.
        running_runs: runs still marked running at the end (killed runs nobody closed).
        finish_seconds: wall time of the finishing run, from ``go`` to exit.
        seconds: wall time of the drill.
    """

    provider: str
    contacts: int
    kills: list[Kill] = field(default_factory=list)
    workers: int = 0
    final: dict[str, Any] = field(default_factory=dict)
    crm_records: int = 0
    duplicates: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    unlinked: list[str] = field(default_factory=list)
    wrong_links: list[str] = field(default_factory=list)
    pending_outbox: int = 0
    running_runs: int = 0
    local_contacts: int = 0
    local_missing: list[str] = field(default_factory=list)
    local_duplicates: int = 0
    undo: dict[str, Any] = field(default_factory=dict)
    finish_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def outbox_kills(self) -> int:
        """Kills that left intended writes pending."""
        return sum(1 for k in self.kills if k.pending_outbox)

    @property
    def ambiguous_kills(self) -> int:
        """Kills after a write landed in the CRM and before the local store recorded it."""
        return sum(1 for k in self.kills if k.landed_unlinked)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["outbox_kills"] = self.outbox_kills
        data["ambiguous_kills"] = self.ambiguous_kills
        return data


def crm_contacts(sandbox: Any) -> list[tuple[str, str]]:
    """(CRM id, lower-cased email) of every live contact a sandbox holds, read from its state (duplicates kept)."""
    if sandbox.provider == "hubspot":
        records = list(sandbox._records["contacts"].values())
        return [(r.id, str(r.properties.get("email") or "").lower()) for r in records if not r.archived]
    if sandbox.provider == "salesforce":
        rows = list(sandbox.records["Contact"].items())
        return [(record_id, str(row.get("Email") or "").lower()) for record_id, row in rows]
    found = []
    for person in list(sandbox.persons.values()):
        primary = next((e for e in person.emails if e.get("primary")), person.emails[0] if person.emails else {})
        found.append((str(person.id), str(primary.get("value") or "").lower()))
    return found


def crm_values(sandbox: Any) -> dict[str, tuple[str, ...]]:
    """Lower-cased email -> (first name, last name, phone) of every live contact a sandbox holds (first per email).

    A Pipedrive person has one name; it is split at its first space, as Pipedrive's ``first_name`` and
    ``last_name`` are (the drill's first names have no space)."""
    values: dict[str, tuple[str, ...]] = {}
    if sandbox.provider == "hubspot":
        for r in list(sandbox._records["contacts"].values()):
            if not r.archived:
                props = r.properties
                email = str(props.get("email") or "").lower()
                values.setdefault(email, tuple(str(props.get(k) or "") for k in ("firstname", "lastname", "phone")))
    elif sandbox.provider == "salesforce":
        for row in list(sandbox.records["Contact"].values()):
            email = str(row.get("Email") or "").lower()
            values.setdefault(email, tuple(str(row.get(k) or "") for k in ("FirstName", "LastName", "Phone")))
    else:
        for person in list(sandbox.persons.values()):
            primary = next((e for e in person.emails if e.get("primary")), person.emails[0] if person.emails else {})
            phone = next((p for p in person.phones if p.get("primary")), person.phones[0] if person.phones else {})
            email = str(primary.get("value") or "").lower()
            first, _, last = person.name.partition(" ")
            values.setdefault(email, (first, last, str(phone.get("value") or "")))
    return values


@dataclass(frozen=True)
class Edit:
    """A drill's edit of one contact on one ``side`` (``crm`` or ``local``), with both sides' values before it."""

    side: str
    local: tuple[str, ...]
    crm: tuple[str, ...]


#: First names the drill's edits give (letters only: every CRM takes them).
EDIT_NAMES = ("Alva", "Bruno", "Cleo", "Dara", "Emil", "Fenna", "Goran", "Hedda", "Ivo", "Juno")


def _edit_in_crm(sandbox: Any, crm_id: str, first_name: str, last_name: str) -> None:
    """A salesperson renames a contact in the CRM's UI."""
    if sandbox.provider == "hubspot":
        sandbox.edit_record("contacts", crm_id, {"firstname": first_name})
    elif sandbox.provider == "salesforce":
        sandbox.edit_record("Contact", crm_id, {"FirstName": first_name})
    else:
        sandbox.edit_record("persons", crm_id, {"name": f"{first_name} {last_name}"})


def _new_sandbox(provider: str, latency_ms: float, seed: int, crm_contacts: int = 0) -> Any:
    from crm_desktop.sandbox.core import SandboxConfig
    from crm_desktop.sandbox.server import make_sandbox

    # ``crm_contacts``: the CRM starts with the first ones of ``generate_people(n, seed)`` (the drill's own people).
    config = SandboxConfig(contacts=crm_contacts, latency_ms=latency_ms, seed=seed)
    if provider == "salesforce":
        from crm_desktop.sandbox.salesforce import SalesforceSandbox

        # Duplicate rules off: a create sent twice must show up as a duplicate instead of being refused.
        return SalesforceSandbox(config, duplicate_rules=False)
    if provider == "pipedrive":
        from crm_desktop.sandbox.pipedrive import PipedriveSandbox

        # The top plan's burst limit (120 requests per 2 s): Pipedrive needs a search and a create per person.
        return PipedriveSandbox(config, burst_limit=120, daily_token_budget=100_000_000)
    return make_sandbox(provider, config)


def _wait_for_quiet(sandbox: Any, timeout: float = 5.0) -> None:
    """Wait until the sandbox has answered every request a dead worker left in flight."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(entry.status for entry in list(sandbox.requests)[-500:]):
            return
        time.sleep(0.01)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


class _Launcher:
    """The ``--fork-server`` process and the workers it forks, one at a time."""

    def __init__(self, command: list[str], env: dict[str, str], work_dir: Path) -> None:
        self.work_dir = work_dir
        self.out_file = work_dir / "launcher.out"
        self.err_file = work_dir / "launcher.err"
        with self.out_file.open("wb") as out, self.err_file.open("wb") as err:
            self.process = subprocess.Popen(
                [*command, "--fork-server"], cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=out, stderr=err
            )
        self.pids: dict[int, int] = {}

    def _line(self, prefix: str) -> str | None:
        return next((line for line in _read_lines(self.out_file) if line.startswith(prefix)), None)

    def _await(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (line := self._line(prefix)) is None:
            if self.process.poll() is not None:
                raise RuntimeError(f"the drill's launcher died:\n{self.err_file.read_text(encoding='utf-8')[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the drill's launcher did not print {prefix.strip()!r} within {timeout:.0f} s")
            time.sleep(0.002)
        return line

    def wait_warm(self, timeout: float = 120.0) -> None:
        self._await("warm", timeout)

    def output(self, number: int) -> Path:
        return self.work_dir / f"worker-{number}.out"

    def start(self, number: int) -> int:
        """Fork worker ``number``; its pid."""
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(f"go {number} {self.output(number)}\n".encode())
        stdin.flush()
        pid = int(self._await(f"started {number} ", 30).split()[2])
        self.pids[number] = pid
        return pid

    def exit_code(self, number: int) -> int | None:
        """The worker's exit code once the launcher reaped it (``-9``: killed)."""
        line = self._line(f"exited {number} ")
        return int(line.split()[2]) if line else None

    def wait_exit(self, number: int, timeout: float) -> int:
        return int(self._await(f"exited {number} ", timeout).split()[2])

    def worker_lines(self, number: int) -> list[str]:
        return _read_lines(self.output(number))

    def wait_ready(self, number: int, timeout: float = 60.0) -> bool:
        """Whether worker ``number`` printed ``ready`` (``False``: it exited first)."""
        deadline = time.monotonic() + timeout
        while "ready" not in self.worker_lines(number):
            if self.exit_code(number) is not None:
                return "ready" in self.worker_lines(number)
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {number} did not get ready within {timeout:.0f} s")
            time.sleep(0.002)
        return True

    def kill(self, number: int) -> int:
        """SIGKILL worker ``number`` and wait until the launcher reaped it (a zombie would look alive to the lock)."""
        if self.exit_code(number) is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pids[number], signal.SIGKILL)
        return self.wait_exit(number, 30)

    def close(self) -> None:
        """Kill a worker left running (only when the drill itself failed), then end the launcher."""
        for number, pid in self.pids.items():
            if self.exit_code(number) is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def errors(self, number: int) -> str:
        return "\n".join(self.worker_lines(number))[-3000:]


def _undo_and_compare(
    workspace: Any,
    sandbox: Any,
    run_id: int,
    before: tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]],
    edits: dict[str, Edit],
    written: dict[str, dict[int, str]],
    local_values: Callable[[], dict[str, tuple[str, ...]]],
    crm_history: list[dict[str, tuple[str, ...]]],
) -> dict[str, Any]:
    """Undo run ``run_id`` as ``runs undo`` does, then compare both sides with what they held before the run.

    ``runs undo`` gives each field the run changed its value from before the run on both sides: a field the run
    pulled gets the local value from before it, a field the run pushed the CRM's (so a local edit the run pushed is
    undone on both sides too, and a phone the sides disagreed on before the run ends as the CRM had it). ``written``
    (email -> index in :data:`SNAPSHOT_FIELDS` -> ``local`` or ``crm``, from the run's audit; the local side first,
    as the undo takes it) says which side's value each changed field must hold; every other field is compared with
    what its own side held. A CRM write the audit missed, or audited with a wrong old value, shows as a mismatch.
    A write a killed run landed without recording it belongs to the run that resumes and records it: its undo
    takes that write back too, so a pushed field's value from before the run is read from ``crm_history`` (the
    CRM's values before each run, oldest first): the last value before the one the run left. A record the run
    created on one side is kept there by design and not compared.
    """
    after_run = local_values(), crm_values(sandbox)
    from crm_desktop.store.models import SyncTrigger

    report = asyncio.run(workspace.sync.undo(run_id, SyncTrigger.CLI))
    _wait_for_quiet(sandbox)
    local_after, crm_after = local_values(), crm_values(sandbox)
    local_before, crm_before = before

    def crm_before_write(email: str, index: int) -> str | None:
        left = after_run[1].get(email)
        for snapshot in reversed(crm_history):
            held = snapshot.get(email)
            if held is None:
                return None  # created by the run, or by a killed run whose write this run resumed
            if left is None or held[index] != left[index]:
                return held[index]
        return left[index] if left else None

    def expected(email: str, own: tuple[str, ...]) -> tuple[str, ...]:
        values = list(own)
        for index, side in written.get(email, {}).items():
            restored = local_before[email][index] if side == "local" and email in local_before else (
                crm_before_write(email, index) if side == "crm" else None)
            if restored is not None:
                values[index] = restored
        return tuple(values)

    local_mismatches: dict[str, list[Any]] = {
        e: [want, local_after.get(e)] for e, v in local_before.items()
        if local_after.get(e) != (want := expected(e, v))
    }
    crm_mismatches: dict[str, list[Any]] = {
        e: [want, crm_after.get(e)] for e, v in crm_before.items()
        if crm_after.get(e) != (want := expected(e, v))
    }
    for mismatches in (local_mismatches, crm_mismatches):
        for email, values in mismatches.items():
            values.append({"before the run": [local_before.get(email), crm_before.get(email)],
                           "after the run": [after_run[0].get(email), after_run[1].get(email)],
                           "written by the run": written.get(email, {})})
            if email in edits:
                values.append(f"edited on the {edits[email].side} side")
    created = (set(local_after) - set(local_before)) | (set(crm_after) - set(crm_before))
    return {
        "run": run_id,
        "checked": {"local": len(local_before), "crm": len(crm_before)},
        "restored": {"local": report.restored_local, "crm": report.restored_crm, "aligned": report.aligned_crm},
        "local_mismatches": dict(list(local_mismatches.items())[:20]),
        "local_mismatch_count": len(local_mismatches),
        "crm_mismatches": dict(list(crm_mismatches.items())[:20]),
        "crm_mismatch_count": len(crm_mismatches),
        "created_kept": len(created),
        "edits_carried": sum(1 for email in edits if 0 in written.get(email, {})),
        "kept": report.kept[:20],
    }


def run_drill(
    settings: DrillSettings, work_dir: Path, *, echo: Callable[[str], None] | None = None
) -> DrillReport:
    """Serve a sandbox, push ``settings.contacts`` contacts through killed and restarted workers, then check."""
    from crm_desktop.app.workspace import Workspace
    from crm_desktop.domain.models import Contact, Integration, Provider
    from crm_desktop.domain.outcomes import RecordObject
    from crm_desktop.sandbox.data import generate_people
    from crm_desktop.sandbox.server import SandboxServer
    from crm_desktop.store.database import Database
    from crm_desktop.store.models import SyncRunStatus
    from crm_desktop.store.repositories import ContactStore
    from crm_desktop.store.sync_store import SyncStore
    from crm_desktop.vault import Vault
    from tests.support.file_keyring import BACKEND_NAME, KEYRING_FILE_ENV, FileKeyring

    started = time.monotonic()
    say = echo or (lambda _line: None)
    rng = random.Random(settings.seed)
    data_dir = work_dir / "workspace"
    keyring_file = work_dir / "keyring.json"
    report = DrillReport(settings.provider, settings.contacts)
    provider = Provider(settings.provider)
    people = generate_people(settings.contacts, settings.seed)
    crm_only = round(settings.contacts * settings.crm_only_share) if settings.two_way else 0
    shared = round(settings.contacts * settings.shared_share) if settings.two_way else 0
    sandbox = _new_sandbox(settings.provider, settings.latency_ms, settings.seed, crm_only + shared)
    all_emails = [p.email.lower() for p in people]
    at_start_in_crm = set(all_emails[: crm_only + shared])
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": BACKEND_NAME, KEYRING_FILE_ENV: str(keyring_file)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("CRM_DESKTOP_DB_URL", None)
    command = [
        sys.executable, "-m", "tests.sync.crash_worker", str(data_dir),
        "--integration", INTEGRATION_NAME, "--batch-size", str(settings.batch_size),
        "--direction", "both" if settings.two_way else "push",
    ]
    # Started first: it loads the app's modules while the sandbox and the contacts are set up.
    launcher = _Launcher(command, env, work_dir)
    try:
        with SandboxServer([sandbox]):
            workspace = Workspace.open(data_dir, vault=Vault(FileKeyring(keyring_file)))
            try:
                credentials = sandbox.credentials()
                if provider is Provider.PIPEDRIVE:
                    credentials = {"apiToken": credentials["apiToken"]}
                integration = workspace.integrations.add(
                    Integration(
                        provider=provider,
                        name=INTEGRATION_NAME,
                        base_url=sandbox.base_url,
                        domain="sandbox" if provider is Provider.PIPEDRIVE else None,
                    ),
                    credentials,
                )
                workspace.contacts.save_many(
                    Contact(
                        email=p.email,
                        first_name=p.first_name,
                        last_name=p.last_name,
                        company=p.company,
                        # Shared people: the local side holds another phone than the CRM (another person's).
                        phone=people[(i + 1) % len(people)].phone if i < crm_only + shared else p.phone,
                        social_profiles=p.social_profiles,
                    )
                    for i, p in enumerate(people)
                    if i >= crm_only
                )
                database_url = workspace.paths.database_url
            finally:
                workspace.close()
            assert integration.id is not None
            integration_id = integration.id
            database = Database(database_url)
            store = SyncStore(database)
            try:
                def local_values() -> dict[str, tuple[str, ...]]:
                    found = store.local_by_emails(RecordObject.CONTACT, [p.email for p in people])
                    return {
                        email.lower(): tuple(str(getattr(r.record, name, None) or "") for name in SNAPSHOT_FIELDS)
                        for email, r in found.items()
                    }

                def local_ids() -> dict[str, int]:
                    found = store.local_by_emails(RecordObject.CONTACT, [p.email for p in people])
                    return {email.lower(): record.id for email, record in found.items()}

                ids_by_email = local_ids()

                def linked_emails() -> dict[str, str]:
                    if settings.two_way:  # pulled contacts get local ids as the drill goes
                        ids_by_email.update(local_ids())
                    links = store.links_for_local(integration_id, RecordObject.CONTACT, list(ids_by_email.values()))
                    return {email: links[i].crm_id for email, i in ids_by_email.items() if i in links}

                before_final: tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]] = ({}, {})
                crm_history: list[dict[str, tuple[str, ...]]] = []  # the CRM's values before each run
                contact_store = ContactStore(database)
                edited: set[str] = set()  # each contact is edited once, on one side: no edit meets another

                def edit_both_sides() -> None:
                    """Edit some linked contacts in the CRM and others locally; keep both sides' values before."""
                    linked = linked_emails()
                    candidates = sorted(set(linked) - edited)
                    chosen = rng.sample(candidates, min(len(candidates), 2 * settings.edits_per_run))
                    edited.update(chosen)
                    crm_side, local_side = chosen[::2], chosen[1::2]
                    before = crm_values(sandbox)
                    local_before = local_values()
                    for email in crm_side:
                        current = contact_store.find(email)
                        last_name = current.last_name if current and current.last_name else ""
                        _edit_in_crm(sandbox, linked[email], rng.choice(EDIT_NAMES), last_name)
                    for email in local_side:
                        current = contact_store.find(email)
                        if current is not None:
                            contact_store.save(current.model_copy(update={"first_name": rng.choice(EDIT_NAMES)}))
                    for side, emails in (("crm", crm_side), ("local", local_side)):
                        for email in emails:
                            if email in before and email in local_before:
                                edits[email] = Edit(side, local_before[email], before[email])

                edits: dict[str, Edit] = {}

                def more_kills() -> bool:
                    if len(report.kills) < settings.min_kills:
                        return True
                    both_windows = report.outbox_kills > 0 and report.ambiguous_kills > 0
                    return not both_windows and len(report.kills) < settings.max_kills

                batch_seconds: list[float] = []  # observed time between two finished batches

                def wait_for_kill_moment(number: int) -> float:
                    """Wait for a seeded moment: some finished batches plus part of the next; seconds since ready."""
                    target, fraction = rng.randrange(settings.batches_per_kill), rng.random()
                    ready_at = last_at = time.monotonic()
                    seen = 0
                    while seen < target and launcher.exit_code(number) is None:
                        count = sum(1 for line in launcher.worker_lines(number) if line.startswith("progress"))
                        now = time.monotonic()
                        if count > seen:
                            if seen:
                                batch_seconds.append((now - last_at) / (count - seen))
                            seen, last_at = count, now
                        time.sleep(0.002)
                    recent = sorted(batch_seconds[-20:])
                    estimate = recent[len(recent) // 2] if recent else 0.3
                    until = time.monotonic() + fraction * estimate
                    while launcher.exit_code(number) is None and time.monotonic() < until:
                        time.sleep(0.002)
                    return time.monotonic() - ready_at

                launcher.wait_warm()
                while True:
                    report.workers += 1
                    number = report.workers
                    if settings.two_way:  # both sides as the next run finds them, for the undo check
                        edit_both_sides()
                        before_final = (local_values(), crm_values(sandbox))
                        crm_history.append(before_final[1])
                    started_at = time.monotonic()
                    launcher.start(number)
                    if launcher.wait_ready(number) and more_kills():
                        delay = wait_for_kill_moment(number)
                        if launcher.exit_code(number) is None:
                            launcher.kill(number)
                            _wait_for_quiet(sandbox)
                            linked = linked_emails()
                            kill = Kill(
                                delay=round(delay, 3),
                                batches=sum(1 for line in launcher.worker_lines(number) if line.startswith("progress")),
                                pending_outbox=len(store.pending_outbox(integration_id, RecordObject.CONTACT)),
                                landed_unlinked=len(
                                    {email for _, email in crm_contacts(sandbox)} - set(linked) - at_start_in_crm
                                ),
                                linked=len(linked),
                            )
                            report.kills.append(kill)
                            say(f"kill {len(report.kills):>2}: {asdict(kill)}")
                            continue
                    code = launcher.wait_exit(number, settings.finish_timeout)
                    if code == EXIT_LOCKED:
                        say(f"worker {number}: the lock was still held; starting another")
                        continue
                    if code != 0:
                        raise RuntimeError(f"worker {number} exited with {code}:\n{launcher.errors(number)}")
                    lines = launcher.worker_lines(number)
                    result = next((line for line in reversed(lines) if line.startswith("result ")), None)
                    if result is None:
                        raise RuntimeError(f"worker {number} printed no result:\n{launcher.errors(number)}")
                    # The finishing run, or one that completed the push before its kill was due.
                    report.final = json.loads(result.removeprefix("result "))
                    report.finish_seconds = round(time.monotonic() - started_at, 1)
                    break
                _wait_for_quiet(sandbox)
                records = crm_contacts(sandbox)
                counts = Counter(email for _, email in records)
                crm_id_of = {email: crm_id for crm_id, email in records}
                linked = linked_emails()
                report.crm_records = len(records)
                report.duplicates = {email: n for email, n in counts.items() if n > 1}
                report.missing = sorted(set(all_emails) - set(counts))
                report.unexpected = sorted(set(counts) - set(all_emails))
                report.unlinked = sorted(set(all_emails) - set(linked))
                report.wrong_links = sorted(email for email, crm_id in linked.items() if crm_id_of.get(email) != crm_id)
                report.pending_outbox = len(store.pending_outbox(integration_id, RecordObject.CONTACT))
                report.running_runs = sum(
                    1 for run in store.list_runs(integration_id, limit=1000) if run.status is SyncRunStatus.RUNNING
                )
                report.local_missing = sorted(set(all_emails) - set(local_ids()))
                workspace = Workspace.open(data_dir, vault=Vault(FileKeyring(keyring_file)))
                try:
                    report.local_contacts = workspace.contacts.count()
                    report.local_duplicates = report.local_contacts - (len(all_emails) - len(report.local_missing))
                    if settings.two_way and report.final.get("runId"):
                        run_id = int(report.final["runId"])
                        # Per contact (the audit's entity is the local id), the compared fields the run changed and
                        # the side whose value from before the run the undo puts back on both.
                        email_of = {str(i): e for e, i in local_ids().items()}
                        written: dict[str, dict[int, str]] = {}
                        for row in store.iter_audit_for_run(run_id):
                            email = email_of.get(row.entity_id)
                            if email is None or row.field not in AUDITED_FIELDS:
                                continue
                            sides = written.setdefault(email, {})
                            index = AUDITED_FIELDS.index(row.field)
                            if sides.get(index) != "local":
                                sides[index] = row.side
                        report.undo = _undo_and_compare(workspace, sandbox, run_id, before_final, edits, written,
                                                        local_values, crm_history)
                finally:
                    workspace.close()
            finally:
                database.close()
    finally:
        launcher.close()
    report.seconds = round(time.monotonic() - started, 1)
    return report


if __name__ == "__main__":
    raise SystemExit(main())
