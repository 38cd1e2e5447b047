"""What pulling conversions from a CRM remembers: where the next pull starts, and which people got a deal."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from crm_desktop.domain.models import LeadStatus
from crm_desktop.store.database import Database
from crm_desktop.store.models import ContactRow, ConversionRow, LeadRow, WorkspaceSettingRow

#: Statuses of a local lead that earn it a deal in the chosen pipeline.
DEAL_WORTHY_STATUSES = (LeadStatus.QUALIFIED, LeadStatus.CONVERTED)
#: How a pulled conversion names the CRM lead that was converted (``lead:<id>``).
LEAD_CONVERSION_PREFIX = "lead:"


@dataclass(frozen=True)
class DealCandidate:
    """A person who should have a deal: a qualified or converted lead, or anyone who converted.

    Attributes:
        email: the person's normalised email.
        name: the lead's name, when known (for the deal's title).
        value: the newest recorded conversion's value, when it has one.
        currency: that value's currency.
    """

    email: str
    name: str | None
    value: Decimal | None
    currency: str | None


class ConversionPullStore:
    """The conversion-pull cursor and the deals made, per integration, kept as workspace settings."""

    def __init__(self, database: Database) -> None:
        self._db = database

    @staticmethod
    def _cursor_key(integration_id: int) -> str:
        return f"conversions.cursor.{integration_id}"

    @staticmethod
    def _deals_key(integration_id: int) -> str:
        return f"conversions.deals.{integration_id}"

    def _get(self, key: str) -> dict[str, Any]:
        with self._db.session() as session:
            row = session.get(WorkspaceSettingRow, key)
            return dict(row.value) if row else {}

    def cursor(self, integration_id: int) -> datetime | None:
        """Where the next pull of the integration's conversions starts (``None``: from the beginning)."""
        stamp = self._get(self._cursor_key(integration_id)).get("since")
        return datetime.fromisoformat(stamp) if isinstance(stamp, str) else None

    def set_cursor(self, integration_id: int, since: datetime) -> None:
        """Move the cursor forward (never back)."""
        with self._db.session() as session:
            row = session.get(WorkspaceSettingRow, self._cursor_key(integration_id))
            value = {"since": since.isoformat()}
            if row is None:
                session.add(WorkspaceSettingRow(key=self._cursor_key(integration_id), value=value))
            elif datetime.fromisoformat(str(row.value.get("since"))) < since:
                row.value = value

    def deals(self, integration_id: int) -> dict[str, str]:
        """Email -> the CRM id of the deal made (or found) for that person."""
        return {str(k): str(v) for k, v in self._get(self._deals_key(integration_id)).items()}

    def put_deal(self, integration_id: int, email: str, deal_id: str) -> None:
        """Remember the person's deal; a person keeps the first deal recorded."""
        with self._db.session() as session:
            key = self._deals_key(integration_id)
            row = session.get(WorkspaceSettingRow, key, with_for_update=True)
            if row is None:
                session.add(WorkspaceSettingRow(key=key, value={email: deal_id}))
            elif email not in row.value:
                row.value = {**row.value, email: deal_id}

    def converted_leads(self, integration_id: int, linked: Mapping[str, str]) -> set[str]:
        """The emails among ``linked`` (email -> the id of the CRM lead it is linked to) whose CRM lead the
        integration reported converted: a conversion pulled from it as ``lead:<id>`` (a converted Salesforce Lead,
        read-only there from then on; it names the Lead by the first 15 characters of its 18-character id)."""
        if not linked:
            return set()
        with self._db.session() as session:
            rows = session.execute(
                select(ConversionRow.email, ConversionRow.external_id)
                .where(ConversionRow.integration == str(integration_id), ConversionRow.email.in_(sorted(linked)),
                       ConversionRow.external_id.startswith(LEAD_CONVERSION_PREFIX))
            ).all()
        converted: set[str] = set()
        for email, external_id in rows:
            lead_id = str(external_id).removeprefix(LEAD_CONVERSION_PREFIX)
            if lead_id and linked[email].startswith(lead_id):
                converted.add(email)
        return converted

    def deal_candidates(self, excluding_integration: str | None = None) -> list[DealCandidate]:
        """Qualified or converted local leads, and people with a recorded conversion (except those the given
        integration itself reported), oldest first."""
        with self._db.session() as session:
            leads = session.execute(
                select(LeadRow.email, LeadRow.first_name, LeadRow.last_name)
                .where(LeadRow.status.in_(DEAL_WORTHY_STATUSES))
                .order_by(LeadRow.id)
            ).all()
            conversions = session.execute(
                select(ConversionRow.email, ConversionRow.value, ConversionRow.currency, ConversionRow.integration)
                .order_by(ConversionRow.timestamp, ConversionRow.id)
            ).all()
            # Who converted as a contact (a customer, a purchase) is named as the contact is, not by the email.
            contacts = session.execute(
                select(ContactRow.email, ContactRow.first_name, ContactRow.last_name)
                .where(ContactRow.email.in_(select(ConversionRow.email)))
            ).all()
        names = {email: " ".join(p for p in (first, last) if p) or None for email, first, last in contacts}
        lead_names = {email: " ".join(p for p in (first, last) if p) or names.get(email)
                      for email, first, last in leads}
        names.update(lead_names)
        worth: dict[str, tuple[Decimal | None, str | None]] = {}
        own: set[str] = set()
        for email, value, currency, integration in conversions:
            if excluding_integration is not None and integration == excluding_integration:
                own.add(email)
                continue
            if value is not None or email not in worth:
                worth[email] = (value, currency)
        ordered: Iterable[str] = dict.fromkeys([*lead_names, *worth])
        return [
            DealCandidate(email, names.get(email), *worth.get(email, (None, None)))
            for email in ordered
            if email not in own
        ]
