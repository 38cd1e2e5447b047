"""``crm-desktop serve``: the local API on 127.0.0.1 without a window, running the sync schedule like the app."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from crm_desktop.api.server import LocalApiServer
from crm_desktop.app.api_port import DEFAULT_PORT
from crm_desktop.app.sync_service import SyncService
from crm_desktop.app.workspace import Workspace
from crm_desktop.cli.arguments import PORT
from crm_desktop.cli.common import CommandError, ExitCode, closing, open_workspace

logger = logging.getLogger(__name__)

#: How often the schedule is looked at: a due run starts at most this late (the app's own timer does no better).
SCHEDULE_POLL_SECONDS = 60.0


async def run_schedule(service: SyncService, poll_seconds: float = SCHEDULE_POLL_SECONDS, *,
                       after_batch: Callable[[], object] | None = None) -> None:
    """Run what the schedule says is due (as ``sync --due`` does), again and again, until cancelled; after a batch
    that ran something, ``after_batch`` on a worker thread (the run history's pruning; a failure is logged)."""
    while True:
        outcomes = await service.run_due()
        for name, outcome in outcomes:
            if isinstance(outcome, Exception):
                logger.warning("scheduled sync of %s: %s", name, outcome)
            else:
                logger.info("scheduled sync of %s: %s (run %s)", name, outcome.status.value, outcome.run_id)
        if outcomes and after_batch is not None:
            try:
                await asyncio.to_thread(after_batch)
            except Exception as exc:  # the store did not answer: the next batch tries again
                logger.warning("after the scheduled syncs: %s", exc)
        await asyncio.sleep(poll_seconds)


async def serve(workspace: Workspace, port: int, poll_seconds: float = SCHEDULE_POLL_SECONDS) -> None:
    """Serve the local API and run the schedule until SIGINT or SIGTERM; print ``{"url": ...}`` once ready.

    Raises:
        CommandError: when the port cannot be bound.
    """
    server = LocalApiServer(workspace, port)
    try:
        url = await server.start()
    except BaseException as exc:
        await server.stop()
        if isinstance(exc, OSError):
            raise CommandError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}; choose another --port") \
                from None
        raise
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[signal.Signals] = []
    for number in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(number, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # Windows: Ctrl+C still ends asyncio.run with KeyboardInterrupt
        installed.append(number)
    schedule = asyncio.create_task(
        run_schedule(workspace.sync, poll_seconds, after_batch=workspace.history.prune_by_setting), name="schedule")
    try:
        sys.stdout.write(json.dumps({"url": url}) + "\n")
        sys.stdout.flush()
        await stop.wait()
        logger.info("serve: stopping")
    finally:
        for number in installed:
            loop.remove_signal_handler(number)
        schedule.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await schedule
        await server.stop()
        # Background runs started through the API stop too (their clean-up releases the integration's lock).
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the local API until SIGINT/SIGTERM."""
    with closing(open_workspace(args)) as workspace:
        workspace.keep_alerts_of_runs()  # no window to notify: the app's Alerts list them when it opens
        asyncio.run(serve(workspace, args.port, args.schedule_poll))
    return ExitCode.OK


def add_commands(commands: Any) -> None:
    """Register ``serve``."""
    parser = commands.add_parser(
        "serve",
        help="serve the local API on 127.0.0.1 and run the sync schedule, without a window",
        description="Serve the local HTTP API on 127.0.0.1 (never on another address) and run the scheduled "
                    "syncs that fall due, like the app does while it is open. Prints one JSON line "
                    '{"url": "http://127.0.0.1:PORT"} when ready; stops cleanly on Ctrl+C or SIGTERM. '
                    "Requests need 'Authorization: Bearer <token>' (`crm-desktop api token`). "
                    "The API's reference is at <url>/docs.",
    )
    parser.add_argument("--port", type=PORT, default=DEFAULT_PORT,
                        help=f"the port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--schedule-poll", type=float, default=SCHEDULE_POLL_SECONDS, help=argparse.SUPPRESS)
    parser.set_defaults(handler=cmd_serve)
