"""The workspace's named settings, each a small JSON object (never a secret: those go to the vault)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm_desktop.store.database import Database
from crm_desktop.store.models import WorkspaceSettingRow


class WorkspaceSettingsStore:
    """Workspace settings by key in the ``workspace_settings`` table."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def get(self, key: str) -> dict[str, Any] | None:
        """The setting's value, or ``None`` when it was never set."""
        with self._db.session() as session:
            row = session.get(WorkspaceSettingRow, key)
            return dict(row.value) if row is not None else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Set (replace) a setting."""
        with self._db.session() as session:
            row = session.get(WorkspaceSettingRow, key)
            if row is None:
                session.add(WorkspaceSettingRow(key=key, value=dict(value)))
            else:
                row.value = dict(value)

    def setdefault(self, key: str, value: dict[str, Any]) -> dict[str, Any]:
        """The setting's value, set to ``value`` first when it was never set.

        Desktops (or processes) setting it at the same moment agree on one value: the first insert stands, and the
        others read it back.
        """
        stored = self.get(key)
        if stored is not None:
            return stored
        try:
            with self._db.session() as session:
                session.add(WorkspaceSettingRow(key=key, value=dict(value)))
        except IntegrityError:
            pass  # another desktop or process set it first, between the read and the insert: theirs stands
        return self.get(key) or dict(value)

    def delete(self, key: str) -> bool:
        """Remove a setting; ``False`` when it was not set."""
        return self._db.delete_by_key(WorkspaceSettingRow, key)

    def all(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        """Every setting whose key starts with ``prefix``, by key."""
        with self._db.session() as session:
            rows = session.scalars(
                select(WorkspaceSettingRow).where(WorkspaceSettingRow.key.startswith(prefix, autoescape=True))
            ).all()
            return {row.key: dict(row.value) for row in rows}
