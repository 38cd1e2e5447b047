"""The adapter contract every CRM meets, and the small capability protocols only some CRMs have."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.providers.network import NetworkSettings


@dataclass(frozen=True)
class ConnectionInfo:
    """Who the credentials belong to, what they may do, and how much quota is left.

    Attributes:
        account: the CRM account (org, portal, company) as its users name it.
        user: the user or app the credentials act as.
        scopes: granted scopes or permissions, when the CRM tells.
        quota: the API budget left, when the CRM tells.
    """

    account: str
    user: str
    scopes: tuple[str, ...] = ()
    quota: Quota | None = None


@dataclass(frozen=True)
class Quota:
    """The API budget as last reported by the CRM.

    Attributes:
        used: calls used in the current period (day), when known.
        limit: calls allowed in the period, when known.
        remaining: calls left, when known.
        window_remaining: calls left in the short burst window, when known.
    """

    used: int | None = None
    limit: int | None = None
    remaining: int | None = None
    window_remaining: int | None = None


@dataclass(frozen=True)
class CrmField:
    """One field of a CRM object, shown to the marketer by its label, addressed on the wire by ``name``.

    Attributes:
        name: the wire name (``Email``, ``twitter_username__c``, ``firstname``, a Pipedrive hash key).
        label: the human name.
        type: the CRM's type (``string``, ``email``, ``double``, ``enumeration``...).
        custom: whether it is a custom field.
        writable: whether a sync may write it.
        length: the maximum text length, when the CRM says.
        options: the allowed values of a picklist or enumeration.
        restricted: whether the CRM refuses a value that is none of ``options`` (a restricted Salesforce picklist,
            a HubSpot enumeration, a Pipedrive option field), failing the record.
    """

    name: str
    label: str
    type: str
    custom: bool = False
    writable: bool = True
    length: int | None = None
    options: tuple[str, ...] = ()
    restricted: bool = False


#: How many of a field's allowed values a refusal names before it counts the rest.
OPTIONS_NAMED = 6


def not_an_option(value: Any, options: Sequence[str]) -> str:
    """Why a dropdown field refuses ``value``, naming its allowed values (the first few of a long list):
    ``'Platinum' is not one of its options (Bronze, Silver, Gold)``."""
    named = ", ".join(options[:OPTIONS_NAMED])
    rest = len(options) - OPTIONS_NAMED
    return f"{str(value)!r} is not one of its options ({named}{f' and {rest} more' if rest > 0 else ''})"


@dataclass(frozen=True)
class OutboundRecord:
    """A record to write: its dedupe key, its CRM id when linked, and CRM field values.

    Attributes:
        email: the normalised email, the dedupe key.
        fields: CRM field name -> value (already mapped and transformed).
        crm_id: the CRM record it is linked to, when known (an email change then updates the same record).
        note: enrichment text to attach as a note or activity (social data where no field is mapped).
    """

    email: str
    fields: dict[str, Any]
    crm_id: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class RecordResult:
    """What happened to one record of a batch.

    Attributes:
        email: the record's dedupe key.
        outcome: created, updated, unchanged or failed.
        crm_id: the CRM record id, when there is one.
        category: why it failed.
        message: a sentence naming the field and reason (no tokens, no other customers' data).
        crm_modified_at: the CRM's change stamp of the record right after this write (the stamp its change feed
            pages by: Salesforce ``SystemModstamp``, HubSpot ``lastmodifieddate``, Pipedrive ``update_time``);
            ``None`` when unknown. The engine keeps it to recognise the write's own echo in the next pull.
    """

    email: str
    outcome: RecordOutcome
    crm_id: str | None = None
    category: ErrorCategory | None = None
    message: str | None = None
    crm_modified_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is not RecordOutcome.FAILED


@dataclass(frozen=True)
class CrmRecord:
    """A record as read from the CRM.

    Attributes:
        crm_id: the CRM's id.
        email: the normalised email ('' when the record has none).
        fields: CRM field name -> value.
        modified_at: when the CRM last changed it.
    """

    crm_id: str
    email: str
    fields: dict[str, Any]
    modified_at: datetime | None = None


@dataclass(frozen=True)
class ChangePage:
    """One page of records changed since a cursor; ``cursor`` is where the next pull starts once it is stored.

    Attributes:
        records: the changed records, oldest first.
        cursor: the position after this page (opaque text the adapter reads back).
    """

    records: list[CrmRecord]
    cursor: str


#: Given ``(CRM id, change stamp)`` pairs of changed records, the ids that are only the echoes of this app's own
#: writes (the CRM's stamp is the one it gave our last write). A pull passes it to ``changes_since`` so that an
#: adapter able to read stamps alone reads full records only for the others.
EchoCheck = Callable[[Sequence[tuple[str, datetime | None]]], Collection[str]]


@dataclass
class PushSummary:
    """Counts of one push, for the CLI and the Sync Monitor."""

    results: list[RecordResult] = field(default_factory=list)

    def count(self, outcome: RecordOutcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def failed(self) -> int:
        return self.count(RecordOutcome.FAILED)


@runtime_checkable
class CrmAdapter(Protocol):
    """What every CRM adapter does. All methods are coroutines on the app's one asyncio loop."""

    provider: str

    async def test_connection(self) -> ConnectionInfo:
        """Who am I, which scopes, quota left. Raises AuthError when the credentials are refused."""
        ...

    async def list_fields(self, obj: RecordObject) -> list[CrmField]:
        """The CRM's fields of contacts or leads, with labels and types."""
        ...

    async def find_by_emails(self, obj: RecordObject, emails: Sequence[str]) -> dict[str, CrmRecord]:
        """Existing records by normalised email (emails not found are absent)."""
        ...

    async def upsert(
        self,
        obj: RecordObject,
        records: Sequence[OutboundRecord],
        *,
        answers: list[RecordResult | None] | None = None,
    ) -> list[RecordResult]:
        """Create or update records; one result per input, in input order.

        ``answers`` (as long as ``records``), when given, gets each record's result at its position once the CRM has
        answered for it, so a push stopped part-way (the daily budget spent, a cancel) still knows which writes the
        CRM took. How soon depends on the CRM: Pipedrive record by record, Salesforce collection by collection,
        HubSpot round by round.
        """
        ...

    async def get_record(
        self, obj: RecordObject, *, email: str | None = None, crm_id: str | None = None
    ) -> CrmRecord | None:
        """One record by email or CRM id, or ``None``."""
        ...

    def changes_since(
        self, obj: RecordObject, cursor: str | None, *, echoes: EchoCheck | None = None
    ) -> AsyncIterator[ChangePage]:
        """Records changed since ``cursor`` (``None``: all), page by page, oldest first.

        With ``echoes``, an adapter may leave out the records it names (the CRM holds what this app wrote): a page
        can then come with fewer records, or none, while its cursor still moves past them.
        """
        ...

    async def add_note(self, obj: RecordObject, crm_id: str, text: str) -> str:
        """Attach a note or activity to a record (enrichment); returns the note's id."""
        ...

    def quota(self) -> Quota:
        """The API budget as last reported."""
        ...

    @property
    def api_calls(self) -> int:
        """Requests sent so far (retries included)."""
        ...

    @property
    def api_errors(self) -> int:
        """Answers of 400 and above among those requests."""
        ...

    async def aclose(self) -> None:
        """Close the HTTP client."""
        ...


class TimelineKind(StrEnum):
    """What a timeline entry records on a CRM record (the social workflows' interactions)."""

    CONVERSATION_STARTED = "conversation_started"
    MESSAGES = "messages"
    ENGAGEMENT = "engagement"


@dataclass(frozen=True)
class TimelineEntry:
    """One interaction to show on a CRM record's timeline: a Salesforce Task, a HubSpot note, a Pipedrive activity.

    Attributes:
        crm_id: the record (contact or lead) the entry belongs to.
        subject: one line (Salesforce Subject, at most 255 characters; the note's first line elsewhere).
        body: the details in plain text (the adapter escapes it where the CRM wants HTML).
        occurred_at: when the interaction happened (UTC).
        kind: what it records.
    """

    crm_id: str
    subject: str
    body: str
    occurred_at: datetime
    kind: TimelineKind


@dataclass(frozen=True)
class TimelineResult:
    """What happened to one timeline entry, in input order: its id in the CRM, or why the CRM refused it.

    Attributes:
        entry_id: the Task, note or activity id (``None`` when refused).
        category: why it was refused.
        message: a sentence naming the record and the reason.
    """

    entry_id: str | None
    category: ErrorCategory | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.entry_id is not None


@runtime_checkable
class LogsTimeline(Protocol):
    """A CRM whose records carry a timeline of interactions the app can add to, in the CRM's native batches."""

    async def log_timeline(self, obj: RecordObject, entries: Sequence[TimelineEntry]) -> list[TimelineResult]:
        """Add the entries to their records' timelines; one result per entry, in input order.

        Raises:
            AuthError, RateLimitError, TransientError: when the whole request failed (nothing is half-reported).
        """
        ...


@runtime_checkable
class CreatesCustomFields(Protocol):
    """A CRM where the app can create a missing custom field (HubSpot properties, Pipedrive personFields)."""

    async def create_field(self, obj: RecordObject, name: str, label: str, field_type: str) -> CrmField:
        """Create a custom field and return it."""
        ...


@runtime_checkable
class ReportsMissingFields(Protocol):
    """A CRM where missing custom fields must be created by an admin (Salesforce `__c` fields)."""

    async def missing_fields(self, obj: RecordObject, wanted: Sequence[str]) -> list[str]:
        """The wanted field names the CRM lacks."""
        ...


@runtime_checkable
class KeepsNotes(Protocol):
    """A CRM whose upsert leaves ``OutboundRecord.note`` to the caller (Salesforce, HubSpot; Pipedrive writes its
    social note itself while upserting)."""

    async def keep_note(self, obj: RecordObject, crm_id: str, text: str) -> bool:
        """Attach the note unless the record already has one saying exactly that; True when one was added."""
        ...


@runtime_checkable
class ReadsMappedFields(Protocol):
    """A CRM whose reads name the fields they return (Salesforce's SOQL): reads also take the mapped fields."""

    def read_mapped_fields(self, obj: RecordObject, names: Sequence[str]) -> None:
        """Read these fields too (those the CRM has) in every later find, get and pull of ``obj``."""
        ...


@runtime_checkable
class KnowsItsAccount(Protocol):
    """A CRM that says which account its credentials reach, so a token of another account is caught before a run
    sends the links' record ids there."""

    async def account_id(self) -> str:
        """The account's stable id (HubSpot portal, Pipedrive company, Salesforce org); empty when the CRM does not
        say."""
        ...


@dataclass(frozen=True)
class AdapterOptions:
    """Tuning of one adapter; defaults are each CRM's documented limits for common plans.

    Attributes:
        window_limit: requests per rate window (``None``: the CRM's default; headers correct it at run time).
        concurrency: requests in flight at most.
        daily_reserve: API calls to keep unspent today; the adapter stops early below it.
        timeout: seconds per request (a write the CRM could make twice waits for its answer at least 120 s).
        max_attempts: tries per request (first try included).
        max_retry_seconds: time one request may spend retrying.
        salesforce_session_seconds: Salesforce session lifetime, to refresh before known expiry.
        default_lead_company: Salesforce Lead's required Company when a record has none (``None``: derive it
            from the email's domain).
        network: the workspace's proxy and trusted certificates.
    """

    window_limit: int | None = None
    concurrency: int | None = None
    daily_reserve: int = 0
    timeout: float = 30.0
    max_attempts: int = 6
    max_retry_seconds: float = 300.0
    salesforce_session_seconds: float | None = 7200.0
    default_lead_company: str | None = None
    network: NetworkSettings = field(default_factory=NetworkSettings)


# -- merges --
@dataclass(frozen=True)
class MergeResult:
    """A merge the CRM did: the record that remains and the one folded into it.

    Attributes:
        surviving_id: the CRM id of the record that remains (HubSpot may answer with a new id).
        merged_id: the CRM id of the record that is gone.
        already_merged: the CRM had merged the two before this merge's answer came (an earlier try, in this run or
            another, whose answer was lost): found by reading the two records, not by the merge's own answer.
    """

    surviving_id: str
    merged_id: str
    already_merged: bool = False


@runtime_checkable
class MergesRecords(Protocol):
    """A CRM whose API merges two records of a kind (HubSpot contacts, Pipedrive persons)."""

    async def merge_records(
        self, obj: RecordObject, keep_id: str, merge_id: str, *, merge_email: str | None = None
    ) -> MergeResult:
        """Fold ``merge_id`` into ``keep_id`` in the CRM; ``keep_id``'s values win where both have one.

        A merge whose answer is lost is looked up before it is sent again, and one the CRM already made (the merged
        record gone, its id or ``merge_email`` on the survivor) is a success with ``already_merged``.
        """
        ...


@runtime_checkable
class DeletesRecords(Protocol):
    """A CRM whose API deletes one record (forgetting a person at their request, ``forget --in-crms``)."""

    async def delete_record(self, obj: RecordObject, crm_id: str) -> bool:
        """Delete the record ``crm_id``; ``False`` when the CRM had no such record (gone already).

        Raises:
            RequestRejectedError: when the CRM refuses the delete (a permission, a record it keeps).
        """
        ...
