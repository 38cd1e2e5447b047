"""Demo mode: the three sandbox CRMs on loopback and a demo workspace of social contacts wired to them."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crm_desktop.app.paths import resolve_paths
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import (
    Contact,
    Integration,
    Lead,
    LeadStatus,
    Provider,
    SocialContext,
    SyncConfig,
)
from crm_desktop.sandbox.core import SandboxConfig, parse_fault_spec
from crm_desktop.sandbox.data import GeneratedPerson, generate_people
from crm_desktop.sandbox.process import SandboxProcess, SandboxSpec
from crm_desktop.vault import Vault
from crm_desktop.vault.ephemeral import EphemeralKeyring

logger = logging.getLogger(__name__)

DEMO_NAMES = {
    Provider.SALESFORCE: "Salesforce (demo)",
    Provider.HUBSPOT: "HubSpot (demo)",
    Provider.PIPEDRIVE: "Pipedrive (demo)",
}


#: Each CRM's top-plan limits (HubSpot Enterprise 190 per 10 s; Pipedrive's highest burst of 120 per 2 s).
TOP_PLAN_LIMITS: dict[str, dict[str, Any]] = {
    "hubspot": {"ten_second_limit": 190},
    "pipedrive": {"burst_limit": 120, "daily_token_budget": 1_000_000},
}


@dataclass
class Demo:
    """A running demo: the sandbox server and the workspace wired to it.

    Attributes:
        server: the child process serving the three sandboxes on loopback (stop it when done).
        workspace: the demo workspace (its own data dir).
        local_contacts: how many social contacts the local store starts with.
    """

    server: SandboxProcess
    workspace: Workspace
    local_contacts: int

    def describe(self) -> dict[str, Any]:
        """What was set up, for ``demo --headless``."""
        return {
            "dataDir": str(self.workspace.paths.data_dir),
            "localContacts": self.workspace.contacts.count(),
            "localLeads": self.workspace.leads.count(),
            "integrations": [
                {"name": i.name, "provider": i.provider.value, "baseUrl": i.base_url}
                for i in self.workspace.integrations.list()
            ],
            "sandboxes": [{"provider": s.provider, "baseUrl": s.base_url, "records": s.summary()}
                          for s in self.server.sandboxes],
        }

    def stop(self) -> None:
        self.workspace.close()
        self.server.stop()


def demo_data_dir(data_dir: Path | None = None) -> Path:
    """The demo's own data dir (never the real workspace): ``<data dir>/demo``."""
    return (data_dir or resolve_paths(None).data_dir) / "demo"


def _contact(person: GeneratedPerson) -> Contact:
    return Contact(
        email=person.email,
        first_name=person.first_name,
        last_name=person.last_name,
        company=person.company,
        phone=person.phone,
        social_profiles=list(person.social_profiles),
        custom_fields={"campaign": person.campaign},
    )


def _lead(person: GeneratedPerson) -> Lead:
    return Lead(
        email=person.email,
        first_name=person.first_name,
        last_name=person.last_name,
        company=person.company,
        source=person.lead_source,
        status=LeadStatus.NEW,
        social_context=SocialContext(
            platform=person.social_profiles[0].platform if person.social_profiles else "twitter",
            conversation_id=person.conversation_id,
            sentiment=person.sentiment,
            engagement_score=person.engagement_score,
        ),
    )


def start_demo(
    data_dir: Path | None = None,
    *,
    local_contacts: int = 300,
    crm_contacts: int = 30,
    latency_ms: float = 0.0,
    faults: str = "",
    seed: int = 7,
) -> Demo:
    """Start the three sandboxes on free loopback ports and a fresh demo workspace wired to them.

    The sandboxes are served by a child process of their own: the app's process (its GUI loop, its database
    calls) does none of the emulators' work. The demo data dir is rebuilt at every start (the sandboxes are new
    too). Sandbox tokens are throwaway and kept in process memory only, so the demo runs even where no OS keyring
    exists; real integrations never use that.
    """
    rules = parse_fault_spec(faults) if faults else []
    # The demo plays a top-plan account of each CRM, so a first sync takes seconds, not minutes.
    server = SandboxProcess([
        SandboxSpec(p.value, SandboxConfig(latency_ms=latency_ms, faults=list(rules), seed=seed + i,
                                           contacts=crm_contacts), TOP_PLAN_LIMITS.get(p.value, {}))
        for i, p in enumerate(Provider)
    ])
    server.start()
    sandboxes = server.sandboxes
    try:
        folder = demo_data_dir(data_dir)
        if folder.exists():
            shutil.rmtree(folder)
        workspace = Workspace.open(folder, vault=Vault(backend=EphemeralKeyring()))
        for provider, sandbox in zip(Provider, sandboxes, strict=True):
            credentials = sandbox.credentials()
            if provider is Provider.PIPEDRIVE:
                credentials = {"apiToken": credentials["apiToken"]}
            integration = Integration(
                provider=provider,
                name=DEMO_NAMES[provider],
                description=f"Local {provider.value} sandbox at {sandbox.base_url} (demo data)",
                base_url=sandbox.base_url,
                domain="demo" if provider is Provider.PIPEDRIVE else None,
                sync_config=SyncConfig(auto_sync=False),
            )
            workspace.integrations.add(integration, credentials)
        people = generate_people(local_contacts, seed + 100)
        workspace.contacts.save_many([_contact(p) for p in people])
        for person in people:
            if person.is_lead:
                workspace.leads.save(_lead(person))
    except BaseException:
        server.stop()
        raise
    logger.info("demo workspace ready in %s", folder)
    return Demo(server, workspace, local_contacts)
