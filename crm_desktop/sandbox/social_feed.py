"""A demo social platform: a seeded stream of conversations, messages and post engagements over several campaigns,
posted to CRM Desktop's local API as a platform's webhooks would be, and now and then a salesperson's step in a
sandbox CRM (a lead converted, a lifecycle moved to customer, a deal won) so that conversions come back.

Everything goes over HTTP: the events to the local API with its bearer token, the salesperson's steps to the
sandboxes' control endpoint, and after such a step ``POST /api/crm/integrations/:id/sync-from-crm`` so that the
run pulls the conversion (the app's own sync would, later). A refused event is counted, never retried: a feed is
not a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

logger = logging.getLogger(__name__)

#: The campaigns the demo's events belong to.
CAMPAIGNS = ("Spring launch", "Webinar series", "Customer stories", "Black Friday")
#: Post engagements, the commonest first (a view is far more likely than a share).
ENGAGEMENTS = (("view", 30), ("click", 20), ("like", 20), ("comment", 10), ("share", 5), ("follow", 5),
               ("mention", 4))
SENTIMENTS = ("positive", "neutral", "negative", "mixed")
INBOUND_TEXTS = (
    "Hi! Does the team plan come with onboarding?",
    "Loved the webinar, is the recording online?",
    "How does pricing work for 20 seats?",
    "Can it sync with our CRM?",
    "Thanks, that answers it.",
)
OUTBOUND_TEXTS = (
    "Happy to help: here is the link.",
    "Yes, onboarding is included. Want a call?",
    "I'll send the pricing sheet by email.",
)
#: Events per minute unless told otherwise: a few a minute, so the app visibly moves without flooding it.
DEFAULT_PER_MINUTE = 6.0
#: One salesperson's step in this many events.
DEFAULT_STEP_EVERY = 12
#: How long the feed waits for the local API to answer before giving up.
API_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class FeedPerson:
    """Someone of the audience the feed makes events for."""

    email: str
    first_name: str
    last_name: str
    platform: str
    username: str
    followers: int


@dataclass(frozen=True)
class Salesperson:
    """Where a salesperson works: one sandbox CRM, the integration of it, and the people it holds.

    Attributes:
        provider: ``salesforce``, ``hubspot`` or ``pipedrive``.
        base_url: the sandbox's base URL (its control endpoint is under ``/__sandbox__``).
        integration: the integration's name in the workspace (for ``sync-from-crm``).
        emails: people this CRM holds, who can convert (Salesforce: its Leads).
    """

    provider: str
    base_url: str
    integration: str
    emails: tuple[str, ...]


@dataclass(frozen=True)
class FeedStep:
    """One thing the feed does: an event posted to the local API, or a salesperson's step in a sandbox."""

    kind: str
    body: dict[str, Any]
    salesperson: Salesperson | None = None


@dataclass
class FeedStats:
    """What a feed did so far."""

    posted: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    salesperson_steps: int = 0
    syncs_started: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(self.posted.values())


_STEP_ACTIONS = {"salesforce": "convert-lead", "hubspot": "lifecycle", "pipedrive": "win-deal"}
_EVENT_PATHS = {
    "conversation": "/api/social/conversations",
    "message": "/api/social/messages",
    "engagement": "/api/social/engagements",
}


class SocialStream:
    """The demo's social activity as a seeded stream of steps: mostly post engagements and messages, a conversation
    when a person first writes, and (with salespeople) now and then a salesperson's step in a sandbox CRM.

    Args:
        people: the audience (events name them by email and username).
        salespeople: the sandbox CRMs where a salesperson converts someone (in turn); none: no conversions.
        step_every: one salesperson's step in this many steps.
        seed: the same seed gives the same stream.
        clock: each event's time (asked once per event: live, now; for a past month, moments in turn).
    """

    def __init__(
        self,
        people: Sequence[FeedPerson],
        *,
        salespeople: Sequence[Salesperson] = (),
        step_every: int = DEFAULT_STEP_EVERY,
        seed: int = 7,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not people:
            raise ValueError("the feed needs an audience")
        self.people = list(people)
        self.salespeople = list(salespeople)
        self.step_every = max(2, step_every)
        self._random = random.Random(seed)
        self._clock = clock
        self._conversations: dict[str, tuple[str, str]] = {}  # email -> (platform, conversation id)
        self._converted: set[tuple[str, str]] = set()
        self._message_number = 0

    def steps(self) -> Iterator[FeedStep]:
        """The stream, endless: mostly engagements and messages, a conversation when a person first writes."""
        number = 0
        turn = 0
        while True:
            number += 1
            if self.salespeople and number % self.step_every == 0:
                salesperson = self.salespeople[turn % len(self.salespeople)]
                turn += 1
                step = self._salesperson_step(salesperson)
                if step is not None:
                    yield step
                    continue
            yield self._event()

    def _event(self) -> FeedStep:
        person = self._random.choice(self.people)
        campaign = self._random.choice(CAMPAIGNS)
        now = self._clock().astimezone(UTC)
        roll = self._random.random()
        if roll < 0.55:
            kind = self._random.choices([k for k, _ in ENGAGEMENTS], [w for _, w in ENGAGEMENTS])[0]
            return FeedStep("engagement", {
                "platform": person.platform, "type": kind, "timestamp": now.isoformat(), "campaign": campaign,
                "postId": f"post-{self._random.randrange(1, 40)}",
                # Platforms often know only the handle; the email comes with a conversation or a form.
                "user": {"username": person.username} if self._random.random() < 0.3 else
                        {"email": person.email, "username": person.username},
            })
        if person.email not in self._conversations:
            conversation_id = f"demo-{person.platform[:2]}-{self._random.getrandbits(48):012x}"
            self._conversations[person.email] = (person.platform, conversation_id)
            return FeedStep("conversation", {
                "conversationId": conversation_id, "platform": person.platform,
                "startedAt": (now - timedelta(seconds=1)).isoformat(), "campaign": campaign,
                "participant": {"email": person.email, "firstName": person.first_name,
                                "lastName": person.last_name, "username": person.username,
                                "followers": person.followers},
            })
        _platform, conversation_id = self._conversations[person.email]
        inbound = self._random.random() < 0.6
        self._message_number += 1
        body: dict[str, Any] = {
            "conversationId": conversation_id, "messageId": f"{conversation_id}-m{self._message_number}",
            "direction": "inbound" if inbound else "outbound", "sentAt": now.isoformat(),
            "text": self._random.choice(INBOUND_TEXTS if inbound else OUTBOUND_TEXTS),
        }
        if inbound:
            body["sentiment"] = self._random.choices(SENTIMENTS, [5, 3, 1, 1])[0]
        return FeedStep("message", body)

    def _salesperson_step(self, salesperson: Salesperson) -> FeedStep | None:
        waiting = [e for e in salesperson.emails if (salesperson.provider, e) not in self._converted]
        if not waiting:
            return None
        email = self._random.choice(waiting)
        self._converted.add((salesperson.provider, email))
        body: dict[str, Any] = {"email": email}
        if salesperson.provider == "pipedrive":
            body.update(value=self._random.choice((900, 2400, 4800, 12000)), currency="EUR")
        elif salesperson.provider == "hubspot":
            # The contact becomes a customer with a deal closed won (what its conversion is worth).
            body.update(stage="customer", amount=self._random.choice((600, 1800, 3600)), currency="EUR")
        return FeedStep("salesperson", body, salesperson)


class SocialFeed(SocialStream):
    """The demo's social stream posted to the local API at its rate, as a platform's webhooks would post it.

    Args:
        api_url: the local API, e.g. ``http://127.0.0.1:8765``.
        token: its bearer token.
        people, salespeople, step_every, seed, clock: the stream's (see :class:`SocialStream`).
        per_minute: events per minute (a salesperson's step counts as one).
        sleep: waits between steps (tests make it instant).
    """

    def __init__(
        self,
        api_url: str,
        token: str,
        people: Sequence[FeedPerson],
        *,
        salespeople: Sequence[Salesperson] = (),
        per_minute: float = DEFAULT_PER_MINUTE,
        step_every: int = DEFAULT_STEP_EVERY,
        seed: int = 7,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("the feed's rate must be above 0 events a minute")
        super().__init__(people, salespeople=salespeople, step_every=step_every, seed=seed, clock=clock)
        self.api_url = api_url.rstrip("/")
        self._token = token
        self.interval = 60.0 / per_minute
        self.stats = FeedStats()
        self._sleep = sleep

    # -- sending --------------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None, limit: int | None = None,
                  client: httpx.AsyncClient | None = None) -> FeedStats:
        """Post the stream at the feed's rate until ``stop`` is set (or ``limit`` steps); returns what it did.

        Cancelling it is a clean stop too: the step in flight is abandoned, nothing is half-sent twice.
        """
        own = client is None
        http = client or httpx.AsyncClient(timeout=10.0)
        stop = stop or asyncio.Event()
        try:
            if not await self.wait_for_api(http, stop):
                return self.stats
            for done, step in enumerate(self.steps()):
                if stop.is_set() or (limit is not None and done >= limit):
                    break
                await self._send(http, step)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval):
                        await stop.wait()
        finally:
            if own:
                await http.aclose()
        logger.info("demo feed stopped: %d events posted, %d refused, %d salesperson steps",
                    self.stats.events, self.stats.refused, self.stats.salesperson_steps)
        return self.stats

    async def wait_for_api(self, http: httpx.AsyncClient, stop: asyncio.Event) -> bool:
        """Wait until the local API answers (the app may still be starting it); False when stopped or after
        :data:`API_WAIT_SECONDS`."""
        timeout = API_WAIT_SECONDS
        deadline = asyncio.get_running_loop().time() + timeout
        while not stop.is_set():
            try:
                if (await http.get(f"{self.api_url}/openapi.json")).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                self._note(f"the local API at {self.api_url} did not answer within {timeout:.0f} s")
                return False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    await stop.wait()
        return False

    async def _send(self, http: httpx.AsyncClient, step: FeedStep) -> None:
        try:
            if step.salesperson is not None:
                await self._salesperson(http, step.salesperson, step.body)
                return
            answer = await http.post(f"{self.api_url}{_EVENT_PATHS[step.kind]}", json=step.body,
                                     headers={"Authorization": f"Bearer {self._token}"})
        except httpx.HTTPError as exc:
            self._note(f"{step.kind}: {type(exc).__name__}: {exc}")
            return
        if answer.status_code in (200, 201):
            self.stats.posted[step.kind] = self.stats.posted.get(step.kind, 0) + 1
        else:
            self.stats.refused += 1
            self._note(f"{step.kind} refused ({answer.status_code}): {answer.text[:200]}")

    async def _salesperson(self, http: httpx.AsyncClient, salesperson: Salesperson, body: dict[str, Any]) -> None:
        action = _STEP_ACTIONS[salesperson.provider]
        answer = await http.post(f"{salesperson.base_url}/__sandbox__/salesperson/{action}", json=body)
        if answer.status_code != 200:
            self._note(f"{salesperson.provider} {action} for {body['email']}: {answer.status_code} {answer.text[:200]}")
            return
        self.stats.salesperson_steps += 1
        logger.info("demo: a salesperson did %s for %s in %s", action, body["email"], salesperson.provider)
        started = await http.post(
            f"{self.api_url}/api/crm/integrations/{salesperson.integration}/sync-from-crm",
            headers={"Authorization": f"Bearer {self._token}"},
        )
        if started.status_code == 202:
            self.stats.syncs_started += 1
        elif started.status_code != 409:  # 409: a sync is running; the app's next one pulls it
            self._note(f"sync of {salesperson.integration} not started ({started.status_code}): {started.text[:200]}")

    def _note(self, problem: str) -> None:
        logger.warning("demo feed: %s", problem)
        self.stats.errors.append(problem)
        del self.stats.errors[:-20]
