"""What a Salesforce upsert keeps about each record on its way: its wire values (in each field's type), whether the
org holds them already, what a create needs, the sObject Collections bodies and how their answers settle each
record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

import httpx

from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.providers.contract import CrmField, OutboundRecord, RecordResult, not_an_option
from crm_desktop.providers.errors import ProviderError
from crm_desktop.providers.http import json_or_none
from crm_desktop.providers.salesforce_errors import describe_record_errors, salesforce_errors
from crm_desktop.providers.salesforce_records import SOBJECTS, TYPED_FIELD_TYPES, company_from_email
from crm_desktop.providers.salesforce_soql import RECORD_ID
from crm_desktop.providers.toolkit import (
    checked_email,
    failed_result,
    read_date,
    read_date_time,
    read_number,
    read_yes_no,
    same_instant,
    utc_millis,
)

#: sObject Collections take at most 200 records a request.
COLLECTION_LIMIT = 200


@dataclass
class PendingRecord:
    """One record of an upsert on its way: where it sat in the input, its fields, what the CRM holds."""

    positions: list[int]
    email: str
    fields: dict[str, Any]
    crm_id: str | None = None
    existing: dict[str, Any] | None = None
    result: RecordResult | None = None

    def done(self, outcome: RecordOutcome, crm_id: str | None) -> None:
        """The record was created or updated as ``crm_id``, or found unchanged."""
        self.result = RecordResult(self.email, outcome, crm_id=crm_id)

    def fail(self, category: ErrorCategory | None, message: str, crm_id: str | None = None) -> None:
        """The record was not written: ``message`` names it, the field and the reason."""
        self.result = failed_result(self.email, category, message, crm_id=crm_id)


def fail_all(sobject: str, items: Sequence[PendingRecord], exc: ProviderError) -> None:
    """Fail every one of ``items`` for ``exc`` (a request that did not reach its answer)."""
    for item in items:
        item.fail(exc.category, f"{sobject} {item.email}: {exc}")


#: Values that go on the wire as they are (anything else, dates and times, is formatted by ``_wire_value``).
_PLAIN_WIRE_TYPES = frozenset({str, int, float, bool, type(None)})


def _wire_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc_millis(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def pending_records(
    sobject: str, records: Sequence[OutboundRecord]
) -> tuple[list[PendingRecord], list[RecordResult | None]]:
    """One item per distinct email (later duplicates merged in), and the results of records refused already."""
    results: list[RecordResult | None] = [None] * len(records)
    pending: dict[str, PendingRecord] = {}
    lowered_names: dict[str, str] = {}
    for position, record in enumerate(records):
        try:
            email = checked_email(record.email)
        except ValueError as exc:
            results[position] = failed_result(
                record.email, ErrorCategory.VALIDATION, f"{sobject} {record.email}: Email: {exc}"
            )
            continue
        if record.crm_id is not None and not RECORD_ID.match(record.crm_id):
            message = f"{sobject} {email}: the linked Salesforce id is not a Salesforce id"
            results[position] = failed_result(email, ErrorCategory.NOT_FOUND, message)
            continue
        values: dict[str, Any] = {}
        for name, value in record.fields.items():
            lowered = lowered_names.get(name)
            if lowered is None:
                lowered = lowered_names[name] = name.lower()
            if lowered == "email":
                values["Email"] = email
            elif lowered != "id":
                values[name] = value if value.__class__ in _PLAIN_WIRE_TYPES else _wire_value(value)
        values["Email"] = email
        item = pending.get(email)
        if item is None:
            pending[email] = PendingRecord([position], email, values, record.crm_id)
        else:
            # The same person twice in one push: one write with the later values winning.
            item.positions.append(position)
            item.fields.update(values)
            item.crm_id = item.crm_id or record.crm_id
    return list(pending.values()), results


def typed_value(field_type: str, value: Any) -> Any:
    """A value in its field's wire type: a checkbox takes true or false (``"yes"``, ``"1"`` from a file read as
    such), a number field a JSON number (a whole one for ``int``), a date field an ISO date, a date-time field an
    ISO date and time sent in UTC (``2026-12-03T09:00:00.000Z``; one without a zone is read in the desktop's local
    time zone, a date alone as local midnight); blank text clears the field (null).

    Raises:
        ValueError: the value cannot be read in the field's type (``'maybe' is not yes/no``, ``'04/01/1990' is not
            a date (YYYY-MM-DD)``: a date written day or month first is not guessed; ``'tomorrow' is not a date and
            time (YYYY-MM-DD hh:mm, a zone optional)``).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if field_type == "boolean":
        return read_yes_no(value)
    if field_type == "date":
        return read_date(value)
    if field_type == "datetime":
        return utc_millis(read_date_time(value))
    return read_number(value, whole=field_type == "int")


def field_wire_value(crm_field: CrmField, value: Any) -> Any:
    """What a push sends for ``value`` in ``crm_field`` (a field of the describe): in the field's wire type for a
    checkbox, number, date or date-time field (see :func:`typed_value`), else as it is (a date or time object as ISO
    text).

    Raises:
        ValueError: the field cannot take the value (``'tomorrow' is not a date and time (...)``); a push fails the
            record, unsent.
    """
    wired = value if value.__class__ in _PLAIN_WIRE_TYPES else _wire_value(value)
    if crm_field.restricted and isinstance(wired, str) and wired.strip():
        # A restricted picklist takes only its values (INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST); a multi-select
        # one several of them joined by ";".
        picked = wired.split(";") if crm_field.type == "multipicklist" else [wired]
        for choice in picked:
            if choice not in crm_field.options:
                raise ValueError(not_an_option(choice, crm_field.options))
    return typed_value(crm_field.type, wired) if crm_field.type in TYPED_FIELD_TYPES else wired


def with_typed_values(sobject: str, item: PendingRecord, kinds: dict[str, tuple[str, str]]) -> bool:
    """Put ``item``'s checkbox, number, date and date-time values in their wire type (``kinds``: type and label by
    lower-cased field name, from the describe); a value that cannot be read so fails the record, before anything is
    sent.

    Mapped values travel as text ("true", "42"), and Salesforce refuses text in such a field as a parse error of
    the whole request (``JSON_PARSER_ERROR``), not of the one record. Returns whether the record is still to write.
    """
    problems: list[str] = []
    for name, value in item.fields.items():
        kind = kinds.get(name.lower())
        if kind is None:
            continue  # no describe of this field at hand: the value goes as it is
        field_type, label = kind
        try:
            item.fields[name] = typed_value(field_type, value)
        except ValueError as exc:
            problems.append(f"{label}: {exc}")
    if problems:
        item.fail(ErrorCategory.VALIDATION, f"{sobject} {item.email}: {'; '.join(problems)}", crm_id=item.crm_id)
        return False
    return True


def _same_value(current: Any, wanted: Any, *, is_email: bool = False, scale: int | None = None) -> bool:
    """Whether the CRM's value already equals the one to write, as Salesforce would store it.

    Salesforce stores empty text as null, compares emails without case, rounds numbers to the field's scale, and
    answers a date-time in its own form (``2026-12-03T09:00:00.000+0000`` holds a ``...09:00:00.000Z`` sent).
    """
    if current in (None, "") and wanted in (None, ""):
        return True
    if is_email and isinstance(current, str) and isinstance(wanted, str):
        return current.strip().lower() == wanted.strip().lower()
    if isinstance(current, bool) or isinstance(wanted, bool):
        return current is wanted
    if isinstance(current, int | float) and isinstance(wanted, int | float):
        if scale is not None:
            return round(float(current), scale) == round(float(wanted), scale)
        return float(current) == float(wanted)
    return bool(current == wanted) or same_instant(wanted, current)


def holds_already(item: PendingRecord, scales: dict[str, int]) -> bool:
    """Whether the record the org holds (``item.existing``) has every value to write; ``scales`` are the decimal
    places of the object's number fields by lower-cased name."""
    assert item.existing is not None
    lowered = {key.lower(): value for key, value in item.existing.items()}
    return all(
        name.lower() in lowered
        and _same_value(lowered[name.lower()], value, is_email=name == "Email", scale=scales.get(name.lower()))
        for name, value in item.fields.items()
    )


def ready_to_create(obj: RecordObject, item: PendingRecord, default_company: str | None) -> bool:
    """Fill what Salesforce requires on create; fail the record before sending when it cannot be filled.

    A Lead without a Company gets ``default_company``, else one guessed from its email's domain.
    """
    sobject = SOBJECTS[obj]
    last_name = item.fields.get("LastName")
    if not isinstance(last_name, str) or not last_name.strip():
        item.fail(
            ErrorCategory.VALIDATION,
            f"{sobject} {item.email}: LastName: Salesforce requires a last name to create a {sobject}",
        )
        return False
    if obj is RecordObject.LEAD:
        company = item.fields.get("Company")
        if not isinstance(company, str) or not company.strip():
            item.fields["Company"] = default_company or company_from_email(item.email)
    return True


def sort_found(
    obj: RecordObject,
    item: PendingRecord,
    found: dict[str, Any] | None,
    creates: list[PendingRecord],
    updates: list[PendingRecord],
    scales: dict[str, int],
    default_company: str | None,
) -> None:
    """Given the row the org holds for ``item``'s email (``found``), settle an item the CRM holds unchanged and
    queue the rest to update (known id) or create (see :func:`holds_already` and :func:`ready_to_create`)."""
    if item.crm_id is not None:
        item.existing = found if found is not None and found.get("Id") == item.crm_id else None
    elif found is not None:
        item.crm_id = str(found["Id"])
        item.existing = found
    if item.existing is not None and holds_already(item, scales):
        item.done(RecordOutcome.UNCHANGED, item.crm_id)
    elif item.crm_id is not None:
        updates.append(item)
    elif ready_to_create(obj, item, default_company):
        creates.append(item)


def collection_body(sobject: str, items: Sequence[PendingRecord], *, with_id: bool) -> dict[str, Any]:
    """An sObject Collections request of ``items`` (``allOrNone=false``), with their ids for an update."""
    attributes = {"type": sobject}
    if with_id:
        records = [{"attributes": attributes, "Id": item.crm_id, **item.fields} for item in items]
    else:
        records = [{"attributes": attributes, **item.fields} for item in items]
    return {"allOrNone": False, "records": records}


def settle_collection(
    sobject: str, items: Sequence[PendingRecord], response: httpx.Response, *, creating: bool
) -> None:
    """Each item's result from an sObject Collections answer: one success or errors per record, in order; a refused
    request settles its one record (the adapter splits a refused request of several)."""
    if response.status_code >= 300:
        category, message = describe_record_errors(salesforce_errors(response), sobject)
        for item in items:
            item.fail(category, f"{sobject} {item.email}: {message}")
        return
    body = json_or_none(response)
    if not isinstance(body, list) or len(body) != len(items):
        for item in items:
            message = f"{sobject} {item.email}: Salesforce's answer did not list one result per record"
            item.fail(ErrorCategory.SERVER, message)
        return
    written = RecordOutcome.CREATED if creating else RecordOutcome.UPDATED
    for item, answer in zip(items, body, strict=True):
        if isinstance(answer, dict) and answer.get("success"):
            item.done(written, str(answer.get("id") or item.crm_id or ""))
            continue
        errors = answer.get("errors", []) if isinstance(answer, dict) else []
        category, message = describe_record_errors([e for e in errors if isinstance(e, dict)], sobject)
        item.fail(category, f"{sobject} {item.email}: {message}", crm_id=item.crm_id)


def written_records(items: Sequence[PendingRecord]) -> list[PendingRecord]:
    """The items a push created or updated (not those unchanged or failed), each with its record id."""
    return [
        item
        for item in items
        if item.result is not None
        and item.result.crm_id
        and item.result.outcome in (RecordOutcome.CREATED, RecordOutcome.UPDATED)
    ]


def record_id(item: PendingRecord) -> str:
    """The id of a written record (see :func:`written_records`)."""
    assert item.result is not None
    return str(item.result.crm_id)


def stamp_results(written: Sequence[PendingRecord], stamps: dict[str, datetime | None]) -> None:
    """Give each written record's result its ``SystemModstamp`` from ``stamps`` (by record id), where known."""
    for item in written:
        stamp = stamps.get(record_id(item))
        if stamp is not None:
            assert item.result is not None
            item.result = replace(item.result, crm_modified_at=stamp)
