"""What holds an integration's sync lock, in the words a refusal uses: a sync, a push, an undo or a removal."""

from __future__ import annotations

from crm_desktop.store.process_owner import REMOVAL, UNDO, split_owner
from crm_desktop.store.sync_store import SyncStore


def holder_phrase(store: SyncStore, integration_id: int, name: str) -> str:
    """What holds the lock of integration ``name`` now: "a contacts push to 'hs' from desk-2", "an undo of 'hs'
    from desk-2", "a removal of 'hs' on desk-2", or "a sync of 'hs'" (also when the lock was let go meanwhile).

    The owner id says what holds the lock (see :func:`~crm_desktop.store.process_owner.lock_owner`); a sync's
    names no activity.
    """
    holder = store.lock_holder(integration_id)
    if holder is None:
        return f"a sync of {name!r}"
    machine, _, activity = split_owner(holder[0])
    if activity == UNDO:
        return f"an undo of {name!r} from {machine}"
    if activity == REMOVAL:
        return f"a removal of {name!r} on {machine}"
    if activity is not None:  # "contacts push", "leads push"
        return f"a {activity} to {name!r} from {machine}"
    return f"a sync of {name!r}"
