"""Field mapping: local fields, CRM fields, direction, conflict rule and transforms, with per-CRM defaults."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.domain.models import (
    Contact,
    Lead,
    LeadStatus,
    Provider,
    SocialContext,
    SocialPlatform,
    SocialProfile,
    best_engagement,
    custom_value_like,
    normalise_phone,
)
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.providers.contract import CrmField
from crm_desktop.store.models import ConflictRule, FieldDirection, audit_text, audit_value, typed_audit_values
from crm_desktop.sync.social_fields import social_field_names, social_fields

Value = str | None

#: What a write sends to clear a CRM field: adapters read ``None`` as "leave the field as it is".
CLEARED = ""


class Transform(StrEnum):
    """What is done to a local value on its way to the CRM."""

    TRIM = "trim"
    LOWER = "lower"
    E164 = "e164"
    TRUNCATE = "truncate"
    DEFAULT = "default"


@dataclass(frozen=True)
class LocalField:
    """A field of a local record that can be mapped.

    Attributes:
        name: the wire name (``firstName``, ``twitterUsername``, ``custom.segment``).
        label: what the marketer sees.
        kind: ``string``, ``email``, ``phone``, ``url``, ``number`` or ``enum``.
        computed: computed from several values (e.g. total followers): it can be pushed, never pulled.
    """

    name: str
    label: str
    kind: str = "string"
    computed: bool = False


#: A profile's public address when it carries none (what the networks link to).
_PROFILE_URLS = {
    SocialPlatform.TWITTER: "https://x.com/{}",
    SocialPlatform.INSTAGRAM: "https://www.instagram.com/{}/",
}
#: Profile URL fields that a pull may set, by the network they belong to.
_PROFILE_URL_FIELDS = {
    "twitterUrl": SocialPlatform.TWITTER,
    "instagramUrl": SocialPlatform.INSTAGRAM,
    "linkedinUrl": SocialPlatform.LINKEDIN,
}

_PROFILE_USERNAME_FIELDS = {
    "twitterUsername": SocialPlatform.TWITTER,
    "instagramUsername": SocialPlatform.INSTAGRAM,
    "tiktokUsername": SocialPlatform.TIKTOK,
    "youtubeUsername": SocialPlatform.YOUTUBE,
    "facebookUsername": SocialPlatform.FACEBOOK,
}

#: The fields contacts and leads both have.
_PERSON_FIELDS = (
    LocalField("email", "Email", "email"),
    LocalField("firstName", "First name"),
    LocalField("lastName", "Last name"),
    LocalField("company", "Company"),
)

CONTACT_FIELDS: dict[str, LocalField] = {
    f.name: f
    for f in [
        *_PERSON_FIELDS,
        LocalField("phone", "Phone", "phone"),
        LocalField("twitterUsername", "Twitter/X username"),
        LocalField("instagramUsername", "Instagram username"),
        LocalField("tiktokUsername", "TikTok username"),
        LocalField("youtubeUsername", "YouTube channel"),
        LocalField("facebookUsername", "Facebook username"),
        LocalField("linkedinUrl", "LinkedIn profile URL", "url"),
        LocalField("twitterUrl", "Twitter/X profile URL", "url"),
        LocalField("instagramUrl", "Instagram profile URL", "url"),
        LocalField("linkedinUsername", "LinkedIn username"),
        LocalField("twitterFollowers", "Twitter/X followers", "number", computed=True),
        LocalField("instagramFollowers", "Instagram followers", "number", computed=True),
        LocalField("socialFollowers", "Total social followers", "number", computed=True),
        LocalField("socialEngagementScore", "Social engagement score", "number", computed=True),
        LocalField("socialTouchpoints", "Engagement history (summary)", computed=True),
    ]
}

LEAD_FIELDS: dict[str, LocalField] = {
    f.name: f
    for f in [
        *_PERSON_FIELDS,
        LocalField("source", "Lead source"),
        LocalField("status", "Lead status", "enum"),
        LocalField("platform", "Social platform", "enum"),
        LocalField("conversationId", "Conversation id"),
        LocalField("sentiment", "Sentiment", "enum"),
        LocalField("engagementScore", "Engagement score", "number"),
    ]
}


def local_fields(obj: RecordObject) -> dict[str, LocalField]:
    """The mappable local fields of contacts or leads (custom fields are ``custom.<name>``)."""
    return CONTACT_FIELDS if obj is RecordObject.CONTACT else LEAD_FIELDS


@dataclass(frozen=True)
class FieldMapping:
    """How one local field maps to one CRM field.

    Attributes:
        local_field: the local field's wire name.
        crm_field: the CRM field's wire name.
        direction: two-way, push only, pull only, or off.
        conflict_rule: how a change on both sides is decided.
        transforms: applied in order on the way to the CRM.
        default_value: sent when the local value is blank (with the ``default`` transform).
        length: the CRM field's maximum length (for ``truncate``).
        blank_wipes: whether a blank may erase a value on the other side (never, by default).
        value_map: local value -> CRM value for enumerations (e.g. lead status); reversed on pull.
    """

    local_field: str
    crm_field: str
    direction: FieldDirection = FieldDirection.TWO_WAY
    conflict_rule: ConflictRule = ConflictRule.LAST_WRITE_WINS
    transforms: tuple[Transform, ...] = ()
    default_value: str | None = None
    length: int | None = None
    blank_wipes: bool = False
    value_map: tuple[tuple[str, str], ...] = field(default=())

    @property
    def pushes(self) -> bool:
        return self.direction in (FieldDirection.TWO_WAY, FieldDirection.PUSH_ONLY)

    @property
    def pulls(self) -> bool:
        return self.direction in (FieldDirection.TWO_WAY, FieldDirection.PULL_ONLY)


# -- local values ---------------------------------------------------------------------------


#: A number written as plain digits, with a sign and a decimal part or not (no exponent, no grouping).
_NUMBER_TEXT = re.compile(r"-?(?P<whole>\d+)(?P<fraction>\.\d+)?")
#: A whole part with a leading zero (``02134``), which a number would drop.
_LEADING_ZERO = re.compile(r"0\d")


def canonical(value: Any) -> Value:
    """One text form for comparing, hashing and auditing values: ``None`` for blank."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value):
            return str(int(value))
        # Ten places: a float's binary noise (0.1 + 0.2) goes, real decimals (a latitude's seven) stay.
        return repr(round(value, 10))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True)
    text = str(value).strip()
    if not text:
        return None
    # Numbers the CRM sends as text ("12.0", "12.50") compare equal to the local number, but only where the number
    # is exactly the text: a code with leading zeros ("02134", "007") or more digits than a float keeps
    # ("12345678901234567890", "0.1234567") is text, sent and stored as it is.
    number_text = _NUMBER_TEXT.fullmatch(text)
    if number_text is None or _LEADING_ZERO.match(number_text.group("whole")):
        return text
    if number_text.group("fraction") is None:
        return str(int(text))
    number = float(text)
    if not math.isfinite(number):
        return text
    shown = canonical(number)
    return shown if shown is not None and Decimal(shown) == Decimal(text) else text


def contact_values(contact: Contact) -> dict[str, Value]:
    """A contact's local fields as canonical text."""
    values: dict[str, Value] = {
        "email": contact.email,
        "firstName": canonical(contact.first_name),
        "lastName": canonical(contact.last_name),
        "company": canonical(contact.company),
        "phone": canonical(contact.phone),
    }
    by_platform: dict[SocialPlatform, SocialProfile] = {}
    for profile in contact.social_profiles:
        by_platform.setdefault(profile.platform, profile)
    for name, platform in _PROFILE_USERNAME_FIELDS.items():
        found = by_platform.get(platform)
        values[name] = found.username if found else None
    linkedin = by_platform.get(SocialPlatform.LINKEDIN)
    values["linkedinUrl"] = (linkedin.url or f"https://www.linkedin.com/in/{linkedin.username}") if linkedin else None
    values["linkedinUsername"] = linkedin.username if linkedin else None
    for prefix, platform in (("twitter", SocialPlatform.TWITTER), ("instagram", SocialPlatform.INSTAGRAM)):
        found = by_platform.get(platform)
        values[f"{prefix}Url"] = (found.url or _PROFILE_URLS[platform].format(found.username)) if found else None
        values[f"{prefix}Followers"] = canonical(found.followers) if found else None
    profiles = contact.social_profiles
    values["socialFollowers"] = canonical(sum(p.followers for p in profiles)) if profiles else None
    engagement = best_engagement(profiles)
    values["socialEngagementScore"] = canonical(engagement) if engagement is not None else None
    for key, value in contact.custom_fields.items():
        values[f"custom.{key}"] = canonical(value)
    return values


def lead_values(lead: Lead) -> dict[str, Value]:
    """A lead's local fields as canonical text."""
    context = lead.social_context
    return {
        "email": lead.email,
        "firstName": canonical(lead.first_name),
        "lastName": canonical(lead.last_name),
        "company": canonical(lead.company),
        "source": canonical(lead.source),
        "status": lead.status.value,
        "platform": context.platform.value if context else None,
        "conversationId": canonical(context.conversation_id) if context else None,
        "sentiment": context.sentiment.value if context and context.sentiment else None,
        "engagementScore": canonical(context.engagement_score) if context else None,
    }


def record_values(record: Contact | Lead) -> dict[str, Value]:
    """Local field values of a contact or a lead."""
    return contact_values(record) if isinstance(record, Contact) else lead_values(record)


def _username_from_url(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1] or url


def apply_values(record: Contact | Lead, changes: dict[str, Value]) -> Contact | Lead:
    """A copy of ``record`` with local fields set (values come from the CRM).

    Raises:
        InvalidRecordError: naming the field when a value is not valid locally (a bad phone, say).
    """
    if not changes:
        return record
    data = record.model_dump(by_alias=False)
    if isinstance(record, Contact):
        profiles = {p["platform"]: p for p in data["social_profiles"]}
        for name, value in changes.items():
            if name in ("email", "firstName", "lastName", "company", "phone"):
                data[{"firstName": "first_name", "lastName": "last_name"}.get(name, name)] = value
            elif name in _PROFILE_USERNAME_FIELDS:
                platform = _PROFILE_USERNAME_FIELDS[name]
                if value is None:
                    profiles.pop(platform, None)
                elif platform in profiles:
                    profiles[platform]["username"] = value
                else:
                    profiles[platform] = {"platform": platform, "username": value}
            elif name == "linkedinUrl" or (name in _PROFILE_URL_FIELDS and value is not None):
                platform = _PROFILE_URL_FIELDS[name]
                if value is None:
                    profiles.pop(platform, None)
                else:
                    current = profiles.get(platform, {"platform": platform})
                    current.update(url=value, username=current.get("username") or _username_from_url(value))
                    profiles[platform] = current
            elif name == "linkedinUsername" and value is not None:
                current = profiles.get(SocialPlatform.LINKEDIN, {"platform": SocialPlatform.LINKEDIN})
                current["username"] = value
                profiles[SocialPlatform.LINKEDIN] = current
            elif name.startswith("custom."):
                key = name.removeprefix("custom.")
                if value is None:
                    data["custom_fields"].pop(key, None)
                else:
                    data["custom_fields"][key] = custom_value_like(data["custom_fields"].get(key), value)
        data["social_profiles"] = list(profiles.values())
        return Contact.model_validate(data)
    context = data.get("social_context") or {}
    for name, value in changes.items():
        if name in ("email", "firstName", "lastName", "company", "source"):
            data[{"firstName": "first_name", "lastName": "last_name"}.get(name, name)] = value
        elif name == "status":
            data["status"] = value or LeadStatus.NEW.value
        elif name in ("platform", "conversationId", "sentiment", "engagementScore"):
            key = {"conversationId": "conversation_id", "engagementScore": "engagement_score"}.get(name, name)
            context[key] = value
    data["social_context"] = context if context.get("platform") else None
    if data["social_context"] is not None:
        data["social_context"] = SocialContext.model_validate(data["social_context"])
    return Lead.model_validate(data)


# -- custom values with their types ------------------------------------------------------------

#: How a local field names a custom field (``custom.NAME``).
CUSTOM_PREFIX = "custom."


def _reads_as(value: Any, text: Any) -> bool:
    """Whether ``text`` (an audit row's, as an import or a sync wrote it) is the text of ``value``."""
    if value is None or text is None:
        return value is None and text is None
    shown = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return text in (shown, canonical(value))


def typed_custom_audit(
    rows: Sequence[dict[str, Any]], before: Contact | Lead | None, after: Contact | Lead | None,
) -> list[dict[str, Any]]:
    """Audit rows of changes written to a local record, each custom field's old and new value as ``before`` and
    ``after`` hold it, with its type (``42``, ``True``, ``"42"``): an undo puts back the value, not its text.

    A row whose text is not what the records hold (a value the record did not have) is kept as it is, as text.
    """
    typed: list[dict[str, Any]] = []
    for row in rows:
        name = str(row.get("field", ""))
        if name.startswith(CUSTOM_PREFIX):
            key = name.removeprefix(CUSTOM_PREFIX)
            old = before.custom_fields.get(key) if before is not None else None
            new = after.custom_fields.get(key) if after is not None else None
            if _reads_as(old, row.get("old_value")) and _reads_as(new, row.get("new_value")):
                row = {**row, **typed_audit_values(old, new)}
        typed.append(row)
    return typed


def _type_of(value: Any, text: Any) -> str | None:
    """The audit type of ``value`` when ``text`` (an audit row's, kept as it is) reads back as exactly it."""
    if value is None or not isinstance(text, str):
        return None
    kind = audit_text(value)[1]
    try:
        back = audit_value(text, kind)
    except ValueError:
        return None
    return kind if type(back) is type(value) and back == value else None


def with_audit_types(row: dict[str, Any], old: Any, new: Any) -> dict[str, Any]:
    """``row`` with the type of its old and new value (``42``, ``True``) where its text is theirs; its text is kept
    as it is, and a value whose text it is not (or ``None``) leaves its type unknown, read as text."""
    typed = dict(row)
    for column, value in (("old", old), ("new", new)):
        kind = _type_of(value, row.get(f"{column}_value"))
        if kind is not None:
            typed[f"{column}_type"] = kind
    return typed


def typed_push_audit(rows: Sequence[dict[str, Any]], sent: Contact | Lead | None) -> list[dict[str, Any]]:
    """Audit rows of a push (the CRM side), each custom field with the type of its values: the new one as ``sent``
    (the local record pushed) holds it, the old one (what the CRM held, as text: the link's base, or the value read
    from a record found by email) in the type of the value that replaced it, where its text reads as one (the rule
    a custom value follows when edited, pulled or undone: a number field held ``42``, not ``"42"``).

    Without the record (a write resumed after a crash), or for a value whose text is not what it holds, the row is
    kept as it is: its values are read as text, as rows written before types were kept.
    """
    if sent is None:
        return list(rows)
    typed: list[dict[str, Any]] = []
    for row in rows:
        name = str(row.get("field", ""))
        if name.startswith(CUSTOM_PREFIX):
            new = sent.custom_fields.get(name.removeprefix(CUSTOM_PREFIX))
            old_text = row.get("old_value")
            old = custom_value_like(new, old_text) if new is not None and old_text is not None else None
            if _type_of(new, row.get("new_value")) is not None:
                row = with_audit_types(row, old, new)
        typed.append(row)
    return typed


def with_custom_values(record: Contact | Lead, values: dict[str, Any]) -> Contact | Lead:
    """A copy of ``record`` with these custom fields (``custom.NAME``) set to exactly these values, of any type a
    custom field holds (``None``: removed); other keys are left to the caller."""
    custom = dict(record.custom_fields)
    for name, value in values.items():
        if not name.startswith(CUSTOM_PREFIX):
            continue
        key = name.removeprefix(CUSTOM_PREFIX)
        if value is None:
            custom.pop(key, None)
        else:
            custom[key] = value
    if custom == record.custom_fields and all(type(custom[k]) is type(v) for k, v in record.custom_fields.items()):
        return record
    return type(record).model_validate({**record.model_dump(by_alias=False), "custom_fields": custom})


# -- transforms -----------------------------------------------------------------------------


def to_crm(mapping: FieldMapping, value: Value) -> Any:
    """The value to send to the CRM for one mapped local value."""
    result: Value = value
    for transform in mapping.transforms:
        if transform is Transform.DEFAULT and result is None:
            result = mapping.default_value
        elif result is None:
            continue
        elif transform is Transform.TRIM:
            result = result.strip()
        elif transform is Transform.LOWER:
            result = result.lower()
        elif transform is Transform.E164:
            with contextlib.suppress(ValueError):
                result = normalise_phone(result)
        elif transform is Transform.TRUNCATE and mapping.length:
            result = result[: mapping.length]
    if result is not None and mapping.value_map:
        result = dict(mapping.value_map).get(result, result)
    return result


def sends_a_blank(mapping: FieldMapping) -> bool:
    """Whether a push sends something for a blank local value: a mapping that lets a blank wipe the CRM's value, or
    one whose ``default`` transform puts a value in its place. Otherwise a blank never touches the CRM's value."""
    return mapping.pushes and (mapping.blank_wipes or to_crm(mapping, None) is not None)


def from_crm(mapping: FieldMapping, value: Any) -> Value:
    """A CRM value as the local field's canonical text (a CRM value shared by several local ones reads as the
    first of them)."""
    return local_form(mapping, crm_text(mapping, value))


def crm_text(mapping: FieldMapping, value: Any) -> Value:
    """A CRM value in the local field's words but written as the CRM holds it (a phone as ``+1 212 555 0100``):
    what the marketer is shown as the CRM's side of a conflict; :func:`local_form` of it is :func:`from_crm`'s."""
    text = canonical(value)
    if text is not None and mapping.value_map:
        reverse: dict[str, str] = {}
        for local, crm in mapping.value_map:
            reverse.setdefault(crm, local)
        text = reverse.get(text, text)
    if text is not None and mapping.local_field == "email":
        text = text.lower()
    return text


def local_form(mapping: FieldMapping, value: Value) -> Value:
    """A value in the form the local store keeps the mapped field in: a phone in E.164, however it is written.

    The local record keeps one form of a number (``+12125550100``) and a CRM shows its own (``+1 212 555 0100``);
    read in one form, the number compares equal to itself: the sync, a merge base and a conflict's kept value see
    no change in it, and the CRM keeps its own formatting. Text that is not a readable number stays as it is (the
    local record refuses it, naming the field).
    """
    if value is None or mapping.local_field != "phone":
        return value
    with contextlib.suppress(ValueError):
        return normalise_phone(value)
    return value


def crm_holds(mapping: FieldMapping, local_value: Value, crm_value: Any) -> bool:
    """Whether the CRM holds what pushing ``local_value`` writes there (transforms and value maps applied).

    Pushes can lose detail (two lead statuses share one Salesforce status, a long name is truncated, a blank goes
    out as a default): such a CRM value still agrees with the local one and is no change on either side. A CRM's
    yes/no (a checkbox's ``true``, a Pipedrive Yes option) holds a local yes/no text written any way a file writes it
    (``yes``, ``1``, ``TRUE``), as the adapters send that text; a CRM's date-time (Salesforce's
    ``2026-12-03T09:00:00.000+0000``) holds a local date-time text naming the same instant (``2026-12-03 10:00``
    written in Berlin: a time without a zone is the desktop's local time, a date alone its midnight), as the
    adapters send it in UTC.
    """
    sent = to_crm(mapping, local_value)
    held = canonical(crm_value)
    if canonical(sent) == held:
        return True
    if sent is None or held is None:
        return False
    if mapping.local_field == "phone" or Transform.E164 in mapping.transforms:
        # A phone the CRM writes its own way (``+1 212 555 0100``) holds the number sent in E.164.
        with contextlib.suppress(ValueError):
            return normalise_phone(held) == normalise_phone(sent)
    if _NUMBER_TEXT.fullmatch(sent) and _NUMBER_TEXT.fullmatch(held):
        # A number field keeps a double (HubSpot's, Pipedrive's): a whole number past 2**53 comes back as the
        # nearest double (10**30 as 1000000000000000019884624838656), which still holds the local number. Only a
        # CRM value that is exactly a double: a text field's long code ("12345678901234567891") is compared as text.
        sent_number, held_number = float(sent), float(held)
        return math.isfinite(held_number) and sent_number == held_number and Decimal(held) == Decimal(held_number)
    if held[:1].isdigit() and "-" in held[:5]:
        # A CRM's date-time (a date alone compared as text, above) and the local text as the adapters read it.
        from crm_desktop.providers.toolkit import same_instant

        return same_instant(sent, held)
    if held in {"true", "false"}:
        # A yes/no as the CRM keeps it: a JSON boolean, or HubSpot's "true"/"false" text of a bool property. The
        # adapters' own reading of yes/no text (imported here: the sync layer loads without httpx under it).
        from crm_desktop.providers.toolkit import read_yes_no

        try:
            return read_yes_no(sent) is (held == "true")
        except ValueError:
            return False
    return False


def values_hash(values: dict[str, Any]) -> str:
    """A stable hash of mapped values: unchanged records send nothing."""
    payload = json.dumps(values, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# -- defaults -------------------------------------------------------------------------------

_TWO = FieldDirection.TWO_WAY
_PUSH = FieldDirection.PUSH_ONLY


def _m(local: str, crm: str, direction: FieldDirection = _TWO, *transforms: Transform, **extra: Any) -> FieldMapping:
    return FieldMapping(local, crm, direction, transforms=tuple(transforms), **extra)


def _status_map(values: dict[LeadStatus, str]) -> tuple[tuple[str, str], ...]:
    # Several local statuses may share a CRM value; the first keeps the reverse mapping.
    return tuple((status.value, crm) for status, crm in values.items())


def _social_mappings(provider: Provider, obj: RecordObject) -> list[FieldMapping]:
    return [_m(f.local_field, f.name, f.direction) for f in social_fields(provider, obj)]


def default_mappings(provider: Provider, obj: RecordObject) -> list[FieldMapping]:
    """Sensible default mappings per CRM, the seed's social custom fields included."""
    # The adapter modules (httpx under them) load when a mapping is first asked for, not with the sync layer.
    from crm_desktop.providers.hubspot_records import LEAD_STATUS_VALUES as HUBSPOT_LEAD_STATUS
    from crm_desktop.providers.salesforce_records import LEAD_STATUS_VALUES as SALESFORCE_LEAD_STATUS

    if provider is Provider.SALESFORCE:
        if obj is RecordObject.CONTACT:
            return [*_person_mappings(provider), _m("phone", "Phone", _TWO, Transform.E164),
                    *_social_mappings(provider, obj)]
        return [
            *_person_mappings(provider),
            _m("company", "Company", _TWO, Transform.TRIM, Transform.TRUNCATE, length=255),
            _m("status", "Status", _TWO, value_map=_status_map(SALESFORCE_LEAD_STATUS)),
            _m("source", "lead_source_detail__c"),
            _m("sentiment", "social_sentiment__c"),
            _m("engagementScore", "social_engagement_score__c"),
        ]
    if provider is Provider.HUBSPOT:
        if obj is RecordObject.CONTACT:
            return [*_person_mappings(provider), _m("phone", "phone", _TWO, Transform.E164),
                    *_social_mappings(provider, obj)]
        return [
            *_person_mappings(provider),
            _m("status", "hs_lead_status", _TWO, value_map=_status_map(HUBSPOT_LEAD_STATUS)),
            _m("sentiment", "social_sentiment"),
            _m("engagementScore", "social_engagement_score"),
        ]
    # Pipedrive: standard person fields and the seed's three custom fields by name (their keys are looked up at
    # sync time); the rest of the social data goes into the person's note (seed default).
    if obj is RecordObject.CONTACT:
        return [*_person_mappings(provider), _m("phone", "phone", _TWO, Transform.E164),
                *_social_mappings(provider, obj)]
    return _person_mappings(provider)


def _person_mappings(provider: Provider) -> list[FieldMapping]:
    """The email and name fields (HubSpot: and company) a CRM's contacts and leads both have, mapped alike."""
    if provider is Provider.SALESFORCE:
        return [
            _m("email", "Email", _TWO, Transform.TRIM, Transform.LOWER),
            _m("firstName", "FirstName", _TWO, Transform.TRIM, Transform.TRUNCATE, length=40),
            _m("lastName", "LastName", _TWO, Transform.TRIM, Transform.TRUNCATE, Transform.DEFAULT,
               length=80, default_value="(unknown)"),
        ]
    if provider is Provider.HUBSPOT:
        return [
            _m("email", "email", _TWO, Transform.TRIM, Transform.LOWER),
            _m("firstName", "firstname", _TWO, Transform.TRIM),
            _m("lastName", "lastname", _TWO, Transform.TRIM),
            _m("company", "company", _TWO, Transform.TRIM),
        ]
    return [
        _m("email", "email", _TWO, Transform.TRIM, Transform.LOWER),
        _m("firstName", "first_name", _TWO, Transform.TRIM),
        _m("lastName", "last_name", _TWO, Transform.TRIM),
    ]


# -- validation against the CRM's live field list -------------------------------------------

_NUMERIC_CRM_TYPES = {"double", "currency", "percent", "int", "integer", "number", "long"}
_BOOLEAN_CRM_TYPES = {"boolean", "bool", "checkbox", "booleancheckbox"}
_TEXTUAL_CRM_TYPES = {
    "string", "textarea", "email", "phone", "url", "picklist", "enumeration", "text", "varchar", "phone_number",
    "multipicklist", "combobox", "id", "reference", "enum", "set", "autocomplete", "visible_to", "largetext",
}


@dataclass(frozen=True)
class MappingProblem:
    """One thing wrong with a mapping, named for the marketer."""

    local_field: str
    crm_field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.local_field} -> {self.crm_field}: {self.reason}"


def validate_mappings(
    obj: RecordObject, mappings: Sequence[FieldMapping], crm_fields: Sequence[CrmField],
    provider: Provider | None = None, *, names_of_off: bool = False,
) -> list[MappingProblem]:
    """Check mappings against the CRM's live fields: missing fields, read-only targets, incompatible types.

    A custom field is found by its wire name or its label (Pipedrive's fields are mapped by name); a missing seed
    social field of ``provider`` is named with the command that creates it. A mapping turned off is not checked (a
    field is often turned off because the CRM lacks it), unless ``names_of_off``: then its CRM field must exist
    (whoever names a CRM field for it now would otherwise find it wrong only when turning it on), though what
    depends on the direction (read-only, computed) is still left for when it is on.
    """
    problems: list[MappingProblem] = []
    known = local_fields(obj)
    by_name = {f.name: f for f in crm_fields}
    by_lower = {f.name.lower(): f for f in crm_fields}
    by_label = {f.label.lower(): f for f in reversed(crm_fields) if f.custom}
    seed = social_field_names(provider, obj) if provider is not None else frozenset()
    seen: set[str] = set()
    for mapping in mappings:
        off = mapping.direction is FieldDirection.OFF
        if off and not names_of_off:
            continue
        local = known.get(mapping.local_field)
        if local is None and not mapping.local_field.startswith("custom."):
            problems.append(MappingProblem(mapping.local_field, mapping.crm_field, "no such local field"))
            continue
        if mapping.local_field in seen:
            problems.append(MappingProblem(mapping.local_field, mapping.crm_field, "mapped twice"))
        seen.add(mapping.local_field)
        wanted = mapping.crm_field.lower()
        crm = by_name.get(mapping.crm_field) or by_lower.get(wanted) or by_label.get(wanted)
        if crm is None:
            reason = "the CRM has no such field"
            if wanted in seed:
                reason += ("; create it with Field Mapping's “Create missing fields” (or `crm-desktop fields ensure` "
                           "and the integration's name)")
            problems.append(MappingProblem(mapping.local_field, mapping.crm_field, reason))
            continue
        if off:
            continue
        if local is not None and local.computed and mapping.pulls:
            problems.append(
                MappingProblem(mapping.local_field, crm.label, "is computed locally; it can only be pushed")
            )
        if mapping.pushes and not crm.writable:
            problems.append(MappingProblem(mapping.local_field, crm.label, "is read-only in the CRM; map it pull only"))
        if local is None:
            continue  # a custom field holds text, numbers or flags alike: any CRM type can take it
        crm_type = crm.type.lower()
        local_kind = local.kind
        if crm_type in _NUMERIC_CRM_TYPES and local_kind not in {"number"}:
            problems.append(
                MappingProblem(mapping.local_field, crm.label, f"holds numbers ({crm.type}) but {local_kind} is text")
            )
        elif local_kind == "number" and crm_type not in _NUMERIC_CRM_TYPES | _TEXTUAL_CRM_TYPES:
            problems.append(MappingProblem(mapping.local_field, crm.label, f"cannot hold a number ({crm.type})"))
        elif crm_type in _BOOLEAN_CRM_TYPES:
            reason = f"holds only yes/no ({crm.type}) but {local_kind} is text"
            problems.append(MappingProblem(mapping.local_field, crm.label, reason))
    return problems


@dataclass(frozen=True)
class FittedMappings:
    """Mappings as a run sends them, and the seed social fields it leaves out because the CRM lacks them.

    Attributes:
        mappings: each CRM field under the CRM's wire name (a Pipedrive field named by its name gets its key).
        missing: the seed social fields the CRM does not have (``fields ensure`` creates them).
    """

    mappings: list[FieldMapping]
    missing: list[str]


def fit_to_crm(
    provider: Provider, obj: RecordObject, mappings: Sequence[FieldMapping], crm_fields: Sequence[CrmField]
) -> FittedMappings:
    """Address each mapped CRM field by its wire name, and leave out the seed's social fields the CRM lacks.

    A field is found by wire name, else (custom fields) by label, case-insensitive: Pipedrive's custom fields are
    mapped by name and written by their 40-hex key. A seed social field the CRM lacks is left out of the run (not
    failing every record); a field a person mapped by hand is kept, so a wrong name still fails loudly.
    """
    by_name = {f.name.casefold(): f.name for f in crm_fields}
    by_label: dict[str, str] = {}
    for crm_field in crm_fields:
        if crm_field.custom:
            by_label.setdefault(crm_field.label.casefold(), crm_field.name)
    seed = social_field_names(provider, obj)
    kept: list[FieldMapping] = []
    missing: list[str] = []
    for mapping in mappings:
        key = mapping.crm_field.casefold()
        wire = by_name.get(key) or by_label.get(key)
        if wire is None and key in seed and mapping.direction is not FieldDirection.OFF:
            missing.append(mapping.crm_field)
            continue
        kept.append(replace(mapping, crm_field=wire) if wire is not None and wire != mapping.crm_field else mapping)
    return FittedMappings(kept, missing)


def run_mappings(
    provider: Provider, obj: RecordObject, mappings: Sequence[FieldMapping], crm_fields: Sequence[CrmField]
) -> list[FieldMapping]:
    """The mappings a sync run uses against the CRM's live fields: :func:`fit_to_crm`, then real lengths."""
    return with_crm_lengths(fit_to_crm(provider, obj, mappings, crm_fields).mappings, crm_fields)


def with_crm_lengths(mappings: Sequence[FieldMapping], crm_fields: Sequence[CrmField]) -> list[FieldMapping]:
    """Mappings whose ``truncate`` uses the CRM field's real length."""
    lengths = {f.name: f.length for f in crm_fields if f.length}
    return [replace(m, length=lengths.get(m.crm_field, m.length)) for m in mappings]


__all__ = [
    "CLEARED",
    "CONTACT_FIELDS",
    "LEAD_FIELDS",
    "FieldMapping",
    "FittedMappings",
    "InvalidRecordError",
    "LocalField",
    "MappingProblem",
    "Transform",
    "apply_values",
    "canonical",
    "crm_holds",
    "crm_text",
    "default_mappings",
    "fit_to_crm",
    "from_crm",
    "local_form",
    "record_values",
    "run_mappings",
    "to_crm",
    "typed_custom_audit",
    "typed_push_audit",
    "validate_mappings",
    "values_hash",
    "with_audit_types",
    "with_crm_lengths",
    "with_custom_values",
]
