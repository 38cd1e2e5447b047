"""The local API's routes, its bearer-token guard, body limit and error answers, built on the app's services."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from pydantic import AfterValidator
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from crm_desktop import __version__
from crm_desktop.api.wire import (
    BatchReport,
    BatchRow,
    BatchSummary,
    CrmContact,
    Enriched,
    EnrichRequest,
    EventRecorded,
    FieldError,
    IntegrationCreated,
    IntegrationRequest,
    LeadTouchpointsRecorded,
    LeadTouchpointsRequest,
    Problem,
    RecordSynced,
    RunCounts,
    RunRecord,
    RunReport,
    RunStarted,
)
from crm_desktop.app.api_access import ApiTokens
from crm_desktop.app.errors import (
    AuthError,
    ConfigurationError,
    DuplicateNameError,
    InvalidRecordError,
    NotFoundError,
    ProviderError,
    RateLimitError,
    StoreUnavailableError,
    SyncAlreadyRunning,
    VaultError,
)
from crm_desktop.app.forget import ForgetService
from crm_desktop.app.record_files import plain_reason
from crm_desktop.app.record_intake import CrmRefusedRecord, IntakeReport, IntakeResult, RecordIntake, validate_rows
from crm_desktop.app.social import RecordedEvent
from crm_desktop.app.sync_service import SyncTrigger, local_run_name
from crm_desktop.app.workflows import SocialWorkflows
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.errors import FieldProblem
from crm_desktop.domain.models import Contact, Lead, SyncDirection, WireModel, aware_utc, normalise_email
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.domain.social import (
    AttributionModel,
    AttributionReport,
    ConversationEvent,
    EngagementEvent,
    EventAction,
    LeadAttribution,
    Message,
)

logger = logging.getLogger(__name__)

#: The names the API answers to in a request's Host header: the loopback address it listens on, and its name.
LOOPBACK_HOST_NAMES = ("127.0.0.1", "localhost")

#: The largest request body accepted (10,000 contacts of a batch fit well within it).
MAX_BODY_BYTES = 5 * 1024 * 1024
#: The most contacts one batch may carry.
MAX_BATCH = 10_000

#: What a 503 for a busy local store tells the client to wait before sending the request again.
STORE_RETRY_AFTER_SECONDS = 5

RECONNECT = "the CRM refused the integration's credentials: reconnect the integration"
PERMISSION_MISSING = (
    "the CRM accepted the credentials but their user lacks a permission: ask the CRM's admin to grant it "
    "(reconnecting does not help)"
)


class BearerTokenGuard:
    """Checks the bearer token before a request reaches a route (so before its body is even parsed).

    Only ``/api/`` needs the token; the OpenAPI document and the docs page are open (they hold no data).
    """

    def __init__(self, app: ASGIApp, tokens: ApiTokens) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith("/api/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        scheme, _, presented = headers.get("authorization", "").partition(" ")
        try:
            accepted = scheme.lower() == "bearer" and self.tokens.accepts(presented.strip())
        except VaultError as exc:
            # The token is read from the keyring at every request: a keyring locked or gone since the start.
            await _problem(503, f"the API token cannot be checked: {exc}")(scope, receive, send)
            return
        if not accepted:
            answer = JSONResponse(
                {"detail": "missing or wrong API token: send 'Authorization: Bearer <token>' "
                           "(`crm-desktop api token` prints it)", "errors": []},
                status_code=401, headers={"WWW-Authenticate": "Bearer"},
            )
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)


TOO_LARGE = "the body is over 5 MB"
WRONG_HOST = "this API answers only requests addressed to 127.0.0.1 or localhost (the Host header named another)"

#: The plain-text answers of the middleware outside the app's exception handlers, by status, in the API's words.
_PLAIN_ANSWERS = {413: TOO_LARGE, 400: WRONG_HOST}


class _JsonProblems:
    """Answers in the API's JSON problem (``detail``, ``errors``), as every other error, where the middleware
    outside the app's exception handlers answers in plain text: FastAPI's body limit (``max_body_size``, 413) and
    Starlette's Host check (400). It wraps the whole stack and replaces those answers' text.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replacing = False

        async def as_json(message: AsgiMessage) -> None:
            nonlocal replacing
            if message["type"] == "http.response.start" and message["status"] in _PLAIN_ANSWERS:
                content_type = Headers(raw=message.get("headers", [])).get("content-type", "")
                # Every 413 is the limit's (its text comes in either form); a 400 in JSON is the app's own.
                if message["status"] == 413 or content_type.startswith("text/plain"):
                    replacing = True
                    status = int(message["status"])
                    await _problem(status, _PLAIN_ANSWERS[status])(scope, receive, send)
                    return
            if not replacing:
                await send(message)

        await self.app(scope, receive, as_json)


class _LocalApiApp(FastAPI):
    """FastAPI with :class:`_JsonProblems` around its middleware stack."""

    def build_middleware_stack(self) -> ASGIApp:
        return _JsonProblems(super().build_middleware_stack())


def _problem(status: int, detail: str, problems: list[FieldProblem] | None = None,
             headers: dict[str, str] | None = None) -> JSONResponse:
    body = Problem(detail=detail, errors=[FieldError(field=p.field, reason=plain_reason(p.reason))
                                          for p in problems or []])
    return JSONResponse(body.to_wire() | {"errors": [e.to_wire() for e in body.errors]}, status_code=status,
                        headers=headers)


def _body_model(request: Request) -> type[WireModel] | None:
    """The domain model a route's JSON body is, so a refused body is explained in the domain's own words."""
    field = getattr(request.scope.get("route"), "body_field", None)
    annotation = getattr(getattr(field, "field_info", None), "annotation", None)
    return annotation if isinstance(annotation, type) and issubclass(annotation, WireModel) else None


async def _validation_answer(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return _problem(400, "the request body is not valid JSON")
    body_errors = [e for e in errors if e.get("loc", ("",))[0] == "body"]
    if body_errors and not _sent_as_json(request) and (await request.body()).strip():
        # FastAPI reads a body as JSON only under a JSON Content-Type (``curl -d`` sends a form's): the body was
        # then checked as text, and the reason would be "must be a valid dictionary", of a valid JSON object.
        sent = request.headers.get("content-type") or "no Content-Type"
        return _problem(415, f"send the body as JSON, with the header 'Content-Type: application/json' (it came "
                             f"with {sent})", [FieldProblem("Content-Type", "must be application/json")])
    model = _body_model(request)
    if body_errors and model is not None:
        raw = await request.body()
        if not raw.strip():
            return _problem(422, "a JSON body is required", [FieldProblem("(body)", "a JSON body is required")])
        try:
            parsed = json.loads(raw)
            if not isinstance(parsed, dict):
                # Pydantic would say "a valid dictionary or instance of Message": the sender's words are JSON's.
                return _problem(422, f"the body must be a JSON object, one {model.record_kind} per request (it is "
                                     f"{_json_kind(parsed)})", [FieldProblem("(body)", "must be a JSON object")])
            model.model_validate(parsed)
        except InvalidRecordError as refused:
            return _refused(refused)
        except ValueError:
            return _problem(400, "the request body is not valid JSON")
    problems = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ())]
        where = location[1:] if len(location) > 1 and location[0] in {"body", "query", "path"} else location
        problems.append(FieldProblem(".".join(where) or "(body)", str(error.get("msg", "")).removeprefix(
            "Value error, ")))
    return _problem(422, "; ".join(f"{p.field}: {plain_reason(p.reason)}" for p in problems), problems)


def _json_kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words."""
    if isinstance(value, list):
        return f"an array of {len(value)}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number"


def _sent_as_json(request: Request) -> bool:
    """Whether the request's Content-Type is one FastAPI reads a body of as JSON (``application/json``, or
    ``application/...+json``)."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _since_in_utc(since: datetime | None) -> datetime | None:
    """A report's ``since`` (or ``until``) in UTC (a time given without a zone is UTC's); one out of range once in
    UTC is refused as the event bodies' timestamps are."""
    if since is None:
        return None
    return aware_utc(since if since.tzinfo is not None else since.replace(tzinfo=UTC))


def _refused(refused: InvalidRecordError) -> JSONResponse:
    """422 naming each field and reason in the words ``contacts import`` uses."""
    details = "; ".join(f"{p.field}: {plain_reason(p.reason)}" for p in refused.problems)
    return _problem(422, f"{refused.kind} {refused.record} is invalid: {details}", refused.problems)


def _install_error_answers(app: FastAPI) -> None:
    """Every error a client can cause, or the CRM can, as a status and a sentence; never a 500 for bad input."""
    app.add_exception_handler(RequestValidationError, _validation_answer)  # type: ignore[arg-type]

    async def http_answer(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return _problem(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    app.add_exception_handler(HTTPException, http_answer)

    def handles(kind: type[Exception]) -> Callable[[Callable[[Exception], JSONResponse]],
                                                    Callable[[Request, Exception], Awaitable[JSONResponse]]]:
        def register(make: Callable[[Exception], JSONResponse]) -> Callable[
                [Request, Exception], Awaitable[JSONResponse]]:
            async def answer(request: Request, exc: Exception) -> JSONResponse:
                return make(exc)

            app.add_exception_handler(kind, answer)
            return answer

        return register

    @handles(InvalidRecordError)
    def _invalid(exc: Exception) -> JSONResponse:
        assert isinstance(exc, InvalidRecordError)
        return _refused(exc)

    @handles(NotFoundError)
    def _not_found(exc: Exception) -> JSONResponse:
        return _problem(404, str(exc))

    @handles(DuplicateNameError)
    def _duplicate(exc: Exception) -> JSONResponse:
        return _problem(409, str(exc))

    @handles(SyncAlreadyRunning)
    def _running(exc: Exception) -> JSONResponse:
        return _problem(409, f"{exc}; try again when it has finished")

    @handles(VaultError)
    def _vault(exc: Exception) -> JSONResponse:
        return _problem(503, str(exc))

    @handles(StoreUnavailableError)
    def _store_busy(exc: Exception) -> JSONResponse:
        # Another program held the SQLite file past the store's wait (or the server did not answer): nothing of
        # the request was committed, and sending it again is safe (an event sent again counts once).
        return _problem(503, str(exc), headers={"Retry-After": str(STORE_RETRY_AFTER_SECONDS)})

    @handles(ProviderError)
    def _provider(exc: Exception) -> JSONResponse:
        if isinstance(exc, AuthError | ConfigurationError):
            return _problem(502, f"{RECONNECT} ({exc})")
        if isinstance(exc, ProviderError) and exc.category is ErrorCategory.PERMISSION:
            return _problem(502, f"{PERMISSION_MISSING} ({exc})")
        if isinstance(exc, CrmRefusedRecord) and exc.category in {ErrorCategory.VALIDATION, ErrorCategory.DUPLICATE}:
            return _problem(422, f"the CRM refused the record: {exc}", [FieldProblem("(record)", str(exc))])
        if isinstance(exc, RateLimitError):
            wait = max(1, round(exc.retry_after or 10))
            return _problem(503, f"the CRM is rate-limiting: {exc}", headers={"Retry-After": str(wait)})
        return _problem(502, f"the CRM could not be reached or failed: {exc}")


def _synced(result: IntakeResult) -> RecordSynced:
    assert result.action is not None
    if result.action is RecordOutcome.SKIPPED:
        return RecordSynced(local_id=None, crm_id=None, action=result.action, reason=result.message)
    assert result.local_id is not None
    return RecordSynced(local_id=result.local_id, crm_id=result.crm_id, action=result.action)


def _batch_row(result: IntakeResult) -> BatchRow:
    problems = list(result.problems)
    skipped = result.action is RecordOutcome.SKIPPED
    if not problems and result.message and result.action is not None and result.action.value == "failed":
        problems = [FieldProblem("(record)", result.message)]
    errors = [FieldError(field=p.field, reason=plain_reason(p.reason)) for p in problems]
    return BatchRow(
        index=result.index, email=result.email, action=result.action, local_id=result.local_id,
        crm_id=result.crm_id, category=result.category, error=errors[0] if errors else None, errors=errors,
        reason=result.message if skipped else None,
    )


IntegrationKey = Annotated[str, Path(min_length=1, max_length=80, description="the integration's name or id")]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "the body is not valid JSON, or the Host header names another host"},
    401: {"model": Problem, "description": "missing or wrong bearer token"},
    404: {"model": Problem, "description": "no such integration"},
    409: {"model": Problem, "description": "a sync of the integration is already running"},
    413: {"model": Problem, "description": TOO_LARGE},
    422: {"model": Problem, "description": "each refused field with the reason"},
    502: {"model": Problem, "description": "the CRM refused the credentials (reconnect the integration), lacks a "
          "permission (ask the CRM's admin) or failed"},
    503: {"model": Problem, "description": "the CRM is rate-limiting (Retry-After), the OS keyring cannot be used, "
          "or the local store is busy (Retry-After: send the request again)"},
}
#: The answers of a route that takes a JSON body.
WITH_BODY: dict[int | str, dict[str, Any]] = {
    **ERRORS, 415: {"model": Problem, "description": "the body was not sent as Content-Type: application/json"},
}


def _batch_answer(refused: list[IntakeResult], report: IntakeReport) -> Response:
    """The batch-sync answer: one result per row in the request's order, and the summary (as JSON, made here so
    that the caller can make it off the event loop)."""
    rows = sorted([*refused, *report.results], key=lambda r: r.index)
    report.results = rows
    summary = report.summary()
    answer = BatchReport(
        results=[_batch_row(r) for r in rows],
        summary=BatchSummary(
            total=summary["total"], created=summary["created"], updated=summary["updated"],
            unchanged=summary["unchanged"], failed=summary["failed"], invalid=summary["invalid"],
            api_calls=summary["apiCalls"], skipped=summary["skipped"],
        ),
        run_id=report.run_id,
    )
    return Response(answer.model_dump_json(by_alias=True), media_type="application/json")


def create_app(workspace: Workspace, tokens: ApiTokens, workflows: SocialWorkflows | None = None) -> FastAPI:
    """The local API on ``workspace``'s services, guarded by ``tokens``.

    The API is served on the app's event loop, the window's: a route that only reads or writes the store (or the
    keyring) is a plain function, which FastAPI runs on its thread pool, so a run's 10,000-row report or an
    attribution report is read while the window goes on drawing.
    """
    intake = RecordIntake(workspace.integrations, workspace.sync, workspace.crm, workspace.contacts, workspace.leads,
                          workspace.social)
    api = _LocalApiApp(
        title="CRM Desktop local API",
        version=__version__,
        description="Feed CRM Desktop from a social-media platform or a script: contacts, leads and sync runs "
                    "on the integrations of this workspace. Every `/api/` call needs `Authorization: Bearer <token>`"
                    " (`crm-desktop api token` prints it).",
        max_body_size=MAX_BODY_BYTES,
    )
    bearer = [Depends(HTTPBearer(auto_error=False, description="the token `crm-desktop api token` prints"))]
    _install_error_answers(api)

    @api.post("/api/crm/integrations", status_code=201, response_model=IntegrationCreated, responses=WITH_BODY,
              dependencies=bearer, tags=["integrations"])
    def create_integration(request: IntegrationRequest) -> IntegrationCreated:
        """Create an integration; its credentials go to the OS keyring and are never echoed back."""
        saved = intake.add_integration(
            provider=request.provider, name=request.name, credentials=request.credentials,
            description=request.description, scopes=request.scopes, sync_config=request.sync_config,
            domain=request.domain, base_url=request.base_url,
        )
        return IntegrationCreated(**saved.model_dump(), has_credentials=intake.integrations.has_credentials(saved))

    @api.post("/api/crm/integrations/{integration}/contacts/sync", response_model=RecordSynced, responses=WITH_BODY,
              dependencies=bearer, tags=["contacts"])
    async def sync_contact(integration: IntegrationKey, contact: Contact) -> RecordSynced:
        """Validate a contact, save it locally (matched by normalised email) and push it to that CRM now. A field
        the body leaves out keeps its stored value; ``null`` clears it."""
        return _synced(await intake.push_one(integration, contact, given_only=True))

    @api.post("/api/crm/integrations/{integration}/leads/sync", response_model=RecordSynced, responses=WITH_BODY,
              dependencies=bearer, tags=["leads"])
    async def sync_lead(integration: IntegrationKey, lead: Lead) -> RecordSynced:
        """Validate a lead with its social context, save it locally and push it to that CRM now. A field the body
        leaves out (the status, the company) keeps its stored value; ``null`` clears it."""
        return _synced(await intake.push_one(integration, lead, given_only=True))

    @api.get("/api/crm/integrations/{integration}/contacts", response_model=CrmContact, responses=ERRORS,
             dependencies=bearer, tags=["contacts"])
    async def get_contact(
        integration: IntegrationKey, email: Annotated[str, Query(min_length=1, max_length=254)]
    ) -> CrmContact | JSONResponse:
        """Read a contact live from the CRM by email, in the app's Contact shape; 404 when the CRM has none."""
        try:
            wanted = normalise_email(email)
        except ValueError as exc:
            return _problem(422, f"email: {exc}", [FieldProblem("email", str(exc))])
        found = await intake.crm_contact(integration, wanted)
        if found is None:
            return _problem(404, f"{integration}: the CRM has no contact with email {wanted}")
        return CrmContact(**found.contact.model_dump(), crm_id=found.crm_id, modified_at=found.modified_at)

    @api.post("/api/crm/integrations/{integration}/contacts/batch-sync", response_model=BatchReport,
              responses=WITH_BODY, dependencies=bearer, tags=["contacts"])
    async def batch_sync_contacts(
        integration: IntegrationKey,
        # Rows are validated one by one (a bad row is reported in its place), so the body is a list of anything;
        # the document still says what a row is.
        contacts: Annotated[list[Any], Body(description=f"up to {MAX_BATCH:,} contacts in the Contact shape",
                                            json_schema_extra={"items": {"$ref": "#/components/schemas/Contact"}})],
    ) -> Response:
        """Validate every contact; save and push the valid ones in the CRM's native batches. One result per row,
        in order (its action, or the field and reason it was refused), and a summary."""
        if len(contacts) > MAX_BATCH:
            reason = f"at most {MAX_BATCH:,} contacts per request (got {len(contacts):,})"
            return _problem(422, reason, [FieldProblem("(body)", reason)])
        intake.integration(integration)  # an unknown integration is a 404 before anything is saved
        # Validating, and answering, 10,000 rows takes a second: on a thread, as the API shares the window's loop.
        valid, refused = await asyncio.to_thread(validate_rows, contacts, Contact)
        report = await intake.push(integration, RecordObject.CONTACT, valid, given_only=True)
        return await asyncio.to_thread(_batch_answer, refused, report)

    @api.post("/api/crm/integrations/{integration}/contacts/enrich", response_model=Enriched, responses=WITH_BODY,
              dependencies=bearer, tags=["contacts"])
    async def enrich_contact(integration: IntegrationKey, request: EnrichRequest) -> Enriched:
        """Write a contact's social profiles, follower counts and engagement score to its CRM record now, and
        (``includeHistory``) its engagement history as a note on the record's timeline; answers what was written."""
        done = await intake.enrich(integration, request.contact_id or request.email or "", request.social_profiles,
                                   with_history=request.include_history)
        assert done.result.local_id is not None and done.result.action is not None
        return Enriched(local_id=done.result.local_id, crm_id=done.result.crm_id, action=done.result.action,
                        written=done.result.written, engagement_score=done.score.score if done.score else None,
                        history_note_id=done.note_id)

    @api.post("/api/crm/integrations/{integration}/leads/attribution", response_model=LeadTouchpointsRecorded,
              responses=WITH_BODY, dependencies=bearer, tags=["attribution"])
    async def record_lead_touchpoints(integration: IntegrationKey,
                                      request: LeadTouchpointsRequest) -> LeadTouchpointsRecorded:
        """Record the lead's touchpoints and campaign (touchpoints sent again count once), recompute its
        attribution and engagement score, and update the CRM lead now."""
        done = await intake.record_lead_touchpoints(integration, request.lead_id, request.touchpoints,
                                                    request.campaign, request.model)
        assert done.result.local_id is not None and done.result.action is not None
        return LeadTouchpointsRecorded(
            local_id=done.result.local_id, crm_id=done.result.crm_id, action=done.result.action,
            new_touchpoints=done.new_touchpoints, engagement_score=done.score.score if done.score else None,
            attribution=done.attribution,
        )

    @api.post("/api/crm/integrations/{integration}/sync-from-crm", status_code=202, response_model=RunStarted,
              responses=ERRORS, dependencies=bearer, tags=["runs"])
    async def sync_from_crm(integration: IntegrationKey) -> JSONResponse:
        """Start a bidirectional sync run in the background; ``GET /api/crm/runs/{runId}`` reports it."""
        name = intake.integration(integration).name
        run_id = await workspace.sync.start(name, SyncDirection.BOTH, SyncTrigger.API)
        return JSONResponse(RunStarted(run_id=run_id).to_wire(), status_code=202,
                            headers={"Location": f"/api/crm/runs/{run_id}"})

    @api.get("/api/crm/runs/{run_id}", response_model=RunReport, responses=ERRORS, dependencies=bearer,
             tags=["runs"])
    def get_run(run_id: Annotated[int, Path(ge=1, le=2**62)]) -> RunReport:
        """A sync run as it stands (``running`` until it ends), with what it did to each record."""
        run, log = workspace.sync.run(run_id)
        return RunReport(
            run_id=run.id,
            integration=(workspace.integrations.get_by_id(run.integration_id).name
                         if run.integration_id is not None else local_run_name(run)),
            trigger=run.trigger.value, direction=run.direction, status=run.status.value,
            counts=RunCounts(created=run.created, updated=run.updated, unchanged=run.unchanged, failed=run.failed,
                             conflicts=run.conflicts),
            api_calls=run.api_calls, message=run.message, started_at=run.started_at, finished_at=run.finished_at,
            records=[
                RunRecord(object=r.object.value, record=r.record_key, crm_id=r.crm_id, outcome=r.outcome,
                          category=r.error_category, message=r.message)
                for r in log
            ],
        )

    _add_social_routes(api, workspace, intake, bearer, workflows or SocialWorkflows.for_workspace(workspace))
    api.add_middleware(BearerTokenGuard, tokens=tokens)
    # Added last, so it runs first: a web page whose own host name was made to resolve to 127.0.0.1 (DNS
    # rebinding) sends its name in Host, and is answered 400 before anything else reads its request.
    api.add_middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_HOST_NAMES))
    return api


async def _off_the_loop(record: Callable[[], RecordedEvent | str]) -> RecordedEvent | str:
    """Record an event on a worker thread: the API is served on the app's event loop (the window's), and the store
    may wait up to its 10 s for a lock another program holds; the loop, and the window, go on meanwhile."""
    return await asyncio.to_thread(record)


def _recorded(recorded: RecordedEvent) -> JSONResponse:
    """201 for a new event, 200 for an update or a re-delivery (which changed nothing)."""
    body = EventRecorded(action=recorded.action, person=recorded.person.ref(),
                         linked_touchpoints=recorded.linked_touchpoints)
    return JSONResponse(body.to_wire(), status_code=201 if recorded.action is EventAction.CREATED else 200)


EVENT_ANSWERS: dict[int | str, dict[str, Any]] = {
    201: {"model": EventRecorded, "description": "a new event was recorded"},
    400: ERRORS[400], 401: ERRORS[401], 413: ERRORS[413], 415: WITH_BODY[415], 422: ERRORS[422], 503: ERRORS[503],
}


def _add_social_routes(api: FastAPI, workspace: Workspace, intake: RecordIntake, bearer: list[Any],
                       workflows: SocialWorkflows) -> None:
    """The three event endpoints (idempotent: platforms re-deliver webhooks), which queue each event for every
    integration's CRM (the workflows), and attribution."""
    social = workspace.social
    forgetting = ForgetService(workspace.database)

    async def record_and_queue(record: Callable[[], RecordedEvent],
                               queue: Callable[[RecordedEvent], object], email: str | None = None) -> JSONResponse:
        """Record an event (off the loop), queue it for every integration's CRM, and queue again the conversations
        of a person the event gave an email; answered as :func:`_recorded` says. An event naming a person forgotten
        at their request is neither recorded nor queued: 200, ``skipped``, with the reason."""

        def record_and_queue_it() -> RecordedEvent | str:
            refusal = forgetting.refusal(email, "not recorded") if email else None
            if refusal is not None:
                return refusal
            recorded = record()
            queue(recorded)
            workflows.requeue_conversations_of([recorded])
            return recorded

        done = await _off_the_loop(record_and_queue_it)
        if isinstance(done, str):
            return JSONResponse(EventRecorded(action=EventAction.SKIPPED, reason=done).to_wire(), status_code=200)
        return _recorded(done)

    @api.post("/api/social/conversations", response_model=EventRecorded, responses=EVENT_ANSWERS,
              dependencies=bearer, tags=["social events"])
    async def conversation_started(event: ConversationEvent) -> JSONResponse:
        """A conversation started on a platform: its participant becomes (or is linked to) a contact, created or
        updated in each CRM with a "Conversation started" entry on its timeline."""
        return await record_and_queue(lambda: social.record_conversation(event),
                                      lambda _: workflows.queue_conversations([event]), event.participant.email)

    @api.post("/api/social/messages", response_model=EventRecorded, responses=EVENT_ANSWERS,
              dependencies=bearer, tags=["social events"])
    async def message_sent(message: Message) -> JSONResponse:
        """A message in a conversation, inbound or outbound; the person's engagement score follows, and the CRM
        record gets the score and the message on its timeline (a burst of messages as one entry)."""
        return await record_and_queue(lambda: social.record_message(message),
                                      lambda _: workflows.queue_messages([message]))

    @api.post("/api/social/engagements", response_model=EventRecorded, responses=EVENT_ANSWERS,
              dependencies=bearer, tags=["social events"])
    async def post_engagement(event: EngagementEvent) -> JSONResponse:
        """A person engaged with a post (a view, a click, a like, a share...): a touchpoint of its campaign; when
        the person is a lead, the CRM lead gets its new score."""
        return await record_and_queue(lambda: social.record_engagement(event),
                                      lambda recorded: workflows.queue_engagements([event], [recorded]),
                                      event.user.email)

    @api.get("/api/crm/integrations/{integration}/leads/{lead_id}/attribution", response_model=LeadAttribution,
             responses=ERRORS, dependencies=bearer, tags=["attribution"])
    def lead_attribution(
        integration: IntegrationKey,
        lead_id: Annotated[str, Path(min_length=1, max_length=254,
                                     description="the lead's id in that CRM, its local id, or its email")],
        model: AttributionModel = AttributionModel.LINEAR,
    ) -> LeadAttribution:
        """The lead's touchpoints and the credit each earned under ``model``; credits sum to 1."""
        return social.attribution(intake.local_lead(integration, lead_id), model)

    @api.get("/api/attribution/report", response_model=AttributionReport, responses=ERRORS, dependencies=bearer,
             tags=["attribution"])
    def attribution_report(
        model: AttributionModel = AttributionModel.LINEAR,
        since: Annotated[datetime | None, AfterValidator(_since_in_utc),
                         Query(description="ISO date or time (UTC when no zone is given)")] = None,
        campaign: Annotated[str | None, Query(min_length=1, max_length=120)] = None,
        until: Annotated[datetime | None, AfterValidator(_since_in_utc),
                         Query(description="the end of the period, not included: ISO date or time (UTC when no "
                                           "zone is given)")] = None,
    ) -> AttributionReport | JSONResponse:
        """Per campaign and per platform: touchpoints, leads, conversions and value credited under ``model``, from
        ``since`` up to ``until`` (not included)."""
        if since is not None and until is not None and until <= since:
            return _problem(422, "until must be after since", [FieldProblem("until", "must be after since")])
        return social.attribution_report(model, since, campaign, until)
