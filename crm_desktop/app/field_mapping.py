"""What the Field Mapping panel needs besides saving: the CRM's live fields, checks as you edit, one real record
mapped as a preview, the defaults, and creating the seed's social fields in the CRM."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crm_desktop.app.field_setup import EnsureReport, FieldSetupService
from crm_desktop.app.sync_service import SyncService
from crm_desktop.domain.models import Contact, Integration, Lead, Provider
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.providers import hubspot_records, pipedrive_fields, salesforce_writes
from crm_desktop.providers.contract import CrmField
from crm_desktop.providers.toolkit import as_instant
from crm_desktop.sync.extras import computed_values
from crm_desktop.sync.mapping import (
    FieldMapping,
    LocalField,
    MappingProblem,
    default_mappings,
    local_fields,
    record_values,
    to_crm,
    validate_mappings,
    with_crm_lengths,
)
from crm_desktop.sync.social_fields import social_field_names

logger = logging.getLogger(__name__)

__all__ = ["CrmField", "EnsureReport", "FieldMappingService", "LocalField", "PreviewLine", "find_crm_field"]

#: How many records the preview offers to choose from.
PREVIEW_CHOICES = 25


@dataclass(frozen=True)
class PreviewLine:
    """One mapped field of the previewed record: its local value and what a push would write to the CRM.

    Attributes:
        local_field: the local field's wire name.
        local_label: its name for the marketer.
        local_value: the local value (canonical text; ``None`` for blank).
        crm_label: the CRM field's label (its wire name when the CRM does not list it).
        crm_value: the value a push sends, as the CRM receives it: transforms and value maps applied, then put in
            the CRM field's type by the adapter (``True``, ``42``, ``2026-12-03T09:00:00.000Z``; ``None``: nothing
            is sent, or the value is refused).
        pushed: whether the mapping's direction sends this field at all.
        refused: why the CRM field cannot take the value (``'tomorrow' is not a date and time (...)``): a push
            fails this record, unsent; ``None`` when it can.
        sent: the CRM value as the marketer reads it (``not sent: <reason>`` for a refused one; a date-time with
            the desktop's local time beside it).
    """

    local_field: str
    local_label: str
    local_value: str | None
    crm_label: str
    crm_value: Any
    pushed: bool
    refused: str | None = None
    sent: str = ""


#: Each CRM's answer to "this value in this CRM field: what goes on the wire" (raising ``ValueError`` with the
#: reason a push refuses it), the adapters' own conversion.
_WIRE_VALUES: dict[Provider, Callable[[CrmField, Any], Any]] = {
    Provider.SALESFORCE: salesforce_writes.field_wire_value,
    Provider.HUBSPOT: hubspot_records.field_wire_value,
    Provider.PIPEDRIVE: pipedrive_fields.field_wire_value,
}

_NOT_PUSHED = "not sent (pull only or off)"
_BLANK = "— (blank: nothing is sent)"
_NOT_CREATED = "not sent: the CRM has no such field yet (Create missing fields makes it)"


def _with_local_time(sent: str) -> str:
    """A date-time sent in UTC with the desktop's local time beside it: ``2026-12-03T09:00:00.000Z (10:00 your
    time)``, the local date too when it is another day; other text as it is."""
    moment = as_instant(sent)
    if moment is None:
        return sent
    local = moment.astimezone()
    shown = f"{local:%H:%M:%S}" if local.second else f"{local:%H:%M}"
    if local.date() != moment.date():
        shown = f"{local:%Y-%m-%d} {shown}"
    return f"{sent} ({shown} your time)"


def sent_text(crm_field: CrmField | None, value: Any) -> str:
    """A value as a push sends it, as the preview shows it: JSON's ``true``, ``false`` and numbers, a list's items
    joined by commas, a date-time field's instant with the local time beside it (see :func:`_with_local_time`)."""
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    text = str(value)
    if crm_field is not None and crm_field.type == "datetime":
        return _with_local_time(text)
    return text


#: A social profile's parts in words, for those with no local field of their own.
_PROFILE_PART_WORDS = {"username": "username", "url": "profile URL", "followers": "followers",
                       "engagement": "engagement"}


def local_field_label(obj: RecordObject, name: str) -> str:
    """A local field as the marketer knows it (``firstName``: "First name"; ``custom.segment``: "segment (custom
    field)"; a file's ``social.twitter.username``: "Twitter/X username"); a name the app does not know is shown as
    it is."""
    known = local_fields(obj).get(name)
    if known is not None:
        return known.label
    if name.startswith("custom."):
        return f"{name.removeprefix('custom.')} (custom field)"
    if name.startswith("social.") and name.count(".") == 2:
        _, platform, part = name.split(".")
        profile_fields = local_fields(RecordObject.CONTACT)
        own = profile_fields.get(f"{platform}{part.capitalize()}")
        if own is not None:
            return own.label
        # The network as its username field names it ("YouTube channel": YouTube).
        username = profile_fields.get(f"{platform}Username")
        network = username.label.rsplit(" ", 1)[0] if username is not None else platform.capitalize()
        return f"{network} {_PROFILE_PART_WORDS.get(part, part)}"
    return name


def find_crm_field(crm_fields: list[CrmField], name: str) -> CrmField | None:
    """The CRM field a mapping names: by wire name (any case), else a custom field by its label (Pipedrive's
    custom fields are mapped by name; their 40-hex keys are never shown)."""
    key = name.casefold()
    found = next((f for f in crm_fields if f.name.casefold() == key), None)
    return found or next((f for f in crm_fields if f.custom and f.label.casefold() == key), None)


class FieldMappingService:
    """The Field Mapping panel's services on top of the sync service's saved mappings.

    Attributes:
        sync: saved mappings, integrations, local records and the adapters.
        field_setup: creates the seed's social fields a CRM lacks (``crm-desktop fields ensure``).
    """

    def __init__(self, sync: SyncService, field_setup: FieldSetupService | None = None) -> None:
        self.sync = sync
        self.field_setup = field_setup if field_setup is not None else FieldSetupService(sync.actions)

    async def crm_fields(self, name: str, obj: RecordObject) -> list[CrmField]:
        """The CRM's live fields of contacts or leads, by label."""
        fields = await self.sync.crm_field_list(name, obj)
        return sorted(fields, key=lambda f: (f.label.casefold(), f.name))

    @staticmethod
    def local_fields(obj: RecordObject) -> dict[str, LocalField]:
        """The local fields of contacts or leads."""
        return local_fields(obj)

    @staticmethod
    def defaults(integration: Integration, obj: RecordObject) -> list[FieldMapping]:
        """The CRM's default mapping (the seed's social fields included)."""
        return default_mappings(integration.provider, obj)

    @staticmethod
    def mapped_name(integration: Integration, crm_field: CrmField) -> str:
        """What a mapping stores for a chosen CRM field: its wire name, or a Pipedrive custom field's name."""
        if integration.provider is Provider.PIPEDRIVE and crm_field.custom:
            return crm_field.label
        return crm_field.name

    @staticmethod
    def problems(integration: Integration, obj: RecordObject, mappings: list[FieldMapping],
                 crm_fields: list[CrmField]) -> list[MappingProblem]:
        """What is wrong with (possibly unsaved) mappings against the CRM's fields: missing, read-only, wrong type."""
        return validate_mappings(obj, mappings, crm_fields, integration.provider)

    def preview_choices(self, integration: Integration, obj: RecordObject) -> list[str]:
        """Emails of records to preview: those the next push sends first, else (contacts) the first by email."""
        assert integration.id is not None
        store = self.sync.store
        ids = store.changed_local_ids(integration.id, obj, 0, PREVIEW_CHOICES)
        emails = [local.record.email for local in store.local_records(obj, ids).values()]
        if not emails and obj is RecordObject.CONTACT:
            emails = [contact.email for contact in self.sync.contacts.page(0, PREVIEW_CHOICES)]
        return emails

    def preview(self, integration: Integration, obj: RecordObject, email: str, mappings: list[FieldMapping],
                crm_fields: list[CrmField]) -> list[PreviewLine]:
        """One record as the mappings would write it to the CRM, field by field (``[]`` for an unknown email): each
        value as the CRM receives it, in its field's type, or refused with the reason a push would fail the record
        for."""
        record: Contact | Lead | None = (
            self.sync.contacts.find(email) if obj is RecordObject.CONTACT else self.sync.leads.find(email)
        )
        if record is None:
            return []
        # What the push sends: the record's own values and those worked out beside it (engagement summary, score).
        values = {**record_values(record),
                  **computed_values(self.sync.engagement, obj, [record]).get(record.email, {})}
        wire_value = _WIRE_VALUES[integration.provider]
        seed = social_field_names(integration.provider, obj)
        lines = []
        for mapping in with_crm_lengths(mappings, crm_fields):
            crm_field = find_crm_field(crm_fields, mapping.crm_field)
            local = values.get(mapping.local_field)
            crm_value: Any = None
            refused: str | None = None
            if not mapping.pushes:
                sent = _NOT_PUSHED
            else:
                crm_value = to_crm(mapping, local)
                left_out = False
                if crm_value is not None and crm_field is None and crm_fields:
                    if mapping.crm_field.casefold() in seed:
                        # The push leaves a seed social field the CRM lacks out (the record still goes).
                        crm_value, left_out = None, True
                    else:
                        # A field mapped by hand is sent all the same, and the CRM fails the record for it.
                        crm_value, refused = None, f"{integration.provider.label} has no such field"
                elif crm_value is not None and crm_field is not None and not crm_field.writable:
                    # Salesforce (INVALID_FIELD_FOR_INSERT_UPDATE) and HubSpot (READ_ONLY_VALUE) fail the record.
                    crm_value, refused = None, f"is read-only in {integration.provider.label} (map it pull only)"
                elif crm_value is not None and crm_field is not None:
                    try:
                        crm_value = wire_value(crm_field, crm_value)
                    except ValueError as exc:
                        crm_value, refused = None, str(exc)
                if refused is not None:
                    sent = f"not sent: {refused}"
                elif left_out:
                    sent = _NOT_CREATED
                else:
                    sent = _BLANK if crm_value is None else sent_text(crm_field, crm_value)
            lines.append(PreviewLine(
                mapping.local_field, local_field_label(obj, mapping.local_field), local,
                crm_field.label if crm_field else mapping.crm_field, crm_value, mapping.pushes, refused, sent,
            ))
        return lines

    async def create_missing_fields(self, name: str) -> EnsureReport:
        """Create the seed's social fields the CRM lacks (the same as ``crm-desktop fields ensure NAME``)."""
        return await self.field_setup.ensure_social_fields(name)
