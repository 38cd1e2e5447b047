"""Team mode: two desktops (separate data dirs and keyrings) on one database never sync one integration at once.

Each desktop is a real ``crm-desktop sync`` process against a HubSpot sandbox served on loopback. In the PostgreSQL
pass both share the CRM_DESKTOP_DB_URL database; otherwise they share the first desktop's SQLite file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from crm_desktop.app.paths import DB_URL_ENV
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.server import SandboxServer
from crm_desktop.store.database import Database, sqlite_url
from crm_desktop.store.models import SyncRunRow
from crm_desktop.vault import Vault

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTACTS = 30
#: Every sandbox request takes this long, so one desktop's sync is still running when the other one starts.
LATENCY_MS = 1500


def desktop_env(home: Path, keyring_file: Path, database_url: str) -> dict[str, str]:
    from tests.support.file_keyring import BACKEND_NAME, KEYRING_FILE_ENV

    env = {**os.environ, "CRM_DESKTOP_HOME": str(home), DB_URL_ENV: database_url}
    env.update({"PYTHON_KEYRING_BACKEND": BACKEND_NAME, KEYRING_FILE_ENV: str(keyring_file)})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def test_two_desktops_syncing_one_integration_at_once_run_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Imported here: a keyring backend class imported with the module would join keyring's backend detection.
    from tests.support.file_keyring import FileKeyring

    database_url = os.environ.get(DB_URL_ENV) or sqlite_url(tmp_path / "shared" / "crm.db")
    monkeypatch.setenv(DB_URL_ENV, database_url)
    homes = [tmp_path / "desktop-a", tmp_path / "desktop-b"]
    keyrings = [tmp_path / "keyring-a.json", tmp_path / "keyring-b.json"]
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0, latency_ms=LATENCY_MS), search_per_second_limit=100)
    with SandboxServer([sandbox]):
        workspace = Workspace.open(homes[0], vault=Vault(FileKeyring(keyrings[0])))
        try:
            workspace.integrations.add(
                Integration(provider="hubspot", name="team", base_url=sandbox.base_url), sandbox.credentials()
            )
            workspace.contacts.save_many(
                Contact(email=f"member{n}@example.com", first_name=f"Member{n}") for n in range(CONTACTS)
            )
        finally:
            workspace.close()
        # The second desktop keeps its own copy of the secret in its own keyring; only the database is shared.
        shutil.copyfile(keyrings[0], keyrings[1])

        desktops = [
            subprocess.Popen(
                [sys.executable, "-m", "crm_desktop", "sync", "team"],
                env=desktop_env(home, keyring, database_url),
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for home, keyring in zip(homes, keyrings, strict=True)
        ]
        outcomes = [(*desktop.communicate(timeout=120), desktop.returncode) for desktop in desktops]

    assert sorted(code for _, _, code in outcomes) == [0, 1], outcomes
    _, loser_err, _ = next(outcome for outcome in outcomes if outcome[2] == 1)
    assert "already running" in loser_err, outcomes
    emails = [record.properties.get("email") for record in sandbox._records["contacts"].values()]
    assert sorted(emails) == sorted(f"member{n}@example.com" for n in range(CONTACTS))
    database = Database(database_url)
    try:
        with database.session() as session:
            runs = list(session.scalars(select(SyncRunRow)))
            assert [run.status.value for run in runs] == ["succeeded"], [(r.status, r.message) for r in runs]
    finally:
        database.close()
