"""Shared machinery of the sandbox CRMs: clock, latency, fault injection, request log and control endpoint."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_desktop.first_come_slots import FirstComeSlots

logger = logging.getLogger(__name__)

CONTROL_PREFIX = "/__sandbox__"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class JSONResponse(StarletteJSONResponse):
    """A JSON answer as the vendors send it (compact UTF-8), encoded by orjson: a 200-record answer in a tenth of
    the time the standard library takes."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def parse_json(raw: bytes | str) -> Any:
    """A request body's JSON (orjson; like ``json.loads``, a ``ValueError`` when it is not JSON)."""
    return orjson.loads(raw)


class FaultKind(StrEnum):
    """What can go wrong on the wire, as the sandbox can make it go wrong.

    ``server_error``, ``rate_limit``, ``connection_reset`` and ``read_timeout`` hit a whole request and are
    applied by :class:`SandboxMiddleware`, before the emulator sees it; ``gateway_timeout`` lets the emulator do
    the request, then answers 504 as a load balancer that gave up waiting does (the write was made, its answer is
    lost); ``timeout_after_doing`` lets the emulator do the request, then holds it as ``read_timeout`` does, as a
    real CRM finishes a request its client gave up on (opt-in: ``read_timeout`` drops the request undone);
    ``token_expiry`` and ``invalid_record`` are taken by the emulators themselves (an access token stops
    working; one record of a write is refused as invalid).
    """

    SERVER_ERROR = "5xx"
    GATEWAY_TIMEOUT = "504"
    RATE_LIMIT = "429"
    CONNECTION_RESET = "reset"
    READ_TIMEOUT = "timeout"
    TOKEN_EXPIRY = "expire"
    INVALID_RECORD = "invalid"
    TIMEOUT_AFTER_DOING = "timeout_after_doing"


REQUEST_FAULTS = (
    FaultKind.SERVER_ERROR,
    FaultKind.GATEWAY_TIMEOUT,
    FaultKind.RATE_LIMIT,
    FaultKind.CONNECTION_RESET,
    FaultKind.READ_TIMEOUT,
    FaultKind.TIMEOUT_AFTER_DOING,
)


@dataclass
class FaultRule:
    """One fault to inject, by probability or on given request numbers.

    Attributes:
        kind: the fault.
        probability: chance (0..1) that each eligible request or record gets it.
        at: 1-based request numbers (counted by the sandbox over API requests, control calls excluded)
            on which the fault fires for sure; for ``invalid_record`` the numbers count records written.
        path: only requests whose path contains this text are eligible (``None``: all).
        remaining: how many more times the rule may fire (``None``: unlimited).
    """

    kind: FaultKind
    probability: float = 0.0
    at: list[int] = field(default_factory=list)
    path: str | None = None
    remaining: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        return data


def parse_fault_spec(spec: str) -> list[FaultRule]:
    """Read a fault spec such as ``"5xx:0.05,429:0.02,reset@3@9,expire@100,invalid:0.01"``.

    Each comma-separated item is ``KIND:PROBABILITY`` or ``KIND@N[@N...]`` (fire on request N).
    Kinds: ``5xx``, ``504``, ``429``, ``reset``, ``timeout``, ``expire``, ``invalid``, ``timeout_after_doing``.

    Raises:
        ValueError: naming the item that cannot be read.
    """
    rules: list[FaultRule] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        try:
            if "@" in item:
                kind_text, *numbers = item.split("@")
                rules.append(FaultRule(FaultKind(kind_text), at=[int(n) for n in numbers]))
            else:
                kind_text, _, probability = item.partition(":")
                value = float(probability)
                if not 0.0 <= value <= 1.0:
                    raise ValueError("probability must be between 0 and 1")
                rules.append(FaultRule(FaultKind(kind_text), probability=value))
        except ValueError as exc:
            kinds = ", ".join(k.value for k in FaultKind)
            raise ValueError(f"fault spec item {item!r} is not KIND:P or KIND@N ({exc}); kinds: {kinds}") from None
    return rules


def fault_rule_from_json(data: dict[str, Any]) -> FaultRule:
    """Build a rule from the control endpoint's JSON (the shape of :meth:`FaultRule.to_json`)."""
    return FaultRule(
        kind=FaultKind(data["kind"]),
        probability=float(data.get("probability", 0.0)),
        at=[int(n) for n in data.get("at", [])],
        path=data.get("path"),
        remaining=data.get("remaining"),
    )


class FaultPlan:
    """The active fault rules of one sandbox, consulted per request and per record (thread-safe)."""

    def __init__(self, rules: list[FaultRule] | None = None, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = list(rules or [])
        self._random = random.Random(seed)
        self._counters: dict[FaultKind, int] = {}
        self.fired: dict[str, int] = {}

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def replace(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules = list(rules)
            self._counters.clear()

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def take(self, kind: FaultKind, path: str = "") -> bool:
        """Count one eligible event of ``kind`` and say whether the fault fires on it."""
        with self._lock:
            number = self._counters.get(kind, 0) + 1
            self._counters[kind] = number
            if not self._rules:
                return False
            for rule in self._rules:
                if rule.kind != kind or (rule.path and rule.path not in path):
                    continue
                if rule.remaining is not None and rule.remaining <= 0:
                    continue
                hit = number in rule.at or (rule.probability > 0 and self._random.random() < rule.probability)
                if hit:
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    self.fired[kind.value] = self.fired.get(kind.value, 0) + 1
                    return True
            return False

    def request_fault(self, path: str) -> FaultKind | None:
        """The request-level fault (if any) that hits a request to ``path``."""
        for kind in REQUEST_FAULTS:
            if self.take(kind, path):
                return kind
        return None


class SandboxClock:
    """Wall-clock time for record timestamps that is strictly increasing, and can be moved forward in tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset_seconds = 0.0
        self._last_ms = 0

    def now(self) -> datetime:
        """The current time in whole milliseconds, at least one millisecond after the previous answer."""
        with self._lock:
            current_ms = time.time_ns() // 1_000_000 + round(self._offset_seconds * 1000)
            if current_ms <= self._last_ms:
                current_ms = self._last_ms + 1
            self._last_ms = current_ms
        # A whole number of milliseconds divided by 1,000 is exact to the microsecond fromtimestamp rounds to.
        return datetime.fromtimestamp(current_ms / 1000, UTC)

    def advance(self, seconds: float) -> None:
        """Move the clock forward (time-based expiry and windows in tests)."""
        with self._lock:
            self._offset_seconds += seconds

    def monotonic(self) -> float:
        """Seconds for rate windows, moved by :meth:`advance` too."""
        with self._lock:
            return time.monotonic() + self._offset_seconds


@dataclass
class LoggedRequest:
    """One request the sandbox answered, for tests and benchmarks to read."""

    number: int
    method: str
    path: str
    query: str
    status: int
    fault: str | None
    headers: dict[str, str]
    body: Any
    at: float
    #: When the request arrived, and seconds until its response was sent (the configured latency, or the
    #: emulator's time when that was longer).
    received: float = 0.0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SandboxConfig:
    """How a sandbox behaves; every field can also be set at run time through the control endpoint.

    Attributes:
        latency_ms: how long every API request takes to be answered, from its arrival: the vendor's response time
            (network and the vendor's own work). The emulator does its work within it, so its CPU time does not
            add to the latency; a request whose work (or wait for the emulator) takes longer is answered when done.
        jitter_ms: extra uniformly random latency, 0..jitter_ms.
        latency_before_work: wait the whole latency before working on a request instead, so the emulator's own
            time (and its wait for other requests) adds to every answer's time: a slower, host-dependent emulation,
            kept for comparisons.
        faults: fault rules active from the start.
        seed: seed for faults, jitter and generated data.
        contacts: how many generated contacts (and a share of leads) the sandbox starts with.
        hang_seconds: how long a ``read_timeout`` or ``timeout_after_doing`` fault holds a request open over real
            sockets.
        log_bodies: keep JSON request bodies in the request log.
        max_log: how many requests the log keeps.
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    latency_before_work: bool = False
    faults: list[FaultRule] = field(default_factory=list)
    seed: int = 7
    contacts: int = 0
    hang_seconds: float = 30.0
    log_bodies: bool = True
    max_log: int = 100_000


def non_negative_number(value: Any, name: str) -> float:
    """A run-time setting read as a finite number >= 0.

    Raises:
        ValueError: naming the setting, when the value is not such a number.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{name} must be a number, not {type(value).__name__}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite number of at least 0, not {value!r}")
    return number


def non_negative_int(value: Any, name: str) -> int:
    """A run-time setting read as a whole number >= 0 (``"5"`` and ``5.0`` are accepted, ``5.5`` is not).

    Raises:
        ValueError: naming the setting, when the value is not such a number.
    """
    number = non_negative_number(value, name)
    if not number.is_integer():
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    return int(number)


class SandboxDrop(Exception):
    """Raised inside the ASGI app to drop the connection (reset) or hold it past the client's timeout."""

    def __init__(self, kind: FaultKind) -> None:
        super().__init__(kind.value)
        self.kind = kind


class Sandbox:
    """Base of the three emulators: state shared by every request, plus the ASGI app that serves it.

    Subclasses implement :meth:`api_routes`, :meth:`fault_response` (the vendor's own 5xx and 429 bodies),
    :meth:`edit_record` (a salesperson's change made through the control endpoint), :meth:`credentials`
    and :meth:`summary`.

    Attributes:
        provider: ``salesforce``, ``hubspot`` or ``pipedrive``.
        config: the current configuration.
        clock: record timestamps.
        faults: the active fault plan.
        requests: the request log (most recent last).
        base_url: where the sandbox is reachable (set by the server or the in-process transport).
    """

    provider = "sandbox"

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.clock = SandboxClock()
        self.faults = FaultPlan(self.config.faults, seed=self.config.seed)
        self.random = random.Random(self.config.seed)
        self.requests: deque[LoggedRequest] = deque(maxlen=self.config.max_log)
        self.request_count = 0
        #: The emulator works on one request at a time, in arrival order (see :class:`WorkTurns`).
        self.work_turns = WorkTurns()
        self.base_url = "http://127.0.0.1"
        self._app: ASGIApp | None = None

    # -- what subclasses provide -------------------------------------------------------------
    def api_routes(self) -> list[BaseRoute]:
        """The vendor API's routes."""
        raise NotImplementedError

    def fault_response(self, kind: FaultKind) -> Response:
        """The vendor's own response for a request-level 5xx or 429 fault."""
        raise NotImplementedError

    def edit_record(self, object_name: str, record_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply a salesperson's edit to one record, as the CRM's UI would; return the record.

        Raises:
            KeyError: when the object or record does not exist.
        """
        raise NotImplementedError

    def salesperson_action(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A salesperson's step in the CRM's UI that turns a person into a conversion, named by ``action``.

        Salesforce ``convert-lead``, HubSpot ``lifecycle``, Pipedrive ``win-deal``; each takes the person's
        ``email`` and answers the changed record.

        Raises:
            KeyError: unknown action, or no such person (the control endpoint answers 404).
            ValueError: a step the CRM would refuse (400).
        """
        raise KeyError(f"no salesperson action {action!r} in the {self.provider} sandbox")

    def credentials(self) -> dict[str, Any]:
        """What a client needs to connect (token, or OAuth client and tokens)."""
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        """Counts of the records the sandbox holds."""
        raise NotImplementedError

    def expire_tokens(self) -> None:
        """Make every issued access token stop working (a ``token_expiry`` fault or a control call)."""
        raise NotImplementedError

    # -- shared behaviour ----------------------------------------------------------------------
    def take_fault(self, kind: FaultKind, path: str = "") -> bool:
        """Whether an emulator-level fault (``expire``, ``invalid``) fires now."""
        return self.faults.take(kind, path)

    def control_routes(self) -> list[BaseRoute]:
        """Routes under ``/__sandbox__``: config, faults, request log, record edits, expiry."""
        return [
            Route(f"{CONTROL_PREFIX}/state", self._control_state, methods=["GET"]),
            Route(f"{CONTROL_PREFIX}/config", self._control_config, methods=["GET", "PATCH"]),
            Route(f"{CONTROL_PREFIX}/faults", self._control_faults, methods=["GET", "PUT", "POST", "DELETE"]),
            Route(f"{CONTROL_PREFIX}/requests", self._control_requests, methods=["GET", "DELETE"]),
            Route(f"{CONTROL_PREFIX}/expire-tokens", self._control_expire, methods=["POST"]),
            Route(f"{CONTROL_PREFIX}/clock", self._control_clock, methods=["POST"]),
            Route(
                f"{CONTROL_PREFIX}/records/{{object_name}}/{{record_id}}",
                self._control_edit,
                methods=["PATCH"],
            ),
            Route(f"{CONTROL_PREFIX}/salesperson/{{action}}", self._control_salesperson, methods=["POST"]),
        ]

    def app(self) -> ASGIApp:
        """The ASGI app (built once): API routes and control routes behind the sandbox middleware."""
        if self._app is None:
            starlette = Starlette(routes=[*self.control_routes(), *self.api_routes()])
            self._app = SandboxMiddleware(starlette, self)
        return self._app

    def transport(self) -> httpx.AsyncBaseTransport:
        """An in-process transport to this sandbox (no sockets) that turns drops into httpx errors."""
        return InProcessTransport(self)

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` bound in-process to this sandbox."""
        return httpx.AsyncClient(transport=self.transport(), base_url=self.base_url, **kwargs)

    def log_request(self, entry: LoggedRequest) -> None:
        self.requests.append(entry)

    def loggable_path(self, path: str) -> str:
        """The path as the request log keeps it; emulators whose API puts a secret in the path replace it."""
        return path

    def latency_seconds(self) -> float:
        """How long this request takes to be answered: the configured latency plus jitter, in seconds."""
        latency = self.config.latency_ms
        if self.config.jitter_ms:
            latency += self.random.uniform(0, self.config.jitter_ms)
        return latency / 1000

    async def _control_state(self, request: Request) -> Response:
        return JSONResponse(
            {
                "provider": self.provider,
                "baseUrl": self.base_url,
                "requests": self.request_count,
                "faultsFired": dict(self.faults.fired),
                "records": self.summary(),
            }
        )

    async def _control_config(self, request: Request) -> Response:
        if request.method == "PATCH":
            try:
                changes = parse_json(await request.body())
            except ValueError:
                return JSONResponse({"error": "the config change must be a JSON object"}, status_code=400)
            if not isinstance(changes, dict):
                return JSONResponse({"error": "the config change must be a JSON object"}, status_code=400)
            try:
                timings = {
                    key: non_negative_number(changes[key], key)
                    for key in ("latency_ms", "jitter_ms", "hang_seconds")
                    if key in changes
                }
                self.apply_config(changes)
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": f"config not changed: {exc}"}, status_code=400)
            for key, value in timings.items():
                setattr(self.config, key, value)
        data = {k: v for k, v in asdict(self.config).items() if k != "faults"}
        return JSONResponse(data)

    def apply_config(self, changes: dict[str, Any]) -> None:
        """Emulator-specific run-time settings (rate limits, token lifetime...); the base knows none.

        Raises:
            ValueError, TypeError: for a value the emulator cannot take (the control endpoint answers 400).
        """

    async def _control_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.replace([])
        elif request.method in {"PUT", "POST"}:
            try:
                payload = parse_json(await request.body())
                if isinstance(payload, dict) and "spec" in payload:
                    rules = parse_fault_spec(str(payload["spec"]))
                else:
                    rules = [fault_rule_from_json(item) for item in payload]
            except (ValueError, KeyError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            if request.method == "PUT":
                self.faults.replace(rules)
            else:
                for rule in rules:
                    self.faults.add(rule)
        return JSONResponse([rule.to_json() for rule in self.faults.rules])

    async def _control_requests(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.requests.clear()
            return JSONResponse([])
        return JSONResponse([entry.to_json() for entry in self.requests])

    async def _control_expire(self, request: Request) -> Response:
        self.expire_tokens()
        return JSONResponse({"expired": True})

    async def _control_clock(self, request: Request) -> Response:
        try:
            payload = parse_json(await request.body())
            if not isinstance(payload, dict):
                raise TypeError("the clock change must be a JSON object such as {\"advanceSeconds\": 60}")
            seconds = non_negative_number(payload.get("advanceSeconds", 0), "advanceSeconds")
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": f"clock not moved: {exc}"}, status_code=400)
        self.clock.advance(seconds)
        return JSONResponse({"now": self.clock.now().isoformat()})

    async def _control_edit(self, request: Request) -> Response:
        object_name, record_id = request.path_params["object_name"], request.path_params["record_id"]
        return await self._control_record_change(
            request, "the record change", lambda changes: self.edit_record(object_name, record_id, changes)
        )

    async def _control_salesperson(self, request: Request) -> Response:
        action = request.path_params["action"]
        return await self._control_record_change(
            request, "the salesperson's step", lambda payload: self.salesperson_action(action, payload)
        )

    async def _control_record_change(
        self, request: Request, what: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Response:
        """A control call that changes a record as its JSON object body says: the record, or 400 for a body that is
        not an object or a change the emulator refuses, 404 for a record or action it does not know."""
        try:
            body = parse_json(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return JSONResponse({"error": f"{what} must be a JSON object"}, status_code=400)
        try:
            record = change(body)
        except KeyError as exc:
            return JSONResponse({"error": f"not found: {exc.args[0] if exc.args else exc}"}, status_code=404)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(record)


def iso_ms(moment: datetime) -> str:
    """A vendor timestamp: ISO 8601 in UTC with milliseconds and a ``Z`` (HubSpot's, and Pipedrive v1's)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since 1970 (how HubSpot's search compares dates, and Pipedrive sorts)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


class WorkTurns(FirstComeSlots):
    """One request's emulator work at a time, first come first served, on whichever event loop runs it.

    A served vendor answers after its latency whatever else it is doing; an emulator on one event loop cannot,
    unless the answers that fall due jump the queue of work. Work taking turns does that: the loop runs at most
    one request's work between two looks at its timers and sockets, so a due answer leaves at once instead of
    behind a slice of every request still being worked on.
    """

    def __init__(self) -> None:
        super().__init__(limit=1)


class SandboxMiddleware:
    """Adds latency, request-level faults and the request log around an emulator's routes."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        received = time.time()
        sandbox = self.sandbox
        sandbox.request_count += 1
        number = sandbox.request_count
        body_chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            body_chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw_body = b"".join(body_chunks)

        async def replay() -> Message:
            return {"type": "http.request", "body": raw_body, "more_body": False}

        status_holder: dict[str, int] = {"status": 0}
        answer: list[Message] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = int(message["status"])
            answer.append(message)

        # The answer is due a latency after the request arrived; the emulator works out the answer meanwhile.
        due = time.monotonic() + sandbox.latency_seconds()
        if sandbox.config.latency_before_work:
            await _sleep_until(due)
        fault = sandbox.faults.request_fault(path)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        logged_headers = {k: (REDACTED if k in _SECRET_HEADERS else v) for k, v in headers.items()}
        body: Any = None
        if sandbox.config.log_bodies and raw_body:
            try:
                body = redact_json(parse_json(raw_body))
            except ValueError:
                # Form bodies (OAuth token requests) carry secrets as url-encoded pairs.
                body = redact_query(raw_body.decode("utf-8", "replace")[:2000])
        entry = LoggedRequest(
            number=number,
            method=scope["method"],
            path=sandbox.loggable_path(path),
            query=redact_query(scope.get("query_string", b"").decode("latin-1")),
            status=0,
            fault=fault.value if fault else None,
            headers=logged_headers,
            body=body,
            at=time.time(),
            received=received,
        )
        sandbox.log_request(entry)
        try:
            if fault in (FaultKind.SERVER_ERROR, FaultKind.RATE_LIMIT):
                response = sandbox.fault_response(fault)
                await response(scope, replay, capture)
            elif fault in (FaultKind.GATEWAY_TIMEOUT, FaultKind.TIMEOUT_AFTER_DOING):
                # The emulator does the work; its answer never reaches the client.
                async def lost(_message: Message) -> None:
                    return None

                async with sandbox.work_turns:
                    await self.app(scope, replay, lost)
                if fault is FaultKind.TIMEOUT_AFTER_DOING:
                    await _sleep_until(due)
                    raise SandboxDrop(FaultKind.READ_TIMEOUT)
                await Response("upstream request timeout", status_code=504, media_type="text/plain")(
                    scope, replay, capture)
            elif fault in (FaultKind.CONNECTION_RESET, FaultKind.READ_TIMEOUT):
                await _sleep_until(due)
                raise SandboxDrop(fault)
            else:
                async with sandbox.work_turns:
                    await self.app(scope, replay, capture)
            await _sleep_until(due)
            for message in answer:
                await send(message)
        finally:
            entry.status = status_holder["status"]
            entry.seconds = time.time() - entry.received


async def _sleep_until(due: float) -> None:
    """Wait until the monotonic clock reads ``due`` (at once when it is past), never less.

    libuv rounds a timer to the millisecond from the time its loop iteration began, so a sleep can end a little
    early: the rest is slept again.
    """
    left = due - time.monotonic()
    while left > 0:
        await asyncio.sleep(left)
        left = due - time.monotonic()


REDACTED = "<redacted>"
_SECRET_HEADERS = {"authorization", "proxy-authorization", "x-api-token", "cookie"}
#: Query and form parameters that carry credentials (API tokens, OAuth secrets, codes and verifiers).
_SECRET_PARAMS = {
    "api_token",
    "access_token",
    "refresh_token",
    "client_secret",
    "code",
    "code_verifier",
    "token",
    "password",
}
#: JSON body keys that carry credentials (HubSpot's token-info call sends ``tokenKey``), compared lower-case.
_SECRET_JSON_KEYS = {"tokenkey", "access_token", "refresh_token", "client_secret", "api_token", "password"}


def redact_query(query: str) -> str:
    """A query string or form body with secret parameters (``api_token``, ``client_secret``...) replaced."""
    parts = []
    for part in query.split("&"):
        name, sep, _value = part.partition("=")
        parts.append(f"{name}{sep}{REDACTED}" if sep and name.lower() in _SECRET_PARAMS else part)
    return "&".join(parts)


def redact_json(body: Any) -> Any:
    """A JSON body with the values of secret keys replaced, at any depth, for the request log."""
    if isinstance(body, dict):
        return {
            key: REDACTED if str(key).lower() in _SECRET_JSON_KEYS else redact_json(value)
            for key, value in body.items()
        }
    if isinstance(body, list):
        return [redact_json(item) for item in body]
    return body


class InProcessTransport(httpx.AsyncBaseTransport):
    """``httpx.ASGITransport`` to a sandbox, turning its drops into the errors a real socket would give."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._inner = httpx.ASGITransport(app=sandbox.app())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._inner.handle_async_request(request)
        except SandboxDrop as drop:
            if drop.kind is FaultKind.READ_TIMEOUT:
                raise httpx.ReadTimeout("sandbox held the request past the timeout", request=request) from None
            raise httpx.ReadError("sandbox reset the connection", request=request) from None

    async def aclose(self) -> None:
        await self._inner.aclose()


async def serve_drop(sandbox: Sandbox, kind: FaultKind, send: Callable[[Message], Awaitable[None]]) -> None:
    """Over real sockets: hold a timed-out request open, or start a response and abandon it (a reset)."""
    if kind is FaultKind.READ_TIMEOUT:
        await asyncio.sleep(sandbox.config.hang_seconds)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
    raise ConnectionResetError("sandbox dropped the connection")


class SocketDropMiddleware:
    """Outermost layer when served by uvicorn: turns :class:`SandboxDrop` into a dropped connection."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except SandboxDrop as drop:
            await serve_drop(self.sandbox, drop.kind, send)


class RollingWindow:
    """Counts requests in a rolling window (HubSpot's ten-secondly limit)."""

    def __init__(self, limit: int, seconds: float, clock: SandboxClock) -> None:
        self.limit = limit
        self.seconds = seconds
        self._clock = clock
        self._hits: deque[float] = deque()

    def _trim(self, now: float) -> None:
        while self._hits and self._hits[0] <= now - self.seconds:
            self._hits.popleft()

    def try_hit(self) -> bool:
        """Record a request if the window has room; ``False`` when it is full."""
        now = self._clock.monotonic()
        self._trim(now)
        if len(self._hits) >= self.limit:
            return False
        self._hits.append(now)
        return True

    def remaining(self) -> int:
        self._trim(self._clock.monotonic())
        return max(0, self.limit - len(self._hits))

    def reset_after(self) -> float:
        """Seconds until the oldest request in the window leaves it."""
        now = self._clock.monotonic()
        self._trim(now)
        if not self._hits:
            return 0.0
        return max(0.0, self._hits[0] + self.seconds - now)


class FixedWindow:
    """Counts requests in fixed windows (Pipedrive's 2-second burst limit)."""

    def __init__(self, limit: int, seconds: float, clock: SandboxClock) -> None:
        self.limit = limit
        self.seconds = seconds
        self._clock = clock
        self._start = clock.monotonic()
        self._count = 0

    def _roll(self) -> float:
        now = self._clock.monotonic()
        if now - self._start >= self.seconds:
            self._start = now - ((now - self._start) % self.seconds)
            self._count = 0
        return now

    def try_hit(self) -> bool:
        self._roll()
        if self._count >= self.limit:
            return False
        self._count += 1
        return True

    def remaining(self) -> int:
        self._roll()
        return max(0, self.limit - self._count)

    def reset_after(self) -> float:
        now = self._roll()
        return max(0.0, self._start + self.seconds - now)
