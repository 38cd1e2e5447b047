"""Where a record lives in its CRM's web UI, built from the integration's settings (instance URL, portal id,
company domain), so the People panel can open it in the browser."""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable
from urllib.parse import quote, urlsplit

from crm_desktop.app.crm_actions import CrmActions
from crm_desktop.app.integrations import IntegrationService
from crm_desktop.domain.models import Integration, Provider
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.store.settings import WorkspaceSettingsStore

logger = logging.getLogger(__name__)

#: HubSpot's web app (records live under the portal id).
HUBSPOT_APP = "https://app.hubspot.com"
#: HubSpot's object type ids in record addresses: contacts 0-1, leads 0-136.
HUBSPOT_OBJECT_TYPE = {RecordObject.CONTACT: "0-1", RecordObject.LEAD: "0-136"}


@runtime_checkable
class KnowsPortalId(Protocol):
    """An adapter of a CRM whose web UI addresses records under the account's id (HubSpot's portal id)."""

    async def portal_id(self) -> str:
        """The account id the CRM's web addresses carry."""
        ...


class CrmLinkUnavailable(ValueError):
    """The record's web address cannot be built; the message says which setting is missing."""


def record_web_url(
    provider: Provider, obj: RecordObject, crm_id: str, *, instance_url: str | None = None,
    portal_id: str | None = None, company_url: str | None = None,
) -> str:
    """The record's page in the CRM's web UI.

    Salesforce: ``<instance URL>/lightning/r/Contact/<id>/view`` (``Lead`` for a lead). HubSpot:
    ``app.hubspot.com/contacts/<portal id>/record/0-1/<id>`` (``0-136`` for a lead). Pipedrive:
    ``https://<company>.pipedrive.com/person/<id>`` (``/leads/inbox/<id>`` for a lead).

    Raises:
        CrmLinkUnavailable: when the setting the address needs is missing.
    """
    record = quote(crm_id, safe="")
    if provider is Provider.SALESFORCE:
        if not instance_url:
            raise CrmLinkUnavailable("the Salesforce instance URL is not known: sign in to the integration again")
        kind = "Lead" if obj is RecordObject.LEAD else "Contact"
        return f"{instance_url.rstrip('/')}/lightning/r/{kind}/{record}/view"
    if provider is Provider.HUBSPOT:
        if not portal_id:
            raise CrmLinkUnavailable("the HubSpot portal id is not known: test the integration's connection")
        return f"{HUBSPOT_APP}/contacts/{quote(portal_id, safe='')}/record/{HUBSPOT_OBJECT_TYPE[obj]}/{record}"
    if not company_url:
        raise CrmLinkUnavailable("set the integration's company domain (the 'acme' of acme.pipedrive.com)")
    path = f"/leads/inbox/{record}" if obj is RecordObject.LEAD else f"/person/{record}"
    return f"{company_url.rstrip('/')}{path}"


def pipedrive_company_url(integration: Integration) -> str | None:
    """``https://<company>.pipedrive.com`` from the company domain, else the base URL's own host."""
    if integration.domain:
        host = integration.domain
        return f"https://{host if host.endswith('.pipedrive.com') else host + '.pipedrive.com'}"
    if integration.base_url:
        parts = urlsplit(integration.base_url)
        return f"{parts.scheme}://{parts.netloc}"
    return None


class CrmWebLinks:
    """Builds a record's web address from the integration's settings; HubSpot's portal id is asked for once and
    kept in the workspace settings."""

    def __init__(
        self, integrations: IntegrationService, actions: CrmActions, settings: WorkspaceSettingsStore
    ) -> None:
        self._integrations = integrations
        self._actions = actions
        self._settings = settings

    async def url(self, integration_name: str, obj: RecordObject, crm_id: str) -> str:
        """The address of ``crm_id`` in that integration's CRM.

        Raises:
            CrmLinkUnavailable: a setting the address needs is missing (or HubSpot would not tell its portal).
            ProviderError: HubSpot could not be asked for its portal id.
        """
        integration = self._integrations.get(integration_name)
        if integration.provider is Provider.SALESFORCE:
            credentials = self._integrations.credentials(integration) or {}
            instance = credentials.get("instanceUrl") or integration.base_url
            return record_web_url(integration.provider, obj, crm_id, instance_url=instance)
        if integration.provider is Provider.HUBSPOT:
            return record_web_url(integration.provider, obj, crm_id, portal_id=await self._portal_id(integration))
        return record_web_url(integration.provider, obj, crm_id, company_url=pipedrive_company_url(integration))

    async def _portal_id(self, integration: Integration) -> str | None:
        key = f"integration.{integration.id}.hubspot_portal"
        stored = self._settings.get(key)
        if stored and stored.get("portal_id"):
            return str(stored["portal_id"])
        adapter = self._actions.adapter_for(integration)
        try:
            if not isinstance(adapter, KnowsPortalId):
                return None
            portal = await adapter.portal_id()
        finally:
            await adapter.aclose()
        self._settings.put(key, {"portal_id": portal})
        return portal


__all__ = ["CrmLinkUnavailable", "CrmWebLinks", "pipedrive_company_url", "record_web_url"]
