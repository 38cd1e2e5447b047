"""A CRM refusing a call or a record for a missing permission: category ``permission`` (not ``auth``), never retried,
and a message that says what to ask the CRM's admin for; against each CRM's sandbox answering as the vendor does."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from crm_desktop.domain.models import Integration, Provider
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.providers.contract import CrmAdapter, OutboundRecord
from crm_desktop.providers.errors import AuthError, PermissionRefusedError
from crm_desktop.providers.factory import build_adapter
from crm_desktop.providers.http import Decision, classify_status
from crm_desktop.providers.hubspot_errors import classify_hubspot, record_failure
from crm_desktop.providers.pipedrive_errors import classify_pipedrive
from crm_desktop.providers.salesforce_errors import classify_salesforce, describe_record_errors
from crm_desktop.sandbox.core import Sandbox, SandboxConfig
from crm_desktop.sandbox.hubspot import DEFAULT_SCOPES, HubSpotSandbox
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from tests.support.cli_runs import PIPEDRIVE_UNTHROTTLED, credentials_of

SF = "https://acme.my.salesforce.com/services/data/v61.0"


def answer(status: int, body: Any, method: str, url: str) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request(method, url))


# -- the decision on one answer ---------------------------------------------------------------------------------


def test_a_salesforce_refusal_names_the_object_and_what_to_ask_the_admin_for() -> None:
    refused = answer(403, [{"message": "insufficient access", "errorCode": "INSUFFICIENT_ACCESS"}],
                     "GET", f"{SF}/query?q=SELECT+Id,Email+FROM+Lead+WHERE+Email+IN+('ann@example.com')")
    verdict = classify_salesforce(refused)
    assert (verdict.decision, verdict.category, verdict.code) == (
        Decision.FATAL, ErrorCategory.PERMISSION, "INSUFFICIENT_ACCESS")
    assert "on Lead" in verdict.reason
    assert "ask your Salesforce admin for Read, Create and Edit on Lead" in verdict.reason
    assert "ann@example.com" not in verdict.reason, "never the query's values"

    disabled = classify_salesforce(answer(
        403, [{"message": "API is not enabled for this Organization or Partner", "errorCode": "API_DISABLED_FOR_ORG"}],
        "GET", f"{SF}/sobjects/Contact/describe"))
    assert (disabled.decision, disabled.category) == (Decision.FATAL, ErrorCategory.PERMISSION)
    assert "'API Enabled' permission" in disabled.reason

    tooling = classify_salesforce(answer(403, [{"message": "no", "errorCode": "INSUFFICIENT_ACCESS"}],
                                         "POST", f"{SF}/tooling/sobjects/CustomField"))
    assert "'Customize Application' permission" in tooling.reason


@pytest.mark.parametrize(
    ("response", "category"),
    [
        (httpx.Response(401, json=[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]),
         ErrorCategory.AUTH),
        (httpx.Response(400, json={"error": "invalid_grant", "error_description": "expired access/refresh token"}),
         ErrorCategory.AUTH),
    ],
    ids=["expired session", "revoked refresh token"],
)
def test_a_revoked_or_expired_salesforce_token_stays_a_sign_in_error(
    response: httpx.Response, category: ErrorCategory
) -> None:
    assert classify_salesforce(response).category is category


def test_a_salesforce_record_refused_for_access_is_a_permission_failure_of_that_record() -> None:
    category, message = describe_record_errors(
        [{"statusCode": "INSUFFICIENT_ACCESS_OR_READONLY", "message": "insufficient access rights on object id",
          "fields": []}], "Contact")
    assert category is ErrorCategory.PERMISSION
    assert "(INSUFFICIENT_ACCESS_OR_READONLY)" in message
    assert "ask your Salesforce admin for Read, Create and Edit on Contact" in message
    category, message = describe_record_errors(
        [{"statusCode": "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
          "message": "insufficient access rights on cross-reference id", "fields": ["AccountId"]}], "Contact")
    assert category is ErrorCategory.PERMISSION
    assert message.startswith("AccountId: ") and "the record it points to" in message


def test_a_hubspot_missing_scope_names_the_scope_and_a_401_stays_a_sign_in_error() -> None:
    required = {"message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": ["crm.objects.contacts.write"]}}
    body = {"status": "error", "message": "This app hasn't been granted all required scopes to make this call.",
            "category": "MISSING_SCOPES", "errors": [required]}
    verdict = classify_hubspot(httpx.Response(403, json=body))
    assert (verdict.decision, verdict.category, verdict.code) == (
        Decision.FATAL, ErrorCategory.PERMISSION, "MISSING_SCOPES")
    assert "crm.objects.contacts.write" in verdict.reason and "super admin" in verdict.reason
    forbidden = classify_hubspot(httpx.Response(403, json={"status": "error", "message": "Forbidden"}))
    assert forbidden.category is ErrorCategory.PERMISSION and forbidden.code == "FORBIDDEN"
    expired = classify_hubspot(httpx.Response(401, json={"category": "EXPIRED_AUTHENTICATION"}))
    assert expired.category is ErrorCategory.AUTH
    assert record_failure({"category": "MISSING_SCOPES", "message": "scope"}, 207, "a@b.com")[0] \
        is ErrorCategory.PERMISSION


def test_a_pipedrive_403_is_a_permission_naming_the_action_but_its_html_block_is_a_rate_limit() -> None:
    body = {"success": False, "error": "You do not have permissions to do this.",
            "error_info": "Please check developers.pipedrive.com", "data": None, "additional_data": None}
    verdict = classify_pipedrive(answer(403, body, "POST", "https://acme.pipedrive.com/api/v2/persons"))
    assert (verdict.decision, verdict.category) == (Decision.FATAL, ErrorCategory.PERMISSION)
    assert "may not add persons" in verdict.reason and "Permission sets" in verdict.reason
    edit = classify_pipedrive(answer(403, body, "PATCH", "https://acme.pipedrive.com/v1/leads/0b2c"))
    assert "may not edit leads" in edit.reason
    blocked = classify_pipedrive(httpx.Response(403, headers={"content-type": "text/html"}, content=b"<html></html>"))
    assert blocked.category is ErrorCategory.RATE_LIMIT
    assert classify_pipedrive(httpx.Response(401, json={"success": False})).category is ErrorCategory.AUTH


def test_the_shared_core_sorts_a_bare_403_as_a_permission() -> None:
    verdict = classify_status(httpx.Response(403))
    assert (verdict.decision, verdict.category) == (Decision.FATAL, ErrorCategory.PERMISSION)
    assert classify_status(httpx.Response(401)).category is ErrorCategory.AUTH


def test_a_permission_refusal_is_not_a_sign_in_error() -> None:
    assert not issubclass(PermissionRefusedError, AuthError)
    assert PermissionRefusedError("x").category is ErrorCategory.PERMISSION


# -- each adapter against its sandbox: one request, no retry ------------------------------------------------------


def people(count: int) -> list[OutboundRecord]:
    return [OutboundRecord(f"fan{n}@example.com", {}) for n in range(count)]


def run_adapter(provider: Provider, sandbox: Sandbox,
                scenario: Callable[[CrmAdapter], Awaitable[Any]]) -> Any:
    integration = Integration(provider=provider, name=f"{provider.value}-sandbox", base_url=sandbox.base_url,
                              domain="acme" if provider is Provider.PIPEDRIVE else None)

    async def go() -> Any:
        adapter = build_adapter(integration, credentials_of(provider.value, sandbox), transport=sandbox.transport())
        try:
            return await scenario(adapter)
        finally:
            await adapter.aclose()

    return asyncio.run(go())


def salesforce_people(count: int) -> list[OutboundRecord]:
    return [OutboundRecord(f"fan{n}@example.com", {"LastName": f"Fan{n}"}) for n in range(count)]


def test_salesforce_records_the_user_may_not_write_fail_each_as_permission_in_one_request() -> None:
    sandbox = SalesforceSandbox(SandboxConfig(), read_only_objects=["Contact"])

    results = run_adapter(Provider.SALESFORCE, sandbox,
                          lambda adapter: adapter.upsert(RecordObject.CONTACT, salesforce_people(3)))

    assert [(r.outcome, r.category) for r in results] == [(RecordOutcome.FAILED, ErrorCategory.PERMISSION)] * 3
    assert all("ask your Salesforce admin for Read, Create and Edit on Contact" in (r.message or "") for r in results)
    writes = [r for r in sandbox.requests if r.path.endswith("/composite/sobjects")]
    assert [(w.method, w.status) for w in writes] == [("POST", 200)], "one request, its answer per record"
    assert sandbox.records["Contact"] == {}


def test_salesforce_without_api_access_stops_at_the_first_403() -> None:
    sandbox = SalesforceSandbox(SandboxConfig(), api_enabled=False)

    with pytest.raises(PermissionRefusedError, match="'API Enabled' permission") as refused:
        run_adapter(Provider.SALESFORCE, sandbox,
                    lambda adapter: adapter.upsert(RecordObject.CONTACT, salesforce_people(3)))

    assert refused.value.code == "API_DISABLED_FOR_ORG"
    assert [r.status for r in sandbox.requests] == [403]


def test_hubspot_without_the_write_scope_stops_at_the_first_refused_write() -> None:
    sandbox = HubSpotSandbox(SandboxConfig(),
                             scopes=[s for s in DEFAULT_SCOPES if s != "crm.objects.contacts.write"])

    with pytest.raises(PermissionRefusedError, match=r"crm\.objects\.contacts\.write") as refused:
        run_adapter(Provider.HUBSPOT, sandbox, lambda adapter: adapter.upsert(RecordObject.CONTACT, people(3)))

    assert refused.value.code == "MISSING_SCOPES" and refused.value.status == 403
    assert [r.method for r in sandbox.requests if r.status == 403] == ["POST"], "sent once, not retried"
    assert sandbox.summary()["contacts"] == 0


def test_pipedrive_without_the_right_to_add_persons_stops_at_the_first_refusal() -> None:
    sandbox = PipedriveSandbox(SandboxConfig(), can_edit_persons=False)
    sandbox.apply_config(PIPEDRIVE_UNTHROTTLED)

    with pytest.raises(PermissionRefusedError, match="may not add persons") as refused:
        run_adapter(Provider.PIPEDRIVE, sandbox, lambda adapter: adapter.upsert(RecordObject.CONTACT, people(3)))

    assert refused.value.code == "FORBIDDEN"
    creates = [r for r in sandbox.requests if r.method == "POST" and r.path == "/api/v2/persons"]
    assert [c.status for c in creates] == [403], "one refused create; the others were never sent"
    assert sandbox.persons == {}


@pytest.mark.parametrize(
    ("crm", "verdict"),
    [
        ("HubSpot", classify_hubspot(httpx.Response(401, json={"category": "INVALID_AUTHENTICATION"}))),
        ("HubSpot", classify_hubspot(httpx.Response(429, json={"policyName": "DAILY"}))),
        ("HubSpot", classify_hubspot(httpx.Response(401, json={"category": "EXPIRED_AUTHENTICATION"}))),
        ("HubSpot", classify_hubspot(httpx.Response(503, json={}))),
        ("Salesforce", classify_salesforce(httpx.Response(401, json=[{"errorCode": "INVALID_SESSION_ID"}]))),
        ("Salesforce", classify_salesforce(httpx.Response(401, json=[{"errorCode": "INVALID_AUTH_HEADER"}]))),
        ("Salesforce", classify_salesforce(httpx.Response(403, text="Bad_OAuth_Token"))),
        ("Salesforce", classify_salesforce(httpx.Response(400, json={"error": "invalid_grant"}))),
        ("Salesforce", classify_salesforce(httpx.Response(400, json=[{"errorCode": "INVALID_FIELD"}]))),
        ("Salesforce", classify_salesforce(httpx.Response(400, json=[{"errorCode": "INVALID_QUERY_LOCATOR"}]))),
        ("Salesforce", classify_salesforce(httpx.Response(400, json=[{"errorCode": "MALFORMED_QUERY"}]))),
        ("Pipedrive", classify_pipedrive(httpx.Response(401, json={"success": False, "error": "unauthorized"}))),
        ("Pipedrive", classify_pipedrive(httpx.Response(403, headers={"content-type": "text/html"},
                                                        content=b"<html></html>"))),
    ],
    ids=["hubspot 401", "hubspot daily limit", "hubspot expired token", "hubspot server error", "salesforce session",
         "salesforce credentials", "salesforce bad token", "salesforce refresh token", "salesforce field name",
         "salesforce cursor", "salesforce query", "pipedrive 401", "pipedrive blocked"],
)
def test_a_reason_leaves_the_crms_name_to_the_message(crm: str, verdict: Any) -> None:
    """The shared core puts the CRM's name in front of every reason: a reason naming it again read "HubSpot: HubSpot
    refused the private-app token (401)" in the Sync Monitor and the alerts."""
    assert verdict.reason and crm not in verdict.reason, verdict.reason
