"""Pipedrive's record shapes: persons and leads as read and as written, notes as its HTML, and the default mappings."""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from crm_desktop.domain.models import Contact, Lead, normalise_phone, platform_name
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.domain.wording import plural
from crm_desktop.providers.contract import CrmRecord, OutboundRecord
from crm_desktop.providers.pipedrive_errors import plain_text
from crm_desktop.providers.pipedrive_fields import (
    HASH_KEY,
    IGNORED_PERSON_FIELDS,
    LEAD_KEYS,
    PERSON_PASS_THROUGH,
    WRITABLE_PERSON_FIELDS,
    PersonFieldMap,
    RecordProblem,
)
from crm_desktop.providers.toolkit import ChangeCursor, as_number, email_key, parse_crm_time

#: How far back a record may have been created to count as the one a lost write made (reconciling).
RECONCILE_WINDOW = timedelta(minutes=5)

# -- notes --------------------------------------------------------------------------------------------------------


def note_html(text: str, heading: str | None = None) -> str:
    """Plain note text as the HTML Pipedrive stores (escaped; one line per line), under an optional bold heading."""
    lines = [html.escape(line.strip()) for line in text.strip().splitlines()]
    body = f"<p>{'<br>'.join(lines)}</p>" if any(lines) else ""
    return (f"<p><b>{html.escape(heading)}</b></p>" if heading else "") + body


def note_fingerprint(content: str) -> str:
    """A note's text without markup or spacing differences, to tell whether two notes say the same."""
    return plain_text(content)


# -- values as Pipedrive holds them -------------------------------------------------------------------------------


def phone_key(phone: Any) -> str:
    """A phone number in E.164 when it can be read (``(415) 555-0123`` = ``+14155550123``), else its digits."""
    text = str(phone or "").strip()
    try:
        return normalise_phone(text)
    except ValueError:
        return re.sub(r"\D", "", text)


def same_value(current: Any, wanted: Any) -> bool:
    """Whether Pipedrive's value already is the one to write (numbers by value, lists in any order, text trimmed)."""
    if isinstance(current, bool) or isinstance(wanted, bool):
        return current is wanted
    if isinstance(current, int | float) or isinstance(wanted, int | float):
        return as_number(current) is not None and as_number(current) == as_number(wanted)
    if isinstance(current, list) and isinstance(wanted, list):
        return sorted(map(str, current)) == sorted(map(str, wanted))
    if isinstance(current, str) and isinstance(wanted, str):
        return current.strip() == wanted.strip()
    return bool(current == wanted)


def labelled_values(values: Any) -> list[dict[str, Any]]:
    """A person's ``emails`` or ``phones`` (``{value, primary, label}`` each), those with a value."""
    return [item for item in values or [] if isinstance(item, dict) and item.get("value")]


def primary_value(items: list[dict[str, Any]]) -> str:
    """The primary one of :func:`labelled_values` (else the first), ``''`` when there is none."""
    chosen = next((item for item in items if item.get("primary")), items[0] if items else None)
    return str(chosen["value"]) if chosen else ""


def primary_email(person: Mapping[str, Any]) -> str:
    """The dedupe key of a person's primary email (``''`` without one)."""
    return email_key(primary_value(labelled_values(person.get("emails"))))


def holds_email(person: Mapping[str, Any], email: str) -> bool:
    """Whether any of the person's emails has the dedupe key ``email``."""
    return any(email_key(item["value"]) == email for item in labelled_values(person.get("emails")))


def added_since(item: Mapping[str, Any], started: datetime) -> bool:
    """Whether Pipedrive created ``item`` (by its ``add_time``) late enough to be what a write begun at ``started``
    made, before its answer was lost."""
    added = parse_crm_time(item.get("add_time"))
    return added is not None and added >= started - RECONCILE_WINDOW


# -- records as read ----------------------------------------------------------------------------------------------


def person_record(person: Mapping[str, Any], fields_read: PersonFieldMap | None = None) -> CrmRecord:
    """A v2 person as a :class:`CrmRecord`: standard fields by their personFields keys, custom ones by hash key
    (read through ``fields_read``, when given: option ids as their labels)."""
    emails = labelled_values(person.get("emails"))
    phones = labelled_values(person.get("phones"))
    first, last = person.get("first_name"), person.get("last_name")
    name = str(person.get("name") or "").strip()
    if name and email_key(name) in {email_key(str(item["value"])) for item in emails}:
        # A nameless person is named by its email (Pipedrive wants a name): not a first name of that email.
        first = last = None
    fields: dict[str, Any] = {
        "name": person.get("name"),
        "first_name": first,
        "last_name": last,
        "email": primary_value(emails) or None,
        "emails": [str(item["value"]) for item in emails],
        "phone": primary_value(phones) or None,
        "phones": [str(item["value"]) for item in phones],
    }
    for key in (*PERSON_PASS_THROUGH, "add_time", "update_time"):
        if key in person:
            fields[key] = person[key]
    custom = person.get("custom_fields")
    if isinstance(custom, dict):
        fields.update(custom if fields_read is None else {k: fields_read.read_value(k, v) for k, v in custom.items()})
    return CrmRecord(
        crm_id=str(person["id"]),
        email=email_key(primary_value(emails)),
        fields=fields,
        modified_at=parse_crm_time(person.get("update_time")),
    )


def lead_record(lead: Mapping[str, Any], person: Mapping[str, Any] | None = None) -> CrmRecord:
    """A v1 lead as a :class:`CrmRecord`, with its person's email and names: a Pipedrive lead has no name or email
    of its own, a push writes them to the lead's person, so a pull reads them back from there."""
    fields = {key: value for key, value in lead.items() if key != "id"}
    email = ""
    if person is not None:
        held = person_record(person)
        email = held.email
        # The full name too: the pull reads a one-word name back as the parts it went as (see the engine).
        fields.update({key: held.fields.get(key) for key in ("name", "first_name", "last_name", "email")})
    return CrmRecord(
        crm_id=str(lead["id"]),
        email=email_key(email),
        fields=fields,
        modified_at=parse_crm_time(lead.get("update_time")),
    )


def record_digest(raw: Mapping[str, Any]) -> str:
    """A short fingerprint of a record as Pipedrive sent it (tells a re-edit within the same second)."""
    text = json.dumps(raw, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class ChangeMark(ChangeCursor):
    """The change cursor of a Pipedrive pull, read from the records as Pipedrive lists them.

    Pipedrive's v2 times have whole seconds, so several records share one; a record is delivered again when it
    comes back at the cursor's time with other values (edited again within that second): each delivered record
    is kept with a digest of its values (``2025-01-01T10:20:00Z|12:ab12cd34ef56,13:...``).
    """

    def is_new_record(self, raw: Mapping[str, Any]) -> bool:
        """Whether a listed record was not delivered before with these values."""
        return self.is_new(parse_crm_time(raw.get("update_time")), str(raw["id"]), record_digest(raw))

    def deliver(self, raw: Mapping[str, Any]) -> None:
        """Note a delivered record."""
        stamp = str(raw.get("update_time") or "")
        self.advance(parse_crm_time(stamp), stamp, str(raw["id"]), record_digest(raw))


def lead_person_id(lead: Mapping[str, Any]) -> int | None:
    """The id of a lead's person (``None`` for a lead without one)."""
    person_id = lead.get("person_id")
    return person_id if isinstance(person_id, int) and not isinstance(person_id, bool) else None


class PersonIndex:
    """Every person by email, listed once for a large push and brought up to date while the push writes.

    An email held by several persons resolves to the oldest one, as the search path does. ``since`` is the
    Pipedrive time the last listing started (less an overlap): listing again from there finds persons created or
    given an email by someone else since, so the push does not create them a second time.
    """

    def __init__(self, since: datetime) -> None:
        self._holders: dict[str, dict[int, dict[str, Any]]] = {}
        self._emails_of: dict[int, set[str]] = {}
        self.since = since
        #: When (the adapter's clock) the last listing started.
        self.listed_at = 0.0
        #: One listing at a time: records looked up meanwhile wait for it.
        self.lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._emails_of)

    def add(self, person: dict[str, Any]) -> None:
        """Index a listed person (again: its old emails are forgotten first)."""
        person_id = int(person["id"])
        for email in self._emails_of.pop(person_id, set()):
            holders = self._holders.get(email, {})
            holders.pop(person_id, None)
            if not holders:
                self._holders.pop(email, None)
        emails = {email_key(item["value"]) for item in labelled_values(person.get("emails"))} - {""}
        self._emails_of[person_id] = emails
        for email in emails:
            self._holders.setdefault(email, {})[person_id] = person

    def get(self, email: str) -> dict[str, Any] | None:
        """The oldest person with this email, or ``None``."""
        holders = self._holders.get(email)
        return holders[min(holders)] if holders else None


# -- records as written -------------------------------------------------------------------------------------------


@dataclass
class PersonWish:
    """The person a record describes, split into Pipedrive's parts."""

    email: str
    name: str | None = None
    name_parts: dict[str, str] = field(default_factory=dict)
    phone: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)

    def full_name(self, existing: Mapping[str, Any] | None = None) -> str | None:
        """The name to write: ``name`` as given, else first and last name, a missing part kept from ``existing``.

        A record may carry only the part that changed (``last_name``); the person's other part stays.
        """
        if self.name:
            return self.name
        if not self.name_parts:
            return None
        current = existing or {}
        first_now, _, last_now = str(current.get("name") or "").strip().partition(" ")
        first = self.name_parts.get("first_name", str(current.get("first_name") or first_now).strip())
        last = self.name_parts.get("last_name", str(current.get("last_name") or last_now).strip())
        return " ".join(part for part in (first, last) if part) or None


def split_fields(obj: RecordObject, email: str, fields: Mapping[str, Any]) -> tuple[PersonWish, dict[str, Any]]:
    """A record's fields as the person's parts and (for leads) the lead's own fields.

    Raises:
        RecordProblem: a field that is neither a person's nor a lead's.
    """
    wish = PersonWish(email=email)
    lead: dict[str, Any] = {}
    wish.name = str(fields.get("name") or "").strip() or None
    wish.name_parts = {key: str(fields[key] or "").strip() for key in ("first_name", "last_name") if key in fields}
    phone = fields.get("phone")
    wish.phone = str(phone).strip() if phone not in (None, "") else None
    for key, value in fields.items():
        if obj is RecordObject.LEAD and key in LEAD_KEYS:
            if key == "visible_to" and value is not None:
                value = str(value)
            lead[key] = value
        elif key in PERSON_PASS_THROUGH:
            wish.attributes[key] = value
        elif key in WRITABLE_PERSON_FIELDS or key in IGNORED_PERSON_FIELDS:
            continue
        elif HASH_KEY.fullmatch(key):
            wish.custom[key] = value
        else:
            raise RecordProblem(key, "is not a Pipedrive person field")
    return wish, lead


def new_person_body(wish: PersonWish) -> dict[str, Any]:
    """The ``POST /api/v2/persons`` body of a new person: the email (and phone) as primary, set values only."""
    body: dict[str, Any] = {
        "name": wish.full_name() or wish.email,
        "emails": [{"value": wish.email, "primary": True, "label": "work"}],
    }
    if wish.phone:
        body["phones"] = [{"value": wish.phone, "primary": True, "label": "work"}]
    body.update({key: value for key, value in wish.attributes.items() if value is not None})
    custom = {key: value for key, value in wish.custom.items() if value is not None}
    if custom:
        body["custom_fields"] = custom
    return body


def person_changes(wish: PersonWish, existing: Mapping[str, Any]) -> dict[str, Any]:
    """The PATCH body that makes ``existing`` match the wish (empty when it already does).

    A new email or phone becomes the primary one; the person's other emails and phones are kept with their labels.
    A phone the person already has as another number becomes the primary one again (the phone a sync reads is the
    primary one: an undo putting back the number a push replaced must move it back to the front).
    """
    changes: dict[str, Any] = {}
    name = wish.full_name(existing)
    if name and str(existing.get("name") or "").strip() != name:
        changes["name"] = name
    emails = labelled_values(existing.get("emails"))
    if not any(email_key(item["value"]) == wish.email for item in emails):
        changes["emails"] = [{"value": wish.email, "primary": True, "label": "work"}] + [
            {"value": str(item["value"]), "primary": False, "label": str(item.get("label") or "work")}
            for item in emails
        ]
    phones = labelled_values(existing.get("phones"))
    wished = phone_key(wish.phone)
    if wish.phone and phone_key(primary_value(phones)) != wished:
        held = next((item for item in phones if phone_key(item["value"]) == wished), None)
        changes["phones"] = [
            {"value": str(held["value"]) if held else wish.phone, "primary": True,
             "label": str(held.get("label") or "work") if held else "work"}
        ] + [
            {"value": str(item["value"]), "primary": False, "label": str(item.get("label") or "work")}
            for item in phones if item is not held
        ]
    for key, value in wish.attributes.items():
        if not same_value(existing.get(key), value):
            changes[key] = value
    current = existing.get("custom_fields") if isinstance(existing.get("custom_fields"), dict) else {}
    assert isinstance(current, dict)
    custom = {key: value for key, value in wish.custom.items() if not same_value(current.get(key), value)}
    if custom:
        changes["custom_fields"] = custom
    return changes


# -- default mappings ---------------------------------------------------------------------------------------------

#: The seed field that identifies a person on each platform.
_IDENTITY_FIELDS = {"twitter": "twitter_username", "instagram": "instagram_username", "linkedin": "linkedin_url"}


def _contact_social_values(contact: Contact) -> dict[str, Any]:
    profiles = {profile.platform.value: profile for profile in contact.social_profiles}
    values: dict[str, Any] = {
        "twitter_username": profiles["twitter"].username if "twitter" in profiles else None,
        "instagram_username": profiles["instagram"].username if "instagram" in profiles else None,
        "linkedin_url": profiles["linkedin"].url if "linkedin" in profiles else None,
        "social_followers": sum(p.followers for p in contact.social_profiles) if contact.social_profiles else None,
    }
    return {key: value for key, value in values.items() if value is not None}


def _person_fields_of(email: str, first: str | None, last: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"email": email}
    if first:
        fields["first_name"] = first
    if last:
        fields["last_name"] = last
    return fields


def default_contact_record(contact: Contact, *, social_field_keys: Mapping[str, str] | None = None) -> OutboundRecord:
    """The default mapping of a contact to a Pipedrive person.

    Name, email and phone go to the person. Pipedrive has no social person fields by default, so the social
    profiles, the company (an organization, not a person field) and the contact's own custom values go into the
    social note; a social field the company did create (``social_field_keys``: seed name -> hash key, e.g. from
    :meth:`PersonFieldMap.keys_by_name`) takes its value instead.
    """
    keys = dict(social_field_keys or {})
    fields = _person_fields_of(contact.email, contact.first_name, contact.last_name)
    if contact.phone:
        fields["phone"] = contact.phone
    mapped = {name: value for name, value in _contact_social_values(contact).items() if name in keys}
    for name, value in mapped.items():
        fields[keys[name]] = value
    lines: list[str] = []
    if contact.company:
        lines.append(f"Company: {contact.company}")
    for profile in sorted(contact.social_profiles, key=lambda p: (p.platform.value, p.username)):
        reach = f"{plural(profile.followers, 'follower')}, engagement score {profile.engagement:g}"
        platform = platform_name(profile.platform)
        if _IDENTITY_FIELDS.get(profile.platform.value) in mapped:
            lines.append(f"{platform}: {reach}")  # the handle is in its own field
        else:
            lines.append(f"{platform}: @{profile.username} ({reach})" + (f" {profile.url}" if profile.url else ""))
    if len(contact.social_profiles) > 1 and "social_followers" not in mapped:
        lines.append(f"Followers in all: {sum(p.followers for p in contact.social_profiles):,}")
    for name, value in sorted(contact.custom_fields.items()):
        if name in keys:
            fields[keys[name]] = value
        elif value is not None:
            lines.append(f"{name}: {value}")
    return OutboundRecord(email=contact.email, fields=fields, note="\n".join(lines) or None)


def default_lead_record(lead: Lead, *, social_field_keys: Mapping[str, str] | None = None) -> OutboundRecord:
    """The default mapping of a lead to a Pipedrive lead (``title``) and its person (name, email).

    The title names the person and the source (``Ana Silva via twitter_dm``). Status, company and the social
    context go into the lead's social note, unless ``social_field_keys`` maps a seed social field
    (``lead_source_detail``, ``social_sentiment``, ``social_engagement_score``) to a person custom field.
    """
    keys = dict(social_field_keys or {})
    fields = _person_fields_of(lead.email, lead.first_name, lead.last_name)
    who = " ".join(part for part in (lead.first_name, lead.last_name) if part) or lead.email
    fields["title"] = f"{who} via {lead.source}" if lead.source else f"{who} (social lead)"
    context = lead.social_context
    social: dict[str, Any] = {
        "lead_source_detail": lead.source,
        "social_sentiment": context.sentiment.value if context and context.sentiment else None,
        "social_engagement_score": context.engagement_score if context else None,
    }
    for name, value in social.items():
        if name in keys and value is not None:
            fields[keys[name]] = value
    lines = [f"Status: {lead.status.value}"]
    if lead.company:
        lines.append(f"Company: {lead.company}")
    if lead.source and "lead_source_detail" not in keys:
        lines.append(f"Source: {lead.source}")
    if context is not None:
        lines.append(f"Platform: {platform_name(context.platform)}")
        if context.conversation_id:
            lines.append(f"Conversation: {context.conversation_id}")
        if context.sentiment and "social_sentiment" not in keys:
            lines.append(f"Sentiment: {context.sentiment.value}")
        if context.engagement_score is not None and "social_engagement_score" not in keys:
            lines.append(f"Engagement score: {context.engagement_score:g}")
    return OutboundRecord(email=lead.email, fields=fields, note="\n".join(lines))
