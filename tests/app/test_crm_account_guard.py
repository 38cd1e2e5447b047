"""Credentials of another CRM account, against each CRM's sandbox over loopback HTTP: a run is refused before it
sends anything, as the links' record ids could be other people there (Pipedrive's and HubSpot's ids are small
numbers of each account's own); the account is read once per set of credentials, not on every run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.providers.errors import CrmAccountChangedError
from crm_desktop.sandbox.core import Sandbox
from tests.app.conftest import FANS
from tests.support.cli_runs import credentials_of
from tests.support.served_crms import ServedCrms

EMAILS = FANS

#: Per CRM: how its sandbox is made to answer as another account, and what a request reading the account is.
OTHER_ACCOUNT: dict[str, tuple[Callable[[Sandbox], None], str]] = {
    "salesforce": (lambda sandbox: setattr(sandbox, "org_id", "00D5g0000077777EAA"), "/services/oauth2/userinfo"),
    "hubspot": (lambda sandbox: setattr(sandbox, "portal_id", 77_777_777), "/account-info/v3/details"),
    "pipedrive": (lambda sandbox: setattr(sandbox, "company_id", 7), "/v1/users/me"),
}


def _credentials_set_again(workspace: Workspace, name: str, sandbox: Sandbox) -> None:
    """A person puts credentials in again (the Integrations panel's Edit, ``integration update --secret-stdin``)."""
    integration = workspace.integrations.get(name)
    workspace.integrations.update(integration, credentials_of(name, sandbox))


@pytest.mark.parametrize("name", list(OTHER_ACCOUNT))
def test_credentials_of_another_account_are_refused_before_anything_is_sent(
    fans_on_three_crms: tuple[ServedCrms, Workspace], name: str
) -> None:
    served, workspace = fans_on_three_crms
    sandbox: Sandbox = getattr(served, name)
    make_other, reads_account = OTHER_ACCOUNT[name]
    first = asyncio.run(workspace.sync.sync(name, SyncDirection.PUSH))
    assert first.counts["created"] == len(EMAILS)

    # The same account: a second run does not read it again, whatever the CRM says meanwhile.
    mark = len(sandbox.requests)
    asyncio.run(workspace.sync.sync(name, SyncDirection.PUSH))
    assert not [r for r in list(sandbox.requests)[mark:] if r.path.endswith(reads_account)]

    # New credentials that reach another account, and a local edit a run would send.
    make_other(sandbox)
    _credentials_set_again(workspace, name, sandbox)
    fan = workspace.contacts.find(EMAILS[0])
    assert fan is not None
    workspace.contacts.save(fan.model_copy(update={"first_name": "Renamed"}))
    mark = len(sandbox.requests)

    with pytest.raises(CrmAccountChangedError) as refused:
        asyncio.run(workspace.sync.sync(name, SyncDirection.BOTH))

    message = str(refused.value)
    assert f"credentials of {name!r}" in message and "3 linked records" in message and "nothing was sent" in message
    assert "remove" in message and "add it again" in message
    sent = [(r.method, r.path) for r in list(sandbox.requests)[mark:]]
    assert [path for _, path in sent if not path.endswith(reads_account) and not path.endswith("/limits")] == [], sent
    assert not workspace.sync.is_running(name)
    # A connection test says the same at once.
    with pytest.raises(CrmAccountChangedError):
        asyncio.run(workspace.crm.test_connection(name))


def test_the_old_account_put_back_syncs_again(fans_on_three_crms: tuple[ServedCrms, Workspace]) -> None:
    served, workspace = fans_on_three_crms
    asyncio.run(workspace.sync.sync("pipedrive", SyncDirection.PUSH))
    served.pipedrive.company_id = 7
    _credentials_set_again(workspace, "pipedrive", served.pipedrive)
    with pytest.raises(CrmAccountChangedError):
        asyncio.run(workspace.sync.sync("pipedrive", SyncDirection.PUSH))

    served.pipedrive.company_id = 1
    _credentials_set_again(workspace, "pipedrive", served.pipedrive)
    again = asyncio.run(workspace.sync.sync("pipedrive", SyncDirection.PUSH))

    assert again.status.value == "succeeded", again.message


def test_an_integration_with_no_links_takes_the_account_it_finds(
    fans_on_three_crms: tuple[ServedCrms, Workspace],
) -> None:
    served, workspace = fans_on_three_crms
    asyncio.run(workspace.crm.test_connection("pipedrive"))  # reads and keeps company 1, links nothing
    served.pipedrive.company_id = 7
    _credentials_set_again(workspace, "pipedrive", served.pipedrive)

    result = asyncio.run(workspace.sync.sync("pipedrive", SyncDirection.PUSH))

    assert result.counts["created"] == len(EMAILS)
    integration = workspace.integrations.get("pipedrive")
    assert workspace.integrations.crm_account(integration).account_id == "7"


def test_an_undo_and_a_file_push_are_refused_as_a_run_is(
    fans_on_three_crms: tuple[ServedCrms, Workspace], tmp_path: Path
) -> None:
    served, workspace = fans_on_three_crms
    first = asyncio.run(workspace.sync.sync("pipedrive", SyncDirection.PUSH))
    assert first.run_id is not None
    served.pipedrive.company_id = 7
    _credentials_set_again(workspace, "pipedrive", served.pipedrive)
    people = tmp_path / "people.csv"
    people.write_text("email,firstName\nfan1@example.com,Renamed\n", encoding="utf-8")
    mark = len(served.pipedrive.requests)

    with pytest.raises(CrmAccountChangedError):
        asyncio.run(workspace.sync.undo(first.run_id))
    with pytest.raises(CrmAccountChangedError):
        asyncio.run(workspace.crm.push_file("pipedrive", people, RecordObject.CONTACT))

    sent = [(r.method, r.path) for r in list(served.pipedrive.requests)[mark:]]
    assert {path for _, path in sent} <= {"/v1/users/me"}, sent
