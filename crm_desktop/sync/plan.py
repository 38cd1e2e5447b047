"""A sync run's plan: what it creates, updates, decides and skips, per record and side, as typed values.

The engine computes the plan of a pulled page or a push batch from the CRM's answer and the store without writing;
a dry run prints it and a real run applies the very same plan, so the two cannot disagree. A real run's plan keeps
exact counts and a bounded sample of its changes: each record's changes are in the store (record log and audit).
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
    """Records per action, conflicting fields waiting or decided by rule, and records skipped."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    waiting: int = 0
    decided: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class ChangeKind:
    """What the plan counts changes by: the object, the side written and the action."""

    object: RecordObject
    side: Side
    action: ChangeAction


#: Changes worth showing a real run's plan keeps; the rest are counted (each record's changes are in the run's
#: record log and audit in the store).
SAMPLE_SIZE = 200


@dataclass
class SyncPlan:
    """The changes of a run, in the order they are made, and exact counts of them.

    A plan with a ``sample`` size (a real run's) keeps only the first ``sample`` changes worth showing and counts
    the others in ``omitted``, so its memory does not grow with the number of records; records left unchanged are
    then only counted. Without one (a dry run, whose plan is what the marketer previews) it keeps every change.

    Attributes:
        changes: the changes kept, in order.
        sample: how many changes worth showing are kept; ``None``: all of them.
        omitted: changes worth showing that were counted but not kept.
    """

    changes: list[PlannedChange] = field(default_factory=list)
    sample: int | None = None
    omitted: int = 0
    _kinds: dict[ChangeKind, int] = field(default_factory=dict, init=False, repr=False)
    _conflict_fields: dict[ConflictDecision, int] = field(default_factory=dict, init=False, repr=False)
    _skip_reasons: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        given, self.changes = self.changes, []
        self.extend(given)

    @property
    def complete(self) -> bool:
        """Whether every change worth showing is kept (no sample size, or nothing left out of it yet)."""
        return self.omitted == 0

    def add(self, change: PlannedChange) -> None:
        kind = ChangeKind(change.object, change.side, change.action)
        self._kinds[kind] = self._kinds.get(kind, 0) + 1
        if change.action is ChangeAction.CONFLICT and change.decision is not None:
            self._conflict_fields[change.decision] = self._conflict_fields.get(change.decision, 0) + len(change.fields)
        elif change.action is ChangeAction.SKIP:
            self._skip_reasons[change.reason] = self._skip_reasons.get(change.reason, 0) + 1
        if self.sample is None:
            self.changes.append(change)
        elif change.action is ChangeAction.UNCHANGED:
            return
        elif len(self.changes) < self.sample:
            self.changes.append(change)
        else:
            self.omitted += 1

    def extend(self, changes: Iterable[PlannedChange]) -> None:
        for change in changes:
            self.add(change)

    def count(self, *, obj: RecordObject | None = None, side: Side | None = None,
              action: ChangeAction | None = None) -> int:
        """Changes of this object, side and action (any, where not given), kept or not."""
        return sum(
            n for kind, n in self._kinds.items()
            if (obj is None or kind.object is obj) and (side is None or kind.side is side)
            and (action is None or kind.action is action)
        )

    def kinds(self) -> dict[ChangeKind, int]:
        """Changes per object, side and action, kept or not."""
        return dict(self._kinds)

    def skip_reasons(self) -> dict[str, int]:
        """Records skipped per reason, most frequent first."""
        return dict(sorted(self._skip_reasons.items(), key=lambda item: (-item[1], item[0])))

    def counts(self) -> PlanCounts:
        decided = sum(n for decision, n in self._conflict_fields.items() if decision.decided)
        return PlanCounts(
            created=self.count(action=ChangeAction.CREATE),
            updated=self.count(action=ChangeAction.UPDATE),
            unchanged=self.count(action=ChangeAction.UNCHANGED),
            waiting=self._conflict_fields.get(ConflictDecision.WAITING, 0),
            decided=decided,
            skipped=self.count(action=ChangeAction.SKIP),
        )

    def shown(self) -> list[PlannedChange]:
        """The changes kept that are worth printing (records left unchanged are only counted); ``omitted`` more
        were left out of a sampled plan."""
        return [c for c in self.changes if c.action is not ChangeAction.UNCHANGED]
