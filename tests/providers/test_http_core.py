"""The shared HTTP core: retries on the first failure only, JSON bodies, kept-alive connections, long pushes."""

from __future__ import annotations

import asyncio
import importlib.abc
import json
import sys

import httpx
import pytest
import respx

from crm_desktop.providers.errors import TransientError
from crm_desktop.providers.http import (
    AmbiguousWriteError,
    HttpCore,
    json_or_none,
    with_encoded_json,
)
from crm_desktop.providers.rate import RateBudget, read_salesforce_headers
from crm_desktop.providers.salesforce_errors import classify_salesforce
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


def test_own_transport_is_httpx_s_with_a_kept_alive_connection_per_slot() -> None:
    http = core(concurrency=40)
    assert type(http.transport) is httpx.AsyncHTTPTransport
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
def test_parallel_requests_reach_the_sandbox_over_real_loopback() -> None:
    sandbox = SalesforceSandbox(SandboxConfig())
    token = sandbox.credentials()["accessToken"]
    with SandboxServer([sandbox]):

        async def go() -> list[int]:
            http = core(sandbox.base_url, headers={"Authorization": f"Bearer {token}"})
            try:
                statuses = []
                for _ in range(3):
                    batch = await asyncio.gather(*(http.request("GET", LIMITS) for _ in range(5)))
                    statuses += [response.status_code for response in batch]
            finally:
                await http.aclose()
            return statuses

        assert asyncio.run(go()) == [200] * 15


class CountingServer:
    """A loopback HTTP/1.1 server that answers each request after ``delay`` and counts requests in flight."""

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.in_flight = 0
        self.most_in_flight = 0
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
                await asyncio.sleep(self.delay)
                status = 401 if b"bearer old" in head.lower() else 200
                body = b'{"ok": true}' if status == 200 else b'[{"errorCode": "INVALID_SESSION_ID"}]'
                self.in_flight -= 1
                writer.write(b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n\r\n%s" % (status, len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            # The client hung up, or the test's loop is closing.
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def test_every_slot_keeps_its_connection_alive_above_httpx_s_default_pool() -> None:
    server = CountingServer(delay=0.05)

    async def go() -> None:
        async with server as url:
            http = core(url, concurrency=30)
            try:
                for _ in range(3):
                    answers = await asyncio.gather(*(http.request("GET", LIMITS) for _ in range(30)))
                    assert [answer.status_code for answer in answers] == [200] * 30
                assert http.budget.slots.taken == 0
            finally:
                await http.aclose()

    asyncio.run(go())
    assert server.most_in_flight == 30
    # httpx keeps 20 connections alive by default: 30 at a time would open ten new ones every round.
    assert server.connections == 30


def test_a_request_cancelled_while_it_waits_for_a_slot_leaves_the_line_and_the_slots_add_up() -> None:
    server = CountingServer(delay=0.15)

    async def go() -> None:
        async with server as url:
            await waited(url)

    async def waited(url: str) -> None:
        http = core(url, concurrency=1)
        try:
            first = asyncio.ensure_future(http.request("GET", LIMITS))
            await asyncio.sleep(0.02)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(http.request("GET", LIMITS), 0.03)
            assert (await first).status_code == 200
            assert (await http.request("GET", LIMITS)).status_code == 200
            assert http.budget.slots.taken == 0
        finally:
            await http.aclose()

    asyncio.run(go())
    assert server.most_in_flight == 1


def test_a_request_sent_again_after_a_401_takes_a_slot_again() -> None:
    server = CountingServer(delay=0.01)

    class RefreshOn401(httpx.Auth):
        def __init__(self) -> None:
            self.token = "old"
            self.refreshes = 0

        def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
            request.headers["Authorization"] = f"Bearer {self.token}"
            response = yield request
            if response.status_code == 401:
                self.token, self.refreshes = "new", self.refreshes + 1
                request.headers["Authorization"] = f"Bearer {self.token}"
                yield request

    auth = RefreshOn401()

    async def go() -> list[int]:
        async with server as url:
            return await refreshed(url)

    async def refreshed(url: str) -> list[int]:
        http = core(url, concurrency=2, auth=auth)
        try:
            answers = await asyncio.gather(*(http.request("GET", LIMITS) for _ in range(8)))
            assert http.budget.slots.taken == 0
            return [answer.status_code for answer in answers]
        finally:
            await http.aclose()

    assert asyncio.run(go()) == [200] * 8
    assert auth.refreshes >= 1
    assert server.most_in_flight == 2, "a request sent again after a 401 waits for a slot like any other"


class ClosingServer:
    """A loopback server that answers one request per connection, then closes it (``drop``: reads a second one
    first and closes without answering, as a server timing out an idle connection just as a request arrives)."""

    def __init__(self, *, drop: bool) -> None:
        self.drop = drop
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head.split(b" ", 1)[0])
            await reader.readexactly(_content_length(head))
            writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n{"n": 1}')
            await writer.drain()
            if self.drop:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head.split(b" ", 1)[0])
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def _content_length(head: bytes) -> int:
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.partition(b":")[2])
    return 0


def test_a_connection_the_server_closed_while_idle_is_replaced_without_an_error_or_a_retry() -> None:
    server = ClosingServer(drop=False)
    sleep = RecordingSleep()

    async def go() -> list[int]:
        async with server as url:
            http = core(url, sleep=sleep)
            try:
                statuses = []
                for _ in range(3):
                    statuses.append((await http.request("GET", LIMITS)).status_code)
                    await asyncio.sleep(0.05)  # the server's close reaches the client while the connection is idle
                return statuses
            finally:
                await http.aclose()

    assert asyncio.run(go()) == [200, 200, 200]
    assert server.connections == 3
    assert sleep.waits == [] and server.requests == [b"GET"] * 3


def test_a_kept_alive_connection_closed_under_a_read_is_sent_again_but_never_under_a_write() -> None:
    server = ClosingServer(drop=True)
    sleep = RecordingSleep()

    async def go() -> None:
        async with server as url:
            http = core(url, sleep=sleep)
            try:
                assert (await http.request("GET", LIMITS)).json() == {"n": 1}
                # The server drops the next request on that connection; a read goes again on a new connection.
                assert (await http.request("GET", LIMITS)).json() == {"n": 1}
                with pytest.raises(AmbiguousWriteError, match="reconciling"):
                    await http.request("POST", LIMITS, json={}, idempotent=False)
            finally:
                await http.aclose()

    asyncio.run(go())
    assert len(sleep.waits) == 1, "the dropped read was retried once"
    assert server.requests == [b"GET", b"GET", b"GET", b"POST"], "the write went once"


def test_httpcore_finds_the_event_loop_library_without_searching_for_it_on_every_request() -> None:
    # httpcore asks sniffio which async library runs, importing it inside the call: without sniffio installed the
    # failed import searched sys.path again at every request (about a millisecond each, several per request).
    looked_up: list[str] = []

    class NoteLookups(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname: str, path: object, target: object = None) -> None:
            looked_up.append(fullname)

    server = CountingServer(delay=0.0)

    async def go() -> None:
        async with server as url:
            http = core(url, concurrency=2)
            try:
                await http.request("GET", LIMITS)
                sys.meta_path.insert(0, NoteLookups())
                try:
                    await asyncio.gather(*(http.request("GET", LIMITS) for _ in range(10)))
                finally:
                    del sys.meta_path[0]
            finally:
                await http.aclose()

    asyncio.run(go())
    assert looked_up == []
