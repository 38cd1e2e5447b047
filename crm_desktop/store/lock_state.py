"""A sync lock as the store sees it: who holds it and how long ago it was last heard from, by the lock's clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_desktop.store.database import Database
from crm_desktop.store.models import SyncLockRow, utcnow
from crm_desktop.store.process_owner import owner_is_dead, split_owner

__all__ = ["LOCK_STALE_AFTER", "LockHolder", "holder_of", "lock_time"]

#: A lock whose owner has not beaten its heart for this long is taken over (the owner crashed or slept).
LOCK_STALE_AFTER = timedelta(minutes=5)


def lock_time(database: Database, session: Session) -> datetime:
    """The time a lock's heartbeat is written and judged by: the PostgreSQL server's, as the desktops of a team
    keep their own clocks (one a few minutes behind would have its live lock taken for a crashed run's, and
    one ahead would wait for ever); this machine's for a SQLite file, which only its processes share."""
    if database.is_sqlite:
        return utcnow()
    server_now = session.scalar(select(func.now()))
    assert isinstance(server_now, datetime)
    return server_now.astimezone(UTC)


@dataclass(frozen=True)
class LockHolder:
    """Who holds an integration's sync lock, as a refusal or the Sync Monitor tells it.

    Attributes:
        owner: the holder's ``machine:pid``, then what it does when that is not a sync (``:undo``, ``:removal``...).
        run_id: the run it is doing, once recorded.
        silent_for: the time since its last heartbeat, by the lock's clock (the database server's on PostgreSQL),
            so a desktop whose clock is off still tells it right.
        owner_dead: the holder is a process of this machine that is gone: its lock is taken over at once.
    """

    owner: str
    run_id: int | None
    silent_for: timedelta
    owner_dead: bool

    @property
    def machine(self) -> str:
        """The desktop holding the lock (its machine name; empty for an owner id of no known form)."""
        machine, pid, _ = split_owner(self.owner)
        return machine if pid else ""

    @property
    def process(self) -> str:
        """The holding process's id (the whole owner id when it has no known form)."""
        machine, pid, _ = split_owner(self.owner)
        return pid or machine

    @property
    def activity(self) -> str | None:
        """What holds the lock when it is not a sync: ``undo``, ``removal``, ``contacts push``, ``leads push``."""
        return split_owner(self.owner)[2]

    @property
    def live(self) -> bool:
        """Whether the lock still counts: a lock silent for :data:`LOCK_STALE_AFTER`, or whose process is gone, is
        taken over by the next sync."""
        return not self.owner_dead and self.silent_for < LOCK_STALE_AFTER

    @property
    def taken_over_in(self) -> timedelta:
        """How long until the next sync takes the lock over if the holder stays silent (zero: it would now)."""
        return LOCK_STALE_AFTER - self.silent_for if self.live else timedelta(0)


def holder_of(row: SyncLockRow, now: datetime) -> LockHolder:
    """The holder of the lock ``row`` as of ``now``, a time of :func:`lock_time`."""
    return LockHolder(row.owner, row.run_id, max(timedelta(0), now - row.heartbeat_at), owner_is_dead(row.owner))
