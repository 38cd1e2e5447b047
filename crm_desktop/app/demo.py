"""Demo mode: the three sandbox CRMs on loopback and a demo workspace of social contacts wired to them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from random import Random
from typing import Any

from crm_desktop.app.api_access import ApiTokens
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
from crm_desktop.domain.social import ConversationEvent, Conversion, EngagementEvent, Message
from crm_desktop.sandbox.core import SandboxConfig, parse_fault_spec
from crm_desktop.sandbox.data import GeneratedPerson, generate_people
from crm_desktop.sandbox.process import SandboxProcess, SandboxSpec
from crm_desktop.sandbox.social_feed import (
    DEFAULT_PER_MINUTE,
    FeedPerson,
    FeedStats,
    Salesperson,
    SocialFeed,
    SocialStream,
)
from crm_desktop.vault import Vault
from crm_desktop.vault.ephemeral import EphemeralKeyring

logger = logging.getLogger(__name__)

#: Each sandbox as its vendor spells the CRM.
SANDBOX_NAMES = {provider: provider.label for provider in Provider}
DEMO_NAMES = {provider: f"{name} (demo)" for provider, name in SANDBOX_NAMES.items()}


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
    crm_contacts: int = 30
    seed: int = 7

    def social_feed(self, api_url: str, token: str, per_minute: float = DEFAULT_PER_MINUTE) -> SocialFeed:
        """The demo's social platform: events about the demo's people (local and in the CRMs) to the local API at
        ``api_url``, and now and then a salesperson converting one of a sandbox's people."""
        local = generate_people(self.local_contacts, self.seed + 100)
        in_crms = {p.value: generate_people(self.crm_contacts, self.seed + i) for i, p in enumerate(Provider)}
        people = {person.email: _feed_person(person) for group in [local, *in_crms.values()] for person in group}
        salespeople = []
        for sandbox in self.server.sandboxes:
            crm_people = in_crms.get(sandbox.provider, [])
            if sandbox.provider == Provider.SALESFORCE.value:
                crm_people = [p for p in crm_people if p.is_lead]  # Salesforce converts Leads
            elif sandbox.provider == Provider.HUBSPOT.value:
                crm_people = [p for p in crm_people if p.lifecycle != "customer"]
            integration = self.workspace.integrations.find(DEMO_NAMES[Provider(sandbox.provider)])
            if crm_people and integration is not None:
                salespeople.append(Salesperson(sandbox.provider, sandbox.base_url, str(integration.id),
                                               tuple(p.email for p in crm_people)))
        return SocialFeed(api_url, token, list(people.values()), salespeople=salespeople, per_minute=per_minute,
                          seed=self.seed)

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


#: Events per minute of the demo's social feed (``0``: no feed).
FEED_RATE_ENV = "CRM_DESKTOP_DEMO_FEED_PER_MINUTE"


def feed_rate(environ: Mapping[str, str] | None = None) -> float:
    """The demo feed's events per minute: ``CRM_DESKTOP_DEMO_FEED_PER_MINUTE``, else a few a minute.

    Raises:
        ValueError: naming the variable, when it is not a number of 0 or more.
    """
    text = (os.environ if environ is None else environ).get(FEED_RATE_ENV, "").strip()
    if not text:
        return DEFAULT_PER_MINUTE
    try:
        rate = float(text)
    except ValueError:
        raise ValueError(f"{FEED_RATE_ENV}={text!r} is not a number of events per minute") from None
    if not rate >= 0:
        raise ValueError(f"{FEED_RATE_ENV}={text!r}: give 0 (no feed) or more events per minute")
    return rate


def _feed_person(person: GeneratedPerson) -> FeedPerson:
    facts = person.facts_on(person.social_platform) or person.profile_facts[0]
    return FeedPerson(person.email, person.first_name, person.last_name, facts.platform.value, facts.username,
                      facts.followers)


class FeedThread:
    """The demo's social feed on a thread of its own (its own event loop), beside the app's loop and window.

    It posts to the app's local API at ``api_url`` once that answers, with the workspace's API token, and stops
    within a moment when told (at quit), however slow its rate.
    """

    def __init__(self, demo: Demo, api_url: str, per_minute: float = DEFAULT_PER_MINUTE) -> None:
        self.feed = demo.social_feed(api_url, ApiTokens(demo.workspace.vault).current(), per_minute)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="demo social feed", daemon=True)

    @property
    def stats(self) -> FeedStats:
        return self.feed.stats

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(5.0)

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self.feed.run(self._stop)

        try:
            asyncio.run(main())
        except Exception:  # the demo's window goes on without its feed
            logger.exception("the demo's social feed stopped")
        finally:
            self._ready.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop posting (the step in flight finishes or is dropped) and wait for the thread to end."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # its loop already ended
                loop.call_soon_threadsafe(stop.set)
        if self._thread.is_alive():
            self._thread.join(timeout)


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


#: The demo workspace's past: this many days of social activity before the demo starts, about this many events
#: (engagements, conversations and their messages), and one person in this many of those who engaged converted.
HISTORY_DAYS = 30
HISTORY_EVENTS = 900
CONVERTED_ONE_IN = 6
#: What a past conversion was worth (EUR), as the demo's won deals are.
CONVERSION_VALUES = (600, 900, 1800, 2400, 3600, 4800, 12000)


@dataclass(frozen=True)
class DemoHistory:
    """What :func:`record_history` put in the demo workspace."""

    engagements: int
    conversations: int
    messages: int
    conversions: int


def record_history(workspace: Workspace, people: list[GeneratedPerson], *, seed: int, now: datetime,
                   days: int = HISTORY_DAYS, events: int = HISTORY_EVENTS) -> DemoHistory:
    """Give the demo workspace a past: the demo feed's stream of social activity by ``people`` over the ``days``
    before ``now`` (the same steps the live feed posts, validated as the local API validates them and recorded
    through the social service), and conversions with their value by some of those who engaged, each after their
    first touchpoint. So Attribution, the People timelines and the engagement scores have something to show from
    the first minute."""
    chance = Random(seed)
    start = now - timedelta(days=days)
    moments = sorted(start + timedelta(seconds=chance.uniform(0, days * 86_400)) for _ in range(events))
    ticks = iter(moments)
    stream = SocialStream([_feed_person(p) for p in people], seed=seed, clock=lambda: next(ticks))
    bodies: dict[str, list[dict[str, Any]]] = {"conversation": [], "message": [], "engagement": []}
    first_touch: dict[str, datetime] = {}
    for step in itertools.islice(stream.steps(), events):
        bodies[step.kind].append(step.body)
        email = (step.body.get("user") or step.body.get("participant") or {}).get("email")
        moment = step.body.get("timestamp") or step.body.get("startedAt")
        if email and moment:
            first_touch.setdefault(email, datetime.fromisoformat(moment))
    # One transaction per kind; the conversations before their messages.
    social = workspace.social
    social.record_conversations([ConversationEvent.model_validate(body) for body in bodies["conversation"]])
    social.record_messages([Message.model_validate(body) for body in bodies["message"]])
    social.record_engagements([EngagementEvent.model_validate(body) for body in bodies["engagement"]])
    converted = sorted(first_touch)[::CONVERTED_ONE_IN]
    conversions = [
        Conversion(email=email, timestamp=first_touch[email] + (now - first_touch[email]) * chance.uniform(0.2, 0.9),
                   value=Decimal(chance.choice(CONVERSION_VALUES)), currency="EUR",
                   external_id=f"demo-order-{number}")
        for number, email in enumerate(converted, 1)
    ]
    social.record_conversions(conversions)
    return DemoHistory(len(bodies["engagement"]), len(bodies["conversation"]), len(bodies["message"]),
                       len(conversions))


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
    calls) does none of the emulators' work. The workspace gets the demo's people and a month of their social
    activity and conversions (:func:`record_history`) while that child comes up. The demo data dir is rebuilt at
    every start (the sandboxes are new too). Sandbox tokens are throwaway and kept in process memory only, so the
    demo runs even where no OS keyring exists; real integrations never use that.
    """
    rules = parse_fault_spec(faults) if faults else []
    # The demo plays a top-plan account of each CRM, so a first sync takes seconds, not minutes.
    server = SandboxProcess([
        SandboxSpec(p.value, SandboxConfig(latency_ms=latency_ms, faults=list(rules), seed=seed + i,
                                           contacts=crm_contacts), TOP_PLAN_LIMITS.get(p.value, {}))
        for i, p in enumerate(Provider)
    ])
    server.launch()  # it comes up while the workspace is built
    try:
        folder = demo_data_dir(data_dir)
        if folder.exists():
            shutil.rmtree(folder)
        workspace = Workspace.open(folder, vault=Vault(backend=EphemeralKeyring()))
        people = generate_people(local_contacts, seed + 100)
        workspace.contacts.save_many([_contact(p) for p in people])
        for person in people:
            if person.is_lead:
                workspace.leads.save(_lead(person))
        record_history(workspace, people, seed=seed, now=datetime.now(UTC))
        server.wait_until_served()
        for provider, sandbox in zip(Provider, server.sandboxes, strict=True):
            credentials = sandbox.credentials()
            if provider is Provider.PIPEDRIVE:
                credentials = {"apiToken": credentials["apiToken"]}
            integration = Integration(
                provider=provider,
                name=DEMO_NAMES[provider],
                description=f"{SANDBOX_NAMES[provider]} sandbox on this computer, with generated demo data",
                base_url=sandbox.base_url,
                domain="demo" if provider is Provider.PIPEDRIVE else None,
                sync_config=SyncConfig(auto_sync=False),
            )
            workspace.integrations.add(integration, credentials)
    except BaseException:
        server.stop()
        raise
    logger.info("demo workspace ready in %s", folder)
    return Demo(server, workspace, local_contacts, crm_contacts, seed)
