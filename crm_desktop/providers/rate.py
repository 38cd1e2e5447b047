"""Proactive rate budgets: a client-side window, a concurrency limit and the daily budget, corrected by headers."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from crm_desktop.first_come_slots import FirstComeSlots
from crm_desktop.providers.contract import Quota
from crm_desktop.providers.errors import BudgetExhaustedError

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

#: With even pacing, how many gaps a request may come early to make up for a late wake-up of the one before.
EVEN_PACING_CATCH_UP = 3


@dataclass(frozen=True)
class RateObservation:
    """What one response's headers said about the budget (every part optional).

    Attributes:
        window_limit: requests allowed per window.
        window_remaining: requests left in the current window.
        window_seconds: the window's length.
        reset_after: seconds until the window resets.
        daily_limit: requests (or tokens) allowed per day.
        daily_remaining: requests (or tokens) left today.
    """

    window_limit: int | None = None
    window_remaining: int | None = None
    window_seconds: float | None = None
    reset_after: float | None = None
    daily_limit: int | None = None
    daily_remaining: int | None = None


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def read_hubspot_headers(headers: httpx.Headers) -> RateObservation:
    """``X-HubSpot-RateLimit-Max/-Remaining/-Interval-Milliseconds/-Daily/-Daily-Remaining``."""
    interval = _int(headers.get("x-hubspot-ratelimit-interval-milliseconds"))
    return RateObservation(
        window_limit=_int(headers.get("x-hubspot-ratelimit-max")),
        window_remaining=_int(headers.get("x-hubspot-ratelimit-remaining")),
        window_seconds=interval / 1000 if interval else None,
        daily_limit=_int(headers.get("x-hubspot-ratelimit-daily")),
        daily_remaining=_int(headers.get("x-hubspot-ratelimit-daily-remaining")),
    )


def read_pipedrive_headers(headers: httpx.Headers) -> RateObservation:
    """``x-ratelimit-limit/-remaining/-reset`` (2-second window) and the daily token headers."""
    daily_remaining = _int(
        headers.get("x-daily-requests-left")
        or headers.get("x-daily-ratelimit-remaining")
        or headers.get("x-daily-token-remaining")
    )
    return RateObservation(
        window_limit=_int(headers.get("x-ratelimit-limit")),
        window_remaining=_int(headers.get("x-ratelimit-remaining")),
        window_seconds=2.0 if headers.get("x-ratelimit-limit") else None,
        reset_after=float(headers["x-ratelimit-reset"]) if _int(headers.get("x-ratelimit-reset")) is not None else None,
        daily_limit=_int(headers.get("x-daily-ratelimit-limit") or headers.get("x-daily-token-limit")),
        daily_remaining=daily_remaining,
    )


_SFORCE_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


def read_salesforce_headers(headers: httpx.Headers) -> RateObservation:
    """``Sforce-Limit-Info: api-usage=10018/100000`` (daily only; Salesforce has no burst window)."""
    match = _SFORCE_USAGE.search(headers.get("sforce-limit-info", ""))
    if not match:
        return RateObservation()
    used, limit = int(match.group(1)), int(match.group(2))
    return RateObservation(daily_limit=limit, daily_remaining=max(0, limit - used))


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The wait a response asks for: ``Retry-After`` in seconds or as an HTTP date."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


#: Added to a wait for a rolling window's oldest request to leave it: the CRM saw it arrive after it was sent.
ROLLING_WINDOW_MARGIN_SECONDS = 0.25


class RequestSlots(FirstComeSlots):
    """Requests allowed in flight at once, each freed slot handed straight to the request that waited longest."""


class RateBudget:
    """The request budget of one integration (or one endpoint family, e.g. HubSpot search).

    Before each request it waits for a free concurrency slot and for room in a client-side rolling window set
    a little under the CRM's limit, so the steady state earns no 429. Each response's headers correct the
    window limit (the CRM's real plan) and the daily budget; when the daily budget left falls to the reserve,
    requests stop with :class:`BudgetExhaustedError` instead of burning the rest.

    A CRM that counts in fixed windows (Pipedrive) sees a burst that straddles its window boundary twice, so there
    the budget paces requests evenly (``even_pacing``) instead of sending the window's worth at once. Each 429 the
    CRM still answers makes the budget keep one more request of the window unspent (up to a tenth of it).

    Attributes:
        window_limit: the CRM's requests per window (``None``: no window).
        window_seconds: the window's length.
        concurrency: requests in flight at most.
        daily_reserve: daily calls to keep unspent.
        even_pacing: whether requests are spread evenly over the window.
    """

    def __init__(
        self,
        *,
        window_limit: int | None,
        window_seconds: float,
        concurrency: int,
        daily_reserve: int = 0,
        margin: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        even_pacing: bool = False,
    ) -> None:
        self.window_limit = window_limit
        self.window_seconds = window_seconds
        self.concurrency = concurrency
        self.daily_reserve = daily_reserve
        self.even_pacing = even_pacing
        self._margin = margin
        #: Extra requests per window kept unspent because the CRM answered 429 anyway.
        self._penalty = 0
        #: With even pacing: when the next request is due on the ideal timeline.
        self._paced_until = 0.0
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        #: The concurrency slots.
        self.slots = RequestSlots(concurrency)
        self._window_lock = asyncio.Lock()
        self._blocked_until = 0.0
        # Time a fake (instant) sleep skipped, so waits still move the budget's clock on in tests.
        self._skipped = 0.0
        self.daily_limit: int | None = None
        self.daily_remaining: int | None = None
        self.window_remaining: int | None = None
        self.waited_seconds = 0.0
        self._in_flight = 0

    @property
    def effective_limit(self) -> int | None:
        """Requests per window the client allows itself: the limit less a small safety margin."""
        if self.window_limit is None:
            return None
        spare = max(1, math.ceil(self.window_limit * self._margin)) + self._penalty
        return max(1, self.window_limit - spare)

    async def acquire(self) -> None:
        """Wait for a slot and room in the window; raise when the daily budget is at its reserve.

        Requests already in flight count against the daily budget too, so parallel requests cannot overshoot it.
        """
        self._check_daily()
        await self.slots.take()
        try:
            await self._wait_for_window()
            self._check_daily()
        except BaseException:
            self.slots.give_back()
            raise
        self._in_flight += 1

    def _check_daily(self) -> None:
        if self.daily_remaining is not None and self.daily_remaining - self._in_flight <= self.daily_reserve:
            raise BudgetExhaustedError(
                f"stopped early: only {self.daily_remaining} API calls are left today "
                f"(keeping {self.daily_reserve} in reserve)",
                status=None,
            )

    def release(self) -> None:
        """The request admitted by :meth:`acquire` is done; free its concurrency slot."""
        self._in_flight = max(0, self._in_flight - 1)
        self.slots.give_back()

    async def _wait_for_window(self) -> None:
        async with self._window_lock:
            while True:
                now = self._now()
                if now < self._blocked_until:
                    await self._pause(self._blocked_until - now)
                    continue
                limit = self.effective_limit
                if limit is None:
                    return
                while self._sent and self._sent[0] <= now - self.window_seconds:
                    self._sent.popleft()
                if len(self._sent) < limit:
                    if self.even_pacing:
                        # One request per gap on an ideal timeline; a late wake-up may catch up a few gaps, so
                        # sleeping's overshoot does not slow the pace (the rolling window still caps any window).
                        gap = self.window_seconds / limit
                        earliest = self._paced_until - EVEN_PACING_CATCH_UP * gap
                        if now < earliest:
                            await self._pause(earliest - now)
                            continue
                        self._paced_until = max(self._paced_until, now) + gap
                    self._sent.append(now)
                    return
                await self._pause(self._sent[0] + self.window_seconds - now + 0.001)

    def _now(self) -> float:
        return self._clock() + self._skipped

    async def _pause(self, seconds: float) -> None:
        self.waited_seconds += seconds
        before = self._clock()
        await self._sleep(seconds)
        # With a fake sleep the clock barely moves: count the wait as passed instead of spinning on it.
        self._skipped += max(0.0, seconds - (self._clock() - before))

    def observe(self, seen: RateObservation) -> None:
        """Correct the budget from what a response's headers said."""
        if seen.window_limit is not None and seen.window_limit > 0 and seen.window_limit != self.window_limit:
            logger.info("rate window corrected from the CRM's headers: %s -> %s", self.window_limit, seen.window_limit)
            self.window_limit = seen.window_limit
        if seen.window_seconds:
            self.window_seconds = seen.window_seconds
        if seen.window_remaining is not None:
            self.window_remaining = seen.window_remaining
            if seen.window_remaining <= 0:
                self.block_for(seen.reset_after if seen.reset_after is not None else self._until_a_request_leaves())
        if seen.daily_limit is not None:
            self.daily_limit = seen.daily_limit
        if seen.daily_remaining is not None:
            self.daily_remaining = seen.daily_remaining

    def _until_a_request_leaves(self) -> float:
        """How long until the oldest request this client sent in the window leaves it (a CRM whose rolling window
        is full but names no reset time): a moment after, not a whole window.

        The CRM counts a request when it arrives, a little after it was sent, so the wait carries a margin.
        """
        if not self._sent:
            return self.window_seconds
        return max(0.0, self._sent[0] + self.window_seconds - self._now()) + ROLLING_WINDOW_MARGIN_SECONDS

    def block_for(self, seconds: float) -> None:
        """Hold every request for ``seconds`` (after a 429 or an empty window)."""
        self._blocked_until = max(self._blocked_until, self._now() + max(0.0, seconds))

    def rate_limited(self, wait: float) -> None:
        """The CRM refused a request for the window: hold everything for ``wait`` and spend less of each window."""
        self.block_for(wait)
        if self.window_limit is not None and self._penalty < math.ceil(self.window_limit * 0.1):
            self._penalty += 1
            logger.info("rate window 429 answered: keeping %d more requests of each window unspent", self._penalty)

    def quota(self) -> Quota:
        """The budget as last reported."""
        used = None
        if self.daily_limit is not None and self.daily_remaining is not None:
            used = self.daily_limit - self.daily_remaining
        return Quota(
            used=used, limit=self.daily_limit, remaining=self.daily_remaining, window_remaining=self.window_remaining
        )
