"""Reading contacts and leads from CSV or JSON Lines files, validating every row before anything is sent."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.domain.models import Contact, Lead, SocialPlatform

RecordT = TypeVar("RecordT", Contact, Lead)

_CONTACT_COLUMNS = {"email", "firstName", "lastName", "company", "phone"}
_LEAD_COLUMNS = {"email", "firstName", "lastName", "company", "source", "status"}
_LEAD_CONTEXT_COLUMNS = {"platform", "conversationId", "sentiment", "engagementScore"}
_PROFILE_PARTS = ("username", "url", "followers", "engagement")


@dataclass(frozen=True)
class RowProblem:
    """One refused row: where it is, which record, which field and why.

    Attributes:
        line: the 1-based line number in the file (the header is line 1 of a CSV).
        record: the record's email or name, when the row has one.
        field: the wire name of the bad field.
        reason: a sentence the marketer can act on.
    """

    line: int
    record: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line} ({self.record}): {self.field}: {self.reason}"


@dataclass
class ReadResult(Generic[RecordT]):
    """Valid records with their line numbers, and the problems of the refused rows."""

    records: list[tuple[int, RecordT]] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)


def _camel(name: str) -> str:
    head, *rest = name.strip().split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def contact_from_flat_row(row: dict[str, Any]) -> dict[str, Any]:
    """Turn a flat CSV row into the seed's contact shape.

    Columns: email, firstName (or first_name), lastName, company, phone; ``<platform>_username``,
    ``<platform>_url``, ``<platform>_followers``, ``<platform>_engagement`` per social network; any other column
    becomes a custom field.
    """
    data: dict[str, Any] = {"customFields": {}}
    profiles: dict[str, dict[str, Any]] = {}
    platforms = {p.value for p in SocialPlatform}
    for raw_key, raw_value in row.items():
        if raw_key is None:
            continue
        value = _blank_to_none(raw_value)
        key = raw_key.strip()
        platform, _, part = key.lower().partition("_")
        if platform in platforms and part in _PROFILE_PARTS:
            if value is not None:
                profiles.setdefault(platform, {"platform": platform})[part] = value
            continue
        camel = _camel(key)
        if camel in _CONTACT_COLUMNS:
            if value is not None:
                data[camel] = value
        elif value is not None:
            data["customFields"][key] = value
    data["socialProfiles"] = [p for p in profiles.values() if "username" in p]
    return data


def lead_from_flat_row(row: dict[str, Any]) -> dict[str, Any]:
    """Turn a flat CSV row into the seed's lead shape (platform, conversationId, sentiment, engagementScore)."""
    data: dict[str, Any] = {}
    context: dict[str, Any] = {}
    for raw_key, raw_value in row.items():
        if raw_key is None:
            continue
        value = _blank_to_none(raw_value)
        camel = _camel(raw_key)
        if value is None:
            continue
        if camel in _LEAD_COLUMNS:
            data[camel] = value
        elif camel in _LEAD_CONTEXT_COLUMNS:
            context[camel] = value
        else:
            data[camel] = value  # refused by validation, naming the unknown column
    if context:
        data["socialContext"] = context
    return data


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            for row in reader:
                yield reader.line_num, dict(row), None
    elif suffix in {".jsonl", ".ndjson", ".json"}:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, None, f"not valid JSON ({exc.msg})"
                    continue
                if not isinstance(item, dict):
                    yield number, None, "each line must be one JSON object"
                    continue
                yield number, item, None
    else:
        raise ValueError(f"{path.name}: use a .csv or .jsonl file")


def read_records(path: Path, model: type[RecordT]) -> ReadResult[RecordT]:
    """Validate every row of a contacts or leads file; keep valid rows and explain every bad one.

    Raises:
        ValueError: when the file type is not supported.
        OSError: when the file cannot be read.
    """
    result: ReadResult[RecordT] = ReadResult()
    is_csv = path.suffix.lower() == ".csv"
    seen: dict[str, int] = {}
    for line, row, error in _rows(path):
        if row is None:
            result.problems.append(RowProblem(line, "(unreadable)", "(row)", error or "unreadable"))
            continue
        if is_csv:
            row = contact_from_flat_row(row) if model is Contact else lead_from_flat_row(row)
        try:
            record = model.model_validate(row)
        except InvalidRecordError as exc:
            for problem in exc.problems:
                result.problems.append(RowProblem(line, exc.record, problem.field, problem.reason))
            continue
        if record.email in seen:
            result.problems.append(
                RowProblem(line, record.email, "email", f"same email as line {seen[record.email]}; row skipped")
            )
            continue
        seen[record.email] = line
        result.records.append((line, record))
    return result
