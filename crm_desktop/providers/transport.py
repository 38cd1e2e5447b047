"""HTTP/1.1 for the adapters: kept-alive connections on asyncio protocols, answers parsed by httptools' C parser."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterable, Callable
from typing import cast

import httptools
import httpx

from crm_desktop.providers.rate import RequestSlots, SlotWaiter

#: Seconds an idle connection is kept for the next request (servers close theirs after 5 to 120 s).
KEEPALIVE_SECONDS = 5.0
_DEFAULT_PORTS = {b"http": 80, b"https": 443}
#: A request extension: the :class:`RequestSlots` (concurrency limit) whose slot the request takes as it goes on the
#: wire and gives back from inside the callback that reads its answer's last byte, to a request whose bytes wait.
SLOTS_EXTENSION = "crm_desktop.slots"
#: (status, reason phrase, headers, body); whether the connection is kept goes to the exchange's ``on_answer``
_Answer = tuple[int, bytes, list[tuple[bytes, bytes]], bytes]
#: Methods sent again, once, when a reused connection turns out closed before any answer (reads change nothing).
_SAFE_TO_RESEND = frozenset({"GET", "HEAD", "OPTIONS"})


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one exchange at a time, the answer read whole (the adapters read every body)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser: httptools.HttpResponseParser | None = None
        self._waiter: asyncio.Future[_Answer] | None = None
        self._head_only = False
        self._status = 0
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._bytes_read = 0
        self._ends_at_close = False
        #: Once the answer is whole: whether the connection may be kept (``None`` until then).
        self._complete: bool | None = None
        #: Bytes came after the whole answer (a broken server): the connection is not kept.
        self._trailing = False
        self._writable: asyncio.Future[None] | None = None
        self._read_timer: asyncio.TimerHandle | None = None
        #: Exchanges this connection has carried (a reused connection may have been closed by the server).
        self.exchanges = 0
        #: Called when the answer is whole, inside the callback that completed it: (connection, status, keep-alive).
        self._on_answer: Callable[[_Connection, int, bool], None] | None = None
        #: (scheme, host, port) this connection goes to.
        self.origin: tuple[bytes, bytes, int] = (b"", b"", 0)

    # -- asyncio.Protocol ----------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's TCP transport does not derive from asyncio.Transport.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            # Bytes nobody asked for on an idle connection: the server is closing it or is broken.
            self.close()
            return
        self._bytes_read += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the server switched protocols; only HTTP/1.1 is spoken here"))
            return
        except httptools.HttpParserError as exc:
            if self._complete is None:
                self._fail(httpx.RemoteProtocolError(f"the server's answer is not valid HTTP/1.1 ({exc})"))
                return
            # The answer was whole; what came after it is not HTTP: keep the answer, not the connection.
            self._trailing = True
        if self._complete is not None:
            # Finished once the whole chunk is parsed (not from inside the parser's callback), so that bytes after
            # the answer are seen before the connection goes to the next request.
            self._finish(keep_alive=self._complete and not self._trailing)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            if self._ends_at_close and exc is None:
                # A body without a length (HTTP/1.0 style) ends where the server closes the connection.
                self._finish(keep_alive=False)
            elif self._bytes_read:
                self._waiter.set_exception(
                    httpx.RemoteProtocolError("the server closed the connection in the middle of its answer")
                )
            else:
                self._waiter.set_exception(
                    httpx.RemoteProtocolError("the server closed the connection without answering")
                )
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(httpx.WriteError("the connection closed while the request was sent"))

    def pause_writing(self) -> None:
        self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # -- httptools callbacks -------------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._complete is not None:
            # A second answer to one request: the server is broken, the connection not to be used again.
            self._trailing = True

    def on_status(self, status: bytes) -> None:
        if self._complete is None:
            self._reason = status

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._complete is None:
            self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._parser is None or self._complete is not None:
            return
        self._status = self._parser.get_status_code()
        names = {name.lower() for name, _value in self._headers}
        self._ends_at_close = (
            self._status >= 200
            and self._status not in (204, 304)
            and b"content-length" not in names
            and b"transfer-encoding" not in names
        )
        if self._head_only and self._status >= 200 and self._complete is None:
            # An answer to HEAD has no body whatever its Content-Length says; the parser would wait for one.
            self._complete = False

    def on_body(self, body: bytes) -> None:
        if self._complete is None:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if self._parser is None or self._complete is not None:
            # The answer already ended (an answer to HEAD ends at its headers), or this is a second one.
            return
        if 100 <= self._status < 200:
            # An interim answer (103 Early Hints...): the real one follows on the same connection.
            self._headers, self._body, self._reason = [], [], b""
            return
        self._complete = self._parser.should_keep_alive()

    # -- the exchange ----------------------------------------------------------------------------------------
    def _finish(self, *, keep_alive: bool) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        keep = keep_alive and not self.closed
        waiter.set_result((self._status, self._reason, self._headers, b"".join(self._body)))
        on_answer = self._on_answer
        self._end_exchange()
        if on_answer is not None:
            # Still inside the callback that read the answer's last byte: the request slot and this connection go
            # to the next request now, not after the answer has travelled up to its caller.
            on_answer(self, self._status, keep)

    def _fail(self, error: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)
        self.close()

    def _end_exchange(self) -> None:
        """Forget the exchange that just ended, so that the next one may start on this connection at once."""
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        self._waiter = None
        self._parser = None
        self._on_answer = None

    @property
    def answered_nothing(self) -> bool:
        """Whether the last exchange failed before a single byte of an answer came."""
        return self._bytes_read == 0

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    @property
    def in_exchange(self) -> bool:
        """Whether an exchange is under way on this connection."""
        return self._waiter is not None

    def begin(
        self,
        head: bytes,
        body: bytes,
        *,
        head_only: bool,
        read_timeout: float | None,
        on_answer: Callable[[_Connection, int, bool], None] | None = None,
    ) -> asyncio.Future[_Answer]:
        """Put a request on the wire (``body`` follows ``head`` unless streamed after) and return its answer-to-be.

        Synchronous, so that a request can go out from inside the callback that read the previous answer.
        ``on_answer`` is called with this connection, the status and the keep-alive verdict the moment the answer
        is whole, before anyone awaiting the answer resumes; the connection may by then carry the next exchange.

        Raises:
            httpx.RemoteProtocolError: the connection is closed.
        """
        transport = self._transport
        if transport is None or self.closed:
            raise httpx.RemoteProtocolError("the connection is closed")
        self._parser = httptools.HttpResponseParser(self)
        self._head_only = head_only
        self._status, self._reason, self._headers, self._body = 0, b"", [], []
        self._bytes_read = 0
        self._ends_at_close = False
        self._complete = None
        self._trailing = False
        self.exchanges += 1
        waiter: asyncio.Future[_Answer] = self._loop.create_future()
        self._waiter = waiter
        self._on_answer = on_answer
        if len(body) < 65536:
            transport.write(head + body)
        else:
            transport.write(head)
            transport.write(body)
        if read_timeout is not None:
            self._read_timer = self._loop.call_later(read_timeout, self._check_read, read_timeout, 0)
        return waiter

    def watch_reads(self, waiter: asyncio.Future[_Answer], read_timeout: float | None) -> None:
        """Start counting the read timeout (for a streamed body: once it is sent)."""
        if read_timeout is not None and self._waiter is waiter and not waiter.done():
            self._read_timer = self._loop.call_later(read_timeout, self._check_read, read_timeout, 0)

    async def send_stream(
        self, waiter: asyncio.Future[_Answer], body: AsyncIterable[bytes], chunked: bool, write_timeout: float | None
    ) -> None:
        """Stream a request body after :meth:`begin` sent the head."""
        transport = self._transport
        try:
            if transport is None or self._waiter is not waiter:
                raise httpx.RemoteProtocolError("the connection is closed")
            await self._send_stream(transport, body, chunked, write_timeout)
        except BaseException:
            self.abandon(waiter)
            raise

    async def answer(self, waiter: asyncio.Future[_Answer]) -> _Answer:
        """The whole answer to the request :meth:`begin` sent: (status, reason, headers, body).

        Raises:
            httpx.TransportError: the connection failed, the answer was not HTTP, or nothing came for the read
                timeout.
        """
        try:
            return await waiter
        except BaseException:
            self.abandon(waiter)
            raise

    def abandon(self, waiter: asyncio.Future[_Answer]) -> bool:
        """Drop the exchange of ``waiter`` if it is still under way; whether it was."""
        if self._waiter is not waiter:
            return False
        # Cancelled or failed mid-exchange: the connection's state is unknown, so it is not used again.
        self._end_exchange()
        self.close()
        return True

    def _check_read(self, read_timeout: float, seen: int) -> None:
        """Fail the exchange when no byte came for ``read_timeout`` seconds (httpx's read timeout: between reads)."""
        self._read_timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._bytes_read != seen:
            self._read_timer = self._loop.call_later(read_timeout, self._check_read, read_timeout, self._bytes_read)
            return
        self._fail(httpx.ReadTimeout(f"no answer for {read_timeout:g} s"))

    async def _send_stream(
        self, transport: asyncio.Transport, body: AsyncIterable[bytes], chunked: bool, write_timeout: float | None
    ) -> None:
        async for chunk in body:
            if not chunk:
                continue
            transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if self._writable is not None:
                # The server is not reading: wait until it does, at most the write timeout.
                try:
                    await asyncio.wait_for(asyncio.shield(self._writable), write_timeout)
                except TimeoutError:
                    raise httpx.WriteTimeout(f"the server read none of the request for {write_timeout:g} s") from None
        if chunked:
            transport.write(b"0\r\n\r\n")


def _request_head(request: httpx.Request) -> tuple[bytes, bool]:
    """The request line and headers, and whether the body goes chunked.

    Raises:
        httpx.LocalProtocolError: a header would break the message (a line break in it).
    """
    lines = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    chunked = False
    for name, value in request.headers.raw:
        if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name or b":" in name:
            raise httpx.LocalProtocolError(f"the header {name!r} is not a valid HTTP header", request=request)
        if name.lower() == b"transfer-encoding" and value.lower() == b"chunked":
            chunked = True
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines), chunked


class _Flight:
    """One request's hold on a concurrency slot and a connection, each given back once."""

    __slots__ = ("connection", "origin", "slot_held", "slots", "transport")

    def __init__(self, transport: LeanHttpTransport, origin: tuple[bytes, bytes, int], slots: RequestSlots | None):
        self.transport = transport
        self.origin = origin
        self.slots = slots
        self.slot_held = False
        #: The connection carrying this request's exchange, until it is given back.
        self.connection: _Connection | None = None

    def begin(
        self, connection: _Connection, head: bytes, body: bytes, head_only: bool, read_timeout: float | None
    ) -> asyncio.Future[_Answer]:
        """Send the request on ``connection``, which this flight holds until the answer (or a failure)."""
        self.connection = connection
        return connection.begin(head, body, head_only=head_only, read_timeout=read_timeout, on_answer=self.answered)

    def answered(self, connection: _Connection, status: int, keep: bool) -> None:
        """The answer is whole (called from the connection's protocol callback): free the slot and the connection.

        The slot goes to the request that waited longest, handing it this connection when it is kept alive; a
        request queued with its bytes ready is on the wire before this returns.
        """
        self.connection = None
        keep = keep and not connection.closed and not self.transport.closed
        if self.slot_held and self.slots is not None:
            self.slot_held = False
            self.slots.give_back(connection if keep else None)
        if not connection.in_exchange:
            self.transport.release_connection(self.origin, connection, keep=keep)

    def drop(self, connection: _Connection) -> None:
        """The exchange on ``connection`` failed or was cancelled: close it unless its answer came and it was given
        back already (the slot stays held for a resend)."""
        if self.connection is connection:
            self.connection = None
            self.transport.release_connection(self.origin, connection, keep=False)

    def end(self) -> None:
        """The request is over, however it ended: whatever it still holds goes back."""
        if self.slot_held and self.slots is not None:
            self.slot_held = False
            self.slots.give_back()


class _Queued(SlotWaiter):
    """A request waiting for a concurrency slot with its bytes ready to go."""

    __slots__ = ("body", "flight", "future", "head", "head_only", "origin", "read_timeout", "started")

    def __init__(
        self,
        origin: tuple[bytes, bytes, int],
        head: bytes,
        body: bytes | None,
        head_only: bool,
        read_timeout: float | None,
        flight: _Flight,
    ) -> None:
        self.origin = origin
        self.head = head
        #: ``None`` for a streamed body, which is sent from its own task.
        self.body = body
        self.head_only = head_only
        self.read_timeout = read_timeout
        self.flight = flight
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.started: tuple[_Connection, asyncio.Future[_Answer]] | None = None

    def granted(self, handed: object | None) -> bool:
        if self.future.done():
            return False
        # Held from now on, even if the answer were whole before the waiting task resumes.
        self.flight.slot_held = True
        if (
            isinstance(handed, _Connection)
            and self.body is not None
            and handed.origin == self.origin
            and not handed.closed
            and not handed.in_exchange
        ):
            # The connection the slot came with, kept alive: the request goes out on it now.
            self.started = (handed, self.flight.begin(handed, self.head, self.body, self.head_only, self.read_timeout))
        self.future.set_result(None)
        return True

    async def wait(self, transport: LeanHttpTransport) -> tuple[_Connection, asyncio.Future[_Answer]] | None:
        """Wait for the slot; the connection and answer-to-be when the request already went out with it."""
        slots = self.flight.slots
        assert slots is not None
        slots.queue(self)
        try:
            await self.future
        except asyncio.CancelledError:
            if not self.future.done() or self.future.cancelled():
                slots.leave(self)
            elif self.started is not None:
                # Granted, and sent, just as the request was cancelled: the exchange is dropped half way (unless
                # its answer already came). The slot goes back with the rest of the request.
                connection, waiter = self.started
                connection.abandon(waiter)
                self.flight.drop(connection)
            raise
        return self.started


class LeanHttpTransport(httpx.AsyncBaseTransport):
    """The adapters' HTTP/1.1 transport: a pool of kept-alive connections per origin, TLS verified.

    httpx's own transport (httpcore, h11, anyio) spent more CPU per request than the rest of a push's client
    side together; this one hands each answer to httptools' C parser from an asyncio protocol, learns that a server
    closed an idle connection the moment it does (no polling before reuse), and reads every answer whole, which is
    what the adapters do with every answer anyway.
    """

    def __init__(
        self,
        *,
        verify: bool | ssl.SSLContext = True,
        max_connections: int = 100,
        max_keepalive_connections: int = 20,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
    ) -> None:
        self._verify = verify
        self._ssl_context: ssl.SSLContext | None = verify if isinstance(verify, ssl.SSLContext) else None
        self._max_connections = max_connections
        self.max_keepalive_connections = max_keepalive_connections
        self._keepalive_seconds = keepalive_seconds
        self._idle: dict[tuple[bytes, bytes, int], list[_Connection]] = {}
        self._open = 0
        #: Requests waiting for a connection when all ``max_connections`` are in use, first come first served.
        self._waiting: list[asyncio.Future[None]] = []
        self._closed = False

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            # Built on the first https connection (loading the CA bundle takes tens of milliseconds).
            self._ssl_context = httpx.create_ssl_context(verify=bool(self._verify))
        return self._ssl_context

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise httpx.ConnectError("the HTTP client is closed", request=request)
        url = request.url
        scheme = url.raw_scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"only http and https URLs are supported, not {url.scheme!r}")
        origin = (scheme, url.raw_host, url.port or _DEFAULT_PORTS[scheme])
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        head, chunked = _request_head(request)
        stream: AsyncIterable[bytes] | None = None
        content = b""
        try:
            content = request.content
        except httpx.RequestNotRead:
            assert isinstance(request.stream, AsyncIterable)
            stream = request.stream
        head_only = request.method == "HEAD"
        read_timeout = timeouts.get("read")
        flight = _Flight(self, origin, request.extensions.get(SLOTS_EXTENSION))
        try:
            started: tuple[_Connection, asyncio.Future[_Answer]] | None = None
            if flight.slots is not None:
                if flight.slots.try_take():
                    flight.slot_held = True
                else:
                    queued = _Queued(origin, head, content if stream is None else None, head_only, read_timeout, flight)
                    started = await queued.wait(self)
            for attempt in range(2):
                if started is not None:
                    (connection, waiter), started = started, None
                    reused = True
                else:
                    connection = await self._connection(request, origin, timeouts)
                    reused = connection.exchanges > 0
                    waiter = None
                try:
                    if waiter is None:
                        waiter = flight.begin(
                            connection, head, content, head_only, read_timeout if stream is None else None
                        )
                        if stream is not None:
                            await connection.send_stream(waiter, stream, chunked, timeouts.get("write"))
                            connection.watch_reads(waiter, read_timeout)
                    status, reason, headers, body = await connection.answer(waiter)
                    break
                except httpx.TransportError as exc:
                    flight.drop(connection)
                    if reused and connection.answered_nothing and request.method in _SAFE_TO_RESEND and attempt == 0:
                        # A kept-alive connection the server closed as the request went out (it closes idle ones
                        # when it likes): nothing was answered, and a read is safe to send again on a new connection.
                        continue
                    exc.request = request
                    raise
                except BaseException:
                    flight.drop(connection)
                    raise
        finally:
            flight.end()
        return httpx.Response(
            status,
            headers=headers,
            stream=httpx.ByteStream(body),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def _connection(
        self, request: httpx.Request, origin: tuple[bytes, bytes, int], timeouts: dict[str, float | None]
    ) -> _Connection:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < self._keepalive_seconds:
                return connection
            connection.close()
            self._open -= 1
        if self._open >= self._max_connections:
            await self._wait_for_room(request, timeouts.get("pool"))
            return await self._connection(request, origin, timeouts)
        self._open += 1
        try:
            return await self._connect(request, origin, timeouts.get("connect"))
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise

    async def _wait_for_room(self, request: httpx.Request, pool_timeout: float | None) -> None:
        room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(room)
        try:
            await asyncio.wait_for(room, pool_timeout)
        except TimeoutError:
            raise httpx.PoolTimeout("no connection came free in time", request=request) from None
        finally:
            if room in self._waiting:
                self._waiting.remove(room)

    def _wake_one(self) -> None:
        while self._waiting:
            room = self._waiting.pop(0)
            if not room.done():
                room.set_result(None)
                return

    async def _connect(
        self, request: httpx.Request, origin: tuple[bytes, bytes, int], connect_timeout: float | None
    ) -> _Connection:
        scheme, raw_host, port = origin
        host = raw_host.decode("ascii").strip("[]")
        loop = asyncio.get_running_loop()
        tls = self._tls() if scheme == b"https" else None
        try:
            _transport, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(loop), host, port, ssl=tls, server_hostname=host if tls else None
                ),
                connect_timeout,
            )
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"no connection to {host}:{port} within {connect_timeout:g} s", request=request
            ) from None
        except ssl.SSLError as exc:
            raise httpx.ConnectError(f"TLS with {host}:{port} failed: {exc.reason or exc}", request=request) from None
        except OSError as exc:
            reason = exc.strerror or exc
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {reason}", request=request) from None
        connection.origin = origin
        return connection

    @property
    def closed(self) -> bool:
        return self._closed

    def release_connection(self, origin: tuple[bytes, bytes, int], connection: _Connection, *, keep: bool) -> None:
        """Keep ``connection`` for the next request, or close it; either way a request waiting for room may go."""
        idle = self._idle.setdefault(origin, [])
        if keep and not connection.closed and not self._closed and len(idle) < self.max_keepalive_connections:
            connection.idle_since = time.monotonic()
            idle.append(connection)
        else:
            connection.close()
            self._open -= 1
        self._wake_one()

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
            idle.clear()
        self._open = 0

    def idle_connections(self) -> int:
        """Connections kept open for the next request."""
        return sum(len(idle) for idle in self._idle.values())
