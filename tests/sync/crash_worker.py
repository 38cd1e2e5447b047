"""The crash drill: a worker process pushing contacts to a loopback sandbox CRM, killed with SIGKILL and restarted.

Run as ``python -m tests.sync.crash_worker DATA_DIR --integration NAME [--batch-size N]``: it opens the workspace
in DATA_DIR (credentials from the keyring named by ``PYTHON_KEYRING_BACKEND``, in tests the file keyring of
:mod:`tests.support.file_keyring`), prints ``ready`` once it is about to start the push, one ``progress`` line per
batch, and a final ``result {json}`` line. Exit codes: 0 done, 75 another run holds the lock.

:func:`run_drill` is the driver the crash-drill test and ``bench/crash_drill.py`` share: it serves a sandbox on real
loopback from the calling process (so it outlives every worker), imports the contacts once, then starts the worker,
kills it at seeded random moments, restarts it, and finally lets it finish and checks what the CRM holds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Exit code of a worker that found another run holding the integration's lock.
EXIT_LOCKED = 75
#: The repository root (the worker runs there so ``tests.*`` imports and the keyring backend resolve).
REPO_ROOT = Path(__file__).resolve().parents[2]
INTEGRATION_NAME = "drill"


# -- the worker process ------------------------------------------------------------------------------------------
def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def push_once(data_dir: Path, integration_name: str, batch_size: int) -> int:
    """Push the workspace's contacts through the sync engine once; the process exit code."""
    from crm_desktop.app.workspace import Workspace
    from crm_desktop.domain.outcomes import RecordObject
    from crm_desktop.store.models import SyncTrigger
    from crm_desktop.sync.engine import SyncAlreadyRunning, SyncDirectionChoice, SyncEngine, SyncProgress
    from crm_desktop.sync.mapping import with_crm_lengths

    workspace = Workspace.open(data_dir)
    try:
        integration = workspace.integrations.get(integration_name)
        adapter = workspace.crm.adapter_for(integration)
        mappings = {RecordObject.CONTACT: workspace.sync.mappings(integration, RecordObject.CONTACT)}
        try:
            fields = await adapter.list_fields(RecordObject.CONTACT)
        except BaseException:
            await adapter.aclose()
            raise
        mappings = {obj: with_crm_lengths(m, fields) for obj, m in mappings.items()}

        def progress(update: SyncProgress) -> None:
            _say(f"progress {update.phase} {update.done}")

        engine = SyncEngine(
            workspace.sync.store, integration, adapter, mappings, batch_size=batch_size, progress=progress
        )
        _say("ready")
        try:
            result = await engine.run(SyncDirectionChoice.PUSH, SyncTrigger.MANUAL, objects=(RecordObject.CONTACT,))
        except SyncAlreadyRunning:
            await adapter.aclose()
            _say("locked")
            return EXIT_LOCKED
        summary = {
            "status": result.status.value,
            "counts": result.counts,
            "apiCalls": result.api_calls,
            "failures": result.failures[:20],
            "message": result.message,
        }
        _say("result " + json.dumps(summary))
        return 0
    finally:
        workspace.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="crash-drill worker: push a workspace's contacts once")
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--integration", default=INTEGRATION_NAME)
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return asyncio.run(push_once(args.data_dir, args.integration, args.batch_size))


# -- the driver ----------------------------------------------------------------------------------------------------
@dataclass
class DrillSettings:
    """One crash drill.

    Attributes:
        provider: ``hubspot``, ``salesforce`` or ``pipedrive``.
        contacts: local contacts to push.
        min_kills: kills before the worker may finish.
        max_kills: kills at most (the drill keeps killing until both crash windows were hit, up to this).
        batch_size: records per push batch (small batches: more moments to die in).
        latency_ms: the sandbox's delay per request, so kills land while a batch is on the wire.
        max_delay: a kill lands 0..max_delay seconds after the worker starts its run.
        seed: seeds the kill delays and the generated people.
        finish_timeout: seconds the last, uninterrupted run may take.
    """

    provider: str
    contacts: int = 2000
    min_kills: int = 10
    max_kills: int = 30
    batch_size: int = 50
    latency_ms: float = 20.0
    max_delay: float = 0.6
    seed: int = 20240605
    finish_timeout: float = 90.0


@dataclass
class Kill:
    """What one kill left behind.

    Attributes:
        delay: seconds between the worker's ``ready`` and the SIGKILL.
        batches: progress lines the worker printed before dying.
        pending_outbox: writes recorded as intended but not marked done (killed inside the outbox window).
        landed_unlinked: contacts the CRM holds that the local store had not linked yet (the write landed, the
            process died before recording it: the window where a resend could duplicate).
        linked: local contacts linked after the kill.
        startup: seconds from starting the worker to its ``ready``.
    """

    delay: float
    batches: int
    pending_outbox: int
    landed_unlinked: int
    linked: int
    startup: float


@dataclass
class DrillReport:
    """What a drill did and found.

    Attributes:
        provider: the CRM.
        contacts: local contacts pushed.
        kills: every kill, in order.
        workers: worker processes started (kills + lock refusals + the finishing run).
        final: the finishing run's summary line.
        crm_records: records the CRM holds.
        duplicates: emails the CRM holds more than once, with their count.
        missing: local emails the CRM lacks.
        unexpected: CRM emails no local contact has.
        unlinked: local contacts without a link.
        wrong_links: local contacts linked to a CRM id other than the CRM's record of their email.
        pending_outbox: writes still pending at the end.
        running_runs: runs still marked running at the end (killed runs nobody closed).
        finish_seconds: wall time of the finishing run, from start to exit.
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
    finish_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def outbox_kills(self) -> int:
        """Kills that left intended writes pending."""
        return sum(1 for k in self.kills if k.pending_outbox)

    @property
    def ambiguous_kills(self) -> int:
        """Kills after a write landed in the CRM but before the local store recorded it."""
        return sum(1 for k in self.kills if k.landed_unlinked)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["outbox_kills"] = self.outbox_kills
        data["ambiguous_kills"] = self.ambiguous_kills
        return data


def crm_contacts(sandbox: Any) -> list[tuple[str, str]]:
    """(CRM id, lower-cased email) of every live contact a sandbox holds, read from its state (duplicates kept)."""
    provider = sandbox.provider
    if provider == "hubspot":
        records = list(sandbox._records["contacts"].values())
        return [(r.id, str(r.properties.get("email") or "").lower()) for r in records if not r.archived]
    if provider == "salesforce":
        rows = list(sandbox.records["Contact"].items())
        return [(record_id, str(row.get("Email") or "").lower()) for record_id, row in rows]
    persons = list(sandbox.persons.values())
    found = []
    for person in persons:
        primary = next((e for e in person.emails if e.get("primary")), person.emails[0] if person.emails else {})
        found.append((str(person.id), str(primary.get("value") or "").lower()))
    return found


def _new_sandbox(provider: str, latency_ms: float, seed: int) -> Any:
    from crm_desktop.sandbox.core import SandboxConfig
    from crm_desktop.sandbox.server import make_sandbox

    config = SandboxConfig(contacts=0, latency_ms=latency_ms, seed=seed)
    if provider == "salesforce":
        from crm_desktop.sandbox.salesforce import SalesforceSandbox

        # Duplicate rules off: a create sent twice must show up as a duplicate instead of being refused.
        return SalesforceSandbox(config, duplicate_rules=False)
    return make_sandbox(provider, config)


def _credentials(provider: str, sandbox: Any) -> dict[str, Any]:
    credentials: dict[str, Any] = sandbox.credentials()
    if provider == "pipedrive":
        return {"apiToken": credentials["apiToken"]}
    return credentials


def _wait_for_quiet(sandbox: Any, timeout: float = 5.0) -> None:
    """Wait until the sandbox has answered every request a dead worker left in flight."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(entry.status for entry in list(sandbox.requests)[-200:]):
            return
        time.sleep(0.01)


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


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
    from crm_desktop.store.sync_store import SyncStore
    from crm_desktop.vault import Vault
    from tests.support.file_keyring import BACKEND_NAME, KEYRING_FILE_ENV, FileKeyring

    started = time.monotonic()
    say = echo or (lambda _line: None)
    rng = random.Random(settings.seed)
    data_dir = work_dir / "workspace"
    keyring_file = work_dir / "keyring.json"
    report = DrillReport(settings.provider, settings.contacts)
    sandbox = _new_sandbox(settings.provider, settings.latency_ms, settings.seed)
    with SandboxServer([sandbox]):
        workspace = Workspace.open(data_dir, vault=Vault(FileKeyring(keyring_file)))
        try:
            provider = Provider(settings.provider)
            integration = workspace.integrations.add(
                Integration(
                    provider=provider,
                    name=INTEGRATION_NAME,
                    base_url=sandbox.base_url,
                    domain="sandbox" if provider is Provider.PIPEDRIVE else None,
                ),
                _credentials(settings.provider, sandbox),
            )
            people = generate_people(settings.contacts, settings.seed)
            workspace.contacts.save_many(
                Contact(
                    email=p.email,
                    first_name=p.first_name,
                    last_name=p.last_name,
                    company=p.company,
                    phone=p.phone,
                    social_profiles=p.social_profiles,
                )
                for p in people
            )
            database_url = workspace.paths.database_url
        finally:
            workspace.close()
        assert integration.id is not None
        integration_id = integration.id
        database = Database(database_url)
        store = SyncStore(database)
        try:
            local = store.local_by_emails(RecordObject.CONTACT, [p.email for p in people])
            ids_by_email = {email: record.id for email, record in local.items()}
            env = {
                **os.environ,
                "PYTHON_KEYRING_BACKEND": BACKEND_NAME,
                KEYRING_FILE_ENV: str(keyring_file),
                "PYTHONPATH": str(REPO_ROOT),
            }
            env.pop("CRM_DESKTOP_DB_URL", None)
            command = [
                sys.executable, "-m", "tests.sync.crash_worker", str(data_dir),
                "--integration", INTEGRATION_NAME, "--batch-size", str(settings.batch_size),
            ]

            def linked_emails() -> dict[str, str]:
                links = store.links_for_local(integration_id, RecordObject.CONTACT, list(ids_by_email.values()))
                return {email: links[i].crm_id for email, i in ids_by_email.items() if i in links}

            def windows_hit() -> bool:
                return report.outbox_kills > 0 and report.ambiguous_kills > 0

            while True:
                report.workers += 1
                number = report.workers
                out_file, err_file = work_dir / f"worker-{number}.out", work_dir / f"worker-{number}.err"
                spawned = time.monotonic()
                with out_file.open("wb") as out, err_file.open("wb") as err:
                    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=err)
                try:
                    deadline = time.monotonic() + 60
                    while "ready" not in _lines(out_file) and process.poll() is None:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"worker {number} did not get ready within 60 s")
                        time.sleep(0.005)
                    startup = time.monotonic() - spawned
                    want_kill = len(report.kills) < settings.min_kills or (
                        not windows_hit() and len(report.kills) < settings.max_kills
                    )
                    if want_kill and process.poll() is None:
                        delay = rng.uniform(0.0, settings.max_delay)
                        try:
                            process.wait(delay)
                        except subprocess.TimeoutExpired:
                            process.send_signal(signal.SIGKILL)
                            process.wait()  # reap it: a zombie would still look alive to the lock's owner check
                            _wait_for_quiet(sandbox)
                            crm_emails = {email for _, email in crm_contacts(sandbox)}
                            linked = linked_emails()
                            kill = Kill(
                                delay=round(delay, 3),
                                batches=sum(1 for line in _lines(out_file) if line.startswith("progress")),
                                pending_outbox=len(store.pending_outbox(integration_id, RecordObject.CONTACT)),
                                landed_unlinked=len(crm_emails - set(linked)),
                                linked=len(linked),
                                startup=round(startup, 2),
                            )
                            report.kills.append(kill)
                            say(f"kill {len(report.kills):>2}: {asdict(kill)}")
                            continue
                    process.wait(settings.finish_timeout)
                finally:
                    if process.poll() is None:
                        process.kill()
                        process.wait()
                lines = _lines(out_file)
                if process.returncode == EXIT_LOCKED:
                    say(f"worker {number}: lock still held; starting again")
                    continue
                if process.returncode != 0:
                    errors = err_file.read_text(encoding="utf-8")[-3000:]
                    raise RuntimeError(f"worker {number} exited with {process.returncode}:\n{errors}")
                result = next((line for line in reversed(lines) if line.startswith("result ")), None)
                if result is None:
                    raise RuntimeError(f"worker {number} printed no result")
                # Done: the finishing run, or a run that completed the push before its kill was due.
                report.final = json.loads(result.removeprefix("result "))
                report.finish_seconds = round(time.monotonic() - spawned, 1)
                break

            _wait_for_quiet(sandbox)
            records = crm_contacts(sandbox)
            counts = Counter(email for _, email in records)
            ids_by_crm_email = {email: crm_id for crm_id, email in records}
            local_emails = set(ids_by_email)
            linked = linked_emails()
            report.crm_records = len(records)
            report.duplicates = {email: n for email, n in counts.items() if n > 1}
            report.missing = sorted(local_emails - set(counts))
            report.unexpected = sorted(set(counts) - local_emails)
            report.unlinked = sorted(local_emails - set(linked))
            report.wrong_links = sorted(
                email for email, crm_id in linked.items() if ids_by_crm_email.get(email) != crm_id
            )
            report.pending_outbox = len(store.pending_outbox(integration_id, RecordObject.CONTACT))
            report.running_runs = sum(
                1 for run in store.list_runs(integration_id, limit=1000) if run.status is SyncRunStatus.RUNNING
            )
        finally:
            database.close()
    report.seconds = round(time.monotonic() - started, 1)
    return report


if __name__ == "__main__":
    raise SystemExit(main())
