"""``contacts push`` / ``leads push``: other columns follow one rule on every CRM; leads take the social columns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crm_desktop.cli import ExitCode, main
from crm_desktop.sandbox.core import Sandbox
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from tests.support.cli_runs import cli_workspace_on_sandbox


@pytest.fixture(params=["hubspot", "salesforce", "pipedrive"])
def crm(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Sandbox]:
    directory = tmp_path / "D"
    return directory, cli_workspace_on_sandbox(directory, str(request.param), monkeypatch)


def push(data_dir: Path, noun: str, path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any, str]:
    code = main(["--data-dir", str(data_dir), noun, "push", "crm", "--file", str(path), "--json"])
    out, err = capsys.readouterr()
    assert out, err
    main(["--data-dir", str(data_dir), noun, "push", "crm", "--file", str(path)])
    text, _ = capsys.readouterr()
    return code, json.loads(out), text


def crm_text(sandbox: Sandbox) -> str:
    """Everything the CRM holds about its people, notes included, as one text."""
    if isinstance(sandbox, HubSpotSandbox):
        return json.dumps({k: {i: r.properties for i, r in v.items()} for k, v in sandbox._records.items()},
                          default=str)
    if isinstance(sandbox, PipedriveSandbox):
        people = [vars(p) for p in sandbox.persons.values()] + [vars(lead) for lead in sandbox.leads.values()]
        return json.dumps(people, default=str) + " ".join(n.content for n in sandbox.notes.values())
    assert isinstance(sandbox, SalesforceSandbox)
    return json.dumps(sandbox.records, default=str)


def test_a_column_without_a_crm_field_is_listed_as_not_sent_and_never_fails_the_record(
    crm: tuple[Path, Sandbox], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, sandbox = crm
    path = tmp_path / "c.csv"
    path.write_text("email,firstName,lastName,favorite_color\nann@example.com,Ann,Lee,ultramarine\n"
                    "bo@example.com,Bo,Ray,\n", encoding="utf-8")
    code, report, text = push(data_dir, "contacts", path, capsys)
    assert code == ExitCode.OK, report
    by_email = {r["email"]: r for r in report["records"]}
    assert by_email["ann@example.com"]["outcome"] == "created"
    assert by_email["ann@example.com"]["notSent"] == ["favorite_color"]
    assert by_email["bo@example.com"]["notSent"] == []
    assert report["notSent"]["columns"] == ["favorite_color"] and "create a CRM field" in report["notSent"]["hint"]
    assert "not sent: no CRM field: favorite_color" in text
    assert "ultramarine" not in crm_text(sandbox)  # not in a property, a note or a custom field


def test_a_column_named_like_a_crm_field_is_sent_to_it(
    crm: tuple[Path, Sandbox], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, sandbox = crm
    # A field each CRM has: HubSpot's job title property, Salesforce's Title, a Pipedrive person field found by its
    # label (its wire name is a hash key).
    if isinstance(sandbox, PipedriveSandbox):
        sandbox._add_person_field("Favorite color", "varchar", ())
    column = {HubSpotSandbox: "jobtitle", SalesforceSandbox: "Title", PipedriveSandbox: "favorite color"}[
        type(sandbox)]
    path = tmp_path / "c.csv"
    path.write_text(f"email,lastName,{column}\nann@example.com,Lee,4242\n", encoding="utf-8")
    code, report, _ = push(data_dir, "contacts", path, capsys)
    assert code == ExitCode.OK, report
    [record] = report["records"]
    assert record["outcome"] == "created" and record["notSent"] == []
    assert "4242" in crm_text(sandbox)


def test_leads_push_takes_the_social_columns(
    crm: tuple[Path, Sandbox], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, sandbox = crm
    path = tmp_path / "l.csv"
    path.write_text(
        "email,firstName,lastName,company,source,twitter_username,twitter_followers\n"
        "lea@example.com,Lea,Park,Globex,twitter_dm,leapark,321\n"
        "max@example.com,Max,Moe,Initech,twitter_dm,maxmoe,-3\n",
        encoding="utf-8",
    )
    code, report, text = push(data_dir, "leads", path, capsys)
    assert code == ExitCode.PARTIAL  # the second row is refused, once, in the user's words
    by_line = {r["line"]: r for r in report["records"]}
    assert by_line[2]["outcome"] == "created", by_line[2]
    assert by_line[3]["outcome"] == "invalid" and by_line[3]["field"] == "twitter_followers"
    assert by_line[3]["message"] == "must be 0 or more"
    assert sum(1 for line in text.splitlines() if "max@example.com" in line) == 1
    assert "leapark" in crm_text(sandbox)


@pytest.mark.parametrize("provider", ["hubspot", "salesforce"])
def test_a_push_fills_each_networks_seed_fields_as_a_sync_does(
    provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A file's twitter_followers went only into the total (social_followers): HubSpot's twitter_followers and
    # Salesforce's twitter_followers__c, twitter_url__c... stayed empty though the default mapping carries them.
    data_dir = tmp_path / "D"
    sandbox = cli_workspace_on_sandbox(data_dir, provider, monkeypatch)
    path = tmp_path / "c.csv"
    path.write_text("email,lastName,twitter_username,twitter_followers,instagram_username,instagram_followers,"
                    "linkedin_url\nerin@example.com,Kay,erint,\"1,500\",erin.i,300,"
                    "https://www.linkedin.com/in/erin-k\n", encoding="utf-8")
    code, report, _ = push(data_dir, "contacts", path, capsys)
    assert code == ExitCode.OK, report
    if isinstance(sandbox, HubSpotSandbox):
        [held] = [r.properties for r in sandbox._records["contacts"].values()]
        suffix = ""
    else:
        assert isinstance(sandbox, SalesforceSandbox)
        [held] = [r for r in sandbox.records["Contact"].values() if r.get("Email") == "erin@example.com"]
        suffix = "__c"
    assert float(held[f"twitter_followers{suffix}"]) == 1500
    assert float(held[f"instagram_followers{suffix}"]) == 300
    assert held[f"linkedin_username{suffix}"] == "erin-k"
    assert float(held[f"social_followers{suffix}"]) == 1800
    if suffix:
        assert held["twitter_url__c"] == "https://x.com/erint"
