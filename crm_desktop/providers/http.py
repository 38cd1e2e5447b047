"""The one HTTP core of the three adapters: response classification, retries, rate budget and pagination."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
)

from crm_desktop.domain.models import check_base_url
from crm_desktop.domain.outcomes import ErrorCategory
from crm_desktop.providers.errors import (
    AuthError,
    ConfigurationError,
    NotFoundError,
    PermissionRefusedError,
    ProviderError,
    RateLimitError,
    RequestRejectedError,
    TransientError,
)
from crm_desktop.providers.network import NetworkSettings, explain_connect_failure, proxy_gateway_failure
from crm_desktop.providers.rate import RateBudget, RateObservation, Sleep, retry_after_seconds

logger = logging.getLogger(__name__)


class Decision(StrEnum):
    """What to do with a response."""

    OK = "ok"
    RETRY = "retry"
    REFRESH_THEN_RETRY = "refresh_then_retry"
    RATE_LIMITED = "rate_limited"
    RECORD_FAILURE = "record_failure"
    FATAL = "fatal"


@dataclass(frozen=True)
class Verdict:
    """One decision about one response, as a value.

    Attributes:
        decision: what happens next.
        category: the error category, for failures.
        wait: seconds the CRM asked to wait (``Retry-After``, window reset).
        code: the vendor's error code (``DUPLICATES_DETECTED``, ``VALIDATION_ERROR``...).
        reason: a short sentence without customer data.
    """

    decision: Decision
    category: ErrorCategory | None = None
    wait: float | None = None
    code: str = ""
    reason: str = ""


OK = Verdict(Decision.OK)

Classifier = Callable[[httpx.Response], Verdict]


def classify_status(response: httpx.Response) -> Verdict:
    """The decision by status code alone; vendors refine it with their error bodies."""
    status = response.status_code
    if status < 400:
        return OK
    if status == 401:
        return Verdict(Decision.FATAL, ErrorCategory.AUTH, reason="the CRM refused the credentials (401)")
    if status == 403:
        return Verdict(
            Decision.FATAL,
            ErrorCategory.PERMISSION,
            reason="the CRM user lacks the permission for this call (403): ask the CRM's admin to grant it",
        )
    if status == 404:
        return Verdict(Decision.FATAL, ErrorCategory.NOT_FOUND, reason="not found (404)")
    if status in (408, 425):
        return Verdict(Decision.RETRY, ErrorCategory.NETWORK, wait=retry_after_seconds(response), reason=f"{status}")
    if status == 409:
        return Verdict(Decision.RECORD_FAILURE, ErrorCategory.DUPLICATE, reason="duplicate (409)")
    if status == 429:
        return Verdict(
            Decision.RATE_LIMITED, ErrorCategory.RATE_LIMIT, wait=retry_after_seconds(response), reason="429"
        )
    if status >= 500:
        return Verdict(Decision.RETRY, ErrorCategory.SERVER, wait=retry_after_seconds(response), reason=f"{status}")
    return Verdict(Decision.RECORD_FAILURE, ErrorCategory.VALIDATION, reason=f"rejected ({status})")


def request_of(response: httpx.Response) -> httpx.Request | None:
    """The request a response answers, or ``None`` for a response built without one (as tests build them)."""
    try:
        return response.request
    except RuntimeError:
        return None


def json_or_none(response: httpx.Response) -> Any:
    """The JSON body, or ``None`` when there is none or it is not JSON."""
    try:
        # JSON is UTF-8 (RFC 8259); orjson reads a 200-record answer several times faster than the standard library.
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        pass
    try:
        # Not UTF-8 after all: decoded by the charset the answer names.
        return json.loads(response.text)
    except ValueError:
        return None


def with_encoded_json(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Request arguments with a ``json=`` body encoded once, by orjson (compact UTF-8, as httpx would send it).

    A whole number past 64 bits (a custom field's value may be any size), which orjson cannot write, is written by
    the standard library instead: the CRM refuses that record's field (out of range) rather than the run stopping.
    """
    if "json" not in kwargs:
        return kwargs
    encoded = dict(kwargs)
    content = encoded.pop("json")
    try:
        body = orjson.dumps(content)
    except orjson.JSONEncodeError:
        body = json.dumps(content, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    encoded["content"] = body
    encoded["headers"] = {"Content-Type": "application/json", **dict(encoded.get("headers") or {})}
    return encoded


class _RetryableFailure(Exception):
    """Internal: a failure tenacity may retry; ``final`` is raised when the retries run out."""

    def __init__(self, final: ProviderError, wait: float | None) -> None:
        super().__init__(str(final))
        self.final = final
        self.wait = wait


class AmbiguousWriteError(TransientError):
    """A write's connection failed after it was sent, or the CRM answered it with a server error (500, 502, 504): it
    may or may not have been made.

    The adapter reconciles (looks the records up again) before it writes again, so nothing is duplicated.
    """

    category = ErrorCategory.NETWORK
    #: After a server error: waits before the write is looked up again (given the rounds failed so far); after a
    #: lost connection ``None``: the look-up goes at once.
    pause: Callable[[int], Awaitable[None]] | None = None


#: Server answers after which a write may have been made all the same (an internal error, a gateway that gave up
#: waiting for the CRM); 503 and 429 say the request was not taken, and are replayed as ever.
_MAYBE_DONE = frozenset({500, 502, 504})

#: How long a write the CRM could make twice waits for its answer, however short the request timeout: the CRM goes on
#: with a request whose client gave up (Salesforce runs a collection's triggers and flows to the end), so a look-up
#: sent before it is done finds nothing and the write sent again would land twice.
WRITE_ANSWER_SECONDS = 120.0

_AMBIGUOUS = (httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.WriteError, httpx.WriteTimeout)


#: The characters of a percent-encoded URL path or query: RFC 3986's unreserved and sub-delimiters, and ``%``...
_ENCODED_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*")
#: ...each ``%`` starting an ``%XX`` escape.
_BROKEN_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _is_encoded(text: str) -> bool:
    """Whether ``text`` is a percent-encoded URL path or query (two passes of a regex in C)."""
    return bool(_ENCODED_CHARACTERS.fullmatch(text)) and ("%" not in text or not _BROKEN_ESCAPE.search(text))


def pool_limits(concurrency: int) -> httpx.Limits:
    """Connections for a budget letting ``concurrency`` requests fly at once, every one kept alive.

    httpx keeps 20 alive by default: under a budget of 25 in flight, connections would be closed and opened
    again all through a long push. The budget's slots keep requests from queueing for a connection; two spare
    ones cover a connection still closing while its slot's next request opens another.
    """
    return httpx.Limits(
        max_connections=concurrency + 2, max_keepalive_connections=concurrency, keepalive_expiry=30.0
    )


class HttpCore:
    """One long-lived ``httpx.AsyncClient`` per integration, with auth, retries, budget and classification.

    Attributes:
        name: the CRM, for logs.
        client: the HTTP client (TLS verified; plain http only to loopback).
        transport: its transport (httpx's own, with a pool sized for the budget's concurrency, unless a test or
            the sandbox passed one); requests through a proxy go by the proxy's own transport.
        budget: the integration's rate budget.
        calls: requests sent, retries included.
        rate_limited: 429 answers seen.
        error_responses: answers of 400 and above seen (retried ones included), for the API error rate.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        classifier: Classifier,
        budget: RateBudget,
        read_headers: Callable[[httpx.Headers], RateObservation],
        auth: httpx.Auth | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        network: NetworkSettings | None = None,
        timeout: float = 30.0,
        max_attempts: int = 6,
        max_retry_seconds: float = 300.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        try:
            safe_url = check_base_url(base_url)
        except ValueError as exc:
            raise ConfigurationError(f"{name} base URL refused: {exc}") from None
        self.name = name
        self.classifier = classifier
        self.budget = budget
        self._read_headers = read_headers
        self.max_attempts = max_attempts
        self.max_retry_seconds = max_retry_seconds
        self._sleep = sleep
        self.calls = 0
        self.rate_limited = 0
        self.error_responses = 0
        # The proxies and trusted certificates of the workspace (the OS trust store, the environment's proxies
        # when it sets none); a transport passed in (the in-process sandbox of tests) replaces them.
        routes: dict[str, Any] = (
            {"transport": transport}
            if transport is not None
            else (network or NetworkSettings()).client_options(pool_limits(budget.concurrency))
        )
        self.transport: httpx.AsyncBaseTransport = routes["transport"]
        self.client = httpx.AsyncClient(
            base_url=safe_url,
            auth=auth,
            headers={"User-Agent": "crm-desktop/0.1", **(headers or {})},
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            follow_redirects=False,
            **routes,
        )
        self._write_timeout = httpx.Timeout(
            timeout, connect=min(10.0, timeout), read=max(timeout, WRITE_ANSWER_SECONDS)
        )
        self.client.event_hooks["request"].append(self._count_request)
        self.client.event_hooks["response"].append(self._observe_response)

    def move_to(self, base_url: str) -> None:
        """Send the following requests to ``base_url``: the CRM serves the account from another address now (a
        Salesforce org moved to another instance).

        Raises:
            ConfigurationError: when the address is refused (plain http off loopback, no host...).
        """
        try:
            safe_url = check_base_url(base_url)
        except ValueError as exc:
            raise ConfigurationError(f"{self.name} base URL refused: {exc}") from None
        self.client.base_url = httpx.URL(safe_url)

    async def _count_request(self, request: httpx.Request) -> None:
        self.calls += 1

    async def _observe_response(self, response: httpx.Response) -> None:
        self.budget.observe(self._read_headers(response.headers))
        if response.status_code >= 400:
            self.error_responses += 1
        if response.status_code == 429:
            self.rate_limited += 1

    def query_url(self, path: str, query: str) -> httpx.URL:
        """``path?query`` on the base URL, ``query`` already percent-encoded.

        A long query (a SOQL ``IN`` list) is then parsed once, instead of being encoded and checked again by
        ``params=``.
        """
        base = self.client.base_url
        full_path = base.raw_path.decode("ascii") + path.lstrip("/")
        reference = getattr(base, "_uri_reference", None)
        if _is_encoded(full_path) and _is_encoded(query) and hasattr(reference, "_replace"):
            # Already encoded, as this check proves in one regex pass: skip httpx's parse, which checks a
            # 6,000-character SOQL URL character by character in Python (a tenth of a push's client time).
            url = httpx.URL(base)
            url._uri_reference = reference._replace(path=full_path, query=query)  # type: ignore[union-attr]
            return url
        return base.copy_with(raw_path=(full_path + "?" + query).encode("ascii"))

    async def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        idempotent: bool = True,
        budget: RateBudget | None = None,
        classifier: Classifier | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request with retries; return the response when it is OK or a record-level failure.

        Args:
            method: HTTP method.
            url: path relative to the base URL, or a full URL on the same host.
            idempotent: ``False`` for writes that would duplicate if replayed; such a write waits for its answer
                at least :data:`WRITE_ANSWER_SECONDS`, and a connection lost after it was sent raises
                :class:`AmbiguousWriteError` instead of replaying it.
            budget: another budget than the integration's (e.g. HubSpot search's own 4/s).
            classifier: another classifier for this call.
            **kwargs: passed to ``httpx.AsyncClient.request`` (json, params, data, headers).

        Raises:
            AuthError: credentials refused and not refreshable.
            PermissionRefusedError: the credentials' user or app lacks a permission (never retried).
            RateLimitError: still rate limited when retries ran out; BudgetExhaustedError when the daily
                budget is at its reserve.
            TransientError: network or server failure that outlived its retries.
            NotFoundError: 404.
        """
        chosen_budget = budget or self.budget
        chosen_classifier = classifier or self.classifier
        started = time.monotonic()
        # Encoded once, before any slot is taken, and sent as it is again by every retry.
        kwargs = with_encoded_json(kwargs)
        try:
            # Most requests succeed first time: only a retryable failure pays for building the retry loop.
            return await self._attempt(method, url, idempotent, chosen_budget, chosen_classifier, kwargs)
        except _RetryableFailure as failure:
            if self.max_attempts <= 1:
                self._log_gave_up(method, url, started, failure)
                raise failure.final from None
            first_failure = failure

        def wait(state: RetryCallState) -> float:
            failure = state.outcome.exception() if state.outcome else None
            # Attempt 1 of this loop is the request's second: the first failed before the loop began.
            return _retry_wait(failure if isinstance(failure, _RetryableFailure) else None, state.attempt_number + 1)

        await self._sleep(_retry_wait(first_failure, 1))
        seconds_left = max(0.0, self.max_retry_seconds - (time.monotonic() - started))
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_RetryableFailure),
            stop=stop_after_attempt(self.max_attempts - 1) | stop_after_delay(seconds_left),
            wait=wait,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(method, url, idempotent, chosen_budget, chosen_classifier, kwargs)
        except _RetryableFailure as exhausted:
            self._log_gave_up(method, url, started, exhausted)
            raise exhausted.final from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _pause_for(self, asked: float | None) -> Callable[[int], Awaitable[None]]:
        """The wait before a write is looked up again after a server error: what the server asked for, else the
        backoff any retry gets, on this core's clock."""

        async def pause(failed_rounds: int) -> None:
            await self._sleep(max(asked, 0.05) if asked is not None else _backoff(failed_rounds))

        return pause

    def _log_gave_up(self, method: str, url: str | httpx.URL, started: float, failure: _RetryableFailure) -> None:
        logger.warning(
            "%s %s %s gave up after %.1fs: %s", self.name, method, _path(url), time.monotonic() - started, failure.final
        )

    async def _attempt(
        self,
        method: str,
        url: str | httpx.URL,
        idempotent: bool,
        budget: RateBudget,
        classifier: Classifier,
        kwargs: dict[str, Any],
    ) -> httpx.Response:
        # Built before a slot is taken: no request has to wait behind the work of building this one.
        if not idempotent:
            kwargs = {**kwargs, "timeout": self._write_timeout}
        request = self.client.build_request(method, url, **kwargs)
        await budget.acquire()
        try:
            response = await self.client.send(request)
        except httpx.TransportError as exc:
            refused = explain_connect_failure(exc, request.url, self.name)
            if refused is not None:
                raise refused from None
            kind = type(exc).__name__
            if not idempotent and isinstance(exc, _AMBIGUOUS):
                raise AmbiguousWriteError(
                    f"{self.name}: the connection failed after a write was sent ({kind}); reconciling"
                ) from None
            reason = proxy_gateway_failure(exc, request.url) or f"network failure ({kind})"
            failure = TransientError(f"{self.name}: {reason}", category=ErrorCategory.NETWORK)
            raise _RetryableFailure(failure, None) from None
        finally:
            budget.release()
        # The request waiting for the slot just freed goes out before this answer is worked on, not after.
        await asyncio.sleep(0)
        verdict = classifier(response)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s %s -> %s %s", self.name, method, _path(url), response.status_code, verdict.decision)
        if verdict.decision in (Decision.OK, Decision.RECORD_FAILURE):
            return response
        await response.aread()
        if verdict.decision is Decision.RETRY:
            if not idempotent and response.status_code in _MAYBE_DONE:
                # A gateway or server error can come after the CRM made the write: replaying it could make the
                # record twice, so the adapter looks it up first, as after a lost connection.
                maybe_done = AmbiguousWriteError(
                    f"{self.name}: the CRM answered {response.status_code} to a write it may have made; reconciling"
                )
                maybe_done.pause = self._pause_for(verdict.wait)
                raise maybe_done
            raise _RetryableFailure(
                TransientError(
                    f"{self.name}: {verdict.reason or 'server error'}",
                    status=response.status_code,
                    category=verdict.category or ErrorCategory.SERVER,
                ),
                verdict.wait,
            )
        if verdict.decision is Decision.RATE_LIMITED:
            wait = verdict.wait if verdict.wait is not None else budget.window_seconds
            budget.rate_limited(wait)
            raise _RetryableFailure(
                RateLimitError(f"{self.name}: rate limited ({verdict.reason})", retry_after=wait), wait
            )
        message = f"{self.name}: {verdict.reason or f'request failed ({response.status_code})'}"
        if verdict.category is ErrorCategory.AUTH or verdict.decision is Decision.REFRESH_THEN_RETRY:
            raise AuthError(message + "; reconnect the integration", status=response.status_code)
        if verdict.category is ErrorCategory.PERMISSION:
            raise PermissionRefusedError(message, status=response.status_code, code=verdict.code)
        if verdict.category is ErrorCategory.NOT_FOUND:
            raise NotFoundError(message, status=response.status_code)
        if verdict.category is ErrorCategory.RATE_LIMIT:
            raise RateLimitError(message, status=response.status_code, retry_after=verdict.wait)
        raise RequestRejectedError(message, status=response.status_code, category=verdict.category, code=verdict.code)

    async def aclose(self) -> None:
        """Close the client and its connections."""
        await self.client.aclose()


def _retry_wait(failure: _RetryableFailure | None, failed_attempts: int) -> float:
    """The wait after ``failed_attempts`` tries: what the server asked for (Retry-After), else exponential backoff
    with jitter from half a second, at most 30 s (computed here: tenacity 9 deprecates wait_exponential_jitter's
    ``initial`` and 8.x lacks its replacement ``multiplier``; a warning fails the strict test suite)."""
    if failure is not None and failure.wait is not None:
        return max(failure.wait, 0.05)
    return _backoff(failed_attempts)


def _backoff(failed_attempts: int) -> float:
    """Exponential backoff with jitter from half a second, at most 30 s."""
    return min(30.0, 0.5 * float(2 ** (failed_attempts - 1))) + random.uniform(0, 1.0)


def _path(url: str | httpx.URL) -> str:
    """The path of a URL without its query (queries can hold emails)."""
    return url.path if isinstance(url, httpx.URL) else url.split("?", 1)[0]
