"""What the three adapters share besides HTTP: gathering, chunks, email keys, CRM times, cached field lists,
cursors, values read in a field's wire type, safe writes and the assembly of an upsert's results."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Self, TypeVar

import httpx

from crm_desktop.domain.models import (
    SocialContext,
    SocialPlatform,
    SocialProfile,
    best_engagement,
    normalise_email,
)
from crm_desktop.domain.outcomes import ErrorCategory, RecordOutcome
from crm_desktop.providers.contract import MergeResult, OutboundRecord, RecordResult
from crm_desktop.providers.errors import (
    AuthError,
    NotFoundError,
    PermissionRefusedError,
    ProviderError,
    RateLimitError,
)
from crm_desktop.providers.http import AmbiguousWriteError
from crm_desktop.providers.rate import RateBudget

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K")

# -- running requests together ----------------------------------------------------------------------------------


async def gather_or_cancel(work: Iterable[Awaitable[T]]) -> list[T]:
    """Run awaitables together and return their results in order; the first failure cancels the rest.

    The failure is raised as itself once every sibling has finished cancelling, so no request of a stopped push
    is still in flight (or still holding a budget slot) when the caller sees the error.
    """
    tasks = [asyncio.ensure_future(item) for item in work]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def abandon(task: asyncio.Future[Any] | None) -> None:
    """Cancel a request started ahead that is no longer wanted, and let it finish (its error is of no interest)."""
    if task is None:
        return
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


class WriteGate:
    """One push's writes: a few in flight at a time, and none sent after a failure that stops the push.

    Without it a write waiting for a free slot would still go out in the instant between another write's
    refused token (or missing permission, or spent daily limit) and the cancellation of the push.

    Attributes:
        stopped: the error that stopped the push, once one did.
    """

    def __init__(self, concurrency: int) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self.stopped: ProviderError | None = None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the push's write slots; refuse at once when the push was stopped."""
        async with self._slots:
            if self.stopped is not None:
                raise self.stopped
            try:
                yield
            except (AuthError, PermissionRefusedError, RateLimitError) as exc:
                self.stopped = exc
                raise


def answer_places(
    answers: list[RecordResult | None] | None, records: Sequence[OutboundRecord]
) -> list[RecordResult | None]:
    """Where an upsert puts each record's result as the CRM answers: the caller's ``answers`` (one place per record,
    so a push stopped part-way still tells what the CRM took), else a list of its own."""
    if answers is None:
        return [None] * len(records)
    if len(answers) != len(records):
        raise ValueError("answers must have one place per record")
    return answers


def rounds_by_email(records: Sequence[OutboundRecord]) -> list[list[int]]:
    """Input positions grouped so no group repeats an email (a batch may not name one twice); order kept."""
    rounds: list[list[int]] = []
    seen: dict[str, int] = {}
    for index, record in enumerate(records):
        key = record.email.lower()
        number = seen.get(key, 0)
        seen[key] = number + 1
        if number == len(rounds):
            rounds.append([])
        rounds[number].append(index)
    return rounds


def chunks(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` in consecutive lists of at most ``size`` (a CRM's batch or query limit), order kept."""
    if size < 1:
        raise ValueError("a chunk holds at least one item")
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


# -- email keys ---------------------------------------------------------------------------------------------------

#: An address that is plainly normalised already: lower-case ASCII, one @, a dotted domain.
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_PLAIN_EMAIL = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+$")


def checked_email(email: str) -> str:
    """The normalised email, the dedupe key; an address already normalised (the usual case) skips full validation.

    Raises:
        ValueError: when it is not an email address.
    """
    if _PLAIN_EMAIL.match(email):
        return email
    return normalise_email(email)


def email_key(value: Any) -> str:
    """The dedupe key of an email as a CRM holds it: normalised, or lower-cased when it does not validate;
    ``''`` when there is none."""
    text = str(value or "").strip()
    if not text:
        return ""
    try:
        return checked_email(text)
    except ValueError:
        return text.lower()


def distinct_email_keys(emails: Iterable[Any], key: Callable[[Any], str] = email_key) -> list[str]:
    """The dedupe keys of ``emails`` (by ``key``), each once, in order, without empty ones: what a look-up asks."""
    return list(dict.fromkeys(found for found in map(key, emails) if found))


#: The seed's social field that takes a person's first profile on each network.
_PROFILE_FIELDS = {
    SocialPlatform.TWITTER: "twitter_username",
    SocialPlatform.INSTAGRAM: "instagram_username",
    SocialPlatform.LINKEDIN: "linkedin_url",
}


def social_profile_values(
    profiles: Sequence[SocialProfile], field_name: Callable[[str], str]
) -> tuple[dict[str, Any], list[SocialProfile]]:
    """The seed's social fields from a person's profiles, and the profiles no field takes (for the note).

    The first profile on Twitter, Instagram and LinkedIn fills that network's field (LinkedIn its URL, the public
    one when the profile has none); followers are summed and the best engagement kept (none when no profile has
    one). ``field_name`` turns a seed field's name into the CRM's (``twitter_username`` -> ``twitter_username__c``).
    """
    values: dict[str, Any] = {}
    unmapped: list[SocialProfile] = []
    for profile in profiles:
        seed = _PROFILE_FIELDS.get(profile.platform)
        if seed is None or field_name(seed) in values:
            unmapped.append(profile)
        elif profile.platform is SocialPlatform.LINKEDIN:
            values[field_name(seed)] = profile.url or f"https://www.linkedin.com/in/{profile.username}"
        else:
            values[field_name(seed)] = profile.username
    if profiles:
        values[field_name("social_followers")] = sum(p.followers for p in profiles)
    engagement = best_engagement(profiles)
    if engagement is not None:
        values[field_name("social_engagement_score")] = round(engagement, 2)
    return values, unmapped


def social_context_values(context: SocialContext | None, *, sentiment: str, engagement: str) -> dict[str, Any]:
    """A lead's social context as the values of the CRM's ``sentiment`` and ``engagement`` fields (those it has)."""
    values: dict[str, Any] = {}
    if context is not None and context.sentiment is not None:
        values[sentiment] = context.sentiment.value
    if context is not None and context.engagement_score is not None:
        values[engagement] = context.engagement_score
    return values


# -- CRM times ----------------------------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_crm_time(value: Any) -> datetime | None:
    """A CRM timestamp as an aware UTC datetime; ``None`` when absent or unreadable.

    Reads every shape the three CRMs send: ISO 8601 with ``Z`` or an offset (``+0000`` included), with or
    without milliseconds, Pipedrive v1's ``2025-01-01 10:20:00`` (UTC), and HubSpot's epoch milliseconds.
    """
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        if text.lstrip("-").isdigit():
            return _EPOCH + timedelta(milliseconds=int(text))
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_millis(moment: datetime) -> str:
    """A time as ``2026-01-15T12:00:00.000Z``: UTC with milliseconds, what SOQL and HubSpot compare."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def utc_seconds(moment: datetime) -> str:
    """A time as ``2026-01-15T12:00:00Z``: UTC in whole seconds (RFC 3339), what Pipedrive's v2 filters take."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_millis(moment: datetime) -> int:
    """Milliseconds since 1970, how HubSpot's search compares date-times."""
    return (moment.astimezone(UTC) - _EPOCH) // timedelta(milliseconds=1)


def server_time(response: httpx.Response) -> datetime | None:
    """When the CRM answered, by its ``Date`` header; ``None`` without a readable one."""
    try:
        return parsedate_to_datetime(response.headers["date"]).astimezone(UTC)
    except (KeyError, TypeError, ValueError):
        return None


# -- budgets ------------------------------------------------------------------------------------------------------


class StackedBudget(RateBudget):
    """An endpoint family's own budget (a search limit) on top of the integration's: a request takes room in both.

    Always in one order, this budget's room first and then the integration's, and given back in reverse, so two
    requests can never each hold one budget while waiting for the other, and a request waiting for its own
    narrower window holds no slot of the integration's meanwhile.

    Attributes:
        shared: the integration's budget, which every request counts against too.
    """

    def __init__(self, shared: RateBudget, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shared = shared

    async def acquire(self) -> None:
        await super().acquire()
        try:
            await self.shared.acquire()
        except BaseException:
            super().release()
            raise

    def release(self) -> None:
        self.shared.release()
        super().release()


# -- field lists --------------------------------------------------------------------------------------------------


class FieldCache(Generic[K, T]):
    """A CRM's field list per object (a describe, a property list), read once and kept until read again.

    One read at a time per object: requests that need the fields while they are being read wait for that read
    instead of sending their own.
    """

    def __init__(self, read: Callable[[K], Awaitable[T]]) -> None:
        self._read = read
        self._held: dict[K, T] = {}
        self._locks: dict[K, asyncio.Lock] = {}

    def __contains__(self, key: K) -> bool:
        return key in self._held

    def held(self, key: K) -> T | None:
        """What is kept for ``key`` without reading it (``None``: not read yet)."""
        return self._held.get(key)

    async def get(self, key: K, *, fresh: bool = False) -> T:
        """The fields of ``key``: read now when ``fresh`` or never read, else as kept."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if fresh or key not in self._held:
                self._held[key] = await self._read(key)
            return self._held[key]

    def put(self, key: K, value: T) -> None:
        """Keep ``value`` for ``key`` (a field list with a field just created)."""
        self._held[key] = value

    def forget(self, key: K) -> None:
        """Read ``key`` again next time (its fields changed)."""
        self._held.pop(key, None)


# -- change cursors -----------------------------------------------------------------------------------------------


@dataclass
class ChangeCursor:
    """Where a change pull stands: the newest change time delivered, and the records delivered at exactly that time.

    CRMs filter changes by time with ``>=``, and several records share one time; those already delivered are
    skipped when a pull starts again from the cursor. A record's ``digest`` tells a version from another where the
    CRM's times are too coarse to (whole seconds): the record comes again when it changed within that second.
    As text, ``<stamp>|<id>[:<digest>],...``, it is what the sync engine stores.

    Attributes:
        moment: the newest change time delivered (``None``: nothing yet).
        stamp: that time as the CRM wrote it, so the next pull's filter is exactly the CRM's own value.
        seen: record id -> digest of each record delivered at ``moment`` (``''`` where versions need no digest).
    """

    moment: datetime | None = None
    stamp: str = ""
    seen: dict[str, str] = field(default_factory=dict)

    @classmethod
    def starting_at(cls, moment: datetime) -> Self:
        """A cursor that delivers everything changed at ``moment`` or later."""
        return cls(moment, utc_millis(moment))

    @classmethod
    def read(cls, text: str | None, crm: str) -> Self:
        """The cursor :meth:`text` wrote (empty text: from the start).

        Raises:
            ProviderError: when the text is not a cursor, naming ``crm``.
        """
        if not text:
            return cls()
        stamp, _, entries = text.partition("|")
        moment = parse_crm_time(stamp)
        if moment is None:
            raise ProviderError(f"the stored {crm} change cursor cannot be read; pull everything again")
        seen: dict[str, str] = {}
        for entry in entries.split(","):
            record_id, _, digest = entry.partition(":")
            if record_id:
                seen[record_id] = digest
        return cls(moment, stamp, seen)

    def text(self) -> str:
        """The cursor as stored text (``''`` before anything was delivered)."""
        if self.moment is None:
            return ""
        entries = ",".join(f"{key}:{digest}" if digest else key for key, digest in sorted(self.seen.items()))
        return f"{self.stamp}|{entries}"

    def is_new(self, moment: datetime | None, record_id: str, digest: str = "") -> bool:
        """Whether a record changed at ``moment`` was not delivered before (in this version)."""
        if moment is None or self.moment is None or moment > self.moment:
            return True
        return moment == self.moment and self.seen.get(record_id) != digest

    def advance(self, moment: datetime | None, stamp: str, record_id: str, digest: str = "") -> None:
        """Note a delivered record changed at ``moment`` (written ``stamp`` by the CRM)."""
        if moment is None or (self.moment is not None and moment < self.moment):
            return
        if self.moment is None or moment > self.moment:
            self.moment, self.stamp, self.seen = moment, stamp, {}
        self.seen[record_id] = digest

    def copy(self) -> ChangeCursor:
        return ChangeCursor(self.moment, self.stamp, dict(self.seen))


# -- pages --------------------------------------------------------------------------------------------------------


async def paginate(
    fetch: Callable[[str | None], Awaitable[tuple[list[T], str | None]]], start: str | None = None
) -> AsyncGenerator[tuple[list[T], str | None], None]:
    """Follow a cursor page by page, yielding (items, next cursor); stop at the end or on a repeated cursor.

    Raises:
        ProviderError: when the CRM hands back a cursor it already gave (a loop).
    """
    seen: set[str] = set()
    cursor = start
    while True:
        items, following = await fetch(cursor)
        yield items, following
        if not following:
            return
        if following in seen or following == start:
            raise ProviderError("the CRM returned the same page cursor twice; stopped to avoid a loop")
        seen.add(following)
        cursor = following


# -- values in a field's wire type --------------------------------------------------------------------------------

#: How a marketer's file writes yes and no (compared case-insensitively, surrounding spaces ignored).
YES_TEXTS = frozenset({"true", "yes", "1"})
NO_TEXTS = frozenset({"false", "no", "0"})


def read_yes_no(value: Any) -> bool:
    """A yes/no value as a bool: a bool as it is, text ``true/false``, ``yes/no`` or ``1/0`` (any case).

    Mapped values travel as text (``"true"``); a CRM's checkbox or yes/no field wants a yes or a no.

    Raises:
        ValueError: ``'maybe' is not yes/no`` for anything else.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().casefold()
        if text in YES_TEXTS:
            return True
        if text in NO_TEXTS:
            return False
    raise ValueError(f"{value!r} is not yes/no")


def as_number(value: Any) -> float | None:
    """A JSON number or numeric text as a float; ``None`` for anything else (booleans included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value) if isinstance(value, str) and value.strip() else None
    except ValueError:
        return None


def read_number(value: Any, *, whole: bool = False) -> int | float:
    """A number or numeric text as a JSON number: an int when it is whole, else a float.

    Args:
        whole: the field takes whole numbers only (``4.5`` is refused).

    Raises:
        ValueError: ``'abc' is not a number`` (booleans and non-finite numbers included), or ``'4.5' is not a whole
            number``.
    """
    number = as_number(value)
    if number is None or number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} is not a number")
    if number.is_integer():
        return value if isinstance(value, int) else int(number)
    if whole:
        raise ValueError(f"{value!r} is not a whole number")
    return number


#: ISO 8601 date-time text as a file or a CRM writes it: a date, then optionally a time (``T`` or a space; seconds and
#: a fraction optional) and a zone (``Z``, ``+01``, ``+0100``, ``+01:00``). Upper-cased before matching.
_DATE_TIME_TEXT = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"
)


#: An ISO date as a date field takes it: year, month and day, in that order, with dashes.
_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")


def read_date(value: Any) -> str:
    """An ISO date (``2026-12-03``, spaces around allowed; a date object) as ``YYYY-MM-DD``, what a date field of
    each CRM takes.

    Raises:
        ValueError: ``'04/01/1990' is not a date (YYYY-MM-DD)`` for anything else: a date written day or month first
            is not guessed, nor is a date and time taken for a date.
    """
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    text = value.strip() if isinstance(value, str) else ""
    if _DATE_TEXT.fullmatch(text):
        with contextlib.suppress(ValueError):
            return date.fromisoformat(text).isoformat()
    raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)")


def read_date_time(value: Any) -> datetime:
    """ISO 8601 date-time text (``2026-12-03T10:00``, ``2026-12-03 10:00:00.5+01:00``, ``...Z``) as an aware datetime.

    A time without a zone is read in the desktop's local time zone, as the CRMs' import wizards read a file's times
    in the user's zone; a date alone is local midnight. A datetime is taken as it is (naive: local).

    Raises:
        ValueError: ``'tomorrow' is not a date and time (YYYY-MM-DD hh:mm, a zone optional)`` for anything else.
    """
    if isinstance(value, datetime):
        moment = value
    else:
        text = value.strip().upper() if isinstance(value, str) else ""
        if not _DATE_TIME_TEXT.fullmatch(text):
            raise ValueError(f"{value!r} is not a date and time (YYYY-MM-DD hh:mm, a zone optional)")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a date and time (YYYY-MM-DD hh:mm, a zone optional)") from None
    # astimezone() reads a naive time in the local zone (daylight saving time included).
    return moment if moment.tzinfo is not None else moment.astimezone()


def as_instant(value: Any) -> datetime | None:
    """Date-time text with a time part (see :func:`read_date_time`) as an aware datetime; ``None`` for anything
    else, a date alone included."""
    if not isinstance(value, str) or len(value.strip()) <= len("YYYY-MM-DD"):
        return None
    try:
        return read_date_time(value)
    except ValueError:
        return None


def same_instant(value: Any, held: Any) -> bool:
    """Whether a CRM's value ``held`` is a date-time with a time part and ``value`` reads as one (see
    :func:`read_date_time`: a date alone is local midnight, as a push sends it) naming the same instant, to the
    millisecond (what Salesforce and HubSpot keep): ``2026-12-03T09:00:00.000+0000`` holds ``2026-12-03 10:00``
    written in Berlin. A CRM's date alone is no instant: dates compare as text."""
    crm_moment = as_instant(held)
    if crm_moment is None or not isinstance(value, str | datetime):
        return False
    try:
        moment = read_date_time(value)
    except ValueError:
        return False
    millisecond = timedelta(milliseconds=1)
    return (moment - _EPOCH) // millisecond == (crm_moment - _EPOCH) // millisecond


# -- results --------------------------------------------------------------------------------------------------------


def failed_result(
    email: str, category: ErrorCategory | None, message: str, *, crm_id: str | None = None
) -> RecordResult:
    """One record's failure: ``message`` names the record, the field and the reason."""
    return RecordResult(email, RecordOutcome.FAILED, crm_id=crm_id, category=category, message=message)


def results_in_order(
    results: Sequence[RecordResult | None], records: Sequence[OutboundRecord], crm: str
) -> list[RecordResult]:
    """An upsert's answer: one result per record in input order; a record the CRM's answer left without one fails
    (as a server error, so the next push tries it again) rather than going missing."""
    return [
        result
        if result is not None
        else failed_result(
            record.email, ErrorCategory.SERVER, f"{record.email}: {crm}'s answer held no result for this record"
        )
        for result, record in zip(results, records, strict=True)
    ]


# -- writes that must not land twice ------------------------------------------------------------------------------

#: Times a write whose answer was lost (connection or server error) is looked up and sent again before it is given
#: up: as many as any other request is tried.
RECONCILE_ROUNDS = 6


async def write_or_reconcile(
    write: Callable[[], Awaitable[R]],
    reconcile: Callable[[], Awaitable[R | None]],
    *,
    what: str,
    rounds: int = RECONCILE_ROUNDS,
) -> R:
    """Send a write the CRM would duplicate on a replay; after a connection lost mid-write, look before writing again.

    ``write`` sends what is still unwritten. When it raises :class:`AmbiguousWriteError` (sent, answer lost),
    ``reconcile`` asks the CRM what landed: it returns the result when everything did, else ``None``, having
    narrowed what ``write`` sends next to what is still missing. So nothing is sent a second time without a
    look-up in between. Errors of ``write`` (other than the lost answer) and of ``reconcile`` go to the caller.

    Raises:
        AmbiguousWriteError: when the connection failed after sending in every one of ``rounds`` tries; nothing
            was written twice.
    """
    for failed in range(1, rounds + 1):
        try:
            return await write()
        except AmbiguousWriteError as lost:
            if lost.pause is not None:
                await lost.pause(failed)
            logger.info("%s lost its answer (connection or server error) after it was sent; looking it up before "
                        "writing again", what)
        found = await reconcile()
        if found is not None:
            return found
    raise AmbiguousWriteError(f"{what}: its answer was lost (connection or server error) every time it was sent; "
                              "nothing was written twice")


#: Times a merge is sent: once, and once more when a look-up after its lost answer found both records still there.
MERGE_ROUNDS = 2


async def merge_or_reconcile(
    merge: Callable[[], Awaitable[MergeResult]],
    merged_into: Callable[[], Awaitable[str | None]],
    *,
    merge_id: str,
    what: str,
) -> MergeResult:
    """Send a merge; after its answer was lost, read the two records before sending it again.

    A merge cannot be replayed blindly: the CRM may have made it, and then the second one is refused as not found.
    ``merged_into`` reads the records: the survivor's id when the record ``merge_id`` is gone into it (its id or
    email on the survivor), else ``None`` (both still there, or one gone otherwise). So a lost answer whose merge
    landed is a success, one that did not land is sent once more, and a merge refused as not found because an
    earlier try landed (this run's or an earlier run's) is a success too, marked ``already_merged``.

    Raises:
        AmbiguousWriteError: when the answer was lost every time and the records still show both.
        NotFoundError: when a record is gone and not merged into the other.
    """

    async def send() -> MergeResult:
        try:
            return await merge()
        except NotFoundError:
            survivor = await merged_into()
            if survivor is None:
                raise
            logger.info("%s: already made (an earlier try's answer was lost)", what)
            return MergeResult(surviving_id=survivor, merged_id=merge_id, already_merged=True)

    async def reconcile() -> MergeResult | None:
        survivor = await merged_into()
        return MergeResult(surviving_id=survivor, merged_id=merge_id) if survivor is not None else None

    return await write_or_reconcile(send, reconcile, what=what, rounds=MERGE_ROUNDS)


# -- text and rows --------------------------------------------------------------------------------------------------


def one_line(text: str, limit: int = 240) -> str:
    """``text`` on one line with its spacing collapsed, cut to ``limit`` characters with an ellipsis (for a message
    or a subject line)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rows_by_email(rows: Iterable[dict[str, Any]], email_field: str = "Email") -> dict[str, dict[str, Any]]:
    """Rows a CRM answered by the dedupe key of their ``email_field``; the first row of each email is kept."""
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = email_key(row.get(email_field))
        if key and key not in found:
            found[key] = row
    return found


def match_landed(
    waiting: Iterable[int], key_of: Callable[[int], K], found: Iterable[tuple[K, str]]
) -> dict[int, str]:
    """Writes whose answer was lost, matched to the records found since: by position, the id of a found record
    with the same key (parent and subject, body and time...), each found record given to one write only, in order."""
    landed: dict[K, list[str]] = {}
    for key, record_id in found:
        landed.setdefault(key, []).append(record_id)
    matched: dict[int, str] = {}
    for position in waiting:
        ids = landed.get(key_of(position))
        if ids:
            matched[position] = ids.pop(0)
    return matched
