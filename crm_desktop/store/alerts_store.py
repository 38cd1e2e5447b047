"""The alerts the desktop raised, kept so the Alerts view survives a restart."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, or_, select

from crm_desktop.domain.alerts import Alert, AlertKind
from crm_desktop.store.database import Database
from crm_desktop.store.models import AlertRow
from crm_desktop.store.process_owner import machine_name

#: Alerts kept; older ones are pruned when a new one is raised.
KEEP_ALERTS = 500


def _alert(row: AlertRow) -> Alert:
    return Alert(
        id=row.id,
        kind=row.kind,
        integration_id=row.integration_id,
        integration_name=row.integration_name,
        message=row.message,
        run_id=row.run_id,
        raised_at=row.raised_at,
        last_seen_at=row.last_seen_at,
        repeats=row.repeats,
        machine=row.machine,
    )


def _shown_on(machine: str) -> ColumnElement[bool]:
    """The alerts a desktop lists: those of every desktop, and its own."""
    return or_(AlertRow.machine.is_(None), AlertRow.machine == machine)


class AlertStore:
    """Alerts in the ``alerts`` table, newest first: those every desktop shows, and this desktop's own.

    Args:
        machine: this desktop's name in the team (:func:`machine_name`); the alerts another desktop raised about
            itself are not listed, repeated or cleared here.
    """

    def __init__(self, database: Database, machine: str | None = None) -> None:
        self._db = database
        self.machine = machine or machine_name()

    def add(
        self, kind: AlertKind, integration_id: int | None, integration_name: str, message: str, run_id: int | None,
        at: datetime, *, own: bool = False,
    ) -> Alert:
        """Store a new alert (and prune the oldest beyond :data:`KEEP_ALERTS`); ``own``: about this desktop alone."""
        with self._db.session() as session:
            row = AlertRow(kind=kind, integration_id=integration_id, integration_name=integration_name,
                           message=message, run_id=run_id, raised_at=at, last_seen_at=at, repeats=0,
                           machine=self.machine if own else None)
            session.add(row)
            session.flush()
            oldest_kept = session.scalar(
                select(AlertRow.id).order_by(AlertRow.id.desc()).offset(KEEP_ALERTS - 1).limit(1)
            )
            if oldest_kept is not None:
                session.execute(delete(AlertRow).where(AlertRow.id < oldest_kept))
            return _alert(row)

    def latest(self, kind: AlertKind, integration_id: int | None, *, own: bool = False) -> Alert | None:
        """The alert of this kind for this integration raised (notified) last: of every desktop, or (``own``)
        this desktop's own."""
        same_integration = (
            AlertRow.integration_id.is_(None) if integration_id is None else AlertRow.integration_id == integration_id
        )
        with self._db.session() as session:
            row = session.scalars(
                select(AlertRow)
                .where(AlertRow.kind == kind, same_integration,
                       AlertRow.machine == self.machine if own else AlertRow.machine.is_(None))
                .order_by(AlertRow.raised_at.desc(), AlertRow.id.desc())
                .limit(1)
            ).first()
            return _alert(row) if row is not None else None

    def repeat(self, alert_id: int, message: str, run_id: int | None, at: datetime) -> Alert:
        """Count one more occurrence of an alert, with the newest message and run."""
        with self._db.session() as session:
            row = session.get_one(AlertRow, alert_id)
            row.repeats += 1
            row.last_seen_at = at
            row.message = message
            row.run_id = run_id if run_id is not None else row.run_id
            return _alert(row)

    def recent(self, limit: int = 200) -> list[Alert]:
        """The newest alerts, the latest occurrence first."""
        with self._db.session() as session:
            rows = session.scalars(
                select(AlertRow).where(_shown_on(self.machine))
                .order_by(AlertRow.last_seen_at.desc(), AlertRow.id.desc()).limit(limit)
            ).all()
            return [_alert(row) for row in rows]

    def count(self) -> int:
        with self._db.session() as session:
            return session.scalar(select(func.count()).select_from(AlertRow).where(_shown_on(self.machine))) or 0

    def delete(self, alert_id: int) -> bool:
        """Remove one alert; ``False`` when it was not there."""
        return self._db.delete_by_key(AlertRow, alert_id)

    def clear(self) -> int:
        """Remove every alert this desktop lists (not the other desktops' own); return how many there were."""
        with self._db.session() as session:
            return session.execute(delete(AlertRow).where(_shown_on(self.machine))).rowcount  # type: ignore[attr-defined,no-any-return]
