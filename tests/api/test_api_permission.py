"""The local API when the CRM refuses for a missing permission: a 502 naming the permission to ask the CRM's admin
for, not the "reconnect" answer of refused credentials; the record stays saved locally."""

from __future__ import annotations

import asyncio

from crm_desktop.sandbox.hubspot import DEFAULT_SCOPES, HubSpotSandbox
from tests.api.conftest import LocalApi, integration_body


def test_a_missing_scope_is_a_502_naming_it_not_reconnect(hubspot_api: LocalApi) -> None:
    api = hubspot_api
    assert isinstance(api.sandbox, HubSpotSandbox)
    api.sandbox.scopes = [scope for scope in DEFAULT_SCOPES if scope != "crm.objects.contacts.write"]

    async def scenario() -> None:
        assert (await api.post("/api/crm/integrations", integration_body("hubspot", api.sandbox))).status_code == 201
        answer = await api.post("/api/crm/integrations/crm/contacts/sync",
                                {"email": "ann@example.com", "firstName": "Ann", "lastName": "Lee"})
        assert answer.status_code == 502, answer.text
        detail = answer.json()["detail"]
        assert "lacks a permission: ask the CRM's admin" in detail and "crm.objects.contacts.write" in detail
        assert "reconnect the integration" not in detail
        assert api.workspace.contacts.find("ann@example.com") is not None

    asyncio.run(scenario())
