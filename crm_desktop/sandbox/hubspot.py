"""HubSpot CRM v3 emulator: tokens, contacts, leads, notes, properties, search, batch writes and rate limits."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from crm_desktop.domain.models import normalise_email
from crm_desktop.sandbox.core import (
    REDACTED,
    FaultKind,
    JSONResponse,
    RollingWindow,
    Sandbox,
    SandboxConfig,
    epoch_ms,
    iso_ms,
    non_negative_int,
    non_negative_number,
    parse_json,
)

logger = logging.getLogger(__name__)

BATCH_INPUT_LIMIT = 100
LIST_PAGE_LIMIT = 100
SEARCH_PAGE_LIMIT = 200
SEARCH_RESULT_CAP = 10_000
SEARCH_MAX_FILTER_GROUPS = 5
SEARCH_MAX_FILTERS_PER_GROUP = 10
SEARCH_MAX_FILTERS = 25
TEN_SECOND_INTERVAL_MS = 10_000
DEFAULT_TEN_SECOND_LIMIT = 100
DEFAULT_DAILY_LIMIT = 250_000
DEFAULT_SEARCH_PER_SECOND_LIMIT = 4
OAUTH_TOKEN_LIFETIME_SECONDS = 1800.0

PROPERTY_TYPES = ("bool", "date", "datetime", "enumeration", "number", "phone_number", "string")
#: Which field types (how the property is shown in HubSpot's UI) each property type may use.
FIELD_TYPES_BY_TYPE: dict[str, tuple[str, ...]] = {
    "bool": ("booleancheckbox",),
    "date": ("date",),
    "datetime": ("date",),
    "enumeration": ("booleancheckbox", "checkbox", "radio", "select"),
    "number": ("number", "calculation_equation"),
    "phone_number": ("phonenumber",),
    "string": ("text", "textarea", "html", "file", "phonenumber"),
}
FIELD_TYPES = tuple(sorted({name for names in FIELD_TYPES_BY_TYPE.values() for name in names}))

SEARCH_OPERATORS = (
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
)
_NEGATED_OPERATORS = {"NEQ": "EQ", "NOT_IN": "IN", "NOT_CONTAINS_TOKEN": "CONTAINS_TOKEN"}

DEFAULT_SCOPES = (
    "oauth",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
    "crm.objects.leads.read",
    "crm.objects.leads.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
)

_AUTH_MISSING_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more "
    "details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
_MISSING_SCOPES_MESSAGE = (
    "This app hasn't been granted all required scopes to make this call. "
    "Read more about required scopes here: https://developers.hubspot.com/scopes."
)
_TOKEN_INFO_PREFIX = "/oauth/v1/access-tokens/"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
_TOKEN_SPLIT = re.compile(r"[^0-9a-z]+")
_EPOCH_MS = re.compile(r"^-?\d+$")


# -- time ---------------------------------------------------------------------------------------------------------
def parse_instant(value: Any) -> datetime:
    """Read epoch milliseconds (number or digit string) or ISO 8601 text as an aware UTC datetime.

    Raises:
        ValueError: when the value is neither.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError("not a timestamp")
    if isinstance(value, int | float):
        return _EPOCH + timedelta(milliseconds=value)
    text = str(value).strip()
    if _EPOCH_MS.match(text):
        return _EPOCH + timedelta(milliseconds=int(text))
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# -- errors -------------------------------------------------------------------------------------------------------
class HubSpotError(Exception):
    """A refusal with HubSpot's error envelope; whole-request (``body``) or one batch input (``item``)."""

    def __init__(
        self,
        status: int,
        message: str,
        category: str | None = "VALIDATION_ERROR",
        *,
        errors: list[dict[str, Any]] | None = None,
        context: dict[str, list[str]] | None = None,
        extra: dict[str, Any] | None = None,
        sub_category: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category
        self.sub_category = sub_category
        self.errors = errors
        self.context = context
        self.extra = extra or {}

    def with_context(self, context: dict[str, list[str]]) -> HubSpotError:
        merged = dict(self.context or {})
        merged.update(context)
        self.context = merged
        return self

    def item(self) -> dict[str, Any]:
        """The entry of a batch response's ``errors`` list."""
        data: dict[str, Any] = {"status": "error", "category": self.category}
        if self.sub_category is not None:
            data["subCategory"] = self.sub_category
        data["message"] = self.message
        if self.errors:
            data["errors"] = self.errors
        data["context"] = self.context or {}
        return data

    def body(self) -> dict[str, Any]:
        """The whole-request error body."""
        data: dict[str, Any] = {"status": "error", "message": self.message, "correlationId": str(uuid.uuid4())}
        if self.category is not None:
            data["category"] = self.category
        if self.sub_category is not None:
            data["subCategory"] = self.sub_category
        if self.errors:
            data["errors"] = self.errors
        if self.context:
            data["context"] = self.context
        data.update(self.extra)
        return data

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


@dataclass(frozen=True)
class PropertyProblem:
    """One refused property value, as HubSpot lists it inside a validation message."""

    name: str
    error: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"isValid": False, "message": self.message, "error": self.error, "name": self.name}


def validation_error(problems: list[PropertyProblem]) -> HubSpotError:
    """HubSpot's 400 for property values it refuses: the problems as compact JSON inside the message."""
    listed = json.dumps([p.to_json() for p in problems], separators=(",", ":"), ensure_ascii=False)
    return HubSpotError(
        400,
        f"Property values were not valid: {listed}",
        "VALIDATION_ERROR",
        errors=[{"message": p.message, "code": p.error, "context": {"propertyName": [p.name]}} for p in problems],
    )


# -- schema -------------------------------------------------------------------------------------------------------
@dataclass
class PropertyDefinition:
    """One property of an object type, shaped like ``GET /crm/v3/properties/{objectType}`` results."""

    name: str
    label: str
    type: str
    field_type: str
    group_name: str
    description: str = ""
    options: list[dict[str, Any]] = field(default_factory=list)
    display_order: int = -1
    hubspot_defined: bool = True
    read_only_value: bool = False
    has_unique_value: bool = False
    form_field: bool = True
    created_at: str = ""
    updated_at: str = ""

    @property
    def multiple(self) -> bool:
        """A multiple-checkbox enumeration stores several option values joined by ``;``."""
        return self.type == "enumeration" and self.field_type == "checkbox"

    def option_values(self) -> list[str]:
        return [str(option["value"]) for option in self.options]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "updatedAt": self.updated_at,
            "createdAt": self.created_at,
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": [dict(option) for option in self.options],
            "displayOrder": self.display_order,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": self.has_unique_value,
            "hidden": False,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only_value,
            },
            "formField": self.form_field,
            "dataSensitivity": "non_sensitive",
        }
        if self.hubspot_defined:
            data["hubspotDefined"] = True
        return data


def _options(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [
        {"label": label, "value": value, "displayOrder": order, "hidden": False}
        for order, (label, value) in enumerate(pairs)
    ]


LIFECYCLE_STAGES = _options(
    ("Subscriber", "subscriber"),
    ("Lead", "lead"),
    ("Marketing Qualified Lead", "marketingqualifiedlead"),
    ("Sales Qualified Lead", "salesqualifiedlead"),
    ("Opportunity", "opportunity"),
    ("Customer", "customer"),
    ("Evangelist", "evangelist"),
    ("Other", "other"),
)


def lifecycle_date_property(stage: str) -> str:
    """The read-only contact property HubSpot stamps when the contact first enters a lifecycle stage."""
    return f"hs_lifecyclestage_{stage}_date"


LEAD_STATUSES = _options(
    ("New", "NEW"),
    ("Open", "OPEN"),
    ("In Progress", "IN_PROGRESS"),
    ("Open Deal", "OPEN_DEAL"),
    ("Unqualified", "UNQUALIFIED"),
    ("Attempted to Contact", "ATTEMPTED_TO_CONTACT"),
    ("Connected", "CONNECTED"),
    ("Bad Timing", "BAD_TIMING"),
)
SENTIMENTS = _options(("Positive", "positive"), ("Neutral", "neutral"), ("Negative", "negative"), ("Mixed", "mixed"))
LEAD_PIPELINE_STAGES = _options(
    ("New", "new-stage-id"),
    ("Attempting", "attempting-stage-id"),
    ("Connected", "connected-stage-id"),
    ("Qualified", "qualified-stage-id"),
    ("Disqualified", "unqualified-stage-id"),
)


def _standard(
    name: str,
    label: str,
    type_: str,
    field_type: str,
    group: str,
    *,
    options: list[dict[str, Any]] | None = None,
    read_only: bool = False,
    unique: bool = False,
    description: str = "",
) -> PropertyDefinition:
    return PropertyDefinition(
        name=name,
        label=label,
        type=type_,
        field_type=field_type,
        group_name=group,
        description=description,
        options=list(options or []),
        read_only_value=read_only,
        has_unique_value=unique,
        form_field=not read_only,
    )


def _custom(
    name: str, label: str, type_: str, field_type: str, group: str, options: list[dict[str, Any]] | None = None
) -> PropertyDefinition:
    definition = _standard(name, label, type_, field_type, group, options=options)
    definition.hubspot_defined = False
    return definition


def _record_stamps(created: str, modified: str, group: str) -> list[PropertyDefinition]:
    """The read-only create date, last-modified date and record ID of every object type."""
    return [
        _standard(created, "Create Date", "datetime", "date", group, read_only=True),
        _standard(modified, "Last Modified Date", "datetime", "date", group, read_only=True),
        _standard("hs_object_id", "Record ID", "number", "number", group, read_only=True, unique=True),
    ]


def standard_properties(object_name: str) -> list[PropertyDefinition]:
    """The HubSpot-defined properties the sandbox knows for an object type."""
    if object_name == "contacts":
        group = "contactinformation"
        return [
            _standard("email", "Email", "string", "text", group, description="A contact's email address"),
            _standard("firstname", "First Name", "string", "text", group),
            _standard("lastname", "Last Name", "string", "text", group),
            _standard("company", "Company Name", "string", "text", group),
            _standard("jobtitle", "Job Title", "string", "text", group),
            _standard("phone", "Phone Number", "string", "phonenumber", group),
            _standard("mobilephone", "Mobile Phone Number", "string", "phonenumber", group),
            _standard("website", "Website URL", "string", "text", group),
            _standard("city", "City", "string", "text", group),
            _standard("country", "Country/Region", "string", "text", group),
            _standard("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", group, options=LIFECYCLE_STAGES),
            _standard("hs_lead_status", "Lead Status", "enumeration", "radio", group, options=LEAD_STATUSES),
            _standard("twitterhandle", "Twitter Username", "string", "text", "socialmediainformation"),
            # Set by merges: the emails and record ids of the contacts merged into this one, ';'-separated.
            _standard("hs_additional_emails", "Additional email addresses", "enumeration", "checkbox", group,
                      read_only=True),
            _standard("hs_merged_object_ids", "Merged Contact IDs", "enumeration", "checkbox", group, read_only=True),
            *_record_stamps("createdate", "lastmodifieddate", group),
            *(
                _standard(lifecycle_date_property(str(stage["value"])), f"Became a {stage['label']} Date",
                          "datetime", "date", "contact_activity", read_only=True)
                for stage in LIFECYCLE_STAGES
            ),
        ]
    if object_name == "leads":
        group = "leadinformation"
        return [
            _standard("hs_lead_name", "Lead name", "string", "text", group),
            _standard(
                "hs_lead_type",
                "Lead type",
                "enumeration",
                "select",
                group,
                options=_options(
                    ("New Business", "NEW_BUSINESS"), ("Upsell", "UPSELL"), ("Re-attempting", "RE_ATTEMPTING")
                ),
            ),
            _standard(
                "hs_lead_label",
                "Lead label",
                "enumeration",
                "select",
                group,
                options=_options(("Cold", "COLD"), ("Warm", "WARM"), ("Hot", "HOT")),
            ),
            _standard("hs_pipeline", "Pipeline", "string", "text", group),
            _standard("hs_pipeline_stage", "Lead stage", "enumeration", "select", group, options=LEAD_PIPELINE_STAGES),
            *_record_stamps("hs_createdate", "hs_lastmodifieddate", group),
        ]
    if object_name == "notes":
        group = "engagement"
        return [
            _standard("hs_note_body", "Note body", "string", "html", group),
            _standard("hs_timestamp", "Activity date", "datetime", "date", group),
            _standard("hubspot_owner_id", "Activity assigned to", "string", "text", group),
            _standard("hs_attachment_ids", "Attached file IDs", "string", "text", group),
            *_record_stamps("hs_createdate", "hs_lastmodifieddate", group),
        ]
    if object_name == "deals":
        group = "dealinformation"
        pipeline = DEAL_PIPELINES[0]
        stages = [(str(s["label"]), str(s["id"])) for s in pipeline["stages"]]
        return [
            _standard("dealname", "Deal Name", "string", "text", group),
            _standard("amount", "Amount", "number", "number", group),
            _standard("deal_currency_code", "Currency", "enumeration", "select", group,
                      options=_options(("Euro", "EUR"), ("US Dollar", "USD"), ("British Pound", "GBP"))),
            _standard("pipeline", "Pipeline", "enumeration", "select", group,
                      options=_options((str(pipeline["label"]), str(pipeline["id"])))),
            _standard("dealstage", "Deal Stage", "enumeration", "radio", group, options=_options(*stages)),
            _standard("closedate", "Close Date", "datetime", "date", group),
            *_record_stamps("createdate", "hs_lastmodifieddate", group),
        ]
    raise KeyError(object_name)


def _stage(stage_id: str, label: str, order: int, probability: str, closed: bool = False) -> dict[str, Any]:
    return {"id": stage_id, "label": label, "displayOrder": order, "archived": False,
            "metadata": {"isClosed": "true" if closed else "false", "probability": probability}}


#: A portal's deal pipelines (``GET /crm/v3/pipelines/deals``): HubSpot's default Sales Pipeline. Metadata values
#: are strings, as HubSpot sends them.
DEAL_PIPELINES: tuple[dict[str, Any], ...] = (
    {
        "id": "default",
        "label": "Sales Pipeline",
        "displayOrder": 0,
        "archived": False,
        "stages": [
            _stage("appointmentscheduled", "Appointment Scheduled", 0, "0.2"),
            _stage("qualifiedtobuy", "Qualified To Buy", 1, "0.4"),
            _stage("presentationscheduled", "Presentation Scheduled", 2, "0.6"),
            _stage("decisionmakerboughtin", "Decision Maker Bought-In", 3, "0.8"),
            _stage("contractsent", "Contract Sent", 4, "0.9"),
            _stage("closedwon", "Closed Won", 5, "1.0", closed=True),
            _stage("closedlost", "Closed Lost", 6, "0.0", closed=True),
        ],
    },
)


def social_contact_properties() -> list[PropertyDefinition]:
    """The seed's custom social properties on contacts (present by default, see the constructor)."""
    group = "socialmediainformation"
    return [
        _custom("twitter_username", "Twitter username", "string", "text", group),
        _custom("twitter_followers", "Twitter followers", "number", "number", group),
        _custom("instagram_username", "Instagram username", "string", "text", group),
        _custom("instagram_followers", "Instagram followers", "number", "number", group),
        _custom("linkedin_username", "LinkedIn username", "string", "text", group),
        _custom("linkedin_url", "LinkedIn URL", "string", "text", group),
        _custom("social_touchpoints", "Social touchpoints", "string", "textarea", group),
        _custom("social_followers", "Social followers", "number", "number", group),
        _custom("social_engagement_score", "Social engagement score", "number", "number", group),
        _custom("social_sentiment", "Social sentiment", "enumeration", "select", group, SENTIMENTS),
    ]


PROPERTY_GROUPS: dict[str, tuple[str, ...]] = {
    "contacts": ("contactinformation", "socialmediainformation", "emailinformation", "analyticsinformation"),
    "leads": ("leadinformation",),
    "notes": ("engagement",),
    "deals": ("dealinformation",),
}


@dataclass(frozen=True)
class ObjectKind:
    """What differs between the CRM object types the sandbox serves."""

    name: str
    type_id: str
    label: str
    created_property: str
    modified_property: str
    default_properties: tuple[str, ...]
    text_properties: tuple[str, ...]
    read_scope: str
    write_scope: str
    schema_read_scope: str
    schema_write_scope: str
    first_id: int
    required_properties: tuple[str, ...] = ()
    needs_association_to: str | None = None


CONTACTS = ObjectKind(
    name="contacts",
    type_id="0-1",
    label="CONTACT",
    created_property="createdate",
    modified_property="lastmodifieddate",
    default_properties=("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    text_properties=("firstname", "lastname", "email", "phone", "mobilephone", "company"),
    read_scope="crm.objects.contacts.read",
    write_scope="crm.objects.contacts.write",
    schema_read_scope="crm.schemas.contacts.read",
    schema_write_scope="crm.schemas.contacts.write",
    first_id=1001,
)
LEADS = ObjectKind(
    name="leads",
    type_id="0-136",
    label="LEAD",
    created_property="hs_createdate",
    modified_property="hs_lastmodifieddate",
    default_properties=("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    text_properties=("hs_lead_name",),
    read_scope="crm.objects.leads.read",
    write_scope="crm.objects.leads.write",
    schema_read_scope="crm.objects.leads.read",
    schema_write_scope="crm.objects.leads.write",
    first_id=30_000_000_001,
    needs_association_to="contacts",
)
NOTES = ObjectKind(
    name="notes",
    type_id="0-46",
    label="NOTE",
    created_property="hs_createdate",
    modified_property="hs_lastmodifieddate",
    default_properties=("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    text_properties=("hs_note_body",),
    read_scope="crm.objects.contacts.read",
    write_scope="crm.objects.contacts.write",
    schema_read_scope="crm.schemas.contacts.read",
    schema_write_scope="crm.schemas.contacts.write",
    first_id=40_000_000_001,
    required_properties=("hs_timestamp",),
)
DEALS = ObjectKind(
    name="deals",
    type_id="0-3",
    label="DEAL",
    created_property="createdate",
    modified_property="hs_lastmodifieddate",
    default_properties=("amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate",
                        "hs_object_id", "pipeline"),
    text_properties=("dealname",),
    read_scope="crm.objects.deals.read",
    write_scope="crm.objects.deals.write",
    schema_read_scope="crm.schemas.deals.read",
    schema_write_scope="crm.schemas.deals.write",
    first_id=50_000_000_001,
    required_properties=("dealname", "dealstage"),
)
OBJECT_KINDS: dict[str, ObjectKind] = {kind.name: kind for kind in (CONTACTS, LEADS, NOTES, DEALS)}
_OBJECT_ALIASES = {
    **{kind.type_id: kind.name for kind in OBJECT_KINDS.values()},
    "deal": "deals",
    "contact": "contacts",
    "lead": "leads",
    "note": "notes",
}


@dataclass(frozen=True)
class AssociationType:
    """A HubSpot-defined association type between two object types (one direction)."""

    type_id: int
    from_object: str
    to_object: str
    label: str
    reverse_label: str


ASSOCIATION_TYPES: dict[int, AssociationType] = {
    202: AssociationType(202, "notes", "contacts", "note_to_contact", "contact_to_note"),
    201: AssociationType(201, "contacts", "notes", "contact_to_note", "note_to_contact"),
    578: AssociationType(578, "leads", "contacts", "lead_to_primary_contact", "contact_to_lead"),
    608: AssociationType(608, "leads", "contacts", "lead_to_contact", "contact_to_lead"),
    3: AssociationType(3, "deals", "contacts", "deal_to_contact", "contact_to_deal"),
    4: AssociationType(4, "contacts", "deals", "contact_to_deal", "deal_to_contact"),
}
LEAD_TO_PRIMARY_CONTACT = 578
LEAD_TO_CONTACT = 608
#: The contact-side type of the contact-lead pair. HubSpot documents the lead-side ids (578, 608); the sandbox
#: numbers this one next to its pair, as HubSpot numbers its other pairs (201/202).
CONTACT_TO_LEAD = 609
#: Associated records one ``v4`` batch read returns per input before it pages (``paging.next.after``).
ASSOCIATION_PAGE_LIMIT = 500


@dataclass(frozen=True)
class AssociationLabel:
    """One entry of a v4 association's ``associationTypes``: HubSpot lists the unlabeled type for every
    association and, alongside it, the labeled one (such as ``Primary``) when there is one."""

    type_id: int
    label: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"category": "HUBSPOT_DEFINED", "typeId": self.type_id, "label": self.label}


#: The v4 types of an association, by the v3 type name the sandbox stores on the record it is read from.
V4_ASSOCIATION_LABELS: dict[str, tuple[AssociationLabel, ...]] = {
    "note_to_contact": (AssociationLabel(202),),
    "contact_to_note": (AssociationLabel(201),),
    "lead_to_contact": (AssociationLabel(LEAD_TO_CONTACT),),
    "lead_to_primary_contact": (
        AssociationLabel(LEAD_TO_CONTACT),
        AssociationLabel(LEAD_TO_PRIMARY_CONTACT, "Primary"),
    ),
    "contact_to_lead": (AssociationLabel(CONTACT_TO_LEAD),),
    "deal_to_contact": (AssociationLabel(3),),
    "contact_to_deal": (AssociationLabel(4),),
}


# -- state --------------------------------------------------------------------------------------------------------
#: The property most searches ask for (a push looks its records up by email): search keeps an index of it.
EMAIL_PROPERTY = "email"


@dataclass
class StoredRecord:
    """One CRM object as the sandbox holds it; property values are strings, as on HubSpot's wire."""

    id: str
    object_name: str
    properties: dict[str, str]
    created_at: datetime
    updated_at: datetime
    archived: bool = False
    archived_at: datetime | None = None
    #: other object type -> {record id: association label}
    associations: dict[str, dict[str, str]] = field(default_factory=dict)
    #: (monotonic time it becomes searchable, the properties search sees then; None once archived)
    search_versions: list[tuple[float, dict[str, str] | None]] = field(default_factory=list)


@dataclass
class AccessToken:
    """A bearer token the sandbox accepts; OAuth tokens expire, the private app token does not."""

    token: str
    issued_at: datetime
    oauth: bool
    lifetime_seconds: float
    expired: bool = False

    def expires_at(self) -> datetime | None:
        return self.issued_at + timedelta(seconds=self.lifetime_seconds) if self.oauth else None

    def is_expired(self, now: datetime) -> bool:
        limit = self.expires_at()
        return self.expired or (limit is not None and now >= limit)


@dataclass(frozen=True)
class SearchFilter:
    """One parsed search filter: the property, the operator and its typed operands."""

    definition: PropertyDefinition
    operator: str
    operands: tuple[Any, ...]


Handler = Callable[[Request], Awaitable[Response]]


class HubSpotSandbox(Sandbox):
    """A stateful HubSpot CRM v3 account (one portal) behind HubSpot's own wire behaviour.

    Attributes:
        portal_id: the HubSpot account (hub) id.
        oauth_mode: whether the pre-issued token is an OAuth access token (it then expires and must be refreshed
            through ``POST /oauth/v1/token``) rather than a private app token.
        private_app_token: the pre-issued bearer token (see :meth:`credentials`).
        client_id, client_secret, refresh_token: the OAuth app and its refresh token.
        scopes: the scopes every token of this sandbox carries.
        ten_second_window: the rolling ten-second request limit (``TEN_SECONDLY_ROLLING``).
        daily_limit: requests allowed per day (portal time zone).
        search_per_second_limit: search requests allowed per second per token.
        token_lifetime_seconds: lifetime of OAuth access tokens.
        search_index_delay_seconds: how long a write takes to become visible to search.
    """

    provider = "hubspot"

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        ten_second_limit: int = DEFAULT_TEN_SECOND_LIMIT,
        daily_limit: int = DEFAULT_DAILY_LIMIT,
        search_per_second_limit: int = DEFAULT_SEARCH_PER_SECOND_LIMIT,
        oauth: bool = False,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        social_properties: bool = True,
        portal_id: int = 48_151_623,
        private_app_token: str | None = None,
        token_lifetime_seconds: float = OAUTH_TOKEN_LIFETIME_SECONDS,
        search_index_delay_seconds: float = 0.0,
        time_zone: str = "US/Eastern",
    ) -> None:
        super().__init__(config)
        self.portal_id = portal_id
        self.app_id = 3_100_000 + portal_id % 100_000
        self.oauth_mode = oauth
        self.scopes = list(scopes)
        self.time_zone = time_zone
        self.token_lifetime_seconds = float(token_lifetime_seconds)
        self.search_index_delay_seconds = float(search_index_delay_seconds)
        self.ten_second_window = RollingWindow(ten_second_limit, TEN_SECOND_INTERVAL_MS / 1000, self.clock)
        self.daily_limit = daily_limit
        self.search_per_second_limit = search_per_second_limit
        self._daily_used = 0
        self._daily_day: date | None = None
        self._search_windows: dict[str, RollingWindow] = {}

        self.client_id = str(uuid.uuid4())
        self.client_secret = str(uuid.uuid4())
        self.refresh_token = str(uuid.uuid4())
        self._tokens: dict[str, AccessToken] = {}
        if oauth:
            self.private_app_token = self._issue_access_token()
        else:
            self.private_app_token = private_app_token or f"pat-na1-{uuid.uuid4()}"
            self._tokens[self.private_app_token] = AccessToken(
                self.private_app_token, self._wall_now(), oauth=False, lifetime_seconds=0.0
            )

        created = iso_ms(self.clock.now())
        self._properties: dict[str, dict[str, PropertyDefinition]] = {}
        for name in OBJECT_KINDS:
            definitions = standard_properties(name)
            if name == "contacts" and social_properties:
                definitions += social_contact_properties()
            for definition in definitions:
                definition.created_at = definition.updated_at = created
            self._properties[name] = {d.name: d for d in definitions}
        self._records: dict[str, dict[str, StoredRecord]] = {name: {} for name in OBJECT_KINDS}
        #: Per object: lower-cased email -> ids of the records any of whose search versions held it (a superset:
        #: search still checks each candidate's version visible at the time).
        self._search_emails: dict[str, dict[str, set[str]]] = {name: {} for name in OBJECT_KINDS}
        self._next_id: dict[str, int] = {kind.name: kind.first_id for kind in OBJECT_KINDS.values()}
        self._email_index: dict[str, str] = {}
        if self.config.contacts:
            self._seed_generated_people(self.config.contacts)

    # -- Sandbox contract ------------------------------------------------------------------------------------------
    def credentials(self) -> dict[str, Any]:
        """The private app token; in OAuth mode also the OAuth app and its refresh token."""
        if not self.oauth_mode:
            return {"token": self.private_app_token}
        return {
            "token": self.private_app_token,
            "refresh_token": self.refresh_token,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "expires_in": int(self.token_lifetime_seconds),
        }

    def summary(self) -> dict[str, Any]:
        counts = {name: sum(1 for r in records.values() if not r.archived) for name, records in self._records.items()}
        counts["archived"] = sum(1 for records in self._records.values() for r in records.values() if r.archived)
        return counts

    def expire_tokens(self) -> None:
        """Expire every OAuth access token; the private app token keeps working (it never expires)."""
        for token in self._tokens.values():
            if token.oauth:
                token.expired = True

    def apply_config(self, changes: dict[str, Any]) -> None:
        """Run-time settings: ``ten_second_limit``, ``daily_limit``, ``search_per_second_limit``,
        ``token_lifetime_seconds``, ``search_index_delay_seconds``, and ``scopes`` (those the tokens carry; a call
        needing another is refused with 403 ``MISSING_SCOPES``).

        Every value is checked before any is applied, so a refused change leaves the settings as they were.

        Raises:
            ValueError: naming a setting whose value is not a number of at least 0 (limits: a whole number), or
                scopes that are not a list of scope names.
        """
        limits = {
            key: non_negative_int(changes[key], key)
            for key in ("ten_second_limit", "daily_limit", "search_per_second_limit")
            if key in changes
        }
        durations = {
            key: non_negative_number(changes[key], key)
            for key in ("token_lifetime_seconds", "search_index_delay_seconds")
            if key in changes
        }
        scopes = changes.get("scopes")
        if "scopes" in changes and (
            not isinstance(scopes, list) or not all(isinstance(scope, str) and scope for scope in scopes)
        ):
            raise ValueError("scopes must be a list of scope names")
        if isinstance(scopes, list):
            self.scopes = list(scopes)
        if "ten_second_limit" in limits:
            self.ten_second_window.limit = limits["ten_second_limit"]
        if "daily_limit" in limits:
            self.daily_limit = limits["daily_limit"]
        if "search_per_second_limit" in limits:
            self.search_per_second_limit = limits["search_per_second_limit"]
            for window in self._search_windows.values():
                window.limit = self.search_per_second_limit
        if "token_lifetime_seconds" in durations:
            self.token_lifetime_seconds = durations["token_lifetime_seconds"]
        if "search_index_delay_seconds" in durations:
            self.search_index_delay_seconds = durations["search_index_delay_seconds"]

    def loggable_path(self, path: str) -> str:
        """The token-info path carries the access token itself: the request log keeps it out."""
        if path.startswith(_TOKEN_INFO_PREFIX) and len(path) > len(_TOKEN_INFO_PREFIX):
            return _TOKEN_INFO_PREFIX + REDACTED
        return path

    def fault_response(self, kind: FaultKind) -> Response:
        if kind is FaultKind.RATE_LIMIT:
            response = self._rate_limit_error("TEN_SECONDLY_ROLLING").response()
            self._add_rate_headers(response, remaining=0)
            return response
        if self.random.random() < 0.5:
            error = HubSpotError(502, "Bad Gateway", "BAD_GATEWAY")
        else:
            error = HubSpotError(
                503, "The service is temporarily unavailable, please try again later.", "SERVICE_UNAVAILABLE"
            )
        return error.response()

    def edit_record(self, object_name: str, record_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """A salesperson's edit in HubSpot's UI: ``{"properties": {...}}`` or flat properties."""
        kind = OBJECT_KINDS[_OBJECT_ALIASES.get(object_name, object_name)]
        record = self._records[kind.name].get(record_id)
        if record is None or record.archived:
            raise KeyError(f"{kind.name}/{record_id}")
        nested = changes.get("properties")
        properties = nested if isinstance(nested, dict) else changes
        try:
            self._update(kind, record, properties, inject_faults=False)
        except HubSpotError as exc:
            raise ValueError(exc.message) from None
        return self._record_json(kind, record, all_properties=True)

    def salesperson_action(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """``lifecycle`` ``{"email", "stage"}`` (default ``customer``): the rep moves the contact's lifecycle stage
        forward, as HubSpot's UI does; HubSpot stamps ``hs_lifecyclestage_<stage>_date`` the first time.

        Raises:
            KeyError: another action, or no contact with that email.
            ValueError: an unknown stage, or a move backwards (HubSpot only moves a lifecycle forward).
        """
        if action != "lifecycle":
            raise KeyError(f"no salesperson action {action!r} in HubSpot (lifecycle)")
        email = str(payload.get("email") or "").strip().lower()
        if not email:
            raise ValueError("lifecycle needs the contact's email")
        record_id = self._email_index.get(email)
        record = self._records["contacts"].get(record_id or "")
        if record is None or record.archived:
            raise KeyError(f"contact with email {email}")
        stage = str(payload.get("stage") or "customer")
        order = [str(option["value"]) for option in LIFECYCLE_STAGES]
        if stage not in order:
            raise ValueError(f"{stage!r} is not a lifecycle stage ({', '.join(order)})")
        current = record.properties.get("lifecyclestage")
        if current in order and order.index(current) > order.index(stage):
            raise ValueError(f"the lifecycle stage only moves forward: {current} is past {stage}")
        amount = payload.get("amount")
        if amount is not None:
            if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
                raise ValueError("amount must be a non-negative number")
            currency = str(payload.get("currency") or "USD")
            name = " ".join(str(record.properties.get(p) or "") for p in ("firstname", "lastname")).strip()
            try:
                values = self._validated_values(DEALS, {
                    "dealname": f"{name or email} deal", "amount": str(amount), "deal_currency_code": currency,
                    "dealstage": "closedwon", "closedate": iso_ms(self.clock.now()),
                }, creating=True)
            except HubSpotError as exc:
                raise ValueError(exc.message) from None
            self._insert(DEALS, values, [(ASSOCIATION_TYPES[3], record)])
        return self.edit_record("contacts", record.id, {"lifecyclestage": stage})

    async def _list_pipelines(self, request: Request) -> Response:
        """``GET /crm/v3/pipelines/deals``: the portal's deal pipelines and their stages."""
        if self._kind(request) is not DEALS:
            raise HubSpotError(400, f"Unable to infer object type from: {request.path_params['object_type']}",
                               "VALIDATION_ERROR")
        now = self._properties["deals"]["createdate"].created_at
        results = [
            {**pipeline, "createdAt": now, "updatedAt": now,
             "stages": [{**stage, "createdAt": now, "updatedAt": now} for stage in pipeline["stages"]]}
            for pipeline in DEAL_PIPELINES
        ]
        return JSONResponse({"results": results})

    # -- seeding ---------------------------------------------------------------------------------------------------
    def seed_contacts(self, rows: Iterable[dict[str, Any]]) -> list[str]:
        """Add contacts directly (no rate limits, no faults); return their ids.

        Raises:
            ValueError: when a row has a property value HubSpot would refuse or a duplicate email.
        """
        ids = []
        for row in rows:
            try:
                values = self._validated_values(CONTACTS, row, creating=True)
                self._check_unique(CONTACTS, values, None)
            except HubSpotError as exc:
                raise ValueError(exc.message) from None
            ids.append(self._insert(CONTACTS, values, []).id)
        return ids

    def _seed_generated_people(self, count: int) -> None:
        from crm_desktop.sandbox.data import generate_people

        for person in generate_people(count, self.config.seed):
            contact_id = self.seed_contacts([self._person_properties(person)])[0]
            if person.is_lead:
                values = self._validated_values(LEADS, self._lead_properties(person), creating=True)
                link = (ASSOCIATION_TYPES[LEAD_TO_PRIMARY_CONTACT], self._records["contacts"][contact_id])
                self._insert(LEADS, values, [link])
        logger.info("HubSpot sandbox seeded with %d contacts", count)

    def _person_properties(self, person: Any) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "email": person.email,
            "firstname": person.first_name,
            "lastname": person.last_name,
            "company": person.company,
            "website": person.website,
            "phone": person.phone,
            "jobtitle": person.job_title,
            "lifecyclestage": person.lifecycle,
        }
        if person.is_lead:
            properties["hs_lead_status"] = _HUBSPOT_LEAD_STATUS.get(_plain(person.lead_status), "NEW")
        defined = self._properties["contacts"]
        social: dict[str, Any] = {
            "social_followers": sum(int(p.followers) for p in person.social_profiles),
            "social_engagement_score": person.engagement_score,
            "social_sentiment": _plain(person.sentiment),
        }
        for profile in person.social_profiles:
            platform = _plain(profile.platform)
            if platform == "twitter":
                social["twitter_username"] = profile.username
                properties["twitterhandle"] = profile.username
            elif platform == "instagram":
                social["instagram_username"] = profile.username
            elif platform == "linkedin":
                social["linkedin_url"] = profile.url or f"https://www.linkedin.com/in/{profile.username}"
        properties.update({name: value for name, value in social.items() if name in defined})
        return {name: value for name, value in properties.items() if value not in (None, "")}

    @staticmethod
    def _lead_properties(person: Any) -> dict[str, Any]:
        score = float(person.engagement_score or 0)
        return {
            "hs_lead_name": f"{person.first_name} {person.last_name}".strip() or person.email,
            "hs_lead_type": "NEW_BUSINESS",
            "hs_lead_label": "HOT" if score >= 70 else "WARM" if score >= 40 else "COLD",
            "hs_pipeline": "lead-pipeline-id",
            "hs_pipeline_stage": _LEAD_STAGE.get(_plain(person.lead_status), "new-stage-id"),
        }

    # -- routing ---------------------------------------------------------------------------------------------------
    def api_routes(self) -> list[BaseRoute]:
        api = self._api
        objects = "/crm/v3/objects/{object_type}"
        return [
            Route("/oauth/v1/token", self._oauth_token, methods=["POST"]),
            Route(_TOKEN_INFO_PREFIX + "{token}", self._access_token_info, methods=["GET"]),
            Route("/oauth/v2/private-apps/get/access-token-info", self._private_app_token_info, methods=["POST"]),
            Route("/account-info/v3/details", api(self._account_details, "account"), methods=["GET"]),
            Route("/crm/v3/properties/{object_type}", api(self._list_properties, "schema_read"), methods=["GET"]),
            Route("/crm/v3/properties/{object_type}", api(self._create_property, "schema_write"), methods=["POST"]),
            Route("/crm/v3/properties/{object_type}/{name}", api(self._get_property, "schema_read"), methods=["GET"]),
            Route(f"{objects}/search", api(self._search, "read", search=True), methods=["POST"]),
            Route(f"{objects}/batch/read", api(self._batch_read, "read"), methods=["POST"]),
            Route(f"{objects}/batch/create", api(self._batch_create, "write"), methods=["POST"]),
            Route(f"{objects}/batch/update", api(self._batch_update, "write"), methods=["POST"]),
            Route(f"{objects}/batch/upsert", api(self._batch_upsert, "write"), methods=["POST"]),
            Route(f"{objects}/batch/archive", api(self._batch_archive, "write"), methods=["POST"]),
            Route(f"{objects}/merge", api(self._merge_records, "write"), methods=["POST"]),
            Route(objects, api(self._list_records, "read"), methods=["GET"]),
            Route(objects, api(self._create_record, "write"), methods=["POST"]),
            Route(f"{objects}/{{record_id}}", api(self._get_record, "read"), methods=["GET"]),
            Route(f"{objects}/{{record_id}}", api(self._update_record, "write"), methods=["PATCH"]),
            Route(f"{objects}/{{record_id}}", api(self._archive_record, "write"), methods=["DELETE"]),
            Route("/crm/v3/pipelines/{object_type}", api(self._list_pipelines, "read"), methods=["GET"]),
            Route(
                "/crm/v4/associations/{from_object_type}/{to_object_type}/batch/read",
                api(self._batch_read_associations, "associations"),
                methods=["POST"],
            ),
        ]

    def _api(self, handler: Handler, access: str, *, search: bool = False) -> Handler:
        """Wrap a handler with authentication, rate limits, scopes, error bodies and rate-limit headers."""

        async def endpoint(request: Request) -> Response:
            try:
                token = self._authenticate(request)
            except HubSpotError as exc:
                return exc.response()
            try:
                self._take_rate_limits(token, search=search)
                self._check_scope(request, access)
                response = await handler(request)
            except HubSpotError as exc:
                response = exc.response()
            self._add_rate_headers(response)
            return response

        return endpoint

    # -- auth ------------------------------------------------------------------------------------------------------
    def _wall_now(self) -> datetime:
        """The sandbox's wall-clock time (moved by ``clock.advance``) without consuming a record timestamp."""
        offset = self.clock.monotonic() - time.monotonic()
        return datetime.now(UTC) + timedelta(seconds=offset)

    def _issue_access_token(self) -> str:
        token = "C" + secrets.token_urlsafe(48)
        self._tokens[token] = AccessToken(
            token, self._wall_now(), oauth=True, lifetime_seconds=self.token_lifetime_seconds
        )
        return token

    def _authenticate(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise HubSpotError(401, _AUTH_MISSING_MESSAGE, "INVALID_AUTHENTICATION")
        grant = self._tokens.get(token)
        if grant is None:
            raise HubSpotError(401, _AUTH_MISSING_MESSAGE, "INVALID_AUTHENTICATION")
        now = self._wall_now()
        if self.take_fault(FaultKind.TOKEN_EXPIRY, request.url.path):
            self.expire_tokens()
            raise self._expired_error(now, now)
        if grant.is_expired(now):
            expired_at = grant.expires_at() if not grant.expired else None
            raise self._expired_error(now, expired_at or now)
        return token

    @staticmethod
    def _expired_error(now: datetime, expired_at: datetime) -> HubSpotError:
        seconds = max(0, int((now - expired_at).total_seconds()))
        if seconds >= 3600:
            ago = f"{seconds // 3600} hour(s)"
        elif seconds >= 60:
            ago = f"{seconds // 60} minute(s)"
        else:
            ago = f"{seconds} second(s)"
        return HubSpotError(401, f"The OAuth token used to make this call expired {ago} ago.", "EXPIRED_AUTHENTICATION")

    def _check_scope(self, request: Request, access: str) -> None:
        """Refuse a token without the scope the call needs (reading associations: read on both object types)."""
        if access == "account":
            return
        if access == "associations":
            needs = [("from_object_type", "read"), ("to_object_type", "read")]
        else:
            needs = [("object_type", access)]
        for parameter, level in needs:
            raw = str(request.path_params.get(parameter, ""))
            kind = OBJECT_KINDS.get(_OBJECT_ALIASES.get(raw, raw))
            if kind is None:
                continue  # the handler answers for an unknown object type
            self._require_scope(kind, level)

    def _require_scope(self, kind: ObjectKind, level: str) -> None:
        accepted = {
            "read": (kind.read_scope,),
            "write": (kind.write_scope,),
            "schema_read": (kind.schema_read_scope, kind.read_scope),
            "schema_write": (kind.schema_write_scope,),
        }[level]
        if any(scope in self.scopes for scope in accepted):
            return
        raise HubSpotError(
            403,
            _MISSING_SCOPES_MESSAGE,
            "MISSING_SCOPES",
            errors=[
                {
                    "message": "One or more of the following scopes are required.",
                    "context": {"requiredGranularScopes": [accepted[0]]},
                }
            ],
            extra={"links": {"scopes": "https://developers.hubspot.com/scopes"}},
        )

    async def _oauth_token(self, request: Request) -> Response:
        form = {key: values[0] for key, values in parse_qs((await request.body()).decode("utf-8", "replace")).items()}

        def refuse(status: str, message: str) -> Response:
            return JSONResponse(
                {"status": status, "message": message, "correlationId": str(uuid.uuid4())}, status_code=400
            )

        grant_type = form.get("grant_type", "")
        if grant_type != "refresh_token":
            return refuse("BAD_GRANT_TYPE", "missing or unsupported grant_type; this sandbox accepts refresh_token")
        if form.get("client_id") != self.client_id:
            return refuse("BAD_CLIENT_ID", "missing or unknown client id")
        if form.get("client_secret") != self.client_secret:
            return refuse("BAD_CLIENT_SECRET", "missing or invalid client secret")
        if form.get("refresh_token") != self.refresh_token:
            return refuse("BAD_REFRESH_TOKEN", "missing or unknown refresh token")
        access_token = self._issue_access_token()
        return JSONResponse(
            {
                "token_type": "bearer",
                "refresh_token": self.refresh_token,
                "access_token": access_token,
                "expires_in": int(self.token_lifetime_seconds),
            }
        )

    def _token_owner(self) -> dict[str, Any]:
        return {"user": "marketing@crm-desktop-sandbox.example", "user_id": 7_000_001}

    async def _access_token_info(self, request: Request) -> Response:
        token = request.path_params["token"]
        grant = self._tokens.get(token)
        now = self._wall_now()
        if grant is None or grant.is_expired(now):
            return HubSpotError(404, "The access token was not found or has expired", "OBJECT_NOT_FOUND").response()
        owner = self._token_owner()
        data: dict[str, Any] = {
            "token": token,
            "user": owner["user"],
            "hub_domain": "crm-desktop-sandbox.example",
            "scopes": list(self.scopes),
            "hub_id": self.portal_id,
            "app_id": self.app_id,
            "user_id": owner["user_id"],
            "token_type": "access",
        }
        limit = grant.expires_at()
        if limit is not None:
            data["expires_in"] = max(0, int((limit - now).total_seconds()))
        return JSONResponse(data)

    async def _private_app_token_info(self, request: Request) -> Response:
        try:
            body = await self._json_object(request)
        except HubSpotError as exc:
            return exc.response()
        grant = self._tokens.get(str(body.get("tokenKey", "")))
        if grant is None or grant.oauth:
            return HubSpotError(404, "The private app token was not found", "OBJECT_NOT_FOUND").response()
        return JSONResponse(
            {
                "userId": self._token_owner()["user_id"],
                "hubId": self.portal_id,
                "appId": self.app_id,
                "scopes": list(self.scopes),
            }
        )

    async def _account_details(self, request: Request) -> Response:
        zone = self._zone()
        offset = self._wall_now().astimezone(zone).utcoffset() or timedelta()
        offset_minutes = int(offset.total_seconds() // 60)
        sign = "-" if offset_minutes < 0 else "+"
        hours, minutes = divmod(abs(offset_minutes), 60)
        return JSONResponse(
            {
                "portalId": self.portal_id,
                "accountType": "STANDARD",
                "timeZone": self.time_zone,
                "companyCurrency": "USD",
                "additionalCurrencies": [],
                "utcOffset": f"{sign}{hours:02d}:{minutes:02d}",
                "utcOffsetMilliseconds": offset_minutes * 60_000,
                "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1",
            }
        )

    # -- rate limits -----------------------------------------------------------------------------------------------
    def _zone(self) -> tzinfo:
        try:
            return ZoneInfo(self.time_zone)
        except ZoneInfoNotFoundError:
            return UTC

    def _roll_daily(self) -> None:
        today = self._wall_now().astimezone(self._zone()).date()
        if today != self._daily_day:
            self._daily_day = today
            self._daily_used = 0

    def _rate_limit_error(self, policy: str) -> HubSpotError:
        messages = {
            "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
            "DAILY": "You have reached your daily limit.",
            "SECONDLY": "You have reached your secondly limit.",
        }
        return HubSpotError(429, messages[policy], None, extra={"errorType": "RATE_LIMIT", "policyName": policy})

    def _take_rate_limits(self, token: str, *, search: bool) -> None:
        self._roll_daily()
        if self._daily_used >= self.daily_limit:
            raise self._rate_limit_error("DAILY")
        if not self.ten_second_window.try_hit():
            raise self._rate_limit_error("TEN_SECONDLY_ROLLING")
        self._daily_used += 1
        if search:
            window = self._search_windows.get(token)
            if window is None:
                window = RollingWindow(self.search_per_second_limit, 1.0, self.clock)
                self._search_windows[token] = window
            if not window.try_hit():
                raise self._rate_limit_error("SECONDLY")

    def _add_rate_headers(self, response: Response, remaining: int | None = None) -> None:
        self._roll_daily()
        window = self.ten_second_window
        response.headers["X-HubSpot-RateLimit-Max"] = str(window.limit)
        response.headers["X-HubSpot-RateLimit-Remaining"] = str(window.remaining() if remaining is None else remaining)
        response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(TEN_SECOND_INTERVAL_MS)
        response.headers["X-HubSpot-RateLimit-Daily"] = str(self.daily_limit)
        response.headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, self.daily_limit - self._daily_used))

    # -- request helpers -------------------------------------------------------------------------------------------
    @staticmethod
    def _kind(request: Request, parameter: str = "object_type") -> ObjectKind:
        raw = request.path_params[parameter]
        kind = OBJECT_KINDS.get(_OBJECT_ALIASES.get(raw, raw))
        if kind is None:
            raise HubSpotError(400, f"Unable to infer object type from: {raw}", "VALIDATION_ERROR")
        return kind

    @staticmethod
    async def _json_object(request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            data = parse_json(raw) if raw else None
        except ValueError as exc:
            raise HubSpotError(400, f"Invalid input JSON: {exc}") from None
        if not isinstance(data, dict):
            raise HubSpotError(400, "Invalid input JSON: expected a JSON object")
        return data

    @staticmethod
    def _names(values: Iterable[Any]) -> list[str]:
        """``properties=a,b&properties=c`` or a JSON list, as one list of names."""
        names: list[str] = []
        for value in values:
            names.extend(part.strip() for part in str(value).split(",") if part.strip())
        return names

    @staticmethod
    def _flag(request: Request, name: str) -> bool:
        return request.query_params.get(name, "false").lower() == "true"

    @staticmethod
    def _inputs(body: dict[str, Any]) -> list[dict[str, Any]]:
        inputs = _list_of_objects(body.get("inputs"), "inputs")
        if len(inputs) > BATCH_INPUT_LIMIT:
            raise HubSpotError(
                400,
                f"Batch input limit exceeded: {len(inputs)} inputs were sent but at most "
                f"{BATCH_INPUT_LIMIT} are allowed per request",
                "VALIDATION_ERROR",
                context={"inputs": [str(len(inputs))]},
            )
        return inputs

    def _find(
        self, kind: ObjectKind, record_id: str, id_property: str | None, *, archived: bool = False
    ) -> StoredRecord:
        record: StoredRecord | None = None
        if id_property in (None, "", "hs_object_id"):
            record = self._records[kind.name].get(str(record_id))
        elif kind is CONTACTS and id_property == "email":
            found = self._email_index.get(str(record_id).strip().lower())
            record = self._records[kind.name].get(found) if found else None
        else:
            definition = self._properties[kind.name].get(str(id_property))
            if definition is None or not definition.has_unique_value:
                raise HubSpotError(
                    400, f"{id_property} is not a unique property of {kind.label} and cannot be used as idProperty"
                )
            record = next(
                (
                    r
                    for r in self._records[kind.name].values()
                    if not r.archived and r.properties.get(definition.name) == str(record_id)
                ),
                None,
            )
        if record is None or record.archived != archived:
            raise HubSpotError(404, "resource not found", "OBJECT_NOT_FOUND")
        return record

    # -- records: read ---------------------------------------------------------------------------------------------
    def _record_json(
        self,
        kind: ObjectKind,
        record: StoredRecord,
        requested: list[str] | None = None,
        *,
        all_properties: bool = False,
        associations: list[str] | None = None,
        snapshot: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        values = record.properties if snapshot is None else snapshot
        defined = self._properties[kind.name]
        if all_properties:
            names = set(values)
        elif requested:
            names = {name for name in requested if name in defined}
        else:
            names = set(kind.default_properties)
        names |= {kind.created_property, kind.modified_property, "hs_object_id"}
        data: dict[str, Any] = {
            "id": record.id,
            "properties": {name: values.get(name) for name in sorted(names)},
            "createdAt": iso_ms(record.created_at),
            "updatedAt": values.get(kind.modified_property, iso_ms(record.updated_at)),
            "archived": record.archived,
        }
        if record.archived_at is not None:
            data["archivedAt"] = iso_ms(record.archived_at)
        if associations:
            linked: dict[str, Any] = {}
            for other in associations:
                other_name = _OBJECT_ALIASES.get(other, other)
                targets = record.associations.get(other_name, {})
                if targets:
                    linked[other_name] = {
                        "results": [{"id": target, "type": label} for target, label in targets.items()]
                    }
            if linked:
                data["associations"] = linked
        return data

    async def _list_records(self, request: Request) -> Response:
        kind = self._kind(request)
        query = request.query_params
        limit = _int_param(query.get("limit"), "limit", default=10, low=1, high=LIST_PAGE_LIMIT)
        after = query.get("after")
        archived = self._flag(request, "archived")
        requested = self._names(query.getlist("properties"))
        associations = self._names(query.getlist("associations"))
        records = [r for r in self._records[kind.name].values() if r.archived == archived]
        start = 0
        if after:
            if not after.isdigit():
                raise HubSpotError(400, f"Invalid after cursor: {after}")
            start = next((i for i, r in enumerate(records) if int(r.id) >= int(after)), len(records))
        page = records[start : start + limit]
        body: dict[str, Any] = {
            "results": [self._record_json(kind, r, requested, associations=associations) for r in page]
        }
        if start + limit < len(records):
            next_after = records[start + limit].id
            body["paging"] = {
                "next": {
                    "after": next_after,
                    "link": f"{self.base_url}/crm/v3/objects/{kind.name}?limit={limit}&after={next_after}",
                }
            }
        return JSONResponse(body)

    async def _get_record(self, request: Request) -> Response:
        kind = self._kind(request)
        query = request.query_params
        record = self._find(
            kind, request.path_params["record_id"], query.get("idProperty"), archived=self._flag(request, "archived")
        )
        requested = self._names(query.getlist("properties"))
        associations = self._names(query.getlist("associations"))
        return JSONResponse(self._record_json(kind, record, requested, associations=associations))

    async def _batch_read(self, request: Request) -> Response:
        kind = self._kind(request)
        started = self.clock.now()
        body = await self._json_object(request)
        inputs = self._inputs(body)
        requested = self._names(body.get("properties") or [])
        id_property = body.get("idProperty")
        archived = bool(body.get("archived", False))
        results = []
        missing = []
        for item in inputs:
            record_id = str(item.get("id", ""))
            try:
                record = self._find(kind, record_id, id_property, archived=archived)
            except HubSpotError as exc:
                if exc.status != 404:
                    raise
                missing.append(record_id)
                continue
            results.append(self._record_json(kind, record, requested))
        errors = []
        if missing:
            errors.append(
                HubSpotError(
                    404,
                    f"Could not get some {kind.label} objects, they may be deleted or not exist. "
                    "Check that ids are valid.",
                    "OBJECT_NOT_FOUND",
                    context={"ids": missing},
                ).item()
            )
        return self._batch_response(results, errors, started)

    # -- associations (v4) -----------------------------------------------------------------------------------------
    async def _batch_read_associations(self, request: Request) -> Response:
        """``POST /crm/v4/associations/{from}/{to}/batch/read``: each input's associated ids with their types.

        An input with nothing associated (or no such record) is reported in ``errors`` as
        ``NO_ASSOCIATIONS_FOUND`` and the answer is then 207; more than :data:`ASSOCIATION_PAGE_LIMIT`
        associations page with ``paging.next.after``, which the next request sends back in the input.
        """
        from_kind = self._kind(request, "from_object_type")
        to_kind = self._kind(request, "to_object_type")
        started = self.clock.now()
        inputs = self._inputs(await self._json_object(request))
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for item in inputs:
            record_id = str(item.get("id", "")).strip()
            record = self._records[from_kind.name].get(record_id)
            linked = record.associations.get(to_kind.name, {}) if record is not None and not record.archived else {}
            targets = sorted(linked.items(), key=lambda pair: int(pair[0]))
            after = item.get("after")
            if after not in (None, ""):
                if not str(after).isdigit():
                    raise HubSpotError(400, f"Invalid after cursor: {after}")
                targets = [pair for pair in targets if int(pair[0]) > int(str(after))]
            if not targets:
                errors.append(self._no_associations(from_kind, to_kind, record_id).item())
                continue
            page = targets[:ASSOCIATION_PAGE_LIMIT]
            result: dict[str, Any] = {
                "from": {"id": record_id},
                "to": [
                    {
                        "toObjectId": int(target_id),
                        "associationTypes": [entry.to_json() for entry in V4_ASSOCIATION_LABELS.get(label, ())],
                    }
                    for target_id, label in page
                ],
            }
            if len(targets) > ASSOCIATION_PAGE_LIMIT:
                result["paging"] = {"next": {"after": page[-1][0]}}
            results.append(result)
        return self._batch_response(results, errors, started)

    @staticmethod
    def _no_associations(from_kind: ObjectKind, to_kind: ObjectKind, record_id: str) -> HubSpotError:
        source, target = from_kind.label.lower(), to_kind.label.lower()
        return HubSpotError(
            404,
            f"No {target} is associated with {source} {record_id}.",
            "OBJECT_NOT_FOUND",
            sub_category="crm.associations.NO_ASSOCIATIONS_FOUND",
            context={"fromObjectId": [record_id], "fromObjectType": [source], "toObjectType": [target]},
        )

    # -- records: write --------------------------------------------------------------------------------------------
    def _validated_values(self, kind: ObjectKind, raw: Any, *, creating: bool) -> dict[str, str | None]:
        """Check property values as HubSpot does; return the stored (string) form, ``None`` to clear.

        Raises:
            HubSpotError: 400 VALIDATION_ERROR listing every refused value.
        """
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise HubSpotError(400, "Invalid input JSON: properties must be an object")
        defined = self._properties[kind.name]
        values: dict[str, str | None] = {}
        problems: list[PropertyProblem] = []
        for name, value in raw.items():
            definition = defined.get(name)
            if definition is None:
                message = f'Property "{name}" does not exist'
                problems.append(PropertyProblem(name, "PROPERTY_DOESNT_EXIST", message))
                continue
            if definition.read_only_value:
                message = f"{name} is a read only property; its value cannot be set."
                problems.append(PropertyProblem(name, "READ_ONLY_VALUE", message))
                continue
            try:
                values[name] = _stored_value(definition, value)
            except PropertyValueError as exc:
                problems.append(PropertyProblem(name, exc.code, str(exc)))
        if creating:
            for name in kind.required_properties:
                if not values.get(name) and not any(p.name == name for p in problems):
                    problems.append(PropertyProblem(name, "REQUIRED_PROPERTY", f"{name} is required"))
        if problems:
            raise validation_error(problems)
        return values

    def _injected_invalid(self, values: dict[str, str | None]) -> HubSpotError:
        """The ``invalid_record`` fault: refuse the record as HubSpot refuses a bad value."""
        if values.get("email"):
            problem = PropertyProblem("email", "INVALID_EMAIL", f"Email address {values['email']} is invalid")
        else:
            name = next(iter(values), "hs_object_id")
            problem = PropertyProblem(name, "INVALID_PROPERTY_VALUE", f"{values.get(name)} is not a valid value")
        return validation_error([problem])

    def _check_unique(self, kind: ObjectKind, values: dict[str, str | None], record_id: str | None) -> None:
        if kind is not CONTACTS or not values.get("email"):
            return
        existing = self._email_index.get(str(values["email"]).lower())
        if existing is not None and existing != record_id:
            raise HubSpotError(409, f"Contact already exists. Existing ID: {existing}", "CONFLICT")

    def _validated_associations(self, kind: ObjectKind, raw: Any) -> list[tuple[AssociationType, StoredRecord]]:
        if raw in (None, []):
            links: list[tuple[AssociationType, StoredRecord]] = []
        elif not isinstance(raw, list):
            raise HubSpotError(400, "Invalid input JSON: associations must be a list")
        else:
            links = []
            for item in raw:
                target = item.get("to") if isinstance(item, dict) else None
                types = item.get("types") if isinstance(item, dict) else None
                if not isinstance(target, dict) or "id" not in target or not isinstance(types, list) or not types:
                    raise HubSpotError(400, "Invalid input JSON: each association needs to.id and types")
                for association in types:
                    type_id = association.get("associationTypeId") if isinstance(association, dict) else None
                    category = association.get("associationCategory") if isinstance(association, dict) else None
                    atype = ASSOCIATION_TYPES.get(type_id) if isinstance(type_id, int) else None
                    if atype is None or atype.from_object != kind.name or category != "HUBSPOT_DEFINED":
                        raise HubSpotError(
                            400,
                            f"association type id {type_id} ({category}) does not exist for {kind.label} objects",
                        )
                    other = self._records[atype.to_object].get(str(target["id"]))
                    if other is None or other.archived:
                        raise HubSpotError(
                            400,
                            f"Error creating {kind.label}. Some of the object ids in the associations do not exist: "
                            f"{target['id']}",
                            context={"ids": [str(target["id"])]},
                        )
                    links.append((atype, other))
        if kind.needs_association_to and not any(a.to_object == kind.needs_association_to for a, _ in links):
            raise HubSpotError(
                400,
                f"{kind.label} objects must be created with an association to a "
                f"{OBJECT_KINDS[kind.needs_association_to].label.lower()}",
                "VALIDATION_ERROR",
            )
        return links

    def _write_search_version(self, record: StoredRecord) -> None:
        now = self.clock.monotonic()
        snapshot = None if record.archived else dict(record.properties)
        versions = record.search_versions
        versions.append((now + self.search_index_delay_seconds, snapshot))
        email = snapshot.get(EMAIL_PROPERTY) if snapshot else None
        if email:
            self._search_emails[record.object_name].setdefault(email.strip().lower(), set()).add(record.id)
        visible = [i for i, (at, _) in enumerate(versions) if at <= now]
        if visible:
            del versions[: visible[-1]]

    def _insert(
        self, kind: ObjectKind, values: dict[str, str | None], links: list[tuple[AssociationType, StoredRecord]]
    ) -> StoredRecord:
        record_id = str(self._next_id[kind.name])
        self._next_id[kind.name] += 1
        now = self.clock.now()
        properties = {name: value for name, value in values.items() if value is not None}
        properties.update(
            {kind.created_property: iso_ms(now), kind.modified_property: iso_ms(now), "hs_object_id": record_id}
        )
        if kind is CONTACTS:
            _stamp_lifecycle(properties, now)
        if kind is DEALS:
            properties.setdefault("pipeline", str(DEAL_PIPELINES[0]["id"]))
        record = StoredRecord(record_id, kind.name, properties, created_at=now, updated_at=now)
        self._records[kind.name][record_id] = record
        if kind is CONTACTS and properties.get("email"):
            self._email_index[properties["email"].lower()] = record_id
        for atype, other in links:
            record.associations.setdefault(atype.to_object, {})[other.id] = atype.label
            other.associations.setdefault(kind.name, {})[record_id] = atype.reverse_label
        self._write_search_version(record)
        return record

    def _create(
        self, kind: ObjectKind, raw_properties: Any, raw_associations: Any, *, inject_faults: bool
    ) -> StoredRecord:
        values = self._validated_values(kind, raw_properties, creating=True)
        links = self._validated_associations(kind, raw_associations)
        if inject_faults and self.take_fault(FaultKind.INVALID_RECORD):
            raise self._injected_invalid(values)
        self._check_unique(kind, values, None)
        return self._insert(kind, values, links)

    def _update(self, kind: ObjectKind, record: StoredRecord, raw_properties: Any, *, inject_faults: bool) -> bool:
        """Apply property changes; ``lastmodifieddate`` moves only when a value really changes."""
        values = self._validated_values(kind, raw_properties, creating=False)
        if inject_faults and self.take_fault(FaultKind.INVALID_RECORD):
            raise self._injected_invalid(values)
        self._check_unique(kind, values, record.id)
        changed = {name: value for name, value in values.items() if record.properties.get(name) != value}
        if not changed:
            return False
        if kind is CONTACTS and "email" in changed:
            old = record.properties.get("email")
            if old:
                self._email_index.pop(old.lower(), None)
            if changed["email"]:
                self._email_index[changed["email"].lower()] = record.id
        for name, value in changed.items():
            if value is None:
                record.properties.pop(name, None)
            else:
                record.properties[name] = value
        now = self.clock.now()
        if kind is CONTACTS and "lifecyclestage" in changed:
            _stamp_lifecycle(record.properties, now)
        record.updated_at = now
        record.properties[kind.modified_property] = iso_ms(now)
        self._write_search_version(record)
        return True

    def _archive(self, kind: ObjectKind, record: StoredRecord) -> None:
        if record.archived:
            return
        now = self.clock.now()
        record.archived = True
        record.archived_at = now
        record.updated_at = now
        if kind is CONTACTS and record.properties.get("email"):
            self._email_index.pop(record.properties["email"].lower(), None)
        for other_name, targets in record.associations.items():
            for target in targets:
                other = self._records[other_name].get(target)
                if other is not None:
                    other.associations.get(kind.name, {}).pop(record.id, None)
        record.associations = {}
        self._write_search_version(record)

    async def _create_record(self, request: Request) -> Response:
        kind = self._kind(request)
        body = await self._json_object(request)
        record = self._create(kind, body.get("properties"), body.get("associations"), inject_faults=True)
        return JSONResponse(self._record_json(kind, record, all_properties=True), status_code=201)

    async def _update_record(self, request: Request) -> Response:
        kind = self._kind(request)
        record = self._find(kind, request.path_params["record_id"], request.query_params.get("idProperty"))
        body = await self._json_object(request)
        self._update(kind, record, body.get("properties"), inject_faults=True)
        written = list((body.get("properties") or {}).keys())
        return JSONResponse(self._record_json(kind, record, [*kind.default_properties, *written]))

    async def _archive_record(self, request: Request) -> Response:
        kind = self._kind(request)
        try:
            record = self._find(kind, request.path_params["record_id"], request.query_params.get("idProperty"))
        except HubSpotError as exc:
            if exc.status != 404:
                raise
            return Response(status_code=204)
        self._archive(kind, record)
        return Response(status_code=204)

    async def _merge_records(self, request: Request) -> Response:
        """``POST /crm/v3/objects/{type}/merge``: the record to merge folds into the primary, whose values win;
        the primary's empty properties take the merged one's values, the merged one's email becomes an additional
        email, its associations move to the primary, and it is gone (404) afterwards."""
        kind = self._kind(request)
        body = await self._json_object(request)
        primary_id, merged_id = body.get("primaryObjectId"), body.get("objectIdToMerge")
        missing = [name for name, value in (("primaryObjectId", primary_id), ("objectIdToMerge", merged_id))
                   if value in (None, "")]
        if missing:
            raise HubSpotError(400, f"Invalid input JSON: {', '.join(missing)} required", "VALIDATION_ERROR")
        if str(primary_id) == str(merged_id):
            raise HubSpotError(400, "Cannot merge an object with itself", "VALIDATION_ERROR")
        primary = self._find(kind, str(primary_id), None)
        merged = self._find(kind, str(merged_id), None)
        fill = {
            name: value for name, value in merged.properties.items()
            if value not in (None, "") and primary.properties.get(name) in (None, "")
            and name not in (kind.created_property, kind.modified_property, "hs_object_id", "email")
        }
        merged_email = merged.properties.get("email")
        if kind is CONTACTS and merged_email:
            extra = [e for e in (primary.properties.get("hs_additional_emails") or "").split(";") if e]
            fill["hs_additional_emails"] = ";".join([*extra, merged_email])
        earlier_ids = [i for i in (primary.properties.get("hs_merged_object_ids") or "").split(";") if i]
        fill["hs_merged_object_ids"] = ";".join([*earlier_ids, merged.id])
        moved = {other: dict(targets) for other, targets in merged.associations.items()}
        self._archive(kind, merged)
        del self._records[kind.name][merged.id]
        for other_name, targets in moved.items():
            for target, label in targets.items():
                other = self._records[other_name].get(target)
                if other is None:
                    continue
                primary.associations.setdefault(other_name, {})[target] = label
                other.associations.setdefault(kind.name, {})[primary.id] = label
        now = self.clock.now()
        primary.properties.update(fill)
        primary.updated_at = now
        primary.properties[kind.modified_property] = iso_ms(now)
        self._write_search_version(primary)
        return JSONResponse(self._record_json(kind, primary, all_properties=True))

    def _batch_response(
        self, results: list[dict[str, Any]], errors: list[dict[str, Any]], started: datetime, ok_status: int = 200
    ) -> Response:
        body: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
        body["startedAt"] = iso_ms(started)
        body["completedAt"] = iso_ms(self.clock.now())
        return JSONResponse(body, status_code=207 if errors else ok_status)

    @staticmethod
    def _trace(item: dict[str, Any]) -> dict[str, list[str]]:
        trace = item.get("objectWriteTraceId")
        return {"objectWriteTraceId": [str(trace)]} if trace is not None else {}

    @staticmethod
    def _check_duplicate_ids(inputs: list[dict[str, Any]]) -> None:
        seen: set[str] = set()
        duplicates: list[str] = []
        for item in inputs:
            key = str(item.get("id", "")).strip().lower()
            if key in seen and key not in duplicates:
                duplicates.append(key)
            seen.add(key)
        if duplicates:
            raise HubSpotError(
                400, f"Duplicate IDs found in batch input: [{', '.join(duplicates)}]. IDs must be unique"
            )

    async def _write_batch(
        self,
        request: Request,
        write: Callable[[ObjectKind, dict[str, Any]], dict[str, Any]],
        *,
        by_id: bool,
        ok_status: int = 200,
    ) -> Response:
        """A batch write: each input written by ``write`` (giving its result) or refused with its own error, both
        lists in one answer. Inputs that name their record (``by_id``) must name each record once, and their
        errors carry the id."""
        kind = self._kind(request)
        started = self.clock.now()
        inputs = self._inputs(await self._json_object(request))
        if by_id:
            self._check_duplicate_ids(inputs)
        results, errors = [], []
        for item in inputs:
            try:
                result = write(kind, item)
            except HubSpotError as exc:
                named = {"ids": [str(item.get("id", ""))]} if by_id else {}
                errors.append(exc.with_context({**named, **self._trace(item)}).item())
                continue
            results.append({**result, **_echo_trace(item)})
        return self._batch_response(results, errors, started, ok_status=ok_status)

    async def _batch_create(self, request: Request) -> Response:
        return await self._write_batch(request, self._create_one, by_id=False, ok_status=201)

    def _create_one(self, kind: ObjectKind, item: dict[str, Any]) -> dict[str, Any]:
        record = self._create(kind, item.get("properties"), item.get("associations"), inject_faults=True)
        return self._record_json(kind, record, all_properties=True)

    async def _batch_update(self, request: Request) -> Response:
        return await self._write_batch(request, self._update_one, by_id=True)

    def _update_one(self, kind: ObjectKind, item: dict[str, Any]) -> dict[str, Any]:
        record = self._find(kind, str(item.get("id", "")), item.get("idProperty"))
        self._update(kind, record, item.get("properties"), inject_faults=True)
        written = list((item.get("properties") or {}).keys())
        return self._record_json(kind, record, [*kind.default_properties, *written])

    async def _batch_upsert(self, request: Request) -> Response:
        return await self._write_batch(request, self._upsert_one, by_id=True)

    def _upsert_one(self, kind: ObjectKind, item: dict[str, Any]) -> dict[str, Any]:
        record_id = str(item.get("id", ""))
        id_property = item.get("idProperty") or "hs_object_id"
        properties = dict(item.get("properties") or {})
        try:
            record: StoredRecord | None = self._find(kind, record_id, id_property)
        except HubSpotError as exc:
            if exc.status != 404 or id_property == "hs_object_id":
                raise
            record = None
        if record is None:
            properties[id_property] = record_id
            record = self._create(kind, properties, item.get("associations"), inject_faults=True)
            created = True
        else:
            properties.pop(id_property, None)
            self._update(kind, record, properties, inject_faults=True)
            created = False
        written = [*kind.default_properties, *properties.keys(), id_property]
        return {**self._record_json(kind, record, written), "new": created}

    async def _batch_archive(self, request: Request) -> Response:
        kind = self._kind(request)
        inputs = self._inputs(await self._json_object(request))
        for item in inputs:
            record = self._records[kind.name].get(str(item.get("id", "")))
            if record is not None:
                self._archive(kind, record)
        return Response(status_code=204)

    # -- search ----------------------------------------------------------------------------------------------------
    def _searchable(self, record: StoredRecord, now: float) -> dict[str, str] | None:
        for visible_at, snapshot in reversed(record.search_versions):
            if visible_at <= now:
                return snapshot
        return None

    def _search_candidates(self, kind: ObjectKind, groups: list[list[SearchFilter]]) -> Iterable[StoredRecord]:
        """The records a search must look at, oldest first: when every filter group asks for an email (``EQ`` or
        ``IN``), those that ever held one of the emails asked for, else all of them."""
        records = self._records[kind.name]
        wanted: set[str] = set()
        for group in groups or [[]]:
            emails = next(
                (
                    f.operands
                    for f in group
                    if f.definition.name == EMAIL_PROPERTY and f.operator in ("EQ", "IN") and not f.definition.multiple
                ),
                None,
            )
            if emails is None:
                return records.values()
            wanted.update(str(email) for email in emails)
        index = self._search_emails[kind.name]
        ids = set().union(*(index.get(email, set()) for email in wanted))
        # Ids are handed out in order, so sorting them numerically is creation order, as a full scan goes.
        return [records[record_id] for record_id in sorted(ids, key=int) if record_id in records]

    def _parse_filters(self, kind: ObjectKind, raw_groups: Any) -> list[list[SearchFilter]]:
        if raw_groups is None:
            return []
        raw_groups = _list_of_objects(raw_groups, "filterGroups")
        if len(raw_groups) > SEARCH_MAX_FILTER_GROUPS:
            raise HubSpotError(
                400,
                f"Too many filter groups: {len(raw_groups)} were sent, at most {SEARCH_MAX_FILTER_GROUPS} are allowed",
            )
        total = 0
        groups: list[list[SearchFilter]] = []
        for raw_group in raw_groups:
            raw_filters = _list_of_objects(raw_group.get("filters") or [], "filters")
            if len(raw_filters) > SEARCH_MAX_FILTERS_PER_GROUP:
                raise HubSpotError(
                    400,
                    f"Too many filters in a filter group: {len(raw_filters)} were sent, at most "
                    f"{SEARCH_MAX_FILTERS_PER_GROUP} are allowed",
                )
            total += len(raw_filters)
            if total > SEARCH_MAX_FILTERS:
                raise HubSpotError(
                    400, f"Too many filters: at most {SEARCH_MAX_FILTERS} are allowed across all filter groups"
                )
            groups.append([self._parse_filter(kind, raw) for raw in raw_filters])
        return groups

    def _parse_filter(self, kind: ObjectKind, raw: dict[str, Any]) -> SearchFilter:
        name = raw.get("propertyName")
        operator = raw.get("operator", "EQ")
        definition = self._properties[kind.name].get(str(name))
        if definition is None:
            raise HubSpotError(400, f"Property {name} does not exist on {kind.label} and cannot be filtered on")
        if operator not in SEARCH_OPERATORS:
            raise HubSpotError(400, f"Unknown filter operator {operator}; use one of {', '.join(SEARCH_OPERATORS)}")
        try:
            if operator in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
                operands: tuple[Any, ...] = ()
            elif operator in ("IN", "NOT_IN"):
                values = raw.get("values")
                if not isinstance(values, list) or not values:
                    raise ValueError(f"{operator} needs a non-empty values list")
                operands = tuple(_comparable(definition, v) for v in values)
            elif operator == "BETWEEN":
                if "value" not in raw or "highValue" not in raw:
                    raise ValueError("BETWEEN needs value and highValue")
                operands = (_comparable(definition, raw["value"]), _comparable(definition, raw["highValue"]))
            elif operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
                if raw.get("value") in (None, ""):
                    raise ValueError(f"{operator} needs a value")
                operands = (_token_pattern(str(raw["value"])),)
            else:
                if "value" not in raw or raw["value"] is None:
                    raise ValueError(f"{operator} needs a value")
                operands = (_comparable(definition, raw["value"]),)
        except (ValueError, TypeError) as exc:
            raise HubSpotError(400, f"Invalid filter on {name}: {exc}") from None
        return SearchFilter(definition, str(operator), operands)

    def _parse_sorts(self, kind: ObjectKind, raw: Any) -> list[tuple[PropertyDefinition, bool]]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise HubSpotError(400, "Invalid input JSON: sorts must be a list")
        sorts = []
        for item in raw:
            if isinstance(item, str):
                name, descending = item.lstrip("-"), item.startswith("-")
            elif isinstance(item, dict):
                name = str(item.get("propertyName", ""))
                direction = str(item.get("direction", "ASCENDING")).upper()
                if direction not in ("ASCENDING", "DESCENDING"):
                    raise HubSpotError(400, f"Invalid sort direction {direction}; use ASCENDING or DESCENDING")
                descending = direction == "DESCENDING"
            else:
                raise HubSpotError(400, "Invalid input JSON: each sort is a property name or an object")
            definition = self._properties[kind.name].get(name)
            if definition is None:
                raise HubSpotError(400, f"Property {name} does not exist on {kind.label} and cannot be sorted on")
            sorts.append((definition, descending))
        return sorts

    async def _search(self, request: Request) -> Response:
        kind = self._kind(request)
        body = await self._json_object(request)
        limit = body.get("limit", 10)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise HubSpotError(400, f"limit must be a whole number between 1 and {SEARCH_PAGE_LIMIT}")
        if limit > SEARCH_PAGE_LIMIT:
            raise HubSpotError(
                400, f"limit {limit} is too large: the maximum number of results per page is {SEARCH_PAGE_LIMIT}"
            )
        after_raw = body.get("after", 0)
        if after_raw in (None, ""):
            after_raw = 0
        after_text = str(after_raw)
        if isinstance(after_raw, bool) or not after_text.isdigit():
            raise HubSpotError(400, f"Invalid after cursor: {after_text}")
        after = int(after_text)
        if after >= SEARCH_RESULT_CAP:
            raise HubSpotError(
                400,
                f"Paging past {SEARCH_RESULT_CAP} results is not supported (after={after}); search returns at most "
                f"{SEARCH_RESULT_CAP} results per query. Narrow the query, e.g. with a filter on "
                f"{kind.modified_property}.",
            )
        groups = self._parse_filters(kind, body.get("filterGroups"))
        sorts = self._parse_sorts(kind, body.get("sorts"))
        requested = self._names(body.get("properties") or [])
        query_words = str(body.get("query") or "").lower().split()

        now = self.clock.monotonic()
        matches: list[tuple[StoredRecord, dict[str, str]]] = []
        for record in self._search_candidates(kind, groups):
            snapshot = self._searchable(record, now)
            if snapshot is None:
                continue
            if groups and not any(all(_filter_matches(f, snapshot) for f in group) for group in groups):
                continue
            if query_words and not _query_matches(query_words, kind, snapshot):
                continue
            matches.append((record, snapshot))
        for definition, descending in reversed(sorts):
            present = [m for m in matches if m[1].get(definition.name) not in (None, "")]
            absent = [m for m in matches if m[1].get(definition.name) in (None, "")]
            present.sort(key=_sort_key(definition), reverse=descending)
            matches = present + absent

        total = len(matches)
        page = matches[after : min(after + limit, SEARCH_RESULT_CAP)]
        data: dict[str, Any] = {
            "total": total,
            "results": [self._record_json(kind, r, requested, snapshot=s) for r, s in page],
        }
        if page and after + len(page) < total:
            data["paging"] = {"next": {"after": str(after + len(page))}}
        return JSONResponse(data)

    # -- properties ------------------------------------------------------------------------------------------------
    async def _list_properties(self, request: Request) -> Response:
        kind = self._kind(request)
        return JSONResponse({"results": [d.to_json() for d in self._properties[kind.name].values()]})

    async def _get_property(self, request: Request) -> Response:
        kind = self._kind(request)
        name = request.path_params["name"]
        definition = self._properties[kind.name].get(name)
        if definition is None:
            raise HubSpotError(404, f"Property {name} does not exist", "OBJECT_NOT_FOUND")
        return JSONResponse(definition.to_json())

    async def _create_property(self, request: Request) -> Response:
        kind = self._kind(request)
        body = await self._json_object(request)
        required = ("name", "label", "type", "fieldType", "groupName")
        missing = [key for key in required if not isinstance(body.get(key), str) or not body[key].strip()]
        if missing:
            raise HubSpotError(
                400,
                "Invalid input JSON: Cannot build PropertyCreate, some of required attributes are not set "
                f"[{', '.join(missing)}]",
            )
        name, type_, field_type, group = body["name"], body["type"], body["fieldType"], body["groupName"]
        if type_ not in PROPERTY_TYPES:
            raise HubSpotError(
                400, f"Invalid input JSON: {type_!r} is not a property type; use one of {PROPERTY_TYPES}"
            )
        if field_type not in FIELD_TYPES:
            raise HubSpotError(400, f"Invalid input JSON: {field_type!r} is not a field type; use one of {FIELD_TYPES}")
        if field_type not in FIELD_TYPES_BY_TYPE[type_]:
            raise HubSpotError(
                400,
                f"fieldType {field_type} is not valid for a property of type {type_}; "
                f"use one of {', '.join(FIELD_TYPES_BY_TYPE[type_])}",
            )
        if not _PROPERTY_NAME.match(name) or name.startswith("hs_"):
            raise HubSpotError(
                400,
                f"Property name {name!r} is invalid: use lowercase letters, digits and underscores, starting with a "
                "letter; names starting with hs_ are reserved",
            )
        if group not in PROPERTY_GROUPS[kind.name]:
            raise HubSpotError(400, f"Property group {group} does not exist for {kind.name}")
        if name in self._properties[kind.name]:
            raise HubSpotError(
                409, f"Property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS", context={"name": [name]}
            )
        options = _property_options(type_, body.get("options"))
        now = iso_ms(self.clock.now())
        definition = PropertyDefinition(
            name=name,
            label=body["label"],
            type=type_,
            field_type=field_type,
            group_name=group,
            description=str(body.get("description") or ""),
            options=options,
            display_order=int(body.get("displayOrder", -1)),
            hubspot_defined=False,
            has_unique_value=bool(body.get("hasUniqueValue", False)),
            form_field=bool(body.get("formField", True)),
            created_at=now,
            updated_at=now,
        )
        self._properties[kind.name][name] = definition
        return JSONResponse(definition.to_json(), status_code=201)


# -- value rules --------------------------------------------------------------------------------------------------
class PropertyValueError(ValueError):
    """A property value HubSpot refuses, with HubSpot's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _stored_value(definition: PropertyDefinition, value: Any) -> str | None:
    """The string HubSpot stores for a written value (``None``: clear the property).

    Raises:
        PropertyValueError: with HubSpot's code (INVALID_EMAIL, INVALID_OPTION, ...).
    """
    if value is None or value == "":
        return None
    if isinstance(value, dict | list):
        raise PropertyValueError("INVALID_PROPERTY_VALUE", f"{json.dumps(value)} is not a single value")
    text = str(value).strip() if not isinstance(value, bool) else ("true" if value else "false")
    kind = definition.type
    if definition.name == "email":
        try:
            return normalise_email(text)
        except ValueError:
            raise PropertyValueError("INVALID_EMAIL", f"Email address {text} is invalid") from None
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise PropertyValueError("INVALID_FLOAT", f"{text} was not a valid number.") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise PropertyValueError("INVALID_FLOAT", f"{text} was not a valid number.")
        return str(int(number)) if number.is_integer() and "e" not in text.lower() else repr(number)
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise PropertyValueError("INVALID_BOOLEAN", f"{text} was not a valid boolean (true or false).")
        return text.lower()
    if kind == "enumeration":
        allowed = definition.option_values()
        chosen = [part for part in text.split(";") if part] if definition.multiple else [text]
        for option in chosen:
            if option not in allowed:
                raise PropertyValueError(
                    "INVALID_OPTION", f"{option} was not one of the allowed options: [{', '.join(allowed)}]"
                )
        return ";".join(chosen)
    if kind == "datetime":
        try:
            return iso_ms(parse_instant(value))
        except (ValueError, OverflowError):
            raise PropertyValueError("INVALID_DATETIME", f"{text} is not a valid date-time") from None
    if kind == "date":
        try:
            moment = parse_instant(value)
        except (ValueError, OverflowError):
            raise PropertyValueError("INVALID_DATE", f"{text} is not a valid date") from None
        if moment.time() != datetime.min.time():
            raise PropertyValueError(
                "INVALID_DATE", f"{text} is at {moment:%H:%M:%S} UTC, not midnight! Dates must be at midnight UTC."
            )
        return moment.date().isoformat()
    return text


def _comparable(definition: PropertyDefinition, value: Any) -> Any:
    """A value in the form search compares: numbers and dates as numbers, text lower-cased.

    Raises:
        ValueError: when a filter value cannot be read as the property's type.
    """
    if definition.type == "number":
        return float(value)
    if definition.type in ("datetime", "date"):
        return float(epoch_ms(parse_instant(value)))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip().lower()


def _sort_key(definition: PropertyDefinition) -> Callable[[tuple[StoredRecord, dict[str, str]]], Any]:
    def key(match: tuple[StoredRecord, dict[str, str]]) -> Any:
        return _comparable(definition, match[1][definition.name])

    return key


def _tokens(value: str) -> set[str]:
    lowered = value.lower()
    tokens = {lowered, *lowered.split()}
    tokens.update(part for part in _TOKEN_SPLIT.split(lowered) if part)
    if "@" in lowered:
        tokens.add(lowered.rsplit("@", 1)[1])
    return tokens


def _token_pattern(value: str) -> re.Pattern[str]:
    """CONTAINS_TOKEN's operand: a token, where ``*`` stands for any text."""
    escaped = re.escape(value.strip().lower()).replace(r"\*", ".*")
    return re.compile(f"^{escaped}$")


def _filter_matches(search_filter: SearchFilter, values: dict[str, str]) -> bool:
    operator = search_filter.operator
    if operator in _NEGATED_OPERATORS:
        positive = SearchFilter(search_filter.definition, _NEGATED_OPERATORS[operator], search_filter.operands)
        return not _filter_matches(positive, values)
    raw = values.get(search_filter.definition.name)
    present = raw not in (None, "")
    if operator == "HAS_PROPERTY":
        return present
    if operator == "NOT_HAS_PROPERTY":
        return not present
    if raw is None or not present:
        return False
    definition = search_filter.definition
    if operator == "CONTAINS_TOKEN":
        pattern = search_filter.operands[0]
        return any(pattern.match(token) for token in _tokens(raw))
    parts = raw.split(";") if definition.multiple else [raw]
    candidates = [_comparable(definition, part) for part in parts]
    operands = search_filter.operands
    for candidate in candidates:
        if operator == "EQ" and candidate == operands[0]:
            return True
        if operator == "IN" and candidate in operands:
            return True
        if operator == "GT" and candidate > operands[0]:
            return True
        if operator == "GTE" and candidate >= operands[0]:
            return True
        if operator == "LT" and candidate < operands[0]:
            return True
        if operator == "LTE" and candidate <= operands[0]:
            return True
        if operator == "BETWEEN" and operands[0] <= candidate <= operands[1]:
            return True
    return False


def _query_matches(words: list[str], kind: ObjectKind, values: dict[str, str]) -> bool:
    """HubSpot's free-text ``query``: every word starts a token of a default searchable property."""
    tokens: set[str] = set()
    for name in kind.text_properties:
        if values.get(name):
            tokens |= _tokens(values[name])
    return all(any(token.startswith(word) for token in tokens) for word in words)


def _property_options(type_: str, raw: Any) -> list[dict[str, Any]]:
    if type_ == "bool" and not raw:
        return _options(("Yes", "true"), ("No", "false"))
    if type_ != "enumeration":
        return []
    if not isinstance(raw, list) or not raw:
        raise HubSpotError(400, "Properties of type enumeration need a non-empty options list")
    options = []
    for order, option in enumerate(raw):
        if not isinstance(option, dict) or not option.get("label") or option.get("value") in (None, ""):
            raise HubSpotError(400, "Invalid input JSON: each option needs a label and a value")
        options.append(
            {
                "label": str(option["label"]),
                "value": str(option["value"]),
                "displayOrder": int(option.get("displayOrder", order)),
                "hidden": bool(option.get("hidden", False)),
            }
        )
    return options


def _list_of_objects(value: Any, name: str) -> list[dict[str, Any]]:
    """``value`` when it is a JSON array of objects; else HubSpot's 400 naming the body's ``name``."""
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise HubSpotError(400, f"Invalid input JSON: {name} must be a list of objects")
    return value


def _int_param(raw: str | None, name: str, *, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise HubSpotError(400, f"{name} must be a whole number between {low} and {high}")
    return int(raw)


def _echo_trace(item: dict[str, Any]) -> dict[str, Any]:
    trace = item.get("objectWriteTraceId")
    return {"objectWriteTraceId": str(trace)} if trace is not None else {}


def _plain(value: Any) -> str:
    """An enum's value or a plain string (the generated people may carry either)."""
    return str(getattr(value, "value", value) or "")


_HUBSPOT_LEAD_STATUS = {
    "new": "NEW",
    "contacted": "ATTEMPTED_TO_CONTACT",
    "qualified": "OPEN_DEAL",
    "unqualified": "UNQUALIFIED",
    "converted": "CONNECTED",
}
_LEAD_STAGE = {
    "new": "new-stage-id",
    "contacted": "attempting-stage-id",
    "qualified": "qualified-stage-id",
    "unqualified": "unqualified-stage-id",
    "converted": "connected-stage-id",
}


def _stamp_lifecycle(properties: dict[str, Any], now: datetime) -> None:
    """Stamp the date the contact entered its lifecycle stage, once (a later move back and forth keeps it)."""
    stage = properties.get("lifecyclestage")
    if stage:
        properties.setdefault(lifecycle_date_property(str(stage)), iso_ms(now))
