"""The ``crm-desktop sandbox`` and ``crm-desktop demo`` commands, and the ``--demo`` start of the app."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from crm_desktop.app.text import plural
from crm_desktop.cli.arguments import COUNT, PORT, whole_number
from crm_desktop.domain.models import PROVIDERS

JsonFlag = Callable[[argparse.ArgumentParser], None]


def add_demo_commands(commands: Any, json_flag: JsonFlag, parser_class: type[argparse.ArgumentParser]) -> None:
    """Register ``sandbox`` and ``demo`` on the top-level subparsers."""
    sandbox = commands.add_parser(
        "sandbox",
        help="serve local emulators of the Salesforce, HubSpot and Pipedrive APIs",
        description="Serve sandbox CRMs on loopback until Ctrl-C (SIGINT) or SIGTERM. When ready, prints one JSON "
        "line per provider with its base URL and credentials.",
    )
    which = sandbox.add_mutually_exclusive_group()
    which.add_argument("--provider", choices=PROVIDERS, help="serve one CRM")
    which.add_argument("--all", action="store_true", help="serve all three (the default)")
    sandbox.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    sandbox.add_argument("--port", type=whole_number(0, 65_533), default=0,
                         help="port of the first sandbox (the next ones use the following ports; 0: free ports)")
    sandbox.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every request")
    sandbox.add_argument("--jitter-ms", type=float, default=0.0, help="random extra delay, 0..N ms")
    sandbox.add_argument("--faults", default="",
                         help="fault spec, e.g. '5xx:0.05,429:0.02,reset:0.01,timeout@40,expire@100,invalid:0.01'")
    sandbox.add_argument("--contacts", type=COUNT, default=0, help="generated contacts each sandbox starts with")
    sandbox.add_argument("--seed", type=int, default=7, help="seed of the generated data and the faults")
    sandbox.add_argument("--tls-cert", type=Path, metavar="CERT.pem",
                         help="serve over HTTPS with this certificate chain (PEM; needs --tls-key)")
    sandbox.add_argument("--tls-key", type=Path, metavar="KEY.pem", help="the certificate's private key (PEM)")
    sandbox.set_defaults(handler=cmd_sandbox)

    demo = commands.add_parser(
        "demo",
        help="set up the demo workspace on the sandboxes (the app's --demo, without a window with --headless)",
        description="Start the three sandbox CRMs on free loopback ports, create a demo workspace (three "
        "integrations, a few hundred social contacts) in a separate demo data dir and print what was "
        "set up; with --sync run a first sync of each; with --serve keep the sandboxes running until Ctrl-C.",
    )
    demo.add_argument("--headless", action="store_true", help="no window (the only mode of this command)")
    demo.add_argument("--contacts", type=COUNT, default=300, help="local social contacts to start with")
    demo.add_argument("--sync", action="store_true", help="also run a first sync of each integration")
    demo.add_argument("--serve", action="store_true",
                      help="keep the sandboxes running until Ctrl-C, with the local API and the social feed")
    demo.add_argument("--feed-rate", type=float, metavar="N", default=None,
                      help="social feed events per minute with --serve (default: $CRM_DESKTOP_DEMO_FEED_PER_MINUTE "
                      "or 6; 0: no feed)")
    demo.add_argument("--api-port", type=PORT, default=None,
                      help="port of the demo's local API with --serve (default: $CRM_DESKTOP_API_PORT or 8765; 0: a "
                      "free one)")
    json_flag(demo)
    demo.set_defaults(handler=cmd_demo)


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Serve sandboxes until a signal; print their URLs and credentials when ready."""
    from crm_desktop.sandbox.core import SandboxConfig, parse_fault_spec
    from crm_desktop.sandbox.server import (
        ServingTls,
        make_sandbox,
        new_serving_loop,
        serve_until_signal,
        settle_serving_process,
    )

    try:
        rules = parse_fault_spec(args.faults) if args.faults else []
    except ValueError as exc:
        sys.stderr.write(f"crm-desktop: --faults: {exc}\n")
        return 2
    if (args.tls_cert is None) != (args.tls_key is None):
        sys.stderr.write("crm-desktop: --tls-cert and --tls-key go together (the certificate and its key)\n")
        return 2
    tls = None
    if args.tls_cert is not None:
        for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
            if not path.is_file():
                sys.stderr.write(f"crm-desktop: {flag}: {path} is not a readable file\n")
                return 2
        tls = ServingTls(args.tls_cert, args.tls_key)
    providers = [args.provider] if args.provider else list(PROVIDERS)
    sandboxes = [
        make_sandbox(p, SandboxConfig(latency_ms=args.latency_ms, jitter_ms=args.jitter_ms, faults=list(rules),
                                      seed=args.seed + i, contacts=args.contacts))
        for i, p in enumerate(providers)
    ]
    ports = [args.port + i for i in range(len(sandboxes))] if args.port else None

    def ready(served: Sequence[Any]) -> None:
        for sandbox in served:
            line = {"provider": sandbox.provider, "baseUrl": sandbox.base_url, "credentials": sandbox.credentials(),
                    "control": f"{sandbox.base_url}/__sandbox__/state"}
            sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    # A process of its own: what it loaded (modules, seeded records) is frozen out of full garbage collections,
    # each of which walked all of it again while every request in flight waited (tens of milliseconds).
    settle_serving_process()
    try:
        with asyncio.Runner(loop_factory=new_serving_loop) as runner:
            runner.run(serve_until_signal(sandboxes, args.host, ports, ready, tls=tls))
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"crm-desktop: cannot serve the sandboxes: {exc}\n")
        return 2
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Set up the demo headless, sync it once, print what was set up."""
    from crm_desktop.app.demo import start_demo

    demo = start_demo(args.data_dir, local_contacts=args.contacts)
    try:
        summary = demo.describe()
        if args.sync:
            runs = []
            for integration in demo.workspace.integrations.list():
                result = asyncio.run(demo.workspace.sync.sync(integration.name))
                runs.append({"integration": integration.name, "status": result.status.value, **result.counts,
                             "apiCalls": result.api_calls})
            summary["firstSync"] = runs
        if args.json:
            sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        else:
            lines = [f"demo workspace: {summary['dataDir']}",
                     f"local: {plural(summary['localContacts'], 'contact')}, {plural(summary['localLeads'], 'lead')}"]
            lines += [f"sandbox {s['provider']}: {s['baseUrl']}" for s in summary["sandboxes"]]
            for run in summary.get("firstSync", []):
                lines.append(f"first sync of {run['integration']}: {run['status']}, {run['created']} created, "
                             f"{run['updated']} updated, {run['failed']} failed, {plural(run['apiCalls'], 'API call')}")
            sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        if args.serve:
            rate = demo_feed_rate(args.feed_rate)
            asyncio.run(serve_demo(demo, args.api_port, rate))
        failed = any(r["status"] == "failed" for r in summary.get("firstSync", []))
        return 1 if failed else 0
    finally:
        demo.stop()


def demo_feed_rate(given: float | None) -> float:
    """``--feed-rate``, else ``$CRM_DESKTOP_DEMO_FEED_PER_MINUTE``, else a few a minute.

    Raises:
        CommandError: for a negative rate or an unreadable variable.
    """
    from crm_desktop.app.demo import feed_rate
    from crm_desktop.cli.common import CommandError

    if given is not None:
        if not given >= 0:
            raise CommandError(f"--feed-rate {given}: give 0 (no feed) or more events per minute")
        return given
    try:
        return feed_rate()
    except ValueError as exc:
        raise CommandError(str(exc)) from None


async def serve_demo(demo: Any, api_port: int | None, rate: float) -> None:
    """Serve the demo's local API and run its social feed until Ctrl-C or SIGTERM; then stop both cleanly."""
    from crm_desktop.api.server import LocalApiServer
    from crm_desktop.app.api_port import port_from_env

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(number, stop.set)
    port = api_port if api_port is not None else port_from_env()
    api = LocalApiServer(demo.workspace, port or 0)
    url = await api.start()
    sys.stdout.write(json.dumps({"api": url, "feedPerMinute": rate}) + "\n")
    sys.stdout.flush()
    sys.stderr.write("sandboxes, local API and social feed running; Ctrl-C to stop\n")
    try:
        if rate > 0:
            feed = demo.social_feed(url, api.tokens.current(), rate)
            stats = await feed.run(stop)
            sys.stderr.write(f"social feed: {plural(stats.events, 'event')} posted, "
                             f"{plural(stats.salesperson_steps, 'salesperson step')}\n")
        else:
            await stop.wait()
    finally:
        await api.stop()


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def open_demo_gui(data_dir: Path | None) -> int:
    """Start the sandboxes and the demo workspace, then open the app on it with the social feed posting to its local
    API; stop the feed and the sandboxes on exit."""
    from crm_desktop.app.api_port import PORT_ENV, port_from_env
    from crm_desktop.app.demo import FeedThread, feed_rate, start_demo
    from crm_desktop.ui.app import run_gui

    try:
        rate = feed_rate()
    except ValueError as exc:
        sys.stderr.write(f"crm-desktop: {exc}\n")
        return 2
    demo = start_demo(data_dir)
    feed: FeedThread | None = None
    try:
        port = port_from_env()
        if rate > 0 and port is not None:
            if not port or not os.environ.get(PORT_ENV, "").strip():
                # The feed must know where the app's API listens: a free port, which the app then takes.
                port = _free_loopback_port()
                os.environ[PORT_ENV] = str(port)
            feed = FeedThread(demo, f"http://127.0.0.1:{port}", rate)
            feed.start()
        return run_gui(lambda: demo.workspace, sys.argv[:1])
    finally:
        if feed is not None:
            feed.stop()
        demo.server.stop()
