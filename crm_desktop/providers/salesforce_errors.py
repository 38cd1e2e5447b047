"""Salesforce's error bodies: reading them, the decision for each response, and what to ask an admin for."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import httpx

from crm_desktop.domain.outcomes import ErrorCategory
from crm_desktop.providers.errors import PermissionRefusedError, ProviderError, RequestRejectedError, TransientError
from crm_desktop.providers.http import OK, Decision, Verdict, classify_status, json_or_none, request_of
from crm_desktop.providers.rate import retry_after_seconds
from crm_desktop.providers.toolkit import one_line

#: Wait when the org's concurrent request limit is hit and Salesforce gave no Retry-After.
CONCURRENCY_WAIT_SECONDS = 2.0
#: Why a create fails whose connection died mid-write when Salesforce cannot then be asked whether it landed.
UNCONFIRMED_CREATE = TransientError(
    "the connection failed while creating it and Salesforce could not be asked whether it landed; "
    "the next push finds it if it did",
    category=ErrorCategory.NETWORK,
)

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


def first_error_code(errors: list[dict[str, Any]]) -> str:
    """The first error code of an answer's error items (``''`` without one)."""
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
        return "a field name was refused (INVALID_FIELD): check the field mapping against the org's fields"
    if code == "INVALID_QUERY_LOCATOR":
        return "the query's cursor expired (INVALID_QUERY_LOCATOR); run the pull again"
    return f"a query CRM Desktop built was refused ({code}); this is a bug, please report it"


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
        reason=f"the integration user lacks a permission{what} ({code or 403}): "
        + permission_hint(code, sobject, tooling=tooling),
    )


def classify_salesforce(response: httpx.Response) -> Verdict:
    """The decision for one Salesforce response, from its status and its error body."""
    status = response.status_code
    if status < 300 or status == 304:
        return OK
    errors = salesforce_errors(response)
    code = first_error_code(errors)
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
                reason="the session expired or is invalid (401 INVALID_SESSION_ID)",
            )
        return Verdict(
            Decision.FATAL, ErrorCategory.AUTH, code=code, reason=f"the credentials were refused ({code})"
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
                Decision.FATAL, ErrorCategory.AUTH, code="Bad_OAuth_Token",
                reason="the session was refused (Bad_OAuth_Token)",
            )
        return _permission_verdict(response, code)
    if status == 404:
        return Verdict(Decision.FATAL, ErrorCategory.NOT_FOUND, code=code or "NOT_FOUND", reason="not found (404)")
    if status == 400 and code in FATAL_REQUEST_CODES:
        return Verdict(Decision.FATAL, ErrorCategory.VALIDATION, code=code, reason=_fatal_request_reason(code, errors))
    if status == 400 and code == "invalid_grant":
        return Verdict(
            Decision.FATAL, ErrorCategory.AUTH, code=code, reason="the refresh token was refused (invalid_grant)"
        )
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


def _field_key(name: str) -> str:
    """A field's API name or label reduced to compare one with the other (``Last Name`` and ``LastName``,
    ``Twitter Followers`` and ``Twitter_Followers__c``)."""
    name = name.strip().lower()
    name = name.removesuffix("__c")
    return "".join(ch for ch in name if ch.isalnum())


def _where(fields: list[str], reason: str) -> str:
    """The fields named before a refusal's reason, unless the reason already starts with one of them, as Salesforce
    words most field errors (``Email: invalid email address: ...``, ``Last Name: data value too large: ...``)."""
    if not fields:
        return ""
    lead, colon, _rest = reason.partition(":")
    if colon and _field_key(lead) in {_field_key(field) for field in fields}:
        return ""
    return f"{', '.join(fields)}: "


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
        if code in PERMISSION_RECORD_CODES or code in PERMISSION_ORG_CODES:
            said = one_line(str(item.get("message") or "insufficient access"))
            parts.append(f"{_where(fields, said)}{said} ({code}): {permission_hint(code, sobject)}")
            continue
        if code == "CANNOT_UPDATE_CONVERTED_LEAD":
            reason = "lead was converted; Salesforce no longer lets it be updated"
        else:
            reason = one_line(str(item.get("message") or code))
        parts.append(f"{_where(fields, reason)}{reason} ({code})")
    return category or ErrorCategory.VALIDATION, "; ".join(parts)



def refusal(response: httpx.Response, what: str) -> RequestRejectedError:
    """The error for a refused call about ``what``, naming the error code only (a query's message can quote emails
    back)."""
    code = first_error_code(salesforce_errors(response))
    return RequestRejectedError(
        f"Salesforce refused {what} ({code or response.status_code})",
        status=response.status_code,
        category=record_error_category(code) if code else ErrorCategory.VALIDATION,
        code=code,
    )


def field_creation_refusal(
    response: httpx.Response, errors: list[dict[str, Any]], sobject: str, api_name: str
) -> ProviderError:
    """The error for a refused Tooling API field creation: a permission the admin must grant, or Salesforce's reason."""
    code = first_error_code(errors)
    message = one_line(" ".join(str(e.get("message") or "") for e in errors)) or str(response.status_code)
    if record_error_category(code) is ErrorCategory.PERMISSION or response.status_code == 403:
        return PermissionRefusedError(
            f"Salesforce: no permission to create {sobject}.{api_name} ({code or response.status_code}): "
            + permission_hint(code, sobject, tooling=True),
            status=response.status_code,
            code=code,
        )
    return RequestRejectedError(
        f"Salesforce refused to create {sobject}.{api_name}: {message} ({code or response.status_code})",
        status=response.status_code,
        category=ErrorCategory.VALIDATION,
        code=code,
    )
