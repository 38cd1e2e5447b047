"""Records that arrive one at a time or in batches (the local API): validated, saved locally, pushed to a CRM now."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crm_desktop.app.crm_actions import CrmActions
from crm_desktop.app.integrations import IntegrationService
from crm_desktop.app.record_files import repeated_networks
from crm_desktop.app.social import SocialService
from crm_desktop.app.sync_service import SyncService
from crm_desktop.app.text import plural
from crm_desktop.domain.credentials import CredentialsError
from crm_desktop.domain.engagement_summary import engagement_summary
from crm_desktop.domain.errors import FieldProblem, InvalidRecordError
from crm_desktop.domain.models import (
    Contact,
    Integration,
    Lead,
    Provider,
    SocialPlatform,
    SocialProfile,
    SyncConfig,
    Touchpoint,
    normalise_email,
    platform_name,
)
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.domain.scoring import EngagementScore
from crm_desktop.domain.social import (
    AttributionModel,
    EngagementEvent,
    EngagementUser,
    LeadAttribution,
    PersonRef,
)
from crm_desktop.domain.wording import forgotten_reason
from crm_desktop.providers.errors import AuthError, PermissionRefusedError, ProviderError
from crm_desktop.store.models import FieldDirection
from crm_desktop.store.repositories import ContactStore, LeadStore, NotFoundError, SavedRecord
from crm_desktop.sync.engine import SyncAlreadyRunning, SyncResult
from crm_desktop.sync.mapping import apply_values, from_crm

logger = logging.getLogger(__name__)

#: The local fields of a network's follower count, which a CRM read fills in that network's profile.
_FOLLOWER_FIELDS = {"twitterFollowers": SocialPlatform.TWITTER, "instagramFollowers": SocialPlatform.INSTAGRAM}


def _follower_count(value: Any) -> int | None:
    """A CRM's follower count (``1200``, ``"1200"``, ``1200.0``) as a whole number; ``None`` when none is."""
    try:
        count = int(float(str(value)))
    except (TypeError, ValueError, OverflowError):
        return None
    return count if count >= 0 else None

Record = Contact | Lead


@dataclass(frozen=True)
class IntakeResult:
    """What happened to one record of a request, in request order.

    Attributes:
        index: the record's position in the request (0 for a single record).
        email: the normalised email ('' when the record was refused before its email could be read).
        action: created, updated or unchanged in the CRM, or failed; ``None`` when validation refused it.
        local_id: the local record's id, once saved.
        crm_id: the CRM record's id, once linked.
        problems: why validation refused it (field and reason, as the CLI's import reports them).
        category: why the CRM refused it.
        message: the CRM's refusal, naming the field where it did.
    """

    index: int
    email: str
    action: RecordOutcome | None = None
    local_id: int | None = None
    crm_id: str | None = None
    problems: tuple[FieldProblem, ...] = ()
    category: ErrorCategory | None = None
    message: str | None = None
    written: dict[str, Any] = field(default_factory=dict)


@dataclass
class IntakeReport:
    """Every record's result, and the run that pushed the valid ones.

    Attributes:
        results: one per record of the request, in order.
        run_id: the sync run that pushed them (``None`` when none was valid).
        api_calls: requests the run sent to the CRM.
    """

    results: list[IntakeResult] = field(default_factory=list)
    run_id: int | None = None
    api_calls: int = 0

    def summary(self) -> dict[str, int]:
        """Counts per action, the rows refused by validation, and the CRM calls used."""
        counts = {"created": 0, "updated": 0, "unchanged": 0, "failed": 0, "skipped": 0, "invalid": 0}
        for result in self.results:
            counts["invalid" if result.action is None else result.action.value] += 1
        return {**counts, "total": len(self.results), "apiCalls": self.api_calls}


@dataclass(frozen=True)
class CrmContact:
    """A contact read live from a CRM, in the app's Contact shape, with the CRM's id and change time."""

    crm_id: str
    contact: Contact
    modified_at: datetime | None


class CrmRefusedRecord(ProviderError):
    """The CRM refused the one record a request pushed (the message names the field where the CRM did)."""


def laid_over(given: Record, stored: Record | None) -> Record:
    """The record a local API body makes of the stored one with its email: the fields the body names are written
    (``null`` clears one), the others keep what is stored, as an import keeps the columns a file lacks. A lead
    re-sent by a webhook that knows only the name keeps its company and status. Social profiles are replaced per
    network and custom values per name, so a body with its Twitter profile keeps the stored Instagram one; a lead's
    social context key by key."""
    if stored is None or type(stored) is not type(given):
        return given
    named = given.model_fields_set - {"email"}
    update: dict[str, Any] = {name: getattr(given, name) for name in named}
    if "social_profiles" in named:
        networks = {profile.platform for profile in given.social_profiles}
        update["social_profiles"] = [*given.social_profiles,
                                     *(p for p in stored.social_profiles if p.platform not in networks)]
    if "custom_fields" in named:
        update["custom_fields"] = {**stored.custom_fields, **given.custom_fields}
    if (isinstance(given, Lead) and isinstance(stored, Lead) and given.social_context is not None
            and stored.social_context is not None):
        # Key by key, as a file's socialContext is laid over the stored one: a sentiment alone keeps the score.
        context = given.social_context
        update["social_context"] = stored.social_context.model_copy(
            update={name: getattr(context, name) for name in context.model_fields_set})
    return stored.model_copy(update=update)


def _refuse_repeated_networks(record: Record, profiles: Sequence[SocialProfile]) -> None:
    """Refuse profiles naming a network twice, as ``contacts import`` does: a person has one profile per network,
    so all but one of them would be dropped without a word."""
    problems = repeated_networks((p.platform.value, p.username) for p in profiles)
    if problems:
        raise InvalidRecordError(record.record_kind, record.email, problems)


def validate_rows(rows: Sequence[Any], model: type[Record]) -> tuple[list[tuple[int, Record]], list[IntakeResult]]:
    """Validate every row; return the valid records with their index, and one refused result per bad row.

    A second row with the email of an earlier one is refused, naming that row, as the CLI's import does with lines.
    """
    valid: list[tuple[int, Record]] = []
    refused: list[IntakeResult] = []
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            refused.append(IntakeResult(index, "", problems=(FieldProblem("(record)", "must be a JSON object"),)))
            continue
        try:
            record = model.model_validate(row)
            _refuse_repeated_networks(record, record.social_profiles)
        except InvalidRecordError as exc:
            email = row.get("email") if isinstance(row.get("email"), str) else ""
            refused.append(IntakeResult(index, str(email), problems=tuple(exc.problems)))
            continue
        if record.email in seen:
            reason = f"same email as row {seen[record.email]}; row skipped"
            refused.append(IntakeResult(index, record.email, problems=(FieldProblem("email", reason),)))
            continue
        seen[record.email] = index
        valid.append((index, record))
    return valid, refused


class RecordIntake:
    """Integrations, contacts and leads as the local API receives them, on the services the GUI and CLI use.

    Attributes:
        integrations: the integrations service (store + vault).
        sync: the sync service (its engine pushes, through the durable outbox, as a recorded run).
        crm: one-shot CRM actions.
    """

    def __init__(
        self, integrations: IntegrationService, sync: SyncService, crm: CrmActions, contacts: ContactStore,
        leads: LeadStore, social: SocialService,
    ) -> None:
        self.integrations = integrations
        self.sync = sync
        self.crm = crm
        self.social = social
        self._contacts = contacts
        self._leads = leads

    def integration(self, key: str) -> Integration:
        """The integration named ``key``, or else the one whose id it is.

        Raises:
            NotFoundError: when neither exists.
        """
        try:
            return self.integrations.get(key)
        except NotFoundError:
            if _is_local_id(key):
                try:
                    return self.integrations.get_by_id(int(key))
                except NotFoundError:
                    pass
            raise NotFoundError(f"no integration named {key!r} or with that id") from None

    def local_lead(self, key: str, lead: str) -> int | str:
        """The local lead a path's ``leadId`` names: the CRM's id of a lead linked in that integration, else a local
        id (digits) or an email, as the social service takes them.

        Raises:
            NotFoundError: for an unknown integration.
        """
        integration = self.integration(key)
        assert integration.id is not None
        link = self.sync.store.links_for_crm(integration.id, RecordObject.LEAD, [lead]).get(lead)
        if link is not None:
            return link.local_id
        if _is_local_id(lead):
            return int(lead)
        if lead.isdigit():  # other digits ('²', '٣') name no lead, and the social service would read them as an id
            raise NotFoundError(f"no lead {lead!r} in the local store")
        return lead

    def add_integration(
        self, *, provider: Provider, name: str, credentials: dict[str, Any], description: str = "",
        scopes: Sequence[str] = (), sync_config: SyncConfig | None = None, domain: str | None = None,
        base_url: str | None = None,
    ) -> Integration:
        """Create an integration; its credentials go to the OS keyring and nowhere else.

        ``domain`` is the Salesforce instance URL or the Pipedrive company domain (HubSpot needs none);
        ``base_url`` points the integration elsewhere (a sandbox).

        Raises:
            InvalidRecordError: naming each bad field (credentials' fields under ``credentials.``).
            DuplicateNameError: when the name is taken.
            VaultError: when the keyring cannot take the credentials (nothing is created then).
        """
        if provider is Provider.SALESFORCE and domain:
            base_url, domain = base_url or domain, None
        integration = Integration(
            provider=provider, name=name, description=description, scopes=list(scopes),
            sync_config=sync_config or SyncConfig(), base_url=base_url, domain=domain,
        )
        try:
            return self.integrations.add(integration, credentials)
        except CredentialsError as exc:
            problems = [FieldProblem(f"credentials.{p.field}", p.reason) for p in exc.problems]
            raise InvalidRecordError(
                "integration", name, problems or [FieldProblem("credentials", str(exc))]
            ) from None

    async def push(self, key: str, obj: RecordObject, records: Sequence[tuple[int, Record]], *,
                   given_only: bool = False) -> IntakeReport:
        """Save valid records locally (matched by normalised email, all in one transaction for contacts), then
        push them to the integration's CRM now, through the sync engine's outbox as one recorded run.

        ``given_only``: a record already stored keeps the fields the request does not name (:func:`laid_over`);
        otherwise the record replaces the stored one whole.

        Raises:
            NotFoundError: for an unknown integration.
            SyncAlreadyRunning: when a run of the integration is going on (nothing is saved then, when this
                process knows it).
            AuthError: when the CRM refuses the integration's credentials (the records stay saved locally and go
                with the next sync).
            ProviderError: when the run stopped for another reason (rate limit, network).
        """
        integration = self.integration(key)
        assert integration.id is not None
        if not records:
            return IntakeReport()
        # People forgotten at their request are neither saved nor pushed: skipped, saying why.
        forgotten = await asyncio.to_thread(self.sync.store.forgotten_among, [r.email for _, r in records])
        if forgotten:
            skipped = [IntakeResult(index, r.email, RecordOutcome.SKIPPED,
                                    message=forgotten_reason(forgotten[r.email], "not saved or pushed"))
                       for index, r in records if r.email in forgotten]
            kept = [(index, r) for index, r in records if r.email not in forgotten]
            report = await self.push(key, obj, kept, given_only=given_only) if kept else IntakeReport()
            report.results = sorted([*report.results, *skipped], key=lambda result: result.index)
            return report
        if self.sync.is_running(integration.name):
            raise SyncAlreadyRunning(f"a sync of {integration.name!r} is already running")
        # The store work and the per-record report run on a thread: the API is served on the window's loop, and a
        # batch of 10,000 would hold it (and the window) for seconds.
        saved = await asyncio.to_thread(self._save_for_push, obj, records, given_only)
        run = await self.sync.push_now(integration.name, {obj: [s.id for s in saved]})
        self._raise_for_run(run)
        return await asyncio.to_thread(self._push_report, integration.id, obj, records, saved, run)

    def _save_for_push(self, obj: RecordObject, records: Sequence[tuple[int, Record]],
                       given_only: bool) -> list[SavedRecord]:
        """Save the records to push (laid over the stored ones when ``given_only``), in their order."""
        if given_only:
            emails = [r.email for _, r in records]
            stored: dict[str, Contact] | dict[str, Lead] = (
                self._contacts.find_many(emails) if obj is RecordObject.CONTACT else self._leads.find_many(emails))
            records = [(index, laid_over(record, stored.get(record.email))) for index, record in records]
        if obj is RecordObject.CONTACT:
            return self._contacts.save_many([r for _, r in records if isinstance(r, Contact)])
        return [self._leads.save(r) for _, r in records if isinstance(r, Lead)]

    def _push_report(self, integration_id: int, obj: RecordObject, records: Sequence[tuple[int, Record]],
                     saved: Sequence[SavedRecord], run: SyncResult) -> IntakeReport:
        """What the push did to each record, from the run's record log and the links it left."""
        report = IntakeReport(run_id=run.run_id, api_calls=run.api_calls)
        ids = [s.id for s in saved]
        logged = {row.record_key: row for row in self.sync.run(run.run_id)[1]} if run.run_id is not None else {}
        links = self.sync.store.links_for_local(integration_id, obj, ids)
        written = {
            change.email: {name: value.new for name, value in change.fields.items()}
            for change in run.plan.changes
            if change.side.value == "crm" and change.action.value in {"create", "update"}
        }
        for (index, _), item in zip(records, saved, strict=True):
            link = links.get(item.id)
            row = logged.get(item.email)
            if row is not None and row.outcome is not RecordOutcome.SKIPPED:
                report.results.append(
                    IntakeResult(index, item.email, row.outcome, item.id, row.crm_id or (link.crm_id if link else None),
                                 category=row.error_category, message=row.message,
                                 written=written.get(item.email, {}))
                )
            elif link is not None and not link.deleted_in_crm:
                report.results.append(IntakeResult(index, item.email, RecordOutcome.UNCHANGED, item.id, link.crm_id))
            else:
                reason = (row.message if row is not None and row.message
                          else "not pushed: no field of it maps to the CRM")
                report.results.append(
                    IntakeResult(index, item.email, RecordOutcome.FAILED, item.id,
                                 category=row.error_category if row is not None else ErrorCategory.VALIDATION,
                                 message=reason)
                )
        return report

    @staticmethod
    def _raise_for_run(run: SyncResult) -> None:
        if run.auth_failed:
            raise AuthError(run.message or "the CRM refused the integration's credentials")
        if run.stopped_by is ErrorCategory.PERMISSION:
            raise PermissionRefusedError(run.message or "the CRM user lacks a permission: ask the CRM's admin")
        if run.message and run.status.value == "failed":
            raise ProviderError(run.message)

    async def push_one(self, key: str, record: Record, *, given_only: bool = False) -> IntakeResult:
        """Save one contact or lead locally and push it now (see :meth:`push`).

        Raises:
            CrmRefusedRecord: when the CRM refused it (the local record stays saved).
            and what :meth:`push` raises.
        """
        _refuse_repeated_networks(record, record.social_profiles)
        obj = RecordObject.CONTACT if isinstance(record, Contact) else RecordObject.LEAD
        report = await self.push(key, obj, [(0, record)], given_only=given_only)
        result = report.results[0]  # a forgotten person's is skipped, with the reason as its message
        if result.action is RecordOutcome.FAILED:
            raise CrmRefusedRecord(result.message or "the CRM refused the record", category=result.category)
        return result

    async def crm_contact(self, key: str, email: str) -> CrmContact | None:
        """Read a contact live from the integration's CRM by email, in the app's Contact shape (its pulled
        mapped fields); ``None`` when the CRM has none.

        A CRM value the app would refuse (a phone it cannot read, say) is left out rather than failing the read.
        """
        integration = self.integration(key)
        mappings = self.sync.mappings(integration, RecordObject.CONTACT)
        mapped = [m.crm_field for m in mappings if m.direction is not FieldDirection.OFF and m.crm_field]
        found = await self.crm.get_record(integration.name, RecordObject.CONTACT, email, mapped=mapped)
        if found is None:
            return None
        values = {
            m.local_field: from_crm(m, found.fields[m.crm_field])
            for m in mappings
            if m.pulls and m.crm_field in found.fields and m.local_field != "email"
        }
        contact: Record = Contact(email=found.email or email)
        for name, value in values.items():
            try:
                contact = apply_values(contact, {name: value})
            except InvalidRecordError as exc:
                logger.info("contact %s from %s: %s left out (%s)", email, integration.name, name, exc.problems)
        assert isinstance(contact, Contact)
        # A network's followers are push-only by default (the app counts them), yet the CRM holds them: read them
        # too, rather than answering 0 followers for a profile the CRM says has 1,200.
        counts: dict[SocialPlatform, int] = {}
        for m in mappings:
            platform = _FOLLOWER_FIELDS.get(m.local_field)
            if platform is None or m.direction is FieldDirection.OFF or m.crm_field not in found.fields:
                continue
            count = _follower_count(from_crm(m, found.fields[m.crm_field]))
            if count is not None:
                counts[platform] = count
        if counts:
            contact = contact.model_copy(update={"social_profiles": [
                p.model_copy(update={"followers": counts[p.platform]}) if p.platform in counts else p
                for p in contact.social_profiles
            ]})
        return CrmContact(found.crm_id, contact, found.modified_at)

    def local_contact(self, key: str, contact: str) -> Contact:
        """The local contact a request names: by the CRM's id of a contact linked in that integration, the local
        id, or the email.

        Raises:
            NotFoundError: when the local store has no such contact (or no such integration).
        """
        integration = self.integration(key)
        assert integration.id is not None
        link = self.sync.store.links_for_crm(integration.id, RecordObject.CONTACT, [contact]).get(contact)
        local_id = link.local_id if link is not None else int(contact) if _is_local_id(contact) else None
        if local_id is not None:
            found = self.sync.store.local_records(RecordObject.CONTACT, [local_id]).get(local_id)
            if found is not None and isinstance(found.record, Contact):
                return found.record
        else:
            try:
                stored = self._contacts.find(normalise_email(contact))
            except ValueError:
                stored = None
            if stored is not None:
                return stored
        raise NotFoundError(f"no contact {contact!r} in the local store: push it first (contacts/sync)")

    async def enrich(
        self, key: str, contact: str, profiles: Sequence[SocialProfile], *, with_history: bool
    ) -> Enrichment:
        """Write a contact's social profiles (merged by platform), follower counts and engagement score to the CRM
        record now, and with ``with_history`` its engagement history as a note on the record's timeline.

        Raises:
            NotFoundError: for an unknown integration or contact.
            and what :meth:`push_one` raises.
        """
        current = self.local_contact(key, contact)
        _refuse_repeated_networks(current, profiles)
        merged = {p.platform: p for p in current.social_profiles}
        merged.update({p.platform: p for p in profiles})
        enriched = current.model_copy(update={"social_profiles": list(merged.values())})
        # Where no mapped field carries the social data (Pipedrive's defaults), the push writes the record's social
        # note anew when the profiles changed it.
        result = await self.push_one(key, enriched)
        # Scored once the push saved the profiles: their followers are the score's reach.
        score = self._score_of(enriched.email)
        note_id = None
        if result.crm_id is not None and with_history:
            note_id = await self._add_note(key, RecordObject.CONTACT, result.crm_id,
                                           self._history(enriched, score, with_touchpoints=with_history))
        return Enrichment(result, score, note_id)

    def _score_of(self, email: str) -> EngagementScore | None:
        try:
            return self.social.engagement_score(PersonRef(email=email))
        except NotFoundError:
            return None

    def _history(self, contact: Contact, score: EngagementScore | None, *, with_touchpoints: bool) -> str:
        """A note of the social data: the score and its parts, the profiles, and the latest touchpoints."""
        lines = ["Social engagement (CRM Desktop)"]
        if score is not None:
            lines.append(f"Engagement score: {score.score:.1f}/100 from {plural(score.interactions, 'interaction')} "
                         f"and {plural(score.followers, 'follower')}")
        for profile in contact.social_profiles:
            lines.append(f"{platform_name(profile.platform)}: @{profile.username}, "
                         f"{plural(profile.followers, 'follower')}")
        if with_touchpoints:
            # The same summary the CRM's social_touchpoints field holds: conversations, last interaction,
            # sentiment trend and the newest touchpoints.
            history = self.sync.engagement.histories([contact.email]).get(contact.email)
            summary = engagement_summary(history, recent=HISTORY_TOUCHPOINTS) if history else None
            if summary:
                lines.append(summary)
        return "\n".join(lines)

    async def _add_note(self, key: str, obj: RecordObject, crm_id: str, text: str) -> str:
        integration = self.integration(key)
        adapter = await self.crm.checked_adapter(integration)
        try:
            return await adapter.add_note(obj, crm_id, text)
        finally:
            await adapter.aclose()

    async def record_lead_touchpoints(
        self, key: str, lead: str, touchpoints: Sequence[Touchpoint], campaign: str | None,
        model: AttributionModel,
    ) -> LeadTouchpoints:
        """Record a lead's touchpoints (a campaign given once applies to those without one), recompute its score
        and attribution, and update the CRM lead now. Recording is idempotent: touchpoints sent again count once.

        Raises:
            NotFoundError: for an unknown integration or lead.
            and what :meth:`push_one` raises.
        """
        reference = self.local_lead(key, lead)
        email = self.social.attribution(reference, model).email
        events: list[EngagementEvent] = []
        for number, t in enumerate(touchpoints):
            try:
                events.append(EngagementEvent(
                    platform=t.platform, type=t.type.value, timestamp=t.timestamp, post_id=t.post_id,
                    conversation_id=t.conversation_id, campaign=t.campaign or campaign,
                    user=EngagementUser(email=email)))
            except InvalidRecordError as exc:
                # Named by the touchpoint's place in the request: a list of a thousand must say which one.
                raise InvalidRecordError("lead touchpoints", lead, [
                    FieldProblem(f"touchpoints.{number}.{problem.field}", problem.reason) for problem in exc.problems
                ]) from None
        recorded = self.social.record_engagements(events)
        new = sum(1 for r in recorded if r.action.value != "unchanged")
        stored = self._leads.find(email)
        if stored is None:
            raise NotFoundError(f"no lead {lead!r} in the local store")
        result = await self.push_one(key, stored)
        return LeadTouchpoints(result, new, self.social.attribution(reference, model), self._score_of(email))


def _is_local_id(text: str) -> bool:
    """Whether a path or body value is a local id: ASCII digits only (``str.isdigit`` also takes '²'), short enough
    for the store's 64-bit ids."""
    return text.isascii() and text.isdigit() and len(text) <= 18


#: Touchpoints listed in an engagement-history note, newest first.
HISTORY_TOUCHPOINTS = 10


@dataclass(frozen=True)
class Enrichment:
    """What enriching a contact wrote: the push's result, the score, the history note's id."""

    result: IntakeResult
    score: EngagementScore | None
    note_id: str | None


@dataclass(frozen=True)
class LeadTouchpoints:
    """What recording a lead's touchpoints did: the CRM update, how many were new, the attribution, the score."""

    result: IntakeResult
    new_touchpoints: int
    attribution: LeadAttribution
    score: EngagementScore | None
