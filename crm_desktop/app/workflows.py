"""The three social workflows: conversation -> CRM contact, message -> engagement update, engagement -> lead.

Events are recorded by the social service, then queued here in a durable outbox (one row per integration and
event key, so a re-delivered event adds nothing) and delivered by one worker per integration on the app's loop.
Delivery is a group commit: the first event goes at once; whatever arrives while a delivery is in flight goes
together in the next one (one contact push and one timeline batch however many events piled up). An event that
meets a CRM that is down, rate limited or closing stays queued and is delivered later, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from crm_desktop.app.crm_actions import CrmActions
from crm_desktop.app.integrations import IntegrationService
from crm_desktop.app.social import SocialService
from crm_desktop.app.sync_service import SyncService
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.domain.models import Contact, Integration, Lead, SocialPlatform, SyncDirection, platform_name
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.domain.scoring import engagement_score
from crm_desktop.domain.social import ConversationEvent, EngagementEvent, Message, PersonRef, normalise_username
from crm_desktop.providers.contract import LogsTimeline, TimelineEntry, TimelineKind, TimelineResult
from crm_desktop.providers.errors import AuthError, ProviderError
from crm_desktop.store.conversion_store import ConversionPullStore
from crm_desktop.store.database import Database
from crm_desktop.store.metrics_store import MetricsStore
from crm_desktop.store.models import SyncTrigger, WorkflowEventKind, utc_from_store
from crm_desktop.store.repositories import ContactStore, NotFoundError
from crm_desktop.store.social_store import Person, RecordedEvent, engagement_ref, event_key
from crm_desktop.store.workflow_store import (
    ClaimedEvent,
    ConversationFacts,
    QueuedEvent,
    WorkflowStore,
    conversation_never_arrived,
)
from crm_desktop.sync.engine import SyncAlreadyRunning, SyncResult
from crm_desktop.sync.mapping import apply_values, from_crm, record_values

logger = logging.getLogger(__name__)

#: Events one delivery takes at most (the CRMs' batch sizes: 100 to 200 records a request).
DELIVERY_BATCH = 200
#: The first retry waits this long, then twice as long each time, up to :data:`RETRY_MAX_SECONDS`.
RETRY_FIRST_SECONDS = 2.0
RETRY_MAX_SECONDS = 300.0
#: A claim older than this belongs to a delivery that stopped with its process: it is taken up again.
CLAIM_LEASE = timedelta(minutes=5)
#: How long a message whose conversation has not arrived is retried before it is given up.
MESSAGE_WAITS_FOR_CONVERSATION = 20
#: The seed's hourly job: contacts of new conversations pushed at most this often.
HOURLY = timedelta(hours=1)
#: How long the worker sleeps at most before looking at the integration's settings and queue again.
IDLE_CHECK_SECONDS = 60.0
#: How often a worker of an integration with auto-sync off looks for a sync a person started.
MANUAL_SYNC_CHECK_SECONDS = 5.0
#: Characters of one message shown in a timeline entry (the whole text stays in the local store).
MESSAGE_EXCERPT = 500
#: The most characters of a timeline entry's text, as the CRMs keep it (HTML-escaped by HubSpot and Pipedrive):
#: under Salesforce's 32,000 for a Task's Description and HubSpot's 65,536 for a note's body, which would cut it.
#: A burst of messages longer than that goes in several entries.
ENTRY_TEXT_MAX = 30_000
#: Settings key of the hourly job's last run.
HOURLY_SETTING = "workflows.hourly_push"
#: Stored engagement scores decay with time: everyone's is recomputed this often.
RESCORE_EVERY = timedelta(days=1)
#: Settings key of the daily rescore's last run.
RESCORE_SETTING = "workflows.daily_rescore"

#: Failures worth another try later: the CRM or the network may come back, a reconnect fixes credentials, and a
#: CRM admin granting the missing permission lets the waiting events through (each try is one request, refused once).
_RETRIABLE = {
    ErrorCategory.NETWORK, ErrorCategory.SERVER, ErrorCategory.RATE_LIMIT, ErrorCategory.AUTH, ErrorCategory.PERMISSION,
}


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class DeliveryReport:
    """What one delivery did.

    Attributes:
        claimed: events taken from the outbox.
        delivered: events that reached the CRM (or had nothing to send there).
        retried: events put back for a later try.
        failed: events the CRM refused for good.
        api_calls: CRM requests sent.
        entries: timeline entries written.
    """

    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    api_calls: int = 0
    entries: int = 0


@dataclass
class _Batch:
    """The settling of one delivery's events, filled in as the delivery goes."""

    done: dict[int, tuple[str | None, str | None]] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    retry: dict[int, str] = field(default_factory=dict)

    def settled(self, event_id: int) -> bool:
        return event_id in self.done or event_id in self.failed or event_id in self.retry


def conversation_key(event: ConversationEvent) -> str:
    """A conversation event's idempotency key: who it is with and when, as the CRM's timeline entry says it. The
    same event re-sent has the same key, also with the username's case or the follower count changed (those
    reach the CRM with the contact, at the next sync); a late email gives another key, delivered as an update."""
    participant = event.participant
    username = normalise_username(participant.username) if participant.username is not None else None
    return event_key("conversation", event.platform, event.conversation_id, participant.email, username,
                     event.campaign, event.started_at.isoformat())


def message_key(message: Message) -> str:
    """A message's idempotency key: its id and content (an edited message is delivered again)."""
    return event_key("message", message.message_id, message.text, message.sentiment, message.direction)


def engagement_key(event: EngagementEvent, person: Person | None = None) -> str:
    """An engagement's idempotency key: what identifies it on its network (:func:`engagement_ref`) and its person
    as the store resolved them (``person``; else as the event names them), so that a re-send naming the person
    another way (by email alone, once the username is linked to it) is the same event, as the store answers
    ``unchanged``; one that makes the person known by email at last is queued again, to reach their CRM record."""
    ref = engagement_ref(event.platform, event.type, event.timestamp, event.post_id, event.conversation_id,
                         event.campaign)
    if person is not None and (person.email is not None or person.username is not None):
        email, username = person.email, person.username
    else:
        email = event.user.email
        username = normalise_username(event.user.username) if event.user.username is not None else None
    return event_key("engagement", ref, *(("email", email) if email is not None else ("username", username)))


class SocialWorkflows:
    """Queues social events for every integration's CRM and delivers them (see the module).

    Attributes:
        store: the durable outbox.
        integrations: the integrations service.
        sync: pushes contacts and leads through the sync engine (its own outbox, links and run log).
        crm: builds adapters for the timeline writes.
        social: scores and conversations.
    """

    def __init__(
        self, database: Database, integrations: IntegrationService, sync: SyncService, crm: CrmActions,
        social: SocialService, *, clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = WorkflowStore(database)
        self._metrics = MetricsStore(database)
        self._conversions = ConversionPullStore(database)
        self.integrations = integrations
        self.sync = sync
        self.crm = crm
        self.social = social
        self._contacts = ContactStore(database)
        self._clock = clock
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._wakes: dict[int, asyncio.Event] = {}
        self._turns: dict[int, asyncio.Lock] = {}
        self._hourly: asyncio.Task[None] | None = None
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def for_workspace(cls, workspace: Workspace) -> SocialWorkflows:
        """The workflows of a workspace, on its store and services."""
        return cls(workspace.database, workspace.integrations, workspace.sync, workspace.crm, workspace.social)

    # -- intake -------------------------------------------------------------------------------------------------

    def queue_conversations(self, events: Sequence[ConversationEvent]) -> int:
        """Queue conversation starts for every integration; returns the outbox rows added (0 for a replay). Each
        is queued with the start the store keeps (the earliest sent), so a re-delivery with a later start is the
        same event."""
        stored = self.store.conversations([e.conversation_id for e in events])
        kept = [_as_stored(e, _facts(stored, e.conversation_id, e.platform)) for e in events]
        return self._queue([QueuedEvent(WorkflowEventKind.CONVERSATION, conversation_key(e), e.to_wire())
                            for e in kept])

    def queue_messages(self, messages: Sequence[Message]) -> int:
        """Queue messages for every integration; returns the outbox rows added (0 for a replay)."""
        return self._queue([QueuedEvent(WorkflowEventKind.MESSAGE, message_key(m), m.to_wire()) for m in messages])

    def queue_engagements(self, events: Sequence[EngagementEvent],
                          recorded: Sequence[RecordedEvent] | None = None) -> int:
        """Queue post engagements for every integration; returns the outbox rows added (0 for a replay).
        ``recorded`` (the store's answers, in order) keys each by the person it was recorded for."""
        people: list[Person | None] = [r.person for r in recorded] if recorded is not None else [None] * len(events)
        return self._queue([QueuedEvent(WorkflowEventKind.ENGAGEMENT, engagement_key(e, p), e.to_wire())
                            for e, p in zip(events, people, strict=True)])

    def requeue_conversations_of(self, recorded: Sequence[RecordedEvent]) -> int:
        """After events that gave anonymous identities their emails (``linked_touchpoints``), queue again the
        conversations those people started while known by username alone, which reached no CRM then; how many
        integrations get them."""
        emails = {r.person.email for r in recorded if r.linked_touchpoints and r.person.email is not None}
        targets = self.store.requeue_unreached_conversations(emails)
        if targets:
            self.notify(targets)
        return len(targets)

    def _queue(self, events: list[QueuedEvent]) -> int:
        targets = [i.id for i in self.integrations.list() if i.id is not None and i.sync_config.direction
                   is not SyncDirection.PULL]
        added = self.store.enqueue(targets, events)
        if added:
            self.notify(targets)
        return added

    # -- the worker ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start delivering on the running loop: claims left by a stopped process are taken up again, and every
        integration with auto-sync on gets its worker (idempotent)."""
        self._running = True
        self._loop = asyncio.get_running_loop()
        released = self.store.release_stale(self._clock() - CLAIM_LEASE)
        if released:
            logger.info("workflows: %d events a stopped delivery had claimed go again", released)
        self.notify([i.id for i in self.integrations.list() if i.id is not None])
        if self._hourly is None or self._hourly.done():
            self._hourly = asyncio.get_running_loop().create_task(self._hourly_loop(), name="hourly contact push")

    def notify(self, integration_ids: Sequence[int]) -> None:
        """Wake the workers of these integrations (starting those not running) when delivery runs here; from a
        worker thread too (the local API records events off the loop), the wake then goes through the loop."""
        if not self._running:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            if self._loop is not None:
                # A loop closed meanwhile (the app quit) has no workers to wake: the events wait in the outbox.
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self.notify, list(integration_ids))
            return
        for integration_id in integration_ids:
            self._wakes.setdefault(integration_id, asyncio.Event()).set()
            worker = self._workers.get(integration_id)
            if worker is None or worker.done():
                self._workers[integration_id] = asyncio.get_running_loop().create_task(
                    self._serve(integration_id), name=f"workflow delivery {integration_id}"
                )

    async def stop(self) -> None:
        """Stop the workers; an event in flight goes back to the queue and is delivered at the next start."""
        self._running = False
        tasks = [t for t in [*self._workers.values(), self._hourly] if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        self._hourly = None

    @property
    def running(self) -> bool:
        return self._running

    async def _serve(self, integration_id: int) -> None:
        wake = self._wakes.setdefault(integration_id, asyncio.Event())
        while self._running:  # stopped: the next wait would never be cancelled again
            wake.clear()
            try:
                integration = self.integrations.get_by_id(integration_id)
            except NotFoundError:
                return  # removed: its queue went with it
            if not integration.sync_config.auto_sync:
                # Auto-sync off: events wait for the next sync a person (or the command line) starts, seen in the
                # store, so a sync run by another process counts too.
                oldest = self.store.oldest_pending(integration_id)
                started = self.store.last_sync_started(integration_id)
                if oldest is not None and started is not None and started >= oldest:
                    try:
                        await self.deliver_waiting(integration.name)
                    except Exception:
                        logger.exception("workflows: delivery to %s after its sync failed", integration.name)
                await _wait(wake, MANUAL_SYNC_CHECK_SECONDS)
                continue
            try:
                report = await self.deliver(integration)
            except Exception:  # a bug must not end delivery for good: log it, wait, try again
                logger.exception("workflows: delivery to %s failed", integration.name)
                report = DeliveryReport()
                await _wait(wake, RETRY_MAX_SECONDS)
                continue
            if report.claimed and report.retried < report.claimed:
                continue  # what piled up while this delivery was in flight goes now, together
            due = self.store.next_attempt(integration_id)
            pause = IDLE_CHECK_SECONDS if due is None else (due - self._clock()).total_seconds()
            await _wait(wake, min(max(pause, 0.0), IDLE_CHECK_SECONDS))

    async def deliver_waiting(self, name: str) -> DeliveryReport:
        """Deliver every event waiting for the integration now, whatever its auto-sync says (a sync the user
        started, or the command line's); events that must be retried stay queued."""
        integration = self.integrations.get(name)
        total = DeliveryReport()
        while True:
            report = await self.deliver(integration)
            for name_ in ("claimed", "delivered", "retried", "failed", "api_calls", "entries"):
                setattr(total, name_, getattr(total, name_) + getattr(report, name_))
            if not report.claimed or report.retried == report.claimed:
                return total

    # -- one delivery -------------------------------------------------------------------------------------------

    async def deliver(self, integration: Integration) -> DeliveryReport:
        """Claim the integration's due events (up to :data:`DELIVERY_BATCH`) and deliver them together: one push
        of the contacts and leads they touch, then one batch of timeline entries."""
        assert integration.id is not None
        async with self._turns.setdefault(integration.id, asyncio.Lock()):
            claimed = self.store.claim(integration.id, self._clock(), DELIVERY_BATCH)
            report = DeliveryReport(claimed=len(claimed))
            if not claimed:
                return report
            batch = _Batch()
            try:
                await self._deliver(integration, claimed, batch, report)
            except (SyncAlreadyRunning, AuthError, ProviderError) as exc:
                for event in claimed:
                    if not batch.settled(event.id):
                        batch.retry[event.id] = _reason(exc)
            except BaseException:
                # Stopped (the app is closing) or a bug: whatever is not settled goes back untouched.
                self._settle(integration.id, claimed, batch, report)
                self.store.release([e.id for e in claimed if not batch.settled(e.id)])
                raise
            self._settle(integration.id, claimed, batch, report)
            return report

    def _settle(self, integration_id: int, claimed: list[ClaimedEvent], batch: _Batch,
                report: DeliveryReport) -> None:
        now = self._clock()
        attempts = {e.id: e.attempts for e in claimed}
        retry = [(i, why, now + timedelta(seconds=_backoff(attempts[i]))) for i, why in batch.retry.items()]
        self.store.finish([(i, crm, entry) for i, (crm, entry) in batch.done.items()], list(batch.failed.items()),
                          retry)
        # The Sync Monitor's "event -> CRM latency": from receipt to the CRM's confirmation, for the events that
        # wrote something to the CRM (one that had nothing to send there says nothing of the CRM's speed).
        latencies = [max(0.0, (now - e.received_at).total_seconds()) for e in claimed
                     if e.id in batch.done and any(batch.done[e.id])]
        try:
            self._metrics.record_event_latencies(integration_id, latencies, now)
        except Exception:  # the delivery is settled already; a lost figure must not undo it
            logger.exception("could not record the delivery latency of %d events", len(latencies))
        report.delivered, report.failed, report.retried = len(batch.done), len(batch.failed), len(batch.retry)
        if batch.failed:
            logger.warning("workflows: %d events refused for good: %s", len(batch.failed),
                           "; ".join(sorted(set(batch.failed.values()))[:3]))

    async def _deliver(
        self, integration: Integration, claimed: list[ClaimedEvent], batch: _Batch, report: DeliveryReport
    ) -> None:
        assert integration.id is not None
        conversations: list[tuple[ClaimedEvent, ConversationEvent]] = []
        messages: list[tuple[ClaimedEvent, Message]] = []
        engagements: list[tuple[ClaimedEvent, EngagementEvent]] = []
        for event in claimed:
            try:
                if event.kind is WorkflowEventKind.CONVERSATION:
                    conversations.append((event, ConversationEvent.model_validate(event.payload)))
                elif event.kind is WorkflowEventKind.MESSAGE:
                    messages.append((event, Message.model_validate(event.payload)))
                else:
                    engagements.append((event, EngagementEvent.model_validate(event.payload)))
            except InvalidRecordError as exc:
                batch.failed[event.id] = f"the stored event cannot be read: {exc}"

        stored = self.store.conversations(
            [c.conversation_id for _, c in conversations] + [m.conversation_id for _, m in messages]
        )
        # Who each event is about: the email of its contact (conversations, messages) or lead (engagements).
        contact_of: dict[int, str] = {}
        for event, conversation in conversations:
            facts = _facts(stored, conversation.conversation_id, conversation.platform)
            email = conversation.participant.email or (facts.email if facts else None)
            if email is None:
                batch.done[event.id] = (None, None)  # nobody known by email yet: the hourly push takes them later
            else:
                contact_of[event.id] = email
        for event, message in messages:
            facts = _facts(stored, message.conversation_id, None)
            if facts is None:
                if event.attempts + 1 >= MESSAGE_WAITS_FOR_CONVERSATION:
                    batch.failed[event.id] = conversation_never_arrived(message.conversation_id)
                else:
                    batch.retry[event.id] = f"waiting for conversation {message.conversation_id!r}"
            elif facts.email is None:
                batch.done[event.id] = (None, None)
            else:
                contact_of[event.id] = facts.email
        lead_of: dict[int, str] = {}
        unknown: dict[int, str] = {}
        engaged = {event.id: self._email_of(engagement) for event, engagement in engagements}
        converted = self._leads_converted_in(integration, {e for e in engaged.values() if e is not None})
        for event, _ in engagements:
            email = engaged[event.id]
            if email is not None and email in converted:
                # The CRM lead is read-only since its conversion (Salesforce refuses any write to it): the contact
                # it became carries the person's engagement, found by email when not linked yet.
                if self.store.contact_ids([email]):
                    contact_of[event.id] = email
                else:
                    batch.done[event.id] = (None, None)
            elif email is not None and self.social.store.lead_by_email(email) is not None:
                lead_of[event.id] = email
            elif email is not None and self.store.contact_ids([email]) and self._linked_contact(integration, email):
                contact_of[event.id] = email  # a known contact's score changed: its engagement fields follow
            elif email is not None:
                unknown[event.id] = email  # perhaps a lead of the CRM's own: asked below, once for the batch
            else:
                batch.done[event.id] = (None, None)  # the touchpoint is stored; no CRM lead or contact to update
        if unknown:
            brought = await self._leads_from_crm(integration, set(unknown.values()), report)
            for event_id, email in unknown.items():
                if email in brought:
                    lead_of[event_id] = email
                else:
                    batch.done[event_id] = (None, None)

        platforms: dict[str, set[SocialPlatform]] = {}
        for event, conversation in conversations:
            if event.id in contact_of:
                platforms.setdefault(contact_of[event.id], set()).add(conversation.platform)
        for event, message in messages:
            facts = _facts(stored, message.conversation_id, None)
            if event.id in contact_of and facts is not None:
                platforms.setdefault(contact_of[event.id], set()).add(facts.platform)
        for event, engagement in engagements:
            if event.id in contact_of:
                platforms.setdefault(contact_of[event.id], set()).add(engagement.platform)
        # Off the loop: scoring reads every interaction of each person, and the API keeps answering meanwhile.
        await asyncio.to_thread(self._write_scores, platforms)

        # Written with the best name the app knows now: a nameless participant's contact takes its lead's name (and
        # a nameless lead its contact's), also one given after the event was recorded.
        self.store.fill_blank_names({*contact_of.values(), *lead_of.values()})
        contact_ids = self.store.contact_ids(set(contact_of.values()))
        lead_ids = {email: found[0] for email in set(lead_of.values())
                    if (found := self.social.store.lead_by_email(email)) is not None}
        crm_ids = await self._push(integration, contact_ids, lead_ids, contact_of, lead_of, batch, report)

        entries: list[tuple[list[int], TimelineEntry]] = []
        # One conversation's events of this delivery (sent again with a late email, a corrected start) are one
        # "Conversation started" entry, written from the newest of them.
        started: dict[tuple[str, SocialPlatform, str], tuple[list[int], ConversationEvent]] = {}
        for event, conversation in conversations:
            crm_id = crm_ids.get((RecordObject.CONTACT, contact_of.get(event.id, "")))
            if crm_id is None or batch.settled(event.id):
                continue
            facts = _facts(stored, conversation.conversation_id, conversation.platform)
            if facts is not None and facts.crm_links.get(str(integration.id)) == crm_id:
                # Its entry is on that record already (a re-delivery naming the person anew, a late email): the
                # contact was updated above; a second "Conversation started" would be a duplicate.
                batch.done[event.id] = (crm_id, None)
                continue
            ids, _ = started.get((crm_id, conversation.platform, conversation.conversation_id), ([], conversation))
            started[(crm_id, conversation.platform, conversation.conversation_id)] = ([*ids, event.id], conversation)
        entries += [(ids, _conversation_entry(crm_id, conversation))
                    for (crm_id, _, _), (ids, conversation) in started.items()]
        grouped: dict[tuple[str, str], list[tuple[ClaimedEvent, Message]]] = {}
        for event, message in messages:
            crm_id = crm_ids.get((RecordObject.CONTACT, contact_of.get(event.id, "")))
            if crm_id is None or batch.settled(event.id):
                continue
            grouped.setdefault((crm_id, message.conversation_id), []).append((event, message))
        for (crm_id, conversation_id), group in grouped.items():
            facts = _facts(stored, conversation_id, None)
            assert facts is not None
            for part in _entry_parts(facts, group):
                entries.append(([e.id for e, _ in part], _messages_entry(crm_id, facts, [m for _, m in part])))
        for event in claimed:  # leads and contacts updated, with nothing for the timeline
            if not batch.settled(event.id) and event.kind is WorkflowEventKind.ENGAGEMENT:
                obj = RecordObject.LEAD if event.id in lead_of else RecordObject.CONTACT
                email = lead_of.get(event.id) or contact_of.get(event.id, "")
                batch.done[event.id] = (crm_ids.get((obj, email)), None)
        if entries:
            await self._log(integration, entries, batch, report)
        reached: set[str] = set()
        for event, conversation in conversations:
            crm_id = crm_ids.get((RecordObject.CONTACT, contact_of.get(event.id, "")))
            if crm_id is not None and event.id in batch.done:
                with contextlib.suppress(NotFoundError):
                    self.social.link_conversation(conversation.platform, conversation.conversation_id,
                                                  integration.id, crm_id)
                    reached.add(conversation.conversation_id)
        # Messages that came while the person was known by username alone reached no CRM record: now it is known,
        # they go to its timeline (in the next delivery, which follows at once).
        if reached:
            self.store.requeue_unreached_messages(integration.id, reached)

    def _email_of(self, engagement: EngagementEvent) -> str | None:
        if engagement.user.email is not None:
            return engagement.user.email
        try:
            found = self.social.store.find_person(PersonRef(platform=engagement.platform,
                                                            username=engagement.user.username))
        except InvalidRecordError:
            return None
        return found.email if found is not None else None

    async def _leads_from_crm(self, integration: Integration, emails: set[str], report: DeliveryReport) -> set[str]:
        """The emails among ``emails`` that are leads in the CRM, each brought in as a local lead linked to it.

        The CRM lead's mapped values are the local lead's and the link's merge base, so the push that follows sends
        only what the app adds (the engagement score and attribution), as an update of that lead.
        """
        assert integration.id is not None
        adapter = self.crm.adapter_for(integration)
        try:
            found = await adapter.find_by_emails(RecordObject.LEAD, sorted(emails))
        finally:
            report.api_calls += adapter.api_calls
            await adapter.aclose()
        mappings = self.sync.mappings(integration, RecordObject.LEAD)
        brought: set[str] = set()
        for email, record in sorted(found.items()):
            if self.social.store.lead_by_email(email) is not None:
                brought.add(email)  # brought in meanwhile (another integration's delivery, a pull): the push links it
                continue
            pulled = {m.local_field: from_crm(m, record.fields.get(m.crm_field))
                      for m in mappings if m.pulls and m.local_field != "email"}
            try:
                lead = apply_values(Lead(email=email), pulled)
            except (InvalidRecordError, ValueError) as exc:
                # Pushing a lead whose CRM values were not taken would overwrite them: it is left alone.
                logger.warning("workflows: CRM lead %s of %s is not brought in: %s", record.crm_id, integration.name,
                               exc)
                continue
            values = record_values(lead)
            local_id, _ = self.sync.store.save_local(RecordObject.LEAD, None, lead)
            self.sync.store.save_link(integration.id, RecordObject.LEAD, local_id, record.crm_id,
                                      base_values={m.local_field: values.get(m.local_field) for m in mappings},
                                      crm_modified_at=record.modified_at)
            # Recorded before the lead existed here: its score is computed now, from every touchpoint stored.
            score = self.social.engagement_score(PersonRef(email=email))
            self.social.store.set_lead_score(email, score.score)
            brought.add(email)
        return brought

    def _leads_converted_in(self, integration: Integration, emails: set[str]) -> set[str]:
        """The emails among ``emails`` whose local lead is linked to a CRM lead the integration reported converted
        (a pull recorded the conversion)."""
        assert integration.id is not None
        leads = {email: found[0] for email in emails if (found := self.social.store.lead_by_email(email)) is not None}
        links = self.sync.store.links_for_local(integration.id, RecordObject.LEAD, list(leads.values()))
        linked = {email: link.crm_id for email, local_id in leads.items() if (link := links.get(local_id)) is not None}
        return self._conversions.converted_leads(integration.id, linked)

    def _linked_contact(self, integration: Integration, email: str) -> bool:
        assert integration.id is not None
        local = self.store.contact_ids([email]).get(email)
        return local is not None and local in self.sync.store.links_for_local(
            integration.id, RecordObject.CONTACT, [local])

    def _write_scores(self, platforms: dict[str, set[SocialPlatform]]) -> None:
        """Put each person's new engagement score on their contact's profiles of the event's platforms, which is
        what the contact's mapped engagement field carries to the CRM."""
        changed: list[Contact] = []
        scores: dict[str, float] = {}
        settings = self.social.scoring_settings()

        def rescored(contact: Contact) -> Contact | None:
            score, touched = scores[contact.email], platforms[contact.email]
            profiles = [
                p.model_copy(update={"engagement": score}) if p.platform in touched and p.engagement != score else p
                for p in contact.social_profiles
            ]
            if profiles == contact.social_profiles:
                return None
            return contact.model_copy(update={"social_profiles": profiles})

        for email in platforms:
            contact = self._contacts.find(email)
            if contact is None:
                continue
            # The events were just stitched when recorded: the person is read by email, with no re-stitching.
            interactions, followers = self.social.store.interactions(Person(email))
            scores[email] = round(engagement_score(interactions, followers, settings, self._clock()).score, 1)
            again = rescored(contact)
            if again is not None:
                changed.append(again)
        if changed:
            # The scores go onto the contacts as stored when written: a sync saving one meanwhile keeps its values.
            self._contacts.save_many(changed, relay=lambda _, now: None if now is None else rescored(now))

    async def _push(
        self, integration: Integration, contact_ids: dict[str, int], lead_ids: dict[str, int],
        contact_of: dict[int, str], lead_of: dict[int, str], batch: _Batch, report: DeliveryReport,
    ) -> dict[tuple[RecordObject, str], str]:
        """Push the contacts and leads as one recorded run (the engine finds each by email in the CRM first, so
        none is duplicated); returns their CRM ids. Events whose record the CRM refused are settled here."""
        assert integration.id is not None
        wanted = {RecordObject.CONTACT: sorted(set(contact_ids.values())),
                  RecordObject.LEAD: sorted(set(lead_ids.values()))}
        wanted = {obj: ids for obj, ids in wanted.items() if ids}
        if not wanted:
            return {}
        result = await self.sync.push_now(integration.name, wanted, trigger=SyncTrigger.AUTO)
        report.api_calls += result.api_calls
        if result.auth_failed:
            raise AuthError(result.message or "the CRM refused the integration's credentials")
        refused: dict[tuple[RecordObject, str], tuple[ErrorCategory | None, str]] = {}
        # Why the engine left a record alone (deleted in the CRM, refused as it is): the reason of an event whose
        # record has no CRM id to write to.
        skipped: dict[tuple[RecordObject, str], tuple[ErrorCategory | None, str]] = {}
        if result.run_id is not None:
            for row in self.sync.run(result.run_id)[1]:
                if row.outcome is RecordOutcome.FAILED:
                    refused[(row.object, row.record_key)] = (row.error_category, row.message or "refused by the CRM")
                elif row.outcome is RecordOutcome.SKIPPED and row.message:
                    skipped[(row.object, row.record_key)] = (row.error_category, f"{row.record_key}: {row.message}")
        crm_ids: dict[tuple[RecordObject, str], str] = {}
        for obj, by_email in ((RecordObject.CONTACT, contact_ids), (RecordObject.LEAD, lead_ids)):
            links = self.sync.store.links_for_local(integration.id, obj, list(by_email.values()))
            for email, local_id in by_email.items():
                link = links.get(local_id)
                if link is not None and not link.deleted_in_crm and (obj, email) not in refused:
                    crm_ids[(obj, email)] = link.crm_id
                elif link is not None and link.deleted_in_crm:
                    skipped.setdefault((obj, email), (ErrorCategory.NOT_FOUND,
                                                      f"{email}: deleted in the CRM; not re-created"))
        for event_id, email in [*((i, e) for i, e in contact_of.items()), *((i, e) for i, e in lead_of.items())]:
            obj = RecordObject.LEAD if event_id in lead_of else RecordObject.CONTACT
            if batch.settled(event_id) or (obj, email) in crm_ids:
                continue
            category, why = refused.get((obj, email)) or skipped.get((obj, email)) or (
                None, result.message or f"{email} was not pushed: no field of it maps to the CRM")
            if (obj, email) not in refused and result.message and result.status.value != "succeeded":
                batch.retry[event_id] = why  # the run stopped (network, rate limit): try again
            elif category in _RETRIABLE:
                batch.retry[event_id] = why
            else:
                batch.failed[event_id] = why
        return crm_ids

    async def _log(
        self, integration: Integration, entries: list[tuple[list[int], TimelineEntry]], batch: _Batch,
        report: DeliveryReport,
    ) -> None:
        adapter = await self.crm.checked_adapter(integration)
        try:
            if not isinstance(adapter, LogsTimeline):
                for ids, entry in entries:
                    for event_id in ids:
                        batch.done[event_id] = (entry.crm_id, None)
                return
            results = await adapter.log_timeline(RecordObject.CONTACT, [entry for _, entry in entries])
        finally:
            report.api_calls += adapter.api_calls
            await adapter.aclose()
        for (ids, entry), result in zip(entries, results, strict=True):
            _settle_entry(ids, entry, result, batch)
            report.entries += 1 if result.ok else 0

    # -- the hourly job -----------------------------------------------------------------------------------------

    async def push_conversation_contacts(self) -> list[tuple[str, SyncResult | Exception]]:
        """The seed's hourly job, now whatever its last run: push every contact that conversations created since
        the last run to each integration with auto-sync on (contacts of imported files and late emails included).
        Nothing when another runner is pushing them at this moment."""
        return await self._hourly_push(timedelta(0)) or []

    async def run_hourly_if_due(self) -> list[tuple[str, SyncResult | Exception]] | None:
        """The hourly job when it is due, once whichever runner asks (the API's workflows, the window's scheduler,
        ``serve``, ``sync --due``, in this process or another); ``None`` when it was not due or another took it."""
        return await self._hourly_push(HOURLY)

    async def _hourly_push(self, every: timedelta) -> list[tuple[str, SyncResult | Exception]] | None:
        now = self._clock()
        # The mark says when the last run started, and from when it pushed: a run that stopped half-way (the
        # process ended) leaves ``done`` false, and the next run takes its contacts again.
        stored = self.social.store.setting(HOURLY_SETTING) or {}
        start = stored.get("since") if stored.get("done") is False else stored.get("at")
        previous = self.store.take_job_run(HOURLY_SETTING, now, every,
                                           {"at": now.isoformat(), "since": start, "done": False})
        if previous is None:
            return None
        start = previous.get("since") if previous.get("done") is False else previous.get("at")
        ids = self.store.conversation_contacts_since(datetime.fromisoformat(start) if start else None, now)
        self.store.fill_blank_names(contact_ids=ids)
        outcomes: list[tuple[str, SyncResult | Exception]] = []
        try:
            if ids:
                for integration in self.integrations.list():
                    if (not integration.sync_config.auto_sync
                            or integration.sync_config.direction is SyncDirection.PULL):
                        continue
                    try:
                        outcomes.append((integration.name, await self.sync.push_now(
                            integration.name, {RecordObject.CONTACT: ids}, trigger=SyncTrigger.SCHEDULED)))
                    except Exception as exc:  # one integration's failure must not stop the others
                        logger.warning("hourly push of conversation contacts to %s: %s", integration.name, exc)
                        outcomes.append((integration.name, exc))
        except BaseException:
            self.social.store.put_setting(HOURLY_SETTING, previous)  # stopped: due again at the next look
            raise
        if all(not isinstance(o, Exception) for _, o in outcomes):
            self.social.store.put_setting(HOURLY_SETTING, {"at": now.isoformat(), "since": start, "done": True})
        else:
            self.social.store.put_setting(HOURLY_SETTING, previous)  # a CRM failed: due again at the next look
        return outcomes

    def hourly_due(self) -> bool:
        """Whether the hourly push of conversation contacts is due (an hour since its last run, or never run)."""
        stored = self.social.store.setting(HOURLY_SETTING) or {}
        return not stored.get("at") or self._clock() - datetime.fromisoformat(stored["at"]) >= HOURLY

    def rescore_due(self) -> bool:
        """Whether the daily rescore is due (a day since its last run, or never run)."""
        stored = self.social.store.setting(RESCORE_SETTING) or {}
        return not stored.get("at") or self._clock() - datetime.fromisoformat(stored["at"]) >= RESCORE_EVERY

    async def run_rescore_if_due(self) -> int | None:
        """Recompute everyone's stored engagement score (it decays with time) when a day has passed since the last
        time, once whichever runner asks; how many people were scored, ``None`` when not due or taken by another.
        The store work runs on a worker thread."""
        now = self._clock()
        previous = self.store.take_job_run(RESCORE_SETTING, now, RESCORE_EVERY, {"at": now.isoformat()})
        if previous is None:
            return None
        try:
            scored = await asyncio.to_thread(self.social.rescore_everyone)
        except BaseException:
            self.social.store.put_setting(RESCORE_SETTING, previous)  # due again at the next look
            raise
        logger.info("engagement scores recomputed for %d people", scored)
        return scored

    def periodic_due(self) -> bool:
        """Whether the hourly push or the daily rescore is due."""
        return self.hourly_due() or self.rescore_due()

    async def run_periodic_if_due(self) -> list[tuple[str, SyncResult | Exception]] | None:
        """The hourly push and the daily rescore, each when due; the push's outcomes (``None`` when it did not run).
        A failed rescore is logged, and does not keep the push from running."""
        try:
            await self.run_rescore_if_due()
        except Exception:
            logger.exception("workflows: the daily rescore of engagement scores failed")
        return await self.run_hourly_if_due()

    async def _hourly_loop(self) -> None:
        while True:
            if self.periodic_due():
                try:
                    await self.run_periodic_if_due()
                except Exception:
                    logger.exception("workflows: the hourly push of conversation contacts failed")
            await asyncio.sleep(IDLE_CHECK_SECONDS)


def _facts(
    stored: dict[str, list[ConversationFacts]], conversation_id: str, platform: SocialPlatform | None
) -> ConversationFacts | None:
    found = stored.get(conversation_id) or []
    if platform is not None:
        found = [f for f in found if f.platform == platform]
    return found[0] if found else None


def _as_stored(event: ConversationEvent, facts: ConversationFacts | None) -> ConversationEvent:
    """The event with the start the store keeps for its conversation, when that is earlier (see
    :meth:`SocialStore.record_conversations`)."""
    if facts is None or utc_from_store(facts.started_at) >= event.started_at:
        return event
    return event.model_copy(update={"started_at": utc_from_store(facts.started_at)})


def _settle_entry(ids: list[int], entry: TimelineEntry, result: TimelineResult, batch: _Batch) -> None:
    for event_id in ids:
        if result.ok:
            batch.done[event_id] = (entry.crm_id, result.entry_id)
        elif result.category in _RETRIABLE:
            batch.retry[event_id] = result.message or "the timeline entry was not written"
        else:
            batch.failed[event_id] = result.message or "the CRM refused the timeline entry"


def _conversation_entry(crm_id: str, event: ConversationEvent) -> TimelineEntry:
    platform = platform_name(event.platform)
    lines = [f"Platform: {platform}", f"Conversation: {event.conversation_id}",
             f"Started: {event.started_at:%Y-%m-%d %H:%M} UTC"]
    if event.participant.username:
        lines.append(f"{platform} user: @{event.participant.username.lstrip('@')}")
    if event.participant.profile_url:
        lines.append(f"Profile: {event.participant.profile_url}")
    if event.participant.followers is not None:
        lines.append(f"Followers: {event.participant.followers:,}")
    if event.campaign:
        lines.append(f"Campaign: {event.campaign}")
    return TimelineEntry(crm_id, f"Conversation started on {platform}", "\n".join(lines), event.started_at,
                         TimelineKind.CONVERSATION_STARTED)


def _messages_entry(crm_id: str, facts: ConversationFacts, messages: list[Message]) -> TimelineEntry:
    """One entry for the messages of one conversation that one delivery carries (a burst is one entry, or a few
    when its text would be longer than :data:`ENTRY_TEXT_MAX`: see :func:`_entry_parts`)."""
    platform = platform_name(facts.platform)
    ordered = sorted(messages, key=lambda m: (m.sent_at, m.message_id))
    first, last = ordered[0].sent_at, ordered[-1].sent_at
    # Seconds included: a lost answer is settled by finding the entry by its subject.
    span = f"{first:%Y-%m-%d %H:%M:%S}" + (f" to {last:%H:%M:%S}" if last != first else "") + " UTC"
    subject = (f"{platform} message ({ordered[0].direction.value}), {span}" if len(ordered) == 1
               else f"{len(ordered)} {platform} messages, {span}")
    lines = _entry_heading(facts) + [_message_line(message) for message in ordered]
    return TimelineEntry(crm_id, subject, "\n".join(lines), last, TimelineKind.MESSAGES)


def _entry_heading(facts: ConversationFacts) -> list[str]:
    return [f"Conversation: {facts.conversation_id}"] + ([f"Campaign: {facts.campaign}"] if facts.campaign else [])


def _message_line(message: Message) -> str:
    mood = f", {message.sentiment.value}" if message.sentiment else ""
    text = message.text if len(message.text) <= MESSAGE_EXCERPT else message.text[: MESSAGE_EXCERPT - 1] + "…"
    return f"[{message.sent_at:%H:%M} {message.direction.value}{mood}] {text}"


def _stored_length(line: str) -> int:
    """A line's length as a CRM keeps it: HTML-escaped, with a line break (``<br>``) after it."""
    return len(html.escape(line)) + len("<br>")


def _entry_parts(
    facts: ConversationFacts, group: list[tuple[ClaimedEvent, Message]]
) -> list[list[tuple[ClaimedEvent, Message]]]:
    """A conversation's messages of one delivery in time order, cut into runs whose entry text stays within
    :data:`ENTRY_TEXT_MAX`: a CRM would cut a longer one, and the messages past its limit would be lost from the
    timeline while their events count as delivered."""
    heading = sum(_stored_length(line) for line in _entry_heading(facts))
    parts: list[list[tuple[ClaimedEvent, Message]]] = [[]]
    size = heading
    for event, message in sorted(group, key=lambda pair: (pair[1].sent_at, pair[1].message_id)):
        length = _stored_length(_message_line(message))
        if parts[-1] and size + length > ENTRY_TEXT_MAX:
            parts.append([])
            size = heading
        parts[-1].append((event, message))
        size += length
    return parts


def _backoff(attempts: int) -> float:
    return float(min(RETRY_FIRST_SECONDS * 2.0 ** attempts, RETRY_MAX_SECONDS))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SyncAlreadyRunning):
        return "a sync of the integration was running"
    return str(exc) or type(exc).__name__


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set or ``seconds`` pass; a cancel always ends the wait.

    Not ``asyncio.wait_for``: on Python 3.11 it swallows a cancel that comes in the loop step the event is set in
    (an event arriving as the app quits), and the stopped worker would go on delivering.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


__all__ = ["DeliveryReport", "SocialWorkflows", "conversation_key", "engagement_key", "message_key"]
