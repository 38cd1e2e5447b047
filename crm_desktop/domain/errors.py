"""The one typed error raised when a record fails validation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    """One invalid field of a record.

    Attributes:
        field: the wire (camelCase) path of the field, e.g. ``socialProfiles.0.followers``.
        reason: a sentence a marketer can act on.
    """

    field: str
    reason: str


class InvalidRecordError(ValueError):
    """A record was refused; names the record, every bad field and the reason for each.

    Attributes:
        record: how the user knows the record (an email, a name, ``row 12``).
        kind: the kind of record (``contact``, ``lead``, ...).
        problems: one entry per invalid field.
    """

    def __init__(self, kind: str, record: str, problems: list[FieldProblem]) -> None:
        self.kind = kind
        self.record = record
        self.problems = problems
        details = "; ".join(f"{p.field}: {p.reason}" for p in problems)
        super().__init__(f"{kind} {record!s} is invalid: {details}")

    @property
    def fields(self) -> list[str]:
        """The names of the invalid fields."""
        return [p.field for p in self.problems]
