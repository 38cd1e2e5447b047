"""Salesforce sandbox: a stateful emulator of Salesforce REST v61.0 with OAuth (PKCE), SOQL, collections and limits."""

from __future__ import annotations

import asyncio
import base64
import bisect
import functools
import hashlib
import hmac
import logging
import math
import re
import secrets
import sys
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from crm_desktop.domain.models import SocialPlatform, is_loopback_host
from crm_desktop.sandbox.core import (
    FaultKind,
    JSONResponse,
    Sandbox,
    SandboxConfig,
    non_negative_int,
    non_negative_number,
    parse_json,
)
from crm_desktop.sandbox.data import GeneratedPerson, generate_people

logger = logging.getLogger(__name__)

API_VERSION = "v61.0"
API_PREFIX = f"/services/data/{API_VERSION}"
DEFAULT_DAILY_API_LIMIT = 100_000
DEFAULT_CONCURRENT_LIMIT = 25
DEFAULT_QUERY_PAGE_SIZE = 2000
DEFAULT_TOKEN_TTL_SECONDS = 7200.0
COLLECTION_LIMIT = 200
MAX_OPEN_QUERY_CURSORS = 10
AUTH_CODE_TTL_SECONDS = 900.0
DAY_SECONDS = 86_400.0
FIELDS_FUNCTION_LIMIT = 200

KEY_PREFIXES = {"Contact": "003", "Lead": "00Q", "Task": "00T", "Note": "002"}
OBJECT_NAMES = tuple(KEY_PREFIXES)
#: The people the sync works on; Task and Note records hang off them (``WhoId``, ``ParentId``).
PERSON_OBJECTS = ("Contact", "Lead")
#: Task status this org gives a Task created without one (the admin made "Completed" the default status, so
#: logged social activity lands in the activity history; a stock org defaults to "Not Started").
DEFAULT_TASK_STATUS = "Completed"

_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
#: Field types whose text is stored as sent, once its length is checked.
_PLAIN_TEXT_TYPES = frozenset({"string", "phone", "url", "textarea"})
_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_PKCE_VERIFIER_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")

DUPLICATE_MESSAGE = "You're creating a duplicate record. We recommend you use an existing record instead."
ROLLED_BACK_MESSAGE = (
    "Record rolled back because not all records were valid and the request was using AllOrNone header"
)
FIELD_SECURITY_HINT = (
    "Please check the security settings of this field and verify that it is read/write for your profile "
    "or permission set."
)


# -- ids and times -------------------------------------------------------------------------------------------------
def salesforce_id(prefix: str, number: int, pod: str = "Hs") -> str:
    """An 18-character Salesforce id: key prefix, pod, a base-62 counter and the case-safe checksum."""
    high, low = divmod(number, _LOW_PLACES)
    head, head_checksum, head_bits = _id_head(prefix, pod, high)
    tail = _ID_LOW_DIGITS[low]
    return f"{head}{tail}{head_checksum}{_ID_CHECKSUM[head_bits | _ID_LOW_BITS[low]]}"


#: The last two base-62 digits of an id counter: ids of one object share everything before them for 3,844 ids.
_LOW_PLACES = 62 * 62
_ID_LOW_DIGITS = tuple(a + b for a in _ID_ALPHABET for b in _ID_ALPHABET)
#: Their upper-case bits in the third checksum chunk (they are its 4th and 5th characters).
_ID_LOW_BITS = tuple(
    (8 if "A" <= a <= "Z" else 0) | (16 if "A" <= b <= "Z" else 0) for a in _ID_ALPHABET for b in _ID_ALPHABET
)


@functools.lru_cache(maxsize=256)
def _id_head(prefix: str, pod: str, high: int) -> tuple[str, str, int]:
    """An id's first 13 characters, the checksum of its first ten, and the bits of its third chunk so far."""
    digits = [""] * 7
    for place in range(6, -1, -1):
        high, rest = divmod(high, 62)
        digits[place] = _ID_ALPHABET[rest]
    head = f"{prefix}{pod}0{''.join(digits)}"
    head_checksum = _ID_CHECKSUM[_checksum_bits(head[0:5])] + _ID_CHECKSUM[_checksum_bits(head[5:10])]
    return head, head_checksum, _checksum_bits(head[10:13])


def id_checksum(short_id: str) -> str:
    """The three characters that make a 15-character id case-insensitively unique."""
    return "".join(_ID_CHECKSUM[_checksum_bits(short_id[start : start + 5])] for start in (0, 5, 10))


def _checksum_bits(chunk: str) -> int:
    """Bit ``i`` set when character ``i`` of a five-character chunk is an upper-case letter."""
    bits = 0
    for position, char in enumerate(chunk):
        if "A" <= char <= "Z":
            bits |= 1 << position
    return bits


def to_18(record_id: str) -> str | None:
    """The 18-character form of a 15- or 18-character id, or ``None`` when it is not an id."""
    if not re.fullmatch(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?", record_id):
        return None
    if len(record_id) == 15:
        return record_id + id_checksum(record_id)
    if id_checksum(record_id[:15]) != record_id[15:].upper():
        return None
    return record_id[:15] + id_checksum(record_id[:15])


def format_datetime(moment: datetime) -> str:
    """Salesforce's wire form of a datetime: ``2026-01-15T12:00:00.000+0000``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def parse_datetime_literal(text: str) -> datetime:
    """A SOQL/ISO datetime (``2026-01-01T00:00:00Z``, ``...+01:00``, ``....000+0000``) as an aware datetime.

    Raises:
        ValueError: when the text is not such a datetime.
    """
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})", text.strip())
    if not match:
        raise ValueError(f"not a datetime: {text!r}")
    base, fraction, zone = match.groups()
    moment = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S")
    if fraction:
        moment = moment.replace(microsecond=int(fraction[1:].ljust(6, "0")))
    if zone == "Z":
        offset = timedelta()
    else:
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[-2:])
        offset = sign * timedelta(hours=hours, minutes=minutes)
    return (moment - offset).replace(tzinfo=UTC)


# -- errors --------------------------------------------------------------------------------------------------------
class SalesforceError(Exception):
    """One Salesforce API error: HTTP status, ``errorCode``, message and (for DML errors) the fields involved."""

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        fields: list[str] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = fields
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> list[dict[str, Any]]:
        """The REST body: a one-element list with ``errorCode``."""
        item: dict[str, Any] = {**self.extra, "message": self.message, "errorCode": self.error_code}
        if self.fields is not None:
            item["fields"] = list(self.fields)
        return [item]

    def collection_error(self) -> dict[str, Any]:
        """The sObject Collections form: ``statusCode`` instead of ``errorCode``, ``fields`` always present."""
        return {"statusCode": self.error_code, "message": self.message, "fields": list(self.fields or [])}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def _not_found() -> SalesforceError:
    return SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")


def _malformed(message: str) -> SalesforceError:
    return SalesforceError(400, "MALFORMED_QUERY", message)


def _too_long(spec: FieldSpec) -> SalesforceError:
    """``STRING_TOO_LONG`` for a text value over the field's length."""
    return SalesforceError(
        400, "STRING_TOO_LONG", f"{spec.label}: data value too large (max length={spec.length})", [spec.name]
    )


def _invalid_email(spec: FieldSpec) -> SalesforceError:
    return SalesforceError(400, "INVALID_EMAIL_ADDRESS", f"{spec.label}: invalid email address", [spec.name])


def _out_of_range(spec: FieldSpec) -> SalesforceError:
    return SalesforceError(
        400, "NUMBER_OUTSIDE_VALID_RANGE", f"{spec.label}: value outside of valid range on numeric field", [spec.name]
    )


def _number_value(quick: QuickField, raw: float) -> float:
    """A JSON number written to a number field, rounded to its scale as Salesforce stores it.

    Raises:
        SalesforceError: ``NUMBER_OUTSIDE_VALID_RANGE``.
    """
    number = float(raw)
    if not math.isfinite(number) or abs(number) >= quick.magnitude:
        raise _out_of_range(quick.spec)
    return round(number, quick.scale) if quick.scale else float(round(number))


def _json_parser_error(message: str) -> SalesforceError:
    return SalesforceError(400, "JSON_PARSER_ERROR", message)


# -- fields --------------------------------------------------------------------------------------------------------
_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "double": "xsd:double",
    "datetime": "xsd:dateTime",
    "date": "xsd:date",
}
_TEXT_TYPES = {"id", "string", "email", "phone", "url", "textarea", "picklist", "combobox", "reference"}


@dataclass(frozen=True)
class FieldSpec:
    """One field of an sObject as describe reports it, and the rules the emulator enforces on writes."""

    name: str
    label: str
    type: str
    length: int = 0
    custom: bool = False
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    defaulted_on_create: bool = False
    picklist: tuple[str, ...] = ()
    default_picklist: str | None = None
    restricted_picklist: bool = False
    precision: int = 0
    scale: int = 0
    filterable: bool = True
    sortable: bool = True
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    name_field: bool = False
    id_lookup: bool = False
    external_id: bool = False
    unique: bool = False

    @functools.cached_property
    def magnitude_limit(self) -> float:
        """A number field's values must stay below this in size (its digits before the decimal point)."""
        return float(10 ** (self.precision - self.scale))

    @property
    def required(self) -> bool:
        """Whether a create must give a value (Salesforce's "required" is not nillable and not defaulted)."""
        return self.createable and not self.nillable and not self.defaulted_on_create

    @property
    def is_text(self) -> bool:
        return self.type in _TEXT_TYPES

    def _default_value(self) -> Any:
        if self.default_picklist:
            return self.default_picklist
        return False if self.type == "boolean" else None

    def describe(self) -> dict[str, Any]:
        """The field's entry in ``GET /sobjects/{name}/describe`` (DescribeFieldResult)."""
        text = self.is_text
        byte_length = self.length * 3 if self.type not in {"id", "reference"} else 18
        groupable = self.type not in {"double", "datetime", "textarea"} and self.filterable
        return {
            "aggregatable": self.type != "textarea",
            "aiPredictionField": False,
            "autoNumber": False,
            "byteLength": byte_length if text else 0,
            "calculated": self.name == "Name",
            "calculatedFormula": None,
            "cascadeDelete": False,
            "caseSensitive": False,
            "compoundFieldName": None,
            "controllerName": None,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": self._default_value(),
            "defaultValueFormula": None,
            "defaultedOnCreate": self.defaulted_on_create,
            "dependentPicklist": False,
            "deprecatedAndHidden": False,
            "digits": 0,
            "displayLocationInDecimal": False,
            "encrypted": False,
            "externalId": self.external_id,
            "extraTypeInfo": _EXTRA_TYPE_INFO.get(self.name),
            "filterable": self.filterable,
            "filteredLookupInfo": None,
            "formulaTreatNullNumberAsZero": False,
            "groupable": groupable,
            "highScaleNumber": False,
            "htmlFormatted": False,
            "idLookup": self.id_lookup,
            "inlineHelpText": None,
            "label": self.label,
            "length": self.length if text else 0,
            "mask": None,
            "maskType": None,
            "name": self.name,
            "nameField": self.name_field,
            "namePointing": False,
            "nillable": self.nillable,
            "permissionable": self.custom or (self.nillable and self.updateable),
            "picklistValues": [
                {"active": True, "defaultValue": value == self.default_picklist, "label": value, "validFor": None,
                 "value": value}
                for value in self.picklist
            ],
            "polymorphicForeignKey": self.name == "OwnerId" or len(self.reference_to) > 1,
            "precision": self.precision,
            "queryByDistance": False,
            "referenceTargetField": None,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "relationshipOrder": None,
            "restrictedDelete": False,
            "restrictedPicklist": self.restricted_picklist,
            "scale": self.scale,
            "searchPrefilterable": False,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "sortable": self.sortable,
            "type": self.type,
            "unique": self.unique,
            "updateable": self.updateable,
            "writeRequiresMasterRead": False,
        }


_EXTRA_TYPE_INFO = {"Name": "personname", "Description": "plaintextarea", "Body": "plaintextarea", "Website": None}


def _audit_field(name: str, label: str, field_type: str, relationship: str | None = None) -> FieldSpec:
    """A read-only field Salesforce fills itself (created/modified by and when)."""
    return FieldSpec(
        name,
        label,
        field_type,
        18 if field_type == "reference" else 0,
        createable=False,
        updateable=False,
        nillable=False,
        defaulted_on_create=True,
        reference_to=("User",) if field_type == "reference" else (),
        relationship_name=relationship,
    )


def _system_fields(*, activity: bool = True) -> list[FieldSpec]:
    """Owner and audit fields, plus ``LastActivityDate`` on objects that have an activity history."""
    fields = [
        FieldSpec("OwnerId", "Owner ID", "reference", 18, nillable=False, defaulted_on_create=True,
                  reference_to=("User",), relationship_name="Owner"),
        _audit_field("CreatedDate", "Created Date", "datetime"),
        _audit_field("CreatedById", "Created By ID", "reference", "CreatedBy"),
        _audit_field("LastModifiedDate", "Last Modified Date", "datetime"),
        _audit_field("LastModifiedById", "Last Modified By ID", "reference", "LastModifiedBy"),
        _audit_field("SystemModstamp", "System Modstamp", "datetime"),
    ]
    if activity:
        fields.append(FieldSpec("LastActivityDate", "Last Activity", "date", createable=False, updateable=False))
    return fields


LEAD_SOURCE_VALUES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Social Media", "Other")
LEAD_STATUS_VALUES = ("Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted")
SENTIMENT_VALUES = ("positive", "neutral", "negative", "mixed")


def _person_name_fields(object_label: str) -> list[FieldSpec]:
    """The fields a Contact and a Lead both open with: the record ID, the deleted flag, the compound name, the
    title."""
    return [
        FieldSpec("Id", f"{object_label} ID", "id", 18, createable=False, updateable=False, nillable=False,
                  defaulted_on_create=True, id_lookup=True),
        FieldSpec("IsDeleted", "Deleted", "boolean", createable=False, updateable=False, nillable=False,
                  defaulted_on_create=True),
        FieldSpec("LastName", "Last Name", "string", 80, nillable=False),
        FieldSpec("FirstName", "First Name", "string", 40),
        FieldSpec("Salutation", "Salutation", "picklist", 40, picklist=("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")),
        FieldSpec("Name", "Full Name", "string", 121, createable=False, updateable=False, nillable=False,
                  name_field=True),
        FieldSpec("Title", "Title", "string", 128),
    ]


def _contact_fields() -> list[FieldSpec]:
    return [
        *_person_name_fields("Contact"),
        FieldSpec("Department", "Department", "string", 80),
        FieldSpec("Email", "Email", "email", 80, id_lookup=True),
        FieldSpec("Phone", "Business Phone", "phone", 40),
        FieldSpec("MobilePhone", "Mobile Phone", "phone", 40),
        FieldSpec("MailingCity", "Mailing City", "string", 40),
        FieldSpec("MailingCountry", "Mailing Country", "string", 80),
        FieldSpec("LeadSource", "Lead Source", "picklist", 255, picklist=LEAD_SOURCE_VALUES),
        FieldSpec("Description", "Contact Description", "textarea", 32000, filterable=False, sortable=False),
        FieldSpec("HasOptedOutOfEmail", "Email Opt Out", "boolean", nillable=False, defaulted_on_create=True),
        *_system_fields(),
    ]


def _lead_fields() -> list[FieldSpec]:
    return [
        *_person_name_fields("Lead"),
        FieldSpec("Company", "Company", "string", 255, nillable=False),
        FieldSpec("City", "City", "string", 40),
        FieldSpec("Country", "Country", "string", 80),
        FieldSpec("Phone", "Phone", "phone", 40),
        FieldSpec("MobilePhone", "Mobile Phone", "phone", 40),
        FieldSpec("Email", "Email", "email", 80, id_lookup=True),
        FieldSpec("Website", "Website", "url", 255),
        FieldSpec("Description", "Description", "textarea", 32000, filterable=False, sortable=False),
        FieldSpec("LeadSource", "Lead Source", "picklist", 255, picklist=LEAD_SOURCE_VALUES),
        FieldSpec("Status", "Status", "picklist", 255, nillable=False, defaulted_on_create=True,
                  picklist=LEAD_STATUS_VALUES, default_picklist=LEAD_STATUS_VALUES[0]),
        FieldSpec("Industry", "Industry", "picklist", 255,
                  picklist=("Apparel", "Consulting", "Education", "Food & Beverage", "Media", "Retail", "Technology")),
        FieldSpec("Rating", "Rating", "picklist", 255, picklist=("Hot", "Warm", "Cold")),
        FieldSpec("HasOptedOutOfEmail", "Email Opt Out", "boolean", nillable=False, defaulted_on_create=True),
        FieldSpec("IsConverted", "Converted", "boolean", createable=False, updateable=False, nillable=False,
                  defaulted_on_create=True),
        FieldSpec("ConvertedDate", "Converted Date", "date", createable=False, updateable=False),
        FieldSpec("ConvertedContactId", "Converted Contact ID", "reference", 18, createable=False,
                  updateable=False, reference_to=("Contact",), relationship_name="ConvertedContact"),
        FieldSpec("IsUnreadByOwner", "Unread By Owner", "boolean", nillable=False, defaulted_on_create=True),
        *_system_fields(),
    ]


TASK_STATUS_VALUES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
#: Statuses that close a Task (it moves from open activities to the activity history).
CLOSED_TASK_STATUSES = frozenset({"Completed"})
TASK_PRIORITY_VALUES = ("High", "Normal", "Low")


def _task_fields() -> list[FieldSpec]:
    return [
        FieldSpec("Id", "Activity ID", "id", 18, createable=False, updateable=False, nillable=False,
                  defaulted_on_create=True, id_lookup=True),
        FieldSpec("IsDeleted", "Deleted", "boolean", createable=False, updateable=False, nillable=False,
                  defaulted_on_create=True),
        FieldSpec("WhoId", "Name ID", "reference", 18, reference_to=PERSON_OBJECTS, relationship_name="Who"),
        FieldSpec("Subject", "Subject", "combobox", 255, name_field=True,
                  picklist=("Call", "Send Letter", "Send Quote", "Other")),
        FieldSpec("ActivityDate", "Due Date Only", "date"),
        FieldSpec("Status", "Status", "picklist", 255, nillable=False, defaulted_on_create=True,
                  picklist=TASK_STATUS_VALUES, default_picklist=DEFAULT_TASK_STATUS, restricted_picklist=True),
        FieldSpec("Priority", "Priority", "picklist", 255, nillable=False, defaulted_on_create=True,
                  picklist=TASK_PRIORITY_VALUES, default_picklist="Normal", restricted_picklist=True),
        FieldSpec("IsClosed", "Closed", "boolean", createable=False, updateable=False, nillable=False,
                  defaulted_on_create=True),
        FieldSpec("Description", "Comments", "textarea", 32000, filterable=False, sortable=False),
        FieldSpec("TaskSubtype", "Task Subtype", "picklist", 40, updateable=False, defaulted_on_create=True,
                  picklist=("Task", "Email", "Call"), default_picklist="Task", restricted_picklist=True),
        *_system_fields(activity=False),
    ]


def _note_fields() -> list[FieldSpec]:
    return [
        FieldSpec("Id", "Note ID", "id", 18, createable=False, updateable=False, nillable=False,
                  defaulted_on_create=True, id_lookup=True),
        FieldSpec("IsDeleted", "Deleted", "boolean", createable=False, updateable=False, nillable=False,
                  defaulted_on_create=True),
        FieldSpec("ParentId", "Parent ID", "reference", 18, updateable=False, nillable=False,
                  reference_to=PERSON_OBJECTS, relationship_name="Parent"),
        FieldSpec("Title", "Title", "string", 80, nillable=False, name_field=True),
        FieldSpec("IsPrivate", "Private", "boolean", nillable=False, defaulted_on_create=True),
        FieldSpec("Body", "Body", "textarea", 32000, filterable=False, sortable=False),
        *_system_fields(activity=False),
    ]


#: The seed's social custom fields, present on Contact and Lead unless configured otherwise.
SOCIAL_CUSTOM_FIELDS: dict[str, FieldSpec] = {
    spec.name: spec
    for spec in (
        FieldSpec("twitter_username__c", "Twitter Username", "string", 100, custom=True),
        FieldSpec("twitter_url__c", "Twitter URL", "url", 255, custom=True),
        FieldSpec("twitter_followers__c", "Twitter Followers", "double", precision=18, scale=0, custom=True),
        FieldSpec("instagram_username__c", "Instagram Username", "string", 100, custom=True),
        FieldSpec("instagram_url__c", "Instagram URL", "url", 255, custom=True),
        FieldSpec("instagram_followers__c", "Instagram Followers", "double", precision=18, scale=0, custom=True),
        FieldSpec("linkedin_username__c", "LinkedIn Username", "string", 100, custom=True),
        FieldSpec("linkedin_url__c", "LinkedIn URL", "url", 255, custom=True),
        FieldSpec("social_touchpoints__c", "Social Touchpoints", "textarea", 32768, custom=True, filterable=False,
                  sortable=False),
        FieldSpec("social_followers__c", "Social Followers", "double", precision=18, scale=0, custom=True),
        FieldSpec("social_engagement_score__c", "Social Engagement Score", "double", precision=5, scale=2,
                  custom=True),
        FieldSpec("social_sentiment__c", "Social Sentiment", "picklist", 255, custom=True,
                  picklist=SENTIMENT_VALUES, restricted_picklist=True),
        FieldSpec("lead_source_detail__c", "Lead Source Detail", "string", 255, custom=True),
    )
}
DEFAULT_CUSTOM_FIELDS: tuple[str, ...] = tuple(SOCIAL_CUSTOM_FIELDS)


def custom_field_spec(name: str) -> FieldSpec:
    """The spec of a configured custom field: a known social field, or a text field for any other ``__c`` name.

    Raises:
        ValueError: when the name does not end in ``__c``.
    """
    if name in SOCIAL_CUSTOM_FIELDS:
        return SOCIAL_CUSTOM_FIELDS[name]
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*__c", name) or "___" in name:
        raise ValueError(f"custom field {name!r} must be an API name ending in __c")
    label = name.removesuffix("__c").replace("_", " ").strip().title()
    return FieldSpec(name, label, "string", 255, custom=True)


class QuickField(NamedTuple):
    """How to check the usual value of a writable text, email or number field (see ``_validated_values``)."""

    spec: FieldSpec
    is_email: bool
    #: Text: the most characters; numbers: 0.
    length: int
    #: Numbers: the magnitude a value must stay under, and the decimal places kept.
    magnitude: float = 0.0
    scale: int = 0


class ObjectSchema:
    """The fields of one sObject, looked up case-insensitively as Salesforce does."""

    def __init__(
        self, name: str, label: str, label_plural: str, fields: Sequence[FieldSpec], *, mergeable: bool = False
    ) -> None:
        self.name = name
        self.label = label
        self.label_plural = label_plural
        self.mergeable = mergeable
        self.key_prefix = KEY_PREFIXES[name]
        self.fields: list[FieldSpec] = list(fields)
        self._by_lower = {f.name.lower(): f for f in self.fields}
        #: Fields by the names as clients spell them (filled as they come; writes name the same fields each time).
        self._by_name = {f.name: f for f in self.fields}
        #: Fields a write must not leave empty: (name, whether required even when the write does not name it).
        self.checked_on_write: tuple[tuple[str, bool], ...] = tuple(
            (f.name, f.required) for f in self.fields if f.required or (f.createable and not f.nillable)
        )
        #: The text, email and number fields a create (or an update) may set, by name as described: how a write's
        #: common values (text into a text field, a number into a number field) are checked.
        self.quick_creates = self._quick_fields(creating=True)
        self.quick_updates = self._quick_fields(creating=False)

    def _quick_fields(self, *, creating: bool) -> dict[str, QuickField]:
        quick: dict[str, QuickField] = {}
        for spec in self.fields:
            if spec.name == "Id" or not (spec.createable if creating else spec.updateable):
                continue
            if spec.type in _PLAIN_TEXT_TYPES or spec.type == "email":
                quick[spec.name] = QuickField(spec, spec.type == "email", spec.length or sys.maxsize)
            elif spec.type == "double":
                quick[spec.name] = QuickField(spec, False, 0, spec.magnitude_limit, spec.scale)
        return quick

    def get(self, name: str) -> FieldSpec | None:
        spec = self._by_name.get(name)
        if spec is None:
            spec = self._by_lower.get(name.lower())
            if spec is not None:
                self._by_name[name] = spec
        return spec

    def field(self, name: str) -> FieldSpec:
        """The field called ``name`` (any case).

        Raises:
            SalesforceError: ``INVALID_FIELD`` when the object has no such field.
        """
        spec = self.get(name)
        if spec is None:
            raise SalesforceError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {self.name}")
        return spec

    def describe(self, base_path: str) -> dict[str, Any]:
        """``GET /sobjects/{name}/describe`` (DescribeSObjectResult)."""
        return {
            "actionOverrides": [],
            "activateable": False,
            "childRelationships": [],
            "compactLayoutable": True,
            "createable": True,
            "custom": False,
            "customSetting": False,
            "dataTranslationEnabled": False,
            "deepCloneable": False,
            "defaultImplementation": None,
            "deletable": True,
            "deprecatedAndHidden": False,
            "feedEnabled": True,
            "fields": [spec.describe() for spec in self.fields],
            "hasSubtypes": False,
            "idEnabled": True,
            "implementedBy": None,
            "implementsInterfaces": None,
            "isInterface": False,
            "isSubtype": False,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label_plural,
            "layoutable": True,
            "mergeable": self.mergeable,
            "mruEnabled": True,
            "name": self.name,
            "namedLayoutInfos": [],
            "networkScopeFieldName": None,
            "queryable": True,
            "recordTypeInfos": [
                {
                    "active": True,
                    "available": True,
                    "defaultRecordTypeMapping": True,
                    "developerName": "Master",
                    "master": True,
                    "name": "Master",
                    "recordTypeId": "012000000000000AAA",
                }
            ],
            "replicateable": True,
            "retrieveable": True,
            "searchLayoutable": True,
            "searchable": True,
            "supportedScopes": [
                {"label": "All " + self.label_plural.lower(), "name": "everything"},
                {"label": "My " + self.label_plural.lower(), "name": "mine"},
            ],
            "triggerable": True,
            "undeletable": True,
            "updateable": True,
            "urlDetail": f"{base_path}/{{ID}}",
            "urlEdit": f"{base_path}/{{ID}}/e",
            "urlNew": f"{base_path}/{self.key_prefix}/e",
        }


# -- SOQL ----------------------------------------------------------------------------------------------------------
_SOQL_TOKEN = re.compile(
    # Strings and punctuation first: an IN list of emails is mostly those. No two kinds can start alike, except
    # datetime, date and number, kept in that order.
    r"""
    (?P<string>'[^'\\]*(?:\\.[^'\\]*)*')
    |(?P<punct>[(),])
    |(?P<ws>\s+)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:?\d{2}))
    |(?P<date>\d{4}-\d{2}-\d{2})(?![\dT:])
    |(?P<number>[+-]?\d+(?:\.\d+)?)(?![A-Za-z_])
    |(?P<op><=|>=|!=|<>|=|<|>)
    """,
    re.VERBOSE,
)
_STRING_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_LIKE_ESCAPES = {"_": "_", "%": "%"}
SOQL_KEYWORDS = frozenset(
    {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "NULLS", "FIRST",
     "LAST", "LIMIT", "OFFSET", "NULL", "TRUE", "FALSE"}
)


class _Token(NamedTuple):
    """One SOQL token: its kind, its text as written, where it starts, and its value (literals)."""

    kind: str
    text: str
    column: int
    value: Any = None

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "ident" else ""

    @property
    def like_pattern(self) -> str:
        """A string literal as the regex of a LIKE pattern (built only when a LIKE needs it)."""
        return _decode_string(self.text, self.column)[1] if self.kind == "string" else ""


def _decode_string(raw: str, column: int) -> tuple[str, str]:
    """The value of a quoted SOQL string, and a LIKE regex built from it (``\\%`` and ``\\_`` stay literal)."""
    body = raw[1:-1]
    if "\\" not in body:
        return body, _like_regex(body)
    value: list[str] = []
    pattern: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            escaped = body[index + 1]
            if escaped in _STRING_ESCAPES:
                value.append(_STRING_ESCAPES[escaped])
                pattern.append(re.escape(_STRING_ESCAPES[escaped]))
            elif escaped in _LIKE_ESCAPES:
                value.append("\\" + escaped)
                pattern.append(re.escape(escaped))
            else:
                raise _malformed(
                    f"ERROR at Row:1:Column:{column + index}\nInvalid string literal '{raw}'. "
                    "Illegal character sequence '\\" + escaped + "' in string literal."
                )
            index += 2
            continue
        value.append(char)
        pattern.append(_like_regex(char))
        index += 1
    return "".join(value), "".join(pattern)


def _like_regex(text: str) -> str:
    """A LIKE pattern without escapes as a regex: ``%`` any run of characters, ``_`` any one character."""
    return ".*".join(".".join(re.escape(piece) for piece in part.split("_")) for part in text.split("%"))


def tokenize_soql(text: str) -> list[_Token]:
    """Split SOQL into tokens.

    Raises:
        SalesforceError: ``MALFORMED_QUERY`` at the first character that starts no token.
    """
    tokens: list[_Token] = []
    append = tokens.append
    position = 0
    # finditer walks the text in C; a token that does not start where the previous one ended is a gap nothing
    # matched (or the text stopped matching before its end).
    for match in _SOQL_TOKEN.finditer(text):
        start = match.start()
        if start != position:
            break
        position = match.end()
        kind = match.lastgroup or ""
        if kind == "ws":
            continue
        raw = text[start:position]
        column = start + 1
        if kind == "string":
            # No escapes (an email, a name): the value is the body as written.
            append(_Token(kind, raw, column, raw[1:-1] if "\\" not in raw else _decode_string(raw, column)[0]))
        elif kind == "number":
            append(_Token(kind, raw, column, float(raw)))
        elif kind == "datetime":
            append(_Token(kind, raw, column, parse_datetime_literal(raw)))
        elif kind == "date":
            try:
                append(_Token(kind, raw, column, date.fromisoformat(raw)))
            except ValueError:
                raise _malformed(f"ERROR at Row:1:Column:{column}\nvalue of date literal is invalid: {raw}") from None
        else:
            append(_Token(kind, raw, column))
    if position < len(text):
        if text[position] == "'":
            raise _malformed(f"ERROR at Row:1:Column:{position + 1}\nunterminated string literal")
        raise _malformed(f"ERROR at Row:1:Column:{position + 1}\nunexpected token: '{text[position]}'")
    return tokens


@dataclass(frozen=True)
class Condition:
    """``Field op value`` in a WHERE clause (``IN``/``NOT IN`` carry a tuple of values)."""

    field: str
    operator: str
    values: tuple[_Token, ...]
    column: int


@dataclass(frozen=True)
class BoolExpression:
    """``AND``/``OR`` of conditions, or ``NOT`` of one."""

    operator: str
    operands: tuple[Condition | BoolExpression, ...]


Expression = Condition | BoolExpression


@dataclass(frozen=True)
class OrderItem:
    field: str
    descending: bool = False
    nulls_first: bool | None = None


@dataclass
class SoqlQuery:
    """A parsed SOQL query of the supported subset (fields still unresolved)."""

    fields: list[str]
    object_name: str
    object_column: int
    where: Expression | None = None
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0
    count_only: bool = False
    fields_function: str | None = None


class _SoqlParser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize_soql(text)
        self.index = 0

    def peek(self, ahead: int = 0) -> _Token | None:
        position = self.index + ahead
        return self.tokens[position] if position < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise _malformed("unexpected end of query")
        self.index += 1
        return token

    def unexpected(self, token: _Token | None) -> SalesforceError:
        if token is None:
            return _malformed("unexpected end of query")
        return _malformed(f"ERROR at Row:1:Column:{token.column}\nunexpected token: '{token.text}'")

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.upper == word:
            self.index += 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise self.unexpected(self.peek())

    def at(self, char: str) -> bool:
        """Whether the next token is the punctuation ``char`` (consumed when it is)."""
        token = self.peek()
        if token is not None and token.kind == "punct" and token.text == char:
            self.index += 1
            return True
        return False

    def expect_punct(self, char: str) -> None:
        token = self.peek()
        if token is None or token.text != char:
            raise self.unexpected(token)
        self.index += 1

    def field_name(self) -> str:
        token = self.take()
        if token.kind != "ident" or token.upper in SOQL_KEYWORDS:
            raise self.unexpected(token)
        return token.text

    def integer(self) -> int:
        token = self.take()
        if token.kind != "number" or not token.text.isdigit():
            raise self.unexpected(token)
        return int(token.text)

    def parse(self) -> SoqlQuery:
        self.expect_keyword("SELECT")
        fields: list[str] = []
        count_only = False
        fields_function = None
        first = self.peek()
        second = self.peek(1)
        if first is not None and first.upper == "COUNT" and second is not None and second.text == "(":
            self.index += 2
            self.expect_punct(")")
            count_only = True
        elif first is not None and first.upper == "FIELDS" and second is not None and second.text == "(":
            self.index += 2
            kind = self.take()
            if kind.upper not in {"ALL", "STANDARD", "CUSTOM"}:
                raise self.unexpected(kind)
            self.expect_punct(")")
            fields_function = kind.upper
        else:
            fields.append(self.field_name())
            while self.at(","):
                fields.append(self.field_name())
        self.expect_keyword("FROM")
        object_token = self.take()
        if object_token.kind != "ident" or object_token.upper in SOQL_KEYWORDS:
            raise self.unexpected(object_token)
        query = SoqlQuery(
            fields=fields,
            object_name=object_token.text,
            object_column=object_token.column,
            count_only=count_only,
            fields_function=fields_function,
        )
        if self.keyword("WHERE"):
            query.where = self.expression()
        if self.keyword("ORDER"):
            self.expect_keyword("BY")
            query.order_by.append(self.order_item())
            while self.at(","):
                query.order_by.append(self.order_item())
        if self.keyword("LIMIT"):
            query.limit = self.integer()
        if self.keyword("OFFSET"):
            query.offset = self.integer()
        if self.peek() is not None:
            raise self.unexpected(self.peek())
        return query

    def order_item(self) -> OrderItem:
        name = self.field_name()
        descending = False
        if self.keyword("DESC"):
            descending = True
        else:
            self.keyword("ASC")
        nulls_first = None
        if self.keyword("NULLS"):
            if self.keyword("FIRST"):
                nulls_first = True
            else:
                self.expect_keyword("LAST")
                nulls_first = False
        return OrderItem(name, descending, nulls_first)

    def expression(self) -> Expression:
        operands = [self.term()]
        joiner: str | None = None
        while True:
            token = self.peek()
            if token is None or token.upper not in {"AND", "OR"}:
                break
            if joiner is not None and token.upper != joiner:
                # SOQL refuses to guess precedence: mixing AND and OR needs parentheses.
                raise self.unexpected(token)
            joiner = token.upper
            self.index += 1
            operands.append(self.term())
        if joiner is None:
            return operands[0]
        return BoolExpression(joiner, tuple(operands))

    def term(self) -> Expression:
        if self.keyword("NOT"):
            return BoolExpression("NOT", (self.term(),))
        if self.at("("):
            inner = self.expression()
            self.expect_punct(")")
            return inner
        return self.condition()

    def value(self) -> _Token:
        token = self.take()
        if token.kind in {"string", "number", "datetime", "date"}:
            return token
        if token.kind == "ident" and token.upper in {"NULL", "TRUE", "FALSE"}:
            return token
        raise self.unexpected(token)

    def condition(self) -> Condition:
        name_token = self.peek()
        name = self.field_name()
        assert name_token is not None
        token = self.peek()
        if token is None:
            raise self.unexpected(token)
        if token.upper in {"IN", "NOT"}:
            self.index += 1
            operator = "IN"
            if token.upper == "NOT":
                self.expect_keyword("IN")
                operator = "NOT IN"
            self.expect_punct("(")
            values = [self.value()]
            while self.at(","):
                values.append(self.value())
            self.expect_punct(")")
            return Condition(name, operator, tuple(values), name_token.column)
        if token.upper == "LIKE":
            self.index += 1
            pattern = self.take()
            if pattern.kind != "string":
                raise self.unexpected(pattern)
            return Condition(name, "LIKE", (pattern,), name_token.column)
        if token.kind != "op":
            raise self.unexpected(token)
        self.index += 1
        operator = "!=" if token.text == "<>" else token.text
        return Condition(name, operator, (self.value(),), name_token.column)


def parse_soql(text: str) -> SoqlQuery:
    """Parse the supported SOQL subset.

    Raises:
        SalesforceError: ``MALFORMED_QUERY`` with the row and column of the problem.
    """
    return _SoqlParser(text).parse()


_Predicate = Callable[[dict[str, Any]], bool]


def _literal(token: _Token, spec: FieldSpec) -> Any:
    """The Python value of a literal compared with ``spec``; refuses the wrong literal type like Salesforce."""
    if token.kind == "ident" and token.upper == "NULL":
        return None
    if spec.is_text:
        if token.kind != "string":
            raise SalesforceError(
                400, "INVALID_QUERY_FILTER_OPERATOR",
                f"ERROR at Row:1:Column:{token.column}\nvalue of filter criterion for field '{spec.name}' must be "
                "of type string and should be enclosed in quotes",
            )
        return str(token.value).casefold()
    if spec.type == "double":
        if token.kind != "number":
            raise SalesforceError(
                400, "INVALID_QUERY_FILTER_OPERATOR",
                f"ERROR at Row:1:Column:{token.column}\nvalue of filter criterion for field '{spec.name}' must be "
                "of type double and should not be enclosed in quotes",
            )
        return float(token.value)
    if spec.type == "boolean":
        if token.upper not in {"TRUE", "FALSE"}:
            raise SalesforceError(
                400, "INVALID_QUERY_FILTER_OPERATOR",
                f"ERROR at Row:1:Column:{token.column}\nvalue of filter criterion for field '{spec.name}' must be "
                "of type boolean and should not be enclosed in quotes",
            )
        return token.upper == "TRUE"
    wanted = "datetime" if spec.type == "datetime" else "date"
    if token.kind != wanted:
        kind = "dateTime" if wanted == "datetime" else "date"
        raise SalesforceError(
            400, "INVALID_QUERY_FILTER_OPERATOR",
            f"ERROR at Row:1:Column:{token.column}\nvalue of filter criterion for field '{spec.name}' must be of "
            f"type {kind} and should not be enclosed in quotes",
        )
    return token.value


def _comparable(value: Any, spec: FieldSpec) -> Any:
    if value is None:
        return None
    if spec.is_text:
        return str(value).casefold()
    return value


def compile_where(expression: Expression, schema: ObjectSchema) -> _Predicate:
    """A predicate over stored records for a parsed WHERE clause.

    Raises:
        SalesforceError: ``INVALID_FIELD`` for unknown or non-filterable fields, ``INVALID_QUERY_FILTER_OPERATOR``
            for a literal of the wrong type or an operator the field does not support.
    """
    if isinstance(expression, BoolExpression):
        parts = [compile_where(operand, schema) for operand in expression.operands]
        if expression.operator == "NOT":
            only = parts[0]
            return lambda record: not only(record)
        if expression.operator == "AND":
            return lambda record: all(part(record) for part in parts)
        return lambda record: any(part(record) for part in parts)
    spec = _query_field(schema, expression.field, expression.column)
    if not spec.filterable:
        raise SalesforceError(
            400, "INVALID_FIELD",
            f"ERROR at Row:1:Column:{expression.column}\nfield '{spec.name}' can not be filtered in a query call",
        )
    name = spec.name
    operator = expression.operator
    if operator == "LIKE":
        if not spec.is_text:
            raise SalesforceError(
                400, "INVALID_QUERY_FILTER_OPERATOR",
                f"ERROR at Row:1:Column:{expression.column}\ninvalid operator on {spec.type} field: LIKE",
            )
        regex = re.compile(expression.values[0].like_pattern, re.IGNORECASE | re.DOTALL)
        return lambda record: record.get(name) is not None and regex.fullmatch(str(record[name])) is not None
    values = [_literal(token, spec) for token in expression.values]
    if operator in {"IN", "NOT IN"}:
        wanted = frozenset(values)
        if operator == "IN":
            return lambda record: _comparable(record.get(name), spec) in wanted
        return lambda record: _comparable(record.get(name), spec) not in wanted
    value = values[0]
    if operator == "=":
        return lambda record: _comparable(record.get(name), spec) == value
    if operator == "!=":
        return lambda record: _comparable(record.get(name), spec) != value
    if spec.type == "boolean":
        raise SalesforceError(
            400, "INVALID_QUERY_FILTER_OPERATOR",
            f"ERROR at Row:1:Column:{expression.column}\ninvalid operator on boolean field: {operator}",
        )
    if value is None:
        return lambda record: False
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    check = compare[operator]

    def ordered(record: dict[str, Any]) -> bool:
        current = _comparable(record.get(name), spec)
        return current is not None and check(current, value)

    return ordered


def _query_field(schema: ObjectSchema, name: str, column: int) -> FieldSpec:
    if "." in name:
        relationship = name.split(".")[0]
        raise SalesforceError(
            400, "INVALID_FIELD",
            f"ERROR at Row:1:Column:{column}\nDidn't understand relationship '{relationship}' in field path. "
            "If you are attempting to use a custom relationship, be sure to append the '__r' after the custom "
            "relationship name. Please reference your WSDL or the describe call for the appropriate names.",
        )
    spec = schema.get(name)
    if spec is None:
        raise SalesforceError(
            400, "INVALID_FIELD",
            f"ERROR at Row:1:Column:{column}\nNo such column '{name}' on entity '{schema.name}'. If you are "
            "attempting to use a custom field, be sure to append the '__c' after the custom field name. Please "
            "reference your WSDL or the describe call for the appropriate names.",
        )
    return spec


def _sort_key(spec: FieldSpec, null_rank: int) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    name = spec.name

    def key(record: dict[str, Any]) -> tuple[Any, ...]:
        value = _comparable(record.get(name), spec)
        return (null_rank,) if value is None else (1, value)

    return key


def _index_lookup(expression: Expression | None, schema: ObjectSchema) -> tuple[str, list[str]] | None:
    """``(field, values)`` when the WHERE clause pins Id or Email to a few values (an index can answer it)."""
    if expression is None:
        return None
    candidates: Iterable[Expression]
    if isinstance(expression, BoolExpression):
        if expression.operator != "AND":
            return None
        candidates = expression.operands
    else:
        candidates = (expression,)
    for item in candidates:
        if not isinstance(item, Condition) or item.operator not in {"=", "IN"}:
            continue
        spec = schema.get(item.field)
        if spec is None or spec.name not in {"Id", "Email"}:
            continue
        if any(token.kind != "string" for token in item.values):
            continue
        return spec.name, [str(token.value) for token in item.values]
    return None


def _stamp_floor(expression: Expression | None, schema: ObjectSchema) -> datetime | None:
    """The least ``SystemModstamp`` a record matching ``expression`` can have, where the clause bounds it below.

    ``>``, ``>=`` and ``=`` on the stamp bound it; an AND is bounded by any of its terms, an OR only when every
    branch is (by the least of their floors).
    """
    if expression is None:
        return None
    if isinstance(expression, BoolExpression):
        if expression.operator == "NOT":
            return None
        floors = [_stamp_floor(operand, schema) for operand in expression.operands]
        known = [floor for floor in floors if floor is not None]
        if expression.operator == "AND":
            return max(known) if known else None
        return min(known) if known and len(known) == len(floors) else None
    spec = schema.get(expression.field)
    if spec is None or spec.name != "SystemModstamp" or expression.operator not in {">", ">=", "="}:
        return None
    value = _literal(expression.values[0], spec)
    return value if isinstance(value, datetime) else None


def _in_stamp_order(order_by: list[OrderItem], schema: ObjectSchema) -> bool:
    """Whether ``ORDER BY`` is ``SystemModstamp`` ascending, alone or then by ``Id`` ascending: the index's order."""
    names = [schema.get(item.field) for item in order_by]
    wanted = [["SystemModstamp"], ["SystemModstamp", "Id"]]
    return (
        [spec.name if spec is not None else "" for spec in names] in wanted
        and not any(item.descending for item in order_by)
    )


def _sort_records(records: list[dict[str, Any]], order_by: list[OrderItem], schema: ObjectSchema) -> None:
    for item in reversed(order_by):
        spec = _query_field(schema, item.field, 0)
        if not spec.sortable:
            raise SalesforceError(
                400, "INVALID_FIELD", f"field '{spec.name}' can not be sorted in a query call"
            )
        nulls_first = item.nulls_first if item.nulls_first is not None else not item.descending
        # With reverse=True the order of the null rank flips too, so pick the rank that lands nulls where asked.
        null_rank = (0 if nulls_first else 2) if not item.descending else (2 if nulls_first else 0)

        records.sort(key=_sort_key(spec, null_rank), reverse=item.descending)


# -- OAuth and session state ---------------------------------------------------------------------------------------
@dataclass
class _AuthorizationCode:
    client_id: str
    redirect_uri: str
    code_challenge: str
    scope: str
    issued_at: float


@dataclass
class _AccessToken:
    refresh_token: str | None
    issued_at: float
    calls: int = 0


@dataclass
class _QueryCursor:
    object_name: str
    fields: list[str]
    ids: list[str]
    page_size: int


@dataclass
class _WriteOutcome:
    """The result of one record write inside a request, with how to undo it for ``allOrNone``."""

    record_id: str | None
    error: SalesforceError | None = None
    undo: Callable[[], None] | None = None


Handler = Callable[[Request], Awaitable[Response]]


class _ConcurrencyGate:
    """Counts API requests in flight (latency included) and marks the ones over the org's concurrent limit."""

    def __init__(self, app: ASGIApp, sandbox: SalesforceSandbox) -> None:
        self.app = app
        self.sandbox = sandbox
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/services/data"):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.sandbox.concurrent_limit:
            scope["salesforce.concurrent_refused"] = True
            await self.app(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class SalesforceSandbox(Sandbox):
    """A Salesforce org with Contacts and Leads behind the REST API, OAuth web-server flow and the org's limits.

    Attributes:
        client_id, client_secret: the connected app's consumer key and secret.
        token_ttl_seconds: access-token lifetime (``None``: until expired by a fault or a control call).
        token_ttl_calls: API calls an access token serves before it expires (``None``: no such limit).
        daily_api_limit: the org's rolling 24-hour API allocation.
        concurrent_limit: API requests that may be in flight at once.
        query_page_size: records per query page (Salesforce: 2,000).
        duplicate_rules: whether the Email duplicate rules are active.
        records: per object, the records by 18-character id (field name -> value).
    """

    provider = "salesforce"

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        token_ttl_seconds: float | None = DEFAULT_TOKEN_TTL_SECONDS,
        token_ttl_calls: int | None = None,
        daily_api_limit: int = DEFAULT_DAILY_API_LIMIT,
        concurrent_limit: int = DEFAULT_CONCURRENT_LIMIT,
        query_page_size: int = DEFAULT_QUERY_PAGE_SIZE,
        custom_fields: Sequence[str] = DEFAULT_CUSTOM_FIELDS,
        duplicate_rules: bool = True,
        require_client_secret: bool = False,
        customize_application: bool = True,
        field_access_on_create: bool = True,
        read_only_objects: Sequence[str] = (),
        api_enabled: bool = True,
    ) -> None:
        super().__init__(config)
        #: Objects the integration user may read but not create or edit (its profile lacks Create and Edit on
        #: them): each write of such a record fails with ``INSUFFICIENT_ACCESS_OR_READONLY``.
        self.read_only_objects = frozenset(read_only_objects)
        #: Whether the integration user has "API Enabled"; without it every API call answers 403
        #: ``API_DISABLED_FOR_ORG``.
        self.api_enabled = api_enabled
        #: Whether the integration user may change the org's setup (create fields with the Tooling API).
        self.customize_application = customize_application
        #: Whether a field created over the Tooling API is readable by the integration user at once; real orgs
        #: grant a new field to no profile, so an admin must grant field-level security before the API sees it.
        self.field_access_on_create = field_access_on_create
        #: Fields created over the Tooling API, per object, and whether the integration user may see each.
        self.created_fields: dict[str, dict[str, tuple[FieldSpec, bool]]] = {}
        self._next_field_number = 1
        self.token_ttl_seconds = token_ttl_seconds
        self.token_ttl_calls = token_ttl_calls
        self.daily_api_limit = daily_api_limit
        self.concurrent_limit = concurrent_limit
        self.query_page_size = query_page_size
        self.duplicate_rules = duplicate_rules
        self.require_client_secret = require_client_secret
        self._secrets = secrets.SystemRandom()
        self.client_id = "3MVG9" + secrets.token_urlsafe(60).replace("-", ".").replace("_", "A")[:80]
        self.client_secret = secrets.token_hex(32).upper()
        self.org_id = salesforce_id("00D", 7_000_001, pod="5g")
        self.user_id = salesforce_id("005", 1_000_001, pod="5g")
        self.sales_rep_id = salesforce_id("005", 1_000_002, pod="5g")
        self.username = "integration@crm-desktop.sandbox"
        self._codes: dict[str, _AuthorizationCode] = {}
        self._refresh_tokens: dict[str, tuple[str, str]] = {}
        self._access_tokens: dict[str, _AccessToken] = {}
        self._api_calls: list[float] = []
        self._api_calls_start = 0
        self._cursors: OrderedDict[str, _QueryCursor] = OrderedDict()
        self._next_number = {name: 40_000 + self.random.randrange(1_000) for name in PERSON_OBJECTS}
        # Fixed starts for the other objects keep the seeded random sequence (faults, jitter) what it was.
        self._next_number.update({name: 40_000 for name in OBJECT_NAMES if name not in PERSON_OBJECTS})
        self.schemas: dict[str, ObjectSchema] = {}
        self.custom_fields: list[str] = []
        self.set_custom_fields(custom_fields)
        self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in OBJECT_NAMES}
        #: Record ids by case-folded email, per object. Tuples, not sets: a tuple of strings drops out of the
        #: garbage collector's sight, and an org holds one per distinct email.
        self._email_index: dict[str, dict[str, tuple[str, ...]]] = {name: {} for name in OBJECT_NAMES}
        self._deleted: dict[str, set[str]] = {name: set() for name in OBJECT_NAMES}
        #: Per object, ``(SystemModstamp, Id as SOQL compares it, Id)`` in stamp order: the index Salesforce keeps on
        #: the stamp, so a change query reads from its cursor on instead of filtering and sorting every record. Built
        #: when a query needs it, dropped by any write to the object.
        self._stamp_index: dict[str, list[tuple[datetime, str, str]] | None] = {name: None for name in OBJECT_NAMES}
        self._preissued_refresh = self._issue_refresh_token(self.client_id)
        self._preissued_access = self._issue_access_token(self._preissued_refresh)
        if self.config.contacts:
            self.seed_people(generate_people(self.config.contacts, self.config.seed))

    # -- configuration ---------------------------------------------------------------------------------------------
    def set_custom_fields(self, names: Sequence[str]) -> None:
        """Which custom ``__c`` fields Contact and Lead have (existing values of removed fields are dropped).

        Task and Note keep their standard fields only.
        """
        specs = [custom_field_spec(name) for name in names]
        self.custom_fields = [spec.name for spec in specs]
        self.created_fields = {}
        self._build_schemas(specs)
        kept = {spec.name for spec in specs}
        for records in getattr(self, "records", {}).values():
            for record in records.values():
                for name in [n for n in record if n.endswith("__c") and n not in kept]:
                    del record[name]

    def _build_schemas(self, specs: Sequence[FieldSpec]) -> None:
        """Contact and Lead with the configured custom fields and those created since (the visible ones)."""

        def created(object_name: str) -> list[FieldSpec]:
            return [spec for spec, visible in self.created_fields.get(object_name, {}).values() if visible]

        self.schemas = {
            "Contact": ObjectSchema(
                "Contact", "Contact", "Contacts", [*_contact_fields(), *specs, *created("Contact")], mergeable=True
            ),
            "Lead": ObjectSchema("Lead", "Lead", "Leads", [*_lead_fields(), *specs, *created("Lead")], mergeable=True),
            "Task": ObjectSchema("Task", "Task", "Tasks", _task_fields()),
            "Note": ObjectSchema("Note", "Note", "Notes", _note_fields()),
        }

    def grant_field_access(self) -> list[str]:
        """Grant the integration user read and edit on every created field (an admin setting field-level security);
        returns the fields granted, as ``Object.Field``."""
        granted: list[str] = []
        for object_name, fields in self.created_fields.items():
            for name, (spec, visible) in list(fields.items()):
                if not visible:
                    fields[name] = (spec, True)
                    granted.append(f"{object_name}.{name}")
        self._build_schemas([custom_field_spec(name) for name in self.custom_fields])
        return granted

    def apply_config(self, changes: dict[str, Any]) -> None:
        """Run-time settings: token lifetime, limits, page size, custom fields, duplicate rules, access, API usage.

        Every value is checked before any is applied, so a refused change leaves the settings as they were.

        Raises:
            ValueError: naming a setting whose value cannot be used (negative, not a number, a bad field name).
        """
        numbers: dict[str, float | None] = {}
        for key in ("token_ttl_seconds", "token_ttl_calls"):
            if key in changes:
                value = changes[key]
                if value is None:
                    numbers[key] = None
                elif key == "token_ttl_calls":
                    numbers[key] = non_negative_int(value, key)
                else:
                    numbers[key] = non_negative_number(value, key)
        counts = {
            key: non_negative_int(changes[key], key)
            for key in ("daily_api_limit", "concurrent_limit", "query_page_size", "api_usage")
            if key in changes
        }
        custom_fields: list[str] | None = None
        if "custom_fields" in changes:
            raw_fields = changes["custom_fields"]
            if not isinstance(raw_fields, list) or not all(isinstance(name, str) for name in raw_fields):
                raise ValueError("custom_fields must be a list of field API names")
            for name in raw_fields:
                custom_field_spec(name)
            custom_fields = raw_fields
        for flag in ("duplicate_rules", "customize_application", "field_access_on_create", "grant_field_access",
                     "api_enabled"):
            if flag in changes and not isinstance(changes[flag], bool):
                raise ValueError(f"{flag} must be true or false")
        read_only: frozenset[str] | None = None
        if "read_only_objects" in changes:
            raw_objects = changes["read_only_objects"]
            if not isinstance(raw_objects, list) or not all(name in OBJECT_NAMES for name in raw_objects):
                raise ValueError(f"read_only_objects must be a list of object names ({', '.join(OBJECT_NAMES)})")
            read_only = frozenset(raw_objects)

        if "token_ttl_seconds" in numbers:
            self.token_ttl_seconds = numbers["token_ttl_seconds"]
        if "token_ttl_calls" in numbers:
            calls = numbers["token_ttl_calls"]
            self.token_ttl_calls = None if calls is None else int(calls)
        if "daily_api_limit" in counts:
            self.daily_api_limit = max(1, counts["daily_api_limit"])
        if "concurrent_limit" in counts:
            self.concurrent_limit = max(1, counts["concurrent_limit"])
        if "query_page_size" in counts:
            self.query_page_size = min(2000, max(200, counts["query_page_size"]))
        if custom_fields is not None:
            self.set_custom_fields(custom_fields)
        if "duplicate_rules" in changes:
            self.duplicate_rules = changes["duplicate_rules"]
        if "customize_application" in changes:
            self.customize_application = changes["customize_application"]
        if "field_access_on_create" in changes:
            self.field_access_on_create = changes["field_access_on_create"]
        if "api_enabled" in changes:
            self.api_enabled = changes["api_enabled"]
        if read_only is not None:
            self.read_only_objects = read_only
        if changes.get("grant_field_access"):
            self.grant_field_access()
        if "api_usage" in counts:
            self.set_api_usage(counts["api_usage"])

    def set_api_usage(self, count: int) -> None:
        """Pretend ``count`` API requests were made just now (to reach the daily allocation quickly)."""
        now = self.clock.monotonic()
        self._api_calls = [now] * max(0, count)
        self._api_calls_start = 0

    # -- Sandbox contract ------------------------------------------------------------------------------------------
    def credentials(self) -> dict[str, Any]:
        """The connected app and a pre-issued session (reissued if the previous access token stopped working)."""
        if self._preissued_refresh not in self._refresh_tokens:
            self._preissued_refresh = self._issue_refresh_token(self.client_id)
        if self._session_problem(self._preissued_access) is not None:
            self._preissued_access = self._issue_access_token(self._preissued_refresh)
        return {
            "clientId": self.client_id,
            "clientSecret": self.client_secret,
            "accessToken": self._preissued_access,
            "refreshToken": self._preissued_refresh,
            "instanceUrl": self.base_url,
        }

    def expire_tokens(self) -> None:
        self._access_tokens.clear()
        logger.info("salesforce sandbox: every access token expired")

    def summary(self) -> dict[str, Any]:
        return {
            **{name: len(self.records[name]) for name in OBJECT_NAMES},
            "convertedLeads": sum(1 for lead in self.records["Lead"].values() if lead.get("IsConverted")),
        }

    def fault_response(self, kind: FaultKind) -> Response:
        headers = {"Sforce-Limit-Info": self._limit_info()}
        if kind is FaultKind.RATE_LIMIT:
            headers["Retry-After"] = "1"
            return JSONResponse(
                [{"message": "Too many requests", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
                status_code=429,
                headers=headers,
            )
        return JSONResponse(
            [{"message": "Server is temporarily unavailable.", "errorCode": "SERVER_UNAVAILABLE"}],
            status_code=503,
            headers=headers,
        )

    def app(self) -> ASGIApp:
        """The sandbox app behind a gate that enforces the concurrent request limit."""
        if not isinstance(self._app, _ConcurrencyGate):
            self._app = _ConcurrencyGate(super().app(), self)
        return self._app

    def edit_record(self, object_name: str, record_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """A salesperson's edit in Salesforce's UI.

        ``{"_delete": true}`` deletes the record; ``{"IsConverted": true}`` on a Lead converts it (creating or
        linking a Contact). Other keys are fields, written as the sales rep (duplicate rules warn, the rep saves).

        Raises:
            KeyError: unknown object or record.
            ValueError: a change Salesforce would refuse.
        """
        schema = self._schema_for_edit(object_name)
        full_id = to_18(record_id) or record_id
        records = self.records[schema.name]
        if full_id not in records:
            raise KeyError(f"{schema.name} {record_id}")
        changes = dict(changes)
        if changes.pop("_delete", False):
            self._delete(schema.name, full_id)
            return {"Id": full_id, "deleted": True}
        convert = schema.name == "Lead" and bool(changes.pop("IsConverted", False))
        record = records[full_id]
        try:
            if record.get("IsConverted") and (changes or convert):
                raise SalesforceError(400, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
            values = self._validated_values(schema, changes, creating=False)
            self._check_required(schema, {**record, **values})
        except SalesforceError as exc:
            raise ValueError(f"{exc.error_code}: {exc.message}") from None
        self._apply_update(schema.name, full_id, values, modified_by=self.sales_rep_id)
        if convert:
            self._convert_lead(full_id)
        return self._render(schema.name, records[full_id])

    def salesperson_action(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """``convert-lead`` ``{"email"}`` (or ``{"leadId"}``): the rep converts the Lead as the Convert button
        does (a Contact created or linked, ``IsConverted``, ``ConvertedDate``, status ``Closed - Converted``).

        Raises:
            KeyError: another action, or no Lead with that email or id.
            ValueError: the Lead is converted already (``CANNOT_UPDATE_CONVERTED_LEAD``).
        """
        if action != "convert-lead":
            raise KeyError(f"no salesperson action {action!r} in Salesforce (convert-lead)")
        lead_id = payload.get("leadId")
        if lead_id:
            full_id = to_18(str(lead_id)) or str(lead_id)
            if full_id not in self.records["Lead"]:
                raise KeyError(f"Lead {lead_id}")
        else:
            email = str(payload.get("email") or "").strip()
            if not email:
                raise ValueError("convert-lead needs the lead's email or leadId")
            holders = sorted(self._email_index["Lead"].get(email.casefold(), ()))
            if not holders:
                raise KeyError(f"Lead with Email {email}")
            open_ones = [i for i in holders if not self.records["Lead"][i].get("IsConverted")]
            full_id = (open_ones or holders)[0]
        return self.edit_record("Lead", full_id, {"IsConverted": True})

    def _schema_for_edit(self, object_name: str) -> ObjectSchema:
        lowered = object_name.lower().rstrip("s")
        for name, schema in self.schemas.items():
            if name.lower() == lowered:
                return schema
        raise KeyError(object_name)

    # -- seed ------------------------------------------------------------------------------------------------------
    def seed_people(self, people: Iterable[GeneratedPerson]) -> None:
        """Add generated people as Contacts, and the leads among them also as Leads."""
        custom = set(self.custom_fields)
        for person in people:
            social = _social_values(person)
            social_values = {name: value for name, value in social.items() if name in custom and value is not None}
            contact = {
                "FirstName": person.first_name,
                "LastName": person.last_name,
                "Email": person.email,
                "Phone": person.phone,
                "Title": person.job_title,
                "LeadSource": "Social Media",
                **social_values,
            }
            self._insert("Contact", contact, created_by=self.sales_rep_id)
            if person.is_lead:
                lead = {
                    "FirstName": person.first_name,
                    "LastName": person.last_name,
                    "Company": person.company,
                    "Email": person.email,
                    "Phone": person.phone,
                    "Title": person.job_title,
                    "Website": person.website,
                    "LeadSource": "Social Media",
                    "Status": _LEAD_STATUS_BY_FUNNEL.get(person.lead_status.value, LEAD_STATUS_VALUES[0]),
                    **social_values,
                }
                self._insert("Lead", lead, created_by=self.sales_rep_id)

    # -- storage ---------------------------------------------------------------------------------------------------
    def _new_id(self, object_name: str) -> str:
        self._next_number[object_name] += 1
        return salesforce_id(KEY_PREFIXES[object_name], self._next_number[object_name])

    def _insert(
        self, object_name: str, values: dict[str, Any], *, created_by: str | None = None, now: datetime | None = None
    ) -> str:
        """Store a new record; ``now``: the time of the request it came with (a collection's records share it)."""
        record_id = self._new_id(object_name)
        if now is None:
            now = self.clock.now()
        author = created_by or self.user_id
        record: dict[str, Any] = {
                "Id": record_id,
                "IsDeleted": False,
                "OwnerId": self.user_id,
                "CreatedDate": now,
                "CreatedById": author,
                "LastModifiedDate": now,
                "LastModifiedById": author,
                "SystemModstamp": now,
                **_CREATE_DEFAULTS[object_name],
        }
        record.update(values)
        _derive_fields(object_name, record)
        self.records[object_name][record_id] = record
        self._stamp_index[object_name] = None
        self._index_email(object_name, record_id, record.get("Email"))
        return record_id

    def _index_email(self, object_name: str, record_id: str, email: Any) -> None:
        if email:
            index = self._email_index[object_name]
            key = str(email).casefold()
            ids = index.get(key, ())
            if record_id not in ids:
                index[key] = (*ids, record_id)

    def _unindex_email(self, object_name: str, record_id: str, email: Any) -> None:
        if email:
            index = self._email_index[object_name]
            key = str(email).casefold()
            remaining = tuple(i for i in index.get(key, ()) if i != record_id)
            if remaining:
                index[key] = remaining
            else:
                index.pop(key, None)

    def _apply_update(
        self, object_name: str, record_id: str, values: dict[str, Any], *, modified_by: str | None = None
    ) -> Callable[[], None]:
        record = self.records[object_name][record_id]
        before = dict(record)
        self._unindex_email(object_name, record_id, record.get("Email"))
        record.update(values)
        _derive_fields(object_name, record)
        now = self.clock.now()
        record["LastModifiedDate"] = now
        record["SystemModstamp"] = now
        record["LastModifiedById"] = modified_by or self.user_id
        self._stamp_index[object_name] = None
        self._index_email(object_name, record_id, record.get("Email"))

        def undo() -> None:
            self._unindex_email(object_name, record_id, record.get("Email"))
            record.clear()
            record.update(before)
            self._stamp_index[object_name] = None
            self._index_email(object_name, record_id, record.get("Email"))

        return undo

    def _delete(self, object_name: str, record_id: str) -> Callable[[], None]:
        """Delete a record, and with a person the Tasks and Notes attached to it (as Salesforce does)."""
        record = self.records[object_name].pop(record_id)
        self._stamp_index[object_name] = None
        self._unindex_email(object_name, record_id, record.get("Email"))
        self._deleted[object_name].add(record_id)
        attached = [self._delete(name, attached_id) for name, attached_id in self._attached_to(record_id)]

        def undo() -> None:
            self.records[object_name][record_id] = record
            self._stamp_index[object_name] = None
            self._index_email(object_name, record_id, record.get("Email"))
            self._deleted[object_name].discard(record_id)
            for restore in reversed(attached):
                restore()

        return undo

    def _attached_to(self, person_id: str) -> list[tuple[str, str]]:
        """``(object, id)`` of the Tasks (``WhoId``) and Notes (``ParentId``) attached to a Contact or Lead."""
        return [
            (object_name, record_id)
            for object_name, field_name in _ATTACHMENT_FIELDS.items()
            for record_id, record in self.records[object_name].items()
            if record.get(field_name) == person_id
        ]

    def _convert_lead(self, lead_id: str) -> None:
        lead = self.records["Lead"][lead_id]
        email = lead.get("Email")
        existing = sorted(self._email_index["Contact"].get(str(email).casefold(), ())) if email else []
        if existing:
            contact_id = existing[0]
        else:
            copied = ("FirstName", "LastName", "Email", "Phone", "MobilePhone", "Title", "LeadSource", "Description")
            values = {name: lead.get(name) for name in copied if lead.get(name) is not None}
            values.update({name: lead.get(name) for name in self.custom_fields if lead.get(name) is not None})
            contact_id = self._insert("Contact", values, created_by=self.sales_rep_id)
        for object_name, record_id in self._attached_to(lead_id):
            # Conversion carries the lead's activities and notes over to the contact.
            self._apply_update(
                object_name, record_id, {_ATTACHMENT_FIELDS[object_name]: contact_id}, modified_by=self.sales_rep_id
            )
        now = self.clock.now()
        lead.update(
            {
                "IsConverted": True,
                "Status": "Closed - Converted",
                "ConvertedDate": now.date(),
                "ConvertedContactId": contact_id,
                "LastModifiedDate": now,
                "SystemModstamp": now,
                "LastModifiedById": self.sales_rep_id,
            }
        )
        self._stamp_index["Lead"] = None

    def _render(self, object_name: str, record: dict[str, Any], fields: Sequence[str] | None = None) -> dict[str, Any]:
        names = fields if fields is not None else [spec.name for spec in self.schemas[object_name].fields]
        rendered: dict[str, Any] = {
            "attributes": {"type": object_name, "url": f"{API_PREFIX}/sobjects/{object_name}/{record['Id']}"}
        }
        for name in names:
            value = record.get(name)
            if isinstance(value, datetime):
                value = format_datetime(value)
            elif isinstance(value, date):
                value = value.isoformat()
            rendered[name] = value
        return rendered

    # -- write validation ------------------------------------------------------------------------------------------
    def _validated_values(self, schema: ObjectSchema, body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        """Canonical field names and Python values of a write body.

        Raises:
            SalesforceError: unknown field, read-only field, wrong type, too long, bad email or picklist value.
        """
        values: dict[str, Any] = {}
        read_only: list[str] = []
        quick_fields = schema.quick_creates if creating else schema.quick_updates
        for key, raw in body.items():
            quick = quick_fields.get(key)
            if quick is not None:
                kind = raw.__class__
                if kind is str and quick.length:
                    # Text into a text field: its length to check (empty text is stored as null), and an email's form.
                    if len(raw) > quick.length:
                        raise _too_long(quick.spec)
                    if quick.is_email and raw and not _EMAIL_RE.match(raw):
                        raise _invalid_email(quick.spec)
                    values[key] = raw or None
                    continue
                if (kind is float or kind is int) and not quick.length:
                    values[key] = _number_value(quick, raw)
                    continue
            if key == "attributes":
                continue
            spec = schema.field(key)
            if spec.name == "Id":
                raise SalesforceError(400, "INVALID_FIELD", "cannot specify Id in an insert call" if creating
                                      else "Id in the body must not differ from the record being updated", ["Id"])
            if not (spec.createable if creating else spec.updateable):
                read_only.append(spec.name)
                continue
            values[spec.name] = self._coerce(spec, raw)
        if read_only:
            raise SalesforceError(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(read_only)}. {FIELD_SECURITY_HINT}",
                read_only,
            )
        return values

    def _coerce(self, spec: FieldSpec, raw: Any) -> Any:
        if type(raw) is str and spec.type in _PLAIN_TEXT_TYPES:
            # The common case, text into a text field: only its length to check (empty text is stored as null).
            if spec.length and len(raw) > spec.length:
                raise _too_long(spec)
            return raw or None
        if isinstance(raw, (dict, list)):
            raise _json_parser_error(f"Cannot deserialize instance of {spec.type} from {type(raw).__name__} value")
        if spec.type == "boolean":
            if raw is None:
                return False
            if not isinstance(raw, bool):
                raise _json_parser_error(f"Cannot deserialize instance of boolean from VALUE_STRING value {spec.name}")
            return raw
        if spec.type == "double":
            if raw is None or raw == "":
                return None
            if isinstance(raw, bool):
                raise _json_parser_error("Cannot deserialize instance of double from VALUE_TRUE value")
            try:
                number = float(raw)
            except (TypeError, ValueError):
                raise _json_parser_error(
                    f"Cannot deserialize instance of double from VALUE_STRING value for {spec.name}"
                ) from None
            if not math.isfinite(number) or abs(number) >= spec.magnitude_limit:
                raise _out_of_range(spec)
            return round(number, spec.scale) if spec.scale else float(round(number))
        if raw is None:
            return None
        text = str(raw) if not isinstance(raw, bool) else ("true" if raw else "false")
        if text == "":
            # Salesforce stores empty text as null.
            return None
        if spec.type in {"date", "datetime"}:
            try:
                return date.fromisoformat(text) if spec.type == "date" else parse_datetime_literal(text)
            except ValueError:
                raise _json_parser_error(
                    f"Cannot deserialize instance of {spec.type} from VALUE_STRING value {text} or request may be "
                    "missing a required field"
                ) from None
        if spec.length and len(text) > spec.length:
            raise _too_long(spec)
        if spec.type == "email" and not _EMAIL_RE.match(text):
            raise _invalid_email(spec)
        if spec.type == "picklist" and spec.restricted_picklist and text not in spec.picklist:
            raise SalesforceError(
                400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{spec.label}: bad value for restricted picklist field: {text}", [spec.name],
            )
        if spec.type == "reference":
            full = to_18(text)
            if spec.name == "OwnerId" and full not in {self.user_id, self.sales_rep_id}:
                raise SalesforceError(
                    400, "INVALID_CROSS_REFERENCE_KEY", f"{spec.label}: id value of incorrect type: {text}", [spec.name]
                )
            if spec.reference_to and set(spec.reference_to) <= set(OBJECT_NAMES):
                self._check_reference(spec, text, full)
            return full
        return text

    def _check_reference(self, spec: FieldSpec, text: str, full_id: str | None) -> None:
        """Refuse a lookup (``WhoId``, ``ParentId``) to a record that is not there, as Salesforce does.

        Raises:
            SalesforceError: ``MALFORMED_ID`` (not an id), ``FIELD_INTEGRITY_EXCEPTION`` (an id of another object),
                ``ENTITY_IS_DELETED``, ``INVALID_CROSS_REFERENCE_KEY`` (no such record) or
                ``CANNOT_UPDATE_CONVERTED_LEAD``.
        """
        if full_id is None:
            raise SalesforceError(400, "MALFORMED_ID", f"{spec.label}: id value of incorrect type: {text}", [spec.name])
        target = next((name for name in spec.reference_to if full_id.startswith(KEY_PREFIXES[name])), None)
        if target is None:
            raise SalesforceError(
                400, "FIELD_INTEGRITY_EXCEPTION", f"{spec.label}: id value of incorrect type: {text}", [spec.name]
            )
        if full_id in self._deleted[target]:
            raise SalesforceError(400, "ENTITY_IS_DELETED", "entity is deleted", [])
        record = self.records[target].get(full_id)
        if record is None:
            raise SalesforceError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        if record.get("IsConverted"):
            raise SalesforceError(400, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", [spec.name])

    @staticmethod
    def _check_required(schema: ObjectSchema, record: dict[str, Any]) -> None:
        """Refuse a record without a value for a required field, or one that blanks a defaulted required field.

        Raises:
            SalesforceError: ``REQUIRED_FIELD_MISSING`` listing the fields.
        """
        missing = [
            name
            for name, always in schema.checked_on_write
            if (always or name in record) and record.get(name) in (None, "")
        ]
        if missing:
            raise SalesforceError(
                400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
            )

    def _check_duplicates(self, object_name: str, email: Any, record_id: str | None, allow_save: bool) -> None:
        if not self.duplicate_rules or allow_save or not email:
            return
        holders = self._email_index[object_name].get(str(email).casefold())
        if not holders:
            return
        matches = sorted(i for i in holders if i != record_id)
        if not matches:
            return
        rule = f"Standard_{object_name}_Duplicate_Rule"
        match_records = [
            {
                "additionalInformation": [],
                "fieldDiffs": [],
                "matchConfidence": 100.0,
                "record": {
                    "attributes": {"type": object_name, "url": f"{API_PREFIX}/sobjects/{object_name}/{match}"},
                    "Id": match,
                },
            }
            for match in matches
        ]
        raise SalesforceError(
            400,
            "DUPLICATES_DETECTED",
            DUPLICATE_MESSAGE,
            extra={
                "duplicateResut": {
                    "allowSave": True,
                    "duplicateRule": rule,
                    "duplicateRuleEntityType": object_name,
                    "errorMessage": DUPLICATE_MESSAGE,
                    "matchResults": [
                        {
                            "entityType": object_name,
                            "errors": [],
                            "matchEngine": "ExactMatchEngine",
                            "matchRecords": match_records,
                            "rule": f"Standard_{object_name}_Match_Rule_v1_1",
                            "size": len(match_records),
                            "success": True,
                        }
                    ],
                }
            },
        )

    def _refuse_if_fault(self, path: str, values: dict[str, Any]) -> None:
        if not self.take_fault(FaultKind.INVALID_RECORD, path):
            return
        if values.get("Email") and self.random.random() < 0.5:
            raise SalesforceError(400, "INVALID_EMAIL_ADDRESS", "Email: invalid email address", ["Email"])
        raise SalesforceError(
            400,
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "Records from social channels need a valid social profile (validation rule Social_Profile_Check)",
            [],
        )

    def _create(
        self, object_name: str, body: dict[str, Any], *, allow_save: bool, path: str, now: datetime | None = None
    ) -> _WriteOutcome:
        schema = self.schemas[object_name]
        try:
            self._check_write_access(object_name)
            values = self._validated_values(schema, body, creating=True)
            self._check_required(schema, values)
            self._refuse_if_fault(path, values)
            self._check_duplicates(object_name, values.get("Email"), None, allow_save)
        except SalesforceError as exc:
            return _WriteOutcome(None, exc)
        record_id = self._insert(object_name, values, now=now)
        return _WriteOutcome(record_id, undo=lambda: self._discard(object_name, record_id))

    def _check_write_access(self, object_name: str) -> None:
        """Refuse a write to an object the integration user may only read (as Salesforce does, per record)."""
        if object_name in self.read_only_objects:
            raise SalesforceError(400, "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id", [])

    def _discard(self, object_name: str, record_id: str) -> None:
        record = self.records[object_name].pop(record_id)
        self._stamp_index[object_name] = None
        self._unindex_email(object_name, record_id, record.get("Email"))

    def _update(
        self, object_name: str, record_id: str, body: dict[str, Any], *, allow_save: bool, path: str
    ) -> _WriteOutcome:
        schema = self.schemas[object_name]
        record = self.records[object_name][record_id]
        try:
            self._check_write_access(object_name)
            if record.get("IsConverted"):
                raise SalesforceError(400, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", [])
            values = self._validated_values(schema, body, creating=False)
            self._check_required(schema, {**record, **values})
            self._refuse_if_fault(path, values)
            if "Email" in values:
                self._check_duplicates(object_name, values["Email"], record_id, allow_save)
        except SalesforceError as exc:
            return _WriteOutcome(record_id, exc)
        return _WriteOutcome(record_id, undo=self._apply_update(object_name, record_id, values))

    # -- OAuth -----------------------------------------------------------------------------------------------------
    def _issue_refresh_token(self, client_id: str, scope: str = "api refresh_token") -> str:
        token = "5Aep861" + secrets.token_urlsafe(60).replace("-", ".").replace("_", "A")[:80]
        self._refresh_tokens[token] = (client_id, scope)
        return token

    def _issue_access_token(self, refresh_token: str | None) -> str:
        token = f"{self.org_id[:15]}!AQ0AQ" + secrets.token_urlsafe(72).replace("-", ".").replace("_", "A")[:96]
        self._access_tokens[token] = _AccessToken(refresh_token, self.clock.monotonic())
        return token

    def _identity_url(self) -> str:
        return f"{self.base_url}/id/{self.org_id}/{self.user_id}"

    def _token_response(self, access_token: str, refresh_token: str | None, scope: str) -> JSONResponse:
        issued_at = str(int(self.clock.now().timestamp() * 1000))
        identity = self._identity_url()
        digest = hmac.new(self.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
        body: dict[str, Any] = {"access_token": access_token}
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        body.update(
            {
                "signature": base64.b64encode(digest).decode(),
                "scope": scope,
                "instance_url": self.base_url,
                "id": identity,
                "token_type": "Bearer",
                "issued_at": issued_at,
            }
        )
        return JSONResponse(body, headers={"Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private"})

    def _session_problem(self, token: str | None) -> str | None:
        """Why a bearer token cannot be used now (``None`` when it can)."""
        if not token:
            return "missing"
        session = self._access_tokens.get(token)
        if session is None:
            return "unknown"
        if self.token_ttl_seconds is not None and self.clock.monotonic() - session.issued_at >= self.token_ttl_seconds:
            del self._access_tokens[token]
            return "expired"
        if self.token_ttl_calls is not None and session.calls >= self.token_ttl_calls:
            del self._access_tokens[token]
            return "expired"
        return None

    @staticmethod
    def _bearer(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() in {"bearer", "oauth"} and token.strip():
            return token.strip()
        return None

    @staticmethod
    def _oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": error, "error_description": description}, status_code=status)

    async def _authorize(self, request: Request) -> Response:
        params = request.query_params
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        if client_id != self.client_id:
            return self._oauth_error("invalid_client_id", "client identifier invalid")
        parts = urlsplit(redirect_uri)
        if parts.scheme != "http" or not parts.hostname or not is_loopback_host(parts.hostname):
            return self._oauth_error("redirect_uri_mismatch", "redirect_uri must match configuration")
        state = params.get("state")

        def back(**query: str) -> RedirectResponse:
            if state is not None:
                query["state"] = state
            separator = "&" if parts.query else "?"
            return RedirectResponse(redirect_uri + separator + urlencode(query), status_code=302)

        if params.get("response_type") != "code":
            return back(error="unsupported_response_type", error_description="response type not supported")
        challenge = params.get("code_challenge", "")
        if not challenge or params.get("code_challenge_method", "S256") != "S256":
            return back(error="invalid_request", error_description="missing or unsupported code_challenge")
        code = "aPrx" + secrets.token_urlsafe(48).replace("-", ".").replace("_", "A") + "=="
        self._codes[code] = _AuthorizationCode(
            client_id=client_id,
            redirect_uri=redirect_uri,
            code_challenge=challenge,
            scope=params.get("scope") or "api refresh_token",
            issued_at=self.clock.monotonic(),
        )
        # The sandbox plays the user who clicks "Allow".
        return back(code=code)

    @staticmethod
    async def _form(request: Request) -> dict[str, str]:
        """The url-encoded form of an OAuth request (the token endpoint takes nothing else)."""
        raw = (await request.body()).decode("utf-8", "replace")
        return dict(parse_qsl(raw, keep_blank_values=True))

    def _client_from_request(self, request: Request, form: dict[str, str]) -> tuple[str, str | None]:
        client_id = form.get("client_id", "")
        client_secret = form.get("client_secret")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip()).decode()
            except (ValueError, UnicodeDecodeError):
                decoded = ""
            basic_id, _, basic_secret = decoded.partition(":")
            client_id = client_id or basic_id
            client_secret = client_secret or basic_secret
        return client_id, client_secret

    async def _token(self, request: Request) -> Response:
        form = await self._form(request)
        client_id, client_secret = self._client_from_request(request, form)
        if client_id != self.client_id:
            return self._oauth_error("invalid_client", "invalid client credentials")
        if client_secret is not None and client_secret != self.client_secret:
            return self._oauth_error("invalid_client", "invalid client credentials")
        if client_secret is None and self.require_client_secret:
            return self._oauth_error("invalid_client", "invalid client credentials")
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            return self._token_from_code(form)
        if grant_type == "refresh_token":
            refresh_token = form.get("refresh_token", "")
            grant = self._refresh_tokens.get(refresh_token)
            if grant is None or grant[0] != client_id:
                return self._oauth_error("invalid_grant", "expired access/refresh token")
            return self._token_response(self._issue_access_token(refresh_token), None, grant[1])
        return self._oauth_error("unsupported_grant_type", "grant type not supported")

    def _token_from_code(self, form: dict[str, str]) -> Response:
        code = self._codes.pop(form.get("code", ""), None)
        if code is None or self.clock.monotonic() - code.issued_at > AUTH_CODE_TTL_SECONDS:
            return self._oauth_error("invalid_grant", "invalid authorization code")
        if form.get("redirect_uri") != code.redirect_uri:
            return self._oauth_error("redirect_uri_mismatch", "redirect_uri must match configuration")
        verifier = form.get("code_verifier", "")
        expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        if not _PKCE_VERIFIER_RE.match(verifier) or not hmac.compare_digest(expected, code.code_challenge):
            return self._oauth_error("invalid_grant", "invalid code verifier")
        refresh_token = self._issue_refresh_token(code.client_id, code.scope)
        return self._token_response(self._issue_access_token(refresh_token), refresh_token, code.scope)

    async def _revoke(self, request: Request) -> Response:
        form = await self._form(request)
        token = form.get("token") or request.query_params.get("token") or ""
        if token in self._refresh_tokens:
            del self._refresh_tokens[token]
            for access, session in list(self._access_tokens.items()):
                if session.refresh_token == token:
                    del self._access_tokens[access]
            return Response(status_code=200)
        if self._access_tokens.pop(token, None) is not None:
            return Response(status_code=200)
        return self._oauth_error("unsupported_token_type", "this token type is not supported")

    def _identity(self) -> dict[str, Any]:
        return {
            "sub": self._identity_url(),
            "user_id": self.user_id,
            "organization_id": self.org_id,
            "preferred_username": self.username,
            "nickname": "integration",
            "name": "CRM Desktop Integration",
            "email": self.username,
            "email_verified": True,
            "given_name": "CRM Desktop",
            "family_name": "Integration",
            "zoneinfo": "Europe/London",
            "profile": f"{self.base_url}/{self.user_id}",
            "active": True,
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_GB",
            "utcOffset": 0,
            "updated_at": format_datetime(self.clock.now()),
            "is_app_installed": True,
            "urls": {
                "rest": f"{self.base_url}/services/data/v{{version}}/",
                "sobjects": f"{self.base_url}/services/data/v{{version}}/sobjects/",
                "query": f"{self.base_url}/services/data/v{{version}}/query/",
                "limits": f"{self.base_url}/services/data/v{{version}}/limits/",
                "custom_domain": self.base_url,
            },
        }

    async def _userinfo(self, request: Request) -> Response:
        if self._session_problem(self._bearer(request)) is not None:
            return Response("Bad_OAuth_Token", status_code=403, media_type="text/plain")
        return JSONResponse(self._identity())

    async def _identity_service(self, request: Request) -> Response:
        if self._session_problem(self._bearer(request)) is not None:
            return Response("Bad_OAuth_Token", status_code=403, media_type="text/plain")
        body = self._identity()
        body.update({"id": self._identity_url(), "username": self.username, "display_name": body["name"]})
        return JSONResponse(body)

    # -- API plumbing ----------------------------------------------------------------------------------------------
    def _api_usage(self) -> int:
        cutoff = self.clock.monotonic() - DAY_SECONDS
        calls = self._api_calls
        start = self._api_calls_start
        while start < len(calls) and calls[start] <= cutoff:
            start += 1
        if start > 4096 and start > len(calls) // 2:
            del calls[:start]
            start = 0
        self._api_calls_start = start
        return len(calls) - start

    def _limit_info(self) -> str:
        return f"api-usage={self._api_usage()}/{self.daily_api_limit}"

    def _api(self, handlers: dict[str, Handler]) -> Handler:
        """Wrap the handlers of one resource: session check, daily and concurrent limits, errors, limit header."""
        allowed = ",".join(handlers)

        async def endpoint(request: Request) -> Response:
            try:
                response = await self._guarded(request, handlers, allowed)
            except SalesforceError as exc:
                response = exc.response()
            response.headers["Sforce-Limit-Info"] = self._limit_info()
            return response

        return endpoint

    async def _guarded(self, request: Request, handlers: dict[str, Handler], allowed: str) -> Response:
        token = self._bearer(request)
        problem = self._session_problem(token)
        if problem is None and self.take_fault(FaultKind.TOKEN_EXPIRY, request.url.path):
            self.expire_tokens()
            problem = "expired"
        if problem is not None:
            raise SalesforceError(
                401, "INVALID_SESSION_ID", "Session expired or invalid", headers={"WWW-Authenticate": "Token"}
            )
        if not self.api_enabled:
            raise SalesforceError(403, "API_DISABLED_FOR_ORG", "API is not enabled for this Organization or Partner")
        if request.scope.get("salesforce.concurrent_refused"):
            raise SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.")
        if self._api_usage() >= self.daily_api_limit:
            raise SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        self._api_calls.append(self.clock.monotonic())
        assert token is not None
        self._access_tokens[token].calls += 1
        handler = handlers.get(request.method)
        if handler is None:
            raise SalesforceError(
                405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed. Allowed are {allowed}"
            )
        return await handler(request)

    @staticmethod
    async def _json_body(request: Request) -> Any:
        raw = await request.body()
        if not raw.strip():
            raise _json_parser_error("The HTTP entity body is required, but this request has no entity body.")
        try:
            return parse_json(raw)
        except ValueError:
            raise _json_parser_error("Unexpected character in the request body: it is not valid JSON") from None

    @staticmethod
    def _allow_save(request: Request) -> bool:
        header = request.headers.get("sforce-duplicate-rule-header", "")
        for part in re.split(r"[;,]", header):
            name, _, value = part.partition("=")
            if name.strip().lower() == "allowsave" and value.strip().lower() == "true":
                return True
        return False

    def _object(self, name: str) -> ObjectSchema:
        schema = self.schemas.get(name)
        if schema is not None:
            return schema
        for schema_name, schema in self.schemas.items():
            if schema_name.lower() == name.lower():
                return schema
        raise _not_found()

    def _record_id(self, object_name: str, raw_id: str) -> str:
        full = to_18(raw_id)
        if full is None or full not in self.records[object_name]:
            raise _not_found()
        return full

    # -- routes ----------------------------------------------------------------------------------------------------
    def api_routes(self) -> list[BaseRoute]:
        def api(path: str, **handlers: Handler) -> Route:
            return Route(API_PREFIX + path, self._api(handlers), methods=["GET", "POST", "PATCH", "PUT", "DELETE"])

        return [
            Route("/services/oauth2/authorize", self._authorize, methods=["GET"]),
            Route("/services/oauth2/token", self._token, methods=["POST"]),
            Route("/services/oauth2/revoke", self._revoke, methods=["POST"]),
            Route("/services/oauth2/userinfo", self._userinfo, methods=["GET", "POST"]),
            Route("/id/{org_id}/{user_id}", self._identity_service, methods=["GET"]),
            Route("/services/data", self._versions, methods=["GET"]),
            Route("/services/data/", self._versions, methods=["GET"]),
            api("", GET=self._resources),
            api("/", GET=self._resources),
            api("/limits", GET=self._limits),
            api("/limits/", GET=self._limits),
            api("/query", GET=self._query),
            api("/query/", GET=self._query),
            api("/query/{locator}", GET=self._query_more),
            api("/composite/sobjects", POST=self._collection_create, PATCH=self._collection_update,
                DELETE=self._collection_delete),
            api("/composite/sobjects/{object_name}", GET=self._collection_retrieve, POST=self._collection_retrieve),
            api("/sobjects/{object_name}", GET=self._object_info, POST=self._create_one),
            api("/sobjects/{object_name}/", GET=self._object_info, POST=self._create_one),
            api("/sobjects/{object_name}/describe", GET=self._describe),
            api("/sobjects/{object_name}/describe/", GET=self._describe),
            api("/sobjects/{object_name}/updated", GET=self._updated),
            api("/sobjects/{object_name}/updated/", GET=self._updated),
            api("/sobjects/{object_name}/{record_id}", GET=self._get_one, PATCH=self._update_one,
                DELETE=self._delete_one),
            api("/tooling/sobjects/CustomField", POST=self._create_custom_field),
            api("/tooling/sobjects/CustomField/", POST=self._create_custom_field),
            Route("/services/data/{rest:path}", self._api({"GET": self._unknown, "POST": self._unknown,
                                                            "PATCH": self._unknown, "PUT": self._unknown,
                                                            "DELETE": self._unknown}),
                  methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
        ]

    async def _unknown(self, request: Request) -> Response:
        raise _not_found()

    async def _versions(self, request: Request) -> Response:
        return JSONResponse([{"label": "Summer '24", "url": API_PREFIX, "version": API_VERSION.removeprefix("v")}])

    async def _resources(self, request: Request) -> Response:
        return JSONResponse(
            {
                "composite": f"{API_PREFIX}/composite",
                "limits": f"{API_PREFIX}/limits",
                "query": f"{API_PREFIX}/query",
                "sobjects": f"{API_PREFIX}/sobjects",
            }
        )

    async def _limits(self, request: Request) -> Response:
        used = self._api_usage()
        return JSONResponse(
            {
                "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
                "DailyApiRequests": {"Max": self.daily_api_limit, "Remaining": max(0, self.daily_api_limit - used)},
                "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
                "DataStorageMB": {"Max": 1024, "Remaining": 1024},
                "FileStorageMB": {"Max": 1024, "Remaining": 1024},
            }
        )

    async def _object_info(self, request: Request) -> Response:
        schema = self._object(request.path_params["object_name"])
        recent = list(self.records[schema.name].values())[-5:]
        return JSONResponse(
            {
                "objectDescribe": {
                    "name": schema.name,
                    "label": schema.label,
                    "labelPlural": schema.label_plural,
                    "keyPrefix": schema.key_prefix,
                    "custom": False,
                    "createable": True,
                    "updateable": True,
                    "deletable": True,
                    "queryable": True,
                    "urls": {
                        "sobject": f"{API_PREFIX}/sobjects/{schema.name}",
                        "describe": f"{API_PREFIX}/sobjects/{schema.name}/describe",
                        "rowTemplate": f"{API_PREFIX}/sobjects/{schema.name}/{{ID}}",
                    },
                },
                "recentItems": [self._render(schema.name, record, ["Id", "Name"]) for record in recent],
            }
        )

    async def _describe(self, request: Request) -> Response:
        schema = self._object(request.path_params["object_name"])
        return JSONResponse(schema.describe(f"{self.base_url}/{schema.key_prefix}"))

    # -- Tooling API: CustomField ------------------------------------------------------------------------------------
    async def _create_custom_field(self, request: Request) -> Response:
        """``POST /tooling/sobjects/CustomField {"FullName": "Contact.x__c", "Metadata": {label, type, ...}}``.

        Answers 201 ``{"id": "00N...", "success": true, "errors": [], "warnings": [], "infos": []}``. The field is
        then in the object's describe, unless field-level security still hides it from the integration user.
        """
        body = await self._json_body(request)
        if not isinstance(body, dict):
            raise _json_parser_error("Cannot deserialize instance of CustomField from the request body")
        if not self.customize_application:
            raise SalesforceError(400, "INSUFFICIENT_ACCESS",
                                  "insufficient access rights on object id: Customize Application is required")
        full_name = body.get("FullName")
        metadata = body.get("Metadata")
        if not isinstance(full_name, str) or not full_name:
            raise SalesforceError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [FullName]",
                                  fields=["FullName"])
        if not isinstance(metadata, dict):
            raise SalesforceError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Metadata]",
                                  fields=["Metadata"])
        object_name, _, field_name = full_name.partition(".")
        schema = next((s for n, s in self.schemas.items() if n.lower() == object_name.lower()), None)
        if schema is None or schema.name not in PERSON_OBJECTS:
            raise SalesforceError(400, "INVALID_CROSS_REFERENCE_KEY",
                                  f"In field: FullName - no CustomObject named {object_name} found")
        if not re.fullmatch(r"[A-Za-z](?:[A-Za-z0-9]|_(?!_))*__c", field_name):
            raise SalesforceError(400, "INVALID_FIELD",
                                  f"The field name {field_name} is not valid: a custom field's API name ends in __c "
                                  "and holds letters, digits and single underscores")
        hidden = self.created_fields.get(schema.name, {})
        if schema.get(field_name) is not None or field_name.lower() in {n.lower() for n in hidden}:
            raise SalesforceError(400, "DUPLICATE_DEVELOPER_NAME",
                                  f"There is already a field named {field_name.removesuffix('__c')} on "
                                  f"{schema.name}.")
        spec = self._field_from_metadata(field_name, metadata)
        self.created_fields.setdefault(schema.name, {})[spec.name] = (spec, self.field_access_on_create)
        self._build_schemas([custom_field_spec(name) for name in self.custom_fields])
        field_id = salesforce_id("00N", self._next_field_number, pod="5g")
        self._next_field_number += 1
        return JSONResponse({"id": field_id, "success": True, "errors": [], "warnings": [], "infos": []},
                            status_code=201)

    @staticmethod
    def _field_from_metadata(name: str, metadata: dict[str, Any]) -> FieldSpec:
        """A field spec from Tooling ``Metadata``, checked as Salesforce checks it (label, type and sizes).

        Raises:
            SalesforceError: ``FIELD_INTEGRITY_EXCEPTION`` naming what is missing or out of range.
        """

        def refuse(message: str) -> SalesforceError:
            return SalesforceError(400, "FIELD_INTEGRITY_EXCEPTION", message)

        label = metadata.get("label")
        if not isinstance(label, str) or not label.strip():
            raise refuse("Field Label: You must enter a value")
        if len(label) > 40:
            raise refuse("Field Label: data value too large (max length=40)")
        kind = metadata.get("type")

        def number(key: str, low: int, high: int) -> int:
            value = metadata.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise refuse(f"{key.capitalize()}: must be a whole number from {low} to {high}")
            return value

        if kind == "Text":
            return FieldSpec(name, label, "string", number("length", 1, 255), custom=True)
        if kind == "Url":
            return FieldSpec(name, label, "url", 255, custom=True)
        if kind == "Number":
            precision = number("precision", 1, 18)
            scale = number("scale", 0, precision)
            return FieldSpec(name, label, "double", precision=precision, scale=scale, custom=True)
        if kind == "LongTextArea":
            length = number("length", 256, 131072)
            number("visibleLines", 2, 50)
            return FieldSpec(name, label, "textarea", length, custom=True, filterable=False, sortable=False)
        if kind == "Picklist":
            value_set = metadata.get("valueSet")
            definition = value_set.get("valueSetDefinition") if isinstance(value_set, dict) else None
            values = definition.get("value") if isinstance(definition, dict) else None
            if not isinstance(values, list) or not values:
                raise refuse("Values: a picklist needs at least one value (valueSet.valueSetDefinition.value)")
            names = [str(v["fullName"]) for v in values if isinstance(v, dict) and isinstance(v.get("fullName"), str)]
            if len(names) != len(values) or not all(names):
                raise refuse("Values: each value needs a fullName")
            restricted = bool(value_set.get("restricted")) if isinstance(value_set, dict) else False
            return FieldSpec(name, label, "picklist", 255, custom=True, picklist=tuple(names),
                             restricted_picklist=restricted)
        if kind == "Checkbox":
            default = metadata.get("defaultValue")
            if not isinstance(default, str) or default.strip().lower() not in {"true", "false"}:
                raise refuse("Default Value: a checkbox needs true or false (defaultValue)")
            return FieldSpec(name, label, "boolean", nillable=False, defaulted_on_create=True, custom=True)
        if kind == "Date":
            return FieldSpec(name, label, "date", custom=True)
        if kind == "DateTime":
            return FieldSpec(name, label, "datetime", custom=True)
        raise refuse(f"Type: {kind!r} is not a field type this org creates (Text, Url, Number, LongTextArea, "
                     "Picklist, Checkbox, Date, DateTime)")

    async def _create_one(self, request: Request) -> Response:
        schema = self._object(request.path_params["object_name"])
        body = await self._json_body(request)
        if not isinstance(body, dict):
            raise _json_parser_error("Cannot deserialize instance of an sObject from START_ARRAY value")
        outcome = self._create(schema.name, body, allow_save=self._allow_save(request), path=request.url.path)
        if outcome.error is not None:
            raise outcome.error
        return JSONResponse({"id": outcome.record_id, "success": True, "errors": []}, status_code=201)

    async def _get_one(self, request: Request) -> Response:
        schema = self._object(request.path_params["object_name"])
        record_id = self._record_id(schema.name, request.path_params["record_id"])
        fields_param = request.query_params.get("fields")
        fields = None
        if fields_param:
            fields = [schema.field(name.strip()).name for name in fields_param.split(",") if name.strip()]
        return JSONResponse(self._render(schema.name, self.records[schema.name][record_id], fields))

    async def _update_one(self, request: Request) -> Response:
        schema = self._object(request.path_params["object_name"])
        record_id = self._record_id(schema.name, request.path_params["record_id"])
        body = await self._json_body(request)
        if not isinstance(body, dict):
            raise _json_parser_error("Cannot deserialize instance of an sObject from START_ARRAY value")
        if "Id" in body and to_18(str(body["Id"])) == record_id:
            body = {key: value for key, value in body.items() if key != "Id"}
        outcome = self._update(schema.name, record_id, body, allow_save=self._allow_save(request),
                               path=request.url.path)
        if outcome.error is not None:
            raise outcome.error
        return Response(status_code=204)

    async def _delete_one(self, request: Request) -> Response:
        schema = self._object(request.path_params["object_name"])
        record_id = self._record_id(schema.name, request.path_params["record_id"])
        self._delete(schema.name, record_id)
        return Response(status_code=204)

    async def _updated(self, request: Request) -> Response:
        schema = self._object(request.path_params["object_name"])
        try:
            start = parse_datetime_literal(request.query_params.get("start", ""))
            end = parse_datetime_literal(request.query_params.get("end", ""))
        except ValueError:
            raise SalesforceError(
                400, "MALFORMED_QUERY", "start and end must be dateTime values such as 2026-01-01T00:00:00+00:00"
            ) from None
        now = self.clock.now()
        if start < now - timedelta(days=30):
            raise SalesforceError(400, "INVALID_REPLICATION_DATE", "start date cannot be more than 30 days ago")
        if end <= start:
            raise SalesforceError(400, "INVALID_REPLICATION_DATE", "end date must be after start date")
        end = min(end, now).replace(second=0, microsecond=0)
        ids = [
            record_id
            for record_id, record in self.records[schema.name].items()
            if start <= record["SystemModstamp"] < end
        ]
        if len(ids) > 600_000:
            raise SalesforceError(400, "EXCEEDED_ID_LIMIT", "too many ids in the requested window")
        return JSONResponse({"ids": ids, "latestDateCovered": format_datetime(end)})

    # -- query -----------------------------------------------------------------------------------------------------
    def _page_size(self, request: Request) -> int:
        size = self.query_page_size
        options = request.headers.get("sforce-query-options", "")
        match = re.search(r"batchSize\s*=\s*(\d+)", options, re.IGNORECASE)
        if match:
            size = min(2000, max(200, int(match.group(1))))
        return size

    def run_query(self, soql: str) -> tuple[SoqlQuery, list[str], list[str]]:
        """Parse and run SOQL: the query, the selected fields, and the ids of the matching records in order.

        Raises:
            SalesforceError: ``MALFORMED_QUERY``, ``INVALID_TYPE``, ``INVALID_FIELD`` or
                ``INVALID_QUERY_FILTER_OPERATOR``.
        """
        query = parse_soql(soql)
        schema = self.schemas.get(next((n for n in self.schemas if n.lower() == query.object_name.lower()), ""))
        if schema is None:
            raise SalesforceError(
                400, "INVALID_TYPE",
                f"ERROR at Row:1:Column:{query.object_column}\nsObject type '{query.object_name}' is not supported. "
                "If you are attempting to use a custom object, be sure to append the '__c' after the entity name. "
                "Please reference your WSDL or the describe call for the appropriate names.",
            )
        if query.fields_function is not None:
            if query.fields_function != "STANDARD" and (query.limit is None or query.limit > FIELDS_FUNCTION_LIMIT):
                raise _malformed(f"The SOQL FIELDS function must have a LIMIT of at most {FIELDS_FUNCTION_LIMIT}")
            fields = [
                spec.name for spec in schema.fields
                if query.fields_function == "ALL" or spec.custom == (query.fields_function == "CUSTOM")
            ]
        else:
            fields = []
            for name in query.fields:
                spec = _query_field(schema, name, 0)
                if spec.name not in fields:
                    fields.append(spec.name)
        predicate = compile_where(query.where, schema) if query.where is not None else None
        for item in query.order_by:
            _query_field(schema, item.field, 0)
        records = self.records[schema.name]
        lookup = _index_lookup(query.where, schema)
        candidates: Iterable[dict[str, Any]]
        if lookup is not None:
            field_name, values = lookup
            if field_name == "Id":
                wanted_ids = {to_18(value) for value in values}
            else:
                index = self._email_index[schema.name]
                wanted_ids = set().union(*(index.get(value.casefold(), ()) for value in values))
            # Ids grow with creation (base 62 in ASCII order), so sorting them keeps the default order.
            candidates = [records[i] for i in sorted(i for i in wanted_ids if i is not None and i in records)]
        elif _in_stamp_order(query.order_by, schema) and (
            query.where is None or (floor := _stamp_floor(query.where, schema)) is not None
        ):
            ids = self._ids_from_stamp(schema, None if query.where is None else floor, predicate, query)
            return query, fields, ids
        else:
            candidates = records.values()
        matched = [record for record in candidates if predicate is None or predicate(record)]
        if query.order_by:
            _sort_records(matched, query.order_by, schema)
        ids = [record["Id"] for record in matched]
        if query.offset:
            ids = ids[query.offset :]
        if query.limit is not None:
            ids = ids[: query.limit]
        return query, fields, ids

    def _ids_from_stamp(
        self, schema: ObjectSchema, floor: datetime | None, predicate: _Predicate | None, query: SoqlQuery
    ) -> list[str]:
        """The matching ids in stamp order, read through the stamp index from ``floor`` (or the first) on, up to
        LIMIT/OFFSET."""
        index = self._stamp_index[schema.name]
        records = self.records[schema.name]
        if index is None:
            id_spec = schema.field("Id")
            index = sorted(
                (record["SystemModstamp"], _comparable(record_id, id_spec), record_id)
                for record_id, record in records.items()
            )
            self._stamp_index[schema.name] = index
        wanted = None if query.limit is None else query.offset + query.limit
        ids: list[str] = []
        start = 0 if floor is None else bisect.bisect_left(index, (floor,))
        for position in range(start, len(index)):
            record_id = index[position][2]
            if predicate is None or predicate(records[record_id]):
                ids.append(record_id)
                if wanted is not None and len(ids) >= wanted:
                    break
        return ids[query.offset :] if query.offset else ids

    async def _query(self, request: Request) -> Response:
        soql = request.query_params.get("q")
        if not soql or not soql.strip():
            raise _malformed("A query string has to be specified")
        query, fields, ids = self.run_query(soql)
        if query.count_only:
            return JSONResponse({"totalSize": len(ids), "done": True, "records": []})
        schema_name = next(n for n in self.schemas if n.lower() == query.object_name.lower())
        cursor = _QueryCursor(schema_name, fields, ids, self._page_size(request))
        return JSONResponse(self._query_page(cursor, None, 0))

    def _query_page(self, cursor: _QueryCursor, locator: str | None, offset: int) -> dict[str, Any]:
        end = offset + cursor.page_size
        records = self.records[cursor.object_name]
        page = [
            self._render(cursor.object_name, records[record_id], cursor.fields)
            for record_id in cursor.ids[offset:end]
            if record_id in records
        ]
        body: dict[str, Any] = {"totalSize": len(cursor.ids), "done": end >= len(cursor.ids)}
        if end < len(cursor.ids):
            if locator is None:
                locator = self._open_cursor(cursor)
            body["nextRecordsUrl"] = f"{API_PREFIX}/query/{locator}-{end}"
        elif locator is not None:
            self._cursors.pop(locator, None)
        body["records"] = page
        return body

    def _open_cursor(self, cursor: _QueryCursor) -> str:
        locator = "01g" + "".join(self._secrets.choice(_ID_ALPHABET) for _ in range(15))
        self._cursors[locator] = cursor
        while len(self._cursors) > MAX_OPEN_QUERY_CURSORS:
            # Salesforce keeps a few open cursors per user and closes the oldest.
            self._cursors.popitem(last=False)
        return locator

    async def _query_more(self, request: Request) -> Response:
        locator, _, offset_text = request.path_params["locator"].partition("-")
        cursor = self._cursors.get(locator)
        if cursor is None or not offset_text.isdigit() or int(offset_text) > len(cursor.ids):
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        self._cursors.move_to_end(locator)
        return JSONResponse(self._query_page(cursor, locator, int(offset_text)))

    # -- sObject Collections ---------------------------------------------------------------------------------------
    async def _collection_body(self, request: Request) -> tuple[bool, list[Any]]:
        body = await self._json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise SalesforceError(400, "INVALID_FIELD", "The request body must be an object with a records array")
        records = body["records"]
        if len(records) > COLLECTION_LIMIT:
            raise SalesforceError(
                400, "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into this call",
            )
        if not records:
            raise SalesforceError(400, "INVALID_FIELD", "The request body must contain at least one record")
        all_or_none = body.get("allOrNone", False)
        if not isinstance(all_or_none, bool):
            raise _json_parser_error("Cannot deserialize instance of boolean for allOrNone")
        return all_or_none, records

    def _collection_type(self, item: Any) -> str:
        if not isinstance(item, dict):
            raise SalesforceError(400, "INVALID_FIELD", "Each record must be a JSON object", [])
        attributes = item.get("attributes")
        object_type = attributes.get("type") if isinstance(attributes, dict) else None
        if not isinstance(object_type, str) or not object_type:
            raise SalesforceError(400, "INVALID_TYPE", "Must specify the sObject type in the attributes", [])
        try:
            return self._object(object_type).name
        except SalesforceError:
            raise SalesforceError(400, "INVALID_TYPE", f"sObject type '{object_type}' is not supported.", []) from None

    def _finish_collection(
        self, outcomes: list[_WriteOutcome], all_or_none: bool, *, include_failed_ids: bool
    ) -> Response:
        failed = any(outcome.error is not None for outcome in outcomes)
        if all_or_none and failed:
            for outcome in reversed(outcomes):
                if outcome.undo is not None:
                    outcome.undo()
        results: list[dict[str, Any]] = []
        for outcome in outcomes:
            if outcome.error is None and not (all_or_none and failed):
                results.append({"id": outcome.record_id, "success": True, "errors": []})
                continue
            error = outcome.error or SalesforceError(400, "ALL_OR_NONE_OPERATION_ROLLED_BACK", ROLLED_BACK_MESSAGE, [])
            result: dict[str, Any] = {"success": False, "errors": [error.collection_error()]}
            if include_failed_ids and outcome.record_id is not None:
                result = {"id": outcome.record_id, **result}
            results.append(result)
        return JSONResponse(results)

    async def _collection_create(self, request: Request) -> Response:
        all_or_none, items = await self._collection_body(request)
        allow_save = self._allow_save(request)
        path = request.url.path
        # One request is one transaction: its records share their created and modified time, as in Salesforce.
        now = self.clock.now()
        outcomes: list[_WriteOutcome] = []
        async for part in _write_slices(items, all_or_none):
            for item in part:
                try:
                    object_name = self._collection_type(item)
                    if "Id" in item or "id" in item:
                        raise SalesforceError(400, "INVALID_FIELD", "cannot specify Id in an insert call", [])
                except SalesforceError as exc:
                    outcomes.append(_WriteOutcome(None, exc))
                    continue
                outcomes.append(self._create(object_name, item, allow_save=allow_save, path=path, now=now))
        return self._finish_collection(outcomes, all_or_none, include_failed_ids=False)

    async def _collection_update(self, request: Request) -> Response:
        all_or_none, items = await self._collection_body(request)
        allow_save = self._allow_save(request)
        path = request.url.path
        outcomes: list[_WriteOutcome] = []
        async for part in _write_slices(items, all_or_none):
            for item in part:
                try:
                    object_name = self._collection_type(item)
                    raw_id = next((item[key] for key in item if key.lower() == "id"), None)
                    if not isinstance(raw_id, str) or not raw_id:
                        raise SalesforceError(400, "MISSING_ARGUMENT", "Id not specified in an update call", [])
                    record_id = to_18(raw_id)
                    if record_id is None or not record_id.startswith(KEY_PREFIXES[object_name]):
                        raise SalesforceError(
                            400, "MALFORMED_ID", f"{object_name} ID: id value of incorrect type", ["Id"]
                        )
                    if record_id in self._deleted[object_name]:
                        raise SalesforceError(400, "ENTITY_IS_DELETED", "entity is deleted", [])
                    if record_id not in self.records[object_name]:
                        raise SalesforceError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
                except SalesforceError as exc:
                    outcomes.append(_WriteOutcome(None, exc))
                    continue
                body = {key: value for key, value in item.items() if key.lower() != "id"}
                outcomes.append(self._update(object_name, record_id, body, allow_save=allow_save, path=path))
        return self._finish_collection(outcomes, all_or_none, include_failed_ids=True)

    async def _collection_delete(self, request: Request) -> Response:
        raw_ids = [part for part in request.query_params.get("ids", "").split(",") if part]
        if not raw_ids:
            raise SalesforceError(400, "MISSING_ARGUMENT", "ids parameter is required")
        if len(raw_ids) > COLLECTION_LIMIT:
            raise SalesforceError(
                400, "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into this call",
            )
        all_or_none = request.query_params.get("allOrNone", "false").lower() == "true"
        outcomes: list[_WriteOutcome] = []
        for raw_id in raw_ids:
            record_id = to_18(raw_id)
            object_name = next((n for n, p in KEY_PREFIXES.items() if record_id and record_id.startswith(p)), None)
            if record_id is None or object_name is None:
                outcomes.append(_WriteOutcome(raw_id, SalesforceError(400, "MALFORMED_ID", "malformed id " + raw_id)))
            elif record_id in self._deleted[object_name]:
                error = SalesforceError(400, "ENTITY_IS_DELETED", "entity is deleted")
                outcomes.append(_WriteOutcome(record_id, error))
            elif record_id not in self.records[object_name]:
                error = SalesforceError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
                outcomes.append(_WriteOutcome(record_id, error))
            else:
                outcomes.append(_WriteOutcome(record_id, undo=self._delete(object_name, record_id)))
        return self._finish_collection(outcomes, all_or_none, include_failed_ids=True)

    async def _collection_retrieve(self, request: Request) -> Response:
        schema = self._object(request.path_params["object_name"])
        if request.method == "POST":
            body = await self._json_body(request)
            raw_ids = body.get("ids", []) if isinstance(body, dict) else []
            raw_fields = body.get("fields", []) if isinstance(body, dict) else []
        else:
            raw_ids = [part for part in request.query_params.get("ids", "").split(",") if part]
            raw_fields = [part for part in request.query_params.get("fields", "").split(",") if part]
        if not raw_ids or not raw_fields:
            raise SalesforceError(400, "MISSING_ARGUMENT", "ids and fields are required")
        if len(raw_ids) > 2000:
            raise SalesforceError(400, "EXCEEDED_ID_LIMIT", "cannot retrieve more than 2000 records")
        fields = [schema.field(str(name).strip()).name for name in raw_fields]
        records = self.records[schema.name]
        result: list[dict[str, Any] | None] = []
        for raw_id in raw_ids:
            record_id = to_18(str(raw_id))
            record = records.get(record_id) if record_id else None
            selected = ["Id", *[name for name in fields if name != "Id"]]
            result.append(self._render(schema.name, record, selected) if record else None)
        return JSONResponse(result)


#: Values a new record of each object starts with before the written fields are applied.
_CREATE_DEFAULTS: dict[str, dict[str, Any]] = {
    "Contact": {"HasOptedOutOfEmail": False},
    "Lead": {
        "HasOptedOutOfEmail": False,
        "Status": LEAD_STATUS_VALUES[0],
        "IsConverted": False,
        "IsUnreadByOwner": True,
    },
    "Task": {"Status": DEFAULT_TASK_STATUS, "Priority": "Normal", "TaskSubtype": "Task"},
    "Note": {"IsPrivate": False},
}
#: The field that attaches a record of each object to a Contact or Lead.
_ATTACHMENT_FIELDS = {"Task": "WhoId", "Note": "ParentId"}


#: Records of a collection written between two looks at the other requests (answers due, requests arrived):
#: about a third of a millisecond of work.
WRITE_SLICE = 20


async def _write_slices(items: list[Any], all_or_none: bool) -> AsyncIterator[list[Any]]:
    """A collection's records, ``WRITE_SLICE`` at a time; between two, the event loop serves the other requests.

    A 200-record collection is milliseconds of work, during which answers due to other requests would wait: a
    Salesforce org serves its requests side by side. An ``allOrNone`` collection is one transaction and runs
    through (its records stay unseen by other requests until it commits or rolls back).
    """
    for start in range(0, len(items), WRITE_SLICE):
        if start and not all_or_none:
            await asyncio.sleep(0)
        yield items[start : start + WRITE_SLICE]


def _derive_fields(object_name: str, record: dict[str, Any]) -> None:
    """Recompute the fields Salesforce derives from others: a person's Name, whether a Task is closed."""
    if object_name in PERSON_OBJECTS:
        first, last = record.get("FirstName"), record.get("LastName")
        record["Name"] = f"{first} {last}" if first and last else first or last or ""
    elif object_name == "Task":
        record["IsClosed"] = record.get("Status") in CLOSED_TASK_STATUSES


_LEAD_STATUS_BY_FUNNEL = {
    "new": "Open - Not Contacted",
    "contacted": "Working - Contacted",
    "qualified": "Working - Contacted",
    "unqualified": "Closed - Not Converted",
    "converted": "Closed - Converted",
}


def _social_values(person: GeneratedPerson) -> dict[str, Any]:
    """The seed's social custom field values of one generated person."""
    twitter = person.facts_on(SocialPlatform.TWITTER)
    instagram = person.facts_on(SocialPlatform.INSTAGRAM)
    linkedin = person.facts_on(SocialPlatform.LINKEDIN)
    return {
        "twitter_username__c": twitter.username if twitter else None,
        "instagram_username__c": instagram.username if instagram else None,
        "linkedin_url__c": linkedin.url if linkedin else None,
        "social_followers__c": float(person.total_followers),
        "social_engagement_score__c": person.engagement_score,
        "social_sentiment__c": person.sentiment.value,
        "lead_source_detail__c": person.lead_source,
    }
