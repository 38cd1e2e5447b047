"""Social data: conversations, messages, identities, campaigns, conversions; touchpoints by email or identity

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 05:31:08.858419
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

import crm_desktop.store.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PLATFORMS = ("twitter", "instagram", "linkedin", "facebook", "tiktok", "youtube", "threads", "pinterest", "reddit")
OLD_TOUCHPOINT_TYPES = ("post_view", "click", "like", "comment", "share", "dm", "mention", "follow", "form_submit")
TOUCHPOINT_TYPES = (
    "post_view",
    "view",
    "click",
    "like",
    "comment",
    "share",
    "dm",
    "mention",
    "follow",
    "form_submit",
    "conversion",
)


def _touchpoints_table(types: tuple[str, ...]) -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("timestamp", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "platform",
            sa.Enum(*PLATFORMS, name="touchpoint_platform", native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column(
            "type",
            sa.Enum(*types, name="touchpoint_type", native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column("post_id", sa.String(length=100), nullable=True),
        sa.Column("conversation_id", sa.String(length=100), nullable=True),
        sa.Column("campaign", sa.String(length=120), nullable=True),
    ]


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column(
            "platform",
            sa.Enum(
                "twitter",
                "instagram",
                "linkedin",
                "facebook",
                "tiktok",
                "youtube",
                "threads",
                "pinterest",
                "reddit",
                name="campaign_platform",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("starts_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ends_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("name", name=op.f("uq_campaigns_name")),
    )
    op.create_table(
        "conversions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_key", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("timestamp", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Numeric(precision=16, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column(
            "source",
            sa.Enum("crm_pull", "api", name="conversion_source", native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column("external_id", sa.String(length=100), nullable=True),
        sa.Column("integration", sa.String(length=80), nullable=True),
        sa.Column("created_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversions")),
        sa.UniqueConstraint("event_key", name=op.f("uq_conversions_event_key")),
    )
    with op.batch_alter_table("conversions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conversions_email"), ["email"], unique=False)
        batch_op.create_index(batch_op.f("ix_conversions_timestamp"), ["timestamp"], unique=False)

    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("conversation_id", sa.String(length=100), nullable=False),
        sa.Column(
            "direction",
            sa.Enum(
                "inbound", "outbound", name="message_direction", native_enum=False, create_constraint=True, length=32
            ),
            nullable=False,
        ),
        sa.Column("sent_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "sentiment",
            sa.Enum(
                "positive",
                "neutral",
                "negative",
                "mixed",
                name="message_sentiment",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("created_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("message_id", name=op.f("uq_messages_message_id")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_messages_conversation_id"), ["conversation_id"], unique=False)

    op.create_table(
        "social_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "platform",
            sa.Enum(
                "twitter",
                "instagram",
                "linkedin",
                "facebook",
                "tiktok",
                "youtube",
                "threads",
                "pinterest",
                "reddit",
                name="identity_platform",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("first_name", sa.String(length=80), nullable=True),
        sa.Column("last_name", sa.String(length=80), nullable=True),
        sa.Column("profile_url", sa.String(length=500), nullable=True),
        sa.Column("followers", sa.Integer(), nullable=True),
        sa.Column("created_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("linked_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_social_identities")),
        sa.UniqueConstraint("platform", "username", name="identity_platform_username"),
    )
    with op.batch_alter_table("social_identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_social_identities_email"), ["email"], unique=False)

    op.create_table(
        "workspace_settings",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_workspace_settings")),
    )
    op.create_table(
        "conversations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=100), nullable=False),
        sa.Column(
            "platform",
            sa.Enum(
                "twitter",
                "instagram",
                "linkedin",
                "facebook",
                "tiktok",
                "youtube",
                "threads",
                "pinterest",
                "reddit",
                name="conversation_platform",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("identity_id", sa.Integer(), nullable=True),
        sa.Column("started_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_message_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("messages_in", sa.Integer(), nullable=False),
        sa.Column("messages_out", sa.Integer(), nullable=False),
        sa.Column(
            "latest_sentiment",
            sa.Enum(
                "positive",
                "neutral",
                "negative",
                "mixed",
                name="conversation_sentiment",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("campaign", sa.String(length=120), nullable=True),
        sa.Column("crm_links", sa.JSON(), nullable=False),
        sa.Column("created_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["identity_id"],
            ["social_identities.id"],
            name=op.f("fk_conversations_identity_id_social_identities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
        sa.UniqueConstraint("platform", "conversation_id", name="conversation_platform_id"),
    )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conversations_conversation_id"), ["conversation_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_conversations_email"), ["email"], unique=False)
        batch_op.create_index(batch_op.f("ix_conversations_identity_id"), ["identity_id"], unique=False)

    # Touchpoints were modelled but never written before this revision; any row a script put there is carried
    # over to the new shape (its person by the contact's email), then the table is rebuilt with the wider type
    # check, which neither SQLite nor a portable ALTER can change in place.
    connection = op.get_bind()
    carried = connection.execute(
        sa.text(
            "SELECT t.id, c.email, t.timestamp, t.platform, t.type, t.post_id, t.conversation_id, t.campaign "
            "FROM touchpoints t JOIN contacts c ON c.id = t.contact_id"
        )
    ).fetchall()
    op.drop_table("touchpoints")
    touchpoints = op.create_table(
        "touchpoints",
        *_touchpoints_table(TOUCHPOINT_TYPES),
        sa.Column("event_key", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("identity_id", sa.Integer(), nullable=True),
        sa.Column("created_at", crm_desktop.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "email IS NOT NULL OR identity_id IS NOT NULL", name=op.f("ck_touchpoints_touchpoint_person")
        ),
        sa.ForeignKeyConstraint(
            ["identity_id"],
            ["social_identities.id"],
            name=op.f("fk_touchpoints_identity_id_social_identities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_touchpoints")),
        sa.UniqueConstraint("event_key", name=op.f("uq_touchpoints_event_key")),
    )
    with op.batch_alter_table("touchpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_touchpoints_campaign"), ["campaign"], unique=False)
        batch_op.create_index("ix_touchpoints_email_timestamp", ["email", "timestamp"], unique=False)
        batch_op.create_index(batch_op.f("ix_touchpoints_identity_id"), ["identity_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_touchpoints_timestamp"), ["timestamp"], unique=False)
    if carried and touchpoints is not None:
        now = datetime.now(UTC)
        op.bulk_insert(
            touchpoints,
            [
                {
                    "event_key": f"carried-over:{row.id}",
                    "email": row.email,
                    "identity_id": None,
                    "timestamp": _aware(row.timestamp),
                    "platform": row.platform,
                    "type": row.type,
                    "post_id": row.post_id,
                    "conversation_id": row.conversation_id,
                    "campaign": row.campaign,
                    "created_at": now,
                }
                for row in carried
            ],
        )


def _aware(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def downgrade() -> None:
    """Revert this migration (touchpoints of people known only by a social identity are dropped)."""
    connection = op.get_bind()
    carried = connection.execute(
        sa.text(
            "SELECT c.id AS contact_id, t.timestamp, t.platform, t.type, t.post_id, t.conversation_id, t.campaign "
            "FROM touchpoints t JOIN contacts c ON c.email = t.email "
            "WHERE t.type IN ('post_view', 'click', 'like', 'comment', 'share', 'dm', 'mention', 'follow', "
            "'form_submit')"
        )
    ).fetchall()
    op.drop_table("touchpoints")
    touchpoints = op.create_table(
        "touchpoints",
        *_touchpoints_table(OLD_TOUCHPOINT_TYPES),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_touchpoints_contact_id_contacts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_touchpoints")),
    )
    with op.batch_alter_table("touchpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_touchpoints_campaign"), ["campaign"], unique=False)
        batch_op.create_index(batch_op.f("ix_touchpoints_contact_id"), ["contact_id"], unique=False)
    if carried and touchpoints is not None:
        op.bulk_insert(
            touchpoints,
            [
                {
                    "contact_id": row.contact_id,
                    "timestamp": _aware(row.timestamp),
                    "platform": row.platform,
                    "type": row.type,
                    "post_id": row.post_id,
                    "conversation_id": row.conversation_id,
                    "campaign": row.campaign,
                }
                for row in carried
            ],
        )
    for table in ("conversations", "workspace_settings", "social_identities", "messages", "conversions", "campaigns"):
        op.drop_table(table)
