"""Likely duplicate contacts (same normalised email, same E.164 phone, same social username, or reported by a CRM)
and merging two of them with a per-field pick, locally and in each CRM whose API merges."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from crm_desktop.app.field_mapping import local_field_label
from crm_desktop.app.imports import field_values
from crm_desktop.app.record_files import column_label
from crm_desktop.app.sync_service import SyncService
from crm_desktop.domain.models import Contact, Integration, Provider
from crm_desktop.domain.outcomes import RecordObject, RecordOutcome
from crm_desktop.providers.contract import MergesRecords, OutboundRecord
from crm_desktop.providers.errors import NotFoundError as CrmNotFoundError
from crm_desktop.providers.errors import ProviderError, TransientError
from crm_desktop.store.database import Database
from crm_desktop.store.duplicates_store import DuplicateStore, LinkMove, ReportedDuplicate
from crm_desktop.store.models import MERGED_FIELD
from crm_desktop.store.repositories import ContactStore, NotFoundError
from crm_desktop.sync.mapping import CLEARED, record_values, to_crm, typed_custom_audit

logger = logging.getLogger(__name__)

#: The contact fields a merge lets the marketer pick, in the order the merge dialog shows them.
MERGE_FIELDS = ("firstName", "lastName", "company", "phone")
#: Mail providers that ignore dots in an address's local part.
_DOTLESS_DOMAINS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def email_identity(email: str) -> str:
    """An email reduced to the mailbox it reaches: lower case, no ``+tag``, no dots at Gmail."""
    local, at, domain = email.strip().lower().rpartition("@")
    if not at:
        return email.strip().lower()
    local = local.split("+", 1)[0]
    if domain in _DOTLESS_DOMAINS:
        local, domain = local.replace(".", ""), _DOTLESS_DOMAINS[domain]
    return f"{local}@{domain}"


class DuplicateReason(StrEnum):
    """Why contacts look like one person."""

    EMAIL = "same email"
    PHONE = "same phone"
    SOCIAL = "same social username"


@dataclass(frozen=True)
class DuplicateGroup:
    """Contacts that share one identifying value.

    Attributes:
        reason: which value they share.
        shared: the value (the normalised email, the E.164 phone, ``platform: username``).
        contacts: (local id, email) of each, oldest first.
    """

    reason: DuplicateReason
    shared: str
    contacts: tuple[tuple[int, str], ...]


@dataclass
class DuplicateReport:
    """Likely duplicates found locally and those the CRMs reported."""

    groups: list[DuplicateGroup] = field(default_factory=list)
    reported: list[ReportedDuplicate] = field(default_factory=list)


@dataclass(frozen=True)
class FieldChoice:
    """One field of a merge: the kept contact's value and the other's."""

    field: str
    label: str
    keep: str | None
    other: str | None

    @property
    def fills_blank(self) -> bool:
        """Whether the other's value would fill a blank of the kept contact (taken unless the marketer says not)."""
        return self.keep in (None, "") and self.other not in (None, "")


@dataclass(frozen=True)
class CrmMergeStep:
    """What a merge does in one integration.

    Attributes:
        integration: its name.
        provider: its CRM.
        keep_crm_id, other_crm_id: the two contacts' CRM ids (``None`` where not linked).
        action: ``merge`` (the CRM's API merges them), ``by hand`` (the CRM must merge them itself),
            ``move link`` (only the other contact is linked: the kept one takes its link) or ``none``.
    """

    integration: str
    provider: Provider
    keep_crm_id: str | None
    other_crm_id: str | None
    action: str


@dataclass
class MergePlan:
    """A merge before it is done: the fields to pick and what happens in each CRM."""

    keep_id: int
    other_id: int
    keep_email: str
    other_email: str
    fields: list[FieldChoice] = field(default_factory=list)
    crm_steps: list[CrmMergeStep] = field(default_factory=list)


@dataclass
class MergeReport:
    """What a merge did.

    Attributes:
        keep_id: the contact that remains.
        merged_email: the email of the contact folded into it (now deleted locally).
        changed: the kept contact's fields that took the other's value, as files and the command line name them
            (``firstName``, ``twitter_username``).
        changed_labels: the same fields as the marketer knows them ("First name", "Twitter/X username").
        merged_in_crm: sentences, one per CRM that merged the two.
        by_hand: sentences, one per CRM where the two must be merged there (Salesforce, or a refused merge).
    """

    keep_id: int
    merged_email: str
    changed: list[str] = field(default_factory=list)
    changed_labels: list[str] = field(default_factory=list)
    merged_in_crm: list[str] = field(default_factory=list)
    by_hand: list[str] = field(default_factory=list)


class MergeError(ValueError):
    """A merge that cannot start (the same contact twice, a contact gone); nothing was changed."""


class DuplicateService:
    """Finds likely duplicate contacts and merges two of them, locally and in the CRMs.

    A merge plan and a merge run on the sync worker when there is one (the desktop app), like an undo: their store
    calls and CRM requests never hold up the GUI's loop.
    """

    def __init__(self, database: Database, sync: SyncService) -> None:
        self.store = DuplicateStore(database)
        self._contacts = ContactStore(database)
        self._integrations = sync.integrations
        self._actions = sync.actions
        self._sync = sync

    # -- finding -------------------------------------------------------------------------------------------------

    def find(self, limit: int = 1000) -> DuplicateReport:
        """Groups of contacts sharing a normalised email, an E.164 phone or a social username, and the CRMs'
        duplicate refusals; at most ``limit`` groups of each kind."""
        report = DuplicateReport()
        by_identity: dict[str, list[tuple[int, str]]] = {}
        for local_id, email in self.store.emails():
            by_identity.setdefault(email_identity(email), []).append((local_id, email))
        email_groups = [
            DuplicateGroup(DuplicateReason.EMAIL, key, tuple(people))
            for key, people in sorted(by_identity.items()) if len(people) > 1
        ]
        report.groups.extend(email_groups[:limit])
        phones = self.store.shared_phones(limit)
        social = self.store.shared_usernames(limit)
        emails = self.store.contacts_by_id(
            [i for _, ids in phones for i in ids] + [i for _, _, ids in social for i in ids]
        )
        for phone, ids in phones:
            report.groups.append(DuplicateGroup(DuplicateReason.PHONE, phone,
                                                tuple((i, emails[i]) for i in ids if i in emails)))
        for platform, username, ids in social:
            report.groups.append(DuplicateGroup(DuplicateReason.SOCIAL, f"{platform}: {username}",
                                                tuple((i, emails[i]) for i in ids if i in emails)))
        report.reported = self.store.reported_by_crms(limit)
        return report

    # -- merging -------------------------------------------------------------------------------------------------

    def _pair(self, keep_id: int, other_id: int) -> tuple[Contact, Contact]:
        if keep_id == other_id:
            raise MergeError(f"contact {keep_id} cannot be merged with itself")
        emails = self.store.contacts_by_id([keep_id, other_id])
        for local_id in (keep_id, other_id):
            if local_id not in emails:
                raise MergeError(f"contact {local_id} is not in the local store any more")
        keep, other = self._contacts.find(emails[keep_id]), self._contacts.find(emails[other_id])
        if keep is None or other is None:
            raise MergeError("one of the two contacts was deleted meanwhile")
        return keep, other

    def blanks_filled(self, keep_id: int, other_id: int) -> set[str]:
        """The fields the other contact would fill where the kept one is blank: what a merge takes unless told
        otherwise (the dialog's "Take other" ticks, ``contacts merge`` without ``--keep-blank``).

        Raises:
            MergeError: the same contact twice, or one that is gone.
        """
        keep, other = self._pair(keep_id, other_id)
        keep_values, other_values = field_values(keep), field_values(other)
        return {name for name in MERGE_FIELDS
                if FieldChoice(name, name, keep_values.get(name), other_values.get(name)).fills_blank}

    async def plan(self, keep_id: int, other_id: int) -> MergePlan:
        """The fields to pick and each CRM's part, before anything changes.

        Raises:
            MergeError: the same contact twice, or one that is gone.
        """
        return await self._sync.off_loop(self._plan_here(keep_id, other_id))

    async def _plan_here(self, keep_id: int, other_id: int) -> MergePlan:
        keep, other = self._pair(keep_id, other_id)
        plan = MergePlan(keep_id, other_id, keep.email, other.email)
        keep_values, other_values = field_values(keep), field_values(other)
        plan.fields = [FieldChoice(name, local_field_label(RecordObject.CONTACT, name), keep_values.get(name),
                                   other_values.get(name))
                       for name in MERGE_FIELDS]
        links = self.store.links_of([keep_id, other_id])
        for integration in self._integrations.list():
            by_local = links.get(integration.id or -1, {})
            keep_crm, other_crm = by_local.get(keep_id), by_local.get(other_id)
            if keep_crm and other_crm:
                adapter = self._actions.adapter_for(integration)
                try:
                    action = "merge" if isinstance(adapter, MergesRecords) else "by hand"
                finally:
                    await adapter.aclose()
            elif other_crm:
                action = "move link"
            else:
                action = "none"
            plan.crm_steps.append(CrmMergeStep(integration.name, integration.provider, keep_crm, other_crm, action))
        return plan

    async def merge(self, keep_id: int, other_id: int, take_from_other: set[str] | frozenset[str] = frozenset()
                    ) -> MergeReport:
        """Fold contact ``other_id`` into ``keep_id``: first in each CRM whose API merges (HubSpot, Pipedrive),
        then locally in one transaction. The kept contact keeps its own values except the fields named in
        ``take_from_other`` (the merge dialog offers the other's value where the kept one is blank); social
        profiles and custom fields it lacks come from the other. Where a CRM cannot
        merge (Salesforce's REST API has no merge) or refuses, the report says to merge the two there.

        The kept contact's changed fields are audited (source ``merge``) and pushed by the next sync.

        Raises:
            MergeError: the same contact twice, a contact gone, or an unknown field to take.
        """
        unknown = set(take_from_other) - set(MERGE_FIELDS)
        if unknown:
            raise MergeError(f"cannot take {', '.join(sorted(unknown))} from the other contact: "
                             f"the fields are {', '.join(MERGE_FIELDS)}")
        return await self._sync.off_loop(self._merge_here(keep_id, other_id, take_from_other))

    async def _merge_here(self, keep_id: int, other_id: int, take_from_other: set[str] | frozenset[str]
                          ) -> MergeReport:
        plan = await self._plan_here(keep_id, other_id)
        keep, other = self._pair(keep_id, other_id)
        report = MergeReport(keep_id, other.email)
        merged = _merged_contact(keep, other, take_from_other)
        moves: list[LinkMove] = []
        for step in plan.crm_steps:
            integration = self._integrations.get(step.integration)
            assert integration.id is not None
            if step.action == "move link":
                moves.append(LinkMove(integration.id, step.other_crm_id))
            elif step.action == "by hand":
                moves.append(LinkMove(integration.id, step.keep_crm_id))
                report.by_hand.append(
                    f"{step.integration}: merge {_record_word(step.provider)} {step.other_crm_id} into "
                    f"{step.keep_crm_id} in {step.provider.label} itself (its REST API has no merge); "
                    f"until then its pulls skip {other.email}, listed in their run as merged here"
                )
            elif step.action == "merge":
                survivor, take_over = await self._merge_in_crm(step, report, other.email, merged)
                moves.append(LinkMove(integration.id, survivor, take_over=take_over))
        after = field_values(merged)
        before = field_values(keep)
        audit: list[dict[str, Any]] = typed_custom_audit([
            {"entity": RecordObject.CONTACT.value, "entity_id": str(keep_id), "field": name, "old_value": old,
             "new_value": after.get(name), "source": "merge"}
            for name, old in {**before, **{k: None for k in after if k not in before}}.items()
            if old != after.get(name)
        ], keep, merged)
        report.changed = [column_label(row["field"]) for row in audit]
        report.changed_labels = [local_field_label(RecordObject.CONTACT, row["field"]) for row in audit]
        audit.append({"entity": RecordObject.CONTACT.value, "entity_id": str(keep_id), "field": MERGED_FIELD,
                      "old_value": other.email, "new_value": keep.email, "source": "merge"})
        self._contacts.save(merged)
        self.store.finish_merge(keep_id, other_id, moves, audit)
        # The merged contact's social activity is the kept one's now: its stored score follows.
        self._sync.social.rescore({keep.email})
        return report

    async def _merge_in_crm(self, step: CrmMergeStep, report: MergeReport, other_email: str, merged: Contact
                            ) -> tuple[str, bool]:
        """Merge in one CRM, then give the surviving record the fields as picked; the CRM id the kept contact is
        linked to afterwards, and whether it takes over the other's record (its own is gone from the CRM)."""
        assert step.keep_crm_id is not None and step.other_crm_id is not None
        integration = self._integrations.get(step.integration)
        adapter = await self._actions.checked_adapter(integration)
        try:
            assert isinstance(adapter, MergesRecords)
            try:
                result = await adapter.merge_records(RecordObject.CONTACT, step.keep_crm_id, step.other_crm_id,
                                                     merge_email=other_email)
            except ProviderError as exc:
                if isinstance(exc, CrmNotFoundError) and await self._gone(adapter, step.keep_crm_id) \
                        and not await self._gone(adapter, step.other_crm_id):
                    # The kept contact's record was deleted in the CRM: there is nothing to merge into, and the
                    # other's record is the person's record there now; the next sync gives it the kept values.
                    report.merged_in_crm.append(
                        f"{step.integration}: {_record_word(step.provider)} {step.keep_crm_id} is gone from "
                        f"{step.provider.label}; {merged.email} takes over "
                        f"{_record_word(step.provider)} {step.other_crm_id} (the next sync updates it)")
                    return step.other_crm_id, True
                logger.warning("%s refused merging %s into %s: %s", step.integration, step.other_crm_id,
                               step.keep_crm_id, exc)
                # A lost answer (both records still there after the retry) is no refusal: the merge may go through
                # when tried again.
                what = "could not be confirmed" if isinstance(exc, TransientError) else "was refused"
                report.by_hand.append(
                    f"{step.integration}: the merge {what} ({exc}); merge {_record_word(step.provider)} "
                    f"{step.other_crm_id} into {step.keep_crm_id} there; until then its pulls skip {other_email}"
                )
                return step.keep_crm_id, False
            if result.already_merged:
                report.merged_in_crm.append(
                    f"{step.integration}: {_record_word(step.provider)} {step.other_crm_id} was already merged into "
                    f"{result.surviving_id} (an earlier merge whose answer was lost)"
                )
            else:
                report.merged_in_crm.append(
                    f"{step.integration}: {_record_word(step.provider)} {step.other_crm_id} merged into "
                    f"{result.surviving_id}"
                )
            # The CRM's merge fills the survivor's blanks from the other record (HubSpot, Pipedrive): a field the
            # marketer kept blank, or took from either, is written as picked, or the next sync would pull the
            # CRM's choice back over it.
            picked = self._picked_fields(integration, merged)
            if picked:
                [written] = await adapter.upsert(RecordObject.CONTACT, [
                    OutboundRecord(merged.email, picked, crm_id=result.surviving_id)])
                if written.outcome is RecordOutcome.FAILED:
                    report.by_hand.append(
                        f"{step.integration}: the merged {_record_word(step.provider)} {result.surviving_id} kept "
                        f"the CRM's merged values ({written.message}); set them there as picked here")
            return result.surviving_id, False
        finally:
            await adapter.aclose()

    @staticmethod
    async def _gone(adapter: Any, crm_id: str) -> bool:
        """Whether the CRM no longer has this contact (a failed look says it is there)."""
        try:
            return await adapter.get_record(RecordObject.CONTACT, crm_id=crm_id) is None
        except ProviderError:
            return False

    def _picked_fields(self, integration: Integration, merged: Contact) -> dict[str, Any]:
        """The merge dialog's fields as the integration's mappings send them, a blank as a clear."""
        values = record_values(merged)
        return {mapping.crm_field: CLEARED if (wire := to_crm(mapping, values.get(mapping.local_field))) is None
                else wire
                for mapping in self._sync.mappings(integration, RecordObject.CONTACT)
                if mapping.pushes and mapping.local_field in MERGE_FIELDS}


def _record_word(provider: Provider) -> str:
    return {Provider.PIPEDRIVE: "person", Provider.HUBSPOT: "contact", Provider.SALESFORCE: "Contact"}[provider]


def _merged_contact(keep: Contact, other: Contact, take_from_other: set[str] | frozenset[str]) -> Contact:
    """The kept contact with the picked fields of the other, and the other's profiles and custom fields it lacks."""
    attributes = {"firstName": "first_name", "lastName": "last_name", "company": "company", "phone": "phone"}
    changes: dict[str, Any] = {attributes[name]: getattr(other, attributes[name]) for name in take_from_other}
    platforms = {profile.platform for profile in keep.social_profiles}
    changes["social_profiles"] = [*keep.social_profiles,
                                  *(p for p in other.social_profiles if p.platform not in platforms)]
    changes["custom_fields"] = {**other.custom_fields, **keep.custom_fields}
    return keep.model_copy(update=changes)


__all__ = [
    "MERGED_FIELD", "MERGE_FIELDS", "CrmMergeStep", "DuplicateGroup", "DuplicateReason", "DuplicateReport",
    "DuplicateService", "FieldChoice", "MergeError", "MergePlan", "MergeReport", "NotFoundError", "email_identity",
]
