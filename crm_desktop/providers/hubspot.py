"""HubSpot CRM v3 adapter: private-app token, batch upserts by email, search-based change pulls, leads, notes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Unpack
from urllib.parse import quote

import httpx

from crm_desktop.domain.models import Integration
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.providers import contract, errors
from crm_desktop.providers.auth import HeaderTokenAuth
from crm_desktop.providers.base import AdapterBase, AdapterWiring
from crm_desktop.providers.conversions import CrmConversion
from crm_desktop.providers.hubspot_batches import (
    BATCH_SIZE,
    BatchInput,
    Written,
    lead_create_input,
    note_results,
    nothing_to_look_up,
    result_email,
    result_id,
    update_input,
    upsert_input,
    write_batches,
    write_result,
)
from crm_desktop.providers.hubspot_deals import (
    CONVERSION_PROPERTIES,
    CONVERTED_FILTER,
    contact_id_of,
    conversion_of,
    priced,
    won_deal_values,
    won_stages,
)
from crm_desktop.providers.hubspot_errors import (
    WINDOW_SECONDS,
    answered,
    body_of,
    classify_hubspot,
    named_once,
    record_failure,
    record_gone,
)
from crm_desktop.providers.hubspot_records import (
    CONTACT_PROPERTIES,
    LEAD_OBJECT_FIELDS,
    LEAD_PROPERTIES,
    NOTE_BODY_LIMIT,
    association_ids,
    contact_record,
    crm_field,
    hubspot_email_key,
    id_order,
    lead_record,
    note_html,
    note_input,
    note_key,
    property_body,
    property_kinds,
    wire_properties,
)
from crm_desktop.providers.hubspot_search import (
    HAS_LEAD_STATUS,
    SEARCH_PER_SECOND,
    LeadCursor,
    SearchStream,
    merged_changes,
)
from crm_desktop.providers.rate import read_hubspot_headers
from crm_desktop.providers.toolkit import (
    ChangeCursor,
    FieldCache,
    StackedBudget,
    WriteGate,
    answer_places,
    chunks,
    distinct_email_keys,
    failed_result,
    gather_or_cancel,
    match_landed,
    merge_or_reconcile,
    results_in_order,
    rounds_by_email,
    server_time,
    utc_millis,
    write_or_reconcile,
)

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.hubapi.com"
#: Private apps on Free and Starter: 100 requests per rolling 10 s (Professional: 190; the headers tell).
DEFAULT_WINDOW_LIMIT = 100
DEFAULT_CONCURRENCY = 4
#: How far before a full lead pull starts it begins watching the leads' contacts (clock skew, whole-second Date).
FULL_PULL_CONTACT_OVERLAP = timedelta(minutes=1)

#: A batch start no update time can reach: a lead left untouched reads as unchanged.
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


# -- the adapter --------------------------------------------------------------------------------------------------
class HubSpotAdapter(AdapterBase):
    """HubSpot CRM v3 through a private-app token: contacts, leads (with their contact), notes and properties.

    Attributes:
        provider: ``hubspot``.
        integration: the integration this adapter serves.
        options: tuning (rate window, concurrency, daily reserve, retries).
    """

    provider = "hubspot"

    def __init__(self, integration: Integration, credentials: dict[str, Any], **wiring: Unpack[AdapterWiring]) -> None:
        token = str(credentials.get("token") or "").strip()
        if not token:
            raise errors.ConfigurationError("HubSpot needs a private-app token; reconnect the integration")
        self._token = token
        super().__init__(
            integration,
            wiring,
            name="HubSpot",
            base_url=integration.base_url or DEFAULT_BASE_URL,
            classifier=classify_hubspot,
            read_headers=read_hubspot_headers,
            auth=HeaderTokenAuth("Authorization", f"Bearer {token}"),
            window_limit=DEFAULT_WINDOW_LIMIT,
            window_seconds=WINDOW_SECONDS,
            concurrency=DEFAULT_CONCURRENCY,
        )
        self._search_budget = StackedBudget(
            self.budget, window_limit=SEARCH_PER_SECOND, window_seconds=1.0, concurrency=1, sleep=self._sleep
        )
        self._properties: FieldCache[str, list[contract.CrmField]] = FieldCache(self._read_object_fields)
        #: Properties the field mapping reads besides the standard ones, per object (see ``read_mapped_fields``).
        self._mapped_properties: dict[RecordObject, tuple[str, ...]] = {}
        self._has_leads_object: bool | None = None
        self._v4_associations: bool | None = None
        self._search_date: datetime | None = None

    # -- connection and quota ---------------------------------------------------------------------------------------
    async def test_connection(self) -> contract.ConnectionInfo:
        """The HubSpot account, the private app and its scopes (when HubSpot tells), and the quota left.

        Raises:
            AuthError: when HubSpot refuses the token.
        """
        details = body_of(await self.http.request("GET", "/account-info/v3/details"))
        portal = details.get("portalId")
        account = f"HubSpot account {portal}" if portal is not None else "HubSpot account"
        if details.get("timeZone"):
            account += f" ({details['timeZone']})"
        user, scopes = await self._token_info()
        return contract.ConnectionInfo(account=account, user=user, scopes=tuple(scopes), quota=self.quota())

    async def account_id(self) -> str:
        """The portal (hub) id the token reaches (``GET /account-info/v3/details``)."""
        portal = body_of(await self.http.request("GET", "/account-info/v3/details")).get("portalId")
        return "" if portal is None else str(portal)

    async def _token_info(self) -> tuple[str, list[str]]:
        """Who the token acts as and its scopes; ``("private app", [])`` when HubSpot does not say."""
        # The token sits in this path, so the call skips the core's request log.
        await self.budget.acquire()
        try:
            response: httpx.Response | None = await self.http.client.get(
                f"/oauth/v1/access-tokens/{quote(self._token, safe='')}"
            )
        except httpx.TransportError:
            response = None
        finally:
            self.budget.release()
        if response is not None and response.status_code == 200:
            info = body_of(response)
            user = str(info.get("user") or (f"app {info['app_id']}" if info.get("app_id") else "private app"))
            return user, [str(scope) for scope in info.get("scopes") or []]
        # Not an OAuth token (HubSpot answers 404 for private-app tokens there): ask the private-app endpoint.
        try:
            private = await self.http.request(
                "POST", "/oauth/v2/private-apps/get/access-token-info", json={"tokenKey": self._token}
            )
        except (errors.NotFoundError, errors.AuthError, errors.PermissionRefusedError):
            return "private app", []
        info = body_of(private) if private.status_code == 200 else {}
        user = f"private app {info['appId']}" if info.get("appId") else "private app"
        return user, [str(scope) for scope in info.get("scopes") or []]

    # -- properties -------------------------------------------------------------------------------------------------
    async def list_fields(self, obj: RecordObject) -> list[contract.CrmField]:
        """Contact properties; for leads the lead object's properties, then the contact's (labelled as such).

        Without a leads object in the account (HubSpot plans before Sales Hub Professional), leads are contacts
        and their fields are the contact properties.
        """
        contacts = await self._object_fields("contacts", refresh=True)
        if obj is RecordObject.CONTACT or self._has_leads_object is False:
            return contacts
        try:
            leads = await self._object_fields("leads", refresh=True)
        except errors.NotFoundError:
            self._has_leads_object = False
            return contacts
        self._has_leads_object = True
        lead_names = {f.name for f in leads}
        return [*leads, *(replace(f, label=f"Contact: {f.label}") for f in contacts if f.name not in lead_names)]

    async def _object_fields(self, object_name: str, *, refresh: bool = False) -> list[contract.CrmField]:
        return await self._properties.get(object_name, fresh=refresh)

    async def _read_object_fields(self, object_name: str) -> list[contract.CrmField]:
        response = await self.http.request("GET", f"/crm/v3/properties/{object_name}")
        return [crm_field(item) for item in body_of(response).get("results") or [] if not item.get("hidden")]

    async def _leads_available(self) -> bool:
        """Whether the account has HubSpot's leads object (found out once, by listing its properties)."""
        if self._has_leads_object is None:
            try:
                await self._object_fields("leads")
                self._has_leads_object = True
            except errors.NotFoundError:
                self._has_leads_object = False
                logger.info("HubSpot account has no leads object: leads are written as contacts")
        return self._has_leads_object

    def read_mapped_fields(self, obj: RecordObject, names: Sequence[str]) -> None:
        """Read these properties too (those the object has) in every later read: the mapped ones. HubSpot returns
        only the properties a read names, and a mapped standard one left out (``city``) would read as blank."""
        self._mapped_properties[obj] = tuple(names)

    async def _read_properties(self, object_name: str) -> list[str]:
        """The properties a read asks for: the standard ones the app maps, every custom property, and the mapped
        ones the object has (a lead's mapped fields are read from its contact too, where it is one)."""
        standard = CONTACT_PROPERTIES if object_name == "contacts" else LEAD_PROPERTIES
        fields = await self._object_fields(object_name)
        custom = [f.name for f in fields if f.custom]
        held = {f.name for f in fields}
        mapped = [name for names in self._mapped_properties.values() for name in names if name in held]
        return list(dict.fromkeys([*standard, *custom, *mapped]))

    async def create_field(self, obj: RecordObject, name: str, label: str, field_type: str) -> contract.CrmField:
        """Create a custom contact (or lead) property; an existing one of the same type is returned as is.

        ``field_type`` is as :func:`property_body` reads it (``enumeration:positive,neutral,negative``).

        Raises:
            RequestRejectedError: when HubSpot refuses the name or type, or the name exists with another type.
        """
        body = property_body(name, label, field_type)
        object_name = "leads" if obj is RecordObject.LEAD and await self._leads_available() else "contacts"
        body["groupName"] = "leadinformation" if object_name == "leads" else "contactinformation"
        self._properties.forget(object_name)

        async def create() -> contract.CrmField:
            response = await self.http.request("POST", f"/crm/v3/properties/{object_name}", json=body, idempotent=False)
            if response.status_code in (200, 201):
                return crm_field(body_of(response))
            if response.status_code == 409:
                existing = await self._existing_property(object_name, name)
                if existing is not None and existing.type == body["type"]:
                    return existing
            category, message = record_failure(body_of(response), response.status_code, f"property {name}")
            raise errors.RequestRejectedError(
                named_once(message), status=response.status_code, category=category, code=str(category)
            )

        return await write_or_reconcile(
            create, lambda: self._existing_property(object_name, name), what=f"HubSpot: creating property {name}"
        )

    async def _existing_property(self, object_name: str, name: str) -> contract.CrmField | None:
        try:
            response = await self.http.request("GET", f"/crm/v3/properties/{object_name}/{name}")
        except errors.NotFoundError:
            return None
        return crm_field(body_of(response))

    # -- reads ------------------------------------------------------------------------------------------------------
    async def find_by_emails(self, obj: RecordObject, emails: Sequence[str]) -> dict[str, contract.CrmRecord]:
        """Existing contacts (or leads, by their contact's email) by normalised email, via batch read by email."""
        wanted = distinct_email_keys(emails, hubspot_email_key)
        if not wanted:
            return {}
        contacts = await self._contacts_by_email(wanted)
        if obj is RecordObject.CONTACT or not await self._leads_available():
            return contacts
        by_contact = {record.crm_id: email for email, record in contacts.items()}
        linked = await self._associated_ids("contacts", "leads", list(by_contact))
        newest = {contact_id: max(ids, key=id_order) for contact_id, ids in linked.items() if ids}
        leads = await self._batch_read("leads", list(newest.values()), await self._read_properties("leads"))
        leads_by_id = {str(item.get("id")): item for item in leads}
        found: dict[str, contract.CrmRecord] = {}
        for contact_id, lead_id in newest.items():
            item = leads_by_id.get(lead_id)
            if item is not None:
                contact = contacts[by_contact[contact_id]]
                found[contact.email] = lead_record(item, contact)
        return found

    async def _contacts_by_email(self, emails: Sequence[str]) -> dict[str, contract.CrmRecord]:
        items = await self._batch_read("contacts", emails, await self._read_properties("contacts"), by_email=True)
        wanted = set(emails)
        found: dict[str, contract.CrmRecord] = {}
        for item in items:
            record = contact_record(item)
            if record.email in wanted:
                found[record.email] = record
        return found

    async def _batch_read(
        self, object_name: str, ids: Sequence[str], properties: list[str], *, by_email: bool = False
    ) -> list[dict[str, Any]]:
        """Records by id (or email) in batches of 100, read concurrently; absent ones are left out."""

        async def read(chunk: Sequence[str]) -> list[dict[str, Any]]:
            body: dict[str, Any] = {"properties": properties, "inputs": [{"id": value} for value in chunk]}
            if by_email:
                body["idProperty"] = "email"
            response = await self.http.request("POST", f"/crm/v3/objects/{object_name}/batch/read", json=body)
            answer = answered(response, f"{object_name} read")
            return [item for item in answer.get("results") or [] if isinstance(item, dict)]

        pages = await gather_or_cancel(read(chunk) for chunk in chunks(ids, BATCH_SIZE))
        return [item for page in pages for item in page]

    async def get_record(
        self, obj: RecordObject, *, email: str | None = None, crm_id: str | None = None
    ) -> contract.CrmRecord | None:
        """One contact or lead by CRM id or by email (emails are looked up in a body, never in a URL)."""
        if crm_id is None:
            if not email:
                raise ValueError("get_record needs an email or a CRM id")
            key = hubspot_email_key(email)
            return (await self.find_by_emails(obj, [email])).get(key) if key else None
        if obj is RecordObject.CONTACT or not await self._leads_available():
            item = await self._get_object("contacts", crm_id, await self._read_properties("contacts"))
            return contact_record(item) if item is not None else None
        item = await self._get_object("leads", crm_id, await self._read_properties("leads"))
        if item is None:
            return None
        contacts = association_ids(item, "contacts")
        contact_item = None
        if contacts:
            contact_item = await self._get_object("contacts", contacts[0], await self._read_properties("contacts"))
        return lead_record(item, contact_record(contact_item) if contact_item else None)

    async def _get_object(
        self, object_name: str, record_id: str, properties: list[str], *, associations: str | None = None
    ) -> dict[str, Any] | None:
        params = {"properties": ",".join(properties)}
        if object_name == "leads" and associations is None:
            associations = "contacts"
        if associations:
            params["associations"] = associations
        try:
            response = await self.http.request("GET", f"/crm/v3/objects/{object_name}/{record_id}", params=params)
        except errors.NotFoundError:
            return None
        if response.status_code >= 400:
            return None
        return body_of(response)

    async def _associated_ids(self, from_object: str, to_object: str, ids: Sequence[str]) -> dict[str, list[str]]:
        """Associated record ids (e.g. a contact's leads): v4 batch read, else one v3 read per record."""
        if not ids:
            return {}
        if self._v4_associations is not False:
            try:
                found = await self._associations_v4(from_object, to_object, ids)
            except errors.NotFoundError:
                self._v4_associations = False
                logger.info("HubSpot v4 batch association read unavailable; reading associations per record")
            else:
                self._v4_associations = True
                return found

        async def one(record_id: str) -> tuple[str, list[str]]:
            item = await self._get_object(from_object, record_id, ["hs_object_id"], associations=to_object)
            return record_id, association_ids(item, to_object) if item else []

        return dict(await gather_or_cancel(one(record_id) for record_id in ids))

    async def _associations_v4(self, from_object: str, to_object: str, ids: Sequence[str]) -> dict[str, list[str]]:
        """Associated ids by v4 batch read; a record with more than a page of them is asked again with ``after``."""

        async def read(chunk: Sequence[str]) -> dict[str, list[str]]:
            linked: dict[str, list[str]] = {record_id: [] for record_id in chunk}
            inputs: list[dict[str, str]] = [{"id": record_id} for record_id in chunk]
            cursors_seen: set[tuple[str, str]] = set()
            while inputs:
                response = await self.http.request(
                    "POST", f"/crm/v4/associations/{from_object}/{to_object}/batch/read", json={"inputs": inputs}
                )
                inputs = []
                for result in body_of(response).get("results") or []:
                    if not isinstance(result, dict):
                        continue
                    source = str((result.get("from") or {}).get("id", ""))
                    targets = linked.setdefault(source, [])
                    targets.extend(str(to["toObjectId"]) for to in result.get("to") or [] if "toObjectId" in to)
                    after = ((result.get("paging") or {}).get("next") or {}).get("after")
                    if after in (None, ""):
                        continue
                    if (source, str(after)) in cursors_seen:
                        raise errors.ProviderError("HubSpot returned the same association page cursor twice; stopped")
                    cursors_seen.add((source, str(after)))
                    inputs.append({"id": source, "after": str(after)})
            return {source: list(dict.fromkeys(targets)) for source, targets in linked.items()}

        merged: dict[str, list[str]] = {}
        for part in await gather_or_cancel(read(chunk) for chunk in chunks(ids, BATCH_SIZE)):
            merged.update(part)
        return merged

    # -- changes ----------------------------------------------------------------------------------------------------
    async def changes_since(
        self, obj: RecordObject, cursor: str | None, *, echoes: contract.EchoCheck | None = None
    ) -> AsyncIterator[contract.ChangePage]:
        """Records modified since ``cursor``, oldest first, a search page (200) at a time.

        ``echoes`` is not used: a search page brings the properties asked with it, and a stamps-only search would
        add a batch read for every page that holds any change other than our own.

        Leads change on two objects: the lead itself and its contact, which holds the lead status, names,
        company and social fields. A lead pull therefore follows both searches, merged by modification time,
        and its cursor covers both (see :class:`LeadCursor`).
        """
        if obj is RecordObject.LEAD and await self._leads_available():
            async for page in self._lead_changes(cursor):
                yield page
            return
        # Contacts; or leads in an account without the leads object, which are contacts with a lead status.
        filters = [] if obj is RecordObject.CONTACT else [HAS_LEAD_STATUS]
        stream = SearchStream(
            self._search_page,
            "contacts",
            "lastmodifieddate",
            await self._read_properties("contacts"),
            ChangeCursor.read(cursor, "HubSpot"),
            filters,
        )
        async for taken in merged_changes([stream]):
            records = [contact_record(item) for _stream, item in taken]
            yield contract.ChangePage(records=records, cursor=stream.emitted.text())

    async def _lead_changes(self, cursor: str | None) -> AsyncIterator[contract.ChangePage]:
        """Leads whose lead object or whose contact changed since ``cursor``; a lead changed on both sides in one
        page comes once."""
        position = LeadCursor.read(cursor)
        pull_started = datetime.now(UTC)
        self._search_date = None
        leads = SearchStream(
            self._search_page, "leads", "hs_lastmodifieddate", await self._read_properties("leads"), position.leads
        )
        await leads.fill()
        contact_start = position.contacts
        if contact_start is None:
            # A full pull reads every lead's contact as it goes: only contacts changed after it began matter.
            began = min(pull_started, self._search_date or pull_started)
            contact_start = ChangeCursor.starting_at(began - FULL_PULL_CONTACT_OVERLAP)
        contacts = SearchStream(
            self._search_page,
            "contacts",
            "lastmodifieddate",
            await self._read_properties("contacts"),
            contact_start,
            [HAS_LEAD_STATUS],
        )
        async for taken in merged_changes([leads, contacts]):
            records = await self._lead_change_records(
                [item for stream, item in taken if stream is leads],
                [item for stream, item in taken if stream is contacts],
                [stream is leads for stream, _item in taken],
            )
            yield contract.ChangePage(records=records, cursor=LeadCursor(leads.emitted, contacts.emitted).text())

    async def _search_page(self, object_name: str, body: dict[str, Any]) -> dict[str, Any]:
        """One search request within search's own rate limit; notes HubSpot's clock from the ``Date`` header."""
        response = await self.http.request(
            "POST", f"/crm/v3/objects/{object_name}/search", json=body, budget=self._search_budget
        )
        answer = answered(response, f"{object_name} search")
        self._search_date = server_time(response) or self._search_date
        return answer

    async def _lead_change_records(
        self, lead_items: list[dict[str, Any]], contact_items: list[dict[str, Any]], order: list[bool]
    ) -> list[contract.CrmRecord]:
        """Changed leads (with their contact) and changed contacts (as each of their leads), in ``order`` (``True``
        for the next lead item); a lead met twice keeps its last place."""
        from_leads = iter(await self._lead_records(lead_items))
        from_contacts = iter(await self._contacts_as_leads(contact_items))
        by_lead: dict[str, contract.CrmRecord] = {}
        for is_lead in order:
            for record in [next(from_leads)] if is_lead else next(from_contacts):
                by_lead.pop(record.crm_id, None)
                by_lead[record.crm_id] = record
        return list(by_lead.values())

    async def _lead_records(self, items: list[dict[str, Any]]) -> list[contract.CrmRecord]:
        """Lead search results with their primary contact's email and properties."""
        ids = [str(item.get("id")) for item in items]
        linked = await self._associated_ids("leads", "contacts", ids)
        contact_ids = list(dict.fromkeys(found[0] for found in linked.values() if found))
        contacts = {
            str(item.get("id")): contact_record(item)
            for item in await self._batch_read("contacts", contact_ids, await self._read_properties("contacts"))
        }
        records = []
        for item in items:
            found = linked.get(str(item.get("id"))) or []
            records.append(lead_record(item, contacts.get(found[0]) if found else None))
        return records

    async def _contacts_as_leads(self, items: list[dict[str, Any]]) -> list[list[contract.CrmRecord]]:
        """For each contact search result, its leads as lead records (none for a contact without a lead)."""
        ids = [str(item.get("id")) for item in items]
        linked = await self._associated_ids("contacts", "leads", ids)
        lead_ids = list(dict.fromkeys(lead_id for found in linked.values() for lead_id in found))
        leads = {
            str(item.get("id")): item
            for item in await self._batch_read("leads", lead_ids, await self._read_properties("leads"))
        }
        grouped: list[list[contract.CrmRecord]] = []
        for item in items:
            contact = contact_record(item)
            found = [leads[lead_id] for lead_id in linked.get(contact.crm_id) or [] if lead_id in leads]
            grouped.append([lead_record(lead, contact) for lead in found])
        return grouped

    # -- notes ------------------------------------------------------------------------------------------------------
    async def add_note(self, obj: RecordObject, crm_id: str, text: str) -> str:
        """Attach a note to a contact (a lead's note goes to its contact); returns the note's id.

        Raises:
            NotFoundError: when a lead has no contact to carry the note.
            RequestRejectedError: when HubSpot refuses the note.
        """
        contact_id = await self._note_contact(obj, crm_id)
        body_html = note_html(text)
        stamp = utc_millis(datetime.now(UTC))
        body = note_input(contact_id, body_html, stamp)

        async def post() -> str:
            response = await self.http.request("POST", "/crm/v3/objects/notes", json=body, idempotent=False)
            return str(answered(response, f"note on {contact_id}").get("id"))

        return await write_or_reconcile(
            post, lambda: self._find_note(contact_id, body_html, stamp), what=f"HubSpot: the note on {contact_id}"
        )

    async def _note_contact(self, obj: RecordObject, crm_id: str) -> str:
        """The contact a note on this record goes to: the contact itself, or a lead's contact.

        Raises:
            NotFoundError: when a lead has no contact to carry the note.
        """
        if obj is not RecordObject.LEAD or not await self._leads_available():
            return crm_id
        contacts = (await self._associated_ids("leads", "contacts", [crm_id])).get(crm_id) or []
        if not contacts:
            raise errors.NotFoundError(f"HubSpot: lead {crm_id} has no contact to attach the note to")
        return contacts[0]

    async def _find_note(self, contact_id: str, body_html: str, stamp: str) -> str | None:
        """The note a lost connection may have created: same contact, body and timestamp."""
        note_ids = (await self._associated_ids("contacts", "notes", [contact_id])).get(contact_id) or []
        wanted = note_key(note_input(contact_id, body_html, stamp))
        for item in await self._batch_read("notes", note_ids, ["hs_note_body", "hs_timestamp"]):
            if note_key(item) == wanted:
                return str(item.get("id"))
        return None

    # -- writes -----------------------------------------------------------------------------------------------------
    async def upsert(
        self,
        obj: RecordObject,
        records: Sequence[contract.OutboundRecord],
        *,
        answers: list[contract.RecordResult | None] | None = None,
    ) -> list[contract.RecordResult]:
        """Create or update contacts by email (linked ones by id), or leads with their contact; input order kept.

        ``answers`` gets the results of each round of unique emails once the round is written.

        Raises:
            AuthError: the token was refused (the push stops; nothing is retried).
            RateLimitError: HubSpot's daily limit is used up, or BudgetExhaustedError at the daily reserve.
        """
        results = answer_places(answers, records)
        gate = WriteGate(self.options.concurrency or DEFAULT_CONCURRENCY)
        for round_indexes in rounds_by_email(records):
            chosen = [records[i] for i in round_indexes]
            if obj is RecordObject.LEAD and await self._leads_available():
                written = await self._upsert_leads(chosen, gate)
            elif obj is RecordObject.LEAD:
                # Without a leads object a lead is its contact: put in wire form with the contact's properties.
                stripped = [
                    replace(r, fields={k: v for k, v in r.fields.items() if k not in LEAD_OBJECT_FIELDS})
                    for r in chosen
                ]
                written = await self._upsert_contacts(stripped, gate)
            else:
                written = await self._upsert_contacts(chosen, gate)
            for index, result in zip(round_indexes, written, strict=True):
                results[index] = result
        return results_in_order(results, records, "HubSpot")

    async def _upsert_contacts(
        self, records: Sequence[contract.OutboundRecord], gate: WriteGate
    ) -> list[contract.RecordResult]:
        """Contacts with unique emails: linked ones updated by id, the rest upserted by email."""
        results: list[contract.RecordResult | None] = [None] * len(records)
        linked: list[BatchInput] = []
        by_email: list[BatchInput] = []
        kinds = property_kinds(self._properties.held("contacts"))
        for index, record in enumerate(records):
            if not record.email:
                results[index] = failed_result("", ErrorCategory.VALIDATION, "(no email): email: required")
                continue
            try:
                properties = wire_properties(record.fields, drop=() if record.crm_id else ("email",), kinds=kinds)
            except ValueError as exc:
                # A value its property cannot take (a date that is none) fails this record alone, unsent.
                message = f"{record.email}: {exc}"
                results[index] = failed_result(record.email, ErrorCategory.VALIDATION, message, crm_id=record.crm_id)
                continue
            if record.crm_id:
                linked.append(update_input(index, record.crm_id, {**properties, "email": record.email}))
            else:
                by_email.append(upsert_input(index, record.email, properties))
        updated, upserted = await gather_or_cancel(
            [
                write_batches(self.http, "contacts", "update", linked, gate, result_key=result_id),
                write_batches(
                    self.http, "contacts", "upsert", by_email, gate, result_key=result_email, lookup=nothing_to_look_up
                ),
            ]
        )
        # A linked contact that is gone was deleted in HubSpot: reported NOT_FOUND, never re-created by email.
        gone = [i for i, w in updated.items() if w.error is not None and record_gone(w.error, w.status)]
        if gone:
            logger.info("%d linked HubSpot contacts no longer exist; not re-creating them", len(gone))
        for index in gone:
            email = records[index].email
            message = f"{email}: contact {records[index].crm_id} no longer exists in HubSpot (deleted there)"
            results[index] = failed_result(email, ErrorCategory.NOT_FOUND, message)
            updated.pop(index)
        for index, written in {**updated, **upserted}.items():
            results[index] = write_result(records[index].email, written)
        return results_in_order(results, records, "HubSpot")

    async def _upsert_leads(
        self, records: Sequence[contract.OutboundRecord], gate: WriteGate
    ) -> list[contract.RecordResult]:
        """Leads with unique emails: upsert each lead's contact, then update its lead or create one associated."""
        lead_properties = await self._object_fields("leads")
        lead_names = {f.name for f in lead_properties} - {"hs_object_id"}
        lead_kinds = property_kinds(lead_properties)
        results: list[contract.RecordResult | None] = [None] * len(records)
        # The lead's own values in wire form first: one its property cannot take fails the record before its
        # contact is written.
        lead_fields: dict[int, dict[str, Any]] = {}
        for index, record in enumerate(records):
            try:
                lead_fields[index] = wire_properties(
                    {k: v for k, v in record.fields.items() if k in lead_names}, kinds=lead_kinds
                )
            except ValueError as exc:
                message = f"{record.email}: {exc}"
                results[index] = failed_result(record.email, ErrorCategory.VALIDATION, message, crm_id=record.crm_id)
        contact_parts = [
            # Upserted by email: the record's crm_id is its lead's.
            contract.OutboundRecord(
                records[i].email, {k: v for k, v in records[i].fields.items() if k not in lead_names}
            )
            for i in lead_fields
        ]
        contact_results = dict(zip(lead_fields, await self._upsert_contacts(contact_parts, gate), strict=True))
        pending: dict[int, str] = {}
        for index, contact in contact_results.items():
            if contact.ok and contact.crm_id:
                pending[index] = contact.crm_id
            else:
                message = f"the lead's contact was not written: {contact.message}"
                results[index] = failed_result(records[index].email, contact.category, message)
        lead_ids = {i: str(records[i].crm_id) for i in pending if records[i].crm_id}
        unlinked = [i for i in pending if i not in lead_ids]
        # A contact created just now has no lead yet: only existing contacts are asked for theirs.
        older = [pending[i] for i in unlinked if contact_results[i].outcome is not RecordOutcome.CREATED]
        existing = await self._associated_ids("contacts", "leads", older)
        for index in unlinked:
            found = existing.get(pending[index]) or []
            if found:
                lead_ids[index] = max(found, key=id_order)
        # A lead found through its contact with nothing of its own to change needs no request.
        untouched = {i: lead_ids[i] for i in unlinked if i in lead_ids and not lead_fields[i]}
        updates = [update_input(i, lead_id, lead_fields[i]) for i, lead_id in lead_ids.items() if i not in untouched]
        written = await write_batches(self.http, "leads", "update", updates, gate, result_key=result_id)
        for index, lead_id in untouched.items():
            written[index] = Written(result={"id": lead_id}, started_at=_FAR_FUTURE)
        to_create = [i for i in pending if i not in lead_ids]
        for index, lead_written in list(written.items()):
            if lead_written.error is None or not record_gone(lead_written.error, lead_written.status):
                continue
            written.pop(index)
            if records[index].crm_id:
                # The lead this record is linked to was deleted in HubSpot (a salesperson's decision, as for a
                # contact): reported NOT_FOUND, never re-created behind their back.
                email, crm_id = records[index].email, records[index].crm_id
                message = f"{email}: lead {crm_id} no longer exists in HubSpot (deleted there)"
                results[index] = failed_result(email, ErrorCategory.NOT_FOUND, message, crm_id=crm_id)
            else:
                # Found through its contact a moment ago and gone since: the contact gets a new lead.
                to_create.append(index)
        creates = [lead_create_input(i, records[i].email, pending[i], lead_fields[i]) for i in to_create]
        created = await write_batches(
            self.http, "leads", "create", creates, gate, result_key=lambda _: None, lookup=self._lead_create_lookup
        )
        for index, lead_written in {**written, **created}.items():
            lead = write_result(records[index].email, lead_written, created=index in created)
            contact = contact_results[index]
            if lead.outcome is RecordOutcome.UNCHANGED and contact.outcome is not RecordOutcome.UNCHANGED:
                lead = replace(lead, outcome=RecordOutcome.UPDATED)
            if lead.crm_modified_at is not None and contact.crm_modified_at is not None:
                # A pulled lead's stamp is the later of its own and its contact's (most lead fields live there).
                lead = replace(lead, crm_modified_at=max(lead.crm_modified_at, contact.crm_modified_at))
            results[index] = lead
        return results_in_order(results, records, "HubSpot")

    async def _lead_create_lookup(self, chunk: Sequence[BatchInput]) -> dict[int, Written]:
        """After lead creation lost its connection: the leads that now exist on their contact were created."""
        linked = await self._associated_ids("contacts", "leads", [item.key for item in chunk])
        return {
            item.index: Written(result={"id": max(found, key=id_order), "new": True})
            for item in chunk
            if (found := linked.get(item.key))
        }

    # -- timeline --
    async def log_timeline(
        self, obj: RecordObject, entries: Sequence[contract.TimelineEntry]
    ) -> list[contract.TimelineResult]:
        """Notes associated with their contacts (``note_to_contact``, 202), up to 100 per ``notes/batch/create``;
        a lead's entry goes to the lead's contact, as HubSpot shows a lead's activity there.

        A connection lost after sending is settled by reading the contacts' notes (same body and timestamp) before
        sending what is missing, so no note is written twice.
        """
        targets = [entry.crm_id for entry in entries]
        if obj is RecordObject.LEAD and entries and await self._leads_available():
            contacts = await self._associated_ids("leads", "contacts", sorted(set(targets)))
            targets = [(contacts.get(crm_id) or [""])[0] for crm_id in targets]
        results: list[contract.TimelineResult] = []
        for part in chunks(list(zip(entries, targets, strict=True)), BATCH_SIZE):
            results.extend(await self._log_notes(part))
        return results

    async def _log_notes(self, part: list[tuple[contract.TimelineEntry, str]]) -> list[contract.TimelineResult]:
        answers: dict[int, contract.TimelineResult] = {}
        inputs: dict[int, dict[str, Any]] = {}
        for index, (entry, contact_id) in enumerate(part):
            if not contact_id:
                answers[index] = contract.TimelineResult(None, ErrorCategory.NOT_FOUND,
                                                f"HubSpot: lead {entry.crm_id} has no contact to carry the note")
                continue
            body_html = note_html(f"{entry.subject}\n{entry.body}")[:NOTE_BODY_LIMIT]
            inputs[index] = note_input(contact_id, body_html, utc_millis(entry.occurred_at))

        def finished() -> list[contract.TimelineResult]:
            return [answers[i] for i in range(len(part))]

        async def create() -> list[contract.TimelineResult]:
            waiting = [i for i in inputs if i not in answers]
            if not waiting:
                return finished()
            body = {"inputs": [{**inputs[i], "objectWriteTraceId": str(i)} for i in waiting]}
            response = await self.http.request("POST", "/crm/v3/objects/notes/batch/create", json=body,
                                               idempotent=False)
            contacts = {index: part[index][1] for index in inputs}
            answers.update(note_results(body_of(response), response.status_code, waiting, contacts))
            return finished()

        async def reconcile() -> list[contract.TimelineResult] | None:
            waiting = [i for i in inputs if i not in answers]
            contacts = sorted({part[i][1] for i in waiting})
            note_ids = [n for ids in (await self._associated_ids("contacts", "notes", contacts)).values() for n in ids]
            notes = await self._batch_read("notes", sorted(set(note_ids)), ["hs_note_body", "hs_timestamp"])
            found = [(note_key(item), str(item.get("id"))) for item in notes]
            for index, note_id in match_landed(waiting, lambda i: note_key(inputs[i]), found).items():
                answers[index] = contract.TimelineResult(note_id)
            return finished() if len(answers) == len(part) else None

        return await write_or_reconcile(create, reconcile, what=f"HubSpot: {len(inputs)} notes")

    # -- conversions and deals --
    async def conversions_since(self, since: datetime | None) -> list[CrmConversion]:
        """Contacts whose lifecycle stage reached opportunity or customer (or evangelist, past them), changed at
        or after ``since``: one conversion per contact, dated when it first reached one of them.

        HubSpot stamps ``hs_lifecyclestage_<stage>_date`` the first time a contact enters a stage; the earliest of
        the opportunity, customer and evangelist dates is the conversion (see :func:`conversion_of`). Its value is
        the amount of the contact's won deals (see :meth:`_won_deal_values`).
        """
        stream = SearchStream(
            self._search_page,
            "contacts",
            "lastmodifieddate",
            list(CONVERSION_PROPERTIES),
            ChangeCursor.starting_at(since) if since is not None else ChangeCursor(),
            [CONVERTED_FILTER],
        )
        found: list[CrmConversion] = []
        while True:
            await stream.fill()
            if stream.head() is None:
                break
            conversion = conversion_of(stream.take())
            if conversion is not None:
                found.append(conversion)
        if not found:
            return found
        return priced(found, await self._won_deal_values([contact_id_of(c) for c in found]))

    async def _won_deal_values(self, contact_ids: Sequence[str]) -> dict[str, tuple[Decimal, str]]:
        """Per contact, the summed ``amount`` of its associated deals in a won stage (closed, probability 1, read
        from ``GET /crm/v3/pipelines/deals``), in the currency most of it is in (``deal_currency_code``, else the
        portal's). A token without the deals scopes reads none: the conversions are kept without a value."""
        try:
            won = won_stages(answered(await self.http.request("GET", "/crm/v3/pipelines/deals"), "deal pipelines"))
            deal_ids = await self._associations_v4("contacts", "deals", contact_ids)
            wanted = sorted({d for ids in deal_ids.values() for d in ids})
            if not won or not wanted:
                return {}
            deals = {
                str(item.get("id")): item.get("properties") or {}
                for item in await self._batch_read("deals", wanted, ["amount", "deal_currency_code", "dealstage"])
            }
        except errors.AuthError:
            raise
        except errors.ProviderError as exc:
            logger.warning("HubSpot: deal amounts not read (%s); conversions kept without a value", exc)
            return {}
        return await won_deal_values(deal_ids, deals, won, self._portal_currency)

    async def _portal_currency(self) -> str:
        """The portal's company currency (``GET /account-info/v3/details``), for deals without their own."""
        details = answered(await self.http.request("GET", "/account-info/v3/details"), "account details")
        return str(details.get("companyCurrency") or "USD")

    # -- merges --
    async def merge_records(
        self, obj: RecordObject, keep_id: str, merge_id: str, *, merge_email: str | None = None
    ) -> contract.MergeResult:
        """``POST /crm/v3/objects/contacts/merge`` (``primaryObjectId`` keeps its values where both have one);
        the survivor is the id HubSpot answers with, which may be a new one. A lost answer is looked up before the
        merge is sent again, and a merge HubSpot already made is a success (see :func:`merge_or_reconcile`).

        Raises:
            RequestRejectedError: for leads (HubSpot merges contacts here) or a merge HubSpot refuses.
            NotFoundError: when either contact is gone (and not merged into the other).
            AmbiguousWriteError: when the answer was lost twice and both contacts are still there.
        """
        if obj is not RecordObject.CONTACT:
            raise errors.RequestRejectedError("HubSpot: only contacts are merged from CRM Desktop")
        body = {"primaryObjectId": keep_id, "objectIdToMerge": merge_id}

        async def merge() -> contract.MergeResult:
            response = await self.http.request("POST", "/crm/v3/objects/contacts/merge", json=body, idempotent=False)
            payload = answered(response, f"merge of contact {merge_id}")
            return contract.MergeResult(surviving_id=str(payload.get("id") or keep_id), merged_id=merge_id)

        return await merge_or_reconcile(
            merge, lambda: self._merged_into(keep_id, merge_id, merge_email), merge_id=merge_id,
            what=f"HubSpot: merge of contact {merge_id} into {keep_id}",
        )

    async def _merged_into(self, keep_id: str, merge_id: str, merge_email: str | None) -> str | None:
        """The contact ``merge_id`` was merged into: its id when HubSpot answers the merged id with the survivor,
        or ``keep_id``'s record (by its current id) when ``merge_id`` is gone and is among its merged ids or its
        email among the survivor's; ``None`` while ``merge_id`` is a contact of its own, or gone otherwise."""
        wanted = ["email", "hs_additional_emails", "hs_merged_object_ids"]
        merged = await self._get_object("contacts", merge_id, wanted)
        if merged is not None:
            # HubSpot answers a merged-away id with the contact it went into.
            found = str(merged.get("id") or merge_id)
            return found if found != merge_id else None
        survivor = await self._get_object("contacts", keep_id, wanted)
        if survivor is None:
            return None
        properties = survivor.get("properties") or {}
        merged_ids = str(properties.get("hs_merged_object_ids") or "").split(";")
        emails = {hubspot_email_key(properties.get("email")),
                  *(hubspot_email_key(e) for e in str(properties.get("hs_additional_emails") or "").split(";"))}
        key = hubspot_email_key(merge_email)
        if merge_id in merged_ids or (key and key in emails):
            return str(survivor.get("id") or keep_id)
        return None

    async def delete_record(self, obj: RecordObject, crm_id: str) -> bool:
        """``DELETE /crm/v3/objects/contacts/{id}`` (a lead: ``leads`` where the portal has HubSpot's Leads, as
        the lead was written there); HubSpot answers 204 and keeps the record in its recycle bin for 90 days.

        Raises:
            RequestRejectedError: when HubSpot refuses the delete.
        """
        object_name = "leads" if obj is RecordObject.LEAD and await self._leads_available() else "contacts"
        try:
            response = await self.http.request("DELETE", f"/crm/v3/objects/{object_name}/{crm_id}")
        except errors.NotFoundError:
            return False
        if response.status_code == 404:
            return False
        answered(response, f"delete of {object_name.removesuffix('s')} {crm_id}")
        return True

    # -- record links --
    async def portal_id(self) -> str:
        """The portal id (``/account-info/v3/details``), which HubSpot's web addresses of records carry.

        Raises:
            ConfigurationError: when HubSpot's answer has no portal id.
        """
        details = body_of(await self.http.request("GET", "/account-info/v3/details"))
        portal = details.get("portalId")
        if portal in (None, ""):
            raise errors.ConfigurationError("HubSpot did not tell the account's portal id")
        return str(portal)

    # -- custom fields --
    async def keep_note(self, obj: RecordObject, crm_id: str, text: str) -> bool:
        """Attach the record's social note (what no property carries) unless one of the contact's notes already
        says exactly that; True when a note was added. A lead's note goes to its contact, as ``add_note``'s.

        Raises:
            NotFoundError: when a lead has no contact to carry the note.
            RequestRejectedError: when HubSpot refuses the note.
        """
        contact_id = await self._note_contact(obj, crm_id)
        body_html = note_html(text)
        note_ids = (await self._associated_ids("contacts", "notes", [contact_id])).get(contact_id) or []
        for item in await self._batch_read("notes", note_ids, ["hs_note_body"]):
            if (item.get("properties") or {}).get("hs_note_body") == body_html:
                return False
        await self.add_note(RecordObject.CONTACT, contact_id, text)
        return True
