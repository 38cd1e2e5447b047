"""A sync refused because another run holds the integration's lock, and the words that say who holds it and when
the lock is taken over if that run is dead."""

from __future__ import annotations

from datetime import datetime, timedelta

from crm_desktop.store.lock_state import LockHolder
from crm_desktop.store.process_owner import FORGETTING, REMOVAL, UNDO
from crm_desktop.store.sync_store import SyncStore

__all__ = ["SyncAlreadyRunning", "describe_holder", "holder_phrase", "lock_refused", "span", "take_lock"]


class SyncAlreadyRunning(Exception):
    """Another run of the same integration holds the lock (in this or another process).

    Attributes:
        holder: who held the lock when the run was refused, when known (the message then names it).
    """

    def __init__(self, message: str, holder: LockHolder | None = None) -> None:
        super().__init__(message)
        self.holder = holder


def span(duration: timedelta) -> str:
    """A short duration in words: ``40 s``, ``4 min 20 s``, ``2 h 5 min``."""
    seconds = max(0, round(duration.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {seconds} s" if seconds else "")
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


def describe_holder(holder: LockHolder, now: datetime | None = None) -> str:
    """Who holds the lock, when it was last heard from, and when the next sync takes it over if it stays silent
    (the clock time on this machine's clock, ``now``, the durations on the lock's)."""
    where = f"on {holder.machine}, process {holder.process}" if holder.machine else f"process {holder.process}"
    run = f", run {holder.run_id}" if holder.run_id else ""
    heard = f"last heartbeat {span(holder.silent_for)} ago"
    if holder.owner_dead:
        then = "that process no longer exists: the next sync takes the lock over"
    elif not holder.live:
        then = "silent for too long: the next sync takes the lock over"
    else:
        at = ((now or datetime.now().astimezone()) + holder.taken_over_in).astimezone()
        then = (f"if it stays silent, the next sync takes the lock over at {at:%H:%M:%S} "
                f"(in {span(holder.taken_over_in)})")
    return f"({where}{run}); {heard}; {then}"


def holder_phrase(holder: LockHolder | None, name: str | None = None) -> str:
    """What holds the lock of integration ``name``: "a contacts push to 'hs'", "an undo of 'hs'", "a removal of
    'hs'", or "a sync of 'hs'" (also when the lock was let go meanwhile); without ``name``, "a contacts push",
    "an undo"... The owner id says what it is (see :func:`~crm_desktop.store.process_owner.lock_owner`); a sync's
    names nothing."""
    activity = holder.activity if holder is not None else None
    if activity == UNDO:
        what, of = "an undo", "of"
    elif activity == REMOVAL:
        what, of = "a removal", "of"
    elif activity == FORGETTING:
        what, of = "forgetting a person", "in"
    elif activity is not None:  # "contacts push", "leads push"
        what, of = f"a {activity}", "to"
    else:
        what, of = "a sync", "of"
    return f"{what} {of} {name!r}" if name is not None else what


def lock_refused(store: SyncStore, integration_id: int, name: str, verb: str = "is already running",
                 then: str = "", holder: LockHolder | None = None) -> SyncAlreadyRunning:
    """The error of a run of integration ``name`` refused because another holds its lock: what holds it
    (``a contacts push to 'hs' is already running``), where, since when it is silent and when it is taken over, then
    what to do (``then``). The holder is ``holder``, the one that refused the lock, else the store's now."""
    holder = holder or store.lock_state(integration_id)
    message = (f"{holder_phrase(holder, name)} {verb}" + (f" {describe_holder(holder)}" if holder is not None else "")
               + (f"; {then}" if then else ""))
    return SyncAlreadyRunning(message, holder)


def take_lock(store: SyncStore, integration_id: int, name: str, owner: str | None = None,
              verb: str = "is already running", then: str = "") -> None:
    """Take integration ``name``'s sync lock for ``owner`` (this process's runs when ``None``).

    Raises:
        SyncAlreadyRunning: another holds it; the message names the holder that refused it, even one that let go
            a moment later (see :func:`lock_refused` for ``verb`` and ``then``).
    """
    taken, holder = store.claim_lock(integration_id, owner)
    if not taken:
        raise lock_refused(store, integration_id, name, verb, then, holder)
