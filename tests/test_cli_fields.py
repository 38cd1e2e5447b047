"""``crm-desktop fields ensure``: the seed's social fields created on each sandbox CRM, once, and then used by sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_desktop.cli import ExitCode
from crm_desktop.cli import common as cli_common
from crm_desktop.domain.models import Contact, Integration, Provider, SocialPlatform, SocialProfile
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sandbox.core import Sandbox, SandboxConfig
from crm_desktop.sandbox.hubspot import DEFAULT_SCOPES, HubSpotSandbox
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.sync.social_fields import social_fields
from tests.support.cli_runs import credentials_of, run, run_json, workspace_at


def bare_sandbox(provider: str, **options: object) -> Sandbox:
    """A sandbox CRM with none of the seed's social fields."""
    config = SandboxConfig(contacts=0)
    if provider == "salesforce":
        salesforce = SalesforceSandbox(config, **options)  # type: ignore[arg-type]
        salesforce.set_custom_fields([])
        return salesforce
    if provider == "hubspot":
        return HubSpotSandbox(config, social_properties=False, **options)  # type: ignore[arg-type]
    pipedrive = PipedriveSandbox(config)
    pipedrive.apply_config({"burst_limit": 120, "search_burst_limit": 100})
    return pipedrive


def on_sandbox(directory: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(cli_common, "http_transport", sandbox.transport())
    with workspace_at(directory) as workspace:
        workspace.integrations.add(
            Integration(provider=sandbox.provider, name="crm", base_url=sandbox.base_url, domain="acme"),
            credentials_of(sandbox.provider, sandbox),
        )
    return directory


def seed_names(provider: str) -> list[str]:
    return [f.name for obj in RecordObject for f in social_fields(Provider(provider), obj)]


@pytest.mark.parametrize("provider", ["salesforce", "hubspot", "pipedrive"])
def test_dry_run_lists_then_ensure_creates_each_missing_field_once(
    provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = bare_sandbox(provider)
    data_dir = on_sandbox(tmp_path / "D", sandbox, monkeypatch)
    wanted = seed_names(provider)

    code, dry = run_json(data_dir, ["fields", "ensure", "crm", "--dry-run"], capsys)
    assert code == ExitCode.OK and dry["dryRun"] is True
    assert [f["name"] for f in dry["fields"]] == wanted
    assert {f["status"] for f in dry["fields"]} == {"would_create"}
    code, again = run_json(data_dir, ["fields", "ensure", "crm", "--dry-run"], capsys)
    assert again["summary"]["would_create"] == len(wanted)  # the dry run created nothing

    code, made = run_json(data_dir, ["fields", "ensure", "crm"], capsys)
    assert code == ExitCode.OK, made
    # Every contact field is created; a HubSpot lead may already see the contact property just made.
    assert {f["status"] for f in made["fields"] if f["object"] == "contact"} == {"created"}
    assert made["summary"]["failed"] == made["summary"]["would_create"] == 0

    code, second = run_json(data_dir, ["fields", "ensure", "crm"], capsys)
    assert code == ExitCode.OK
    assert second["summary"] == {"present": len(wanted), "created": 0, "would_create": 0, "failed": 0}
    if provider == "pipedrive":
        assert isinstance(sandbox, PipedriveSandbox)
        custom = [f for f in sandbox.person_fields if f.custom]
        assert sorted(f.name for f in custom) == sorted(wanted)  # each created once, by name
        assert any("note" in note for note in second["notes"])
        # The marketer reads names, never the 40-hex keys.
        assert all(f.key not in str(second) for f in custom)


@pytest.mark.parametrize("provider", ["salesforce", "hubspot", "pipedrive"])
def test_a_sync_after_ensure_writes_the_social_fields(
    provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = bare_sandbox(provider)
    data_dir = on_sandbox(tmp_path / "D", sandbox, monkeypatch)
    with workspace_at(data_dir) as workspace:
        workspace.contacts.save(Contact(
            email="ana@example.com", first_name="Ana", last_name="Silva",
            social_profiles=[
                SocialProfile(platform=SocialPlatform.TWITTER, username="anasilva", followers=1200, engagement=4.5),
                SocialProfile(platform=SocialPlatform.INSTAGRAM, username="ana.silva", followers=300),
            ],
        ))
    # Without the fields, the sync still writes the contact (the seed fields are left out, not failing it).
    code, out, err = run(data_dir, ["sync", "crm", "--direction", "push"], capsys)
    assert code == ExitCode.OK, out + err
    code, _ = run_json(data_dir, ["fields", "ensure", "crm"], capsys)
    assert code == ExitCode.OK
    with workspace_at(data_dir) as workspace:
        contact = workspace.contacts.find("ana@example.com")
        assert contact is not None
        workspace.contacts.save(contact.model_copy(update={"first_name": "Ana Maria"}))
    code, out, err = run(data_dir, ["sync", "crm", "--direction", "push"], capsys)
    assert code == ExitCode.OK, out + err
    if isinstance(sandbox, SalesforceSandbox):
        [record] = sandbox.records["Contact"].values()
        assert record["twitter_username__c"] == "anasilva"
        assert record["twitter_url__c"] == "https://x.com/anasilva"
        assert record["twitter_followers__c"] == 1200
        assert record["instagram_followers__c"] == 300
    elif isinstance(sandbox, HubSpotSandbox):
        [contact_record] = sandbox._records["contacts"].values()
        properties = contact_record.properties
        assert properties["twitter_username"] == "anasilva"
        assert properties["twitter_followers"] == "1200"
        assert properties["instagram_followers"] == "300"
    else:
        assert isinstance(sandbox, PipedriveSandbox)
        keys = {f.name: f.key for f in sandbox.person_fields if f.custom}
        [person] = sandbox.persons.values()
        assert person.custom_fields[keys["twitter_username"]] == "anasilva"
        assert person.custom_fields[keys["instagram_username"]] == "ana.silva"


def test_salesforce_without_customize_application_names_the_permission(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = bare_sandbox("salesforce", customize_application=False)
    data_dir = on_sandbox(tmp_path / "D", sandbox, monkeypatch)
    code, report = run_json(data_dir, ["fields", "ensure", "crm"], capsys)
    assert code == ExitCode.PARTIAL
    assert {f["status"] for f in report["fields"]} == {"failed"}
    assert all("permission refused" in f["reason"] and "Customize Application" in f["reason"]
               for f in report["fields"])
    assert isinstance(sandbox, SalesforceSandbox) and sandbox.created_fields == {}


def test_hubspot_without_the_schema_scope_names_the_scope(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    scopes = [s for s in DEFAULT_SCOPES if s != "crm.schemas.contacts.write"]
    sandbox = bare_sandbox("hubspot", scopes=scopes)
    data_dir = on_sandbox(tmp_path / "D", sandbox, monkeypatch)
    code, report = run_json(data_dir, ["fields", "ensure", "crm"], capsys)
    assert code == ExitCode.PARTIAL
    contact_fields = [f for f in report["fields"] if f["object"] == "contact"]
    assert {f["status"] for f in contact_fields} == {"failed"}
    assert all("crm.schemas.contacts.write" in f["reason"] for f in contact_fields)


def test_a_salesforce_field_hidden_by_field_security_says_what_the_admin_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = bare_sandbox("salesforce", field_access_on_create=False)
    assert isinstance(sandbox, SalesforceSandbox)
    data_dir = on_sandbox(tmp_path / "D", sandbox, monkeypatch)
    code, out, _ = run(data_dir, ["fields", "ensure", "crm"], capsys)
    assert code == ExitCode.PARTIAL
    assert "Set Field-Level Security" in out and "twitter_username__c" in out
    # Not created twice: the org already has it, the user just cannot see it yet.
    code, report = run_json(data_dir, ["fields", "ensure", "crm"], capsys)
    assert {f["status"] for f in report["fields"]} == {"created"}
    assert "twitter_username__c" in sandbox.created_fields["Contact"]
    sandbox.grant_field_access()
    code, report = run_json(data_dir, ["fields", "ensure", "crm"], capsys)
    assert code == ExitCode.OK and {f["status"] for f in report["fields"]} == {"present"}


def test_pipedrive_without_the_right_to_add_fields_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = PipedriveSandbox(SandboxConfig(contacts=0), can_add_fields=False)
    data_dir = on_sandbox(tmp_path / "D", sandbox, monkeypatch)
    code, report = run_json(data_dir, ["fields", "ensure", "crm"], capsys)
    assert code == ExitCode.PARTIAL
    assert {f["status"] for f in report["fields"]} == {"failed"}
    assert all("permission refused" in f["reason"] and "Pipedrive admin" in f["reason"] for f in report["fields"])
    assert not any(f.custom for f in sandbox.person_fields)
