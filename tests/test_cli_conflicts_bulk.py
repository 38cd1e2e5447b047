"""``conflicts resolve`` of several conflicts or ``--all``: one decision for many, written to a HubSpot sandbox served
over real loopback sockets in its batches, each conflict's outcome told, a refusal or a race leaving the others
resolved."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from crm_desktop.cli import ExitCode
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sandbox.core import FaultKind, FaultRule
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.store.models import ConflictRule
from tests.support.cli_runs import run, run_json, workspace_at
from tests.test_cli_conflicts_keep_local import data_dir, sandbox
from tests.test_cli_sync import crm_id_of, crm_value, crm_writes, imported, last_request

__all__ = ["data_dir", "sandbox"]  # the loopback fixtures

pytestmark = pytest.mark.loopback

EMAILS = ("ann@example.com", "cy@example.com")


def make_conflicts(data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox | SalesforceSandbox,
                   capsys: pytest.CaptureFixture[str],
                   edit_in_crm: Callable[[str], None] | None = None) -> dict[tuple[str, str], int]:
    """First and last names of both contacts changed on both sides under a manual rule: four open conflicts, by
    (email, field). ``edit_in_crm(email)`` is the salesperson's edit (by default HubSpot's)."""
    imported(data_dir, tmp_path, capsys)
    assert run(data_dir, ["sync", "hs"], capsys)[0] == ExitCode.OK
    with workspace_at(data_dir) as workspace:
        integration = workspace.integrations.get("hs")
        for name in ("firstName", "lastName"):
            workspace.sync.set_rule(integration, RecordObject.CONTACT, name, ConflictRule.MANUAL)
        for email in EMAILS:
            person = workspace.contacts.find(email)
            assert person is not None
            workspace.contacts.save(person.model_copy(update={"first_name": "Local", "last_name": "Here"}))
    for email in EMAILS:
        if edit_in_crm is not None:
            edit_in_crm(email)
        else:
            assert isinstance(sandbox, HubSpotSandbox)
            sandbox.edit_record("contacts", crm_id_of(sandbox, email), {"firstname": "Crm", "lastname": "There"})
    code, data = run_json(data_dir, ["sync", "hs"], capsys)
    assert code == ExitCode.OK and data["results"][0]["counts"]["conflicts"] == 4
    code, listed = run_json(data_dir, ["conflicts", "list"], capsys)
    return {(item["record"], item["field"]): int(item["id"]) for item in listed}


def open_ids(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> set[int]:
    code, listed = run_json(data_dir, ["conflicts", "list"], capsys)
    assert code == ExitCode.OK
    return {int(item["id"]) for item in listed}


def test_all_on_one_field_keeps_the_local_values_in_one_crm_batch(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = make_conflicts(data_dir, tmp_path, sandbox, capsys)
    after = last_request(sandbox)
    code, out, err = run(data_dir, ["conflicts", "resolve", "--all", "--integration", "hs", "--field", "firstName",
                                    "--take", "local"], capsys)
    assert code == ExitCode.OK, err
    for email in EMAILS:
        assert (f"conflict {ids[(email, 'firstName')]} resolved: {email} firstName in hs = Local locally and in "
                "the CRM") in out
        assert crm_value(sandbox, email, "firstname") == "Local"
        assert crm_value(sandbox, email, "lastname") == "There", "the other field's conflict is left alone"
    assert out.rstrip().endswith("2 of 2 conflicts resolved (took the local value now)")
    # Both records' values went out in one batch request, not one request per conflict.
    assert crm_writes(sandbox, after) == ["POST /crm/v3/objects/contacts/batch/update"]
    assert open_ids(data_dir, capsys) == {ids[(email, "lastName")] for email in EMAILS}

    code, out, _ = run(data_dir, ["conflicts", "resolve", "--all", "--field", "firstName", "--take", "crm"], capsys)
    assert code == ExitCode.OK and "no open conflicts on field firstName" in out
    # The field as the app labels it, in any case.
    code, data = run_json(data_dir, ["conflicts", "resolve", "--all", "--field", "last name", "--take", "crm"],
                          capsys)
    assert code == ExitCode.OK and data["summary"]["resolved"] == 2
    assert open_ids(data_dir, capsys) == set()


def test_two_fields_of_one_record_resolved_together_leave_nothing_for_the_next_sync(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each resolution moves its field's merge base; the second field of a record must not put back the first's."""
    ids = make_conflicts(data_dir, tmp_path, sandbox, capsys)
    code, data = run_json(data_dir, ["conflicts", "resolve", str(ids[(EMAILS[0], "firstName")]),
                                     str(ids[(EMAILS[0], "lastName")]), "--take", "local"], capsys)
    assert code == ExitCode.OK
    assert [(r["field"], r["status"], r["value"]) for r in data["results"]] == [
        ("firstName", "resolved", "Local"), ("lastName", "resolved", "Here")]
    assert data["summary"] == {"total": 2, "resolved": 2, "alreadyResolved": 0, "beingResolved": 0, "failed": 0,
                               "notTried": 0}
    code, data = run_json(data_dir, ["conflicts", "resolve", "--all", "--take", "crm"], capsys)
    assert code == ExitCode.OK and data["summary"]["resolved"] == 2
    with workspace_at(data_dir) as workspace:
        ann, cy = (workspace.contacts.find(email) for email in EMAILS)
        assert ann is not None and (ann.first_name, ann.last_name) == ("Local", "Here")
        assert cy is not None and (cy.first_name, cy.last_name) == ("Crm", "There")
    after = last_request(sandbox)
    code, synced = run_json(data_dir, ["sync", "hs"], capsys)
    assert code == ExitCode.OK and synced["results"][0]["counts"]["conflicts"] == 0
    assert crm_writes(sandbox, after) == [], "both sides agree: the next sync writes nothing"


def test_a_value_the_crm_refuses_leaves_that_conflict_open_and_the_others_resolved(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = make_conflicts(data_dir, tmp_path, sandbox, capsys)
    first = [ids[(email, "firstName")] for email in EMAILS]
    sandbox.faults.add(FaultRule(FaultKind.INVALID_RECORD, probability=1.0, remaining=1))
    code, data = run_json(data_dir, ["conflicts", "resolve", *map(str, first), "--take", "local"], capsys)
    assert code == ExitCode.PARTIAL
    by_status = {r["status"]: r for r in data["results"]}
    assert set(by_status) == {"resolved", "failed"}
    failed = by_status["failed"]
    assert failed["reason"].startswith("the CRM refused the value: ")
    assert "is invalid" in failed["reason"], "the CRM's own reason"
    assert failed["value"] is None and by_status["resolved"]["value"] == "Local"
    assert data["summary"] == {"total": 2, "resolved": 1, "alreadyResolved": 0, "beingResolved": 0, "failed": 1,
                               "notTried": 0}
    assert crm_value(sandbox, failed["record"], "firstname") == "Crm"
    assert crm_value(sandbox, by_status["resolved"]["record"], "firstname") == "Local"
    assert failed["id"] in open_ids(data_dir, capsys) and by_status["resolved"]["id"] not in open_ids(data_dir, capsys)

    # In words: each line, then the summary.
    sandbox.faults.add(FaultRule(FaultKind.INVALID_RECORD, probability=1.0, remaining=1))
    code, out, _ = run(data_dir, ["conflicts", "resolve", str(failed["id"]), str(ids[(EMAILS[0], "lastName")]),
                                  "--take", "local"], capsys)
    assert code == ExitCode.PARTIAL
    assert f"conflict {failed['id']} failed (left open): {failed['record']} firstName in hs: " in out
    assert out.rstrip().endswith("1 of 2 conflicts resolved (took the local value now); 1 failed (left open)")


def test_a_conflict_resolved_or_claimed_elsewhere_is_told_and_the_rest_resolved(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = make_conflicts(data_dir, tmp_path, sandbox, capsys)
    done, claimed, rest = ids[(EMAILS[0], "firstName")], ids[(EMAILS[1], "firstName")], ids[(EMAILS[0], "lastName")]
    assert run(data_dir, ["conflicts", "resolve", str(done), "--take", "crm"], capsys)[0] == ExitCode.OK
    with workspace_at(data_dir) as workspace:
        # Another window is writing this one right now.
        assert workspace.sync.store.claim_conflict(claimed)
    code, data = run_json(data_dir, ["conflicts", "resolve", str(done), str(claimed), str(rest), "--take", "local"],
                          capsys)
    assert code == ExitCode.PARTIAL
    results = {r["id"]: r for r in data["results"]}
    assert results[done]["status"] == "already_resolved"
    assert f"conflict {done} is already resolved (crm)" in results[done]["reason"]
    assert results[claimed]["status"] == "being_resolved"
    assert "is being resolved right now in another window" in results[claimed]["reason"]
    assert (results[rest]["status"], results[rest]["value"]) == ("resolved", "Here")
    assert crm_value(sandbox, EMAILS[1], "firstname") == "Crm", "nothing written for the claimed one"
    assert crm_value(sandbox, EMAILS[0], "lastname") == "Here"
    with workspace_at(data_dir) as workspace:
        resolved = workspace.sync.conflict(done)
        assert (resolved.resolution, resolved.resolved_value) == ("crm", "Crm"), "the first decision stands"


def test_several_conflicts_are_refused_a_typed_value_and_mixed_selections(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = make_conflicts(data_dir, tmp_path, sandbox, capsys)
    one, two = ids[(EMAILS[0], "firstName")], ids[(EMAILS[1], "firstName")]
    code, _, err = run(data_dir, ["conflicts", "resolve", str(one), str(two), "--set", "firstName=Zed"], capsys)
    assert code == ExitCode.USAGE and "for several conflicts use --take crm|local" in err
    code, _, err = run(data_dir, ["conflicts", "resolve", str(one), "--all", "--take", "crm"], capsys)
    assert code == ExitCode.USAGE and "not both" in err
    code, _, err = run(data_dir, ["conflicts", "resolve", str(one), "--field", "firstName", "--take", "crm"], capsys)
    assert code == ExitCode.USAGE and "choose the conflicts of --all" in err
    code, _, err = run(data_dir, ["conflicts", "resolve", "--take", "crm"], capsys)
    assert code == ExitCode.USAGE and "or --all" in err
    code, _, err = run(data_dir, ["conflicts", "resolve", str(one), "99999", "--take", "crm"], capsys)
    assert code == ExitCode.USAGE and "no conflict 99999" in err
    assert open_ids(data_dir, capsys) == set(ids.values()), "nothing was resolved"


def test_a_record_deleted_here_since_keeps_its_rules_among_many(
    data_dir: Path, tmp_path: Path, sandbox: HubSpotSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """Keeping the local value of a record deleted here since is refused with the reason (the others resolved);
    keeping the CRM's closes it, writing nothing, as for one conflict."""
    ids = make_conflicts(data_dir, tmp_path, sandbox, capsys)
    with workspace_at(data_dir) as workspace:
        workspace.contacts.remove(EMAILS[0])
    first = [ids[(email, "firstName")] for email in EMAILS]
    code, data = run_json(data_dir, ["conflicts", "resolve", *map(str, first), "--take", "local"], capsys)
    assert code == ExitCode.PARTIAL
    gone, kept = data["results"]
    assert gone["status"] == "failed" and "deleted since the conflict was raised" in gone["reason"]
    assert (kept["status"], kept["value"]) == ("resolved", "Local")
    assert crm_value(sandbox, EMAILS[0], "firstname") == "Crm"
    after = last_request(sandbox)
    code, data = run_json(data_dir, ["conflicts", "resolve", "--all", "--integration", "hs", "--take", "crm"], capsys)
    assert code == ExitCode.OK and data["summary"]["resolved"] == 3
    assert crm_writes(sandbox, after) == [], "the CRM's values kept: nothing to write there"
    assert open_ids(data_dir, capsys) == set()
