"""The adapters' HTTP/1.1 transport against scripted servers on real loopback sockets."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from crm_desktop.providers.transport import LeanHttpTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One request off the wire: its request line, headers (lower-case names) and body (chunked or sized)."""
    head = await reader.readuntil(b"\r\n\r\n")
    line, *header_lines = head[:-4].split(b"\r\n")
    headers = {}
    for header in header_lines:
        name, _, value = header.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding") == b"chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return line, headers, body


def answer(status: int = 200, body: bytes = b"{}", *headers: bytes) -> bytes:
    extra = b"".join(header + b"\r\n" for header in headers)
    return b"HTTP/1.1 %d OK\r\ncontent-length: %d\r\n%s\r\n%s" % (status, len(body), extra, body)


class Scripted:
    """A loopback server that answers each connection with ``handler``; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        line, _headers, body = await read_request(reader)
        writer.write(answer(200, b'{"line": "%s", "got": %d}' % (line, len(body))))
        await writer.drain()


def client(url: str, **transport_options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, transport=LeanHttpTransport(**transport_options), timeout=2.0)


def run(body: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(body())


def test_requests_reuse_kept_alive_connections_up_to_the_pool_limit() -> None:
    server = Scripted(keep_answering)

    async def go() -> list[Any]:
        async with server as url, client(url, max_connections=3, max_keepalive_connections=3) as http:
            answers = await asyncio.gather(*(http.post("/x", content=b"a" * n) for n in range(12)))
            again = await http.get("/y?q=1")
            return [*(a.json()["got"] for a in answers), again.json()["line"]]

    *sizes, line = run(go)
    assert sizes == list(range(12))
    assert line == "GET /y?q=1 HTTP/1.1"
    assert server.connections <= 3, "never more connections than the pool allows, reused for 13 requests"


def test_it_runs_on_uvloop_whose_transports_are_not_asyncio_transports() -> None:
    uvloop = pytest.importorskip("uvloop")
    server = Scripted(keep_answering)

    async def go() -> list[int]:
        async with server as url, client(url) as http:
            return [(await http.post("/x", content=b"a" * n)).json()["got"] for n in range(3)]

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(go()) == [0, 1, 2]
    assert server.connections == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_without_an_error() -> None:
    async def one_answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(200, b"{}"))
        await writer.drain()

    server = Scripted(one_answer_then_close)

    async def go() -> list[int]:
        async with server as url, client(url) as http:
            statuses = []
            for _ in range(3):
                statuses.append((await http.get("/")).status_code)
                await asyncio.sleep(0.05)  # the server's close reaches the client while the connection is idle
            return statuses

    assert run(go) == [200, 200, 200]
    assert server.connections == 3


def test_connection_close_and_http_1_0_answers_are_not_reused() -> None:
    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{\"ok\": true}")
        await writer.drain()

    server = Scripted(closing)

    async def go() -> list[Any]:
        async with server as url, client(url) as http:
            return [(await http.get("/")).json() for _ in range(2)]

    assert run(go) == [{"ok": True}, {"ok": True}]
    assert server.connections == 2


@pytest.mark.parametrize("after", [answer(200, b'{"n": 2}'), b"\x00 not http at all"])
def test_bytes_after_a_whole_answer_keep_the_answer_but_not_the_connection(after: bytes) -> None:
    async def twice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(answer(200, b'{"n": 1}') + after)
            await writer.drain()

    server = Scripted(twice)

    async def go() -> list[Any]:
        async with server as url, client(url) as http:
            return [(await http.get("/")).json() for _ in range(2)]

    assert run(go) == [{"n": 1}, {"n": 1}]
    assert server.connections == 2, "a connection that said more than its answer is not used again"


def test_chunked_gzip_answers_are_decoded_and_interim_answers_skipped() -> None:
    payload = gzip.compress(b'{"records": [1, 2, 3]}')

    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-encoding: gzip\r\n\r\n")
        for start in range(0, len(payload), 7):
            piece = payload[start : start + 7]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async def go() -> httpx.Response:
        async with Scripted(chunked) as url, client(url) as http:
            return await http.get("/")

    response = run(go)
    assert response.status_code == 200 and response.json() == {"records": [1, 2, 3]}
    assert response.http_version == "HTTP/1.1"


def test_head_answers_end_at_their_headers() -> None:
    async def head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n")
            await writer.drain()

    async def go() -> list[int]:
        async with Scripted(head) as url, client(url) as http:
            return [(await http.head("/")).status_code for _ in range(2)]

    assert run(go) == [200, 200]


def test_streamed_request_bodies_go_chunked() -> None:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b"first,", b"", b"second"):
            yield part

    async def go() -> Any:
        async with Scripted(keep_answering) as url, client(url) as http:
            return (await http.post("/", content=parts())).json()

    assert run(go)["got"] == len(b"first,second")


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        ("silent", httpx.ReadTimeout),
        ("close_at_once", httpx.RemoteProtocolError),
        ("half_answer", httpx.RemoteProtocolError),
        ("garbage", httpx.RemoteProtocolError),
    ],
)
def test_broken_servers_raise_httpx_transport_errors(behaviour: str, error: type[Exception]) -> None:
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if behaviour == "silent":
            await asyncio.sleep(5)
        elif behaviour == "half_answer":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{\"partial")
            await writer.drain()
        elif behaviour == "garbage":
            writer.write(b"SMTP ready\r\n\r\n")
            await writer.drain()

    async def go() -> float:
        async with Scripted(broken) as url, client(url) as http:
            started = asyncio.get_running_loop().time()
            with pytest.raises(error) as caught:
                await http.get("/", timeout=httpx.Timeout(2.0, read=0.3))
            assert caught.value.request.url.path == "/"
            return asyncio.get_running_loop().time() - started

    seconds = run(go)
    assert seconds < 1.5, "a read timeout counts from the last byte, not the whole body"


def test_a_slow_answer_that_keeps_coming_is_not_a_read_timeout() -> None:
    async def dribble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n")
        for byte in b'"slow"':
            await asyncio.sleep(0.12)
            writer.write(bytes([byte]))
            await writer.drain()
        await reader.read()

    async def go() -> Any:
        async with Scripted(dribble) as url, client(url) as http:
            return (await http.get("/", timeout=httpx.Timeout(2.0, read=0.3))).json()

    assert run(go) == "slow"


def test_connect_failures_pool_timeouts_and_bad_headers() -> None:
    async def go() -> None:
        async with Scripted(keep_answering) as url:
            port = int(url.rsplit(":", 1)[1])
        # The server is gone: nothing listens on its port.
        async with client(f"http://127.0.0.1:{port}") as http:
            with pytest.raises(httpx.ConnectError):
                await http.get("/")
        async with Scripted(keep_answering) as url, client(url) as http:
            with pytest.raises(httpx.LocalProtocolError):
                await http.get("/", headers={"X-Note": "a\r\nInjected: yes"})
            with pytest.raises(httpx.UnsupportedProtocol):
                await http.get("ftp://127.0.0.1/")

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            await asyncio.sleep(1)
            writer.write(answer())
            await writer.drain()

        async with Scripted(hold) as url, client(url, max_connections=1) as http:
            first = asyncio.ensure_future(http.get("/"))
            await asyncio.sleep(0.05)
            with pytest.raises(httpx.PoolTimeout):
                await http.get("/", timeout=httpx.Timeout(5.0, pool=0.1))
            assert (await first).status_code == 200

    run(go)


def test_tls_is_verified() -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(answer())
        await writer.drain()
        await reader.read()

    async def go() -> None:
        # A plain-text server where TLS is expected fails the handshake; it is never taken as an answer.
        async with Scripted(plain) as url, client(url.replace("http://", "https://")) as http:
            with pytest.raises(httpx.ConnectError):
                await http.get("/")

    run(go)
    context = ssl.create_default_context()
    assert LeanHttpTransport(verify=context)._tls() is context
    built = LeanHttpTransport()._tls()
    assert built.verify_mode is ssl.CERT_REQUIRED and built.check_hostname


def test_a_server_that_stops_reading_a_streamed_body_is_a_write_timeout() -> None:
    async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(400):
            yield b"x" * 1_000_000

    async def go() -> None:
        async with Scripted(deaf) as url, client(url) as http:
            with pytest.raises(httpx.WriteTimeout):
                await http.post("/", content=endless(), timeout=httpx.Timeout(5.0, write=0.3))

    run(go)


def test_a_kept_alive_connection_closed_under_a_read_is_retried_once_but_never_under_a_write() -> None:
    async def one_answer_then_drop_the_next(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(200, b'{"n": 1}'))
        await writer.drain()
        await read_request(reader)  # the next request on this connection: closed without an answer

    server = Scripted(one_answer_then_drop_the_next)

    async def go() -> list[Any]:
        async with server as url, client(url) as http:
            first = (await http.get("/")).json()
            again = (await http.get("/")).json()  # the server drops it; sent again on a new connection
            with pytest.raises(httpx.RemoteProtocolError):
                await http.post("/", content=b"{}")  # a write is never sent twice by the transport
            return [first, again]

    assert run(go) == [{"n": 1}, {"n": 1}]
    assert server.connections == 2  # the read went again on a second connection; the write failed on it
