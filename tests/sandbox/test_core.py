"""The shared sandbox machinery: fault specs and plans, rate windows, the request log and the control endpoint."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, TypeVar

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from crm_desktop.sandbox.core import (
    REDACTED,
    FaultKind,
    FaultPlan,
    FaultRule,
    FixedWindow,
    RollingWindow,
    Sandbox,
    SandboxClock,
    SandboxConfig,
    WorkTurns,
    non_negative_int,
    parse_fault_spec,
    redact_json,
    redact_query,
)
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox

T = TypeVar("T")


class EchoSandbox(Sandbox):
    """The smallest emulator: one ``/echo`` route and one setting of its own (``echo_limit``)."""

    provider = "echo"

    def __init__(self, config: SandboxConfig | None = None) -> None:
        super().__init__(config)
        self.echo_limit = 10
        self.expired = False
        #: Requests whose work is under way, the most seen at once, and the order their work started in.
        self.working = 0
        self.most_working = 0
        self.started: list[str] = []

    def api_routes(self) -> list[BaseRoute]:
        return [Route("/echo", self._echo, methods=["GET", "POST"])]

    async def _echo(self, request: Request) -> Response:
        work = float(request.query_params.get("work", "0"))
        slices = int(request.query_params.get("slices", "1"))
        self.working += 1
        self.most_working = max(self.most_working, self.working)
        self.started.append(request.query_params.get("n", ""))
        try:
            for part in range(slices):
                if part:
                    # Between two slices of its work an emulator lets the event loop serve the other requests.
                    await asyncio.sleep(0)
                if work:
                    time.sleep(work / slices)  # noqa: ASYNC251 -- stands for the emulator's own CPU time
        finally:
            self.working -= 1
        return JSONResponse({"ok": True})

    def fault_response(self, kind: FaultKind) -> Response:
        return JSONResponse({"fault": kind.value}, status_code=429 if kind is FaultKind.RATE_LIMIT else 503)

    def apply_config(self, changes: dict[str, Any]) -> None:
        if "echo_limit" in changes:
            self.echo_limit = non_negative_int(changes["echo_limit"], "echo_limit")

    def edit_record(self, object_name: str, record_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        raise KeyError(f"{object_name}/{record_id}")

    def credentials(self) -> dict[str, Any]:
        return {}

    def summary(self) -> dict[str, Any]:
        return {}

    def expire_tokens(self) -> None:
        self.expired = True


def against(sandbox: Sandbox, body: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async def go() -> T:
        async with sandbox.client() as client:
            return await body(client)

    return asyncio.run(go())


# -- fault specs -------------------------------------------------------------------------------------------------
def test_fault_spec_reads_probabilities_and_request_numbers() -> None:
    rules = parse_fault_spec(" 5xx:0.05, 429:0.02,reset@3@9,, timeout@1,expire@100,invalid:1 ")
    assert [(rule.kind, rule.probability, rule.at) for rule in rules] == [
        (FaultKind.SERVER_ERROR, 0.05, []),
        (FaultKind.RATE_LIMIT, 0.02, []),
        (FaultKind.CONNECTION_RESET, 0.0, [3, 9]),
        (FaultKind.READ_TIMEOUT, 0.0, [1]),
        (FaultKind.TOKEN_EXPIRY, 0.0, [100]),
        (FaultKind.INVALID_RECORD, 1.0, []),
    ]
    assert all(rule.path is None and rule.remaining is None for rule in rules)
    assert parse_fault_spec("") == []
    assert rules[2].to_json() == {"kind": "reset", "probability": 0.0, "at": [3, 9], "path": None, "remaining": None}


@pytest.mark.parametrize(
    "spec, item",
    [
        ("boom:0.1", "boom:0.1"),
        ("5xx:0.1,5xx:1.5", "5xx:1.5"),
        ("429:-0.1", "429:-0.1"),
        ("reset:often", "reset:often"),
        ("timeout@soon", "timeout@soon"),
        ("5xx", "5xx"),
        ("@3", "@3"),
    ],
)
def test_fault_spec_names_the_item_it_cannot_read(spec: str, item: str) -> None:
    with pytest.raises(ValueError, match="is not KIND:P or KIND@N") as refused:
        parse_fault_spec(spec)
    message = str(refused.value)
    assert repr(item) in message
    assert "kinds: 5xx, 504, 429, reset, timeout, expire, invalid" in message


# -- fault plans -------------------------------------------------------------------------------------------------
def test_fault_plan_fires_on_the_scheduled_numbers_per_kind() -> None:
    plan = FaultPlan([FaultRule(FaultKind.SERVER_ERROR, at=[2, 4]), FaultRule(FaultKind.TOKEN_EXPIRY, at=[1])])
    assert [plan.take(FaultKind.SERVER_ERROR) for _ in range(5)] == [False, True, False, True, False]
    # Each kind counts its own events: the first expiry check is number 1 whatever came before.
    assert [plan.take(FaultKind.TOKEN_EXPIRY) for _ in range(3)] == [True, False, False]
    assert plan.take(FaultKind.INVALID_RECORD) is False
    assert plan.fired == {"5xx": 2, "expire": 1}

    plan.replace([FaultRule(FaultKind.SERVER_ERROR, at=[1])])
    assert plan.take(FaultKind.SERVER_ERROR) is True, "replacing the rules restarts the numbering"


def test_fault_plan_limits_a_rule_to_paths_and_to_a_number_of_firings() -> None:
    plan = FaultPlan([FaultRule(FaultKind.RATE_LIMIT, at=[1, 2, 3], path="/batch/")])
    assert plan.take(FaultKind.RATE_LIMIT, "/crm/v3/objects/contacts") is False
    assert plan.take(FaultKind.RATE_LIMIT, "/crm/v3/objects/contacts/batch/upsert") is True

    plan = FaultPlan([FaultRule(FaultKind.CONNECTION_RESET, probability=1.0, remaining=2)])
    assert [plan.take(FaultKind.CONNECTION_RESET) for _ in range(4)] == [True, True, False, False]
    assert plan.rules[0].remaining == 0

    plan = FaultPlan([FaultRule(FaultKind.READ_TIMEOUT, at=[2])])
    assert [plan.request_fault("/x") for _ in range(3)] == [None, FaultKind.READ_TIMEOUT, None]
    plan.add(FaultRule(FaultKind.SERVER_ERROR, probability=1.0))
    assert plan.request_fault("/x") is FaultKind.SERVER_ERROR


@pytest.mark.parametrize(("kind", "done"), [(FaultKind.READ_TIMEOUT, False), (FaultKind.TIMEOUT_AFTER_DOING, True)])
def test_a_timeout_after_doing_makes_the_write_then_holds_its_answer_as_a_plain_timeout_drops_it(
    kind: FaultKind, done: bool
) -> None:
    # A real CRM finishes a request whose client gave up; the plain ``timeout`` stays a request never done.
    sandbox = HubSpotSandbox(SandboxConfig(faults=[FaultRule(kind, at=[1])]))
    token = sandbox.credentials()["token"]

    async def create(client: httpx.AsyncClient) -> None:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/crm/v3/objects/contacts", headers={"Authorization": f"Bearer {token}"},
                              json={"properties": {"email": "ada@example.com"}})

    against(sandbox, create)
    made = [r.properties.get("email") for r in sandbox._records["contacts"].values()]
    assert made == (["ada@example.com"] if done else [])
    assert [entry.fault for entry in sandbox.requests] == [kind.value]
    assert parse_fault_spec("timeout_after_doing@2")[0].kind is FaultKind.TIMEOUT_AFTER_DOING


def test_fault_plan_by_probability_is_repeatable_for_a_seed() -> None:
    def draws(seed: int) -> list[bool]:
        plan = FaultPlan([FaultRule(FaultKind.SERVER_ERROR, probability=0.25)], seed=seed)
        return [plan.take(FaultKind.SERVER_ERROR) for _ in range(2000)]

    first = draws(7)
    assert first == draws(7)
    assert first != draws(8)
    assert 0.2 < sum(first) / len(first) < 0.3
    never = FaultPlan([FaultRule(FaultKind.SERVER_ERROR, probability=0.0)], seed=7)
    assert not any(never.take(FaultKind.SERVER_ERROR) for _ in range(200))
    always = FaultPlan([FaultRule(FaultKind.SERVER_ERROR, probability=1.0)], seed=7)
    assert all(always.take(FaultKind.SERVER_ERROR) for _ in range(200))


# -- rate windows ------------------------------------------------------------------------------------------------
def test_rolling_window_lets_each_request_leave_the_window_on_its_own() -> None:
    clock = SandboxClock()
    window = RollingWindow(limit=3, seconds=10.0, clock=clock)
    assert window.try_hit() and window.try_hit()
    clock.advance(5)
    assert window.try_hit()
    assert window.try_hit() is False
    assert window.remaining() == 0
    assert 4.5 < window.reset_after() <= 5.0
    clock.advance(5)
    # The two oldest requests have left; the one made at +5 s is still counted.
    assert window.remaining() == 2
    assert window.try_hit() and window.try_hit()
    assert window.try_hit() is False
    clock.advance(10)
    assert window.remaining() == 3 and window.reset_after() == 0.0


def test_fixed_window_resets_every_count_at_the_window_boundary() -> None:
    clock = SandboxClock()
    window = FixedWindow(limit=2, seconds=2.0, clock=clock)
    assert window.try_hit() and window.try_hit()
    assert window.try_hit() is False and window.remaining() == 0
    assert 0 < window.reset_after() <= 2.0
    clock.advance(1.0)
    assert window.try_hit() is False, "the same window, still full"
    clock.advance(window.reset_after())
    assert window.remaining() == 2
    assert window.try_hit()
    clock.advance(4.5)
    assert window.remaining() == 2
    assert window.reset_after() <= 2.0


# -- the request log ---------------------------------------------------------------------------------------------
def test_redaction_helpers_hide_credentials_and_keep_the_rest() -> None:
    assert redact_query("api_token=abc&limit=5&Access_Token=x&flag") == (
        f"api_token={REDACTED}&limit=5&Access_Token={REDACTED}&flag"
    )
    form = "grant_type=refresh_token&client_id=app&client_secret=s3&refresh_token=r1&code_verifier=v"
    assert redact_query(form) == (
        f"grant_type=refresh_token&client_id=app&client_secret={REDACTED}&refresh_token={REDACTED}"
        f"&code_verifier={REDACTED}"
    )
    body = {"tokenKey": "pat-1", "inputs": [{"id": "a@b.com", "properties": {"password": "pw", "city": "Oslo"}}]}
    assert redact_json(body) == {
        "tokenKey": REDACTED,
        "inputs": [{"id": "a@b.com", "properties": {"password": REDACTED, "city": "Oslo"}}],
    }
    assert redact_json([1, "two", None]) == [1, "two", None]


def test_request_log_keeps_secrets_out_of_headers_query_and_bodies() -> None:
    sandbox = EchoSandbox()
    secret = "s3cr3t-VALUE"

    async def body(client: httpx.AsyncClient) -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {secret}", "x-api-token": secret, "Cookie": f"sid={secret}"}
        await client.get("/echo", params={"api_token": secret, "limit": "5"}, headers=headers)
        await client.post("/echo", json={"inputs": [{"id": "fan@example.com"}], "tokenKey": secret})
        await client.post(
            "/echo",
            content=f"grant_type=refresh_token&refresh_token={secret}&client_secret={secret}",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        return list((await client.get("/__sandbox__/requests")).json())

    logged = against(sandbox, body)
    assert secret not in json.dumps(logged)
    get, posted_json, posted_form = logged
    assert get["headers"]["authorization"] == REDACTED and get["headers"]["x-api-token"] == REDACTED
    assert get["headers"]["cookie"] == REDACTED
    assert get["query"] == f"api_token={REDACTED}&limit=5"
    assert (get["method"], get["path"], get["status"], get["number"]) == ("GET", "/echo", 200, 1)
    assert posted_json["body"] == {"inputs": [{"id": "fan@example.com"}], "tokenKey": REDACTED}
    assert posted_form["body"] == f"grant_type=refresh_token&refresh_token={REDACTED}&client_secret={REDACTED}"


def test_request_log_records_faults_and_control_calls_stay_out_of_it() -> None:
    sandbox = EchoSandbox(SandboxConfig(log_bodies=False))

    async def body(client: httpx.AsyncClient) -> list[int]:
        assert (await client.put("/__sandbox__/faults", json={"spec": "5xx@2"})).status_code == 200
        statuses = [(await client.post("/echo", json={"n": n})).status_code for n in range(3)]
        assert (await client.get("/__sandbox__/state")).json()["faultsFired"] == {"5xx": 1}
        return statuses

    assert against(sandbox, body) == [200, 503, 200]
    assert [(entry.number, entry.fault, entry.status) for entry in sandbox.requests] == [
        (1, None, 200),
        (2, "5xx", 503),
        (3, None, 200),
    ]
    assert all(entry.body is None for entry in sandbox.requests)


def test_request_log_says_when_each_request_arrived_and_how_long_its_answer_took() -> None:
    sandbox = EchoSandbox(SandboxConfig(latency_ms=30))

    async def body(client: httpx.AsyncClient) -> None:
        for n in range(2):
            assert (await client.post("/echo", json={"n": n})).status_code == 200

    before = time.time()
    against(sandbox, body)
    first, second = sandbox.requests
    assert before <= first.received <= first.at <= second.received
    # The configured latency is part of each answer's time.
    assert first.seconds >= 0.03 and second.seconds >= 0.03
    assert second.received >= first.received + first.seconds


def test_latency_is_the_answer_time_with_the_emulators_own_work_inside_it() -> None:
    # Times far apart enough that a loaded machine's late wake-ups (tens of milliseconds, seen past 45 ms) cannot
    # move an answer from one model's time to the other's: each upper bound lies halfway between the two.
    latency, work, long_work = 0.5, 0.3, 0.8
    sandbox = EchoSandbox(SandboxConfig(latency_ms=latency * 1000))

    async def body(client: httpx.AsyncClient) -> None:
        for seconds in (work, 0, long_work):
            assert (await client.get("/echo", params={"work": str(seconds)})).status_code == 200

    against(sandbox, body)
    worked, idle, slow = (entry.seconds for entry in sandbox.requests)
    # Work that fits in the latency is answered at the latency, as an idle request is (not a latency + work later).
    assert latency <= worked < latency + work / 2 and latency <= idle < latency + work / 2
    # Work longer than the latency is answered when done, not a latency later.
    assert long_work <= slow < long_work + latency / 2

    # The comparison model: the latency first, then the work.
    before = EchoSandbox(SandboxConfig(latency_ms=latency * 1000, latency_before_work=True))
    against(before, body)
    worked, idle, slow = (entry.seconds for entry in before.requests)
    assert latency + work <= worked < latency + work * 1.5 and latency <= idle < latency + work / 2
    assert latency + long_work <= slow < latency * 1.5 + long_work


def test_the_emulator_works_on_one_request_at_a_time_in_arrival_order() -> None:
    sandbox = EchoSandbox(SandboxConfig(latency_ms=20))

    async def body(client: httpx.AsyncClient) -> list[int]:
        sent = []
        for n in range(5):
            sent.append(asyncio.ensure_future(client.get("/echo", params={"work": "0.005", "slices": 4, "n": n})))
            await asyncio.sleep(0.001)
        return [answer.status_code for answer in await asyncio.gather(*sent)]

    assert against(sandbox, body) == [200] * 5
    # Each request's work is in slices that let the loop run other things; another request's work is not one.
    assert sandbox.most_working == 1
    assert sandbox.started == ["0", "1", "2", "3", "4"]


def test_work_turns_go_first_come_first_served_and_a_cancelled_waiter_passes_its_turn_on() -> None:
    turns = WorkTurns()
    order: list[str] = []

    async def work(name: str, hold: asyncio.Event | None = None) -> None:
        async with turns:
            order.append(name)
            if hold is not None:
                await hold.wait()
            await asyncio.sleep(0)

    async def go() -> None:
        hold = asyncio.Event()
        first = asyncio.ensure_future(work("first", hold))
        await asyncio.sleep(0)
        waiting = [asyncio.ensure_future(work(name)) for name in ("second", "gone", "third")]
        await asyncio.sleep(0)
        waiting[1].cancel()
        hold.set()
        await asyncio.gather(first, waiting[0], waiting[2])
        assert waiting[1].cancelled()
        # Cancelled once its turn was handed over: the turn goes on to the next.
        async with turns:
            late = asyncio.ensure_future(work("late"))
            after = asyncio.ensure_future(work("after"))
            await asyncio.sleep(0)
        late.cancel()
        await after
        assert late.cancelled()
        async with turns:
            order.append("free again")

    asyncio.run(go())
    assert order == ["first", "second", "third", "after", "free again"]


def test_work_turns_cancelled_all_at_once_as_a_server_shutting_down_does_all_end_cancelled() -> None:
    turns = WorkTurns()

    async def work(hold: asyncio.Event | None = None) -> None:
        async with turns:
            if hold is not None:
                await hold.wait()

    async def go() -> list[BaseException | None]:
        working = asyncio.ensure_future(work(asyncio.Event()))
        waiting = [asyncio.ensure_future(work()) for _ in range(2)]
        await asyncio.sleep(0)
        # The request at work leaves first and skips the waiters' cancelled turns before they wake.
        for task in (working, *waiting):
            task.cancel()
        ended = await asyncio.gather(working, *waiting, return_exceptions=True)
        async with turns:
            pass
        return [None if isinstance(end, asyncio.CancelledError) else end for end in ended]

    assert asyncio.run(go()) == [None, None, None]


def test_clock_answers_whole_milliseconds_that_always_move_forward() -> None:
    clock = SandboxClock()
    moments = [clock.now() for _ in range(2_000)]
    assert all(moment.microsecond % 1000 == 0 and moment.tzinfo is not None for moment in moments)
    assert all(later - earlier >= timedelta(milliseconds=1) for earlier, later in pairwise(moments))
    assert abs(moments[0] - datetime.now(UTC)) < timedelta(seconds=5)
    clock.advance(3600)
    assert clock.now() - moments[-1] >= timedelta(minutes=59)


# -- the control endpoint ----------------------------------------------------------------------------------------
def test_config_patch_applies_good_values_and_refuses_bad_ones_with_400() -> None:
    sandbox = EchoSandbox()

    async def body(client: httpx.AsyncClient) -> None:
        good = await client.patch("/__sandbox__/config", json={"latency_ms": "2", "jitter_ms": 0, "echo_limit": 3})
        assert good.status_code == 200
        assert good.json()["latency_ms"] == 2.0 and sandbox.echo_limit == 3
        for change, named in [
            ({"latency_ms": "x"}, "latency_ms"),
            ({"latency_ms": -1}, "latency_ms"),
            ({"jitter_ms": None}, "jitter_ms"),
            ({"hang_seconds": "nan"}, "hang_seconds"),
            ({"hang_seconds": True}, "hang_seconds"),
            ({"echo_limit": 2.5}, "echo_limit"),
            # A bad emulator setting leaves the good base setting beside it unapplied.
            ({"latency_ms": 9, "echo_limit": "many"}, "echo_limit"),
        ]:
            refused = await client.patch("/__sandbox__/config", json=change)
            assert refused.status_code == 400, change
            assert refused.json()["error"].startswith("config not changed: ") and named in refused.json()["error"]
        assert (sandbox.config.latency_ms, sandbox.echo_limit) == (2.0, 3)
        for raw in (b"[1, 2]", b"not json"):
            assert (await client.patch("/__sandbox__/config", content=raw)).status_code == 400

    against(sandbox, body)


@pytest.mark.parametrize(
    "make, change",
    [
        (HubSpotSandbox, {"ten_second_limit": "x"}),
        (HubSpotSandbox, {"ten_second_limit": -5}),
        (HubSpotSandbox, {"daily_limit": 10, "token_lifetime_seconds": "forever"}),
        (SalesforceSandbox, {"daily_api_limit": -1}),
        (SalesforceSandbox, {"token_ttl_calls": "ten"}),
        (SalesforceSandbox, {"custom_fields": "twitter_username__c"}),
        (SalesforceSandbox, {"concurrent_limit": 3, "custom_fields": ["No Spaces Allowed"]}),
        (SalesforceSandbox, {"duplicate_rules": "off"}),
        (PipedriveSandbox, {"burst_limit": "x"}),
        (PipedriveSandbox, {"daily_token_budget": None}),
    ],
)
def test_every_emulator_answers_a_bad_config_value_with_400(
    make: Callable[[], Sandbox], change: dict[str, Any]
) -> None:
    sandbox = make()
    before = sandbox.config.latency_ms

    async def body(client: httpx.AsyncClient) -> httpx.Response:
        return await client.patch("/__sandbox__/config", json={**change, "latency_ms": before + 50})

    refused = against(sandbox, body)
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("config not changed: ")
    assert sandbox.config.latency_ms == before


def test_emulator_settings_are_left_as_they_were_when_one_value_is_refused() -> None:
    hubspot = HubSpotSandbox()
    with pytest.raises(ValueError, match="token_lifetime_seconds"):
        hubspot.apply_config({"daily_limit": 10, "token_lifetime_seconds": -1})
    assert hubspot.daily_limit != 10
    hubspot.apply_config({"ten_second_limit": "190", "search_index_delay_seconds": 0.5})
    assert (hubspot.ten_second_window.limit, hubspot.search_index_delay_seconds) == (190, 0.5)

    salesforce = SalesforceSandbox()
    with pytest.raises(ValueError, match="__c"):
        salesforce.apply_config({"concurrent_limit": 3, "custom_fields": ["Favourite Colour"]})
    assert salesforce.concurrent_limit != 3
    salesforce.apply_config({"concurrent_limit": 3, "token_ttl_seconds": None, "duplicate_rules": False})
    assert (salesforce.concurrent_limit, salesforce.token_ttl_seconds, salesforce.duplicate_rules) == (3, None, False)


def test_clock_faults_and_edits_refuse_unreadable_bodies_with_400() -> None:
    sandbox = EchoSandbox()

    async def body(client: httpx.AsyncClient) -> None:
        moved = await client.post("/__sandbox__/clock", json={"advanceSeconds": 90})
        assert moved.status_code == 200
        for payload in ({"advanceSeconds": "soon"}, {"advanceSeconds": -5}, [90]):
            assert (await client.post("/__sandbox__/clock", json=payload)).status_code == 400
        assert (await client.put("/__sandbox__/faults", content=b"{not json")).status_code == 400
        refused = await client.put("/__sandbox__/faults", json={"spec": "5xx:2"})
        assert refused.status_code == 400 and "'5xx:2'" in refused.json()["error"]
        assert (await client.patch("/__sandbox__/records/contacts/1", content=b"[]")).status_code == 400
        missing = await client.patch("/__sandbox__/records/contacts/1", json={"x": 1})
        assert (missing.status_code, missing.json()) == (404, {"error": "not found: contacts/1"})
        assert (await client.post("/__sandbox__/salesperson/call", content=b"[]")).status_code == 400
        unknown = await client.post("/__sandbox__/salesperson/call", json={})
        assert unknown.status_code == 404 and unknown.json()["error"].startswith("not found: ")

    against(sandbox, body)
    assert sandbox.faults.rules == []
