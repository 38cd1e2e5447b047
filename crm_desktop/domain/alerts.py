"""Alerts the desktop raises for the marketer: what went wrong with which integration, and when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class AlertKind(StrEnum):
    """What an alert is about; together with the integration it decides whether an alert repeats another."""

    RUN_FAILED = "run_failed"
    AUTH_FAILED = "auth_failed"
    #: The CRM refused a call or records for lack of a permission or scope: a CRM admin must grant it.
    PERMISSION_MISSING = "permission_missing"
    QUOTA_LOW = "quota_low"
    REFUSED_RECORDS = "refused_records"
    DUPLICATES_FOUND = "duplicates_found"


#: How each kind is titled in a notification and in the Alerts view.
ALERT_TITLES = {
    AlertKind.RUN_FAILED: "Sync failed",
    AlertKind.AUTH_FAILED: "Reconnect needed",
    AlertKind.PERMISSION_MISSING: "CRM permission needed",
    AlertKind.QUOTA_LOW: "API quota running out",
    AlertKind.REFUSED_RECORDS: "Records refused",
    AlertKind.DUPLICATES_FOUND: "Duplicates found",
}


@dataclass(frozen=True)
class Alert:
    """One alert as stored and shown.

    Attributes:
        id: the stored alert.
        kind: what it is about.
        integration_id: the integration it concerns (``None`` once that integration was removed).
        integration_name: the integration's name when the alert was raised.
        message: one or two sentences for the marketer (never a secret, never a response body).
        run_id: the sync run it came from, when there is one.
        raised_at: when it was first raised.
        last_seen_at: when the same alert (kind and integration) came again last.
        repeats: how many times it came again within the quiet period without a new notification.
        machine: the desktop it is about and shown on alone (its keyring lacks the integration's key); ``None``
            for an alert every desktop of a team database shows.
    """

    id: int
    kind: AlertKind
    integration_id: int | None
    integration_name: str
    message: str
    run_id: int | None
    raised_at: datetime
    last_seen_at: datetime
    repeats: int = 0
    machine: str | None = None

    @property
    def title(self) -> str:
        """The kind in words (“Sync failed”)."""
        return ALERT_TITLES[self.kind]
