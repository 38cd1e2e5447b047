"""Contacts, leads, social profiles, touchpoints and integrations, as the wire and the marketer see them."""

from __future__ import annotations

import functools
import ipaddress
import math
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from types import UnionType
from typing import Annotated, Any, ClassVar, Self, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.alias_generators import to_camel

from crm_desktop.domain.errors import FieldProblem, InvalidRecordError

#: Region used to read phone numbers written without a country code; ``CRM_DESKTOP_PHONE_REGION`` overrides it.
DEFAULT_PHONE_REGION = "US"

ShortText = Annotated[str, Field(min_length=1, max_length=80)]
NameText = Annotated[str, Field(max_length=80)]
CompanyText = Annotated[str, Field(max_length=255)]


#: The largest follower count kept: what the store's column holds (the largest accounts have under a billion, so a
#: bigger figure is a typo or a unit mix-up, refused by name rather than stored wrong).
MAX_FOLLOWERS = 2_147_483_647

class Provider(StrEnum):
    """The CRMs CRM Desktop talks to."""

    SALESFORCE = "salesforce"
    HUBSPOT = "hubspot"
    PIPEDRIVE = "pipedrive"

    @property
    def label(self) -> str:
        """The CRM's name as the marketer knows it (``HubSpot``)."""
        return _PROVIDER_LABELS[self]


_PROVIDER_LABELS = {Provider.SALESFORCE: "Salesforce", Provider.HUBSPOT: "HubSpot", Provider.PIPEDRIVE: "Pipedrive"}


PROVIDERS: tuple[str, ...] = tuple(p.value for p in Provider)


class WrittenValue(StrEnum):
    """A fixed set of values as people write them in files and webhooks: case, spaces and hyphens aside
    (``Twitter`` is ``twitter``, ``Post View`` and ``post-view`` are ``post_view``); anything else is refused."""

    @classmethod
    def _missing_(cls, value: object) -> WrittenValue | None:
        if not isinstance(value, str):
            return None
        key = "_".join(value.replace("-", " ").split()).lower()
        return next((member for member in cls if member.value == key), None)


class SocialPlatform(WrittenValue):
    """Social networks a profile, a conversation or a touchpoint comes from.

    Read as :class:`WrittenValue` reads, and also as social tools' exports name them: by their site
    (``twitter.com``, ``https://www.linkedin.com/``) and Twitter by its new name (``X``, ``Twitter/X``).
    """

    @classmethod
    def _missing_(cls, value: object) -> SocialPlatform | None:
        written = super()._missing_(value)
        if written is not None or not isinstance(value, str):
            return written if isinstance(written, SocialPlatform) else None
        key = value.strip().lower().removeprefix("https://").removeprefix("http://").removeprefix("www.").rstrip("/")
        key = key.removesuffix(".com").removesuffix(".net")
        if key in _TWITTER_NAMES:
            return cls.TWITTER
        return next((member for member in cls if member.value == key), None)

    TWITTER = "twitter"
    INSTAGRAM = "instagram"
    LINKEDIN = "linkedin"
    FACEBOOK = "facebook"
    TIKTOK = "tiktok"
    YOUTUBE = "youtube"
    THREADS = "threads"
    PINTEREST = "pinterest"
    REDDIT = "reddit"


#: Twitter's names besides ``twitter`` (its site is x.com since 2024).
_TWITTER_NAMES = frozenset({"x", "twitter/x", "x/twitter", "twitter (x)", "x (twitter)", "twitter / x"})

#: The social networks as their owners spell them (the wire's values are lower case), in the app and in messages.
PLATFORM_NAMES: dict[str, str] = {
    SocialPlatform.TWITTER: "Twitter/X",
    SocialPlatform.INSTAGRAM: "Instagram",
    SocialPlatform.LINKEDIN: "LinkedIn",
    SocialPlatform.FACEBOOK: "Facebook",
    SocialPlatform.TIKTOK: "TikTok",
    SocialPlatform.YOUTUBE: "YouTube",
    SocialPlatform.THREADS: "Threads",
    SocialPlatform.PINTEREST: "Pinterest",
    SocialPlatform.REDDIT: "Reddit",
}


def platform_name(platform: str) -> str:
    """A network's name as its owner spells it (``instagram``: ``Instagram``); an unknown one capitalised."""
    return PLATFORM_NAMES.get(platform, platform.capitalize())


class Sentiment(WrittenValue):
    """The fixed set of sentiments a social conversation can carry."""

    POSITIVE = "positive"
    NEUTRAL = "neutral"
    NEGATIVE = "negative"
    MIXED = "mixed"


class LeadStatus(WrittenValue):
    """Where a lead stands in the funnel."""

    NEW = "new"
    CONTACTED = "contacted"
    QUALIFIED = "qualified"
    UNQUALIFIED = "unqualified"
    CONVERTED = "converted"


class TouchpointType(WrittenValue):
    """What a person did with the brand's social content.

    Read as :class:`WrittenValue` reads, and also by the words social tools' exports use for them, in any case:
    see :data:`_TOUCHPOINT_SYNONYMS` (``Retweet`` is a share, ``Reply`` a comment, ``Heart`` a like).
    """

    @classmethod
    def _missing_(cls, value: object) -> TouchpointType | None:
        written = super()._missing_(value)
        if written is not None or not isinstance(value, str):
            return written if isinstance(written, TouchpointType) else None
        synonym = _TOUCHPOINT_SYNONYMS.get(" ".join(value.replace("-", " ").replace("_", " ").split()).lower())
        return cls(synonym) if synonym is not None else None

    POST_VIEW = "post_view"
    VIEW = "view"
    CLICK = "click"
    LIKE = "like"
    COMMENT = "comment"
    SHARE = "share"
    DM = "dm"
    MENTION = "mention"
    FOLLOW = "follow"
    FORM_SUBMIT = "form_submit"
    CONVERSION = "conversion"


#: Social tools' words for the touchpoint types (the key lower-cased, words separated by one space).
_TOUCHPOINT_SYNONYMS: dict[str, str] = {
    "retweet": "share",
    "repost": "share",
    "quote": "share",
    "reply": "comment",
    "reaction": "like",
    "favorite": "like",
    "favourite": "like",
    "heart": "like",
    "direct message": "dm",
}


class SyncDirection(StrEnum):
    """Which way records move: an integration's configured way (push, pull or both), and each run's.

    Only runs go the other ways: ``push_new`` (the scheduled push of records never synced), ``undo`` (an undo's own
    run), ``import`` (a file import, with no CRM) and ``edit`` (a person changed or added by hand, with no CRM).
    The values are what the store keeps for runs and integrations.
    """

    PUSH = "push"
    PULL = "pull"
    BOTH = "both"
    PUSH_NEW = "push_new"
    UNDO = "undo"
    IMPORT = "import"
    EDIT = "edit"

    @classmethod
    def configurable(cls) -> tuple[SyncDirection, ...]:
        """The ways an integration can be set to sync (the others are a run's only)."""
        return (cls.PUSH, cls.PULL, cls.BOTH)

    @classmethod
    def _missing_(cls, value: object) -> SyncDirection | None:
        # Integrations saved two-way store it as "bidirectional", the local API's word for it.
        return cls.BOTH if value == "bidirectional" else None


def phone_region() -> str:
    """The region used for phone numbers without a country code."""
    return os.environ.get("CRM_DESKTOP_PHONE_REGION", DEFAULT_PHONE_REGION).upper()


#: An unquoted ASCII local part (RFC 5322 dot-atom), which email_validator leaves as it is.
_ASCII_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
#: Domains email_validator accepted, as written -> as it normalised them (a file's addresses share a few domains).
_CHECKED_DOMAINS: dict[str, str] = {}
_CHECKED_DOMAINS_MAX = 10_000


# An import reads each address twice (to find the stored record, then in the model); the answer for a given text
# never changes.
@functools.lru_cache(maxsize=262_144)
def normalise_email(value: str) -> str:
    """Return the normalised, lower-cased form of an email address.

    email_validator's domain checks are most of the time an import spends on a row, and a file's addresses share a
    few domains: an address with a plain ASCII local part at a domain already accepted is read without checking the
    domain again (the same answer email_validator gives it).

    Raises:
        ValueError: when the address is not a valid email address.
    """
    text = value.strip()
    local, at, domain = text.rpartition("@")
    known = _CHECKED_DOMAINS.get(domain) if at else None
    if known is not None and len(text) <= 254 and len(local) <= 64 and _ASCII_LOCAL_PART.fullmatch(local):
        return f"{local}@{known}".lower()
    # email_validator and phonenumbers load with the first address or number checked, not with the app's start.
    from email_validator import EmailNotValidError, validate_email

    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address ({exc})") from None
    if len(_CHECKED_DOMAINS) < _CHECKED_DOMAINS_MAX:
        _CHECKED_DOMAINS[domain] = checked.domain
    return checked.normalized.lower()


#: The longest phone a record holds (Salesforce's phone field, and the store's column).
MAX_PHONE = 40
#: Between a number and its extension, as phonenumbers writes it (``+14155550102 ext. 123``): the CRMs' phone fields
#: are text, and phonenumbers reads this form back to the same number and extension.
PHONE_EXTENSION = " ext. "


def normalise_phone(value: str, region: str | None = None) -> str:
    """Return a phone number in E.164 form (``+14155550123``), its extension after it (``+14155550123 ext. 45``).

    Raises:
        ValueError: when the number cannot be read or is not a possible number, or the text holds two numbers.
    """
    return _e164(value, region or phone_region())


# phonenumbers' parse and validity checks are most of an import's validation; the answer for a (text, region) pair
# never changes, and a file or a re-import meets the same numbers again.
@functools.lru_cache(maxsize=65_536)
def _e164(value: str, region: str) -> str:
    import phonenumbers

    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        _refuse_two_numbers(value, region)
        raise ValueError("not a phone number") from None
    if parsed.extension:
        # parse reads what follows the number as its extension: "4155550102;4155550103" is two numbers.
        _refuse_two_numbers(value, region)
    if not phonenumbers.is_valid_number(parsed):
        if value.strip().startswith("+"):
            raise ValueError("not a valid phone number for its country")
        raise ValueError(f"not a valid phone number in region {region}, where numbers without a +country code "
                         "are read (set by CRM_DESKTOP_PHONE_REGION)")
    number = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if parsed.extension:
        number += PHONE_EXTENSION + parsed.extension
        if len(number) > MAX_PHONE:
            raise ValueError(f"{number!r} is {len(number)} characters with its extension; a phone holds at most "
                             f"{MAX_PHONE}")
    return number


def _refuse_two_numbers(value: str, region: str) -> None:
    import phonenumbers

    found = [match.raw_string for match in phonenumbers.PhoneNumberMatcher(
        value, region, leniency=phonenumbers.Leniency.POSSIBLE)]
    if len(found) > 1:
        raise ValueError(f"holds {len(found)} phone numbers ({', '.join(found)}); keep one (another can go in a "
                         "custom field)")


def is_loopback_host(host: str) -> bool:
    """Whether a host name or address is the local machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


#: An address of each CRM's API, given as the example when a base URL is refused.
BASE_URL_EXAMPLES: dict[Provider, str] = {
    Provider.HUBSPOT: "https://api.hubapi.com",
    Provider.PIPEDRIVE: "https://acme.pipedrive.com",
    Provider.SALESFORCE: "https://acme.my.salesforce.com",
}


def check_base_url(value: str, example: str = BASE_URL_EXAMPLES[Provider.SALESFORCE]) -> str:
    """Accept https URLs, and plain http only to loopback; return the URL without a trailing slash.

    ``example`` is the address a refusal gives as an example (the CRM's own, where it is known).

    Raises:
        ValueError: for other schemes, a missing host, plain http to a non-loopback host, or a user or password in
            the URL.
    """
    parts = urlsplit(value.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"must be an http(s) URL with a host, e.g. {example}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError("plain http is allowed only to loopback (127.0.0.1, ::1, localhost); use https")
    if parts.username is not None or parts.password is not None:
        # It would be stored, listed and logged as the integration's address: secrets go in the keyring only.
        raise ValueError("must not hold a user name or password (user:password@); the CRM's secret is given "
                         "apart and kept in the keyring")
    return value.strip().rstrip("/")


def _record_label(data: Any) -> str:
    """How the user knows a refused record: its person (an engagement's user, a conversation's participant) by
    email, name or username before the event's own id."""
    if isinstance(data, dict):
        for key in ("email", "name", "username"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        for person in ("user", "participant"):  # an engagement's or a conversation's person
            if isinstance(data.get(person), dict):
                label = _record_label(data[person])
                if label != "(unnamed)":
                    return label
        for key in ("messageId", "conversationId", "postId", "post_id"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return "(unnamed)"


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``Optional`` so the type a location part points into can be read."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            models = [arg for arg in members if isinstance(arg, type) and issubclass(arg, BaseModel)]
            if len(members) == 1:
                annotation = members[0]
                continue
            return models[0] if len(models) == 1 else None
        return annotation


def _is_plain_union(annotation: Any) -> bool:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) not in (Union, UnionType):
        return False
    return _unwrap(annotation) is None


def wire_path(model: type[BaseModel], location: tuple[int | str, ...]) -> str:
    """The camelCase wire path (``socialProfiles.0.followers``) of a pydantic error location.

    Pydantic reports a field under the name it was given by, so a record built with snake_case keywords would
    otherwise name ``social_profiles``; field names are mapped to their aliases by walking the model's types,
    while list indexes and dict keys (a custom field's own name) are kept as they are. The member tags pydantic
    adds inside a union of plain types (``customFields.plan.int``) are left out.
    """
    parts: list[str] = []
    current: Any = model
    for part in location:
        if _is_plain_union(current) and isinstance(part, str):
            current = None
            continue
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            fields = current.model_fields
            name = part if part in fields else next((n for n, f in fields.items() if f.alias == part), None)
            if name is None:
                parts.append(part)
                current = None
                continue
            parts.append(fields[name].alias or name)
            current = fields[name].annotation
            continue
        origin = get_origin(current)
        arguments = get_args(current)
        if origin in (list, tuple, set, frozenset) and isinstance(part, int):
            current = arguments[0] if arguments else None
        elif origin is dict:
            current = arguments[1] if len(arguments) == 2 else None
        else:
            current = None
        parts.append(str(part))
    return ".".join(parts)


def _problems(model: type[BaseModel], exc: ValidationError) -> list[FieldProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        location = wire_path(model, tuple(error["loc"]))
        inner = error.get("ctx", {}).get("error")
        if isinstance(inner, InvalidRecordError):
            # A typed error raised by a validator: keep its fields, prefixed with where it sits.
            for problem in inner.problems:
                field = f"{location}.{problem.field}" if location else problem.field
                problems.append(FieldProblem(field=field, reason=problem.reason))
            continue
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "string_pattern_mismatch":
            pattern = str(error.get("ctx", {}).get("pattern", ""))
            message = PATTERN_WORDS.get(pattern, "is not in the expected form")
        field = location or "(record)"
        if field.startswith("customFields.") and error["type"] in _TYPE_MISMATCHES:
            # Every member of a custom value's union refused it (an object, a list): one sentence, said once.
            message = _custom_value_refusal(error.get("input"))
            if problems and problems[-1] == FieldProblem(field=field, reason=message):
                continue
        elif field == "customFields" and error["type"] == "dict_type":
            # Pydantic's "a valid dictionary" is Python's word: the sender wrote JSON (or a JSONL line).
            message = ('must be an object of custom field names and their values, such as {"tier": "gold"}; '
                       f"not {_json_kind(error.get('input'))}")
        elif error["type"] in {"dict_type", "model_type"}:
            message = f"must be an object; not {_json_kind(error.get('input'))}"
        elif error["type"] == "list_type":
            message = f"must be a list; not {_json_kind(error.get('input'))}"
        elif problems and problems[-1].field == field and error["type"] in _TYPE_MISMATCHES:
            # One value refused by every member of a union: one problem naming what would fit.
            problems[-1] = FieldProblem(field=field, reason=f"{problems[-1].reason}, or {message.lower()}")
            continue
        problems.append(FieldProblem(field=field, reason=message))
    return problems


def _custom_value_refusal(value: Any) -> str:
    """Why a custom field refuses ``value``: it holds one plain value, never an object or a list of values."""
    kind = "; not an object" if isinstance(value, dict) else "; not a list" if isinstance(value, list) else ""
    return f"must be text, a number, true/false or a date{kind}"


def _json_kind(value: Any) -> str:
    """What a value read from JSON is, in JSON's words (``a list``, ``text``, ``null``)."""
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    return "a number" if isinstance(value, int | float) else "an object"


#: What each pattern the models check text against asks for, in plain words (never the regular expression).
PATTERN_WORDS = {
    r"^https?://\S+$": "must be a web address starting with http:// or https://, with no spaces",
    r"^[a-z0-9_]+$": "only lower-case letters, digits and _ (e.g. twitter_dm)",
    r"^[A-Za-z]{3}$": "must be a three-letter currency code such as USD",
}

_TYPE_MISMATCHES = {
    "string_type",
    "int_type",
    "float_type",
    "bool_type",
    "int_parsing",
    "float_parsing",
    "bool_parsing",
    "none_required",
}


class WireModel(BaseModel):
    """Base of every domain model: camelCase on the wire, snake_case in Python, one typed error.

    Validation failures raise :class:`InvalidRecordError` naming the record, the field and the reason.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        str_strip_whitespace=True,
        extra="forbid",
        frozen=False,
        validate_assignment=True,
    )
    record_kind: ClassVar[str] = "record"

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InvalidRecordError(self.record_kind, _record_label(data), _problems(type(self), exc)) from None

    # Pydantic calls a model's own __init__ for every nested or model_validate() validation, dropping the
    # validation context (the phone region); marked as the base __init__, it runs only for direct construction.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def __setattr__(self, name: str, value: Any) -> None:
        """Assign a field with validation; a bad value raises :class:`InvalidRecordError` like construction."""
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            label = _record_label(self.model_dump(include={"email", "name", "username", "post_id"}))
            raise InvalidRecordError(self.record_kind, label, _problems(type(self), exc)) from None

    @classmethod
    def model_validate(
        cls,
        obj: Any,
        *,
        strict: bool | None = None,
        extra: Any = None,
        from_attributes: bool | None = None,
        context: Any | None = None,
        by_alias: bool | None = None,
        by_name: bool | None = None,
    ) -> Self:
        """Validate ``obj``; raise :class:`InvalidRecordError` instead of pydantic's error."""
        try:
            return super().model_validate(
                obj,
                strict=strict,
                extra=extra,
                from_attributes=from_attributes,
                context=context,
                by_alias=by_alias,
                by_name=by_name,
            )
        except ValidationError as exc:
            raise InvalidRecordError(cls.record_kind, _record_label(obj), _problems(cls, exc)) from None

    def to_wire(self) -> dict[str, Any]:
        """The record as the seed's JSON shape (camelCase keys, no unset optionals)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _validate_email_field(value: str) -> str:
    return normalise_email(value)


def _validate_phone_field(value: str | None, info: ValidationInfo) -> str | None:
    if value is None or not value.strip():
        return None
    region = None
    if isinstance(info.context, dict):
        region = info.context.get("phone_region")
    return normalise_phone(value, region)


class SocialProfile(WireModel):
    """A person's profile on one social network, with its reach."""

    record_kind: ClassVar[str] = "social profile"

    platform: SocialPlatform
    username: Annotated[str, Field(min_length=1, max_length=100)]
    url: Annotated[str | None, Field(max_length=500)] = None
    followers: Annotated[int, Field(ge=0, le=MAX_FOLLOWERS)] = 0
    engagement: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 0.0

    @field_validator("username")
    @classmethod
    def _strip_at(cls, value: str) -> str:
        return value.lstrip("@")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http(s) link to the profile")
        return value


#: The longest text a custom field holds: Salesforce's long text area, the longest of the three CRMs', and the
#: longest cell a CSV file is read with, so that every value stored can be exported and imported back.
MAX_CUSTOM_TEXT = 131_072


def best_engagement(profiles: Sequence[SocialProfile]) -> float | None:
    """The best engagement among a person's profiles, or ``None`` when none has one: a profile holds 0 when nothing
    gave it an engagement (files without the column, conversations), which is not a figure to send as "never
    engages"."""
    return max((p.engagement for p in profiles if p.engagement), default=None)


def _custom_value_fits(value: str | int | float | bool | None) -> str | int | float | bool | None:
    if isinstance(value, str) and len(value) > MAX_CUSTOM_TEXT:
        raise ValueError(f"{len(value):,} characters; a custom field holds at most {MAX_CUSTOM_TEXT:,}")
    if isinstance(value, float) and not math.isfinite(value):
        # No CRM field holds NaN or infinity, and JSON has no way to send them: as a score or engagement is refused.
        raise ValueError("must be a finite number")
    return value


_WHOLE_NUMBER = re.compile(r"-?(0|[1-9]\d*)")
_DECIMAL_NUMBER = re.compile(r"-?(0|[1-9]\d*)\.\d+")


def custom_value_like(stored: Any, value: Any) -> Any:
    """``value`` (text from a file, a form, the audit or a CRM) in the type of the custom value it replaces, when
    the text reads as one: a number stays a number and a yes/no a yes/no when edited, pulled or undone. Text that
    does not read as that type (or a code with leading zeros) stays text."""
    if not isinstance(value, str) or stored is None or isinstance(stored, str):
        return value
    text = value.strip()
    if isinstance(stored, bool):
        return {"true": True, "false": False}.get(text.lower(), value)
    if _WHOLE_NUMBER.fullmatch(text):
        return int(text) if isinstance(stored, int) else float(text)
    if _DECIMAL_NUMBER.fullmatch(text):
        return float(text)
    return value


CustomValue = Annotated[str | int | float | bool | None, AfterValidator(_custom_value_fits)]
#: A record's custom fields by name (``custom.NAME`` in mappings and files).
CustomFields = dict[Annotated[str, Field(min_length=1, max_length=100)], CustomValue]


class PersonRecord(WireModel):
    """What a contact and a lead both open with: the email that identifies the person, the name and company."""

    email: Annotated[str, Field(max_length=254)]
    first_name: NameText | None = None
    last_name: NameText | None = None
    company: CompanyText | None = None

    _email = field_validator("email")(_validate_email_field)


class Contact(PersonRecord):
    """A person known to the marketing team, deduplicated by normalised email."""

    record_kind: ClassVar[str] = "contact"

    phone: Annotated[str | None, Field(max_length=MAX_PHONE)] = None
    social_profiles: list[SocialProfile] = Field(default_factory=list)
    custom_fields: CustomFields = Field(default_factory=dict)

    _phone = field_validator("phone")(_validate_phone_field)


class SocialContext(WireModel):
    """The social conversation a lead came from."""

    record_kind: ClassVar[str] = "social context"

    platform: SocialPlatform
    conversation_id: Annotated[str | None, Field(max_length=100)] = None
    sentiment: Sentiment | None = None
    engagement_score: Annotated[float | None, Field(ge=0, le=100, allow_inf_nan=False)] = None


class Lead(PersonRecord):
    """A prospect raised from a social interaction (a DM, a comment, a form)."""

    record_kind: ClassVar[str] = "lead"

    source: Annotated[str | None, Field(max_length=80, pattern=r"^[a-z0-9_]+$")] = None
    status: LeadStatus = LeadStatus.NEW
    social_context: SocialContext | None = None
    social_profiles: list[SocialProfile] = Field(default_factory=list)
    custom_fields: CustomFields = Field(default_factory=dict)


def aware_utc(value: datetime) -> datetime:
    """A timestamp in UTC; one without a time zone is refused (its instant is unknown).

    Raises:
        ValueError: when the timestamp has no time zone, or is out of range once in UTC.
    """
    if value.tzinfo is None:
        raise ValueError("needs a time zone, e.g. 2026-11-27T10:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first instant a datetime holds
        raise ValueError("is out of range once in UTC") from None


#: A timestamp with a time zone, kept in UTC (see :func:`aware_utc`).
UtcDatetime = Annotated[datetime, AfterValidator(aware_utc)]


class Touchpoint(WireModel):
    """One interaction of a person with a campaign's social content."""

    record_kind: ClassVar[str] = "touchpoint"

    timestamp: UtcDatetime
    platform: SocialPlatform
    type: TouchpointType
    post_id: Annotated[str | None, Field(max_length=100)] = None
    conversation_id: Annotated[str | None, Field(max_length=100)] = None
    campaign: Annotated[str | None, Field(max_length=120)] = None


class DealPipelineChoice(WireModel):
    """Where converted or qualified leads get a deal: a pipeline and stage chosen by name from the CRM's live list
    (the ids are what the CRM is sent; the names what the marketer chose and sees)."""

    record_kind: ClassVar[str] = "deal pipeline"

    pipeline_id: Annotated[str, Field(min_length=1, max_length=64)]
    pipeline_name: Annotated[str, Field(min_length=1, max_length=255)]
    stage_id: Annotated[str, Field(min_length=1, max_length=64)]
    stage_name: Annotated[str, Field(min_length=1, max_length=255)]


def _configurable_direction(direction: SyncDirection) -> SyncDirection:
    if direction not in SyncDirection.configurable():
        raise ValueError(f"an integration syncs push, pull or both, not {direction.value}")
    return direction


class SyncConfig(WireModel):
    """How and when an integration syncs."""

    record_kind: ClassVar[str] = "sync config"

    direction: SyncDirection = SyncDirection.BOTH
    _direction = field_validator("direction")(_configurable_direction)
    sync_interval: Annotated[int, Field(ge=5, le=10080, description="minutes between scheduled syncs")] = 360
    auto_sync: bool = True
    push_new_interval: Annotated[
        int, Field(ge=5, le=10080, description="minutes between scheduled pushes of new contacts")
    ] = 60
    contact_fields: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=lambda: ["email", "firstName", "lastName", "company", "phone"]
    )
    lead_fields: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=lambda: ["email", "firstName", "lastName", "company", "source", "status"]
    )
    #: Pipedrive: the pipeline and stage where converted or qualified leads get their deal (none: no deals made).
    deal_pipeline: DealPipelineChoice | None = None


class Integration(WireModel):
    """A connection to one CRM account; its credentials live in the OS keyring, never here."""

    record_kind: ClassVar[str] = "integration"

    id: int | None = None
    provider: Provider
    name: Annotated[str, Field(min_length=1, max_length=80)]
    description: Annotated[str, Field(max_length=500)] = ""
    scopes: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list)
    sync_config: SyncConfig = Field(default_factory=SyncConfig)
    base_url: str | None = None
    domain: Annotated[str | None, Field(max_length=253)] = None
    #: When a person last set its credentials (added, replaced, signed in) on any desktop of the team; ``None`` when
    #: unknown or never. Each desktop's key age is its own (``IntegrationService.key_age``).
    keys_set_at: datetime | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        # A name keys the keyring entry and is printed in tables, one line a row (spaces around it are stripped).
        if "/" in value or "\\" in value:
            raise ValueError("must not contain / or \\")
        if any(ord(character) < 32 or ord(character) == 127 for character in value):
            raise ValueError("must not contain a line break, tab or other control character")
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value:
            return None
        provider = info.data.get("provider")
        if isinstance(provider, Provider):
            return check_base_url(value, BASE_URL_EXAMPLES[provider])
        return check_base_url(value)

    @field_validator("domain")
    @classmethod
    def _check_domain(cls, value: str | None) -> str | None:
        if value is None or not value:
            return None
        label = value.lower()
        allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-.")
        if not set(label) <= allowed or label.startswith(("-", ".")):
            raise ValueError("must be a company domain such as 'acme' or 'acme.com' (letters, digits, '-', '.')")
        return label
