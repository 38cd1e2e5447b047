"""SQLAlchemy 2 typed ORM tables of the local store."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ColumnElement,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    literal_column,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from crm_desktop.domain.alerts import AlertKind
from crm_desktop.domain.models import (
    LeadStatus,
    Provider,
    Sentiment,
    SocialPlatform,
    SyncDirection,
    TouchpointType,
)
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.domain.social import ConversionSource, MessageDirection


def utcnow() -> datetime:
    """Now, in UTC, aware."""
    return datetime.now(UTC)


def utc_from_store(value: datetime | str) -> datetime:
    """A moment read back from the store, aware in UTC.

    SQLite forgets the zone (a naive value is UTC), and an aggregate such as ``max`` bypasses the column type, so
    there SQLite may hand back the ISO text.
    """
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite forgets the zone; PostgreSQL keeps it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else utc_from_store(value)


class StoredSyncDirection(TypeDecorator[SyncDirection]):
    """A run's :class:`SyncDirection` kept as its plain value (VARCHAR(16), no CHECK: the column predates the enum)."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: SyncDirection | str | None, dialect: Any) -> str | None:
        return None if value is None else SyncDirection(value).value

    def process_result_value(self, value: str | None, dialect: Any) -> SyncDirection | None:
        return None if value is None else SyncDirection(value)


def str_enum(enum: type[StrEnum], name: str) -> Enum:
    """A portable enum column: VARCHAR plus a CHECK constraint holding the enum's values."""
    return Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
        length=32,
    )


class SyncTrigger(StrEnum):
    """What started a sync run."""

    MANUAL = "manual"
    SCHEDULED = "scheduled"
    AUTO = "auto"
    CLI = "cli"
    IMPORT = "import"
    #: another program on this computer, through the local API (``sync-from-crm``).
    API = "api"
    #: a person changed or added by hand (the People panel's Edit… and New…, ``contacts set``).
    EDIT = "edit"


#: Runs on the local store alone, with no integration: file imports and edits by hand (and their undos).
LOCAL_TRIGGERS = (SyncTrigger.IMPORT, SyncTrigger.EDIT)


class SyncRunStatus(StrEnum):
    """Where a sync run stands."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: The CRM could not be reached (network down, host unreachable): what was not delivered waits for the next run.
    OFFLINE = "offline"


class FieldDirection(StrEnum):
    """Which way one mapped field flows."""

    TWO_WAY = "two_way"
    PUSH_ONLY = "push_only"
    PULL_ONLY = "pull_only"
    OFF = "off"


class ConflictRule(StrEnum):
    """How a field changed on both sides is decided."""

    LAST_WRITE_WINS = "last_write_wins"
    PREFER_CRM = "prefer_crm"
    PREFER_LOCAL = "prefer_local"
    PREFER_CRM_UNLESS_BLANK = "prefer_crm_unless_blank"
    PREFER_LOCAL_UNLESS_BLANK = "prefer_local_unless_blank"
    MANUAL = "manual"


class ConflictStatus(StrEnum):
    """Whether a conflict still waits for the user."""

    OPEN = "open"
    RESOLVED = "resolved"


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints the same on every backend."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[str]: JSON()}


class IntegrationRow(Base):
    """A connected CRM account (no credential columns: secrets live in the OS keyring)."""

    __tablename__ = "integrations"
    # Never reuse the id of a removed integration: keyring entries are keyed by it.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[Provider] = mapped_column(str_enum(Provider, "provider"))
    name: Mapped[str] = mapped_column(String(80), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    scopes: Mapped[list[str]] = mapped_column(default=list)
    sync_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    base_url: Mapped[str | None] = mapped_column(String(500))
    domain: Mapped[str | None] = mapped_column(String(253))
    #: When the credentials were last set by a person (added, replaced, signed in) on any desktop of the team: a key
    #: set since the CRM account was read may reach another account. A token refresh does not count. The rotation
    #: reminder goes by each desktop's own date (:class:`IntegrationKeysRow`).
    keys_set_at: Mapped[datetime | None] = mapped_column()
    #: The CRM account the integration's links are in (HubSpot portal id, Pipedrive company id, Salesforce org id),
    #: as a run or a connection test last read it, and when: a token of another account is refused, not obeyed.
    crm_account_id: Mapped[str | None] = mapped_column(String(64))
    crm_account_seen_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)



class IntegrationKeysRow(Base):
    """When a person last set an integration's keys on one desktop, for that desktop's rotation reminder.

    Each desktop of a team database keeps its own copy of the keys in its own keyring, so each has its own key age.
    ``machine`` is the desktop's name in the team (:func:`~crm_desktop.store.process_owner.machine_name`); the row
    with ``machine`` ``''`` holds the age kept before ages were kept per desktop: it stands for every desktop that
    has not set the keys since.
    """

    __tablename__ = "integration_keys"

    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True)
    machine: Mapped[str] = mapped_column(String(255), primary_key=True)
    keys_set_at: Mapped[datetime] = mapped_column()

class ContactRow(Base):
    """A person, unique by normalised email."""

    __tablename__ = "contacts"
    # A merged contact's id is never given again: its History, undo and conflicts are kept under it.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    first_name: Mapped[str | None] = mapped_column(String(80))
    last_name: Mapped[str | None] = mapped_column(String(80))
    company: Mapped[str | None] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(40))
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: The engagement score from the person's social activity, written when an event of theirs is recorded (a
    #: lead keeps its own in ``leads``, as part of its social context); not a change of the contact's data.
    engagement_score: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)

    social_profiles: Mapped[list[SocialProfileRow]] = relationship(
        back_populates="contact", cascade="all, delete-orphan", order_by="SocialProfileRow.id"
    )


class SocialProfileRow(Base):
    """One social network profile of a contact."""

    __tablename__ = "social_profiles"
    __table_args__ = (UniqueConstraint("contact_id", "platform", "username", name="contact_platform_username"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    platform: Mapped[SocialPlatform] = mapped_column(str_enum(SocialPlatform, "social_platform"))
    username: Mapped[str] = mapped_column(String(100))
    url: Mapped[str | None] = mapped_column(String(500))
    followers: Mapped[int] = mapped_column(Integer, default=0)
    engagement: Mapped[float] = mapped_column(Float, default=0.0)

    contact: Mapped[ContactRow] = relationship(back_populates="social_profiles")


class ForgottenPersonRow(Base):
    """A person erased at their request (GDPR right to erasure), kept only as a digest of their normalised email, so
    that no pull, import, push or social event brings them back; lifted by ``unforget``."""

    __tablename__ = "forgotten_people"

    #: SHA-256 (hex) of the normalised email: no plain email is kept.
    email_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    forgotten_at: Mapped[datetime] = mapped_column(default=utcnow)


class LeadRow(Base):
    """A prospect raised from a social interaction, unique by normalised email."""

    __tablename__ = "leads"
    # As a contact's: a deleted lead's id is never given again.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    first_name: Mapped[str | None] = mapped_column(String(80))
    last_name: Mapped[str | None] = mapped_column(String(80))
    company: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str | None] = mapped_column(String(80))
    status: Mapped[LeadStatus] = mapped_column(str_enum(LeadStatus, "lead_status"), default=LeadStatus.NEW)
    social_platform: Mapped[SocialPlatform | None] = mapped_column(str_enum(SocialPlatform, "lead_platform"))
    conversation_id: Mapped[str | None] = mapped_column(String(100))
    sentiment: Mapped[Sentiment | None] = mapped_column(str_enum(Sentiment, "sentiment"))
    engagement_score: Mapped[float | None] = mapped_column(Float)
    social_profiles: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, server_default="[]")
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)


def name_sort_key(row: Any) -> ColumnElement[Any]:
    """The People list's name order: first and last name, case-folded. The constants are written into the SQL (not
    bound) so that the query's expression is the index's, which is what lets the database use the index."""
    return func.lower(
        func.coalesce(row.first_name, literal_column("''")) + literal_column("' '")
        + func.coalesce(row.last_name, literal_column("''"))
    )


def company_sort_key(row: Any) -> ColumnElement[Any]:
    """The People list's company order, case-folded (blank companies first)."""
    return func.lower(func.coalesce(row.company, literal_column("''")))


def score_sort_key(row: Any) -> ColumnElement[Any]:
    """The People list's score order (people without a score first)."""
    return func.coalesce(row.engagement_score, literal_column("-1.0"))


# The keyset sorts of the People list: (sort key, id), so a first page and every page after it are read from the
# index instead of sorting the whole table.
for _people in (ContactRow, LeadRow):
    _table = _people.__table__
    Index(f"ix_{_people.__tablename__}_name_sort", name_sort_key(_table.c), _table.c.id)
    Index(f"ix_{_people.__tablename__}_company_sort", company_sort_key(_table.c), _table.c.id)
    Index(f"ix_{_people.__tablename__}_score_sort", score_sort_key(_table.c), _table.c.id)


class SocialIdentityRow(Base):
    """A (platform, username) a social event named, linked to its contact once an email is known.

    Until then it is an anonymous person: its touchpoints and conversations wait on it, and join the person with
    that email (contact or lead) the moment some event or import gives the email for the username.
    """

    __tablename__ = "social_identities"
    __table_args__ = (UniqueConstraint("platform", "username", name="identity_platform_username"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[SocialPlatform] = mapped_column(str_enum(SocialPlatform, "identity_platform"))
    #: Lower-cased, without a leading "@": platforms match usernames ignoring case.
    username: Mapped[str] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    first_name: Mapped[str | None] = mapped_column(String(80))
    last_name: Mapped[str | None] = mapped_column(String(80))
    profile_url: Mapped[str | None] = mapped_column(String(500))
    followers: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    linked_at: Mapped[datetime | None]


class TouchpointRow(Base):
    """One interaction of a person with the brand.

    The person is an email (the contact's or the lead's) or, until the email is known, a social identity.
    ``event_key`` is a digest of the event that recorded it, so a re-delivered event is kept once. An engagement's
    also has ``event_ref``, a digest of what identifies it on its network without its person: a re-delivery naming
    the person another way (by email rather than username) is the row with that ``event_ref`` of the same person.
    """

    __tablename__ = "touchpoints"
    __table_args__ = (
        CheckConstraint("email IS NOT NULL OR identity_id IS NOT NULL", name="touchpoint_person"),
        Index("ix_touchpoints_email_timestamp", "email", "timestamp"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_key: Mapped[str] = mapped_column(String(64), unique=True)
    event_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    email: Mapped[str | None] = mapped_column(String(254))
    identity_id: Mapped[int | None] = mapped_column(
        ForeignKey("social_identities.id", ondelete="CASCADE"), index=True
    )
    timestamp: Mapped[datetime] = mapped_column(index=True)
    platform: Mapped[SocialPlatform] = mapped_column(str_enum(SocialPlatform, "touchpoint_platform"))
    type: Mapped[TouchpointType] = mapped_column(str_enum(TouchpointType, "touchpoint_type"))
    post_id: Mapped[str | None] = mapped_column(String(100))
    conversation_id: Mapped[str | None] = mapped_column(String(100))
    campaign: Mapped[str | None] = mapped_column(String(120), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConversationRow(Base):
    """A social conversation, unique per platform, with its message counts kept from the messages table."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("platform", "conversation_id", name="conversation_platform_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(100), index=True)
    platform: Mapped[SocialPlatform] = mapped_column(str_enum(SocialPlatform, "conversation_platform"))
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    identity_id: Mapped[int | None] = mapped_column(
        ForeignKey("social_identities.id", ondelete="CASCADE"), index=True
    )
    started_at: Mapped[datetime]
    last_message_at: Mapped[datetime | None]
    messages_in: Mapped[int] = mapped_column(default=0)
    messages_out: Mapped[int] = mapped_column(default=0)
    latest_sentiment: Mapped[Sentiment | None] = mapped_column(str_enum(Sentiment, "conversation_sentiment"))
    campaign: Mapped[str | None] = mapped_column(String(120))
    #: integration id (as text) -> the id of the CRM record the conversation is linked to.
    crm_links: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MessageRow(Base):
    """One message; kept even when it arrives before its conversation (webhooks come in any order)."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(100), unique=True)
    conversation_id: Mapped[str] = mapped_column(String(100), index=True)
    direction: Mapped[MessageDirection] = mapped_column(str_enum(MessageDirection, "message_direction"))
    sent_at: Mapped[datetime]
    text: Mapped[str] = mapped_column(Text)
    sentiment: Mapped[Sentiment | None] = mapped_column(str_enum(Sentiment, "message_sentiment"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CampaignRow(Base):
    """A marketing campaign, unique by name; created on first mention by a touchpoint."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    platform: Mapped[SocialPlatform | None] = mapped_column(str_enum(SocialPlatform, "campaign_platform"))
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    tags: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConversionRow(Base):
    """A person (by email) that converted, with its value; ``event_key`` keeps a pulled or re-sent one once."""

    __tablename__ = "conversions"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_key: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    timestamp: Mapped[datetime] = mapped_column(index=True)
    value: Mapped[Decimal | None] = mapped_column(Numeric(16, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    source: Mapped[ConversionSource] = mapped_column(str_enum(ConversionSource, "conversion_source"))
    external_id: Mapped[str | None] = mapped_column(String(100))
    integration: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkspaceSettingRow(Base):
    """One named, JSON-valued setting of the workspace (e.g. the engagement-score weights)."""

    __tablename__ = "workspace_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class FieldMappingRow(Base):
    """How one local field maps to one CRM field for an integration and object."""

    __tablename__ = "field_mappings"
    __table_args__ = (
        UniqueConstraint("integration_id", "object", "local_field", name="integration_object_local_field"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), index=True)
    object: Mapped[RecordObject] = mapped_column(str_enum(RecordObject, "mapping_object"))
    local_field: Mapped[str] = mapped_column(String(100))
    crm_field: Mapped[str] = mapped_column(String(255))
    direction: Mapped[FieldDirection] = mapped_column(
        str_enum(FieldDirection, "field_direction"), default=FieldDirection.TWO_WAY
    )
    conflict_rule: Mapped[ConflictRule] = mapped_column(
        str_enum(ConflictRule, "conflict_rule"), default=ConflictRule.LAST_WRITE_WINS
    )
    transforms: Mapped[list[str]] = mapped_column(default=list)
    default_value: Mapped[str | None] = mapped_column(String(255))
    blank_wipes: Mapped[bool] = mapped_column(default=False, server_default="0")


class SyncRunRow(Base):
    """One sync run of one integration."""

    __tablename__ = "sync_runs"
    # A run's id is never given again, even after its integration (and its runs) were removed: a script that kept
    # "run 64" must not undo another run under that number (SQLite reuses the largest id without AUTOINCREMENT).
    __table_args__ = (Index("ix_sync_runs_integration_started", "integration_id", "started_at"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    # No integration for an import into the local store (trigger ``import``).
    integration_id: Mapped[int | None] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    trigger: Mapped[SyncTrigger] = mapped_column(str_enum(SyncTrigger, "sync_trigger"))
    status: Mapped[SyncRunStatus] = mapped_column(
        str_enum(SyncRunStatus, "sync_run_status"), default=SyncRunStatus.RUNNING
    )
    direction: Mapped[SyncDirection] = mapped_column(StoredSyncDirection(), default=SyncDirection.BOTH)
    dry_run: Mapped[bool] = mapped_column(default=False)
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    conflicts: Mapped[int] = mapped_column(default=0)
    #: Fields changed on both sides that a conflict rule settled (``conflicts`` counts those waiting).
    conflicts_decided: Mapped[int] = mapped_column(default=0, server_default="0")
    #: For an undo's own run: the run it undid.
    undoes_run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id", ondelete="SET NULL"), index=True)
    api_calls: Mapped[int] = mapped_column(default=0)
    total: Mapped[int] = mapped_column(default=0)
    message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    #: For a run on the local store (an import, an edit, an undo of one): the process doing it (``host:pid``), so
    #: a run whose process was killed is told from one still going. A sync run's process holds its lock instead.
    owner: Mapped[str | None] = mapped_column(String(255))


class SyncRecordLogRow(Base):
    """The outcome of one record in one run."""

    __tablename__ = "sync_record_log"
    # A record's newest entries (a person's CRM records, a page's refused writes) without reading the whole log.
    __table_args__ = (Index("ix_record_log_record", "record_key", "object", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"), index=True)
    object: Mapped[RecordObject] = mapped_column(str_enum(RecordObject, "log_object"))
    record_key: Mapped[str] = mapped_column(String(254))
    crm_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[RecordOutcome] = mapped_column(str_enum(RecordOutcome, "record_outcome"))
    error_category: Mapped[ErrorCategory | None] = mapped_column(str_enum(ErrorCategory, "error_category"))
    message: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


#: The audit field of the row saying which contact a merge folded in (not a field value: it cannot be undone); its
#: old value is the merged contact's email, its new one the kept contact's.
MERGED_FIELD = "merged contact"


class AuditValueType(StrEnum):
    """The type of a value an audit row keeps as text, where it is known: a custom field holds text, numbers and
    yes/no alike, and an undo puts back ``42``, not ``"42"``. Rows without one (written before types were kept,
    or values of a fixed type, such as a name or a value read from a CRM) are read as text."""

    TEXT = "text"
    INTEGER = "int"
    DECIMAL = "float"
    YES_NO = "bool"


def audit_text(value: Any) -> tuple[str | None, AuditValueType | None]:
    """A value as an audit row keeps it: its text, as the marketer reads it (``42``, ``true``), and its type."""
    if value is None:
        return None, None
    if isinstance(value, bool):
        return ("true" if value else "false"), AuditValueType.YES_NO
    if isinstance(value, int):
        return str(value), AuditValueType.INTEGER
    if isinstance(value, float):
        return repr(value), AuditValueType.DECIMAL
    return str(value), AuditValueType.TEXT


def audit_value(text: str | None, kind: str | None) -> Any:
    """The value an audit row's text and type (see :func:`audit_text`) stand for; the text itself without a type."""
    if text is None or kind is None or kind == AuditValueType.TEXT:
        return text
    if kind == AuditValueType.YES_NO:
        return text == "true"
    if kind == AuditValueType.INTEGER:
        return int(text)
    if kind == AuditValueType.DECIMAL:
        return float(text)
    return text  # a type a later version of the app wrote: its text is what this one knows


def typed_audit_values(old: Any, new: Any) -> dict[str, Any]:
    """The value columns of an audit row whose old and new values are known with their types (``42``, ``True``,
    ``"42"``): an undo puts back exactly the old one."""
    old_text, old_type = audit_text(old)
    new_text, new_type = audit_text(new)
    return {"old_value": old_text, "old_type": old_type, "new_value": new_text, "new_type": new_type}


def audit_insert_row(row: dict[str, Any]) -> dict[str, Any]:
    """An audit row as inserted: a value given without a type is kept as its text (``True`` as ``true``, not the
    ``1`` SQLite would make of it), and every row has both type columns (one statement inserts many rows)."""
    filled = {"old_type": None, "new_type": None, **row}
    for column in ("old_value", "new_value"):
        value = filled.get(column)
        if value is not None and not isinstance(value, str):
            filled[column] = audit_text(value)[0]
    return filled


class AuditLogRow(Base):
    """One applied change of one field, with its before and after, so a run can be undone.

    ``old_value`` and ``new_value`` are text, as the History tab and exports show them; ``old_type`` and
    ``new_type`` say what they were (:class:`AuditValueType`) where it is known, else ``NULL``.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id", ondelete="SET NULL"), index=True)
    integration_id: Mapped[int | None] = mapped_column(ForeignKey("integrations.id", ondelete="SET NULL"))
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(255))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    old_type: Mapped[str | None] = mapped_column(String(8))
    new_type: Mapped[str | None] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(40))
    side: Mapped[str] = mapped_column(String(10), default="local")
    at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def old(self) -> Any:
        """The old value with its type where the row knows it (else its text)."""
        return audit_value(self.old_value, self.old_type)

    @property
    def new(self) -> Any:
        """The new value with its type where the row knows it (else its text)."""
        return audit_value(self.new_value, self.new_type)


class ConflictRow(Base):
    """A field changed on both sides, waiting for the marketer to decide."""

    __tablename__ = "conflicts"
    __table_args__ = (Index("ix_conflicts_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id", ondelete="SET NULL"), index=True)
    object: Mapped[RecordObject] = mapped_column(str_enum(RecordObject, "conflict_object"))
    local_id: Mapped[int] = mapped_column()
    crm_id: Mapped[str | None] = mapped_column(String(64))
    record_key: Mapped[str] = mapped_column(String(254))
    field: Mapped[str] = mapped_column(String(100))
    local_value: Mapped[str | None] = mapped_column(Text)
    crm_value: Mapped[str | None] = mapped_column(Text)
    base_value: Mapped[str | None] = mapped_column(Text)
    local_changed_at: Mapped[datetime | None]
    crm_changed_at: Mapped[datetime | None]
    status: Mapped[ConflictStatus] = mapped_column(
        str_enum(ConflictStatus, "conflict_status"), default=ConflictStatus.OPEN
    )
    resolution: Mapped[str | None] = mapped_column(String(20))
    resolved_value: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]


class OutboxStatus(StrEnum):
    """Where an intended CRM write stands."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class CrmLinkRow(Base):
    """A local record linked to a CRM record, with the base of the three-way merge.

    ``base_values`` holds, per local field, the last value both sides agreed on; ``pushed_hash`` the hash of the
    mapped values last pushed, so unchanged records send nothing; ``local_synced_at`` the local ``updated_at``
    that was in sync, so a sync only looks at records changed since.
    """

    __tablename__ = "crm_links"
    __table_args__ = (
        UniqueConstraint("integration_id", "object", "local_id", name="link_local"),
        UniqueConstraint("integration_id", "object", "crm_id", name="link_crm"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    object: Mapped[RecordObject] = mapped_column(str_enum(RecordObject, "link_object"))
    local_id: Mapped[int] = mapped_column()
    crm_id: Mapped[str] = mapped_column(String(64))
    base_values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    pushed_hash: Mapped[str | None] = mapped_column(String(64))
    crm_modified_at: Mapped[datetime | None]
    local_synced_at: Mapped[datetime | None]
    deleted_in_crm: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OutboxRow(Base):
    """A CRM write the engine intends, recorded before it is sent and marked done after (crash-safe)."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_integration_status", "integration_id", "status"),
        # A record's newest write (the People list's "failed" filter, a person's CRM records).
        Index("ix_outbox_record", "integration_id", "object", "local_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id", ondelete="SET NULL"), index=True)
    object: Mapped[RecordObject] = mapped_column(str_enum(RecordObject, "outbox_object"))
    local_id: Mapped[int] = mapped_column()
    email: Mapped[str] = mapped_column(String(254))
    crm_id: Mapped[str | None] = mapped_column(String(64))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    base_after: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: What the CRM held, as planned, in each field the write changes (local field -> value): a write resumed
    #: after a crash is audited with these, so undo puts them back. NULL for a create (nothing held before) and
    #: for writes queued by a version without this column (the link's base stands in for them).
    crm_old_values: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    values_hash: Mapped[str] = mapped_column(String(64))
    local_version: Mapped[datetime | None]
    status: Mapped[OutboxStatus] = mapped_column(str_enum(OutboxStatus, "outbox_status"), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SyncCursorRow(Base):
    """Where the next pull of an integration's object starts (advanced only after a page is committed)."""

    __tablename__ = "sync_cursors"
    __table_args__ = (UniqueConstraint("integration_id", "object", name="cursor_object"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    object: Mapped[RecordObject] = mapped_column(str_enum(RecordObject, "cursor_object"))
    cursor: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SyncLockRow(Base):
    """The one running sync of an integration, across processes (GUI timer, button, cron CLI)."""

    __tablename__ = "sync_locks"

    integration_id: Mapped[int] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    owner: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[int | None] = mapped_column()
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)


class SyncAttemptMetricsRow(Base):
    """The figures of one sync attempt: a run, or an attempt refused before its run began (CRM unreachable).

    The Sync Monitor's health line reads the newest attempt of each integration (why it failed, the quota the CRM
    reported last); the hourly table below holds the same figures summed for the charts.
    """

    __tablename__ = "sync_attempt_metrics"
    __table_args__ = (Index("ix_sync_attempt_metrics_integration_at", "integration_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    #: No run when the attempt stopped before the run was recorded.
    run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id", ondelete="SET NULL"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[SyncRunStatus] = mapped_column(str_enum(SyncRunStatus, "attempt_status"))
    #: Why the attempt as a whole failed or stopped early (``None`` when it ran to the end).
    error_category: Mapped[ErrorCategory | None] = mapped_column(str_enum(ErrorCategory, "attempt_error_category"))
    message: Mapped[str | None] = mapped_column(Text)
    contacts_synced: Mapped[int] = mapped_column(default=0)
    leads_synced: Mapped[int] = mapped_column(default=0)
    records_failed: Mapped[int] = mapped_column(default=0)
    api_calls: Mapped[int] = mapped_column(default=0)
    api_errors: Mapped[int] = mapped_column(default=0)
    quota_limit: Mapped[int | None] = mapped_column()
    quota_remaining: Mapped[int | None] = mapped_column()


class SyncHourlyMetricsRow(Base):
    """One integration's sync figures summed over one hour (UTC), for the Sync Monitor's charts."""

    __tablename__ = "sync_hourly_metrics"
    __table_args__ = (UniqueConstraint("integration_id", "hour", name="integration_hour"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    #: The hour's start.
    hour: Mapped[datetime] = mapped_column(index=True)
    runs: Mapped[int] = mapped_column(default=0)
    runs_succeeded: Mapped[int] = mapped_column(default=0)
    contacts_synced: Mapped[int] = mapped_column(default=0)
    leads_synced: Mapped[int] = mapped_column(default=0)
    records_failed: Mapped[int] = mapped_column(default=0)
    api_calls: Mapped[int] = mapped_column(default=0)
    api_errors: Mapped[int] = mapped_column(default=0)
    #: Social event -> CRM delivery latency, summed, and how many events it sums.
    latency_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    latency_events: Mapped[int] = mapped_column(default=0)
    #: The most of the daily API quota seen used in the hour, and the quota then.
    quota_used: Mapped[int | None] = mapped_column()
    quota_limit: Mapped[int | None] = mapped_column()


class AlertRow(Base):
    """One alert raised for the marketer (a failed run, a refused sign-in, a low quota, data-quality issues)."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_kind_integration_raised", "kind", "integration_id", "raised_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[AlertKind] = mapped_column(str_enum(AlertKind, "alert_kind"))
    #: ``None`` once the integration was removed; its name stays for the record.
    integration_id: Mapped[int | None] = mapped_column(ForeignKey("integrations.id", ondelete="SET NULL"))
    integration_name: Mapped[str] = mapped_column(String(80))
    message: Mapped[str] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id", ondelete="SET NULL"), index=True)
    raised_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Times the same alert came again within the quiet period (counted, not notified).
    repeats: Mapped[int] = mapped_column(default=0)
    #: The desktop (machine name) an alert is about and shown on alone, such as its keyring lacking an integration's
    #: key; ``None``: about the integration, shown on every desktop of a team database.
    machine: Mapped[str | None] = mapped_column(String(255), default=None)


class WorkflowEventKind(StrEnum):
    """Which social workflow an event starts (conversation -> contact, message -> engagement, engagement -> lead)."""

    CONVERSATION = "conversation"
    MESSAGE = "message"
    ENGAGEMENT = "engagement"


class DeliveryStatus(StrEnum):
    """Where a social event's delivery to a CRM stands (``sending``: claimed by a delivery in flight)."""

    PENDING = "pending"
    SENDING = "sending"
    DONE = "done"
    FAILED = "failed"


class WorkflowEventRow(Base):
    """A social event waiting to reach one integration's CRM (the workflows' durable outbox).

    One row per (integration, event key): a re-delivered event finds its row and adds nothing.
    """

    __tablename__ = "workflow_events"
    __table_args__ = (
        UniqueConstraint("integration_id", "event_key", name="workflow_event_key"),
        Index("ix_workflow_events_integration_status", "integration_id", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    event_key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[WorkflowEventKind] = mapped_column(str_enum(WorkflowEventKind, "workflow_event_kind"))
    #: The event as received (its wire form), so delivery needs nothing else to say what happened.
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[DeliveryStatus] = mapped_column(
        str_enum(DeliveryStatus, "workflow_delivery_status"), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    #: The CRM record the event reached and the timeline entry it added, once delivered.
    crm_id: Mapped[str | None] = mapped_column(String(64))
    entry_id: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
