"""Serve sandbox CRMs over loopback HTTP(S) with uvicorn: from a background thread (tests) or until a signal (CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import signal
import socket
import struct
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from crm_desktop.domain.models import is_loopback_host
from crm_desktop.listening import listening_socket
from crm_desktop.sandbox.core import FaultKind, Sandbox, SandboxConfig, SandboxDrop, SocketDropMiddleware

logger = logging.getLogger(__name__)

#: Where each provider's emulator lives (imported on demand: each is a sizeable module).
SANDBOX_CLASSES: dict[str, tuple[str, str]] = {
    "salesforce": ("crm_desktop.sandbox.salesforce", "SalesforceSandbox"),
    "hubspot": ("crm_desktop.sandbox.hubspot", "HubSpotSandbox"),
    "pipedrive": ("crm_desktop.sandbox.pipedrive", "PipedriveSandbox"),
}

@dataclass(frozen=True)
class ServingTls:
    """Serve over HTTPS with this certificate and key (PEM files).

    Attributes:
        certfile: the server's certificate chain.
        keyfile: its private key.
        server_name: the host name the announced ``https://`` URLs use (a name the certificate carries, which
            resolves to the loopback address or is reached through a proxy); ``None``: the address listened on.
    """

    certfile: Path
    keyfile: Path
    server_name: str | None = None


#: How long a stopping server lets open requests finish (a held ``timeout`` fault would otherwise block it).
GRACEFUL_SHUTDOWN_SECONDS = 1


#: Net allocations between two young-generation garbage collections in a process that serves sandboxes. Python's
#: default (700) ran one every few records of a collection write, and a full collection every hundred of those,
#: each walking every record held so far while every answer in flight waited.
SERVING_GC_THRESHOLD = 10_000


def settle_serving_process() -> None:
    """Ready the garbage collector of a process whose job is serving sandboxes (the CLI's, the benchmark's).

    What is loaded by now (modules, seeded records) is frozen out of full collections, and young collections run
    every :data:`SERVING_GC_THRESHOLD` allocations: a request's short-lived objects are gone before one comes.
    The settings hold for the whole process: never call this where the app runs too (the GUI, demo mode).
    """
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(SERVING_GC_THRESHOLD, middle, old)


def new_serving_loop() -> asyncio.AbstractEventLoop:
    """The event loop of a process whose job is serving sandboxes: uvloop's where it is installed, else asyncio's.

    libuv spends about a fifth less of the emulator's time per request on sockets and timers than asyncio's
    selector loop, and a sandbox's answers are due at their latency whatever the emulator is doing. uvloop comes
    with the ``bench`` extra only: a process that also runs the app (demo mode, tests) serves on asyncio's loop.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    # Typed whether or not uvloop (a bench extra) is installed where mypy runs.
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def make_sandbox(provider: str, config: SandboxConfig) -> Sandbox:
    """A new sandbox of ``provider`` (``salesforce``, ``hubspot`` or ``pipedrive``).

    Raises:
        ValueError: for an unknown provider.
    """
    try:
        module_name, class_name = SANDBOX_CLASSES[provider.strip().lower()]
    except KeyError:
        known = ", ".join(SANDBOX_CLASSES)
        raise ValueError(f"unknown sandbox provider {provider!r}; choose one of {known}") from None
    sandbox_class = getattr(importlib.import_module(module_name), class_name)
    sandbox = sandbox_class(config)
    if not isinstance(sandbox, Sandbox):
        raise TypeError(f"{module_name}.{class_name} is not a Sandbox")
    return sandbox


class _AbortOnDrop:
    """Turns a sandbox drop into a real TCP reset, so clients see what a dying peer gives them (a read error).

    Uses the connection's transport when uvicorn exposes it; otherwise the drop goes on to
    :class:`SocketDropMiddleware`, which abandons a started response instead.
    """

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox
        #: Set when the server stops: held ``timeout`` requests are dropped at once instead of delaying shutdown.
        self.closing: asyncio.Event | None = None

    async def _hold(self) -> None:
        seconds = self.sandbox.config.hang_seconds
        if self.closing is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.closing.wait()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except SandboxDrop as drop:
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is None or not hasattr(transport, "abort"):
                raise
            if drop.kind is FaultKind.READ_TIMEOUT:
                await self._hold()
            sock = None if transport.is_closing() else transport.get_extra_info("socket")
            if sock is not None:
                # Linger 0: close with RST rather than FIN. (A client that gave up during a held timeout has closed
                # the connection already; uvloop's socket for it then has no file descriptor: ValueError.)
                with contextlib.suppress(OSError, ValueError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            # Let uvicorn see the connection lost, so it does not try to answer on it.
            for _ in range(3):
                await asyncio.sleep(0)


class _LoopbackServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to whoever runs it (several servers share one process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _url(host: str, port: int, tls: ServingTls | None = None) -> str:
    name = tls.server_name if tls is not None and tls.server_name else host
    shown = f"[{name}]" if ":" in name else name
    return f"{'https' if tls is not None else 'http'}://{shown}:{port}"


class _Served:
    """Sockets and uvicorn servers for a set of sandboxes, bound before serving so each URL is known up front."""

    def __init__(
        self,
        sandboxes: Sequence[Sandbox],
        host: str,
        ports: Sequence[int] | None,
        log_level: str,
        tls: ServingTls | None = None,
    ) -> None:
        if not is_loopback_host(host):
            raise ValueError(f"sandboxes listen on loopback only, not {host!r}")
        wanted = list(ports) if ports is not None else [0] * len(sandboxes)
        if len(wanted) != len(sandboxes):
            raise ValueError(f"{len(sandboxes)} sandboxes but {len(wanted)} ports")
        self.sandboxes = list(sandboxes)
        self.sockets: list[socket.socket] = []
        self.servers: list[_LoopbackServer] = []
        self.droppers: list[_AbortOnDrop] = []
        try:
            for sandbox, port in zip(self.sandboxes, wanted, strict=True):
                sock = listening_socket(host, port)
                self.sockets.append(sock)
                sandbox.base_url = _url(host, sock.getsockname()[1], tls)
                dropper = _AbortOnDrop(sandbox.app(), sandbox)
                self.droppers.append(dropper)
                config = uvicorn.Config(
                    SocketDropMiddleware(dropper, sandbox),
                    log_level=log_level,
                    access_log=False,
                    lifespan="off",
                    timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
                    ssl_certfile=str(tls.certfile) if tls is not None else None,
                    ssl_keyfile=str(tls.keyfile) if tls is not None else None,
                )
                self.servers.append(_LoopbackServer(config))
        except BaseException:
            self.close_sockets()
            raise

    @property
    def urls(self) -> list[str]:
        return [sandbox.base_url for sandbox in self.sandboxes]

    async def serve(self, on_started: Callable[[], None]) -> None:
        """Run every server until each is told to exit; call ``on_started`` once all accept connections."""
        closing = asyncio.Event()
        for dropper in self.droppers:
            dropper.closing = closing
        tasks = [
            asyncio.create_task(server.serve(sockets=[sock]), name=f"sandbox-{sandbox.provider}")
            for server, sock, sandbox in zip(self.servers, self.sockets, self.sandboxes, strict=True)
        ]
        try:
            while not all(server.started for server in self.servers):
                done = [task for task in tasks if task.done()]
                if done:
                    # A server that ends before starting failed; surface its error.
                    done[0].result()
                    raise RuntimeError("a sandbox server stopped before it started")
                await asyncio.sleep(0.01)
            on_started()
            await asyncio.gather(*tasks)
        finally:
            self.request_exit()
            for task in tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.close_sockets()

    def request_exit(self) -> None:
        """Ask every server to stop (call on the serving loop)."""
        for server in self.servers:
            server.should_exit = True
        for dropper in self.droppers:
            if dropper.closing is not None:
                dropper.closing.set()

    def close_sockets(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


class SandboxServer:
    """Serves sandboxes on loopback from a background thread; ``start()`` returns once they accept connections.

    Usable as a context manager. Each sandbox's ``base_url`` is set to its real URL. The thread runs its own loop
    (asyncio's unless ``loop_factory`` says otherwise: a process that shares it, such as the app in demo mode,
    gets no process-wide event-loop or collector tuning from it).

    Attributes:
        sandboxes: what is served, in order.
        host: the loopback address listened on.
        tls: the certificate and key when served over HTTPS.
    """

    def __init__(
        self,
        sandboxes: Sequence[Sandbox],
        host: str = "127.0.0.1",
        ports: Sequence[int] | None = None,
        *,
        log_level: str = "warning",
        start_timeout: float = 10.0,
        tls: ServingTls | None = None,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
    ) -> None:
        self.sandboxes = list(sandboxes)
        self._loop_factory = loop_factory
        self.host = host
        self.tls = tls
        self._ports = list(ports) if ports is not None else None
        self._log_level = log_level
        self._start_timeout = start_timeout
        self._served: _Served | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def urls(self) -> list[str]:
        """The base URL of each sandbox, in order."""
        return [sandbox.base_url for sandbox in self.sandboxes]

    def start(self) -> None:
        """Bind, serve in a background thread and return when every sandbox accepts connections.

        Raises:
            RuntimeError: when already started, or the servers do not come up in time.
            OSError: when a port cannot be bound.
        """
        if self._thread is not None:
            raise RuntimeError("sandbox server already started")
        self._served = _Served(self.sandboxes, self.host, self._ports, self._log_level, self.tls)
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="sandbox-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._start_timeout) or self._error is not None:
            error = self._error
            self.stop()
            if error is not None:
                raise RuntimeError(f"sandbox server failed to start: {error}") from error
            raise RuntimeError(f"sandbox server did not start within {self._start_timeout:.0f} s")
        logger.info("sandboxes listening: %s", ", ".join(self.urls))

    def _run(self) -> None:
        served = self._served
        assert served is not None
        loop = self._loop_factory()
        self._loop = loop
        try:
            loop.run_until_complete(served.serve(self._ready.set))
        except BaseException as exc:  # reported to start() or logged; the thread must not die silently
            self._error = exc
            if self._ready.is_set():
                logger.exception("sandbox server stopped with an error")
        finally:
            self._ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread to end (idempotent)."""
        served, thread, loop = self._served, self._thread, self._loop
        if served is not None and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(served.request_exit)
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("sandbox server thread still running after %.0f s", timeout)
        if served is not None:
            served.close_sockets()
        self._served = None
        self._thread = None
        self._loop = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


async def serve_until_signal(
    sandboxes: Sequence[Sandbox],
    host: str = "127.0.0.1",
    ports: Sequence[int] | None = None,
    on_ready: Callable[[Sequence[Sandbox]], None] | None = None,
    *,
    log_level: str = "warning",
    tls: ServingTls | None = None,
) -> None:
    """Serve ``sandboxes`` until SIGINT or SIGTERM, then shut down cleanly (over HTTPS with ``tls``).

    ``on_ready`` is called with the sandboxes (their ``base_url`` set) once all accept connections.
    """
    served = _Served(sandboxes, host, ports, log_level, tls)
    loop = asyncio.get_running_loop()
    handled = (signal.SIGINT, signal.SIGTERM)

    def on_signal(signum: int) -> None:
        logger.info("sandbox server: %s received, shutting down", signal.Signals(signum).name)
        served.request_exit()

    installed: list[signal.Signals] = []
    try:
        for signum in handled:
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)

        def started() -> None:
            logger.info("sandboxes listening: %s", ", ".join(served.urls))
            if on_ready is not None:
                on_ready(served.sandboxes)

        await served.serve(started)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
