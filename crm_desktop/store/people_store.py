"""The People and Attribution panels' reads: filtered, sorted, keyset-paged contacts and leads, and one person's
profiles, timeline, CRM links and audit history."""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    LargeBinary,
    Select,
    and_,
    cast,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlalchemy.orm import Session, aliased

from crm_desktop.domain.models import SocialPlatform, TouchpointType
from crm_desktop.domain.outcomes import RecordObject, RecordOutcome
from crm_desktop.store.database import CASEFOLD_FUNCTION, Database, casefolded
from crm_desktop.store.models import (
    AuditLogRow,
    ContactRow,
    ConversationRow,
    CrmLinkRow,
    IntegrationRow,
    LeadRow,
    OutboxRow,
    OutboxStatus,
    SocialProfileRow,
    SyncRecordLogRow,
    SyncRunRow,
    TouchpointRow,
    audit_value,
    company_sort_key,
    name_sort_key,
    score_sort_key,
    utc_from_store,
)


def _crm_creation_marker() -> ColumnElement[bool]:
    """Whether an audit row is the one a push that created a CRM record keeps for its email (blank -> the email,
    CRM side): the record's key, not a change of a value (see :meth:`PeopleStore.audit`)."""
    return and_(AuditLogRow.side == "crm", AuditLogRow.field == "email", AuditLogRow.old_value.is_(None))


#: What a person is known by in a query's rows: a contact's id, or an email.
PersonKey = TypeVar("PersonKey", int, str)


class PeopleColumn(StrEnum):
    """The sortable columns of the People list (sorted in SQL, ties broken by the local id)."""

    NAME = "name"
    EMAIL = "email"
    COMPANY = "company"
    SCORE = "score"
    UPDATED = "updated"


class SyncState(StrEnum):
    """A record's state in one integration, as the People filter offers it."""

    LINKED = "linked"
    NOT_LINKED = "not_linked"
    FAILED = "failed"


@dataclass(frozen=True)
class PeopleQuery:
    """What the People list shows: which records, filtered how, sorted by what.

    Attributes:
        obj: contacts or leads.
        text: matched anywhere in the name, email or company (case-insensitive); blank matches all.
        platform: only people with a profile (contacts) or a source platform (leads) on it.
        campaign: only people with a touchpoint of that campaign (a conversion is no touchpoint, as in the
            Attribution panel's campaign rows).
        reached_on: only people with a touchpoint on that platform (what the Attribution panel's platform rows
            count as their leads).
        score_min, score_max: the engagement score range (people without a score are left out when set).
        integration_id, sync_state: only records in that state in that integration.
        sort: the sort column; descending reverses it.
    """

    obj: RecordObject = RecordObject.CONTACT
    text: str = ""
    platform: SocialPlatform | None = None
    campaign: str | None = None
    reached_on: SocialPlatform | None = None
    score_min: float | None = None
    score_max: float | None = None
    integration_id: int | None = None
    sync_state: SyncState | None = None
    sort: PeopleColumn = PeopleColumn.EMAIL
    descending: bool = False


@dataclass(frozen=True)
class PersonLine:
    """One row of the People list.

    Attributes:
        id: the local id.
        email, first_name, last_name, company: as stored.
        score: the engagement score as last worked out from the person's social activity.
        platforms: the platforms of its profiles (contacts) or its source platform (leads).
        updated_at: when the record last changed locally.
        sort_key: the value of the sort column (the keyset's first half).
    """

    id: int
    email: str
    first_name: str | None
    last_name: str | None
    company: str | None
    score: float | None
    platforms: tuple[str, ...]
    updated_at: datetime
    sort_key: Any

    @property
    def name(self) -> str:
        """First and last name, as one text."""
        return " ".join(part for part in (self.first_name, self.last_name) if part)


#: Where the next page starts: the last row's sort value and id.
Keyset = tuple[Any, int]


@dataclass(frozen=True)
class ProfileLine:
    """One social profile of a person."""

    platform: str
    username: str
    url: str | None
    followers: int


@dataclass(frozen=True)
class TimelineEntry:
    """One touchpoint or conversation of a person, for the timeline."""

    at: datetime
    platform: str
    kind: str
    campaign: str | None
    detail: str


@dataclass(frozen=True)
class CrmLinkLine:
    """A person's record in one integration.

    Attributes:
        integration: the integration's name.
        provider: its CRM.
        crm_id: the CRM record id (``None`` when never linked).
        last_synced: when a sync last agreed with the CRM.
        state: linked, deleted in the CRM, waiting to be sent, failed or not linked.
        last_error: the newest error a sync reported for this record.
    """

    integration: str
    provider: str
    base_url: str | None
    domain: str | None
    crm_id: str | None
    last_synced: datetime | None
    state: str
    last_error: str | None


@dataclass(frozen=True)
class AuditLine:
    """One recorded change of a person's field (``id``: the audit row, for undoing this one change)."""

    id: int
    at: datetime
    field: str
    before: str | None
    after: str | None
    source: str
    side: str
    run_id: int | None
    #: The types of ``before`` and ``after`` where the row knows them (see ``AuditValueType``), else ``None``.
    before_type: str | None = None
    after_type: str | None = None

    @property
    def before_value(self) -> Any:
        """The value before, with its type where the row knows it (a custom field's ``42``); else its text."""
        return audit_value(self.before, self.before_type)


@dataclass
class TouchpointSeries:
    """Touchpoints per day and platform, for a line chart."""

    days: list[date] = field(default_factory=list)
    per_platform: dict[str, list[int]] = field(default_factory=dict)


def _platforms_by_person(rows: Iterable[tuple[PersonKey, SocialPlatform]]) -> dict[PersonKey, tuple[str, ...]]:
    """``(person, platform)`` rows as each person's platform names, in the rows' order."""
    found: dict[PersonKey, list[str]] = {}
    for person, platform in rows:
        found.setdefault(person, []).append(platform.value)
    return {person: tuple(platforms) for person, platforms in found.items()}


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class PeopleStore:
    """Reads of the People panel, a page at a time; nothing here loads every row."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # -- the list ------------------------------------------------------------------------------------------

    @staticmethod
    def _score_column(query: PeopleQuery) -> ColumnElement[Any]:
        row = LeadRow if query.obj is RecordObject.LEAD else ContactRow
        return row.__table__.c.engagement_score

    def _sort_column(self, query: PeopleQuery) -> ColumnElement[Any]:
        row: Any = LeadRow if query.obj is RecordObject.LEAD else ContactRow
        # Name, company and score are the expressions of their sort indexes (see store.models).
        if query.sort is PeopleColumn.NAME:
            return name_sort_key(row)
        if query.sort is PeopleColumn.COMPANY:
            return company_sort_key(row)
        if query.sort is PeopleColumn.SCORE:
            return score_sort_key(row.__table__.c)
        if query.sort is PeopleColumn.UPDATED:
            return row.updated_at  # type: ignore[no-any-return]
        return row.email  # type: ignore[no-any-return]

    def _filtered(self, query: PeopleQuery, statement: Select[Any]) -> Select[Any]:
        lead = query.obj is RecordObject.LEAD
        row: Any = LeadRow if lead else ContactRow
        text = query.text.strip()
        if text:
            # SQLite's LIKE ignores ASCII case by itself, and folding every row costs a full scan about ten times
            # its time: only a text with other letters (é, Ø, И) has the rows folded for every alphabet. PostgreSQL's
            # LIKE ignores no case, so it gets ILIKE.
            sqlite, folded = self._db.is_sqlite, not text.isascii()
            # Folded as the rows are: by crm_casefold on SQLite (ß is ss), by ILIKE's lower case on PostgreSQL.
            pattern = _like(casefolded(text) if sqlite else unicodedata.normalize("NFC", text).lower())
            # "strasse" is how a German keyboard-less marketer types "Straße". An ASCII text with "ss" also folds
            # the rows that hold a letter outside ASCII (a byte count above the letter count; about twice the
            # plain scan's time), and PostgreSQL, whose lower() keeps ß, reads ß as ss on both sides.
            sharp_s = "ss" in casefolded(text)
            if sharp_s and not sqlite:
                pattern = pattern.replace("ß", "ss")

            def matches(column: Any) -> ColumnElement[bool]:
                if sqlite and (folded or sharp_s):
                    fold_matches = getattr(func, CASEFOLD_FUNCTION)(column).like(pattern, escape="\\")
                    if folded:
                        return fold_matches  # type: ignore[no-any-return]
                    beyond_ascii = func.length(column) != func.length(cast(column, LargeBinary))
                    return or_(column.like(pattern, escape="\\"), and_(beyond_ascii, fold_matches))
                if sqlite:
                    return column.like(pattern, escape="\\")  # type: ignore[no-any-return]
                if folded:  # composed first, as the text is (PostgreSQL 13 and later)
                    column = func.normalize(column, literal_column("NFC"))
                if sharp_s:
                    sharp_s_as_ss = func.replace(func.lower(column), "ß", "ss")
                    return sharp_s_as_ss.like(pattern, escape="\\")
                return column.ilike(pattern, escape="\\")  # type: ignore[no-any-return]

            # A text with a space may span first and last name; without one, each column alone is cheaper.
            name = (
                [matches(func.coalesce(row.first_name, "") + literal(" ") + func.coalesce(row.last_name, ""))]
                if " " in text else [matches(row.first_name), matches(row.last_name)]
            )
            statement = statement.where(or_(matches(row.email), *name, matches(row.company)))
        if query.platform is not None:
            if lead:
                # A lead's own source platform, or a profile of the contact with the same email.
                statement = statement.where(or_(
                    LeadRow.social_platform == query.platform,
                    exists().where(
                        ContactRow.email == LeadRow.email, SocialProfileRow.contact_id == ContactRow.id,
                        SocialProfileRow.platform == query.platform,
                    ),
                ))
            else:
                statement = statement.where(
                    exists().where(
                        SocialProfileRow.contact_id == ContactRow.id, SocialProfileRow.platform == query.platform
                    )
                )
        # A conversion is the outcome, not a touch: the Attribution rows these filters list count no lead by it.
        touched = (TouchpointRow.email == row.email, TouchpointRow.type != TouchpointType.CONVERSION)
        if query.campaign:
            statement = statement.where(exists().where(*touched, TouchpointRow.campaign == query.campaign))
        if query.reached_on is not None:
            statement = statement.where(exists().where(*touched, TouchpointRow.platform == query.reached_on))
        score = self._score_column(query)
        if query.score_min is not None:
            statement = statement.where(score >= query.score_min)
        if query.score_max is not None:
            statement = statement.where(score <= query.score_max)
        if query.integration_id is not None and query.sync_state is not None:
            linked = exists().where(
                CrmLinkRow.integration_id == query.integration_id,
                CrmLinkRow.object == query.obj,
                CrmLinkRow.local_id == row.id,
            )
            if query.sync_state is SyncState.LINKED:
                statement = statement.where(linked)
            elif query.sync_state is SyncState.NOT_LINKED:
                statement = statement.where(~linked)
            else:
                # Failed as the record's detail says (crm_links): its newest write to the integration failed. An
                # older failure a later write made good (a retry, the next sync) is not a failure any more.
                newer = aliased(OutboxRow)
                statement = statement.where(
                    exists().where(
                        OutboxRow.integration_id == query.integration_id,
                        OutboxRow.object == query.obj,
                        OutboxRow.local_id == row.id,
                        OutboxRow.status == OutboxStatus.FAILED,
                        ~exists().where(
                            newer.integration_id == OutboxRow.integration_id,
                            newer.object == OutboxRow.object,
                            newer.local_id == OutboxRow.local_id,
                            newer.id > OutboxRow.id,
                        ),
                    )
                )
        return statement

    def page(
        self, query: PeopleQuery, after: Keyset | None = None, limit: int = 200, *, inclusive: bool = False
    ) -> list[PersonLine]:
        """The next ``limit`` people of ``query`` after the keyset ``after`` (the first page when ``None``);
        ``inclusive`` starts at the row of that keyset itself."""
        lead = query.obj is RecordObject.LEAD
        row: Any = LeadRow if lead else ContactRow
        sort = self._sort_column(query)
        score = self._score_column(query)
        statement = select(
            row.id, row.email, row.first_name, row.last_name, row.company, score, row.updated_at, sort,
            *([LeadRow.social_platform] if lead else []),
        )
        statement = self._filtered(query, statement)
        if after is not None:
            statement = statement.where(self._beyond(query, after, backwards=False, inclusive=inclusive))
        statement = statement.order_by(*self._order(query, backwards=False)).limit(limit)
        with self._db.session() as session:
            rows = session.execute(statement).all()
            if lead:
                by_email = self._profile_platforms_by_email(session, [r[1] for r in rows])
                platforms = {
                    r[0]: tuple(sorted({*by_email.get(r[1], ()), *((r[8].value,) if r[8] is not None else ())}))
                    for r in rows
                }
            else:
                platforms = self._profile_platforms(session, [r[0] for r in rows])
        return [
            PersonLine(
                id=r[0], email=r[1], first_name=r[2], last_name=r[3], company=r[4],
                score=float(r[5]) if r[5] is not None else None, platforms=platforms.get(r[0], ()),
                updated_at=r[6], sort_key=r[7],
            )
            for r in rows
        ]

    def _beyond(self, query: PeopleQuery, key: Keyset, *, backwards: bool, inclusive: bool) -> ColumnElement[bool]:
        """Rows after ``key`` in the query's order (before it when ``backwards``)."""
        row: Any = LeadRow if query.obj is RecordObject.LEAD else ContactRow
        columns = tuple_(self._sort_column(query), row.id)
        bound = tuple_(literal(key[0]), literal(key[1]))
        if query.descending != backwards:
            return columns <= bound if inclusive else columns < bound
        return columns >= bound if inclusive else columns > bound

    def _order(self, query: PeopleQuery, *, backwards: bool) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
        row: Any = LeadRow if query.obj is RecordObject.LEAD else ContactRow
        sort = self._sort_column(query)
        if query.descending != backwards:
            return sort.desc(), row.id.desc()
        return sort.asc(), row.id.asc()

    def keyset_at(
        self, query: PeopleQuery, offset: int, anchor: Keyset | None = None, *, backwards: bool = False
    ) -> Keyset | None:
        """The keyset of the row ``offset`` rows from ``anchor``, so a page can start anywhere without reading the
        rows before it: forwards from the anchor's own row (from the first row when ``None``), or backwards from
        the row before the anchor (from the last row when ``None``). ``None`` when there is no such row.

        Only the sort value and id are read, so on an indexed sort SQLite steps through the index alone.
        """
        row: Any = LeadRow if query.obj is RecordObject.LEAD else ContactRow
        statement = self._filtered(query, select(self._sort_column(query), row.id))
        if anchor is not None:
            statement = statement.where(self._beyond(query, anchor, backwards=backwards, inclusive=not backwards))
        statement = statement.order_by(*self._order(query, backwards=backwards)).offset(max(offset, 0)).limit(1)
        with self._db.session() as session:
            found = session.execute(statement).first()
        return (found[0], int(found[1])) if found is not None else None

    @staticmethod
    def _profile_platforms(session: Session, contact_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        if not contact_ids:
            return {}
        return _platforms_by_person(session.execute(
            select(SocialProfileRow.contact_id, SocialProfileRow.platform)
            .where(SocialProfileRow.contact_id.in_(contact_ids))
            .order_by(SocialProfileRow.contact_id, SocialProfileRow.platform)
        ))

    @staticmethod
    def _profile_platforms_by_email(session: Session, emails: Sequence[str]) -> dict[str, tuple[str, ...]]:
        if not emails:
            return {}
        return _platforms_by_person(session.execute(
            select(ContactRow.email, SocialProfileRow.platform)
            .join(SocialProfileRow, SocialProfileRow.contact_id == ContactRow.id)
            .where(ContactRow.email.in_(emails))
        ))

    def count(self, query: PeopleQuery) -> int:
        """How many people ``query`` matches."""
        row: Any = LeadRow if query.obj is RecordObject.LEAD else ContactRow
        statement = self._filtered(query, select(func.count()).select_from(row))
        with self._db.session() as session:
            return int(session.scalar(statement) or 0)

    def campaign_names(self) -> list[str]:
        """Every campaign a touchpoint named, by name."""
        with self._db.session() as session:
            return sorted(
                name for name in session.scalars(select(TouchpointRow.campaign).distinct()) if name is not None
            )

    # -- one person ----------------------------------------------------------------------------------------

    def email_of(self, obj: RecordObject, local_id: int) -> str | None:
        """The email of a contact or lead, or ``None`` when it is gone."""
        row: Any = LeadRow if obj is RecordObject.LEAD else ContactRow
        with self._db.session() as session:
            return session.scalar(select(row.email).where(row.id == local_id))

    def profiles(self, email: str) -> list[ProfileLine]:
        """The social profiles of the contact with that email, and a lead's own profiles of the same email."""
        with self._db.session() as session:
            found = [
                ProfileLine(p.platform.value, p.username, p.url, int(p.followers or 0))
                for p in session.scalars(
                    select(SocialProfileRow)
                    .join(ContactRow, ContactRow.id == SocialProfileRow.contact_id)
                    .where(ContactRow.email == email)
                    .order_by(SocialProfileRow.platform)
                )
            ]
            lead_profiles = session.scalar(select(LeadRow.social_profiles).where(LeadRow.email == email)) or []
        seen = {(p.platform, p.username.lower()) for p in found}
        for item in lead_profiles:
            platform, username = str(item.get("platform", "")), str(item.get("username", ""))
            if platform and username and (platform, username.lower()) not in seen:
                found.append(ProfileLine(platform, username, item.get("url"), int(item.get("followers") or 0)))
        return found

    def timeline(self, email: str, limit: int = 500) -> list[TimelineEntry]:
        """A person's newest touchpoints and conversations, newest first."""
        with self._db.session() as session:
            entries = [
                TimelineEntry(t.timestamp, t.platform.value, t.type.value, t.campaign,
                              f"post {t.post_id}" if t.post_id else (f"conversation {t.conversation_id}"
                                                                    if t.conversation_id else ""))
                for t in session.scalars(
                    select(TouchpointRow).where(TouchpointRow.email == email)
                    .order_by(TouchpointRow.timestamp.desc(), TouchpointRow.id.desc()).limit(limit)
                )
            ]
            for c in session.scalars(
                select(ConversationRow).where(ConversationRow.email == email)
                .order_by(ConversationRow.started_at.desc()).limit(limit)
            ):
                sentiment = f", {c.latest_sentiment.value}" if c.latest_sentiment is not None else ""
                entries.append(TimelineEntry(
                    c.started_at, c.platform.value, "conversation", c.campaign,
                    f"{c.messages_in} in / {c.messages_out} out{sentiment}",
                ))
        entries.sort(key=lambda e: e.at, reverse=True)
        return entries[:limit]

    def timeline_size(self, email: str) -> int:
        """How many entries a person's whole timeline holds (touchpoints and conversations): :meth:`timeline`
        gives only the newest."""
        with self._db.session() as session:
            touchpoints = session.scalar(select(func.count()).select_from(TouchpointRow)
                                         .where(TouchpointRow.email == email)) or 0
            conversations = session.scalar(select(func.count()).select_from(ConversationRow)
                                           .where(ConversationRow.email == email)) or 0
        return touchpoints + conversations

    def crm_links(self, obj: RecordObject, local_id: int, email: str) -> list[CrmLinkLine]:
        """Per integration, the record's CRM id, last sync, state and newest error."""
        lines: list[CrmLinkLine] = []
        with self._db.session() as session:
            for integration in session.scalars(select(IntegrationRow).order_by(IntegrationRow.name)):
                link = session.scalar(select(CrmLinkRow).where(
                    CrmLinkRow.integration_id == integration.id, CrmLinkRow.object == obj,
                    CrmLinkRow.local_id == local_id,
                ))
                outbox = session.scalar(
                    select(OutboxRow).where(
                        OutboxRow.integration_id == integration.id, OutboxRow.object == obj,
                        OutboxRow.local_id == local_id,
                    ).order_by(OutboxRow.id.desc()).limit(1)
                )
                error = session.execute(
                    select(SyncRecordLogRow.message, SyncRecordLogRow.outcome)
                    .join(SyncRunRow, SyncRunRow.id == SyncRecordLogRow.run_id)
                    .where(SyncRunRow.integration_id == integration.id, SyncRecordLogRow.object == obj,
                           SyncRecordLogRow.record_key == email)
                    .order_by(SyncRecordLogRow.id.desc()).limit(1)
                ).first()
                last_error = error[0] if error is not None and error[1] is RecordOutcome.FAILED else None
                if outbox is not None and outbox.status is OutboxStatus.FAILED:
                    state, last_error = "failed", outbox.error or last_error
                elif outbox is not None and outbox.status is OutboxStatus.PENDING:
                    state = "waiting to be sent"
                elif link is not None and link.deleted_in_crm:
                    state = "deleted in the CRM"
                elif link is not None:
                    state = "failed" if last_error else "linked"
                else:
                    state = "failed" if last_error else "not linked"
                lines.append(CrmLinkLine(
                    integration=integration.name, provider=integration.provider.value,
                    base_url=integration.base_url, domain=integration.domain,
                    crm_id=link.crm_id if link is not None else None,
                    last_synced=link.updated_at if link is not None else None,
                    state=state, last_error=last_error,
                ))
        return lines

    def audit(self, obj: RecordObject, local_id: int, limit: int = 500) -> list[AuditLine]:
        """The record's recorded changes, newest first; ``source`` says what made them (an import, a sync...).

        The row a push that created the record in a CRM keeps for its email (blank -> the email, CRM side) is left
        out: the email did not change, the CRM record was made with it as its key. That row stays in the audit, as
        ``runs undo`` reads it to tell a record the run created in the CRM (and keep it); the fields the create
        wrote are listed as its changes."""
        with self._db.session() as session:
            rows = session.execute(
                select(AuditLogRow, SyncRunRow.trigger, IntegrationRow.name)
                .outerjoin(SyncRunRow, SyncRunRow.id == AuditLogRow.run_id)
                .outerjoin(IntegrationRow, IntegrationRow.id == AuditLogRow.integration_id)
                .where(AuditLogRow.entity == obj.value, AuditLogRow.entity_id == str(local_id),
                       ~_crm_creation_marker())
                .order_by(AuditLogRow.id.desc()).limit(limit)
            ).all()
        lines = []
        for audit, trigger, integration in rows:
            source = audit.source if audit.source else ""
            if not source:
                source = str(trigger.value) if trigger is not None else "local"
            if integration:
                source = f"{source} · {integration}"
            lines.append(AuditLine(audit.id, audit.at, audit.field, audit.old_value, audit.new_value, source,
                                   audit.side, audit.run_id, audit.old_type, audit.new_type))
        return lines

    def audit_entry(self, audit_id: int) -> tuple[RecordObject, int, AuditLine] | None:
        """One audit row with the record it belongs to, or ``None`` when there is no such row (or it is not about
        a contact or lead)."""
        with self._db.session() as session:
            audit = session.get(AuditLogRow, audit_id)
            if audit is None or audit.entity not in {o.value for o in RecordObject} or not audit.entity_id.isdigit():
                return None
            return RecordObject(audit.entity), int(audit.entity_id), AuditLine(
                audit.id, audit.at, audit.field, audit.old_value, audit.new_value, audit.source, audit.side,
                audit.run_id, audit.old_type, audit.new_type)

    # -- attribution chart ---------------------------------------------------------------------------------

    def touchpoints_per_day(self, since: datetime | None, *, until: datetime | None = None,
                            before: datetime | None = None, zone: tzinfo | None = None) -> TouchpointSeries:
        """Credit-earning touchpoints per calendar day and platform since ``since`` (all when ``None``) and before
        ``before`` (no end when ``None``; the series then ends on the day of the moment just before it).

        Days are the marketer's: midnight to midnight in ``zone`` (the system's local time when ``None``), with
        its daylight-saving changes. Every day from ``since``'s (or the first touchpoint's) to ``until``'s (or
        the last touchpoint's) is in the series, those without a touchpoint as 0, so a chart of it shows the
        quiet days and spans the whole period.

        The day is worked out here rather than in SQL: SQLite knows no time zones, and the report beside the
        chart reads every touchpoint of the period anyway.
        """
        statement = (
            select(TouchpointRow.timestamp, TouchpointRow.platform)
            .where(TouchpointRow.type != TouchpointType.CONVERSION)  # the outcome, not a touch (as in the report)
        )
        if since is not None:
            statement = statement.where(TouchpointRow.timestamp >= since)
        if before is not None:
            statement = statement.where(TouchpointRow.timestamp < before)
            until = before - timedelta(microseconds=1)
        counts: Counter[tuple[date, str]] = Counter()
        with self._db.session() as session:
            for when, platform in session.execute(statement):
                counts[(utc_from_store(when).astimezone(zone).date(), platform.value)] += 1
        seen = sorted({key[0] for key in counts})
        first = since.astimezone(zone).date() if since is not None else (seen[0] if seen else None)
        if first is None:
            return TouchpointSeries()
        last = max([first, *seen[-1:], *([until.astimezone(zone).date()] if until is not None else [])])
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        platforms = sorted({key[1] for key in counts})
        return TouchpointSeries(
            days=days, per_platform={p: [counts[(d, p)] for d in days] for p in platforms}
        )


__all__ = [
    "AuditLine", "CrmLinkLine", "Keyset", "PeopleColumn", "PeopleQuery", "PeopleStore", "PersonLine",
    "ProfileLine", "SyncState", "TimelineEntry", "TouchpointSeries",
]
