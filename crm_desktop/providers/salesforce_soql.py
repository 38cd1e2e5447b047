"""SOQL as Salesforce's REST API takes it: literals, field names, the query URL, email look-ups and change cursors."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from urllib.parse import quote_plus

from crm_desktop.providers.errors import ConfigurationError
from crm_desktop.providers.toolkit import parse_crm_time, utc_millis

API_VERSION = "v61.0"
DATA_PATH = f"/services/data/{API_VERSION}"
#: Emails per dedupe query: one query per collection of writes.
QUERY_EMAILS_LIMIT = 200
#: Keep a query's URL comfortably under the ~16k characters Salesforce and proxies accept.
QUERY_URL_LIMIT = 16_000

#: A field's API name (``Email``, ``twitter_username__c``): safe to put in a query.
FIELD_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: A record id as Salesforce writes them (letters and digits, at most 18): safe to put in a query.
RECORD_ID = re.compile(r"^[A-Za-z0-9]{1,18}$")


def soql_quote(value: str) -> str:
    """A SOQL string literal, with backslashes, quotes and control characters escaped."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("\b", "\\b")
        .replace("\f", "\\f")
    )
    return f"'{escaped}'"


def check_field_names(names: Sequence[str]) -> list[str]:
    """Field API names safe to put in SOQL, in order without repeats.

    Raises:
        ConfigurationError: naming a field name that is not a Salesforce API name.
    """
    seen: dict[str, str] = {}
    for name in names:
        if not FIELD_API_NAME.match(name):
            raise ConfigurationError(f"{name!r} is not a Salesforce field API name (letters, digits, underscores)")
        seen.setdefault(name.lower(), name)
    return list(seen.values())


#: Characters a SOQL query keeps unescaped in the URL: RFC 3986 allows them in a query, and an ``IN`` list of
#: emails is mostly quotes, commas and at signs (``%27``, ``%2C``, ``%40`` would triple them).
SOQL_URL_SAFE = "'(),@:"


def encode_soql(soql: str) -> str:
    """The ``q=`` parameter of a query URL: SOQL form-encoded, its quotes, commas and at signs left as they are."""
    if soql.isascii() and not soql.encode("ascii").translate(None, _URL_SAFE_BYTES + b" "):
        # Nothing to escape but spaces (the usual query of plain emails): skip quoting byte by byte.
        return "q=" + soql.replace(" ", "+")
    return "q=" + quote_plus(soql, safe=SOQL_URL_SAFE)


def query_url_length(soql: str) -> int:
    """The length of ``/query?q=...`` once URL-encoded, as sent."""
    return len(f"{DATA_PATH}/query?") + len(encode_soql(soql))


#: Bytes ``encode_soql`` leaves as they are; a space becomes ``+``; every other byte becomes ``%XX``.
_URL_SAFE_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~" + SOQL_URL_SAFE.encode()


def _encoded_length(text: str) -> int:
    """``len(quote_plus(text, safe=SOQL_URL_SAFE))``, counted without building the encoded text."""
    raw = text.encode("utf-8")
    escaped = len(raw.translate(None, _URL_SAFE_BYTES)) - raw.count(b" ")
    return len(raw) + 2 * escaped


def email_in_queries(select: str, sobject: str, emails: Sequence[str]) -> list[str]:
    """``SELECT ... WHERE Email IN (...)`` queries covering ``emails``, each under the URL and count limits."""
    prefix = email_query_prefix(select, sobject)
    literals = [soql_quote(email) for email in emails]
    return [email_query(prefix, [literals[i] for i in group]) for group in email_query_groups(prefix, literals)]


def email_query_prefix(select: str, sobject: str) -> str:
    """The start of an ``Email IN (...)`` query, up to its opening parenthesis."""
    return f"SELECT {select} FROM {sobject} WHERE Email IN ("


def email_query(prefix: str, literals: Sequence[str]) -> str:
    """One ``Email IN (...)`` query of quoted email literals."""
    return prefix + ",".join(literals) + ")"


def email_query_groups(prefix: str, literals: Sequence[str]) -> list[list[int]]:
    """Positions of quoted emails, grouped in order so that each group's query stays under the count and URL limits."""
    # URL-encoding works character by character, so a query's encoded length is the sum of its parts'.
    empty_length = query_url_length(prefix + ")")
    comma_length = _encoded_length(",")
    groups: list[list[int]] = []
    group: list[int] = []
    length = empty_length
    for position, literal in enumerate(literals):
        literal_length = _encoded_length(literal)
        added = literal_length + (comma_length if group else 0)
        if group and (len(group) >= QUERY_EMAILS_LIMIT or length + added > QUERY_URL_LIMIT):
            groups.append(group)
            group = []
            length = empty_length
            added = literal_length
        group.append(position)
        length += added
    if group:
        groups.append(group)
    return groups


def encode_cursor(modstamp: datetime, record_id: str) -> str:
    """The change cursor: the last record's SystemModstamp and Id (SOQL orders by both, so the Id is a keyset
    position among equal stamps, not a set of ids delivered as the other CRMs' cursors keep)."""
    return f"{utc_millis(modstamp)}|{record_id}"


def decode_cursor(cursor: str) -> tuple[datetime, str | None]:
    """Read a cursor written by :func:`encode_cursor` (a bare ISO timestamp is accepted too).

    Raises:
        ConfigurationError: when the cursor is not one this adapter wrote.
    """
    stamp, _, record_id = cursor.partition("|")
    moment = parse_crm_time(stamp)
    if moment is None or (record_id and not RECORD_ID.match(record_id)):
        raise ConfigurationError("the stored Salesforce pull position cannot be read; reset the integration's pull")
    return moment, record_id or None


def select_clause(fields: Sequence[str]) -> str:
    """``Id, Email, <fields>, SystemModstamp``: what each read of Contacts or Leads selects."""
    extra = [name for name in fields if name.lower() not in {"id", "email", "systemmodstamp"}]
    return ", ".join(["Id", "Email", *extra, "SystemModstamp"])


def changes_query(select: str, sobject: str, position: tuple[datetime, str | None] | None, limit: int) -> str:
    """The query of up to ``limit`` records changed after ``position`` (a decoded cursor; ``None``: from the
    start), oldest first, ordered by SystemModstamp and then Id so a stamp shared by several records is paged too."""
    where = ""
    if position is not None:
        stamp = utc_millis(position[0])
        if position[1]:
            where = (
                f" WHERE (SystemModstamp > {stamp} OR (SystemModstamp = {stamp} "
                f"AND Id > {soql_quote(position[1])}))"
            )
        else:
            where = f" WHERE SystemModstamp > {stamp}"
    return f"SELECT {select} FROM {sobject}{where} ORDER BY SystemModstamp, Id LIMIT {limit}"


def id_in_query(select: str, sobject: str, ids: Iterable[str]) -> str:
    """``SELECT <select> FROM <sobject> WHERE Id IN (...)`` of ``ids``, in their order."""
    return f"SELECT {select} FROM {sobject} WHERE Id IN ({', '.join(soql_quote(record_id) for record_id in ids)})"


def tasks_since_query(who_ids: Iterable[str], since: datetime) -> str:
    """The Tasks on these Contacts or Leads (``WhoId``) created at ``since`` or later."""
    who = ", ".join(sorted({soql_quote(record_id) for record_id in who_ids}))
    return (
        f"SELECT Id, WhoId, Subject, Description FROM Task WHERE WhoId IN ({who}) "
        f"AND CreatedDate >= {since.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    )
