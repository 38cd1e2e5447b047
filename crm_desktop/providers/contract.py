"""The adapter contract every CRM meets, and the small capability protocols only some CRMs have."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
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
    """

    name: str
    label: str
    type: str
    custom: bool = False
    writable: bool = True
    length: int | None = None
    options: tuple[str, ...] = ()


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
    """

    email: str
    outcome: RecordOutcome
    crm_id: str | None = None
    category: ErrorCategory | None = None
    message: str | None = None

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

    async def upsert(self, obj: RecordObject, records: Sequence[OutboundRecord]) -> list[RecordResult]:
        """Create or update records; one result per input, in input order."""
        ...

    async def get_record(
        self, obj: RecordObject, *, email: str | None = None, crm_id: str | None = None
    ) -> CrmRecord | None:
        """One record by email or CRM id, or ``None``."""
        ...

    def changes_since(self, obj: RecordObject, cursor: str | None) -> AsyncIterator[ChangePage]:
        """Records changed since ``cursor`` (``None``: all), page by page, oldest first."""
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

    async def aclose(self) -> None:
        """Close the HTTP client."""
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


@dataclass(frozen=True)
class AdapterOptions:
    """Tuning of one adapter; defaults are each CRM's documented limits for common plans.

    Attributes:
        window_limit: requests per rate window (``None``: the CRM's default; headers correct it at run time).
        concurrency: requests in flight at most.
        daily_reserve: API calls to keep unspent today; the adapter stops early below it.
        timeout: seconds per request.
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
