"""Fault drill: push contacts to each sandbox CRM through a storm of faults; every valid record must land, every
invalid one must be listed with its reason, nothing may be dropped silently or duplicated.

The profile (issue 14 §5), applied by the sandbox to every API request and record:
- 10% of requests answer a 5xx and 5% a 429 (in the vendor's own shapes and headers);
- 1% of requests lose their connection (reset) and 0.5% time out;
- every access token expires after each 500 requests (the adapter refreshes, or re-reads its key, and retries);
- 1% of the records written are refused by the CRM as invalid (a permanent error: never retried).

The local contacts are pushed with the app's own sync service (the run is recorded, the outbox used); the sandbox is
reached in-process (``sandbox.transport()``: the faults are the sandbox's own, resets and timeouts raised as httpx
errors), so the drill measures the engine, not the socket layer. A run the faults stop early is simply run again, as
the schedule would, until every record is accounted for.

Run from the repository root::

    python -m bench.fault_drill                               # 5,000 contacts on each of the three CRMs
    python -m bench.fault_drill --crm pipedrive --contacts 1000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration, Provider, SyncDirection
from crm_desktop.sandbox.core import FaultKind, FaultRule, SandboxConfig
from crm_desktop.sandbox.data import generate_people
from crm_desktop.sandbox.server import make_sandbox
from crm_desktop.vault import Vault
from crm_desktop.vault.ephemeral import EphemeralKeyring
from tests.sync.crash_worker import crm_contacts

logger = logging.getLogger(__name__)

PROVIDERS = ("hubspot", "salesforce", "pipedrive")
#: Limits high enough that the profile's own 429s are the rate limiting under test.
LIMITS: dict[str, dict[str, Any]] = {
    "hubspot": {"ten_second_limit": 190, "daily_limit": 100_000_000},
    "salesforce": {"concurrent_limit": 25, "daily_api_limit": 100_000_000},
    "pipedrive": {"burst_limit": 120, "daily_token_budget": 1_000_000_000},
}
#: Runs after the first that a drill allows (a run ended by a fault is run again, as the schedule would).
MAX_RUNS = 5


def fault_profile(crm: str, expire_every: int = 500, horizon: int = 200_000, *, revoke: bool = False
                  ) -> list[FaultRule]:
    """The issue's mixed profile. Token expiry applies to Salesforce, whose OAuth access tokens expire and are
    refreshed. HubSpot (private-app token) and Pipedrive (API token) integrations sign in with tokens that do not
    expire: the sandbox's "expiry" there is a revocation, which rightly stops the run for the marketer to reconnect
    (``--revoke`` adds it to see that: nothing is lost, the next run goes on)."""
    rules = [
        FaultRule(FaultKind.SERVER_ERROR, probability=0.10),
        FaultRule(FaultKind.RATE_LIMIT, probability=0.05),
        FaultRule(FaultKind.CONNECTION_RESET, probability=0.01),
        FaultRule(FaultKind.READ_TIMEOUT, probability=0.005),
        FaultRule(FaultKind.INVALID_RECORD, probability=0.01),
    ]
    if crm == "salesforce" or revoke:
        rules.append(FaultRule(FaultKind.TOKEN_EXPIRY, at=list(range(expire_every, horizon, expire_every))))
    return rules


@dataclass
class DrillReport:
    """What one CRM's drill found.

    Attributes:
        landed: contacts the CRM holds (distinct emails).
        listed_invalid: contacts the runs listed as refused, with a reason, and not in the CRM.
        lost: contacts neither in the CRM nor listed: silently dropped (must be 0).
        duplicates: emails the CRM holds more than once (must be 0).
        listed_but_landed: contacts the last run listed as failed that the CRM holds all the same: the person
            landed but a part of its write was refused (on Pipedrive, its social note); listed, so not silent.
        reasons: the refusals' reasons, counted.
        landed_reasons: the reasons the listed-but-landed contacts were listed with, counted.
        retry: what retrying the last run's failed records did (as the Sync Monitor's "Retry failed"), faults still
            on: its status and counts, and how many of the listed-but-landed contacts it left failed.
        faults_fired: the faults the sandbox injected, by kind.
    """

    crm: str
    contacts: int
    runs: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    landed: int = 0
    listed_invalid: int = 0
    lost: int = 0
    duplicates: int = 0
    listed_but_landed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    landed_reasons: dict[str, int] = field(default_factory=dict)
    retry: dict[str, Any] = field(default_factory=dict)
    faults_fired: dict[str, int] = field(default_factory=dict)
    api_calls: int = 0
    #: The first emails found lost or listed-but-landed, to look into.
    examples: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.lost == 0 and self.duplicates == 0 and self.landed + self.listed_invalid == self.contacts


async def drill(crm: str, count: int, seed: int, data_dir: Path, expire_every: int = 500, *,
                revoke: bool = False) -> DrillReport:
    faults = fault_profile(crm, expire_every, revoke=revoke)
    sandbox = make_sandbox(crm, SandboxConfig(seed=seed, log_bodies=False, faults=faults))
    sandbox.apply_config(LIMITS[crm])
    workspace = Workspace.open(data_dir, vault=Vault(backend=EphemeralKeyring()), transport=sandbox.transport())
    report = DrillReport(crm, count)
    try:
        name = f"drill-{crm}"
        workspace.integrations.add(
            Integration(provider=Provider(crm), name=name, base_url=sandbox.base_url, domain="acme"),
            {"apiToken": sandbox.credentials()["apiToken"]} if crm == "pipedrive" else sandbox.credentials(),
        )
        people = list(generate_people(count, seed))
        workspace.contacts.save_many(
            Contact(email=p.email, first_name=p.first_name, last_name=p.last_name, company=p.company)
            for p in people)
        emails = {p.email.lower() for p in people}
        failed: dict[str, str] = {}
        failed_last: set[str] = set()
        started = time.perf_counter()
        for _ in range(1 + MAX_RUNS):
            result = await workspace.sync.sync(name, SyncDirection.PUSH)
            report.api_calls += result.api_calls
            report.runs.append({"status": result.status.value, "counts": dict(result.counts),
                                "apiCalls": result.api_calls, "message": result.message})
            # A record refused in one run may land in a later one (a refusal is not sent again unless it
            # changes, but a run the faults stopped leaves the rest for the next one).
            # Every failed record, from the run's record log (the result lists only the first of a large run's).
            logged = ([(f.record_key, f.message) for f in workspace.monitor.store.failed_records(result.run_id)]
                      if result.run_id is not None else [(f.email, f.message) for f in result.failures])
            failed.update({email.lower(): _reason(email, message) for email, message in logged})
            failed_last = {email.lower() for email, _ in logged}
            if result.status.value in {"succeeded", "partial"}:
                break
        report.seconds = round(time.perf_counter() - started, 1)
        held = Counter(email for _, email in crm_contacts(sandbox))
        landed = set(held) & emails
        report.landed = len(landed)
        report.duplicates = sum(1 for n in held.values() if n > 1)
        listed = set(failed) - landed
        report.listed_invalid = len(listed)
        report.listed_but_landed = len(failed_last & landed)
        report.lost = len(emails - landed - listed)
        report.examples = sorted(emails - landed - listed)[:5] + sorted(failed_last & landed)[:5]
        report.reasons = dict(Counter(failed[email] for email in listed).most_common(5))
        report.landed_reasons = dict(Counter(failed[email] for email in failed_last & landed).most_common(5))
        report.faults_fired = dict(sandbox.faults.fired)
        if failed_last and result.run_id is not None:
            retried = await workspace.monitor.retry_failed(result.run_id)
            again = retried.result
            if again is not None and again.run_id is not None:
                still = {f.record_key.lower() for f in workspace.monitor.store.failed_records(again.run_id)}
                report.retry = {"status": again.status.value, "counts": dict(again.counts),
                                "apiCalls": again.api_calls, "retried": retried.retried,
                                "landed_still_failed": len(still & failed_last & landed),
                                "still_failed": len(still)}
    finally:
        workspace.close()
    return report


def _reason(email: str, message: str) -> str:
    """A refusal's reason without the record's own email (for counting)."""
    if not message.strip():
        return "(no reason given)"
    return " ".join(message.replace(email, "<email>").split())[:160]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crm", choices=PROVIDERS, action="append", help="only this CRM (repeatable)")
    parser.add_argument("--contacts", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--expire-every", type=int, default=500, metavar="N",
                        help="access tokens expire after each N requests (default 500; HubSpot and Salesforce "
                        "write 100 and 200 records a request, so 5,000 contacts take about 120: use a smaller N "
                        "to see expiry at that size)")
    parser.add_argument("--revoke", action="store_true",
                        help="HubSpot and Pipedrive too: their tokens revoked at the same pace (each revocation "
                        "stops the run, which is run again)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    reports = []
    for crm in args.crm or PROVIDERS:
        with tempfile.TemporaryDirectory(prefix=f"fault-drill-{crm}-") as folder:
            report = asyncio.run(drill(crm, args.contacts, args.seed, Path(folder), args.expire_every,
                                         revoke=args.revoke))
        reports.append(report)
        if not args.json:
            print(f"{crm:>10}: {report.landed:,} landed + {report.listed_invalid:,} listed invalid of "
                  f"{report.contacts:,}; lost {report.lost}, duplicates {report.duplicates}, listed-but-landed "
                  f"{report.listed_but_landed}; {len(report.runs)} run(s), {report.api_calls:,} API calls, "
                  f"{report.seconds} s; faults {report.faults_fired}; reasons {report.reasons}; listed-but-landed "
                  f"reasons {report.landed_reasons}; retry of the failed {report.retry}", flush=True)
    if args.json:
        json.dump({"when": datetime.now(UTC).isoformat(timespec="seconds"), "host": platform.node(),
                   "reports": [asdict(r) | {"passed": r.passed} for r in reports]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0 if all(r.passed for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
