"""Salesforce's record shapes: the default field mapping, rows read back, described and Tooling API fields, notes,
Tasks and converted Leads."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from crm_desktop.domain.models import Contact, Lead, LeadStatus, platform_name
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject
from crm_desktop.domain.wording import plural
from crm_desktop.providers.contract import CrmField, CrmRecord, OutboundRecord, TimelineEntry, TimelineResult
from crm_desktop.providers.conversions import CrmConversion
from crm_desktop.providers.errors import RequestRejectedError
from crm_desktop.providers.salesforce_errors import describe_record_errors
from crm_desktop.providers.salesforce_soql import FIELD_API_NAME
from crm_desktop.providers.toolkit import (
    email_key,
    one_line,
    parse_crm_time,
    social_context_values,
    social_profile_values,
)

SOBJECTS: dict[RecordObject, str] = {RecordObject.CONTACT: "Contact", RecordObject.LEAD: "Lead"}
#: Where enrichment notes go, in order of preference: a classic Note, else a Task (an activity on the person).
NOTE_OBJECTS: tuple[str, ...] = ("Note", "Task")
#: A Note's or a Task's parent, title and text fields.
NOTE_FIELDS: dict[str, tuple[str, str, str]] = {
    "Note": ("ParentId", "Title", "Body"),
    "Task": ("WhoId", "Subject", "Description"),
}
#: A record's newest notes compared with a social note before adding it again.
NOTES_COMPARED = 50
#: Salesforce's Task Subject and Description lengths.
TASK_SUBJECT_LIMIT = 255
TASK_DESCRIPTION_LIMIT = 32_000
#: How far before a write the look-up after a lost answer reaches (clock skew between this machine and the org).
TASK_LOOKUP_SLACK_SECONDS = 300

#: The seed's social custom fields on Contact and Lead.
SOCIAL_FIELDS: tuple[str, ...] = (
    "twitter_username__c",
    "instagram_username__c",
    "linkedin_url__c",
    "social_followers__c",
    "social_engagement_score__c",
    "social_sentiment__c",
    "lead_source_detail__c",
)
#: Fields read back by find_by_emails, get_record and changes_since (those the org has).
PULL_FIELDS: dict[RecordObject, tuple[str, ...]] = {
    RecordObject.CONTACT: ("FirstName", "LastName", "Phone", "Title", *SOCIAL_FIELDS),
    RecordObject.LEAD: ("FirstName", "LastName", "Company", "Phone", "Status", "LeadSource", *SOCIAL_FIELDS),
}

#: Salesforce's standard Lead Status values for the app's lead statuses.
LEAD_STATUS_VALUES: dict[LeadStatus, str] = {
    LeadStatus.NEW: "Open - Not Contacted",
    LeadStatus.CONTACTED: "Working - Contacted",
    LeadStatus.QUALIFIED: "Working - Contacted",
    LeadStatus.UNQUALIFIED: "Closed - Not Converted",
    LeadStatus.CONVERTED: "Closed - Converted",
}

#: Company written on a Lead whose email is at a free mail provider (Salesforce's own Web-to-Lead wording).
COMPANY_NOT_PROVIDED = "[not provided]"
# fmt: off
FREE_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "ymail.com", "hotmail.com", "outlook.com", "live.com", "msn.com",
    "icloud.com", "me.com", "mac.com", "aol.com", "proton.me", "protonmail.com", "gmx.com", "gmx.de", "web.de",
    "mail.com", "yandex.ru", "qq.com", "163.com", "zoho.com", "fastmail.com",
})
# fmt: on
_SECOND_LEVEL_LABELS = frozenset({"co", "com", "org", "net", "ac", "gov", "edu", "ltd", "plc", "ne", "or"})


# -- the default field mapping ----------------------------------------------------------------------------


def _filled(values: dict[str, Any]) -> dict[str, Any]:
    """The values that hold something: an empty name or phone is left out of the write."""
    return {name: value for name, value in values.items() if value}


def default_contact_record(contact: Contact) -> OutboundRecord:
    """The default mapping of a contact to Salesforce Contact fields, social custom fields included."""
    names = {"Email": contact.email, "FirstName": contact.first_name, "LastName": contact.last_name}
    fields = _filled({**names, "Phone": contact.phone})
    social, unmapped = social_profile_values(contact.social_profiles, lambda name: f"{name}__c")
    fields.update(social)
    extra = [
        f"{platform_name(p.platform)}: @{p.username}{f' {p.url}' if p.url else ''} ({plural(p.followers, 'follower')})"
        for p in unmapped
    ]
    for name, value in contact.custom_fields.items():
        if name.endswith("__c") and FIELD_API_NAME.match(name):
            fields[name] = value
    lines: list[str] = []
    if contact.company:
        lines.append(f"Company: {contact.company}")
    if extra:
        lines.append("Other social profiles:")
        lines.extend(f"- {line}" for line in extra)
    return OutboundRecord(email=contact.email, fields=fields, note="\n".join(lines) or None)


def default_lead_record(lead: Lead) -> OutboundRecord:
    """The default mapping of a lead to Salesforce Lead fields (Company is filled at upsert when missing)."""
    names = {"Email": lead.email, "Status": LEAD_STATUS_VALUES[lead.status], "FirstName": lead.first_name}
    fields = _filled(
        {**names, "LastName": lead.last_name, "Company": lead.company, "lead_source_detail__c": lead.source}
    )
    note: str | None = None
    context = lead.social_context
    fields.update(
        social_context_values(context, sentiment="social_sentiment__c", engagement="social_engagement_score__c")
    )
    if context is not None:
        conversation = f" (conversation {context.conversation_id})" if context.conversation_id else ""
        note = f"Lead from a conversation on {platform_name(context.platform)}{conversation}."
    return OutboundRecord(email=lead.email, fields=fields, note=note)


def company_from_email(email: str) -> str:
    """A Lead's Company guessed from its email domain: ``jo@acme.com`` -> ``Acme``; free mail -> ``[not provided]``."""
    domain = email.rpartition("@")[2].lower().strip(".")
    if not domain or domain in FREE_MAIL_DOMAINS:
        return COMPANY_NOT_PROVIDED
    labels = domain.split(".")
    if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL_LABELS and len(labels[-1]) == 2:
        name = labels[-3]
    elif len(labels) >= 2:
        name = labels[-2]
    else:
        name = labels[0]
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-")) or COMPANY_NOT_PROVIDED


# -- records and fields read back -------------------------------------------------------------------------


def crm_record(row: dict[str, Any]) -> CrmRecord:
    """A Contact or Lead as a query row holds it: Id, Email, SystemModstamp and the fields selected."""
    values = {k: v for k, v in row.items() if k not in {"attributes", "Id"}}
    return CrmRecord(
        crm_id=str(row.get("Id", "")),
        email=email_key(row.get("Email")),
        fields=values,
        modified_at=parse_crm_time(row.get("SystemModstamp")),
    )


def described_field(item: dict[str, Any]) -> CrmField:
    """One field of a describe: label, type, custom, updateable, length, active picklist values and whether the
    picklist is restricted to them."""
    options = tuple(
        str(value["value"])
        for value in item.get("picklistValues") or []
        if isinstance(value, dict) and value.get("active", True) and value.get("value") is not None
    )
    length = item.get("length")
    return CrmField(
        name=str(item["name"]),
        label=str(item.get("label") or item["name"]),
        type=str(item.get("type") or "string"),
        custom=bool(item.get("custom", str(item["name"]).endswith("__c"))),
        writable=bool(item.get("updateable", False)),
        length=int(length) if isinstance(length, int) and length > 0 else None,
        options=options,
        restricted=bool(item.get("restrictedPicklist")) and bool(options),
    )


def number_scales(describe: dict[str, Any]) -> dict[str, int]:
    """Decimal places of a describe's number fields, by lower-cased name (Salesforce rounds values to them)."""
    return {
        str(item["name"]).lower(): item["scale"]
        for item in describe.get("fields", [])
        if item.get("type") in {"double", "currency", "percent", "int"} and isinstance(item.get("scale"), int)
    }


#: Describe types whose values go on the wire as JSON booleans or numbers (Salesforce refuses them as text), dates
#: (checked to be ISO dates before sending) and date-times (ISO, sent in UTC).
TYPED_FIELD_TYPES = frozenset({"boolean", "double", "currency", "percent", "int", "date", "datetime"})


def typed_fields(describe: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """A describe's checkbox, number, date and date-time fields, by lower-cased name: their type and label."""
    return {
        str(item["name"]).lower(): (str(item["type"]), str(item.get("label") or item["name"]))
        for item in describe.get("fields", [])
        if item.get("name") and item.get("type") in TYPED_FIELD_TYPES
    }


# -- custom fields (Tooling API) -------------------------------------------------------------------------------

#: A custom field's API name: letters, digits and single underscores, starting with a letter, ending in ``__c``.
CUSTOM_FIELD_NAME = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|_(?!_))*__c$")
#: The field types ``create_field`` takes, and the Tooling ``Metadata`` of each (Salesforce's own field types).
TOOLING_FIELD_TYPES: dict[str, dict[str, Any]] = {
    "text": {"type": "Text", "length": 255},
    "string": {"type": "Text", "length": 255},
    "url": {"type": "Url"},
    "number": {"type": "Number", "precision": 18, "scale": 0},
    "integer": {"type": "Number", "precision": 18, "scale": 0},
    "decimal": {"type": "Number", "precision": 5, "scale": 2},
    "textarea": {"type": "LongTextArea", "length": 32768, "visibleLines": 5},
    # A checkbox's Metadata needs its default; Salesforce keeps a checkbox true or false, never empty.
    "boolean": {"type": "Checkbox", "defaultValue": "false"},
    "bool": {"type": "Checkbox", "defaultValue": "false"},
    "checkbox": {"type": "Checkbox", "defaultValue": "false"},
    "date": {"type": "Date"},
    "datetime": {"type": "DateTime"},
}


def tooling_field_metadata(label: str, field_type: str) -> dict[str, Any]:
    """The Tooling API ``Metadata`` of a new custom field: its label, type and size.

    Raises:
        RequestRejectedError: for a type Salesforce fields are not made of here.
    """
    kind, _, option_text = field_type.partition(":")
    kind = kind.strip().lower()
    if kind in {"enumeration", "picklist"}:
        values = [part.strip() for part in option_text.split(",") if part.strip()]
        if not values:
            raise RequestRejectedError(
                "Salesforce: a picklist field needs its values", category=ErrorCategory.VALIDATION
            )
        value_set = {
            "restricted": True,
            "valueSetDefinition": {
                "sorted": False,
                "value": [{"fullName": value, "label": value, "default": False} for value in values],
            },
        }
        return {"label": label, "type": "Picklist", "valueSet": value_set}
    if kind not in TOOLING_FIELD_TYPES:
        raise RequestRejectedError(
            f"Salesforce: unknown field type {field_type!r} (use one of {', '.join(TOOLING_FIELD_TYPES)}, "
            "enumeration:A,B)",
            category=ErrorCategory.VALIDATION,
        )
    return {"label": label, **TOOLING_FIELD_TYPES[kind]}


def field_from_metadata(api_name: str, metadata: dict[str, Any]) -> CrmField:
    """A field just created, as describe would list it (when the user cannot see it yet)."""
    kinds = {"Text": "string", "Url": "url", "Number": "double", "LongTextArea": "textarea", "Picklist": "picklist",
             "Checkbox": "boolean", "Date": "date", "DateTime": "datetime"}
    values = metadata.get("valueSet", {}).get("valueSetDefinition", {}).get("value", [])
    return CrmField(
        name=api_name,
        label=str(metadata.get("label") or api_name),
        type=kinds.get(str(metadata.get("type")), "string"),
        custom=True,
        length=metadata.get("length"),
        options=tuple(str(v["fullName"]) for v in values),
        restricted=bool(values) and bool(metadata.get("valueSet", {}).get("restricted")),
    )


# -- notes, Tasks and conversions ------------------------------------------------------------------------------


def note_body(note_object: str, crm_id: str, text: str) -> dict[str, Any]:
    """A Note (or a Task) on the record ``crm_id``, titled by the text's first line."""
    title = one_line(text.strip().splitlines()[0] if text.strip() else "CRM Desktop", 80)
    return dict(zip(NOTE_FIELDS[note_object], (crm_id, title, text), strict=True))


def task_record(entry: TimelineEntry) -> dict[str, Any]:
    """A completed Task for one interaction: WhoId, Subject, ActivityDate, Status, Description."""
    return {
        "attributes": {"type": "Task"},
        "WhoId": entry.crm_id,
        "Subject": one_line(entry.subject, TASK_SUBJECT_LIMIT),
        "ActivityDate": entry.occurred_at.astimezone(UTC).date().isoformat(),
        "Status": "Completed",
        "Description": entry.body[:TASK_DESCRIPTION_LIMIT],
    }


def task_result(item: Any, sobject: str, crm_id: str) -> TimelineResult:
    """One Task's result from its item of a ``composite/sobjects`` answer: its id, or its errors."""
    if isinstance(item, dict) and item.get("success") and item.get("id"):
        return TimelineResult(str(item["id"]))
    errors = item.get("errors", []) if isinstance(item, dict) else []
    category, message = describe_record_errors([e for e in errors if isinstance(e, dict)])
    return TimelineResult(None, category, f"Task on {sobject} {crm_id}: {message}")


def task_key(who_id: str, subject: str, description: str) -> tuple[str, str, str]:
    """What tells a Task apart when its answer was lost: the 15-character id of its person, its subject and its
    description (two conversations started on one network share their subject; line ends and trailing spaces as
    Salesforce may give them back do not count)."""
    lines = description.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return who_id[:15], subject, "\n".join(line.rstrip() for line in lines).strip()


def lead_conversion(row: dict[str, Any]) -> CrmConversion | None:
    """A converted Lead's conversion, or ``None`` for a row without an email or a readable ``ConvertedDate``.

    ``ConvertedDate`` is a date; a converted Lead is read-only, so its ``SystemModstamp`` is the moment of the
    conversion when it falls on that date (else the end of that day, UTC). A Lead conversion carries no amount
    (that is on the Opportunity it may have made), so the value is left empty.
    """
    email = email_key(row.get("Email"))
    day = str(row.get("ConvertedDate") or "")
    if not email or not day:
        return None
    try:
        converted_on = date.fromisoformat(day[:10])
    except ValueError:
        return None
    modified = parse_crm_time(row.get("SystemModstamp"))
    moment = (
        modified
        if modified is not None and modified.astimezone(UTC).date() == converted_on
        else datetime(converted_on.year, converted_on.month, converted_on.day, 23, 59, 59, tzinfo=UTC)
    )
    return CrmConversion(
        external_id=f"lead:{str(row.get('Id'))[:15]}",
        email=email,
        converted_at=moment,
        what="lead converted",
        modified_at=modified,
    )
