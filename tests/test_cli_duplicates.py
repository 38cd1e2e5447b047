"""``crm-desktop contacts duplicates`` and ``contacts merge`` against sandbox CRMs over loopback: the same service
the People panel uses, by email or id, with a per-field --take."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from crm_desktop.domain.models import Contact, Integration, Provider, SocialPlatform, SocialProfile
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.domain.social import EngagementEvent, EngagementUser, TouchpointType
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.sandbox.server import SandboxServer
from crm_desktop.store.models import SyncTrigger
from tests.support.cli_runs import run, run_json, workspace_at

pytestmark = pytest.mark.loopback


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Path, HubSpotSandbox]]:
    hubspot = HubSpotSandbox(SandboxConfig(contacts=0, seed=4))
    salesforce = SalesforceSandbox(SandboxConfig(contacts=0, seed=3))
    server = SandboxServer([hubspot, salesforce])
    server.start()
    try:
        with workspace_at(tmp_path / "data") as workspace:
            for provider, sandbox in ((Provider.HUBSPOT, hubspot), (Provider.SALESFORCE, salesforce)):
                workspace.integrations.add(
                    Integration(provider=provider, name=provider.value, base_url=sandbox.base_url),
                    sandbox.credentials())
            workspace.contacts.save_many([
                Contact(email="ada@example.com", first_name="Ada", last_name="Lovelace"),
                Contact(email="ada+news@example.com", first_name="Augusta", company="Engines",
                        social_profiles=[SocialProfile(platform=SocialPlatform.TWITTER, username="ada")]),
            ])
            ids = [c.id for c in workspace.sync.store.local_by_emails(
                RecordObject.CONTACT, ["ada@example.com", "ada+news@example.com"]).values()]
            for name in ("hubspot", "salesforce"):
                result = asyncio.run(workspace.sync.push_now(name, {RecordObject.CONTACT: ids}, SyncTrigger.CLI))
                assert not result.failures
        yield tmp_path / "data", hubspot
    finally:
        server.stop()


def test_duplicates_then_merge(home: tuple[Path, HubSpotSandbox], capsys: pytest.CaptureFixture[str]) -> None:
    data_dir, hubspot = home
    code, listed = run_json(data_dir, ["contacts", "duplicates"], capsys)
    assert code == 0
    assert listed["groups"] == [{"reason": "email", "shared": "ada@example.com", "contacts": [
        {"id": 1, "email": "ada@example.com"}, {"id": 2, "email": "ada+news@example.com"}]}]
    assert listed["reported"] == []
    code, out, _ = run(data_dir, ["contacts", "duplicates"], capsys)
    assert out == "same email: ada@example.com: ada@example.com, ada+news@example.com\n"

    code, merged = run_json(data_dir, ["contacts", "merge", "ada@example.com", "2", "--take", "company"], capsys)
    assert code == 1, "Salesforce must be merged by hand"
    assert merged["merged"] == "ada+news@example.com" and "company" in merged["took"]
    assert [line.split(":")[0] for line in merged["mergedInCrm"]] == ["hubspot"]
    assert [line.split(":")[0] for line in merged["mergeByHand"]] == ["salesforce"]
    assert len([r for r in hubspot._records["contacts"].values() if not r.archived]) == 1
    with workspace_at(data_dir) as workspace:
        kept = workspace.contacts.find("ada@example.com")
        assert kept is not None and (kept.first_name, kept.company) == ("Ada", "Engines")
        assert workspace.contacts.find("ada+news@example.com") is None
    code, listed = run_json(data_dir, ["contacts", "duplicates"], capsys)
    assert listed["groups"] == []


def test_a_merge_fills_the_kept_contacts_blanks_as_the_dialog_does_unless_kept_blank(
        home: tuple[Path, HubSpotSandbox], capsys: pytest.CaptureFixture[str]) -> None:
    """`contacts merge` kept a blank the merge dialog fills (its "Take other" is ticked there), and wrote it as a
    clear onto the surviving HubSpot record: the other's company was wiped in the CRM."""
    data_dir, hubspot = home
    code, merged = run_json(data_dir, ["contacts", "merge", "ada@example.com", "ada+news@example.com"], capsys)
    assert code == 1, "Salesforce must be merged by hand"
    assert "company" in merged["took"] and "firstName" not in merged["took"], merged  # Ada's own name is kept
    [survivor] = [r for r in hubspot._records["contacts"].values() if not r.archived]
    assert survivor.properties.get("company") == "Engines"
    with workspace_at(data_dir) as workspace:
        kept = workspace.contacts.find("ada@example.com")
        assert kept is not None and (kept.first_name, kept.company) == ("Ada", "Engines")


def test_keep_blank_keeps_the_kept_contacts_blank(home: tuple[Path, HubSpotSandbox],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    data_dir, _ = home
    code, merged = run_json(data_dir, ["contacts", "merge", "ada@example.com", "ada+news@example.com",
                                       "--keep-blank", "company"], capsys)
    assert code == 1 and "company" not in merged["took"], merged
    with workspace_at(data_dir) as workspace:
        kept = workspace.contacts.find("ada@example.com")
        assert kept is not None and kept.company is None


def test_merge_refusals_name_the_problem(home: tuple[Path, HubSpotSandbox], capsys: pytest.CaptureFixture[str]) -> None:
    data_dir, _ = home
    code, _, err = run(data_dir, ["contacts", "merge", "ada@example.com", "ada@example.com"], capsys)
    assert code == 2 and "cannot be merged with itself" in err
    code, _, err = run(data_dir, ["contacts", "merge", "ada@example.com", "nobody@example.com"], capsys)
    assert code == 2 and "no contact with email nobody@example.com" in err
    # An id no contact ever had, one beyond the database's integers, and digits that are not 0-9, named as such.
    for key in ("0", "99", "99999999999999999999999"):
        code, _, err = run(data_dir, ["contacts", "merge", "ada@example.com", key], capsys)
        assert code == 2 and f"no contact with id {key}" in err, err
    code, _, err = run(data_dir, ["contacts", "merge", "\u00b2", "ada@example.com"], capsys)
    assert code == 2 and "Traceback" not in err and "\u00b2" in err, err
    with pytest.raises(SystemExit) as usage:
        run(data_dir, ["contacts", "merge", "1", "2", "--take", "email"], capsys)
    assert usage.value.code == 2 and "invalid choice: 'email'" in capsys.readouterr().err


def test_a_merge_keeps_the_merged_contacts_social_activity(
    home: tuple[Path, HubSpotSandbox], capsys: pytest.CaptureFixture[str]
) -> None:
    # The touchpoints of the contact merged away were left under its email: the kept contact showed no activity
    # and no score, and the merged person's timeline was reachable by no contact.
    data_dir, _ = home
    with workspace_at(data_dir) as workspace:
        workspace.sync.social.record_engagements([
            EngagementEvent(platform=SocialPlatform.TWITTER, type=TouchpointType(kind),
                            timestamp=datetime(2026, 12, 1, hour, tzinfo=UTC), post_id=f"p{hour}", campaign="winter",
                            user=EngagementUser(email="ada+news@example.com"))
            for hour, kind in ((9, "like"), (10, "comment"), (11, "share"))])
    code, _, _ = run(data_dir, ["contacts", "merge", "ada@example.com", "ada+news@example.com"], capsys)
    assert code == 1, "Salesforce must be merged by hand"
    code, score = run_json(data_dir, ["social", "score", "--email", "ada@example.com"], capsys)
    assert code == 0 and score["interactions"] == 3, score
    code, listed = run_json(data_dir, ["contacts", "list"], capsys)
    [kept] = listed["people"]
    assert kept["email"] == "ada@example.com" and kept["engagementScore"] == score["score"] > 0, (kept, score)


def test_a_kept_contact_whose_crm_record_is_gone_takes_over_the_others(
    home: tuple[Path, HubSpotSandbox], capsys: pytest.CaptureFixture[str]
) -> None:
    # A salesperson deleted the kept contact's HubSpot record: HubSpot refuses the merge (404). The advice was to
    # merge the other record into the deleted one, the kept contact stayed linked to nothing, and the other record
    # was skipped by every pull: the person was in HubSpot only under the email merged away.
    data_dir, hubspot = home
    with workspace_at(data_dir) as workspace:
        links = workspace.sync.store.links_for_local(1, RecordObject.CONTACT, [1, 2])
        kept_id, other_id = links[1].crm_id, links[2].crm_id
        # The kept contact already has what the merge would add: the merge leaves it as it is.
        ada = workspace.contacts.find("ada@example.com")
        assert ada is not None
        workspace.contacts.save(ada.model_copy(update={"social_profiles": [
            SocialProfile(platform=SocialPlatform.TWITTER, username="ada_l")]}))
        # The other is edited (and synced) after it: its link was synced later than the kept contact changed.
        other = workspace.contacts.find("ada+news@example.com")
        assert other is not None
        workspace.contacts.save(other.model_copy(update={"company": "Engines Ltd"}))
    assert run_json(data_dir, ["sync", "hubspot"], capsys)[0] == 0
    token = hubspot.credentials()["token"]
    deleted = httpx.delete(f"{hubspot.base_url}/crm/v3/objects/contacts/{kept_id}",
                           headers={"Authorization": f"Bearer {token}"})
    assert deleted.status_code == 204
    code, merged = run_json(data_dir, ["contacts", "merge", "ada@example.com", "ada+news@example.com"], capsys)
    assert code == 1, "Salesforce must be merged by hand"
    assert [line.split(":")[0] for line in merged["mergeByHand"]] == ["salesforce"], merged
    assert any(line.startswith("hubspot:") and other_id in line for line in merged["mergedInCrm"]), merged
    code, synced = run_json(data_dir, ["sync", "hubspot"], capsys)
    assert code == 0, synced
    alive = [r for r in hubspot._records["contacts"].values() if not r.archived]
    assert [(r.id, r.properties.get("email")) for r in alive] == [(other_id, "ada@example.com")]


def test_a_conflict_of_the_contact_merged_away_is_closed(
    home: tuple[Path, HubSpotSandbox], capsys: pytest.CaptureFixture[str]
) -> None:
    # A conflict waiting on the contact merged away could never be resolved ("the local record ... was deleted")
    # and stayed open, counted in the sidebar, for ever.
    data_dir, hubspot = home
    assert run(data_dir, ["mapping", "set", "hubspot", "firstName", "--rule", "manual"], capsys)[0] == 0
    assert run(data_dir, ["contacts", "set", "ada+news@example.com", "firstName=Gus"], capsys)[0] == 0
    with workspace_at(data_dir) as workspace:
        other_id = workspace.sync.store.links_for_local(1, RecordObject.CONTACT, [2])[2].crm_id
    hubspot.clock.advance(2)
    edited = httpx.patch(f"{hubspot.base_url}/crm/v3/objects/contacts/{other_id}",
                         json={"properties": {"firstname": "Augie"}},
                         headers={"Authorization": f"Bearer {hubspot.credentials()['token']}"})
    assert edited.status_code == 200
    assert run(data_dir, ["sync", "hubspot"], capsys)[0] == 0
    _, waiting = run_json(data_dir, ["conflicts", "list"], capsys)
    assert [c["record"] for c in waiting] == ["ada+news@example.com"], waiting
    run(data_dir, ["contacts", "merge", "ada@example.com", "ada+news@example.com"], capsys)
    assert run_json(data_dir, ["conflicts", "list"], capsys) == (0, [])


def test_undoing_a_run_names_a_contact_merged_since(
    home: tuple[Path, HubSpotSandbox], capsys: pytest.CaptureFixture[str]
) -> None:
    # It was "contact 2: deleted since; nothing to restore", when the contact was merged into another.
    data_dir, _ = home
    run(data_dir, ["contacts", "merge", "ada@example.com", "ada+news@example.com"], capsys)
    _, out, _ = run(data_dir, ["runs", "undo", "1", "--force"], capsys)
    assert "ada+news@example.com: merged into ada@example.com since; nothing to restore" in out, out
    assert "deleted since" not in out, out


def test_undoing_an_import_names_a_contact_merged_since(
    home: tuple[Path, HubSpotSandbox], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data_dir, _ = home
    people = tmp_path / "people.csv"
    people.write_text("email,firstName,phone\nbo@example.com,Bo,+14155550123\nb.o@example.com,B,+14155550123\n")
    assert run(data_dir, ["contacts", "import", str(people)], capsys)[0] == 0
    run(data_dir, ["contacts", "merge", "bo@example.com", "b.o@example.com"], capsys)
    _, out, _ = run(data_dir, ["runs", "undo", "3"], capsys)
    assert "b.o@example.com: merged into bo@example.com since; nothing to restore" in out, out


def hubspot_ids(data_dir: Path) -> tuple[str, str]:
    """The HubSpot ids of the kept contact (local 1) and the one merged into it (local 2)."""
    with workspace_at(data_dir) as workspace:
        links = workspace.sync.store.links_for_local(1, RecordObject.CONTACT, [1, 2])
    return links[1].crm_id, links[2].crm_id


def merged_with_salesforce_by_hand(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """``contacts merge`` of Ada's two emails: exit 1, as Salesforce must be merged by hand; what HubSpot said."""
    code, merged = run_json(data_dir, ["contacts", "merge", "ada@example.com", "ada+news@example.com"], capsys)
    assert code == 1, "Salesforce must be merged by hand"
    assert [line.split(":")[0] for line in merged["mergeByHand"]] == ["salesforce"], merged
    return list(merged["mergedInCrm"])


def test_a_merge_whose_answer_is_lost_after_hubspot_made_it_is_reported_merged(
    home: tuple[Path, HubSpotSandbox], capsys: pytest.CaptureFixture[str]
) -> None:
    # HubSpot merged the two, then the connection died before its answer came: the merge was reported refused
    # ("merge them there"), and doing so was refused as not found (the contact merged away is gone).
    data_dir, hubspot = home
    kept_id, other_id = hubspot_ids(data_dir)
    httpx.patch(f"{hubspot.base_url}/__sandbox__/config", json={"hang_seconds": 0.2}).raise_for_status()
    httpx.put(f"{hubspot.base_url}/__sandbox__/faults", json=[
        {"kind": "timeout_after_doing", "probability": 1.0, "remaining": 1, "path": "/merge"}]).raise_for_status()
    assert merged_with_salesforce_by_hand(data_dir, capsys) == [f"hubspot: contact {other_id} merged into {kept_id}"]
    assert [(e.path, e.fault) for e in hubspot.requests if e.path.endswith("/merge")] == [
        ("/crm/v3/objects/contacts/merge", "timeout_after_doing")], "the merge was made once, never sent again"
    assert [r.id for r in hubspot._records["contacts"].values()] == [kept_id]


def test_a_merge_an_earlier_run_lost_is_reported_already_merged(
    home: tuple[Path, HubSpotSandbox], capsys: pytest.CaptureFixture[str]
) -> None:
    # An earlier run's merge landed in HubSpot, its answer lost: merging again is refused as not found (404) for the
    # contact merged away, whose email now sits on the kept one. That is the merge done, not a failure.
    data_dir, hubspot = home
    kept_id, other_id = hubspot_ids(data_dir)
    token = hubspot.credentials()["token"]
    earlier = httpx.post(f"{hubspot.base_url}/crm/v3/objects/contacts/merge",
                         headers={"Authorization": f"Bearer {token}"},
                         json={"primaryObjectId": kept_id, "objectIdToMerge": other_id})
    assert earlier.status_code == 200
    assert merged_with_salesforce_by_hand(data_dir, capsys) == [
        f"hubspot: contact {other_id} was already merged into {kept_id} (an earlier merge whose answer was lost)"]
    with workspace_at(data_dir) as workspace:
        assert workspace.contacts.find("ada+news@example.com") is None
        assert workspace.sync.store.links_for_local(1, RecordObject.CONTACT, [1])[1].crm_id == kept_id
