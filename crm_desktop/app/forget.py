"""Forgetting a person at their request (GDPR right to erasure), and lifting it; shared by the CLI and the window."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from crm_desktop.app.crm_actions import CrmActions
from crm_desktop.app.errors import ConfigurationError, ProviderError, VaultError
from crm_desktop.domain.models import normalise_email
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.domain.wording import forgotten_reason, plural
from crm_desktop.providers.contract import DeletesRecords
from crm_desktop.store.database import Database
from crm_desktop.store.forget_store import ForgetStore
from crm_desktop.store.people_store import PeopleStore
from crm_desktop.store.process_owner import FORGETTING, lock_owner
from crm_desktop.store.repositories import NotFoundError
from crm_desktop.store.sync_store import SyncStore
from crm_desktop.sync.lock_refusal import take_lock

logger = logging.getLogger(__name__)

#: What forgetting erases, as the confirmation names it.
ERASED_WORDS = ("the record and its social profiles, conversations and messages, touchpoints and conversions, "
                "its timeline and engagement history, its conflicts, its links to CRM records and its change "
                "history here")
#: Each kind of row forgetting deletes, as the marketer reads it (the keys are the CLI's ``--json`` ones).
ERASED_LABELS = {
    "contacts": "contact", "leads": "lead", "socialProfiles": "social profiles",
    "socialIdentities": "social usernames", "touchpoints": "touchpoints (timeline, engagement history)",
    "conversations": "conversations", "messages": "messages", "conversions": "conversions",
    "socialEvents": "social events for the CRMs", "conflicts": "conflicts", "crmLinks": "links to CRM records",
    "crmWrites": "CRM writes waiting or sent", "fieldChanges": "field changes (history, undo)",
    "runLogLines": "lines in the runs' record logs",
    "messagesRedacted": "run and alert messages that named them (their email taken out)",
}
#: What forgetting leaves to the marketer.
CRM_RECORDS_STAY = "the records in the CRMs are not deleted: delete them in each CRM itself"


@dataclass(frozen=True)
class CrmDeletion:
    """One linked CRM record ``--in-crms`` deleted, found gone, or could not delete.

    Attributes:
        integration: the integration's name.
        obj: contact or lead.
        crm_id: the record's id in that CRM.
        outcome: ``deleted``, ``gone`` (the CRM had it no more) or ``failed``.
        reason: why it failed (the CRM's words, no customer data).
    """

    integration: str
    obj: RecordObject
    crm_id: str
    outcome: str
    reason: str = ""

    def line(self) -> str:
        """``hubspot: contact 51 deleted`` (``already gone``, or ``NOT deleted: <reason>``)."""
        what = {"deleted": "deleted", "gone": "already gone"}.get(self.outcome, f"NOT deleted: {self.reason}")
        return f"{self.integration}: {self.obj.value} {self.crm_id} {what}"


@dataclass(frozen=True)
class LinkedRecord:
    """One CRM record a person is linked to, as the confirmation names it.

    Attributes:
        integration: the integration's name.
        crm: its CRM, as the marketer reads it (``HubSpot``).
        obj: contact or lead.
        crm_id: the record's id in that CRM.
    """

    integration: str
    crm: str
    obj: RecordObject
    crm_id: str

    def label(self) -> str:
        """``HubSpot “hubspot-marketing”``."""
        return f"{self.crm} “{self.integration}”"


@dataclass(frozen=True)
class ForgetReport:
    """What forgetting one person did.

    Attributes:
        email: the person's normalised email (for the one who asked; it is not kept).
        contact_id, lead_id: the local records deleted, where there were.
        counts: rows deleted per kind, in the order they are listed.
        forgotten_at: when; pulls, imports, pushes and social events are skipped from then on.
    """

    email: str
    contact_id: int | None
    lead_id: int | None
    counts: dict[str, int] = field(default_factory=dict)
    forgotten_at: datetime | None = None

    def lines(self) -> list[str]:
        """What was deleted, one line per kind of row that had any."""
        return [f"{count:>6}  {ERASED_LABELS.get(kind, kind)}" for kind, count in self.counts.items() if count]

    def summary(self) -> str:
        """``forgot ann@example.com: contact 12 and lead 7 deleted, 31 rows in all``."""
        records = [f"{obj} {local_id}" for obj, local_id in (("contact", self.contact_id), ("lead", self.lead_id))
                   if local_id is not None]
        held = " and ".join(records) + " deleted" if records else "no contact or lead was stored"
        return f"forgot {self.email}: {held}, {plural(sum(self.counts.values()), 'row')} in all"


@dataclass(frozen=True)
class ForgetOutcome:
    """What forgetting a person with their CRM records deleted first did.

    Attributes:
        deletions: each linked CRM record's deletion, in the order they were tried.
        report: what forgetting here erased; ``None`` when a deletion failed and nothing was forgotten here.
    """

    deletions: list[CrmDeletion]
    report: ForgetReport | None

    @property
    def refused(self) -> list[CrmDeletion]:
        """The deletions that failed (each with the CRM's reason)."""
        return [deletion for deletion in self.deletions if deletion.outcome == "failed"]


class ForgetService:
    """Erases people from the local store and keeps them from coming back until lifted."""

    def __init__(self, database: Database, actions: CrmActions | None = None) -> None:
        self.locks = SyncStore(database)
        self.store = ForgetStore(database)
        self.people = PeopleStore(database)
        self.actions = actions

    async def delete_in_crms(self, email: str) -> list[CrmDeletion]:
        """Delete the CRM records the person with ``email`` is linked to, in every integration whose CRM deletes
        (:class:`DeletesRecords`); a record already gone counts as done. Nothing local is changed: forget the
        person here once every deletion went through, or their links (the only way to find the records) are lost.

        Raises:
            ConfigurationError: without the CRM actions (the service was made for the store alone).
        """
        if self.actions is None:
            raise ConfigurationError("deleting in the CRMs needs the workspace's CRM connections")
        actions = self.actions
        # One adapter (and one check of its account) per integration, for its contact and its lead alike.
        by_integration: dict[int, list[tuple[RecordObject, str]]] = {}
        for integration_id, obj, crm_id in self.store.crm_links(normalise_email(email)):
            by_integration.setdefault(integration_id, []).append((obj, crm_id))
        done: list[CrmDeletion] = []
        for integration_id, records in by_integration.items():
            integration = actions.integrations.get_by_id(integration_id)
            try:
                adapter = await actions.checked_adapter(integration)
            except (ProviderError, VaultError) as exc:
                done.extend(CrmDeletion(integration.name, obj, crm_id, "failed", str(exc)) for obj, crm_id in records)
                continue
            try:
                for obj, crm_id in records:
                    if not isinstance(adapter, DeletesRecords):
                        done.append(CrmDeletion(integration.name, obj, crm_id, "failed",
                                                f"{integration.provider.value} records are not deleted from here: "
                                                "delete it in the CRM"))
                        continue
                    try:
                        deleted = await adapter.delete_record(obj, crm_id)
                    except ProviderError as exc:
                        done.append(CrmDeletion(integration.name, obj, crm_id, "failed", str(exc)))
                        continue
                    done.append(CrmDeletion(integration.name, obj, crm_id, "deleted" if deleted else "gone"))
            finally:
                await adapter.aclose()
        return done

    async def forget_in_crms_first(self, email: str) -> ForgetOutcome:
        """Delete the person's linked CRM records (:meth:`delete_in_crms`), then, only when every one went through,
        forget them here (:meth:`forget`); when one failed, nothing is forgotten here, so that their links still
        find the records left.

        Raises:
            ConfigurationError: without the CRM actions (the service was made for the store alone).
        """
        email = normalise_email(email)
        # Every integration's sync is held off until the person is forgotten here: a sync in between could push
        # them again (a new record in a CRM, whose link the forgetting would then drop, leaving it unfindable).
        if self.actions is None:
            raise ConfigurationError("deleting in the CRMs needs the workspace's CRM connections")
        locks, owner = self.locks, lock_owner(FORGETTING)
        held: list[int] = []
        try:
            for integration in self.actions.integrations.list():
                assert integration.id is not None
                take_lock(locks, integration.id, integration.name, owner, then="forget them once it is over")
                held.append(integration.id)
            deletions = await self.delete_in_crms(email)
            if any(deletion.outcome == "failed" for deletion in deletions):
                return ForgetOutcome(deletions, None)
            return ForgetOutcome(deletions, self.forget(email))
        finally:
            for integration_id in held:
                locks.release_lock(integration_id, owner)

    def linked_records(self, email: str) -> list[LinkedRecord]:
        """The CRM records the contact and the lead with ``email`` are linked to, with their integrations' names.

        Raises:
            ConfigurationError: without the CRM actions (the service was made for the store alone).
        """
        if self.actions is None:
            raise ConfigurationError("naming the CRM records needs the workspace's CRM connections")
        integrations = self.actions.integrations
        found: list[LinkedRecord] = []
        for integration_id, obj, crm_id in self.store.crm_links(normalise_email(email)):
            integration = integrations.get_by_id(integration_id)
            found.append(LinkedRecord(integration.name, integration.provider.label, obj, crm_id))
        return found

    def email_of(self, obj: RecordObject, key: str) -> str:
        """The normalised email of the contact or lead named by ``key`` (its email, or its local id).

        An email is taken as given even when no record holds it: a person may be forgotten before they are stored.

        Raises:
            ValueError: for text that is neither an id nor an email address.
            NotFoundError: for an id no record has.
        """
        text = key.strip()
        if text.isascii() and text.isdigit():
            number = int(text)
            email = self.people.email_of(obj, number) if 0 < number < 2**63 else None
            if email is None:
                raise NotFoundError(f"no {obj.value} with id {text}")
            return email
        return normalise_email(text)

    def holders(self, email: str) -> tuple[int | None, int | None]:
        """The contact's and the lead's local ids under this email, where there are."""
        return self.store.holders(email)

    def forget(self, email: str) -> ForgetReport:
        """Erase the person with ``email`` (contact and lead alike) in one transaction and record them forgotten."""
        email = normalise_email(email)
        erased = self.store.forget(email)
        logger.info("a person was forgotten: contact %s, lead %s", erased.contact_id, erased.lead_id)
        return ForgetReport(email, erased.contact_id, erased.lead_id, erased.counts, erased.forgotten_at)

    def unforget(self, email: str) -> datetime | None:
        """Lift the forgetting of ``email``; when it had been forgotten, or ``None`` if it was not."""
        return self.store.unforget(normalise_email(email))

    def forgotten_among(self, emails: Sequence[str]) -> dict[str, datetime]:
        """Of these normalised emails, those of forgotten people: email -> when."""
        return self.store.forgotten_among(emails)

    def refusal(self, email: str, not_done: str) -> str | None:
        """Why ``email`` is skipped (``forgotten on DATE at your request; <not_done>``), or ``None`` when it is not
        a forgotten person's."""
        try:
            key = normalise_email(email)
        except ValueError:
            return None
        at = self.store.forgotten_among([key]).get(key)
        return None if at is None else forgotten_reason(at, not_done)


__all__ = ["CRM_RECORDS_STAY", "ERASED_LABELS", "ERASED_WORDS", "CrmDeletion", "ForgetOutcome", "ForgetReport",
           "ForgetService", "LinkedRecord"]
