"""The base of the three CRM adapters: integration, options, one HTTP core with its rate budget, quota and closing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypedDict

import httpx

from crm_desktop.domain.models import Integration
from crm_desktop.providers.auth import TokenSaver
from crm_desktop.providers.contract import AdapterOptions, Quota
from crm_desktop.providers.http import Classifier, HttpCore
from crm_desktop.providers.rate import RateBudget, RateObservation, Sleep


class AdapterWiring(TypedDict, total=False):
    """What the factory (or a test) hands every adapter besides its integration and credentials; all optional.

    Keys:
        transport: an HTTP transport instead of the network's (the in-process sandbox of tests).
        save_tokens: where refreshed tokens are stored (Salesforce's sessions).
        sleep: how the adapter waits (tests pass a fast one).
        options: tuning (rate window, concurrency, daily reserve, retries, network).
        clock: the monotonic clock the rate budget reads.
    """

    transport: httpx.AsyncBaseTransport | None
    save_tokens: TokenSaver | None
    sleep: Sleep
    options: AdapterOptions | None
    clock: Callable[[], float]


class AdapterBase:
    """What every adapter has the same way; a subclass adds only its CRM's wire shapes, errors and batch rules.

    Attributes:
        provider: the CRM's name (``salesforce``, ``hubspot``, ``pipedrive``).
        integration: the integration the adapter serves.
        options: tuning (rate window, concurrency, daily reserve, retries).
        http: the shared HTTP core (auth, retries, classification) of the integration.
    """

    provider: str

    def __init__(
        self,
        integration: Integration,
        wiring: AdapterWiring,
        *,
        name: str,
        base_url: str,
        classifier: Classifier,
        read_headers: Callable[[httpx.Headers], RateObservation],
        auth: httpx.Auth,
        window_limit: int | None,
        window_seconds: float,
        concurrency: int,
        even_pacing: bool = False,
    ) -> None:
        """Build the integration's budget and HTTP core; ``window_limit`` and ``concurrency`` are the CRM's
        defaults, which the options override."""
        self.integration = integration
        self.options = wiring.get("options") or AdapterOptions()
        sleep = self._sleep = wiring.get("sleep", asyncio.sleep)
        clock = self._clock = wiring.get("clock", time.monotonic)
        budget = RateBudget(
            window_limit=self.options.window_limit or window_limit,
            window_seconds=window_seconds,
            concurrency=self.options.concurrency or concurrency,
            daily_reserve=self.options.daily_reserve,
            clock=clock,
            sleep=sleep,
            even_pacing=even_pacing,
        )
        self.http = HttpCore(
            name,
            base_url,
            classifier=classifier,
            budget=budget,
            read_headers=read_headers,
            auth=auth,
            headers={"Accept": "application/json"},
            transport=wiring.get("transport"),
            network=self.options.network,
            timeout=self.options.timeout,
            max_attempts=self.options.max_attempts,
            max_retry_seconds=self.options.max_retry_seconds,
            sleep=sleep,
        )

    @property
    def budget(self) -> RateBudget:
        """The integration's request budget (window, concurrency, daily calls)."""
        return self.http.budget

    def quota(self) -> Quota:
        """The API budget as the CRM last reported it (headers or a limits call)."""
        return self.http.budget.quota()

    @property
    def api_calls(self) -> int:
        """Requests sent so far, retries and token refreshes included."""
        return self.http.calls

    @property
    def api_errors(self) -> int:
        """Answers of 400 and above so far (a retried 503 counts each time)."""
        return self.http.error_responses

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self.http.aclose()
