"""A sync run's plan: what it creates, updates, decides and skips, per record and side, as typed values.

The engine computes the plan of a pulled page or a push batch from the CRM's answer and the store without writing;
a dry run prints it and a real run applies the very same plan, so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from crm_desktop.domain.outcomes import RecordObject

Value = str | None


class Side(StrEnum):
    """Where a change is written: the local store or the CRM."""

    LOCAL = "local"
    CRM = "crm"


class ChangeAction(StrEnum):
    """What a planned change does to one record on one side."""

    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"
    SKIP = "skip"


class ConflictDecision(StrEnum):
    """How a field changed on both sides is settled: waiting for the marketer, or decided by its rule."""

    WAITING = "waiting"
    CRM_KEPT = "crm_kept"
    LOCAL_KEPT = "local_kept"

    @property
    def decided(self) -> bool:
        return self is not ConflictDecision.WAITING

    @property
    def sentence(self) -> str:
        """The decision as the marketer reads it."""
        return {
            ConflictDecision.WAITING: "waits for you (manual rule)",
            ConflictDecision.CRM_KEPT: "decided by rule: CRM value kept",
            ConflictDecision.LOCAL_KEPT: "decided by rule: local value kept",
        }[self]


@dataclass(frozen=True)
class FieldChange:
    """One field's change: its value before and after, and why.

    For a conflict, ``old`` is the local value and ``new`` the CRM's.
    """

    old: Value
    new: Value
    reason: str = ""


@dataclass(frozen=True)
class PlannedChange:
    """One change of one record on one side.

    Attributes:
        object: contact or lead.
        email: the record.
        side: where it is written (for a conflict: where the kept value goes; the local side when it waits).
        action: create, update, unchanged, conflict or skip.
        fields: field -> its change.
        reason: why a record is skipped, or how a conflict is settled.
        decision: a conflict's decision.
    """

    object: RecordObject
    email: str
    side: Side
    action: ChangeAction
    fields: Mapping[str, FieldChange] = field(default_factory=dict)
    reason: str = ""
    decision: ConflictDecision | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What identifies the change in a plan (object, record, side, action)."""
        return (self.object.value, self.email, self.side.value, self.action.value)


@dataclass(frozen=True)
class PlanCounts:
    """Records per action, and conflicting fields waiting or decided by rule."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    waiting: int = 0
    decided: int = 0


@dataclass
class SyncPlan:
    """The changes of a run, in the order they are made."""

    changes: list[PlannedChange] = field(default_factory=list)

    def add(self, change: PlannedChange) -> None:
        self.changes.append(change)

    def extend(self, changes: Iterable[PlannedChange]) -> None:
        self.changes.extend(changes)

    def counts(self) -> PlanCounts:
        created = updated = unchanged = waiting = decided = 0
        for change in self.changes:
            if change.action is ChangeAction.CREATE:
                created += 1
            elif change.action is ChangeAction.UPDATE:
                updated += 1
            elif change.action is ChangeAction.UNCHANGED:
                unchanged += 1
            elif change.action is ChangeAction.CONFLICT and change.decision is not None:
                if change.decision.decided:
                    decided += len(change.fields)
                else:
                    waiting += len(change.fields)
        return PlanCounts(created, updated, unchanged, waiting, decided)

    def shown(self) -> list[PlannedChange]:
        """The changes worth printing (records left unchanged are only counted)."""
        return [c for c in self.changes if c.action is not ChangeAction.UNCHANGED]
