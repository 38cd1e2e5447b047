"""One rule for a file's other columns on every CRM: sent to a CRM field of that name, else kept locally and listed.

A column that is not a contact or lead field is a custom field of the record. At a push it goes to the CRM field
whose wire name or label it matches (case-insensitive; ``name__c`` on Salesforce); without one it is not sent
(never into a note, never failing the record) and the push report lists it as "not sent: no CRM field". Leads take
the social columns contacts take, sent to the lead's social fields where the CRM has them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from crm_desktop.domain.models import Contact, Lead, Provider
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.providers.contract import CrmField, OutboundRecord
from crm_desktop.sync.mapping import contact_values
from crm_desktop.sync.social_fields import FieldKind, social_fields

#: What the push report says of an other column the CRM has no field for.
NOT_SENT = "not sent: no CRM field"
#: How to get such a column sent.
NOT_SENT_HINT = (
    "create a CRM field with the column's name as its API name or label (on Salesforce NAME__c; HubSpot and "
    "Pipedrive: a contact property / person field), then push again: the column goes to it (the seed's social "
    "fields: crm-desktop fields ensure NAME)"
)


@dataclass(frozen=True)
class CrmFieldNames:
    """The fields a CRM object has, found by wire name or label, case-insensitive."""

    by_name: dict[str, str]

    @classmethod
    def of(cls, fields: Sequence[CrmField]) -> CrmFieldNames:
        by_name: dict[str, str] = {}
        for crm_field in fields:
            if crm_field.writable:
                by_name.setdefault(crm_field.name.casefold(), crm_field.name)
        for crm_field in fields:
            if crm_field.writable and crm_field.custom:
                by_name.setdefault(crm_field.label.casefold(), crm_field.name)
        return cls(by_name)

    def find(self, column: str) -> str | None:
        """The wire name of the CRM field a column goes to, if there is one."""
        key = column.strip().casefold()
        return self.by_name.get(key) or self.by_name.get(f"{key}__c")

    def has(self, wire_name: str) -> bool:
        return wire_name.casefold() in self.by_name


def _without_custom(record: Contact | Lead) -> Any:
    return record.model_copy(update={"custom_fields": {}})


def seed_profile_fields(contact: Contact, provider: Provider | None, crm_fields: CrmFieldNames) -> dict[str, Any]:
    """The seed's per-network social fields of a contact (``twitter_followers``, ``instagram_url``...) the CRM has.

    The CRM's default record carries a network's username and the total followers; the default field mapping a
    sync uses also fills each network's followers, URL and username fields. A file's push fills them too, where the
    CRM has them (Pipedrive's are found by label, so its default record and note handle them).
    """
    if provider is None or provider is Provider.PIPEDRIVE:
        return {}
    values = contact_values(contact)
    found: dict[str, Any] = {}
    for seed in social_fields(provider, RecordObject.CONTACT):
        value = values.get(seed.local_field)
        if value is None or not crm_fields.has(seed.name):
            continue
        found[seed.name] = int(float(value)) if seed.kind is FieldKind.COUNT else value
    return found


def outbound_record(
    record: Contact | Lead,
    build: Callable[[Any], OutboundRecord],
    crm_fields: CrmFieldNames,
    build_contact: Callable[[Contact], OutboundRecord] | None = None,
    provider: Provider | None = None,
) -> tuple[OutboundRecord, list[str]]:
    """The record to push, and the other columns not sent because the CRM has no field for them.

    Args:
        build: the CRM's default mapping of the record (``default_contact_record`` or ``default_lead_record``).
        build_contact: for a lead, the CRM's contact mapping, whose social fields the lead takes.
        provider: the CRM, whose seed per-network social fields a contact's profiles fill where it has them.
    """
    base = build(_without_custom(record))
    fields = dict(base.fields)
    if isinstance(record, Contact):
        fields.update({k: v for k, v in seed_profile_fields(record, provider, crm_fields).items() if k not in fields})
    note = base.note
    if isinstance(record, Lead) and build_contact is not None and record.social_profiles:
        social = build_contact(Contact.model_construct(
            email=record.email, first_name=None, last_name=None, company=None, phone=None,
            social_profiles=list(record.social_profiles), custom_fields={},
        ))
        bare = build_contact(Contact.model_construct(
            email=record.email, first_name=None, last_name=None, company=None, phone=None, social_profiles=[],
            custom_fields={},
        ))
        fields.update({k: v for k, v in social.fields.items()
                       if k not in bare.fields and k not in fields and crm_fields.has(k)})
        if social.note:
            note = f"{note}\n{social.note}" if note else social.note
    not_sent: list[str] = []
    for name, value in record.custom_fields.items():
        if value is None:
            continue
        # What the CRM's own mapping makes of this one column (HubSpot's lifecycle stage, a Salesforce __c name).
        derived = build(record.model_copy(update={"custom_fields": {name: value}})).fields
        added = {k: v for k, v in derived.items() if k not in base.fields and crm_fields.has(k)}
        if not added:
            target = crm_fields.find(name)
            if target is not None:
                added = {target: value}
        if added:
            fields.update(added)
        else:
            not_sent.append(name)
    return replace(base, fields=fields, note=note), not_sent
