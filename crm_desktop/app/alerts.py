"""Alerts from sync runs (failed, refused sign-in, missing permission, low quota, refused records, duplicates), without
storms.

The same alert, meaning the same kind for the same integration, is notified at most once per quiet period
(15 minutes); what comes again sooner is counted on the alert already shown, so the Alerts view still tells how
often it happened.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from crm_desktop.app.imports import ImportReport
from crm_desktop.app.text import led_by_record
from crm_desktop.domain.alerts import Alert, AlertKind
from crm_desktop.domain.models import Integration, Provider
from crm_desktop.domain.outcomes import ErrorCategory
from crm_desktop.providers.contract import Quota
from crm_desktop.providers.errors import AuthError, MissingCredentialsError, PermissionRefusedError
from crm_desktop.store.alerts_store import AlertStore
from crm_desktop.store.database import Database
from crm_desktop.store.models import SyncRunStatus
from crm_desktop.sync.engine import RecordFailure, SyncAlreadyRunning, SyncResult
from crm_desktop.vault import VaultError

logger = logging.getLogger(__name__)

__all__ = ["Alert", "AlertKind", "AlertService", "RaisedAlert"]

#: The same alert (kind and integration) is notified at most once in this period.
QUIET_PERIOD = timedelta(minutes=15)
#: Below this share of the daily API quota left, the marketer is warned.
QUOTA_WARNING_SHARE = 0.10
#: How many refused records a message names before saying "and N more".
NAMED_RECORDS = 2
#: The "integration" an alert about the local store itself (an import) is listed under.
LOCAL_STORE = "Local store"


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class RaisedAlert:
    """An alert as raised now.

    Attributes:
        alert: the stored alert (a repeat carries the count of repeats).
        notify: whether to show it as a desktop notification (``False``: it repeats one notified within the quiet
            period).
    """

    alert: Alert
    notify: bool


def quota_share_left(quota: Quota | None) -> float | None:
    """The share (0..1) of the daily quota left, when the CRM reported both the limit and what is left."""
    if quota is None or not quota.limit or quota.remaining is None:
        return None
    return max(0.0, min(1.0, quota.remaining / quota.limit))


#: The CRMs' names as their users know them.
CRM_NAMES = {provider: provider.label for provider in Provider}


def _crm(integration: Integration) -> str:
    return CRM_NAMES[integration.provider]


def _named(listed: list[str], count: int, separator: str) -> str:
    """The first records of ``count`` by name, and how many more (all of them are in the run's record log)."""
    shown = listed[:NAMED_RECORDS]
    unnamed = count - len(shown)
    if not shown:
        return "listed in the run's record log"
    return separator.join(shown) + (f" and {unnamed:,} more" if unnamed > 0 else "")


def _failures_of(outcome: SyncResult, category: ErrorCategory) -> tuple[list[RecordFailure], int]:
    """A run's listed failures of one category and how many there were: a large run's result lists only its first
    failures, while its counts per category cover every one."""
    listed = [f for f in outcome.failures if f.category is category]
    return listed, max(len(listed), outcome.failed_by_category.get(category, 0))


def _failure_text(failure: RecordFailure) -> str:
    """A refused record as an alert names it: the CRM's reason, after its email unless that names it already
    (the CRMs' record messages mostly do)."""
    return led_by_record(failure.email, failure.message)


def _reason(error: BaseException) -> str:
    """Why a run could not run, from what it raised: its message, or (an exception without one, such as a bare
    ``TimeoutError``) what it was, never nothing after the colon."""
    text = str(error).strip()
    if text:
        return text
    if isinstance(error, TimeoutError):
        return "it timed out"
    return f"{type(error).__name__}, without a message (the log has the details)"


def _records(count: int) -> str:
    return f"{count:,} record" + ("" if count == 1 else "s")


class AlertService:
    """Raises, stores and lists the workspace's alerts.

    Args:
        database: the workspace's store (alerts survive a restart).
        clock: now (tests move it by hand).
        quiet_period: how long the same alert stays quiet after it was notified.
    """

    def __init__(
        self, database: Database, clock: Callable[[], datetime] = utcnow, quiet_period: timedelta = QUIET_PERIOD
    ) -> None:
        self.store = AlertStore(database)
        self._clock = clock
        self.quiet_period = quiet_period

    def raise_alert(
        self, kind: AlertKind, integration: Integration | None, message: str, run_id: int | None = None, *,
        own: bool = False,
    ) -> RaisedAlert:
        """Store an alert, or count it on the same one notified less than the quiet period ago.

        Args:
            integration: the integration it concerns; ``None`` for the local store (an import).
            own: about this desktop alone (its keyring): listed on this desktop only, not on its teammates'.
        """
        now = self._clock()
        integration_id = integration.id if integration is not None else None
        name = integration.name if integration is not None else LOCAL_STORE
        last = self.store.latest(kind, integration_id, own=own)
        if last is not None and now - last.raised_at < self.quiet_period:
            logger.info("alert %s for %s repeats within the quiet period; not notified", kind.value, name)
            return RaisedAlert(self.store.repeat(last.id, message, run_id, now), notify=False)
        logger.info("alert %s raised for %s", kind.value, name)
        return RaisedAlert(self.store.add(kind, integration_id, name, message, run_id, now, own=own), notify=True)

    def alerts_for_import(self, path: Path, report: ImportReport) -> list[RaisedAlert]:
        """The alert an import into the local store gives: its refused rows (line, column, reason), if any."""
        if not report.problems:
            return []
        named = "; ".join(f"line {p.line}, {p.field}: {p.reason}" for p in report.problems[:NAMED_RECORDS])
        more = (f" and {len(report.problems) - NAMED_RECORDS:,} more" if len(report.problems) > NAMED_RECORDS
                else "")
        rows = f"{len(report.problems):,} row" + ("" if len(report.problems) == 1 else "s")
        saved = "the other rows were saved" if report.run_id is not None else "nothing was saved"
        return [self.raise_alert(AlertKind.REFUSED_RECORDS, None,
                                 f"{rows} of {path.name} refused ({named}{more}); {saved}.", report.run_id)]

    def alerts_for_run(self, integration: Integration, outcome: SyncResult | BaseException) -> list[RaisedAlert]:
        """The alerts one finished run (or a run that could not start) gives.

        A refused sign-in is one "reconnect" alert, not also a failed run; a missing permission is one "permission"
        alert naming what to ask the CRM's admin for (the sign-in works: reconnecting would not help); a run already
        going on is no alert.
        """
        name = f"“{integration.name}”"
        if isinstance(outcome, SyncAlreadyRunning):
            return []
        if isinstance(outcome, AuthError):
            return [self.raise_alert(AlertKind.AUTH_FAILED, integration,
                                     f"{_crm(integration)} refused the sign-in of {name}: {outcome}. "
                                     "Reconnect it to resume syncing.")]
        if isinstance(outcome, PermissionRefusedError):
            return [self.raise_alert(AlertKind.PERMISSION_MISSING, integration,
                                     f"{_crm(integration)} refused the sync of {name} for lack of a permission: "
                                     f"{outcome}.")]
        if isinstance(outcome, (MissingCredentialsError, VaultError)):
            # A fact of this desktop's keyring: on a team database the other desktops sync it with their own copy
            # of the key, so the alert names this desktop and is listed here alone.
            return [self.raise_alert(AlertKind.RUN_FAILED, integration,
                                     f"The sync of {name} could not run on this desktop ({self.store.machine}): "
                                     f"{_reason(outcome)}", own=True)]
        if isinstance(outcome, BaseException):
            return [self.raise_alert(AlertKind.RUN_FAILED, integration,
                                     f"The sync of {name} could not run: {_reason(outcome)}")]
        raised: list[RaisedAlert] = []
        run = f"run #{outcome.run_id}" if outcome.run_id is not None else "the run"
        if outcome.auth_failed:
            raised.append(self.raise_alert(
                AlertKind.AUTH_FAILED, integration,
                f"{_crm(integration)} refused the sign-in of {name} during {run}: "
                f"{outcome.message or 'credentials refused'}. Reconnect it to resume syncing.", outcome.run_id))
        elif outcome.stopped_by is ErrorCategory.PERMISSION or ErrorCategory.PERMISSION in outcome.failed_by_category:
            raised.append(self._permission_alert(integration, outcome, run))
        elif outcome.status is SyncRunStatus.FAILED:
            raised.append(self.raise_alert(
                AlertKind.RUN_FAILED, integration,
                f"The sync of {name} failed ({run}): {outcome.message or 'see the run for details'}",
                outcome.run_id))
        refused, refused_count = _failures_of(outcome, ErrorCategory.VALIDATION)
        if refused_count:
            named = _named([_failure_text(f) for f in refused], refused_count, "; ")
            raised.append(self.raise_alert(
                AlertKind.REFUSED_RECORDS, integration,
                f"{_crm(integration)} refused {_records(refused_count)} of {name} in {run} ({named}).",
                outcome.run_id))
        duplicates, duplicate_count = _failures_of(outcome, ErrorCategory.DUPLICATE)
        if duplicate_count:
            raised.append(self.raise_alert(
                AlertKind.DUPLICATES_FOUND, integration,
                f"{_records(duplicate_count)} of {name} match existing duplicates in {_crm(integration)} "
                f"({run}): {_named([f.email for f in duplicates], duplicate_count, ', ')}",
                outcome.run_id))
        share = quota_share_left(outcome.quota)
        if share is not None and share < QUOTA_WARNING_SHARE and outcome.quota is not None:
            raised.append(self.raise_alert(
                AlertKind.QUOTA_LOW, integration,
                f"{share:.0%} of {name}'s daily {_crm(integration)} API quota is left "
                f"({outcome.quota.remaining:,} of {outcome.quota.limit:,} calls); syncs slow down or stop "
                "until it resets.", outcome.run_id))
        return raised

    def _permission_alert(self, integration: Integration, outcome: SyncResult, run: str) -> RaisedAlert:
        """The alert of a run the CRM refused records or calls of for lack of a permission: how many records, and
        the CRM's reason with what to ask its admin for."""
        name = f"“{integration.name}”"
        refused, count = _failures_of(outcome, ErrorCategory.PERMISSION)
        if outcome.stopped_by is ErrorCategory.PERMISSION:
            written = f", {_records(count)} not written" if count else ""
            text = (f"{_crm(integration)} refused the sync of {name} for lack of a permission ({run}{written}): "
                    f"{outcome.message or 'a permission is missing'}.")
        else:
            sample = f" ({_failure_text(refused[0])})" if refused else ""
            text = f"{_crm(integration)} refused {_records(count)} of {name} for lack of a permission in {run}{sample}."
        return self.raise_alert(AlertKind.PERMISSION_MISSING, integration, text, outcome.run_id)

    def recent(self, limit: int = 200) -> list[Alert]:
        """The newest alerts, the latest occurrence first."""
        return self.store.recent(limit)

    def dismiss(self, alert_id: int) -> bool:
        """Forget one alert (Delete in the Alerts view); a new occurrence is notified again."""
        return self.store.delete(alert_id)

    def clear(self) -> int:
        """Forget every alert (the Alerts view's "Clear")."""
        return self.store.clear()
