"""Pipedrive sandbox: a stateful emulator of Pipedrive's v1 and v2 REST API (persons, leads, notes, fields, limits).

The official OpenAPI files (``openapi-v1.yaml``, ``openapi-v2.yaml``) are the reference for paths, parameters,
request bodies and response shapes; ``docs/crm-wire-facts.md`` for auth, paging, errors and rate limits.

Choices where the spec and the wire differ or are silent:

* Optional attributes that are not set are left out of v2 records and v1 notes (``org_id``, ``picture_id``...),
  because the spec types them as non-nullable; the real service often sends ``null``. Clients must accept both.
* The daily token budget is reported in ``x-daily-requests-left`` (the daily header Pipedrive documents), counting
  the tokens left in the company's budget rather than POST/PUT requests.
* ``x-ratelimit-*`` describe the burst window that applied to the request: the search window on search requests.
* v1 lists carry paging both where the spec puts it (``additional_data.start/limit/more_items_in_collection``) and
  in ``additional_data.pagination`` (with ``next_start``), as the wire does.
* An API token has no expiry: the ``token_expiry`` fault answers one request with 401; :meth:`expire_tokens`
  revokes the token as an admin regenerating it would, and :meth:`credentials` then gives the new one.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import math
import random
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeGuard, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from crm_desktop.sandbox.core import (
    FaultKind,
    FixedWindow,
    JSONResponse,
    Sandbox,
    SandboxConfig,
    epoch_ms,
    iso_ms,
    parse_json,
)
from crm_desktop.sandbox.data import GeneratedPerson, generate_people

logger = logging.getLogger(__name__)

ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
DAILY_BUDGET_HEADER = "x-daily-requests-left"
BURST_WINDOW_SECONDS = 2.0
DEFAULT_BURST_LIMIT = 20
DEFAULT_SEARCH_BURST_LIMIT = 10
DEFAULT_DAILY_TOKEN_BUDGET = 30_000
DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 500

#: Token cost of each kind of call (Pipedrive's published costs; v1 costs twice as much as v2).
TOKEN_COSTS: dict[str, dict[str, int]] = {
    "v2": {"get": 1, "list": 10, "create": 5, "update": 5, "search": 20, "delete": 3},
    "v1": {"get": 2, "list": 20, "create": 10, "update": 10, "search": 40, "delete": 6},
}

#: ``PUT /v1/persons/{id}/merge`` costs 40 tokens (the v1 spec's ``x-token-cost``).
PERSON_MERGE_COST = 40

#: Field types a person field can be created with (``POST /v1/personFields``).
PERSON_FIELD_TYPES = (
    "address", "date", "daterange", "double", "enum", "monetary", "org", "people", "phone", "set", "text", "time",
    "timerange", "user", "varchar", "varchar_auto", "visible_to",
)  # fmt: skip

#: The social custom person fields a company may have set up (none by default: social data goes to notes).
SOCIAL_PERSON_FIELDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("twitter_username", "varchar", ()),
    ("instagram_username", "varchar", ()),
    ("linkedin_url", "varchar", ()),
    ("social_followers", "double", ()),
    ("social_engagement_score", "double", ()),
    ("social_sentiment", "enum", ("positive", "neutral", "negative", "mixed")),
    ("lead_source_detail", "varchar", ()),
)

#: Standard person fields: (key, name, field_type, mandatory, options).
_STANDARD_PERSON_FIELDS: tuple[tuple[str, str, str, bool, tuple[str, ...]], ...] = (
    ("name", "Name", "varchar", True, ()),
    ("first_name", "First name", "varchar", False, ()),
    ("last_name", "Last name", "varchar", False, ()),
    ("label", "Label", "enum", False, ("Customer", "Hot lead", "Warm lead", "Cold lead")),
    ("org_id", "Organization", "org", False, ()),
    ("owner_id", "Owner", "user", False, ()),
    ("email", "Email", "varchar", False, ()),
    ("phone", "Phone", "phone", False, ()),
    ("add_time", "Person created", "date", False, ()),
    ("update_time", "Update time", "date", False, ()),
    ("visible_to", "Visible to", "visible_to", False, ()),
)

_VISIBLE_TO = {1, 3, 5, 7}
_ACTIVITY_TYPES = ("call", "meeting", "task", "deadline", "email", "lunch")
_DEAL_STATUSES = ("open", "won", "lost")
_SEARCH_FIELDS = ("custom_fields", "email", "notes", "phone", "name")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME_RE = re.compile(r"^\d{2}:\d{2}(:\d{2})?$")

T = TypeVar("T")


#: Pipedrive's answer to a call the token's user has no permission for (its OpenAPI files' 403 example).
NO_PERMISSION = "You do not have permissions to do this."


class PipedriveApiError(Exception):
    """An error answered in Pipedrive's envelope (status and message)."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def _bad_request(error: str) -> PipedriveApiError:
    return PipedriveApiError(400, error)


def error_response(status: int, error: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Pipedrive's error envelope."""
    body = {
        "success": False,
        "error": error,
        "errorCode": status,
        "error_info": ERROR_INFO,
        "data": None,
        "additional_data": None,
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _ok(data: Any, additional_data: Any = None, status: int = 200) -> JSONResponse:
    body: dict[str, Any] = {"success": True, "data": data}
    if additional_data is not None:
        body["additional_data"] = additional_data
    return JSONResponse(body, status_code=status)


# -- time formats ------------------------------------------------------------------------------------------------


def _v2_time(moment: datetime) -> str:
    """v2 timestamps: RFC 3339 in UTC, to the second (``2025-01-01T10:20:00Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _v1_time(moment: datetime) -> str:
    """v1 note and user timestamps: ``YYYY-MM-DD HH:MM:SS`` in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def parse_rfc3339(text: str, name: str) -> datetime:
    """Read an RFC 3339 time with a zone (``2025-01-01T10:20:00Z``).

    Raises:
        PipedriveApiError: 400 naming the parameter.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _bad_request(f"Invalid {name}: expected RFC3339 time such as 2025-01-01T10:20:00Z") from None
    if moment.tzinfo is None:
        raise _bad_request(f"Invalid {name}: the time needs a zone, e.g. 2025-01-01T10:20:00Z")
    return moment.astimezone(UTC)


# -- body and parameter readers ----------------------------------------------------------------------------------


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_field(body: dict[str, Any], key: str, *, nullable: bool = False) -> int | None:
    value = body.get(key)
    if value is None and nullable:
        return None
    if not _is_int(value) or value <= 0:
        raise _bad_request(f"Validation failed: {key}: must be a positive integer")
    return int(value)


def _str_field(body: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = body.get(key)
    if not isinstance(value, str) or (required and not value.strip()):
        qualifier = "a non-empty string" if required else "a string"
        raise _bad_request(f"Validation failed: {key}: must be {qualifier}")
    return value.strip() if required else value


def _required_text(body: dict[str, Any], key: str) -> str:
    """A parameter that must be there as a non-empty string; absent, Pipedrive answers "Parameter '<key>' is
    required"."""
    _require_parameter(body, key)
    return _str_field(body, key, required=True)


def _require_parameter(body: dict[str, Any], key: str) -> None:
    if key not in body:
        raise _bad_request(f"Validation failed: {key}: Parameter '{key}' is required")


def _visible_to_field(value: Any) -> int:
    """A v2 record's ``visible_to``: one of the visibility groups 1, 3, 5 and 7, as a number."""
    if not _is_int(value) or value not in _VISIBLE_TO:
        raise _bad_request("Validation failed: visible_to: must be one of 1, 3, 5, 7")
    return value


def _bool_field(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if not isinstance(value, bool):
        raise _bad_request(f"Validation failed: {key}: must be a boolean")
    return value


def _date_field(body: dict[str, Any], key: str, *, nullable: bool = False) -> str | None:
    value = body.get(key)
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise _bad_request(f"Validation failed: {key}: must be a date as YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise _bad_request(f"Validation failed: {key}: {value!r} is not a calendar date") from None
    return value


def _query_int(request: Request, name: str, default: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise _bad_request(f"Invalid parameter {name}: must be an integer") from None


def _query_bool(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered in {"true", "1"}:
        return True
    if lowered in {"false", "0"}:
        return False
    raise _bad_request(f"Invalid parameter {name}: must be true or false")


def _page_limit(request: Request) -> int:
    limit = _query_int(request, "limit", DEFAULT_PAGE_LIMIT)
    assert limit is not None
    if not 1 <= limit <= MAX_PAGE_LIMIT:
        raise _bad_request(f"Invalid parameter limit: must be between 1 and {MAX_PAGE_LIMIT}")
    return limit


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = parse_json(raw)
    except ValueError:
        raise _bad_request("Invalid JSON in the request body") from None
    if not isinstance(body, dict):
        raise _bad_request("The request body must be a JSON object")
    return body


def _reject_unknown(body: dict[str, Any], allowed: Iterable[str], what: str) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise _bad_request(f"Validation failed: {what}: unknown field(s) {', '.join(unknown)}")


def _encode_cursor(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(text: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        payload = parse_json(raw)
    except (ValueError, TypeError):
        raise _bad_request("Invalid cursor") from None
    if not isinstance(payload, dict):
        raise _bad_request("Invalid cursor")
    return payload


# -- records ---------------------------------------------------------------------------------------------------


@dataclass
class PersonField:
    """A person field: standard (short key) or custom (40-character hash key)."""

    id: int
    key: str
    name: str
    field_type: str
    order_nr: int
    add_time: datetime
    custom: bool
    mandatory: bool = False
    add_visible: bool = True
    options: list[dict[str, Any]] | None = None

    def option_ids(self) -> set[int]:
        return {int(option["id"]) for option in self.options or []}

    def option_id(self, label: str) -> int | None:
        return next((int(o["id"]) for o in self.options or [] if o["label"] == label), None)

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "name": self.name,
            "order_nr": self.order_nr,
            "field_type": self.field_type,
            "add_time": iso_ms(self.add_time),
            "update_time": iso_ms(self.add_time),
            "last_updated_by_user_id": 1 if self.custom else None,
            "created_by_user_id": 1 if self.custom else None,
            "active_flag": True,
            "edit_flag": self.custom,
            "index_visible_flag": True,
            "details_visible_flag": True,
            "add_visible_flag": self.add_visible,
            "important_flag": False,
            "bulk_edit_allowed": True,
            "searchable_flag": self.field_type in {"varchar", "text", "phone"},
            "filtering_allowed": True,
            "sortable_flag": True,
            "mandatory_flag": self.mandatory,
            "options": [dict(option) for option in self.options] if self.options is not None else None,
        }


@dataclass
class Organization:
    """An organization persons and leads link to (held for links only; no organization endpoints)."""

    id: int
    name: str
    add_time: datetime


@dataclass
class Person:
    """A v2 person."""

    id: int
    name: str
    owner_id: int
    add_time: datetime
    update_time: datetime
    org_id: int | None = None
    emails: list[dict[str, Any]] = field(default_factory=list)
    phones: list[dict[str, Any]] = field(default_factory=list)
    visible_to: int = 3
    label_ids: list[int] = field(default_factory=list)
    custom_fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipedriveLead:
    """A v1 lead (UUID id)."""

    id: str
    sequence: int
    title: str
    owner_id: int
    add_time: datetime
    update_time: datetime
    person_id: int | None = None
    organization_id: int | None = None
    label_ids: list[str] = field(default_factory=list)
    value: dict[str, Any] | None = None
    expected_close_date: str | None = None
    visible_to: str = "3"
    was_seen: bool = False
    is_archived: bool = False
    origin_id: str | None = None
    channel: int | None = None
    channel_id: str | None = None


#: What a note can be pinned to (``pinned_to_<target>_flag``, 0 or 1).
_PIN_TARGETS = ("deal", "organization", "person", "project", "task", "lead")


def _pinned_flags(body: dict[str, Any]) -> dict[str, bool]:
    """The pin flags a note's create or update body sets, checked as Pipedrive checks them (0 or 1)."""
    pinned: dict[str, bool] = {}
    for flag in _PIN_TARGETS:
        value = body.get(f"pinned_to_{flag}_flag")
        if value is not None:
            if value not in (0, 1) or isinstance(value, bool):
                raise _bad_request(f"Validation failed: pinned_to_{flag}_flag: must be 0 or 1")
            pinned[flag] = value == 1
    return pinned


@dataclass
class Note:
    """A v1 note attached to exactly one person, lead, deal or organization."""

    id: int
    content: str
    user_id: int
    add_time: datetime
    update_time: datetime
    person_id: int | None = None
    lead_id: str | None = None
    deal_id: int | None = None
    org_id: int | None = None
    pinned: dict[str, bool] = field(default_factory=dict)


@dataclass
class Activity:
    """A v2 activity (a call, meeting, task...)."""

    id: int
    subject: str
    type: str
    owner_id: int
    add_time: datetime
    update_time: datetime
    person_id: int | None = None
    deal_id: int | None = None
    lead_id: str | None = None
    org_id: int | None = None
    due_date: str | None = None
    due_time: str | None = None
    duration: str | None = None
    busy: bool = False
    done: bool = False
    marked_as_done_time: datetime | None = None
    note: str | None = None
    public_description: str | None = None
    priority: int | None = None
    participants: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Pipeline:
    """A deal pipeline (v2 ``/pipelines``)."""

    id: int
    name: str
    order_nr: int
    add_time: datetime
    is_deal_probability_enabled: bool = False


@dataclass
class Stage:
    """A stage of a pipeline (v2 ``/stages``)."""

    id: int
    name: str
    pipeline_id: int
    order_nr: int
    add_time: datetime
    deal_probability: int = 100


#: The pipelines a new company account has, with their stages: Pipedrive's default one and a second the marketing
#: team made, so that a pipeline is really chosen by name.
DEFAULT_PIPELINES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Pipeline", ("Qualified", "Contact Made", "Demo Scheduled", "Proposal Made", "Negotiations Started")),
    ("Social leads", ("New social lead", "Qualified", "Proposal")),
)
#: Token cost of the v2 pipelines and stages lists (their ``x-token-cost`` in the spec; other lists cost 10).
PIPELINE_LIST_COST = 5


@dataclass
class Deal:
    """A v2 deal."""

    id: int
    title: str
    owner_id: int
    add_time: datetime
    update_time: datetime
    person_id: int | None = None
    org_id: int | None = None
    pipeline_id: int = 1
    stage_id: int = 1
    value: float = 0
    currency: str = "USD"
    status: str = "open"
    probability: float | None = None
    expected_close_date: str | None = None
    visible_to: int = 3
    label_ids: list[int] = field(default_factory=list)
    won_time: datetime | None = None
    lost_time: datetime | None = None
    close_time: datetime | None = None


@dataclass
class _TokenWindows:
    burst: FixedWindow
    search: FixedWindow


Handler = Callable[[Request], Awaitable[Response]]


class PipedriveSandbox(Sandbox):
    """A Pipedrive company account: persons, leads, notes, activities, deals and person fields, with its limits.

    Attributes:
        company_domain: the company's subdomain (``{company_domain}.pipedrive.com``).
        company_id: the company's id (``company_id`` of ``/v1/users/me``).
        burst_limit: requests per 2-second window per token.
        search_burst_limit: search requests per 2-second window per token.
        daily_token_budget: the company's API tokens per UTC day.
        tokens_spent: tokens spent today.
    """

    provider = "pipedrive"

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        company_domain: str = "sandbox-company",
        company_id: int = 1,
        api_token: str | None = None,
        burst_limit: int = DEFAULT_BURST_LIMIT,
        search_burst_limit: int = DEFAULT_SEARCH_BURST_LIMIT,
        daily_token_budget: int = DEFAULT_DAILY_TOKEN_BUDGET,
        social_fields: bool = False,
        can_add_fields: bool = True,
        can_edit_persons: bool = True,
    ) -> None:
        super().__init__(config)
        #: Whether the token's user may add custom fields (admins, or users granted it); others get a 403.
        self.can_add_fields = can_add_fields
        #: Whether the token's user's permission set lets it add and edit persons; without it Pipedrive answers
        #: 403 "You do not have permissions to do this." to each such call.
        self.can_edit_persons = can_edit_persons
        self.company_domain = company_domain
        self.company_id = company_id
        self.burst_limit = burst_limit
        self.search_burst_limit = search_burst_limit
        self.daily_token_budget = daily_token_budget
        self.tokens_spent = 0
        self._budget_day = self.clock.now().date()
        self._ids = random.Random(f"pipedrive:{self.config.seed}")
        self._api_token = api_token or secrets.token_hex(20)
        self._valid_tokens = {self._api_token}
        self._windows: dict[str, _TokenWindows] = {}
        created = self.clock.now()
        self.user: dict[str, Any] = {
            "id": 1,
            "name": "Sandbox Admin",
            "email": f"admin@{company_domain}.example.com",
            "created": created,
        }
        self.organizations: dict[int, Organization] = {}
        self.persons: dict[int, Person] = {}
        self.leads: dict[str, PipedriveLead] = {}
        self.notes: dict[int, Note] = {}
        self.activities: dict[int, Activity] = {}
        self.deals: dict[int, Deal] = {}
        self.person_fields: list[PersonField] = []
        self._next: dict[str, int] = {}
        self.pipelines: dict[int, Pipeline] = {}
        self.stages: dict[int, Stage] = {}
        for order, (pipeline_name, stage_names) in enumerate(DEFAULT_PIPELINES, start=1):
            pipeline = Pipeline(self._take_id("pipeline"), pipeline_name, order, created)
            self.pipelines[pipeline.id] = pipeline
            for stage_order, stage_name in enumerate(stage_names, start=1):
                probability = min(100, 20 * stage_order)
                stage = Stage(self._take_id("stage"), stage_name, pipeline.id, stage_order, created, probability)
                self.stages[stage.id] = stage
        for key, name, field_type, mandatory, options in _STANDARD_PERSON_FIELDS:
            self._add_person_field(name, field_type, options, key=key, mandatory=mandatory)
        if social_fields:
            for name, field_type, options in SOCIAL_PERSON_FIELDS:
                self._add_person_field(name, field_type, options)
        if self.config.contacts:
            self.seed_people(self.config.contacts)

    # -- Sandbox contract ----------------------------------------------------------------------------------------
    def credentials(self) -> dict[str, Any]:
        return {"apiToken": self._api_token, "companyDomain": self.company_domain}

    def expire_tokens(self) -> None:
        self._valid_tokens.clear()
        self._windows.clear()
        self._api_token = secrets.token_hex(20)
        self._valid_tokens.add(self._api_token)
        logger.info("pipedrive sandbox: API token revoked and regenerated")

    def summary(self) -> dict[str, Any]:
        return {
            "persons": len(self.persons),
            "leads": len(self.leads),
            "notes": len(self.notes),
            "activities": len(self.activities),
            "deals": len(self.deals),
            "wonDeals": sum(1 for d in self.deals.values() if d.status == "won"),
            "pipelines": len(self.pipelines),
            "organizations": len(self.organizations),
            "personFields": len(self.person_fields),
            "customPersonFields": sum(1 for f in self.person_fields if f.custom),
        }

    def apply_config(self, changes: dict[str, Any]) -> None:
        for flag in ("can_add_fields", "can_edit_persons"):
            if flag in changes and not isinstance(changes[flag], bool):
                raise ValueError(f"{flag} must be true or false")
        if "burst_limit" in changes:
            self.burst_limit = _positive_setting(changes, "burst_limit")
            for windows in self._windows.values():
                windows.burst.limit = self.burst_limit
        if "search_burst_limit" in changes:
            self.search_burst_limit = _positive_setting(changes, "search_burst_limit")
            for windows in self._windows.values():
                windows.search.limit = self.search_burst_limit
        if "daily_token_budget" in changes:
            self.daily_token_budget = _positive_setting(changes, "daily_token_budget")
        if "tokens_spent" in changes:
            self.tokens_spent = max(0, int(changes["tokens_spent"]))
        if "can_add_fields" in changes:
            self.can_add_fields = changes["can_add_fields"]
        if "can_edit_persons" in changes:
            self.can_edit_persons = changes["can_edit_persons"]

    def fault_response(self, kind: FaultKind) -> Response:
        if kind is FaultKind.RATE_LIMIT:
            return self._burst_refusal(self.burst_limit, BURST_WINDOW_SECONDS)
        status = self.random.choice((500, 503))
        message = "Internal server error" if status == 500 else "Service temporarily unavailable"
        return error_response(status, message)

    def edit_record(self, object_name: str, record_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """A salesperson's edit in Pipedrive's UI: ``persons`` (v2 fields), ``leads`` or ``notes`` (v1 fields)."""
        try:
            if object_name == "persons":
                person = self.persons[_record_number(record_id)]
                self._apply_person(person, self._person_changes(changes, creating=False))
                person.update_time = self.clock.now()
                return self._person_wire(person)
            if object_name == "leads":
                lead = self.leads[record_id]
                self._apply_lead(lead, self._lead_changes(changes, creating=False))
                lead.update_time = self.clock.now()
                return self._lead_wire(lead)
            if object_name == "notes":
                note = self.notes[_record_number(record_id)]
                note.content = _str_field(changes, "content", required=True)
                note.update_time = self.clock.now()
                return self._note_wire(note)
        except PipedriveApiError as exc:
            raise ValueError(exc.error) from None
        raise KeyError(object_name)

    # -- seed ------------------------------------------------------------------------------------------------------
    def seed_people(self, count: int) -> None:
        """Add ``count`` generated people: persons, their organizations, a social note each, leads for leads."""
        by_field = {f.name: f for f in self.person_fields if f.custom}
        for person in generate_people(count, self.config.seed):
            now = self.clock.now()
            org = self._organization_named(person.company, now)
            custom: dict[str, Any] = {}
            profiles = {p.platform.value: p for p in person.social_profiles}
            social_values: dict[str, Any] = {
                "twitter_username": profiles["twitter"].username if "twitter" in profiles else None,
                "instagram_username": profiles["instagram"].username if "instagram" in profiles else None,
                "linkedin_url": profiles["linkedin"].url if "linkedin" in profiles else None,
                "social_followers": sum(p.followers for p in person.social_profiles),
                "social_engagement_score": person.engagement_score,
                "social_sentiment": person.sentiment.value,
                "lead_source_detail": person.lead_source,
            }
            for name, value in social_values.items():
                person_field = by_field.get(name)
                if person_field is None or value is None:
                    continue
                custom[person_field.key] = person_field.option_id(value) if person_field.field_type == "enum" else value
            record = Person(
                id=self._take_id("person"),
                name=f"{person.first_name} {person.last_name}",
                owner_id=self.user["id"],
                add_time=now,
                update_time=now,
                org_id=org.id,
                emails=[{"value": person.email, "primary": True, "label": "work"}],
                phones=[{"value": person.phone, "primary": True, "label": "work"}],
                custom_fields=custom,
            )
            self.persons[record.id] = record
            note = Note(
                id=self._take_id("note"),
                content=_social_note_html(person),
                user_id=self.user["id"],
                add_time=now,
                update_time=now,
                person_id=record.id,
            )
            self.notes[note.id] = note
            if person.is_lead:
                lead = PipedriveLead(
                    id=self._new_uuid(),
                    sequence=self._take_id("lead"),
                    title=f"{record.name} via {person.lead_source}",
                    owner_id=self.user["id"],
                    add_time=now,
                    update_time=now,
                    person_id=record.id,
                    organization_id=org.id,
                )
                self.leads[lead.id] = lead

    # -- routes ----------------------------------------------------------------------------------------------------
    def api_routes(self) -> list[BaseRoute]:
        v1 = TOKEN_COSTS["v1"]
        v2 = TOKEN_COSTS["v2"]

        def route(path: str, handler: Handler, method: str, cost: int, *, search: bool = False) -> Route:
            return Route(path, self._endpoint(handler, cost, search=search), methods=[method])

        return [
            route("/v1/users/me", self._get_current_user, "GET", v1["get"]),
            route("/api/v2/persons", self._list_persons, "GET", v2["list"]),
            route("/api/v2/persons", self._create_person, "POST", v2["create"]),
            route("/api/v2/persons/search", self._search_persons, "GET", v2["search"], search=True),
            route("/api/v2/persons/{person_id:int}", self._get_person, "GET", v2["get"]),
            route("/api/v2/persons/{person_id:int}", self._update_person, "PATCH", v2["update"]),
            route("/api/v2/persons/{person_id:int}", self._delete_person, "DELETE", v2["delete"]),
            route("/v1/persons/{person_id:int}/merge", self._merge_persons, "PUT", PERSON_MERGE_COST),
            route("/v1/leads", self._list_leads, "GET", v1["list"]),
            route("/v1/leads", self._create_lead, "POST", v1["create"]),
            route("/v1/leads/{lead_id}", self._get_lead, "GET", v1["get"]),
            route("/v1/leads/{lead_id}", self._update_lead, "PATCH", v1["update"]),
            route("/v1/leads/{lead_id}", self._delete_lead, "DELETE", v1["delete"]),
            route("/v1/notes", self._list_notes, "GET", v1["list"]),
            route("/v1/notes", self._create_note, "POST", v1["create"]),
            route("/v1/notes/{note_id:int}", self._get_note, "GET", v1["get"]),
            route("/v1/notes/{note_id:int}", self._update_note, "PUT", v1["update"]),
            route("/v1/notes/{note_id:int}", self._delete_note, "DELETE", v1["delete"]),
            route("/v1/personFields", self._list_person_fields, "GET", v1["list"]),
            route("/v1/personFields", self._create_person_field, "POST", v1["create"]),
            route("/api/v2/activities", self._list_activities, "GET", v2["list"]),
            route("/api/v2/activities", self._create_activity, "POST", v2["create"]),
            route("/api/v2/activities/{activity_id:int}", self._get_activity, "GET", v2["get"]),
            route("/api/v2/deals", self._list_deals, "GET", v2["list"]),
            route("/api/v2/deals", self._create_deal, "POST", v2["create"]),
            route("/api/v2/deals/{deal_id:int}", self._get_deal, "GET", v2["get"]),
            route("/api/v2/pipelines", self._list_pipelines, "GET", PIPELINE_LIST_COST),
            route("/api/v2/pipelines/{pipeline_id:int}", self._get_pipeline, "GET", v2["get"]),
            route("/api/v2/stages", self._list_stages, "GET", PIPELINE_LIST_COST),
            Route(
                "/{path:path}",
                self._unknown_path,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            ),
        ]

    async def _unknown_path(self, request: Request) -> Response:
        return error_response(404, f"Unknown method {request.method} {request.url.path}")

    # -- auth and limits -------------------------------------------------------------------------------------------
    def _endpoint(self, handler: Handler, cost: int, *, search: bool) -> Handler:
        async def endpoint(request: Request) -> Response:
            token = request.headers.get("x-api-token") or request.query_params.get("api_token")
            if not token:
                return error_response(401, "You need to be authorized to make this request.")
            if token not in self._valid_tokens:
                return error_response(401, "unauthorized access")
            if self.take_fault(FaultKind.TOKEN_EXPIRY, request.url.path):
                return error_response(401, "unauthorized access")
            windows = self._windows_for(token)
            window = windows.search if search else windows.burst
            if not windows.burst.try_hit():
                return self._burst_refusal(windows.burst.limit, windows.burst.reset_after())
            if search and not windows.search.try_hit():
                return self._burst_refusal(windows.search.limit, windows.search.reset_after())
            self._roll_budget_day()
            if self.tokens_spent + cost > self.daily_token_budget:
                return self._budget_refusal(window)
            self.tokens_spent += cost
            try:
                response = await handler(request)
            except PipedriveApiError as exc:
                response = error_response(exc.status, exc.error)
            self._rate_headers(response, window)
            return response

        return endpoint

    def _windows_for(self, token: str) -> _TokenWindows:
        windows = self._windows.get(token)
        if windows is None:
            windows = _TokenWindows(
                burst=FixedWindow(self.burst_limit, BURST_WINDOW_SECONDS, self.clock),
                search=FixedWindow(self.search_burst_limit, BURST_WINDOW_SECONDS, self.clock),
            )
            self._windows[token] = windows
        return windows

    def _roll_budget_day(self) -> None:
        today = self.clock.now().date()
        if today != self._budget_day:
            self._budget_day = today
            self.tokens_spent = 0

    def _budget_left(self) -> int:
        return max(0, self.daily_token_budget - self.tokens_spent)

    def _rate_headers(self, response: Response, window: FixedWindow) -> None:
        response.headers["x-ratelimit-limit"] = str(window.limit)
        response.headers["x-ratelimit-remaining"] = str(window.remaining())
        response.headers["x-ratelimit-reset"] = str(max(1, math.ceil(window.reset_after())))
        response.headers[DAILY_BUDGET_HEADER] = str(self._budget_left())

    def _burst_refusal(self, limit: int, reset_after: float) -> Response:
        reset = str(max(1, math.ceil(reset_after)))
        headers = {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": reset,
            "retry-after": reset,
            DAILY_BUDGET_HEADER: str(self._budget_left()),
        }
        return error_response(429, "Request over limit", headers)

    def _budget_refusal(self, window: FixedWindow) -> Response:
        now = self.clock.now()
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        response = error_response(
            429,
            f"Daily API token budget spent: the company has used its {self.daily_token_budget} tokens for today; "
            "the budget resets at 00:00 UTC",
        )
        self._rate_headers(response, window)
        response.headers["retry-after"] = str(max(1, math.ceil((midnight - now).total_seconds())))
        return response

    # -- ids and links ---------------------------------------------------------------------------------------------
    def _take_id(self, kind: str) -> int:
        number = self._next.get(kind, 0) + 1
        self._next[kind] = number
        return number

    def _new_uuid(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def _organization_named(self, name: str, now: datetime) -> Organization:
        for org in self.organizations.values():
            if org.name == name:
                return org
        org = Organization(id=self._take_id("organization"), name=name, add_time=now)
        self.organizations[org.id] = org
        return org

    def add_organization(self, name: str) -> int:
        """Create an organization to link persons and leads to; returns its id."""
        return self._organization_named(name, self.clock.now()).id

    def _owner_field(self, body: dict[str, Any], key: str = "owner_id") -> int:
        """The user id ``key`` names; the company's only user is the token's, any other is refused."""
        owner_id = _int_field(body, key)
        if owner_id is None or owner_id != self.user["id"]:
            raise _bad_request(f"Validation failed: owner_id: user {owner_id} not found")
        return owner_id

    def _linked_id(self, body: dict[str, Any], key: str, *, nullable: bool = True) -> int | None:
        """The id of the person, organization or deal ``key`` links to (``person_id``, ``org_id``,
        ``organization_id``, ``deal_id``); refused unless the company has that record."""
        record_id = _int_field(body, key, nullable=nullable)
        linked: dict[str, tuple[Container[int], str]] = {
            "person_id": (self.persons, "person"),
            "org_id": (self.organizations, "organization"),
            "organization_id": (self.organizations, "organization"),
            "deal_id": (self.deals, "deal"),
        }
        records, noun = linked[key]
        if record_id is not None and record_id not in records:
            raise _bad_request(f"Validation failed: {key}: {noun} {record_id} not found")
        return record_id

    def _check_lead(self, lead_id: str | None) -> None:
        if lead_id is not None and lead_id not in self.leads:
            raise _bad_request(f"Validation failed: lead_id: lead {lead_id} not found")

    def _refuse_if_invalid(self, path: str) -> None:
        if self.take_fault(FaultKind.INVALID_RECORD, path):
            raise _bad_request("Validation failed: the record was rejected as invalid")

    # -- users ---------------------------------------------------------------------------------------------------
    async def _get_current_user(self, request: Request) -> Response:
        created = self.user["created"]
        return _ok(
            {
                "id": self.user["id"],
                "name": self.user["name"],
                "default_currency": "USD",
                "locale": "en_US",
                "lang": 1,
                "email": self.user["email"],
                "phone": None,
                "activated": True,
                "last_login": _v1_time(self.clock.now()),
                "created": _v1_time(created),
                "modified": _v1_time(created),
                "has_created_company": True,
                "access": [{"app": "sales", "admin": True, "permission_set_id": "sandbox-admin"}],
                "active_flag": True,
                "timezone_name": "UTC",
                "timezone_offset": "+00:00",
                "role_id": 1,
                "icon_url": None,
                "is_you": True,
                "is_deleted": False,
                "company_id": self.company_id,
                "company_name": f"{self.company_domain} (sandbox)",
                "company_domain": self.company_domain,
                "company_country": "US",
                "language": {"language_code": "en", "country_code": "US"},
            }
        )

    # -- persons (v2) --------------------------------------------------------------------------------------------
    def _custom_person_fields(self) -> dict[str, PersonField]:
        return {f.key: f for f in self.person_fields if f.custom}

    def _person_wire(self, person: Person, only_custom: set[str] | None = None) -> dict[str, Any]:
        first, _, last = person.name.partition(" ")
        custom_keys = [k for k in self._custom_person_fields() if only_custom is None or k in only_custom]
        data: dict[str, Any] = {
            "id": person.id,
            "name": person.name,
            "first_name": first,
            "last_name": last,
            "owner_id": person.owner_id,
            "add_time": _v2_time(person.add_time),
            "update_time": _v2_time(person.update_time),
            "emails": [dict(e) for e in person.emails],
            "phones": [dict(p) for p in person.phones],
            "is_deleted": False,
            "visible_to": person.visible_to,
            "label_ids": list(person.label_ids),
            "custom_fields": {key: person.custom_fields.get(key) for key in custom_keys},
        }
        if person.org_id is not None:
            data["org_id"] = person.org_id
        return data

    def _contact_items(self, body: dict[str, Any], key: str) -> list[dict[str, Any]]:
        items = body.get(key)
        if not isinstance(items, list):
            raise _bad_request(f"Validation failed: {key}: must be an array of {{value, primary, label}}")
        cleaned: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            where = f"{key}[{index}]"
            if not isinstance(item, dict):
                raise _bad_request(f"Validation failed: {where}: must be an object")
            _reject_unknown(item, ("value", "primary", "label"), where)
            value = _str_field(item, "value", required=True) if "value" in item else ""
            if not value:
                raise _bad_request(f"Validation failed: {where}.value: is required")
            primary = _bool_field(item, "primary") if "primary" in item else False
            label = _str_field(item, "label") if "label" in item else "work"
            cleaned.append({"value": value, "primary": primary, "label": label or "work"})
        primaries = sum(1 for item in cleaned if item["primary"])
        if primaries > 1:
            raise _bad_request(f"Validation failed: {key}: only one item can be primary")
        if cleaned and primaries == 0:
            cleaned[0]["primary"] = True
        return cleaned

    def _custom_values(self, body: dict[str, Any], fields: dict[str, PersonField]) -> dict[str, Any]:
        values = body.get("custom_fields")
        if not isinstance(values, dict):
            raise _bad_request("Validation failed: custom_fields: must be an object keyed by field key")
        checked: dict[str, Any] = {}
        for key, value in values.items():
            person_field = fields.get(key)
            if person_field is None:
                raise _bad_request(f"Validation failed: custom_fields: unknown custom field key {key!r}")
            checked[key] = _custom_value(person_field, value, self)
        return checked

    def _person_changes(self, body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        contact_sync_only = {"postal_address", "notes", "im", "birthday", "job_title", "marketing_status"}
        present = contact_sync_only & set(body)
        if present:
            raise _bad_request(
                f"Validation failed: {', '.join(sorted(present))}: only available when contact sync is enabled"
            )
        allowed = ["name", "owner_id", "org_id", "emails", "phones", "visible_to", "label_ids", "custom_fields"]
        if creating:
            allowed.append("add_time")
        _reject_unknown(body, allowed, "person")
        changes: dict[str, Any] = {}
        if creating or "name" in body:
            changes["name"] = _required_text(body, "name")
        if "owner_id" in body:
            changes["owner_id"] = self._owner_field(body)
        if "org_id" in body:
            changes["org_id"] = self._linked_id(body, "org_id")
        for key in ("emails", "phones"):
            if key in body:
                changes[key] = self._contact_items(body, key)
        if "visible_to" in body:
            changes["visible_to"] = _visible_to_field(body["visible_to"])
        if "label_ids" in body:
            labels = body["label_ids"]
            if not isinstance(labels, list) or not all(_is_int(x) for x in labels):
                raise _bad_request("Validation failed: label_ids: must be an array of integers")
            changes["label_ids"] = list(labels)
        if "custom_fields" in body:
            changes["custom_fields"] = self._custom_values(body, self._custom_person_fields())
        if "add_time" in body:
            changes["add_time"] = parse_rfc3339(_str_field(body, "add_time", required=True), "add_time")
        return changes

    @staticmethod
    def _apply_person(person: Person, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if key == "custom_fields":
                for field_key, field_value in value.items():
                    if field_value is None:
                        person.custom_fields.pop(field_key, None)
                    else:
                        person.custom_fields[field_key] = field_value
            elif key != "add_time":
                setattr(person, key, value)

    def _person_or_404(self, request: Request) -> Person:
        return _path_record_or_404(request, self.persons, "person_id", "Person")

    def _check_person_permission(self) -> None:
        if not self.can_edit_persons:
            raise PipedriveApiError(403, NO_PERMISSION)

    async def _create_person(self, request: Request) -> Response:
        self._check_person_permission()
        body = await _json_body(request)
        changes = self._person_changes(body, creating=True)
        self._refuse_if_invalid(request.url.path)
        now = self.clock.now()
        person = Person(
            id=self._take_id("person"),
            name=changes["name"],
            owner_id=self.user["id"],
            add_time=changes.get("add_time", now),
            update_time=now,
        )
        self._apply_person(person, changes)
        self.persons[person.id] = person
        return _ok(self._person_wire(person))

    async def _get_person(self, request: Request) -> Response:
        person = self._person_or_404(request)
        return _ok(self._person_wire(person, _custom_filter(request)))

    async def _update_person(self, request: Request) -> Response:
        self._check_person_permission()
        person = self._person_or_404(request)
        changes = self._person_changes(await _json_body(request), creating=False)
        self._refuse_if_invalid(request.url.path)
        self._apply_person(person, changes)
        person.update_time = self.clock.now()
        return _ok(self._person_wire(person))

    async def _delete_person(self, request: Request) -> Response:
        person = self._person_or_404(request)
        del self.persons[person.id]
        return _ok({"id": person.id})

    async def _merge_persons(self, request: Request) -> Response:
        """``PUT /v1/persons/{id}/merge``: person ``id`` folds into ``merge_with_id``, whose data wins where both
        have a value; emails and phones are combined; deals, leads, notes and activities move to the survivor; the
        answer is the survivor in v1's shape with ``merge_what_id``."""
        merged = self._person_or_404(request)
        body = await _json_body(request)
        raw = body.get("merge_with_id")
        if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).isdigit():
            raise _bad_request("Validation failed: merge_with_id: is required and must be an integer")
        survivor = self.persons.get(int(raw))
        if survivor is None:
            raise PipedriveApiError(404, "Person not found")
        if survivor.id == merged.id:
            raise _bad_request("Cannot merge a person with itself")
        for kind in ("emails", "phones"):
            kept = getattr(survivor, kind)
            values = {item["value"].lower() for item in kept}
            for item in getattr(merged, kind):
                if item["value"].lower() not in values:
                    kept.append({**item, "primary": False})
        for key, value in merged.custom_fields.items():
            if survivor.custom_fields.get(key) in (None, "") and value not in (None, ""):
                survivor.custom_fields[key] = value
        if survivor.org_id is None:
            survivor.org_id = merged.org_id
        for owned in (*self.leads.values(), *self.deals.values(), *self.notes.values(), *self.activities.values()):
            if getattr(owned, "person_id", None) == merged.id:
                setattr(owned, "person_id", survivor.id)  # noqa: B010 - four record classes share the field
        del self.persons[merged.id]
        survivor.update_time = self.clock.now()
        first, _, last = survivor.name.partition(" ")
        data: dict[str, Any] = {
            "id": survivor.id,
            "name": survivor.name,
            "first_name": first,
            "last_name": last,
            "owner_id": survivor.owner_id,
            "email": [dict(e) for e in survivor.emails],
            "phone": [dict(p) for p in survivor.phones],
            "active_flag": True,
            "visible_to": str(survivor.visible_to),
            "add_time": _v1_time(survivor.add_time),
            "update_time": _v1_time(survivor.update_time),
            "merge_what_id": merged.id,
            **_v1_custom_values(survivor.custom_fields, self._custom_person_fields()),
        }
        if survivor.org_id is not None:  # the spec's org_id is a non-nullable integer: absent when there is none
            data["org_id"] = survivor.org_id
        return _ok(data)

    async def _list_persons(self, request: Request) -> Response:
        persons: list[Person] = list(self.persons.values())
        owner_id = _query_int(request, "owner_id")
        org_id = _query_int(request, "org_id")
        deal_id = _query_int(request, "deal_id")
        if owner_id is not None:
            persons = [p for p in persons if p.owner_id == owner_id]
        if org_id is not None:
            persons = [p for p in persons if p.org_id == org_id]
        if deal_id is not None:
            linked = {d.person_id for d in self.deals.values() if d.id == deal_id}
            persons = [p for p in persons if p.id in linked]
        persons = _filter_ids(request, persons, lambda p: p.id)
        persons = _filter_updated(request, persons, lambda p: p.update_time)
        page, next_cursor = _v2_page(request, persons, _TIMESTAMP_SORTS, lambda p: p.id)
        only = _custom_filter(request)
        return _ok([self._person_wire(p, only) for p in page], {"next_cursor": next_cursor})

    async def _search_persons(self, request: Request) -> Response:
        term = (request.query_params.get("term") or "").strip()
        exact = bool(_query_bool(request, "exact_match"))
        if len(term) < (1 if exact else 2):
            raise _bad_request("Invalid parameter term: needs at least 2 characters (1 with exact_match)")
        fields_param = request.query_params.get("fields")
        fields = [f.strip() for f in fields_param.split(",")] if fields_param else list(_SEARCH_FIELDS)
        unknown = [f for f in fields if f not in _SEARCH_FIELDS]
        if unknown:
            raise _bad_request(f"Invalid parameter fields: {', '.join(unknown)} (allowed: {', '.join(_SEARCH_FIELDS)})")
        organization_id = _query_int(request, "organization_id")
        limit = _page_limit(request)
        cursor = request.query_params.get("cursor")
        offset = 0
        if cursor:
            offset_value = _decode_cursor(cursor).get("offset")
            if not _is_int(offset_value) or offset_value < 0:
                raise _bad_request("Invalid cursor")
            offset = int(offset_value)
        hits: list[tuple[float, Person, list[str]]] = []
        for person in self.persons.values():
            if organization_id is not None and person.org_id != organization_id:
                continue
            score, matched_custom = self._match_person(person, term, fields, exact)
            if score > 0:
                hits.append((score, person, matched_custom))
        hits.sort(key=lambda hit: (-hit[0], hit[1].id))
        page = hits[offset : offset + limit]
        more = offset + limit < len(hits)
        items = [
            {"result_score": round(score, 4), "item": self._search_item(person, matched)}
            for score, person, matched in page
        ]
        next_cursor = _encode_cursor({"offset": offset + limit}) if more else None
        return _ok({"items": items}, {"next_cursor": next_cursor})

    def _match_person(self, person: Person, term: str, fields: list[str], exact: bool) -> tuple[float, list[str]]:
        wanted = term.casefold()
        candidates: list[str] = []
        if "name" in fields:
            candidates.append(person.name)
        if "email" in fields:
            candidates.extend(str(e["value"]) for e in person.emails)
        if "phone" in fields:
            candidates.extend(str(p["value"]) for p in person.phones)
        matched_custom: list[str] = []
        if "custom_fields" in fields:
            for value in person.custom_fields.values():
                if isinstance(value, str | int | float) and not isinstance(value, bool):
                    text = str(value)
                    if _text_score(text, wanted, exact) > 0:
                        matched_custom.append(text)
                    candidates.append(text)
        best = 0.0
        for candidate in candidates:
            best = max(best, _text_score(candidate, wanted, exact))
            if "phone" in fields and candidate in {str(p["value"]) for p in person.phones}:
                best = max(best, _phone_score(candidate, term, exact))
        return best, matched_custom

    def _search_item(self, person: Person, matched_custom: list[str]) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": person.id,
            "type": "person",
            "name": person.name,
            "phones": [str(p["value"]) for p in person.phones],
            "emails": [str(e["value"]) for e in person.emails],
            "visible_to": person.visible_to,
            "owner": {"id": person.owner_id},
            "custom_fields": matched_custom,
            "notes": [],
        }
        org = self.organizations.get(person.org_id) if person.org_id is not None else None
        if org is not None:
            item["organization"] = {"id": org.id, "name": org.name}
        return item

    # -- leads (v1) ----------------------------------------------------------------------------------------------
    def _lead_wire(self, lead: PipedriveLead) -> dict[str, Any]:
        return {
            "id": lead.id,
            "title": lead.title,
            "owner_id": lead.owner_id,
            "creator_id": self.user["id"],
            "label_ids": list(lead.label_ids),
            "person_id": lead.person_id,
            "organization_id": lead.organization_id,
            "source_name": "API",
            "origin": "API",
            "origin_id": lead.origin_id,
            "channel": lead.channel,
            "channel_id": lead.channel_id,
            "source_deal_id": None,
            "is_archived": lead.is_archived,
            "was_seen": lead.was_seen,
            "value": dict(lead.value) if lead.value is not None else None,
            "expected_close_date": lead.expected_close_date,
            "next_activity_id": None,
            "add_time": iso_ms(lead.add_time),
            "update_time": iso_ms(lead.update_time),
            "visible_to": lead.visible_to,
            "cc_email": f"{self.company_domain}+lead{lead.sequence}@pipedrivemail.com",
        }

    def _lead_changes(self, body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        allowed = [
            "title", "owner_id", "label_ids", "person_id", "organization_id", "value", "expected_close_date",
            "visible_to", "was_seen", "origin_id", "channel", "channel_id",
        ]  # fmt: skip
        if not creating:
            allowed.append("is_archived")
        _reject_unknown(body, allowed, "lead")
        changes: dict[str, Any] = {}
        if creating or "title" in body:
            changes["title"] = _required_text(body, "title")
        if "owner_id" in body:
            changes["owner_id"] = self._owner_field(body)
        for key in ("person_id", "organization_id"):
            if key in body:
                changes[key] = self._linked_id(body, key)
        if "label_ids" in body:
            labels = body["label_ids"]
            if not isinstance(labels, list) or not all(isinstance(x, str) and _is_uuid(x) for x in labels):
                raise _bad_request("Validation failed: label_ids: must be an array of UUIDs")
            changes["label_ids"] = list(labels)
        if "value" in body:
            changes["value"] = _lead_value(body["value"])
        if "expected_close_date" in body:
            changes["expected_close_date"] = _date_field(body, "expected_close_date", nullable=True)
        if "visible_to" in body:
            if body["visible_to"] not in {"1", "3", "5", "7"}:
                raise _bad_request("Validation failed: visible_to: must be one of '1', '3', '5', '7'")
            changes["visible_to"] = body["visible_to"]
        for flag in ("was_seen", "is_archived"):
            if flag in body:
                changes[flag] = _bool_field(body, flag)
        if "origin_id" in body:
            changes["origin_id"] = None if body["origin_id"] is None else _str_field(body, "origin_id")
        if "channel" in body:
            changes["channel"] = None if body["channel"] is None else _int_field(body, "channel")
        if "channel_id" in body:
            changes["channel_id"] = None if body["channel_id"] is None else _str_field(body, "channel_id")
        return changes

    @staticmethod
    def _apply_lead(lead: PipedriveLead, changes: dict[str, Any]) -> None:
        person_id = changes.get("person_id", lead.person_id)
        organization_id = changes.get("organization_id", lead.organization_id)
        if person_id is None and organization_id is None:
            raise _bad_request("Validation failed: a lead must be linked to a person_id or an organization_id")
        for key, value in changes.items():
            setattr(lead, key, value)

    def _lead_or_404(self, request: Request) -> PipedriveLead:
        lead_id = str(request.path_params["lead_id"])
        if not _is_uuid(lead_id):
            raise _bad_request(f"Invalid lead id {lead_id!r}: lead ids are UUIDs")
        lead = self.leads.get(lead_id)
        if lead is None:
            raise PipedriveApiError(404, "Lead not found")
        return lead

    async def _create_lead(self, request: Request) -> Response:
        changes = self._lead_changes(await _json_body(request), creating=True)
        if changes.get("person_id") is None and changes.get("organization_id") is None:
            raise _bad_request("Validation failed: person_id or organization_id is required to create a lead")
        self._refuse_if_invalid(request.url.path)
        now = self.clock.now()
        lead = PipedriveLead(
            id=self._new_uuid(),
            sequence=self._take_id("lead"),
            title=changes["title"],
            owner_id=self.user["id"],
            add_time=now,
            update_time=now,
        )
        self._apply_lead(lead, changes)
        self.leads[lead.id] = lead
        return _ok(self._lead_wire(lead), status=201)

    async def _get_lead(self, request: Request) -> Response:
        return _ok(self._lead_wire(self._lead_or_404(request)))

    async def _update_lead(self, request: Request) -> Response:
        lead = self._lead_or_404(request)
        changes = self._lead_changes(await _json_body(request), creating=False)
        self._refuse_if_invalid(request.url.path)
        self._apply_lead(lead, changes)
        lead.update_time = self.clock.now()
        return _ok(self._lead_wire(lead))

    async def _delete_lead(self, request: Request) -> Response:
        lead = self._lead_or_404(request)
        del self.leads[lead.id]
        return _ok({"id": lead.id})

    async def _list_leads(self, request: Request) -> Response:
        leads: list[PipedriveLead] = list(self.leads.values())
        leads = _filter_by_numbers(request, leads, ("owner_id", "person_id", "organization_id"))
        leads = _filter_updated_since(request, leads, lambda lead: lead.update_time)
        sort_keys: dict[str, Callable[[PipedriveLead], Any]] = {
            "id": lambda lead: lead.sequence,
            "title": lambda lead: lead.title.casefold(),
            "owner_id": lambda lead: lead.owner_id,
            "creator_id": lambda lead: 1,
            "was_seen": lambda lead: lead.was_seen,
            "expected_close_date": lambda lead: lead.expected_close_date or "",
            "next_activity_id": lambda lead: 0,
            "add_time": lambda lead: lead.add_time,
            "update_time": lambda lead: lead.update_time,
        }
        leads = _v1_sort(request, leads, sort_keys, tiebreak=lambda lead: lead.sequence)
        page, additional = _v1_page(request, leads)
        return _ok([self._lead_wire(lead) for lead in page], additional)

    # -- notes (v1) ----------------------------------------------------------------------------------------------
    def _note_wire(self, note: Note) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": note.id,
            "user_id": note.user_id,
            "content": note.content,
            "add_time": _v1_time(note.add_time),
            "update_time": _v1_time(note.update_time),
            "active_flag": True,
            "last_update_user_id": note.user_id,
            "user": {"email": self.user["email"], "is_you": True, "name": self.user["name"]},
        }
        for flag in _PIN_TARGETS:
            data[f"pinned_to_{flag}_flag"] = note.pinned.get(flag, False)
        if note.person_id is not None:
            data["person_id"] = note.person_id
            person = self.persons.get(note.person_id)
            data["person"] = {"name": person.name} if person else {}
        if note.lead_id is not None:
            data["lead_id"] = note.lead_id
        if note.deal_id is not None:
            data["deal_id"] = note.deal_id
            deal = self.deals.get(note.deal_id)
            data["deal"] = {"title": deal.title} if deal else {}
        if note.org_id is not None:
            data["org_id"] = note.org_id
            org = self.organizations.get(note.org_id)
            data["organization"] = {"name": org.name} if org else {}
        return data

    def _note_target(self, body: dict[str, Any]) -> dict[str, Any]:
        given = [key for key in ("person_id", "lead_id", "deal_id", "org_id") if body.get(key) is not None]
        if len(given) != 1:
            raise _bad_request(
                "Validation failed: a note needs exactly one of person_id, lead_id, deal_id or org_id"
                + (f" (got {', '.join(given)})" if given else "")
            )
        key = given[0]
        if key == "lead_id":
            lead_id = _str_field(body, "lead_id", required=True)
            if not _is_uuid(lead_id):
                raise _bad_request("Validation failed: lead_id: must be a UUID")
            self._check_lead(lead_id)
            return {"lead_id": lead_id}
        return {key: self._linked_id(body, key, nullable=False)}

    async def _create_note(self, request: Request) -> Response:
        body = await _json_body(request)
        content = _required_text(body, "content")
        target = self._note_target(body)
        user_id = self._owner_field(body, "user_id") if "user_id" in body else self.user["id"]
        pinned = _pinned_flags(body)
        self._refuse_if_invalid(request.url.path)
        now = self.clock.now()
        add_time = now
        if "add_time" in body:
            try:
                add_time = datetime.strptime(_str_field(body, "add_time"), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            except ValueError:
                raise _bad_request("Validation failed: add_time: must be YYYY-MM-DD HH:MM:SS (UTC)") from None
        note = Note(
            id=self._take_id("note"),
            content=content,
            user_id=user_id or self.user["id"],
            add_time=add_time,
            update_time=now,
            pinned=pinned,
            **target,
        )
        self.notes[note.id] = note
        return _ok(self._note_wire(note))

    def _note_or_404(self, request: Request) -> Note:
        return _path_record_or_404(request, self.notes, "note_id", "Note")

    async def _get_note(self, request: Request) -> Response:
        return _ok(self._note_wire(self._note_or_404(request)))

    async def _update_note(self, request: Request) -> Response:
        note = self._note_or_404(request)
        body = await _json_body(request)
        if "content" in body:
            note.content = _str_field(body, "content", required=True)
        pinned = _pinned_flags(body)
        self._refuse_if_invalid(request.url.path)
        note.pinned.update(pinned)
        note.update_time = self.clock.now()
        return _ok(self._note_wire(note))

    async def _delete_note(self, request: Request) -> Response:
        note = self._note_or_404(request)
        del self.notes[note.id]
        return _ok(True)

    async def _list_notes(self, request: Request) -> Response:
        notes: list[Note] = list(self.notes.values())
        notes = _filter_by_numbers(request, notes, ("user_id", "person_id", "deal_id", "org_id"))
        notes = _filter_by_texts(request, notes, ("lead_id",))
        notes = _filter_updated_since(request, notes, lambda note: note.update_time)
        sort_keys: dict[str, Callable[[Note], Any]] = {
            "id": lambda note: note.id,
            "add_time": lambda note: note.add_time,
            "update_time": lambda note: note.update_time,
            "user_id": lambda note: note.user_id,
        }
        notes = _v1_sort(request, notes, sort_keys, tiebreak=lambda note: note.id)
        page, additional = _v1_page(request, notes)
        return _ok([self._note_wire(note) for note in page], additional)

    # -- person fields (v1) ----------------------------------------------------------------------------------------
    def _add_person_field(
        self,
        name: str,
        field_type: str,
        options: Iterable[str],
        *,
        key: str | None = None,
        mandatory: bool = False,
        add_visible: bool = True,
    ) -> PersonField:
        number = self._take_id("person_field")
        custom = key is None
        if key is None:
            key = hashlib.sha1(f"{self.company_domain}:{number}:{name}".encode()).hexdigest()
        labels = list(options)
        person_field = PersonField(
            id=number,
            key=key,
            name=name,
            field_type=field_type,
            order_nr=number,
            add_time=self.clock.now(),
            custom=custom,
            mandatory=mandatory,
            add_visible=add_visible,
            options=[{"id": index, "label": label} for index, label in enumerate(labels, start=1)]
            if field_type in {"enum", "set"}
            else None,
        )
        self.person_fields.append(person_field)
        return person_field

    async def _list_person_fields(self, request: Request) -> Response:
        page, additional = _v1_page(request, list(self.person_fields))
        return _ok([f.to_wire() for f in page], additional)

    async def _create_person_field(self, request: Request) -> Response:
        if not self.can_add_fields:
            raise PipedriveApiError(403, "You do not have permission to add custom fields")
        body = await _json_body(request)
        name = _required_text(body, "name")
        _require_parameter(body, "field_type")
        field_type = body["field_type"]
        if field_type not in PERSON_FIELD_TYPES:
            raise _bad_request(f"Validation failed: field_type: must be one of {', '.join(PERSON_FIELD_TYPES)}")
        labels: list[str] = []
        if field_type in {"enum", "set"}:
            options = body.get("options")
            if not isinstance(options, list) or not options:
                raise _bad_request(f"Validation failed: options: a {field_type} field needs at least one option")
            for option in options:
                if not isinstance(option, dict) or not isinstance(option.get("label"), str) or not option["label"]:
                    raise _bad_request("Validation failed: options: each option needs a label")
                labels.append(option["label"])
        add_visible = _bool_field(body, "add_visible_flag") if "add_visible_flag" in body else True
        person_field = self._add_person_field(name, str(field_type), labels, add_visible=add_visible)
        return _ok(person_field.to_wire())

    # -- activities (v2) -------------------------------------------------------------------------------------------
    def _activity_wire(self, activity: Activity) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": activity.id,
            "subject": activity.subject,
            "type": activity.type,
            "owner_id": activity.owner_id,
            "creator_user_id": self.user["id"],
            "is_deleted": False,
            "add_time": _v2_time(activity.add_time),
            "update_time": _v2_time(activity.update_time),
            "busy": activity.busy,
            "done": activity.done,
            "participants": [dict(p) for p in activity.participants],
            "attendees": [],
        }
        optional: dict[str, Any] = {
            "person_id": activity.person_id,
            "deal_id": activity.deal_id,
            "lead_id": activity.lead_id,
            "org_id": activity.org_id,
            "due_date": activity.due_date,
            "due_time": activity.due_time,
            "duration": activity.duration,
            "note": activity.note,
            "public_description": activity.public_description,
            "priority": activity.priority,
            "marked_as_done_time": _v2_time(activity.marked_as_done_time) if activity.marked_as_done_time else None,
        }
        data.update({key: value for key, value in optional.items() if value is not None})
        return data

    async def _create_activity(self, request: Request) -> Response:
        body = await _json_body(request)
        allowed = [
            "subject", "type", "owner_id", "deal_id", "lead_id", "person_id", "org_id", "project_id", "due_date",
            "due_time", "duration", "busy", "done", "location", "participants", "attendees", "public_description",
            "priority", "note",
        ]  # fmt: skip
        _reject_unknown(body, allowed, "activity")
        activity_type = body.get("type", "task")
        if activity_type not in _ACTIVITY_TYPES:
            raise _bad_request(f"Validation failed: type: must be one of {', '.join(_ACTIVITY_TYPES)}")
        subject = _str_field(body, "subject", required=True) if "subject" in body else activity_type.capitalize()
        owner_id = self._owner_field(body) if "owner_id" in body else self.user["id"]
        links: dict[str, Any] = {}
        for key in ("person_id", "deal_id", "org_id"):
            if body.get(key) is not None:
                links[key] = self._linked_id(body, key)
        if body.get("lead_id") is not None:
            links["lead_id"] = _str_field(body, "lead_id", required=True)
            self._check_lead(links["lead_id"])
        participants = self._participants(body, links.get("person_id"))
        if participants and "person_id" not in links:
            links["person_id"] = next(p["person_id"] for p in participants if p["primary"])
        schedule: dict[str, Any] = {}
        if "due_date" in body:
            schedule["due_date"] = _date_field(body, "due_date")
        for key in ("due_time", "duration"):
            if key in body:
                value = _str_field(body, key)
                if not _TIME_RE.match(value):
                    raise _bad_request(f"Validation failed: {key}: must be HH:MM")
                # Kept and answered with seconds, as v2 answers them (15:00 is read back as 15:00:00).
                schedule[key] = value if len(value) == 8 else f"{value}:00"
        text: dict[str, Any] = {key: _str_field(body, key) for key in ("note", "public_description") if key in body}
        if "priority" in body:
            text["priority"] = _int_field(body, "priority")
        busy = _bool_field(body, "busy") if "busy" in body else False
        done = _bool_field(body, "done") if "done" in body else False
        self._refuse_if_invalid(request.url.path)
        now = self.clock.now()
        activity = Activity(
            id=self._take_id("activity"),
            subject=subject,
            type=str(activity_type),
            owner_id=int(owner_id or self.user["id"]),
            add_time=now,
            update_time=now,
            participants=participants,
            busy=busy,
            done=done,
            marked_as_done_time=now if done else None,
            **links,
            **schedule,
            **text,
        )
        self.activities[activity.id] = activity
        return _ok(self._activity_wire(activity))

    def _participants(self, body: dict[str, Any], person_id: int | None) -> list[dict[str, Any]]:
        raw = body.get("participants")
        if raw is None:
            return [{"person_id": person_id, "primary": True}] if person_id is not None else []
        if not isinstance(raw, list):
            raise _bad_request("Validation failed: participants: must be an array of {person_id, primary}")
        participants: list[dict[str, Any]] = []
        for item in raw:
            if not isinstance(item, dict):
                raise _bad_request("Validation failed: participants: each item must be an object")
            participant = self._linked_id(item, "person_id", nullable=False)
            participants.append({"person_id": participant, "primary": bool(item.get("primary", False))})
        if participants and not any(p["primary"] for p in participants):
            participants[0]["primary"] = True
        return participants

    async def _get_activity(self, request: Request) -> Response:
        activity = _path_record_or_404(request, self.activities, "activity_id", "Activity")
        return _ok(self._activity_wire(activity))

    async def _list_activities(self, request: Request) -> Response:
        activities: list[Activity] = list(self.activities.values())
        activities = _filter_by_numbers(request, activities, ("owner_id", "deal_id", "person_id", "org_id"))
        activities = _filter_by_texts(request, activities, ("lead_id",))
        done = _query_bool(request, "done")
        if done is not None:
            activities = [a for a in activities if a.done is done]
        activities = _filter_ids(request, activities, lambda a: a.id)
        activities = _filter_updated(request, activities, lambda a: a.update_time)
        sorts: dict[str, Callable[[Any], Any]] = {**_TIMESTAMP_SORTS, "due_date": lambda a: a.due_date or ""}
        page, next_cursor = _v2_page(request, activities, sorts, lambda a: a.id)
        return _ok([self._activity_wire(a) for a in page], {"next_cursor": next_cursor})

    # -- deals (v2) ----------------------------------------------------------------------------------------------
    def _deal_wire(self, deal: Deal) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": deal.id,
            "title": deal.title,
            "owner_id": deal.owner_id,
            "pipeline_id": deal.pipeline_id,
            "stage_id": deal.stage_id,
            "value": deal.value,
            "currency": deal.currency,
            "add_time": _v2_time(deal.add_time),
            "update_time": _v2_time(deal.update_time),
            "stage_change_time": _v2_time(deal.add_time),
            "is_deleted": False,
            "is_archived": False,
            "status": deal.status,
            "probability": deal.probability,
            "lost_reason": None,
            "visible_to": deal.visible_to,
            "close_time": _v2_time(deal.close_time) if deal.close_time else None,
            "label_ids": list(deal.label_ids),
            "origin": "API",
            "origin_id": None,
            "channel": None,
            "channel_id": None,
            "source_lead_id": None,
            "arr": None,
            "mrr": None,
            "acv": None,
            "custom_fields": {},
        }
        optional: dict[str, Any] = {
            "person_id": deal.person_id,
            "org_id": deal.org_id,
            "expected_close_date": deal.expected_close_date,
            "won_time": _v2_time(deal.won_time) if deal.won_time else None,
            "lost_time": _v2_time(deal.lost_time) if deal.lost_time else None,
        }
        data.update({key: value for key, value in optional.items() if value is not None})
        return data

    async def _create_deal(self, request: Request) -> Response:
        body = await _json_body(request)
        allowed = [
            "title", "owner_id", "person_id", "org_id", "pipeline_id", "stage_id", "value", "currency", "status",
            "probability", "expected_close_date", "visible_to", "label_ids", "custom_fields", "is_deleted",
            "is_archived", "archive_time", "lost_reason", "close_time", "won_time", "lost_time",
        ]  # fmt: skip
        _reject_unknown(body, allowed, "deal")
        title = _required_text(body, "title")
        owner_id = self._owner_field(body) if "owner_id" in body else self.user["id"]
        person_id = self._linked_id(body, "person_id") if "person_id" in body else None
        org_id = self._linked_id(body, "org_id") if "org_id" in body else None
        value = body.get("value", 0)
        if not _is_number(value) or value < 0:
            raise _bad_request("Validation failed: value: must be a non-negative number")
        currency = _str_field(body, "currency", required=True) if "currency" in body else "USD"
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise _bad_request("Validation failed: currency: must be a 3-letter currency code")
        status = body.get("status", "open")
        if status not in _DEAL_STATUSES:
            raise _bad_request(f"Validation failed: status: must be one of {', '.join(_DEAL_STATUSES)}")
        probability = body.get("probability")
        if probability is not None and (not _is_number(probability) or not 0 <= probability <= 100):
            raise _bad_request("Validation failed: probability: must be a number from 0 to 100")
        custom = body.get("custom_fields") or {}
        if not isinstance(custom, dict) or custom:
            raise _bad_request("Validation failed: custom_fields: this company has no custom deal fields")
        expected = _date_field(body, "expected_close_date", nullable=True) if "expected_close_date" in body else None
        visible_to = _visible_to_field(body.get("visible_to", 3))
        stage = self._deal_stage(body)
        self._refuse_if_invalid(request.url.path)
        now = self.clock.now()
        deal = Deal(
            pipeline_id=stage.pipeline_id,
            stage_id=stage.id,
            id=self._take_id("deal"),
            title=title,
            owner_id=int(owner_id or self.user["id"]),
            add_time=now,
            update_time=now,
            person_id=person_id,
            org_id=org_id,
            value=value,
            currency=currency,
            status=str(status),
            probability=probability,
            expected_close_date=expected,
            visible_to=visible_to,
            won_time=now if status == "won" else None,
            lost_time=now if status == "lost" else None,
            close_time=now if status in {"won", "lost"} else None,
        )
        self.deals[deal.id] = deal
        return _ok(self._deal_wire(deal))

    async def _get_deal(self, request: Request) -> Response:
        deal = _path_record_or_404(request, self.deals, "deal_id", "Deal")
        return _ok(self._deal_wire(deal))

    async def _list_deals(self, request: Request) -> Response:
        deals: list[Deal] = list(self.deals.values())
        deals = _filter_by_numbers(request, deals, ("owner_id", "person_id", "org_id", "pipeline_id", "stage_id"))
        status = request.query_params.get("status")
        if status:
            deals = [d for d in deals if d.status in status.split(",")]
        deals = _filter_ids(request, deals, lambda d: d.id)
        deals = _filter_updated(request, deals, lambda d: d.update_time)
        page, next_cursor = _v2_page(request, deals, _TIMESTAMP_SORTS, lambda d: d.id)
        return _ok([self._deal_wire(d) for d in page], {"next_cursor": next_cursor})

    def _deal_stage(self, body: dict[str, Any]) -> Stage:
        """The stage a new deal goes to: ``stage_id`` (which names its pipeline), else the first stage of
        ``pipeline_id``, else the first stage of the default pipeline (the lowest ``order_nr``)."""
        if body.get("stage_id") is not None:
            stage_id = _int_field(body, "stage_id")
            stage = self.stages.get(int(stage_id or 0))
            if stage is None:
                raise _bad_request(f"Validation failed: stage_id: stage {stage_id} not found")
            if body.get("pipeline_id") is not None and _int_field(body, "pipeline_id") != stage.pipeline_id:
                raise _bad_request(
                    f"Validation failed: stage_id: stage {stage.id} is not in pipeline {body['pipeline_id']}"
                )
            return stage
        if body.get("pipeline_id") is not None:
            pipeline_id = _int_field(body, "pipeline_id")
            if pipeline_id not in self.pipelines:
                raise _bad_request(f"Validation failed: pipeline_id: pipeline {pipeline_id} not found")
        else:
            pipeline_id = min(self.pipelines.values(), key=lambda p: p.order_nr).id
        return min((s for s in self.stages.values() if s.pipeline_id == pipeline_id), key=lambda s: s.order_nr)

    # -- pipelines and stages (v2) ---------------------------------------------------------------------------------
    def _pipeline_wire(self, pipeline: Pipeline) -> dict[str, Any]:
        return {
            "id": pipeline.id,
            "name": pipeline.name,
            "order_nr": pipeline.order_nr,
            "is_deleted": False,
            "is_deal_probability_enabled": pipeline.is_deal_probability_enabled,
            "add_time": _v2_time(pipeline.add_time),
            "update_time": _v2_time(pipeline.add_time),
        }

    def _stage_wire(self, stage: Stage) -> dict[str, Any]:
        return {
            "id": stage.id,
            "order_nr": stage.order_nr,
            "name": stage.name,
            "is_deleted": False,
            "deal_probability": stage.deal_probability,
            "pipeline_id": stage.pipeline_id,
            "is_deal_rot_enabled": False,
            "days_to_rotten": None,
            "add_time": _v2_time(stage.add_time),
            "update_time": _v2_time(stage.add_time),
        }

    async def _list_pipelines(self, request: Request) -> Response:
        pipelines = list(self.pipelines.values())
        sorts: dict[str, Callable[[Any], Any]] = {
            "id": lambda p: p.id,
            "update_time": lambda p: epoch_ms(p.add_time),
            "add_time": lambda p: epoch_ms(p.add_time),
        }
        page, next_cursor = _v2_page(request, pipelines, sorts, lambda p: p.id)
        return _ok([self._pipeline_wire(p) for p in page], {"next_cursor": next_cursor})

    async def _get_pipeline(self, request: Request) -> Response:
        pipeline = _path_record_or_404(request, self.pipelines, "pipeline_id", "Pipeline")
        return _ok(self._pipeline_wire(pipeline))

    async def _list_stages(self, request: Request) -> Response:
        stages = list(self.stages.values())
        pipeline_id = _query_int(request, "pipeline_id")
        if pipeline_id is not None:
            stages = [s for s in stages if s.pipeline_id == pipeline_id]
        sorts: dict[str, Callable[[Any], Any]] = {
            "id": lambda s: s.id, "order_nr": lambda s: s.order_nr,
            "update_time": lambda s: epoch_ms(s.add_time), "add_time": lambda s: epoch_ms(s.add_time),
        }
        page, next_cursor = _v2_page(request, stages, sorts, lambda s: s.id)
        return _ok([self._stage_wire(s) for s in page], {"next_cursor": next_cursor})

    # -- a salesperson's doing ---------------------------------------------------------------------------------------
    def salesperson_action(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """``win-deal`` ``{"email", "value"?, "currency"?, "dealId"?}``: the rep marks the person's newest open deal
        won (or the deal ``dealId``); a person with no open deal gets one, won at once (the rep's "add deal, won").

        Raises:
            KeyError: another action, no person with that email, or no such deal.
            ValueError: a bad value or currency, or a deal already closed.
        """
        if action != "win-deal":
            raise KeyError(f"no salesperson action {action!r} in Pipedrive (win-deal)")
        value = payload.get("value")
        if value is not None and (not _is_number(value) or value < 0):
            raise ValueError("value must be a non-negative number")
        currency = payload.get("currency")
        if currency is not None and (not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency)):
            raise ValueError("currency must be a 3-letter currency code")
        now = self.clock.now()
        if payload.get("dealId") is not None:
            deal = self.deals.get(int(payload["dealId"]))
            if deal is None:
                raise KeyError(f"deal {payload['dealId']}")
        else:
            email = str(payload.get("email") or "").strip().lower()
            if not email:
                raise ValueError("win-deal needs the person's email or dealId")
            people = [p for p in self.persons.values() if any(
                str(e.get("value", "")).lower() == email for e in p.emails
            )]
            if not people:
                raise KeyError(f"person with email {email}")
            person = people[0]
            open_deals = sorted(
                (d for d in self.deals.values() if d.person_id == person.id and d.status == "open"),
                key=lambda d: d.add_time, reverse=True,
            )
            if open_deals:
                deal = open_deals[0]
            else:
                stage = self._deal_stage({})
                deal = Deal(
                    id=self._take_id("deal"), title=f"{person.name} deal", owner_id=self.user["id"], add_time=now,
                    update_time=now, person_id=person.id, org_id=person.org_id, pipeline_id=stage.pipeline_id,
                    stage_id=stage.id,
                )
                self.deals[deal.id] = deal
        if deal.status != "open":
            raise ValueError(f"deal {deal.id} is {deal.status} already")
        if value is not None:
            deal.value = value
        if currency is not None:
            deal.currency = currency
        deal.status = "won"
        deal.won_time = deal.close_time = deal.update_time = now
        return self._deal_wire(deal)


# -- helpers shared by the handlers -----------------------------------------------------------------------------

_TIMESTAMP_SORTS: dict[str, Callable[[Any], Any]] = {
    "id": lambda record: record.id,
    "update_time": lambda record: epoch_ms(record.update_time),
    "add_time": lambda record: epoch_ms(record.add_time),
}


def _positive_setting(changes: dict[str, Any], key: str) -> int:
    value = int(changes[key])
    if value <= 0:
        raise ValueError(f"{key} must be a positive integer")
    return value


def _record_number(record_id: str) -> int:
    try:
        return int(record_id)
    except ValueError:
        raise KeyError(record_id) from None


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _lead_value(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or set(value) != {"amount", "currency"}
        or not _is_number(value["amount"])
        or not isinstance(value["currency"], str)
        or not re.fullmatch(r"[A-Z]{3}", value["currency"])
    ):
        raise _bad_request("Validation failed: value: must be {amount: number, currency: 3-letter code} or null")
    return {"amount": value["amount"], "currency": value["currency"]}


def _v1_custom_values(values: dict[str, Any], fields: dict[str, PersonField]) -> dict[str, Any]:
    """Custom values as v1 answers them: at the top level by key, a money value's currency beside its amount under
    ``<key>_currency`` (v2 holds the two as one object)."""
    wire: dict[str, Any] = {}
    for key, person_field in fields.items():
        value = values.get(key)
        if person_field.field_type == "monetary":
            money = value if isinstance(value, dict) else {}
            wire[key], wire[f"{key}_currency"] = money.get("value"), money.get("currency")
        else:
            wire[key] = value
    return wire


def _custom_value(person_field: PersonField, value: Any, sandbox: PipedriveSandbox) -> Any:
    """Check one custom field value against its field type (``None`` clears the value)."""
    if value is None:
        return None
    where = f"Validation failed: custom_fields.{person_field.key} ({person_field.name})"
    kind = person_field.field_type
    if kind in {"varchar", "varchar_auto", "text", "phone", "address"}:
        if not isinstance(value, str):
            raise _bad_request(f"{where}: must be a string")
        return value
    if kind == "double":
        if not _is_number(value):
            raise _bad_request(f"{where}: must be a number")
        return value
    if kind == "monetary":
        # v2 holds an amount with its currency as one object (v1 used the key and ``<key>_currency``).
        if (
            not isinstance(value, dict)
            or set(value) != {"value", "currency"}
            or not _is_number(value["value"])
            or not isinstance(value["currency"], str)
            or not re.fullmatch(r"[A-Z]{3}", value["currency"])
        ):
            raise _bad_request(f"{where}: must be {{value: number, currency: 3-letter code}} or null")
        return {"value": value["value"], "currency": value["currency"]}
    if kind == "enum":
        if not _is_int(value) or value not in person_field.option_ids():
            raise _bad_request(f"{where}: must be the id of one of the field's options")
        return value
    if kind == "set":
        if not isinstance(value, list) or not value or not all(_is_int(v) for v in value):
            raise _bad_request(f"{where}: must be a non-empty array of option ids (null clears it)")
        if not set(value) <= person_field.option_ids():
            raise _bad_request(f"{where}: unknown option id")
        return list(value)
    if kind == "date":
        return _date_field({"value": value}, "value")
    if kind == "time":
        if not isinstance(value, str) or not _TIME_RE.match(value):
            raise _bad_request(f"{where}: must be HH:MM")
        return value
    if kind in {"user", "org", "people"}:
        if not _is_int(value):
            raise _bad_request(f"{where}: must be an id")
        exists = {"user": value == sandbox.user["id"], "org": value in sandbox.organizations}.get(
            kind, value in sandbox.persons
        )
        if not exists:
            raise _bad_request(f"{where}: {value} not found")
        return value
    if kind == "visible_to":
        if not _is_int(value) or value not in _VISIBLE_TO:
            raise _bad_request(f"{where}: must be one of 1, 3, 5, 7")
        return value
    if not isinstance(value, dict):
        raise _bad_request(f"{where}: must be an object")
    return value


def _custom_filter(request: Request) -> set[str] | None:
    raw = request.query_params.get("custom_fields")
    if not raw:
        return None
    keys = {key.strip() for key in raw.split(",") if key.strip()}
    if len(keys) > 15:
        raise _bad_request("Invalid parameter custom_fields: at most 15 keys")
    return keys


def _path_record_or_404(request: Request, records: Mapping[int, T], param: str, noun: str) -> T:
    """The record the path's whole-number id ``param`` names, or Pipedrive's 404 ``"<noun> not found"``."""
    record = records.get(int(request.path_params[param]))
    if record is None:
        raise PipedriveApiError(404, f"{noun} not found")
    return record


def _filter_by_numbers(request: Request, records: list[T], params: Sequence[str]) -> list[T]:
    """The records whose field of each of ``params`` equals the request's whole-number query parameter of that name
    (``person_id=5``), for each one the request gives."""
    for param in params:
        wanted = _query_int(request, param)
        if wanted is not None:
            records = [record for record in records if getattr(record, param) == wanted]
    return records


def _filter_by_texts(request: Request, records: list[T], params: Sequence[str]) -> list[T]:
    """The records whose field of each of ``params`` equals the request's non-empty query parameter of that name
    (``lead_id=<uuid>``), for each one the request gives."""
    for param in params:
        wanted = request.query_params.get(param)
        if wanted:
            records = [record for record in records if getattr(record, param) == wanted]
    return records


def _filter_ids(request: Request, records: list[T], id_of: Callable[[T], int]) -> list[T]:
    raw = request.query_params.get("ids")
    if not raw:
        return records
    try:
        wanted = {int(part) for part in raw.split(",") if part.strip()}
    except ValueError:
        raise _bad_request("Invalid parameter ids: must be comma-separated integers") from None
    if len(wanted) > 100:
        raise _bad_request("Invalid parameter ids: at most 100 ids")
    return [record for record in records if id_of(record) in wanted]


def _filter_updated_since(request: Request, records: list[T], time_of: Callable[[T], datetime]) -> list[T]:
    """The records changed at or after ``updated_since`` (RFC 3339), when the request gives it."""
    since = request.query_params.get("updated_since")
    if since:
        start = parse_rfc3339(since, "updated_since")
        records = [record for record in records if time_of(record) >= start]
    return records


def _filter_updated(request: Request, records: list[T], time_of: Callable[[T], datetime]) -> list[T]:
    """v2's window: changed at or after ``updated_since`` and before ``updated_until``."""
    records = _filter_updated_since(request, records, time_of)
    until = request.query_params.get("updated_until")
    if until:
        end = parse_rfc3339(until, "updated_until")
        records = [record for record in records if time_of(record) < end]
    return records


def _v2_page(
    request: Request,
    records: list[T],
    sorts: dict[str, Callable[[Any], Any]],
    id_of: Callable[[T], int],
) -> tuple[list[T], str | None]:
    """One page of a v2 list, keyset-paged: the cursor names the sort and the last item's sort value and id."""
    limit = _page_limit(request)
    sort_by = request.query_params.get("sort_by") or "id"
    direction = request.query_params.get("sort_direction") or "asc"
    after: tuple[Any, int] | None = None
    cursor = request.query_params.get("cursor")
    if cursor:
        payload = _decode_cursor(cursor)
        sort_by = payload.get("field", sort_by)
        direction = payload.get("sortDirection", direction)
        if not _is_int(payload.get("id")):
            raise _bad_request("Invalid cursor")
        after = (payload.get("fieldValue"), int(payload["id"]))
    if sort_by not in sorts:
        raise _bad_request(f"Invalid parameter sort_by: must be one of {', '.join(sorts)}")
    if direction not in {"asc", "desc"}:
        raise _bad_request("Invalid parameter sort_direction: must be asc or desc")
    key_of = sorts[sort_by]
    descending = direction == "desc"
    ordered = sorted(records, key=lambda record: (key_of(record), id_of(record)), reverse=descending)
    if after is not None:
        try:
            if descending:
                ordered = [r for r in ordered if (key_of(r), id_of(r)) < after]
            else:
                ordered = [r for r in ordered if (key_of(r), id_of(r)) > after]
        except TypeError:
            raise _bad_request("Invalid cursor") from None
    page = ordered[:limit]
    if len(ordered) <= limit or not page:
        return page, None
    last = page[-1]
    next_cursor = _encode_cursor(
        {"field": sort_by, "fieldValue": key_of(last), "sortDirection": direction, "id": id_of(last)}
    )
    return page, next_cursor


def _v1_sort(
    request: Request,
    records: list[T],
    sort_keys: dict[str, Callable[[T], Any]],
    *,
    tiebreak: Callable[[T], Any],
) -> list[T]:
    raw = (request.query_params.get("sort") or "add_time ASC").strip()
    name, _, direction = raw.partition(" ")
    direction = direction.strip().upper() or "ASC"
    if name not in sort_keys or direction not in {"ASC", "DESC"}:
        raise _bad_request(f"Invalid parameter sort: use one of {', '.join(sort_keys)}, optionally with ASC or DESC")
    key_of = sort_keys[name]
    return sorted(records, key=lambda record: (key_of(record), tiebreak(record)), reverse=direction == "DESC")


def _v1_page(request: Request, records: list[T]) -> tuple[list[T], dict[str, Any]]:
    """One page of a v1 list (``start``/``limit``) and its ``additional_data``."""
    start = _query_int(request, "start", 0)
    assert start is not None
    if start < 0:
        raise _bad_request("Invalid parameter start: must be 0 or more")
    limit = _page_limit(request)
    page = records[start : start + limit]
    more = start + limit < len(records)
    pagination: dict[str, Any] = {"start": start, "limit": limit, "more_items_in_collection": more}
    if more:
        pagination["next_start"] = start + limit
    return page, {**pagination, "pagination": dict(pagination)}


def _text_score(candidate: str, wanted: str, exact: bool) -> float:
    text = candidate.casefold()
    if text == wanted:
        return 1.0
    if exact:
        return 0.0
    if text.startswith(wanted):
        return 0.75
    if wanted in text:
        return 0.5
    return 0.0


def _phone_score(candidate: str, term: str, exact: bool) -> float:
    digits = re.sub(r"\D", "", candidate)
    wanted = re.sub(r"\D", "", term)
    if not wanted:
        return 0.0
    if digits == wanted:
        return 1.0
    return 0.5 if not exact and wanted in digits else 0.0


def _social_note_html(person: GeneratedPerson) -> str:
    """The seed's social note for a generated person (profiles, reach, sentiment, source, campaign)."""
    rows = []
    for profile in person.social_profiles:
        link = f' <a href="{html.escape(profile.url)}">{html.escape(profile.url)}</a>' if profile.url else ""
        rows.append(
            f"<li>{html.escape(profile.platform.value)}: @{html.escape(profile.username)} "
            f"({profile.followers:,} followers, {profile.engagement:g}% engagement){link}</li>"
        )
    details = [
        ("Engagement score", f"{person.engagement_score:g}"),
        ("Sentiment", person.sentiment.value),
        ("Lead source", person.lead_source),
        ("Campaign", person.campaign),
        ("Conversation", person.conversation_id),
    ]
    paragraphs = "".join(f"<p><b>{label}:</b> {html.escape(str(value))}</p>" for label, value in details)
    return f"<p><b>Social profiles</b></p><ul>{''.join(rows)}</ul>{paragraphs}"
