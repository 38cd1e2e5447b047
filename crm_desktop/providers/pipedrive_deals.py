"""Pipedrive's deals, pipelines and activities: what the adapter keeps there besides persons and leads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import httpx

from crm_desktop.domain.outcomes import ErrorCategory, RecordObject
from crm_desktop.providers import errors
from crm_desktop.providers.contract import TimelineEntry, TimelineResult
from crm_desktop.providers.conversions import CrmConversion, DealPipeline, DealStage
from crm_desktop.providers.pipedrive_records import added_since, note_html, primary_email
from crm_desktop.providers.toolkit import chunks, email_key, gather_or_cancel, parse_crm_time, utc_seconds

#: Activities sent at once (Pipedrive has no batch create; the burst window allows a few in flight).
ACTIVITIES_AT_ONCE = 5
#: Pipedrive's subject length, and the activities read back after a lost answer.
ACTIVITY_SUBJECT_LIMIT = 255
ACTIVITIES_LOOKED_AT = 100
DEALS_PATH = "/api/v2/deals"
ACTIVITIES_PATH = "/api/v2/activities"


class PipedriveWire(Protocol):
    """The adapter's wire calls the deals, pipelines and activities are made of (see :class:`PipedriveAdapter`)."""

    page_size: int

    async def _call(self, method: str, url: str, *, idempotent: bool = True, **kwargs: Any) -> httpx.Response: ...

    def _data(self, response: httpx.Response) -> tuple[Any, dict[str, Any]]: ...

    def _v2_pages(self, path: str, params: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]: ...

    async def _post_once(
        self, path: str, body: dict[str, Any], find: Callable[[], Awaitable[dict[str, Any] | None]]
    ) -> dict[str, Any]: ...

    async def _search_person_id(self, email: str) -> int | None: ...

    async def _persons_by_ids(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]: ...

    async def _open_deal(self, person_id: int, body: dict[str, Any]) -> str: ...

    async def _recent_item(
        self, path: str, person_id: int, started: datetime, same: dict[str, Any]
    ) -> dict[str, Any] | None: ...

    async def _log_activity(self, obj: RecordObject, entry: TimelineEntry) -> TimelineResult: ...


class PipedriveDeals:
    """Deals (won ones are conversions), pipelines and activities, on the adapter's wire calls.

    Pipedrive has no batch create and duplicates a replayed POST, so each is sent once and, when its answer is
    lost, looked up among the person's newest items before anything is sent again.
    """

    async def create_deal(self: PipedriveWire, person_id: str, title: str, value: float | None = None) -> str:
        """``POST /api/v2/deals {title, person_id[, value]}``; returns the deal id."""
        body: dict[str, Any] = {"title": title, "person_id": int(person_id)}
        if value is not None:
            body["value"] = value
        return await self._open_deal(int(person_id), body)

    async def add_activity(
        self: PipedriveWire, person_id: str, subject: str, type: str = "call", note: str | None = None
    ) -> str:
        """``POST /api/v2/activities {subject, type, person_id[, note]}`` (a call, meeting, task...); returns its id."""
        body: dict[str, Any] = {"subject": subject, "type": type, "person_id": int(person_id)}
        if note:
            body["note"] = note_html(note)
        started = datetime.now(UTC)

        async def find() -> dict[str, Any] | None:
            return await self._recent_item(
                ACTIVITIES_PATH, int(person_id), started, {"subject": subject, "type": type}
            )

        activity = await self._post_once(ACTIVITIES_PATH, body, find)
        return str(activity["id"])

    async def _open_deal(self: PipedriveWire, person_id: int, body: dict[str, Any]) -> str:
        """``POST /api/v2/deals``; a lost answer is looked up among the person's newest deals of that title."""
        started = datetime.now(UTC)

        async def find() -> dict[str, Any] | None:
            return await self._recent_item(DEALS_PATH, person_id, started, {"title": body["title"]})

        deal = await self._post_once(DEALS_PATH, body, find)
        return str(deal["id"])

    async def _recent_item(
        self: PipedriveWire, path: str, person_id: int, started: datetime, same: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A deal or activity of the person created around ``started`` with these values (after a lost write)."""
        params = {"person_id": person_id, "sort_by": "add_time", "sort_direction": "desc", "limit": 50}
        data, _ = self._data(await self._call("GET", path, params=params))
        for item in data or []:
            if not isinstance(item, dict) or not added_since(item, started):
                continue
            if all(item.get(key) == value for key, value in same.items()):
                return dict(item)
        return None

    # -- timeline --
    async def log_timeline(
        self: PipedriveWire, obj: RecordObject, entries: Sequence[TimelineEntry]
    ) -> list[TimelineResult]:
        """Done activities (``POST /api/v2/activities``, type ``task``) on persons or leads; Pipedrive has no batch
        create, so a few are sent at once within the burst window.

        Each entry answers for itself: one that could not be sent (network, rate limit) reports it with its category
        so that the caller retries only that one; a lost answer is settled by listing the record's activities first.
        """
        results: list[TimelineResult] = []
        for part in chunks(list(entries), ACTIVITIES_AT_ONCE):
            results.extend(await gather_or_cancel(self._log_activity(obj, entry) for entry in part))
        return results

    async def _log_activity(self: PipedriveWire, obj: RecordObject, entry: TimelineEntry) -> TimelineResult:
        moment = entry.occurred_at.astimezone(UTC)
        body: dict[str, Any] = {
            "subject": entry.subject[:ACTIVITY_SUBJECT_LIMIT],
            "type": "task",
            "due_date": moment.date().isoformat(),
            "due_time": moment.strftime("%H:%M"),
            "done": True,
            "note": note_html(entry.body),
        }
        if obj is RecordObject.LEAD:
            body["lead_id"] = entry.crm_id
            listing: dict[str, Any] = {"lead_id": entry.crm_id}
        elif entry.crm_id.isascii() and entry.crm_id.isdigit():
            body["person_id"] = int(entry.crm_id)
            listing = {"person_id": int(entry.crm_id)}
        else:
            return TimelineResult(None, ErrorCategory.NOT_FOUND, f"{entry.crm_id!r} is not a Pipedrive person id")

        async def find() -> dict[str, Any] | None:
            # Newest first: the one whose answer was lost is among the latest, however many the person has.
            params = {**listing, "limit": ACTIVITIES_LOOKED_AT, "sort_by": "add_time", "sort_direction": "desc"}
            data, _ = self._data(await self._call("GET", ACTIVITIES_PATH, params=params))
            for activity in data or []:
                # v2 answers times with their seconds (15:00:00) whatever was sent (15:00).
                if (isinstance(activity, dict) and activity.get("subject") == body["subject"]
                        and activity.get("due_date") == body["due_date"]
                        and str(activity.get("due_time") or "")[:5] == body["due_time"]):
                    return activity
            return None

        what = f"activity on {'lead' if obj is RecordObject.LEAD else 'person'} {entry.crm_id}"
        try:
            created = await self._post_once(ACTIVITIES_PATH, body, find)
        except (errors.AuthError, errors.PermissionRefusedError, errors.RateLimitError, errors.TransientError) as exc:
            return TimelineResult(None, exc.category, f"Pipedrive: {what}: {_reason(exc)}")
        except errors.RequestRejectedError as exc:
            return TimelineResult(None, exc.category, f"Pipedrive: {what}: {_reason(exc)}")
        return TimelineResult(str(created["id"]))

    # -- conversions and deals --
    async def conversions_since(self: PipedriveWire, since: datetime | None) -> list[CrmConversion]:
        """Won deals of a person changed since ``since`` (``GET /api/v2/deals?status=won&updated_since=``), with
        their value and currency; the persons' emails come from ``GET /api/v2/persons?ids=``."""
        params: dict[str, Any] = {
            "status": "won", "sort_by": "update_time", "sort_direction": "asc", "limit": self.page_size
        }
        if since is not None:
            params["updated_since"] = utc_seconds(since)
        deals: list[dict[str, Any]] = []
        async for page in self._v2_pages(DEALS_PATH, params):
            deals.extend(d for d in page if d.get("person_id") and d.get("status") == "won")
        persons = await self._persons_by_ids(int(d["person_id"]) for d in deals)
        found: list[CrmConversion] = []
        for deal in deals:
            person = persons.get(int(deal["person_id"]))
            email = primary_email(person) if person else ""
            won = parse_crm_time(deal.get("won_time") or deal.get("close_time") or deal.get("update_time"))
            if not email or won is None:
                continue
            value = deal.get("value")
            priced = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
            found.append(
                CrmConversion(
                    external_id=f"deal:{deal['id']}",
                    email=email,
                    converted_at=won,
                    what="deal won",
                    value=Decimal(str(value)).quantize(Decimal("0.01")) if priced else None,
                    currency=(str(deal.get("currency") or "").upper() or None) if priced else None,
                    modified_at=parse_crm_time(deal.get("update_time")),
                )
            )
        return found

    async def deal_pipelines(self: PipedriveWire) -> list[DealPipeline]:
        """The live pipelines (``GET /api/v2/pipelines``) with their stages (``GET /api/v2/stages``), in order."""
        listing = {"limit": self.page_size}
        pipelines = [p async for page in self._v2_pages("/api/v2/pipelines", listing) for p in page]
        stages = [s async for page in self._v2_pages("/api/v2/stages", listing) for s in page]
        live = [p for p in pipelines if not p.get("is_deleted")]
        live.sort(key=lambda p: (p.get("order_nr") or 0, p.get("id") or 0))
        return [
            DealPipeline(
                id=str(p["id"]),
                name=str(p.get("name") or p["id"]),
                stages=tuple(
                    DealStage(id=str(s["id"]), name=str(s.get("name") or s["id"]))
                    for s in sorted(stages, key=lambda s: (s.get("order_nr") or 0, s.get("id") or 0))
                    if s.get("pipeline_id") == p["id"] and not s.get("is_deleted")
                ),
            )
            for p in live
        ]

    async def person_deal(self: PipedriveWire, email: str, pipeline_id: str) -> str | None:
        """A deal the person already has in the pipeline (``GET /api/v2/deals?person_id=&pipeline_id=``)."""
        person_id = await self._search_person_id(email_key(email))
        if person_id is None:
            return None
        params = {"person_id": person_id, "pipeline_id": int(pipeline_id), "limit": 1}
        data, _ = self._data(await self._call("GET", DEALS_PATH, params=params))
        deals = [d for d in data or [] if isinstance(d, dict) and "id" in d]
        return str(deals[0]["id"]) if deals else None

    async def open_person_deal(
        self: PipedriveWire,
        email: str,
        title: str,
        pipeline_id: str,
        stage_id: str,
        value: Decimal | None,
        currency: str | None,
    ) -> str | None:
        """``POST /api/v2/deals {title, person_id, pipeline_id, stage_id[, value, currency]}`` for the person with
        that email; ``None`` when Pipedrive has no such person yet. A lost answer is looked up, never re-sent."""
        person_id = await self._search_person_id(email_key(email))
        if person_id is None:
            return None
        body: dict[str, Any] = {
            "title": title, "person_id": person_id, "pipeline_id": int(pipeline_id), "stage_id": int(stage_id)
        }
        if value is not None and currency:
            body.update(value=float(value), currency=currency)
        return await self._open_deal(person_id, body)


def _reason(error: errors.ProviderError) -> str:
    """The error's sentence without the "Pipedrive: " the shared core puts first (the caller names Pipedrive)."""
    return str(error).removeprefix("Pipedrive: ")
