"""Pipedrive's answers read as decisions: its error envelope, its 403s and 429s, and the API tokens each call costs."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import httpx

from crm_desktop.domain.outcomes import ErrorCategory
from crm_desktop.providers import errors
from crm_desktop.providers.http import OK, Decision, Verdict, classify_status, json_or_none, request_of
from crm_desktop.providers.rate import RateBudget, retry_after_seconds

#: How long to back off when Pipedrive answers an HTML 403 (its block after a client kept hammering past a 429).
BLOCKED_WAIT_SECONDS = 60.0
#: ``Verdict.code`` of a refusal because the company's daily token budget is spent.
DAILY_BUDGET_CODE = "DAILY_BUDGET_SPENT"

_TAG = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"\s+")
_FIELD_BEFORE_COLON = re.compile(r"^(?:Validation failed:\s*)?(?P<field>[A-Za-z_][\w.\[\]]*)(?:\s*\([^)]*\))?\s*:")
_QUOTED_PARAMETER = re.compile(r"[Pp]arameter '(?P<field>[\w.\[\]]+)'")

#: Token cost of a v2 call; v1 calls cost twice as much (Pipedrive's published costs).
_V2_TOKEN_COSTS = {"get": 1, "list": 10, "create": 5, "update": 5, "search": 20, "delete": 3}
#: Calls whose cost the OpenAPI files give apart from their kind's (``x-token-cost``): v2 pipelines and stages
#: lists, 5; a v1 persons merge, 40.
_SPECIAL_TOKEN_COSTS = {("GET", "/api/v2/pipelines"): 5, ("GET", "/api/v2/stages"): 5}
_MERGE_COST = 40


def token_cost(method: str, path: str) -> int:
    """The API tokens one call spends (v2: get 1, list 10, create/update 5, search 20, delete 3; v1 twice that;
    the pipelines and stages lists 5, a persons merge 40)."""
    path = path.split("?", 1)[0]
    special = _SPECIAL_TOKEN_COSTS.get((method.upper(), path.rstrip("/")))
    if special is not None:
        return special
    if method.upper() == "PUT" and path.startswith("/v1/") and path.rstrip("/").endswith("/merge"):
        return _MERGE_COST
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


def plain_text(markup: str) -> str:
    """Pipedrive's HTML (a note, an error text) as plain text: no tags, entities decoded, runs of spaces as one."""
    return _SPACES.sub(" ", html.unescape(_TAG.sub(" ", markup))).strip()


def pipedrive_error(body: Any) -> str:
    """The ``error`` text of Pipedrive's envelope (``''`` when none), without markup, at most 300 characters."""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    text = error if isinstance(error, str) else ""
    if not text and isinstance(body.get("error_info"), str):
        text = body["error_info"]
    return plain_text(text)[:300]


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


#: The shared core puts "Pipedrive: " in front of a reason: it does not name Pipedrive again.
_TOKEN_REFUSED = "the API token was refused (401); copy the current one from Personal preferences > API"


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
                reason="requests are blocked for a while after too many were sent (403)",
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

    field: str | None = None

    @classmethod
    def of(cls, response: httpx.Response, humanise: Callable[[str], str]) -> RecordRejectedError:
        """The refusal an error answer holds: its error text (field keys made names by ``humanise``), its
        category, code and field."""
        error = pipedrive_error(json_or_none(response))
        verdict = classify_pipedrive(response)
        refused = cls(
            humanise(error) or f"rejected ({response.status_code})",
            status=response.status_code,
            category=verdict.category or ErrorCategory.VALIDATION,
            code=verdict.code,
        )
        refused.field = rejected_field(error)
        return refused


#: Errors that stop a whole push: nothing after them would be let through either.
FATAL_ERRORS = (
    errors.AuthError,
    errors.PermissionRefusedError,
    errors.BudgetExhaustedError,
    errors.ConfigurationError,
)


class TokenMeter:
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
