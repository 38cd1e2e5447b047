"""Salesforce REST adapter: SOQL dedupe by email, sObject Collections writes, SystemModstamp pulls, notes."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Unpack
from urllib.parse import quote_plus

import httpx

from crm_desktop.domain.models import Contact, Integration, Lead, LeadStatus
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.providers.auth import SalesforceAuth
from crm_desktop.providers.base import AdapterBase, AdapterWiring
from crm_desktop.providers.contract import (
    AdapterOptions,
    ChangePage,
    ConnectionInfo,
    CrmField,
    CrmRecord,
    OutboundRecord,
    RecordResult,
    TimelineEntry,
    TimelineResult,
)
from crm_desktop.providers.conversions import CrmConversion
from crm_desktop.providers.errors import (
    ConfigurationError,
    NotFoundError,
    PermissionRefusedError,
    ProviderError,
    RequestRejectedError,
    TransientError,
)
from crm_desktop.providers.http import (
    OK,
    AmbiguousWriteError,
    Decision,
    Verdict,
    classify_status,
    json_or_none,
    request_of,
)
from crm_desktop.providers.rate import read_salesforce_headers, retry_after_seconds
from crm_desktop.providers.toolkit import (
    FieldCache,
    abandon,
    checked_email,
    chunks,
    distinct_email_keys,
    email_key,
    failed_result,
    gather_or_cancel,
    paginate,
    parse_crm_time,
    results_in_order,
    social_context_values,
    social_profile_values,
    utc_millis,
    write_or_reconcile,
)

logger = logging.getLogger(__name__)

API_VERSION = "v61.0"
DATA_PATH = f"/services/data/{API_VERSION}"
DEFAULT_LOGIN_URL = "https://login.salesforce.com"
#: sObject Collections take at most 200 records a request.
COLLECTION_LIMIT = 200
#: Emails per dedupe query: one query per collection of writes.
QUERY_EMAILS_LIMIT = 200
#: Keep a query's URL comfortably under the ~16k characters Salesforce and proxies accept.
QUERY_URL_LIMIT = 16_000
#: Rows per incremental query before the next query restarts from the cursor (bounds a query cursor's life).
CHANGES_QUERY_LIMIT = 10_000
#: Long-running concurrent requests a production org allows.
DEFAULT_CONCURRENCY = 25
#: Wait when the org's concurrent request limit is hit and Salesforce gave no Retry-After.
CONCURRENCY_WAIT_SECONDS = 2.0
#: Why a create fails whose connection died mid-write when Salesforce cannot then be asked whether it landed.
_UNCONFIRMED = TransientError(
    "the connection failed while creating it and Salesforce could not be asked whether it landed; "
    "the next push finds it if it did",
    category=ErrorCategory.NETWORK,
)

SOBJECTS: dict[RecordObject, str] = {RecordObject.CONTACT: "Contact", RecordObject.LEAD: "Lead"}
#: Where enrichment notes go, in order of preference: a classic Note, else a Task (an activity on the person).
NOTE_OBJECTS: tuple[str, ...] = ("Note", "Task")

#: The seed's social custom fields on Contact and Lead.
SOCIAL_FIELDS: tuple[str, ...] = (
    "twitter_username__c",
    "instagram_username__c",
    "linkedin_url__c",
    "social_followers__c",
    "social_engagement_score__c",
    "social_sentiment__c",
    "lead_source_detail__c",
)
#: Fields read back by find_by_emails, get_record and changes_since (those the org has).
PULL_FIELDS: dict[RecordObject, tuple[str, ...]] = {
    RecordObject.CONTACT: ("FirstName", "LastName", "Phone", "Title", *SOCIAL_FIELDS),
    RecordObject.LEAD: ("FirstName", "LastName", "Company", "Phone", "Status", "LeadSource", *SOCIAL_FIELDS),
}

#: Salesforce's standard Lead Status values for the app's lead statuses.
LEAD_STATUS_VALUES: dict[LeadStatus, str] = {
    LeadStatus.NEW: "Open - Not Contacted",
    LeadStatus.CONTACTED: "Working - Contacted",
    LeadStatus.QUALIFIED: "Working - Contacted",
    LeadStatus.UNQUALIFIED: "Closed - Not Converted",
    LeadStatus.CONVERTED: "Closed - Converted",
}

#: Company written on a Lead whose email is at a free mail provider (Salesforce's own Web-to-Lead wording).
COMPANY_NOT_PROVIDED = "[not provided]"
# fmt: off
FREE_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "ymail.com", "hotmail.com", "outlook.com", "live.com", "msn.com",
    "icloud.com", "me.com", "mac.com", "aol.com", "proton.me", "protonmail.com", "gmx.com", "gmx.de", "web.de",
    "mail.com", "yandex.ru", "qq.com", "163.com", "zoho.com", "fastmail.com",
})
# fmt: on
_SECOND_LEVEL_LABELS = frozenset({"co", "com", "org", "net", "ac", "gov", "edu", "ltd", "plc", "ne", "or"})

_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_RECORD_ID = re.compile(r"^[A-Za-z0-9]{1,18}$")
_NO_SUCH_COLUMN = re.compile(r"No such column '([A-Za-z0-9_]+)' on (?:entity|sobject of type) '?([A-Za-z0-9_]+)")

#: Whole-request 400s that are a bug or a configuration error: stop and name them instead of splitting the batch.
FATAL_REQUEST_CODES = frozenset(
    {"MALFORMED_QUERY", "INVALID_FIELD", "INVALID_TYPE", "INVALID_QUERY_FILTER_OPERATOR", "INVALID_QUERY_LOCATOR"}
)
DUPLICATE_CODES = frozenset({"DUPLICATES_DETECTED", "DUPLICATE_VALUE"})
NOT_FOUND_CODES = frozenset(
    {"ENTITY_IS_DELETED", "NOT_FOUND", "INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID", "INVALID_ID_FIELD"}
)
RETRYABLE_RECORD_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"})
#: A record the integration user may not write: its object permissions (Create, Edit), the record's sharing, or a
#: record it points to. Only that record fails; a Salesforce admin grants the access.
PERMISSION_RECORD_CODES = frozenset(
    {"INSUFFICIENT_ACCESS_OR_READONLY", "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY", "INSUFFICIENT_ACCESS"}
)
#: The org or user may not use the API, or a feature of it, at all: every call fails alike, so the run stops.
PERMISSION_ORG_CODES = frozenset({"API_DISABLED_FOR_ORG", "FUNCTIONALITY_NOT_ENABLED"})
_SOBJECT_IN_PATH = re.compile(r"/sobjects/([A-Za-z0-9_]+)")
_SOQL_FROM = re.compile(r"\bFROM\s+([A-Za-z0-9_]+)", re.IGNORECASE)


# -- classification ------------------------------------------------------------------------------------------


def salesforce_errors(response: httpx.Response) -> list[dict[str, Any]]:
    """The error items of a Salesforce answer: REST's ``[{errorCode, message, fields}]`` or OAuth's ``{error}``."""
    body = json_or_none(response)
    if isinstance(body, list):
        return [item for item in body if isinstance(item, dict)]
    if isinstance(body, dict):
        if "errorCode" in body:
            return [body]
        if "error" in body:
            return [{"errorCode": str(body["error"]), "message": str(body.get("error_description") or "")}]
    return []


def _first_code(errors: list[dict[str, Any]]) -> str:
    for item in errors:
        code = item.get("errorCode") or item.get("statusCode")
        if code:
            return str(code)
    return ""


def _fatal_request_reason(code: str, errors: list[dict[str, Any]]) -> str:
    """Name a bug or a configuration error without echoing the query (it can hold emails)."""
    if code == "INVALID_FIELD":
        for item in errors:
            match = _NO_SUCH_COLUMN.search(str(item.get("message", "")))
            if match:
                return (
                    f"{match.group(2)} has no field {match.group(1)} (INVALID_FIELD): a Salesforce admin must create "
                    "it, or remove it from the field mapping"
                )
        return "Salesforce refused a field name (INVALID_FIELD): check the field mapping against the org's fields"
    if code == "INVALID_QUERY_LOCATOR":
        return "Salesforce expired the query's cursor (INVALID_QUERY_LOCATOR); run the pull again"
    return f"Salesforce refused a query CRM Desktop built ({code}); this is a bug, please report it"


def _refused_object(response: httpx.Response) -> str:
    """The sObject a refused call was about, from its path or its query's FROM (never the query's values)."""
    request = request_of(response)
    if request is None:
        return ""
    path = request.url.path
    if "/tooling/" in path:
        return ""
    found = _SOBJECT_IN_PATH.search(path)
    if found:
        return found.group(1)
    query = request.url.params.get("q")
    found = _SOQL_FROM.search(query) if query else None
    return found.group(1) if found else ""


def permission_hint(code: str, sobject: str = "", *, tooling: bool = False) -> str:
    """What the Salesforce admin must grant for a permission refusal ``code``, in one clause."""
    if code == "API_DISABLED_FOR_ORG":
        return "ask your Salesforce admin for the 'API Enabled' permission for the integration user"
    if code == "FUNCTIONALITY_NOT_ENABLED":
        return "ask your Salesforce admin to turn on this feature for the org, or to grant it to the integration user"
    if tooling:
        return "ask your Salesforce admin for the 'Customize Application' permission for the integration user"
    if code == "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY":
        return "ask your Salesforce admin for access to the record it points to (its owner, account or lookup)"
    what = sobject or "this object"
    return f"ask your Salesforce admin for Read, Create and Edit on {what} (or sharing access to the record)"


def _permission_verdict(response: httpx.Response, code: str) -> Verdict:
    """A whole call refused for lack of permission: the run stops and says what to ask the admin for."""
    request = request_of(response)
    tooling = request is not None and "/tooling/" in request.url.path
    sobject = _refused_object(response)
    what = f" on {sobject}" if sobject and code not in PERMISSION_ORG_CODES and not tooling else ""
    return Verdict(
        Decision.FATAL,
        ErrorCategory.PERMISSION,
        code=code or "FORBIDDEN",
        reason=f"the Salesforce integration user lacks a permission{what} ({code or 403}): "
        + permission_hint(code, sobject, tooling=tooling),
    )


def classify_salesforce(response: httpx.Response) -> Verdict:
    """The decision for one Salesforce response, from its status and its error body."""
    status = response.status_code
    if status < 300 or status == 304:
        return OK
    errors = salesforce_errors(response)
    code = _first_code(errors)
    if code in PERMISSION_ORG_CODES:
        return _permission_verdict(response, code)
    if status == 300:
        return Verdict(
            Decision.RECORD_FAILURE,
            ErrorCategory.DUPLICATE,
            code="MULTIPLE_CHOICES",
            reason="more than one record matched (300)",
        )
    if status == 401:
        if code == "INVALID_SESSION_ID" or not errors:
            return Verdict(
                Decision.REFRESH_THEN_RETRY,
                ErrorCategory.AUTH,
                code=code or "INVALID_SESSION_ID",
                reason="Salesforce session expired or invalid (401 INVALID_SESSION_ID)",
            )
        return Verdict(
            Decision.FATAL, ErrorCategory.AUTH, code=code, reason=f"Salesforce refused the credentials ({code})"
        )
    if status == 403:
        text = " ".join(str(item.get("message", "")) for item in errors)
        if code == "REQUEST_LIMIT_EXCEEDED":
            if "ConcurrentPerOrg" in text or "Concurrent" in text:
                return Verdict(
                    Decision.RATE_LIMITED,
                    ErrorCategory.RATE_LIMIT,
                    code=code,
                    wait=retry_after_seconds(response) or CONCURRENCY_WAIT_SECONDS,
                    reason="the org's concurrent request limit was reached (ConcurrentPerOrg)",
                )
            return Verdict(
                Decision.FATAL,
                ErrorCategory.RATE_LIMIT,
                code=code,
                reason="the org's daily API request limit is used up (TotalRequests); sync resumes when it resets",
            )
        if not errors and "Bad_OAuth_Token" in response.text:
            return Verdict(
                Decision.FATAL, ErrorCategory.AUTH, code="Bad_OAuth_Token", reason="Salesforce refused the session"
            )
        return _permission_verdict(response, code)
    if status == 404:
        return Verdict(Decision.FATAL, ErrorCategory.NOT_FOUND, code=code or "NOT_FOUND", reason="not found (404)")
    if status == 400 and code in FATAL_REQUEST_CODES:
        return Verdict(Decision.FATAL, ErrorCategory.VALIDATION, code=code, reason=_fatal_request_reason(code, errors))
    if status == 400 and code == "invalid_grant":
        return Verdict(Decision.FATAL, ErrorCategory.AUTH, code=code, reason="Salesforce refused the refresh token")
    if status == 429:
        return Verdict(
            Decision.RATE_LIMITED, ErrorCategory.RATE_LIMIT, wait=retry_after_seconds(response), code=code, reason="429"
        )
    if status >= 500:
        wait, reason = retry_after_seconds(response), f"Salesforce server error ({status}{' ' + code if code else ''})"
        return Verdict(Decision.RETRY, ErrorCategory.SERVER, wait=wait, code=code, reason=reason)
    if status in (400, 409, 412, 413, 415, 422):
        category = record_error_category(code) if code else ErrorCategory.VALIDATION
        return Verdict(Decision.RECORD_FAILURE, category, code=code, reason=f"rejected ({status} {code})".strip())
    return classify_status(response)


def record_error_category(code: str) -> ErrorCategory:
    """The category of a per-record Salesforce error code."""
    if code in DUPLICATE_CODES:
        return ErrorCategory.DUPLICATE
    if code in NOT_FOUND_CODES:
        return ErrorCategory.NOT_FOUND
    if code in RETRYABLE_RECORD_CODES:
        return ErrorCategory.SERVER
    if code in PERMISSION_RECORD_CODES or code in PERMISSION_ORG_CODES:
        return ErrorCategory.PERMISSION
    return ErrorCategory.VALIDATION


def describe_record_errors(errors: Sequence[dict[str, Any]], sobject: str = "") -> tuple[ErrorCategory, str]:
    """The category and a sentence (fields, reason, code) for one record's Salesforce errors; a permission refusal
    also says what to ask the admin for on ``sobject``."""
    if not errors:
        return ErrorCategory.SERVER, "Salesforce rejected it without saying why"
    parts: list[str] = []
    category: ErrorCategory | None = None
    for item in errors:
        code = str(item.get("statusCode") or item.get("errorCode") or "UNKNOWN")
        category = category or record_error_category(code)
        fields = [str(f) for f in item.get("fields") or [] if f]
        where = f"{', '.join(fields)}: " if fields else ""
        if code in PERMISSION_RECORD_CODES or code in PERMISSION_ORG_CODES:
            said = _short(str(item.get("message") or "insufficient access"))
            parts.append(f"{where}{said} ({code}): {permission_hint(code, sobject)}")
            continue
        if code == "CANNOT_UPDATE_CONVERTED_LEAD":
            reason = "lead was converted; Salesforce no longer lets it be updated"
        else:
            reason = _short(str(item.get("message") or code))
        parts.append(f"{where}{reason} ({code})")
    return category or ErrorCategory.VALIDATION, "; ".join(parts)


def _short(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- SOQL ----------------------------------------------------------------------------------------------------


def soql_quote(value: str) -> str:
    """A SOQL string literal, with backslashes, quotes and control characters escaped."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("\b", "\\b")
        .replace("\f", "\\f")
    )
    return f"'{escaped}'"


def check_field_names(names: Sequence[str]) -> list[str]:
    """Field API names safe to put in SOQL, in order without repeats.

    Raises:
        ConfigurationError: naming a field name that is not a Salesforce API name.
    """
    seen: dict[str, str] = {}
    for name in names:
        if not _FIELD_NAME.match(name):
            raise ConfigurationError(f"{name!r} is not a Salesforce field API name (letters, digits, underscores)")
        seen.setdefault(name.lower(), name)
    return list(seen.values())


#: Characters a SOQL query keeps unescaped in the URL: RFC 3986 allows them in a query, and an ``IN`` list of
#: emails is mostly quotes, commas and at signs (``%27``, ``%2C``, ``%40`` would triple them).
SOQL_URL_SAFE = "'(),@:"


def encode_soql(soql: str) -> str:
    """The ``q=`` parameter of a query URL: SOQL form-encoded, its quotes, commas and at signs left as they are."""
    if soql.isascii() and not soql.encode("ascii").translate(None, _URL_SAFE_BYTES + b" "):
        # Nothing to escape but spaces (the usual query of plain emails): skip quoting byte by byte.
        return "q=" + soql.replace(" ", "+")
    return "q=" + quote_plus(soql, safe=SOQL_URL_SAFE)


def query_url_length(soql: str) -> int:
    """The length of ``/query?q=...`` once URL-encoded, as sent."""
    return len(f"{DATA_PATH}/query?") + len(encode_soql(soql))


#: Bytes ``encode_soql`` leaves as they are; a space becomes ``+``; every other byte becomes ``%XX``.
_URL_SAFE_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~" + SOQL_URL_SAFE.encode()


def _encoded_length(text: str) -> int:
    """``len(quote_plus(text, safe=SOQL_URL_SAFE))``, counted without building the encoded text."""
    raw = text.encode("utf-8")
    escaped = len(raw.translate(None, _URL_SAFE_BYTES)) - raw.count(b" ")
    return len(raw) + 2 * escaped


def email_in_queries(select: str, sobject: str, emails: Sequence[str]) -> list[str]:
    """``SELECT ... WHERE Email IN (...)`` queries covering ``emails``, each under the URL and count limits."""
    prefix = email_query_prefix(select, sobject)
    literals = [soql_quote(email) for email in emails]
    return [email_query(prefix, [literals[i] for i in group]) for group in email_query_groups(prefix, literals)]


def email_query_prefix(select: str, sobject: str) -> str:
    """The start of an ``Email IN (...)`` query, up to its opening parenthesis."""
    return f"SELECT {select} FROM {sobject} WHERE Email IN ("


def email_query(prefix: str, literals: Sequence[str]) -> str:
    """One ``Email IN (...)`` query of quoted email literals."""
    return prefix + ",".join(literals) + ")"


def email_query_groups(prefix: str, literals: Sequence[str]) -> list[list[int]]:
    """Positions of quoted emails, grouped in order so that each group's query stays under the count and URL limits."""
    # URL-encoding works character by character, so a query's encoded length is the sum of its parts'.
    empty_length = query_url_length(prefix + ")")
    comma_length = _encoded_length(",")
    groups: list[list[int]] = []
    group: list[int] = []
    length = empty_length
    for position, literal in enumerate(literals):
        literal_length = _encoded_length(literal)
        added = literal_length + (comma_length if group else 0)
        if group and (len(group) >= QUERY_EMAILS_LIMIT or length + added > QUERY_URL_LIMIT):
            groups.append(group)
            group = []
            length = empty_length
            added = literal_length
        group.append(position)
        length += added
    if group:
        groups.append(group)
    return groups


def encode_cursor(modstamp: datetime, record_id: str) -> str:
    """The change cursor: the last record's SystemModstamp and Id (SOQL orders by both, so the Id is a keyset
    position among equal stamps, not a set of ids delivered as the other CRMs' cursors keep)."""
    return f"{utc_millis(modstamp)}|{record_id}"


def decode_cursor(cursor: str) -> tuple[datetime, str | None]:
    """Read a cursor written by :func:`encode_cursor` (a bare ISO timestamp is accepted too).

    Raises:
        ConfigurationError: when the cursor is not one this adapter wrote.
    """
    stamp, _, record_id = cursor.partition("|")
    moment = parse_crm_time(stamp)
    if moment is None or (record_id and not _RECORD_ID.match(record_id)):
        raise ConfigurationError("the stored Salesforce pull position cannot be read; reset the integration's pull")
    return moment, record_id or None


# -- the default field mapping ----------------------------------------------------------------------------


def _filled(values: dict[str, Any]) -> dict[str, Any]:
    """The values that hold something: an empty name or phone is left out of the write."""
    return {name: value for name, value in values.items() if value}


def default_contact_record(contact: Contact) -> OutboundRecord:
    """The default mapping of a contact to Salesforce Contact fields, social custom fields included."""
    names = {"Email": contact.email, "FirstName": contact.first_name, "LastName": contact.last_name}
    fields = _filled({**names, "Phone": contact.phone})
    social, unmapped = social_profile_values(contact.social_profiles, lambda name: f"{name}__c")
    fields.update(social)
    extra = [
        f"{p.platform.value}: @{p.username}{f' {p.url}' if p.url else ''} ({p.followers} followers)" for p in unmapped
    ]
    for name, value in contact.custom_fields.items():
        if name.endswith("__c") and _FIELD_NAME.match(name):
            fields[name] = value
    lines: list[str] = []
    if contact.company:
        lines.append(f"Company: {contact.company}")
    if extra:
        lines.append("Other social profiles:")
        lines.extend(f"- {line}" for line in extra)
    return OutboundRecord(email=contact.email, fields=fields, note="\n".join(lines) or None)


def default_lead_record(lead: Lead) -> OutboundRecord:
    """The default mapping of a lead to Salesforce Lead fields (Company is filled at upsert when missing)."""
    names = {"Email": lead.email, "Status": LEAD_STATUS_VALUES[lead.status], "FirstName": lead.first_name}
    fields = _filled(
        {**names, "LastName": lead.last_name, "Company": lead.company, "lead_source_detail__c": lead.source}
    )
    note: str | None = None
    context = lead.social_context
    fields.update(
        social_context_values(context, sentiment="social_sentiment__c", engagement="social_engagement_score__c")
    )
    if context is not None:
        conversation = f" (conversation {context.conversation_id})" if context.conversation_id else ""
        note = f"Lead from a {context.platform.value} conversation{conversation}."
    return OutboundRecord(email=lead.email, fields=fields, note=note)


def company_from_email(email: str) -> str:
    """A Lead's Company guessed from its email domain: ``jo@acme.com`` -> ``Acme``; free mail -> ``[not provided]``."""
    domain = email.rpartition("@")[2].lower().strip(".")
    if not domain or domain in FREE_MAIL_DOMAINS:
        return COMPANY_NOT_PROVIDED
    labels = domain.split(".")
    if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL_LABELS and len(labels[-1]) == 2:
        name = labels[-3]
    elif len(labels) >= 2:
        name = labels[-2]
    else:
        name = labels[0]
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-")) or COMPANY_NOT_PROVIDED


# -- custom fields (Tooling API) -------------------------------------------------------------------------------

TOOLING_PATH = f"{DATA_PATH}/tooling"
_CUSTOM_FIELD_NAME = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|_(?!_))*__c$")
#: A record's newest notes compared with a social note before adding it again.
NOTES_COMPARED = 50
#: The field types ``create_field`` takes, and the Tooling ``Metadata`` of each (Salesforce's own field types).
TOOLING_FIELD_TYPES: dict[str, dict[str, Any]] = {
    "text": {"type": "Text", "length": 255},
    "string": {"type": "Text", "length": 255},
    "url": {"type": "Url"},
    "number": {"type": "Number", "precision": 18, "scale": 0},
    "integer": {"type": "Number", "precision": 18, "scale": 0},
    "decimal": {"type": "Number", "precision": 5, "scale": 2},
    "textarea": {"type": "LongTextArea", "length": 32768, "visibleLines": 5},
}


def tooling_field_metadata(label: str, field_type: str) -> dict[str, Any]:
    """The Tooling API ``Metadata`` of a new custom field: its label, type and size.

    Raises:
        RequestRejectedError: for a type Salesforce fields are not made of here.
    """
    kind, _, option_text = field_type.partition(":")
    kind = kind.strip().lower()
    if kind in {"enumeration", "picklist"}:
        values = [part.strip() for part in option_text.split(",") if part.strip()]
        if not values:
            raise RequestRejectedError(
                "Salesforce: a picklist field needs its values", category=ErrorCategory.VALIDATION
            )
        value_set = {
            "restricted": True,
            "valueSetDefinition": {
                "sorted": False,
                "value": [{"fullName": value, "label": value, "default": False} for value in values],
            },
        }
        return {"label": label, "type": "Picklist", "valueSet": value_set}
    if kind not in TOOLING_FIELD_TYPES:
        raise RequestRejectedError(
            f"Salesforce: unknown field type {field_type!r} (use one of {', '.join(TOOLING_FIELD_TYPES)}, "
            "enumeration:A,B)",
            category=ErrorCategory.VALIDATION,
        )
    return {"label": label, **TOOLING_FIELD_TYPES[kind]}


def _field_from_metadata(api_name: str, metadata: dict[str, Any]) -> CrmField:
    """A field just created, as describe would list it (when the user cannot see it yet)."""
    kinds = {"Text": "string", "Url": "url", "Number": "double", "LongTextArea": "textarea", "Picklist": "picklist"}
    values = metadata.get("valueSet", {}).get("valueSetDefinition", {}).get("value", [])
    return CrmField(
        name=api_name,
        label=str(metadata.get("label") or api_name),
        type=kinds.get(str(metadata.get("type")), "string"),
        custom=True,
        length=metadata.get("length"),
        options=tuple(str(v["fullName"]) for v in values),
    )


# -- upsert internals ------------------------------------------------------------------------------------------


@dataclass
class _Pending:
    """One record of an upsert on its way: where it sat in the input, its fields, what the CRM holds."""

    positions: list[int]
    email: str
    fields: dict[str, Any]
    crm_id: str | None = None
    existing: dict[str, Any] | None = None
    result: RecordResult | None = None

    def finish(
        self,
        outcome: RecordOutcome,
        crm_id: str | None = None,
        category: ErrorCategory | None = None,
        message: str | None = None,
    ) -> None:
        self.result = RecordResult(self.email, outcome, crm_id=crm_id, category=category, message=message)


#: Values that go on the wire as they are (anything else, dates and times, is formatted by ``_wire_value``).
_PLAIN_WIRE_TYPES = frozenset({str, int, float, bool, type(None)})


def _wire_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc_millis(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _same_value(current: Any, wanted: Any, *, is_email: bool = False, scale: int | None = None) -> bool:
    """Whether the CRM's value already equals the one to write, as Salesforce would store it.

    Salesforce stores empty text as null, compares emails without case, and rounds numbers to the field's scale.
    """
    if current in (None, "") and wanted in (None, ""):
        return True
    if is_email and isinstance(current, str) and isinstance(wanted, str):
        return current.strip().lower() == wanted.strip().lower()
    if isinstance(current, bool) or isinstance(wanted, bool):
        return current is wanted
    if isinstance(current, int | float) and isinstance(wanted, int | float):
        if scale is not None:
            return round(float(current), scale) == round(float(wanted), scale)
        return float(current) == float(wanted)
    return bool(current == wanted)


def _rows_by_email(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Query rows by normalised email, the first row of each email kept."""
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = email_key(row.get("Email"))
        if key and key not in found:
            found[key] = row
    return found


class SalesforceAdapter(AdapterBase):
    """Salesforce REST (API v61.0) as a CRM Desktop adapter.

    Dedupes by email with one SOQL query per up to 200 records, writes with sObject Collections (200 records a
    request, ``allOrNone=false``) in parallel up to the org's concurrent limit, pulls changes by SystemModstamp,
    and reports the ``__c`` fields an admin must create (REST cannot create fields).

    Attributes:
        provider: ``salesforce``.
        integration: the integration it serves.
        auth: the refreshing bearer-token auth (``auth.credentials`` holds the latest tokens).
        http: the shared HTTP core.
    """

    provider = "salesforce"

    def __init__(self, integration: Integration, credentials: dict[str, Any], **wiring: Unpack[AdapterWiring]) -> None:
        options = wiring.get("options") or AdapterOptions()
        base_url = integration.base_url or credentials.get("instanceUrl")
        if not base_url:
            raise ConfigurationError("Salesforce credentials carry no instance URL; sign in again")
        if not credentials.get("accessToken") and not credentials.get("refreshToken"):
            raise ConfigurationError(
                f"no Salesforce tokens are stored for {integration.name!r}; sign in first with "
                f"`crm-desktop integration login {integration.name}` (or the Sign in button)"
            )
        login_url = (integration.base_url or DEFAULT_LOGIN_URL).rstrip("/")
        self.auth = SalesforceAuth(
            credentials,
            f"{login_url}/services/oauth2/token",
            save_tokens=wiring.get("save_tokens"),
            session_seconds=options.salesforce_session_seconds,
            integration_name=integration.name,
        )
        super().__init__(
            integration,
            wiring,
            name="Salesforce",
            base_url=str(base_url),
            classifier=classify_salesforce,
            read_headers=read_salesforce_headers,
            auth=self.auth,
            # Salesforce has no burst window: only its concurrent long-running request limit.
            window_limit=None,
            window_seconds=1.0,
            concurrency=DEFAULT_CONCURRENCY,
        )
        self._describes: FieldCache[RecordObject, dict[str, Any]] = FieldCache(self._read_describe)
        #: Decimal places of each object's number fields by lower-cased name, read with its describe.
        self._scales: dict[RecordObject, dict[str, int]] = {}
        self._note_object: str | None = None
        #: Fields the field mapping reads besides :data:`PULL_FIELDS`, per object (see ``read_mapped_fields``).
        self._mapped_fields: dict[RecordObject, tuple[str, ...]] = {}

    # -- connection and quota ------------------------------------------------------------------------------
    async def test_connection(self) -> ConnectionInfo:
        """The daily API budget (``/limits``) and who the tokens act as (``/services/oauth2/userinfo``).

        ``/limits`` goes first: an API resource answers a stale session with 401 ``INVALID_SESSION_ID`` (which
        refreshes it), while ``userinfo`` answers 403 ``Bad_OAuth_Token``.
        """
        limits = await self._get_json(f"{DATA_PATH}/limits", "to read the org's limits")
        daily = limits.get("DailyApiRequests") if isinstance(limits, dict) else None
        if isinstance(daily, dict) and isinstance(daily.get("Max"), int) and isinstance(daily.get("Remaining"), int):
            self.http.budget.daily_limit = daily["Max"]
            self.http.budget.daily_remaining = daily["Remaining"]
        info = await self._get_json("/services/oauth2/userinfo", "to name the signed-in user")
        if not isinstance(info, dict):
            raise ProviderError("Salesforce answered userinfo with something that is not a user")
        user = str(info.get("preferred_username") or info.get("email") or info.get("user_id") or info.get("sub", ""))
        account = str(info.get("organization_id") or "")
        return ConnectionInfo(account=account, user=user, scopes=(), quota=self.quota())

    # -- fields ----------------------------------------------------------------------------------------------
    async def _describe(self, obj: RecordObject, *, fresh: bool = False) -> dict[str, Any]:
        return await self._describes.get(obj, fresh=fresh)

    async def _read_describe(self, obj: RecordObject) -> dict[str, Any]:
        body: dict[str, Any] = await self._get_json(
            f"{DATA_PATH}/sobjects/{SOBJECTS[obj]}/describe", f"to describe the {SOBJECTS[obj]} fields"
        )
        self._scales[obj] = {
            str(item["name"]).lower(): item["scale"]
            for item in body.get("fields", [])
            if item.get("type") in {"double", "currency", "percent", "int"} and isinstance(item.get("scale"), int)
        }
        return body

    async def _field_names(self, obj: RecordObject) -> dict[str, str]:
        """The org's field API names of ``obj``, by lower-cased name (SOQL names are case-insensitive)."""
        described = await self._describe(obj)
        return {str(f["name"]).lower(): str(f["name"]) for f in described.get("fields", []) if f.get("name")}

    async def list_fields(self, obj: RecordObject) -> list[CrmField]:
        """The Contact or Lead fields: label, type, custom, updateable, length and picklist values."""
        described = await self._describe(obj, fresh=True)
        fields: list[CrmField] = []
        for item in described.get("fields", []):
            options = tuple(
                str(value["value"])
                for value in item.get("picklistValues") or []
                if isinstance(value, dict) and value.get("active", True) and value.get("value") is not None
            )
            length = item.get("length")
            fields.append(
                CrmField(
                    name=str(item["name"]),
                    label=str(item.get("label") or item["name"]),
                    type=str(item.get("type") or "string"),
                    custom=bool(item.get("custom", str(item["name"]).endswith("__c"))),
                    writable=bool(item.get("updateable", False)),
                    length=int(length) if isinstance(length, int) and length > 0 else None,
                    options=options,
                )
            )
        return fields

    async def missing_fields(self, obj: RecordObject, wanted: Sequence[str]) -> list[str]:
        """The wanted fields the org lacks; a Salesforce admin must create them (REST cannot)."""
        await self._describe(obj, fresh=True)
        have = await self._field_names(obj)
        return [name for name in wanted if name.lower() not in have]

    async def _pull_fields(self, obj: RecordObject) -> list[str]:
        have = await self._field_names(obj)
        wanted = dict.fromkeys(name.lower() for name in (*PULL_FIELDS[obj], *self._mapped_fields.get(obj, ())))
        return [have[name] for name in wanted if name in have]

    # -- reading ---------------------------------------------------------------------------------------------
    async def _get_json(self, path: str | httpx.URL, what: str, **kwargs: Any) -> Any:
        response = await self.http.request("GET", path, **kwargs)
        return self._expect_json(response, what)

    @staticmethod
    def _expect_json(response: httpx.Response, what: str) -> Any:
        """The JSON body of a successful answer about ``what``.

        Raises:
            RequestRejectedError: naming the error code only (a query's message can quote emails back).
        """
        if response.status_code >= 300:
            errors = salesforce_errors(response)
            code = _first_code(errors)
            raise RequestRejectedError(
                f"Salesforce refused {what} ({code or response.status_code})",
                status=response.status_code,
                category=record_error_category(code) if code else ErrorCategory.VALIDATION,
                code=code,
            )
        body = json_or_none(response)
        if body is None:
            raise ProviderError(f"Salesforce's answer ({what}) was not JSON")
        return body

    async def query(self, soql: str) -> AsyncIterator[list[dict[str, Any]]]:
        """Run SOQL and yield its pages of records, following ``nextRecordsUrl``."""

        async def fetch(next_url: str | None) -> tuple[list[dict[str, Any]], str | None]:
            if next_url is None:
                body = await self._get_json(self.http.query_url(f"{DATA_PATH}/query", encode_soql(soql)), "a query")
            else:
                body = await self._get_json(next_url, "the next page of a query")
            records = [r for r in body.get("records", []) if isinstance(r, dict)]
            following = body.get("nextRecordsUrl") if not body.get("done", True) else None
            return records, str(following) if following else None

        async for records, _following in paginate(fetch):
            yield records

    async def _query_all(self, soql: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        async for page in self.query(soql):
            rows.extend(page)
        return rows

    @staticmethod
    def _select(fields: Sequence[str]) -> str:
        extra = [name for name in fields if name.lower() not in {"id", "email", "systemmodstamp"}]
        return ", ".join(["Id", "Email", *extra, "SystemModstamp"])

    async def _records_by_email(
        self, obj: RecordObject, emails: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """Raw records by normalised email, one query per up to 200 emails, run in parallel."""
        wanted = distinct_email_keys(emails, str)
        if not wanted:
            return {}
        queries = email_in_queries(self._select(check_field_names(fields)), SOBJECTS[obj], wanted)
        pages = await gather_or_cancel(self._query_all(soql) for soql in queries)
        return _rows_by_email(row for rows in pages for row in rows)

    @staticmethod
    def _crm_record(row: dict[str, Any]) -> CrmRecord:
        values = {k: v for k, v in row.items() if k not in {"attributes", "Id"}}
        return CrmRecord(
            crm_id=str(row.get("Id", "")),
            email=email_key(row.get("Email")),
            fields=values,
            modified_at=parse_crm_time(row.get("SystemModstamp")),
        )

    async def find_by_emails(self, obj: RecordObject, emails: Sequence[str]) -> dict[str, CrmRecord]:
        """Existing Contacts or Leads by normalised email (one SOQL ``Email IN`` query per 200 emails)."""
        fields = await self._pull_fields(obj)
        rows = await self._records_by_email(obj, distinct_email_keys(emails), fields)
        return {email: self._crm_record(row) for email, row in rows.items()}

    async def get_record(
        self, obj: RecordObject, *, email: str | None = None, crm_id: str | None = None
    ) -> CrmRecord | None:
        """One Contact or Lead by Id or by email, or ``None``."""
        if crm_id is not None:
            if not _RECORD_ID.match(crm_id):
                return None
            fields = await self._pull_fields(obj)
            soql = f"SELECT {self._select(fields)} FROM {SOBJECTS[obj]} WHERE Id = {soql_quote(crm_id)}"
            rows = await self._query_all(soql)
            return self._crm_record(rows[0]) if rows else None
        if email is not None:
            key = email_key(email)
            return (await self.find_by_emails(obj, [key])).get(key)
        raise ValueError("get_record needs an email or a crm_id")

    async def changes_since(self, obj: RecordObject, cursor: str | None) -> AsyncIterator[ChangePage]:
        """Records changed after ``cursor``, oldest first, a query page at a time (only non-empty pages)."""
        fields = await self._pull_fields(obj)
        select = self._select(fields)
        position = decode_cursor(cursor) if cursor else None
        while True:
            where = ""
            if position is not None:
                stamp = utc_millis(position[0])
                if position[1]:
                    where = (
                        f" WHERE (SystemModstamp > {stamp} OR (SystemModstamp = {stamp} "
                        f"AND Id > {soql_quote(position[1])}))"
                    )
                else:
                    where = f" WHERE SystemModstamp > {stamp}"
            soql = (
                f"SELECT {select} FROM {SOBJECTS[obj]}{where} ORDER BY SystemModstamp, Id LIMIT {CHANGES_QUERY_LIMIT}"
            )
            seen = 0
            async for page in self.query(soql):
                records = [self._crm_record(row) for row in page]
                if not records:
                    continue
                seen += len(records)
                last = records[-1]
                if last.modified_at is None:
                    raise ProviderError("Salesforce returned a record without SystemModstamp; cannot page changes")
                position = (last.modified_at, last.crm_id)
                yield ChangePage(records=records, cursor=encode_cursor(last.modified_at, last.crm_id))
            if seen < CHANGES_QUERY_LIMIT:
                return

    # -- writing ---------------------------------------------------------------------------------------------
    async def upsert(self, obj: RecordObject, records: Sequence[OutboundRecord]) -> list[RecordResult]:
        """Create or update Contacts or Leads by email; one result per input, in input order.

        Existing records are found with one SOQL query per up to 200 emails; creates and updates go out as sObject
        Collections of up to 200 records with ``allOrNone=false``, each as soon as one is full, while the other
        lookups are still in flight (see ``_query_then_write``).
        """
        # A long push asks for the describe while it checks its records, instead of after.
        early_describe = (
            asyncio.ensure_future(self._describe(obj))
            if len(records) > COLLECTION_LIMIT and obj not in self._describes
            else None
        )
        try:
            items, results = self._pending_items(obj, records)
        except BaseException:
            await abandon(early_describe)
            raise
        if not items:
            await abandon(early_describe)
        else:
            if early_describe is not None:
                await early_describe
            await self._upsert_pending(obj, items)
            await self._read_write_stamps(obj, items)
        for item in items:
            for position in item.positions:
                results[position] = item.result
        return results_in_order(results, records, "Salesforce")

    def _pending_items(
        self, obj: RecordObject, records: Sequence[OutboundRecord]
    ) -> tuple[list[_Pending], list[RecordResult | None]]:
        """One item per distinct email (later duplicates merged in), and the results of records refused already."""
        sobject = SOBJECTS[obj]
        results: list[RecordResult | None] = [None] * len(records)
        pending: dict[str, _Pending] = {}
        lowered_names: dict[str, str] = {}
        for position, record in enumerate(records):
            try:
                email = checked_email(record.email)
            except ValueError as exc:
                results[position] = failed_result(
                    record.email, ErrorCategory.VALIDATION, f"{sobject} {record.email}: Email: {exc}"
                )
                continue
            if record.crm_id is not None and not _RECORD_ID.match(record.crm_id):
                message = f"{sobject} {email}: the linked Salesforce id is not a Salesforce id"
                results[position] = failed_result(email, ErrorCategory.NOT_FOUND, message)
                continue
            values: dict[str, Any] = {}
            for name, value in record.fields.items():
                lowered = lowered_names.get(name)
                if lowered is None:
                    lowered = lowered_names[name] = name.lower()
                if lowered == "email":
                    values["Email"] = email
                elif lowered != "id":
                    values[name] = value if value.__class__ in _PLAIN_WIRE_TYPES else _wire_value(value)
            values["Email"] = email
            item = pending.get(email)
            if item is None:
                pending[email] = _Pending([position], email, values, record.crm_id)
            else:
                # The same person twice in one push: one write with the later values winning.
                item.positions.append(position)
                item.fields.update(values)
                item.crm_id = item.crm_id or record.crm_id
        return list(pending.values()), results

    async def _upsert_pending(self, obj: RecordObject, items: list[_Pending]) -> None:
        sobject = SOBJECTS[obj]
        named: dict[str, None] = {}
        for item in items:
            named.update(dict.fromkeys(item.fields))
        names = check_field_names(list(named))
        have = await self._field_names(obj)
        lacking = [name for name in names if name.lower() not in have]
        if lacking:
            raise RequestRejectedError(
                f"{sobject} lacks the field(s) {', '.join(lacking)}: a Salesforce admin must create them "
                "(Setup > Object Manager), or remove them from the field mapping",
                category=ErrorCategory.VALIDATION,
                code="INVALID_FIELD",
            )
        await self._query_then_write(obj, items, names)

    async def _query_then_write(self, obj: RecordObject, items: list[_Pending], names: Sequence[str]) -> None:
        """Look the items up by email and write them, as a pipeline.

        As many workers as the budget lets fly take the next ``Email IN`` query each; what a query's answer
        leaves to create or update joins one queue of creates and one of updates, and whichever worker fills a
        queue to a full collection (200) writes it before it queries again. Requests are as few as with every
        query first, but writes start with the first answer, and the work of reading one answer overlaps
        the other requests in flight. The part-filled queues are written last.
        """
        prefix = email_query_prefix(self._select(names), SOBJECTS[obj])
        literals = [soql_quote(item.email) for item in items]
        groups = iter(email_query_groups(prefix, literals))
        creates: list[_Pending] = []
        updates: list[_Pending] = []

        async def write_full_collections() -> None:
            for queue, write in ((creates, self._create_collection), (updates, self._update_collection)):
                while len(queue) >= COLLECTION_LIMIT:
                    chunk = queue[:COLLECTION_LIMIT]
                    del queue[:COLLECTION_LIMIT]
                    await write(obj, chunk)

        async def worker() -> None:
            for group in groups:
                members = [items[position] for position in group]
                try:
                    rows = await self._query_all(email_query(prefix, [literals[position] for position in group]))
                except TransientError as exc:
                    # Only this query's records are left unanswered: they fail (the next push retries them).
                    self._fail_all(obj, members, exc)
                    continue
                found = _rows_by_email(rows)
                for item in members:
                    self._sort_item(obj, item, found.get(item.email), creates, updates)
                await write_full_collections()

        # Twice as many workers as slots: when a slot frees, another worker's request is already waiting for it.
        workers = max(1, min(2 * self.http.budget.concurrency, len(items) // QUERY_EMAILS_LIMIT + 1))
        await gather_or_cancel(worker() for _ in range(workers))
        jobs: list[Coroutine[Any, Any, None]] = []
        jobs += [self._create_collection(obj, chunk) for chunk in chunks(creates, COLLECTION_LIMIT)]
        jobs += [self._update_collection(obj, chunk) for chunk in chunks(updates, COLLECTION_LIMIT)]
        await gather_or_cancel(jobs)

    def _sort_item(
        self,
        obj: RecordObject,
        item: _Pending,
        found: dict[str, Any] | None,
        creates: list[_Pending],
        updates: list[_Pending],
    ) -> None:
        """Settle an item the CRM holds unchanged; queue the rest to update (known id) or create."""
        if item.crm_id is not None:
            item.existing = found if found is not None and found.get("Id") == item.crm_id else None
        elif found is not None:
            item.crm_id = str(found["Id"])
            item.existing = found
        if item.existing is not None and self._unchanged(obj, item):
            item.finish(RecordOutcome.UNCHANGED, crm_id=item.crm_id)
        elif item.crm_id is not None:
            updates.append(item)
        elif self._ready_to_create(obj, item):
            creates.append(item)

    def _unchanged(self, obj: RecordObject, item: _Pending) -> bool:
        assert item.existing is not None
        lowered = {key.lower(): value for key, value in item.existing.items()}
        scales = self._number_scales(obj)
        return all(
            name.lower() in lowered
            and _same_value(lowered[name.lower()], value, is_email=name == "Email", scale=scales.get(name.lower()))
            for name, value in item.fields.items()
        )

    def _number_scales(self, obj: RecordObject) -> dict[str, int]:
        """Decimal places of the number fields (read with the cached describe), by lower-cased name."""
        return self._scales.get(obj, {})

    def _ready_to_create(self, obj: RecordObject, item: _Pending) -> bool:
        """Fill what Salesforce requires on create; fail the record before sending when it cannot be filled."""
        sobject = SOBJECTS[obj]
        last_name = item.fields.get("LastName")
        if not isinstance(last_name, str) or not last_name.strip():
            item.finish(
                RecordOutcome.FAILED,
                category=ErrorCategory.VALIDATION,
                message=f"{sobject} {item.email}: LastName: Salesforce requires a last name to create a {sobject}",
            )
            return False
        if obj is RecordObject.LEAD:
            company = item.fields.get("Company")
            if not isinstance(company, str) or not company.strip():
                item.fields["Company"] = self.options.default_lead_company or company_from_email(item.email)
        return True

    @staticmethod
    def _collection_body(sobject: str, items: Sequence[_Pending], *, with_id: bool) -> dict[str, Any]:
        attributes = {"type": sobject}
        if with_id:
            records = [{"attributes": attributes, "Id": item.crm_id, **item.fields} for item in items]
        else:
            records = [{"attributes": attributes, **item.fields} for item in items]
        return {"allOrNone": False, "records": records}

    async def _create_collection(self, obj: RecordObject, items: list[_Pending]) -> None:
        """POST a collection; after a connection lost mid-write, look the emails up and create only the missing."""
        sobject = SOBJECTS[obj]
        remaining = list(items)

        async def create() -> bool:
            try:
                response = await self.http.request(
                    "POST",
                    f"{DATA_PATH}/composite/sobjects",
                    idempotent=False,
                    json=self._collection_body(sobject, remaining, with_id=False),
                )
            except AmbiguousWriteError:
                raise
            except TransientError as exc:
                self._fail_all(obj, remaining, exc)
                return True
            await self._apply_collection(obj, remaining, response, creating=True)
            return True

        async def reconcile() -> bool | None:
            nonlocal remaining
            try:
                found = await self._records_by_email(obj, [item.email for item in remaining], [])
            except TransientError:
                self._fail_all(obj, remaining, _UNCONFIRMED)
                return True
            for item in remaining:
                row = found.get(item.email)
                if row is not None:
                    item.finish(RecordOutcome.CREATED, crm_id=str(row["Id"]))
            remaining = [item for item in remaining if item.result is None]
            return None if remaining else True

        try:
            await write_or_reconcile(create, reconcile, what=f"Salesforce {sobject} create of {len(items)} records")
        except AmbiguousWriteError as exc:
            self._fail_all(obj, remaining, exc)

    async def _update_collection(self, obj: RecordObject, items: list[_Pending]) -> None:
        """PATCH a collection by Id (updates are idempotent: replays are safe)."""
        try:
            response = await self.http.request(
                "PATCH",
                f"{DATA_PATH}/composite/sobjects",
                json=self._collection_body(SOBJECTS[obj], items, with_id=True),
            )
        except TransientError as exc:
            self._fail_all(obj, items, exc)
            return
        await self._apply_collection(obj, items, response, creating=False)

    def _fail_all(self, obj: RecordObject, items: Sequence[_Pending], exc: ProviderError) -> None:
        for item in items:
            item.finish(RecordOutcome.FAILED, category=exc.category, message=f"{SOBJECTS[obj]} {item.email}: {exc}")

    async def _apply_collection(
        self, obj: RecordObject, items: list[_Pending], response: httpx.Response, *, creating: bool
    ) -> None:
        sobject = SOBJECTS[obj]
        if response.status_code >= 300:
            # The whole request was refused for one record's sake: split until each record has its own answer.
            if len(items) > 1:
                middle = len(items) // 2
                retry = self._create_collection if creating else self._update_collection
                await gather_or_cancel([retry(obj, items[:middle]), retry(obj, items[middle:])])
                return
            category, message = describe_record_errors(salesforce_errors(response), sobject)
            items[0].finish(RecordOutcome.FAILED, category=category, message=f"{sobject} {items[0].email}: {message}")
            return
        body = json_or_none(response)
        if not isinstance(body, list) or len(body) != len(items):
            for item in items:
                item.finish(
                    RecordOutcome.FAILED,
                    category=ErrorCategory.SERVER,
                    message=f"{sobject} {item.email}: Salesforce's answer did not list one result per record",
                )
            return
        written = RecordOutcome.CREATED if creating else RecordOutcome.UPDATED
        for item, answer in zip(items, body, strict=True):
            if isinstance(answer, dict) and answer.get("success"):
                item.result = RecordResult(item.email, written, crm_id=str(answer.get("id") or item.crm_id or ""))
                continue
            errors = answer.get("errors", []) if isinstance(answer, dict) else []
            category, message = describe_record_errors([e for e in errors if isinstance(e, dict)], sobject)
            item.finish(
                RecordOutcome.FAILED,
                crm_id=item.crm_id,
                category=category,
                message=f"{sobject} {item.email}: {message}",
            )

    # -- notes -----------------------------------------------------------------------------------------------
    async def add_note(self, obj: RecordObject, crm_id: str, text: str) -> str:
        """Attach a Note (``ParentId``, ``Title``, ``Body``), or a Task where the org has none; return its id."""
        if not _RECORD_ID.match(crm_id):
            raise NotFoundError(f"{crm_id!r} is not a Salesforce id")
        title = _short(text.strip().splitlines()[0] if text.strip() else "CRM Desktop", 80)
        sobject = SOBJECTS[obj]
        candidates = [self._note_object] if self._note_object else list(NOTE_OBJECTS)
        for note_object in candidates:
            if note_object == "Note":
                body: dict[str, Any] = {"ParentId": crm_id, "Title": title, "Body": text}
            else:
                body = {"WhoId": crm_id, "Subject": title, "Description": text}
            try:
                response = await self.http.request(
                    "POST", f"{DATA_PATH}/sobjects/{note_object}", idempotent=False, json=body
                )
            except NotFoundError:
                logger.info("Salesforce org has no %s object; trying the next kind of note", note_object)
                continue
            created = self._expect_json(response, f"the note on {sobject} {crm_id}")
            if not isinstance(created, dict) or not created.get("id"):
                raise ProviderError(f"Salesforce created no {note_object} id for the note on {sobject} {crm_id}")
            self._note_object = note_object
            return str(created["id"])
        raise NotFoundError(
            f"this Salesforce org offers neither Note nor Task over the REST API; the note on {sobject} {crm_id} "
            "was not saved"
        )

    # -- timeline --
    async def log_timeline(self, obj: RecordObject, entries: Sequence[TimelineEntry]) -> list[TimelineResult]:
        """Completed Tasks on Contacts or Leads (``WhoId``), up to 200 per ``composite/sobjects`` request.

        A connection lost after sending is settled by looking the Tasks up (same ``WhoId`` and ``Subject``, created
        since the write began) before sending what is missing, so no Task is written twice.
        """
        results: list[TimelineResult] = []
        for part in chunks(list(entries), COLLECTION_LIMIT):
            results.extend(await self._log_tasks(obj, part))
        return results

    async def _log_tasks(self, obj: RecordObject, entries: list[TimelineEntry]) -> list[TimelineResult]:
        answers: dict[int, TimelineResult] = {}
        for index, entry in enumerate(entries):
            if not _RECORD_ID.match(entry.crm_id):
                answers[index] = TimelineResult(None, ErrorCategory.NOT_FOUND,
                                                f"{entry.crm_id!r} is not a Salesforce {SOBJECTS[obj]} id")
        started = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=TASK_LOOKUP_SLACK_SECONDS)

        async def create() -> list[TimelineResult]:
            waiting = [i for i in range(len(entries)) if i not in answers]
            if waiting:
                body = {"allOrNone": False, "records": [_task_record(entries[i]) for i in waiting]}
                response = await self.http.request(
                    "POST", f"{DATA_PATH}/composite/sobjects", idempotent=False, json=body
                )
                if response.status_code >= 300:
                    category, message = describe_record_errors(salesforce_errors(response))
                    raise RequestRejectedError(f"Salesforce refused the Tasks: {message}",
                                               status=response.status_code, category=category)
                answer = json_or_none(response)
                if not isinstance(answer, list) or len(answer) != len(waiting):
                    raise TransientError("Salesforce's answer did not list one result per Task")
                for index, item in zip(waiting, answer, strict=True):
                    if isinstance(item, dict) and item.get("success") and item.get("id"):
                        answers[index] = TimelineResult(str(item["id"]))
                        continue
                    errors = item.get("errors", []) if isinstance(item, dict) else []
                    category, message = describe_record_errors([e for e in errors if isinstance(e, dict)])
                    answers[index] = TimelineResult(
                        None, category, f"Task on {SOBJECTS[obj]} {entries[index].crm_id}: {message}"
                    )
            return [answers[i] for i in range(len(entries))]

        async def reconcile() -> list[TimelineResult] | None:
            waiting = [i for i in range(len(entries)) if i not in answers]
            who = ", ".join(sorted({soql_quote(entries[i].crm_id) for i in waiting}))
            rows = await self._query_all(
                f"SELECT Id, WhoId, Subject FROM Task WHERE WhoId IN ({who}) "
                f"AND CreatedDate >= {started.strftime('%Y-%m-%dT%H:%M:%SZ')}"
            )
            landed: dict[tuple[str, str], list[str]] = {}
            for row in rows:
                landed.setdefault((str(row.get("WhoId"))[:15], str(row.get("Subject"))), []).append(str(row["Id"]))
            for index in waiting:
                entry = entries[index]
                ids = landed.get((entry.crm_id[:15], _short(entry.subject, TASK_SUBJECT_LIMIT)))
                if ids:
                    answers[index] = TimelineResult(ids.pop(0))
            return [answers[i] for i in range(len(entries))] if len(answers) == len(entries) else None

        return await write_or_reconcile(create, reconcile, what=f"Salesforce Tasks on {len(entries)} records")

    # -- conversions and deals --
    async def conversions_since(self, since: datetime | None) -> list[CrmConversion]:
        """Converted Leads (``IsConverted = true``) changed after ``since``: one conversion per Lead.

        ``ConvertedDate`` is a date; a converted Lead is read-only, so its ``SystemModstamp`` is the moment of the
        conversion when it falls on that date (else the end of that day, UTC). A Lead conversion carries no amount
        (that is on the Opportunity it may have made), so the value is left empty.
        """
        where = "IsConverted = true"
        if since is not None:
            where += f" AND SystemModstamp > {utc_millis(since)}"
        rows = await self._query_all(
            f"SELECT Id, Email, ConvertedDate, SystemModstamp FROM Lead WHERE {where} ORDER BY SystemModstamp, Id"
        )
        found: list[CrmConversion] = []
        for row in rows:
            email = email_key(row.get("Email"))
            day = str(row.get("ConvertedDate") or "")
            if not email or not day:
                continue
            try:
                converted_on = date.fromisoformat(day[:10])
            except ValueError:
                continue
            modified = parse_crm_time(row.get("SystemModstamp"))
            moment = (
                modified
                if modified is not None and modified.astimezone(UTC).date() == converted_on
                else datetime(converted_on.year, converted_on.month, converted_on.day, 23, 59, 59, tzinfo=UTC)
            )
            found.append(
                CrmConversion(
                    external_id=f"lead:{str(row.get('Id'))[:15]}",
                    email=email,
                    converted_at=moment,
                    what="lead converted",
                    modified_at=modified,
                )
            )
        return found

    # -- custom fields ---------------------------------------------------------------------------------------
    def read_mapped_fields(self, obj: RecordObject, names: Sequence[str]) -> None:
        """Read these fields too (those the org has) in every later find, get and pull: the mapped ones."""
        self._mapped_fields[obj] = tuple(check_field_names([n for n in names if _FIELD_NAME.match(n)]))

    async def create_field(self, obj: RecordObject, name: str, label: str, field_type: str) -> CrmField:
        """Create a custom field with the Tooling API (``POST /tooling/sobjects/CustomField``).

        ``name`` is the API name (``twitter_username__c``; the ``__c`` is added when missing); ``field_type`` one
        of :data:`TOOLING_FIELD_TYPES`, an enumeration listing its values after a colon
        (``enumeration:positive,neutral``). A field that exists already (``DUPLICATE_DEVELOPER_NAME``) is returned
        as the org describes it. Salesforce grants a new field to no profile: until an admin grants field-level
        security, the integration user may not see it (the caller checks with :meth:`list_fields`).

        Raises:
            RequestRejectedError: an unknown type or name, or Salesforce refused.
            PermissionRefusedError: the integration user lacks the permission to customize the org.
        """
        api_name = name if name.endswith("__c") else f"{name}__c"
        if not _CUSTOM_FIELD_NAME.match(api_name):
            raise RequestRejectedError(
                f"Salesforce: {api_name!r} is not a custom field API name (letters, digits and single underscores, "
                "starting with a letter, ending in __c)",
                category=ErrorCategory.VALIDATION,
            )
        metadata = tooling_field_metadata(label or api_name.removesuffix("__c"), field_type)
        sobject = SOBJECTS[obj]
        body = {"FullName": f"{sobject}.{api_name}", "Metadata": metadata}

        async def create() -> CrmField:
            response = await self.http.request(
                "POST", f"{TOOLING_PATH}/sobjects/CustomField", idempotent=False, json=body
            )
            if response.status_code < 300:
                return await self._described_field(obj, api_name) or _field_from_metadata(api_name, metadata)
            errors = salesforce_errors(response)
            code = _first_code(errors)
            if code == "DUPLICATE_DEVELOPER_NAME":
                existing = await self._described_field(obj, api_name)
                if existing is not None:
                    return existing
                return _field_from_metadata(api_name, metadata)
            message = _short(" ".join(str(e.get("message") or "") for e in errors)) or str(response.status_code)
            if record_error_category(code) is ErrorCategory.PERMISSION or response.status_code == 403:
                raise PermissionRefusedError(
                    f"Salesforce: no permission to create {sobject}.{api_name} ({code or response.status_code}): "
                    + permission_hint(code, sobject, tooling=True),
                    status=response.status_code,
                    code=code,
                )
            raise RequestRejectedError(
                f"Salesforce refused to create {sobject}.{api_name}: {message} ({code or response.status_code})",
                status=response.status_code,
                category=ErrorCategory.VALIDATION,
                code=code,
            )

        async def find() -> CrmField | None:
            return await self._described_field(obj, api_name)

        return await write_or_reconcile(create, find, what=f"Salesforce: creating {sobject}.{api_name}")

    async def _described_field(self, obj: RecordObject, api_name: str) -> CrmField | None:
        """The field as a fresh describe of ``obj`` shows it to the integration user, or ``None``."""
        return next((f for f in await self.list_fields(obj) if f.name.lower() == api_name.lower()), None)

    async def keep_note(self, obj: RecordObject, crm_id: str, text: str) -> bool:
        """Attach the record's social note (what no field carries) unless one of its notes already says exactly
        that; True when a note was added (a Note, or a Task in an org without Notes, as ``add_note``).

        Raises:
            NotFoundError: for an id that is not a Salesforce id, or an org with neither Note nor Task.
            RequestRejectedError: when Salesforce refuses the note.
        """
        if not _RECORD_ID.match(crm_id):
            raise NotFoundError(f"{crm_id!r} is not a Salesforce id")
        wanted = " ".join(text.split())
        kinds = [self._note_object] if self._note_object else list(NOTE_OBJECTS)
        for kind in kinds:
            body, parent = ("Body", "ParentId") if kind == "Note" else ("Description", "WhoId")
            soql = (
                f"SELECT Id, {body} FROM {kind} WHERE {parent} = {soql_quote(crm_id)} "
                f"ORDER BY CreatedDate DESC LIMIT {NOTES_COMPARED}"
            )
            try:
                rows = await self._query_all(soql)
            except (NotFoundError, RequestRejectedError):
                continue  # no such object in this org: add_note finds the kind it has
            if any(" ".join(str(row.get(body) or "").split()) == wanted for row in rows):
                return False
            break
        await self.add_note(obj, crm_id, text)
        return True

    # -- change stamps of our writes --
    async def _read_write_stamps(self, obj: RecordObject, items: Sequence[_Pending]) -> None:
        """Give each written record its ``SystemModstamp`` right after the write, the stamp the change query pages by.

        sObject Collections answers carry no stamp, so it is read back: one ``SELECT Id, SystemModstamp ... WHERE
        Id IN (...)`` per 200 records, in parallel. ``LastModifiedById`` being the integration user would not do:
        flows and other tools running as that user would pass for the app's own writes. The writes are done
        whatever this read meets: a record left without a stamp is merged again by the next pull, nothing worse.
        """
        written = [
            item for item in items
            if item.result is not None and item.result.crm_id
            and item.result.outcome in (RecordOutcome.CREATED, RecordOutcome.UPDATED)
        ]
        if not written:
            return
        queries = [
            f"SELECT Id, SystemModstamp FROM {SOBJECTS[obj]} WHERE Id IN "
            f"({', '.join(soql_quote(str(item.result.crm_id)) for item in chunk if item.result is not None)})"
            for chunk in chunks(written, COLLECTION_LIMIT)
        ]
        try:
            pages = await gather_or_cancel(self._query_all(soql) for soql in queries)
        except ProviderError as exc:
            logger.warning("Salesforce %s change stamps not read after the write (%s); the next pull merges them",
                           SOBJECTS[obj], exc.category)
            return
        stamps = {str(row.get("Id")): parse_crm_time(row.get("SystemModstamp")) for rows in pages for row in rows}
        for item in written:
            assert item.result is not None
            stamp = stamps.get(str(item.result.crm_id))
            if stamp is not None:
                item.result = replace(item.result, crm_modified_at=stamp)


#: Salesforce's Task Subject and Description lengths.
TASK_SUBJECT_LIMIT = 255
TASK_DESCRIPTION_LIMIT = 32_000
#: How far before a write the look-up after a lost answer reaches (clock skew between this machine and the org).
TASK_LOOKUP_SLACK_SECONDS = 300


def _task_record(entry: TimelineEntry) -> dict[str, Any]:
    """A completed Task for one interaction: WhoId, Subject, ActivityDate, Status, Description."""
    return {
        "attributes": {"type": "Task"},
        "WhoId": entry.crm_id,
        "Subject": _short(entry.subject, TASK_SUBJECT_LIMIT),
        "ActivityDate": entry.occurred_at.astimezone(UTC).date().isoformat(),
        "Status": "Completed",
        "Description": entry.body[:TASK_DESCRIPTION_LIMIT],
    }
