"""Who is doing a run or holding a lock: this desktop's name in the team and its process, and whether it lives."""

from __future__ import annotations

import os
import socket

#: Names this desktop in the team's sync locks ("already running on <name>"); the host name when unset. Two
#: machines that share a database but not a host name (cloned VMs, containers) set it to tell themselves apart.
MACHINE_NAME_ENV = "CRM_DESKTOP_MACHINE_NAME"


def machine_name() -> str:
    """This desktop's name in the team: ``CRM_DESKTOP_MACHINE_NAME`` or else the host name."""
    return os.environ.get(MACHINE_NAME_ENV, "").strip() or socket.gethostname()


#: What, besides a sync, holds an integration's sync lock, named after the owner's ``host:pid`` (a sync adds nothing).
UNDO = "undo"
REMOVAL = "removal"
FORGETTING = "forgetting"
CONTACTS_PUSH = "contacts push"
LEADS_PUSH = "leads push"


def lock_owner(activity: str | None = None) -> str:
    """This process's lock owner id: machine name and pid, then what it is doing when that is not a sync (one of
    the names above): refusals name it, and the lock tells this process's sync and, say, its undo apart."""
    owner = f"{machine_name()}:{os.getpid()}"
    return f"{owner}:{activity}" if activity else owner


def split_owner(owner: str) -> tuple[str, str, str | None]:
    """A lock owner id's machine, pid and activity (``None``: a sync); an id of no known form is all machine."""
    head, _, last = owner.rpartition(":")
    if last.isdigit():
        return head, last, None
    machine, _, pid = head.rpartition(":")
    if pid.isdigit() and machine:
        return machine, pid, last
    return owner, "", None


def owner_is_dead(owner: str) -> bool:
    """Whether ``owner`` (``host:pid``, maybe with its activity) is a process of this machine that is gone."""
    # Only a process of this machine can be looked for; another desktop's lock goes stale by its heartbeat alone.
    host, pid_text, _ = split_owner(owner)
    if host != machine_name() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
