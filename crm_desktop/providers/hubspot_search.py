"""HubSpot's change search: records in modification order through the search API, its page and result caps,
and the lead pull's two-part cursor."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm_desktop.providers import errors
from crm_desktop.providers.toolkit import ChangeCursor, epoch_millis, parse_crm_time, utc_millis

#: Results per search page (HubSpot's maximum) and the most one search query can page through.
SEARCH_PAGE_SIZE = 200
SEARCH_RESULT_CAP = 10_000
#: Search has its own limit: 4 requests per second per token.
SEARCH_PER_SECOND = 4
#: Contacts that are (or were) leads: where HubSpot keeps a lead's status, names, company and social fields.
HAS_LEAD_STATUS: dict[str, Any] = {"propertyName": "hs_lead_status", "operator": "HAS_PROPERTY"}


@dataclass
class LeadCursor:
    """Where a lead pull stands: the lead objects' own changes and their contacts' changes (where HubSpot keeps
    the lead status, names, company and social fields), as ``<leads>;<contacts>``.

    A cursor without ``;`` (written before contact changes were watched) watches contacts from its lead time on;
    ``contacts`` is ``None`` when the pull has not watched them yet (a full pull picks where that starts).
    """

    leads: ChangeCursor
    contacts: ChangeCursor | None

    @classmethod
    def read(cls, text: str | None) -> LeadCursor:
        if not text:
            return cls(ChangeCursor(), None)
        if ";" not in text:
            leads = ChangeCursor.read(text, "HubSpot")
            return cls(leads, ChangeCursor(leads.moment, leads.stamp) if leads.moment else None)
        lead_text, _, contact_text = text.partition(";")
        contacts = ChangeCursor.read(contact_text, "HubSpot") if contact_text else None
        return cls(ChangeCursor.read(lead_text, "HubSpot"), contacts)

    def text(self) -> str:
        return f"{self.leads.text()};{self.contacts.text() if self.contacts else ''}"


SearchPage = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class SearchStream:
    """One object's changes through search, oldest first, fetched a page (200) at a time into a small buffer.

    Every request restarts the query from the newest modification time fetched (skipping the ids already
    fetched at that instant), so records modified while the pull runs are neither skipped nor the 10,000-result
    cap reached; ``after`` paging is used only to step over more than a page of records sharing one instant.

    Attributes:
        emitted: the position of the records taken so far (what a page's cursor may say).
    """

    def __init__(
        self,
        search: SearchPage,
        object_name: str,
        modified_property: str,
        properties: list[str],
        start: ChangeCursor,
        filters: Sequence[dict[str, Any]] = (),
    ) -> None:
        self._search = search
        self._object_name = object_name
        self._modified_property = modified_property
        self._properties = properties
        self._filters = list(filters)
        self._fetched = start.copy()
        self.emitted = start.copy()
        self._buffer: deque[tuple[datetime, str, dict[str, Any]]] = deque()
        self._offset = 0
        self._exhausted = False

    @property
    def waiting(self) -> bool:
        """Whether its next record is unknown until it fetches another page."""
        return not self._buffer and not self._exhausted

    def head(self) -> datetime | None:
        """The modification time of the next record, ``None`` when none is buffered."""
        return self._buffer[0][0] if self._buffer else None

    def take(self) -> dict[str, Any]:
        modified, record_id, item = self._buffer.popleft()
        self.emitted.advance(modified, utc_millis(modified), record_id)
        return item

    async def fill(self) -> None:
        """Fetch pages until a record is buffered or the search has no more."""
        while self.waiting:
            await self._fetch()

    async def _fetch(self) -> None:
        filters: list[dict[str, Any]] = []
        if self._fetched.moment is not None:
            filters.append(
                {
                    "propertyName": self._modified_property,
                    "operator": "GTE",
                    "value": str(epoch_millis(self._fetched.moment)),
                }
            )
        filters.extend(self._filters)
        body: dict[str, Any] = {
            "sorts": [{"propertyName": self._modified_property, "direction": "ASCENDING"}],
            "properties": self._properties,
            "limit": SEARCH_PAGE_SIZE,
        }
        if filters:
            body["filterGroups"] = [{"filters": filters}]
        if self._offset:
            body["after"] = str(self._offset)
        page = await self._search(self._object_name, body)
        results = [item for item in page.get("results") or [] if isinstance(item, dict)]
        queried_from = self._fetched.moment
        for item in results:
            modified = parse_crm_time(
                (item.get("properties") or {}).get(self._modified_property) or item.get("updatedAt")
            )
            record_id = str(item.get("id"))
            if modified is None or not self._fetched.is_new(modified, record_id):
                continue
            self._fetched.advance(modified, utc_millis(modified), record_id)
            self._buffer.append((modified, record_id, item))
        if not ((page.get("paging") or {}).get("next") or {}).get("after"):
            self._exhausted = True
        elif self._fetched.moment != queried_from:
            self._offset = 0
        else:
            self._offset += len(results)
            if self._offset >= SEARCH_RESULT_CAP:
                raise errors.ProviderError(
                    f"HubSpot: more than {SEARCH_RESULT_CAP} {self._object_name} share one modification time; "
                    "the search API cannot page past them"
                )


async def merged_changes(streams: Sequence[SearchStream]) -> AsyncIterator[list[tuple[SearchStream, dict[str, Any]]]]:
    """The records of several change searches in modification order, at most a search page at a time."""
    while True:
        for stream in streams:
            await stream.fill()
        taken: list[tuple[SearchStream, dict[str, Any]]] = []
        while len(taken) < SEARCH_PAGE_SIZE and not any(stream.waiting for stream in streams):
            ready = [(head, order) for order, stream in enumerate(streams) if (head := stream.head()) is not None]
            if not ready:
                break
            chosen = streams[min(ready)[1]]
            taken.append((chosen, chosen.take()))
        if not taken:
            return
        yield taken
