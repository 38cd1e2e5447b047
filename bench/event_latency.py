"""Issue 11 benchmark: social events posted to the local API reach three sandbox CRMs through the workflows' outbox.

The three sandboxes (Salesforce, HubSpot, Pipedrive) are served on loopback from a child process of their own with
100 ms latency, as three integrations of one workspace with auto-sync on. The app serves its local API on loopback
(``LocalApiServer``, the same server the window and ``crm-desktop serve`` run) and a feeder posts a steady stream of
events to it over HTTP: new conversations (a new person each), messages in the open conversations, and post
engagements (by leads, by contacts and by people known only by a username). Every event is queued once per CRM, so
each CRM receives every event.

Measured per CRM, from the outbox rows: event received -> CRM write confirmed latency (p50, p95, max), CRM API
requests per event (the sandbox's own request count), events lost (not delivered by the end of the drain) and
events duplicated (timeline entries or contacts in the CRM beyond those the outbox recorded).

Run from the repository root::

    python -m bench.event_latency                  # the issue's figures: 10 events/s for 5 minutes
    python -m bench.event_latency --seconds 60     # a shorter run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from crm_desktop.api.server import LocalApiServer
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Integration, SyncConfig
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.process import SandboxProcess, SandboxSpec, ServedSandbox
from crm_desktop.store.models import DeliveryStatus, WorkflowEventKind
from crm_desktop.store.workflow_store import WorkflowStore
from crm_desktop.vault import Vault
from crm_desktop.vault.ephemeral import EphemeralKeyring

logger = logging.getLogger(__name__)

CRMS = ("salesforce", "hubspot", "pipedrive")
#: Raised Pipedrive bursts and HubSpot's top plan, so that the figures are the app's, not a plan's throttle.
#: Pipedrive's daily token budget is 30,000 x plan multiplier x seats: one seat's 30,000 runs out after about 2,400
#: events of this mix (about 12 tokens an event), so the run gives the company ten seats' worth.
SETTINGS: dict[str, dict[str, Any]] = {
    "hubspot": {"ten_second_limit": 190},
    "pipedrive": {"burst_limit": 120, "search_burst_limit": 100, "daily_token_budget": 300_000},
    "salesforce": {},
}
#: What the CRM's summary calls its timeline entries and its people.
ENTRIES = {"salesforce": "Task", "hubspot": "notes", "pipedrive": "activities"}
PEOPLE = {"salesforce": "Contact", "hubspot": "contacts", "pipedrive": "persons"}
#: Leads made before the stream starts, whose engagements update the CRM lead.
LEADS = 20
#: How long the outbox may take to drain after the last event before what is left counts as lost.
DRAIN_SECONDS = 120.0


@dataclass
class CrmFigures:
    """One CRM's figures."""

    crm: str
    events: int
    delivered: int
    failed: int
    lost: int
    duplicated: int
    p50_seconds: float
    p95_seconds: float
    max_seconds: float
    api_requests: int
    requests_per_event: float
    timeline_entries: int
    by_kind: dict[str, int]


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


class Feeder:
    """A seeded stream of events, as a social-media platform would post them."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.conversations: list[tuple[str, str]] = []  # (conversation id, email)
        self.people = 0
        self.messages = 0
        self.posted: Counter[str] = Counter()
        self.start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

    def _at(self, offset: float) -> str:
        return (self.start + timedelta(seconds=offset)).isoformat().replace("+00:00", "Z")

    def next_event(self, offset: float) -> tuple[str, dict[str, Any]]:
        roll = self.random.random()
        campaign = self.random.choice(["black-friday", "winter-launch", "webinar-dec"])
        if not self.conversations or roll < 0.1:
            self.people += 1
            number = self.people
            conversation = f"c-{number}"
            email = f"person{number}@example.com"
            self.conversations.append((conversation, email))
            return "/api/social/conversations", {
                "conversationId": conversation, "platform": "twitter", "startedAt": self._at(offset),
                "campaign": campaign,
                "participant": {"email": email, "firstName": "Person", "lastName": f"No{number}",
                                "username": f"person{number}", "followers": self.random.randint(10, 50_000)},
            }
        if roll < 0.8:
            self.messages += 1
            conversation, _ = self.random.choice(self.conversations[-30:])
            return "/api/social/messages", {
                "conversationId": conversation, "messageId": f"m-{self.messages}",
                "direction": self.random.choice(["inbound", "inbound", "outbound"]), "sentAt": self._at(offset),
                "text": f"Message {self.messages} about the offer", "sentiment": "positive",
            }
        kind = self.random.choice(["like", "click", "share", "comment", "view"])
        if roll < 0.9:
            user: dict[str, str] = {"email": f"lead{self.random.randint(1, LEADS)}@example.com"}
        elif roll < 0.95:
            user = {"username": f"person{self.random.randint(1, self.people)}"}
        else:
            user = {"username": f"stranger{self.random.randint(1, 500)}"}
        return "/api/social/engagements", {
            "platform": "twitter", "type": kind, "timestamp": self._at(offset), "postId": f"p-{offset:.3f}",
            "campaign": campaign, "user": user,
        }


async def _run(seconds: float, rate: float, latency_ms: float, seed: int, directory: Path,
               crms: tuple[str, ...] = CRMS) -> dict[str, Any]:
    specs = [SandboxSpec(crm, SandboxConfig(latency_ms=latency_ms, seed=seed, contacts=0), SETTINGS[crm])
             for crm in crms]
    with SandboxProcess(specs) as served_process:
        served: list[ServedSandbox] = served_process.sandboxes
        workspace = Workspace.open(directory / "workspace", vault=Vault(backend=EphemeralKeyring()))
        try:
            for sandbox in served:
                credentials = sandbox.credentials()
                if sandbox.provider == "pipedrive":
                    credentials = {"apiToken": credentials["apiToken"]}
                workspace.integrations.add(
                    Integration(provider=sandbox.provider, name=sandbox.provider, base_url=sandbox.base_url,
                                domain="acme", sync_config=SyncConfig(auto_sync=True)),
                    credentials,
                )
            server = LocalApiServer(workspace, 0)
            url = await server.start()
            headers = {"Authorization": f"Bearer {server.tokens.current()}"}
            # As many connections as a platform's webhook sender would open: none waits for a free one.
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=50)
            async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as client, \
                    httpx.AsyncClient(timeout=30) as control:
                for number in range(1, LEADS + 1):
                    for sandbox in served:
                        answer = await client.post(f"/api/crm/integrations/{sandbox.provider}/leads/sync", json={
                            "email": f"lead{number}@example.com", "firstName": "Lead", "lastName": f"No{number}",
                            "company": f"Lead {number} Ltd", "socialContext": {"platform": "twitter"}})
                        answer.raise_for_status()
                before = {s.provider: (await control.get(f"{s.base_url}/__sandbox__/state")).json() for s in served}
                feeder = Feeder(seed)
                started = time.monotonic()
                sent = 0
                posts: list[asyncio.Task[httpx.Response]] = []
                while (now := time.monotonic() - started) < seconds:
                    due = int(now * rate) + 1
                    while sent < due:
                        path, body = feeder.next_event(sent / rate)
                        feeder.posted[path.rsplit("/", 1)[1]] += 1
                        posts.append(asyncio.create_task(_post(client, path, body)))
                        sent += 1
                    await asyncio.sleep(max(0.0, (sent / rate) - (time.monotonic() - started)))
                answers = await asyncio.gather(*posts, return_exceptions=True)
                refused = [a for a in answers if isinstance(a, BaseException) or a.status_code >= 300]
                if refused:
                    first = refused[0]
                    raise RuntimeError(f"the API refused {len(refused)} of {sent} events, e.g. "
                                       f"{first!r}" if isinstance(first, BaseException) else
                                       f"{first.status_code} {first.text}")
                fed_seconds = time.monotonic() - started
                store = server.workflows.store
                drain_started = time.monotonic()
                while time.monotonic() - drain_started < DRAIN_SECONDS:
                    counts = store.counts()
                    if counts[DeliveryStatus.PENDING] == 0 and counts[DeliveryStatus.SENDING] == 0:
                        break
                    await asyncio.sleep(0.2)
                drained = time.monotonic() - drain_started
                after = {s.provider: (await control.get(f"{s.base_url}/__sandbox__/state")).json() for s in served}
            await server.stop()
            figures = [_figures(workspace, store, s.provider, sent, feeder.people, before[s.provider],
                                after[s.provider]) for s in served]
        finally:
            workspace.close()
    return {
        "command": f"python -m bench.event_latency --seconds {seconds:g} --rate {rate:g} --crm {' --crm '.join(crms)}",
        "rate": rate, "seconds": seconds, "fed_seconds": round(fed_seconds, 1), "events": sent,
        "posted": dict(feeder.posted), "drain_seconds": round(drained, 1), "latency_ms": latency_ms,
        "host": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        "crms": [asdict(f) for f in figures],
    }


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    """Post an event as a webhook sender does: again when the connection drops (a keep-alive connection the server
    closed as it was reused); the endpoints are idempotent, so a second delivery changes nothing."""
    for attempt in range(3):
        try:
            return await client.post(path, json=body)
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _figures(workspace: Workspace, store: WorkflowStore, crm: str, sent: int, conversations: int,
             before: dict[str, Any], after: dict[str, Any]) -> CrmFigures:
    integration = workspace.integrations.get(crm)
    assert integration.id is not None
    counts = store.counts(integration.id)
    delivered = store.delivered(integration.id)
    latencies = [(d.delivered_at - d.received_at).total_seconds() for d in delivered]
    in_crm = after["records"].get(ENTRIES[crm], 0) - before["records"].get(ENTRIES[crm], 0)
    new_people = after["records"].get(PEOPLE[crm], 0) - before["records"].get(PEOPLE[crm], 0)
    # Every conversation is a new person: more people in the CRM than conversations would be duplicates.
    duplicated = max(0, in_crm - store.entries_written(integration.id)) + max(0, new_people - conversations)
    requests = int(after["requests"]) - int(before["requests"])
    kinds = Counter(d.kind.value for d in delivered)
    return CrmFigures(
        crm=crm, events=sent, delivered=len(delivered), failed=counts[DeliveryStatus.FAILED],
        lost=sent - len(delivered), duplicated=duplicated,
        p50_seconds=round(statistics.median(latencies), 3) if latencies else float("nan"),
        p95_seconds=round(_percentile(latencies, 0.95), 3), max_seconds=round(max(latencies, default=0.0), 3),
        api_requests=requests, requests_per_event=round(requests / max(1, sent), 3), timeline_entries=in_crm,
        by_kind={kind.value: kinds.get(kind.value, 0) for kind in WorkflowEventKind},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300.0, help="how long events are posted (default 300)")
    parser.add_argument("--rate", type=float, default=10.0, help="events per second (default 10)")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="each sandbox's answer time (default 100)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--crm", action="append", choices=CRMS,
                        help="the CRM to feed (repeatable; default: each of the three in turn, alone)")
    parser.add_argument("--together", action="store_true",
                        help="feed the chosen CRMs at once, as integrations of one workspace (each event to each)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    chosen = tuple(args.crm or CRMS)
    groups = [chosen] if args.together else [(crm,) for crm in chosen]
    reports = []
    for group in groups:
        with tempfile.TemporaryDirectory(prefix="event-latency-") as directory:
            reports.append(asyncio.run(_run(args.seconds, args.rate, args.latency_ms, args.seed, Path(directory),
                                            group)))
    text = json.dumps(reports, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    bad = [c for report in reports for c in report["crms"] if c["lost"] or c["duplicated"]]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
