"""What the local API's requests and answers carry, on top of the domain models (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Self

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from crm_desktop.domain.models import (
    Contact,
    Integration,
    Provider,
    SocialProfile,
    SyncConfig,
    Touchpoint,
    WireModel,
)
from crm_desktop.domain.outcomes import ErrorCategory, RecordOutcome
from crm_desktop.domain.social import AttributionModel, EventAction, LeadAttribution, PersonRef


class IntegrationRequest(WireModel):
    """``POST /api/crm/integrations``: a new integration and its credentials (which go to the OS keyring only)."""

    record_kind: ClassVar[str] = "integration"

    provider: Provider
    # What a name may hold (no / or \\: it goes in every other call's path) is the Integration's own check, in words.
    name: Annotated[str, Field(min_length=1, max_length=80)]
    description: Annotated[str, Field(max_length=500)] = ""
    scopes: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list)
    sync_config: SyncConfig | None = None
    domain: Annotated[
        str | None,
        Field(max_length=500, description="the Salesforce instance URL or the Pipedrive company domain"),
    ] = None
    base_url: Annotated[
        str | None, Field(max_length=500, description="where the CRM's API is, when not the vendor's (a sandbox)")
    ] = None
    credentials: Annotated[
        dict[str, Any],
        Field(description="HubSpot {token}; Pipedrive {apiToken}; Salesforce {clientId, clientSecret, accessToken, "
                          "refreshToken, instanceUrl}. Kept in the OS keyring, never echoed back"),
    ]


class IntegrationCreated(Integration):
    """The integration as stored (no credentials), and whether the keyring holds them."""

    has_credentials: bool


class RecordSynced(WireModel):
    """One contact or lead saved locally and pushed to the CRM; ``skipped`` (nothing saved or sent, no local id)
    when it is a person forgotten at their request, with the reason."""

    local_id: int | None
    crm_id: str | None
    action: Annotated[RecordOutcome, Field(description="created, updated or unchanged in the CRM; skipped for a "
                                                       "person forgotten at their request")]
    reason: str | None = None


class CrmContact(Contact):
    """A contact read live from the CRM, in the app's Contact shape, with the CRM's id."""

    crm_id: str
    modified_at: datetime | None = None


class FieldError(WireModel):
    """One refused field: its wire name and the reason, as the CLI's import reports them."""

    field: str
    reason: str


class BatchRow(WireModel):
    """One row of a batch, in request order: the CRM's action, or why it was refused."""

    index: int
    email: str
    action: RecordOutcome | None = None
    local_id: int | None = None
    crm_id: str | None = None
    category: ErrorCategory | None = None
    error: FieldError | None = None
    errors: list[FieldError] = Field(default_factory=list)
    #: Why a row was skipped (a person forgotten at their request).
    reason: str | None = None


class BatchSummary(WireModel):
    """Counts of a batch."""

    total: int
    created: int
    updated: int
    unchanged: int
    failed: int
    invalid: int
    api_calls: int
    #: Rows of people forgotten at their request: neither saved nor pushed.
    skipped: int = 0


class BatchReport(WireModel):
    """The answer to a batch: one row per contact, in order, a summary and the run that pushed them."""

    results: list[BatchRow]
    summary: BatchSummary
    run_id: int | None = None


class RunStarted(WireModel):
    """A sync run started in the background."""

    run_id: int


class RunCounts(WireModel):
    """Records per outcome in a run."""

    created: int
    updated: int
    unchanged: int
    failed: int
    conflicts: int


class RunRecord(WireModel):
    """What a run did to one record."""

    object: str
    record: str
    crm_id: str | None = None
    outcome: RecordOutcome
    category: ErrorCategory | None = None
    message: str | None = None


class RunReport(WireModel):
    """A sync run as it stands (``running`` until it ends) and what it did to each record."""

    run_id: int
    integration: str
    trigger: str
    direction: str
    status: str
    counts: RunCounts
    api_calls: int
    message: str | None = None
    started_at: datetime
    finished_at: datetime | None = None
    records: list[RunRecord] = Field(default_factory=list)


class Problem(WireModel):
    """An error answer: a sentence, and for 422 each refused field with its reason."""

    detail: str
    errors: list[FieldError] = Field(default_factory=list)


class EventRecorded(WireModel):
    """What recording a social event did: ``unchanged`` for a re-delivered one (nothing changed then).

    Attributes:
        action: created, updated or unchanged; ``skipped`` when the event names a person forgotten at their request
            (nothing recorded or queued).
        person: who it belongs to after identity stitching (an email, or a platform and username while anonymous).
        linked_touchpoints: earlier anonymous touchpoints this event joined to the email it gave.
        reason: why it was skipped (``forgotten on 2026-12-07 at your request; not recorded``).
    """

    action: EventAction
    person: PersonRef | None = None
    linked_touchpoints: int = 0
    reason: str | None = None


def _id_as_text(value: Any) -> Any:
    """A local id sent as a JSON number (the API answers ``localId`` as one) is that id; a boolean is no id."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


#: A record named by the CRM's id, its local id (text or a JSON number) or its email.
RecordId = Annotated[
    str, Field(min_length=1, max_length=254), BeforeValidator(_id_as_text),
    WithJsonSchema({"anyOf": [{"type": "string", "minLength": 1, "maxLength": 254}, {"type": "integer"}]}),
]


class EnrichRequest(WireModel):
    """``POST .../contacts/enrich``: which contact, the social profiles to write, and whether to add its history."""

    record_kind: ClassVar[str] = "enrichment"

    contact_id: Annotated[RecordId | None,
                          Field(description="the CRM's id of the contact, its local id or its email")] = None
    email: Annotated[str | None, Field(max_length=254)] = None
    social_profiles: Annotated[list[SocialProfile], Field(max_length=20)] = Field(default_factory=list)
    include_history: Annotated[bool, Field(description="also add the engagement history as a note")] = False

    @model_validator(mode="after")
    def _someone(self) -> Self:
        if not self.contact_id and not self.email:
            raise ValueError("give the contact's contactId or email")
        return self


class Enriched(WireModel):
    """What enriching wrote to the CRM record: the fields changed, the engagement score, the history note."""

    local_id: int
    crm_id: str | None
    action: RecordOutcome
    written: dict[str, Any] = Field(default_factory=dict)
    engagement_score: float | None = None
    history_note_id: str | None = None


class LeadTouchpointsRequest(WireModel):
    """``POST .../leads/attribution``: a lead's touchpoints and campaign, and the model to answer with."""

    record_kind: ClassVar[str] = "lead attribution"

    lead_id: Annotated[RecordId, Field(description="the CRM's id of the lead, its local id or its email")]
    campaign: Annotated[str | None, Field(min_length=1, max_length=120,
                                          description="for the touchpoints that name none")] = None
    touchpoints: Annotated[list[Touchpoint], Field(max_length=1000)] = Field(default_factory=list)
    model: AttributionModel = AttributionModel.LINEAR


class LeadTouchpointsRecorded(WireModel):
    """The lead updated in the CRM, how many touchpoints were new, its score and its attribution."""

    local_id: int
    crm_id: str | None
    action: RecordOutcome
    new_touchpoints: int
    engagement_score: float | None = None
    attribution: LeadAttribution
