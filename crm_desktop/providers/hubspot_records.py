"""HubSpot's record shapes: the properties the app reads and writes, the default mappings, wire values, and
records, fields and associations as HubSpot's answers hold them."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from crm_desktop.domain.models import Contact, Lead, LeadStatus, platform_name
from crm_desktop.domain.wording import plural
from crm_desktop.providers import errors
from crm_desktop.providers.contract import CrmField, CrmRecord, OutboundRecord, not_an_option
from crm_desktop.providers.toolkit import (
    email_key,
    parse_crm_time,
    read_date,
    read_date_time,
    read_yes_no,
    social_context_values,
    social_profile_values,
    utc_millis,
)

#: HubSpot-defined association types used here.
LEAD_TO_PRIMARY_CONTACT = 578
NOTE_TO_CONTACT = 202

CONTACT_PROPERTIES = (
    "email",
    "firstname",
    "lastname",
    "company",
    "phone",
    "jobtitle",
    "website",
    "lifecyclestage",
    "hs_lead_status",
    "twitter_username",
    "instagram_username",
    "linkedin_url",
    "social_followers",
    "social_engagement_score",
    "social_sentiment",
    "createdate",
    "lastmodifieddate",
    "hs_object_id",
)
LEAD_PROPERTIES = (
    "hs_lead_name",
    "hs_lead_type",
    "hs_lead_label",
    "hs_pipeline",
    "hs_pipeline_stage",
    "hs_createdate",
    "hs_lastmodifieddate",
    "hs_object_id",
)
#: Lead-object properties of the default lead mapping; dropped when the account has no leads object.
LEAD_OBJECT_FIELDS = frozenset({"hs_lead_name", "hs_lead_type", "hs_lead_label", "hs_pipeline", "hs_pipeline_stage"})
LIFECYCLE_STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
#: The app's lead status as HubSpot's contact ``hs_lead_status``, lifecycle stage and lead pipeline stage.
LEAD_STATUS_VALUES: dict[LeadStatus, str] = {
    LeadStatus.NEW: "NEW",
    LeadStatus.CONTACTED: "ATTEMPTED_TO_CONTACT",
    LeadStatus.QUALIFIED: "OPEN_DEAL",
    LeadStatus.UNQUALIFIED: "UNQUALIFIED",
    LeadStatus.CONVERTED: "CONNECTED",
}
LEAD_LIFECYCLE_STAGES: dict[LeadStatus, str] = {
    LeadStatus.NEW: "lead",
    LeadStatus.CONTACTED: "lead",
    LeadStatus.QUALIFIED: "salesqualifiedlead",
    LeadStatus.UNQUALIFIED: "lead",
    LeadStatus.CONVERTED: "opportunity",
}
LEAD_PIPELINE_STAGES: dict[LeadStatus, str] = {
    LeadStatus.NEW: "new-stage-id",
    LeadStatus.CONTACTED: "attempting-stage-id",
    LeadStatus.QUALIFIED: "qualified-stage-id",
    LeadStatus.UNQUALIFIED: "unqualified-stage-id",
    LeadStatus.CONVERTED: "connected-stage-id",
}
#: The app's field types as HubSpot's property ``type`` and ``fieldType``.
PROPERTY_TYPES: dict[str, tuple[str, str]] = {
    "string": ("string", "text"),
    "text": ("string", "text"),
    "textarea": ("string", "textarea"),
    "url": ("string", "text"),
    "number": ("number", "number"),
    "integer": ("number", "number"),
    "float": ("number", "number"),
    "bool": ("bool", "booleancheckbox"),
    "boolean": ("bool", "booleancheckbox"),
    "date": ("date", "date"),
    "datetime": ("datetime", "date"),
    "phone": ("phone_number", "phonenumber"),
    "phone_number": ("phone_number", "phonenumber"),
    "enumeration": ("enumeration", "select"),
    "select": ("enumeration", "select"),
}

_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
#: HubSpot's limit on a note's body.
NOTE_BODY_LIMIT = 65_536


def property_body(name: str, label: str, field_type: str) -> dict[str, Any]:
    """A new property as ``POST /crm/v3/properties/<object>`` takes it, before its group is chosen; ``field_type``
    is one of :data:`PROPERTY_TYPES`, an enumeration's options listed after a colon (``enumeration:a,b``).

    Raises:
        RequestRejectedError: for an unknown type, or an enumeration without options.
    """
    kind, _, option_text = field_type.partition(":")
    if kind.strip().lower() not in PROPERTY_TYPES:
        raise errors.RequestRejectedError(
            f"HubSpot: cannot create {name}: unknown field type {kind!r} (use one of {', '.join(PROPERTY_TYPES)})"
        )
    type_, field_kind = PROPERTY_TYPES[kind.strip().lower()]
    body: dict[str, Any] = {"name": name, "label": label, "type": type_, "fieldType": field_kind}
    if type_ == "enumeration":
        options = [part.strip() for part in option_text.split(",") if part.strip()]
        if not options:
            raise errors.RequestRejectedError(f"HubSpot: cannot create {name}: an enumeration needs its options")
        body["options"] = [
            {"label": option, "value": option, "displayOrder": order} for order, option in enumerate(options)
        ]
    return body


def hubspot_email_key(value: Any) -> str:
    """The dedupe key of an email, ``''`` for text with no ``@``: HubSpot looks contacts up by email only."""
    key = email_key(value)
    return key if "@" in key else ""


#: HubSpot property types whose values the adapter puts in their wire form (and checks) before sending.
KIND_TYPES = frozenset({"bool", "date", "datetime"})


def wire_value(value: Any, *, kind: str | None = None) -> Any:
    """A field value as HubSpot takes it (booleans and date-times as text), in the form its property's ``kind``
    (``bool``, ``date`` or ``datetime`` property; ``None``: any other, or not known) takes.

    A ``bool`` property takes only ``true`` or ``false``: yes/no text from a file (``"Yes"``, ``"1"``) is written
    so; other text is left for HubSpot to refuse, naming the record. A ``datetime`` property takes an ISO date and
    time, sent in UTC (``2026-12-03T09:00:00.000Z``; one without a zone is the desktop's local time, as on
    Salesforce, where HubSpot would read it as UTC; a date alone is local midnight); a ``date`` property an ISO
    date. Blank text clears the property.

    Raises:
        ValueError: a value a date or date-time property cannot take (``'tomorrow' is not a date and time
            (YYYY-MM-DD hh:mm, a zone optional)``, ``'05/12/2026' is not a date (YYYY-MM-DD)``).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind in ("date", "datetime") and not (isinstance(value, str) and not value.strip()):
        return read_date(value) if kind == "date" else utc_millis(read_date_time(value))
    if isinstance(value, datetime):
        return utc_millis(value)
    if kind == "bool" and isinstance(value, str) and value.strip():
        with contextlib.suppress(ValueError):
            return "true" if read_yes_no(value) else "false"
    return value


def field_wire_value(crm_field: CrmField, value: Any) -> Any:
    """What a push sends for ``value`` in the property ``crm_field`` (see :func:`wire_value`; ``None``: nothing, the
    property is left as it is).

    Raises:
        ValueError: the property cannot take the value (``'tomorrow' is not a date and time (...)``); a push fails
            the record, unsent.
    """
    if value is None:
        return None
    wired = wire_value(value, kind=crm_field.type if crm_field.type in KIND_TYPES else None)
    if crm_field.restricted and isinstance(wired, str) and wired.strip() and wired not in crm_field.options:
        # An enumeration takes one of its options' values (INVALID_OPTION); a multiple-checkbox one several,
        # joined by ";".
        for choice in (part for part in wired.split(";") if part):
            if choice not in crm_field.options:
                raise ValueError(not_an_option(choice, crm_field.options))
    return wired


def wire_properties(
    fields: dict[str, Any], *, drop: Iterable[str] = (), kinds: Mapping[str, tuple[str, str]] | None = None
) -> dict[str, Any]:
    """Field values to send; ``None`` means "leave as is" and is not sent (send ``""`` to clear). ``kinds`` are the
    type and label of the ``bool``, ``date`` and ``datetime`` properties, by name, where known (see
    :func:`property_kinds` and :func:`wire_value`).

    Raises:
        ValueError: values their properties cannot take, each named by its property's label
            (``Meeting: 'tomorrow' is not a date and time (...)``; several joined by ``;``): the record is not to be
            sent.
    """
    dropped = set(drop)
    kinds = kinds or {}
    wired: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in fields.items():
        if value is None or name in dropped:
            continue
        kind, label = kinds.get(name, (None, name))
        try:
            wired[name] = wire_value(value, kind=kind)
        except ValueError as exc:
            problems.append(f"{label}: {exc}")
    if problems:
        raise ValueError("; ".join(problems))
    return wired


def property_kinds(fields: Iterable[CrmField] | None) -> dict[str, tuple[str, str]]:
    """The type (``bool``, ``date``, ``datetime``) and label of each property among ``fields`` whose values go in
    their own wire form, by name (none when the property list is not at hand)."""
    return {f.name: (f.type, f.label) for f in fields or () if f.type in KIND_TYPES}


def _social_note(lines: list[str]) -> str | None:
    return "\n".join(lines) if lines else None


def default_contact_record(contact: Contact) -> OutboundRecord:
    """The default mapping of a contact to HubSpot contact properties, social fields included.

    Profiles on networks without a property (and extra profiles on one network) go to the note. A custom field
    named ``lifecycle``/``lifecyclestage`` with a HubSpot stage sets ``lifecyclestage``; other custom fields are
    sent under their own name when it is a valid HubSpot property name.
    """
    fields: dict[str, Any] = {
        "firstname": contact.first_name,
        "lastname": contact.last_name,
        "company": contact.company,
        "phone": contact.phone,
    }
    social, profiles = social_profile_values(contact.social_profiles, str)
    fields.update(social)
    unmapped = [
        f"{platform_name(p.platform)}: @{p.username} ({plural(p.followers, 'follower')}{f', {p.url}' if p.url else ''})"
        for p in profiles
    ]
    for name, value in contact.custom_fields.items():
        if value is None:
            continue
        if name.lower() in ("lifecycle", "lifecyclestage", "lifecycle_stage"):
            stage = str(value).strip().lower().replace(" ", "")
            if stage in LIFECYCLE_STAGES:
                fields["lifecyclestage"] = stage
            continue
        if _PROPERTY_NAME.match(name):
            fields[name] = value
    note = _social_note(["Social profiles without a HubSpot property:", *unmapped] if unmapped else [])
    return OutboundRecord(email=contact.email, fields={k: v for k, v in fields.items() if v is not None}, note=note)


def default_lead_record(lead: Lead) -> OutboundRecord:
    """The default mapping of a lead: contact properties (status, lifecycle, social) and lead-object properties."""
    name = " ".join(part for part in (lead.first_name, lead.last_name) if part) or lead.email
    fields: dict[str, Any] = {
        "firstname": lead.first_name,
        "lastname": lead.last_name,
        "company": lead.company,
        "hs_lead_status": LEAD_STATUS_VALUES[lead.status],
        "lifecyclestage": LEAD_LIFECYCLE_STAGES[lead.status],
        "hs_lead_name": name,
        "hs_pipeline_stage": LEAD_PIPELINE_STAGES[lead.status],
    }
    lines: list[str] = []
    if lead.source:
        lines.append(f"Lead source: {lead.source}")
    context = lead.social_context
    fields.update(social_context_values(context, sentiment="social_sentiment", engagement="social_engagement_score"))
    if context is not None:
        if context.conversation_id:
            lines.append(f"Conversation on {platform_name(context.platform)}: {context.conversation_id}")
        elif not lead.source:
            lines.append(f"Came from {platform_name(context.platform)}")
    return OutboundRecord(
        email=lead.email, fields={k: v for k, v in fields.items() if v is not None}, note=_social_note(lines)
    )


def id_order(record_id: str) -> tuple[int, str]:
    """Record ids in HubSpot's creation order (numeric ids by value): the newest is the largest."""
    return (int(record_id), record_id) if record_id.isdigit() else (-1, record_id)


def crm_field(item: dict[str, Any]) -> CrmField:
    """A property as HubSpot lists it, as a CRM field (read-only when HubSpot computes or locks its value)."""
    meta: dict[str, Any] = item["modificationMetadata"] if isinstance(item.get("modificationMetadata"), dict) else {}
    read_only = bool(meta.get("readOnlyValue")) or bool(item.get("calculated"))
    return CrmField(
        name=str(item.get("name", "")),
        label=str(item.get("label") or item.get("name", "")),
        type=str(item.get("type", "string")),
        custom=not item.get("hubspotDefined", False),
        writable=not read_only,
        options=tuple(str(o.get("value")) for o in item.get("options") or [] if isinstance(o, dict)),
        restricted=item.get("type") == "enumeration" and bool(item.get("options")),
    )


def contact_record(item: dict[str, Any]) -> CrmRecord:
    """A contact as HubSpot answers it, keyed by its email."""
    properties = dict(item.get("properties") or {})
    email = hubspot_email_key(properties.get("email"))
    modified = parse_crm_time(properties.get("lastmodifieddate") or item.get("updatedAt"))
    return CrmRecord(crm_id=str(item.get("id")), email=email, fields=properties, modified_at=modified)


def lead_record(item: dict[str, Any], contact: CrmRecord | None) -> CrmRecord:
    """A lead object with its contact's properties and email under its own (the lead's win on a clash)."""
    properties = dict(item.get("properties") or {})
    modified = parse_crm_time(properties.get("hs_lastmodifieddate") or item.get("updatedAt"))
    if contact is not None and contact.modified_at is not None and (modified is None or contact.modified_at > modified):
        modified = contact.modified_at  # most lead fields live on the contact: its change is the lead's change
    fields = {**(contact.fields if contact else {}), **properties}
    return CrmRecord(
        crm_id=str(item.get("id")), email=contact.email if contact else "", fields=fields, modified_at=modified
    )


def association_ids(item: dict[str, Any], to_object: str) -> list[str]:
    """The ids a v3 record's ``associations`` lists for ``to_object``, each once."""
    associations: dict[str, Any] = item["associations"] if isinstance(item.get("associations"), dict) else {}
    if not associations:
        return []
    linked = associations.get(to_object)
    if linked is None:
        linked = next((value for key, value in associations.items() if key.startswith(to_object.rstrip("s"))), None)
    results = linked.get("results") if isinstance(linked, dict) else None
    return list(dict.fromkeys(str(r.get("id")) for r in results or [] if isinstance(r, dict) and r.get("id")))


def note_html(text: str) -> str:
    """A plain-text note as the HTML HubSpot shows (escaped, line breaks kept)."""
    return "<p>" + html.escape(text).replace("\n", "<br>") + "</p>"


def association_to(record_id: str, type_id: int) -> dict[str, Any]:
    """An association of a record being written to ``record_id``, of a HubSpot-defined type."""
    types = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]
    return {"to": {"id": record_id}, "types": types}


def note_input(contact_id: str, body_html: str, stamp: str) -> dict[str, Any]:
    """A note to create on a contact: its HTML body, its time (``hs_timestamp``) and its association."""
    return {
        "properties": {"hs_note_body": body_html, "hs_timestamp": stamp},
        "associations": [association_to(contact_id, NOTE_TO_CONTACT)],
    }


def note_key(note: dict[str, Any]) -> tuple[str, datetime | None]:
    """What tells a note from another, in a note to send or one HubSpot answered: its body and its time."""
    properties = note.get("properties") or {}
    return str(properties.get("hs_note_body")), parse_crm_time(properties.get("hs_timestamp"))
