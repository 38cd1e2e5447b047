"""Issue 4 benchmark: push contacts into each sandbox CRM over loopback, against its rate ceiling and an SDK script.

Each sandbox is served on loopback by :class:`crm_desktop.sandbox.server.SandboxServer` in a process of its own
(so the emulator and the client do not share one interpreter lock), with a fixed latency and each CRM's top-plan
limits. The same generated people are pushed twice into fresh sandboxes: once with CRM Desktop's adapter
(``adapter.upsert`` of ``default_contact_record`` records) and once by a straightforward script over the vendor's
official Python SDK, one request at a time. Request counts, 429s, answer times and (Salesforce) the use of the
concurrent slots are read from the sandbox's own request log. HubSpot (40,000) and Salesforce (50,000) are also
pushed a longer list, for the steady state past their first window.

Run from the repository root::

    python -m bench.push_throughput                      # the issue's figures: 10,000 contacts each
    python -m bench.push_throughput --count 1000 --sdk-seconds 30 --crm pipedrive   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import logging
import multiprocessing
import os
import platform
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from crm_desktop.domain.models import Contact, Integration, Provider
from crm_desktop.domain.outcomes import RecordObject, RecordOutcome
from crm_desktop.providers.contract import AdapterOptions, OutboundRecord
from crm_desktop.providers.factory import build_adapter, default_record_mappers
from crm_desktop.sandbox.data import GeneratedPerson, generate_people

logger = logging.getLogger(__name__)

CRMS = ("hubspot", "pipedrive", "salesforce")
#: Each CRM's top-plan limits, as the sandbox's run-time settings.
TOP_PLAN_LIMITS: dict[str, dict[str, Any]] = {
    # Professional and Enterprise private apps: 190 requests per rolling 10 s.
    "hubspot": {"ten_second_limit": 190, "daily_limit": 1_000_000},
    # The highest API-token burst limit: 120 requests per 2 s; a daily token budget no push here can spend.
    "pipedrive": {"burst_limit": 120, "daily_token_budget": 100_000_000},
    # Production orgs: 25 long-running requests at once.
    "salesforce": {"concurrent_limit": 25, "daily_api_limit": 5_000_000},
}
HUBSPOT_BATCH = 100
HUBSPOT_WINDOW_SECONDS = 10.0
HUBSPOT_WINDOW_LIMIT = 190
PIPEDRIVE_WINDOW_SECONDS = 2.0
PIPEDRIVE_WINDOW_LIMIT = 120
SALESFORCE_COLLECTION = 200
SALESFORCE_CONCURRENT = 25
#: The issue's targets.
TARGET_SHARE_OF_CEILING = 0.95
TARGET_CALLS_FACTOR = 1.1
TARGET_SPEEDUP = {"hubspot": 1.8, "pipedrive": 5.0, "salesforce": 20.0}
WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}
_ID_SEGMENT = re.compile(r"/(?:\d+|[0-9A-Za-z]{15,18}|[0-9a-f-]{36})(?=/|$)")


# -- the sandbox, served from its own process ---------------------------------------------------------------------
def _sandbox_process(
    provider: str, latency_ms: float, limits: dict[str, Any], conn: Connection, latency_before_work: bool = False
) -> None:
    """Child process: serve one sandbox on loopback and answer the parent's questions about its request log."""
    from crm_desktop.sandbox.core import SandboxConfig
    from crm_desktop.sandbox.server import SandboxServer, make_sandbox, new_serving_loop, settle_serving_process

    logging.basicConfig(level=logging.WARNING)
    config = SandboxConfig(
        latency_ms=latency_ms, latency_before_work=latency_before_work, log_bodies=False, max_log=2_000_000
    )
    sandbox = make_sandbox(provider, config)
    sandbox.apply_config(limits)
    # As `crm-desktop sandbox` does in its own process: uvloop (the bench extra) and the serving collector settings.
    server = SandboxServer([sandbox], loop_factory=new_serving_loop)
    settle_serving_process()
    server.start()
    try:
        conn.send({"base_url": sandbox.base_url, "credentials": sandbox.credentials()})
        while True:
            command = conn.recv()
            if command == "log":
                conn.send([(e.method, e.path, e.status, e.at, e.received, e.seconds) for e in list(sandbox.requests)])
            elif command == "summary":
                conn.send(sandbox.summary())
            elif command == "cpu":
                conn.send(time.process_time())
            else:
                break
    finally:
        server.stop()
        conn.send("stopped")


#: One request of a sandbox's log: method, path, status, time logged, time received, seconds to the response.
LogEntry = tuple[str, str, int, float, float, float]


@dataclass
class ServedSandbox:
    """A sandbox served by a child process: where it listens, how to connect, and its request log on demand."""

    provider: str
    base_url: str
    credentials: dict[str, Any]
    conn: Connection

    def log(self) -> list[LogEntry]:
        """(method, path, status, time, received, seconds) of every API request the sandbox answered, oldest first.

        ``received`` is when the request arrived and ``seconds`` how long until its response was sent (the
        configured latency plus the emulator's own time).
        """
        self.conn.send("log")
        entries: list[LogEntry] = self.conn.recv()
        return entries

    def cpu_seconds(self) -> float:
        """CPU time the sandbox's process has used so far (the emulator's own cost of a push)."""
        self.conn.send("cpu")
        seconds: float = self.conn.recv()
        return seconds

    def summary(self) -> dict[str, Any]:
        """How many records the sandbox holds."""
        self.conn.send("summary")
        held: dict[str, Any] = self.conn.recv()
        return held


@contextmanager
def served(provider: str, latency_ms: float, latency_before_work: bool = False) -> Iterator[ServedSandbox]:
    """A fresh sandbox of ``provider`` with top-plan limits, served on loopback by a child process."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(
        target=_sandbox_process,
        args=(provider, latency_ms, TOP_PLAN_LIMITS[provider], child, latency_before_work),
        daemon=True,
    )
    process.start()
    try:
        deadline = time.monotonic() + 60
        while not parent.poll(0.2):
            if not process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {provider} sandbox did not start (see the error above)")
        hello = parent.recv()
        yield ServedSandbox(provider, hello["base_url"], hello["credentials"], parent)
    finally:
        if process.is_alive():
            parent.send("stop")
            if parent.poll(15):
                parent.recv()
        process.join(15)
        if process.is_alive():
            process.terminate()
            process.join(5)


# -- what the log says --------------------------------------------------------------------------------------------
@dataclass
class LogFacts:
    """What the sandbox's request log says about one push.

    Attributes:
        requests: API requests answered (retries included).
        rate_limited: 429 answers.
        rate_limited_steady: 429 answers after the first rate window (the steady state).
        endpoints: requests per method and path (ids replaced by ``{id}``).
        seconds: from the first request to the last.
        steady_request_rate: requests per second after the first rate window (``None``: the push ended within it).
        mean_response_seconds: how long the sandbox took to answer a request, on average (latency included).
        slot_occupancy: requests in flight on average over the push, as a share of Salesforce's concurrent limit
            (``None`` for the other CRMs): how fully the client used the concurrency the org allows.
    """

    requests: int
    rate_limited: int
    rate_limited_steady: int
    endpoints: dict[str, int]
    seconds: float
    steady_request_rate: float | None
    mean_response_seconds: float = 0.0
    slot_occupancy: float | None = None


def log_facts(
    entries: Sequence[LogEntry], window_seconds: float, concurrent_limit: int | None = None
) -> LogFacts:
    """Count requests, 429s, the steady-state request rate and the use of a concurrent limit from a request log."""
    if not entries:
        return LogFacts(0, 0, 0, {}, 0.0, None)
    first, last = entries[0][3], entries[-1][3]
    steady = [entry for entry in entries if entry[3] >= first + window_seconds]
    steady_span = last - (first + window_seconds)
    endpoints = Counter(f"{method} {_ID_SEGMENT.sub('/{id}', path)}" for method, path, *_ in entries)
    answered = sum(entry[5] for entry in entries)
    span = max(entry[4] + entry[5] for entry in entries) - min(entry[4] for entry in entries)
    occupancy = answered / (concurrent_limit * span) if concurrent_limit and span > 0 else None
    return LogFacts(
        requests=len(entries),
        rate_limited=sum(1 for entry in entries if entry[2] == 429),
        rate_limited_steady=sum(1 for entry in steady if entry[2] == 429),
        endpoints=dict(endpoints.most_common()),
        seconds=last - first,
        steady_request_rate=(
            _arrival_rate(sorted(entry[3] for entry in steady))
            if concurrent_limit
            else _whole_windows_rate([entry[3] for entry in steady], first + window_seconds, window_seconds)
        )
        if steady_span > 1.0
        else None,
        mean_response_seconds=answered / len(entries),
        slot_occupancy=occupancy,
    )


def _whole_windows_rate(arrivals: Sequence[float], start: float, window_seconds: float) -> float | None:
    """Requests per second over the whole rate windows from ``start``: under a window limit, requests come a window's
    worth at a time, and only whole windows count each burst once."""
    windows = int((max(arrivals, default=start) - start) // window_seconds) if arrivals else 0
    if windows < 1:
        return None
    end = start + windows * window_seconds
    return sum(1 for at in arrivals if start <= at < end) / (windows * window_seconds)


def _arrival_rate(arrivals: Sequence[float]) -> float | None:
    """Requests per second over ``arrivals`` (in order): the least-squares slope of the request count over time.

    Dividing the count by the span is at the mercy of the span's edges: requests under a concurrency limit come in
    waves (each slot is taken again about a round trip after it was last), and a span that ends on a wave counts
    all of it. The slope through every arrival follows the count over the whole span instead. (Under a window
    limit the waves are a window long: :func:`_whole_windows_rate`.)
    """
    count = len(arrivals)
    if count < 3:
        return None
    mean_time = sum(arrivals) / count
    mean_index = (count - 1) / 2
    spread = sum((at - mean_time) ** 2 for at in arrivals)
    if spread <= 0:
        return None
    return sum((at - mean_time) * (index - mean_index) for index, at in enumerate(arrivals)) / spread


# -- the pushes ---------------------------------------------------------------------------------------------------
@dataclass
class PushRun:
    """One push of ``records`` contacts and what it cost.

    Attributes:
        crm: the CRM.
        who: ``adapter`` or ``sdk``.
        records: contacts pushed.
        seconds: wall time of the push.
        outcomes: created / updated / unchanged / failed.
        log: what the sandbox's request log says.
        held: records the sandbox holds afterwards (duplicates would show here).
        client_cpu_seconds: CPU the pushing process spent on the push.
        sandbox_cpu_seconds: CPU the sandbox's process spent answering it.
    """

    crm: str
    who: str
    records: int
    seconds: float
    outcomes: dict[str, int]
    log: LogFacts
    held: dict[str, Any]
    client_cpu_seconds: float = 0.0
    sandbox_cpu_seconds: float = 0.0

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    @property
    def calls_per_record(self) -> float:
        return self.log.requests / self.records if self.records else 0.0


def contacts_of(people: Sequence[GeneratedPerson]) -> list[Contact]:
    """The generated people as the app's contacts."""
    return [
        Contact(
            email=person.email,
            first_name=person.first_name,
            last_name=person.last_name,
            company=person.company,
            phone=person.phone,
            social_profiles=person.social_profiles,
        )
        for person in people
    ]


def outbound_records(crm: str, contacts: Sequence[Contact]) -> list[OutboundRecord]:
    """Each contact through the CRM adapter's default mapping (what ``crm-desktop contacts push`` sends)."""
    mapper = default_record_mappers(Provider(crm))
    return [mapper.default_contact_record(contact) for contact in contacts]


def window_of(crm: str) -> float:
    """The length of the CRM's rate window (Salesforce has none; its limit is on concurrency: the first second)."""
    return {"hubspot": HUBSPOT_WINDOW_SECONDS, "pipedrive": PIPEDRIVE_WINDOW_SECONDS}.get(crm, 1.0)


def concurrent_limit_of(crm: str) -> int | None:
    """Requests the CRM lets be in flight at once (only Salesforce limits that)."""
    return SALESFORCE_CONCURRENT if crm == "salesforce" else None


async def warm_http_stack(base_url: str) -> None:
    """One request to the sandbox's control endpoint (not an API call; not logged) before any push is timed.

    httpx imports its connection machinery (h11, anyio's asyncio backend) on a process's first request: about
    0.3 s, paid once by a desktop app that stays open, but by every push a fresh benchmark process times first.
    """
    import httpx

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        (await client.get("/__sandbox__/state")).raise_for_status()


async def _adapter_push(sandbox: ServedSandbox, records: Sequence[OutboundRecord]) -> tuple[float, dict[str, int]]:
    integration = Integration(provider=Provider(sandbox.provider), name=f"bench-{sandbox.provider}",
                              base_url=sandbox.base_url)
    await warm_http_stack(sandbox.base_url)
    adapter = build_adapter(integration, sandbox.credentials, options=AdapterOptions())
    try:
        started = time.perf_counter()
        results = await adapter.upsert(RecordObject.CONTACT, records)
        seconds = time.perf_counter() - started
    finally:
        await adapter.aclose()
    outcomes = Counter(result.outcome.value for result in results)
    failures = [result.message for result in results if result.outcome is RecordOutcome.FAILED]
    if failures:
        logger.warning("%s: %d records failed, e.g. %s", sandbox.provider, len(failures), failures[:3])
    return seconds, dict(outcomes)


def push_with_adapter(
    crm: str, contacts: Sequence[Contact], latency_ms: float, latency_before_work: bool = False
) -> PushRun:
    """Push ``contacts`` with CRM Desktop's adapter into a fresh sandbox."""
    records = outbound_records(crm, contacts)
    with served(crm, latency_ms, latency_before_work) as sandbox:
        sandbox_cpu, client_cpu = sandbox.cpu_seconds(), time.process_time()
        seconds, outcomes = asyncio.run(_adapter_push(sandbox, records))
        sandbox_cpu, client_cpu = sandbox.cpu_seconds() - sandbox_cpu, time.process_time() - client_cpu
        return PushRun(crm, "adapter", len(records), seconds, outcomes,
                       log_facts(sandbox.log(), window_of(crm), concurrent_limit_of(crm)), sandbox.summary(),
                       client_cpu, sandbox_cpu)


def push_with_sdk(
    crm: str,
    contacts: Sequence[Contact],
    latency_ms: float,
    seconds_budget: float | None,
    latency_before_work: bool = False,
) -> PushRun:
    """Push ``contacts`` with a straightforward one-request-at-a-time script over the vendor's SDK.

    With ``seconds_budget`` the script stops starting new records once it is spent; its records/s is then
    measured over the records it did push (a one-at-a-time loop runs at a steady pace).
    """
    records = outbound_records(crm, contacts)
    script = {"hubspot": sdk_push_hubspot, "salesforce": sdk_push_salesforce, "pipedrive": plain_push_pipedrive}[crm]
    with served(crm, latency_ms, latency_before_work) as sandbox:
        started = time.perf_counter()
        deadline = started + seconds_budget if seconds_budget else float("inf")
        outcomes = script(sandbox.base_url, sandbox.credentials, records, deadline)
        seconds = time.perf_counter() - started
        return PushRun(crm, "sdk", sum(outcomes.values()), seconds, outcomes,
                       log_facts(sandbox.log(), window_of(crm), concurrent_limit_of(crm)), sandbox.summary())


# -- the straightforward scripts ------------------------------------------------------------------------------------
def sdk_push_hubspot(
    base_url: str, credentials: dict[str, Any], records: Sequence[OutboundRecord], deadline: float
) -> dict[str, int]:
    """``hubspot-api-client``: batch upsert by email, 100 contacts a call, one call after the other."""
    from hubspot import HubSpot
    from hubspot.crm.contacts import BatchInputSimplePublicObjectBatchInputUpsert, SimplePublicObjectBatchInputUpsert

    client = HubSpot(access_token=credentials["token"], host=base_url)
    outcomes: Counter[str] = Counter()
    for start in range(0, len(records), HUBSPOT_BATCH):
        if time.perf_counter() >= deadline:
            break
        chunk = records[start : start + HUBSPOT_BATCH]
        inputs = [
            SimplePublicObjectBatchInputUpsert(
                id_property="email", id=record.email, properties={k: str(v) for k, v in record.fields.items()}
            )
            for record in chunk
        ]
        answer = client.crm.contacts.batch_api.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs))
        for result in answer.results:
            outcomes["created" if result.new else "updated"] += 1
    return dict(outcomes)


def _loopback_session() -> Any:
    """A ``requests`` session that sends simple-salesforce's ``https://`` URLs to the plain-http loopback sandbox.

    simple-salesforce builds every URL as ``https://{host}``; the sandbox listens on plain http on 127.0.0.1, so
    this adapter rewrites the scheme of loopback requests only (the request is otherwise what the SDK sent).
    """
    import requests
    from requests.adapters import HTTPAdapter

    class PlainLoopback(HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            if request.url and request.url.startswith(("https://127.0.0.1", "https://localhost")):
                request.url = "http://" + request.url[len("https://") :]
            return super().send(request, *args, **kwargs)

    session = requests.Session()
    session.mount("https://", PlainLoopback())
    return session


def sdk_push_salesforce(
    base_url: str, credentials: dict[str, Any], records: Sequence[OutboundRecord], deadline: float
) -> dict[str, int]:
    """``simple-salesforce``: one contact at a time, a SOQL lookup by email, then create or update."""
    from simple_salesforce.api import Salesforce

    # simple-salesforce defaults to API 59.0; the org (and CRM Desktop) speak v61.0.
    sf: Any = Salesforce(
        instance_url=base_url, session_id=credentials["accessToken"], version="61.0", session=_loopback_session()
    )
    outcomes: Counter[str] = Counter()
    for record in records:
        if time.perf_counter() >= deadline:
            break
        fields = {**record.fields, "Email": record.email}
        quoted = record.email.replace("\\", "\\\\").replace("'", "\\'")
        found = sf.query(f"SELECT Id FROM Contact WHERE Email = '{quoted}'")["records"]
        if found:
            sf.Contact.update(found[0]["Id"], fields)
            outcomes["updated"] += 1
        else:
            sf.Contact.create(fields)
            outcomes["created"] += 1
    return dict(outcomes)


def plain_push_pipedrive(
    base_url: str, credentials: dict[str, Any], records: Sequence[OutboundRecord], deadline: float
) -> dict[str, int]:
    """Plain httpx (Pipedrive has no official Python SDK): search each email, create or patch, add the note."""
    import httpx

    outcomes: Counter[str] = Counter()
    with httpx.Client(base_url=base_url, headers={"x-api-token": credentials["apiToken"]}, timeout=60) as client:

        def call(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
            while True:
                response = client.request(method, path, **kwargs)
                if response.status_code == 429:
                    time.sleep(float(response.headers.get("retry-after", "1")))
                    continue
                response.raise_for_status()
                body: dict[str, Any] = response.json()
                return body

        for record in records:
            if time.perf_counter() >= deadline:
                break
            found = call(
                "GET", "/api/v2/persons/search", params={"term": record.email, "fields": "email", "exact_match": "true"}
            )["data"]["items"]
            name = " ".join(str(record.fields[k]) for k in ("first_name", "last_name") if record.fields.get(k))
            person: dict[str, Any] = {"name": name or record.email}
            if record.fields.get("phone"):
                person["phones"] = [{"value": record.fields["phone"], "primary": True, "label": "work"}]
            if found:
                person_id = found[0]["item"]["id"]
                call("PATCH", f"/api/v2/persons/{person_id}", json=person)
                outcomes["updated"] += 1
            else:
                person["emails"] = [{"value": record.email, "primary": True, "label": "work"}]
                person_id = call("POST", "/api/v2/persons", json=person)["data"]["id"]
                outcomes["created"] += 1
            if record.note:
                content = "<p>" + "<br>".join(html.escape(line) for line in record.note.splitlines()) + "</p>"
                call("POST", "/v1/notes", json={"content": content, "person_id": person_id})
    return dict(outcomes)


# -- ceilings and minimums ----------------------------------------------------------------------------------------
def minimum_calls(crm: str, records: Sequence[OutboundRecord]) -> float:
    """The fewest API calls the CRM needs for these records (its batch sizes; Pipedrive's note per person)."""
    count = len(records)
    if crm == "hubspot":
        return -(-count // HUBSPOT_BATCH)
    if crm == "salesforce":
        return 2 * -(-count // SALESFORCE_COLLECTION)  # one dedupe query and one collection write per 200
    return count + sum(1 for record in records if record.note)  # one write per person, one note when it has one


def ceiling_records_per_second(crm: str, records: Sequence[OutboundRecord], latency_ms: float) -> float:
    """The records per second the CRM's top-plan limit allows at most (the issue's definitions)."""
    if crm == "hubspot":
        return HUBSPOT_WINDOW_LIMIT / HUBSPOT_WINDOW_SECONDS * HUBSPOT_BATCH
    requests_per_record = minimum_calls(crm, records) / len(records)
    rate = allowed_request_rate(crm, latency_ms)
    # Without latency Salesforce's concurrent limit binds nothing: no ceiling (infinite), every share is 0.
    return rate / requests_per_record if rate is not None else float("inf")


def allowed_request_rate(crm: str, latency_ms: float) -> float | None:
    """Requests per second the CRM's limit allows: its window, or for Salesforce 25 in flight per response time.

    ``None`` for Salesforce without latency (its limit is on concurrency, which then binds nothing).
    """
    if crm == "hubspot":
        return HUBSPOT_WINDOW_LIMIT / HUBSPOT_WINDOW_SECONDS
    if crm == "pipedrive":
        return PIPEDRIVE_WINDOW_LIMIT / PIPEDRIVE_WINDOW_SECONDS
    return SALESFORCE_CONCURRENT / (latency_ms / 1000) if latency_ms else None


# -- the report ---------------------------------------------------------------------------------------------------
@dataclass
class CrmReport:
    """One CRM's figures side by side."""

    crm: str
    adapter: PushRun
    sdk: PushRun | None
    ceiling: float
    minimum_calls_per_record: float
    latency_ms: float
    sustained: PushRun | None = None
    checks: dict[str, bool] = field(default_factory=dict)

    def judge(self) -> None:
        """Hold the figures against the issue's targets."""
        rate = allowed_request_rate(self.crm, self.latency_ms)
        steady_source = self.sustained or self.adapter
        if rate is not None and steady_source.log.steady_request_rate is not None:
            share = steady_source.log.steady_request_rate / rate
        else:
            share = self.adapter.records_per_second / self.ceiling
        self.checks = {
            "share_of_ceiling": share >= TARGET_SHARE_OF_CEILING,
            "no_steady_429": steady_source.log.rate_limited_steady == 0 and self.adapter.log.rate_limited_steady == 0,
            "calls_per_record": self.adapter.calls_per_record <= TARGET_CALLS_FACTOR * self.minimum_calls_per_record,
            "no_failures": not self.adapter.outcomes.get("failed"),
        }
        if self.sdk is not None:
            self.checks["speedup"] = self.speedup >= TARGET_SPEEDUP[self.crm]

    @property
    def speedup(self) -> float:
        if self.sdk is None or not self.sdk.records_per_second:
            return 0.0
        return self.adapter.records_per_second / self.sdk.records_per_second


def _share_text(report: CrmReport) -> str:
    rate = allowed_request_rate(report.crm, report.latency_ms)
    source = report.sustained or report.adapter
    if rate is not None and source.log.steady_request_rate is not None:
        return f"{source.log.steady_request_rate:.1f} of {rate:.0f} req/s ({source.log.steady_request_rate / rate:.1%})"
    return f"{report.adapter.records_per_second / report.ceiling:.1%} of records/s ceiling"


def markdown_table(reports: Sequence[CrmReport]) -> str:
    """The figures as the Markdown table of docs/benchmarks.md."""
    rows = [
        "| CRM | records | adapter records/s | ceiling records/s | steady state vs limit | API calls / record "
        "(minimum) | 429s (steady) | SDK script records/s | speed-up (target) |",
        "| --- | ---: | ---: | ---: | --- | --- | --- | ---: | --- |",
    ]
    for report in reports:
        adapter, sdk = report.adapter, report.sdk
        sdk_rate = f"{sdk.records_per_second:,.1f}" if sdk else "not run"
        speedup = f"{report.speedup:.1f}x (>= {TARGET_SPEEDUP[report.crm]:g}x)" if sdk else "n/a"
        rows.append(
            f"| {report.crm} | {adapter.records:,} | {adapter.records_per_second:,.1f} | {report.ceiling:,.0f} | "
            f"{_share_text(report)} | {adapter.calls_per_record:.4f} ({report.minimum_calls_per_record:.4f}) | "
            f"{adapter.log.rate_limited} ({adapter.log.rate_limited_steady}) | {sdk_rate} | {speedup} |"
        )
    return "\n".join(rows)


def print_details(report: CrmReport) -> None:
    for run in (report.adapter, report.sustained, report.sdk):
        if run is None:
            continue
        print(
            f"  {run.who:>9} {run.records:>6,} records in {run.seconds:8.2f} s = {run.records_per_second:9.1f}/s; "
            f"{run.log.requests:,} requests ({run.calls_per_record:.4f}/record), 429s {run.log.rate_limited} "
            f"(steady {run.log.rate_limited_steady}); steady req/s "
            f"{run.log.steady_request_rate if run.log.steady_request_rate is not None else 'n/a'}; "
            f"outcomes {run.outcomes}; sandbox holds {run.held}"
        )
        print(f"            endpoints: {run.log.endpoints}")
        occupancy = f"{run.log.slot_occupancy:.1%}" if run.log.slot_occupancy is not None else "n/a"
        print(
            f"            mean response {run.log.mean_response_seconds * 1000:.1f} ms; concurrent slots used "
            f"{occupancy}; CPU per request: client {_per_request_ms(run.client_cpu_seconds, run)}, "
            f"sandbox {_per_request_ms(run.sandbox_cpu_seconds, run)}"
        )
    print(f"  checks: {report.checks}")


def _per_request_ms(seconds: float, run: PushRun) -> str:
    return f"{seconds * 1000 / run.log.requests:.2f} ms" if seconds and run.log.requests else "n/a"


def machine() -> str:
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=10_000, help="contacts each CRM is pushed (default 10,000)")
    parser.add_argument(
        "--sdk-seconds", type=float, default=None,
        help="time each SDK script may push before it stops starting records (default: until all are pushed); "
        "a one-at-a-time loop keeps a steady pace, so its records/s over the records it pushed stands",
    )
    parser.add_argument("--skip-sdk", action="store_true", help="do not run the SDK scripts")
    parser.add_argument(
        "--hubspot-sustained-count", type=int, default=40_000,
        help="contacts of a second, longer HubSpot push that runs past the first 10-second window (0: skip); "
        "10,000 contacts are 100 batch requests, fewer than one window allows",
    )
    parser.add_argument(
        "--salesforce-sustained-count", type=int, default=50_000,
        help="contacts of a second, longer Salesforce push, for the steady state past the first second (0: skip); "
        "10,000 contacts are 101 requests, five round trips at 25 in flight",
    )
    parser.add_argument("--crm", action="append", choices=CRMS, help="only these CRMs (repeatable)")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="sandbox latency per request (default 100)")
    parser.add_argument(
        "--latency-before-work",
        action="store_true",
        help="the sandboxes wait the whole latency before working on a request, so their own CPU time adds to "
        "every answer's time (the model before 2026-12-02), for comparison",
    )
    parser.add_argument("--seed", type=int, default=4, help="seed of the generated people")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    crms = args.crm or list(CRMS)
    sustained_counts = {"hubspot": args.hubspot_sustained_count, "salesforce": args.salesforce_sustained_count}
    largest = max([args.count, *(sustained_counts[crm] for crm in crms if crm in sustained_counts)])
    people = generate_people(largest, args.seed)
    contacts = contacts_of(people)
    pushed = contacts[: args.count]
    model = "latency before the work" if args.latency_before_work else "work within the latency"
    print(f"push benchmark: {args.count:,} contacts, latency {args.latency_ms:g} ms ({model}), {machine()}")
    reports: list[CrmReport] = []
    for crm in crms:
        print(f"\n== {crm}")
        records = outbound_records(crm, pushed)
        adapter_run = push_with_adapter(crm, pushed, args.latency_ms, args.latency_before_work)
        sustained = None
        if sustained_counts.get(crm, 0) > args.count:
            sustained = push_with_adapter(
                crm, contacts[: sustained_counts[crm]], args.latency_ms, args.latency_before_work
            )
            sustained.who = "sustained"
        sdk_run = (
            None
            if args.skip_sdk
            else push_with_sdk(crm, pushed, args.latency_ms, args.sdk_seconds, args.latency_before_work)
        )
        report = CrmReport(
            crm,
            adapter_run,
            sdk_run,
            ceiling_records_per_second(crm, records, args.latency_ms),
            minimum_calls(crm, records) / len(records),
            args.latency_ms,
            sustained,
        )
        report.judge()
        print_details(report)
        reports.append(report)
    print()
    print(markdown_table(reports))
    if args.json:
        payload = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "count": args.count,
            "sdk_seconds": args.sdk_seconds,
            "latency_ms": args.latency_ms,
            "latency_before_work": args.latency_before_work,
            "reports": [
                {**asdict(report), "speedup": report.speedup,
                 "records_per_second": {"adapter": report.adapter.records_per_second,
                                        "sdk": report.sdk.records_per_second if report.sdk else None}}
                for report in reports
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str))
    return 0 if all(all(report.checks.values()) for report in reports) else 1


if __name__ == "__main__":
    raise SystemExit(main())
