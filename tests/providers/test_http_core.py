"""The shared HTTP core: retries on the first failure only, JSON bodies, kept-alive connections, long pushes."""

from __future__ import annotations

import asyncio
import gc
import json

import httpx
import pytest
import respx

from crm_desktop.providers.errors import TransientError
from crm_desktop.providers.http import (
    LONG_PUSH_RECORDS,
    HttpCore,
    json_or_none,
    long_push_collection,
    with_encoded_json,
)
from crm_desktop.providers.rate import RateBudget, read_salesforce_headers
from crm_desktop.providers.salesforce import classify_salesforce
from crm_desktop.providers.transport import LeanHttpTransport
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.sandbox.server import SandboxServer

INSTANCE = "https://acme.my.salesforce.com"
LIMITS = "/services/data/v61.0/limits"


class RecordingSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def core(base_url: str = INSTANCE, *, concurrency: int = 25, max_attempts: int = 6, **kwargs: object) -> HttpCore:
    return HttpCore(
        "Salesforce",
        base_url,
        classifier=classify_salesforce,
        budget=RateBudget(window_limit=None, window_seconds=1.0, concurrency=concurrency),
        read_headers=read_salesforce_headers,
        max_attempts=max_attempts,
        **kwargs,  # type: ignore[arg-type]
    )


def run_with(http: HttpCore, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        try:
            return await http.request("GET", path)
        finally:
            await http.aclose()

    return asyncio.run(go())


def test_server_errors_back_off_exponentially_with_jitter_then_succeed(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(f"{INSTANCE}{LIMITS}").mock(
        side_effect=[httpx.Response(503), httpx.Response(503), httpx.Response(503), httpx.Response(200, json={})]
    )
    sleep = RecordingSleep()
    response = run_with(core(sleep=sleep), LIMITS)
    assert response.status_code == 200 and route.call_count == 4
    first, second, third = sleep.waits
    assert 0.5 <= first < 1.5 and 1.0 <= second < 2.0 and 2.0 <= third < 3.0


def test_retry_after_is_waited_before_the_second_attempt(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{INSTANCE}{LIMITS}").mock(
        side_effect=[httpx.Response(503, headers={"Retry-After": "7"}), httpx.Response(200, json={})]
    )
    sleep = RecordingSleep()
    assert run_with(core(sleep=sleep), LIMITS).status_code == 200
    assert sleep.waits == [7.0]


@pytest.mark.parametrize("attempts", [1, 3])
def test_attempts_are_bounded_and_the_last_failure_is_raised(respx_mock: respx.MockRouter, attempts: int) -> None:
    route = respx_mock.get(f"{INSTANCE}{LIMITS}").mock(return_value=httpx.Response(503))
    sleep = RecordingSleep()
    with pytest.raises(TransientError):
        run_with(core(sleep=sleep, max_attempts=attempts), LIMITS)
    assert route.call_count == attempts
    assert len(sleep.waits) == attempts - 1


def test_a_query_url_is_built_once_from_an_encoded_query() -> None:
    http = core()
    url = http.query_url("/services/data/v61.0/query", "q=SELECT+Id+FROM+Contact+WHERE+Email+IN+('a@b.com')")
    assert str(url) == f"{INSTANCE}/services/data/v61.0/query?q=SELECT+Id+FROM+Contact+WHERE+Email+IN+('a@b.com')"
    assert url.params["q"] == "SELECT Id FROM Contact WHERE Email IN ('a@b.com')"
    # Built without httpx's parse, it is the URL httpx's parse builds, for encoded and for raw queries alike.
    for query in ("q=SELECT+Id+FROM+Contact+WHERE+Email+IN+('o%27neil%40x.com','b@c.io')", "q=a b", "q=%zz"):
        fast = http.query_url("services/data/v61.0/query", query)
        slow = http.client.base_url.copy_with(raw_path=b"/services/data/v61.0/query?" + query.encode())
        assert (str(fast), fast.raw_path, fast.params) == (str(slow), slow.raw_path, slow.params)
    with pytest.raises(httpx.InvalidURL):
        http.query_url("services/data/v61.0/query", "q=a#b\n")
    asyncio.run(http.aclose())


def test_own_transport_keeps_a_connection_alive_per_slot() -> None:
    http = core(concurrency=40)
    assert isinstance(http.transport, LeanHttpTransport)
    assert http.transport.max_keepalive_connections >= 40
    asyncio.run(http.aclose())


def test_a_freed_slot_sends_the_waiting_request_before_the_answer_is_worked_on() -> None:
    order: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        order.append(f"sent {request.url.params['n']}")
        return httpx.Response(200, json={})

    http = core(concurrency=1, transport=httpx.MockTransport(answer))

    async def one(n: str) -> None:
        await http.request("GET", LIMITS, params={"n": n})
        order.append(f"worked on {n}")

    async def go() -> None:
        try:
            await asyncio.gather(one("a"), one("b"))
        finally:
            await http.aclose()

    asyncio.run(go())
    assert order == ["sent a", "sent b", "worked on a", "worked on b"]


def test_json_bodies_are_encoded_once_compact_and_read_back_whatever_the_charset() -> None:
    body = {"records": [{"LastName": "Müller", "Score": 2.5, "Tags": None}]}
    encoded = with_encoded_json({"json": body, "headers": {"Sforce-Duplicate-Rule-Header": "allowSave=true"}})
    assert "json" not in encoded
    assert encoded["content"] == json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    assert encoded["headers"] == {"Content-Type": "application/json", "Sforce-Duplicate-Rule-Header": "allowSave=true"}
    assert with_encoded_json({"params": {"a": 1}}) == {"params": {"a": 1}}
    assert json_or_none(httpx.Response(200, content=encoded["content"])) == body
    latin_1 = {"content-type": "application/json; charset=latin-1"}
    latin = httpx.Response(200, content='{"name": "Jos\xe9"}'.encode("latin-1"), headers=latin_1)
    assert json_or_none(latin) == {"name": "José"}
    assert json_or_none(httpx.Response(502, content=b"<html>Bad gateway</html>")) is None


@pytest.mark.loopback
def test_keep_alive_connections_are_reused_over_real_loopback() -> None:
    sandbox = SalesforceSandbox(SandboxConfig())
    token = sandbox.credentials()["accessToken"]
    with SandboxServer([sandbox]):

        async def go() -> list[int]:
            http = core(sandbox.base_url, headers={"Authorization": f"Bearer {token}"})
            connects = 0
            try:
                statuses = []
                for _ in range(3):
                    batch = await asyncio.gather(*(http.request("GET", LIMITS) for _ in range(5)))
                    statuses += [response.status_code for response in batch]
                connects = http.transport.idle_connections()
            finally:
                await http.aclose()
            return [*statuses, connects]

        *statuses, connections = asyncio.run(go())
    assert statuses == [200] * 15
    # Fifteen requests, five at a time, on at most five kept-alive connections.
    assert 1 <= connections <= 5


def test_a_long_push_freezes_what_exists_for_its_duration_and_nests() -> None:
    assert gc.get_freeze_count() == 0
    with long_push_collection(10):
        assert gc.get_freeze_count() == 0, "a short push leaves the collector alone"
    with long_push_collection(LONG_PUSH_RECORDS) as freeze_built:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        built = [[n] for n in range(100)]
        freeze_built()
        assert gc.get_freeze_count() >= frozen + len(built)
        frozen = gc.get_freeze_count()
        with long_push_collection(LONG_PUSH_RECORDS * 2):
            assert gc.get_freeze_count() == frozen, "a second push at once freezes nothing more"
        assert gc.get_freeze_count() == frozen, "the first push is still running"
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), long_push_collection(LONG_PUSH_RECORDS):
        raise RuntimeError("a push that fails still gives the objects back")
    assert gc.get_freeze_count() == 0
