"""How the panels word sync facts for the marketer: statuses, triggers, times, durations, counts and errors."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from crm_desktop.app.crm_actions import ConnectionInfo
from crm_desktop.app.errors import (
    CredentialsError,
    InvalidRecordError,
    NotFoundError,
    ProviderError,
    StoreError,
    VaultError,
)
from crm_desktop.app.sync_service import SyncResult, SyncTrigger
from crm_desktop.app.text import duration_text as run_length_text
from crm_desktop.app.text import plural
from crm_desktop.domain.models import PLATFORM_NAMES as PLATFORM_NAMES  # the networks' names, also in messages
from crm_desktop.domain.models import LeadStatus, SyncDirection, TouchpointType
from crm_desktop.domain.outcomes import ErrorCategory, RecordOutcome
from crm_desktop.domain.social import AttributionModel

logger = logging.getLogger(__name__)

#: The attribution models as the panels and Settings name them.
MODEL_NAMES = {
    AttributionModel.FIRST_TOUCH: "First touch",
    AttributionModel.LAST_TOUCH: "Last touch",
    AttributionModel.LINEAR: "Linear",
    AttributionModel.TIME_DECAY: "Time decay",
    AttributionModel.POSITION_BASED: "Position based",
}


#: What a person did, as a timeline lists it (the wire's values are ``post_view``, ``dm``...); a conversation is
#: an entry of the timeline of its own.
TOUCHPOINT_NAMES: dict[str, str] = {
    TouchpointType.POST_VIEW: "Post view",
    TouchpointType.VIEW: "View",
    TouchpointType.CLICK: "Click",
    TouchpointType.LIKE: "Like",
    TouchpointType.COMMENT: "Comment",
    TouchpointType.SHARE: "Share",
    TouchpointType.DM: "Direct message",
    TouchpointType.MENTION: "Mention",
    TouchpointType.FOLLOW: "Follow",
    TouchpointType.FORM_SUBMIT: "Form submitted",
    TouchpointType.CONVERSION: "Conversion",
    "conversation": "Conversation",
}

TRIGGER_NAMES: dict[str, str] = {
    SyncTrigger.MANUAL: "Manual",
    SyncTrigger.SCHEDULED: "Scheduled",
    SyncTrigger.AUTO: "Automatic",
    SyncTrigger.CLI: "Command line",
    SyncTrigger.API: "Local API",
    SyncTrigger.IMPORT: "File import",
    SyncTrigger.EDIT: "Edit by hand",
}

#: A run's direction, as the Sync Monitor names it.
RUN_DIRECTION_NAMES: dict[str, str] = {
    SyncDirection.BOTH: "Two-way",
    SyncDirection.PUSH: "Push",
    SyncDirection.PULL: "Pull",
    SyncDirection.PUSH_NEW: "Push new",
    SyncDirection.UNDO: "Undo",
    SyncDirection.IMPORT: "Import",
    SyncDirection.EDIT: "Edit",
}

#: A lead's status as the form's list names it.
LEAD_STATUS_NAMES: dict[str, str] = {
    LeadStatus.NEW: "New",
    LeadStatus.CONTACTED: "Contacted",
    LeadStatus.QUALIFIED: "Qualified",
    LeadStatus.UNQUALIFIED: "Unqualified",
    LeadStatus.CONVERTED: "Converted",
}

RUN_STATUS_NAMES: dict[str, str] = {
    "running": "Running",
    "succeeded": "Succeeded",
    "partial": "Partly done",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "offline": "Offline",
}

OUTCOME_NAMES: dict[str, str] = {
    RecordOutcome.CREATED: "Created",
    RecordOutcome.UPDATED: "Updated",
    RecordOutcome.UNCHANGED: "Unchanged",
    RecordOutcome.FAILED: "Failed",
    RecordOutcome.CONFLICT: "Conflict",
    RecordOutcome.SKIPPED: "Skipped",
}

ERROR_CATEGORY_NAMES: dict[str, str] = {
    ErrorCategory.AUTH: "Sign-in",
    ErrorCategory.PERMISSION: "Permission",
    ErrorCategory.RATE_LIMIT: "Rate limit",
    ErrorCategory.VALIDATION: "Invalid record",
    ErrorCategory.DUPLICATE: "Duplicate",
    ErrorCategory.NOT_FOUND: "Not found",
    ErrorCategory.NETWORK: "Network",
    ErrorCategory.SERVER: "CRM server",
}

#: Errors whose message is written for the user; anything else is a bug and is logged with its traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ProviderError,
    VaultError,
    NotFoundError,
    StoreError,
    CredentialsError,
    InvalidRecordError,
    ValueError,
    OSError,
)


def named(names: Mapping[str, str], value: object) -> str:
    """The marketer's word for an enum value, or the value itself when it has none."""
    text = str(getattr(value, "value", value))
    return names.get(text, text.replace("_", " ").capitalize())


def local_time(moment: datetime | None, *, seconds: bool = False) -> str:
    """A stored (UTC) time in the computer's zone, e.g. ``2025-03-14 09:26``; ``—`` when unknown."""
    if moment is None:
        return "—"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def short_time(moment: datetime | None, now: datetime | None = None) -> str:
    """A stored (UTC) time as a table cell: ``Today 09:26``, ``14 Mar 09:26``, ``2024-03-14`` (another year)."""
    if moment is None:
        return "—"
    local = moment.astimezone()
    today = (now or datetime.now(local.tzinfo)).astimezone(local.tzinfo).date()
    if local.date() == today:
        return f"Today {local:%H:%M}"
    if local.year == today.year:
        return f"{local.day} {local:%b %H:%M}"
    return f"{local:%Y-%m-%d}"


def duration_text(seconds: float | None) -> str:
    """A run's length as people say it: ``0.4 s``, ``12 s``, ``3 min 05 s``, ``1 h 02 min`` (``—`` when unknown)."""
    return "—" if seconds is None else run_length_text(seconds)


def counts_text(counts: Mapping[str, int]) -> str:
    """What a run did, naming only what it did: ``3 created, 1 failed, 1 conflict waiting, 2 decided by rule``;
    ``nothing to change`` for a run that found nothing.

    ``conflicts`` are the fields waiting for the marketer, ``decided`` those their conflict rule settled.
    """
    parts = [f"{counts[key]:,} {key}" for key in ("created", "updated", "unchanged", "failed") if counts.get(key)]
    if counts.get("conflicts"):
        parts.append(f"{plural(counts['conflicts'], 'conflict')} waiting")
    if counts.get("decided"):
        parts.append(f"{counts['decided']:,} decided by rule")
    return ", ".join(parts) or "nothing to change"


def result_sentence(name: str, result: SyncResult) -> str:
    """One sentence for a finished run: what it did, or why it stopped."""
    status = str(getattr(result.status, "value", result.status))
    calls = f"{plural(result.api_calls, 'API call')}, {duration_text(result.duration)}"
    if status == "failed":
        return f"Sync of “{name}” failed: {result.message or 'see the run for details'}."
    sentence = f"Synced “{name}”: {counts_text(result.counts)} ({calls})."
    if status == "partial":
        sentence += f" Stopped early: {result.message}." if result.message else " Some records failed."
    return sentence


def error_sentence(action: str, error: BaseException) -> str:
    """``<action> failed: <why>.``; an unexpected error (a bug) is logged with its traceback."""
    if not isinstance(error, EXPECTED_ERRORS):
        logger.error("%s failed unexpectedly", action, exc_info=error)
    reason = str(error).strip().rstrip(".") or type(error).__name__
    return f"{action} failed: {reason}."


def quota_text(info: ConnectionInfo) -> str:
    """The API budget left, as far as the CRM tells."""
    quota = info.quota
    if quota is None:
        return "not reported"
    parts = []
    if quota.remaining is not None:
        parts.append(f"{plural(quota.remaining, 'call')} left"
                     + (f" of {quota.limit:,}" if quota.limit is not None else ""))
    elif quota.used is not None and quota.limit is not None:
        parts.append(f"{plural(quota.limit - quota.used, 'call')} left of {quota.limit:,}")
    if quota.window_remaining is not None:
        parts.append(f"{quota.window_remaining:,} left in the burst window")
    return ", ".join(parts) or "not reported"


def connection_sentence(info: ConnectionInfo) -> str:
    """What a successful connection test found: account, user, scopes and quota."""
    scopes = ", ".join(info.scopes) if info.scopes else "not reported"
    return (
        f"Connected to {info.account} as {info.user}.\n"
        f"Scopes: {scopes}.\n"
        f"API budget: {quota_text(info)}."
    )
