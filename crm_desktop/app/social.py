"""The social data service the local API, the CLI and the GUI share: events in, scores and attribution out.

Every ``record_*`` call is one transaction and idempotent (platforms re-deliver webhooks): recording the same event
again answers ``unchanged`` and changes nothing. After an event the person's engagement score is recomputed and,
when the person is a local lead, written to the lead (its ``socialContext.engagementScore``).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from crm_desktop.app.csv_export import cell_value
from crm_desktop.app.record_files import (
    WINDOWS_1252_READ,
    CsvShape,
    csv_lines,
    json_object_lines,
    plain_reason,
    spreadsheet_number,
    text_encoding,
    username_from_url,
)
from crm_desktop.domain.attribution import Touch, attribute, in_time_order
from crm_desktop.domain.errors import FieldProblem, InvalidRecordError
from crm_desktop.domain.models import SocialPlatform, WireModel, normalise_email, platform_name
from crm_desktop.domain.scoring import EngagementScore, engagement_score
from crm_desktop.domain.social import (
    AttributionModel,
    AttributionReport,
    Campaign,
    Conversation,
    ConversationEvent,
    Conversion,
    ConversionCredits,
    CreditedTouchpoint,
    EngagementEvent,
    EventAction,
    LeadAttribution,
    Message,
    PersonRef,
    ReportRow,
    ScoringSettings,
    SocialEventKind,
)
from crm_desktop.domain.wording import forgotten_reason
from crm_desktop.store.database import Database
from crm_desktop.store.forget_store import ForgetStore
from crm_desktop.store.repositories import NotFoundError
from crm_desktop.store.social_store import Person, RecordedEvent, SocialStore
from crm_desktop.store.workflow_store import WorkflowStore

logger = logging.getLogger(__name__)
#: A conversation or a message: the events whose ids must not clash with another's.
EventT = TypeVar("EventT", ConversationEvent, Message)
#: An event that may name its person by email.
NamingEventT = TypeVar("NamingEventT", ConversationEvent, EngagementEvent)

#: The workspace setting that holds :class:`ScoringSettings`.
SCORING_SETTING = "social.scoring"

__all__ = [
    "NotFoundError",
    "RecordedEvent",
    "RefusedRow",
    "SocialImportReport",
    "SocialService",
]


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class RefusedRow:
    """One refused field of a file row: line, record, the user's field name and why."""

    line: int
    record: str
    field: str
    reason: str


@dataclass
class SocialImportReport:
    """What importing a file of social events did."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    linked_touchpoints: int = 0
    #: Integrations that got again, queued, conversations started by a username this file linked to an email.
    requeued_conversations: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    refused: list[RefusedRow] = field(default_factory=list)
    #: Rows naming a person forgotten at their request, not recorded: (line, email, reason).
    skipped: list[tuple[int, str, str]] = field(default_factory=list)
    #: How the file was read, when it matters to the marketer (a CSV read as Excel's Windows-1252).
    notices: list[str] = field(default_factory=list)
    #: A CSV's columns no event of the file has (a tool's ``Impressions``), as the file titles them, in its order.
    columns_not_used: list[str] = field(default_factory=list)

    @property
    def refused_lines(self) -> int:
        """How many rows were refused."""
        return len({r.line for r in self.refused})


class SocialService:
    """Records social events with identity stitching, and computes engagement scores and attribution.

    Args:
        database: the workspace's store.
        clock: now (tests freeze it); time decay and the score's recency are measured from it.
    """

    def __init__(self, database: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = SocialStore(database)
        self._outbox = WorkflowStore(database)
        self._forgotten = ForgetStore(database)
        self._clock = clock

    # -- settings -------------------------------------------------------------------------------------------

    def scoring_settings(self) -> ScoringSettings:
        """The workspace's weights and half-lives (the documented defaults until changed)."""
        stored = self.store.setting(SCORING_SETTING)
        return ScoringSettings.model_validate(stored) if stored else ScoringSettings()

    def set_scoring_settings(self, settings: ScoringSettings) -> ScoringSettings:
        """Save the workspace's weights and half-lives; scores are recomputed with them from now on.

        Raises:
            InvalidRecordError: when every interaction weighs 0 (every score would be 0, whatever anyone did);
                nothing is saved. Checked here, not in :class:`ScoringSettings`, so that settings saved before the
                check still load.
        """
        if not any(points > 0 for points in settings.weights.values()):
            raise InvalidRecordError("scoring settings", "of this workspace", [FieldProblem(
                "weights", "every interaction weighs 0 points, so every engagement score would be 0; give at least "
                "one interaction some points")])
        self.store.put_setting(SCORING_SETTING, settings.model_dump(mode="json", by_alias=True))
        return settings

    # -- events ---------------------------------------------------------------------------------------------

    def record_conversation(self, event: ConversationEvent) -> RecordedEvent:
        """A conversation started: upsert the participant's local contact (when an email is given), stitch the
        username to it, keep the conversation and a ``dm`` touchpoint at its start."""
        return self.record_conversations([event])[0]

    def record_conversations(self, events: Sequence[ConversationEvent]) -> list[RecordedEvent]:
        """Several conversations in one transaction.

        Raises:
            InvalidRecordError: when a conversation's id is another platform's conversation's (nothing is recorded).
        """
        for event, clash in zip(events, self.store.conversation_id_clashes(events), strict=True):
            if clash is not None:
                raise InvalidRecordError("conversation", event.conversation_id, [FieldProblem("conversationId", clash)])
        for event, clash in zip(events, self.store.participant_clashes(events), strict=True):
            if clash is not None:
                raise InvalidRecordError("conversation", event.conversation_id,
                                         [FieldProblem("participant.email", clash)])
        return self._rescored(self.store.record_conversations(events))

    def record_message(self, message: Message) -> RecordedEvent:
        """A message of a conversation; the conversation's counts, last message time and latest sentiment follow.

        A message may arrive before its conversation: it is kept, and counted once the conversation arrives.
        """
        return self.record_messages([message])[0]

    def record_messages(self, messages: Sequence[Message]) -> list[RecordedEvent]:
        """Several messages in one transaction.

        Raises:
            InvalidRecordError: when a message's id is a message of another conversation (nothing is recorded).
        """
        for message, clash in zip(messages, self.store.message_id_clashes(messages), strict=True):
            if clash is not None:
                raise InvalidRecordError("message", message.message_id, [FieldProblem("messageId", clash)])
        return self._rescored(self.store.record_messages(messages))

    def record_engagement(self, event: EngagementEvent) -> RecordedEvent:
        """A person engaged with a post: a touchpoint of that person (by email, or by username until the email is
        known; a username on a contact's social profile is that contact)."""
        return self.record_engagements([event])[0]

    def record_engagements(self, events: Sequence[EngagementEvent]) -> list[RecordedEvent]:
        """Several engagements in one transaction."""
        return self._rescored(self.store.record_engagements(events))

    def record_conversion(self, conversion: Conversion) -> RecordedEvent:
        """A lead or contact converted (pulled from a CRM or recorded by the API); kept once per external id."""
        return self.store.record_conversions([conversion])[0]

    def record_conversions(self, conversions: Sequence[Conversion]) -> list[RecordedEvent]:
        """Several conversions in one transaction."""
        return self.store.record_conversions(conversions)

    def _rescored(self, results: list[RecordedEvent]) -> list[RecordedEvent]:
        """Write the new score of every lead and contact these recorded events touched (each person once); the
        events back."""
        emails = {
            r.person.email for r in results if r.person.email is not None and r.action is not EventAction.UNCHANGED
        }
        if emails:
            self._write_scores(emails, self.scoring_settings())
        return results

    def _write_scores(self, emails: set[str], settings: ScoringSettings) -> int:
        """Score these people as of now and write the scores of those who are leads or contacts; how many."""
        leads, contacts = self.store.leads_among(emails), self.store.contacts_among(emails)
        now = self._clock()
        scores = {
            email: engagement_score(interactions, followers, settings, now).score
            for email, (interactions, followers) in self.store.interactions_by_email(leads | contacts).items()
        }
        self.store.set_lead_scores({email: scores[email] for email in leads})
        self.store.set_contact_scores({email: scores[email] for email in contacts})
        return len(scores)

    def rescore(self, emails: set[str]) -> int:
        """Score these people again as of now (after a merge gave one of them another's activity); how many."""
        return self._write_scores(emails, self.scoring_settings()) if emails else 0

    def score_unscored(self) -> int:
        """Score the leads and contacts saved after their activity was recorded (a file's import, a CRM's pull):
        without it they showed no score, while `social score` gave one, until the daily rescore. How many."""
        emails = self.store.unscored_with_activity()
        return self._write_scores(emails, self.scoring_settings()) if emails else 0

    def rescore_everyone(self, page_size: int = 500) -> int:
        """Score again everyone with social activity, as of now and with the current settings, a page at a time;
        how many leads and contacts were scored.

        A score decays with time and follows the weights, so the stored scores (what the People list shows,
        sorts and filters by, and pushes to the CRMs) are brought up to date after the settings change and once a
        day. People with no local activity keep the score they have (one a CRM or a file gave them).
        """
        settings = self.scoring_settings()
        scored = 0
        after: str | None = None
        while page := self.store.scored_emails(after, page_size):
            scored += self._write_scores(set(page), settings)
            after = page[-1]
        return scored

    def link_conversation(
        self, platform: SocialPlatform, conversation_id: str, integration_id: int, crm_id: str
    ) -> bool:
        """Remember the CRM record a conversation is linked to in an integration (workflow 1 stores it)."""
        return self.store.link_conversation(platform, conversation_id, integration_id, crm_id)

    def conversation(self, platform: SocialPlatform, conversation_id: str) -> Conversation | None:
        """A stored conversation: its person, message counts, latest sentiment, campaign and CRM links."""
        return self.store.conversation(platform, conversation_id)

    def campaigns(self) -> list[Campaign]:
        """Every campaign, by name (touchpoints create theirs on first mention)."""
        return self.store.campaigns()

    def save_campaign(self, campaign: Campaign) -> EventAction:
        """Create a campaign or update the one with its name (platform, dates, tags)."""
        return self.store.save_campaign(campaign)

    # -- scores and attribution ------------------------------------------------------------------------------

    def engagement_score(self, person: PersonRef, *, known_only: bool = False) -> EngagementScore:
        """The engagement score of a person named by email, or by (platform, username).

        Args:
            person: who.
            known_only: refuse an email the store has never seen (no contact, lead, identity or event has it)
                rather than answer 0 for it, as a marketer asking about someone by hand wants.

        Raises:
            NotFoundError: when a username was never seen, or (``known_only``) the email.
        """
        self.store.link_identities_from_profiles()
        if known_only and person.email is not None and not self.store.knows_email(person.email):
            raise NotFoundError(f"no person with the email {person.email} in the local store")
        found = self.store.find_person(person)
        if found is None:
            raise NotFoundError(f"no social activity of {person.platform} user {person.username!r}")
        return self._score(found, self.scoring_settings())

    def _score(self, person: Person, settings: ScoringSettings) -> EngagementScore:
        interactions, followers = self.store.interactions(person)
        return engagement_score(interactions, followers, settings, self._clock())

    def _lead(self, lead: int | str) -> tuple[int, str]:
        if isinstance(lead, int) or (isinstance(lead, str) and lead.isascii() and lead.isdigit()):
            number = int(lead)
            # Beyond the store's 64-bit ids no lead can have it (and the database would refuse the number).
            found = self.store.lead_by_id(number) if 0 < number < 2**63 else None
        else:
            try:
                email = normalise_email(lead)
            except ValueError:
                raise NotFoundError(f"no lead {lead!r}: give its local id or its email") from None
            found = self.store.lead_by_email(email)
        if found is None:
            raise NotFoundError(f"no lead {lead!r} in the local store")
        return found

    def attribution(self, lead: int | str, model: AttributionModel) -> LeadAttribution:
        """A lead's touchpoints and the credit each earned under ``model``: per conversion, as
        :meth:`attribution_report` shares it, and summed over its conversions (see :class:`LeadAttribution`).

        Args:
            lead: the lead's local id, or its email.
            model: the attribution model.

        Raises:
            NotFoundError: when there is no such lead.
        """
        lead_id, email = self._lead(lead)
        self.store.link_identities_from_profiles()
        conversions = self.store.conversions(email=email)
        touches = self.store.touches(email)
        half_life = self.scoring_settings().attribution_half_life_days
        if not conversions:
            credits = attribute(touches, model, self._clock(), half_life)
            return LeadAttribution.model_construct(
                lead_id=lead_id, email=email, model=model, reference=self._clock(), converted_at=None,
                touchpoints=[_credited(c.touch, c.credit) for c in credits], conversions=[],
            )
        # Every conversion credited by the touchpoints before it, as attribution_report does: a lead converted
        # twice must add up to the report's two conversions.
        per_conversion: list[ConversionCredits] = []
        total: dict[Touch, float] = {}
        for conversion in conversions:
            before = [t for t in touches if t.timestamp <= conversion.timestamp]
            credits = attribute(before, model, conversion.timestamp, half_life)
            for credit in credits:
                total[credit.touch] = total.get(credit.touch, 0.0) + credit.credit
            per_conversion.append(ConversionCredits.model_construct(
                timestamp=conversion.timestamp,
                value=None if conversion.value is None else float(conversion.value),
                currency=conversion.currency,
                touchpoints=[_credited(c.touch, c.credit) for c in credits],
            ))
        counted = [t for t in touches if t.timestamp <= conversions[-1].timestamp]
        return LeadAttribution.model_construct(
            lead_id=lead_id,
            email=email,
            model=model,
            reference=conversions[0].timestamp,
            converted_at=conversions[0].timestamp,
            touchpoints=[_credited(t, total.get(t, 0.0)) for t in in_time_order(counted)],
            conversions=per_conversion,
        )

    def attribution_inputs(self) -> tuple[object, ...]:
        """What :meth:`attribution_report` depends on, cheaply: when it is unchanged, so is the report (for a
        view that works the report out again only when something changed)."""
        return (*self.store.attribution_inputs(), self.scoring_settings().attribution_half_life_days)

    def attribution_report(
        self, model: AttributionModel, since: datetime | None = None, campaign: str | None = None,
        until: datetime | None = None,
    ) -> AttributionReport:
        """Per campaign and per platform: touchpoints and leads from ``since`` up to ``until`` (not included; no
        bound when ``None``), and the credit and value of the conversions of that period that their touchpoints
        earned under ``model``.

        Each conversion's credit is shared among its person's touchpoints before it (older ones than ``since``
        included: they did help). ``campaign`` keeps only that campaign's touchpoints and credit; the totals
        (conversions, those without touchpoints, value) stay the period's. A campaign not stored under that exact
        name is the one stored campaign that matches it ignoring case (the report names it as stored); when none
        or several do, the report says ``unknown_campaign`` and lists the ``closest_campaigns``.

        Raises:
            ValueError: when ``until`` is not after ``since``.
        """
        if since is not None and until is not None and until <= since:
            raise ValueError("the end of the period must be after its start")
        self.store.link_identities_from_profiles()
        closest: list[str] | None = None
        if campaign is not None:
            campaign, closest = self._campaign_named(campaign)
        half_life = self.scoring_settings().attribution_half_life_days
        leads = self.store.lead_emails()
        by_campaign: dict[str | None, _Line] = defaultdict(_Line)
        by_platform: dict[str | None, _Line] = defaultdict(_Line)
        for stored in self.store.touchpoints_since(since, until):
            touch = stored.touch
            if campaign is not None and touch.campaign != campaign:
                continue
            for line in (by_campaign[touch.campaign], by_platform[touch.platform.value]):
                line.touchpoints += 1
                if stored.email is not None and stored.email in leads:
                    line.leads.add(stored.email)
        conversions = self.store.conversions(since=since, before=until)
        touches_of = self.store.touches_by_email(c.email for c in conversions)
        report = AttributionReport.model_construct(
            model=model,
            since=since,
            until=until,
            campaign=campaign,
            unknown_campaign=closest is not None,
            closest_campaigns=closest or [],
            conversions=0,
            unattributed_conversions=0,
            value={},
            by_campaign=[],
            by_platform=[],
        )
        for conversion in conversions:
            before = [t for t in touches_of.get(conversion.email, []) if t.timestamp <= conversion.timestamp]
            credits = attribute(before, model, conversion.timestamp, half_life)
            # The totals are every conversion of the period's, with a campaign too (the CLI says "of N conversions
            # ... in all campaigns" beside the campaign's share); only the credit is the campaign's.
            mine = [c for c in credits if campaign is None or c.touch.campaign == campaign]
            report.conversions += 1
            if not credits:
                report.unattributed_conversions += 1
            if conversion.value is not None and conversion.currency is not None:
                report.value[conversion.currency] = report.value.get(conversion.currency, 0.0) + float(conversion.value)
            for credit in mine:
                for line in (by_campaign[credit.touch.campaign], by_platform[credit.touch.platform.value]):
                    line.conversions += credit.credit
                    if conversion.value is not None and conversion.currency is not None:
                        line.value[conversion.currency] += credit.credit * float(conversion.value)
        report.value = {k: round(v, 2) for k, v in sorted(report.value.items())}
        report.by_campaign = _rows(by_campaign)
        report.by_platform = _rows(by_platform)
        return report

    def _campaign_named(self, asked: str) -> tuple[str, list[str] | None]:
        """The stored campaign ``asked`` names: its exact name, else the only one equal to it ignoring case, with
        ``None``; when there is no such one, ``asked`` and the stored names closest to it (at most 5)."""
        names = [c.name for c in self.store.campaigns()]
        if asked in names:
            return asked, None
        key = asked.casefold()
        same = [name for name in names if name.casefold() == key]
        if len(same) == 1:
            return same[0], None
        return asked, same or closest_names(asked, names)

    # -- files ----------------------------------------------------------------------------------------------

    def _without_forgotten(self, records: list[NamingEventT], email_of: Callable[[NamingEventT], str | None],
                           lines: dict[int, int], report: SocialImportReport) -> list[NamingEventT]:
        """``records`` but those naming a person forgotten at their request, listed as skipped in ``report``."""
        forgotten = self._forgotten.forgotten_among([e for r in records if (e := email_of(r)) is not None])
        if not forgotten:
            return records
        kept = []
        for record in records:
            email = email_of(record)
            if email is not None and email in forgotten:
                report.skipped.append((lines[id(record)], email, forgotten_reason(forgotten[email], "not recorded")))
            else:
                kept.append(record)
        report.skipped.sort()
        return kept

    @staticmethod
    def _without_clashes(records: list[EventT], clashes: list[str | None], lines: dict[int, int], field: str,
                         report: SocialImportReport) -> list[EventT]:
        """``records`` but those with a clash, which go into ``report.refused`` by their line and id."""
        kept: list[EventT] = []
        for record, clash in zip(records, clashes, strict=True):
            if clash is None:
                kept.append(record)
            else:
                key = record.message_id if isinstance(record, Message) else record.conversation_id
                report.refused.append(RefusedRow(lines[id(record)], key, field, clash))
        return kept

    def import_file(self, path: Path, kind: SocialEventKind | None = None) -> SocialImportReport:
        """Record the events of a JSONL or CSV file; every row is validated first and refused rows are reported by
        line, field and reason. With no ``kind``, each row's kind is read from its fields (``messageId``: a
        message; ``participant`` or ``startedAt``: a conversation; otherwise an engagement).

        All valid rows are written or none: a store error leaves the store as it was.

        Raises:
            ValueError: when the file type is not supported.
            OSError: when the file cannot be read.
        """
        report = SocialImportReport()
        batches: dict[SocialEventKind, list[WireModel]] = {k: [] for k in SocialEventKind}
        lines: dict[int, int] = {}  # id() of a valid row's record -> its line
        for read in _file_rows(path, report.notices):
            if isinstance(read, RefusedRow):
                report.refused.append(read)
                continue
            line, row = read
            row_kind = kind or _kind_of(row)
            model = _MODELS[row_kind]
            columns: dict[str, str] = {}
            if path.suffix.lower() == ".csv":
                row, columns, unused = _shaped(row, row_kind)
                report.columns_not_used += [name for name in unused if name not in report.columns_not_used]
            row, unread = _local_times(row, model)
            row, link_problem = _username_of_link(row, row_kind)
            if link_problem is not None:
                where = columns.get(link_problem.field, link_problem.field)
                report.refused.append(RefusedRow(line, _person_named(row), where, link_problem.reason))
                continue
            try:
                record = model.model_validate(row)
            except InvalidRecordError as exc:
                for problem in exc.problems:
                    # A CSV row's problems are named by the user's column, not the nested JSON path.
                    where = columns.get(problem.field, problem.field)
                    reason = unread.get(problem.field) or plain_reason(problem.reason)
                    report.refused.append(RefusedRow(line, exc.record, where, reason))
                continue
            batches[row_kind].append(record)
            lines[id(record)] = line
        conversations = [r for r in batches[SocialEventKind.CONVERSATIONS] if isinstance(r, ConversationEvent)]
        messages = [r for r in batches[SocialEventKind.MESSAGES] if isinstance(r, Message)]
        # Ids another conversation or platform holds (stored, or earlier in the file) are refused by line.
        conversations = self._without_clashes(conversations, self.store.conversation_id_clashes(conversations),
                                              lines, "conversationId", report)
        conversations = self._without_clashes(conversations, self.store.participant_clashes(conversations),
                                              lines, "participant.email", report)
        messages = self._without_clashes(messages, self.store.message_id_clashes(messages), lines, "messageId",
                                         report)
        engagements = [r for r in batches[SocialEventKind.ENGAGEMENTS] if isinstance(r, EngagementEvent)]
        conversations = self._without_forgotten(conversations, lambda c: c.participant.email, lines, report)
        engagements = self._without_forgotten(engagements, lambda e: e.user.email, lines, report)
        report.refused.sort(key=lambda refused: refused.line)
        results = self.store.record_all(conversations, messages, engagements)
        report.by_kind = {
            SocialEventKind.CONVERSATIONS.value: len(conversations),
            SocialEventKind.MESSAGES.value: len(messages),
            SocialEventKind.ENGAGEMENTS.value: len(engagements),
        }
        for result in results:
            if result.action is EventAction.CREATED:
                report.created += 1
            elif result.action is EventAction.UPDATED:
                report.updated += 1
            else:
                report.unchanged += 1
            report.linked_touchpoints += result.linked_touchpoints
        self._rescored(results)
        # As after an API event: conversations a username started, which reached no CRM record then, go to the
        # workflows' outbox again now that the file gave that username its email (delivered by the next worker).
        linked = {r.person.email for r in results if r.linked_touchpoints and r.person.email is not None}
        report.requeued_conversations = len(self._outbox.requeue_unreached_conversations(linked))
        return report


@dataclass
class _Line:
    touchpoints: int = 0
    leads: set[str] = field(default_factory=set)
    conversions: float = 0.0
    value: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))


def closest_names(asked: str, names: Sequence[str], most: int = 5) -> list[str]:
    """The ``names`` nearest to ``asked`` ignoring case: those that hold it first, then the most alike; none when
    nothing is near."""
    key = asked.casefold()
    folded = {name.casefold(): name for name in names}
    holding = [name for fold, name in folded.items() if key in fold]
    alike = [folded[fold] for fold in difflib.get_close_matches(key, list(folded), n=most, cutoff=0.5)]
    return list(dict.fromkeys([*holding, *alike]))[:most]


def _apportioned(shares: dict[Any, float], places: int) -> dict[Any, float]:
    """``shares`` rounded to ``places`` so that they still add up to their rounded total (largest remainder):
    three thirds of 100.00 are 33.34, 33.33 and 33.33, not 99.99 in all."""
    unit = 10 ** places
    scaled = {key: value * unit for key, value in shares.items()}
    floors = {key: math.floor(value + 1e-9) for key, value in scaled.items()}
    left = round(sum(scaled.values())) - sum(floors.values())
    for key in sorted(scaled, key=lambda k: (-(scaled[k] - floors[k]), str(k)))[:max(left, 0)]:
        floors[key] += 1
    return {key: count / unit for key, count in floors.items()}


def _rows(lines: dict[str | None, _Line]) -> list[ReportRow]:
    ordered = sorted(lines.items(), key=lambda item: (-item[1].conversions, -item[1].touchpoints, item[0] or "~"))
    conversions = _apportioned({name: line.conversions for name, line in ordered}, 4)
    currencies = sorted({currency for _, line in ordered for currency in line.value})
    values = {currency: _apportioned({name: line.value[currency] for name, line in ordered
                                      if currency in line.value}, 2) for currency in currencies}
    return [
        ReportRow.model_construct(
            name=name,
            touchpoints=line.touchpoints,
            leads=len(line.leads),
            conversions_credited=conversions[name],
            value_credited={currency: values[currency][name] for currency in sorted(line.value)},
        )
        for name, line in ordered
    ]


def _credited(touch: Touch, credit: float) -> CreditedTouchpoint:
    return CreditedTouchpoint.model_construct(
        timestamp=touch.timestamp, platform=touch.platform, type=touch.type, campaign=touch.campaign, credit=credit
    )


_MODELS: dict[SocialEventKind, type[WireModel]] = {
    SocialEventKind.CONVERSATIONS: ConversationEvent,
    SocialEventKind.MESSAGES: Message,
    SocialEventKind.ENGAGEMENTS: EngagementEvent,
}
#: Each event model's date-time fields, by their wire name (``timestamp``, ``startedAt``, ``sentAt``).
_TIME_FIELDS: dict[type[WireModel], frozenset[str]] = {
    model: frozenset(
        info.alias or name
        for name, info in model.model_fields.items()
        if info.annotation in (datetime, datetime | None)
    )
    for model in _MODELS.values()
}
_PARTICIPANT_COLUMNS = {"email", "firstName", "lastName", "username", "profileUrl", "followers"}
_USER_COLUMNS = {"email", "username"}
#: Each kind of event's own fields, by their wire names.
_FIELDS: dict[SocialEventKind, frozenset[str]] = {
    kind: frozenset(info.alias or name for name, info in model.model_fields.items()) for kind, model in _MODELS.items()
}


def _kind_of(row: dict[str, Any]) -> SocialEventKind:
    keys = {_camel(k) for k in row if k}
    if "messageId" in keys:
        return SocialEventKind.MESSAGES
    if "participant" in keys or "startedAt" in keys:
        return SocialEventKind.CONVERSATIONS
    return SocialEventKind.ENGAGEMENTS


def _camel(name: str) -> str:
    """A file's column as its wire name: ``post_id``, ``Post ID``, ``POST-ID`` and ``postId`` are ``postId`` (as
    social tools' exports title their columns); a column no event has is kept as the file wrote it, so validation
    names it."""
    known = _WIRE_NAMES.get(_column_key(name))
    if known is not None:
        return known
    head, *rest = name.strip().split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _column_key(name: str) -> str:
    return "".join(name.replace("-", " ").replace("_", " ").split()).casefold()


#: Every field of the events' rows by its column key (:func:`_column_key`): their wire names, and the person's.
_WIRE_NAMES: dict[str, str] = {
    _column_key(wire): wire
    for wire in [
        *(info.alias or name for model in _MODELS.values() for name, info in model.model_fields.items()),
        *_PARTICIPANT_COLUMNS,
    ]
}


def _local_times(row: dict[str, Any], model: type[WireModel]) -> tuple[dict[str, Any], dict[str, str]]:
    """``row`` with its date-time fields read as a file's times are (:func:`read_date_time`: a time without a zone
    is in the desktop's local time zone, a date alone local midnight), and why each one that is not ISO text could
    not be read, by wire name.

    A zone given is kept; the API's bodies are not read this way (a webhook must send a zone). A value that is not
    ISO text is left to validation (a number is a Unix time there); its reason here replaces validation's when it is
    refused.
    """
    from crm_desktop.providers.toolkit import read_date_time  # httpx under it: not on the window's start path

    times = _TIME_FIELDS[model]
    read: dict[str, Any] = {}
    unread: dict[str, str] = {}
    for key, value in row.items():
        name = _camel(key)
        if name not in times:
            continue
        serial = _spreadsheet_serial(value)
        if serial is not None:
            read[key] = serial
            continue
        if not isinstance(value, str):
            continue
        try:
            read[key] = read_date_time(value)
        except ValueError as exc:
            unread[name] = str(exc)
    return ({**row, **read} if read else row), unread


#: Excel's and LibreOffice's day 0 (serial 1 is 1 January 1900) and their last day (31 December 9999).
_SERIAL_EPOCH = datetime(1899, 12, 30)
_LAST_SERIAL = 2_958_465


def _spreadsheet_serial(value: Any) -> datetime | None:
    """A spreadsheet's date serial (``45981.5``: days since 30 December 1899, the time as the day's fraction) as
    the moment it names in the desktop's time zone; ``None`` for anything else.

    A number up to 2,958,465 (31 December 9999) is read so: as Unix seconds it would fall in January 1970. A larger
    one is left to validation, which reads it as Unix seconds or milliseconds.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    elif isinstance(value, int | float):
        number = float(value)
    else:
        return None
    if not 1 <= number <= _LAST_SERIAL:
        return None
    # astimezone() reads the naive wall time in the local zone, as a zoneless text time is read.
    return (_SERIAL_EPOCH + timedelta(seconds=round(number * 86_400))).astimezone()


def _username_of_link(row: dict[str, Any], kind: SocialEventKind) -> tuple[dict[str, Any], FieldProblem | None]:
    """``row`` with a person's profile link given as their username (social tools export ``https://x.com/ann``
    under "username") replaced by the username it shows, the link kept as a participant's ``profileUrl``; or why
    a link that shows no username is refused (it would be kept as a person of its own, never joined to them).
    """
    person_key = {SocialEventKind.CONVERSATIONS: "participant", SocialEventKind.ENGAGEMENTS: "user"}.get(kind)
    person = row.get(person_key) if person_key else None
    if person_key is None or not isinstance(person, dict):
        return row, None
    username = person.get("username")
    if not isinstance(username, str) or not username.strip().lower().startswith(("http://", "https://")):
        return row, None
    try:
        platform = SocialPlatform(str(row.get("platform"))).value
    except ValueError:
        return row, None  # validation names the platform
    name = username_from_url(platform, username)
    if name is None:
        return row, FieldProblem(
            f"{person_key}.username",
            f"{username.strip()!r} is a link that shows no {platform_name(platform)} username: give the username")
    shown = {**person, "username": name}
    if kind is SocialEventKind.CONVERSATIONS and not person.get("profileUrl"):
        shown["profileUrl"] = username.strip()
    return {**row, person_key: shown}, None


def _person_named(row: dict[str, Any]) -> str:
    """How a row refused for its person is named: by their email, else their username as given."""
    person = row.get("participant") or row.get("user") or {}
    return str(person.get("email") or person.get("username") or "(row)")


def _shaped(row: dict[str, Any], kind: SocialEventKind) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """A flat CSV row in the event's JSON shape, each wire path's column name in the file, and the columns the
    event has no field for.

    Person columns go under ``participant`` or ``user``; blanks are left out; a column the event has no field for
    (a social tool's ``Impressions``, ``Sentiment Score``) is left out too: a tool's export holds such columns on
    every row, and refusing them refused the whole file.
    """
    nested_key, nested_columns = {
        SocialEventKind.CONVERSATIONS: ("participant", _PARTICIPANT_COLUMNS),
        SocialEventKind.ENGAGEMENTS: ("user", _USER_COLUMNS),
        SocialEventKind.MESSAGES: ("", set()),
    }[kind]
    known = _FIELDS[kind]
    shaped: dict[str, Any] = {}
    nested: dict[str, Any] = {}
    columns: dict[str, str] = {}
    unused: list[str] = []
    for raw_key, value in row.items():
        if raw_key is None:
            continue
        key = _camel(raw_key)
        if key not in nested_columns and key not in known:
            unused.append(raw_key.strip())
            continue
        if key in nested_columns:
            columns[f"{nested_key}.{key}"] = raw_key.strip()
        else:
            columns[key] = raw_key.strip()
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if key in nested_columns:
            nested[key] = value
        else:
            shaped[key] = value
    if nested_key:
        shaped[nested_key] = nested
        given = [columns[f"{nested_key}.{c}"] for c in ("email", "username") if f"{nested_key}.{c}" in columns]
        columns[nested_key] = " or ".join(given) or "email or username"
    return shaped, columns, unused


def _file_rows(path: Path, notices: list[str]) -> Iterator[tuple[int, dict[str, Any]] | RefusedRow]:
    """Each row of a JSONL or CSV file by its line, or its refusal when it cannot be read whole; how the file was
    read, when the marketer should know, goes into ``notices``.

    Files are read as contacts imports read them (:mod:`crm_desktop.app.record_files`): UTF-8 with or without a
    BOM, or UTF-16/32, and a CSV that is none of them as Windows-1252 (what Excel on Windows saves as CSV); a CSV's
    delimiter from its header; a formula's guarding ``'`` dropped.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        shape = CsvShape()
        with contextlib.closing(csv_lines(path, shape, windows_1252=True)) as lines:
            _, header, _ = next(lines, (1, [], None))
            if shape.encoding == "cp1252":
                notices.append(f"{path.name}: {WINDOWS_1252_READ}")
            names = [cell_value(name.strip()) for name in header]
            for line, cells, misfit in lines:
                if not any(cell.strip() for cell in cells):
                    continue
                row = {name: cell_value(cell) for name, cell in zip(names, cells, strict=False) if name}
                for name in row:
                    # A follower count as a spreadsheet or a social tool writes it (12,400), as contacts files.
                    if _camel(name) == "followers" and row[name].strip():
                        row[name] = spreadsheet_number(row[name], decimal_comma=shape.decimal_comma)
                if misfit is None:
                    yield line, row
                else:
                    yield RefusedRow(line, _row_name(row), misfit.field, misfit.reason)
    elif suffix in {".jsonl", ".ndjson"}:
        with path.open(encoding=text_encoding(path)) as handle:
            for line, item, problem in json_object_lines(handle):
                yield (line, item) if item is not None else RefusedRow(line, "(unreadable)", "(row)", str(problem))
    else:
        raise ValueError(f"{path.name}: use a .jsonl or .csv file")


def _row_name(row: dict[str, Any]) -> str:
    """How a refused CSV row is named: by its message, conversation or post id when it has one."""
    ids = {_camel(name): value for name, value in row.items() if isinstance(value, str) and value.strip()}
    return next((ids[key].strip() for key in ("messageId", "conversationId", "postId") if key in ids), "(row)")
