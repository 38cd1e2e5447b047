"""``contacts push``: what no CRM field takes goes into a note on Salesforce and HubSpot too, written once."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_desktop.cli import ExitCode
from crm_desktop.sandbox.core import Sandbox
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from tests.support.cli_runs import cli_workspace_on_sandbox, run_json

CONTACTS = (
    "email,firstName,lastName,company,twitter_username,tiktok_username,tiktok_followers\n"
    "ann@example.com,Ann,Lee,Acme,annlee,ann.dances,5000\n"
)


def notes_of(sandbox: Sandbox) -> list[str]:
    if isinstance(sandbox, SalesforceSandbox):
        return [str(note.get("Body")) for note in sandbox.records["Note"].values()]
    assert isinstance(sandbox, HubSpotSandbox)
    return [str(note.properties.get("hs_note_body")) for note in sandbox._records["notes"].values()]


@pytest.mark.parametrize("provider", ["salesforce", "hubspot"])
def test_the_social_note_is_written_once_not_dropped(
    provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "D"
    sandbox = cli_workspace_on_sandbox(data_dir, provider, monkeypatch)
    path = tmp_path / "contacts.csv"
    path.write_text(CONTACTS, encoding="utf-8")

    code, report = run_json(data_dir, ["contacts", "push", "crm", "--file", str(path)], capsys)
    assert code == ExitCode.OK, report
    [note] = notes_of(sandbox)
    assert "ann.dances" in note and "followers" in note  # TikTok has no field on either CRM

    code, again = run_json(data_dir, ["contacts", "push", "crm", "--file", str(path)], capsys)
    assert code == ExitCode.OK
    assert again["records"][0]["outcome"] == "unchanged"
    assert len(notes_of(sandbox)) == 1  # the same note is not added twice
