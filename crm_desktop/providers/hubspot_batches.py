"""HubSpot's batch writes: inputs of up to 100 sent together, their answers matched back to each input, and a
batch refused as a whole split until each bad record stands alone."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from crm_desktop.domain.outcomes import ErrorCategory, RecordOutcome
from crm_desktop.providers import errors
from crm_desktop.providers.contract import RecordResult, TimelineResult
from crm_desktop.providers.http import AmbiguousWriteError, HttpCore
from crm_desktop.providers.hubspot_errors import body_of, classify_batch_update, named_once, record_failure
from crm_desktop.providers.hubspot_records import LEAD_TO_PRIMARY_CONTACT, association_to
from crm_desktop.providers.toolkit import (
    WriteGate,
    chunks,
    failed_result,
    gather_or_cancel,
    parse_crm_time,
    write_or_reconcile,
)

logger = logging.getLogger(__name__)

#: Inputs per batch request (HubSpot's limit for batch read, create, update and upsert).
BATCH_SIZE = 100


@dataclass(frozen=True)
class BatchInput:
    """One input of a batch write.

    Attributes:
        index: its position in the caller's list, sent as its ``objectWriteTraceId``.
        key: the record id, or an upsert's email, which the answer echoes when it leaves out the trace id; for a
            new lead, its contact, where the look-up after a lost answer finds it.
        payload: its JSON in the batch's ``inputs``.
    """

    index: int
    key: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Written:
    """What became of one batch input: a result, a refusal, or a failure that outlived its retries."""

    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    status: int | None = None
    started_at: datetime | None = None
    failure: errors.ProviderError | None = None
    #: seconds between the first (connection-lost) attempt and the replay that answered, when replayed.
    replayed_after: float | None = None


#: Which inputs of a batch whose connection died after sending landed anyway (looked up in HubSpot).
Lookup = Callable[[Sequence[BatchInput]], Awaitable[dict[int, Written]]]


def update_input(index: int, record_id: str, properties: dict[str, Any]) -> BatchInput:
    """An update of the record ``record_id``."""
    return BatchInput(index, record_id, {"id": record_id, "properties": properties})


def upsert_input(index: int, email: str, properties: dict[str, Any]) -> BatchInput:
    """An upsert of the contact with ``email`` (its id here, so not among the properties)."""
    return BatchInput(index, email, {"idProperty": "email", "id": email, "properties": properties})


def lead_create_input(index: int, email: str, contact_id: str, properties: dict[str, Any]) -> BatchInput:
    """A new lead on ``contact_id`` (its primary contact), named after the email unless its properties name it."""
    association = association_to(contact_id, LEAD_TO_PRIMARY_CONTACT)
    body = {"properties": {"hs_lead_name": email, **properties}, "associations": [association]}
    return BatchInput(index, contact_id, body)


async def nothing_to_look_up(chunk: Sequence[BatchInput]) -> dict[int, Written]:
    """The look-up of an upsert whose connection was lost: none, as sending it again by unique email cannot
    duplicate a contact."""
    return {}


async def write_batches(
    http: HttpCore,
    object_name: str,
    action: str,
    inputs: Sequence[BatchInput],
    gate: WriteGate,
    *,
    result_key: Callable[[dict[str, Any]], str | None],
    lookup: Lookup | None = None,
) -> dict[int, Written]:
    """Send inputs in batches of 100, concurrently within the rate budget; what became of each input.

    A write HubSpot could duplicate (creates, upserts) whose connection died after sending is looked up with
    ``lookup`` and only what did not land is sent again.
    """

    async def send(chunk: Sequence[BatchInput]) -> dict[int, Written]:
        if lookup is None:
            return await write_chunk(http, object_name, action, chunk, gate, result_key, idempotent=action == "update")
        settled: dict[int, Written] = {}
        remaining = list(chunk)
        lost_at: float | None = None

        async def write() -> dict[int, Written]:
            answered = await write_chunk(http, object_name, action, remaining, gate, result_key)
            if lost_at is not None:
                # Sent again: what HubSpot created since the first send was created by this push.
                elapsed = time.monotonic() - lost_at
                answered = {index: replace(w, replayed_after=elapsed) for index, w in answered.items()}
            return {**settled, **answered}

        async def reconcile() -> dict[int, Written] | None:
            nonlocal remaining, lost_at
            lost_at = lost_at if lost_at is not None else time.monotonic()
            settled.update(await lookup(remaining))
            remaining = [item for item in remaining if item.index not in settled]
            return None if remaining else settled

        try:
            return await write_or_reconcile(write, reconcile, what=f"HubSpot {object_name} {action}")
        except AmbiguousWriteError as exc:
            return {**settled, **{item.index: Written(failure=exc) for item in remaining}}

    merged: dict[int, Written] = {}
    for part in await gather_or_cancel(send(chunk) for chunk in chunks(inputs, BATCH_SIZE)):
        merged.update(part)
    return merged


async def write_chunk(
    http: HttpCore,
    object_name: str,
    action: str,
    chunk: Sequence[BatchInput],
    gate: WriteGate,
    result_key: Callable[[dict[str, Any]], str | None],
    *,
    idempotent: bool = False,
) -> dict[int, Written]:
    """One batch request; a batch refused as a whole is split in halves until each bad record stands alone.

    Raises:
        AmbiguousWriteError: the connection died after a non-idempotent write was sent.
    """
    body = {"inputs": [{**item.payload, "objectWriteTraceId": str(item.index)} for item in chunk]}
    try:
        async with gate.slot():
            response = await http.request(
                "POST",
                f"/crm/v3/objects/{object_name}/batch/{action}",
                json=body,
                idempotent=idempotent,
                classifier=classify_batch_update if action == "update" else None,
            )
    except AmbiguousWriteError:
        raise
    except errors.TransientError as exc:
        return {item.index: Written(failure=exc) for item in chunk}
    payload = body_of(response)
    if response.status_code >= 400:
        if len(chunk) == 1:
            return {chunk[0].index: Written(error=payload, status=response.status_code)}
        middle = len(chunk) // 2
        logger.info(
            "HubSpot refused a %s batch of %d as a whole (%d); splitting it", action, len(chunk), response.status_code
        )
        halves = await gather_or_cancel(
            write_chunk(http, object_name, action, half, gate, result_key, idempotent=idempotent)
            for half in (chunk[:middle], chunk[middle:])
        )
        return {**halves[0], **halves[1]}
    return match_batch(chunk, payload, result_key)


def match_batch(
    chunk: Sequence[BatchInput], payload: dict[str, Any], result_key: Callable[[dict[str, Any]], str | None]
) -> dict[int, Written]:
    """Match a batch answer's results and errors to its inputs (trace id first, then email or id)."""
    started = parse_crm_time(payload.get("startedAt"))
    by_trace = {str(item.index): item for item in chunk}
    by_key = {item.key.lower(): item for item in chunk}
    written: dict[int, Written] = {}
    for result in payload.get("results") or []:
        if not isinstance(result, dict):
            continue
        item = by_trace.get(str(result.get("objectWriteTraceId"))) or by_key.get((result_key(result) or "").lower())
        if item is not None:
            written[item.index] = Written(result=result, started_at=started)
    for error in payload.get("errors") or []:
        if not isinstance(error, dict):
            continue
        context: dict[str, Any] = error["context"] if isinstance(error.get("context"), dict) else {}
        traces = [by_trace[str(t)] for t in context.get("objectWriteTraceId") or [] if str(t) in by_trace]
        keys = [by_key[str(k).lower()] for k in context.get("ids") or [] if str(k).lower() in by_key]
        for item in traces or keys:
            written.setdefault(item.index, Written(error=error))
    return written


def write_result(email: str, written: Written, *, created: bool = False) -> RecordResult:
    """One record's result from what became of its batch input (``created``: it was a batch create)."""
    if written.failure is not None:
        return failed_result(email, written.failure.category, f"{email}: {written.failure}")
    if written.error is not None or written.result is None:
        return failed_result(email, *record_failure(written.error or {}, written.status, email))
    result = written.result
    crm_id = str(result.get("id")) if result.get("id") is not None else None
    # The batch answer's change stamp is the one the change search reads back: the engine keeps it to know the
    # echo of this write.
    updated_at = parse_crm_time(
        result.get("updatedAt")
        or (result.get("properties") or {}).get("lastmodifieddate")
        or (result.get("properties") or {}).get("hs_lastmodifieddate")
    )
    if created or result.get("new"):
        return RecordResult(email, RecordOutcome.CREATED, crm_id, crm_modified_at=updated_at)
    started = written.started_at
    created_at = parse_crm_time(result.get("createdAt"))
    replayed = written.replayed_after
    # After a lost first attempt, a record created since that attempt was created by this push.
    if replayed is not None and started and created_at and created_at >= started - timedelta(seconds=replayed + 2):
        return RecordResult(email, RecordOutcome.CREATED, crm_id, crm_modified_at=updated_at)
    if started is not None and updated_at is not None and updated_at < started:
        return RecordResult(email, RecordOutcome.UNCHANGED, crm_id, crm_modified_at=updated_at)
    return RecordResult(email, RecordOutcome.UPDATED, crm_id, crm_modified_at=updated_at)


def result_id(result: dict[str, Any]) -> str | None:
    """The record id a batch result echoes (how updates by id are matched)."""
    return str(result["id"]) if result.get("id") is not None else None


def result_email(result: dict[str, Any]) -> str | None:
    """The email a batch result echoes (how upserts by email are matched)."""
    email = (result.get("properties") or {}).get("email")
    return str(email) if email else None


def note_results(
    payload: dict[str, Any], status: int, waiting: Sequence[int], contacts: Mapping[int, str]
) -> dict[int, TimelineResult]:
    """What became of each note a ``notes/batch/create`` sent (``waiting``, by trace id; ``contacts``: each note's
    contact): its id, HubSpot's refusal, or a server failure where the answer does not list it."""
    if status >= 400 and not payload.get("results"):
        category, message = record_failure(payload, status, "notes")
        return {index: TimelineResult(None, category, named_once(message)) for index in waiting}
    answers: dict[int, TimelineResult] = {}
    for result in payload.get("results") or []:
        trace = str(result.get("objectWriteTraceId")) if isinstance(result, dict) else ""
        if trace.isdigit() and int(trace) in contacts and result.get("id"):
            answers[int(trace)] = TimelineResult(str(result["id"]))
    for error in payload.get("errors") or []:
        context = error.get("context") if isinstance(error, dict) else None
        for trace in (context or {}).get("objectWriteTraceId") or []:
            if str(trace).isdigit() and int(trace) in contacts:
                label = f"note on contact {contacts[int(trace)]}"
                category, message = record_failure(error, status, label)
                answers[int(trace)] = TimelineResult(None, category, named_once(message))
    for index in waiting:
        answers.setdefault(index, TimelineResult(None, ErrorCategory.SERVER, "HubSpot's answer did not list this note"))
    return answers
