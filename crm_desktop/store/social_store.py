"""Social data in the store: people by email or social identity, conversations, messages, touchpoints, conversions.

Every write method takes a batch and writes it in one transaction (flushing every ``SAVE_BATCH`` rows), so an API
request or an imported file is all or nothing. Events are idempotent: a touchpoint or a conversion is keyed by a
digest of what identifies it, a message by its id, a conversation by (platform, id); a re-delivered event changes
nothing. An engagement is found again by its identity on the network (``event_ref``) and its person, however the
re-delivery names them (username or email).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar, cast

from sqlalchemy import Table, bindparam, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from crm_desktop.domain.attribution import Touch
from crm_desktop.domain.errors import FieldProblem, InvalidRecordError
from crm_desktop.domain.models import SocialPlatform, TouchpointType
from crm_desktop.domain.scoring import Interaction
from crm_desktop.domain.social import (
    INBOUND_MESSAGE,
    OUTBOUND_MESSAGE,
    Campaign,
    Conversation,
    ConversationEvent,
    Conversion,
    ConversionSource,
    EngagementEvent,
    EventAction,
    Message,
    MessageDirection,
    PersonRef,
    normalise_username,
)
from crm_desktop.store.database import Database, in_list_chunks
from crm_desktop.store.models import (
    CampaignRow,
    ContactRow,
    ConversationRow,
    ConversionRow,
    LeadRow,
    MessageRow,
    SocialIdentityRow,
    SocialProfileRow,
    TouchpointRow,
    WorkspaceSettingRow,
    utc_from_store,
    utcnow,
)
from crm_desktop.store.repositories import NotFoundError

logger = logging.getLogger(__name__)

#: Rows written per flush within one batch.
SAVE_BATCH = 1_000
T = TypeVar("T")


@dataclass(frozen=True)
class Person:
    """Who an event belongs to: an email (a contact's or a lead's), a social identity not yet known by email, or both.

    Attributes:
        email: the normalised email, once known.
        identity_id: the (platform, username) identity the event named, if it named one.
        platform: that identity's platform.
        username: that identity's username (lower-cased).
    """

    email: str | None
    identity_id: int | None = None
    platform: SocialPlatform | None = None
    username: str | None = None

    def ref(self) -> PersonRef | None:
        """The person as the wire shows it, or ``None`` when nobody is known yet (a message before its conversation)."""
        if self.email is None and self.identity_id is None:
            return None
        if self.email is not None:
            return PersonRef.model_construct(email=self.email, platform=self.platform, username=self.username)
        return PersonRef.model_construct(email=None, platform=self.platform, username=self.username)


NOBODY = Person(email=None)


@dataclass(frozen=True)
class RecordedEvent:
    """The outcome of recording one event.

    Attributes:
        action: created, updated, or unchanged (a re-delivery).
        person: who it belongs to after identity stitching.
        linked_touchpoints: earlier touchpoints this event moved from an anonymous identity to the email it gave.
    """

    action: EventAction
    person: Person
    linked_touchpoints: int = 0


@dataclass(frozen=True)
class StoredTouch:
    """A touchpoint with its person and id, as the report reads it."""

    touch: Touch
    email: str | None
    identity_id: int | None


@dataclass(frozen=True)
class StoredConversion:
    """A conversion as the report and attribution read it."""

    id: int
    email: str
    timestamp: datetime
    value: Decimal | None
    currency: str | None


def event_key(*parts: Any) -> str:
    """A stable digest (64 hex characters) of what identifies an event."""
    text = json.dumps([str(p) if p is not None else None for p in parts], separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def engagement_ref(
    platform: SocialPlatform | str,
    type: TouchpointType | str,
    timestamp: datetime,
    post_id: str | None,
    conversation_id: str | None,
    campaign: str | None,
) -> str:
    """What identifies an engagement on its network, whoever the sender named as its person (a digest kept in
    ``touchpoints.event_ref``): the platform, the kind of engagement, its moment (as UTC), the post or conversation
    engaged with, and the campaign. Migration 0022 computes it the same way for the rows it fills in."""
    moment = timestamp.astimezone(UTC).replace(tzinfo=None) if timestamp.tzinfo is not None else timestamp
    return event_key("engagement-ref", str(platform), str(type), moment.isoformat(), post_id, conversation_id,
                     campaign)


@dataclass
class _Stitcher:
    """Finds or creates the person an event names, within one transaction, and links identities to emails."""

    session: Session
    identities: dict[tuple[SocialPlatform, str], SocialIdentityRow] = field(default_factory=dict)
    #: (platform, username) -> the email of the contact whose profile carries it; None when none does.
    profile_emails: dict[tuple[SocialPlatform, str], str | None] = field(default_factory=dict)
    #: Identities given their email in this batch, whose earlier rows move at :meth:`finish`.
    links: dict[int, tuple[SocialIdentityRow, str]] = field(default_factory=dict)

    def preload(self, names: Iterable[tuple[SocialPlatform, str]]) -> None:
        """Read (or create, in one flush) the identities a batch names, and the contacts whose profiles carry them,
        so a large batch costs a few queries per 500 names rather than a few per event."""
        wanted = sorted(
            {(platform, normalise_username(username)) for platform, username in names} - set(self.identities)
        )
        by_platform: dict[SocialPlatform, list[str]] = {}
        for platform, username in wanted:
            by_platform.setdefault(platform, []).append(username)
        for platform, usernames in by_platform.items():
            for chunk in in_list_chunks(usernames):
                for row in self.session.scalars(
                    select(SocialIdentityRow).where(
                        SocialIdentityRow.platform == platform, SocialIdentityRow.username.in_(chunk)
                    )
                ):
                    self.identities[(row.platform, row.username)] = row
                for email, username in self.session.execute(
                    select(ContactRow.email, func.lower(SocialProfileRow.username))
                    .join(SocialProfileRow, SocialProfileRow.contact_id == ContactRow.id)
                    .where(SocialProfileRow.platform == platform, func.lower(SocialProfileRow.username).in_(chunk))
                    .order_by(ContactRow.id.desc())
                ):
                    self.profile_emails[(platform, username)] = email  # the oldest contact is read last and wins
        missing = [key for key in wanted if key not in self.identities]
        for platform, username in missing:
            row = SocialIdentityRow(platform=platform, username=username)
            self.session.add(row)
            self.identities[(platform, username)] = row
        if missing:
            self.session.flush()
        for key in wanted:
            self.profile_emails.setdefault(key, None)

    def emails_of(self, platform: SocialPlatform, email: str | None, username: str | None) -> list[str]:
        """The emails an event naming this person may resolve to (given, linked to the username, or on a contact's
        profile with it), to read their contacts beforehand."""
        found = [email] if email is not None else []
        if username is not None:
            key = (platform, normalise_username(username))
            identity = self.identities.get(key)
            found += [e for e in (identity.email if identity else None, self.profile_emails.get(key)) if e]
        return found

    def identity(self, platform: SocialPlatform, username: str) -> SocialIdentityRow:
        key = (platform, normalise_username(username))
        if key not in self.identities:
            self.preload([key])
        return self.identities[key]

    def email_from_profiles(self, platform: SocialPlatform, username: str) -> str | None:
        """The email of the contact whose social profile carries this username (the oldest such contact)."""
        key = (platform, username)
        if key not in self.profile_emails:
            self.preload([key])
        return self.profile_emails.get(key)

    def resolve(
        self,
        platform: SocialPlatform,
        email: str | None,
        username: str | None,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        profile_url: str | None = None,
        followers: int | None = None,
    ) -> tuple[Person, bool]:
        """The person an event names, and whether this event gave an anonymous identity its email (its earlier
        touchpoints then join that email at :meth:`finish`)."""
        if username is None:
            return Person(email=email), False
        identity = self.identity(platform, username)
        for attribute, value in (
            ("first_name", first_name),
            ("last_name", last_name),
            ("profile_url", profile_url),
            ("followers", followers),
        ):
            if value is not None and getattr(identity, attribute) != value:
                setattr(identity, attribute, value)
        linked = False
        if email is None:
            email = identity.email or self.email_from_profiles(identity.platform, identity.username)
        if email is not None and identity.email is None:
            self.link(identity, email)
            linked = True
        # An identity keeps the first email it was linked to; an event naming another email belongs to that email.
        return Person(
            email=email, identity_id=identity.id, platform=identity.platform, username=identity.username
        ), linked

    def link(self, identity: SocialIdentityRow, email: str) -> None:
        """Give an anonymous identity its email; its earlier touchpoints and conversations follow at :meth:`finish`."""
        identity.email = email
        identity.linked_at = utcnow()
        self.links[identity.id] = (identity, email)

    def finish(self) -> dict[int, int]:
        """Move the rows of the identities linked in this batch to their emails (a few set-based statements per
        :data:`IN_LIST_SIZE <crm_desktop.store.database.IN_LIST_SIZE>` identities) and put the usernames on those
        contacts' profiles; how many touchpoints moved, by identity id."""
        if not self.links:
            return {}
        self.session.flush()
        moved: dict[int, int] = dict.fromkeys(self.links, 0)
        # Each linked identity's email is stored on its row (flushed above): a touchpoint or a conversation takes
        # the email of its own identity.
        linked_email = (select(SocialIdentityRow.email)
                        .where(SocialIdentityRow.id == TouchpointRow.identity_id).scalar_subquery())
        conversation_email = (select(SocialIdentityRow.email)
                              .where(SocialIdentityRow.id == ConversationRow.identity_id).scalar_subquery())
        for ids in in_list_chunks(sorted(self.links)):
            self._conversions_of(ids)
            for identity_id in self.session.scalars(
                update(TouchpointRow)
                .where(TouchpointRow.identity_id.in_(ids), TouchpointRow.email.is_(None))
                .values(email=linked_email)
                .returning(TouchpointRow.identity_id)
                .execution_options(synchronize_session=False)
            ):
                moved[cast(int, identity_id)] += 1
            self.session.execute(
                update(ConversationRow)
                .where(ConversationRow.identity_id.in_(ids), ConversationRow.email.is_(None))
                .values(email=conversation_email)
                .execution_options(synchronize_session=False)
            )
        refs: list[str | None] = []
        for ids in in_list_chunks(sorted(self.links)):
            refs += self.session.scalars(select(TouchpointRow.event_ref).distinct().where(
                TouchpointRow.identity_id.in_(ids), TouchpointRow.event_ref.is_not(None)))
        _merge_engagements(self.session, refs)
        emails = sorted({email for _, email in self.links.values()})
        contacts: dict[str, ContactRow] = {}
        for chunk in in_list_chunks(emails):
            for contact in self.session.scalars(
                select(ContactRow).options(selectinload(ContactRow.social_profiles)).where(ContactRow.email.in_(chunk))
            ):
                contacts[contact.email] = contact
        # A conversation with the participant's email upserts the local contact: so does one whose participant, known
        # by username when it started, is given its email now (by a message's or an engagement's event, a file),
        # else the workflows would have no contact to push and its "Conversation started" entry would reach no CRM.
        conversing: set[int] = set()
        for ids in in_list_chunks(list(self.links)):
            conversing.update(identity_id for identity_id in self.session.scalars(
                select(ConversationRow.identity_id).distinct().where(ConversationRow.identity_id.in_(ids)))
                if identity_id is not None)
        for identity, email in self.links.values():
            if identity.id not in conversing:
                continue
            known = contacts.get(email)
            if known is None:
                made = ContactRow(email=email, first_name=identity.first_name, last_name=identity.last_name,
                                  custom_fields={}, social_profiles=[])
                self.session.add(made)
                contacts[email] = made
            else:  # social data fills blanks; it never overwrites a name the marketer or the CRM gave
                known.first_name = known.first_name or identity.first_name
                known.last_name = known.last_name or identity.last_name
        for identity, email in self.links.values():
            if email in contacts:
                self.add_profile(contacts[email], identity)
        logger.info(
            "%d social identities linked to people by email; %d earlier touchpoints joined",
            len(self.links),
            sum(moved.values()),
        )
        self.links.clear()
        return moved

    def _conversions_of(self, identity_ids: Sequence[int]) -> None:
        """Record the conversions of these linked identities' ``conversion`` touchpoints, which waited for the
        email (a conversion is a person's, known by email), each once, under its touchpoint's key."""
        waiting = self.session.execute(
            select(TouchpointRow.identity_id, TouchpointRow.event_key, TouchpointRow.timestamp).where(
                TouchpointRow.identity_id.in_(identity_ids), TouchpointRow.email.is_(None),
                TouchpointRow.type == TouchpointType.CONVERSION)).all()
        if not waiting:
            return
        recorded: set[str] = set()
        for keys in in_list_chunks([key for _, key, _ in waiting]):
            recorded.update(self.session.scalars(
                select(ConversionRow.event_key).where(ConversionRow.event_key.in_(keys))))
        self.session.add_all(ConversionRow(event_key=key, email=self.links[cast(int, identity_id)][1],
                                           timestamp=timestamp, value=None, currency=None,
                                           source=ConversionSource.API, external_id=None, integration=None)
                             for identity_id, key, timestamp in waiting if key not in recorded)

    def add_profile(self, contact: ContactRow, identity: SocialIdentityRow) -> None:
        """Put the identity on the contact's social profiles (so later events by username find the contact)."""
        for profile in contact.social_profiles:
            if profile.platform == identity.platform and profile.username.lower() == identity.username:
                if identity.followers is not None and profile.followers != identity.followers:
                    profile.followers = identity.followers
                    contact.updated_at = utcnow()
                return
        contact.social_profiles.append(
            SocialProfileRow(
                platform=identity.platform,
                username=identity.username,
                url=identity.profile_url,
                followers=identity.followers or 0,
                engagement=0.0,
            )
        )
        # A profile-only change does not touch the contacts row, so its onupdate would not fire.
        contact.updated_at = utcnow()


@dataclass
class _Contacts:
    """The local contacts a batch names, read a chunk of emails at a time with their social profiles; a contact the
    batch creates is kept here too."""

    session: Session
    #: email -> its contact, or None when there is none (yet).
    known: dict[str, ContactRow | None] = field(default_factory=dict)

    def preload(self, emails: Iterable[str]) -> None:
        wanted = sorted(set(emails) - set(self.known))
        for chunk in in_list_chunks(wanted):
            for contact in self.session.scalars(
                select(ContactRow).options(selectinload(ContactRow.social_profiles)).where(ContactRow.email.in_(chunk))
            ):
                self.known[contact.email] = contact
        for email in wanted:
            self.known.setdefault(email, None)

    def get(self, email: str) -> ContactRow | None:
        if email not in self.known:
            self.preload([email])
        return self.known[email]

    def upsert(self, email: str, first_name: str | None, last_name: str | None) -> None:
        """Create the contact of ``email``, or fill the blanks of its name: social data never overwrites a name the
        marketer or the CRM gave."""
        contact = self.get(email)
        if contact is None:
            self.known[email] = ContactRow(email=email, first_name=first_name, last_name=last_name, custom_fields={},
                                           social_profiles=[])
            self.session.add(self.known[email])
            return
        if contact.first_name is None and first_name is not None:
            contact.first_name = first_name
        if contact.last_name is None and last_name is not None:
            contact.last_name = last_name


class SocialStore:
    """Conversations, messages, touchpoints, campaigns, conversions and settings, with identity stitching."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # -- writing --------------------------------------------------------------------------------------------

    def _in_one_transaction(self, work: Callable[[Session], list[T]]) -> list[T]:
        """Run a batch in one transaction; once more when a concurrent writer took a unique key first."""
        for attempt in (1, 2):
            try:
                with self._db.session() as session:
                    return work(session)
            except IntegrityError:
                if attempt == 2:
                    raise
                logger.info("a concurrent writer recorded the same social data first; recording the batch again")
        raise AssertionError("unreachable")

    def record_conversations(self, events: Sequence[ConversationEvent]) -> list[RecordedEvent]:
        """Record conversation starts: the participant's person (a local contact upserted when the email is given),
        the conversation, its campaign and a ``dm`` touchpoint at its start."""
        return self._in_one_transaction(lambda session: self._conversations(session, events))

    def _conversations(self, session: Session, events: Sequence[ConversationEvent]) -> list[RecordedEvent]:
        stitcher = _Stitcher(session)
        stitcher.preload((e.platform, e.participant.username) for e in events if e.participant.username is not None)
        # What each event looks up is read for the whole batch first, a few queries per chunk: the contacts of the
        # emails it names or its usernames are linked to, the conversations and their touchpoints, the campaigns.
        contacts = _Contacts(session)
        contacts.preload(email for e in events for email in stitcher.emails_of(
            e.platform, e.participant.email, e.participant.username))
        self._ensure_campaigns(session, [(e.campaign, e.platform) for e in events if e.campaign is not None])
        stored = self._stored_conversations(session, [(e.platform, e.conversation_id) for e in events])
        touches = self._touchpoints_by_key(
            session, [event_key("conversation", e.platform, e.conversation_id) for e in events])
        started: set[str] = set()
        results: list[RecordedEvent] = []
        linking: dict[int, int | None] = {}
        for number, event in enumerate(events, start=1):
            participant = event.participant
            if participant.email is not None:
                contacts.upsert(participant.email, participant.first_name, participant.last_name)
            person, linked = stitcher.resolve(
                event.platform,
                participant.email,
                participant.username,
                first_name=participant.first_name,
                last_name=participant.last_name,
                profile_url=participant.profile_url,
                followers=participant.followers,
            )
            # Started by a username an earlier event linked to an email, it is that person's conversation as if
            # the email were given: the contact is upserted too, else no CRM would ever get it or its entries.
            email = participant.email or person.email
            if participant.email is None and email is not None:
                contacts.upsert(email, participant.first_name, participant.last_name)
            if email is not None and person.identity_id is not None:
                contact = contacts.get(email)
                identity = session.get(SocialIdentityRow, person.identity_id)
                if contact is not None and identity is not None and identity.email == email:
                    stitcher.add_profile(contact, identity)
            row = stored.get((event.platform, event.conversation_id))
            values = {
                "email": person.email,
                "identity_id": person.identity_id,
                "started_at": event.started_at,
                "campaign": event.campaign,
            }
            if row is None:
                row = ConversationRow(
                    conversation_id=event.conversation_id, platform=event.platform, crm_links={}, **values
                )
                session.add(row)
                stored[(event.platform, event.conversation_id)] = row
                started.add(event.conversation_id)
                action = EventAction.CREATED
            else:
                if row.email is not None and participant.email is not None and participant.email != row.email:
                    # The service checks first (a file's row is refused by its line); this guards a concurrent writer.
                    raise InvalidRecordError("conversation", event.conversation_id, [FieldProblem(
                        "participant.email", participant_change(event, row.email))])
                if row.email is not None:
                    # A conversation belongs to its participant: a re-send naming them by a username linked to
                    # another email since does not move it (nor its touchpoint and messages) to that email.
                    values["email"] = row.email
                if utc_from_store(row.started_at) <= event.started_at:
                    # A re-delivery keeps the earliest start it was sent with (a platform's retry stamped anew would
                    # start the conversation after its own messages); an earlier start is a correction, taken.
                    values["started_at"] = row.started_at
                # A later event naming the person differently never forgets who it was, nor its campaign.
                action = _update_row(row, {
                    attribute: value for attribute, value in values.items()
                    if value is not None or attribute not in {"email", "identity_id", "campaign"}
                })
            touch_changed = self._put_touchpoint(
                session,
                touches,
                event_key("conversation", event.platform, event.conversation_id),
                row.email,
                row.identity_id,
                timestamp=row.started_at,
                platform=event.platform,
                type=TouchpointType.DM,
                post_id=None,
                conversation_id=event.conversation_id,
                campaign=row.campaign,
            )
            if touch_changed and action is EventAction.UNCHANGED:
                action = EventAction.UPDATED
            results.append(RecordedEvent(action, Person(row.email, row.identity_id, person.platform, person.username)))
            if linked:
                linking[len(results) - 1] = person.identity_id
            if number % SAVE_BATCH == 0:
                session.flush()
        # Messages that came before their conversation are counted now it has come.
        session.flush()
        self._refresh_conversations(session, started)
        return _with_links(results, linking, stitcher.finish())

    def record_all(
        self,
        conversations: Sequence[ConversationEvent],
        messages: Sequence[Message],
        engagements: Sequence[EngagementEvent],
    ) -> list[RecordedEvent]:
        """Record a mixed batch (a file) in one transaction: conversations first, so the messages and engagements
        of the same batch find their people; results in that order."""

        def work(session: Session) -> list[RecordedEvent]:
            results = self._conversations(session, conversations) if conversations else []
            results += self._messages(session, messages) if messages else []
            results += self._engagements(session, engagements) if engagements else []
            return results

        return self._in_one_transaction(work)

    def conversation_id_clashes(self, events: Sequence[ConversationEvent]) -> list[str | None]:
        """Per event, why its conversation id cannot be recorded (``None``: it can): the id is another platform's
        conversation's, stored or earlier in ``events``. A message names its conversation by id alone, so an id on
        two platforms would count its messages for both people."""
        pairs = [(event.conversation_id, event.platform) for event in events]
        held = self._held(ConversationRow.conversation_id, ConversationRow.platform, [key for key, _ in pairs])
        return _clashes(pairs, held, lambda key, other: (
            f"{key!r} is already a {other} conversation: messages name their conversation by id alone, so give "
            "this one an id of its own (e.g. with the platform as a prefix)"))

    def participant_clashes(self, events: Sequence[ConversationEvent]) -> list[str | None]:
        """Per event, why it cannot be recorded (``None``: it can): it names its participant by an email other than
        the one its conversation is with (stored, or given by an earlier event of ``events``). A conversation
        belongs to its participant; a re-send that changed the email would move the conversation, its touchpoint
        and its messages to someone else, while the username stayed linked to the first email."""
        keys = [(event.platform, event.conversation_id) for event in events]
        held: dict[tuple[SocialPlatform, str], str] = {}
        with self._db.session() as session:
            for platform in {platform for platform, _ in keys}:
                ids = sorted({conversation_id for p, conversation_id in keys if p == platform})
                for chunk in in_list_chunks(ids):
                    for conversation_id, email in session.execute(
                        select(ConversationRow.conversation_id, ConversationRow.email).where(
                            ConversationRow.platform == platform, ConversationRow.conversation_id.in_(chunk),
                            ConversationRow.email.is_not(None))
                    ):
                        held[(platform, conversation_id)] = cast(str, email)  # not NULL: the query says so
        reasons: list[str | None] = []
        for key, event in zip(keys, events, strict=True):
            email = event.participant.email
            if email is None:
                reasons.append(None)
                continue
            other = held.setdefault(key, email)
            reasons.append(None if other == email else participant_change(event, other))
        return reasons

    def message_id_clashes(self, messages: Sequence[Message]) -> list[str | None]:
        """Per message, why it cannot be recorded (``None``: it can): its id is a message of another conversation,
        stored or earlier in ``messages`` (recording it would move that message)."""
        pairs = [(message.message_id, message.conversation_id) for message in messages]
        held = self._held(MessageRow.message_id, MessageRow.conversation_id, [key for key, _ in pairs])
        return _clashes(pairs, held, lambda key, other: (
            f"{key!r} is already a message of conversation {other!r}: a message id names one message"))

    def _held(self, key: Any, value: Any, keys: Sequence[str]) -> dict[str, Any]:
        """Of ``keys`` (values of column ``key``), those stored, each with its first row's column ``value``."""
        held: dict[str, Any] = {}
        with self._db.session() as session:
            for chunk in in_list_chunks(sorted(set(keys))):
                for stored, what in session.execute(select(key, value).where(key.in_(chunk))):
                    held.setdefault(stored, what)
        return held

    def record_messages(self, messages: Sequence[Message]) -> list[RecordedEvent]:
        """Record messages (a re-sent one with the same content changes nothing; an edited one is updated) and
        refresh their conversations' counts, last message time and latest sentiment."""
        return self._in_one_transaction(lambda session: self._messages(session, messages))

    def _messages(self, session: Session, messages: Sequence[Message]) -> list[RecordedEvent]:
        existing: dict[str, MessageRow] = {}
        ids = [m.message_id for m in messages]
        for chunk in in_list_chunks(ids):
            for found in session.scalars(select(MessageRow).where(MessageRow.message_id.in_(chunk))):
                existing[found.message_id] = found
        actions: list[EventAction] = []
        for number, message in enumerate(messages, start=1):
            values = {
                "conversation_id": message.conversation_id,
                "direction": message.direction,
                "sent_at": message.sent_at,
                "text": message.text,
                "sentiment": message.sentiment,
            }
            row = existing.get(message.message_id)
            if row is None:
                row = MessageRow(message_id=message.message_id, **values)
                session.add(row)
                existing[message.message_id] = row
                actions.append(EventAction.CREATED)
            else:
                actions.append(_update_row(row, values))
            if number % SAVE_BATCH == 0:
                session.flush()
        session.flush()
        people = self._refresh_conversations(session, {m.conversation_id for m in messages})
        return [
            RecordedEvent(action, people.get(message.conversation_id, NOBODY))
            for action, message in zip(actions, messages, strict=True)
        ]

    def record_engagements(self, events: Sequence[EngagementEvent]) -> list[RecordedEvent]:
        """Record engagements as touchpoints of their person; a ``conversion`` engagement of a person known by
        email is also a conversion."""
        return self._in_one_transaction(lambda session: self._engagements(session, events))

    @staticmethod
    def _engagement_key(event: EngagementEvent) -> str:
        """The unique key of a new engagement's touchpoint: its network identity (:func:`engagement_ref`) with the
        person as this delivery named them. Only new rows get it: a re-delivery is found by its ``event_ref`` and
        its person (see :func:`_same_person`), however it names them."""
        user = event.user
        who = ("username", normalise_username(user.username)) if user.username is not None else ("email", user.email)
        return event_key(
            "engagement",
            event.platform,
            event.type,
            event.timestamp.isoformat(),
            event.post_id,
            event.conversation_id,
            event.campaign,
            *who,
        )

    def _engagements(self, session: Session, events: Sequence[EngagementEvent]) -> list[RecordedEvent]:
        stitcher = _Stitcher(session)
        stitcher.preload((e.platform, e.user.username) for e in events if e.user.username is not None)
        self._ensure_campaigns(session, sorted({(e.campaign, e.platform) for e in events if e.campaign is not None}))
        refs = [engagement_ref(e.platform, e.type, e.timestamp, e.post_id, e.conversation_id, e.campaign)
                for e in events]
        # The touchpoints recorded for the same engagement, whoever they belong to: a re-delivery is the one of the
        # same person.
        same_event: dict[str, list[TouchpointRow]] = {}
        for chunk in in_list_chunks(sorted(set(refs))):
            for found in session.scalars(
                select(TouchpointRow).where(TouchpointRow.event_ref.in_(chunk)).order_by(TouchpointRow.id)
            ):
                same_event.setdefault(cast(str, found.event_ref), []).append(found)
        results: list[RecordedEvent] = []
        linking: dict[int, int | None] = {}
        conversions: list[tuple[Conversion, str]] = []
        for number, (event, ref) in enumerate(zip(events, refs, strict=True), start=1):
            person, linked = stitcher.resolve(event.platform, event.user.email, event.user.username)
            candidates = same_event.setdefault(ref, [])
            row = next((found for found in candidates if _same_person(session, found, person)), None)
            if row is None:
                key = self._engagement_key(event)
                # A key taken by another person's row (the same naming, its identity relinked since) stays unique.
                while any(found.event_key == key for found in candidates):
                    key = event_key("engagement", key, "again")
                row = TouchpointRow(
                    event_key=key,
                    event_ref=ref,
                    email=person.email,
                    identity_id=person.identity_id,
                    timestamp=event.timestamp,
                    platform=event.platform,
                    type=event.type,
                    post_id=event.post_id,
                    conversation_id=event.conversation_id,
                    campaign=event.campaign,
                )
                session.add(row)
                candidates.append(row)
                action = EventAction.CREATED
            else:
                # A re-delivery: the engagement is the same; only who it belongs to may be known better now.
                action = EventAction.UNCHANGED
                if row.email is None and person.email is not None:
                    row.email = person.email
                if row.identity_id is None and person.identity_id is not None:
                    row.identity_id = person.identity_id
            if event.type is TouchpointType.CONVERSION and person.email is not None:
                conversions.append((Conversion.model_construct(
                    email=person.email,
                    timestamp=event.timestamp,
                    value=None,
                    currency=None,
                    source=ConversionSource.API,
                    external_id=None,
                    integration=None,
                ), row.event_key))
            results.append(RecordedEvent(action, person))
            if linked:
                linking[len(results) - 1] = person.identity_id
            if number % SAVE_BATCH == 0:
                session.flush()
        # Before the links: a linked identity's waiting conversions are recorded there unless one has its key.
        self._put_conversions(session, conversions)
        return _with_links(results, linking, stitcher.finish())

    def record_conversions(self, conversions: Sequence[Conversion]) -> list[RecordedEvent]:
        """Record conversions; one with an ``external_id`` is kept once per (integration, id) and updated when its
        value or time changes (a deal's amount edited in the CRM)."""

        def work(session: Session) -> list[RecordedEvent]:
            keyed = [(conversion, self._conversion_key(conversion)) for conversion in conversions]
            return [RecordedEvent(action, Person(conversion.email))
                    for (conversion, _), action in zip(keyed, self._put_conversions(session, keyed), strict=True)]

        return self._in_one_transaction(work)

    @staticmethod
    def _conversion_key(conversion: Conversion) -> str:
        """The unique key of a recorded conversion: its integration's id of it, else its person, time and value."""
        if conversion.external_id is not None:
            return event_key("conversion", conversion.integration, conversion.external_id)
        return event_key("conversion", conversion.email, conversion.timestamp.isoformat(), conversion.value,
                         conversion.currency)

    @staticmethod
    def _put_conversions(session: Session, conversions: Sequence[tuple[Conversion, str]]) -> list[EventAction]:
        """Insert each conversion under its key, or bring the stored one (or the batch's earlier one) with that key
        up to date; what became of each, in order. The stored ones are read a chunk of keys at a time."""
        known: dict[str, ConversionRow] = {}
        for chunk in in_list_chunks(sorted({key for _, key in conversions})):
            known.update((row.event_key, row) for row in session.scalars(
                select(ConversionRow).where(ConversionRow.event_key.in_(chunk))))
        actions: list[EventAction] = []
        for conversion, key in conversions:
            values = {
                "email": conversion.email,
                "timestamp": conversion.timestamp,
                "value": conversion.value,
                "currency": conversion.currency,
                "source": conversion.source,
                "external_id": conversion.external_id,
                "integration": conversion.integration,
            }
            row = known.get(key)
            if row is None:
                known[key] = ConversionRow(event_key=key, **values)
                session.add(known[key])
                actions.append(EventAction.CREATED)
            else:
                actions.append(_update_row(row, values))
        return actions

    @staticmethod
    def _put_touchpoint(
        session: Session, known: dict[str, TouchpointRow], key: str, email: str | None, identity_id: int | None,
        **values: Any,
    ) -> bool:
        """Insert the touchpoint, or bring the one with this key (in ``known``, the batch's by key) up to date;
        whether anything changed."""
        row = known.get(key)
        if row is None:
            known[key] = TouchpointRow(event_key=key, email=email, identity_id=identity_id, **values)
            session.add(known[key])
            return True
        wanted = {**values, "email": email or row.email, "identity_id": identity_id or row.identity_id}
        return _update_row(row, wanted) is EventAction.UPDATED

    @staticmethod
    def _stored_conversations(
        session: Session, keys: Sequence[tuple[SocialPlatform, str]]
    ) -> dict[tuple[SocialPlatform, str], ConversationRow]:
        """The stored conversations of these (platform, conversation id) pairs, by the pair."""
        found: dict[tuple[SocialPlatform, str], ConversationRow] = {}
        for platform in sorted({platform for platform, _ in keys}):
            for chunk in in_list_chunks(sorted({conversation_id for p, conversation_id in keys if p == platform})):
                for row in session.scalars(select(ConversationRow).where(
                        ConversationRow.platform == platform, ConversationRow.conversation_id.in_(chunk))):
                    found[(row.platform, row.conversation_id)] = row
        return found

    @staticmethod
    def _touchpoints_by_key(session: Session, keys: Sequence[str]) -> dict[str, TouchpointRow]:
        """The stored touchpoints with these event keys, by key."""
        found: dict[str, TouchpointRow] = {}
        for chunk in in_list_chunks(sorted(set(keys))):
            for row in session.scalars(select(TouchpointRow).where(TouchpointRow.event_key.in_(chunk))):
                found[row.event_key] = row
        return found

    @staticmethod
    def _ensure_campaigns(session: Session, named: Iterable[tuple[str, SocialPlatform]]) -> None:
        """Create the campaigns a batch names that do not exist yet, each with the platform of the first of
        ``named`` that names it."""
        first_platform: dict[str, SocialPlatform] = {}
        for name, platform in named:
            first_platform.setdefault(name, platform)
        known: set[str] = set()
        for chunk in in_list_chunks(sorted(first_platform)):
            known.update(session.scalars(select(CampaignRow.name).where(CampaignRow.name.in_(chunk))))
        new = [
            CampaignRow(name=name, platform=platform, tags=[])
            for name, platform in first_platform.items()
            if name not in known
        ]
        if new:
            session.add_all(new)
            session.flush()

    @staticmethod
    def _refresh_conversations(session: Session, conversation_ids: set[str]) -> dict[str, Person]:
        """Recount the messages of these conversations; the person of each one found."""
        people: dict[str, Person] = {}
        for chunk in in_list_chunks(sorted(conversation_ids)):
            counts: dict[str, dict[MessageDirection, int]] = {}
            last: dict[str, datetime] = {}
            for conversation_id, direction, count, latest in session.execute(
                select(MessageRow.conversation_id, MessageRow.direction, func.count(), func.max(MessageRow.sent_at))
                .where(MessageRow.conversation_id.in_(chunk))
                .group_by(MessageRow.conversation_id, MessageRow.direction)
            ):
                counts.setdefault(conversation_id, {})[direction] = int(count)
                latest_at = utc_from_store(latest)
                if conversation_id not in last or latest_at > last[conversation_id]:
                    last[conversation_id] = latest_at
            moods = {}
            for conversation_id, sentiment in session.execute(
                select(MessageRow.conversation_id, MessageRow.sentiment)
                .where(MessageRow.conversation_id.in_(chunk), MessageRow.sentiment.is_not(None))
                .order_by(MessageRow.conversation_id, MessageRow.sent_at, MessageRow.id)
            ):
                moods[conversation_id] = sentiment  # the latest wins
            rows = list(session.scalars(select(ConversationRow).where(ConversationRow.conversation_id.in_(chunk))))
            # The person as the wire names them: a conversation known by a username alone is that username's.
            identities = {identity.id: identity for identity in session.scalars(select(SocialIdentityRow).where(
                SocialIdentityRow.id.in_({row.identity_id for row in rows if row.identity_id is not None})))}
            for row in rows:
                mine = counts.get(row.conversation_id, {})
                row.messages_in = mine.get(MessageDirection.INBOUND, 0)
                row.messages_out = mine.get(MessageDirection.OUTBOUND, 0)
                row.last_message_at = last.get(row.conversation_id)
                row.latest_sentiment = moods.get(row.conversation_id)
                identity = identities.get(row.identity_id) if row.identity_id is not None else None
                people[row.conversation_id] = Person(row.email, row.identity_id,
                                                     identity.platform if identity else None,
                                                     identity.username if identity else None)
        return people

    def link_identities_from_profiles(self) -> int:
        """Link every anonymous identity whose username a contact's social profile now carries (a contacts import
        may have given it); return how many touchpoints joined a person."""

        def work(session: Session) -> list[int]:
            stitcher = _Stitcher(session)
            matches = session.execute(
                select(SocialIdentityRow, ContactRow.email)
                .join(
                    SocialProfileRow,
                    (SocialProfileRow.platform == SocialIdentityRow.platform)
                    & (func.lower(SocialProfileRow.username) == SocialIdentityRow.username),
                )
                .join(ContactRow, ContactRow.id == SocialProfileRow.contact_id)
                .where(SocialIdentityRow.email.is_(None))
                .order_by(SocialIdentityRow.id, ContactRow.id)
            ).all()
            for identity, email in matches:
                if identity.email is None:
                    stitcher.link(identity, email)
            return [sum(stitcher.finish().values())]

        return self._in_one_transaction(work)[0]

    # -- reading --------------------------------------------------------------------------------------------

    def find_person(self, person: PersonRef) -> Person | None:
        """The stored person a reference names (an identity linked since is read as its email), if any."""
        with self._db.session() as session:
            if person.email is not None:
                return Person(email=person.email)
            assert person.platform is not None and person.username is not None
            identity = session.scalar(
                select(SocialIdentityRow).where(
                    SocialIdentityRow.platform == person.platform,
                    SocialIdentityRow.username == normalise_username(person.username),
                )
            )
            if identity is None:
                return None
            return Person(identity.email, identity.id, identity.platform, identity.username)

    def knows_email(self, email: str) -> bool:
        """Whether the store has ever seen the (normalised) email: a contact, a lead, a linked identity, or an
        event (touchpoint, conversation, conversion) of that person."""
        with self._db.session() as session:
            return any(
                session.scalar(select(column).where(column == email).limit(1)) is not None
                for column in (ContactRow.email, LeadRow.email, SocialIdentityRow.email, TouchpointRow.email,
                               ConversationRow.email, ConversionRow.email)
            )

    def interactions(self, person: Person) -> tuple[list[Interaction], int]:
        """Everything a person did that counts towards the score, and their reach (largest follower count)."""
        with self._db.session() as session:
            touch_filter, conversation_filter = self._filters(person)
            found = [
                Interaction(kind.value, utc_from_store(at))
                for kind, at in session.execute(select(TouchpointRow.type, TouchpointRow.timestamp).where(touch_filter))
            ]
            conversation_ids = select(ConversationRow.conversation_id).where(conversation_filter).scalar_subquery()
            for direction, at in session.execute(
                select(MessageRow.direction, MessageRow.sent_at).where(MessageRow.conversation_id.in_(conversation_ids))
            ):
                kind = INBOUND_MESSAGE if direction is MessageDirection.INBOUND else OUTBOUND_MESSAGE
                found.append(Interaction(kind, utc_from_store(at)))
            followers = 0
            if person.email is not None:
                followers = int(
                    session.scalar(
                        select(func.max(SocialProfileRow.followers))
                        .join(ContactRow, ContactRow.id == SocialProfileRow.contact_id)
                        .where(ContactRow.email == person.email)
                    )
                    or 0
                )
                identity_filter = SocialIdentityRow.email == person.email
                if person.identity_id is not None:
                    identity_filter = or_(identity_filter, SocialIdentityRow.id == person.identity_id)
            else:
                identity_filter = SocialIdentityRow.id == person.identity_id
            followers = max(
                followers,
                int(session.scalar(select(func.max(SocialIdentityRow.followers)).where(identity_filter)) or 0),
            )
            return found, followers

    def scored_emails(self, after: str | None, limit: int) -> list[str]:
        """A page of the emails of everyone with activity that counts towards a score (touchpoints or
        conversations under their email), in email order, after ``after``."""
        pages: set[str] = set()
        with self._db.session() as session:
            for column in (TouchpointRow.email, ConversationRow.email):
                query = select(column).where(column.is_not(None)).distinct().order_by(column).limit(limit)
                if after is not None:
                    query = query.where(column > after)
                pages.update(email for email in session.scalars(query) if email is not None)
        return sorted(pages)[:limit]

    def unscored_with_activity(self) -> set[str]:
        """The emails of the leads and contacts without an engagement score that have activity counting towards
        one (touchpoints or conversations under their email): people saved after their activity was recorded
        (a file's import, a CRM's pull), which no event has scored yet."""
        found: set[str] = set()
        with self._db.session() as session:
            for row in (ContactRow, LeadRow):
                for column in (TouchpointRow.email, ConversationRow.email):
                    query = (
                        select(row.email).distinct().join(column.table, column == row.email)
                        .where(row.engagement_score.is_(None))
                    )
                    found.update(session.scalars(query))
        return found

    def interactions_by_email(self, emails: Iterable[str]) -> dict[str, tuple[list[Interaction], int]]:
        """What ``interactions`` gives for a person known by email, for many people at once: a few queries a
        chunk of emails instead of four a person."""
        wanted = sorted(set(emails))
        interactions: dict[str, list[Interaction]] = {email: [] for email in wanted}
        followers: dict[str, int] = dict.fromkeys(wanted, 0)
        with self._db.session() as session:
            for chunk in in_list_chunks(wanted):
                for email, touch_type, at in session.execute(
                    select(TouchpointRow.email, TouchpointRow.type, TouchpointRow.timestamp)
                    .where(TouchpointRow.email.in_(chunk))
                ):
                    interactions[cast(str, email)].append(Interaction(touch_type.value, utc_from_store(at)))
                talkers: dict[str, set[str]] = {}
                for conversation_id, email in session.execute(
                    select(ConversationRow.conversation_id, ConversationRow.email)
                    .where(ConversationRow.email.in_(chunk))
                ):
                    talkers.setdefault(conversation_id, set()).add(cast(str, email))  # IN (emails): never NULL
                for ids in in_list_chunks(sorted(talkers)):
                    for conversation_id, direction, at in session.execute(
                        select(MessageRow.conversation_id, MessageRow.direction, MessageRow.sent_at)
                        .where(MessageRow.conversation_id.in_(ids))
                    ):
                        said = INBOUND_MESSAGE if direction is MessageDirection.INBOUND else OUTBOUND_MESSAGE
                        for email in talkers[conversation_id]:
                            interactions[email].append(Interaction(said, utc_from_store(at)))
                for reach_query in (
                    select(ContactRow.email, func.max(SocialProfileRow.followers))
                    .join(ContactRow, ContactRow.id == SocialProfileRow.contact_id)
                    .where(ContactRow.email.in_(chunk)).group_by(ContactRow.email),
                    select(SocialIdentityRow.email, func.max(SocialIdentityRow.followers))
                    .where(SocialIdentityRow.email.in_(chunk)).group_by(SocialIdentityRow.email),
                ):
                    for person, most in session.execute(reach_query):
                        followers[cast(str, person)] = max(followers[cast(str, person)], int(most or 0))
        return {email: (interactions[email], followers[email]) for email in wanted}

    @staticmethod
    def _filters(person: Person) -> tuple[Any, Any]:
        if person.email is not None:
            return TouchpointRow.email == person.email, ConversationRow.email == person.email
        return (
            TouchpointRow.identity_id == person.identity_id,
            ConversationRow.identity_id == person.identity_id,
        )

    def touches(self, email: str) -> list[Touch]:
        """A person's touchpoints that earn attribution credit (a ``conversion`` is the outcome, not a touch)."""
        with self._db.session() as session:
            rows = session.scalars(
                select(TouchpointRow)
                .where(TouchpointRow.email == email, TouchpointRow.type != TouchpointType.CONVERSION)
                .order_by(TouchpointRow.timestamp, TouchpointRow.id)
            ).all()
            return [_touch(row) for row in rows]

    def attribution_inputs(self) -> tuple[int | None, ...]:
        """A cheap mark of what an attribution report is worked out from: how many touchpoints, conversions,
        leads, social profiles and identities there are, and the newest of each. While it stays the same, a
        report worked out again would read the same rows."""
        marks = []
        for row in (TouchpointRow, ConversionRow, LeadRow, SocialProfileRow, SocialIdentityRow):
            marks += [select(func.count()).select_from(row).scalar_subquery(),
                      select(func.max(row.id)).scalar_subquery()]
        with self._db.session() as session:
            return tuple(session.execute(select(*marks)).one())

    def touchpoints_since(self, since: datetime | None, before: datetime | None = None) -> list[StoredTouch]:
        """Every credit-earning touchpoint at or after ``since`` and before ``before`` (no bound when ``None``),
        oldest first."""
        with self._db.session() as session:
            statement = select(TouchpointRow).where(TouchpointRow.type != TouchpointType.CONVERSION)
            if since is not None:
                statement = statement.where(TouchpointRow.timestamp >= since)
            if before is not None:
                statement = statement.where(TouchpointRow.timestamp < before)
            rows = session.scalars(statement.order_by(TouchpointRow.timestamp, TouchpointRow.id)).all()
            return [StoredTouch(_touch(row), row.email, row.identity_id) for row in rows]

    def touches_by_email(self, emails: Iterable[str]) -> dict[str, list[Touch]]:
        """The credit-earning touchpoints of many people at once, oldest first."""
        found: dict[str, list[Touch]] = {}
        wanted = sorted(set(emails))
        with self._db.session() as session:
            for chunk in in_list_chunks(wanted):
                for row in session.scalars(
                    select(TouchpointRow)
                    .where(TouchpointRow.email.in_(chunk), TouchpointRow.type != TouchpointType.CONVERSION)
                    .order_by(TouchpointRow.timestamp, TouchpointRow.id)
                ):
                    assert row.email is not None
                    found.setdefault(row.email, []).append(_touch(row))
        return found

    def conversions(self, since: datetime | None = None, email: str | None = None,
                    before: datetime | None = None) -> list[StoredConversion]:
        """Conversions at or after ``since`` and before ``before``, of one person or of everyone, oldest first."""
        with self._db.session() as session:
            statement = select(ConversionRow)
            if since is not None:
                statement = statement.where(ConversionRow.timestamp >= since)
            if before is not None:
                statement = statement.where(ConversionRow.timestamp < before)
            if email is not None:
                statement = statement.where(ConversionRow.email == email)
            rows = session.scalars(statement.order_by(ConversionRow.timestamp, ConversionRow.id)).all()
            return [
                StoredConversion(row.id, row.email, utc_from_store(row.timestamp), row.value, row.currency)
                for row in rows
            ]

    def lead_emails(self) -> set[str]:
        """The emails of every local lead."""
        with self._db.session() as session:
            return set(session.scalars(select(LeadRow.email)))

    def leads_among(self, emails: Iterable[str]) -> set[str]:
        """Which of these emails are local leads' (a few queries however many leads the store holds)."""
        return self._emails_among(LeadRow, emails)

    def contacts_among(self, emails: Iterable[str]) -> set[str]:
        """Which of these emails are local contacts' (a few queries however many contacts the store holds)."""
        return self._emails_among(ContactRow, emails)

    def _emails_among(self, row: type[LeadRow] | type[ContactRow], emails: Iterable[str]) -> set[str]:
        found: set[str] = set()
        with self._db.session() as session:
            for chunk in in_list_chunks(sorted(set(emails))):
                found.update(session.scalars(select(row.email).where(row.email.in_(chunk))))
        return found

    def set_contact_scores(self, scores: Mapping[str, float]) -> None:
        """Write contacts' engagement scores by email, in one statement; a score is not a change of the contact's
        data, so its ``updated_at`` (what the People list and a push go by) stays as it was."""
        if not scores:
            return
        table = cast(Table, ContactRow.__table__)
        statement = (
            update(table).where(table.c.email == bindparam("person"))
            .values(engagement_score=bindparam("score"), updated_at=table.c.updated_at)
        )
        with self._db.session() as session:
            session.execute(statement, [{"person": email, "score": score} for email, score in scores.items()])

    def lead_by_id(self, lead_id: int) -> tuple[int, str] | None:
        """A lead's (id, email) by its local id."""
        with self._db.session() as session:
            row = session.get(LeadRow, lead_id)
            return (row.id, row.email) if row else None

    def lead_by_email(self, email: str) -> tuple[int, str] | None:
        """A lead's (id, email) by its normalised email."""
        with self._db.session() as session:
            lead_id = session.scalar(select(LeadRow.id).where(LeadRow.email == email))
            return (lead_id, email) if lead_id is not None else None

    def set_lead_score(self, email: str, score: float) -> bool:
        """Write a lead's engagement score (its ``socialContext.engagementScore``); whether it changed."""
        return bool(self.set_lead_scores({email: score}))

    def set_lead_scores(self, scores: Mapping[str, float]) -> int:
        """Write leads' engagement scores by email in one transaction; how many leads changed.

        A lead with no social context yet gets the platform of its latest touchpoint, since a context names one.
        A changed score is a change of the lead (its social context is pushed to the CRMs).
        """
        changed = 0
        with self._db.session() as session:
            for chunk in in_list_chunks(sorted(scores)):
                for row in session.scalars(select(LeadRow).where(LeadRow.email.in_(chunk))):
                    touched = False
                    if row.social_platform is None:
                        latest = session.scalar(
                            select(TouchpointRow.platform)
                            .where(TouchpointRow.email == row.email)
                            .order_by(TouchpointRow.timestamp.desc(), TouchpointRow.id.desc())
                            .limit(1)
                        )
                        if latest is not None:
                            row.social_platform = latest
                            touched = True
                    if row.engagement_score != scores[row.email]:
                        row.engagement_score = scores[row.email]
                        touched = True
                    changed += touched
        return changed

    def conversation(self, platform: SocialPlatform, conversation_id: str) -> Conversation | None:
        """A stored conversation, with its CRM links by integration name."""
        with self._db.session() as session:
            row = session.scalar(
                select(ConversationRow).where(
                    ConversationRow.platform == platform, ConversationRow.conversation_id == conversation_id
                )
            )
            if row is None:
                return None
            identity = session.get(SocialIdentityRow, row.identity_id) if row.identity_id is not None else None
            participant = PersonRef.model_construct(
                email=row.email,
                platform=identity.platform if identity else None,
                username=identity.username if identity else None,
            )
            return Conversation.model_construct(
                conversation_id=row.conversation_id,
                platform=row.platform,
                participant=participant,
                started_at=utc_from_store(row.started_at),
                last_message_at=utc_from_store(row.last_message_at) if row.last_message_at else None,
                messages_in=row.messages_in,
                messages_out=row.messages_out,
                latest_sentiment=row.latest_sentiment,
                campaign=row.campaign,
                crm_links=dict(row.crm_links),
            )

    def link_conversation(
        self, platform: SocialPlatform, conversation_id: str, integration_id: int, crm_id: str
    ) -> bool:
        """Store the CRM record a conversation was linked to in an integration; whether it changed.

        Raises:
            NotFoundError: when there is no such conversation.
        """
        with self._db.session() as session:
            row = session.scalar(
                select(ConversationRow).where(
                    ConversationRow.platform == platform, ConversationRow.conversation_id == conversation_id
                )
            )
            if row is None:
                raise NotFoundError(f"no {platform.value} conversation {conversation_id!r}")
            key = str(integration_id)
            if row.crm_links.get(key) == crm_id:
                return False
            row.crm_links = {**row.crm_links, key: crm_id}
            return True

    def campaigns(self) -> list[Campaign]:
        """Every campaign, by name."""
        with self._db.session() as session:
            return [
                Campaign.model_construct(
                    name=row.name,
                    platform=row.platform,
                    starts_at=row.starts_at,
                    ends_at=row.ends_at,
                    tags=list(row.tags),
                )
                for row in session.scalars(select(CampaignRow).order_by(CampaignRow.name))
            ]

    def save_campaign(self, campaign: Campaign) -> EventAction:
        """Insert a campaign or update the one with its name."""
        with self._db.session() as session:
            row = session.scalar(select(CampaignRow).where(CampaignRow.name == campaign.name))
            values = {
                "platform": campaign.platform,
                "starts_at": campaign.starts_at,
                "ends_at": campaign.ends_at,
                "tags": list(campaign.tags),
            }
            if row is None:
                session.add(CampaignRow(name=campaign.name, **values))
                return EventAction.CREATED
            return _update_row(row, values)

    def counts(self) -> dict[str, int]:
        """How many rows each social table holds (for reports and tests)."""
        tables = {
            "identities": SocialIdentityRow,
            "conversations": ConversationRow,
            "messages": MessageRow,
            "touchpoints": TouchpointRow,
            "campaigns": CampaignRow,
            "conversions": ConversionRow,
        }
        with self._db.session() as session:
            return {
                name: int(session.scalar(select(func.count()).select_from(table)) or 0)
                for name, table in tables.items()
            }

    # -- settings -------------------------------------------------------------------------------------------

    def setting(self, key: str) -> dict[str, Any] | None:
        """A workspace setting's stored value, if it was ever set."""
        with self._db.session() as session:
            row = session.get(WorkspaceSettingRow, key)
            return dict(row.value) if row else None

    def put_setting(self, key: str, value: dict[str, Any]) -> None:
        """Store a workspace setting."""
        with self._db.session() as session:
            row = session.get(WorkspaceSettingRow, key)
            if row is None:
                session.add(WorkspaceSettingRow(key=key, value=value))
            else:
                row.value = value


def participant_change(event: ConversationEvent, held: str) -> str:
    """Why a conversation event naming another participant than its conversation's is refused."""
    return (f"{event.platform} conversation {event.conversation_id!r} is with {held}, not "
            f"{event.participant.email}: a conversation keeps its participant. If {held} is wrong, correct that "
            "contact's email; if this is someone else's conversation, send it under its own id")


def _clashes(
    pairs: Sequence[tuple[str, Any]], held: dict[str, Any], why: Callable[[str, Any], str]
) -> list[str | None]:
    """Per ``(key, value)``, ``why`` the key is held with another value (stored, or earlier in ``pairs``), else
    ``None``."""
    reasons: list[str | None] = []
    for key, value in pairs:
        other = held.setdefault(key, value)
        reasons.append(None if other == value else why(key, other))
    return reasons


def _update_row(row: Any, values: dict[str, Any]) -> EventAction:
    """Set on ``row`` the values that differ: UPDATED when any did, UNCHANGED when all were already so."""
    action = EventAction.UNCHANGED
    for attribute, value in values.items():
        if getattr(row, attribute) != value:
            setattr(row, attribute, value)
            action = EventAction.UPDATED
    return action


def _same_person(session: Session, row: TouchpointRow, person: Person) -> bool:
    """Whether a recorded engagement is this person's: the same social identity when both name one (two accounts
    are two people on the network, whatever email they share), else the same email, an anonymous row's being the
    one its identity was linked to since."""
    if row.identity_id is not None and person.identity_id is not None:
        return row.identity_id == person.identity_id
    if person.email is None:
        return False
    email = row.email
    if email is None and row.identity_id is not None:
        identity = session.get(SocialIdentityRow, row.identity_id)
        email = identity.email if identity is not None else None
    return email == person.email


def _merge_engagements(session: Session, refs: Iterable[str | None]) -> int:
    """Keep once each engagement (by ``event_ref``) recorded twice for one person: named one way while the other
    name was not yet known to be theirs, and joined since. The oldest touchpoint stays, knowing the person by both
    names; a conversion recorded under a removed one's key moves to the kept one's (or goes, when it has one).
    How many touchpoints were removed."""
    wanted = sorted({ref for ref in refs if ref is not None})
    if not wanted:
        return 0
    session.flush()
    rows: list[Any] = []
    for chunk in in_list_chunks(wanted):
        rows += session.execute(
            select(TouchpointRow.id, TouchpointRow.event_ref, TouchpointRow.event_key, TouchpointRow.email,
                   TouchpointRow.identity_id).where(TouchpointRow.event_ref.in_(chunk))
        ).all()
    identity_ids = sorted({row.identity_id for row in rows if row.identity_id is not None})
    linked: dict[int, str | None] = {}
    for chunk in in_list_chunks(identity_ids):
        for identity_id, email in session.execute(
            select(SocialIdentityRow.id, SocialIdentityRow.email).where(SocialIdentityRow.id.in_(chunk))
        ):
            linked[identity_id] = email
    kept: dict[str, list[dict[str, Any]]] = {}
    changed: dict[int, dict[str, Any]] = {}
    removed: list[tuple[int, str, str]] = []  # (id, its key, the kept row's key)
    for row in sorted(rows, key=lambda r: r.id):
        mine = {"id": row.id, "key": row.event_key, "email": row.email, "identity_id": row.identity_id}
        same = kept.setdefault(row.event_ref, [])
        keeper = next((k for k in same if _one_person(k, mine, linked)), None)
        if keeper is None:
            same.append(mine)
            continue
        for attribute in ("email", "identity_id"):
            if keeper[attribute] is None and mine[attribute] is not None:
                keeper[attribute] = mine[attribute]
                changed[keeper["id"]] = keeper
        removed.append((row.id, row.event_key, keeper["key"]))
    if not removed:
        return 0
    for old_id, old_key, new_key in removed:
        if session.scalar(select(ConversionRow.id).where(ConversionRow.event_key == new_key)) is None:
            session.execute(update(ConversionRow).where(ConversionRow.event_key == old_key).values(event_key=new_key)
                            .execution_options(synchronize_session=False))
        else:
            session.execute(delete(ConversionRow).where(ConversionRow.event_key == old_key)
                            .execution_options(synchronize_session=False))
        session.execute(delete(TouchpointRow).where(TouchpointRow.id == old_id)
                        .execution_options(synchronize_session=False))
    for keeper in changed.values():
        session.execute(update(TouchpointRow).where(TouchpointRow.id == keeper["id"])
                        .values(email=keeper["email"], identity_id=keeper["identity_id"])
                        .execution_options(synchronize_session=False))
    logger.info("%d engagements recorded twice for one person kept once", len(removed))
    return len(removed)


def _one_person(kept: Mapping[str, Any], other: Mapping[str, Any], linked: Mapping[int, str | None]) -> bool:
    """Whether two touchpoints (as mappings of email and identity_id) are one person's, as :func:`_same_person`."""
    if kept["identity_id"] is not None and other["identity_id"] is not None:
        return bool(kept["identity_id"] == other["identity_id"])

    def email(row: Mapping[str, Any]) -> str | None:
        return cast("str | None", row["email"] or (linked.get(row["identity_id"]) if row["identity_id"] else None))

    return email(kept) is not None and email(kept) == email(other)


def _with_links(
    results: list[RecordedEvent], linking: dict[int, int | None], moved: dict[int, int]
) -> list[RecordedEvent]:
    """The results with the touchpoints each linking event moved."""
    for index, identity_id in linking.items():
        if identity_id is not None and moved.get(identity_id):
            results[index] = replace(results[index], linked_touchpoints=moved[identity_id])
    return results


def _touch(row: TouchpointRow) -> Touch:
    return Touch(
        timestamp=utc_from_store(row.timestamp), platform=row.platform, type=row.type, campaign=row.campaign,
        order=row.id,
    )
