"""Each sandbox refuses for a missing permission as its vendor does, switched on through its control endpoint; a bad
value is refused with 400 and changes nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from crm_desktop.sandbox.core import Sandbox
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.pipedrive import NO_PERMISSION, PipedriveSandbox
from crm_desktop.sandbox.salesforce import API_PREFIX, SalesforceSandbox


def configure(sandbox: Sandbox, change: dict[str, Any]) -> int:
    async def patch() -> int:
        async with sandbox.client() as client:
            return (await client.patch("/__sandbox__/config", json=change)).status_code

    return asyncio.run(patch())


def call(sandbox: Sandbox, method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    async def send() -> tuple[int, Any]:
        async with sandbox.client(headers=headers) as client:
            answer = await client.request(method, path, json=body)
            return answer.status_code, answer.json()

    return asyncio.run(send())


def test_salesforce_read_only_objects_and_api_access() -> None:
    sandbox = SalesforceSandbox()
    bearer = {"Authorization": f"Bearer {sandbox.credentials()['accessToken']}"}
    contact = {"LastName": "Lee", "Email": "ann@example.com"}
    assert configure(sandbox, {"read_only_objects": ["Contact"]}) == 200

    status, body = call(sandbox, "POST", f"{API_PREFIX}/sobjects/Contact", contact, bearer)
    assert status == 400 and body[0]["errorCode"] == "INSUFFICIENT_ACCESS_OR_READONLY"
    status, body = call(sandbox, "POST", f"{API_PREFIX}/composite/sobjects",
                        {"allOrNone": False, "records": [{"attributes": {"type": "Contact"}, **contact}]}, bearer)
    assert status == 200 and body[0]["errors"][0]["statusCode"] == "INSUFFICIENT_ACCESS_OR_READONLY"
    assert call(sandbox, "POST", f"{API_PREFIX}/sobjects/Lead", {**contact, "Company": "Acme"}, bearer)[0] == 201

    assert configure(sandbox, {"api_enabled": False}) == 200
    status, body = call(sandbox, "GET", f"{API_PREFIX}/sobjects/Contact/describe", None, bearer)
    assert status == 403 and body[0]["errorCode"] == "API_DISABLED_FOR_ORG"
    assert sandbox.records["Contact"] == {}


def test_hubspot_scopes_are_set_at_run_time() -> None:
    sandbox = HubSpotSandbox()
    bearer = {"Authorization": f"Bearer {sandbox.credentials()['token']}"}
    assert configure(sandbox, {"scopes": ["crm.objects.contacts.read"]}) == 200

    status, body = call(sandbox, "POST", "/crm/v3/objects/contacts", {"properties": {"email": "a@example.com"}},
                        bearer)
    assert status == 403 and body["category"] == "MISSING_SCOPES"


def test_pipedrive_refuses_person_writes_without_the_permission() -> None:
    sandbox = PipedriveSandbox()
    token = {"x-api-token": sandbox.credentials()["apiToken"]}
    assert configure(sandbox, {"can_edit_persons": False}) == 200

    status, body = call(sandbox, "POST", "/api/v2/persons", {"name": "Ann Lee"}, token)
    assert status == 403 and body["success"] is False and body["error"] == NO_PERMISSION
    assert sandbox.persons == {}


@pytest.mark.parametrize(
    ("sandbox", "change", "settings"),
    [
        (SalesforceSandbox(), {"read_only_objects": ["Account"], "duplicate_rules": False},
         ("read_only_objects", "duplicate_rules")),
        (SalesforceSandbox(), {"api_enabled": "no", "duplicate_rules": False}, ("api_enabled", "duplicate_rules")),
        (HubSpotSandbox(), {"scopes": "crm.objects.contacts.read", "daily_limit": 5}, ("scopes", "daily_limit")),
        (PipedriveSandbox(), {"can_edit_persons": "no", "burst_limit": 7}, ("can_edit_persons", "burst_limit")),
    ],
    ids=["salesforce objects", "salesforce api", "hubspot scopes", "pipedrive persons"],
)
def test_a_bad_permission_setting_is_refused_and_changes_nothing(
    sandbox: Sandbox, change: dict[str, Any], settings: tuple[str, ...]
) -> None:
    before = [getattr(sandbox, name) for name in settings]
    assert configure(sandbox, change) == 400
    assert [getattr(sandbox, name) for name in settings] == before
