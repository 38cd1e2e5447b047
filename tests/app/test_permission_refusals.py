"""A sync refused for a missing CRM permission, against each CRM's sandbox over loopback HTTP: the records fail as
"permission" (never "auth"), the refused request is not sent again, the Sync Monitor groups them and says what to
ask the CRM's admin for (failing, not "needs reconnect"), and the alert is a permission alert, not "Reconnect"."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from crm_desktop.app.sync_monitor import HealthState
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.alerts import AlertKind
from crm_desktop.domain.models import SyncDirection
from crm_desktop.domain.outcomes import ErrorCategory
from crm_desktop.providers.errors import AuthError, PermissionRefusedError
from crm_desktop.sandbox.core import LoggedRequest
from crm_desktop.sandbox.hubspot import DEFAULT_SCOPES
from crm_desktop.store.models import SyncRunStatus
from tests.app.conftest import FANS
from tests.support.served_crms import ServedCrms

EMAILS = FANS


@dataclass(frozen=True)
class Refusal:
    """How one CRM is made to refuse, which request it refuses, and what the marketer is told to ask for."""

    name: str
    refuse: Callable[[ServedCrms], None]
    refused_write: Callable[[LoggedRequest], bool]
    ask_for: str
    #: Whether the refusal stops the run (a whole call refused) or fails each record (Salesforce answers per record).
    stops_run: bool


def _salesforce(crms: ServedCrms) -> None:
    crms.salesforce.apply_config({"read_only_objects": ["Contact"]})


def _hubspot(crms: ServedCrms) -> None:
    crms.hubspot.scopes = [scope for scope in DEFAULT_SCOPES if scope != "crm.objects.contacts.write"]


def _pipedrive(crms: ServedCrms) -> None:
    crms.pipedrive.apply_config({"can_edit_persons": False})


REFUSALS = [
    Refusal("salesforce", _salesforce, lambda r: r.method == "POST" and r.path.endswith("/composite/sobjects"),
            "ask your Salesforce admin for Read, Create and Edit on Contact", stops_run=False),
    Refusal("hubspot", _hubspot, lambda r: r.status == 403,
            "ask a HubSpot super admin to add it to the private app", stops_run=True),
    Refusal("pipedrive", _pipedrive, lambda r: r.status == 403,
            "ask your Pipedrive admin to allow it in the user's permission set", stops_run=True),
]


@pytest.mark.parametrize("refusal", REFUSALS, ids=[r.name for r in REFUSALS])
def test_a_permission_refusal_is_grouped_shown_and_alerted_as_a_permission(
    fans_on_three_crms: tuple[ServedCrms, Workspace], refusal: Refusal, tmp_path: Path
) -> None:
    served, workspace = fans_on_three_crms
    refusal.refuse(served)
    sandbox = getattr(served, refusal.name)

    result = asyncio.run(workspace.sync.sync(refusal.name, SyncDirection.PUSH))

    # Not a sign-in problem: no reconnect, the records failed as "permission".
    assert not result.auth_failed
    assert result.run_id is not None
    assert {f.category for f in result.failures} == {ErrorCategory.PERMISSION}
    assert sorted(f.email for f in result.failures) == EMAILS
    if refusal.stops_run:
        assert (result.status, result.stopped_by) == (SyncRunStatus.FAILED, ErrorCategory.PERMISSION)
    else:
        assert (result.status, result.stopped_by) == (SyncRunStatus.PARTIAL, None)

    # A permission is never retried: no refused request was sent again (Pipedrive's writes go out a few at a time,
    # one per person, so each of those in flight was refused once).
    refused = [r for r in sandbox.requests if refusal.refused_write(r)]
    bodies = [json.dumps(r.body, sort_keys=True) for r in refused]
    assert 1 <= len(refused) <= len(EMAILS) and len(set(bodies)) == len(bodies), [
        (r.method, r.path, r.status) for r in refused]

    # The Sync Monitor: one "permission" group with its count and a sample naming what to ask for.
    [group] = workspace.monitor.error_groups(result.run_id)
    assert (group.category, group.count) == (ErrorCategory.PERMISSION, 3)
    assert group.sample_record in EMAILS and refusal.ask_for in group.sample_message
    [health] = [line for line in workspace.monitor.health() if line.name == refusal.name]
    assert health.state is HealthState.FAILING, health
    assert refusal.ask_for in health.reason

    # The alert asks for the permission; it is no "Reconnect" alert.
    integration = workspace.integrations.get(refusal.name)
    raised = workspace.alerts.alerts_for_run(integration, result)
    assert [r.alert.kind for r in raised] == [AlertKind.PERMISSION_MISSING]
    assert refusal.ask_for in raised[0].alert.message and "Reconnect" not in raised[0].alert.message
    assert raised[0].alert.run_id == result.run_id
    assert all(raised[0].alert.message.count(email) <= 1 for email in EMAILS), "a record is named once"

    # The export says "permission" for each.
    target = tmp_path / "errors.csv"
    assert workspace.monitor.export_errors(result.run_id, target) == 3
    with target.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["error_category"] for row in rows} == {"permission"}


def test_a_revoked_token_still_asks_to_reconnect(fans_on_three_crms: tuple[ServedCrms, Workspace]) -> None:
    served, workspace = fans_on_three_crms
    served.pipedrive.expire_tokens()  # a new API token: the stored one is refused (401)

    with pytest.raises(AuthError, match="401") as refused:
        asyncio.run(workspace.sync.sync("pipedrive", SyncDirection.PUSH))

    [health] = [line for line in workspace.monitor.health() if line.name == "pipedrive"]
    assert health.state is HealthState.NEEDS_RECONNECT
    raised = workspace.alerts.alerts_for_run(workspace.integrations.get("pipedrive"), refused.value)
    assert [r.alert.kind for r in raised] == [AlertKind.AUTH_FAILED]


def test_a_permission_refused_before_the_run_began_is_a_permission_alert(
    fans_on_three_crms: tuple[ServedCrms, Workspace],
) -> None:
    _, workspace = fans_on_three_crms
    refused = PermissionRefusedError("HubSpot: the private app lacks the scope crm.schemas.contacts.read (403): ask "
                                     "a HubSpot super admin to add it to the private app")

    [raised] = workspace.alerts.alerts_for_run(workspace.integrations.get("hubspot"), refused)

    assert raised.alert.kind is AlertKind.PERMISSION_MISSING and raised.alert.title == "CRM permission needed"
    assert "crm.schemas.contacts.read" in raised.alert.message and raised.notify
