"""No secret at rest outside the keyring: the data dir after a full demo sync, and after syncs killed mid-run."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

import pytest

from crm_desktop.app.demo import start_demo
from crm_desktop.domain.models import SyncDirection
from tests.sync.crash_worker import DrillSettings, run_drill

pytestmark = pytest.mark.loopback


def secret_values(credentials: Iterable[dict[str, object]]) -> set[str]:
    """The secret parts of credentials (tokens, client secrets), skipping ids and URLs that are not secret."""
    return {
        str(value) for entry in credentials for key, value in entry.items()
        if key not in {"clientId", "instanceUrl", "issuedAt"} and isinstance(value, str) and len(value) >= 8
    }


def files_holding(folder: Path, secrets: set[str], skip: Iterable[Path] = ()) -> list[tuple[str, str]]:
    """Every (file, secret) pair where a secret's bytes, plain or URL-encoded, are in a file under ``folder``."""
    skipped = {p.resolve() for p in skip}
    found = []
    forms = {form.encode() for secret in secrets for form in (secret, quote(secret, safe=""))}
    for path in folder.rglob("*"):
        if not path.is_file() or path.resolve() in skipped:
            continue
        content = path.read_bytes()
        found.extend((str(path.relative_to(folder)), form.decode()[:6] + "...") for form in forms if form in content)
    return found


def test_a_full_demo_sync_leaves_no_secret_in_the_data_dir(tmp_path: Path) -> None:
    demo = start_demo(tmp_path, local_contacts=60, crm_contacts=10)
    try:
        workspace = demo.workspace
        for integration in workspace.integrations.list():
            result = asyncio.run(workspace.sync.sync(integration.name, SyncDirection.BOTH))
            assert result.status.value == "succeeded", (integration.name, result.message)
        # The keyring's latest (refreshed tokens included) and the sandboxes' own.
        secrets = secret_values(
            workspace.integrations.credentials(i) or {} for i in workspace.integrations.list()
        ) | secret_values(s.credentials() for s in demo.server.sandboxes)
    finally:
        demo.stop()
    assert secrets
    # The scan finds a secret where one is (here a planted copy, URL-encoded as in a query string).
    probe = tmp_path / "demo" / "logs" / "probe.log"
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text("GET /?token=" + quote(sorted(secrets)[0], safe=""), encoding="utf-8")
    assert [path for path, _ in files_holding(tmp_path, secrets)] == [str(probe.relative_to(tmp_path))]
    probe.unlink()
    assert files_holding(tmp_path, secrets) == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the drill forks its workers (POSIX only)")
def test_syncs_killed_mid_run_leave_no_secret_in_the_data_dir(tmp_path: Path) -> None:
    settings = DrillSettings("salesforce", contacts=300, min_kills=3, max_kills=6, batch_size=50, latency_ms=20,
                             batches_per_kill=2, seed=77)
    report = run_drill(settings, tmp_path)
    assert report.final.get("status") == "succeeded"
    # The drill's stand-in for the OS keyring is a file (and its half-written siblings): the one place allowed.
    keyring_file = tmp_path / "keyring.json"
    stored = json.loads(keyring_file.read_text(encoding="utf-8"))
    credentials = [json.loads(value) for accounts in stored.values() for value in accounts.values()]
    secrets = secret_values(credentials)
    assert secrets
    keyring_files = [keyring_file, *tmp_path.glob(".keyring-*")]
    assert files_holding(tmp_path, secrets, skip=keyring_files) == []
