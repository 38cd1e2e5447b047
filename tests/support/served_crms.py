"""The three sandbox CRMs served together on loopback sockets, and a workspace with one integration on each."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Integration, Provider
from crm_desktop.sandbox.core import Sandbox, SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.sandbox.server import SandboxServer
from tests.support.cli_runs import PIPEDRIVE_UNTHROTTLED, credentials_of


@dataclass
class ServedCrms:
    """One sandbox of each CRM, served over loopback HTTP while the :func:`served_crms` block runs."""

    salesforce: SalesforceSandbox
    hubspot: HubSpotSandbox
    pipedrive: PipedriveSandbox

    def connect(self, workspace: Workspace) -> None:
        """Add to ``workspace`` one integration per CRM named after its provider (Pipedrive's company: acme)."""
        sandboxes: tuple[tuple[Provider, Sandbox], ...] = (
            (Provider.SALESFORCE, self.salesforce), (Provider.HUBSPOT, self.hubspot),
            (Provider.PIPEDRIVE, self.pipedrive),
        )
        for provider, sandbox in sandboxes:
            workspace.integrations.add(
                Integration(provider=provider, name=provider.value, base_url=sandbox.base_url,
                            domain="acme" if provider is Provider.PIPEDRIVE else None),
                credentials_of(provider, sandbox),
            )


@contextmanager
def served_crms(*, salesforce_contacts: int = 0, pipedrive_contacts: int = 0) -> Iterator[ServedCrms]:
    """Salesforce, HubSpot (empty) and Pipedrive sandboxes with fixed seeds, served until the block ends.

    Args:
        salesforce_contacts: contacts and leads the Salesforce sandbox starts with.
        pipedrive_contacts: persons the Pipedrive sandbox starts with.
    """
    salesforce = SalesforceSandbox(SandboxConfig(contacts=salesforce_contacts, seed=3))
    hubspot = HubSpotSandbox(SandboxConfig(contacts=0, seed=4))
    pipedrive = PipedriveSandbox(SandboxConfig(contacts=pipedrive_contacts, seed=5))
    pipedrive.apply_config(PIPEDRIVE_UNTHROTTLED)
    with SandboxServer([salesforce, hubspot, pipedrive]):
        yield ServedCrms(salesforce, hubspot, pipedrive)
