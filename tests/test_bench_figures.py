"""How the push benchmark reads a sandbox's request log into figures (the benchmark itself is run by hand)."""

from __future__ import annotations

import pytest

from bench.push_throughput import _arrival_rate, _whole_windows_rate, log_facts


def waves(slots: int, period: float, count: int, start: float = 0.0) -> list[float]:
    """Arrivals of ``slots`` requests at once, every ``period`` seconds: a concurrency limit kept full."""
    return [start + period * (n // slots) for n in range(count)]


@pytest.mark.parametrize("phase", [0.0, 0.03, 0.07, 0.099])
def test_the_steady_rate_of_requests_that_come_in_waves_is_the_rate_of_the_waves(phase: float) -> None:
    # 25 slots every 101 ms is 247.5 requests/s, wherever the steady span happens to start and end.
    arrivals = [at for at in waves(25, 0.101, 500) if at >= 1.0 - phase]
    rate = _arrival_rate(arrivals)
    assert rate == pytest.approx(25 / 0.101, rel=0.02)
    # Count over span would say otherwise: the last wave counts in full but adds no time to the span.
    assert len(arrivals) / (arrivals[-1] - (1.0 - phase)) > 25 / 0.101 * 1.015


def test_a_log_gives_its_steady_rate_after_the_first_window_and_its_429s() -> None:
    entries = [
        ("POST", "/services/data/v61.0/composite/sobjects", 429 if n == 30 else 200, at, at, 0.1)
        for n, at in enumerate(waves(25, 0.101, 751))
    ]
    facts = log_facts(entries, 1.0, 25)
    assert facts.requests == 751 and facts.rate_limited == 1 and facts.rate_limited_steady == 0
    assert facts.steady_request_rate == pytest.approx(247.5, rel=0.02)
    assert facts.endpoints == {"POST /services/data/v61.0/composite/sobjects": 751}
    assert _arrival_rate([1.0, 1.0]) is None


def test_the_steady_rate_under_a_window_limit_counts_whole_windows() -> None:
    # HubSpot-like: 186 requests spread over the first 1.9 s of every 10 s window (a client keeping 4 of 190 spare).
    arrivals = [window * 10.0 + 1.9 * n / 186 for window in range(3) for n in range(186)][:400]
    entries = [("POST", "/crm/v3/objects/contacts/batch/upsert", 200, at, at, 0.1) for at in arrivals]
    facts = log_facts(entries, 10.0)
    assert facts.steady_request_rate == pytest.approx(18.6)
    assert _whole_windows_rate([], 10.0, 10.0) is None
