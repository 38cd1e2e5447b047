"""Touchpoints get ``event_ref``: an engagement's identity on its network, without its person; duplicates merged

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 16:50:00.000000

An engagement's touchpoint was kept once by a digest of the engagement *and* the name the sender gave its person
(the username, else the email). The same engagement re-sent naming the person the other way (by email once the
username was linked to it) made a second touchpoint, counted twice by the score and attribution. Each engagement's
touchpoint now keeps ``event_ref`` (the platform, kind, moment, post or conversation, and campaign, as
``crm_desktop.store.social_store.engagement_ref`` computes it, written out here), and a re-delivery is the row with
that ``event_ref`` of the same person. Touchpoints already recorded twice for one person are merged: the oldest stays
(knowing the person by both names); a conversion recorded under a removed one's key moves to the kept one's, or goes
when that one has its own. A downgrade drops the column; the merged duplicates are not restored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

touchpoints = sa.table(
    "touchpoints",
    sa.column("id", sa.Integer()),
    sa.column("event_key", sa.String()),
    sa.column("event_ref", sa.String()),
    sa.column("email", sa.String()),
    sa.column("identity_id", sa.Integer()),
    sa.column("timestamp", sa.DateTime(timezone=True)),
    sa.column("platform", sa.String()),
    sa.column("type", sa.String()),
    sa.column("post_id", sa.String()),
    sa.column("conversation_id", sa.String()),
    sa.column("campaign", sa.String()),
)
identities = sa.table("social_identities", sa.column("id", sa.Integer()), sa.column("email", sa.String()))
conversions = sa.table("conversions", sa.column("id", sa.Integer()), sa.column("event_key", sa.String()))


def _digest(*parts: Any) -> str:
    """``crm_desktop.store.social_store.event_key`` as of this revision."""
    text = json.dumps([str(p) if p is not None else None for p in parts], separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _ref(row: Any) -> str:
    """``crm_desktop.store.social_store.engagement_ref`` as of this revision."""
    moment = row.timestamp
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return _digest("engagement-ref", row.platform, row.type, moment.isoformat(), row.post_id, row.conversation_id,
                   row.campaign)


def _is_engagement(row: Any) -> bool:
    """Not a conversation's ``dm`` touchpoint (keyed by the conversation) nor one carried over by 0004."""
    if row.event_key.startswith("carried-over:"):
        return False
    return not (row.type == "dm" and row.event_key == _digest("conversation", row.platform, row.conversation_id))


def _one_person(kept: dict[str, Any], other: dict[str, Any], linked: dict[int, str | None]) -> bool:
    """The store's rule: the same identity when both name one, else the same email (an anonymous row's being its
    identity's)."""
    if kept["identity_id"] is not None and other["identity_id"] is not None:
        return bool(kept["identity_id"] == other["identity_id"])

    def email(row: dict[str, Any]) -> str | None:
        return row["email"] or (linked.get(row["identity_id"]) if row["identity_id"] is not None else None)

    return email(kept) is not None and email(kept) == email(other)


def upgrade() -> None:
    """Apply this migration."""
    op.add_column("touchpoints", sa.Column("event_ref", sa.String(length=64), nullable=True))
    op.create_index("ix_touchpoints_event_ref", "touchpoints", ["event_ref"], unique=False)
    connection = op.get_bind()
    rows = [row for row in connection.execute(sa.select(touchpoints).order_by(touchpoints.c.id)) if _is_engagement(row)]
    refs = [{"row_id": row.id, "ref": _ref(row)} for row in rows]
    if refs:
        by_id = touchpoints.c.id == sa.bindparam("row_id")
        connection.execute(touchpoints.update().where(by_id).values(event_ref=sa.bindparam("ref")), refs)
    linked = {id_: email for id_, email in connection.execute(sa.select(identities.c.id, identities.c.email))}
    kept: dict[str, list[dict[str, Any]]] = {}
    changed: dict[int, dict[str, Any]] = {}
    for row, ref in zip(rows, refs, strict=True):
        mine = {"id": row.id, "key": row.event_key, "email": row.email, "identity_id": row.identity_id}
        same = kept.setdefault(ref["ref"], [])
        keeper = next((k for k in same if _one_person(k, mine, linked)), None)
        if keeper is None:
            same.append(mine)
            continue
        for attribute in ("email", "identity_id"):
            if keeper[attribute] is None and mine[attribute] is not None:
                keeper[attribute] = mine[attribute]
                changed[keeper["id"]] = keeper
        has_own = connection.scalar(sa.select(conversions.c.id).where(conversions.c.event_key == keeper["key"]))
        if has_own is None:
            connection.execute(conversions.update().where(conversions.c.event_key == row.event_key)
                               .values(event_key=keeper["key"]))
        else:
            connection.execute(conversions.delete().where(conversions.c.event_key == row.event_key))
        connection.execute(touchpoints.delete().where(touchpoints.c.id == row.id))
    for keeper in changed.values():
        connection.execute(touchpoints.update().where(touchpoints.c.id == keeper["id"])
                           .values(email=keeper["email"], identity_id=keeper["identity_id"]))


def downgrade() -> None:
    """Revert this migration."""
    op.drop_index("ix_touchpoints_event_ref", table_name="touchpoints")
    # A plain DROP COLUMN (SQLite 3.35 and later), as 0014's downgrade.
    op.drop_column("touchpoints", "event_ref")
