"""Pipedrive adapter: persons (v2), leads, notes and person fields (v1), deals and activities, in its token budget."""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, Unpack

import httpx

from crm_desktop.domain.models import Contact, Integration, Lead, normalise_phone
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.providers import errors
from crm_desktop.providers.auth import HeaderTokenAuth
from crm_desktop.providers.base import AdapterBase, AdapterWiring
from crm_desktop.providers.contract import (
    ChangePage,
    ConnectionInfo,
    CrmField,
    CrmRecord,
    MergeResult,
    OutboundRecord,
    RecordResult,
    TimelineEntry,
    TimelineResult,
)
from crm_desktop.providers.conversions import CrmConversion, DealPipeline, DealStage
from crm_desktop.providers.http import OK, Decision, Verdict, classify_status, json_or_none, request_of
from crm_desktop.providers.rate import RateBudget, RateObservation, read_pipedrive_headers, retry_after_seconds
from crm_desktop.providers.toolkit import (
    ChangeCursor,
    FieldCache,
    StackedBudget,
    chunks,
    distinct_email_keys,
    email_key,
    failed_result,
    gather_or_cancel,
    paginate,
    parse_crm_time,
    results_in_order,
    server_time,
    utc_seconds,
    write_or_reconcile,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Requests per 2-second window of an API token on the cheapest plans (headers correct it: 40/100/120 on others).
DEFAULT_BURST_LIMIT = 20
#: Search requests per 2-second window.
DEFAULT_SEARCH_BURST_LIMIT = 10
BURST_WINDOW_SECONDS = 2.0
#: Requests in flight: enough to fill the largest burst window (120 per 2 s) at ~250 ms a round trip; the window,
#: not this, is what keeps the push under Pipedrive's limit.
DEFAULT_CONCURRENCY = 16
#: The largest page Pipedrive serves.
PAGE_LIMIT = 500
#: Person ids one ``GET /api/v2/persons?ids=`` may name.
IDS_PER_REQUEST = 100
#: Unlinked records in one push from which listing every person (500 a call, 10 tokens, no search window) is
#: tried instead of one search per email (1 call, 20 tokens, 10 per 2 s).
LIST_DEDUPE_MIN_RECORDS = 20
#: A listing is abandoned (and emails searched) once it would cost more tokens than the searches: pages per email.
LIST_PAGES_PER_SEARCH = 2
#: Overlap of two person listings, so a person changed while a page was being read is listed again.
LIST_REFRESH_OVERLAP = timedelta(seconds=5)
#: How old the person index may be when a record is looked up in it; older, what changed since is listed first.
LIST_REFRESH_SECONDS = 10.0
#: Records one push prepares at a time when it uses the person index.
INDEXED_CHUNK = 5_000
#: Notes looked at when deciding whether the social note changed.
NOTES_LOOKED_AT = 100
#: How long to back off when Pipedrive answers an HTML 403 (its block after a client kept hammering past a 429).
BLOCKED_WAIT_SECONDS = 60.0
#: How far back a record may have been created to count as the one a lost write made (reconciling).
RECONCILE_WINDOW = timedelta(minutes=5)
#: ``origin_id`` of the leads this app creates, so a later push finds its own lead among a person's leads.
LEAD_ORIGIN_ID = "crm-desktop"
#: First line of the social note this app keeps on a person or lead.
SOCIAL_NOTE_HEADING = "Social data from CRM Desktop"
#: ``Verdict.code`` of a refusal because the company's daily token budget is spent.
DAILY_BUDGET_CODE = "DAILY_BUDGET_SPENT"

SEARCH_PATH = "/api/v2/persons/search"
PERSONS_PATH = "/api/v2/persons"

_HASH_KEY = re.compile(r"\b[0-9a-f]{40}\b")
_TAG = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"\s+")
_FIELD_BEFORE_COLON = re.compile(r"^(?:Validation failed:\s*)?(?P<field>[A-Za-z_][\w.\[\]]*)(?:\s*\([^)]*\))?\s*:")
_QUOTED_PARAMETER = re.compile(r"[Pp]arameter '(?P<field>[\w.\[\]]+)'")

#: Token cost of a v2 call; v1 calls cost twice as much (Pipedrive's published costs).
_V2_TOKEN_COSTS = {"get": 1, "list": 10, "create": 5, "update": 5, "search": 20, "delete": 3}

#: Standard person fields a push may write (``name`` is also built from ``first_name`` and ``last_name``).
_WRITABLE_PERSON_FIELDS = frozenset(
    {"name", "first_name", "last_name", "email", "phone", "org_id", "owner_id", "visible_to", "label_ids"}
)
#: Person attributes passed through as they are.
_PERSON_PASS_THROUGH = ("org_id", "owner_id", "visible_to", "label_ids")
#: Organization names are not person fields: without an organization mapping they are left out of the person.
_IGNORED_PERSON_FIELDS = frozenset({"company", "org_name", "organization"})

#: The lead's own writable fields (``POST /v1/leads``); everything else of a lead record belongs to its person.
LEAD_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("title", "Title", "varchar"),
    ("value", "Value", "monetary"),
    ("expected_close_date", "Expected close date", "date"),
    ("owner_id", "Owner", "user"),
    ("label_ids", "Labels", "set"),
    ("organization_id", "Organization", "org"),
    ("visible_to", "Visible to", "visible_to"),
    ("was_seen", "Seen", "boolean"),
    ("channel", "Channel", "enum"),
    ("channel_id", "Channel ID", "varchar"),
)
_LEAD_KEYS = frozenset(key for key, _, _ in LEAD_FIELDS)

#: Generic field types (as HubSpot and the field mapper name them) -> Pipedrive ``field_type``.
_FIELD_TYPE_ALIASES = {
    "string": "varchar",
    "text": "text",
    "textarea": "text",
    "number": "double",
    "double": "double",
    "enumeration": "enum",
    "picklist": "enum",
    "bool": "enum",
    "boolean": "enum",
    "date": "date",
    "phone_number": "phone",
    "phone": "phone",
}
PIPEDRIVE_FIELD_TYPES = (
    "address", "date", "daterange", "double", "enum", "monetary", "org", "people", "phone", "set", "text", "time",
    "timerange", "user", "varchar", "varchar_auto", "visible_to",
)  # fmt: skip


# -- costs and classification ------------------------------------------------------------------------------------


def token_cost(method: str, path: str) -> int:
    """The API tokens one call spends (v2: get 1, list 10, create/update 5, search 20, delete 3; v1 twice that)."""
    path = path.split("?", 1)[0]
    if path.startswith("/api/v2/"):
        rest, factor = path[len("/api/v2/") :], 1
    elif path.startswith("/v1/"):
        rest, factor = path[len("/v1/") :], 2
    else:
        return 0
    segments = [segment for segment in rest.split("/") if segment]
    verb = method.upper()
    if verb == "GET":
        if segments and segments[-1] == "search":
            kind = "search"
        else:
            kind = "get" if len(segments) >= 2 else "list"
    elif verb == "POST":
        kind = "create"
    elif verb in {"PATCH", "PUT"}:
        kind = "update"
    else:
        kind = "delete"
    return _V2_TOKEN_COSTS[kind] * factor


def pipedrive_error(body: Any) -> str:
    """The ``error`` text of Pipedrive's envelope (``''`` when none), without markup, at most 300 characters."""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    text = error if isinstance(error, str) else ""
    if not text and isinstance(body.get("error_info"), str):
        text = body["error_info"]
    text = _SPACES.sub(" ", html.unescape(_TAG.sub(" ", text))).strip()
    return text[:300]


def rejected_field(error: str) -> str | None:
    """The field a Pipedrive validation error names (``custom_fields.<key>``, ``name``...), when it names one."""
    match = _FIELD_BEFORE_COLON.match(error) or _QUOTED_PARAMETER.search(error)
    return match.group("field") if match else None


def _looks_like_html(response: httpx.Response) -> bool:
    if "html" in response.headers.get("content-type", "").lower():
        return True
    return response.content[:200].lstrip().lower().startswith((b"<!doctype", b"<html"))


def _daily_budget_spent(response: httpx.Response, error: str) -> bool:
    text = error.lower()
    if "daily" in text or "token budget" in text:
        return True
    left = response.headers.get("x-daily-requests-left")
    return left is not None and left.strip() == "0"


#: What a refused call was doing, by method and the object in its path: what to ask a Pipedrive admin to allow.
_ACTIONS = {"GET": "see", "POST": "add", "PUT": "change", "PATCH": "edit", "DELETE": "delete"}
_OBJECT_WORDS = {
    "persons": "persons", "leads": "leads", "notes": "notes", "activities": "activities", "deals": "deals",
    "personFields": "custom person fields", "activityTypes": "activity types", "pipelines": "pipelines",
    "stages": "stages", "users": "users",
}


def refused_action(response: httpx.Response) -> str:
    """``add persons``, ``edit leads``...: what a refused call would have done (from its method and path)."""
    request = request_of(response)
    if request is None:
        return "do this"
    parts = [part for part in request.url.path.split("/") if part]
    if "merge" in parts:
        return "merge persons"
    words = [_OBJECT_WORDS[part] for part in parts if part in _OBJECT_WORDS]
    return f"{_ACTIONS.get(request.method, 'use')} {words[0]}" if words else "do this"


_TOKEN_REFUSED = (
    "Pipedrive refused the API token (401); copy the current token from Pipedrive's Personal preferences > API"
)


def classify_pipedrive(response: httpx.Response) -> Verdict:
    """Pipedrive's answer as a decision: retry, slow down, stop, or refuse this record (reading its error envelope)."""
    status = response.status_code
    if status < 400:
        return OK
    body = json_or_none(response)
    error = pipedrive_error(body)
    if status == 401:
        return Verdict(Decision.FATAL, ErrorCategory.AUTH, code="UNAUTHORIZED", reason=_TOKEN_REFUSED)
    if status == 403:
        if _looks_like_html(response):
            return Verdict(
                Decision.RATE_LIMITED,
                ErrorCategory.RATE_LIMIT,
                wait=max(retry_after_seconds(response) or 0.0, BLOCKED_WAIT_SECONDS),
                code="BLOCKED",
                reason="Pipedrive blocked requests for a while after too many were sent (403)",
            )
        return Verdict(
            Decision.FATAL,
            ErrorCategory.PERMISSION,
            code="FORBIDDEN",
            reason=f"the API token's user may not {refused_action(response)} (403{': ' + error if error else ''}); "
            "ask your Pipedrive admin to allow it in the user's permission set (Company settings > Permission sets)",
        )
    if status == 429:
        wait = retry_after_seconds(response)
        if _daily_budget_spent(response, error):
            return Verdict(
                Decision.FATAL,
                ErrorCategory.RATE_LIMIT,
                wait=wait,
                code=DAILY_BUDGET_CODE,
                reason="the company's daily Pipedrive API token budget is spent; it resets at 00:00 UTC",
            )
        if wait is None:
            reset = response.headers.get("x-ratelimit-reset")
            try:
                wait = max(0.0, float(reset)) if reset else None
            except ValueError:
                wait = None
        return Verdict(Decision.RATE_LIMITED, ErrorCategory.RATE_LIMIT, wait=wait, code="RATE_LIMIT", reason="429")
    if status in {400, 422}:
        return Verdict(
            Decision.RECORD_FAILURE,
            ErrorCategory.VALIDATION,
            code=rejected_field(error) or "",
            reason=error or f"rejected ({status})",
        )
    if status in {404, 410}:
        return Verdict(Decision.FATAL, ErrorCategory.NOT_FOUND, code="NOT_FOUND", reason=f"not found ({status})")
    if status >= 500:
        return Verdict(Decision.RETRY, ErrorCategory.SERVER, wait=retry_after_seconds(response), reason=f"{status}")
    return classify_status(response)


class RecordRejectedError(errors.RequestRejectedError):
    """Pipedrive refused one record or call as invalid; ``field`` is the field it named, when it named one."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        category: ErrorCategory | None = None,
        code: str = "",
        field: str | None = None,
    ) -> None:
        super().__init__(message, status=status, category=category, code=code)
        self.field = field


# -- person fields: names <-> keys -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonFieldMap:
    """Pipedrive's person fields by key and by human name: custom fields are keyed by 40-character hashes.

    Marketers see names (``Twitter username``); the wire wants keys (``9dc80c50...``). Use :meth:`key_for` to
    turn what a mapping names into a key, and :meth:`name_for` to show a key (a hash is never shown).

    Attributes:
        fields: the person fields, as :meth:`PipedriveAdapter.list_fields` lists them.
        option_ids: per enum or set field key, option label (case-folded) -> option id.
    """

    fields: tuple[CrmField, ...] = ()
    option_ids: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def get(self, key: str) -> CrmField | None:
        """The field with this key."""
        return next((f for f in self.fields if f.name == key), None)

    def key_for(self, name_or_key: str) -> str | None:
        """The key of a field given its key or its human name (case-insensitive); ``None`` when unknown."""
        if self.get(name_or_key) is not None:
            return name_or_key
        wanted = name_or_key.strip().casefold()
        return next((f.name for f in self.fields if f.label.casefold() == wanted), None)

    def name_for(self, key: str) -> str:
        """The human name of a key; an unknown hash reads as 'a custom field', never as the hash."""
        known = self.get(key)
        if known is not None:
            return known.label
        return "a custom field" if _HASH_KEY.fullmatch(key) else key

    def keys_by_name(self) -> dict[str, str]:
        """Human name -> key of every custom field."""
        return {f.label: f.name for f in self.fields if f.custom}

    def to_keys(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Values keyed by field names or keys, re-keyed by field keys (unknown names are kept as given)."""
        return {self.key_for(name) or name: value for name, value in values.items()}

    def to_names(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Values keyed by field keys, re-keyed by human names."""
        return {self.name_for(key): value for key, value in values.items()}

    def humanise(self, text: str) -> str:
        """A message with every hash key replaced by its field's quoted name."""
        return _HASH_KEY.sub(lambda match: f"'{self.name_for(match.group(0))}'", text)

    def with_field(self, crm_field: CrmField, option_ids: Mapping[str, int]) -> PersonFieldMap:
        """This map with one more field (just created)."""
        ids = dict(self.option_ids)
        if option_ids:
            ids[crm_field.name] = dict(option_ids)
        return PersonFieldMap((*self.fields, crm_field), ids)

    def wire_value(self, key: str, value: Any) -> Any:
        """A custom value as Pipedrive takes it: option labels of enum and set fields become option ids.

        Raises:
            ValueError: a label that is not one of the field's options.
        """
        known = self.get(key)
        if known is not None and known.type == "double" and isinstance(value, str):
            # Mapped values travel as text ("4.5"); Pipedrive's number fields take JSON numbers only.
            number = _number(value)
            if number is None:
                raise ValueError(f"{value!r} is not a number")
            return int(number) if number.is_integer() else number
        if known is None or value is None or known.type not in {"enum", "set"} or not known.options:
            return value
        ids = self.option_ids.get(key, {})

        def option_id(label: Any) -> int:
            if isinstance(label, bool):
                label = "Yes" if label else "No"
            if isinstance(label, int):
                return label
            text = str(label).strip()
            found = ids.get(text.casefold())
            if found is None and text.isdigit():
                return int(text)
            if found is None:
                raise ValueError(f"{text!r} is not one of its options ({', '.join(known.options)})")
            return found

        if known.type == "enum":
            return option_id(value)
        labels = value if isinstance(value, list | tuple | set) else [v for v in str(value).split(",") if v.strip()]
        return sorted(option_id(label) for label in labels)


# -- rate budgets ------------------------------------------------------------------------------------------------


class _TokenMeter:
    """Daily API tokens: those the headers say are left, less those of calls in flight, never below the reserve.

    A count heard on an earlier UTC day is stale (the budget resets at midnight) and no longer stops calls.
    """

    def __init__(self, budget: RateBudget) -> None:
        self.budget = budget
        self.in_flight = 0
        self.heard_on: date | None = None

    def heard(self) -> None:
        self.heard_on = datetime.now(UTC).date()

    def reserve(self, cost: int) -> None:
        if self.heard_on is not None and self.heard_on != datetime.now(UTC).date():
            self.budget.daily_remaining = None
            self.heard_on = None
        left = self.budget.daily_remaining
        if left is not None and left - self.in_flight - cost < self.budget.daily_reserve:
            raise errors.BudgetExhaustedError(
                f"stopped early: {left} of today's Pipedrive API tokens are left and the next call costs {cost} "
                f"(keeping {self.budget.daily_reserve} in reserve); the budget resets at 00:00 UTC",
                status=None,
            )
        self.in_flight += cost

    def release(self, cost: int) -> None:
        self.in_flight -= cost


def _no_rate_headers(headers: httpx.Headers) -> RateObservation:
    """The core's own header hook is left idle: the adapter routes search headers to the search budget itself."""
    return RateObservation()


# -- wire helpers ------------------------------------------------------------------------------------------------


def company_base_url(domain: str | None) -> str:
    """``https://{domain}.pipedrive.com`` for a company domain such as ``acme``.

    Raises:
        ConfigurationError: when there is no domain.
    """
    if not domain or not domain.strip():
        raise errors.ConfigurationError(
            "Pipedrive needs the company domain (the 'acme' of acme.pipedrive.com) or a base URL"
        )
    name = domain.strip().lower().removeprefix("https://").rstrip("/").removesuffix(".pipedrive.com")
    return f"https://{name}.pipedrive.com"


def note_html(text: str, heading: str | None = None) -> str:
    """Plain note text as the HTML Pipedrive stores (escaped; one line per line), under an optional bold heading."""
    lines = [html.escape(line.strip()) for line in text.strip().splitlines()]
    body = f"<p>{'<br>'.join(lines)}</p>" if any(lines) else ""
    return (f"<p><b>{html.escape(heading)}</b></p>" if heading else "") + body


def note_fingerprint(content: str) -> str:
    """A note's text without markup or spacing differences, to tell whether two notes say the same."""
    return _SPACES.sub(" ", html.unescape(_TAG.sub(" ", content))).strip()


def _phone_key(phone: Any) -> str:
    """A phone number in E.164 when it can be read (``(415) 555-0123`` = ``+14155550123``), else its digits."""
    text = str(phone or "").strip()
    try:
        return normalise_phone(text)
    except ValueError:
        return re.sub(r"\D", "", text)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value) if isinstance(value, str) and value.strip() else None
    except ValueError:
        return None


def _same_value(current: Any, wanted: Any) -> bool:
    if isinstance(current, bool) or isinstance(wanted, bool):
        return current is wanted
    if isinstance(current, int | float) or isinstance(wanted, int | float):
        return _number(current) is not None and _number(current) == _number(wanted)
    if isinstance(current, list) and isinstance(wanted, list):
        return sorted(map(str, current)) == sorted(map(str, wanted))
    if isinstance(current, str) and isinstance(wanted, str):
        return current.strip() == wanted.strip()
    return bool(current == wanted)


def _v1_paging(extra: dict[str, Any]) -> dict[str, Any]:
    """v1 paging: ``additional_data.pagination`` on the wire, or ``additional_data`` itself as the spec puts it."""
    paging = extra.get("pagination")
    return paging if isinstance(paging, dict) else extra


def _items(values: Any) -> list[dict[str, Any]]:
    return [item for item in values or [] if isinstance(item, dict) and item.get("value")]


def _primary(items: list[dict[str, Any]]) -> str:
    chosen = next((item for item in items if item.get("primary")), items[0] if items else None)
    return str(chosen["value"]) if chosen else ""


def person_record(person: Mapping[str, Any]) -> CrmRecord:
    """A v2 person as a :class:`CrmRecord`: standard fields by their personFields keys, custom ones by hash key."""
    emails = _items(person.get("emails"))
    phones = _items(person.get("phones"))
    fields: dict[str, Any] = {
        "name": person.get("name"),
        "first_name": person.get("first_name"),
        "last_name": person.get("last_name"),
        "email": _primary(emails) or None,
        "emails": [str(item["value"]) for item in emails],
        "phone": _primary(phones) or None,
        "phones": [str(item["value"]) for item in phones],
    }
    for key in (*_PERSON_PASS_THROUGH, "add_time", "update_time"):
        if key in person:
            fields[key] = person[key]
    custom = person.get("custom_fields")
    if isinstance(custom, dict):
        fields.update(custom)
    return CrmRecord(
        crm_id=str(person["id"]),
        email=email_key(_primary(emails)),
        fields=fields,
        modified_at=parse_crm_time(person.get("update_time")),
    )


def lead_record(lead: Mapping[str, Any], person: Mapping[str, Any] | None = None) -> CrmRecord:
    """A v1 lead as a :class:`CrmRecord`, with its person's email and names: a Pipedrive lead has no name or email
    of its own, a push writes them to the lead's person, so a pull reads them back from there."""
    fields = {key: value for key, value in lead.items() if key != "id"}
    email = ""
    if person is not None:
        held = person_record(person)
        email = held.email
        fields.update({key: held.fields.get(key) for key in ("first_name", "last_name", "email")})
    return CrmRecord(
        crm_id=str(lead["id"]),
        email=email_key(email),
        fields=fields,
        modified_at=parse_crm_time(lead.get("update_time")),
    )


def record_digest(raw: Mapping[str, Any]) -> str:
    """A short fingerprint of a record as Pipedrive sent it (tells a re-edit within the same second)."""
    text = json.dumps(raw, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class ChangeMark(ChangeCursor):
    """The change cursor of a Pipedrive pull, read from the records as Pipedrive lists them.

    Pipedrive's v2 times have whole seconds, so several records share one; a record is delivered again when it
    comes back at the cursor's time with other values (edited again within that second): each delivered record
    is kept with a digest of its values (``2025-01-01T10:20:00Z|12:ab12cd34ef56,13:...``).
    """

    def is_new_record(self, raw: Mapping[str, Any]) -> bool:
        """Whether a listed record was not delivered before with these values."""
        return self.is_new(parse_crm_time(raw.get("update_time")), str(raw["id"]), record_digest(raw))

    def deliver(self, raw: Mapping[str, Any]) -> None:
        """Note a delivered record."""
        stamp = str(raw.get("update_time") or "")
        self.advance(parse_crm_time(stamp), stamp, str(raw["id"]), record_digest(raw))


# -- what a record asks for --------------------------------------------------------------------------------------


@dataclass
class _PersonWish:
    """The person a record describes, split into Pipedrive's parts."""

    email: str
    name: str | None = None
    name_parts: dict[str, str] = field(default_factory=dict)
    phone: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)

    def full_name(self, existing: Mapping[str, Any] | None = None) -> str | None:
        """The name to write: ``name`` as given, else first and last name, a missing part kept from ``existing``.

        A record may carry only the part that changed (``last_name``); the person's other part stays.
        """
        if self.name:
            return self.name
        if not self.name_parts:
            return None
        current = existing or {}
        first_now, _, last_now = str(current.get("name") or "").strip().partition(" ")
        first = self.name_parts.get("first_name", str(current.get("first_name") or first_now).strip())
        last = self.name_parts.get("last_name", str(current.get("last_name") or last_now).strip())
        return " ".join(part for part in (first, last) if part) or None


@dataclass
class _Pending:
    """One record on its way through a push."""

    index: int
    record: OutboundRecord
    email: str
    person: _PersonWish
    lead: dict[str, Any] = field(default_factory=dict)
    person_id: int | None = None
    existing: dict[str, Any] | None = None
    lead_existing: dict[str, Any] | None = None


class _RecordProblem(Exception):
    """A record the adapter refuses before sending it (a field Pipedrive does not have, a bad option)."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field_name = field_name
        self.reason = reason


_FATAL = (errors.AuthError, errors.PermissionRefusedError, errors.BudgetExhaustedError, errors.ConfigurationError)


class _PersonIndex:
    """Every person by email, listed once for a large push and brought up to date while the push writes.

    An email held by several persons resolves to the oldest one, as the search path does. ``since`` is the
    Pipedrive time the last listing started (less an overlap): listing again from there finds persons created or
    given an email by someone else since, so the push does not create them a second time.
    """

    def __init__(self) -> None:
        self._holders: dict[str, dict[int, dict[str, Any]]] = {}
        self._emails_of: dict[int, set[str]] = {}
        self.since = datetime.now(UTC) - LIST_REFRESH_OVERLAP
        #: When (the adapter's clock) the last listing started.
        self.listed_at = 0.0
        #: One listing at a time: records looked up meanwhile wait for it.
        self.lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._emails_of)

    def add(self, person: dict[str, Any]) -> None:
        """Index a listed person (again: its old emails are forgotten first)."""
        person_id = int(person["id"])
        for email in self._emails_of.pop(person_id, set()):
            holders = self._holders.get(email, {})
            holders.pop(person_id, None)
            if not holders:
                self._holders.pop(email, None)
        emails = {email_key(item["value"]) for item in _items(person.get("emails"))} - {""}
        self._emails_of[person_id] = emails
        for email in emails:
            self._holders.setdefault(email, {})[person_id] = person

    def get(self, email: str) -> dict[str, Any] | None:
        """The oldest person with this email, or ``None``."""
        holders = self._holders.get(email)
        return holders[min(holders)] if holders else None


class PipedriveAdapter(AdapterBase):
    """Pipedrive through its v1 and v2 REST API with an API token, within the burst windows and the daily tokens.

    Persons are v2 (found by exact email, then created or patched one by one, concurrently: Pipedrive has no
    batch writes and no upsert); leads, notes and person fields are v1. A small push searches each email (search
    has its own window of 10 per 2 s, so it caps a push at 5 persons a second); a push of
    :data:`LIST_DEDUPE_MIN_RECORDS` or more unlinked records lists every person into an email index instead (500
    a call), brought up to date with ``updated_since`` before each chunk of writes. Social data that no custom
    field takes goes into a note on the person (or lead), added only when its text changed. API calls per person:
    the write (plus a search, or a 500th of a listing), plus, when the record carries a note, one notes read for
    a person that already existed and one note write when the text changed.

    Attributes:
        provider: ``pipedrive``.
        budget: the token's 2-second window, concurrency and daily tokens (``x-daily-requests-left``).
        search_budget: search's lower window, stacked on ``budget``.
        page_size: records per page when listing (500, Pipedrive's largest).
    """

    provider = "pipedrive"

    def __init__(self, integration: Integration, credentials: dict[str, Any], **wiring: Unpack[AdapterWiring]) -> None:
        token = str(credentials.get("apiToken") or "").strip()
        if not token:
            raise errors.ConfigurationError(
                "Pipedrive needs an API token (Pipedrive > Personal preferences > API); store it with the integration"
            )
        super().__init__(
            integration,
            wiring,
            name="Pipedrive",
            base_url=integration.base_url or company_base_url(integration.domain or credentials.get("companyDomain")),
            classifier=self._classify,
            read_headers=_no_rate_headers,
            # The token goes in a header, never in the query string, which ends up in logs.
            auth=HeaderTokenAuth("x-api-token", token),
            window_limit=DEFAULT_BURST_LIMIT,
            window_seconds=BURST_WINDOW_SECONDS,
            concurrency=DEFAULT_CONCURRENCY,
            # Pipedrive counts in fixed 2-second windows: an even pace never bunches up at a window's edge.
            even_pacing=True,
        )
        self.search_budget = StackedBudget(
            self.budget,
            window_limit=DEFAULT_SEARCH_BURST_LIMIT,
            window_seconds=BURST_WINDOW_SECONDS,
            concurrency=self.budget.concurrency,
            clock=self._clock,
            sleep=self._sleep,
            even_pacing=True,
        )
        self._tokens = _TokenMeter(self.budget)
        self.http.client.event_hooks["response"].append(self._observe_rate_headers)
        self.page_size = PAGE_LIMIT
        self.index_refresh_seconds = LIST_REFRESH_SECONDS
        #: The person fields, under the one key ``person`` (Pipedrive's leads have no fields of their own).
        self._person_fields: FieldCache[str, PersonFieldMap] = FieldCache(self._read_person_fields)
        self._known_notes: dict[tuple[str, str], str] = {}

    # -- plumbing --------------------------------------------------------------------------------------------------
    def _classify(self, response: httpx.Response) -> Verdict:
        verdict = classify_pipedrive(response)
        if verdict.code == DAILY_BUDGET_CODE:
            self.budget.daily_remaining = 0
            self._tokens.heard()
        return verdict

    async def _observe_rate_headers(self, response: httpx.Response) -> None:
        seen = read_pipedrive_headers(response.headers)
        if response.status_code == 429:
            # A refusal may describe another window than the request's own (the burst window on a search).
            seen = replace(seen, window_limit=None, window_seconds=None)
        if seen.daily_remaining is not None:
            self._tokens.heard()
        if response.request.url.path.endswith(SEARCH_PATH):
            self.search_budget.observe(replace(seen, daily_limit=None, daily_remaining=None))
            self.budget.observe(RateObservation(daily_limit=seen.daily_limit, daily_remaining=seen.daily_remaining))
        else:
            self.budget.observe(seen)

    async def _call(
        self, method: str, url: str, *, idempotent: bool = True, search: bool = False, **kwargs: Any
    ) -> httpx.Response:
        cost = token_cost(method, url)
        self._tokens.reserve(cost)
        try:
            return await self.http.request(
                method, url, idempotent=idempotent, budget=self.search_budget if search else None, **kwargs
            )
        except errors.RateLimitError as exc:
            if self.budget.daily_remaining == 0 and not isinstance(exc, errors.BudgetExhaustedError):
                raise errors.BudgetExhaustedError(
                    "Pipedrive's daily API token budget for the company is spent; it resets at 00:00 UTC",
                    status=exc.status,
                    retry_after=exc.retry_after,
                ) from None
            raise
        finally:
            self._tokens.release(cost)

    def _data(self, response: httpx.Response) -> tuple[Any, dict[str, Any]]:
        """The ``data`` and ``additional_data`` of a success; a refusal raises :class:`RecordRejectedError`."""
        body = json_or_none(response)
        if response.is_success and isinstance(body, dict) and body.get("success") is not False:
            extra = body.get("additional_data")
            return body.get("data"), extra if isinstance(extra, dict) else {}
        if response.is_success:
            raise errors.TransientError(f"Pipedrive answered {response.status_code} without its JSON envelope")
        verdict = classify_pipedrive(response)
        error = self._humanise(pipedrive_error(body)) or f"rejected ({response.status_code})"
        raise RecordRejectedError(
            error,
            status=response.status_code,
            category=verdict.category or ErrorCategory.VALIDATION,
            code=verdict.code,
            field=rejected_field(pipedrive_error(body)),
        )

    def _humanise(self, text: str) -> str:
        return (self._person_fields.held("person") or PersonFieldMap()).humanise(text)

    # -- contract: connection, fields, quota -----------------------------------------------------------------------
    async def test_connection(self) -> ConnectionInfo:
        """``GET /v1/users/me``: the company, the token's user, their apps, and the budget from the headers."""
        data, _ = self._data(await self._call("GET", "/v1/users/me"))
        if not isinstance(data, dict):
            raise errors.TransientError("Pipedrive's /v1/users/me answered without a user")
        account = data.get("company_name") or data.get("company_domain") or self.integration.name
        user = data.get("email") or data.get("name") or "unknown user"
        scopes = tuple(
            f"{entry['app']}:admin" if entry.get("admin") else str(entry["app"])
            for entry in data.get("access") or []
            if isinstance(entry, dict) and entry.get("app")
        )
        return ConnectionInfo(account=str(account), user=str(user), scopes=scopes, quota=self.quota())

    async def list_fields(self, obj: RecordObject) -> list[CrmField]:
        """Person fields (``GET /v1/personFields``, paged): ``name`` is the key, ``label`` the human name.

        A lead's own fields come first for leads, then the fields of its person (owner, labels and visibility
        belong to the lead there).
        """
        person_fields = await self._person_fields.get("person", fresh=True)
        if obj is RecordObject.CONTACT:
            return list(person_fields.fields)
        lead_fields = [CrmField(name=key, label=label, type=kind) for key, label, kind in LEAD_FIELDS]
        return lead_fields + [f for f in person_fields.fields if f.name not in _LEAD_KEYS]

    async def field_map(self) -> PersonFieldMap:
        """The person fields by key and by name (listed once, then cached; :meth:`create_field` adds to it)."""
        return await self._person_fields.get("person")

    async def _read_person_fields(self, _key: str) -> PersonFieldMap:
        """List the person fields (every page)."""
        fields: list[CrmField] = []
        option_ids: dict[str, dict[str, int]] = {}

        async def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
            start = int(cursor or 0)
            response = await self._call("GET", "/v1/personFields", params={"start": start, "limit": self.page_size})
            data, extra = self._data(response)
            paging = _v1_paging(extra)
            if not paging.get("more_items_in_collection"):
                return list(data or []), None
            following = paging.get("next_start")
            return list(data or []), str(
                following if isinstance(following, int) and following > start else start + self.page_size
            )

        async for page, _ in paginate(fetch):
            for raw in page:
                if not isinstance(raw, dict) or not raw.get("key"):
                    continue
                crm_field, ids = _person_field(raw)
                fields.append(crm_field)
                if ids:
                    option_ids[crm_field.name] = ids
        return PersonFieldMap(tuple(fields), option_ids)

    async def create_field(
        self, obj: RecordObject, name: str, label: str, field_type: str, options: Sequence[str] = ()
    ) -> CrmField:
        """Create a custom person field (``POST /v1/personFields {name, field_type}``); Pipedrive makes up its key.

        ``label`` becomes the field's name in Pipedrive (``name`` when empty). An existing field with that name is
        returned instead of making a second one.

        Raises:
            RequestRejectedError: for leads (their custom fields are Pipedrive's deal fields), an unknown type, or
                when Pipedrive refuses the field.
        """
        if obj is not RecordObject.CONTACT:
            raise errors.RequestRejectedError(
                "Pipedrive keeps lead custom fields with the deal fields; create them in Pipedrive's settings",
                category=ErrorCategory.VALIDATION,
            )
        title = (label or name).strip()
        kind = field_type if field_type in PIPEDRIVE_FIELD_TYPES else _FIELD_TYPE_ALIASES.get(field_type.lower())
        if not title or kind is None:
            raise errors.RequestRejectedError(
                f"cannot create Pipedrive field {title!r} of type {field_type!r}: "
                f"types are {', '.join(PIPEDRIVE_FIELD_TYPES)}",
                category=ErrorCategory.VALIDATION,
            )
        choices = list(options) or (["Yes", "No"] if field_type.lower() in {"bool", "boolean"} else [])
        known = await self.field_map()
        existing = known.key_for(title)
        if existing is not None and (found := known.get(existing)) is not None:
            return found
        body: dict[str, Any] = {"name": title, "field_type": kind}
        if kind in {"enum", "set"}:
            body["options"] = [{"label": choice} for choice in choices]

        async def find() -> dict[str, Any] | None:
            again = await self._person_fields.get("person", fresh=True)
            key = again.key_for(title)
            return {"id": key, "key": key} if key is not None else None

        data = await self._post_once("/v1/personFields", body, find)
        if data.get("name") is None:
            # Found again after a lost connection: the reloaded map already holds it.
            made = (await self.field_map()).get(str(data["key"]))
            assert made is not None
            return made
        made, option_ids = _person_field(data)
        self._person_fields.put("person", (await self.field_map()).with_field(made, option_ids))
        logger.info("Pipedrive person field created: %s (%s)", made.label, made.type)
        return made

    # -- reading persons -------------------------------------------------------------------------------------------
    async def _search_person_id(self, email: str) -> int | None:
        """``GET /api/v2/persons/search?term=<email>&fields=email&exact_match=true``: the oldest person with it."""
        response = await self._call(
            "GET", SEARCH_PATH, search=True, params={"term": email, "fields": "email", "exact_match": "true"}
        )
        data, _ = self._data(response)
        items = data.get("items") if isinstance(data, dict) else None
        matches = sorted(
            int(item["id"])
            for entry in items or []
            if isinstance(entry, dict) and isinstance(item := entry.get("item"), dict) and "id" in item
            if any(email_key(value) == email for value in item.get("emails") or [])
        )
        if len(matches) > 1:
            logger.warning("Pipedrive holds %d persons with the same email; the oldest one is used", len(matches))
        return matches[0] if matches else None

    async def _persons_by_ids(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Full persons, 100 ids a call (``GET /api/v2/persons?ids=``)."""
        found: dict[int, dict[str, Any]] = {}
        for chunk in chunks(sorted(set(ids)), IDS_PER_REQUEST):
            params = {"ids": ",".join(map(str, chunk)), "limit": IDS_PER_REQUEST}
            async for persons in self._v2_pages(PERSONS_PATH, params):
                found.update((int(person["id"]), person) for person in persons)
        return found

    async def _v2_pages(self, path: str, params: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        """A v2 list's records (those with an id), a page at a time, following Pipedrive's ``next_cursor``."""

        async def fetch(cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
            page_params = {**params, "cursor": cursor} if cursor else params
            data, extra = self._data(await self._call("GET", path, params=page_params))
            return [item for item in data or [] if isinstance(item, dict) and "id" in item], extra.get("next_cursor")

        async with aclosing(paginate(fetch)) as pages:
            async for items, _ in pages:
                yield items

    async def _person(self, person_id: int) -> dict[str, Any] | None:
        try:
            data, _ = self._data(await self._call("GET", f"{PERSONS_PATH}/{person_id}"))
        except errors.NotFoundError:
            return None
        return data if isinstance(data, dict) else None

    async def find_by_emails(self, obj: RecordObject, emails: Sequence[str]) -> dict[str, CrmRecord]:
        """Existing persons (or their leads) by email: one search per email, concurrently, then full reads."""
        wanted = sorted(distinct_email_keys(emails))

        async def search(email: str) -> int | None:
            try:
                return await self._search_person_id(email)
            except RecordRejectedError as exc:
                logger.warning("Pipedrive refused one email search: %s", exc)
                return None

        ids = await gather_or_cancel(search(email) for email in wanted)
        by_email = {email: person_id for email, person_id in zip(wanted, ids, strict=True) if person_id is not None}
        persons = await self._persons_by_ids(by_email.values())
        if obj is RecordObject.CONTACT:
            return {email: person_record(persons[pid]) for email, pid in by_email.items() if pid in persons}
        leads = await gather_or_cancel(self._own_lead(pid) for pid in by_email.values())
        return {
            email: lead_record(lead, persons.get(pid))
            for (email, pid), lead in zip(by_email.items(), leads, strict=True)
            if lead is not None
        }

    async def get_record(
        self, obj: RecordObject, *, email: str | None = None, crm_id: str | None = None
    ) -> CrmRecord | None:
        """A person (by id or email) or a lead (by its UUID, or its person's email); ``None`` when missing."""
        if obj is RecordObject.LEAD:
            if crm_id:
                lead = await self._lead(crm_id)
                if lead is None:
                    return None
                person = await self._person(int(lead["person_id"])) if lead.get("person_id") else None
                return lead_record(lead, person)
            if email:
                found = await self.find_by_emails(RecordObject.LEAD, [email])
                return next(iter(found.values()), None)
            return None
        if crm_id:
            if not crm_id.isdigit():
                return None
            person = await self._person(int(crm_id))
            return person_record(person) if person else None
        if email:
            person_id = await self._search_person_id(email_key(email))
            person = await self._person(person_id) if person_id is not None else None
            return person_record(person) if person else None
        return None

    # -- changes ---------------------------------------------------------------------------------------------------
    def changes_since(self, obj: RecordObject, cursor: str | None) -> AsyncIterator[ChangePage]:
        """Records changed since ``cursor``, oldest first, a page at a time.

        Persons: ``GET /api/v2/persons?updated_since=&sort_by=update_time&sort_direction=asc&limit=500`` with
        Pipedrive's cursor. Leads: ``GET /v1/leads?updated_since=&sort=update_time``. The returned cursor is the
        last ``update_time`` and the records already delivered at exactly that time (see :class:`ChangeMark`).
        """
        if obj is RecordObject.LEAD:
            return self._lead_changes(cursor)
        return self._person_changes(cursor)

    async def _person_changes(self, cursor: str | None) -> AsyncIterator[ChangePage]:
        mark = ChangeMark.read(cursor, "Pipedrive")
        params: dict[str, Any] = {"sort_by": "update_time", "sort_direction": "asc", "limit": self.page_size}
        if mark.stamp:
            params["updated_since"] = mark.stamp

        async for persons in self._v2_pages(PERSONS_PATH, params):
            fresh = [p for p in persons if mark.is_new_record(p)]
            for person in fresh:
                mark.deliver(person)
            if fresh:
                yield ChangePage(records=[person_record(p) for p in fresh], cursor=mark.text())

    async def _lead_changes(self, cursor: str | None) -> AsyncIterator[ChangePage]:
        mark = ChangeMark.read(cursor, "Pipedrive")
        skip_ahead = 0
        while True:
            # Each page starts again from the last time seen, so leads updated while paging shift nothing away.
            params: dict[str, Any] = {"sort": "update_time", "limit": self.page_size, "start": skip_ahead}
            if mark.stamp:
                params["updated_since"] = mark.stamp
            data, extra = self._data(await self._call("GET", "/v1/leads", params=params))
            fresh = [
                lead for lead in data or [] if isinstance(lead, dict) and "id" in lead and mark.is_new_record(lead)
            ]
            more = bool(_v1_paging(extra).get("more_items_in_collection"))
            if fresh:
                persons = await self._persons_by_ids(
                    {
                        pid
                        for pid in (lead.get("person_id") for lead in fresh)
                        if isinstance(pid, int) and not isinstance(pid, bool)
                    }
                )
                for lead in fresh:
                    mark.deliver(lead)
                records = [
                    lead_record(lead, persons.get(pid) if isinstance(pid := lead.get("person_id"), int) else None)
                    for lead in fresh
                ]
                yield ChangePage(records=records, cursor=mark.text())
                skip_ahead = 0
            elif more:
                # A whole page shares one time and was delivered before: step over it.
                skip_ahead += self.page_size
            if not more:
                return

    # -- leads -----------------------------------------------------------------------------------------------------
    async def _lead(self, lead_id: str) -> dict[str, Any] | None:
        try:
            data, _ = self._data(await self._call("GET", f"/v1/leads/{lead_id}"))
        except (errors.NotFoundError, RecordRejectedError):
            return None
        return data if isinstance(data, dict) else None

    async def _leads_of_person(self, person_id: int) -> list[dict[str, Any]]:
        data, _ = self._data(
            await self._call("GET", "/v1/leads", params={"person_id": person_id, "limit": self.page_size})
        )
        return [lead for lead in data or [] if isinstance(lead, dict) and "id" in lead]

    async def _own_lead(self, person_id: int) -> dict[str, Any] | None:
        """The lead this app made for a person (by ``origin_id``), else the person's newest open lead."""
        leads = await self._leads_of_person(person_id)
        ours = [lead for lead in leads if lead.get("origin_id") == LEAD_ORIGIN_ID]
        candidates = ours or leads
        candidates.sort(key=lambda lead: (not lead.get("is_archived"), str(lead.get("add_time") or "")), reverse=True)
        return candidates[0] if candidates else None

    # -- notes, deals, activities ----------------------------------------------------------------------------------
    async def add_note(self, obj: RecordObject, crm_id: str, text: str) -> str:
        """``POST /v1/notes {content, person_id | lead_id}``; the text is escaped into HTML. Returns the note id."""
        target = ("lead_id", crm_id) if obj is RecordObject.LEAD else ("person_id", crm_id)
        note = await self._post_note(target, note_html(text))
        return str(note["id"])

    def _note_body(self, target: tuple[str, str], content: str) -> dict[str, Any]:
        key, value = target
        return {"content": content, key: value if key == "lead_id" else int(value)}

    async def _notes_of(self, target: tuple[str, str]) -> list[dict[str, Any]]:
        key, value = target
        params: dict[str, Any] = {key: value, "sort": "add_time DESC", "limit": NOTES_LOOKED_AT}
        data, _ = self._data(await self._call("GET", "/v1/notes", params=params))
        return [note for note in data or [] if isinstance(note, dict) and "id" in note]

    async def _post_note(self, target: tuple[str, str], content: str) -> dict[str, Any]:
        wanted = note_fingerprint(content)
        started = datetime.now(UTC)

        async def find() -> dict[str, Any] | None:
            for note in await self._notes_of(target):
                added = parse_crm_time(note.get("add_time"))
                recent = added is not None and added >= started - RECONCILE_WINDOW
                if recent and note_fingerprint(str(note.get("content"))) == wanted:
                    return note
            return None

        return await self._post_once("/v1/notes", self._note_body(target, content), find)

    async def _sync_social_note(self, target: tuple[str, str], text: str, *, fresh: bool) -> bool:
        """Add the record's social note unless the newest note of ours already says the same; True when added."""
        content = note_html(text, SOCIAL_NOTE_HEADING)
        wanted = note_fingerprint(content)
        if self._known_notes.get(target) == wanted:
            return False
        if not fresh:
            ours = [
                note_fingerprint(str(note.get("content")))
                for note in await self._notes_of(target)
                if note_fingerprint(str(note.get("content"))).startswith(SOCIAL_NOTE_HEADING)
            ]
            if ours and ours[0] == wanted:
                self._known_notes[target] = wanted
                return False
        await self._post_note(target, content)
        self._known_notes[target] = wanted
        return True

    async def create_deal(self, person_id: str, title: str, value: float | None = None) -> str:
        """``POST /api/v2/deals {title, person_id[, value]}``; returns the deal id."""
        body: dict[str, Any] = {"title": title, "person_id": int(person_id)}
        if value is not None:
            body["value"] = value
        started = datetime.now(UTC)

        async def find() -> dict[str, Any] | None:
            return await self._recent_item("/api/v2/deals", int(person_id), started, {"title": title})

        deal = await self._post_once("/api/v2/deals", body, find)
        return str(deal["id"])

    async def add_activity(self, person_id: str, subject: str, type: str = "call", note: str | None = None) -> str:
        """``POST /api/v2/activities {subject, type, person_id[, note]}`` (a call, meeting, task...); returns its id."""
        body: dict[str, Any] = {"subject": subject, "type": type, "person_id": int(person_id)}
        if note:
            body["note"] = note_html(note)
        started = datetime.now(UTC)

        async def find() -> dict[str, Any] | None:
            return await self._recent_item(
                "/api/v2/activities", int(person_id), started, {"subject": subject, "type": type}
            )

        activity = await self._post_once("/api/v2/activities", body, find)
        return str(activity["id"])

    async def _recent_item(
        self, path: str, person_id: int, started: datetime, same: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A deal or activity of the person created around ``started`` with these values (after a lost write)."""
        params = {"person_id": person_id, "sort_by": "add_time", "sort_direction": "desc", "limit": 50}
        data, _ = self._data(await self._call("GET", path, params=params))
        for item in data or []:
            added = parse_crm_time(item.get("add_time")) if isinstance(item, dict) else None
            if added is None or added < started - RECONCILE_WINDOW:
                continue
            if all(item.get(key) == value for key, value in same.items()):
                return dict(item)
        return None

    async def _post_once(
        self, path: str, body: dict[str, Any], find: Callable[[], Awaitable[dict[str, Any] | None]]
    ) -> dict[str, Any]:
        """Create something Pipedrive would duplicate on a replay: after a lost connection, look before writing."""

        async def post() -> dict[str, Any]:
            data, _ = self._data(await self._call("POST", path, idempotent=False, json=body))
            if not isinstance(data, dict) or "id" not in data:
                raise errors.TransientError(f"Pipedrive POST {path} answered without the new record's id")
            return data

        return await write_or_reconcile(post, find, what=f"Pipedrive POST {path}")

    # -- upsert ----------------------------------------------------------------------------------------------------
    async def upsert(self, obj: RecordObject, records: Sequence[OutboundRecord]) -> list[RecordResult]:
        """Create or update persons (or leads with their persons), one result per record in input order.

        Unlinked persons are found through an email index of every person when the push is large enough (see
        the class), else per chunk of 100 records by searching each email (concurrently, within search's window)
        and reading the found persons in one ``ids`` call. Then each record is written (POST or PATCH,
        concurrently within the burst window; records sharing an email one after the other), then its social
        note when the text changed.

        Raises:
            AuthError: the token was refused (nothing after it is written).
            BudgetExhaustedError: the daily token budget reached its reserve.
        """
        results: list[RecordResult | None] = [None] * len(records)
        written: dict[str, dict[str, Any]] = {}
        index = await self._person_index(records)
        size = INDEXED_CHUNK if index is not None else IDS_PER_REQUEST
        for numbered in chunks(list(enumerate(records)), size):
            await self._upsert_chunk(obj, numbered, results, written, index)
        return results_in_order(results, records, "Pipedrive")

    async def _person_index(self, records: Sequence[OutboundRecord]) -> _PersonIndex | None:
        """Every person by email when listing them is cheaper than searching each unlinked email, else ``None``."""
        unlinked = {email_key(record.email) for record in records if not record.crm_id} - {""}
        if len(unlinked) < LIST_DEDUPE_MIN_RECORDS:
            return None
        index = _PersonIndex()
        index.listed_at = self._clock()
        if not await self._list_persons_into(index, {}, max_pages=LIST_PAGES_PER_SEARCH * len(unlinked)):
            logger.info("Pipedrive holds too many persons to list for %d emails; searching them", len(unlinked))
            return None
        logger.info("Pipedrive persons listed for a push of %d records: %d persons", len(records), len(index))
        return index

    async def _list_persons_into(
        self, index: _PersonIndex, params: dict[str, Any], *, max_pages: int | None = None
    ) -> bool:
        """List persons (``GET /api/v2/persons``, 500 a page) into ``index``; ``False`` past ``max_pages``."""
        wanted = {**params, "limit": self.page_size}
        started: list[datetime] = []

        async def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
            response = await self._call("GET", PERSONS_PATH, params={**wanted, "cursor": cursor} if cursor else wanted)
            if not started:
                started.append((server_time(response) or datetime.now(UTC)) - LIST_REFRESH_OVERLAP)
            data, extra = self._data(response)
            return list(data or []), extra.get("next_cursor")

        pages = 0
        async with aclosing(paginate(fetch)) as listing:
            async for persons, following in listing:
                pages += 1
                for person in persons:
                    if isinstance(person, dict) and "id" in person:
                        index.add(person)
                if following and max_pages is not None and pages >= max_pages:
                    return False
        index.since = started[0]
        return True

    async def _listed_person(self, index: _PersonIndex, email: str) -> dict[str, Any] | None:
        """The indexed person with ``email``, after listing what changed since when the index is getting old."""
        async with index.lock:
            if self._clock() - index.listed_at >= self.index_refresh_seconds:
                index.listed_at = self._clock()
                await self._list_persons_into(index, {"updated_since": utc_seconds(index.since)})
        return index.get(email)

    async def _upsert_chunk(
        self,
        obj: RecordObject,
        chunk: list[tuple[int, OutboundRecord]],
        results: list[RecordResult | None],
        written: dict[str, dict[str, Any]],
        persons: _PersonIndex | None = None,
    ) -> None:
        pending: list[_Pending] = []
        for index, record in chunk:
            email = email_key(record.email)
            try:
                if not email:
                    raise _RecordProblem("email", "is empty; Pipedrive persons are matched by email")
                fields = await self._wire_custom_values(record.fields)
                wish, lead = _split_fields(obj, email, fields)
            except _RecordProblem as problem:
                message = f"{record.email}: field '{problem.field_name}' {problem.reason}"
                results[index] = failed_result(record.email, ErrorCategory.VALIDATION, message, crm_id=record.crm_id)
                continue
            pending.append(_Pending(index=index, record=record, email=email, person=wish, lead=lead))
        if not pending:
            return
        await self._resolve_existing(obj, pending, results, written, persons)
        by_email: dict[str, list[_Pending]] = {}
        for item in pending:
            if results[item.index] is None:
                by_email.setdefault(item.email, []).append(item)

        # With the index, a few records per request slot are in progress at a time, so each is looked up just
        # before it is written (the index stays at most LIST_REFRESH_SECONDS behind Pipedrive).
        in_progress = asyncio.Semaphore(2 * self.budget.concurrency if persons is not None else len(by_email) or 1)

        async def write_in_turn(group: list[_Pending]) -> None:
            # Records sharing an email go one after the other, each seeing the person the one before wrote.
            async with in_progress:
                for item in group:
                    if item.existing is None and item.email in written:
                        item.existing = written[item.email]
                        item.person_id = int(item.existing["id"])
                    elif persons is not None and item.person_id is None:
                        listed = await self._listed_person(persons, item.email)
                        if listed is not None:
                            item.existing, item.person_id = listed, int(listed["id"])
                    results[item.index] = await self._write_one(obj, item, written)

        await gather_or_cancel(write_in_turn(group) for group in by_email.values())

    async def _wire_custom_values(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Record fields with custom field names turned into keys and option labels into option ids."""
        standard = _WRITABLE_PERSON_FIELDS | _LEAD_KEYS | _IGNORED_PERSON_FIELDS
        custom = [key for key in fields if key not in standard]
        if not custom:
            return dict(fields)
        mapping = await self.field_map()
        wired = {key: value for key, value in fields.items() if key in standard}
        for key in custom:
            wire_key = mapping.key_for(key)
            known = mapping.get(wire_key) if wire_key else None
            if known is None or not known.custom:
                raise _RecordProblem(mapping.name_for(key), "is not a Pipedrive person field (create it first)")
            try:
                wired[known.name] = mapping.wire_value(known.name, fields[key])
            except ValueError as exc:
                raise _RecordProblem(known.label, str(exc)) from None
        return wired

    async def _resolve_existing(
        self,
        obj: RecordObject,
        pending: list[_Pending],
        results: list[RecordResult | None],
        written: dict[str, dict[str, Any]],
        persons: _PersonIndex | None = None,
    ) -> None:
        """Find each record's person: its linked id, one written earlier in this push, the index or a search."""

        async def follow_link(item: _Pending) -> None:
            crm_id = item.record.crm_id
            if not crm_id:
                return
            if obj is RecordObject.CONTACT:
                item.person_id = int(crm_id) if crm_id.isdigit() else None
                return
            lead = await self._lead(crm_id)
            if lead is not None:
                item.lead_existing = lead
                person_id = lead.get("person_id")
                item.person_id = person_id if isinstance(person_id, int) else None

        await gather_or_cancel(follow_link(item) for item in pending)
        await self._read_persons(item for item in pending if item.person_id is not None)
        unlinked = [item for item in pending if item.person_id is None]
        for item in unlinked:
            if item.email in written:
                item.existing = written[item.email]
                item.person_id = int(item.existing["id"])
        if persons is not None:
            return  # looked up in the index right before each write
        emails = sorted({item.email for item in unlinked if item.person_id is None})

        async def search(email: str) -> int | errors.ProviderError | None:
            try:
                return await self._search_person_id(email)
            except _FATAL:
                raise
            except errors.ProviderError as exc:
                return exc

        found = dict(zip(emails, await gather_or_cancel(search(email) for email in emails), strict=True))
        for item in unlinked:
            if item.person_id is not None:
                continue
            outcome = found[item.email]
            if isinstance(outcome, errors.ProviderError):
                results[item.index] = self._failure(item.record, outcome, "the search for the person")
            else:
                item.person_id = outcome
        await self._read_persons(item for item in unlinked if item.person_id is not None and item.existing is None)

    async def _read_persons(self, items: Iterable[_Pending]) -> None:
        """Fill in the full persons of records whose person id is known (one call per 100)."""
        waiting = [item for item in items if item.person_id is not None and item.existing is None]
        if not waiting:
            return
        persons = await self._persons_by_ids(item.person_id for item in waiting if item.person_id is not None)
        for item in waiting:
            item.existing = persons.get(item.person_id) if item.person_id is not None else None
            if item.existing is None:
                item.person_id = None  # deleted or merged in Pipedrive since it was linked: match by email

    async def _write_one(self, obj: RecordObject, item: _Pending, written: dict[str, dict[str, Any]]) -> RecordResult:
        record = item.record
        stage = "the person"
        crm_id = record.crm_id
        try:
            person, person_outcome = await self._write_person(item)
            written[item.email] = person
            person_id = int(person["id"])
            if obj is RecordObject.CONTACT:
                crm_id, outcome = str(person_id), person_outcome
                note_target = ("person_id", crm_id)
                fresh = person_outcome is RecordOutcome.CREATED
                # The answer's update_time is the stamp the change feed pages by: the engine knows this write's echo.
                stamp = parse_crm_time(person.get("update_time"))
            else:
                stage = "the lead"
                lead, lead_outcome = await self._write_lead(
                    item, person_id, fresh=person_outcome is RecordOutcome.CREATED
                )
                crm_id = str(lead["id"])
                outcome = lead_outcome
                if lead_outcome is RecordOutcome.UNCHANGED and person_outcome is not RecordOutcome.UNCHANGED:
                    outcome = RecordOutcome.UPDATED
                note_target = ("lead_id", crm_id)
                fresh = lead_outcome is RecordOutcome.CREATED
                stamp = parse_crm_time(lead.get("update_time"))
            if record.note and record.note.strip():
                stage = "the social note"
                added = await self._sync_social_note(note_target, record.note, fresh=fresh)
                if added and outcome is RecordOutcome.UNCHANGED:
                    outcome = RecordOutcome.UPDATED
            return RecordResult(email=record.email, outcome=outcome, crm_id=crm_id, crm_modified_at=stamp)
        except _FATAL:
            raise
        except errors.ProviderError as exc:
            return replace(self._failure(record, exc, stage), crm_id=crm_id)

    def _failure(self, record: OutboundRecord, exc: errors.ProviderError, stage: str) -> RecordResult:
        if isinstance(exc, RecordRejectedError):
            where = f" field '{self._humanise(exc.field)}'" if exc.field else ""
            message = f"{record.email}: Pipedrive refused {stage}{where}: {exc}"
        else:
            message = f"{record.email}: {stage} was not written: {exc}"
        return failed_result(record.email, exc.category, message, crm_id=record.crm_id)

    async def _write_person(self, item: _Pending) -> tuple[dict[str, Any], RecordOutcome]:
        """POST a new person or PATCH what differs; nothing when the person already has these values."""
        if item.existing is None:
            return await self._create_person(item), RecordOutcome.CREATED
        changes = _person_changes(item.person, item.existing)
        if not changes:
            return item.existing, RecordOutcome.UNCHANGED
        person_id = int(item.existing["id"])
        data, _ = self._data(await self._call("PATCH", f"{PERSONS_PATH}/{person_id}", json=changes))
        return (data if isinstance(data, dict) else item.existing), RecordOutcome.UPDATED

    async def _create_person(self, item: _Pending) -> dict[str, Any]:
        return await self._post_once(
            PERSONS_PATH, _new_person_body(item.person), lambda: self._reconcile_person(item.email)
        )

    async def _reconcile_person(self, email: str) -> dict[str, Any] | None:
        """After a lost create: search the email again, then (search lags writes) look among the newest persons."""
        person_id = await self._search_person_id(email)
        if person_id is not None:
            return await self._person(person_id)
        params = {"sort_by": "id", "sort_direction": "desc", "limit": IDS_PER_REQUEST}
        data, _ = self._data(await self._call("GET", PERSONS_PATH, params=params))
        for person in data or []:
            if isinstance(person, dict) and any(
                email_key(item.get("value")) == email for item in _items(person.get("emails"))
            ):
                return person
        return None

    async def _write_lead(self, item: _Pending, person_id: int, *, fresh: bool) -> tuple[dict[str, Any], RecordOutcome]:
        lead = item.lead_existing
        if lead is None and not fresh:
            lead = await self._own_lead(person_id)
        wanted = dict(item.lead)
        if lead is None:
            body = {"title": wanted.pop("title", None) or item.person.full_name(item.existing) or item.email, **wanted}
            body.update({"person_id": person_id, "origin_id": LEAD_ORIGIN_ID})

            async def find() -> dict[str, Any] | None:
                return next(
                    (
                        lead
                        for lead in await self._leads_of_person(person_id)
                        if lead.get("origin_id") == LEAD_ORIGIN_ID
                    ),
                    None,
                )

            return await self._post_once("/v1/leads", body, find), RecordOutcome.CREATED
        changes = {key: value for key, value in wanted.items() if not _same_value(lead.get(key), value)}
        if lead.get("person_id") != person_id:
            changes["person_id"] = person_id
        if not changes:
            return lead, RecordOutcome.UNCHANGED
        data, _ = self._data(await self._call("PATCH", f"/v1/leads/{lead['id']}", json=changes))
        return (data if isinstance(data, dict) else lead), RecordOutcome.UPDATED

    # -- timeline --
    async def log_timeline(self, obj: RecordObject, entries: Sequence[TimelineEntry]) -> list[TimelineResult]:
        """Done activities (``POST /api/v2/activities``, type ``task``) on persons or leads; Pipedrive has no batch
        create, so a few are sent at once within the burst window.

        Each entry answers for itself: one that could not be sent (network, rate limit) reports it with its category
        so that the caller retries only that one; a lost answer is settled by listing the record's activities first.
        """
        results: list[TimelineResult] = []
        for part in chunks(list(entries), ACTIVITIES_AT_ONCE):
            results.extend(await gather_or_cancel(self._log_activity(obj, entry) for entry in part))
        return results

    async def _log_activity(self, obj: RecordObject, entry: TimelineEntry) -> TimelineResult:
        moment = entry.occurred_at.astimezone(UTC)
        body: dict[str, Any] = {
            "subject": entry.subject[:ACTIVITY_SUBJECT_LIMIT],
            "type": "task",
            "due_date": moment.date().isoformat(),
            "due_time": moment.strftime("%H:%M"),
            "done": True,
            "note": note_html(entry.body),
        }
        if obj is RecordObject.LEAD:
            body["lead_id"] = entry.crm_id
            listing: dict[str, Any] = {"lead_id": entry.crm_id}
        elif entry.crm_id.isascii() and entry.crm_id.isdigit():
            body["person_id"] = int(entry.crm_id)
            listing = {"person_id": int(entry.crm_id)}
        else:
            return TimelineResult(None, ErrorCategory.NOT_FOUND, f"{entry.crm_id!r} is not a Pipedrive person id")

        async def find() -> dict[str, Any] | None:
            data, _ = self._data(await self._call("GET", "/api/v2/activities",
                                                  params={**listing, "limit": ACTIVITIES_LOOKED_AT}))
            for activity in data or []:
                if isinstance(activity, dict) and all(
                    activity.get(key) == body[key] for key in ("subject", "due_date", "due_time")
                ):
                    return activity
            return None

        what = f"activity on {'lead' if obj is RecordObject.LEAD else 'person'} {entry.crm_id}"
        try:
            created = await self._post_once("/api/v2/activities", body, find)
        except (errors.AuthError, errors.PermissionRefusedError, errors.RateLimitError, errors.TransientError) as exc:
            return TimelineResult(None, exc.category, f"Pipedrive: {what}: {exc}")
        except errors.RequestRejectedError as exc:
            return TimelineResult(None, exc.category, f"Pipedrive: {what}: {exc}")
        return TimelineResult(str(created["id"]))

    # -- merges --
    async def merge_records(self, obj: RecordObject, keep_id: str, merge_id: str) -> MergeResult:
        """``PUT /v1/persons/{merge_id}/merge`` with ``merge_with_id`` = ``keep_id``: Pipedrive keeps that person
        (its data wins) and folds the other into it; 40 API tokens.

        Raises:
            RequestRejectedError: for leads (Pipedrive merges persons) or a merge Pipedrive refuses.
            NotFoundError: when either person is gone.
        """
        if obj is not RecordObject.CONTACT:
            raise errors.RequestRejectedError("Pipedrive: only persons are merged from CRM Desktop")
        if not (keep_id.isdigit() and merge_id.isdigit()):
            raise errors.RequestRejectedError(f"Pipedrive: person ids are numbers, not {keep_id!r} and {merge_id!r}")
        response = await self.http.request(
            "PUT", f"/v1/persons/{merge_id}/merge", json={"merge_with_id": int(keep_id)}, idempotent=False
        )
        if response.status_code >= 400:
            raise errors.RequestRejectedError(
                f"Pipedrive refused merging person {merge_id} into {keep_id} (HTTP {response.status_code})",
                status=response.status_code,
            )
        data = response.json().get("data") or {}
        return MergeResult(surviving_id=str(data.get("id") or keep_id), merged_id=merge_id)

    # -- conversions and deals --
    async def conversions_since(self, since: datetime | None) -> list[CrmConversion]:
        """Won deals of a person changed since ``since`` (``GET /api/v2/deals?status=won&updated_since=``), with
        their value and currency; the persons' emails come from ``GET /api/v2/persons?ids=``."""
        params: dict[str, Any] = {
            "status": "won", "sort_by": "update_time", "sort_direction": "asc", "limit": self.page_size
        }
        if since is not None:
            params["updated_since"] = utc_seconds(since)

        async def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
            page_params = {**params, "cursor": cursor} if cursor else params
            data, extra = self._data(await self._call("GET", "/api/v2/deals", params=page_params))
            return list(data or []), extra.get("next_cursor")

        deals: list[dict[str, Any]] = []
        async for page, _ in paginate(fetch):
            deals.extend(d for d in page if isinstance(d, dict) and d.get("person_id") and d.get("status") == "won")
        persons = await self._persons_by_ids(int(d["person_id"]) for d in deals)
        found: list[CrmConversion] = []
        for deal in deals:
            person = persons.get(int(deal["person_id"]))
            email = email_key(_primary(_items(person.get("emails")))) if person else ""
            won = parse_crm_time(deal.get("won_time") or deal.get("close_time") or deal.get("update_time"))
            if not email or won is None:
                continue
            value = deal.get("value")
            priced = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
            found.append(
                CrmConversion(
                    external_id=f"deal:{deal['id']}",
                    email=email,
                    converted_at=won,
                    what="deal won",
                    value=Decimal(str(value)).quantize(Decimal("0.01")) if priced else None,
                    currency=(str(deal.get("currency") or "").upper() or None) if priced else None,
                    modified_at=parse_crm_time(deal.get("update_time")),
                )
            )
        return found

    async def deal_pipelines(self) -> list[DealPipeline]:
        """The live pipelines (``GET /api/v2/pipelines``) with their stages (``GET /api/v2/stages``), in order."""

        def lister(path: str) -> Callable[[str | None], Awaitable[tuple[list[Any], str | None]]]:
            async def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
                params: dict[str, Any] = {"limit": self.page_size, **({"cursor": cursor} if cursor else {})}
                data, extra = self._data(await self._call("GET", path, params=params))
                return list(data or []), extra.get("next_cursor")

            return fetch

        pipelines = [p async for page, _ in paginate(lister("/api/v2/pipelines")) for p in page if isinstance(p, dict)]
        stages = [s async for page, _ in paginate(lister("/api/v2/stages")) for s in page if isinstance(s, dict)]
        live = [p for p in pipelines if not p.get("is_deleted")]
        live.sort(key=lambda p: (p.get("order_nr") or 0, p.get("id") or 0))
        return [
            DealPipeline(
                id=str(p["id"]),
                name=str(p.get("name") or p["id"]),
                stages=tuple(
                    DealStage(id=str(s["id"]), name=str(s.get("name") or s["id"]))
                    for s in sorted(stages, key=lambda s: (s.get("order_nr") or 0, s.get("id") or 0))
                    if s.get("pipeline_id") == p["id"] and not s.get("is_deleted")
                ),
            )
            for p in live
        ]

    async def person_deal(self, email: str, pipeline_id: str) -> str | None:
        """A deal the person already has in the pipeline (``GET /api/v2/deals?person_id=&pipeline_id=``)."""
        person_id = await self._search_person_id(email_key(email))
        if person_id is None:
            return None
        params = {"person_id": person_id, "pipeline_id": int(pipeline_id), "limit": 1}
        data, _ = self._data(await self._call("GET", "/api/v2/deals", params=params))
        deals = [d for d in data or [] if isinstance(d, dict) and "id" in d]
        return str(deals[0]["id"]) if deals else None

    async def open_person_deal(
        self, email: str, title: str, pipeline_id: str, stage_id: str, value: Decimal | None, currency: str | None
    ) -> str | None:
        """``POST /api/v2/deals {title, person_id, pipeline_id, stage_id[, value, currency]}`` for the person with
        that email; ``None`` when Pipedrive has no such person yet. A lost answer is looked up, never re-sent."""
        person_id = await self._search_person_id(email_key(email))
        if person_id is None:
            return None
        body: dict[str, Any] = {
            "title": title, "person_id": person_id, "pipeline_id": int(pipeline_id), "stage_id": int(stage_id)
        }
        if value is not None and currency:
            body.update(value=float(value), currency=currency)
        started = datetime.now(UTC)

        async def find() -> dict[str, Any] | None:
            return await self._recent_item("/api/v2/deals", person_id, started, {"title": title})

        deal = await self._post_once("/api/v2/deals", body, find)
        return str(deal["id"])


#: Activities sent at once (Pipedrive has no batch create; the burst window allows a few in flight).
ACTIVITIES_AT_ONCE = 5
#: Pipedrive's subject length, and the activities read back after a lost answer.
ACTIVITY_SUBJECT_LIMIT = 255
ACTIVITIES_LOOKED_AT = 100


# -- record building ---------------------------------------------------------------------------------------------


def _person_field(raw: dict[str, Any]) -> tuple[CrmField, dict[str, int]]:
    key = str(raw["key"])
    kind = str(raw.get("field_type") or "varchar")
    custom = bool(_HASH_KEY.fullmatch(key)) or bool(raw.get("edit_flag"))
    options = [o for o in raw.get("options") or [] if isinstance(o, dict) and "label" in o]
    ids = {str(o["label"]).casefold(): int(o["id"]) for o in options if isinstance(o.get("id"), int)}
    crm_field = CrmField(
        name=key,
        label=str(raw.get("name") or ("Custom field" if custom else key)),
        type=kind,
        custom=custom,
        writable=custom or key in _WRITABLE_PERSON_FIELDS,
        length=255 if kind in {"varchar", "varchar_auto", "phone"} else None,
        options=tuple(str(o["label"]) for o in options),
    )
    return crm_field, ids


def _split_fields(obj: RecordObject, email: str, fields: Mapping[str, Any]) -> tuple[_PersonWish, dict[str, Any]]:
    """A record's fields as the person's parts and (for leads) the lead's own fields."""
    wish = _PersonWish(email=email)
    lead: dict[str, Any] = {}
    wish.name = str(fields.get("name") or "").strip() or None
    wish.name_parts = {key: str(fields[key] or "").strip() for key in ("first_name", "last_name") if key in fields}
    phone = fields.get("phone")
    wish.phone = str(phone).strip() if phone not in (None, "") else None
    for key, value in fields.items():
        if obj is RecordObject.LEAD and key in _LEAD_KEYS:
            if key == "visible_to" and value is not None:
                value = str(value)
            lead[key] = value
        elif key in _PERSON_PASS_THROUGH:
            wish.attributes[key] = value
        elif key in _WRITABLE_PERSON_FIELDS or key in _IGNORED_PERSON_FIELDS:
            continue
        elif _HASH_KEY.fullmatch(key):
            wish.custom[key] = value
        else:
            raise _RecordProblem(key, "is not a Pipedrive person field")
    return wish, lead


def _new_person_body(wish: _PersonWish) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": wish.full_name() or wish.email,
        "emails": [{"value": wish.email, "primary": True, "label": "work"}],
    }
    if wish.phone:
        body["phones"] = [{"value": wish.phone, "primary": True, "label": "work"}]
    body.update({key: value for key, value in wish.attributes.items() if value is not None})
    custom = {key: value for key, value in wish.custom.items() if value is not None}
    if custom:
        body["custom_fields"] = custom
    return body


def _person_changes(wish: _PersonWish, existing: Mapping[str, Any]) -> dict[str, Any]:
    """The PATCH body that makes ``existing`` match the wish (empty when it already does).

    A new email or phone becomes the primary one; the person's other emails and phones are kept with their labels.
    A phone the person already has as another number becomes the primary one again (the phone a sync reads is the
    primary one: an undo putting back the number a push replaced must move it back to the front).
    """
    changes: dict[str, Any] = {}
    name = wish.full_name(existing)
    if name and str(existing.get("name") or "").strip() != name:
        changes["name"] = name
    emails = _items(existing.get("emails"))
    if not any(email_key(item["value"]) == wish.email for item in emails):
        changes["emails"] = [{"value": wish.email, "primary": True, "label": "work"}] + [
            {"value": str(item["value"]), "primary": False, "label": str(item.get("label") or "work")}
            for item in emails
        ]
    phones = _items(existing.get("phones"))
    wished = _phone_key(wish.phone)
    if wish.phone and _phone_key(_primary(phones)) != wished:
        held = next((item for item in phones if _phone_key(item["value"]) == wished), None)
        changes["phones"] = [
            {"value": str(held["value"]) if held else wish.phone, "primary": True,
             "label": str(held.get("label") or "work") if held else "work"}
        ] + [
            {"value": str(item["value"]), "primary": False, "label": str(item.get("label") or "work")}
            for item in phones if item is not held
        ]
    for key, value in wish.attributes.items():
        if not _same_value(existing.get(key), value):
            changes[key] = value
    current = existing.get("custom_fields") if isinstance(existing.get("custom_fields"), dict) else {}
    assert isinstance(current, dict)
    custom = {key: value for key, value in wish.custom.items() if not _same_value(current.get(key), value)}
    if custom:
        changes["custom_fields"] = custom
    return changes


#: The seed field that identifies a person on each platform.
_IDENTITY_FIELDS = {"twitter": "twitter_username", "instagram": "instagram_username", "linkedin": "linkedin_url"}


def _contact_social_values(contact: Contact) -> dict[str, Any]:
    profiles = {profile.platform.value: profile for profile in contact.social_profiles}
    values: dict[str, Any] = {
        "twitter_username": profiles["twitter"].username if "twitter" in profiles else None,
        "instagram_username": profiles["instagram"].username if "instagram" in profiles else None,
        "linkedin_url": profiles["linkedin"].url if "linkedin" in profiles else None,
        "social_followers": sum(p.followers for p in contact.social_profiles) if contact.social_profiles else None,
    }
    return {key: value for key, value in values.items() if value is not None}


def _person_fields_of(email: str, first: str | None, last: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"email": email}
    if first:
        fields["first_name"] = first
    if last:
        fields["last_name"] = last
    return fields


def default_contact_record(contact: Contact, *, social_field_keys: Mapping[str, str] | None = None) -> OutboundRecord:
    """The default mapping of a contact to a Pipedrive person.

    Name, email and phone go to the person. Pipedrive has no social person fields by default, so the social
    profiles, the company (an organization, not a person field) and the contact's own custom values go into the
    social note; a social field the company did create (``social_field_keys``: seed name -> hash key, e.g. from
    :meth:`PersonFieldMap.keys_by_name`) takes its value instead.
    """
    keys = dict(social_field_keys or {})
    fields = _person_fields_of(contact.email, contact.first_name, contact.last_name)
    if contact.phone:
        fields["phone"] = contact.phone
    mapped = {name: value for name, value in _contact_social_values(contact).items() if name in keys}
    for name, value in mapped.items():
        fields[keys[name]] = value
    lines: list[str] = []
    if contact.company:
        lines.append(f"Company: {contact.company}")
    for profile in sorted(contact.social_profiles, key=lambda p: (p.platform.value, p.username)):
        reach = f"{profile.followers:,} followers, {profile.engagement:g}% engagement"
        platform = profile.platform.value.capitalize()
        if _IDENTITY_FIELDS.get(profile.platform.value) in mapped:
            lines.append(f"{platform}: {reach}")  # the handle is in its own field
        else:
            lines.append(f"{platform}: @{profile.username} ({reach})" + (f" {profile.url}" if profile.url else ""))
    if len(contact.social_profiles) > 1 and "social_followers" not in mapped:
        lines.append(f"Followers in all: {sum(p.followers for p in contact.social_profiles):,}")
    for name, value in sorted(contact.custom_fields.items()):
        if name in keys:
            fields[keys[name]] = value
        elif value is not None:
            lines.append(f"{name}: {value}")
    return OutboundRecord(email=contact.email, fields=fields, note="\n".join(lines) or None)


def default_lead_record(lead: Lead, *, social_field_keys: Mapping[str, str] | None = None) -> OutboundRecord:
    """The default mapping of a lead to a Pipedrive lead (``title``) and its person (name, email).

    The title names the person and the source (``Ana Silva via twitter_dm``). Status, company and the social
    context go into the lead's social note, unless ``social_field_keys`` maps a seed social field
    (``lead_source_detail``, ``social_sentiment``, ``social_engagement_score``) to a person custom field.
    """
    keys = dict(social_field_keys or {})
    fields = _person_fields_of(lead.email, lead.first_name, lead.last_name)
    who = " ".join(part for part in (lead.first_name, lead.last_name) if part) or lead.email
    fields["title"] = f"{who} via {lead.source}" if lead.source else f"{who} (social lead)"
    context = lead.social_context
    social: dict[str, Any] = {
        "lead_source_detail": lead.source,
        "social_sentiment": context.sentiment.value if context and context.sentiment else None,
        "social_engagement_score": context.engagement_score if context else None,
    }
    for name, value in social.items():
        if name in keys and value is not None:
            fields[keys[name]] = value
    lines = [f"Status: {lead.status.value}"]
    if lead.company:
        lines.append(f"Company: {lead.company}")
    if lead.source and "lead_source_detail" not in keys:
        lines.append(f"Source: {lead.source}")
    if context is not None:
        lines.append(f"Platform: {context.platform.value}")
        if context.conversation_id:
            lines.append(f"Conversation: {context.conversation_id}")
        if context.sentiment and "social_sentiment" not in keys:
            lines.append(f"Sentiment: {context.sentiment.value}")
        if context.engagement_score is not None and "social_engagement_score" not in keys:
            lines.append(f"Engagement score: {context.engagement_score:g}")
    return OutboundRecord(email=lead.email, fields=fields, note="\n".join(lines))
