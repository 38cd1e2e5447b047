"""Social data as the platforms send it and the store keeps it: conversations, messages, engagements, campaigns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, ClassVar, Self

from pydantic import AfterValidator, Field, PlainSerializer, ValidationInfo, field_validator, model_validator

from crm_desktop.domain.models import (
    MAX_FOLLOWERS,
    Sentiment,
    SocialPlatform,
    TouchpointType,
    UtcDatetime,
    WireModel,
    WrittenValue,
    normalise_email,
)

#: Longest message text kept locally; a longer one is refused rather than silently cut.
MESSAGE_TEXT_MAX = 10_000
#: How far after now an event's time may be (the platform's clock and ours may disagree, and a file's zoneless times
#: are read in the desktop's zone); a later one is refused, else it would count in full in the score for years.
FUTURE_SKEW = timedelta(hours=24)


def _not_in_future(value: datetime) -> datetime:
    """An event's time, refused when it is more than :data:`FUTURE_SKEW` after now. Old times are kept (a history
    import may go back years): their weight in the score decays towards 0."""
    latest = datetime.now(UTC) + FUTURE_SKEW
    if value > latest:
        raise ValueError(
            f"is in the future ({value.isoformat()}): an event's time may be at most 24 hours after now "
            f"({latest.replace(microsecond=0).isoformat()})")
    return value


#: An event's time: with a zone, kept in UTC, not more than :data:`FUTURE_SKEW` ahead.
EventTime = Annotated[UtcDatetime, AfterValidator(_not_in_future)]


def _without_nul(text: str) -> str:
    """Text with no NUL character: PostgreSQL cannot store one (a team store would fail the whole batch), and no
    platform sends one on purpose."""
    if "\x00" in text:
        raise ValueError("holds a NUL character (\\u0000), which cannot be stored")
    return text


# Text of the wire with no NUL. The lengths come before the NUL check: a length checked after a validator is
# pydantic's generic one ("Value should have at most 100 items after validation"), a string's own reads in the words
# the rest of the app uses ("must be at most 100 characters", "must not be blank").
ExternalId = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_without_nul)]
Username = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_without_nul)]
CampaignName = Annotated[str, Field(min_length=1, max_length=120), AfterValidator(_without_nul)]
EmailText = Annotated[str, Field(max_length=254), AfterValidator(_without_nul)]
PersonName = Annotated[str, Field(max_length=80), AfterValidator(_without_nul)]


class MessageDirection(WrittenValue):
    """Who wrote a message: the person (inbound) or the brand (outbound)."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class ConversionSource(StrEnum):
    """Where the news of a conversion came from."""

    CRM_PULL = "crm_pull"
    API = "api"


class AttributionModel(WrittenValue):
    """How a lead's or a conversion's credit is shared among its touchpoints (read in any case, with spaces or
    hyphens for underscores: ``Time Decay`` and ``time-decay`` are ``time_decay``)."""

    FIRST_TOUCH = "first_touch"
    LAST_TOUCH = "last_touch"
    LINEAR = "linear"
    TIME_DECAY = "time_decay"
    POSITION_BASED = "position_based"


class SocialEventKind(StrEnum):
    """The three kinds of social event a platform sends (and a file can hold)."""

    CONVERSATIONS = "conversations"
    MESSAGES = "messages"
    ENGAGEMENTS = "engagements"


def normalise_username(value: str) -> str:
    """A social username as it is matched: without a leading ``@``, lower-cased (platforms ignore case)."""
    return value.strip().lstrip("@").lower()


def _optional_email(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return normalise_email(value)


def _optional_username(value: str | None) -> str | None:
    if value is None:
        return None
    stripped = value.strip().lstrip("@")
    if not stripped:
        raise ValueError("must not be blank")
    return stripped


class _PersonByEmailOrUsername(WireModel):
    """A person known by email, by username, or both (at least one is required)."""

    email: EmailText | None = None
    username: Username | None = None

    _email = field_validator("email")(_optional_email)
    _username = field_validator("username")(_optional_username)

    @model_validator(mode="after")
    def _someone(self) -> Self:
        if self.email is None and self.username is None:
            raise ValueError("give the person's email or username")
        return self


class Participant(_PersonByEmailOrUsername):
    """The person on the other side of a conversation, known by email, by username, or both."""

    record_kind: ClassVar[str] = "participant"

    first_name: PersonName | None = None
    last_name: PersonName | None = None
    profile_url: Annotated[str | None, Field(max_length=500, pattern=r"^https?://\S+$")] = None
    followers: Annotated[int | None, Field(ge=0, le=MAX_FOLLOWERS)] = None


class EngagementUser(_PersonByEmailOrUsername):
    """Who engaged with a post: by email, by username on the event's platform, or both."""

    record_kind: ClassVar[str] = "user"


class ConversationEvent(WireModel):
    """A conversation started on a platform (the body of ``POST /api/social/conversations``)."""

    record_kind: ClassVar[str] = "conversation"

    conversation_id: ExternalId
    platform: SocialPlatform
    started_at: EventTime
    campaign: CampaignName | None = None
    participant: Participant


class Message(WireModel):
    """One message of a conversation (the body of ``POST /api/social/messages``)."""

    record_kind: ClassVar[str] = "message"

    conversation_id: ExternalId
    message_id: ExternalId
    direction: MessageDirection
    sent_at: EventTime
    text: Annotated[str, Field(max_length=MESSAGE_TEXT_MAX), AfterValidator(_without_nul)]
    sentiment: Sentiment | None = None


class EngagementEvent(WireModel):
    """A person engaged with the brand's content (the body of ``POST /api/social/engagements``)."""

    record_kind: ClassVar[str] = "engagement"

    platform: SocialPlatform
    type: TouchpointType
    timestamp: EventTime
    post_id: ExternalId | None = None
    conversation_id: ExternalId | None = None
    campaign: CampaignName | None = None
    user: EngagementUser


class PersonRef(WireModel):
    """How the store knows a person: a contact's email, or (platform, username) while still anonymous."""

    record_kind: ClassVar[str] = "person"

    email: EmailText | None = None
    platform: SocialPlatform | None = None
    username: Username | None = None

    _email = field_validator("email")(_optional_email)
    _username = field_validator("username")(_optional_username)

    @model_validator(mode="after")
    def _someone(self) -> Self:
        if self.email is None and (self.platform is None or self.username is None):
            raise ValueError("give the person's email, or a platform and a username")
        return self


class Conversation(WireModel):
    """A conversation as the store keeps it: who, when, how many messages each way, the latest mood.

    ``crm_links`` maps an integration's id (as text) to the id of the CRM record the conversation is linked to.
    """

    record_kind: ClassVar[str] = "conversation"

    conversation_id: ExternalId
    platform: SocialPlatform
    participant: PersonRef
    started_at: datetime
    last_message_at: datetime | None = None
    messages_in: Annotated[int, Field(ge=0)] = 0
    messages_out: Annotated[int, Field(ge=0)] = 0
    latest_sentiment: Sentiment | None = None
    campaign: CampaignName | None = None
    crm_links: dict[str, str] = Field(default_factory=dict)


class Campaign(WireModel):
    """A marketing campaign that touchpoints name; the name is unique."""

    record_kind: ClassVar[str] = "campaign"

    name: CampaignName
    platform: SocialPlatform | None = None
    starts_at: UtcDatetime | None = None
    ends_at: UtcDatetime | None = None
    tags: list[Annotated[str, Field(min_length=1, max_length=60)]] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.starts_at and self.ends_at and self.ends_at < self.starts_at:
            raise ValueError("endsAt is before startsAt")
        return self


class Conversion(WireModel):
    """A lead or contact that converted (a won deal, a converted lead, a purchase), with its value if known.

    ``external_id`` is the CRM's or the caller's id of the conversion, so a pulled or re-sent one is kept once.
    """

    record_kind: ClassVar[str] = "conversion"

    email: EmailText
    timestamp: UtcDatetime
    value: Annotated[
        Decimal | None,
        Field(ge=0, max_digits=16, decimal_places=2),
        PlainSerializer(lambda v: None if v is None else float(v), return_type=float | None, when_used="json"),
    ] = None
    currency: Annotated[str | None, Field(pattern=r"^[A-Za-z]{3}$", validate_default=True)] = None
    source: ConversionSource = ConversionSource.API
    external_id: ExternalId | None = None
    integration: Annotated[str | None, Field(max_length=80)] = None

    _email = field_validator("email")(normalise_email)
    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if info.data.get("value") is not None:
                raise ValueError("a value needs its currency (ISO 4217, e.g. EUR)")
            return None
        return value.upper()


#: Interactions that count towards the engagement score besides touchpoint types.
INBOUND_MESSAGE = "inbound_message"
OUTBOUND_MESSAGE = "outbound_message"

#: Default points per interaction, before recency decay (see docs/scoring.md).
DEFAULT_WEIGHTS: dict[str, float] = {
    TouchpointType.POST_VIEW.value: 1.0,
    TouchpointType.VIEW.value: 1.0,
    TouchpointType.CLICK.value: 3.0,
    TouchpointType.LIKE.value: 2.0,
    TouchpointType.COMMENT.value: 5.0,
    TouchpointType.SHARE.value: 8.0,
    TouchpointType.DM.value: 10.0,
    TouchpointType.MENTION.value: 5.0,
    TouchpointType.FOLLOW.value: 4.0,
    TouchpointType.FORM_SUBMIT.value: 8.0,
    TouchpointType.CONVERSION.value: 0.0,
    INBOUND_MESSAGE: 6.0,
    OUTBOUND_MESSAGE: 1.0,
}
INTERACTION_KINDS: frozenset[str] = frozenset(DEFAULT_WEIGHTS)


class ScoringSettings(WireModel):
    """A workspace's engagement-score and attribution settings (see docs/scoring.md).

    Attributes:
        weights: points per interaction kind (a touchpoint type, ``inbound_message`` or ``outbound_message``).
        half_life_days: an interaction counts half as much after this many days.
        saturation: the decayed points at which activity is half of its maximum.
        reach_share: the part of the score that needs reach; with no followers the score tops out at 100 minus it.
        reach_cap_followers: followers at which reach is full (log scale below).
        attribution_half_life_days: the half-life of the time-decay attribution model.
    """

    record_kind: ClassVar[str] = "scoring settings"

    weights: dict[str, Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]] = Field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS))
    half_life_days: Annotated[float, Field(gt=0, le=3650, allow_inf_nan=False)] = 30.0
    saturation: Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False)] = 20.0
    reach_share: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.2
    reach_cap_followers: Annotated[int, Field(ge=10)] = 1_000_000
    attribution_half_life_days: Annotated[float, Field(gt=0, le=3650, allow_inf_nan=False)] = 7.0

    @field_validator("weights")
    @classmethod
    def _known_kinds(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - INTERACTION_KINDS)
        if unknown:
            raise ValueError(
                f"unknown interaction {', '.join(unknown)}; use one of {', '.join(sorted(INTERACTION_KINDS))}"
            )
        # A partial table changes only the kinds it names.
        return {**DEFAULT_WEIGHTS, **value}


class EventAction(StrEnum):
    """What recording one social event did to the store (a re-delivered event is ``unchanged``)."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    #: Not recorded: the event names a person forgotten at their request (the API's answer only; nothing stored).
    SKIPPED = "skipped"


class CreditedTouchpoint(WireModel):
    """One touchpoint of an attribution and the share of the credit it earned."""

    record_kind: ClassVar[str] = "credited touchpoint"

    timestamp: datetime
    platform: SocialPlatform
    type: TouchpointType
    campaign: str | None = None
    credit: float


class ConversionCredits(WireModel):
    """One conversion of a lead and the credit (1) the touchpoints before it earned, as the report shares it.

    Attributes:
        timestamp: when it converted; the time-decay model measures ages back from it.
        value: its value, if known.
        currency: the value's currency.
        touchpoints: the lead's touchpoints up to it, oldest first, with their credits (summing to 1).
    """

    record_kind: ClassVar[str] = "conversion credits"

    timestamp: datetime
    value: float | None = None
    currency: str | None = None
    touchpoints: list[CreditedTouchpoint] = Field(default_factory=list)


class LeadAttribution(WireModel):
    """A lead's credits under one model (``GET .../leads/:leadId/attribution``).

    A converted lead is credited as the attribution report credits it: each of its ``conversions`` shares 1 among
    the touchpoints before it. ``touchpoints`` are those up to its last conversion, each with the credit it earned
    summed over the conversions (so they sum to the number of conversions, and a campaign's credits summed over its
    leads are the report's conversions credited). A lead not converted gets the credit its touchpoints would earn
    now (summing to 1, ages measured from ``reference`` = now). ``converted_at`` is the lead's first conversion,
    and ``reference`` that conversion's instant too when it has one.
    """

    record_kind: ClassVar[str] = "attribution"

    lead_id: int
    email: str
    model: AttributionModel
    reference: datetime
    converted_at: datetime | None = None
    touchpoints: list[CreditedTouchpoint] = Field(default_factory=list)
    conversions: list[ConversionCredits] = Field(default_factory=list)


class ReportRow(WireModel):
    """One campaign's or platform's line of the attribution report.

    Attributes:
        name: the campaign or platform (``None`` for touchpoints without a campaign).
        touchpoints: touchpoints in the period.
        leads: distinct leads among the people behind them.
        conversions_credited: the conversions' credit this line earned (each conversion shares 1).
        value_credited: the conversions' value this line earned, per currency.
    """

    record_kind: ClassVar[str] = "report row"

    name: str | None = None
    touchpoints: int = 0
    leads: int = 0
    conversions_credited: float = 0.0
    value_credited: dict[str, float] = Field(default_factory=dict)


class AttributionReport(WireModel):
    """Per campaign and per platform: touchpoints, leads, conversions and value credited under one model."""

    record_kind: ClassVar[str] = "attribution report"

    model: AttributionModel
    since: datetime | None = None
    #: The end of the period, not included (``None``: up to now).
    until: datetime | None = None
    #: The campaign asked for, as stored (``winter sale`` asked is ``Winter Sale`` when only that one matches it).
    campaign: str | None = None
    #: True when the campaign asked for matches none stored (its rows are then empty); see ``closest_campaigns``.
    unknown_campaign: bool = False
    #: With ``unknown_campaign``: the stored campaigns whose names are nearest to the one asked for.
    closest_campaigns: list[str] = Field(default_factory=list)
    conversions: int = 0
    unattributed_conversions: int = 0
    value: dict[str, float] = Field(default_factory=dict)
    by_campaign: list[ReportRow] = Field(default_factory=list)
    by_platform: list[ReportRow] = Field(default_factory=list)
