"""``conflicts resolve --all`` on a Salesforce sandbox served over real loopback sockets: the kept values go out as
one sObject Collections request, and the next sync writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crm_desktop.cli import ExitCode
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from tests.support.cli_runs import connect_cli_over_loopback, run_json, served
from tests.test_cli_conflicts_bulk import make_conflicts

pytestmark = pytest.mark.loopback

EMAILS = ("ann@example.com", "cy@example.com")


@pytest.fixture
def sandbox() -> Iterator[SalesforceSandbox]:
    with served(SalesforceSandbox(SandboxConfig(contacts=0))) as sandbox:
        yield sandbox


@pytest.fixture
def data_dir(tmp_path: Path, sandbox: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch) -> Path:
    return connect_cli_over_loopback(tmp_path / "D", "salesforce", sandbox, monkeypatch, name="hs")


def contact(sandbox: SalesforceSandbox, email: str) -> tuple[str, dict[str, Any]]:
    [(record_id, record)] = [(i, r) for i, r in sandbox.records["Contact"].items() if r.get("Email") == email]
    return record_id, record


def writes(sandbox: SalesforceSandbox, after: int) -> list[str]:
    return [f"{r.method} {r.path}" for r in sandbox.requests
            if r.number > after and r.method in {"POST", "PATCH"} and not r.path.startswith("/__sandbox__")
            and "/query" not in r.path]


def test_all_take_local_writes_one_collection_and_leaves_nothing_to_sync(
    data_dir: Path, tmp_path: Path, sandbox: SalesforceSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sandbox.base_url.startswith("http://127.0.0.1:")

    def edit_in_salesforce(email: str) -> None:
        sandbox.edit_record("Contact", contact(sandbox, email)[0], {"FirstName": "Crm", "LastName": "There"})

    assert len(make_conflicts(data_dir, tmp_path, sandbox, capsys, edit_in_salesforce)) == 4

    after = sandbox.requests[-1].number
    code, data = run_json(data_dir, ["conflicts", "resolve", "--all", "--take", "local"], capsys)
    assert code == ExitCode.OK, data
    assert data["summary"]["resolved"] == 4
    collections = [w for w in writes(sandbox, after) if "composite/sobjects" in w]
    assert len(collections) == 1 and collections[0].startswith("PATCH "), "one collection for the four fields"
    for email in EMAILS:
        assert {k: contact(sandbox, email)[1][k] for k in ("FirstName", "LastName")} == {
            "FirstName": "Local", "LastName": "Here"}
    after = sandbox.requests[-1].number
    code, data = run_json(data_dir, ["sync", "hs"], capsys)
    assert code == ExitCode.OK and data["results"][0]["counts"]["conflicts"] == 0
    assert writes(sandbox, after) == [], "both sides agree: the next sync writes nothing"
