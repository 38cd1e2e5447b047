"""Repositories: the store's typed operations on integrations, contacts and leads, in domain terms."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from crm_desktop.domain.models import (
    Contact,
    Integration,
    Lead,
    SocialContext,
    SocialPlatform,
    SocialProfile,
    SyncConfig,
)
from crm_desktop.store.database import Database, in_list_chunks
from crm_desktop.store.models import (
    ContactRow,
    CrmLinkRow,
    IntegrationKeysRow,
    IntegrationRow,
    LeadRow,
    SocialProfileRow,
    TouchpointRow,
    utcnow,
)
from crm_desktop.store.process_owner import machine_name

logger = logging.getLogger(__name__)
#: Rows written per flush by bulk saves (new rows get their ids in one round trip per batch).
SAVE_BATCH = 1_000

#: Given a record a caller built over what it read earlier and the record as stored now (``None``: not stored),
#: what to save instead (``None``: leave it as it is). See ``ContactStore.save_many``.
Relay = Callable[[Any, Any], Any]
#: Called by a save in its own transaction with what it saved, to write what must be committed with it (the run
#: and audit rows that tell the change; see ``ImportLog.finishing``).
AfterSave = Callable[[Session, list["SavedRecord"]], None]


def hold_for_write(session: Session, table: Table) -> None:
    """Take SQLite's write lock now, before the rows to write are read (an UPDATE of no row starts a write
    transaction), so nothing saved by another connection lands between the read and the write. PostgreSQL
    holds rows instead, with ``FOR UPDATE`` on the read."""
    key = next(iter(table.primary_key.columns))  # an integer id: -1 is no row's
    session.execute(update(table).where(key == -1).values({key.name: key}))


def _saved_again_if_raced(
    save: Callable[[Session, list[Any], Relay | None], list[SavedRecord]], database: Database, items: list[Any],
    relay: Relay | None, after: AfterSave | None,
) -> list[SavedRecord]:
    """``save(session, items, relay)`` then ``after`` in one transaction; with a relay, once more when a record
    was inserted by another writer meanwhile (the unique email refused ours): relayed over it this time."""

    def attempt() -> list[SavedRecord]:
        with database.session() as session:
            saved = save(session, items, relay)
            if after is not None:
                after(session, saved)
            return saved

    if relay is None:
        return attempt()
    try:
        return attempt()
    except IntegrityError:
        logger.info("records saved by another writer meanwhile; saving again over them")
        return attempt()


def _relaid(items: list[Any], stored: Callable[[str], Any], relay: Relay) -> list[Any]:
    """The records to save: each one ``relay`` gives for it and its stored state (those it gives ``None`` left out)."""
    kept = []
    for item in items:
        again = relay(item, stored(item.email))
        if again is not None:
            kept.append(again)
    return kept


class StoreError(Exception):
    """A store operation was refused; the message is meant for the user."""


class DuplicateNameError(StoreError):
    """An integration with that name already exists."""


class NotFoundError(StoreError):
    """The record asked for does not exist."""


class EmailTakenError(StoreError):
    """A new record has the email of a stored one (the email is every record's key)."""


def _integration_from_row(row: IntegrationRow) -> Integration:
    return Integration(
        id=row.id,
        provider=row.provider,
        name=row.name,
        description=row.description,
        scopes=list(row.scopes),
        sync_config=SyncConfig.model_validate(row.sync_config),
        base_url=row.base_url,
        domain=row.domain,
        keys_set_at=row.keys_set_at,
    )


@dataclass(frozen=True)
class CrmAccountSeen:
    """Which CRM account an integration's links are in.

    Attributes:
        account_id: the account's id (HubSpot portal, Pipedrive company, Salesforce org); ``None`` until read.
        seen_at: when a run or a connection test last read it.
        keys_set_at: when a person last set the credentials (a later set may reach another account).
        links: how many local records the integration links to CRM records.
    """

    account_id: str | None
    seen_at: datetime | None
    keys_set_at: datetime | None
    links: int

    @property
    def needs_reading(self) -> bool:
        """Whether the account must be read again: never read, or the credentials were set since."""
        return (self.account_id is None or self.seen_at is None
                or (self.keys_set_at is not None and self.keys_set_at >= self.seen_at))


#: The ``integration_keys`` machine whose date stands for each desktop that has not set the keys since ages were
#: kept per desktop (migration 0028).
EVERY_DESKTOP = ""


class IntegrationStore:
    """Integrations in the store (never their credentials).

    Attributes:
        machine: this desktop's name in the team (:func:`machine_name`): the key age it reads and writes is its own.
    """

    def __init__(self, database: Database, machine: str | None = None) -> None:
        self._db = database
        self.machine = machine or machine_name()

    def add(self, integration: Integration) -> Integration:
        """Insert a new integration and return it with its id.

        Raises:
            DuplicateNameError: when the name is taken.
        """
        row = IntegrationRow(
            provider=integration.provider,
            name=integration.name,
            description=integration.description,
            scopes=list(integration.scopes),
            sync_config=integration.sync_config.model_dump(mode="json", by_alias=True),
            base_url=integration.base_url,
            domain=integration.domain,
        )
        try:
            with self._db.session() as session:
                session.add(row)
                session.flush()
                return _integration_from_row(row)
        except IntegrityError:
            raise DuplicateNameError(f"an integration named {integration.name!r} already exists") from None

    def list(self) -> list[Integration]:
        """Every integration, by name."""
        with self._db.session() as session:
            rows = session.scalars(select(IntegrationRow).order_by(IntegrationRow.name)).all()
            return [_integration_from_row(row) for row in rows]

    def find(self, name: str) -> Integration | None:
        """The integration with that name, if any."""
        with self._db.session() as session:
            row = session.scalar(select(IntegrationRow).where(IntegrationRow.name == name))
            return _integration_from_row(row) if row else None

    def get(self, name: str) -> Integration:
        """The integration with that name.

        Raises:
            NotFoundError: when there is none.
        """
        found = self.find(name)
        if found is None:
            raise NotFoundError(f"no integration named {name!r}")
        return found

    def get_by_id(self, integration_id: int) -> Integration:
        """The integration with that id.

        Raises:
            NotFoundError: when there is none.
        """
        with self._db.session() as session:
            row = session.get(IntegrationRow, integration_id)
            if row is None:
                raise NotFoundError(f"no integration with id {integration_id}")
            return _integration_from_row(row)

    def update(self, integration: Integration) -> Integration:
        """Save every stored field of an existing integration (matched by id).

        Raises:
            NotFoundError: when it no longer exists.
            DuplicateNameError: when the new name is taken.
        """
        if integration.id is None:
            raise NotFoundError(f"integration {integration.name!r} has no id; add it first")
        try:
            with self._db.session() as session:
                row = session.get(IntegrationRow, integration.id)
                if row is None:
                    raise NotFoundError(f"no integration with id {integration.id}")
                row.provider = integration.provider
                row.name = integration.name
                row.description = integration.description
                row.scopes = list(integration.scopes)
                row.sync_config = integration.sync_config.model_dump(mode="json", by_alias=True)
                row.base_url = integration.base_url
                row.domain = integration.domain
                session.flush()
                return _integration_from_row(row)
        except IntegrityError:
            raise DuplicateNameError(f"an integration named {integration.name!r} already exists") from None

    def mark_keys_set(self, integration_id: int, when: datetime | None = None) -> None:
        """Record that the integration's credentials were set now (or at ``when``) on this desktop.

        The other desktops of a team keep their own date: their keyrings still hold the keys they had.
        """
        when = when or utcnow()
        with self._db.session() as session:
            row = session.get(IntegrationRow, integration_id)
            if row is None:
                raise NotFoundError(f"no integration with id {integration_id}")
            row.keys_set_at = when
            own = session.get(IntegrationKeysRow, (integration_id, self.machine))
            if own is None:
                session.add(IntegrationKeysRow(integration_id=integration_id, machine=self.machine, keys_set_at=when))
            else:
                own.keys_set_at = when

    def keys_set_here(self, integration_id: int) -> datetime | None:
        """When a person last set the integration's credentials on this desktop; for a desktop that has not since
        ages were kept per desktop, the date kept before; ``None`` when nobody recorded it."""
        with self._db.session() as session:
            rows = session.execute(
                select(IntegrationKeysRow.machine, IntegrationKeysRow.keys_set_at).where(
                    IntegrationKeysRow.integration_id == integration_id,
                    IntegrationKeysRow.machine.in_([self.machine, EVERY_DESKTOP]),
                )
            ).all()
        dates = dict(rows)
        return dates.get(self.machine) or dates.get(EVERY_DESKTOP)

    def crm_account(self, integration_id: int) -> CrmAccountSeen:
        """The CRM account the integration's links are in, as last read, and how many links there are.

        Raises:
            NotFoundError: when there is no such integration.
        """
        with self._db.session() as session:
            row = session.get(IntegrationRow, integration_id)
            if row is None:
                raise NotFoundError(f"no integration with id {integration_id}")
            links = session.scalar(select(func.count()).select_from(CrmLinkRow)
                                   .where(CrmLinkRow.integration_id == integration_id)) or 0
            return CrmAccountSeen(row.crm_account_id, row.crm_account_seen_at, row.keys_set_at, links)

    def record_crm_account(self, integration_id: int, account_id: str) -> None:
        """Remember that the integration's credentials reach CRM account ``account_id`` (read now)."""
        with self._db.session() as session:
            row = session.get(IntegrationRow, integration_id)
            if row is None:
                raise NotFoundError(f"no integration with id {integration_id}")
            row.crm_account_id = account_id
            row.crm_account_seen_at = utcnow()

    def remove(self, name: str) -> Integration:
        """Delete an integration and everything that belongs to it; return what was deleted.

        Raises:
            NotFoundError: when there is none.
        """
        with self._db.session() as session:
            row = session.scalar(select(IntegrationRow).where(IntegrationRow.name == name))
            if row is None:
                raise NotFoundError(f"no integration named {name!r}")
            removed = _integration_from_row(row)
            session.delete(row)
            return removed


@dataclass(frozen=True)
class SavedRecord:
    """The outcome of saving one record locally.

    Attributes:
        id: the local id.
        email: the normalised email.
        created: ``True`` when the record is new, ``False`` when it updated an existing one.
        changed: ``False`` when the saved values were already there.
    """

    id: int
    email: str
    created: bool
    changed: bool


def stored_contact(row: Any, profiles: Sequence[Any]) -> Contact:
    """A stored contact (a ``contacts`` row and its ``social_profiles`` rows) as its model, not validated again:
    it was when it was saved.

    A sync reads every record it looks at; validating 100,000 stored emails and phones once more cost most of an
    incremental sync.
    """
    return Contact.model_construct(
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        company=row.company,
        phone=row.phone,
        social_profiles=[
            SocialProfile.model_construct(
                platform=p.platform, username=p.username, url=p.url, followers=p.followers, engagement=p.engagement
            )
            for p in profiles
        ],
        custom_fields=dict(row.custom_fields),
    )


def stored_lead(row: Any) -> Lead:
    """A stored lead as its model, not validated again (see :func:`stored_contact`)."""
    context = None
    if row.social_platform is not None:
        context = SocialContext.model_construct(
            platform=row.social_platform,
            conversation_id=row.conversation_id,
            sentiment=row.sentiment,
            engagement_score=row.engagement_score,
        )
    return Lead.model_construct(
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        company=row.company,
        source=row.source,
        status=row.status,
        social_context=context,
        social_profiles=[
            SocialProfile.model_construct(
                platform=SocialPlatform(p["platform"]), username=p["username"], url=p.get("url"),
                followers=p.get("followers", 0), engagement=p.get("engagement", 0.0),
            )
            for p in (row.social_profiles or [])
        ],
        custom_fields=dict(row.custom_fields or {}),
    )


def lead_row_values(lead: Lead) -> dict[str, Any]:
    """The ``leads`` columns of a lead (all but its email and contact)."""
    context = lead.social_context
    return {
        "first_name": lead.first_name,
        "last_name": lead.last_name,
        "company": lead.company,
        "source": lead.source,
        "status": lead.status,
        "social_platform": context.platform if context else None,
        "conversation_id": context.conversation_id if context else None,
        "sentiment": context.sentiment if context else None,
        "engagement_score": context.engagement_score if context else None,
        "social_profiles": [p.model_dump(mode="json") for p in lead.social_profiles],
        "custom_fields": dict(lead.custom_fields),
    }


def _contact_from_row(row: ContactRow) -> Contact:
    return stored_contact(row, row.social_profiles)


def _contact_or_none(row: ContactRow | None) -> Contact | None:
    return None if row is None else _contact_from_row(row)


def _apply_contact_columns(row: ContactRow, contact: Contact) -> bool:
    """Give a contact row a contact's own columns (not its profiles); whether any changed."""
    changed = False
    for attribute in ("first_name", "last_name", "company", "phone"):
        value = getattr(contact, attribute)
        if getattr(row, attribute) != value:
            setattr(row, attribute, value)
            changed = True
    if dict(row.custom_fields) != contact.custom_fields:
        row.custom_fields = dict(contact.custom_fields)
        changed = True
    return changed


@dataclass(frozen=True)
class ProfileChanges:
    """What brings a contact's stored profiles to the wanted ones; profiles are matched by (platform, username),
    the table's unique key, so a profile whose reach changed is updated in place, never replaced.

    Attributes:
        gone: the stored profiles no longer wanted.
        changed: stored profiles with their new values (url, followers or engagement differ).
        new: wanted profiles not stored yet.
    """

    gone: list[SocialProfileRow]
    changed: list[tuple[SocialProfileRow, SocialProfile]]
    new: list[SocialProfile]

    def __bool__(self) -> bool:
        return bool(self.gone or self.changed or self.new)


def profile_changes(held: Iterable[SocialProfileRow], wanted: Sequence[SocialProfile]) -> ProfileChanges:
    """The changes from a contact's stored profiles to ``wanted``."""
    have = {(p.platform, p.username): p for p in held}
    wanted_by_key = {(p.platform, p.username): p for p in wanted}
    return ProfileChanges(
        gone=[stale for key, stale in have.items() if key not in wanted_by_key],
        changed=[
            (current, p)
            for key, p in wanted_by_key.items()
            if (current := have.get(key)) is not None
            and (current.url, current.followers, current.engagement) != (p.url, p.followers, p.engagement)
        ],
        new=[p for key, p in wanted_by_key.items() if key not in have],
    )


def _apply_contact(row: ContactRow, contact: Contact) -> bool:
    changed = _apply_contact_columns(row, contact)
    # Applied to the loaded collection: the unit of work inserts before it deletes, so a profile is updated in
    # place rather than replaced by a new row of the same key.
    profiles = profile_changes(row.social_profiles, contact.social_profiles)
    for stale in profiles.gone:
        row.social_profiles.remove(stale)
    for current, p in profiles.changed:
        current.url, current.followers, current.engagement = p.url, p.followers, p.engagement
    for p in profiles.new:
        row.social_profiles.append(
            SocialProfileRow(
                platform=p.platform, username=p.username, url=p.url, followers=p.followers, engagement=p.engagement
            )
        )
    return changed or bool(profiles)


def save_profiles_in_bulk(session: Session, contacts: Sequence[tuple[ContactRow, Contact]]) -> None:
    """Bring stored contacts' profiles (loaded with their rows) to their contacts' with three statements in all:
    one delete, one update and one insert for every contact together, instead of one statement a profile.

    The loaded collections are left as they were: call this last on a session that is about to commit.
    """
    gone: list[int] = []
    changed: list[dict[str, Any]] = []
    new: list[dict[str, Any]] = []
    for row, contact in contacts:
        profiles = profile_changes(row.social_profiles, contact.social_profiles)
        gone.extend(stale.id for stale in profiles.gone)
        changed.extend(
            {"profile_id": current.id, "url": p.url, "followers": p.followers, "engagement": p.engagement}
            for current, p in profiles.changed
        )
        new.extend(
            {
                "contact_id": row.id,
                "platform": p.platform,
                "username": p.username,
                "url": p.url,
                "followers": p.followers,
                "engagement": p.engagement,
            }
            for p in profiles.new
        )
    _write_profile_changes(session, gone, changed, new)


@dataclass(frozen=True)
class StoredContact:
    """A contact as read from the store in plain rows: its id, its own columns and its profiles' rows (with their
    ids).

    Attributes:
        id: the local id.
        row: the ``contacts`` columns a Contact holds.
        profiles: its ``social_profiles`` rows, oldest first.
    """

    id: int
    row: Any
    profiles: list[Any]

    @property
    def contact(self) -> Contact:
        """The stored contact (see :func:`stored_contact`), made when asked for: a save of 100,000 contacts hands
        each to its relay and keeps none of them."""
        return stored_contact(self.row, self.profiles)


#: The ``contacts`` columns a Contact holds besides its email, as a save compares and writes them.
_CONTACT_COLUMNS = ("first_name", "last_name", "company", "phone", "custom_fields")


def _stored_contacts(session: Session, emails: Sequence[str], *, hold: bool = False) -> dict[str, StoredContact]:
    """The stored contacts with those emails, by email, read as plain rows (not ORM objects: an import reads every
    address of its file, then again the rows it writes); with ``hold``, the contacts' rows are held for the
    transaction (PostgreSQL's ``FOR UPDATE``; SQLite holds the whole file, see :func:`hold_for_write`)."""
    contacts, profiles = cast(Table, ContactRow.__table__), cast(Table, SocialProfileRow.__table__)
    # Only the columns a Contact holds: the time stamps would be parsed back into datetimes for nothing.
    contact_columns = (contacts.c.id, contacts.c.email, *(contacts.c[name] for name in _CONTACT_COLUMNS))
    profile_columns = (profiles.c.id, profiles.c.contact_id, profiles.c.platform, profiles.c.username,
                       profiles.c.url, profiles.c.followers, profiles.c.engagement)
    found: dict[str, StoredContact] = {}
    for chunk in in_list_chunks(emails):
        statement = select(*contact_columns).where(contacts.c.email.in_(chunk))
        if hold:
            statement = statement.with_for_update(of=contacts)
        rows = list(session.execute(statement))
        if not rows:
            continue  # new addresses, as every one of a first import is: no profiles to ask for
        held: dict[int, list[Any]] = {}
        for profile in session.execute(select(*profile_columns).where(
                profiles.c.contact_id.in_([row.id for row in rows])).order_by(profiles.c.id)):
            held.setdefault(profile.contact_id, []).append(profile)
        found.update((row.email, StoredContact(row.id, row, held.get(row.id, []))) for row in rows)
    return found


def _updated_in_bulk(session: Session, stored: dict[str, StoredContact], contacts: list[Contact]
                     ) -> dict[str, SavedRecord]:
    """Bring stored contacts (each given once) to the given ones with a few bulk statements: one UPDATE a set of
    changed columns (only those columns written, as the ORM would), and one delete, update and insert for every
    contact's profiles together. A contact whose values are already there is not written (its ``updated_at``,
    which a sync reads, stays)."""
    now = utcnow()
    saved: dict[str, SavedRecord] = {}
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    gone: list[int] = []
    changed_profiles: list[dict[str, Any]] = []
    new_profiles: list[dict[str, Any]] = []
    for contact in contacts:
        held = stored[contact.email]
        wanted = {"first_name": contact.first_name, "last_name": contact.last_name, "company": contact.company,
                  "phone": contact.phone, "custom_fields": dict(contact.custom_fields)}
        columns = {name: value for name, value in wanted.items() if getattr(held.row, name) != value}
        profiles = profile_changes(held.profiles, contact.social_profiles)
        changed = bool(columns) or bool(profiles)
        if changed:
            # Profile-only changes touch the contact's updated_at all the same.
            by_columns.setdefault(tuple(columns), []).append({"contact_id": held.id, **columns, "updated_at": now})
        gone.extend(stale.id for stale in profiles.gone)
        changed_profiles.extend({"profile_id": current.id, "url": p.url, "followers": p.followers,
                                 "engagement": p.engagement} for current, p in profiles.changed)
        new_profiles.extend({"contact_id": held.id, "platform": p.platform, "username": p.username, "url": p.url,
                             "followers": p.followers, "engagement": p.engagement} for p in profiles.new)
        saved[contact.email] = SavedRecord(held.id, contact.email, False, changed)
    contacts_table = cast(Table, ContactRow.__table__)
    for parameters in by_columns.values():
        session.execute(update(contacts_table).where(contacts_table.c.id == bindparam("contact_id")), parameters)
    _write_profile_changes(session, gone, changed_profiles, new_profiles)
    return saved


def _write_profile_changes(session: Session, gone: list[int], changed: list[dict[str, Any]],
                           new: list[dict[str, Any]]) -> None:
    """Delete, update and insert profiles with one statement each (a chunk of ids at a time for the delete)."""
    table = cast(Table, SocialProfileRow.__table__)
    for chunk in in_list_chunks(gone):
        session.execute(delete(table).where(table.c.id.in_(chunk)))
    if changed:
        # The SET columns are the parameters' other keys (url, followers, engagement).
        session.execute(update(table).where(table.c.id == bindparam("profile_id")), changed)
    if new:
        session.execute(insert(table), new)


class ContactStore:
    """Contacts with their social profiles, unique by normalised email."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def save(self, contact: Contact) -> SavedRecord:
        """Insert a contact, or update the one with the same email."""
        return self.save_many([contact])[0]

    def save_many(self, contacts: Iterable[Contact], *, relay: Relay | None = None,
                  after: AfterSave | None = None) -> list[SavedRecord]:
        """Insert or update many contacts in one transaction (all or nothing), in the order given.

        New contacts are written with bulk inserts (an import of 100,000 new contacts spends its time in the ORM's
        per-row work otherwise); existing ones go through the ORM, which compares each value.

        With ``relay``, each contact is first handed to it with the contact as stored now (``None``: not stored),
        the rows held from before that read until the write; what it gives is saved instead (``None``: nothing,
        and no result for it). A caller that built the contacts over an earlier read lays them again over what
        a sync or an event saved since, rather than overwriting it. PostgreSQL cannot hold a row not stored yet: a
        contact another desktop inserted meanwhile fails the insert, and the save is made once more, relayed over
        it (``relay`` may so be called twice for a contact). ``after`` writes what must commit with the save.
        """
        return _saved_again_if_raced(self._save_many, self._db, list(contacts), relay, after)

    def _save_many(self, session: Session, items: list[Contact], relay: Relay | None) -> list[SavedRecord]:
        if relay is not None:
            hold_for_write(session, cast(Table, ContactRow.__table__))
        stored = _stored_contacts(session, [c.email for c in items], hold=relay is not None)
        if relay is not None:
            items = _relaid(items, lambda email: None if (held := stored.get(email)) is None else held.contact, relay)
        if len({c.email for c in items}) < len(items):
            # An email given twice: saved one after the other, each laid over what the one before it saved.
            return self._updated(session, self._rows_by_email(session, [c.email for c in items]), items)
        inserted = self._inserted(session, [c for c in items if c.email not in stored])
        updated = _updated_in_bulk(session, stored, [c for c in items if c.email in stored])
        return [inserted.get(c.email) or updated[c.email] for c in items]

    @staticmethod
    def _inserted(session: Session, contacts: list[Contact]) -> dict[str, SavedRecord]:
        """Insert new contacts (emails not in the store, each once) and their profiles with bulk statements."""
        contacts_table, profiles_table = cast(Table, ContactRow.__table__), cast(Table, SocialProfileRow.__table__)
        now = utcnow()
        saved: dict[str, SavedRecord] = {}
        for start in range(0, len(contacts), SAVE_BATCH):
            chunk = contacts[start : start + SAVE_BATCH]
            rows = [
                {"email": c.email, "first_name": c.first_name, "last_name": c.last_name, "company": c.company,
                 "phone": c.phone, "custom_fields": dict(c.custom_fields), "created_at": now, "updated_at": now}
                for c in chunk
            ]
            # Ids are matched back by email (unique), not by order: asking for the parameters' order makes SQLite
            # insert one row per statement.
            statement = insert(contacts_table).returning(contacts_table.c.id, contacts_table.c.email)
            ids = {email: contact_id for contact_id, email in session.execute(statement, rows)}
            profiles = [
                {"contact_id": ids[c.email], "platform": p.platform, "username": p.username, "url": p.url,
                 "followers": p.followers, "engagement": p.engagement}
                for c in chunk for p in {(p.platform, p.username): p for p in c.social_profiles}.values()
            ]
            if profiles:
                session.execute(insert(profiles_table), profiles)
            saved.update((c.email, SavedRecord(ids[c.email], c.email, True, True)) for c in chunk)
        return saved

    def _updated(self, session: Session, existing: dict[str, ContactRow], items: list[Contact]) -> list[SavedRecord]:
        """Insert or update contacts through the ORM, in batches."""
        results: list[SavedRecord] = []
        unsaved: list[tuple[ContactRow, bool, bool]] = []
        for contact in items:
            row = existing.get(contact.email)
            created = row is None
            if row is None:
                row = ContactRow(email=contact.email, custom_fields={})
                session.add(row)
                existing[contact.email] = row
            changed = _apply_contact(row, contact) or created
            if changed and not created:
                # Profile-only changes do not touch the contacts row, so its onupdate would not fire.
                row.updated_at = utcnow()
            unsaved.append((row, created, changed))
            if len(unsaved) >= SAVE_BATCH:
                results += self._flushed(session, unsaved)
        results += self._flushed(session, unsaved)
        return results

    @staticmethod
    def _flushed(session: Session, unsaved: list[tuple[ContactRow, bool, bool]]) -> list[SavedRecord]:
        """Write the rows so far in one flush (new rows get their ids together) and empty ``unsaved``."""
        session.flush()
        saved = [SavedRecord(row.id, row.email, created, changed) for row, created, changed in unsaved]
        unsaved.clear()
        return saved

    @staticmethod
    def _rows_by_email(session: Session, emails: list[str]) -> dict[str, ContactRow]:
        found: dict[str, ContactRow] = {}
        for chunk in in_list_chunks(emails):
            statement = (
                select(ContactRow).options(selectinload(ContactRow.social_profiles)).where(ContactRow.email.in_(chunk))
            )
            for row in session.scalars(statement):
                found[row.email] = row
        return found

    def find_many(self, emails: Sequence[str]) -> dict[str, Contact]:
        """The contacts with those (already normalised) emails, by email.

        Read as plain rows, not ORM objects: an import looks up every address of its file here.
        """
        with self._db.session() as session:
            return {email: held.contact for email, held in _stored_contacts(session, list(emails)).items()}

    def find(self, email: str) -> Contact | None:
        """The contact with that (already normalised) email, if any."""
        with self._db.session() as session:
            row = session.scalar(
                select(ContactRow).options(selectinload(ContactRow.social_profiles)).where(ContactRow.email == email)
            )
            return _contact_from_row(row) if row else None

    def page(self, offset: int = 0, limit: int = 100) -> list[Contact]:
        """Contacts ordered by email, one page at a time."""
        with self._db.session() as session:
            rows = session.scalars(
                select(ContactRow)
                .options(selectinload(ContactRow.social_profiles))
                .order_by(ContactRow.email)
                .offset(offset)
                .limit(limit)
            ).all()
            return [_contact_from_row(row) for row in rows]

    def count(self) -> int:
        """How many contacts the store holds."""
        with self._db.session() as session:
            return int(session.scalar(select(func.count()).select_from(ContactRow)) or 0)

    def remove(self, email: str) -> None:
        """Delete a contact and its profiles, and its touchpoints unless a lead with its email still owns them.

        Raises:
            NotFoundError: when there is none.
        """
        with self._db.session() as session:
            result = session.execute(delete(ContactRow).where(ContactRow.email == email))
            if getattr(result, "rowcount", 0) == 0:
                raise NotFoundError(f"no contact with email {email!r}")
            if session.scalar(select(LeadRow.id).where(LeadRow.email == email)) is None:
                session.execute(delete(TouchpointRow).where(TouchpointRow.email == email))


def _lead_from_row(row: LeadRow) -> Lead:
    return stored_lead(row)


class LeadStore:
    """Leads, unique by normalised email, linked to the contact with the same email when there is one."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def save(self, lead: Lead) -> SavedRecord:
        """Insert a lead, or update the one with the same email."""
        return self.save_many([lead])[0]

    def save_many(self, leads: Iterable[Lead], *, relay: Relay | None = None,
                  after: AfterSave | None = None) -> list[SavedRecord]:
        """Insert or update many leads in one transaction (all or nothing); ``relay`` and ``after`` as for
        :meth:`ContactStore.save_many` (a lead inserted meanwhile by another writer: saved once more)."""
        return _saved_again_if_raced(self._save_many, self._db, list(leads), relay, after)

    def _save_many(self, session: Session, items: list[Lead], relay: Relay | None) -> list[SavedRecord]:
        results: list[SavedRecord] = []
        if relay is not None:
            hold_for_write(session, cast(Table, LeadRow.__table__))
        emails = [lead.email for lead in items]
        existing: dict[str, LeadRow] = {}
        contact_ids: dict[str, int] = {}
        for chunk in in_list_chunks(emails):
            held = select(LeadRow).where(LeadRow.email.in_(chunk))
            if relay is not None:
                held = held.with_for_update()
            existing.update((r.email, r) for r in session.scalars(held))
            contact_ids.update(
                (email, contact_id) for email, contact_id in session.execute(
                    select(ContactRow.email, ContactRow.id).where(ContactRow.email.in_(chunk))
                )
            )
        if relay is not None:
            items = _relaid(items, lambda email: None if (row := existing.get(email)) is None else stored_lead(row),
                            relay)
        unsaved: list[tuple[LeadRow, bool, bool]] = []
        for lead in items:
            row = existing.get(lead.email)
            created = row is None
            if row is None:
                row = LeadRow(email=lead.email)
                session.add(row)
                existing[lead.email] = row
            changed = created
            for attribute, value in lead_row_values(lead).items():
                if getattr(row, attribute) != value:
                    setattr(row, attribute, value)
                    changed = True
            contact_id = contact_ids.get(lead.email)
            if row.contact_id != contact_id:
                row.contact_id = contact_id
            unsaved.append((row, created, changed))
            if len(unsaved) >= SAVE_BATCH:
                session.flush()
                results += [SavedRecord(r.id, r.email, c, ch) for r, c, ch in unsaved]
                unsaved.clear()
        session.flush()
        results += [SavedRecord(r.id, r.email, c, ch) for r, c, ch in unsaved]
        return results

    def find_many(self, emails: Sequence[str]) -> dict[str, Lead]:
        """The leads with those (already normalised) emails, by email."""
        found: dict[str, Lead] = {}
        with self._db.session() as session:
            for chunk in in_list_chunks(emails):
                found.update((row.email, _lead_from_row(row))
                             for row in session.scalars(select(LeadRow).where(LeadRow.email.in_(chunk))))
        return found

    def find(self, email: str) -> Lead | None:
        """The lead with that (already normalised) email, if any."""
        with self._db.session() as session:
            row = session.scalar(select(LeadRow).where(LeadRow.email == email))
            return _lead_from_row(row) if row else None

    def count(self) -> int:
        """How many leads the store holds."""
        with self._db.session() as session:
            return int(session.scalar(select(func.count()).select_from(LeadRow)) or 0)
