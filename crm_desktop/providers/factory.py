"""Building the right adapter for an integration."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from crm_desktop.domain.models import Integration, Provider
from crm_desktop.providers.contract import AdapterOptions, CrmAdapter
from crm_desktop.providers.errors import MissingCredentialsError

if TYPE_CHECKING:
    import httpx

    from crm_desktop.providers.auth import TokenSaver
    from crm_desktop.providers.rate import Sleep

    #: An HTTP transport for adapters (an in-process sandbox in tests); named here so other layers need no httpx.
    Transport = httpx.AsyncBaseTransport


def __getattr__(name: str) -> Any:
    # httpx loads with the first adapter, not with the window's start path; those importing ``Transport`` for an
    # annotation do so under TYPE_CHECKING, and a runtime import of it still gets the class.
    if name == "Transport":
        import httpx

        return httpx.AsyncBaseTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def missing_credentials(integration: Integration, where: str) -> str:
    """What to do about an integration whose credentials ``where`` (a keyring) does not hold."""
    sign_in = (
        f", or sign in with `crm-desktop integration login {integration.name}`"
        if integration.provider is Provider.SALESFORCE else ""
    )
    return (f"integration {integration.name!r} has no credentials in {where}; add them with "
            f"`crm-desktop integration update {integration.name} --secret-stdin`{sign_in} (or Edit… in the app)")


def build_adapter(
    integration: Integration,
    credentials: dict[str, Any] | None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    save_tokens: TokenSaver | None = None,
    sleep: Sleep = asyncio.sleep,
    options: AdapterOptions | None = None,
) -> CrmAdapter:
    """The adapter of ``integration.provider``, with its credentials from the vault.

    Raises:
        MissingCredentialsError: when the keyring holds no credentials for it.
    """
    if not credentials:
        raise MissingCredentialsError(missing_credentials(integration, "the OS keyring"))
    kwargs: dict[str, Any] = {"transport": transport, "save_tokens": save_tokens, "sleep": sleep, "options": options}
    if integration.provider is Provider.HUBSPOT:
        from crm_desktop.providers.hubspot import HubSpotAdapter

        return HubSpotAdapter(integration, credentials, **kwargs)
    if integration.provider is Provider.PIPEDRIVE:
        from crm_desktop.providers.pipedrive import PipedriveAdapter

        return PipedriveAdapter(integration, credentials, **kwargs)
    from crm_desktop.providers.salesforce import SalesforceAdapter

    return SalesforceAdapter(integration, credentials, **kwargs)


def default_record_mappers(provider: Provider) -> Any:
    """The module that holds ``provider``'s ``default_contact_record`` and ``default_lead_record``."""
    if provider is Provider.HUBSPOT:
        from crm_desktop.providers import hubspot_records as module
    elif provider is Provider.PIPEDRIVE:
        from crm_desktop.providers import pipedrive_records as module  # type: ignore[no-redef]
    else:
        from crm_desktop.providers import salesforce_records as module  # type: ignore[no-redef]
    return module
