"""The rate budget's pacing: a rolling window a little under the limit, even pacing, and the 429 penalty."""

from __future__ import annotations

import asyncio
import itertools

from crm_desktop.providers.rate import (
    EVEN_PACING_CATCH_UP,
    ROLLING_WINDOW_MARGIN_SECONDS,
    RateBudget,
    RateObservation,
    RequestSlots,
)


class FakeTime:
    """A clock that only moves when the budget sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def send_times(budget: RateBudget, time: FakeTime, count: int) -> list[float]:
    """When each of ``count`` requests, sent one after the other, got past the budget."""

    async def main() -> list[float]:
        times = []
        for _ in range(count):
            await budget.acquire()
            times.append(time.now)
            budget.release()
        return times

    return asyncio.run(main())


def test_a_rolling_window_sends_a_burst_then_waits_for_the_oldest_to_leave() -> None:
    time = FakeTime()
    budget = RateBudget(window_limit=100, window_seconds=10, concurrency=4, clock=time.clock, sleep=time.sleep)
    times = send_times(budget, time, 200)
    assert budget.effective_limit == 98
    assert times[97] == 0.0 and times[98] > 9.9
    assert max(sum(1 for t in times if start <= t < start + 10) for start in times) <= 98


def test_even_pacing_spreads_the_window_and_catches_up_after_a_late_wake_up() -> None:
    time = FakeTime()
    budget = RateBudget(
        window_limit=120, window_seconds=2, concurrency=16, clock=time.clock, sleep=time.sleep, even_pacing=True
    )
    times = send_times(budget, time, 240)
    gap = 2 / 117
    # A few come at once (the catch-up allowance), then one every gap; never more than the window allows.
    assert times[: EVEN_PACING_CATCH_UP + 1] == [0.0] * (EVEN_PACING_CATCH_UP + 1)
    steady = [b - a for a, b in itertools.pairwise(times[10:100])]
    assert min(steady) > gap * 0.99 and max(steady) < gap * 1.01
    assert max(sum(1 for t in times if start <= t < start + 2) for start in times) <= 117

    # A request that comes late (the process was busy) may be followed at once by up to the catch-up allowance.
    time.now += 5 * gap
    caught_up = send_times(budget, time, EVEN_PACING_CATCH_UP + 2)
    assert caught_up[: EVEN_PACING_CATCH_UP + 1] == [caught_up[0]] * (EVEN_PACING_CATCH_UP + 1)
    assert caught_up[-1] > caught_up[0]


def test_each_429_holds_every_request_and_keeps_one_more_of_each_window_unspent() -> None:
    time = FakeTime()
    budget = RateBudget(window_limit=20, window_seconds=2, concurrency=4, clock=time.clock, sleep=time.sleep)
    assert budget.effective_limit == 19
    budget.rate_limited(1.5)
    assert budget.effective_limit == 18
    assert send_times(budget, time, 1) == [1.5]
    for _ in range(10):
        budget.rate_limited(0)
    assert budget.effective_limit == 20 - 1 - 2  # the penalty stops at a tenth of the window


def test_a_full_rolling_window_without_a_reset_time_waits_for_its_oldest_request_not_a_whole_window() -> None:
    time = FakeTime()
    budget = RateBudget(window_limit=190, window_seconds=10, concurrency=4, clock=time.clock, sleep=time.sleep)
    send_times(budget, time, 3)
    time.now = 9.9
    # The CRM counted our requests a little after we sent them: its window is still full (no reset time given).
    budget.observe(RateObservation(window_limit=190, window_remaining=0, window_seconds=10.0))
    (resumed,) = send_times(budget, time, 1)
    assert resumed == 10.0 + ROLLING_WINDOW_MARGIN_SECONDS, "a moment after the oldest request (sent at 0) left"
    # With nothing of ours in the window there is nothing to time by: a whole window.
    fresh = RateBudget(window_limit=190, window_seconds=10, concurrency=4, clock=time.clock, sleep=time.sleep)
    fresh.observe(RateObservation(window_limit=190, window_remaining=0, window_seconds=10.0))
    start = time.now
    (first,) = send_times(fresh, time, 1)
    assert first == start + 10.0
    # A reset time from the CRM wins over both.
    timed = RateBudget(window_limit=120, window_seconds=2, concurrency=4, clock=time.clock, sleep=time.sleep)
    timed.observe(RateObservation(window_limit=120, window_remaining=0, window_seconds=2.0, reset_after=0.7))
    start = time.now
    (first,) = send_times(timed, time, 1)
    assert first == start + 0.7


def test_request_slots_go_to_the_longest_waiter_not_to_a_newcomer() -> None:
    async def go() -> list[str]:
        slots = RequestSlots(2)
        got: list[str] = []

        async def wait(name: str) -> None:
            await slots.take()
            got.append(name)

        await slots.take()
        await slots.take()
        first, second = asyncio.ensure_future(wait("first")), asyncio.ensure_future(wait("second"))
        await asyncio.sleep(0)
        slots.give_back()
        # The freed slot is already the first waiter's: a newcomer queues behind the second.
        late = asyncio.ensure_future(wait("late"))
        await asyncio.sleep(0)
        slots.give_back()
        await asyncio.gather(first, second)
        assert slots.taken == 2 and not late.done()
        slots.give_back()
        await late
        slots.give_back()
        slots.give_back()
        assert slots.taken == 0
        return got

    assert asyncio.run(go()) == ["first", "second", "late"]


def test_a_task_waiting_for_a_slot_that_is_cancelled_passes_a_slot_it_was_just_handed() -> None:
    async def go() -> None:
        slots = RequestSlots(1)
        await slots.take()
        handed, left = asyncio.ensure_future(slots.take()), asyncio.ensure_future(slots.take())
        await asyncio.sleep(0)
        slots.give_back()  # to ``handed``...
        handed.cancel()  # ...cancelled before it ran: the slot goes on to ``left``
        await left
        assert handed.cancelled() and slots.taken == 1
        waiting = asyncio.ensure_future(slots.take())
        await asyncio.sleep(0)
        waiting.cancel()  # cancelled while in line: it leaves the line
        await asyncio.gather(waiting, return_exceptions=True)
        slots.give_back()
        assert slots.taken == 0

    asyncio.run(go())
