"""People's engagement history read from the social tables, for the CRM's summary field."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select

from crm_desktop.domain.engagement_summary import ConversationFact, EngagementHistory, Interaction
from crm_desktop.domain.models import Sentiment, SocialPlatform, TouchpointType
from crm_desktop.domain.social import MessageDirection
from crm_desktop.store.database import Database, in_list_chunks
from crm_desktop.store.models import ContactRow, ConversationRow, MessageRow, TouchpointRow, utc_from_store

#: Interactions read per person at most: the summary lists the newest few; more only costs reading.
_INTERACTIONS_PER_PERSON = 50


class EngagementStore:
    """Reads what the engagement summary needs, many people at once."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def contact_scores(self, emails: Iterable[str]) -> dict[str, float]:
        """The engagement score stored on each of these contacts (the person's, as the People list shows it);
        contacts never scored are absent."""
        scores: dict[str, float] = {}
        with self._db.session() as session:
            for chunk in in_list_chunks(sorted(set(emails))):
                scores.update((email, score) for email, score in session.execute(
                    select(ContactRow.email, ContactRow.engagement_score)
                    .where(ContactRow.email.in_(chunk), ContactRow.engagement_score.is_not(None)))
                    if score is not None)
        return scores

    def histories(self, emails: Iterable[str]) -> dict[str, EngagementHistory]:
        """Each known person's conversations, message sentiments and newest interactions; people with none are
        absent."""
        wanted = sorted(set(emails))
        conversations: dict[str, list[ConversationFact]] = {}
        sentiments: dict[str, list[tuple[datetime, Sentiment]]] = {}
        interactions: dict[str, list[Interaction]] = {}
        with self._db.session() as session:
            for chunk in in_list_chunks(wanted):
                owners: dict[str, tuple[str, SocialPlatform]] = {}
                for row in session.scalars(
                    select(ConversationRow).where(ConversationRow.email.in_(chunk)).order_by(ConversationRow.id)
                ):
                    assert row.email is not None
                    owners[row.conversation_id] = (row.email, row.platform)
                    conversations.setdefault(row.email, []).append(ConversationFact(
                        row.platform, utc_from_store(row.started_at),
                        utc_from_store(row.last_message_at) if row.last_message_at else None,
                    ))
                if owners:
                    for conversation_id, direction, sent_at, sentiment in session.execute(
                        select(MessageRow.conversation_id, MessageRow.direction, MessageRow.sent_at,
                               MessageRow.sentiment)
                        .where(MessageRow.conversation_id.in_(list(owners)))
                        .order_by(MessageRow.sent_at, MessageRow.id)
                    ):
                        email, platform = owners[conversation_id]
                        moment = utc_from_store(sent_at)
                        if sentiment is not None:
                            sentiments.setdefault(email, []).append((moment, sentiment))
                        if direction is MessageDirection.INBOUND:
                            interactions.setdefault(email, []).append(Interaction(moment, platform, "message"))
                for touch in session.scalars(
                    select(TouchpointRow)
                    .where(TouchpointRow.email.in_(chunk), TouchpointRow.type != TouchpointType.CONVERSION)
                    .order_by(TouchpointRow.timestamp, TouchpointRow.id)
                ):
                    assert touch.email is not None
                    interactions.setdefault(touch.email, []).append(
                        Interaction(utc_from_store(touch.timestamp), touch.platform, touch.type.value.replace("_", " "),
                                    touch.campaign)
                    )
        people = set(conversations) | set(sentiments) | set(interactions)
        return {
            email: EngagementHistory(
                tuple(conversations.get(email, ())),
                tuple(sentiments.get(email, ())),
                tuple(sorted(interactions.get(email, ()), key=lambda i: i.at)[-_INTERACTIONS_PER_PERSON:]),
            )
            for email in people
        }


__all__ = ["EngagementStore"]
