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


def lock_owner() -> str:
    """This process's lock owner id: machine name and pid."""
    return f"{machine_name()}:{os.getpid()}"


def owner_is_dead(owner: str) -> bool:
    """Whether ``owner`` (``host:pid``) is a process of this machine that is gone."""
    # Only a process of this machine can be looked for; another desktop's lock goes stale by its heartbeat alone.
    host, _, pid_text = owner.rpartition(":")
    if host != machine_name() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
