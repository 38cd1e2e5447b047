"""The ``crm-desktop sandbox`` and ``crm-desktop demo`` commands, and the ``--demo`` start of the app."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from crm_desktop.app.text import plural
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
    sandbox.add_argument("--port", type=int, default=0,
                         help="port of the first sandbox (the next ones use the following ports; 0: free ports)")
    sandbox.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every request")
    sandbox.add_argument("--jitter-ms", type=float, default=0.0, help="random extra delay, 0..N ms")
    sandbox.add_argument("--faults", default="",
                         help="fault spec, e.g. '5xx:0.05,429:0.02,reset:0.01,timeout@40,expire@100,invalid:0.01'")
    sandbox.add_argument("--contacts", type=int, default=0, help="generated contacts each sandbox starts with")
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
    demo.add_argument("--contacts", type=int, default=300, help="local social contacts to start with")
    demo.add_argument("--sync", action="store_true", help="also run a first sync of each integration")
    demo.add_argument("--serve", action="store_true", help="keep the sandboxes running until Ctrl-C")
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
                     f"local: {summary['localContacts']} contacts, {summary['localLeads']} leads"]
            lines += [f"sandbox {s['provider']}: {s['baseUrl']}" for s in summary["sandboxes"]]
            for run in summary.get("firstSync", []):
                lines.append(f"first sync of {run['integration']}: {run['status']}, {run['created']} created, "
                             f"{run['updated']} updated, {run['failed']} failed, {plural(run['apiCalls'], 'API call')}")
            sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        if args.serve:
            sys.stderr.write("sandboxes running; Ctrl-C to stop\n")
            stop = threading.Event()
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
        failed = any(r["status"] == "failed" for r in summary.get("firstSync", []))
        return 1 if failed else 0
    finally:
        demo.stop()


def open_demo_gui(data_dir: Path | None) -> int:
    """Start the sandboxes and the demo workspace, then open the app on it; stop the sandboxes on exit."""
    from crm_desktop.app.demo import start_demo
    from crm_desktop.ui.app import run_gui

    demo = start_demo(data_dir)
    try:
        return run_gui(lambda: demo.workspace, sys.argv[:1])
    finally:
        demo.server.stop()
