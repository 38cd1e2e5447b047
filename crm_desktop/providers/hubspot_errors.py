"""HubSpot's error bodies: the decision table for its answers, refused properties, scopes and duplicate ids."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx

from crm_desktop.domain.outcomes import ErrorCategory
from crm_desktop.providers import errors
from crm_desktop.providers.http import OK, Decision, Verdict, classify_status, json_or_none
from crm_desktop.providers.rate import retry_after_seconds

#: HubSpot's rolling rate window; a 429 that says neither how long nor which policy waits for one.
WINDOW_SECONDS = 10.0

_PROPERTY_PROBLEMS = re.compile(r"Property values were not valid:\s*(\[.*\])", re.DOTALL)
_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")


def body_of(response: httpx.Response) -> dict[str, Any]:
    """HubSpot's JSON object answer; ``{}`` when the body is none or not an object."""
    data = json_or_none(response)
    return data if isinstance(data, dict) else {}


def answered(response: httpx.Response, what: str) -> dict[str, Any]:
    """The JSON body of a success about ``what``.

    Raises:
        RequestRejectedError: naming ``what`` and HubSpot's reason, with its category, when HubSpot refused it.
    """
    if response.status_code >= 400:
        category, message = record_failure(body_of(response), response.status_code, what)
        raise errors.RequestRejectedError(named_once(message), status=response.status_code, category=category)
    return body_of(response)


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


def required_scopes(body: dict[str, Any]) -> list[str]:
    """The scopes a refusal's body names as required (granular and classic)."""
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


def named_once(message: str) -> str:
    """``HubSpot: <message>`` for a message shown without its record's context, unless it names HubSpot already
    (``already exists in HubSpot``)."""
    return message if "HubSpot" in message else f"HubSpot: {message}"


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


_EXPIRED_TOKEN = "the token has expired and a private-app token cannot be refreshed"


def classify_hubspot(response: httpx.Response) -> Verdict:
    """HubSpot's decision table: auth, scopes, the two rate-limit policies, conflicts, validation, server errors."""
    status = response.status_code
    if status < 400:
        return OK
    body = body_of(response)
    category = str(body.get("category") or "")
    if status == 401:
        expired = category == "EXPIRED_AUTHENTICATION"
        return Verdict(
            Decision.REFRESH_THEN_RETRY if expired else Decision.FATAL,
            ErrorCategory.AUTH,
            code=category or "INVALID_AUTHENTICATION",
            reason=_EXPIRED_TOKEN if expired else "the private-app token was refused (401)",
        )
    if status == 403:
        scopes = required_scopes(body)
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
                reason="the daily API limit is used up; sync again after midnight in the account's time zone",
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
        wait, reason = retry_after_seconds(response), f"server error ({status})"
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

def record_gone(error: dict[str, Any], status: int | None) -> bool:
    """Whether a refused batch input names a record HubSpot no longer has (deleted, or no such id)."""
    category = str(error.get("category") or "")
    return category == "OBJECT_NOT_FOUND" or (not category and status == 404)


def classify_batch_update(response: httpx.Response) -> Verdict:
    """A batch update refused as a whole because a record in it is gone is a record failure, so the batch is split
    until that record stands alone; any other answer is decided as :func:`classify_hubspot` decides it."""
    if response.status_code == 404 and str(body_of(response).get("category") or "") == "OBJECT_NOT_FOUND":
        return Verdict(
            Decision.RECORD_FAILURE, ErrorCategory.NOT_FOUND, code="OBJECT_NOT_FOUND", reason="not found (404)"
        )
    return classify_hubspot(response)
