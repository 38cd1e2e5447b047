"""Salesforce REST adapter: SOQL dedupe by email, sObject Collections writes, SystemModstamp pulls, notes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack

import httpx

from crm_desktop.domain.models import Integration
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.providers import salesforce_writes as writes
from crm_desktop.providers.auth import SalesforceAuth
from crm_desktop.providers.base import AdapterBase, AdapterWiring
from crm_desktop.providers.contract import (
    AdapterOptions,
    ChangePage,
    ConnectionInfo,
    CrmField,
    CrmRecord,
    EchoCheck,
    OutboundRecord,
    RecordResult,
    TimelineEntry,
    TimelineResult,
)
from crm_desktop.providers.conversions import CrmConversion
from crm_desktop.providers.errors import (
    ConfigurationError,
    NotFoundError,
    ProviderError,
    RequestRejectedError,
    TransientError,
)
from crm_desktop.providers.http import AmbiguousWriteError, json_or_none
from crm_desktop.providers.rate import read_salesforce_headers
from crm_desktop.providers.salesforce_errors import (
    UNCONFIRMED_CREATE,
    classify_salesforce,
    describe_record_errors,
    field_creation_refusal,
    first_error_code,
    refusal,
    salesforce_errors,
)
from crm_desktop.providers.salesforce_records import (
    CUSTOM_FIELD_NAME,
    NOTE_FIELDS,
    NOTE_OBJECTS,
    NOTES_COMPARED,
    PULL_FIELDS,
    SOBJECTS,
    TASK_LOOKUP_SLACK_SECONDS,
    crm_record,
    described_field,
    field_from_metadata,
    lead_conversion,
    note_body,
    number_scales,
    task_key,
    task_record,
    task_result,
    tooling_field_metadata,
    typed_fields,
)
from crm_desktop.providers.salesforce_soql import (
    DATA_PATH,
    FIELD_API_NAME,
    QUERY_EMAILS_LIMIT,
    RECORD_ID,
    changes_query,
    check_field_names,
    decode_cursor,
    email_in_queries,
    email_query,
    email_query_groups,
    email_query_prefix,
    encode_cursor,
    encode_soql,
    id_in_query,
    select_clause,
    soql_quote,
    tasks_since_query,
)
from crm_desktop.providers.salesforce_writes import COLLECTION_LIMIT, PendingRecord
from crm_desktop.providers.toolkit import (
    FieldCache,
    abandon,
    answer_places,
    chunks,
    distinct_email_keys,
    email_key,
    gather_or_cancel,
    match_landed,
    paginate,
    parse_crm_time,
    results_in_order,
    rows_by_email,
    utc_millis,
    write_or_reconcile,
)

logger = logging.getLogger(__name__)

DEFAULT_LOGIN_URL = "https://login.salesforce.com"
TOOLING_PATH = f"{DATA_PATH}/tooling"
#: Rows per incremental query before the next query restarts from the cursor (bounds a query cursor's life).
CHANGES_QUERY_LIMIT = 10_000
#: What a pull reads first when it can tell its own writes' echoes by their stamps.
STAMP_SELECT = "Id, SystemModstamp"
#: Long-running concurrent requests a production org allows.
DEFAULT_CONCURRENCY = 25


class SalesforceAdapter(AdapterBase):
    """Salesforce REST (API v61.0) as a CRM Desktop adapter.

    Dedupes by email with one SOQL query per up to 200 records, writes with sObject Collections (200 records a
    request, ``allOrNone=false``) in parallel up to the org's concurrent limit, pulls changes by SystemModstamp,
    and reports the ``__c`` fields an admin must create (REST cannot create fields).

    Attributes:
        provider: ``salesforce``.
        integration: the integration it serves.
        auth: the refreshing bearer-token auth (``auth.credentials`` holds the latest tokens).
        http: the shared HTTP core.
    """

    provider = "salesforce"

    def __init__(self, integration: Integration, credentials: dict[str, Any], **wiring: Unpack[AdapterWiring]) -> None:
        options = wiring.get("options") or AdapterOptions()
        # API calls go to the org's instance, as its sign-in answered (instance_url); the integration's URL is where
        # it signs in and refreshes, which for login.salesforce.com or a sandbox org's test.salesforce.com is not
        # the org's API.
        base_url = credentials.get("instanceUrl") or integration.base_url
        if not base_url:
            raise ConfigurationError("Salesforce credentials carry no instance URL; sign in again")
        if not credentials.get("accessToken") and not credentials.get("refreshToken"):
            raise ConfigurationError(
                f"no Salesforce tokens are stored for {integration.name!r}; sign in first with "
                f"`crm-desktop integration login {integration.name}` (or the Sign in button)"
            )
        login_url = (integration.base_url or DEFAULT_LOGIN_URL).rstrip("/")
        self.auth = SalesforceAuth(
            credentials,
            f"{login_url}/services/oauth2/token",
            save_tokens=wiring.get("save_tokens"),
            session_seconds=options.salesforce_session_seconds,
            integration_name=integration.name,
            timeout=options.timeout,
            api_url=str(base_url),
        )
        super().__init__(
            integration,
            wiring,
            name="Salesforce",
            base_url=str(base_url),
            classifier=classify_salesforce,
            read_headers=read_salesforce_headers,
            auth=self.auth,
            # Salesforce has no burst window: only its concurrent long-running request limit.
            window_limit=None,
            window_seconds=1.0,
            concurrency=DEFAULT_CONCURRENCY,
        )
        # A refresh that names another instance (the org moved) points the following calls there.
        self.auth.on_instance_moved = self.http.move_to
        self._describes: FieldCache[RecordObject, dict[str, Any]] = FieldCache(self._read_describe)
        #: Decimal places of each object's number fields by lower-cased name, read with its describe.
        self._scales: dict[RecordObject, dict[str, int]] = {}
        #: Each object's checkbox, number and date fields (type and label by lower-cased name), read with its describe.
        self._typed_fields: dict[RecordObject, dict[str, tuple[str, str]]] = {}
        self._note_object: str | None = None
        #: Fields the field mapping reads besides :data:`PULL_FIELDS`, per object (see ``read_mapped_fields``).
        self._mapped_fields: dict[RecordObject, tuple[str, ...]] = {}

    # -- connection and quota ------------------------------------------------------------------------------
    async def test_connection(self) -> ConnectionInfo:
        """The daily API budget (``/limits``) and who the tokens act as (``/services/oauth2/userinfo``).

        ``/limits`` goes first: an API resource answers a stale session with 401 ``INVALID_SESSION_ID`` (which
        refreshes it), while ``userinfo`` answers 403 ``Bad_OAuth_Token``.
        """
        limits = await self._get_json(f"{DATA_PATH}/limits", "to read the org's limits")
        daily = limits.get("DailyApiRequests") if isinstance(limits, dict) else None
        if isinstance(daily, dict) and isinstance(daily.get("Max"), int) and isinstance(daily.get("Remaining"), int):
            self.http.budget.daily_limit = daily["Max"]
            self.http.budget.daily_remaining = daily["Remaining"]
        info = await self._get_json("/services/oauth2/userinfo", "to name the signed-in user")
        if not isinstance(info, dict):
            raise ProviderError("Salesforce answered userinfo with something that is not a user")
        user = str(info.get("preferred_username") or info.get("email") or info.get("user_id") or info.get("sub", ""))
        account = str(info.get("organization_id") or "")
        return ConnectionInfo(account=account, user=user, scopes=(), quota=self.quota())

    async def account_id(self) -> str:
        """The org id the session reaches (``userinfo``'s ``organization_id``, after ``/limits`` as in
        :meth:`test_connection`, which refreshes a stale session)."""
        return (await self.test_connection()).account

    # -- fields ----------------------------------------------------------------------------------------------
    async def _describe(self, obj: RecordObject, *, fresh: bool = False) -> dict[str, Any]:
        return await self._describes.get(obj, fresh=fresh)

    async def _read_describe(self, obj: RecordObject) -> dict[str, Any]:
        body: dict[str, Any] = await self._get_json(
            f"{DATA_PATH}/sobjects/{SOBJECTS[obj]}/describe", f"to describe the {SOBJECTS[obj]} fields"
        )
        self._scales[obj] = number_scales(body)
        self._typed_fields[obj] = typed_fields(body)
        return body

    async def _field_names(self, obj: RecordObject) -> dict[str, str]:
        """The org's field API names of ``obj``, by lower-cased name (SOQL names are case-insensitive)."""
        described = await self._describe(obj)
        return {str(f["name"]).lower(): str(f["name"]) for f in described.get("fields", []) if f.get("name")}

    async def list_fields(self, obj: RecordObject) -> list[CrmField]:
        """The Contact or Lead fields: label, type, custom, updateable, length and picklist values."""
        described = await self._describe(obj, fresh=True)
        return [described_field(item) for item in described.get("fields", [])]

    async def missing_fields(self, obj: RecordObject, wanted: Sequence[str]) -> list[str]:
        """The wanted fields the org lacks; a Salesforce admin must create them (REST cannot)."""
        await self._describe(obj, fresh=True)
        have = await self._field_names(obj)
        return [name for name in wanted if name.lower() not in have]

    async def _pull_fields(self, obj: RecordObject) -> list[str]:
        have = await self._field_names(obj)
        wanted = dict.fromkeys(name.lower() for name in (*PULL_FIELDS[obj], *self._mapped_fields.get(obj, ())))
        return [have[name] for name in wanted if name in have]

    # -- reading ---------------------------------------------------------------------------------------------
    async def _get_json(self, path: str | httpx.URL, what: str, **kwargs: Any) -> Any:
        response = await self.http.request("GET", path, **kwargs)
        return self._expect_json(response, what)

    @staticmethod
    def _expect_json(response: httpx.Response, what: str) -> Any:
        """The JSON body of a successful answer about ``what``.

        Raises:
            RequestRejectedError: naming the error code only (a query's message can quote emails back).
        """
        if response.status_code >= 300:
            raise refusal(response, what)
        body = json_or_none(response)
        if body is None:
            raise ProviderError(f"Salesforce's answer ({what}) was not JSON")
        return body

    async def query(self, soql: str) -> AsyncGenerator[list[dict[str, Any]], None]:
        """Run SOQL and yield its pages of records, following ``nextRecordsUrl``."""

        async def fetch(next_url: str | None) -> tuple[list[dict[str, Any]], str | None]:
            if next_url is None:
                body = await self._get_json(self.http.query_url(f"{DATA_PATH}/query", encode_soql(soql)), "a query")
            else:
                body = await self._get_json(next_url, "the next page of a query")
            records = [r for r in body.get("records", []) if isinstance(r, dict)]
            following = body.get("nextRecordsUrl") if not body.get("done", True) else None
            return records, str(following) if following else None

        async for records, _following in paginate(fetch):
            yield records

    async def _query_all(self, soql: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        async for page in self.query(soql):
            rows.extend(page)
        return rows

    async def _records_by_email(
        self, obj: RecordObject, emails: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """Raw records by normalised email, one query per up to 200 emails, run in parallel."""
        wanted = distinct_email_keys(emails, str)
        if not wanted:
            return {}
        queries = email_in_queries(select_clause(check_field_names(fields)), SOBJECTS[obj], wanted)
        pages = await gather_or_cancel(self._query_all(soql) for soql in queries)
        return rows_by_email(row for rows in pages for row in rows)

    async def find_by_emails(self, obj: RecordObject, emails: Sequence[str]) -> dict[str, CrmRecord]:
        """Existing Contacts or Leads by normalised email (one SOQL ``Email IN`` query per 200 emails)."""
        fields = await self._pull_fields(obj)
        rows = await self._records_by_email(obj, distinct_email_keys(emails), fields)
        return {email: crm_record(row) for email, row in rows.items()}

    async def get_record(
        self, obj: RecordObject, *, email: str | None = None, crm_id: str | None = None
    ) -> CrmRecord | None:
        """One Contact or Lead by Id or by email, or ``None``."""
        if crm_id is not None:
            if not RECORD_ID.match(crm_id):
                return None
            fields = await self._pull_fields(obj)
            soql = f"SELECT {select_clause(fields)} FROM {SOBJECTS[obj]} WHERE Id = {soql_quote(crm_id)}"
            rows = await self._query_all(soql)
            return crm_record(rows[0]) if rows else None
        if email is not None:
            key = email_key(email)
            return (await self.find_by_emails(obj, [key])).get(key)
        raise ValueError("get_record needs an email or a crm_id")

    async def changes_since(
        self, obj: RecordObject, cursor: str | None, *, echoes: EchoCheck | None = None
    ) -> AsyncIterator[ChangePage]:
        """Records changed after ``cursor``, oldest first, a query page at a time.

        With ``echoes`` the pull reads ``Id, SystemModstamp`` first and then the full records of only those that
        are not echoes of our own writes, by ``Id IN (...)``: after a large push, the next pull reads a few
        bytes a record instead of every field of everything it wrote. A page in which the other changes fill
        more than one ``Id IN`` query is read again whole, and so is the rest of that pull (many changes by
        others; two calls a page would cost more than the bytes saved).
        """
        fields = await self._pull_fields(obj)
        select = select_clause(fields)
        position = decode_cursor(cursor) if cursor else None
        stamps_first = echoes is not None
        while True:
            reading_stamps, switched, seen = stamps_first, False, 0
            soql = changes_query(STAMP_SELECT if reading_stamps else select, SOBJECTS[obj], position,
                                 CHANGES_QUERY_LIMIT)
            async with contextlib.aclosing(self.query(soql)) as pages:
                async for page in pages:
                    if not page:
                        continue
                    if reading_stamps and echoes is not None:
                        stamped = [(str(row.get("Id")), parse_crm_time(row.get("SystemModstamp"))) for row in page]
                        known = echoes(stamped)
                        others = [crm_id for crm_id, _ in stamped if crm_id not in known]
                        if len(others) > COLLECTION_LIMIT:
                            stamps_first, switched = False, True
                            break
                        records = await self._records_by_id(obj, select, others)
                        last_id, last_stamp = stamped[-1]
                    else:
                        records = [crm_record(row) for row in page]
                        last_id, last_stamp = records[-1].crm_id, records[-1].modified_at
                    if last_stamp is None:
                        raise ProviderError("Salesforce returned a record without SystemModstamp; cannot page changes")
                    seen += len(page)
                    position = (last_stamp, last_id)
                    yield ChangePage(records=records, cursor=encode_cursor(last_stamp, last_id))
            if switched:
                continue  # read the page that held them again, whole, and what follows it
            if seen < CHANGES_QUERY_LIMIT:
                return

    async def _records_by_id(self, obj: RecordObject, select: str, crm_ids: Sequence[str]) -> list[CrmRecord]:
        """The full records of ``crm_ids`` (up to one ``Id IN`` query), oldest change first; deleted ones left out."""
        if not crm_ids:
            return []
        rows = await self._query_all(id_in_query(select, SOBJECTS[obj], crm_ids))
        records = [crm_record(row) for row in rows]
        records.sort(key=lambda record: (record.modified_at or datetime.min.replace(tzinfo=UTC), record.crm_id))
        return records

    # -- writing ---------------------------------------------------------------------------------------------
    async def upsert(
        self,
        obj: RecordObject,
        records: Sequence[OutboundRecord],
        *,
        answers: list[RecordResult | None] | None = None,
    ) -> list[RecordResult]:
        """Create or update Contacts or Leads by email; one result per input, in input order.

        Existing records are found with one SOQL query per up to 200 emails; creates and updates go out as sObject
        Collections of up to 200 records with ``allOrNone=false``, each as soon as one is full, while the other
        lookups are still in flight (see ``_query_then_write``). When the push stops part-way, ``answers`` holds
        the results of the collections answered before.
        """
        answered = answer_places(answers, records)
        # A long push asks for the describe while it checks its records, instead of after.
        early_describe = (
            asyncio.ensure_future(self._describe(obj))
            if len(records) > COLLECTION_LIMIT and obj not in self._describes
            else None
        )
        try:
            items, results = writes.pending_records(SOBJECTS[obj], records)
        except BaseException:
            await abandon(early_describe)
            raise
        try:
            if not items:
                await abandon(early_describe)
            else:
                if early_describe is not None:
                    await early_describe
                await self._upsert_pending(obj, items)
                await self._read_write_stamps(obj, items)
        finally:
            for item in items:
                for position in item.positions:
                    results[position] = item.result
            answered[:] = results
        return results_in_order(results, records, "Salesforce")

    async def _upsert_pending(self, obj: RecordObject, items: list[PendingRecord]) -> None:
        sobject = SOBJECTS[obj]
        named: dict[str, None] = {}
        for item in items:
            named.update(dict.fromkeys(item.fields))
        names = check_field_names(list(named))
        have = await self._field_names(obj)
        lacking = [name for name in names if name.lower() not in have]
        if lacking:
            raise RequestRejectedError(
                f"{sobject} lacks the field(s) {', '.join(lacking)}: a Salesforce admin must create them "
                "(Setup > Object Manager), or remove them from the field mapping",
                category=ErrorCategory.VALIDATION,
                code="INVALID_FIELD",
            )
        # Values in their fields' wire types; a record with one that cannot be read so fails alone, unsent.
        kinds = self._typed_fields.get(obj, {})
        ready = [item for item in items if writes.with_typed_values(sobject, item, kinds)]
        if ready:
            await self._query_then_write(obj, ready, names)

    async def _query_then_write(self, obj: RecordObject, items: list[PendingRecord], names: Sequence[str]) -> None:
        """Look the items up by email and write them, as a pipeline.

        As many workers as the budget lets fly take the next ``Email IN`` query each; what a query's answer
        leaves to create or update joins one queue of creates and one of updates, and whichever worker fills a
        queue to a full collection (200) writes it before it queries again. Requests are as few as with every
        query first, but writes start with the first answer, and the work of reading one answer overlaps
        the other requests in flight. The part-filled queues are written last.
        """
        prefix = email_query_prefix(select_clause(names), SOBJECTS[obj])
        literals = [soql_quote(item.email) for item in items]
        groups = iter(email_query_groups(prefix, literals))
        creates: list[PendingRecord] = []
        updates: list[PendingRecord] = []

        async def write_full_collections() -> None:
            for queue, write in ((creates, self._create_collection), (updates, self._update_collection)):
                while len(queue) >= COLLECTION_LIMIT:
                    chunk = queue[:COLLECTION_LIMIT]
                    del queue[:COLLECTION_LIMIT]
                    await write(obj, chunk)

        async def worker() -> None:
            for group in groups:
                members = [items[position] for position in group]
                try:
                    rows = await self._query_all(email_query(prefix, [literals[position] for position in group]))
                except TransientError as exc:
                    # Only this query's records are left unanswered: they fail (the next push retries them).
                    writes.fail_all(SOBJECTS[obj], members, exc)
                    continue
                found = rows_by_email(rows)
                for item in members:
                    scales = self._scales.get(obj, {})
                    default_company = self.options.default_lead_company
                    writes.sort_found(obj, item, found.get(item.email), creates, updates, scales, default_company)
                await write_full_collections()

        # Twice as many workers as slots: when a slot frees, another worker's request is already waiting for it.
        workers = max(1, min(2 * self.http.budget.concurrency, len(items) // QUERY_EMAILS_LIMIT + 1))
        await gather_or_cancel(worker() for _ in range(workers))
        jobs: list[Coroutine[Any, Any, None]] = []
        jobs += [self._create_collection(obj, chunk) for chunk in chunks(creates, COLLECTION_LIMIT)]
        jobs += [self._update_collection(obj, chunk) for chunk in chunks(updates, COLLECTION_LIMIT)]
        await gather_or_cancel(jobs)

    async def _create_collection(self, obj: RecordObject, items: list[PendingRecord]) -> None:
        """POST a collection; after a connection lost mid-write, look the emails up and create only the missing."""
        sobject = SOBJECTS[obj]
        remaining = list(items)

        async def create() -> bool:
            try:
                response = await self.http.request(
                    "POST",
                    f"{DATA_PATH}/composite/sobjects",
                    idempotent=False,
                    json=writes.collection_body(sobject, remaining, with_id=False),
                )
            except AmbiguousWriteError:
                raise
            except TransientError as exc:
                writes.fail_all(sobject, remaining, exc)
                return True
            await self._apply_collection(obj, remaining, response, creating=True)
            return True

        async def reconcile() -> bool | None:
            nonlocal remaining
            try:
                found = await self._records_by_email(obj, [item.email for item in remaining], [])
            except TransientError:
                writes.fail_all(sobject, remaining, UNCONFIRMED_CREATE)
                return True
            for item in remaining:
                row = found.get(item.email)
                if row is not None:
                    item.done(RecordOutcome.CREATED, str(row["Id"]))
            remaining = [item for item in remaining if item.result is None]
            return None if remaining else True

        try:
            await write_or_reconcile(create, reconcile, what=f"Salesforce {sobject} create of {len(items)} records")
        except AmbiguousWriteError as exc:
            writes.fail_all(sobject, remaining, exc)

    async def _update_collection(self, obj: RecordObject, items: list[PendingRecord]) -> None:
        """PATCH a collection by Id (updates are idempotent: replays are safe)."""
        try:
            response = await self.http.request(
                "PATCH",
                f"{DATA_PATH}/composite/sobjects",
                json=writes.collection_body(SOBJECTS[obj], items, with_id=True),
            )
        except TransientError as exc:
            writes.fail_all(SOBJECTS[obj], items, exc)
            return
        await self._apply_collection(obj, items, response, creating=False)

    async def _apply_collection(
        self, obj: RecordObject, items: list[PendingRecord], response: httpx.Response, *, creating: bool
    ) -> None:
        if response.status_code >= 300 and len(items) > 1:
            # The whole request was refused for one record's sake: split until each record has its own answer.
            middle = len(items) // 2
            retry = self._create_collection if creating else self._update_collection
            await gather_or_cancel([retry(obj, items[:middle]), retry(obj, items[middle:])])
            return
        writes.settle_collection(SOBJECTS[obj], items, response, creating=creating)

    # -- notes -----------------------------------------------------------------------------------------------
    async def add_note(self, obj: RecordObject, crm_id: str, text: str) -> str:
        """Attach a Note (``ParentId``, ``Title``, ``Body``), or a Task where the org has none; return its id."""
        if not RECORD_ID.match(crm_id):
            raise NotFoundError(f"{crm_id!r} is not a Salesforce id")
        sobject = SOBJECTS[obj]
        candidates = [self._note_object] if self._note_object else list(NOTE_OBJECTS)
        for note_object in candidates:
            body = note_body(note_object, crm_id, text)
            try:
                response = await self.http.request(
                    "POST", f"{DATA_PATH}/sobjects/{note_object}", idempotent=False, json=body
                )
            except NotFoundError:
                logger.info("Salesforce org has no %s object; trying the next kind of note", note_object)
                continue
            created = self._expect_json(response, f"the note on {sobject} {crm_id}")
            if not isinstance(created, dict) or not created.get("id"):
                raise ProviderError(f"Salesforce created no {note_object} id for the note on {sobject} {crm_id}")
            self._note_object = note_object
            return str(created["id"])
        raise NotFoundError(
            f"this Salesforce org offers neither Note nor Task over the REST API; the note on {sobject} {crm_id} "
            "was not saved"
        )

    # -- timeline --
    async def log_timeline(self, obj: RecordObject, entries: Sequence[TimelineEntry]) -> list[TimelineResult]:
        """Completed Tasks on Contacts or Leads (``WhoId``), up to 200 per ``composite/sobjects`` request.

        A connection lost after sending is settled by looking the Tasks up (same ``WhoId`` and ``Subject``, created
        since the write began) before sending what is missing, so no Task is written twice.
        """
        results: list[TimelineResult] = []
        for part in chunks(list(entries), COLLECTION_LIMIT):
            results.extend(await self._log_tasks(obj, part))
        return results

    async def _log_tasks(self, obj: RecordObject, entries: list[TimelineEntry]) -> list[TimelineResult]:
        answers: dict[int, TimelineResult] = {}
        for index, entry in enumerate(entries):
            if not RECORD_ID.match(entry.crm_id):
                answers[index] = TimelineResult(None, ErrorCategory.NOT_FOUND,
                                                f"{entry.crm_id!r} is not a Salesforce {SOBJECTS[obj]} id")
        started = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=TASK_LOOKUP_SLACK_SECONDS)

        async def create() -> list[TimelineResult]:
            waiting = [i for i in range(len(entries)) if i not in answers]
            if waiting:
                body = {"allOrNone": False, "records": [task_record(entries[i]) for i in waiting]}
                response = await self.http.request(
                    "POST", f"{DATA_PATH}/composite/sobjects", idempotent=False, json=body
                )
                if response.status_code >= 300:
                    category, message = describe_record_errors(salesforce_errors(response))
                    raise RequestRejectedError(f"Salesforce refused the Tasks: {message}",
                                               status=response.status_code, category=category)
                answer = json_or_none(response)
                if not isinstance(answer, list) or len(answer) != len(waiting):
                    raise TransientError("Salesforce's answer did not list one result per Task")
                for index, item in zip(waiting, answer, strict=True):
                    answers[index] = task_result(item, SOBJECTS[obj], entries[index].crm_id)
            return [answers[i] for i in range(len(entries))]

        async def reconcile() -> list[TimelineResult] | None:
            waiting = [i for i in range(len(entries)) if i not in answers]
            rows = await self._query_all(tasks_since_query((entries[i].crm_id for i in waiting), started))
            found = ((task_key(str(row.get("WhoId")), str(row.get("Subject")), str(row.get("Description") or "")),
                      str(row["Id"])) for row in rows)
            records = [task_record(entry) for entry in entries]
            sent = [task_key(r["WhoId"], r["Subject"], r["Description"]) for r in records]
            for index, task_id in match_landed(waiting, sent.__getitem__, found).items():
                answers[index] = TimelineResult(task_id)
            return [answers[i] for i in range(len(entries))] if len(answers) == len(entries) else None

        return await write_or_reconcile(create, reconcile, what=f"Salesforce Tasks on {len(entries)} records")

    async def delete_record(self, obj: RecordObject, crm_id: str) -> bool:
        """``DELETE /services/data/vXX.X/sobjects/Contact/{id}`` (or ``Lead``); Salesforce answers 204 and keeps
        the record in its Recycle Bin for 15 days.

        Raises:
            RequestRejectedError: when Salesforce refuses the delete (a permission, a record it keeps).
        """
        if not RECORD_ID.match(crm_id):
            raise RequestRejectedError(f"{crm_id!r} is not a Salesforce {SOBJECTS[obj]} id")
        try:
            response = await self.http.request("DELETE", f"{DATA_PATH}/sobjects/{SOBJECTS[obj]}/{crm_id}")
        except NotFoundError:
            return False
        if response.status_code == 404:
            return False
        if response.status_code >= 300:
            category, message = describe_record_errors(salesforce_errors(response))
            raise RequestRejectedError(f"Salesforce refused deleting {SOBJECTS[obj]} {crm_id}: {message}",
                                       status=response.status_code, category=category)
        return True

    # -- conversions and deals --
    async def conversions_since(self, since: datetime | None) -> list[CrmConversion]:
        """Converted Leads (``IsConverted = true``) changed after ``since``: one conversion per Lead (see
        :func:`lead_conversion`)."""
        where = "IsConverted = true"
        if since is not None:
            where += f" AND SystemModstamp > {utc_millis(since)}"
        rows = await self._query_all(
            f"SELECT Id, Email, ConvertedDate, SystemModstamp FROM Lead WHERE {where} ORDER BY SystemModstamp, Id"
        )
        return [conversion for conversion in map(lead_conversion, rows) if conversion is not None]

    # -- custom fields ---------------------------------------------------------------------------------------
    def read_mapped_fields(self, obj: RecordObject, names: Sequence[str]) -> None:
        """Read these fields too (those the org has) in every later find, get and pull: the mapped ones."""
        self._mapped_fields[obj] = tuple(check_field_names([n for n in names if FIELD_API_NAME.match(n)]))

    async def create_field(self, obj: RecordObject, name: str, label: str, field_type: str) -> CrmField:
        """Create a custom field with the Tooling API (``POST /tooling/sobjects/CustomField``).

        ``name`` is the API name (``twitter_username__c``; the ``__c`` is added when missing); ``field_type`` one
        of :data:`TOOLING_FIELD_TYPES`, an enumeration listing its values after a colon
        (``enumeration:positive,neutral``). A field that exists already (``DUPLICATE_DEVELOPER_NAME``) is returned
        as the org describes it. Salesforce grants a new field to no profile: until an admin grants field-level
        security, the integration user may not see it (the caller checks with :meth:`list_fields`).

        Raises:
            RequestRejectedError: an unknown type or name, or Salesforce refused.
            PermissionRefusedError: the integration user lacks the permission to customize the org.
        """
        api_name = name if name.endswith("__c") else f"{name}__c"
        if not CUSTOM_FIELD_NAME.match(api_name):
            raise RequestRejectedError(
                f"Salesforce: {api_name!r} is not a custom field API name (letters, digits and single underscores, "
                "starting with a letter, ending in __c)",
                category=ErrorCategory.VALIDATION,
            )
        metadata = tooling_field_metadata(label or api_name.removesuffix("__c"), field_type)
        sobject = SOBJECTS[obj]
        body = {"FullName": f"{sobject}.{api_name}", "Metadata": metadata}

        async def create() -> CrmField:
            response = await self.http.request(
                "POST", f"{TOOLING_PATH}/sobjects/CustomField", idempotent=False, json=body
            )
            if response.status_code < 300:
                return await self._described_field(obj, api_name) or field_from_metadata(api_name, metadata)
            errors = salesforce_errors(response)
            if first_error_code(errors) == "DUPLICATE_DEVELOPER_NAME":
                # It exists already: as the org describes it, or as created when the user cannot see it yet.
                return await self._described_field(obj, api_name) or field_from_metadata(api_name, metadata)
            raise field_creation_refusal(response, errors, sobject, api_name)

        async def find() -> CrmField | None:
            return await self._described_field(obj, api_name)

        return await write_or_reconcile(create, find, what=f"Salesforce: creating {sobject}.{api_name}")

    async def _described_field(self, obj: RecordObject, api_name: str) -> CrmField | None:
        """The field as a fresh describe of ``obj`` shows it to the integration user, or ``None``."""
        return next((f for f in await self.list_fields(obj) if f.name.lower() == api_name.lower()), None)

    async def keep_note(self, obj: RecordObject, crm_id: str, text: str) -> bool:
        """Attach the record's social note (what no field carries) unless one of its notes already says exactly
        that; True when a note was added (a Note, or a Task in an org without Notes, as ``add_note``).

        Raises:
            NotFoundError: for an id that is not a Salesforce id, or an org with neither Note nor Task.
            RequestRejectedError: when Salesforce refuses the note.
        """
        if not RECORD_ID.match(crm_id):
            raise NotFoundError(f"{crm_id!r} is not a Salesforce id")
        wanted = " ".join(text.split())
        kinds = [self._note_object] if self._note_object else list(NOTE_OBJECTS)
        for kind in kinds:
            parent, _title, body = NOTE_FIELDS[kind]
            soql = (
                f"SELECT Id, {body} FROM {kind} WHERE {parent} = {soql_quote(crm_id)} "
                f"ORDER BY CreatedDate DESC LIMIT {NOTES_COMPARED}"
            )
            try:
                rows = await self._query_all(soql)
            except (NotFoundError, RequestRejectedError):
                continue  # no such object in this org: add_note finds the kind it has
            if any(" ".join(str(row.get(body) or "").split()) == wanted for row in rows):
                return False
            break
        await self.add_note(obj, crm_id, text)
        return True

    # -- change stamps of our writes --
    async def _read_write_stamps(self, obj: RecordObject, items: Sequence[PendingRecord]) -> None:
        """Give each written record its ``SystemModstamp`` right after the write, the stamp the change query pages by.

        sObject Collections answers carry no stamp, so it is read back: one ``SELECT Id, SystemModstamp ... WHERE
        Id IN (...)`` per 200 records, in parallel. ``LastModifiedById`` being the integration user would not do:
        flows and other tools running as that user would pass for the app's own writes. The writes are done
        whatever this read meets: a record left without a stamp is merged again by the next pull, nothing worse.
        """
        written = writes.written_records(items)
        if not written:
            return
        sobject = SOBJECTS[obj]
        ids = [writes.record_id(item) for item in written]
        queries = [id_in_query("Id, SystemModstamp", sobject, chunk) for chunk in chunks(ids, COLLECTION_LIMIT)]
        try:
            pages = await gather_or_cancel(self._query_all(soql) for soql in queries)
        except ProviderError as exc:
            logger.warning("Salesforce %s change stamps not read after the write (%s); the next pull merges them",
                           sobject, exc.category)
            return
        stamps = {str(row.get("Id")): parse_crm_time(row.get("SystemModstamp")) for rows in pages for row in rows}
        writes.stamp_results(written, stamps)
