"""Team drill: two desktops on one database fire scheduled, manual and CLI syncs of three CRMs at the same moments.

Each desktop has its own data dir, its own keyring (a copy of the secrets, as a teammate would enter them) and its own
machine name (``CRM_DESKTOP_MACHINE_NAME``, standing for two laptops). Each runs ``crm-desktop serve``, which serves
the local API and runs the schedule; every integration is due at once. While those scheduled runs start, both
desktops also get a manual sync through the local API (what "Sync now" calls) and a ``crm-desktop sync`` from the
command line, for every integration. In the PostgreSQL pass the database is PostgreSQL 15 (CRM_DESKTOP_DB_URL);
otherwise it is the first desktop's SQLite file.

Required: never two runs of one integration at once (the losers say "already running", a CLI loser exits 1), no
duplicate in any CRM, and every run recorded and finished.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from crm_desktop.app.api_access import ApiTokens
from crm_desktop.app.paths import DB_URL_ENV
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration
from crm_desktop.sandbox.core import Sandbox, SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.sandbox.server import SandboxServer
from crm_desktop.store.database import Database, sqlite_url
from crm_desktop.store.models import SyncRunRow
from crm_desktop.store.process_owner import MACHINE_NAME_ENV
from crm_desktop.store.repositories import ContactStore
from crm_desktop.vault import Vault
from tests.support.cli_runs import credentials_of
from tests.sync.crash_worker import crm_contacts

REPO_ROOT = Path(__file__).resolve().parents[2]
PROVIDERS = ("hubspot", "salesforce", "pipedrive")
#: Contacts made on each desktop's side (pushed) and in each CRM (pulled).
LOCAL_CONTACTS = 12
CRM_CONTACTS = 8
#: Every sandbox request takes this long, so the runs fired together overlap.
LATENCY_MS = 250
DEADLINE_SECONDS = 240.0


@dataclass
class Desktop:
    """One teammate's app: its data dir, keyring file and machine name."""

    name: str
    home: Path
    keyring_file: Path

    def env(self, database_url: str) -> dict[str, str]:
        from tests.support.file_keyring import BACKEND_NAME, KEYRING_FILE_ENV

        env = {**os.environ, "CRM_DESKTOP_HOME": str(self.home), DB_URL_ENV: database_url, MACHINE_NAME_ENV: self.name}
        env.update({"PYTHON_KEYRING_BACKEND": BACKEND_NAME, KEYRING_FILE_ENV: str(self.keyring_file)})
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        return env

    def api_token(self) -> str:
        from tests.support.file_keyring import FileKeyring

        workspace = Workspace.open(self.home, vault=Vault(FileKeyring(self.keyring_file)))
        try:
            return ApiTokens(workspace.vault).current()  # the workspace's own token, in this desktop's keyring
        finally:
            workspace.close()


def _seed(desktop: Desktop, sandboxes: dict[str, Sandbox]) -> None:
    """Three integrations (auto-sync on by default, never run: so due now) and local contacts to push."""
    from tests.support.file_keyring import FileKeyring

    workspace = Workspace.open(desktop.home, vault=Vault(FileKeyring(desktop.keyring_file)))
    try:
        for provider, sandbox in sandboxes.items():
            workspace.integrations.add(
                Integration(provider=provider, name=f"team-{provider}", base_url=sandbox.base_url, domain="acme"),
                credentials_of(provider, sandbox),
            )
        workspace.contacts.save_many(
            Contact(email=f"local{n}@example.com", first_name=f"Local{n}", last_name="Member")
            for n in range(LOCAL_CONTACTS)
        )
    finally:
        workspace.close()


def _sandbox(provider: str) -> Sandbox:
    """A sandbox holding a salesperson's own contacts (for the pull side), slow enough for runs to overlap."""
    config = SandboxConfig(contacts=CRM_CONTACTS, latency_ms=LATENCY_MS, seed=11)
    if provider == "salesforce":
        return SalesforceSandbox(config, duplicate_rules=False)  # a create sent twice shows as a duplicate
    if provider == "pipedrive":
        return PipedriveSandbox(config, burst_limit=120, daily_token_budget=100_000_000)
    return HubSpotSandbox(config)


def _serve(desktop: Desktop, database_url: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "crm_desktop", "serve", "--port", "0", "--schedule-poll", "0.5"],
        env=desktop.env(database_url), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise AssertionError(f"serve on {desktop.name} did not start: {process.communicate(timeout=10)}")
    return process, json.loads(line)["url"]


def _cli_sync(desktop: Desktop, database_url: str, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "crm_desktop", "sync", name, "--json"],
        env=desktop.env(database_url), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _crm_emails(sandbox: Sandbox) -> Counter[str]:
    """Every contact email the CRM holds, counted (a duplicate counts 2)."""
    return Counter(email for _, email in crm_contacts(sandbox))


def _runs(database_url: str) -> list[SyncRunRow]:
    database = Database(database_url)
    try:
        with database.session() as session:
            rows = list(session.scalars(select(SyncRunRow).order_by(SyncRunRow.id)))
            session.expunge_all()
            return rows
    finally:
        database.close()


def _wait_until_settled(database_url: str, deadline: float) -> list[SyncRunRow]:
    """The recorded runs once none is running any more (scheduled ones included)."""
    while True:
        runs = _runs(database_url)
        if runs and all(run.status.value != "running" for run in runs):
            return runs
        if time.monotonic() > deadline:
            raise AssertionError(f"runs still going: {[(r.id, r.integration_id, r.status) for r in runs]}")
        time.sleep(0.5)


@pytest.mark.timeout(300)  # real processes and waits out retries: minutes on a loaded CI host
def test_two_desktops_fire_scheduled_manual_and_cli_syncs_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_url = os.environ.get(DB_URL_ENV) or sqlite_url(tmp_path / "shared" / "crm.db")
    monkeypatch.setenv(DB_URL_ENV, database_url)
    desktops = [Desktop(name, tmp_path / name, tmp_path / f"{name}-keyring.json") for name in ("desk-a", "desk-b")]
    sandboxes = {provider: _sandbox(provider) for provider in PROVIDERS}
    crm_own = {provider: set(_crm_emails(sandbox)) for provider, sandbox in sandboxes.items()}
    assert all(len(emails) >= CRM_CONTACTS // 2 for emails in crm_own.values()), crm_own
    deadline = time.monotonic() + DEADLINE_SECONDS
    with SandboxServer(list(sandboxes.values())):
        _seed(desktops[0], sandboxes)
        # The teammate enters the same CRM secrets in their own keyring; only the database is shared.
        shutil.copyfile(desktops[0].keyring_file, desktops[1].keyring_file)
        tokens = {desktop.name: desktop.api_token() for desktop in desktops}
        servers: list[subprocess.Popen[str]] = []
        try:
            urls: dict[str, str] = {}
            for desktop in desktops:  # scheduled: each serve runs what is due as soon as it is up
                process, urls[desktop.name] = _serve(desktop, database_url)
                servers.append(process)
            names = [f"team-{provider}" for provider in PROVIDERS]
            cli = {(desktop.name, name): _cli_sync(desktop, database_url, name) for desktop in desktops
                   for name in names}
            manual: dict[tuple[str, str], httpx.Response] = {}
            for desktop in desktops:  # manual: what "Sync now" does, through each desktop's local API
                headers = {"Authorization": f"Bearer {tokens[desktop.name]}"}
                for name in names:
                    manual[(desktop.name, name)] = httpx.post(
                        f"{urls[desktop.name]}/api/crm/integrations/{name}/sync-from-crm", headers=headers,
                        timeout=30,
                    )
            cli_outcomes = {key: (*process.communicate(timeout=DEADLINE_SECONDS), process.returncode)
                            for key, process in cli.items()}
            runs = _wait_until_settled(database_url, deadline)
        finally:
            for process in servers:
                process.send_signal(signal.SIGTERM)
            serve_outcomes = [process.communicate(timeout=60) for process in servers]
        assert [process.returncode for process in servers] == [0, 0], serve_outcomes

        # The losers were told, and a CLI loser exits 1 naming the desktop that holds the run.
        for key, (out, err, code) in cli_outcomes.items():
            assert code in (0, 1), (key, out, err)
            if code == 1:
                message = json.loads(out)["error"]["message"]
                assert "already running" in message and "on desk-" in message, (key, out)
            else:
                assert json.loads(out)["results"][0]["status"] == "succeeded", (key, out)
        for key, response in manual.items():
            assert response.status_code in (202, 409), (key, response.text)
            if response.status_code == 409:
                assert "already running" in response.json()["detail"], (key, response.text)

        refused = sum(code == 1 for _, _, code in cli_outcomes.values()) + sum(
            response.status_code == 409 for response in manual.values())
        assert refused >= len(PROVIDERS), "the triggers did not collide: the drill proved nothing"

        # Never two runs of one integration at once: the recorded runs of each do not overlap in time.
        assert all(run.status.value == "succeeded" for run in runs), "\n".join(
            f"{r.id} {r.integration_id} {r.trigger} {r.status} {r.failed} {r.message}" for r in runs)
        by_integration: dict[int | None, list[SyncRunRow]] = {}
        for run in runs:
            by_integration.setdefault(run.integration_id, []).append(run)
        assert len(by_integration) == len(PROVIDERS)
        for integration_runs in by_integration.values():
            ordered = sorted(integration_runs, key=lambda run: run.started_at)
            for earlier, later in itertools.pairwise(ordered):
                assert earlier.finished_at is not None and earlier.finished_at <= later.started_at, (earlier, later)

        # Every run that a trigger reported as started is recorded.
        recorded = {run.id for run in runs}
        started_by_cli = {json.loads(out)["results"][0]["runId"]
                          for out, _, code in cli_outcomes.values() if code == 0}
        started_by_api = {response.json()["runId"] for response in manual.values() if response.status_code == 202}
        assert started_by_cli | started_by_api <= recorded
        triggers = Counter(run.trigger.value for run in runs)
        assert sum(triggers.values()) == len(runs) >= len(PROVIDERS), triggers

        # No duplicate in any CRM, nothing missing: both desktops' contacts once, the CRM's own once.
        for provider, sandbox in sandboxes.items():
            emails = _crm_emails(sandbox)
            assert [email for email, count in emails.items() if count > 1] == [], provider
            wanted = {f"local{n}@example.com" for n in range(LOCAL_CONTACTS)} | crm_own[provider]
            assert set(emails) == wanted, provider

    # Locally, each CRM's contacts arrived once.
    database = Database(database_url)
    try:
        local = Counter(contact.email for contact in ContactStore(database).page(0, 10_000))
    finally:
        database.close()
    assert [email for email, count in local.items() if count > 1] == []
    assert set(local) == {f"local{n}@example.com" for n in range(LOCAL_CONTACTS)}.union(*crm_own.values())


