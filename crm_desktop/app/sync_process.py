"""Sync runs in a child process of the desktop app, so a run's memory and garbage never pause the window.

The sync worker thread keeps a run's store work off the window's loop, but not off its interpreter: a run makes
objects by the hundred thousand, and each time enough of them outlive a young collection CPython walks every
object the process holds (the app's whole imported code, about 200,000 of them) with its lock held, 150-300 ms in
which the window cannot draw. In a child process of their own, full runs (scheduled, "Sync now", "Sync all now")
make their garbage where it cannot stop the window, and give their memory back when the child is stopped (after
two minutes without a run; the next run starts another). So do pushes of many chosen records (a local API batch,
"Retry failed" of a large run).

The parent keeps what only it may hold: the keyring answers the child's reads and writes of credentials through
the pipe (so a demo's in-memory tokens and a token refreshed by the child both live where they did), and its run
listeners (alerts, the run metrics) hear of each run as before. The child's log records are handled by the
parent's logging. Pushes of a few chosen records (an event's contact, "Sync this one now"), which a child's start
would only delay, dry runs and every other store call stay on the sync worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import itertools
import logging
import logging.handlers
import multiprocessing
import os
import pickle
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from crm_desktop.domain.models import SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.store.models import SyncTrigger
from crm_desktop.sync.engine import Progress, SyncProgress, SyncResult
from crm_desktop.vault.relayed import Relay

logger = logging.getLogger(__name__)

#: How long the parent waits for a new child to open the workspace before giving up on it.
START_SECONDS = 60.0
#: How long closing waits for cancelled runs to wind down (lock released, run recorded as stopped).
CLOSE_SECONDS = 2.0
#: How long the child is kept without a run before it is stopped (its memory given back); the next run starts one.
IDLE_SECONDS = 120.0
#: How long the child waits for the parent's keyring to answer one call.
KEYRING_SECONDS = 60.0


class SyncProcessError(RuntimeError):
    """The sync process could not start, stopped unexpectedly, or failed in a way it could not pass on as is."""


class SyncProcessStartError(SyncProcessError):
    """The sync process could not be started, or ended before it was ready: nothing of the run was sent."""


class SyncProcess:
    """One child process that runs full syncs of a workspace for the desktop app; started at the first run.

    ``keyring`` answers the child's keyring calls (:func:`crm_desktop.vault.relayed.relay_to` on the app's own).

    Attributes:
        data_dir: the workspace's data dir (the child opens the same store, at the parent's database URL).
    """

    def __init__(self, data_dir: Path, database_url: str, keyring: Relay, *,
                 start_timeout: float = START_SECONDS) -> None:
        self.data_dir = data_dir
        self._database_url = database_url
        self._keyring = keyring
        self._start_timeout = start_timeout
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._ready: asyncio.Future[int] | None = None
        self._runs: dict[int, _PendingRun] = {}
        self._keys = itertools.count(1)
        self._closed = False
        self._idle: asyncio.TimerHandle | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        process = self._process
        return process.pid if process is not None and process.is_alive() else None

    @property
    def running(self) -> bool:
        """Whether it still takes runs."""
        return not self._closed

    async def run(self, name: str, direction: SyncDirection, trigger: SyncTrigger, *,
                  progress: Progress | None = None, on_started: Callable[[int], None] | None = None,
                  local_ids: Mapping[RecordObject, Sequence[int]] | None = None) -> SyncResult:
        """Run one sync of integration ``name`` in the child (of just the local records ``local_ids``, when given)
        and return its result here.

        ``progress`` and ``on_started`` are called on this loop. Cancelling the caller cancels the run in the child
        and waits for its clean-up; cancelling again stops that wait.

        Raises:
            SyncProcessError: the child cannot start or stopped during the run.
            whatever the run raised in the child (``SyncAlreadyRunning``, ``AuthError``, ``VaultError``...).
        """
        if self._closed:
            raise SyncProcessError("the sync process is closed")
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        await self._started()
        key = next(self._keys)
        assert self._ready is not None and self._conn is not None
        conn = self._conn
        pending = _PendingRun(self._ready, asyncio.get_running_loop().create_future(), progress, on_started)
        self._runs[key] = pending
        try:
            chosen = None if local_ids is None else {obj.value: list(ids) for obj, ids in local_ids.items()}
            self._send(("run", key, name, direction.value, trigger.value, chosen), conn)
            try:
                return await asyncio.shield(pending.outcome)
            except asyncio.CancelledError:
                if pending.outcome.done():
                    raise
                with contextlib.suppress(OSError, SyncProcessError):
                    self._send(("cancel", key), conn)
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await pending.outcome
                raise
        finally:
            self._runs.pop(key, None)
            self._when_idle()

    async def _started(self) -> None:
        """Start the child if it is not running, and wait until it has opened the workspace."""
        loop = asyncio.get_running_loop()
        ready = self._ready
        if ready is not None and (not ready.done() or (self._process is not None and self._process.is_alive())):
            await asyncio.shield(ready)  # starting (for another run), or started
            return
        self._ready = ready = loop.create_future()
        # A fresh interpreter, not a fork of one that holds Qt, threads and open database connections.
        context = multiprocessing.get_context("spawn")
        conn, child_end = context.Pipe()
        self._conn = conn
        level = logging.getLogger("crm_desktop").getEffectiveLevel()
        self._process = process = context.Process(
            target=_serve, args=(child_end, str(self.data_dir), self._database_url, level), name="crm-desktop-sync",
            daemon=True,
        )
        # Starting it execs a new interpreter and writes its set-up: a moment the window's loop need not wait.
        # A future, not a task: the app cancelling every task on its way out must not cancel the wait for it.
        starting = loop.run_in_executor(None, process.start)
        cancelled: asyncio.CancelledError | None = None
        try:
            while not starting.done():
                try:
                    await asyncio.shield(starting)
                except asyncio.CancelledError as exc:
                    # The thread goes on starting the child (milliseconds): it is waited for and kept as started
                    # (the next run uses it, closing stops it), not taken for a child that could not start.
                    cancelled = exc
            starting.result()
        except Exception as exc:
            self._conn = self._process = self._ready = None
            conn.close()
            error = SyncProcessStartError(f"the sync process could not start: {exc}")
            ready.set_exception(error)
            ready.exception()  # marked as retrieved: the runs waiting for it, if any, get it too
            raise error from exc
        finally:
            child_end.close()
        self._reader = threading.Thread(target=self._read, args=(conn, ready, process), name="sync-process-reader",
                                        daemon=True)
        self._reader.start()
        if cancelled is not None:
            self._when_idle()  # started for nothing: stopped as an idle child unless a run comes for it
            raise cancelled
        try:
            pid = await asyncio.wait_for(asyncio.shield(ready), self._start_timeout)
        except TimeoutError:
            self._stop(*self._detach_child(), CLOSE_SECONDS)
            raise SyncProcessStartError(f"the sync process did not start within {self._start_timeout:.0f} s") from None
        logger.info("sync process %s started for %s", pid, self.data_dir)

    def _send(self, message: tuple[Any, ...], conn: Connection | None = None) -> None:
        conn = conn or self._conn
        if conn is None:
            raise SyncProcessError("the sync process is not running")
        with self._send_lock:
            conn.send(message)

    # -- the reader thread ---------------------------------------------------------------------
    def _read(self, conn: Connection, ready: asyncio.Future[int], process: multiprocessing.process.BaseProcess) -> None:
        """Take the child's messages until its end of the pipe closes; answer keyring calls here, post the rest."""
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # a message that does not unpickle: said, and the rest still read
                logger.exception("a message of the sync process could not be read")
                continue
            kind = message[0]
            if kind == "keyring":
                self._answer_keyring(conn, message[1], message[2], message[3])
            elif kind == "log":
                record: logging.LogRecord = message[1]
                logging.getLogger(record.name).handle(record)
            elif kind in ("ready", "start-failed"):
                _post(ready.get_loop(), self._started_or_not, message, ready)
            else:
                pending = self._runs.get(message[1])
                if pending is not None:  # else a run whose caller stopped waiting
                    _post(pending.outcome.get_loop(), self._take, message, pending)
        process.join(1.0)
        loops = {ready.get_loop()} | {pending.outcome.get_loop() for pending in list(self._runs.values())}
        for loop in loops:
            _post(loop, self._child_ended, ready, process.exitcode)

    def _answer_keyring(self, conn: Connection, call_id: int, operation: str, arguments: tuple[str, ...]) -> None:
        try:
            answer: tuple[bool, Any] = (True, self._keyring(operation, *arguments))
        except Exception as exc:
            answer = (False, _portable(exc))
        with contextlib.suppress(OSError, SyncProcessError):
            self._send(("keyring-answer", call_id, *answer), conn)

    # -- on the caller's loop ------------------------------------------------------------------
    @staticmethod
    def _started_or_not(message: tuple[Any, ...], ready: asyncio.Future[int]) -> None:
        if ready.done():
            return
        if message[0] == "ready":
            ready.set_result(message[1])
        else:
            ready.set_exception(SyncProcessStartError(f"the sync process could not open the workspace: {message[1]}"))

    @staticmethod
    def _take(message: tuple[Any, ...], pending: _PendingRun) -> None:
        kind = message[0]
        if kind == "started" and pending.on_started is not None:
            _call_safely(pending.on_started, message[2], "run started")
        elif kind == "progress" and pending.progress is not None:
            _call_safely(pending.progress, message[2], "progress")
        elif pending.outcome.done():
            return
        elif kind == "result":
            pending.outcome.set_result(message[2])
        elif kind == "error":
            pending.outcome.set_exception(message[2])
        elif kind == "cancelled":
            pending.outcome.cancel()

    def _child_ended(self, ready: asyncio.Future[int], exitcode: int | None) -> None:
        loop = asyncio.get_running_loop()
        stopped = SyncProcessError(
            "the sync process stopped" + (f" (exit code {exitcode})" if exitcode not in (None, 0) else "")
            + "; the run stopped with it and the next run resumes where it left off"
        )
        if ready.get_loop() is loop:
            if not ready.done():
                ready.set_exception(SyncProcessStartError(
                    "the sync process ended before it was ready" + (f" (exit code {exitcode})" if exitcode else "")))
            if ready is self._ready:
                self._stop(*self._detach_child(), 0.0)  # it has ended: its pipe closed; the next run starts one
        for pending in list(self._runs.values()):
            if pending.child is ready and pending.outcome.get_loop() is loop and not pending.outcome.done():
                pending.outcome.set_exception(stopped)
        if exitcode not in (0, None) and not self._closed and ready.get_loop() is loop:
            logger.warning("sync process ended with exit code %s", exitcode)

    # -- closing -------------------------------------------------------------------------------
    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Cancel the runs going on, give them ``timeout`` seconds to wind down in the child, and stop it."""
        if self._closed:
            return
        self._closed = True
        if self._idle is not None:
            self._idle.cancel()
        self._stop(*self._detach_child(), timeout)

    def _when_idle(self) -> None:
        """After a run ended: the child is stopped once no run has come for :data:`IDLE_SECONDS`, so that the
        memory a large run left in it goes back to the system."""
        if self._idle is not None:
            self._idle.cancel()
        if not self._runs and not self._closed:
            self._idle = asyncio.get_running_loop().call_later(IDLE_SECONDS, self._retire_if_idle)

    def _retire_if_idle(self) -> None:
        self._idle = None
        if self._runs or self._closed or self._process is None:
            return
        logger.info("sync process %s idle for %.0f s; stopping it", self.pid, IDLE_SECONDS)
        parts = self._detach_child()  # a run sent from now on starts a new child
        threading.Thread(target=self._stop, args=(*parts, CLOSE_SECONDS), name="sync-process-stop",
                         daemon=True).start()

    def _detach_child(self) -> tuple[Connection | None, multiprocessing.process.BaseProcess | None,
                                     threading.Thread | None]:
        parts = (self._conn, self._process, self._reader)
        self._conn = self._process = self._reader = None
        self._ready = None
        return parts

    def _stop(self, conn: Connection | None, process: multiprocessing.process.BaseProcess | None,
              reader: threading.Thread | None, timeout: float) -> None:
        """Ask a child to close (its runs cancelled, ``timeout`` seconds to wind down), then wait for it to end."""
        if conn is not None:
            with contextlib.suppress(OSError), self._send_lock:
                conn.send(("close", timeout))
        if process is not None and process.pid is not None:
            process.join(timeout + 3.0)
            if process.is_alive():
                logger.warning("sync process still running %.0f s after it was asked to close; terminating it",
                               timeout + 3.0)
                process.terminate()
                process.join(5.0)
        if conn is not None:
            conn.close()
        if reader is not None and reader is not threading.current_thread():
            reader.join(1.0)


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    """Call ``callback`` on ``loop`` (from the reader thread); nothing when that loop has closed."""
    if not loop.is_closed():
        with contextlib.suppress(RuntimeError):  # it closed meanwhile
            loop.call_soon_threadsafe(callback, *args)


class _PendingRun:
    """A run sent to the child: the future its result lands in, and the caller's callbacks."""

    def __init__(self, child: asyncio.Future[int], outcome: asyncio.Future[SyncResult], progress: Progress | None,
                 on_started: Callable[[int], None] | None) -> None:
        self.child = child  # the child it was sent to (its readiness future)
        self.outcome = outcome
        self.progress = progress
        self.on_started = on_started


def _call_safely(callback: Callable[[Any], None], argument: Any, what: str) -> None:
    try:
        callback(argument)
    except Exception:  # a listener's bug must not end the run's wait
        logger.exception("a %s callback of the sync process failed", what)


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives the pipe as itself, else a :class:`SyncProcessError` that says what it was."""
    try:
        copy = pickle.loads(pickle.dumps(exc))
    except Exception:
        return SyncProcessError(f"{type(exc).__name__}: {exc}")
    return copy if isinstance(copy, BaseException) else SyncProcessError(str(exc))


# -- the child ---------------------------------------------------------------------------------
class _ParentChannel:
    """The child's end of the pipe: sends from any thread, and hands the parent's keyring answers to their callers."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()
        self._calls = itertools.count(1)
        self._waiting: dict[int, concurrent.futures.Future[Any]] = {}

    def send(self, message: tuple[Any, ...]) -> None:
        with self._lock:
            self.conn.send(message)

    def keyring_call(self, operation: str, *arguments: str) -> Any:
        call_id = next(self._calls)
        answer: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._waiting[call_id] = answer
        try:
            self.send(("keyring", call_id, operation, arguments))
            return answer.result(KEYRING_SECONDS)
        finally:
            self._waiting.pop(call_id, None)

    def keyring_answered(self, call_id: int, ok: bool, value: Any) -> None:
        answer = self._waiting.get(call_id)
        if answer is None:
            return
        if ok:
            answer.set_result(value)
        else:
            answer.set_exception(value)

    def parent_gone(self) -> None:
        for answer in list(self._waiting.values()):
            if not answer.done():
                answer.set_exception(SyncProcessError("the app closed"))


class _PipeQueue:
    """What :class:`logging.handlers.QueueHandler` puts records into: the pipe to the parent."""

    def __init__(self, channel: _ParentChannel) -> None:
        self._channel = channel

    def put_nowait(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(OSError):
            self._channel.send(("log", record))


def _serve(conn: Connection, data_dir: str, database_url: str, log_level: int) -> None:
    """The child: open the workspace, then run what the parent sends until it says close or goes away."""
    from crm_desktop.app.paths import DB_URL_ENV

    os.environ[DB_URL_ENV] = database_url  # the parent's store, whatever this process's environment says
    # Ctrl-C in a terminal reaches the whole process group: the app decides when its runs stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = _ParentChannel(conn)
    app_logger = logging.getLogger("crm_desktop")
    app_logger.handlers[:] = [logging.handlers.QueueHandler(_PipeQueue(channel))]  # type: ignore[arg-type]
    app_logger.setLevel(log_level)
    app_logger.propagate = False
    asyncio.run(_serve_runs(channel, Path(data_dir)))


async def _serve_runs(channel: _ParentChannel, data_dir: Path) -> None:
    from crm_desktop.app.workspace import Workspace
    from crm_desktop.vault import Vault
    from crm_desktop.vault.relayed import RelayedKeyring

    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[Any, ...] | None] = asyncio.Queue()

    def read() -> None:
        while True:
            try:
                message = channel.conn.recv()
            except (EOFError, OSError):
                break
            if message[0] == "keyring-answer":
                channel.keyring_answered(message[1], message[2], message[3])
            else:
                loop.call_soon_threadsafe(inbox.put_nowait, message)
        channel.parent_gone()
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(inbox.put_nowait, None)

    threading.Thread(target=read, name="sync-process-inbox", daemon=True).start()
    try:
        workspace = Workspace.open(data_dir, Vault(backend=RelayedKeyring(channel.keyring_call)))
    except Exception as exc:
        channel.send(("start-failed", f"{type(exc).__name__}: {exc}"))
        return
    channel.send(("ready", os.getpid()))
    runs: dict[int, asyncio.Task[None]] = {}
    close_timeout = CLOSE_SECONDS
    try:
        while True:
            message = await inbox.get()
            if message is None:
                break
            kind = message[0]
            if kind == "run":
                task = asyncio.create_task(_one_run(channel, workspace, *message[1:]))
                runs[message[1]] = task
                task.add_done_callback(functools.partial(_forget, runs, message[1]))
            elif kind == "cancel" and message[1] in runs:
                runs[message[1]].cancel()
            elif kind == "close":
                close_timeout = float(message[1])
                break
    finally:
        pending = [task for task in runs.values() if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=close_timeout)
        workspace.close()


def _forget(runs: dict[int, asyncio.Task[None]], key: int, _done: asyncio.Task[None]) -> None:
    runs.pop(key, None)


async def _one_run(channel: _ParentChannel, workspace: Any, key: int, name: str, direction: str,
                   trigger: str, chosen: dict[str, list[int]] | None) -> None:
    def started(run_id: int) -> None:
        channel.send(("started", key, run_id))

    def progress(update: SyncProgress) -> None:
        channel.send(("progress", key, update))

    try:
        integration = workspace.integrations.get(name)
        local_ids = None if chosen is None else {RecordObject(obj): ids for obj, ids in chosen.items()}
        result = await workspace.sync.run_here(integration, SyncDirection(direction), SyncTrigger(trigger), False,
                                               progress, local_ids=local_ids, on_started=started)
    except asyncio.CancelledError:
        with contextlib.suppress(OSError):
            channel.send(("cancelled", key))
        raise
    except Exception as exc:
        with contextlib.suppress(OSError):
            channel.send(("error", key, _portable(exc)))
        return
    with contextlib.suppress(OSError):
        channel.send(("result", key, result))
