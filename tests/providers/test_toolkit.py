"""The adapters' shared toolkit: gathering, chunks, email keys, CRM times, stacked budgets, cursors, safe writes."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from crm_desktop.domain.models import SocialPlatform, SocialProfile
from crm_desktop.domain.outcomes import ErrorCategory, RecordOutcome
from crm_desktop.providers.contract import OutboundRecord, RecordResult
from crm_desktop.providers.errors import ProviderError, RequestRejectedError
from crm_desktop.providers.http import AmbiguousWriteError
from crm_desktop.providers.rate import RateBudget
from crm_desktop.providers.toolkit import (
    ChangeCursor,
    FieldCache,
    StackedBudget,
    checked_email,
    chunks,
    distinct_email_keys,
    email_key,
    epoch_millis,
    gather_or_cancel,
    match_landed,
    one_line,
    paginate,
    parse_crm_time,
    read_date,
    read_date_time,
    results_in_order,
    rows_by_email,
    same_instant,
    social_profile_values,
    utc_millis,
    utc_seconds,
    write_or_reconcile,
)

# -- gather_or_cancel ----------------------------------------------------------------------------------------------


def test_gather_returns_results_in_order() -> None:
    async def value(number: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return number

    assert asyncio.run(gather_or_cancel([value(1, 0.02), value(2, 0.0), value(3, 0.01)])) == [1, 2, 3]


def test_gather_cancels_siblings_on_first_failure_and_raises_it_as_itself() -> None:
    finished: list[str] = []
    cancelled: list[str] = []

    async def slow(name: str) -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise
        finished.append(name)
        return name

    async def failing() -> str:
        await asyncio.sleep(0)
        raise RequestRejectedError("refused")

    async def main() -> None:
        with pytest.raises(RequestRejectedError, match="refused"):
            await gather_or_cancel([slow("a"), failing(), slow("b")])
        # The siblings were cancelled and had finished cancelling when the error reached the caller.
        assert sorted(cancelled) == ["a", "b"]
        assert finished == []

    asyncio.run(asyncio.wait_for(main(), timeout=5))


# -- chunks ---------------------------------------------------------------------------------------------------------


def test_chunks_keep_order_and_size() -> None:
    assert chunks(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert chunks([], 3) == []
    with pytest.raises(ValueError):
        chunks([1], 0)


# -- email keys -----------------------------------------------------------------------------------------------------


def test_email_keys() -> None:
    assert email_key("  Ada@Example.COM ") == "ada@example.com"
    assert email_key("ada@example.com") == "ada@example.com"
    assert email_key(None) == "" and email_key("   ") == ""
    assert email_key("Not An Email") == "not an email"  # kept (lower-cased) so the CRM's answer can name it
    assert checked_email("ada@example.com") == "ada@example.com"
    with pytest.raises(ValueError):
        checked_email("no-at-sign")


# -- social profiles -----------------------------------------------------------------------------------------------


def test_first_profile_per_network_fills_its_field_and_the_rest_go_to_the_note() -> None:
    profiles = [
        SocialProfile(platform=SocialPlatform.TWITTER, username="ada", followers=100, engagement=2.345),
        SocialProfile(platform=SocialPlatform.TWITTER, username="ada_alt", followers=5, engagement=1.0),
        SocialProfile(platform=SocialPlatform.LINKEDIN, username="ada-l", followers=7, engagement=4.0),
        SocialProfile(platform=SocialPlatform.TIKTOK, username="ada_t", followers=3, engagement=9.876),
    ]
    values, unmapped = social_profile_values(profiles, lambda name: f"{name}__c")
    assert values == {
        "twitter_username__c": "ada",
        "linkedin_url__c": "https://www.linkedin.com/in/ada-l",
        "social_followers__c": 115,
        "social_engagement_score__c": 9.88,
    }
    assert [p.username for p in unmapped] == ["ada_alt", "ada_t"]
    assert social_profile_values([], str) == ({}, [])


def test_profiles_without_an_engagement_send_no_engagement_score() -> None:
    # A profile holds engagement 0 when nothing gave it one (a file without the column): no score is made up.
    profiles = [SocialProfile(platform=SocialPlatform.TWITTER, username="ada", followers=1200)]
    values, _ = social_profile_values(profiles, lambda name: f"{name}__c")
    assert values == {"twitter_username__c": "ada", "social_followers__c": 1200}


# -- CRM times ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-15T12:00:00.000+0000",  # Salesforce
        "2026-01-15T12:00:00.000Z",  # HubSpot
        "2026-01-15T12:00:00Z",  # Pipedrive v2
        "2026-01-15 12:00:00",  # Pipedrive v1 (UTC)
        "2026-01-15T13:00:00+01:00",
        "1768478400000",  # HubSpot epoch milliseconds
        1768478400000,
    ],
)
def test_every_crm_time_shape_reads_as_the_same_utc_moment(text: object) -> None:
    moment = parse_crm_time(text)
    assert moment == datetime(2026, 1, 15, 12, tzinfo=UTC)
    assert moment is not None and moment.utcoffset() is not None and moment.tzinfo is UTC


@pytest.mark.parametrize("text", [None, "", "   ", "yesterday", True, "2026-13-45T00:00:00Z"])
def test_unreadable_times_are_none(text: object) -> None:
    assert parse_crm_time(text) is None


def test_utc_millis() -> None:
    assert utc_millis(datetime(2026, 1, 15, 13, 0, 0, 123456, tzinfo=UTC)) == "2026-01-15T13:00:00.123Z"


# -- stacked budget -------------------------------------------------------------------------------------------------


class OrderedBudget(RateBudget):
    """A budget that notes when it is taken and given back."""

    def __init__(self, name: str, log: list[str], **kwargs: object) -> None:
        super().__init__(window_limit=None, window_seconds=1.0, concurrency=1)
        self.name = name
        self.log = log

    async def acquire(self) -> None:
        self.log.append(f"take {self.name}")
        await super().acquire()

    def release(self) -> None:
        self.log.append(f"give {self.name}")
        super().release()


class LoggedStack(StackedBudget):
    def __init__(self, shared: RateBudget, log: list[str]) -> None:
        super().__init__(shared, window_limit=None, window_seconds=1.0, concurrency=1)
        self.log = log

    async def acquire(self) -> None:
        self.log.append("take own")
        await super().acquire()

    def release(self) -> None:
        super().release()
        self.log.append("gave own")


def test_stacked_budget_takes_its_own_room_then_the_shared_and_gives_back_in_reverse() -> None:
    log: list[str] = []
    shared = OrderedBudget("shared", log)
    search = LoggedStack(shared, log)

    async def main() -> None:
        await search.acquire()
        search.release()

    asyncio.run(main())
    assert log == ["take own", "take shared", "give shared", "gave own"]


def test_stacked_budgets_in_one_order_never_deadlock() -> None:
    """Searches and plain requests racing for one shared slot and one search slot all get through."""
    shared = RateBudget(window_limit=None, window_seconds=1.0, concurrency=1)
    search = StackedBudget(shared, window_limit=None, window_seconds=1.0, concurrency=1)
    done: list[str] = []

    async def request(budget: RateBudget, name: str) -> None:
        await budget.acquire()
        await asyncio.sleep(0)
        budget.release()
        done.append(name)

    async def main() -> None:
        work = [request(search if n % 2 else shared, f"r{n}") for n in range(40)]
        await asyncio.wait_for(asyncio.gather(*work), timeout=5)

    asyncio.run(main())
    assert len(done) == 40
    assert shared.slots.taken == 0 and search.slots.taken == 0


def test_stacked_budget_gives_its_own_room_back_when_the_shared_one_refuses() -> None:
    shared = RateBudget(window_limit=None, window_seconds=1.0, concurrency=1, daily_reserve=10)
    shared.daily_remaining = 5  # below the reserve: the shared budget refuses
    search = StackedBudget(shared, window_limit=None, window_seconds=1.0, concurrency=1)

    async def main() -> None:
        with pytest.raises(ProviderError, match="stopped early"):
            await search.acquire()

    asyncio.run(main())
    assert search.slots.taken == 0


# -- change cursor --------------------------------------------------------------------------------------------------


def test_change_cursor_skips_what_it_delivered_and_redelivers_a_new_version() -> None:
    cursor = ChangeCursor()
    at = datetime(2026, 3, 1, 10, 0, 5, tzinfo=UTC)
    assert cursor.is_new(at, "5")
    cursor.advance(at, "2026-03-01T10:00:05Z", "5", "d1")
    cursor.advance(at, "2026-03-01T10:00:05Z", "6", "")
    resumed = ChangeCursor.read(cursor.text(), "Pipedrive")
    assert resumed.text() == "2026-03-01T10:00:05Z|5:d1,6"
    assert resumed.stamp == "2026-03-01T10:00:05Z"  # given back to the CRM exactly as it wrote it
    assert not resumed.is_new(at, "5", "d1")
    assert resumed.is_new(at, "5", "d2")  # edited again within the same second
    assert not resumed.is_new(at, "6")
    assert resumed.is_new(at, "7")
    assert not resumed.is_new(datetime(2026, 3, 1, 10, 0, 4, tzinfo=UTC), "8")
    later = datetime(2026, 3, 1, 10, 0, 6, tzinfo=UTC)
    assert resumed.is_new(later, "5", "d1")
    resumed.advance(later, "2026-03-01T10:00:06Z", "9")
    assert resumed.text() == "2026-03-01T10:00:06Z|9"
    resumed.advance(at, "2026-03-01T10:00:05Z", "10")  # older than the cursor: no step back
    assert resumed.text() == "2026-03-01T10:00:06Z|9"


def test_change_cursor_from_nothing_and_refusal() -> None:
    assert ChangeCursor.read(None, "HubSpot").text() == ""
    assert ChangeCursor.starting_at(datetime(2026, 3, 1, tzinfo=UTC)).text() == "2026-03-01T00:00:00.000Z|"
    with pytest.raises(ProviderError, match="HubSpot change cursor cannot be read"):
        ChangeCursor.read("not a cursor", "HubSpot")


# -- paginate -------------------------------------------------------------------------------------------------------


def test_paginate_follows_the_cursor_to_the_end() -> None:
    pages = {None: ([1, 2], "b"), "b": ([3], "c"), "c": ([4], None)}

    async def fetch(cursor: str | None) -> tuple[list[int], str | None]:
        return pages[cursor]

    async def main() -> list[int]:
        return [item async for items, _ in paginate(fetch) for item in items]

    assert asyncio.run(main()) == [1, 2, 3, 4]


def test_paginate_stops_on_a_repeated_cursor() -> None:
    pages = {None: ([1], "b"), "b": ([2], "c"), "c": ([3], "b")}
    fetched: list[str | None] = []

    async def fetch(cursor: str | None) -> tuple[list[int], str | None]:
        fetched.append(cursor)
        return pages[cursor]

    async def main() -> None:
        with pytest.raises(ProviderError, match="same page cursor twice"):
            async for _ in paginate(fetch):
                pass

    asyncio.run(main())
    assert fetched == [None, "b", "c"]  # never fetched "b" a second time


# -- write_or_reconcile ---------------------------------------------------------------------------------------------


class FlakyCrm:
    """A CRM whose connection fails after the write is sent, ``lost`` times; each write lands when ``lands``."""

    def __init__(self, lost: int, *, lands: bool) -> None:
        self.lost = lost
        self.lands = lands
        self.records: list[str] = []
        self.calls: list[str] = []

    async def write(self, name: str) -> str:
        self.calls.append("write")
        if self.lost:
            self.lost -= 1
            if self.lands:
                self.records.append(name)
            raise AmbiguousWriteError("connection lost after sending")
        self.records.append(name)
        return f"id-{len(self.records)}"

    async def find(self, name: str) -> str | None:
        self.calls.append("find")
        return f"id-{self.records.index(name) + 1}" if name in self.records else None


def test_a_write_that_landed_is_found_and_not_sent_again() -> None:
    crm = FlakyCrm(lost=1, lands=True)
    result = asyncio.run(write_or_reconcile(lambda: crm.write("ada"), lambda: crm.find("ada"), what="create ada"))
    assert result == "id-1"
    assert crm.records == ["ada"]
    assert crm.calls == ["write", "find"]


def test_a_write_that_did_not_land_is_looked_up_before_each_new_send() -> None:
    crm = FlakyCrm(lost=2, lands=False)
    result = asyncio.run(write_or_reconcile(lambda: crm.write("ada"), lambda: crm.find("ada"), what="create ada"))
    assert result == "id-1" and crm.records == ["ada"]
    assert crm.calls == ["write", "find", "write", "find", "write"]


def test_never_two_writes_without_a_look_up_between_and_gives_up_after_the_rounds() -> None:
    crm = FlakyCrm(lost=10, lands=False)
    with pytest.raises(AmbiguousWriteError, match="nothing was written twice"):
        asyncio.run(write_or_reconcile(lambda: crm.write("ada"), lambda: crm.find("ada"), what="create ada", rounds=3))
    assert crm.calls == ["write", "find", "write", "find", "write", "find"]
    assert all(a != b or a == "find" for a, b in zip(crm.calls, crm.calls[1:], strict=False))


def test_other_failures_are_not_reconciled() -> None:
    calls: list[str] = []

    async def write() -> str:
        calls.append("write")
        raise RequestRejectedError("invalid")

    async def find() -> str | None:
        calls.append("find")
        return None

    with pytest.raises(RequestRejectedError):
        asyncio.run(write_or_reconcile(write, find, what="create"))
    assert calls == ["write"]


# -- email look-ups, times, field lists, results ---------------------------------------------------------------------


def test_distinct_email_keys_normalise_drop_blanks_and_keep_the_first_order() -> None:
    emails = [" Ada@Example.com", "", None, "grace@example.com", "ada@example.com", "   "]
    assert distinct_email_keys(emails) == ["ada@example.com", "grace@example.com"]
    assert distinct_email_keys(["B", "a", "B"], str) == ["B", "a"]


def test_utc_seconds_and_epoch_millis_write_a_time_as_pipedrive_and_hubspot_compare_it() -> None:
    moment = datetime(2026, 1, 15, 13, 0, 1, 987_000, tzinfo=UTC)
    assert utc_seconds(moment) == "2026-01-15T13:00:01Z"
    assert epoch_millis(moment) == 1_768_482_001_987
    assert parse_crm_time(str(epoch_millis(moment))) == moment


def test_a_field_cache_reads_once_while_requests_wait_and_again_when_asked() -> None:
    reads: list[str] = []

    async def read(key: str) -> list[str]:
        reads.append(key)
        await asyncio.sleep(0.01)
        return [f"{key}-{len(reads)}"]

    async def scenario() -> None:
        cache: FieldCache[str, list[str]] = FieldCache(read)
        assert cache.held("contacts") is None and "contacts" not in cache
        first, second = await asyncio.gather(cache.get("contacts"), cache.get("contacts"))
        assert first == second == ["contacts-1"] and reads == ["contacts"]
        assert await cache.get("contacts", fresh=True) == ["contacts-2"]
        cache.put("contacts", ["made"])
        assert await cache.get("contacts") == ["made"]
        cache.forget("contacts")
        assert await cache.get("contacts") == ["contacts-3"]

    asyncio.run(scenario())


def test_results_in_order_fail_a_record_the_answer_left_out_instead_of_losing_it() -> None:
    records = [OutboundRecord("a@example.com", {}), OutboundRecord("b@example.com", {})]
    done = RecordResult("a@example.com", RecordOutcome.CREATED, "1")
    assert results_in_order([done, None], records, "HubSpot") == [
        done,
        RecordResult(
            "b@example.com",
            RecordOutcome.FAILED,
            category=ErrorCategory.SERVER,
            message="b@example.com: HubSpot's answer held no result for this record",
        ),
    ]


# -- text and rows ---------------------------------------------------------------------------------------------------


def test_one_line_collapses_spacing_and_cuts_long_text_with_an_ellipsis() -> None:
    assert one_line("  Call\n back \t soon ") == "Call back soon"
    assert one_line("abcd", 4) == "abcd"
    assert one_line("abcdef", 4) == "abc…"
    assert len(one_line("x" * 500)) == 240


def test_rows_by_email_keys_rows_by_normalised_email_and_keeps_the_first() -> None:
    rows = [
        {"Id": "1", "Email": "Jo@Example.COM"},
        {"Id": "2", "Email": "jo@example.com"},
        {"Id": "3", "Email": None},
        {"Id": "4", "Email": "Not An Email"},
    ]
    assert rows_by_email(rows) == {"jo@example.com": rows[0], "not an email": rows[3]}
    assert rows_by_email([{"email": "Ann@Example.com"}], "email") == {"ann@example.com": {"email": "Ann@Example.com"}}


def test_match_landed_gives_each_found_record_to_one_waiting_write_in_order() -> None:
    keys = ["a", "b", "a", "c"]
    found = [("a", "t1"), ("a", "t2"), ("c", "t3"), ("z", "t4")]
    assert match_landed([0, 1, 2, 3], keys.__getitem__, found) == {0: "t1", 2: "t2", 3: "t3"}
    # Two writes alike and one record found: only the first write is matched; the other is sent again.
    assert match_landed([0, 2], keys.__getitem__, [("a", "t1")]) == {0: "t1"}


# -- date-times in a file's or a CRM's text -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        # Zoned: as written, whatever the desktop's zone.
        ("2026-12-03T09:00Z", datetime(2026, 12, 3, 9, tzinfo=UTC)),
        ("2026-12-03t09:00:00z", datetime(2026, 12, 3, 9, tzinfo=UTC)),
        ("2026-12-03T09:00:00.000+0000", datetime(2026, 12, 3, 9, tzinfo=UTC)),
        ("2026-12-03T11:30:00.250+02:30", datetime(2026, 12, 3, 9, 0, 0, 250_000, tzinfo=UTC)),
        ("2026-12-03 04:00-05", datetime(2026, 12, 3, 9, tzinfo=UTC)),
        # No zone: the desktop's local time (Berlin), daylight saving time included.
        ("2026-12-03T10:00", datetime(2026, 12, 3, 9, tzinfo=UTC)),
        (" 2026-12-03 10:00:00 ", datetime(2026, 12, 3, 9, tzinfo=UTC)),
        ("2026-07-01 08:30:15.5", datetime(2026, 7, 1, 6, 30, 15, 500_000, tzinfo=UTC)),
        # A date alone: local midnight.
        ("2026-12-03", datetime(2026, 12, 2, 23, tzinfo=UTC)),
    ],
)
def test_read_date_time_reads_iso_text_with_a_naive_time_in_the_local_zone(
    berlin: None, text: str, instant: datetime
) -> None:
    moment = read_date_time(text)
    assert moment.tzinfo is not None and moment == instant


def test_read_date_time_keeps_an_aware_datetime_and_reads_a_naive_one_as_local(berlin: None) -> None:
    aware = datetime(2026, 12, 3, 10, tzinfo=timezone(timedelta(hours=-3)))
    assert read_date_time(aware) is aware
    assert read_date_time(datetime(2026, 12, 3, 10)) == datetime(2026, 12, 3, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    ["tomorrow", "", "03/12/2026 10:00", "2026-12-03T25:00", "2026-13-03", "2026-12-03T10", "20261203T1000",
     "2026-W49-4", "2026-12-03 10:00 CET", "1733216400", 1733216400, None, True],
)
def test_read_date_time_refuses_anything_but_iso_text(value: object) -> None:
    with pytest.raises(ValueError) as refused:
        read_date_time(value)
    assert str(refused.value) == f"{value!r} is not a date and time (YYYY-MM-DD hh:mm, a zone optional)"


def test_same_instant_needs_a_crm_time_and_compares_to_the_millisecond(berlin: None) -> None:
    held = "2026-12-03T09:00:00.000+0000"  # as Salesforce answers a date-time
    assert same_instant("2026-12-03 10:00", held)
    assert same_instant("2026-12-03T09:00:00.000Z", held)
    assert same_instant("2026-12-03T10:00:00.0004+01:00", held)  # below the millisecond Salesforce keeps
    assert same_instant("2026-12-03", "2026-12-02T23:00:00.000+0000")  # local midnight, as it was sent
    assert not same_instant("2026-12-03T10:00:00.001+01:00", held)
    assert not same_instant("2026-12-03 09:00", held)  # 08:00 UTC in Berlin
    assert not same_instant("tomorrow", held)
    assert not same_instant(None, held)
    # A CRM's date alone is no instant (dates compare as text), nor is text that is no date-time.
    assert not same_instant("2026-12-03", "2026-12-03")
    assert not same_instant("2026-12-03T00:00", "2026-12-03")
    assert not same_instant("2026-12-03 10:00", "soon")


def test_read_date_takes_an_iso_date_only() -> None:
    assert read_date("2026-12-03") == "2026-12-03"
    assert read_date(" 2026-02-28 ") == "2026-02-28"
    assert read_date(date(2026, 12, 3)) == "2026-12-03"
    # Day or month first is not guessed, nor a time dropped, nor other ISO 8601 forms taken.
    for value in ["05/12/2026", "2026-02-30", "2026-12-03T10:00", "20261203", "2026-W49-4", "", None, 20261203,
                  datetime(2026, 12, 3, 10)]:
        with pytest.raises(ValueError) as refused:
            read_date(value)
        assert str(refused.value) == f"{value!r} is not a date (YYYY-MM-DD)"
