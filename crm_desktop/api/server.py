"""Serving the local API with uvicorn on 127.0.0.1, on the caller's running event loop (the GUI's or the CLI's)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator

import uvicorn

from crm_desktop.api.app import create_app
from crm_desktop.app.api_access import ApiTokens
from crm_desktop.app.api_port import DEFAULT_PORT, port_from_env
from crm_desktop.app.workflows import SocialWorkflows
from crm_desktop.app.workspace import Workspace
from crm_desktop.listening import listening_socket

logger = logging.getLogger(__name__)

#: The only address the API listens on: nothing off this machine can reach it.
HOST = "127.0.0.1"
#: How long a stop waits for requests in flight before closing their connections.
GRACEFUL_SECONDS = 5.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (whoever runs the loop owns that) and without its 0.1 s tick.

    The tick is a timer that fires forever; on the GUI's qasync loop a timer can fire while Qt handles a quit and
    the asyncio loop is not running, where the tick's ``asyncio.sleep`` fails. Waiting on an event needs no timer.
    The tick also refreshed the Date header, which is therefore left out (``date_header=False``).
    """

    def __init__(self, config: uvicorn.Config, listening: asyncio.Future[None]) -> None:
        super().__init__(config)
        self.exit_requested = asyncio.Event()
        self.listening = listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.listening.done():
            self.listening.set_result(None)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def main_loop(self) -> None:
        await self.exit_requested.wait()

    def request_exit(self) -> None:
        self.should_exit = True
        self.exit_requested.set()


class LocalApiServer:
    """The local API served on the running event loop until :meth:`stop`.

    Attributes:
        url: where it listens, e.g. ``http://127.0.0.1:8765`` (set by :meth:`start`).
        tokens: the bearer token it accepts (made at first start).
        workflows: the social workflows, delivering queued events to the CRMs while the API is served.
    """

    def __init__(self, workspace: Workspace, port: int = DEFAULT_PORT) -> None:
        self.workspace = workspace
        self.port = port
        self.tokens = ApiTokens(workspace.vault)
        self.workflows = SocialWorkflows.for_workspace(workspace)
        self.url = ""
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self._starting: asyncio.Future[str] | None = None

    async def start(self) -> str:
        """Make the token if there is none, bind 127.0.0.1 and serve; return the URL once it accepts connections.

        Raises:
            VaultError: when the keyring cannot hold the token.
            OSError: when the port is taken.
            RuntimeError: when the server stops before it starts.
        """
        self.tokens.current()
        self._socket = listening_socket(HOST, self.port)
        self.url = f"http://{HOST}:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(
            create_app(self.workspace, self.tokens, self.workflows),
            log_level="warning",
            access_log=False,
            lifespan="off",
            date_header=False,
            server_header=False,
            timeout_graceful_shutdown=int(GRACEFUL_SECONDS),
        )
        loop = asyncio.get_running_loop()
        listening: asyncio.Future[None] = loop.create_future()
        self._server = _Server(config, listening)
        self._task = loop.create_task(self._server.serve(sockets=[self._socket]), name="local API")

        def ended(task: asyncio.Task[None]) -> None:
            if not listening.done():
                listening.set_exception(RuntimeError("the local API stopped before it started"))

        self._task.add_done_callback(ended)
        try:
            await listening
        except BaseException:
            # Its sockets are closed by stop() once the serve task has ended: closed under a server still being
            # set up, the loop would go on watching a dead descriptor.
            self._server.request_exit()
            raise
        logger.info("local API listening on %s", self.url)
        # Events queued earlier (the CRM was down, the app was closed) go now; new ones within seconds.
        self.workflows.start()
        return self.url

    def start_in_background(self) -> None:
        """Start serving without waiting for it (the window never waits on the API); a failure is logged."""

        def started(task: asyncio.Task[str]) -> None:
            if not task.cancelled() and task.exception() is not None:
                logger.warning("the local API is not served: %s", task.exception())

        self._starting = asyncio.ensure_future(self.start())
        self._starting.add_done_callback(started)

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (up to a few seconds), and close (idempotent).

        Event deliveries in flight stop too: their events stay queued and go at the next start.
        """
        await self.workflows.stop()
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        server, task = self._server, self._task
        self._server = self._task = None
        if server is not None:
            server.request_exit()
        if task is not None:
            _, late = await asyncio.wait({task}, timeout=GRACEFUL_SECONDS * 2)
            if late:
                task.cancel()
            for result in await asyncio.gather(task, return_exceptions=True):
                if isinstance(result, Exception):
                    logger.warning("the local API stopped with an error: %s", result)
        self._close_listeners(server)
        if task is not None:
            logger.info("local API stopped")

    def _close_listeners(self, server: _Server | None = None) -> None:
        """Close the listening socket through the loop (no await: safe while the loop winds down).

        uvicorn closes its listeners in its own shutdown; a serve that ended early never got there, and a socket
        closed behind the loop's back leaves the loop watching a dead descriptor.
        """
        target = server or self._server
        for listener in getattr(target, "servers", []):  # uvicorn sets them only once it started
            listener.close()
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
            self._socket = None


def start_local_api(workspace: Workspace, port: int | None = None) -> LocalApiServer | None:
    """Start serving the API while the app is open (not waiting for it); ``None`` when it is turned off.

    The window works without the API, so a port in use (``crm-desktop serve`` running, say) or a missing keyring
    only costs the API, and is logged.
    """
    chosen = port_from_env() if port is None else port
    if chosen is None:
        return None
    server = LocalApiServer(workspace, chosen)
    server.start_in_background()
    return server
