"""Serve sandbox CRMs from a child process of their own, so the process that talks to them does none of their work.

Demo mode uses it: the emulators' request handling then competes neither for the app's interpreter lock (an SQL
call on the GUI thread beside a busy emulator thread waits for the lock at every step) nor for its event loop, and
the child may tune itself for serving (uvloop, collector settings) without touching the app's process.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from crm_desktop.sandbox.core import SandboxConfig

logger = logging.getLogger(__name__)

#: How long a stopping child gets before it is terminated.
STOP_SECONDS = 5.0


@dataclass(frozen=True)
class SandboxSpec:
    """One sandbox to serve: its provider, its configuration, and run-time settings applied before it serves.

    Attributes:
        provider: ``salesforce``, ``hubspot`` or ``pipedrive``.
        config: the sandbox's configuration.
        settings: what the control endpoint's config call would set (plan limits, for example).
    """

    provider: str
    config: SandboxConfig
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ServedSandbox:
    """A sandbox served by a :class:`SandboxProcess`, as seen from the parent.

    Attributes:
        provider: the CRM it emulates.
        base_url: where it listens.
    """

    provider: str
    base_url: str
    _credentials: dict[str, Any]
    _owner: SandboxProcess
    _index: int

    def credentials(self) -> dict[str, Any]:
        """The credentials it issued when it started (throwaway tokens, kept in memory only)."""
        return dict(self._credentials)

    def summary(self) -> dict[str, Any]:
        """How many records of each kind it holds now."""
        return self._owner.summaries()[self._index]


class SandboxProcess:
    """Serves sandboxes on loopback from a child process; ``start()`` returns once they accept connections.

    Attributes:
        sandboxes: what is served, in order (empty until started).
    """

    def __init__(self, specs: Sequence[SandboxSpec], host: str = "127.0.0.1", *, start_timeout: float = 60.0) -> None:
        self._specs = list(specs)
        self._host = host
        self._start_timeout = start_timeout
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self.sandboxes: list[ServedSandbox] = []

    def start(self) -> None:
        """Start the child and wait until every sandbox listens.

        Raises:
            RuntimeError: when already started, or the sandboxes do not come up in time or fail to.
        """
        self.launch()
        self.wait_until_served()

    def launch(self) -> None:
        """Start the child without waiting: the caller does other work while it comes up, then calls
        :meth:`wait_until_served`.

        Raises:
            RuntimeError: when already started.
        """
        if self._process is not None:
            raise RuntimeError("sandbox process already started")
        # A fresh interpreter, not a fork of one that may hold Qt, threads and open database connections.
        context = multiprocessing.get_context("spawn")
        self._conn, child_end = context.Pipe()
        self._process = context.Process(
            target=_serve_in_child, args=(self._specs, self._host, child_end), name="sandbox-server", daemon=True
        )
        self._process.start()
        child_end.close()

    def wait_until_served(self) -> None:
        """Wait until every sandbox of a launched child listens; then :attr:`sandboxes` names them.

        Raises:
            RuntimeError: when not launched, or the sandboxes do not come up in time or fail to (the child is
                stopped).
        """
        if self._process is None or self._conn is None:
            raise RuntimeError("sandbox process not launched")
        try:
            if not self._conn.poll(self._start_timeout):
                raise RuntimeError(f"sandbox process did not start within {self._start_timeout:.0f} s")
            kind, payload = self._conn.recv()
        except (EOFError, OSError) as exc:
            self.stop()
            raise RuntimeError("sandbox process ended before it served") from exc
        except BaseException:
            self.stop()
            raise
        if kind != "ready":
            self.stop()
            raise RuntimeError(f"sandbox process failed to start: {payload}")
        self.sandboxes = [
            ServedSandbox(provider, base_url, credentials, self, index)
            for index, (provider, base_url, credentials) in enumerate(payload)
        ]
        logger.info("sandboxes listening in process %s: %s", self._process.pid,
                    ", ".join(s.base_url for s in self.sandboxes))

    def summaries(self) -> list[dict[str, Any]]:
        """Each sandbox's record counts, in order."""
        if self._conn is None:
            raise RuntimeError("sandbox process not started")
        self._conn.send("summary")
        answer: list[dict[str, Any]] = self._conn.recv()
        return answer

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Stop serving and wait for the child to end (idempotent); a child that does not end is terminated."""
        conn, process = self._conn, self._process
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.send("stop")
            conn.close()
        if process is not None:
            process.join(timeout)
            if process.is_alive():
                logger.warning("sandbox process still running after %.0f s; terminating it", timeout)
                process.terminate()
                process.join(timeout)
        self._conn = None
        self._process = None
        self.sandboxes = []

    def __enter__(self) -> SandboxProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def _serve_in_child(specs: Sequence[SandboxSpec], host: str, conn: Connection) -> None:
    """The child: serve until the parent says stop or goes away (its end of the pipe closes)."""
    from crm_desktop.sandbox.server import SandboxServer, make_sandbox, new_serving_loop, settle_serving_process

    # Ctrl-C in a terminal reaches the whole process group: the parent decides when serving ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sandboxes = [make_sandbox(spec.provider, spec.config) for spec in specs]
        for sandbox, spec in zip(sandboxes, specs, strict=True):
            sandbox.apply_config(spec.settings)
        server = SandboxServer(sandboxes, host, loop_factory=new_serving_loop)
        # A process whose only job is serving: as `crm-desktop sandbox` does.
        settle_serving_process()
        server.start()
    except Exception as exc:  # reported to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    try:
        conn.send(("ready", [(s.provider, s.base_url, s.credentials()) for s in sandboxes]))
        while True:
            try:
                command = conn.recv()
            except (EOFError, OSError):
                break
            if command != "summary":
                break
            conn.send([sandbox.summary() for sandbox in sandboxes])
    finally:
        server.stop()
