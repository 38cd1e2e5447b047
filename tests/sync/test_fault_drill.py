"""Fault drill: a push of many contacts through 5xx, 429, resets, timeouts, token expiry and refused records.

The sandbox runs on real loopback with the fault mix set through its control endpoint; the adapter gets a short
timeout and an instant sleep so retries cost no wall time. Every valid contact must land exactly once, every
refused one must be reported (run failures and record log) with its reason and the validation category, and a run
after that must send nothing for contacts already in the CRM.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration, Provider, SyncDirection
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.providers.contract import AdapterOptions
from crm_desktop.providers.factory import build_adapter
from crm_desktop.sandbox.core import LoggedRequest, Sandbox, SandboxConfig
from crm_desktop.sandbox.data import generate_people
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.sandbox.server import SandboxServer
from crm_desktop.store.models import SyncRunStatus
from crm_desktop.sync.engine import SyncEngine, SyncResult
from crm_desktop.sync.mapping import run_mappings
from tests.sync.crash_worker import crm_contacts

pytestmark = pytest.mark.loopback

#: Random faults at roughly the brief's rates, plus fixed request numbers so every kind fires in every drill.
FAULT_SPEC = (
    "5xx:0.03,429:0.03,reset:0.02,timeout:0.01,invalid:0.01,"
    "5xx@4,429@8,reset@12@26,timeout@19,expire@30,invalid@100@400"
)
REQUEST_FAULT_KINDS = {"5xx", "429", "reset", "timeout", "expire"}
#: Pipedrive needs a search and a create per person: fewer people keep its drill as quick as the others.
CONTACTS = {Provider.HUBSPOT: 1000, Provider.SALESFORCE: 1000, Provider.PIPEDRIVE: 400}
BATCH_SIZE = 25
WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}
READ_PATH_MARKERS = ("/search", "/batch/read", "/oauth", "/token", "access-token-info")


async def instant_sleep(_seconds: float) -> None:
    """Retry waits and Retry-After pass at once (the adapters count the skipped time)."""
    await asyncio.sleep(0)


def new_sandbox(provider: Provider) -> Sandbox:
    # A timed-out request is held 1 s on the wire; the client gives up after 0.4 s.
    config = SandboxConfig(contacts=0, seed=11, hang_seconds=1.0)
    if provider is Provider.HUBSPOT:
        return HubSpotSandbox(config)
    if provider is Provider.SALESFORCE:
        # Duplicate rules off: a create that landed and was sent again must show as a duplicate.
        return SalesforceSandbox(config, duplicate_rules=False)
    # The drill is about faults, not Pipedrive's 2-second burst window (an instant sleep cannot wait it out).
    return PipedriveSandbox(config, burst_limit=100_000, search_burst_limit=100_000, daily_token_budget=10**9)


def is_write(request: LoggedRequest) -> bool:
    return request.method in WRITE_METHODS and not any(marker in request.path for marker in READ_PATH_MARKERS)


@dataclass
class FaultDrill:
    """A workspace pushing to one loopback sandbox under the fault mix."""

    provider: Provider
    sandbox: Sandbox
    workspace: Workspace
    integration: Integration
    emails: set[str]

    async def push(self) -> SyncResult:
        """One push run, through an adapter with a short timeout and an instant sleep."""
        integration = self.integration
        adapter = build_adapter(
            integration,
            self.workspace.integrations.credentials(integration),
            save_tokens=lambda credentials: self.workspace.integrations.save_credentials(integration, credentials),
            sleep=instant_sleep,
            options=AdapterOptions(timeout=0.4, max_attempts=8),
        )
        mappings = self.workspace.sync.mappings(integration, RecordObject.CONTACT)
        try:
            fields = await adapter.list_fields(RecordObject.CONTACT)
            mappings = run_mappings(integration.provider, RecordObject.CONTACT, mappings, fields)
        except BaseException:
            await adapter.aclose()
            raise
        engine = SyncEngine(
            self.workspace.sync.store, integration, adapter, {RecordObject.CONTACT: mappings}, batch_size=BATCH_SIZE
        )
        return await engine.run(SyncDirection.PUSH, objects=(RecordObject.CONTACT,))

    def crm(self) -> Counter[str]:
        return Counter(email for _, email in crm_contacts(self.sandbox))

    def check_run(self, result: SyncResult) -> set[str]:
        """Check one run's report against the CRM; the emails it reports as refused."""
        assert result.run_id is not None
        crm = self.crm()
        assert [email for email, n in crm.items() if n > 1] == [], "a contact was created twice"
        assert set(crm) <= self.emails
        refused = {f.email for f in result.failures if f.category is ErrorCategory.VALIDATION}
        others = [f for f in result.failures if f.category is not ErrorCategory.VALIDATION]
        assert others == [], f"transient faults leaked out as failures: {others[:3]}"
        for failure in result.failures:
            assert failure.message and failure.email in failure.message, (
                f"the reason of {failure.email} does not name it: {failure.message!r}"
            )
        _, log = self.workspace.sync.run(result.run_id)
        failed_rows = [row for row in log if row.outcome is RecordOutcome.FAILED]
        assert {row.record_key for row in failed_rows} == refused
        for row in failed_rows:
            assert row.error_category is ErrorCategory.VALIDATION, row.error_category
            assert row.message, f"no reason logged for {row.record_key}"
        assert not refused & set(crm), "a record reported as refused is in the CRM"
        created = {row.record_key for row in log if row.outcome is RecordOutcome.CREATED}
        assert created <= set(crm)
        return refused

    def check_links(self) -> None:
        """Every contact in the CRM is linked locally to that very record."""
        crm_id_of = {email: crm_id for crm_id, email in crm_contacts(self.sandbox)}
        store = self.workspace.sync.store
        local = store.local_by_emails(RecordObject.CONTACT, sorted(self.emails))
        assert self.integration.id is not None
        links = store.links_for_local(self.integration.id, RecordObject.CONTACT, [r.id for r in local.values()])
        for email, crm_id in crm_id_of.items():
            link = links.get(local[email].id)
            assert link is not None and link.crm_id == crm_id, f"{email} is not linked to its CRM record"


async def set_faults(base_url: str, spec: str) -> list[dict[str, Any]]:
    """Set the sandbox's fault mix through its control endpoint, as an operator would."""
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.put("/__sandbox__/faults", json={"spec": spec})
    assert response.status_code == 200, response.text
    rules: list[dict[str, Any]] = response.json()
    return rules


def open_drill(provider: Provider, sandbox: Sandbox, data_dir: Path) -> FaultDrill:
    workspace = Workspace.open(data_dir)
    credentials = sandbox.credentials()
    if provider is Provider.PIPEDRIVE:
        credentials = {"apiToken": credentials["apiToken"]}
    integration = workspace.integrations.add(
        Integration(
            provider=provider,
            name="faults",
            base_url=sandbox.base_url,
            domain="sandbox" if provider is Provider.PIPEDRIVE else None,
        ),
        credentials,
    )
    people = generate_people(CONTACTS[provider], 23)
    workspace.contacts.save_many(
        Contact(
            email=p.email,
            first_name=p.first_name,
            last_name=p.last_name,
            company=p.company,
            phone=p.phone,
            social_profiles=p.social_profiles,
        )
        for p in people
    )
    return FaultDrill(provider, sandbox, workspace, integration, {p.email for p in people})


def refused_before(drill: FaultDrill, result: SyncResult) -> set[str]:
    """The records a run did not send because the CRM refused them unchanged before (each logged as skipped)."""
    assert result.run_id is not None
    _, log = drill.workspace.sync.run(result.run_id)
    return {row.record_key for row in log
            if row.outcome is RecordOutcome.SKIPPED and (row.message or "").startswith("refused by ")}


@pytest.mark.parametrize("provider", [Provider.HUBSPOT, Provider.SALESFORCE, Provider.PIPEDRIVE], ids=str)
def test_a_push_through_the_fault_mix_lands_each_valid_contact_once(provider: Provider, tmp_path: Path) -> None:
    sandbox = new_sandbox(provider)
    with SandboxServer([sandbox]):
        drill = open_drill(provider, sandbox, tmp_path / "workspace")
        try:
            rules = asyncio.run(set_faults(sandbox.base_url, FAULT_SPEC))
            assert {rule["kind"] for rule in rules} == REQUEST_FAULT_KINDS | {"invalid"}

            # Push until a run gets through: HubSpot private-app and Pipedrive API tokens cannot be refreshed, so
            # the injected expiry stops that run (as a revoked token would); its unsent writes wait in the outbox.
            runs: list[SyncResult] = []
            refused_ever: set[str] = set()
            while not runs or runs[-1].status is SyncRunStatus.FAILED:
                assert len(runs) < 3, f"no run got through the faults: {[(r.status, r.message) for r in runs]}"
                result = asyncio.run(drill.push())
                runs.append(result)
                refused_ever |= drill.check_run(result)
                if result.status is SyncRunStatus.FAILED:
                    assert provider is not Provider.SALESFORCE, f"Salesforce refreshes its session: {result.message}"
                    assert result.message and "reconnect" in result.message, result.message
            done = runs[-1]
            refused = drill.check_run(done)
            # A record refused by an earlier run is not sent again unchanged: the last run lists it as skipped.
            assert refused_before(drill, done) == refused_ever - refused

            fired = dict(sandbox.faults.fired)
            assert REQUEST_FAULT_KINDS | {"invalid"} <= set(fired), f"not every fault kind fired: {fired}"
            assert refused_ever, "the drill refused no record"
            crm = drill.crm()
            assert set(crm) == drill.emails - refused_ever, "a valid contact is missing from the CRM"
            assert set(crm.values()) == {1}
            drill.check_links()

            # A second run sends nothing: neither the contacts in the CRM nor, unchanged, those it refused (each
            # listed as skipped, with the refusal).
            landed = set(crm)
            mark = sandbox.request_count
            again = asyncio.run(drill.push())
            still_refused = drill.check_run(again)
            resent = [
                request.path
                for request in list(sandbox.requests)
                if request.number > mark
                and is_write(request)
                and any(email in json.dumps(request.body) for email in landed | refused_ever)
            ]
            assert resent == [], f"contacts were written again: {resent[:5]}"
            assert still_refused == set()
            assert refused_before(drill, again) == refused_ever
            crm_after = drill.crm()
            assert crm_after == crm
            assert again.counts["created"] == again.counts["updated"] == 0
            drill.check_links()
        finally:
            drill.workspace.close()
