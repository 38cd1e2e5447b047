"""The sync slice of the CLI: import, sync (one, all, due, dry run), conflicts and run history, on an in-process
HubSpot sandbox."""

from __future__ import annotations

import functools
import re
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from crm_desktop.app import crm_actions
from crm_desktop.app.preferences import HistoryRetention
from crm_desktop.cli import ExitCode, main
from crm_desktop.cli import common as cli_common
from crm_desktop.domain.alerts import AlertKind
from crm_desktop.domain.models import Contact, Integration, SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.providers.contract import AdapterOptions
from crm_desktop.sandbox.core import FaultKind, FaultRule, SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.store import sync_store
from crm_desktop.store.models import ConflictRule, SyncLockRow, SyncTrigger, utcnow
from crm_desktop.store.sync_store import SyncStore
from tests.support.cli_runs import connect_cli, run, run_json, workspace_at

CONTACTS_CSV = (
    "email,firstName,lastName,company,twitter_username\n"
    "ann@example.com,Ann,Lee,Acme,annlee\n"
    "not-an-email,Bob,Roe,Acme,\n"
    "cy@example.com,Cy,Day,Initech,cyday\n"
)
WRITE_SUFFIXES = ("/batch/create", "/batch/update", "/batch/upsert", "/batch/archive")


@pytest.fixture
def sandbox() -> HubSpotSandbox:
    return HubSpotSandbox(SandboxConfig(contacts=0))


@pytest.fixture
def data_dir(tmp_path: Path, sandbox: HubSpotSandbox, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace with one HubSpot integration ``hs``; every workspace the CLI opens talks to the sandbox."""
    return connect_cli(tmp_path / "D", "hubspot", sandbox, monkeypatch, name="hs")


def crm_writes(sandbox: HubSpotSandbox, after: int = 0) -> list[str]:
    """Requests that changed CRM records, after request number ``after``."""
    return [
        f"{r.method} {r.path}" for r in sandbox.requests
        if r.number > after and not r.path.startswith("/__sandbox__")
        and (r.method in {"PATCH", "PUT", "DELETE"} or (r.method == "POST" and r.path.endswith(WRITE_SUFFIXES))
             or (r.method == "POST" and r.path.rstrip("/").endswith("/objects/contacts")))
    ]


def last_request(sandbox: HubSpotSandbox) -> int:
    return sandbox.requests[-1].number if sandbox.requests else 0


def imported(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Import the two good rows of CONTACTS_CSV."""
    path = tmp_path / "contacts.csv"
    path.write_text(CONTACTS_CSV, encoding="utf-8")
    code, _, _ = run(data_dir, ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.PARTIAL


def crm_id_of(sandbox: HubSpotSandbox, email: str) -> str:
    for record_id, record in sandbox._records["contacts"].items():
        if record.properties.get("email") == email:
            return record_id
    raise AssertionError(f"{email} is not in the sandbox")


def crm_value(sandbox: HubSpotSandbox, email: str, prop: str) -> Any:
    return sandbox._records["contacts"][crm_id_of(sandbox, email)].properties.get(prop)


# -- import ---------------------------------------------------------------------------------------


def test_import_reports_each_refused_row_and_saves_the_rest(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text(CONTACTS_CSV, encoding="utf-8")
    code, data = run_json(data_dir, ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.PARTIAL
    assert (data["created"], data["updated"], data["unchanged"]) == (2, 0, 0)
    [refused] = data["refused"]
    assert refused["line"] == 3 and refused["field"] == "email" and refused["reason"]
    with workspace_at(data_dir) as workspace:
        assert workspace.contacts.count() == 2
        ann = workspace.contacts.find("ann@example.com")
        assert ann is not None and ann.company == "Acme"

    code, out, _ = run(data_dir, ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.PARTIAL
    assert "line     3  refused" in out and "email:" in out
    assert "0 created, 0 updated, 2 unchanged, 1 row refused" in out

    good = tmp_path / "good.csv"
    good.write_text("email,company\nann@example.com,Acme Corp\n", encoding="utf-8")
    code, data = run_json(data_dir, ["contacts", "import", str(good)], capsys)
    assert code == ExitCode.OK and data["updated"] == 1 and data["refused"] == []


def test_leads_import_and_file_errors(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "leads.jsonl"
    path.write_text(
        '{"email": "lee@example.com", "firstName": "Lee", "source": "twitter_dm"}\n'
        '{"email": "max@example.com", "status": "maybe"}\n'
        "not json\n",
        encoding="utf-8",
    )
    code, data = run_json(data_dir, ["leads", "import", str(path)], capsys)
    assert code == ExitCode.PARTIAL
    assert data["created"] == 1
    assert [(r["line"], r["field"]) for r in data["refused"]] == [(2, "status"), (3, "(row)")]
    with workspace_at(data_dir) as workspace:
        assert workspace.leads.count() == 1

    code, _, err = run(data_dir, ["contacts", "import", str(tmp_path / "missing.csv")], capsys)
    assert code == ExitCode.USAGE and "no such file" in err
    wrong = tmp_path / "contacts.xlsx"
    wrong.write_text("x", encoding="utf-8")
    code, _, err = run(data_dir, ["contacts", "import", str(wrong)], capsys)
    assert code == ExitCode.USAGE and ".csv or .jsonl" in err


# -- sync -----------------------------------------------------------------------------------------


def test_sync_pushes_then_a_second_sync_sends_nothing(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    imported(data_dir, tmp_path, capsys)
    code, data = run_json(data_dir, ["sync", "hs"], capsys)
    assert code == ExitCode.OK
    [result] = data["results"]
    assert result["integration"] == "hs" and result["status"] == "succeeded" and result["trigger"] == "cli"
    assert result["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "failed": 0, "conflicts": 0, "decided": 0}
    assert result["apiCalls"] > 0 and isinstance(result["runId"], int) and result["dryRun"] is False
    assert "plan" not in result and result["failures"] == []
    assert sandbox.summary()["contacts"] == 2
    assert crm_value(sandbox, "cy@example.com", "company") == "Initech"
    assert crm_writes(sandbox), "the write detector must see the first sync's creates"

    before = last_request(sandbox)
    code, out, _ = run(data_dir, ["sync", "hs"], capsys)
    assert code == ExitCode.OK
    assert out.startswith("hs: succeeded (run ")
    assert "0 created, 0 updated" in out and "0 failed" in out and "API calls in" in out
    assert crm_writes(sandbox, before) == []


def test_a_crm_out_of_reach_before_the_run_began_is_said_offline_with_what_waits(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    imported(data_dir, tmp_path, capsys)

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    monkeypatch.setattr(cli_common, "http_transport", httpx.MockTransport(unreachable))
    monkeypatch.setattr(crm_actions, "AdapterOptions", functools.partial(AdapterOptions, max_attempts=1))
    code, data = run_json(data_dir, ["sync", "hs"], capsys)

    # It printed only "crm-desktop: HubSpot: network failure (ConnectError)": neither "offline" (as a run that loses
    # the CRM half-way says) nor that the records wait for the next run.
    assert code == ExitCode.PARTIAL, data
    [result] = data["results"]
    assert (result["status"], result["runId"], result["code"], result["exitCode"]) == ("offline", None, "crm_error", 1)
    assert result["message"] == ("the CRM could not be reached (HubSpot: network failure (ConnectError)); "
                                 "2 records wait for the next run")
    code, out, _ = run(data_dir, ["sync", "hs"], capsys)
    assert code == ExitCode.PARTIAL
    assert out == f"hs: offline, not synced: {result['message']}\n"
    code, every = run_json(data_dir, ["sync", "--all"], capsys)
    assert code == ExitCode.PARTIAL and every["results"] == [result]
    code, due = run_json(data_dir, ["sync", "--due"], capsys)
    assert code == ExitCode.PARTIAL and due["results"][0]["status"] == "offline", due
    assert sandbox.summary()["contacts"] == 0

    monkeypatch.setattr(cli_common, "http_transport", sandbox.transport())
    code, data = run_json(data_dir, ["sync", "hs"], capsys)
    assert code == ExitCode.OK and data["results"][0]["counts"]["created"] == 2, data
    assert sandbox.summary()["contacts"] == 2


def test_dry_run_prints_the_plan_and_writes_nothing(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    imported(data_dir, tmp_path, capsys)
    code, data = run_json(data_dir, ["sync", "hs", "--dry-run"], capsys)
    assert code == ExitCode.OK
    [result] = data["results"]
    assert result["dryRun"] is True and result["runId"] is None
    assert result["counts"]["created"] == 2
    creates = {c["email"]: c for c in result["plan"] if c["action"] == "create"}
    assert set(creates) == {"ann@example.com", "cy@example.com"}
    assert creates["ann@example.com"]["side"] == "crm"
    assert creates["ann@example.com"]["fields"]["company"] == {"old": None, "new": "Acme", "reason": "new locally"}
    assert sandbox.summary()["contacts"] == 0 and crm_writes(sandbox) == []
    code, data = run_json(data_dir, ["runs", "list"], capsys)
    assert [r["trigger"] for r in data] == ["import"]  # the import is a run; the dry run is not

    assert run(data_dir, ["sync", "hs"], capsys)[0] == ExitCode.OK
    with workspace_at(data_dir) as workspace:
        ann = workspace.contacts.find("ann@example.com")
        assert ann is not None
        workspace.contacts.save(ann.model_copy(update={"company": "Acme Corp"}))
    sandbox.edit_record("contacts", crm_id_of(sandbox, "cy@example.com"), {"jobtitle": "CTO", "company": "Globex"})
    before = last_request(sandbox)
    code, out, _ = run(data_dir, ["sync", "hs", "--dry-run"], capsys)
    assert code == ExitCode.OK
    assert "dry run of both, nothing written" in out
    assert "update   in CRM   contact ann@example.com" in out and "company: Acme -> Acme Corp" in out
    assert "update   locally  contact cy@example.com" in out and "company: Initech -> Globex" in out
    assert crm_writes(sandbox, before) == []
    assert crm_value(sandbox, "ann@example.com", "company") == "Acme"
    with workspace_at(data_dir) as workspace:
        cy = workspace.contacts.find("cy@example.com")
        assert cy is not None and cy.company == "Initech"
        assert len(workspace.sync.runs("hs")) == 1


def test_direction_pull_only_pulls(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    imported(data_dir, tmp_path, capsys)
    code, data = run_json(data_dir, ["sync", "hs", "--direction", "pull"], capsys)
    assert code == ExitCode.OK
    assert data["results"][0]["direction"] == "pull" and sandbox.summary()["contacts"] == 0


# -- conflicts ------------------------------------------------------------------------------------


def make_conflict(data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]) -> int:
    """Sync, make firstName a manual field, change it on both sides, sync again: one open conflict."""
    imported(data_dir, tmp_path, capsys)
    assert run(data_dir, ["sync", "hs"], capsys)[0] == ExitCode.OK
    with workspace_at(data_dir) as workspace:
        workspace.sync.set_rule(workspace.integrations.get("hs"), RecordObject.CONTACT, "firstName",
                                ConflictRule.MANUAL)
        ann = workspace.contacts.find("ann@example.com")
        assert ann is not None
        workspace.contacts.save(ann.model_copy(update={"first_name": "Annie"}))
    sandbox.edit_record("contacts", crm_id_of(sandbox, "ann@example.com"), {"firstname": "Anna"})
    code, data = run_json(data_dir, ["sync", "hs"], capsys)
    assert code == ExitCode.OK and data["results"][0]["counts"]["conflicts"] == 1
    code, conflicts = run_json(data_dir, ["conflicts", "list"], capsys)
    assert code == ExitCode.OK and len(conflicts) == 1
    return int(conflicts[0]["id"])


def test_conflicts_list_show_and_resolve_with_a_value(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    conflict_id = make_conflict(data_dir, tmp_path, sandbox, capsys)
    code, out, _ = run(data_dir, ["conflicts", "list"], capsys)
    assert code == ExitCode.OK and "ann@example.com" in out and "Annie" in out and "Anna" in out
    code, data = run_json(data_dir, ["conflicts", "show", str(conflict_id)], capsys)
    assert code == ExitCode.OK
    assert (data["field"], data["localValue"], data["crmValue"], data["baseValue"]) == (
        "firstName", "Annie", "Anna", "Ann")
    assert data["integration"] == "hs" and data["status"] == "open"
    code, out, _ = run(data_dir, ["conflicts", "show", str(conflict_id)], capsys)
    assert "local value:  Annie" in out and "CRM value:    Anna" in out and "--set firstName=VALUE" in out
    # The open conflict's field is never pushed meanwhile, even when another field of the record is.
    with workspace_at(data_dir) as workspace:
        ann = workspace.contacts.find("ann@example.com")
        assert ann is not None
        workspace.contacts.save(ann.model_copy(update={"last_name": "Leigh"}))
    assert run(data_dir, ["sync", "hs"], capsys)[0] == ExitCode.OK
    assert crm_value(sandbox, "ann@example.com", "firstname") == "Anna"
    assert crm_value(sandbox, "ann@example.com", "lastname") == "Leigh"

    code, _, err = run(data_dir, ["conflicts", "resolve", str(conflict_id), "--set", "lastName=Zed"], capsys)
    assert code == ExitCode.USAGE and "is about firstName, not lastName" in err
    code, _, err = run(data_dir, ["conflicts", "resolve", str(conflict_id), "--set", "firstName"], capsys)
    assert code == ExitCode.USAGE and "FIELD=VALUE" in err
    with pytest.raises(SystemExit) as exc:
        main(["--data-dir", str(data_dir), "conflicts", "resolve", str(conflict_id), "--take", "crm",
              "--set", "firstName=Zed"])
    assert exc.value.code == ExitCode.USAGE
    capsys.readouterr()

    code, data = run_json(data_dir, ["conflicts", "resolve", str(conflict_id), "--set", "firstName= Zed "], capsys)
    assert code == ExitCode.OK and data["value"] == "Zed" and data["resolution"] == "value"
    assert crm_value(sandbox, "ann@example.com", "firstname") == "Zed"
    with workspace_at(data_dir) as workspace:
        ann = workspace.contacts.find("ann@example.com")
        assert ann is not None and ann.first_name == "Zed"
    code, data = run_json(data_dir, ["conflicts", "list"], capsys)
    assert data == []
    code, out, _ = run(data_dir, ["conflicts", "list"], capsys)
    assert out.strip() == "no open conflicts"
    # Resolved already is no usage error: exit 1, its own code, and what was kept, and when.
    code, _, err = run(data_dir, ["conflicts", "resolve", str(conflict_id), "--take", "crm"], capsys)
    assert code == ExitCode.PARTIAL and "already resolved (value) at 20" in err, err
    assert "(a typed value kept: 'Zed'); nothing was written" in err
    code, data = run_json(data_dir, ["conflicts", "resolve", str(conflict_id), "--take", "crm"], capsys)
    assert (code, data["error"]["code"], data["error"]["exitCode"]) == (ExitCode.PARTIAL, "already_resolved", 1)
    code, _, err = run(data_dir, ["conflicts", "show", "999"], capsys)
    assert code == ExitCode.USAGE and "no conflict 999" in err


def test_resolve_taking_the_crm_value(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    conflict_id = make_conflict(data_dir, tmp_path, sandbox, capsys)
    code, out, _ = run(data_dir, ["conflicts", "resolve", str(conflict_id), "--take", "crm"], capsys)
    assert code == ExitCode.OK and "took the CRM value" in out and "firstName = Anna" in out
    with workspace_at(data_dir) as workspace:
        ann = workspace.contacts.find("ann@example.com")
        assert ann is not None and ann.first_name == "Anna"
    assert crm_value(sandbox, "ann@example.com", "firstname") == "Anna"


def test_a_conflict_resolved_by_another_process_meanwhile_is_not_written_again(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two desktops decide one conflict at the same moment, differently: the one that claims it first writes both
    sides; the other is told it is resolved and writes nothing."""
    conflict_id = make_conflict(data_dir, tmp_path, sandbox, capsys)
    before = last_request(sandbox)
    claim = SyncStore.claim_conflict
    other_codes: list[int] = []

    def other_resolves_first(store: SyncStore, claimed_id: int) -> bool:
        if not other_codes:
            other_codes.append(-1)
            other = threading.Thread(target=lambda: other_codes.append(main(
                ["--data-dir", str(data_dir), "conflicts", "resolve", str(conflict_id), "--set", "firstName=Zed"])))
            other.start()
            other.join()
        return claim(store, claimed_id)

    monkeypatch.setattr(SyncStore, "claim_conflict", other_resolves_first)
    code, _, err = run(data_dir, ["conflicts", "resolve", str(conflict_id), "--set", "firstName=Yan"], capsys)
    assert other_codes == [-1, ExitCode.OK]
    assert code == ExitCode.PARTIAL and f"conflict {conflict_id} is already resolved (value) at " in err
    assert "(a typed value kept: 'Zed'); nothing was written" in err
    assert crm_value(sandbox, "ann@example.com", "firstname") == "Zed"
    assert len(crm_writes(sandbox, before)) == 1
    with workspace_at(data_dir) as workspace:
        ann = workspace.contacts.find("ann@example.com")
        assert ann is not None and ann.first_name == "Zed"


def test_a_conflict_being_resolved_elsewhere_waits_and_a_stopped_claim_is_taken_over(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conflict_id = make_conflict(data_dir, tmp_path, sandbox, capsys)
    with workspace_at(data_dir) as workspace:
        assert workspace.sync.store.claim_conflict(conflict_id)  # another desktop, its CRM write under way
        assert not workspace.sync.store.claim_conflict(conflict_id)
    before = last_request(sandbox)
    code, _, err = run(data_dir, ["conflicts", "resolve", str(conflict_id), "--take", "crm"], capsys)
    assert code == ExitCode.PARTIAL and "is being resolved right now in another window or on another desktop" in err
    assert crm_writes(sandbox, before) == []
    code, data = run_json(data_dir, ["conflicts", "show", str(conflict_id)], capsys)
    assert (data["status"], data["resolvedAt"]) == ("open", None)
    # That desktop stopped half-way: once its claim is older than a resolution can take, this one goes ahead.
    monkeypatch.setattr(sync_store, "CONFLICT_CLAIM_EXPIRES", timedelta(0))
    code, _, err = run(data_dir, ["conflicts", "resolve", str(conflict_id), "--set", "firstName=Zed"], capsys)
    assert code == ExitCode.OK, err
    assert crm_value(sandbox, "ann@example.com", "firstname") == "Zed"


def test_a_refused_resolution_lets_go_of_its_claim(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str],
) -> None:
    conflict_id = make_conflict(data_dir, tmp_path, sandbox, capsys)
    code, _, err = run(data_dir, ["conflicts", "resolve", str(conflict_id), "--set", "firstName=" + "x" * 5000],
                       capsys)
    assert code != ExitCode.OK
    code, _, err = run(data_dir, ["conflicts", "resolve", str(conflict_id), "--take", "crm"], capsys)
    assert code == ExitCode.OK, err


# -- runs -----------------------------------------------------------------------------------------


def test_runs_list_show_and_undo(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    imported(data_dir, tmp_path, capsys)
    assert run(data_dir, ["sync", "hs"], capsys)[0] == ExitCode.OK
    sandbox.edit_record("contacts", crm_id_of(sandbox, "cy@example.com"), {"company": "Globex"})
    code, data = run_json(data_dir, ["sync", "hs"], capsys)
    pull_run = data["results"][0]["runId"]
    assert data["results"][0]["counts"]["updated"] == 1

    code, runs = run_json(data_dir, ["runs", "list"], capsys)
    assert code == ExitCode.OK
    runs = [r for r in runs if r["trigger"] != "import"]
    assert [r["id"] for r in runs] == [pull_run, pull_run - 1]
    assert runs[1]["counts"]["created"] == 2 and runs[1]["trigger"] == "cli" and runs[1]["apiCalls"] > 0
    code, out, _ = run(data_dir, ["runs", "list", "--integration", "hs"], capsys)
    assert out.splitlines()[0].split()[:3] == ["RUN", "INTEGRATION", "STARTED"] and "succeeded" in out

    code, shown = run_json(data_dir, ["runs", "show", str(pull_run)], capsys)
    assert code == ExitCode.OK and shown["run"]["id"] == pull_run
    [record] = shown["records"]
    assert (record["object"], record["record"], record["outcome"]) == ("contact", "cy@example.com", "updated")
    code, out, _ = run(data_dir, ["runs", "show", str(pull_run - 1)], capsys)
    assert "record log (2):" in out and "ann@example.com" in out and "created" in out

    code, data = run_json(data_dir, ["runs", "undo", str(pull_run)], capsys)
    assert code == ExitCode.OK and data["restoredLocal"] == 1 and data["status"] == "succeeded"
    with workspace_at(data_dir) as workspace:
        cy = workspace.contacts.find("cy@example.com")
        assert cy is not None and cy.company == "Initech"
    code, runs = run_json(data_dir, ["runs", "list"], capsys)
    assert runs[0]["id"] == data["undoRunId"] and runs[0]["direction"] == "undo"

    code, _, err = run(data_dir, ["runs", "show", "999"], capsys)
    assert code == ExitCode.USAGE and "no sync run 999" in err


# -- schedule, locks, exit codes --------------------------------------------------------------------


def test_due_prunes_the_runs_older_than_the_history_kept_after_its_batch(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    imported(data_dir, tmp_path, capsys)
    with workspace_at(data_dir) as workspace:
        [old] = [run.id for run in workspace.sync.runs()]
        year_ago = utcnow() - timedelta(days=400)
        workspace.sync.store.update_run(old, started_at=year_ago, finished_at=year_ago)
        workspace.preferences.update(history_retention=HistoryRetention.MONTHS_12)

    code, data = run_json(data_dir, ["sync", "--due"], capsys)

    assert code == ExitCode.OK
    [result] = data["results"]
    with workspace_at(data_dir) as workspace:
        assert [run.id for run in workspace.sync.runs()] == [result["runId"]]


def test_due_runs_what_the_schedule_says(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    imported(data_dir, tmp_path, capsys)
    code, data = run_json(data_dir, ["sync", "--due"], capsys)
    assert code == ExitCode.OK
    [result] = data["results"]
    assert result["trigger"] == "scheduled" and result["direction"] == "both" and result["counts"]["created"] == 2
    assert sandbox.summary()["contacts"] == 2
    code, data = run_json(data_dir, ["sync", "--due"], capsys)
    assert code == ExitCode.OK and data == {"results": []}
    code, out, _ = run(data_dir, ["sync", "--due"], capsys)
    assert out.startswith("nothing due (hs: next at ")
    code, _, err = run(data_dir, ["sync", "--due", "--direction", "push"], capsys)
    assert code == ExitCode.USAGE and "--direction cannot be combined with --due" in err


def test_due_from_cron_waits_for_a_reconnect_after_a_refused_sign_in(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """Seen following the cron recipe (`*/5 * * * * crm-desktop sync --due`): an integration whose token the CRM
    refused was tried at every tick, a refused request and exit 3 (a cron mail) every five minutes, until someone
    reconnected it; and the app, opened the next morning, had no alert of it (only the window kept alerts)."""
    imported(data_dir, tmp_path, capsys)
    with workspace_at(data_dir) as workspace:
        workspace.integrations.add(Integration(provider="hubspot", name="wrong", base_url=sandbox.base_url),
                                   {"token": "pat-na1-not-the-token"})
    code, data = run_json(data_dir, ["sync", "--due"], capsys)
    assert code == ExitCode.AUTH
    assert {r["integration"]: r["status"] for r in data["results"]} == {"hs": "succeeded", "wrong": "error"}
    with workspace_at(data_dir) as workspace:  # what the app's Alerts list when it next opens
        [alert] = workspace.alerts.recent()
    assert (alert.kind, alert.integration_name) == (AlertKind.AUTH_FAILED, "wrong")
    assert alert.message.startswith("HubSpot refused the sign-in of “wrong”: ") and "Reconnect it" in alert.message
    before = last_request(sandbox)
    code, out, _ = run(data_dir, ["sync", "--due"], capsys)
    assert code == ExitCode.OK and last_request(sandbox) == before, "the next tick leaves the CRM be"
    assert out.startswith("nothing due (hs: next at ")
    assert ("wrong: the CRM refused its sign-in; waiting for a reconnect (crm-desktop integration update wrong "
            "--secret-stdin), else tried again at ") in out
    with workspace_at(data_dir) as workspace:  # reconnected: the next tick syncs it
        workspace.integrations.update(workspace.integrations.get("wrong"), sandbox.credentials())
    code, data = run_json(data_dir, ["sync", "--due"], capsys)
    assert code == ExitCode.OK and [(r["integration"], r["status"]) for r in data["results"]] == [
        ("wrong", "succeeded")]


def test_a_sync_held_by_another_process_is_refused(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    imported(data_dir, tmp_path, capsys)
    with workspace_at(data_dir) as workspace:
        integration = workspace.integrations.get("hs")
        assert integration.id is not None
        assert workspace.sync.store.acquire_lock(integration.id, owner="other-host:4242")
    code, out, err = run(data_dir, ["sync", "hs"], capsys)
    assert code == ExitCode.PARTIAL and "already running (on other-host, process 4242" in err and out == ""
    code, data = run_json(data_dir, ["sync", "--all"], capsys)
    assert code == ExitCode.PARTIAL and "already running" in data["results"][0]["error"]
    assert sandbox.summary()["contacts"] == 0


def test_a_refused_sync_says_when_the_silent_holders_lock_is_taken_over(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """A desktop killed mid-sync leaves its lock for the heartbeat to go stale: the refusal says when it was last
    heard from and when the lock is taken over, instead of only "already running" for five minutes."""
    imported(data_dir, tmp_path, capsys)
    with workspace_at(data_dir) as workspace:
        integration = workspace.integrations.get("hs")
        assert integration.id is not None
        store = workspace.sync.store
        assert store.acquire_lock(integration.id, owner="other-host:4242")
        run_id = store.start_run(integration.id, SyncTrigger.MANUAL, SyncDirection.BOTH)
        store.heartbeat(integration.id, run_id, owner="other-host:4242")
        with workspace.database.session() as session:
            for row in session.scalars(select(SyncLockRow)):
                row.heartbeat_at = row.heartbeat_at - timedelta(minutes=3)
    code, out, err = run(data_dir, ["sync", "hs"], capsys)
    assert code == ExitCode.PARTIAL and out == ""
    assert re.search(
        rf"a sync of 'hs' is already running \(on other-host, process 4242, run {run_id}\); last heartbeat "
        r"3 min( \d s)? ago; if it stays silent, the next sync takes the lock over at \d\d:\d\d:\d\d "
        r"\(in (2 min \d+ s|2 min|1 min 5\d s)\); try again when it has finished", err), err
    assert sandbox.summary()["contacts"] == 0


def test_a_push_while_another_desktop_syncs_the_integration_is_refused(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    # A file pushed while another desktop (or a cron sync) works on the same CRM looked each email up and created
    # the ones it did not find, as the other did: Pipedrive and Salesforce got every such person twice.
    path = tmp_path / "push.csv"
    path.write_text(CONTACTS_CSV, encoding="utf-8")
    with workspace_at(data_dir) as workspace:
        integration = workspace.integrations.get("hs")
        assert integration.id is not None
        assert workspace.sync.store.acquire_lock(integration.id, owner="other-host:4242")
    code, out, err = run(data_dir, ["contacts", "push", "hs", "--file", str(path)], capsys)
    assert code == ExitCode.PARTIAL and out == ""
    assert "already running (on other-host, process 4242); last heartbeat " in err
    assert err.rstrip().endswith("); push the file when it has finished"), err
    code, data = run_json(data_dir, ["contacts", "push", "hs", "--file", str(path)], capsys)
    assert code == ExitCode.PARTIAL and data["error"]["code"] == "sync_running"
    assert crm_writes(sandbox) == []

    with workspace_at(data_dir) as workspace:
        workspace.sync.store.release_lock(integration.id, owner="other-host:4242")
    code, data = run_json(data_dir, ["contacts", "push", "hs", "--file", str(path)], capsys)
    assert data["summary"]["created"] == 2
    # The push let go of the lock: a sync runs after it.
    with workspace_at(data_dir) as workspace:
        assert workspace.sync.store.lock_holder(integration.id) is None
    code, _, err = run(data_dir, ["sync", "hs"], capsys)
    assert code == ExitCode.OK, err


def test_unknown_integration_and_refused_credentials(
    data_dir: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(data_dir, ["sync", "nope"], capsys)
    assert code == ExitCode.USAGE and "no integration named 'nope'" in err
    code, _, err = run(data_dir, ["runs", "list", "--integration", "nope"], capsys)
    assert code == ExitCode.USAGE
    with workspace_at(data_dir) as workspace:
        workspace.integrations.add(Integration(provider="hubspot", name="wrong", base_url=sandbox.base_url),
                                   {"token": "pat-na1-not-the-token"})
        workspace.contacts.save(Contact(email="dee@example.com", first_name="Dee"))
    code, out, err = run(data_dir, ["sync", "wrong"], capsys)
    assert code == ExitCode.AUTH and "401" in err and "pat-na1-not-the-token" not in out + err
    code, data = run_json(data_dir, ["sync", "--all"], capsys)
    assert code == ExitCode.AUTH
    by_name = {r["integration"]: r for r in data["results"]}
    assert by_name["hs"]["status"] == "succeeded" and by_name["hs"]["counts"]["created"] == 1
    assert by_name["wrong"]["status"] == "error"


def test_every_new_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["sync"], ["contacts", "import"], ["leads", "import"], ["conflicts"], ["conflicts", "list"],
                 ["conflicts", "show"], ["conflicts", "resolve"], ["runs"], ["runs", "list"], ["runs", "show"],
                 ["runs", "undo"]):
        with pytest.raises(SystemExit) as exc:
            main([*argv, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: crm-desktop " + " ".join(argv)), argv
    with pytest.raises(SystemExit):
        main(["sync", "--help"])
    out = capsys.readouterr().out
    for expected in ("NAME | --all | --due", "--dry-run", "--direction", "cron", "exit codes"):
        assert expected in out


def test_credentials_refused_in_the_middle_of_a_run_exit_with_the_auth_code(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    imported(data_dir, tmp_path, capsys)
    # The token is revoked when the run is already under way (its first batch call is refused with 401).
    sandbox.faults.replace(
        [FaultRule(kind=FaultKind.TOKEN_EXPIRY, path="/crm/v3/objects/contacts/batch", probability=1.0, remaining=1)]
    )
    code, data = run_json(data_dir, ["sync", "hs"], capsys)
    assert code == ExitCode.AUTH
    (result,) = data["results"]
    assert result["status"] == "failed" and result["authFailed"] is True
    assert result["runId"] is not None and "reconnect" in result["message"]
    assert sandbox.faults.fired == {"expire": 1}


# -- mappings, decided conflicts, undo -------------------------------------------------------------


def change_first_name_on_both_sides(data_dir: Path, sandbox: HubSpotSandbox, local: str, crm: str) -> None:
    """The marketer edits ann's first name here, then a salesperson edits it in the CRM."""
    with workspace_at(data_dir) as workspace:
        ann = workspace.contacts.find("ann@example.com")
        assert ann is not None
        workspace.contacts.save(ann.model_copy(update={"first_name": local}))
    sandbox.clock.advance(2)
    sandbox.edit_record("contacts", crm_id_of(sandbox, "ann@example.com"), {"firstname": crm})


def test_mapping_show_and_set(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, shown = run_json(data_dir, ["mapping", "show", "hs", "--object", "contact"], capsys)
    assert code == ExitCode.OK
    first = next(m for m in shown["mappings"] if m["field"] == "firstName")
    assert (first["crmField"], first["direction"], first["rule"]) == ("firstname", "two_way", "last_write_wins")
    assert {m["object"] for m in shown["mappings"]} == {"contact"}

    code, changed = run_json(data_dir, ["mapping", "set", "hs", "firstname", "--rule", "manual"], capsys)
    assert code == ExitCode.OK and (changed["field"], changed["rule"]) == ("firstName", "manual")
    code, out, _ = run(data_dir, ["mapping", "set", "hs", "company", "--object", "lead", "--direction", "pull_only"],
                       capsys)
    assert code == ExitCode.OK and "lead company" in out and "pull_only" in out
    code, out, _ = run(data_dir, ["mapping", "show", "hs"], capsys)
    [row] = [line for line in out.splitlines() if line.split()[:2] == ["contact", "firstName"]]
    assert "ask me" in row
    [row] = [line for line in out.splitlines() if line.split()[:2] == ["lead", "company"]]
    assert "pull_only" in row

    code, _, err = run(data_dir, ["mapping", "set", "hs", "favourite", "--rule", "manual"], capsys)
    assert code == ExitCode.USAGE and "no field 'favourite'" in err and "firstName" in err
    code, _, err = run(data_dir, ["mapping", "set", "hs", "firstName"], capsys)
    assert code == ExitCode.USAGE and "--rule" in err
    code, _, err = run(data_dir, ["mapping", "set", "hs", "custom.segment", "--rule", "manual"], capsys)
    assert code == ExitCode.USAGE and "--crm-field" in err

    # Checked against the CRM's live field list, as the panel checks it (a CRM field the CRM lacks was saved, and
    # the next sync failed every record with PROPERTY_DOESNT_EXIST); blank fields and the email off are refused.
    code, _, err = run(data_dir, ["mapping", "set", "hs", "lastName", "--crm-field", "does_not_exist"], capsys)
    assert code == ExitCode.USAGE and "lastName -> does_not_exist: the CRM has no such field" in err, err
    code, _, err = run(data_dir, ["mapping", "set", "hs", "company", "--crm-field", "   "], capsys)
    assert code == ExitCode.USAGE and "company: the CRM field is blank" in err
    code, _, err = run(data_dir, ["mapping", "set", "hs", "email", "--direction", "off"], capsys)
    assert code == ExitCode.USAGE and "email is every record's key" in err
    _, shown = run_json(data_dir, ["mapping", "show", "hs", "--object", "contact"], capsys)
    last = next(m for m in shown["mappings"] if m["field"] == "lastName")
    assert last["crmField"] == "lastname", "nothing of a refused change is saved"
    code, changed = run_json(data_dir, ["mapping", "set", "hs", "lastName", "--crm-field", "does_not_exist",
                                        "--no-check"], capsys)
    assert code == ExitCode.OK and changed["crmField"] == "does_not_exist"


def test_conflicts_decided_by_rule_are_reported_apart_from_waiting_ones(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    imported(data_dir, tmp_path, capsys)
    assert run(data_dir, ["sync", "hs"], capsys)[0] == ExitCode.OK
    assert run(data_dir, ["mapping", "set", "hs", "firstName", "--rule", "prefer_crm"], capsys)[0] == ExitCode.OK
    change_first_name_on_both_sides(data_dir, sandbox, "Annie", "Anna")

    code, out, _ = run(data_dir, ["sync", "hs"], capsys)
    assert code == ExitCode.OK
    assert "decided by rule (1)" in out and "0 conflicts waiting" in out
    assert "conflicts waiting for you" not in out
    assert run(data_dir, ["conflicts", "list"], capsys)[1].strip() == "no open conflicts"
    code, runs = run_json(data_dir, ["runs", "list"], capsys)
    decided_run = runs[0]
    assert (decided_run["counts"]["decided"], decided_run["counts"]["conflicts"]) == (1, 0)
    code, shown = run_json(data_dir, ["runs", "show", str(decided_run["id"])], capsys)
    [logged] = [r for r in shown["records"] if r["outcome"] == "conflict"]
    assert logged["record"] == "ann@example.com" and "decided by rule: CRM value kept" in logged["message"]
    code, out, _ = run(data_dir, ["runs", "show", str(decided_run["id"])], capsys)
    assert "decided by rule (1)" in out and "record log:   empty" not in out

    assert run(data_dir, ["mapping", "set", "hs", "firstName", "--rule", "manual"], capsys)[0] == ExitCode.OK
    change_first_name_on_both_sides(data_dir, sandbox, "Ann", "Annette")
    code, out, _ = run(data_dir, ["sync", "hs"], capsys)
    assert "conflicts waiting for you (1): crm-desktop conflicts list" in out and "decided by rule" not in out


def test_runs_undo_is_refused_twice_and_records_its_trigger_and_log(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    imported(data_dir, tmp_path, capsys)
    assert run(data_dir, ["sync", "hs"], capsys)[0] == ExitCode.OK
    sandbox.edit_record("contacts", crm_id_of(sandbox, "cy@example.com"), {"company": "Globex"})
    code, data = run_json(data_dir, ["sync", "hs", "--direction", "pull"], capsys)
    pull_run = data["results"][0]["runId"]

    code, out, _ = run(data_dir, ["runs", "undo", str(pull_run)], capsys)
    assert code == ExitCode.OK
    assert "1 local field value restored, 0 CRM field values restored, 1 CRM field value set to the restored" in out
    assert "company: Globex -> Initech" in out
    code, runs = run_json(data_dir, ["runs", "list"], capsys)
    assert (runs[0]["direction"], runs[0]["trigger"]) == ("undo", "cli")
    code, shown = run_json(data_dir, ["runs", "show", str(runs[0]["id"])], capsys)
    assert [(r["record"], r["outcome"]) for r in shown["records"]] == [("cy@example.com", "updated")]

    before = last_request(sandbox)
    code, _, err = run(data_dir, ["runs", "undo", str(pull_run)], capsys)
    assert code == ExitCode.PARTIAL and f"run {pull_run} was already undone" in err
    assert crm_writes(sandbox, before) == []


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "forced"])
def test_an_undo_finished_by_another_process_meanwhile_is_not_sent_again(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, force: list[str],
) -> None:
    """Two desktops (or a desktop and cron) undo one run at the same moment: the second takes the lock just after
    the first let it go, finds the run undone and says so (even with --force); the CRM gets the undo's writes
    once."""
    imported(data_dir, tmp_path, capsys)
    assert run(data_dir, ["sync", "hs"], capsys)[0] == ExitCode.OK
    sandbox.edit_record("contacts", crm_id_of(sandbox, "cy@example.com"), {"company": "Globex"})
    code, data = run_json(data_dir, ["sync", "hs", "--direction", "pull"], capsys)
    pull_run = data["results"][0]["runId"]
    before = last_request(sandbox)

    claim_lock = SyncStore.claim_lock
    other_codes: list[int] = []

    def other_undo_first(store: SyncStore, integration_id: int, owner: str | None = None) -> tuple[bool, Any]:
        # The other undo runs whole (on its own thread and loop, as another process would) after this one's first
        # look and before its lock.
        if not other_codes:
            other_codes.append(-1)
            other = threading.Thread(target=lambda: other_codes.append(
                main(["--data-dir", str(data_dir), "runs", "undo", str(pull_run)])))
            other.start()
            other.join()
        return claim_lock(store, integration_id, owner)

    monkeypatch.setattr(SyncStore, "claim_lock", other_undo_first)
    code, _, err = run(data_dir, ["runs", "undo", str(pull_run), *force], capsys)
    assert other_codes == [-1, ExitCode.OK]
    assert code == ExitCode.PARTIAL and f"run {pull_run} was already undone" in err
    # One undo's writes: the company put back once.
    assert len(crm_writes(sandbox, before)) == 1
    assert crm_value(sandbox, "cy@example.com", "company") == "Initech"
    code, runs = run_json(data_dir, ["runs", "list"], capsys)
    assert [r["direction"] for r in runs].count("undo") == 1


def test_runs_show_and_conflicts_list_read_a_page_at_a_time(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    imported(data_dir, tmp_path, capsys)
    code, data = run_json(data_dir, ["sync", "hs"], capsys)
    run_id = data["results"][0]["runId"]
    code, first = run_json(data_dir, ["runs", "show", str(run_id), "--limit", "1"], capsys)
    assert (len(first["records"]), first["recordsTotal"], first["offset"]) == (1, 2, 0)
    code, out, _ = run(data_dir, ["runs", "show", str(run_id), "--limit", "1"], capsys)
    assert "record log (2, 1-1 shown):" in out and f"more: crm-desktop runs show {run_id} --offset 1" in out
    code, second = run_json(data_dir, ["runs", "show", str(run_id), "--limit", "1", "--offset", "1"], capsys)
    assert {first["records"][0]["record"], second["records"][0]["record"]} == {"ann@example.com", "cy@example.com"}

    assert run(data_dir, ["mapping", "set", "hs", "company", "--rule", "manual"], capsys)[0] == ExitCode.OK
    with workspace_at(data_dir) as workspace:
        for email in ("ann@example.com", "cy@example.com"):
            found = workspace.contacts.find(email)
            assert found is not None
            workspace.contacts.save(found.model_copy(update={"company": "Local Co"}))
    sandbox.clock.advance(2)
    for email in ("ann@example.com", "cy@example.com"):
        sandbox.edit_record("contacts", crm_id_of(sandbox, email), {"company": "CRM Co"})
    assert run(data_dir, ["sync", "hs"], capsys)[0] == ExitCode.OK
    code, page = run_json(data_dir, ["conflicts", "list", "--limit", "1"], capsys)
    assert len(page) == 1
    code, out, _ = run(data_dir, ["conflicts", "list", "--limit", "1"], capsys)
    assert f"more conflicts wait: crm-desktop conflicts list --after {page[0]['id']}" in out
    code, rest = run_json(data_dir, ["conflicts", "list", "--after", str(page[0]["id"])], capsys)
    assert code == ExitCode.OK and [c["id"] for c in rest] == [page[0]["id"] + 1]


def test_a_column_without_a_crm_field_is_kept_listed_as_not_sent_and_never_fails_the_record(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "colours.csv"
    path.write_text("email,firstName,favorite_color\nann@example.com,Ann,teal\nbo@example.com,Bo,\n", encoding="utf-8")
    assert run(data_dir, ["contacts", "import", str(path)], capsys)[0] == ExitCode.OK

    code, plan = run_json(data_dir, ["sync", "hs", "--direction", "push", "--dry-run", "--json"], capsys)
    [planned] = plan["results"]
    assert code == ExitCode.OK and planned["notSent"]["columns"] == {"favorite_color": 1}
    code, out, _ = run(data_dir, ["sync", "hs", "--direction", "push"], capsys)
    assert code == ExitCode.OK and "2 created" in out and "0 failed" in out
    assert "not sent: no CRM field: favorite_color (1 record); kept locally" in out
    assert "crm-desktop mapping set hs custom.COLUMN --crm-field FIELD" in out
    assert crm_value(sandbox, "ann@example.com", "firstname") == "Ann"
    assert crm_value(sandbox, "ann@example.com", "favorite_color") is None
    with workspace_at(data_dir) as workspace:
        ann = workspace.contacts.find("ann@example.com")
    assert ann is not None and ann.custom_fields == {"favorite_color": "teal"}


def test_sync_all_exits_as_each_integration_would_alone_for_a_missing_permission(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the schema scope, the run cannot read the contact fields: it is refused before it starts.
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0), scopes=["oauth", "crm.objects.contacts.read"])
    data_dir = connect_cli(tmp_path / "D", "hubspot", sandbox, monkeypatch, name="hs")
    with workspace_at(data_dir) as workspace:
        workspace.contacts.save(Contact(email="dee@example.com", first_name="Dee"))
    code, _, err = run(data_dir, ["sync", "hs"], capsys)
    assert code == ExitCode.USAGE and "scope" in err, err
    # --all had said 1 (partly failed): only the CRM's admin can grant the scope, as the single sync says.
    code, data = run_json(data_dir, ["sync", "--all"], capsys)
    assert code == ExitCode.USAGE, data


def test_a_dry_run_line_without_fields_says_why_it_writes() -> None:
    from crm_desktop.cli.sync import _change_lines
    from crm_desktop.sync.plan import ChangeAction, PlannedChange, Side

    note_only = PlannedChange(RecordObject.CONTACT, "ann@example.com", Side.CRM, ChangeAction.UPDATE,
                              reason="its social note changed")
    assert _change_lines(note_only) == [
        "  update   in CRM   contact ann@example.com: its social note changed"]


def test_an_undo_refused_during_a_push_says_a_push_holds_the_lock(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An undo asked for while a ``contacts push`` held the integration's lock said "a sync" was running: it names
    the push and the desktop it runs on."""
    monkeypatch.setenv("CRM_DESKTOP_MACHINE_NAME", "desk-2")
    imported(data_dir, tmp_path, capsys)
    assert run(data_dir, ["sync", "hs"], capsys)[0] == ExitCode.OK
    sandbox.edit_record("contacts", crm_id_of(sandbox, "cy@example.com"), {"company": "Globex"})
    code, data = run_json(data_dir, ["sync", "hs", "--direction", "pull"], capsys)
    pull_run = data["results"][0]["runId"]
    path = tmp_path / "push.csv"
    path.write_text(CONTACTS_CSV, encoding="utf-8")

    let_go = SyncStore.release_lock
    undo_codes: list[int] = []

    def undo_while_the_push_holds_the_lock(store: SyncStore, integration_id: int, owner: str | None = None) -> None:
        # The push has sent its records and still holds the lock: an undo (on its own thread and loop, as another
        # process would) asks for it now.
        if not undo_codes:
            undo_codes.append(-1)
            other = threading.Thread(target=lambda: undo_codes.append(
                main(["--data-dir", str(data_dir), "runs", "undo", str(pull_run)])))
            other.start()
            other.join()
        let_go(store, integration_id, owner)

    monkeypatch.setattr(SyncStore, "release_lock", undo_while_the_push_holds_the_lock)
    _, _, err = run(data_dir, ["contacts", "push", "hs", "--file", str(path)], capsys)  # one row refused: exit 1
    assert undo_codes == [-1, ExitCode.PARTIAL]
    assert "a contacts push to 'hs' is running (on desk-2, process " in err and "; undo it afterwards" in err, err
    assert "a sync" not in err
    monkeypatch.setattr(SyncStore, "release_lock", let_go)
    code, _, err = run(data_dir, ["runs", "undo", str(pull_run)], capsys)
    assert code == ExitCode.OK, err


@pytest.mark.parametrize(("activity", "says"), [
    (None, "a sync of 'hs' is running (on other-host, process 4242)"),
    ("contacts push", "a contacts push to 'hs' is running (on other-host, process 4242)"),
    ("leads push", "a leads push to 'hs' is running (on other-host, process 4242)"),
    ("undo", "an undo of 'hs' is running (on other-host, process 4242)"),
    ("removal", "a removal of 'hs' is running (on other-host, process 4242)"),
])
def test_undo_and_removal_refusals_name_what_holds_the_lock(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], activity: str | None, says: str
) -> None:
    """The lock's owner id says what holds it (``host:pid`` and, but for a sync, what it does); the refusals of
    an undo and of a removal name it, and where it runs."""
    imported(data_dir, tmp_path, capsys)
    code, data = run_json(data_dir, ["sync", "hs"], capsys)
    run_id = data["results"][0]["runId"]
    owner = "other-host:4242" + (f":{activity}" if activity else "")
    with workspace_at(data_dir) as workspace:
        integration = workspace.integrations.get("hs")
        assert integration.id is not None
        assert workspace.sync.store.acquire_lock(integration.id, owner=owner)
    code, _, err = run(data_dir, ["runs", "undo", str(run_id)], capsys)
    assert code == ExitCode.PARTIAL and says in err and "; undo it afterwards" in err, err
    code, _, err = run(data_dir, ["integration", "remove", "hs"], capsys)
    assert code == ExitCode.PARTIAL and says in err and "; remove the integration once it has ended" in err, err
