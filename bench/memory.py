"""Issue 14 benchmark: the peak memory (RSS) of syncing 100,000 contacts to a sandbox CRM, pages streamed.

Two child processes run one after the other on one workspace folder, so each one's peak is its own:

- ``setup`` saves the generated contacts to the workspace's SQLite store (in chunks of ``SAVE_CHUNK``);
- ``sync`` opens the workspace, adds the sandbox integration and runs one full sync (pull, then push of every
  contact) through the app's own sync service. The sandbox CRM is served over loopback HTTP from a child process of
  its own (:class:`~crm_desktop.sandbox.process.SandboxProcess`): the real CRM is remote, so its copy of the
  100,000 records is no part of the app's memory. ``--sandbox in-process`` serves it inside the sync process
  instead (no sockets; its records then count in the figure).

Each child reports ``ru_maxrss`` (the kernel's high-water mark of its resident memory) and its current RSS at each
step. With ``--tracemalloc`` the sync child also lists the source lines holding the most memory once the sync is
over (tracing slows the sync about twofold and adds its own overhead to the RSS).

Run from the repository root (Linux)::

    python -m bench.memory                          # 100,000 contacts, Salesforce sandbox; target < 250 MB
    python -m bench.memory --count 10000 --crm hubspot --tracemalloc
    python -m bench.memory --count 20000 --sandbox in-process
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.incremental import LIMITS, SAVE_CHUNK, contacts_of, machine

#: The issue's target for the sync process's peak, in MB.
TARGET_MB = 250.0
#: Requests the sandbox's request log keeps (the benchmark reads none; a long log would weigh on the figure).
REQUEST_LOG = 100


def peak_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_mb() -> float:
    """This process's resident memory now, in MB (``/proc/self/statm``: pages)."""
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * resource.getpagesize() / 2**20


def setup_phase(data_dir: Path, count: int, seed: int) -> dict[str, Any]:
    """Save ``count`` generated contacts into the workspace in ``data_dir``."""
    from crm_desktop.app.workspace import Workspace
    from crm_desktop.vault import Vault
    from crm_desktop.vault.ephemeral import EphemeralKeyring

    figures: dict[str, Any] = {"importedMb": peak_mb()}
    started = time.perf_counter()
    workspace = Workspace.open(data_dir, vault=Vault(backend=EphemeralKeyring()))
    try:
        contacts = contacts_of(count, seed)
        figures["generatedMb"] = current_mb()
        for start in range(0, len(contacts), SAVE_CHUNK):
            workspace.contacts.save_many(contacts[start : start + SAVE_CHUNK])
        del contacts
        figures["localContacts"] = workspace.contacts.count()
    finally:
        workspace.close()
    figures["seconds"] = round(time.perf_counter() - started, 1)
    figures["peakMb"] = peak_mb()
    figures["endMb"] = current_mb()
    return figures


async def sync_phase(data_dir: Path, crm: str, trace: bool, in_process: bool) -> dict[str, Any]:
    """Sync the workspace in ``data_dir`` once with a fresh sandbox of ``crm``, served from a child process (or, with
    ``in_process``, from this one)."""
    from crm_desktop.sandbox.core import SandboxConfig

    config = SandboxConfig(log_bodies=False, max_log=REQUEST_LOG)
    if in_process:
        from crm_desktop.sandbox.server import make_sandbox

        sandbox = make_sandbox(crm, config)
        sandbox.apply_config(LIMITS[crm])
        return await _sync_once(data_dir, crm, trace, sandbox.base_url, sandbox.credentials(), sandbox.summary,
                                sandbox.transport())
    from crm_desktop.sandbox.process import SandboxProcess, SandboxSpec

    with SandboxProcess([SandboxSpec(crm, config, LIMITS[crm])]) as served:
        [remote] = served.sandboxes
        return await _sync_once(data_dir, crm, trace, remote.base_url, remote.credentials(), remote.summary, None)


async def _sync_once(data_dir: Path, crm: str, trace: bool, base_url: str, credentials: dict[str, Any],
                     summary: Callable[[], dict[str, Any]], transport: Any) -> dict[str, Any]:
    """Open the workspace, add the integration of the sandbox at ``base_url`` and sync it once; the figures."""
    from crm_desktop.app.workspace import Workspace
    from crm_desktop.domain.models import Integration, Provider
    from crm_desktop.vault import Vault
    from crm_desktop.vault.ephemeral import EphemeralKeyring

    figures: dict[str, Any] = {"importedMb": peak_mb()}
    workspace = Workspace.open(data_dir, vault=Vault(backend=EphemeralKeyring()), transport=transport)
    try:
        name = f"memory-{crm}"
        domain = None
        if crm == "pipedrive":  # the sandbox issues OAuth tokens too; an API token is what an integration keeps
            credentials, domain = {"apiToken": credentials["apiToken"]}, "acme"
        workspace.integrations.add(Integration(provider=Provider(crm), name=name, base_url=base_url, domain=domain),
                                   credentials)
        figures["localContacts"] = workspace.contacts.count()
        figures["beforeSyncMb"] = current_mb()
        figures["peakBeforeSyncMb"] = peak_mb()
        if trace:
            tracemalloc.start(1)
        started = time.perf_counter()
        result = await workspace.sync.sync(name)
        figures["seconds"] = round(time.perf_counter() - started, 1)
        figures["status"] = str(result.status)
        figures["counts"] = dict(result.counts)
        figures["crmRecords"] = summary()
        figures["peakMb"] = peak_mb()
        figures["endMb"] = current_mb()
        if trace:
            snapshot = tracemalloc.take_snapshot()
            figures["tracedPeakMb"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            figures["topAllocations"] = [
                f"{stat.size / 2**20:7.1f} MB {stat.count:>9,} blocks  {stat.traceback[0]}"
                for stat in snapshot.statistics("lineno")[:15]
            ]
    finally:
        workspace.close()
    return figures


def run_child(phase: str, data_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run one phase in a fresh interpreter; its figures."""
    command = [
        sys.executable, "-m", "bench.memory", "--phase", phase, "--data-dir", str(data_dir),
        "--count", str(args.count), "--crm", args.crm, "--seed", str(args.seed),
    ]
    if args.tracemalloc:
        command.append("--tracemalloc")
    if args.sandbox == "in-process":
        command.extend(["--sandbox", "in-process"])
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {phase} process failed ({done.returncode}):\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def check(count: int, setup: dict[str, Any], sync: dict[str, Any]) -> list[str]:
    """What went wrong: every contact saved and created in the CRM, and the sync's peak under the target."""
    problems = []
    if setup["localContacts"] != count:
        problems.append(f"the setup saved {setup['localContacts']:,} contacts, not {count:,}")
    if sync["counts"].get("created") != count or sync["counts"].get("failed"):
        problems.append(f"the sync did not create every contact: {sync['counts']}")
    if sync["peakMb"] >= TARGET_MB:
        problems.append(f"the sync's peak RSS {sync['peakMb']:.0f} MB is over the {TARGET_MB:.0f} MB target")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=100_000, help="local contacts (default 100,000)")
    parser.add_argument("--crm", choices=sorted(LIMITS), default="salesforce", help="the sandbox CRM")
    parser.add_argument("--seed", type=int, default=5, help="seed of the generated contacts")
    parser.add_argument("--tracemalloc", action="store_true", help="list the top allocations after the sync")
    parser.add_argument("--sandbox", choices=("process", "in-process"), default="process",
                        help="serve the sandbox CRM from a child process over loopback HTTP (default), or inside "
                        "the sync process (its records then count in the figure)")
    parser.add_argument("--data-dir", type=Path, help="workspace folder (default: a temporary one)")
    parser.add_argument("--phase", choices=("setup", "sync"), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.phase == "setup":
        print(json.dumps(setup_phase(args.data_dir, args.count, args.seed)))
        return 0
    if args.phase == "sync":
        print(json.dumps(asyncio.run(sync_phase(args.data_dir, args.crm, args.tracemalloc,
                                                args.sandbox == "in-process"))))
        return 0

    where = "in the sync process" if args.sandbox == "in-process" else "in a child process"
    load_before = os.getloadavg()[0]
    print(f"memory benchmark: {args.count:,} contacts, {args.crm} sandbox served {where}, {machine()}, "
          f"load average {load_before:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="crm-memory-") as scratch:
        data_dir = args.data_dir or Path(scratch)
        setup = run_child("setup", data_dir, args)
        print(f"setup process: {setup['localContacts']:,} contacts saved in {setup['seconds']} s; peak RSS "
              f"{setup['peakMb']:.0f} MB (after imports {setup['importedMb']:.0f} MB, with the generated contacts "
              f"{setup['generatedMb']:.0f} MB)", flush=True)
        sync = run_child("sync", data_dir, args)
    print(f"sync process: {sync['status']} in {sync['seconds']} s, {sync['counts']}; RSS before the sync "
          f"{sync['beforeSyncMb']:.0f} MB, peak RSS {sync['peakMb']:.0f} MB, at the end {sync['endMb']:.0f} MB "
          f"(target < {TARGET_MB:.0f} MB); load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} "
          "at the end")
    for line in sync.get("topAllocations", []):
        print("  " + line)
    problems = check(args.count, setup, sync)
    for problem in problems:
        print(f"FAILED: {problem}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "sandbox": args.sandbox, "setup": setup, "sync": sync,
                                         "loadAverage": [load_before, os.getloadavg()[0]], "problems": problems},
                                        indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
