"""HubSpot CRM v3 adapter: private-app token, batch upserts by email, search-based change pulls, leads, notes."""

from __future__ import annotations

import html
import json
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, Unpack
from urllib.parse import quote

import httpx

from crm_desktop.domain.models import Contact, Integration, Lead, LeadStatus
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
from crm_desktop.providers.conversions import CrmConversion
from crm_desktop.providers.http import OK, AmbiguousWriteError, Decision, Verdict, classify_status, json_or_none
from crm_desktop.providers.rate import read_hubspot_headers, retry_after_seconds
from crm_desktop.providers.toolkit import (
    ChangeCursor,
    FieldCache,
    StackedBudget,
    WriteGate,
    chunks,
    distinct_email_keys,
    email_key,
    epoch_millis,
    failed_result,
    gather_or_cancel,
    parse_crm_time,
    results_in_order,
    rounds_by_email,
    server_time,
    social_context_values,
    social_profile_values,
    utc_millis,
    write_or_reconcile,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.hubapi.com"
#: Inputs per batch request (HubSpot's limit for batch read, create, update and upsert).
BATCH_SIZE = 100
#: Results per search page (HubSpot's maximum) and the most one search query can page through.
SEARCH_PAGE_SIZE = 200
SEARCH_RESULT_CAP = 10_000
#: Private apps on Free and Starter: 100 requests per rolling 10 s (Professional: 190; the headers tell).
DEFAULT_WINDOW_LIMIT = 100
WINDOW_SECONDS = 10.0
#: Search has its own limit: 4 requests per second per token.
SEARCH_PER_SECOND = 4
#: Lifecycle stages that count as a conversion (opportunity or customer reached; evangelist is past both).
CONVERTED_LIFECYCLE_STAGES = ("opportunity", "customer", "evangelist")
DEFAULT_CONCURRENCY = 4
#: How far before a full lead pull starts it begins watching the leads' contacts (clock skew, whole-second Date).
FULL_PULL_CONTACT_OVERLAP = timedelta(minutes=1)

#: HubSpot-defined association types used here.
LEAD_TO_PRIMARY_CONTACT = 578
NOTE_TO_CONTACT = 202

CONTACT_PROPERTIES = (
    "email",
    "firstname",
    "lastname",
    "company",
    "phone",
    "jobtitle",
    "website",
    "lifecyclestage",
    "hs_lead_status",
    "twitter_username",
    "instagram_username",
    "linkedin_url",
    "social_followers",
    "social_engagement_score",
    "social_sentiment",
    "createdate",
    "lastmodifieddate",
    "hs_object_id",
)
LEAD_PROPERTIES = (
    "hs_lead_name",
    "hs_lead_type",
    "hs_lead_label",
    "hs_pipeline",
    "hs_pipeline_stage",
    "hs_createdate",
    "hs_lastmodifieddate",
    "hs_object_id",
)
#: Lead-object properties of the default lead mapping; dropped when the account has no leads object.
LEAD_OBJECT_FIELDS = frozenset({"hs_lead_name", "hs_lead_type", "hs_lead_label", "hs_pipeline", "hs_pipeline_stage"})
LIFECYCLE_STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
#: The app's lead status as HubSpot's contact ``hs_lead_status``, lifecycle stage and lead pipeline stage.
LEAD_STATUS_VALUES: dict[LeadStatus, str] = {
    LeadStatus.NEW: "NEW",
    LeadStatus.CONTACTED: "ATTEMPTED_TO_CONTACT",
    LeadStatus.QUALIFIED: "OPEN_DEAL",
    LeadStatus.UNQUALIFIED: "UNQUALIFIED",
    LeadStatus.CONVERTED: "CONNECTED",
}
LEAD_LIFECYCLE_STAGES: dict[LeadStatus, str] = {
    LeadStatus.NEW: "lead",
    LeadStatus.CONTACTED: "lead",
    LeadStatus.QUALIFIED: "salesqualifiedlead",
    LeadStatus.UNQUALIFIED: "lead",
    LeadStatus.CONVERTED: "opportunity",
}
LEAD_PIPELINE_STAGES: dict[LeadStatus, str] = {
    LeadStatus.NEW: "new-stage-id",
    LeadStatus.CONTACTED: "attempting-stage-id",
    LeadStatus.QUALIFIED: "qualified-stage-id",
    LeadStatus.UNQUALIFIED: "unqualified-stage-id",
    LeadStatus.CONVERTED: "connected-stage-id",
}
#: The app's field types as HubSpot's property ``type`` and ``fieldType``.
PROPERTY_TYPES: dict[str, tuple[str, str]] = {
    "string": ("string", "text"),
    "text": ("string", "text"),
    "textarea": ("string", "textarea"),
    "url": ("string", "text"),
    "number": ("number", "number"),
    "integer": ("number", "number"),
    "float": ("number", "number"),
    "bool": ("bool", "booleancheckbox"),
    "boolean": ("bool", "booleancheckbox"),
    "date": ("date", "date"),
    "datetime": ("datetime", "date"),
    "phone": ("phone_number", "phonenumber"),
    "phone_number": ("phone_number", "phonenumber"),
    "enumeration": ("enumeration", "select"),
    "select": ("enumeration", "select"),
}

_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
_PROPERTY_PROBLEMS = re.compile(r"Property values were not valid:\s*(\[.*\])", re.DOTALL)
_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")
#: Contacts that are (or were) leads: where HubSpot keeps a lead's status, names, company and social fields.
_HAS_LEAD_STATUS: dict[str, Any] = {"propertyName": "hs_lead_status", "operator": "HAS_PROPERTY"}
#: A batch start no update time can reach: a lead left untouched reads as unchanged.
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


# -- small helpers ------------------------------------------------------------------------------------------------
def _email_key(value: Any) -> str:
    """The dedupe key of an email, ``''`` for text with no ``@``: HubSpot looks contacts up by email only."""
    key = email_key(value)
    return key if "@" in key else ""


def _wire_value(value: Any) -> Any:
    """A field value as HubSpot takes it (booleans and date-times as text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return utc_millis(value)
    return value


def _wire_properties(fields: dict[str, Any], *, drop: Iterable[str] = ()) -> dict[str, Any]:
    """Field values to send; ``None`` means "leave as is" and is not sent (send ``""`` to clear)."""
    dropped = set(drop)
    return {name: _wire_value(value) for name, value in fields.items() if value is not None and name not in dropped}


def _body(response: httpx.Response) -> dict[str, Any]:
    data = json_or_none(response)
    return data if isinstance(data, dict) else {}


def _answered(response: httpx.Response, what: str) -> dict[str, Any]:
    """The JSON body of a success about ``what``.

    Raises:
        RequestRejectedError: naming ``what`` and HubSpot's reason, with its category, when HubSpot refused it.
    """
    if response.status_code >= 400:
        category, message = record_failure(_body(response), response.status_code, what)
        raise errors.RequestRejectedError(f"HubSpot: {message}", status=response.status_code, category=category)
    return _body(response)


# -- reading HubSpot's errors -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PropertyProblem:
    """One property value HubSpot refused: the property, HubSpot's code and its sentence."""

    name: str
    code: str
    message: str


def property_problems(error: dict[str, Any]) -> list[PropertyProblem]:
    """The refused properties of a ``VALIDATION_ERROR`` (from its message's JSON list, else from ``errors``)."""
    problems: list[PropertyProblem] = []
    match = _PROPERTY_PROBLEMS.search(str(error.get("message") or ""))
    if match:
        try:
            listed = json.loads(match.group(1))
        except ValueError:
            listed = []
        for item in listed if isinstance(listed, list) else []:
            if isinstance(item, dict) and item.get("name"):
                problems.append(
                    PropertyProblem(str(item["name"]), str(item.get("error") or ""), str(item.get("message") or ""))
                )
    if problems:
        return problems
    for item in error.get("errors") or []:
        if not isinstance(item, dict):
            continue
        context: dict[str, Any] = item["context"] if isinstance(item.get("context"), dict) else {}
        names = context.get("propertyName")
        if isinstance(names, list) and names:
            problems.append(PropertyProblem(str(names[0]), str(item.get("code") or ""), str(item.get("message") or "")))
    return problems


def _required_scopes(body: dict[str, Any]) -> list[str]:
    scopes: list[str] = []
    for item in body.get("errors") or []:
        context = item.get("context") if isinstance(item, dict) else None
        if isinstance(context, dict):
            for key in ("requiredGranularScopes", "requiredScopes"):
                scopes.extend(str(scope) for scope in context.get(key) or [])
    return scopes


_CATEGORY_OF: dict[str, ErrorCategory] = {
    "VALIDATION_ERROR": ErrorCategory.VALIDATION,
    "CONFLICT": ErrorCategory.DUPLICATE,
    "OBJECT_ALREADY_EXISTS": ErrorCategory.DUPLICATE,
    "OBJECT_NOT_FOUND": ErrorCategory.NOT_FOUND,
    "RATE_LIMITS": ErrorCategory.RATE_LIMIT,
    "INVALID_AUTHENTICATION": ErrorCategory.AUTH,
    "EXPIRED_AUTHENTICATION": ErrorCategory.AUTH,
    "MISSING_SCOPES": ErrorCategory.PERMISSION,
}


def record_failure(error: dict[str, Any], status: int | None, label: str) -> tuple[ErrorCategory, str]:
    """The category and the sentence (record, field, reason) of one refused record."""
    code = str(error.get("category") or "")
    category = _CATEGORY_OF.get(code)
    if category is None:
        if status == 409:
            category = ErrorCategory.DUPLICATE
        elif status == 404:
            category = ErrorCategory.NOT_FOUND
        elif status is not None and status >= 500:
            category = ErrorCategory.SERVER
        else:
            category = ErrorCategory.VALIDATION
    problems = property_problems(error)
    if problems:
        reasons = "; ".join(
            f"{p.name}: {p.message or 'invalid value'}" + (f" ({p.code})" if p.code else "") for p in problems
        )
        return category, f"{label}: {reasons}"
    message = str(error.get("message") or "").strip()
    if category is ErrorCategory.DUPLICATE:
        existing = _EXISTING_ID.search(message)
        detail = f"already exists in HubSpot (record {existing.group(1)})" if existing else "already exists in HubSpot"
        return category, f"{label}: email: {detail}"
    return category, f"{label}: {message[:300] or 'refused by HubSpot'}"


_EXPIRED_TOKEN = "the HubSpot token has expired and a private-app token cannot be refreshed"


def classify_hubspot(response: httpx.Response) -> Verdict:
    """HubSpot's decision table: auth, scopes, the two rate-limit policies, conflicts, validation, server errors."""
    status = response.status_code
    if status < 400:
        return OK
    body = _body(response)
    category = str(body.get("category") or "")
    if status == 401:
        expired = category == "EXPIRED_AUTHENTICATION"
        return Verdict(
            Decision.REFRESH_THEN_RETRY if expired else Decision.FATAL,
            ErrorCategory.AUTH,
            code=category or "INVALID_AUTHENTICATION",
            reason=_EXPIRED_TOKEN if expired else "HubSpot refused the private-app token (401)",
        )
    if status == 403:
        scopes = _required_scopes(body)
        reason = (
            f"the private app lacks the scope {', '.join(scopes)} (403): ask a HubSpot super admin to add it to the "
            "private app (Settings > Integrations > Private Apps > Scopes)"
            if scopes
            else "the private app or its user lacks the permission for this call (403): ask a HubSpot super admin to "
            "grant it"
        )
        return Verdict(Decision.FATAL, ErrorCategory.PERMISSION, code=category or "FORBIDDEN", reason=reason)
    if status == 429:
        policy = str(body.get("policyName") or "").upper()
        if policy == "DAILY":
            return Verdict(
                Decision.FATAL,
                ErrorCategory.RATE_LIMIT,
                code=policy,
                reason="HubSpot's daily API limit is used up; sync again after midnight in the account's time zone",
            )
        wait = retry_after_seconds(response)
        if wait is None:
            interval = response.headers.get("x-hubspot-ratelimit-interval-milliseconds", "")
            if policy == "SECONDLY":
                wait = 1.0
            elif interval.isdigit() and int(interval) > 0:
                wait = int(interval) / 1000
            else:
                wait = WINDOW_SECONDS
        return Verdict(
            Decision.RATE_LIMITED,
            ErrorCategory.RATE_LIMIT,
            wait=wait,
            code=policy or "RATE_LIMIT",
            reason=f"{(policy or 'rate').lower()} limit reached (429)",
        )
    if status >= 500 or status == 423:
        wait, reason = retry_after_seconds(response), f"HubSpot server error ({status})"
        return Verdict(Decision.RETRY, ErrorCategory.SERVER, wait=wait, code=category, reason=reason)
    if status == 409:
        existing = _EXISTING_ID.search(str(body.get("message") or ""))
        reason = f"already exists (record {existing.group(1)})" if existing else "already exists (409)"
        return Verdict(Decision.RECORD_FAILURE, ErrorCategory.DUPLICATE, code=category or "CONFLICT", reason=reason)
    if status == 404:
        return Verdict(Decision.FATAL, ErrorCategory.NOT_FOUND, code=category, reason="not found in HubSpot (404)")
    if status in (400, 422):
        problems = property_problems(body)
        if problems:
            reason = "invalid value for " + ", ".join(f"{p.name} ({p.code})" if p.code else p.name for p in problems)
        else:
            reason = f"request refused ({status} {category or 'VALIDATION_ERROR'})"
        return Verdict(
            Decision.RECORD_FAILURE, ErrorCategory.VALIDATION, code=category or "VALIDATION_ERROR", reason=reason
        )
    return classify_status(response)


# -- batch writes -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _BatchInput:
    """One input of a batch write: its position in the caller's list, its echo key and its JSON."""

    index: int
    key: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class _Written:
    """What became of one batch input: a result, a refusal, or a failure that outlived its retries."""

    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    status: int | None = None
    started_at: datetime | None = None
    failure: errors.ProviderError | None = None
    #: seconds between the first (connection-lost) attempt and the replay that answered, when replayed.
    replayed_after: float | None = None


#: Which inputs of a batch whose connection died after sending landed anyway (looked up in HubSpot).
Lookup = Callable[[Sequence[_BatchInput]], Awaitable[dict[int, _Written]]]


@dataclass
class _LeadCursor:
    """Where a lead pull stands: the lead objects' own changes and their contacts' changes (where HubSpot keeps
    the lead status, names, company and social fields), as ``<leads>;<contacts>``.

    A cursor without ``;`` (written before contact changes were watched) watches contacts from its lead time on;
    ``contacts`` is ``None`` when the pull has not watched them yet (a full pull picks where that starts).
    """

    leads: ChangeCursor
    contacts: ChangeCursor | None

    @classmethod
    def read(cls, text: str | None) -> _LeadCursor:
        if not text:
            return cls(ChangeCursor(), None)
        if ";" not in text:
            leads = ChangeCursor.read(text, "HubSpot")
            return cls(leads, ChangeCursor(leads.moment, leads.stamp) if leads.moment else None)
        lead_text, _, contact_text = text.partition(";")
        contacts = ChangeCursor.read(contact_text, "HubSpot") if contact_text else None
        return cls(ChangeCursor.read(lead_text, "HubSpot"), contacts)

    def text(self) -> str:
        return f"{self.leads.text()};{self.contacts.text() if self.contacts else ''}"


SearchPage = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class _SearchStream:
    """One object's changes through search, oldest first, fetched a page (200) at a time into a small buffer.

    Every request restarts the query from the newest modification time fetched (skipping the ids already
    fetched at that instant), so records modified while the pull runs are neither skipped nor the 10,000-result
    cap reached; ``after`` paging is used only to step over more than a page of records sharing one instant.

    Attributes:
        emitted: the position of the records taken so far (what a page's cursor may say).
    """

    def __init__(
        self,
        search: SearchPage,
        object_name: str,
        modified_property: str,
        properties: list[str],
        start: ChangeCursor,
        filters: Sequence[dict[str, Any]] = (),
    ) -> None:
        self._search = search
        self._object_name = object_name
        self._modified_property = modified_property
        self._properties = properties
        self._filters = list(filters)
        self._fetched = start.copy()
        self.emitted = start.copy()
        self._buffer: deque[tuple[datetime, str, dict[str, Any]]] = deque()
        self._offset = 0
        self._exhausted = False

    @property
    def waiting(self) -> bool:
        """Whether its next record is unknown until it fetches another page."""
        return not self._buffer and not self._exhausted

    def head(self) -> datetime | None:
        """The modification time of the next record, ``None`` when none is buffered."""
        return self._buffer[0][0] if self._buffer else None

    def take(self) -> dict[str, Any]:
        modified, record_id, item = self._buffer.popleft()
        self.emitted.advance(modified, utc_millis(modified), record_id)
        return item

    async def fill(self) -> None:
        """Fetch pages until a record is buffered or the search has no more."""
        while self.waiting:
            await self._fetch()

    async def _fetch(self) -> None:
        filters: list[dict[str, Any]] = []
        if self._fetched.moment is not None:
            filters.append(
                {
                    "propertyName": self._modified_property,
                    "operator": "GTE",
                    "value": str(epoch_millis(self._fetched.moment)),
                }
            )
        filters.extend(self._filters)
        body: dict[str, Any] = {
            "sorts": [{"propertyName": self._modified_property, "direction": "ASCENDING"}],
            "properties": self._properties,
            "limit": SEARCH_PAGE_SIZE,
        }
        if filters:
            body["filterGroups"] = [{"filters": filters}]
        if self._offset:
            body["after"] = str(self._offset)
        page = await self._search(self._object_name, body)
        results = [item for item in page.get("results") or [] if isinstance(item, dict)]
        queried_from = self._fetched.moment
        for item in results:
            modified = parse_crm_time(
                (item.get("properties") or {}).get(self._modified_property) or item.get("updatedAt")
            )
            record_id = str(item.get("id"))
            if modified is None or not self._fetched.is_new(modified, record_id):
                continue
            self._fetched.advance(modified, utc_millis(modified), record_id)
            self._buffer.append((modified, record_id, item))
        if not ((page.get("paging") or {}).get("next") or {}).get("after"):
            self._exhausted = True
        elif self._fetched.moment != queried_from:
            self._offset = 0
        else:
            self._offset += len(results)
            if self._offset >= SEARCH_RESULT_CAP:
                raise errors.ProviderError(
                    f"HubSpot: more than {SEARCH_RESULT_CAP} {self._object_name} share one modification time; "
                    "the search API cannot page past them"
                )


async def _merged(streams: Sequence[_SearchStream]) -> AsyncIterator[list[tuple[_SearchStream, dict[str, Any]]]]:
    """The records of several change searches in modification order, at most a search page at a time."""
    while True:
        for stream in streams:
            await stream.fill()
        taken: list[tuple[_SearchStream, dict[str, Any]]] = []
        while len(taken) < SEARCH_PAGE_SIZE and not any(stream.waiting for stream in streams):
            ready = [(head, order) for order, stream in enumerate(streams) if (head := stream.head()) is not None]
            if not ready:
                break
            chosen = streams[min(ready)[1]]
            taken.append((chosen, chosen.take()))
        if not taken:
            return
        yield taken


# -- default mappings ---------------------------------------------------------------------------------------------
def _social_note(lines: list[str]) -> str | None:
    return "\n".join(lines) if lines else None


def default_contact_record(contact: Contact) -> OutboundRecord:
    """The default mapping of a contact to HubSpot contact properties, social fields included.

    Profiles on networks without a property (and extra profiles on one network) go to the note. A custom field
    named ``lifecycle``/``lifecyclestage`` with a HubSpot stage sets ``lifecyclestage``; other custom fields are
    sent under their own name when it is a valid HubSpot property name.
    """
    fields: dict[str, Any] = {
        "firstname": contact.first_name,
        "lastname": contact.last_name,
        "company": contact.company,
        "phone": contact.phone,
    }
    social, profiles = social_profile_values(contact.social_profiles, str)
    fields.update(social)
    unmapped = [
        f"{p.platform.value}: @{p.username} ({p.followers:,} followers{f', {p.url}' if p.url else ''})"
        for p in profiles
    ]
    for name, value in contact.custom_fields.items():
        if value is None:
            continue
        if name.lower() in ("lifecycle", "lifecyclestage", "lifecycle_stage"):
            stage = str(value).strip().lower().replace(" ", "")
            if stage in LIFECYCLE_STAGES:
                fields["lifecyclestage"] = stage
            continue
        if _PROPERTY_NAME.match(name):
            fields[name] = value
    note = _social_note(["Social profiles without a HubSpot property:", *unmapped] if unmapped else [])
    return OutboundRecord(email=contact.email, fields={k: v for k, v in fields.items() if v is not None}, note=note)


def default_lead_record(lead: Lead) -> OutboundRecord:
    """The default mapping of a lead: contact properties (status, lifecycle, social) and lead-object properties."""
    name = " ".join(part for part in (lead.first_name, lead.last_name) if part) or lead.email
    fields: dict[str, Any] = {
        "firstname": lead.first_name,
        "lastname": lead.last_name,
        "company": lead.company,
        "hs_lead_status": LEAD_STATUS_VALUES[lead.status],
        "lifecyclestage": LEAD_LIFECYCLE_STAGES[lead.status],
        "hs_lead_name": name,
        "hs_pipeline_stage": LEAD_PIPELINE_STAGES[lead.status],
    }
    lines: list[str] = []
    if lead.source:
        lines.append(f"Lead source: {lead.source}")
    context = lead.social_context
    fields.update(social_context_values(context, sentiment="social_sentiment", engagement="social_engagement_score"))
    if context is not None:
        if context.conversation_id:
            lines.append(f"Conversation on {context.platform.value}: {context.conversation_id}")
        elif not lead.source:
            lines.append(f"Came from {context.platform.value}")
    return OutboundRecord(
        email=lead.email, fields={k: v for k, v in fields.items() if v is not None}, note=_social_note(lines)
    )


# -- the adapter --------------------------------------------------------------------------------------------------
class HubSpotAdapter(AdapterBase):
    """HubSpot CRM v3 through a private-app token: contacts, leads (with their contact), notes and properties.

    Attributes:
        provider: ``hubspot``.
        integration: the integration this adapter serves.
        options: tuning (rate window, concurrency, daily reserve, retries).
    """

    provider = "hubspot"

    def __init__(self, integration: Integration, credentials: dict[str, Any], **wiring: Unpack[AdapterWiring]) -> None:
        token = str(credentials.get("token") or "").strip()
        if not token:
            raise errors.ConfigurationError("HubSpot needs a private-app token; reconnect the integration")
        self._token = token
        super().__init__(
            integration,
            wiring,
            name="HubSpot",
            base_url=integration.base_url or DEFAULT_BASE_URL,
            classifier=classify_hubspot,
            read_headers=read_hubspot_headers,
            auth=HeaderTokenAuth("Authorization", f"Bearer {token}"),
            window_limit=DEFAULT_WINDOW_LIMIT,
            window_seconds=WINDOW_SECONDS,
            concurrency=DEFAULT_CONCURRENCY,
        )
        self._search_budget = StackedBudget(
            self.budget, window_limit=SEARCH_PER_SECOND, window_seconds=1.0, concurrency=1, sleep=self._sleep
        )
        self._properties: FieldCache[str, list[CrmField]] = FieldCache(self._read_object_fields)
        self._has_leads_object: bool | None = None
        self._v4_associations: bool | None = None
        self._search_date: datetime | None = None

    # -- connection and quota ---------------------------------------------------------------------------------------
    async def test_connection(self) -> ConnectionInfo:
        """The HubSpot account, the private app and its scopes (when HubSpot tells), and the quota left.

        Raises:
            AuthError: when HubSpot refuses the token.
        """
        details = _body(await self.http.request("GET", "/account-info/v3/details"))
        portal = details.get("portalId")
        account = f"HubSpot account {portal}" if portal is not None else "HubSpot account"
        if details.get("timeZone"):
            account += f" ({details['timeZone']})"
        user, scopes = await self._token_info()
        return ConnectionInfo(account=account, user=user, scopes=tuple(scopes), quota=self.quota())

    async def _token_info(self) -> tuple[str, list[str]]:
        """Who the token acts as and its scopes; ``("private app", [])`` when HubSpot does not say."""
        # The token sits in this path, so the call skips the core's request log.
        await self.budget.acquire()
        try:
            response: httpx.Response | None = await self.http.client.get(
                f"/oauth/v1/access-tokens/{quote(self._token, safe='')}"
            )
        except httpx.TransportError:
            response = None
        finally:
            self.budget.release()
        if response is not None and response.status_code == 200:
            info = _body(response)
            user = str(info.get("user") or (f"app {info['app_id']}" if info.get("app_id") else "private app"))
            return user, [str(scope) for scope in info.get("scopes") or []]
        # Not an OAuth token (HubSpot answers 404 for private-app tokens there): ask the private-app endpoint.
        try:
            private = await self.http.request(
                "POST", "/oauth/v2/private-apps/get/access-token-info", json={"tokenKey": self._token}
            )
        except (errors.NotFoundError, errors.AuthError, errors.PermissionRefusedError):
            return "private app", []
        info = _body(private) if private.status_code == 200 else {}
        user = f"private app {info['appId']}" if info.get("appId") else "private app"
        return user, [str(scope) for scope in info.get("scopes") or []]

    # -- properties -------------------------------------------------------------------------------------------------
    async def list_fields(self, obj: RecordObject) -> list[CrmField]:
        """Contact properties; for leads the lead object's properties, then the contact's (labelled as such).

        Without a leads object in the account (HubSpot plans before Sales Hub Professional), leads are contacts
        and their fields are the contact properties.
        """
        contacts = await self._object_fields("contacts", refresh=True)
        if obj is RecordObject.CONTACT or self._has_leads_object is False:
            return contacts
        try:
            leads = await self._object_fields("leads", refresh=True)
        except errors.NotFoundError:
            self._has_leads_object = False
            return contacts
        self._has_leads_object = True
        lead_names = {f.name for f in leads}
        return [
            *leads,
            *(
                CrmField(
                    name=f.name,
                    label=f"Contact: {f.label}",
                    type=f.type,
                    custom=f.custom,
                    writable=f.writable,
                    length=f.length,
                    options=f.options,
                )
                for f in contacts
                if f.name not in lead_names
            ),
        ]

    async def _object_fields(self, object_name: str, *, refresh: bool = False) -> list[CrmField]:
        return await self._properties.get(object_name, fresh=refresh)

    async def _read_object_fields(self, object_name: str) -> list[CrmField]:
        response = await self.http.request("GET", f"/crm/v3/properties/{object_name}")
        return [_crm_field(item) for item in _body(response).get("results") or [] if not item.get("hidden")]

    async def _leads_available(self) -> bool:
        """Whether the account has HubSpot's leads object (found out once, by listing its properties)."""
        if self._has_leads_object is None:
            try:
                await self._object_fields("leads")
                self._has_leads_object = True
            except errors.NotFoundError:
                self._has_leads_object = False
                logger.info("HubSpot account has no leads object: leads are written as contacts")
        return self._has_leads_object

    async def _read_properties(self, object_name: str) -> list[str]:
        """The properties a read asks for: the standard ones the app maps, plus every custom property."""
        standard = CONTACT_PROPERTIES if object_name == "contacts" else LEAD_PROPERTIES
        custom = [f.name for f in await self._object_fields(object_name) if f.custom]
        return list(dict.fromkeys([*standard, *custom]))

    async def create_field(self, obj: RecordObject, name: str, label: str, field_type: str) -> CrmField:
        """Create a custom contact (or lead) property; an existing one of the same type is returned as is.

        ``field_type`` is one of :data:`PROPERTY_TYPES`; an enumeration lists its options after a colon
        (``enumeration:positive,neutral,negative``).

        Raises:
            RequestRejectedError: when HubSpot refuses the name or type, or the name exists with another type.
        """
        kind, _, option_text = field_type.partition(":")
        if kind.strip().lower() not in PROPERTY_TYPES:
            raise errors.RequestRejectedError(
                f"HubSpot: cannot create {name}: unknown field type {kind!r} (use one of {', '.join(PROPERTY_TYPES)})"
            )
        type_, field_kind = PROPERTY_TYPES[kind.strip().lower()]
        object_name = "leads" if obj is RecordObject.LEAD and await self._leads_available() else "contacts"
        body: dict[str, Any] = {
            "name": name,
            "label": label,
            "type": type_,
            "fieldType": field_kind,
            "groupName": "leadinformation" if object_name == "leads" else "contactinformation",
        }
        if type_ == "enumeration":
            options = [part.strip() for part in option_text.split(",") if part.strip()]
            if not options:
                raise errors.RequestRejectedError(f"HubSpot: cannot create {name}: an enumeration needs its options")
            body["options"] = [
                {"label": option, "value": option, "displayOrder": order} for order, option in enumerate(options)
            ]
        self._properties.forget(object_name)

        async def create() -> CrmField:
            response = await self.http.request("POST", f"/crm/v3/properties/{object_name}", json=body, idempotent=False)
            if response.status_code in (200, 201):
                return _crm_field(_body(response))
            if response.status_code == 409:
                existing = await self._existing_property(object_name, name)
                if existing is not None and existing.type == type_:
                    return existing
            category, message = record_failure(_body(response), response.status_code, f"property {name}")
            raise errors.RequestRejectedError(
                f"HubSpot: {message}", status=response.status_code, category=category, code=str(category)
            )

        return await write_or_reconcile(
            create, lambda: self._existing_property(object_name, name), what=f"HubSpot: creating property {name}"
        )

    async def _existing_property(self, object_name: str, name: str) -> CrmField | None:
        try:
            response = await self.http.request("GET", f"/crm/v3/properties/{object_name}/{name}")
        except errors.NotFoundError:
            return None
        return _crm_field(_body(response))

    # -- reads ------------------------------------------------------------------------------------------------------
    async def find_by_emails(self, obj: RecordObject, emails: Sequence[str]) -> dict[str, CrmRecord]:
        """Existing contacts (or leads, by their contact's email) by normalised email, via batch read by email."""
        wanted = distinct_email_keys(emails, _email_key)
        if not wanted:
            return {}
        contacts = await self._contacts_by_email(wanted)
        if obj is RecordObject.CONTACT or not await self._leads_available():
            return contacts
        by_contact = {record.crm_id: email for email, record in contacts.items()}
        linked = await self._associated_ids("contacts", "leads", list(by_contact))
        newest = {contact_id: max(ids, key=_id_order) for contact_id, ids in linked.items() if ids}
        leads = await self._batch_read("leads", list(newest.values()), await self._read_properties("leads"))
        leads_by_id = {str(item.get("id")): item for item in leads}
        found: dict[str, CrmRecord] = {}
        for contact_id, lead_id in newest.items():
            item = leads_by_id.get(lead_id)
            if item is not None:
                contact = contacts[by_contact[contact_id]]
                found[contact.email] = _lead_record(item, contact)
        return found

    async def _contacts_by_email(self, emails: Sequence[str]) -> dict[str, CrmRecord]:
        items = await self._batch_read("contacts", emails, await self._read_properties("contacts"), by_email=True)
        wanted = set(emails)
        found: dict[str, CrmRecord] = {}
        for item in items:
            record = _contact_record(item)
            if record.email in wanted:
                found[record.email] = record
        return found

    async def _batch_read(
        self, object_name: str, ids: Sequence[str], properties: list[str], *, by_email: bool = False
    ) -> list[dict[str, Any]]:
        """Records by id (or email) in batches of 100, read concurrently; absent ones are left out."""

        async def read(chunk: Sequence[str]) -> list[dict[str, Any]]:
            body: dict[str, Any] = {"properties": properties, "inputs": [{"id": value} for value in chunk]}
            if by_email:
                body["idProperty"] = "email"
            response = await self.http.request("POST", f"/crm/v3/objects/{object_name}/batch/read", json=body)
            answer = _answered(response, f"{object_name} read")
            return [item for item in answer.get("results") or [] if isinstance(item, dict)]

        pages = await gather_or_cancel(read(chunk) for chunk in chunks(ids, BATCH_SIZE))
        return [item for page in pages for item in page]

    async def get_record(
        self, obj: RecordObject, *, email: str | None = None, crm_id: str | None = None
    ) -> CrmRecord | None:
        """One contact or lead by CRM id or by email (emails are looked up in a body, never in a URL)."""
        if crm_id is None:
            if not email:
                raise ValueError("get_record needs an email or a CRM id")
            key = _email_key(email)
            return (await self.find_by_emails(obj, [email])).get(key) if key else None
        if obj is RecordObject.CONTACT or not await self._leads_available():
            item = await self._get_object("contacts", crm_id, await self._read_properties("contacts"))
            return _contact_record(item) if item is not None else None
        item = await self._get_object("leads", crm_id, await self._read_properties("leads"))
        if item is None:
            return None
        contacts = _association_ids(item, "contacts")
        contact_item = None
        if contacts:
            contact_item = await self._get_object("contacts", contacts[0], await self._read_properties("contacts"))
        return _lead_record(item, _contact_record(contact_item) if contact_item else None)

    async def _get_object(
        self, object_name: str, record_id: str, properties: list[str], *, associations: str | None = None
    ) -> dict[str, Any] | None:
        params = {"properties": ",".join(properties)}
        if object_name == "leads" and associations is None:
            associations = "contacts"
        if associations:
            params["associations"] = associations
        try:
            response = await self.http.request("GET", f"/crm/v3/objects/{object_name}/{record_id}", params=params)
        except errors.NotFoundError:
            return None
        if response.status_code >= 400:
            return None
        return _body(response)

    async def _associated_ids(self, from_object: str, to_object: str, ids: Sequence[str]) -> dict[str, list[str]]:
        """Associated record ids (e.g. a contact's leads): v4 batch read, else one v3 read per record."""
        if not ids:
            return {}
        if self._v4_associations is not False:
            try:
                found = await self._associations_v4(from_object, to_object, ids)
            except errors.NotFoundError:
                self._v4_associations = False
                logger.info("HubSpot v4 batch association read unavailable; reading associations per record")
            else:
                self._v4_associations = True
                return found

        async def one(record_id: str) -> tuple[str, list[str]]:
            item = await self._get_object(from_object, record_id, ["hs_object_id"], associations=to_object)
            return record_id, _association_ids(item, to_object) if item else []

        return dict(await gather_or_cancel(one(record_id) for record_id in ids))

    async def _associations_v4(self, from_object: str, to_object: str, ids: Sequence[str]) -> dict[str, list[str]]:
        """Associated ids by v4 batch read; a record with more than a page of them is asked again with ``after``."""

        async def read(chunk: Sequence[str]) -> dict[str, list[str]]:
            linked: dict[str, list[str]] = {record_id: [] for record_id in chunk}
            inputs: list[dict[str, str]] = [{"id": record_id} for record_id in chunk]
            cursors_seen: set[tuple[str, str]] = set()
            while inputs:
                response = await self.http.request(
                    "POST", f"/crm/v4/associations/{from_object}/{to_object}/batch/read", json={"inputs": inputs}
                )
                inputs = []
                for result in _body(response).get("results") or []:
                    if not isinstance(result, dict):
                        continue
                    source = str((result.get("from") or {}).get("id", ""))
                    targets = linked.setdefault(source, [])
                    targets.extend(str(to["toObjectId"]) for to in result.get("to") or [] if "toObjectId" in to)
                    after = ((result.get("paging") or {}).get("next") or {}).get("after")
                    if after in (None, ""):
                        continue
                    if (source, str(after)) in cursors_seen:
                        raise errors.ProviderError("HubSpot returned the same association page cursor twice; stopped")
                    cursors_seen.add((source, str(after)))
                    inputs.append({"id": source, "after": str(after)})
            return {source: list(dict.fromkeys(targets)) for source, targets in linked.items()}

        merged: dict[str, list[str]] = {}
        for part in await gather_or_cancel(read(chunk) for chunk in chunks(ids, BATCH_SIZE)):
            merged.update(part)
        return merged

    # -- changes ----------------------------------------------------------------------------------------------------
    async def changes_since(self, obj: RecordObject, cursor: str | None) -> AsyncIterator[ChangePage]:
        """Records modified since ``cursor``, oldest first, a search page (200) at a time.

        Leads change on two objects: the lead itself and its contact, which holds the lead status, names,
        company and social fields. A lead pull therefore follows both searches, merged by modification time,
        and its cursor covers both (see :class:`_LeadCursor`).
        """
        if obj is RecordObject.LEAD and await self._leads_available():
            async for page in self._lead_changes(cursor):
                yield page
            return
        # Contacts; or leads in an account without the leads object, which are contacts with a lead status.
        filters = [] if obj is RecordObject.CONTACT else [_HAS_LEAD_STATUS]
        stream = _SearchStream(
            self._search_page,
            "contacts",
            "lastmodifieddate",
            await self._read_properties("contacts"),
            ChangeCursor.read(cursor, "HubSpot"),
            filters,
        )
        async for taken in _merged([stream]):
            yield ChangePage(records=[_contact_record(item) for _stream, item in taken], cursor=stream.emitted.text())

    async def _lead_changes(self, cursor: str | None) -> AsyncIterator[ChangePage]:
        """Leads whose lead object or whose contact changed since ``cursor``; a lead changed on both sides in one
        page comes once."""
        position = _LeadCursor.read(cursor)
        pull_started = datetime.now(UTC)
        self._search_date = None
        leads = _SearchStream(
            self._search_page, "leads", "hs_lastmodifieddate", await self._read_properties("leads"), position.leads
        )
        await leads.fill()
        contact_start = position.contacts
        if contact_start is None:
            # A full pull reads every lead's contact as it goes: only contacts changed after it began matter.
            began = min(pull_started, self._search_date or pull_started)
            contact_start = ChangeCursor.starting_at(began - FULL_PULL_CONTACT_OVERLAP)
        contacts = _SearchStream(
            self._search_page,
            "contacts",
            "lastmodifieddate",
            await self._read_properties("contacts"),
            contact_start,
            [_HAS_LEAD_STATUS],
        )
        async for taken in _merged([leads, contacts]):
            records = await self._lead_change_records(
                [item for stream, item in taken if stream is leads],
                [item for stream, item in taken if stream is contacts],
                [stream is leads for stream, _item in taken],
            )
            yield ChangePage(records=records, cursor=_LeadCursor(leads.emitted, contacts.emitted).text())

    async def _search_page(self, object_name: str, body: dict[str, Any]) -> dict[str, Any]:
        """One search request within search's own rate limit; notes HubSpot's clock from the ``Date`` header."""
        response = await self.http.request(
            "POST", f"/crm/v3/objects/{object_name}/search", json=body, budget=self._search_budget
        )
        answer = _answered(response, f"{object_name} search")
        self._search_date = server_time(response) or self._search_date
        return answer

    async def _lead_change_records(
        self, lead_items: list[dict[str, Any]], contact_items: list[dict[str, Any]], order: list[bool]
    ) -> list[CrmRecord]:
        """Changed leads (with their contact) and changed contacts (as each of their leads), in ``order`` (``True``
        for the next lead item); a lead met twice keeps its last place."""
        from_leads = iter(await self._lead_records(lead_items))
        from_contacts = iter(await self._contacts_as_leads(contact_items))
        by_lead: dict[str, CrmRecord] = {}
        for is_lead in order:
            for record in [next(from_leads)] if is_lead else next(from_contacts):
                by_lead.pop(record.crm_id, None)
                by_lead[record.crm_id] = record
        return list(by_lead.values())

    async def _lead_records(self, items: list[dict[str, Any]]) -> list[CrmRecord]:
        """Lead search results with their primary contact's email and properties."""
        ids = [str(item.get("id")) for item in items]
        linked = await self._associated_ids("leads", "contacts", ids)
        contact_ids = list(dict.fromkeys(found[0] for found in linked.values() if found))
        contacts = {
            str(item.get("id")): _contact_record(item)
            for item in await self._batch_read("contacts", contact_ids, await self._read_properties("contacts"))
        }
        records = []
        for item in items:
            found = linked.get(str(item.get("id"))) or []
            records.append(_lead_record(item, contacts.get(found[0]) if found else None))
        return records

    async def _contacts_as_leads(self, items: list[dict[str, Any]]) -> list[list[CrmRecord]]:
        """For each contact search result, its leads as lead records (none for a contact without a lead)."""
        ids = [str(item.get("id")) for item in items]
        linked = await self._associated_ids("contacts", "leads", ids)
        lead_ids = list(dict.fromkeys(lead_id for found in linked.values() for lead_id in found))
        leads = {
            str(item.get("id")): item
            for item in await self._batch_read("leads", lead_ids, await self._read_properties("leads"))
        }
        grouped: list[list[CrmRecord]] = []
        for item in items:
            contact = _contact_record(item)
            found = [leads[lead_id] for lead_id in linked.get(contact.crm_id) or [] if lead_id in leads]
            grouped.append([_lead_record(lead, contact) for lead in found])
        return grouped

    # -- notes ------------------------------------------------------------------------------------------------------
    async def add_note(self, obj: RecordObject, crm_id: str, text: str) -> str:
        """Attach a note to a contact (a lead's note goes to its contact); returns the note's id.

        Raises:
            NotFoundError: when a lead has no contact to carry the note.
            RequestRejectedError: when HubSpot refuses the note.
        """
        contact_id = await self._note_contact(obj, crm_id)
        body_html = _note_html(text)
        stamp = utc_millis(datetime.now(UTC))
        body = {
            "properties": {"hs_note_body": body_html, "hs_timestamp": stamp},
            "associations": [
                {
                    "to": {"id": contact_id},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_CONTACT}],
                }
            ],
        }

        async def post() -> str:
            response = await self.http.request("POST", "/crm/v3/objects/notes", json=body, idempotent=False)
            return str(_answered(response, f"note on {contact_id}").get("id"))

        return await write_or_reconcile(
            post, lambda: self._find_note(contact_id, body_html, stamp), what=f"HubSpot: the note on {contact_id}"
        )

    async def _note_contact(self, obj: RecordObject, crm_id: str) -> str:
        """The contact a note on this record goes to: the contact itself, or a lead's contact.

        Raises:
            NotFoundError: when a lead has no contact to carry the note.
        """
        if obj is not RecordObject.LEAD or not await self._leads_available():
            return crm_id
        contacts = (await self._associated_ids("leads", "contacts", [crm_id])).get(crm_id) or []
        if not contacts:
            raise errors.NotFoundError(f"HubSpot: lead {crm_id} has no contact to attach the note to")
        return contacts[0]

    async def _find_note(self, contact_id: str, body_html: str, stamp: str) -> str | None:
        """The note a lost connection may have created: same contact, body and timestamp."""
        note_ids = (await self._associated_ids("contacts", "notes", [contact_id])).get(contact_id) or []
        wanted = parse_crm_time(stamp)
        for item in await self._batch_read("notes", note_ids, ["hs_note_body", "hs_timestamp"]):
            properties = item.get("properties") or {}
            if properties.get("hs_note_body") == body_html and parse_crm_time(properties.get("hs_timestamp")) == wanted:
                return str(item.get("id"))
        return None

    # -- writes -----------------------------------------------------------------------------------------------------
    async def upsert(self, obj: RecordObject, records: Sequence[OutboundRecord]) -> list[RecordResult]:
        """Create or update contacts by email (linked ones by id), or leads with their contact; input order kept.

        Raises:
            AuthError: the token was refused (the push stops; nothing is retried).
            RateLimitError: HubSpot's daily limit is used up, or BudgetExhaustedError at the daily reserve.
        """
        results: list[RecordResult | None] = [None] * len(records)
        gate = WriteGate(self.options.concurrency or DEFAULT_CONCURRENCY)
        for round_indexes in rounds_by_email(records):
            chosen = [records[i] for i in round_indexes]
            if obj is RecordObject.LEAD and await self._leads_available():
                written = await self._upsert_leads(chosen, gate)
            elif obj is RecordObject.LEAD:
                stripped = [
                    OutboundRecord(r.email, _wire_properties(r.fields, drop=LEAD_OBJECT_FIELDS), r.crm_id, r.note)
                    for r in chosen
                ]
                written = await self._upsert_contacts(stripped, gate)
            else:
                written = await self._upsert_contacts(chosen, gate)
            for index, result in zip(round_indexes, written, strict=True):
                results[index] = result
        return results_in_order(results, records, "HubSpot")

    async def _upsert_contacts(self, records: Sequence[OutboundRecord], gate: WriteGate) -> list[RecordResult]:
        """Contacts with unique emails: linked ones updated by id, the rest upserted by email."""
        results: list[RecordResult | None] = [None] * len(records)
        linked: list[_BatchInput] = []
        by_email: list[_BatchInput] = []
        for index, record in enumerate(records):
            if not record.email:
                results[index] = failed_result("", ErrorCategory.VALIDATION, "(no email): email: required")
            elif record.crm_id:
                properties = {**_wire_properties(record.fields), "email": record.email}
                linked.append(_BatchInput(index, record.crm_id, {"id": record.crm_id, "properties": properties}))
            else:
                by_email.append(self._upsert_input(index, record))
        updated, upserted = await gather_or_cancel(
            [
                self._write_batches("contacts", "update", linked, gate, result_key=_result_id),
                self._write_batches(
                    "contacts", "upsert", by_email, gate, result_key=_result_email, lookup=self._upsert_lookup
                ),
            ]
        )
        # A linked contact that is gone was deleted in HubSpot: reported NOT_FOUND, never re-created by email.
        gone = [i for i, w in updated.items() if w.error is not None and _record_gone(w.error, w.status)]
        if gone:
            logger.info("%d linked HubSpot contacts no longer exist; not re-creating them", len(gone))
        for index in gone:
            email = records[index].email
            message = f"{email}: contact {records[index].crm_id} no longer exists in HubSpot (deleted there)"
            results[index] = failed_result(email, ErrorCategory.NOT_FOUND, message)
            updated.pop(index)
        for index, written in {**updated, **upserted}.items():
            results[index] = _write_result(records[index].email, written)
        return results_in_order(results, records, "HubSpot")

    @staticmethod
    def _upsert_input(index: int, record: OutboundRecord) -> _BatchInput:
        properties = _wire_properties(record.fields, drop=("email",))
        return _BatchInput(index, record.email, {"idProperty": "email", "id": record.email, "properties": properties})

    @staticmethod
    async def _upsert_lookup(chunk: Sequence[_BatchInput]) -> dict[int, _Written]:
        """Nothing to look up after an upsert lost its connection: by unique email, sending it again cannot
        duplicate a contact."""
        return {}

    async def _upsert_leads(self, records: Sequence[OutboundRecord], gate: WriteGate) -> list[RecordResult]:
        """Leads with unique emails: upsert each lead's contact, then update its lead or create one associated."""
        lead_names = {f.name for f in await self._object_fields("leads")} - {"hs_object_id"}
        contact_parts = [
            OutboundRecord(r.email, {k: v for k, v in r.fields.items() if k not in lead_names}) for r in records
        ]
        contact_results = await self._upsert_contacts(contact_parts, gate)
        results: list[RecordResult | None] = [None] * len(records)
        pending: dict[int, str] = {}
        for index, contact in enumerate(contact_results):
            if contact.ok and contact.crm_id:
                pending[index] = contact.crm_id
            else:
                message = f"the lead's contact was not written: {contact.message}"
                results[index] = failed_result(records[index].email, contact.category, message)
        lead_fields = {
            i: _wire_properties({k: v for k, v in records[i].fields.items() if k in lead_names}) for i in pending
        }
        lead_ids = {i: str(records[i].crm_id) for i in pending if records[i].crm_id}
        unlinked = [i for i in pending if i not in lead_ids]
        # A contact created just now has no lead yet: only existing contacts are asked for theirs.
        older = [pending[i] for i in unlinked if contact_results[i].outcome is not RecordOutcome.CREATED]
        existing = await self._associated_ids("contacts", "leads", older)
        for index in unlinked:
            found = existing.get(pending[index]) or []
            if found:
                lead_ids[index] = max(found, key=_id_order)
        # A lead found through its contact with nothing of its own to change needs no request.
        untouched = {i: lead_ids[i] for i in unlinked if i in lead_ids and not lead_fields[i]}
        updates = [
            _BatchInput(index, lead_id, {"id": lead_id, "properties": lead_fields[index]})
            for index, lead_id in lead_ids.items()
            if index not in untouched
        ]
        written = await self._write_batches("leads", "update", updates, gate, result_key=_result_id)
        for index, lead_id in untouched.items():
            written[index] = _Written(result={"id": lead_id}, started_at=_FAR_FUTURE)
        to_create = [i for i in pending if i not in lead_ids]
        for index, lead_written in list(written.items()):
            if lead_written.error is None or not _record_gone(lead_written.error, lead_written.status):
                continue
            written.pop(index)
            if records[index].crm_id:
                # The lead this record is linked to was deleted in HubSpot (a salesperson's decision, as for a
                # contact): reported NOT_FOUND, never re-created behind their back.
                email, crm_id = records[index].email, records[index].crm_id
                message = f"{email}: lead {crm_id} no longer exists in HubSpot (deleted there)"
                results[index] = failed_result(email, ErrorCategory.NOT_FOUND, message, crm_id=crm_id)
            else:
                # Found through its contact a moment ago and gone since: the contact gets a new lead.
                to_create.append(index)
        creates = [
            self._lead_create_input(index, records[index], pending[index], lead_fields[index]) for index in to_create
        ]
        created = await self._write_batches(
            "leads", "create", creates, gate, result_key=lambda _result: None, lookup=self._lead_create_lookup
        )
        for index, lead_written in {**written, **created}.items():
            lead = _write_result(records[index].email, lead_written, created=index in created)
            contact = contact_results[index]
            if lead.outcome is RecordOutcome.UNCHANGED and contact.outcome is not RecordOutcome.UNCHANGED:
                lead = replace(lead, outcome=RecordOutcome.UPDATED)
            if lead.crm_modified_at is not None and contact.crm_modified_at is not None:
                # A pulled lead's stamp is the later of its own and its contact's (most lead fields live there).
                lead = replace(lead, crm_modified_at=max(lead.crm_modified_at, contact.crm_modified_at))
            results[index] = lead
        return results_in_order(results, records, "HubSpot")

    @staticmethod
    def _lead_create_input(index: int, record: OutboundRecord, contact_id: str, fields: dict[str, Any]) -> _BatchInput:
        properties = {"hs_lead_name": record.email, **fields}
        association = {
            "to": {"id": contact_id},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": LEAD_TO_PRIMARY_CONTACT}],
        }
        return _BatchInput(index, contact_id, {"properties": properties, "associations": [association]})

    async def _lead_create_lookup(self, chunk: Sequence[_BatchInput]) -> dict[int, _Written]:
        """After lead creation lost its connection: the leads that now exist on their contact were created."""
        linked = await self._associated_ids("contacts", "leads", [item.key for item in chunk])
        return {
            item.index: _Written(result={"id": max(found, key=_id_order), "new": True})
            for item in chunk
            if (found := linked.get(item.key))
        }

    async def _write_batches(
        self,
        object_name: str,
        action: str,
        inputs: Sequence[_BatchInput],
        gate: WriteGate,
        *,
        result_key: Callable[[dict[str, Any]], str | None],
        lookup: Lookup | None = None,
    ) -> dict[int, _Written]:
        """Send inputs in batches of 100, concurrently within the rate budget; what became of each input.

        A write HubSpot could duplicate (creates, upserts) whose connection died after sending is looked up with
        ``lookup`` and only what did not land is sent again.
        """

        async def send(chunk: Sequence[_BatchInput]) -> dict[int, _Written]:
            if lookup is None:
                return await self._write_chunk(
                    object_name, action, chunk, gate, result_key, idempotent=action == "update"
                )
            settled: dict[int, _Written] = {}
            remaining = list(chunk)
            lost_at: float | None = None

            async def write() -> dict[int, _Written]:
                answered = await self._write_chunk(object_name, action, remaining, gate, result_key)
                if lost_at is not None:
                    # Sent again: what HubSpot created since the first send was created by this push.
                    elapsed = time.monotonic() - lost_at
                    answered = {index: replace(w, replayed_after=elapsed) for index, w in answered.items()}
                return {**settled, **answered}

            async def reconcile() -> dict[int, _Written] | None:
                nonlocal remaining, lost_at
                lost_at = lost_at if lost_at is not None else time.monotonic()
                settled.update(await lookup(remaining))
                remaining = [item for item in remaining if item.index not in settled]
                return None if remaining else settled

            try:
                return await write_or_reconcile(write, reconcile, what=f"HubSpot {object_name} {action}")
            except AmbiguousWriteError as exc:
                return {**settled, **{item.index: _Written(failure=exc) for item in remaining}}

        merged: dict[int, _Written] = {}
        for part in await gather_or_cancel(send(chunk) for chunk in chunks(inputs, BATCH_SIZE)):
            merged.update(part)
        return merged

    async def _write_chunk(
        self,
        object_name: str,
        action: str,
        chunk: Sequence[_BatchInput],
        gate: WriteGate,
        result_key: Callable[[dict[str, Any]], str | None],
        *,
        idempotent: bool = False,
    ) -> dict[int, _Written]:
        """One batch request; a batch refused as a whole is split in halves until each bad record stands alone.

        Raises:
            AmbiguousWriteError: the connection died after a non-idempotent write was sent.
        """
        body = {"inputs": [{**item.payload, "objectWriteTraceId": str(item.index)} for item in chunk]}
        try:
            async with gate.slot():
                response = await self.http.request(
                    "POST",
                    f"/crm/v3/objects/{object_name}/batch/{action}",
                    json=body,
                    idempotent=idempotent,
                    classifier=classify_batch_update if action == "update" else None,
                )
        except AmbiguousWriteError:
            raise
        except errors.TransientError as exc:
            return {item.index: _Written(failure=exc) for item in chunk}
        payload = _body(response)
        if response.status_code >= 400:
            if len(chunk) == 1:
                return {chunk[0].index: _Written(error=payload, status=response.status_code)}
            middle = len(chunk) // 2
            logger.info(
                "HubSpot refused a %s batch of %d as a whole (%d); splitting it",
                action,
                len(chunk),
                response.status_code,
            )
            halves = await gather_or_cancel(
                self._write_chunk(object_name, action, half, gate, result_key, idempotent=idempotent)
                for half in (chunk[:middle], chunk[middle:])
            )
            return {**halves[0], **halves[1]}
        return _match_batch(chunk, payload, result_key)

    # -- timeline --
    async def log_timeline(self, obj: RecordObject, entries: Sequence[TimelineEntry]) -> list[TimelineResult]:
        """Notes associated with their contacts (``note_to_contact``, 202), up to 100 per ``notes/batch/create``;
        a lead's entry goes to the lead's contact, as HubSpot shows a lead's activity there.

        A connection lost after sending is settled by reading the contacts' notes (same body and timestamp) before
        sending what is missing, so no note is written twice.
        """
        targets = [entry.crm_id for entry in entries]
        if obj is RecordObject.LEAD and entries and await self._leads_available():
            contacts = await self._associated_ids("leads", "contacts", sorted(set(targets)))
            targets = [(contacts.get(crm_id) or [""])[0] for crm_id in targets]
        results: list[TimelineResult] = []
        for start in range(0, len(entries), NOTES_PER_BATCH):
            part = list(zip(entries[start : start + NOTES_PER_BATCH], targets[start : start + NOTES_PER_BATCH],
                            strict=True))
            results.extend(await self._log_notes(part))
        return results

    async def _log_notes(self, part: list[tuple[TimelineEntry, str]]) -> list[TimelineResult]:
        answers: dict[int, TimelineResult] = {}
        inputs: dict[int, dict[str, Any]] = {}
        for index, (entry, contact_id) in enumerate(part):
            if not contact_id:
                answers[index] = TimelineResult(None, ErrorCategory.NOT_FOUND,
                                                f"HubSpot: lead {entry.crm_id} has no contact to carry the note")
                continue
            inputs[index] = {
                "properties": {
                    "hs_timestamp": utc_millis(entry.occurred_at),
                    "hs_note_body": _note_html(f"{entry.subject}\n{entry.body}")[:NOTE_BODY_LIMIT],
                },
                "associations": [{
                    "to": {"id": contact_id},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_CONTACT}],
                }],
            }

        def finished() -> list[TimelineResult]:
            return [answers[i] for i in range(len(part))]

        async def create() -> list[TimelineResult]:
            waiting = [i for i in inputs if i not in answers]
            if not waiting:
                return finished()
            body = {"inputs": [{**inputs[i], "objectWriteTraceId": str(i)} for i in waiting]}
            response = await self.http.request("POST", "/crm/v3/objects/notes/batch/create", json=body,
                                               idempotent=False)
            payload = _body(response)
            if response.status_code >= 400 and not payload.get("results"):
                category, message = record_failure(payload, response.status_code, "notes")
                for index in waiting:
                    answers[index] = TimelineResult(None, category, f"HubSpot: {message}")
                return finished()
            for result in payload.get("results") or []:
                trace = str(result.get("objectWriteTraceId")) if isinstance(result, dict) else ""
                if trace.isdigit() and int(trace) in inputs and result.get("id"):
                    answers[int(trace)] = TimelineResult(str(result["id"]))
            for error in payload.get("errors") or []:
                context = error.get("context") if isinstance(error, dict) else None
                for trace in (context or {}).get("objectWriteTraceId") or []:
                    if str(trace).isdigit() and int(trace) in inputs:
                        category, message = record_failure(error, response.status_code,
                                                           f"note on contact {part[int(trace)][1]}")
                        answers[int(trace)] = TimelineResult(None, category, f"HubSpot: {message}")
            for index in waiting:
                answers.setdefault(index, TimelineResult(None, ErrorCategory.SERVER,
                                                         "HubSpot's answer did not list this note"))
            return finished()

        async def reconcile() -> list[TimelineResult] | None:
            waiting = [i for i in inputs if i not in answers]
            contacts = sorted({part[i][1] for i in waiting})
            note_ids = [n for ids in (await self._associated_ids("contacts", "notes", contacts)).values() for n in ids]
            landed: dict[tuple[str, datetime | None], list[str]] = {}
            for item in await self._batch_read("notes", sorted(set(note_ids)), ["hs_note_body", "hs_timestamp"]):
                properties = item.get("properties") or {}
                key = (str(properties.get("hs_note_body")), parse_crm_time(properties.get("hs_timestamp")))
                landed.setdefault(key, []).append(str(item.get("id")))
            for index in waiting:
                properties = inputs[index]["properties"]
                ids = landed.get((properties["hs_note_body"], parse_crm_time(properties["hs_timestamp"])))
                if ids:
                    answers[index] = TimelineResult(ids.pop(0))
            return finished() if len(answers) == len(part) else None

        return await write_or_reconcile(create, reconcile, what=f"HubSpot: {len(inputs)} notes")

    # -- conversions and deals --
    async def conversions_since(self, since: datetime | None) -> list[CrmConversion]:
        """Contacts whose lifecycle stage reached opportunity or customer (or evangelist, past them), changed at
        or after ``since``: one conversion per contact, dated when it first reached one of them.

        HubSpot stamps ``hs_lifecyclestage_<stage>_date`` the first time a contact enters a stage; the earliest of
        the opportunity, customer and evangelist dates is the conversion (the contact's ``lastmodifieddate`` when
        none is set, as on a portal that renamed its stages). Its value is the amount of the contact's won deals
        (see :meth:`_won_deal_values`).
        """
        dates = [f"hs_lifecyclestage_{stage}_date" for stage in CONVERTED_LIFECYCLE_STAGES]
        stream = _SearchStream(
            self._search_page,
            "contacts",
            "lastmodifieddate",
            ["email", "lifecyclestage", "lastmodifieddate", *dates],
            ChangeCursor.starting_at(since) if since is not None else ChangeCursor(),
            [{"propertyName": "lifecyclestage", "operator": "IN", "values": list(CONVERTED_LIFECYCLE_STAGES)}],
        )
        found: list[CrmConversion] = []
        while True:
            await stream.fill()
            if stream.head() is None:
                return await self._priced(found) if found else found
            item = stream.take()
            properties = item.get("properties") or {}
            email = email_key(properties.get("email"))
            if not email:
                continue
            modified = parse_crm_time(properties.get("lastmodifieddate") or item.get("updatedAt"))
            reached = [moment for name in dates if (moment := parse_crm_time(properties.get(name))) is not None]
            converted_at = min(reached) if reached else modified
            if converted_at is None:
                continue
            found.append(
                CrmConversion(
                    external_id=f"contact:{item.get('id')}",
                    email=email,
                    converted_at=converted_at,
                    what=f"lifecycle stage {properties.get('lifecyclestage')}",
                    modified_at=modified,
                )
            )

    async def _priced(self, found: list[CrmConversion]) -> list[CrmConversion]:
        values = await self._won_deal_values([c.external_id.partition(":")[2] for c in found])
        priced = []
        for conversion in found:
            value = values.get(conversion.external_id.partition(":")[2])
            priced.append(replace(conversion, value=value[0], currency=value[1]) if value else conversion)
        return priced

    async def _won_deal_values(self, contact_ids: Sequence[str]) -> dict[str, tuple[Decimal, str]]:
        """Per contact, the summed ``amount`` of its associated deals in a won stage (closed, probability 1, read
        from ``GET /crm/v3/pipelines/deals``), in the currency most of it is in (``deal_currency_code``, else the
        portal's). A token without the deals scopes reads none: the conversions are kept without a value."""
        try:
            pipelines = _answered(await self.http.request("GET", "/crm/v3/pipelines/deals"), "deal pipelines")
            won = {
                str(stage.get("id"))
                for pipeline in pipelines.get("results") or [] if isinstance(pipeline, dict)
                for stage in pipeline.get("stages") or [] if isinstance(stage, dict)
                if str((stage.get("metadata") or {}).get("isClosed")).lower() == "true"
                and _probability(stage) == 1.0
            }
            deal_ids = await self._associations_v4("contacts", "deals", contact_ids)
            wanted = sorted({d for ids in deal_ids.values() for d in ids})
            if not won or not wanted:
                return {}
            deals = {
                str(item.get("id")): item.get("properties") or {}
                for item in await self._batch_read("deals", wanted, ["amount", "deal_currency_code", "dealstage"])
            }
        except errors.AuthError:
            raise
        except errors.ProviderError as exc:
            logger.warning("HubSpot: deal amounts not read (%s); conversions kept without a value", exc)
            return {}
        portal_currency: str | None = None
        values: dict[str, tuple[Decimal, str]] = {}
        for contact_id, ids in deal_ids.items():
            sums: dict[str, Decimal] = {}
            for deal_id in ids:
                deal = deals.get(deal_id) or {}
                if str(deal.get("dealstage")) not in won or deal.get("amount") in (None, ""):
                    continue
                currency = str(deal.get("deal_currency_code") or "")
                if not currency:
                    portal_currency = portal_currency or await self._portal_currency()
                    currency = portal_currency
                try:
                    amount = Decimal(str(deal["amount"]))
                except ArithmeticError:
                    continue
                sums[currency] = sums.get(currency, Decimal(0)) + amount
            if sums:
                currency, amount = max(sums.items(), key=lambda item: item[1])
                values[contact_id] = (amount.quantize(Decimal("0.01")), currency.upper())
        return values

    async def _portal_currency(self) -> str:
        """The portal's company currency (``GET /account-info/v3/details``), for deals without their own."""
        details = _answered(await self.http.request("GET", "/account-info/v3/details"), "account details")
        return str(details.get("companyCurrency") or "USD")

    # -- merges --
    async def merge_records(self, obj: RecordObject, keep_id: str, merge_id: str) -> MergeResult:
        """``POST /crm/v3/objects/contacts/merge`` (``primaryObjectId`` keeps its values where both have one);
        the survivor is the id HubSpot answers with, which may be a new one.

        Raises:
            RequestRejectedError: for leads (HubSpot merges contacts here) or a merge HubSpot refuses.
            NotFoundError: when either contact is gone.
        """
        if obj is not RecordObject.CONTACT:
            raise errors.RequestRejectedError("HubSpot: only contacts are merged from CRM Desktop")
        body = {"primaryObjectId": keep_id, "objectIdToMerge": merge_id}
        response = await self.http.request("POST", "/crm/v3/objects/contacts/merge", json=body, idempotent=False)
        payload = _body(response)
        if response.status_code >= 400:
            category, message = record_failure(payload, response.status_code, f"merge of contact {merge_id}")
            raise errors.RequestRejectedError(f"HubSpot: {message}", status=response.status_code, category=category)
        return MergeResult(surviving_id=str(payload.get("id") or keep_id), merged_id=merge_id)

    # -- record links --
    async def portal_id(self) -> str:
        """The portal id (``/account-info/v3/details``), which HubSpot's web addresses of records carry.

        Raises:
            ConfigurationError: when HubSpot's answer has no portal id.
        """
        details = _body(await self.http.request("GET", "/account-info/v3/details"))
        portal = details.get("portalId")
        if portal in (None, ""):
            raise errors.ConfigurationError("HubSpot did not tell the account's portal id")
        return str(portal)

    # -- custom fields --
    async def keep_note(self, obj: RecordObject, crm_id: str, text: str) -> bool:
        """Attach the record's social note (what no property carries) unless one of the contact's notes already
        says exactly that; True when a note was added. A lead's note goes to its contact, as ``add_note``'s.

        Raises:
            NotFoundError: when a lead has no contact to carry the note.
            RequestRejectedError: when HubSpot refuses the note.
        """
        contact_id = await self._note_contact(obj, crm_id)
        body_html = _note_html(text)
        note_ids = (await self._associated_ids("contacts", "notes", [contact_id])).get(contact_id) or []
        for item in await self._batch_read("notes", note_ids, ["hs_note_body"]):
            if (item.get("properties") or {}).get("hs_note_body") == body_html:
                return False
        await self.add_note(RecordObject.CONTACT, contact_id, text)
        return True


#: Inputs per HubSpot batch request.
NOTES_PER_BATCH = 100
#: HubSpot's limit on a note's body.
NOTE_BODY_LIMIT = 65_536


# -- mapping responses --------------------------------------------------------------------------------------------
def _match_batch(
    chunk: Sequence[_BatchInput], payload: dict[str, Any], result_key: Callable[[dict[str, Any]], str | None]
) -> dict[int, _Written]:
    """Match a batch answer's results and errors to its inputs (trace id first, then email or id)."""
    started = parse_crm_time(payload.get("startedAt"))
    by_trace = {str(item.index): item for item in chunk}
    by_key = {item.key.lower(): item for item in chunk}
    written: dict[int, _Written] = {}
    for result in payload.get("results") or []:
        if not isinstance(result, dict):
            continue
        item = by_trace.get(str(result.get("objectWriteTraceId"))) or by_key.get((result_key(result) or "").lower())
        if item is not None:
            written[item.index] = _Written(result=result, started_at=started)
    for error in payload.get("errors") or []:
        if not isinstance(error, dict):
            continue
        context: dict[str, Any] = error["context"] if isinstance(error.get("context"), dict) else {}
        traces = [by_trace[str(t)] for t in context.get("objectWriteTraceId") or [] if str(t) in by_trace]
        keys = [by_key[str(k).lower()] for k in context.get("ids") or [] if str(k).lower() in by_key]
        for item in traces or keys:
            written.setdefault(item.index, _Written(error=error))
    return written


def _write_result(email: str, written: _Written, *, created: bool = False) -> RecordResult:
    """One record's result from what became of its batch input (``created``: it was a batch create)."""
    if written.failure is not None:
        return failed_result(email, written.failure.category, f"{email}: {written.failure}")
    if written.error is not None or written.result is None:
        return failed_result(email, *record_failure(written.error or {}, written.status, email))
    result = written.result
    crm_id = str(result.get("id")) if result.get("id") is not None else None
    # The batch answer's change stamp is the one the change search reads back: the engine keeps it to know the
    # echo of this write.
    updated_at = parse_crm_time(
        result.get("updatedAt")
        or (result.get("properties") or {}).get("lastmodifieddate")
        or (result.get("properties") or {}).get("hs_lastmodifieddate")
    )
    if created or result.get("new"):
        return RecordResult(email, RecordOutcome.CREATED, crm_id, crm_modified_at=updated_at)
    started = written.started_at
    created_at = parse_crm_time(result.get("createdAt"))
    replayed = written.replayed_after
    # After a lost first attempt, a record created since that attempt was created by this push.
    if replayed is not None and started and created_at and created_at >= started - timedelta(seconds=replayed + 2):
        return RecordResult(email, RecordOutcome.CREATED, crm_id, crm_modified_at=updated_at)
    if started is not None and updated_at is not None and updated_at < started:
        return RecordResult(email, RecordOutcome.UNCHANGED, crm_id, crm_modified_at=updated_at)
    return RecordResult(email, RecordOutcome.UPDATED, crm_id, crm_modified_at=updated_at)


def _record_gone(error: dict[str, Any], status: int | None) -> bool:
    """Whether a refused batch input names a record HubSpot no longer has (deleted, or no such id)."""
    category = str(error.get("category") or "")
    return category == "OBJECT_NOT_FOUND" or (not category and status == 404)


def classify_batch_update(response: httpx.Response) -> Verdict:
    """A batch update refused as a whole because a record in it is gone is a record failure, so the batch is split
    until that record stands alone; any other answer is decided as :func:`classify_hubspot` decides it."""
    if response.status_code == 404 and str(_body(response).get("category") or "") == "OBJECT_NOT_FOUND":
        return Verdict(
            Decision.RECORD_FAILURE, ErrorCategory.NOT_FOUND, code="OBJECT_NOT_FOUND", reason="not found (404)"
        )
    return classify_hubspot(response)


def _result_id(result: dict[str, Any]) -> str | None:
    return str(result["id"]) if result.get("id") is not None else None


def _result_email(result: dict[str, Any]) -> str | None:
    email = (result.get("properties") or {}).get("email")
    return str(email) if email else None


def _id_order(record_id: str) -> tuple[int, str]:
    return (int(record_id), record_id) if record_id.isdigit() else (-1, record_id)


def _crm_field(item: dict[str, Any]) -> CrmField:
    meta: dict[str, Any] = item["modificationMetadata"] if isinstance(item.get("modificationMetadata"), dict) else {}
    read_only = bool(meta.get("readOnlyValue")) or bool(item.get("calculated"))
    return CrmField(
        name=str(item.get("name", "")),
        label=str(item.get("label") or item.get("name", "")),
        type=str(item.get("type", "string")),
        custom=not item.get("hubspotDefined", False),
        writable=not read_only,
        options=tuple(str(o.get("value")) for o in item.get("options") or [] if isinstance(o, dict)),
    )


def _contact_record(item: dict[str, Any]) -> CrmRecord:
    properties = dict(item.get("properties") or {})
    email = _email_key(properties.get("email"))
    modified = parse_crm_time(properties.get("lastmodifieddate") or item.get("updatedAt"))
    return CrmRecord(crm_id=str(item.get("id")), email=email, fields=properties, modified_at=modified)


def _lead_record(item: dict[str, Any], contact: CrmRecord | None) -> CrmRecord:
    properties = dict(item.get("properties") or {})
    modified = parse_crm_time(properties.get("hs_lastmodifieddate") or item.get("updatedAt"))
    if contact is not None and contact.modified_at is not None and (modified is None or contact.modified_at > modified):
        modified = contact.modified_at  # most lead fields live on the contact: its change is the lead's change
    fields = {**(contact.fields if contact else {}), **properties}
    return CrmRecord(
        crm_id=str(item.get("id")), email=contact.email if contact else "", fields=fields, modified_at=modified
    )


def _association_ids(item: dict[str, Any], to_object: str) -> list[str]:
    associations: dict[str, Any] = item["associations"] if isinstance(item.get("associations"), dict) else {}
    if not associations:
        return []
    linked = associations.get(to_object)
    if linked is None:
        linked = next((value for key, value in associations.items() if key.startswith(to_object.rstrip("s"))), None)
    results = linked.get("results") if isinstance(linked, dict) else None
    return list(dict.fromkeys(str(r.get("id")) for r in results or [] if isinstance(r, dict) and r.get("id")))


def _note_html(text: str) -> str:
    """A plain-text note as the HTML HubSpot shows (escaped, line breaks kept)."""
    return "<p>" + html.escape(text).replace("\n", "<br>") + "</p>"


def _probability(stage: dict[str, Any]) -> float | None:
    """A pipeline stage's win probability (HubSpot sends it as a string)."""
    try:
        return float(str((stage.get("metadata") or {}).get("probability")))
    except (TypeError, ValueError):
        return None
