"""Pipedrive adapter: persons (v2), leads, notes and person fields (v1), deals and activities, in its token budget."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack

import httpx

from crm_desktop.domain.models import Integration
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.providers import errors
from crm_desktop.providers.auth import HeaderTokenAuth
from crm_desktop.providers.base import AdapterBase, AdapterWiring
from crm_desktop.providers.contract import (
    ChangePage,
    ConnectionInfo,
    CrmField,
    CrmRecord,
    EchoCheck,
    MergeResult,
    OutboundRecord,
    RecordResult,
)
from crm_desktop.providers.http import Verdict, json_or_none
from crm_desktop.providers.pipedrive_deals import PipedriveDeals
from crm_desktop.providers.pipedrive_errors import (
    DAILY_BUDGET_CODE,
    FATAL_ERRORS,
    RecordRejectedError,
    TokenMeter,
    classify_pipedrive,
    token_cost,
)
from crm_desktop.providers.pipedrive_fields import (
    LEAD_FIELDS,
    LEAD_KEYS,
    STANDARD_RECORD_FIELDS,
    PersonFieldMap,
    RecordProblem,
    new_field_body,
    person_field,
)
from crm_desktop.providers.pipedrive_records import (
    ChangeMark,
    PersonIndex,
    PersonWish,
    added_since,
    holds_email,
    lead_person_id,
    lead_record,
    new_person_body,
    note_fingerprint,
    note_html,
    person_changes,
    person_record,
    primary_email,
    same_value,
    split_fields,
)
from crm_desktop.providers.rate import RateObservation, read_pipedrive_headers
from crm_desktop.providers.toolkit import (
    FieldCache,
    StackedBudget,
    answer_places,
    chunks,
    distinct_email_keys,
    email_key,
    failed_result,
    gather_or_cancel,
    merge_or_reconcile,
    paginate,
    parse_crm_time,
    results_in_order,
    server_time,
    utc_seconds,
    write_or_reconcile,
)

logger = logging.getLogger(__name__)


#: Requests per 2-second window of an API token on the cheapest plans (headers correct it: 40/100/120 on others).
DEFAULT_BURST_LIMIT = 20
#: Search requests per 2-second window.
DEFAULT_SEARCH_BURST_LIMIT = 10
BURST_WINDOW_SECONDS = 2.0
#: Requests in flight: enough to fill the largest burst window (120 per 2 s) at ~250 ms a round trip; the window,
#: not this, is what keeps the push under Pipedrive's limit.
DEFAULT_CONCURRENCY = 16
#: The largest page Pipedrive serves.
PAGE_LIMIT = 500
#: Person ids one ``GET /api/v2/persons?ids=`` may name.
IDS_PER_REQUEST = 100
#: Unlinked records in one push from which listing every person (500 a call, 10 tokens, no search window) is
#: tried instead of one search per email (1 call, 20 tokens, 10 per 2 s).
LIST_DEDUPE_MIN_RECORDS = 20
#: A listing is abandoned (and emails searched) once it would cost more tokens than the searches: pages per email.
LIST_PAGES_PER_SEARCH = 2
#: Overlap of two person listings, so a person changed while a page was being read is listed again.
LIST_REFRESH_OVERLAP = timedelta(seconds=5)
#: How old the person index may be when a record is looked up in it; older, what changed since is listed first.
LIST_REFRESH_SECONDS = 10.0
#: Records one push prepares at a time when it uses the person index.
INDEXED_CHUNK = 5_000
#: Notes looked at when deciding whether the social note changed.
NOTES_LOOKED_AT = 100
#: ``origin_id`` of the leads this app creates, so a later push finds its own lead among a person's leads.
LEAD_ORIGIN_ID = "crm-desktop"
#: The flag that pins a note to its person or lead (pinned notes stay at the top of the record's page).
_PIN_FLAGS = {"person_id": "pinned_to_person_flag", "lead_id": "pinned_to_lead_flag"}

#: First line of the social note this app keeps on a person or lead.
SOCIAL_NOTE_HEADING = "Social data from CRM Desktop"

SEARCH_PATH = "/api/v2/persons/search"
PERSONS_PATH = "/api/v2/persons"


def _no_rate_headers(headers: httpx.Headers) -> RateObservation:
    """The core's own header hook is left idle: the adapter routes search headers to the search budget itself."""
    return RateObservation()


# -- wire helpers ------------------------------------------------------------------------------------------------


def company_base_url(domain: str | None) -> str:
    """``https://{domain}.pipedrive.com`` for a company domain such as ``acme``.

    Raises:
        ConfigurationError: when there is no domain.
    """
    if not domain or not domain.strip():
        raise errors.ConfigurationError(
            "Pipedrive needs the company domain (the 'acme' of acme.pipedrive.com) or a base URL"
        )
    name = domain.strip().lower().removeprefix("https://").rstrip("/").removesuffix(".pipedrive.com")
    return f"https://{name}.pipedrive.com"


def _v1_paging(extra: dict[str, Any]) -> dict[str, Any]:
    """v1 paging: ``additional_data.pagination`` on the wire, or ``additional_data`` itself as the spec puts it."""
    paging = extra.get("pagination")
    return paging if isinstance(paging, dict) else extra


@dataclass
class _Pending:
    """One record on its way through a push."""

    index: int
    record: OutboundRecord
    email: str
    person: PersonWish
    lead: dict[str, Any] = field(default_factory=dict)
    person_id: int | None = None
    existing: dict[str, Any] | None = None
    lead_existing: dict[str, Any] | None = None


class PipedriveAdapter(PipedriveDeals, AdapterBase):
    """Pipedrive through its v1 and v2 REST API with an API token, within the burst windows and the daily tokens.

    Persons are v2 (found by exact email, then created or patched one by one, concurrently: Pipedrive has no
    batch writes and no upsert); leads, notes and person fields are v1. A small push searches each email (search
    has its own window of 10 per 2 s, so it caps a push at 5 persons a second); a push of
    :data:`LIST_DEDUPE_MIN_RECORDS` or more unlinked records lists every person into an email index instead (500
    a call), brought up to date with ``updated_since`` before each chunk of writes, and so does a sync's plan
    looking up as many emails (:meth:`find_by_emails`). Social data that no custom
    field takes goes into one pinned note on the person (or lead), written in place when its text changed. API calls
    per person: the write (plus a search, or a 500th of a listing), plus, when the record carries a note, one notes
    read for a person that already existed and one note write when the text changed. Deals, pipelines, won deals and
    activities are :class:`PipedriveDeals`'s.

    Attributes:
        provider: ``pipedrive``.
        budget: the token's 2-second window, concurrency and daily tokens (``x-daily-requests-left``).
        search_budget: search's lower window, stacked on ``budget``.
        page_size: records per page when listing (500, Pipedrive's largest).
    """

    provider = "pipedrive"

    def __init__(self, integration: Integration, credentials: dict[str, Any], **wiring: Unpack[AdapterWiring]) -> None:
        token = str(credentials.get("apiToken") or "").strip()
        if not token:
            raise errors.ConfigurationError(
                "Pipedrive needs an API token (Pipedrive > Personal preferences > API); store it with the integration"
            )
        super().__init__(
            integration,
            wiring,
            name="Pipedrive",
            base_url=integration.base_url or company_base_url(integration.domain or credentials.get("companyDomain")),
            classifier=self._classify,
            read_headers=_no_rate_headers,
            # The token goes in a header, never in the query string, which ends up in logs.
            auth=HeaderTokenAuth("x-api-token", token),
            window_limit=DEFAULT_BURST_LIMIT,
            window_seconds=BURST_WINDOW_SECONDS,
            concurrency=DEFAULT_CONCURRENCY,
            # Pipedrive counts in fixed 2-second windows: an even pace never bunches up at a window's edge.
            even_pacing=True,
        )
        self.search_budget = StackedBudget(
            self.budget,
            window_limit=DEFAULT_SEARCH_BURST_LIMIT,
            window_seconds=BURST_WINDOW_SECONDS,
            concurrency=self.budget.concurrency,
            clock=self._clock,
            sleep=self._sleep,
            even_pacing=True,
        )
        self._tokens = TokenMeter(self.budget)
        self.http.client.event_hooks["response"].append(self._observe_rate_headers)
        self.page_size = PAGE_LIMIT
        self.index_refresh_seconds = LIST_REFRESH_SECONDS
        #: The person fields, under the one key ``person`` (Pipedrive's leads have no fields of their own).
        self._person_fields: FieldCache[str, PersonFieldMap] = FieldCache(self._read_person_fields)
        #: Each record's social note seen or written this run: its id and its text's fingerprint.
        self._known_notes: dict[tuple[str, str], tuple[str, str]] = {}

    # -- plumbing --------------------------------------------------------------------------------------------------
    def _classify(self, response: httpx.Response) -> Verdict:
        verdict = classify_pipedrive(response)
        if verdict.code == DAILY_BUDGET_CODE:
            self.budget.daily_remaining = 0
            self._tokens.heard()
        return verdict

    async def _observe_rate_headers(self, response: httpx.Response) -> None:
        seen = read_pipedrive_headers(response.headers)
        if response.status_code == 429:
            # A refusal may describe another window than the request's own (the burst window on a search).
            seen = replace(seen, window_limit=None, window_seconds=None)
        if seen.daily_remaining is not None:
            self._tokens.heard()
        if response.request.url.path.endswith(SEARCH_PATH):
            self.search_budget.observe(replace(seen, daily_limit=None, daily_remaining=None))
            self.budget.observe(RateObservation(daily_limit=seen.daily_limit, daily_remaining=seen.daily_remaining))
        else:
            self.budget.observe(seen)

    async def _call(
        self, method: str, url: str, *, idempotent: bool = True, search: bool = False, **kwargs: Any
    ) -> httpx.Response:
        cost = token_cost(method, url)
        self._tokens.reserve(cost)
        try:
            return await self.http.request(
                method, url, idempotent=idempotent, budget=self.search_budget if search else None, **kwargs
            )
        except errors.RateLimitError as exc:
            if self.budget.daily_remaining == 0 and not isinstance(exc, errors.BudgetExhaustedError):
                raise errors.BudgetExhaustedError(
                    "Pipedrive's daily API token budget for the company is spent; it resets at 00:00 UTC",
                    status=exc.status,
                    retry_after=exc.retry_after,
                ) from None
            raise
        finally:
            self._tokens.release(cost)

    def _data(self, response: httpx.Response) -> tuple[Any, dict[str, Any]]:
        """The ``data`` and ``additional_data`` of a success; a refusal raises :class:`RecordRejectedError`."""
        body = json_or_none(response)
        if response.is_success and isinstance(body, dict) and body.get("success") is not False:
            extra = body.get("additional_data")
            return body.get("data"), extra if isinstance(extra, dict) else {}
        if response.is_success:
            raise errors.TransientError(f"Pipedrive answered {response.status_code} without its JSON envelope")
        raise RecordRejectedError.of(response, self._humanise)

    def _humanise(self, text: str) -> str:
        return (self._person_fields.held("person") or PersonFieldMap()).humanise(text)

    # -- contract: connection, fields, quota -----------------------------------------------------------------------
    async def test_connection(self) -> ConnectionInfo:
        """``GET /v1/users/me``: the company, the token's user, their apps, and the budget from the headers."""
        data, _ = self._data(await self._call("GET", "/v1/users/me"))
        if not isinstance(data, dict):
            raise errors.TransientError("Pipedrive's /v1/users/me answered without a user")
        account = data.get("company_name") or data.get("company_domain") or self.integration.name
        user = data.get("email") or data.get("name") or "unknown user"
        scopes = tuple(
            f"{entry['app']}:admin" if entry.get("admin") else str(entry["app"])
            for entry in data.get("access") or []
            if isinstance(entry, dict) and entry.get("app")
        )
        return ConnectionInfo(account=str(account), user=str(user), scopes=scopes, quota=self.quota())

    async def account_id(self) -> str:
        """The company id the token reaches (``company_id`` of ``GET /v1/users/me``)."""
        data, _ = self._data(await self._call("GET", "/v1/users/me"))
        company = data.get("company_id") if isinstance(data, dict) else None
        return "" if company is None else str(company)

    async def list_fields(self, obj: RecordObject) -> list[CrmField]:
        """Person fields (``GET /v1/personFields``, paged): ``name`` is the key, ``label`` the human name.

        A lead's own fields come first for leads, then the fields of its person (owner, labels and visibility
        belong to the lead there).
        """
        person_fields = await self._person_fields.get("person", fresh=True)
        if obj is RecordObject.CONTACT:
            return list(person_fields.fields)
        lead_fields = [CrmField(name=key, label=label, type=kind) for key, label, kind in LEAD_FIELDS]
        return lead_fields + [f for f in person_fields.fields if f.name not in LEAD_KEYS]

    async def field_map(self) -> PersonFieldMap:
        """The person fields by key and by name (listed once, then cached; :meth:`create_field` adds to it)."""
        return await self._person_fields.get("person")

    async def _fields_to_read(self, persons: Iterable[Mapping[str, Any]]) -> PersonFieldMap | None:
        """The person fields to read these persons' custom values through (an enum holds an option id, read as its
        label): as kept, or listed now when they hold a custom value and the fields were not listed yet."""
        held = self._person_fields.held("person")
        if held is not None or not any(
            isinstance(p.get("custom_fields"), dict) and any(v is not None for v in p["custom_fields"].values())
            for p in persons if p
        ):
            return held
        return await self.field_map()

    async def _read_person_fields(self, _key: str) -> PersonFieldMap:
        """List the person fields (every page)."""
        fields: list[CrmField] = []
        option_ids: dict[str, dict[str, int]] = {}

        async def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
            start = int(cursor or 0)
            response = await self._call("GET", "/v1/personFields", params={"start": start, "limit": self.page_size})
            data, extra = self._data(response)
            paging = _v1_paging(extra)
            if not paging.get("more_items_in_collection"):
                return list(data or []), None
            following = paging.get("next_start")
            return list(data or []), str(
                following if isinstance(following, int) and following > start else start + self.page_size
            )

        async for page, _ in paginate(fetch):
            for raw in page:
                if not isinstance(raw, dict) or not raw.get("key"):
                    continue
                crm_field, ids = person_field(raw)
                fields.append(crm_field)
                if ids:
                    option_ids[crm_field.name] = ids
        # A money field takes an amount with its currency: one given without takes the company's.
        money = any(f.custom and f.type == "monetary" for f in fields)
        return PersonFieldMap(tuple(fields), option_ids, await self._company_currency() if money else None)

    async def _company_currency(self) -> str | None:
        """The company's default currency (``default_currency`` of ``GET /v1/users/me``), ``None`` if it names none."""
        data, _ = self._data(await self._call("GET", "/v1/users/me"))
        currency = data.get("default_currency") if isinstance(data, dict) else None
        return str(currency).upper() if currency else None

    async def create_field(
        self, obj: RecordObject, name: str, label: str, field_type: str, options: Sequence[str] = ()
    ) -> CrmField:
        """Create a custom person field (``POST /v1/personFields {name, field_type}``); Pipedrive makes up its key.

        ``label`` becomes the field's name in Pipedrive (``name`` when empty). An existing field with that name is
        returned instead of making a second one.

        Raises:
            RequestRejectedError: for leads (their custom fields are Pipedrive's deal fields), an unknown type, or
                when Pipedrive refuses the field.
        """
        body = new_field_body(obj, name, label, field_type, options)
        title = body["name"]
        known = await self.field_map()
        existing = known.key_for(title)
        if existing is not None and (found := known.get(existing)) is not None:
            return found

        async def find() -> dict[str, Any] | None:
            again = await self._person_fields.get("person", fresh=True)
            key = again.key_for(title)
            return {"id": key, "key": key} if key is not None else None

        data = await self._post_once("/v1/personFields", body, find)
        if data.get("name") is None:
            # Found again after a lost connection: the reloaded map already holds it.
            made = (await self.field_map()).get(str(data["key"]))
            assert made is not None
            return made
        made, option_ids = person_field(data)
        known = (await self.field_map()).with_field(made, option_ids)
        if made.type == "monetary" and known.currency is None:
            known = replace(known, currency=await self._company_currency())
        self._person_fields.put("person", known)
        logger.info("Pipedrive person field created: %s (%s)", made.label, made.type)
        return made

    # -- reading persons -------------------------------------------------------------------------------------------
    async def _search_person_id(self, email: str) -> int | None:
        """``GET /api/v2/persons/search?term=<email>&fields=email&exact_match=true``: the oldest person with it."""
        response = await self._call(
            "GET", SEARCH_PATH, search=True, params={"term": email, "fields": "email", "exact_match": "true"}
        )
        data, _ = self._data(response)
        items = data.get("items") if isinstance(data, dict) else None
        matches = sorted(
            int(item["id"])
            for entry in items or []
            if isinstance(entry, dict) and isinstance(item := entry.get("item"), dict) and "id" in item
            if any(email_key(value) == email for value in item.get("emails") or [])
        )
        if len(matches) > 1:
            logger.warning("Pipedrive holds %d persons with the same email; the oldest one is used", len(matches))
        return matches[0] if matches else None

    async def _persons_by_ids(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Full persons, 100 ids a call (``GET /api/v2/persons?ids=``)."""
        found: dict[int, dict[str, Any]] = {}
        for chunk in chunks(sorted(set(ids)), IDS_PER_REQUEST):
            params = {"ids": ",".join(map(str, chunk)), "limit": IDS_PER_REQUEST}
            async for persons in self._v2_pages(PERSONS_PATH, params):
                found.update((int(person["id"]), person) for person in persons)
        return found

    async def _v2_pages(self, path: str, params: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        """A v2 list's records (those with an id), a page at a time, following Pipedrive's ``next_cursor``."""

        async def fetch(cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
            page_params = {**params, "cursor": cursor} if cursor else params
            data, extra = self._data(await self._call("GET", path, params=page_params))
            return [item for item in data or [] if isinstance(item, dict) and "id" in item], extra.get("next_cursor")

        async with aclosing(paginate(fetch)) as pages:
            async for items, _ in pages:
                yield items

    async def _person(self, person_id: int) -> dict[str, Any] | None:
        try:
            data, _ = self._data(await self._call("GET", f"{PERSONS_PATH}/{person_id}"))
        except errors.NotFoundError:
            return None
        return data if isinstance(data, dict) else None

    async def find_by_emails(self, obj: RecordObject, emails: Sequence[str]) -> dict[str, CrmRecord]:
        """Existing persons (or their leads) by email, then full reads. For :data:`LIST_DEDUPE_MIN_RECORDS` or more
        emails every person is listed into an email index when that costs fewer tokens than the searches, as a push
        does (a sync's plan of a first push of 400 records took 80 s of searches at 5 a second); else one search
        per email, concurrently."""
        wanted = sorted(distinct_email_keys(emails))
        index = await self._person_index(wanted)
        if index is not None:
            by_email = {email: int(person["id"]) for email in wanted if (person := index.get(email)) is not None}
        else:
            async def search(email: str) -> int | None:
                try:
                    return await self._search_person_id(email)
                except RecordRejectedError as exc:
                    logger.warning("Pipedrive refused one email search: %s", exc)
                    return None

            ids = await gather_or_cancel(search(email) for email in wanted)
            by_email = {email: pid for email, pid in zip(wanted, ids, strict=True) if pid is not None}
        persons = await self._persons_by_ids(by_email.values())
        if obj is RecordObject.CONTACT:
            fields_read = await self._fields_to_read(persons.values())
            return {email: person_record(persons[pid], fields_read) for email, pid in by_email.items()
                    if pid in persons}
        leads = await gather_or_cancel(self._own_lead(pid) for pid in by_email.values())
        return {
            email: lead_record(lead, persons.get(pid))
            for (email, pid), lead in zip(by_email.items(), leads, strict=True)
            if lead is not None
        }

    async def get_record(
        self, obj: RecordObject, *, email: str | None = None, crm_id: str | None = None
    ) -> CrmRecord | None:
        """A person (by id or email) or a lead (by its UUID, or its person's email); ``None`` when missing."""
        if obj is RecordObject.LEAD:
            if crm_id:
                lead = await self._lead(crm_id)
                if lead is None:
                    return None
                person = await self._person(int(lead["person_id"])) if lead.get("person_id") else None
                return lead_record(lead, person)
            if email:
                found = await self.find_by_emails(RecordObject.LEAD, [email])
                return next(iter(found.values()), None)
            return None
        if crm_id:
            if not crm_id.isdigit():
                return None
            person = await self._person(int(crm_id))
            return person_record(person, await self._fields_to_read([person])) if person else None
        if email:
            person_id = await self._search_person_id(email_key(email))
            person = await self._person(person_id) if person_id is not None else None
            return person_record(person, await self._fields_to_read([person])) if person else None
        return None

    # -- changes ---------------------------------------------------------------------------------------------------
    def changes_since(
        self, obj: RecordObject, cursor: str | None, *, echoes: EchoCheck | None = None
    ) -> AsyncIterator[ChangePage]:
        """Records changed since ``cursor``, oldest first, a page at a time.

        ``echoes`` is not asked: Pipedrive's lists return whole records only, so there is nothing cheaper to read
        first.

        Persons: ``GET /api/v2/persons?updated_since=&sort_by=update_time&sort_direction=asc&limit=500`` with
        Pipedrive's cursor. Leads: ``GET /v1/leads?updated_since=&sort=update_time``. The returned cursor is the
        last ``update_time`` and the records already delivered at exactly that time (see :class:`ChangeMark`).
        """
        if obj is RecordObject.LEAD:
            return self._lead_changes(cursor)
        return self._person_changes(cursor)

    async def _person_changes(self, cursor: str | None) -> AsyncIterator[ChangePage]:
        mark = ChangeMark.read(cursor, "Pipedrive")
        params: dict[str, Any] = {"sort_by": "update_time", "sort_direction": "asc", "limit": self.page_size}
        if mark.stamp:
            params["updated_since"] = mark.stamp

        async for persons in self._v2_pages(PERSONS_PATH, params):
            fresh = [p for p in persons if mark.is_new_record(p)]
            for person in fresh:
                mark.deliver(person)
            if fresh:
                fields_read = await self._fields_to_read(fresh)
                yield ChangePage(records=[person_record(p, fields_read) for p in fresh], cursor=mark.text())

    async def _lead_changes(self, cursor: str | None) -> AsyncIterator[ChangePage]:
        mark = ChangeMark.read(cursor, "Pipedrive")
        skip_ahead = 0
        while True:
            # Each page starts again from the last time seen, so leads updated while paging shift nothing away.
            params: dict[str, Any] = {"sort": "update_time", "limit": self.page_size, "start": skip_ahead}
            if mark.stamp:
                params["updated_since"] = mark.stamp
            data, extra = self._data(await self._call("GET", "/v1/leads", params=params))
            fresh = [
                lead for lead in data or [] if isinstance(lead, dict) and "id" in lead and mark.is_new_record(lead)
            ]
            more = bool(_v1_paging(extra).get("more_items_in_collection"))
            if fresh:
                person_ids = [lead_person_id(lead) for lead in fresh]
                persons = await self._persons_by_ids({pid for pid in person_ids if pid is not None})
                for lead in fresh:
                    mark.deliver(lead)
                records = [
                    lead_record(lead, persons.get(pid) if pid is not None else None)
                    for lead, pid in zip(fresh, person_ids, strict=True)
                ]
                yield ChangePage(records=records, cursor=mark.text())
                skip_ahead = 0
            elif more:
                # A whole page shares one time and was delivered before: step over it.
                skip_ahead += self.page_size
            if not more:
                return

    # -- leads -----------------------------------------------------------------------------------------------------
    async def _lead(self, lead_id: str) -> dict[str, Any] | None:
        try:
            data, _ = self._data(await self._call("GET", f"/v1/leads/{lead_id}"))
        except (errors.NotFoundError, RecordRejectedError):
            return None
        return data if isinstance(data, dict) else None

    async def _leads_of_person(self, person_id: int) -> list[dict[str, Any]]:
        data, _ = self._data(
            await self._call("GET", "/v1/leads", params={"person_id": person_id, "limit": self.page_size})
        )
        return [lead for lead in data or [] if isinstance(lead, dict) and "id" in lead]

    async def _own_lead(self, person_id: int) -> dict[str, Any] | None:
        """The lead this app made for a person (by ``origin_id``), else the person's newest open lead."""
        leads = await self._leads_of_person(person_id)
        ours = [lead for lead in leads if lead.get("origin_id") == LEAD_ORIGIN_ID]
        candidates = ours or leads
        candidates.sort(key=lambda lead: (not lead.get("is_archived"), str(lead.get("add_time") or "")), reverse=True)
        return candidates[0] if candidates else None

    # -- notes -----------------------------------------------------------------------------------------------------
    async def add_note(self, obj: RecordObject, crm_id: str, text: str) -> str:
        """``POST /v1/notes {content, person_id | lead_id}``; the text is escaped into HTML. Returns the note id."""
        target = ("lead_id", crm_id) if obj is RecordObject.LEAD else ("person_id", crm_id)
        note = await self._post_note(target, note_html(text))
        return str(note["id"])

    def _note_body(self, target: tuple[str, str], content: str) -> dict[str, Any]:
        key, value = target
        return {"content": content, key: value if key == "lead_id" else int(value)}

    async def _notes_of(self, target: tuple[str, str]) -> list[dict[str, Any]]:
        key, value = target
        params: dict[str, Any] = {key: value, "sort": "add_time DESC", "limit": NOTES_LOOKED_AT}
        data, _ = self._data(await self._call("GET", "/v1/notes", params=params))
        return [note for note in data or [] if isinstance(note, dict) and "id" in note]

    async def _post_note(
        self, target: tuple[str, str], content: str, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        wanted = note_fingerprint(content)
        started = datetime.now(UTC)

        async def find() -> dict[str, Any] | None:
            for note in await self._notes_of(target):
                if added_since(note, started) and note_fingerprint(str(note.get("content"))) == wanted:
                    return note
            return None

        return await self._post_once("/v1/notes", {**self._note_body(target, content), **(extra or {})}, find)

    async def _sync_social_note(self, target: tuple[str, str], text: str, *, fresh: bool) -> bool:
        """Keep the record's one social note current; True when it was written.

        The note is pinned, so it stays at the top of the person's (or lead's) page. When its text changed it is
        written in place (``PUT /v1/notes/{id}``), not added again: a salesperson sees one note that is always
        current, not a pile of outdated ones. A record with none yet (or whose note a salesperson deleted) gets
        a new one. Older social notes are left as they are."""
        content = note_html(text, SOCIAL_NOTE_HEADING)
        wanted = note_fingerprint(content)
        known = self._known_notes.get(target)
        if known is None and not fresh:
            known = next(
                ((str(note["id"]), fingerprint) for note in await self._notes_of(target)
                 if (fingerprint := note_fingerprint(str(note.get("content")))).startswith(SOCIAL_NOTE_HEADING)),
                None,
            )
        if known is not None and known[1] == wanted:
            self._known_notes[target] = known
            return False
        pin = {_PIN_FLAGS[target[0]]: 1}
        note: dict[str, Any] | None = None
        if known is not None:
            try:
                data, _ = self._data(await self._call("PUT", f"/v1/notes/{known[0]}", json={"content": content, **pin}))
                note = data if isinstance(data, dict) and "id" in data else {"id": known[0]}
            except errors.NotFoundError:  # deleted in Pipedrive since: add it again
                note = None
        if note is None:
            note = await self._post_note(target, content, pin)
        self._known_notes[target] = (str(note["id"]), wanted)
        return True

    async def _post_once(
        self, path: str, body: dict[str, Any], find: Callable[[], Awaitable[dict[str, Any] | None]]
    ) -> dict[str, Any]:
        """Create something Pipedrive would duplicate on a replay: after a lost connection, look before writing."""

        async def post() -> dict[str, Any]:
            data, _ = self._data(await self._call("POST", path, idempotent=False, json=body))
            if not isinstance(data, dict) or "id" not in data:
                raise errors.TransientError(f"Pipedrive POST {path} answered without the new record's id")
            return data

        return await write_or_reconcile(post, find, what=f"Pipedrive POST {path}")

    # -- upsert ----------------------------------------------------------------------------------------------------
    async def upsert(
        self,
        obj: RecordObject,
        records: Sequence[OutboundRecord],
        *,
        answers: list[RecordResult | None] | None = None,
    ) -> list[RecordResult]:
        """Create or update persons (or leads with their persons), one result per record in input order.

        Unlinked persons are found through an email index of every person when the push is large enough (see
        the class), else per chunk of 100 records by searching each email (concurrently, within search's window)
        and reading the found persons in one ``ids`` call. Then each record is written (POST or PATCH,
        concurrently within the burst window; records sharing an email one after the other), then its social
        note when the text changed. ``answers`` gets each record's result as soon as it is written.

        Raises:
            AuthError: the token was refused (nothing after it is written).
            BudgetExhaustedError: the daily token budget reached its reserve; the writes already on their way were
                answered first (their results are in ``answers``), and none was sent after.
        """
        results = answer_places(answers, records)
        written: dict[str, dict[str, Any]] = {}
        index = await self._person_index(email_key(record.email) for record in records if not record.crm_id)
        size = INDEXED_CHUNK if index is not None else IDS_PER_REQUEST
        for numbered in chunks(list(enumerate(records)), size):
            await self._upsert_chunk(obj, numbered, results, written, index)
        return results_in_order(results, records, "Pipedrive")

    async def _person_index(self, emails: Iterable[str]) -> PersonIndex | None:
        """Every person by email when listing them is cheaper than searching each of ``emails`` (the unlinked
        ones of a push, or those a plan looks for), else ``None``."""
        unlinked = set(emails) - {""}
        if len(unlinked) < LIST_DEDUPE_MIN_RECORDS:
            return None
        index = PersonIndex(since=datetime.now(UTC) - LIST_REFRESH_OVERLAP)
        index.listed_at = self._clock()
        if not await self._list_persons_into(index, {}, max_pages=LIST_PAGES_PER_SEARCH * len(unlinked)):
            logger.info("Pipedrive holds too many persons to list for %d emails; searching them", len(unlinked))
            return None
        logger.info("Pipedrive persons listed for %d emails: %d persons", len(unlinked), len(index))
        return index

    async def _list_persons_into(
        self, index: PersonIndex, params: dict[str, Any], *, max_pages: int | None = None
    ) -> bool:
        """List persons (``GET /api/v2/persons``, 500 a page) into ``index``; ``False`` past ``max_pages``."""
        wanted = {**params, "limit": self.page_size}
        started: list[datetime] = []

        async def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
            response = await self._call("GET", PERSONS_PATH, params={**wanted, "cursor": cursor} if cursor else wanted)
            if not started:
                started.append((server_time(response) or datetime.now(UTC)) - LIST_REFRESH_OVERLAP)
            data, extra = self._data(response)
            return list(data or []), extra.get("next_cursor")

        pages = 0
        async with aclosing(paginate(fetch)) as listing:
            async for persons, following in listing:
                pages += 1
                for person in persons:
                    if isinstance(person, dict) and "id" in person:
                        index.add(person)
                if following and max_pages is not None and pages >= max_pages:
                    return False
        index.since = started[0]
        return True

    async def _listed_person(self, index: PersonIndex, email: str) -> dict[str, Any] | None:
        """The indexed person with ``email``, after listing what changed since when the index is getting old."""
        async with index.lock:
            if self._clock() - index.listed_at >= self.index_refresh_seconds:
                index.listed_at = self._clock()
                await self._list_persons_into(index, {"updated_since": utc_seconds(index.since)})
        return index.get(email)

    async def _upsert_chunk(
        self,
        obj: RecordObject,
        chunk: list[tuple[int, OutboundRecord]],
        results: list[RecordResult | None],
        written: dict[str, dict[str, Any]],
        persons: PersonIndex | None = None,
    ) -> None:
        pending: list[_Pending] = []
        for index, record in chunk:
            email = email_key(record.email)
            try:
                if not email:
                    raise RecordProblem("email", "is empty; Pipedrive persons are matched by email")
                fields = await self._wire_custom_values(record.fields)
                wish, lead = split_fields(obj, email, fields)
            except RecordProblem as problem:
                message = f"{record.email}: field '{problem.field_name}' {problem.reason}"
                results[index] = failed_result(record.email, ErrorCategory.VALIDATION, message, crm_id=record.crm_id)
                continue
            pending.append(_Pending(index=index, record=record, email=email, person=wish, lead=lead))
        if not pending:
            return
        await self._resolve_existing(obj, pending, results, written, persons)
        by_email: dict[str, list[_Pending]] = {}
        for item in pending:
            if results[item.index] is None:
                by_email.setdefault(item.email, []).append(item)

        # With the index, a few records per request slot are in progress at a time, so each is looked up just
        # before it is written (the index stays at most LIST_REFRESH_SECONDS behind Pipedrive).
        in_progress = asyncio.Semaphore(2 * self.budget.concurrency if persons is not None else len(by_email) or 1)

        # The daily budget's stop lets the writes already on their way finish (their tokens were reserved): their
        # answers are the run's to count. Cancelling them would leave persons Pipedrive made that no run saw made.
        stopped: list[errors.BudgetExhaustedError] = []

        async def write_in_turn(group: list[_Pending]) -> None:
            try:
                await write_group(group)
            except errors.BudgetExhaustedError as exc:
                stopped.append(exc)

        async def write_group(group: list[_Pending]) -> None:
            # Records sharing an email go one after the other, each seeing the person the one before wrote.
            async with in_progress:
                for item in group:
                    if stopped:
                        return
                    if item.existing is None and item.email in written:
                        item.existing = written[item.email]
                        item.person_id = int(item.existing["id"])
                    elif persons is not None and item.person_id is None:
                        try:
                            listed = await self._listed_person(persons, item.email)
                        except FATAL_ERRORS:
                            raise
                        except errors.ProviderError as exc:
                            # This record's failure, not the push's: the others' answers (persons created a
                            # moment ago) still come back, so the engine links and counts them in this run.
                            results[item.index] = self._failure(item.record, exc, "the look-up of the person")
                            continue
                        if listed is not None:
                            item.existing, item.person_id = listed, int(listed["id"])
                    results[item.index] = await self._write_one(obj, item, written)

        await gather_or_cancel(write_in_turn(group) for group in by_email.values())
        if stopped:
            raise stopped[0]

    async def _wire_custom_values(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Record fields with custom field names turned into keys and option labels into option ids."""
        if all(key in STANDARD_RECORD_FIELDS for key in fields):
            return dict(fields)
        return (await self.field_map()).wire_fields(fields)

    async def _resolve_existing(
        self,
        obj: RecordObject,
        pending: list[_Pending],
        results: list[RecordResult | None],
        written: dict[str, dict[str, Any]],
        persons: PersonIndex | None = None,
    ) -> None:
        """Find each record's person: its linked id, one written earlier in this push, the index or a search."""

        async def follow_link(item: _Pending) -> None:
            crm_id = item.record.crm_id
            if not crm_id:
                return
            if obj is RecordObject.CONTACT:
                item.person_id = int(crm_id) if crm_id.isdigit() else None
                return
            lead = await self._lead(crm_id)
            if lead is not None:
                item.lead_existing = lead
                item.person_id = lead_person_id(lead)

        await gather_or_cancel(follow_link(item) for item in pending)
        await self._read_persons(item for item in pending if item.person_id is not None)
        unlinked = [item for item in pending if item.person_id is None]
        for item in unlinked:
            if item.email in written:
                item.existing = written[item.email]
                item.person_id = int(item.existing["id"])
        if persons is not None:
            return  # looked up in the index right before each write
        emails = sorted({item.email for item in unlinked if item.person_id is None})

        async def search(email: str) -> int | errors.ProviderError | None:
            try:
                return await self._search_person_id(email)
            except FATAL_ERRORS:
                raise
            except errors.ProviderError as exc:
                return exc

        found = dict(zip(emails, await gather_or_cancel(search(email) for email in emails), strict=True))
        for item in unlinked:
            if item.person_id is not None:
                continue
            outcome = found[item.email]
            if isinstance(outcome, errors.ProviderError):
                results[item.index] = self._failure(item.record, outcome, "the search for the person")
            else:
                item.person_id = outcome
        await self._read_persons(item for item in unlinked if item.person_id is not None and item.existing is None)

    async def _read_persons(self, items: Iterable[_Pending]) -> None:
        """Fill in the full persons of records whose person id is known (one call per 100)."""
        waiting = [item for item in items if item.person_id is not None and item.existing is None]
        if not waiting:
            return
        persons = await self._persons_by_ids(item.person_id for item in waiting if item.person_id is not None)
        for item in waiting:
            item.existing = persons.get(item.person_id) if item.person_id is not None else None
            if item.existing is None:
                item.person_id = None  # deleted or merged in Pipedrive since it was linked: match by email

    async def _write_one(self, obj: RecordObject, item: _Pending, written: dict[str, dict[str, Any]]) -> RecordResult:
        record = item.record
        stage = "the person"
        crm_id = record.crm_id
        taken_over = self._merged_elsewhere(obj, item)
        if taken_over is not None:
            return failed_result(record.email, ErrorCategory.DUPLICATE, taken_over, crm_id=record.crm_id)
        if obj is RecordObject.CONTACT and crm_id and item.existing is None:
            # Its linked person was deleted in Pipedrive and no person holds its email: not found, as HubSpot and
            # Salesforce answer an update of a deleted record (the engine then skips it and never re-creates it).
            return failed_result(record.email, ErrorCategory.NOT_FOUND,
                                 f"{record.email}: person {crm_id} is gone from Pipedrive (deleted), and no person "
                                 f"has this email", crm_id=crm_id)
        try:
            person, person_outcome = await self._write_person(item)
            written[item.email] = person
            person_id = int(person["id"])
            if obj is RecordObject.CONTACT:
                crm_id, outcome = str(person_id), person_outcome
                note_target = ("person_id", crm_id)
                fresh = person_outcome is RecordOutcome.CREATED
                # The answer's update_time is the stamp the change feed pages by: the engine knows this write's echo.
                stamp = parse_crm_time(person.get("update_time"))
            else:
                stage = "the lead"
                lead, lead_outcome = await self._write_lead(
                    item, person_id, fresh=person_outcome is RecordOutcome.CREATED
                )
                crm_id = str(lead["id"])
                outcome = lead_outcome
                if lead_outcome is RecordOutcome.UNCHANGED and person_outcome is not RecordOutcome.UNCHANGED:
                    outcome = RecordOutcome.UPDATED
                note_target = ("lead_id", crm_id)
                fresh = lead_outcome is RecordOutcome.CREATED
                stamp = parse_crm_time(lead.get("update_time"))
            if record.note and record.note.strip():
                stage = "the social note"
                added = await self._sync_social_note(note_target, record.note, fresh=fresh)
                if added and outcome is RecordOutcome.UNCHANGED:
                    outcome = RecordOutcome.UPDATED
            return RecordResult(email=record.email, outcome=outcome, crm_id=crm_id, crm_modified_at=stamp)
        except FATAL_ERRORS:
            raise
        except errors.ProviderError as exc:
            return replace(self._failure(record, exc, stage), crm_id=crm_id)

    @staticmethod
    def _merged_elsewhere(obj: RecordObject, item: _Pending) -> str | None:
        """Why a linked contact is not written to the person its email now finds, when its own person is gone and
        that one's primary email is another (a salesperson merged the two: Pipedrive keeps the survivor's id and
        the other's email as a second one); ``None`` when it may be written."""
        linked = item.record.crm_id
        if obj is not RecordObject.CONTACT or not linked or item.existing is None:
            return None
        found, email = str(item.existing.get("id")), primary_email(item.existing)
        if found == linked or not email or email == email_key(item.email):
            return None
        return (f"{item.email}: person {linked} is gone from Pipedrive (merged or deleted); {item.email} is now "
                f"another email of person {found}, whose email is {email}: not written, so as not to write one "
                f"person over another. If they are one person, merge the two in People (Duplicates)")

    def _failure(self, record: OutboundRecord, exc: errors.ProviderError, stage: str) -> RecordResult:
        if isinstance(exc, RecordRejectedError):
            where = f" field '{self._humanise(exc.field)}'" if exc.field else ""
            message = f"{record.email}: Pipedrive refused {stage}{where}: {exc}"
        else:
            message = f"{record.email}: {stage} was not written: {exc}"
        return failed_result(record.email, exc.category, message, crm_id=record.crm_id)

    async def _write_person(self, item: _Pending) -> tuple[dict[str, Any], RecordOutcome]:
        """POST a new person or PATCH what differs; nothing when the person already has these values."""
        if item.existing is None:
            return await self._create_person(item), RecordOutcome.CREATED
        changes = person_changes(item.person, item.existing)
        if not changes:
            return item.existing, RecordOutcome.UNCHANGED
        person_id = int(item.existing["id"])
        data, _ = self._data(await self._call("PATCH", f"{PERSONS_PATH}/{person_id}", json=changes))
        return (data if isinstance(data, dict) else item.existing), RecordOutcome.UPDATED

    async def _create_person(self, item: _Pending) -> dict[str, Any]:
        return await self._post_once(
            PERSONS_PATH, new_person_body(item.person), lambda: self._reconcile_person(item.email)
        )

    async def _reconcile_person(self, email: str) -> dict[str, Any] | None:
        """After a lost create: search the email again, then (search lags writes) look among the newest persons."""
        person_id = await self._search_person_id(email)
        if person_id is not None:
            return await self._person(person_id)
        params = {"sort_by": "id", "sort_direction": "desc", "limit": IDS_PER_REQUEST}
        data, _ = self._data(await self._call("GET", PERSONS_PATH, params=params))
        for person in data or []:
            if isinstance(person, dict) and holds_email(person, email):
                return person
        return None

    async def _write_lead(self, item: _Pending, person_id: int, *, fresh: bool) -> tuple[dict[str, Any], RecordOutcome]:
        lead = item.lead_existing
        if lead is None and not fresh:
            lead = await self._own_lead(person_id)
        wanted = dict(item.lead)
        if lead is None:
            body = {"title": wanted.pop("title", None) or item.person.full_name(item.existing) or item.email, **wanted}
            body.update({"person_id": person_id, "origin_id": LEAD_ORIGIN_ID})

            async def find() -> dict[str, Any] | None:
                return next(
                    (
                        lead
                        for lead in await self._leads_of_person(person_id)
                        if lead.get("origin_id") == LEAD_ORIGIN_ID
                    ),
                    None,
                )

            return await self._post_once("/v1/leads", body, find), RecordOutcome.CREATED
        changes = {key: value for key, value in wanted.items() if not same_value(lead.get(key), value)}
        if lead.get("person_id") != person_id:
            changes["person_id"] = person_id
        if not changes:
            return lead, RecordOutcome.UNCHANGED
        data, _ = self._data(await self._call("PATCH", f"/v1/leads/{lead['id']}", json=changes))
        return (data if isinstance(data, dict) else lead), RecordOutcome.UPDATED

    # -- deletes and merges --
    async def delete_record(self, obj: RecordObject, crm_id: str) -> bool:
        """``DELETE /api/v2/persons/{id}`` (a lead: ``DELETE /v1/leads/{id}``).

        Raises:
            RequestRejectedError: when Pipedrive refuses the delete.
        """
        url = f"/api/v2/persons/{crm_id}" if obj is RecordObject.CONTACT else f"/v1/leads/{crm_id}"
        if obj is RecordObject.CONTACT and not crm_id.isdigit():
            raise errors.RequestRejectedError(f"Pipedrive: person ids are numbers, not {crm_id!r}")
        try:
            response = await self._call("DELETE", url)
        except errors.NotFoundError:
            return False
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise errors.RequestRejectedError(
                f"Pipedrive refused deleting {obj.value} {crm_id} (HTTP {response.status_code})",
                status=response.status_code)
        return True

    async def merge_records(
        self, obj: RecordObject, keep_id: str, merge_id: str, *, merge_email: str | None = None
    ) -> MergeResult:
        """``PUT /v1/persons/{merge_id}/merge`` with ``merge_with_id`` = ``keep_id``: Pipedrive keeps that person
        (its data wins) and folds the other into it; 40 API tokens. A lost answer is looked up before the merge is
        sent again, and a merge Pipedrive already made is a success (see :func:`merge_or_reconcile`).

        Raises:
            RequestRejectedError: for leads (Pipedrive merges persons) or a merge Pipedrive refuses.
            NotFoundError: when either person is gone (and not merged into the other).
            AmbiguousWriteError: when the answer was lost twice and both persons are still there.
        """
        if obj is not RecordObject.CONTACT:
            raise errors.RequestRejectedError("Pipedrive: only persons are merged from CRM Desktop")
        if not (keep_id.isdigit() and merge_id.isdigit()):
            raise errors.RequestRejectedError(f"Pipedrive: person ids are numbers, not {keep_id!r} and {merge_id!r}")

        async def merge() -> MergeResult:
            # Through _call: the merge's 40 tokens are reserved against the daily budget like any other call's.
            response = await self._call(
                "PUT", f"/v1/persons/{merge_id}/merge", json={"merge_with_id": int(keep_id)}, idempotent=False
            )
            if response.status_code >= 400:
                raise errors.RequestRejectedError(
                    f"Pipedrive refused merging person {merge_id} into {keep_id} (HTTP {response.status_code})",
                    status=response.status_code,
                )
            data = response.json().get("data") or {}
            return MergeResult(surviving_id=str(data.get("id") or keep_id), merged_id=merge_id)

        async def merged_into() -> str | None:
            """``keep_id`` when person ``merge_id`` is gone and ``merge_email`` is among the survivor's emails."""
            key = email_key(merge_email)
            if not key or await self._person(int(merge_id)) is not None:
                return None
            survivor = await self._person(int(keep_id))
            emails = survivor.get("emails") if survivor is not None else None
            held = {email_key(item.get("value")) for item in emails or [] if isinstance(item, dict)}
            return keep_id if key in held else None

        return await merge_or_reconcile(
            merge, merged_into, merge_id=merge_id, what=f"Pipedrive: merge of person {merge_id} into {keep_id}"
        )
