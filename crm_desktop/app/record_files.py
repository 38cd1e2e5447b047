"""Reading contacts and leads from CSV or JSON Lines files, validating every row before anything is sent."""

from __future__ import annotations

import codecs
import contextlib
import csv
import functools
import json
import re
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, Generic, TypeVar
from urllib.parse import unquote, urlsplit

from crm_desktop.app.csv_export import cell_value
from crm_desktop.app.text import plural, with_article
from crm_desktop.domain.errors import FieldProblem, InvalidRecordError
from crm_desktop.domain.models import (
    MAX_CUSTOM_TEXT,
    Contact,
    Lead,
    SocialPlatform,
    custom_value_like,
    normalise_email,
    platform_name,
)

RecordT = TypeVar("RecordT", Contact, Lead)

#: The parts of a social profile a file can carry per network (``twitter_username``, ``twitter_followers``...).
PROFILE_PARTS = ("username", "url", "followers", "engagement")
_PART_ALIASES = {"username": "username", "handle": "username", "screen_name": "username", "url": "url",
                 "link": "url", "profile_url": "url", "profile_link": "url", "followers": "followers",
                 "follower_count": "followers", "followers_count": "followers", "engagement": "engagement",
                 "engagement_rate": "engagement"}
#: Other names of a network in a column's name ("X Handle", "X Followers": the network Twitter became).
_PLATFORM_ALIASES = {"twitter": ("x",)}
CONTACT_FIELDS = ("firstName", "lastName", "company", "phone")
LEAD_FIELDS = ("firstName", "lastName", "company", "source", "status")
LEAD_CONTEXT_FIELDS = ("platform", "conversationId", "sentiment", "engagementScore")
#: What a profile part is reset to when ``--blank-clears`` empties it.
_PART_BLANKS: dict[str, Any] = {"url": None, "followers": 0, "engagement": 0.0}
#: The headers of the email column, as :func:`header_key` makes them (``E-mail``, ``Email Address``).
_EMAIL_HEADERS = frozenset({"email", "emailaddress"})
#: Other names the CRMs' own exports and spreadsheets give a record's fields (HubSpot's "Company Name" and "Phone
#: Number", Salesforce's "Account Name" and "Company / Account", Pipedrive's "Organization"), as :func:`header_key`
#: makes them. A column so named is read as the field only where no column of the file has the field's own name, and
#: only the first of them: the others stay custom fields. (A lead's source and status are not among them: the CRMs'
#: values, "Web" or "Open - Not Contacted", are not the app's, so such columns stay custom fields, not refused rows.)
_OTHER_NAMES = {
    # Pipedrive exports a person's emails and phones by their label ("Person - Email - Work", "- Home", "- Other").
    "email": ("emailwork", "emailhome", "emailother"),
    "firstName": ("givenname", "forename"),
    "lastName": ("surname", "familyname"),
    "company": ("companyname", "accountname", "company/account", "organization", "organisation",
                "organizationname", "organisationname"),
    "phone": ("phonenumber", "telephone", "telephonenumber", "phonework", "phonemobile", "phonehome", "phoneother",
              "mobilephonenumber"),
}


_OTHER_NAME_KEYS = frozenset(other for others in _OTHER_NAMES.values() for other in others)
#: The headers a column of email addresses goes by (the first of them is the email a row is matched by).
_ANY_EMAIL_HEADERS = _EMAIL_HEADERS | frozenset(_OTHER_NAMES["email"])
#: Pipedrive's export names a person's fields after the person ("Person - Email", "Person - Organization").
_PERSON_PREFIX = re.compile(r"^\s*person\s+-\s+(?=\S)", re.IGNORECASE)


def header_key(name: str) -> str:
    """A header as it is matched: case, spaces, underscores, hyphens and dots do not count (``E-mail`` = ``email``),
    nor Pipedrive's ``Person - `` before a person's field (``Person - Email`` = ``email``)."""
    return re.sub(r"[\s_\-.]+", "", _PERSON_PREFIX.sub("", name).strip().lower())


@functools.cache
def _columns_for(model: type[Contact] | type[Lead]) -> Mapping[str, str]:
    """Matched header -> field key (``firstName``, ``social.twitter.followers``) of a contacts or leads file.

    Worked out once per model: a preview names the field of each refused row by it, 28,000 rows for a LinkedIn
    export whose connections mostly hide their email."""
    fields = CONTACT_FIELDS if model is Contact else LEAD_FIELDS + LEAD_CONTEXT_FIELDS
    known = {header_key(name): name for name in ("email", *fields)}
    known.update(dict.fromkeys(_EMAIL_HEADERS, "email"))
    for name in ("email", *fields):
        known.update(dict.fromkeys(_OTHER_NAMES.get(name, ()), name))
    for platform in SocialPlatform:
        for name in (platform.value, *_PLATFORM_ALIASES.get(platform.value, ())):
            for alias, part in _PART_ALIASES.items():
                known[header_key(f"{name}_{alias}")] = f"social.{platform.value}.{part}"
    return MappingProxyType(known)


def column_key(model: type[Contact] | type[Lead], column: str) -> str | None:
    """The field key a file's column of ``model`` is read into (``E-mail``: ``email``; ``Twitter Handle``:
    ``social.twitter.username``), or ``None`` for a column that is not one of the record's own fields."""
    return _columns_for(model).get(header_key(column))


def column_label(key: str) -> str:
    """How a field key is named to the marketer: ``social.twitter.followers`` -> ``twitter_followers``."""
    if key.startswith("social."):
        _, platform, part = key.split(".", 2)
        return f"{platform}_{part}"
    return key.removeprefix("custom.")


def custom_columns_in_words(columns: Sequence[str]) -> str:
    """How an import says which of the file's columns it keeps as custom fields of the records."""
    return f"kept as custom fields: {', '.join(columns)}"


def as_text(value: Any) -> str | None:
    """A stored value as a file's cell holds it (``True`` -> ``true``, an enum by its value)."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


#: How a file's column names a custom field whatever its name (``custom.Phone`` when a field is called ``Phone``).
CUSTOM_COLUMN_PREFIX = "custom."


def file_column(model: type[Contact] | type[Lead], key: str) -> str:
    """The column a file of ``model`` names field ``key`` by, read back as that same field: a custom field whose
    name an import would take for one of the record's own columns (``Phone``, ``E-mail``, ``twitter handle``) or
    for another field's is written ``custom.<name>``."""
    label = column_label(key)
    if key.startswith(CUSTOM_COLUMN_PREFIX) and (
            header_key(label) in _columns_for(model) or label.lower().startswith(CUSTOM_COLUMN_PREFIX)):
        return CUSTOM_COLUMN_PREFIX + label
    return label


def _column_key(name: str, known: Mapping[str, str]) -> str:
    """The field key a file's column names (see :func:`file_column`)."""
    if name.lower().startswith(CUSTOM_COLUMN_PREFIX):
        return CUSTOM_COLUMN_PREFIX + name[len(CUSTOM_COLUMN_PREFIX):]
    return known.get(header_key(name)) or CUSTOM_COLUMN_PREFIX + name


@dataclass(frozen=True)
class RowProblem:
    """One refused row: where it is, which record, which fields and why (one per row, however many fields).

    Attributes:
        line: the 1-based line number in the file (the header is line 1 of a CSV).
        record: the record's email or name, when the row has one.
        field: the user's column name of the bad field (several joined with ``, ``).
        reason: a sentence the marketer can act on (one per field, joined with ``; ``).
        problems: each bad field and its reason.
    """

    line: int
    record: str
    field: str
    reason: str
    problems: tuple[FieldProblem, ...] = ()

    @classmethod
    def of(cls, line: int, record: str, problems: list[FieldProblem]) -> RowProblem:
        """One problem for a row from the problems of its fields."""
        if len(problems) == 1:
            return cls(line, record, problems[0].field, problems[0].reason, tuple(problems))
        return cls(line, record, ", ".join(p.field for p in problems),
                   "; ".join(f"{p.field}: {p.reason}" for p in problems), tuple(problems))

    @property
    def why(self) -> str:
        """The refused fields and their reasons, without the line or the record."""
        return self.reason if len(self.problems) > 1 else f"{self.field}: {self.reason}"

    def __str__(self) -> str:
        return f"line {self.line} ({self.record}): {self.why}"


@dataclass(frozen=True)
class RowWarning:
    """Something of a kept row that was not kept: which columns and why.

    Attributes:
        line: the 1-based line number in the file.
        record: the record's email.
        columns: the user's column names whose values were dropped.
        reason: what to write instead.
    """

    line: int
    record: str
    columns: tuple[str, ...]
    reason: str

    def __str__(self) -> str:
        return f"line {self.line} ({self.record}): {', '.join(self.columns)} not kept: {self.reason}"


@dataclass
class FileRow:
    """One readable row of a file, as the fields it carries.

    Attributes:
        line: the 1-based line number.
        email: the normalised email the row is matched by.
        values: field key -> the cell's value, for every column the file has (``None`` for an empty cell).
        columns: field key -> the user's column name.
    """

    line: int
    email: str
    values: dict[str, Any]
    columns: dict[str, str] = field(default_factory=dict)

    def label(self, key: str) -> str:
        return self.columns.get(key) or column_label(key)


@dataclass
class FileRows:
    """The rows of a file, the rows refused before any record was built, and warnings about the whole file."""

    rows: list[FileRow] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)

    @property
    def custom_columns(self) -> list[str]:
        """A CSV's columns kept as custom fields (no field of the record goes by their names), in the file's order."""
        return [name for key, name in self.columns.items() if key.startswith(CUSTOM_COLUMN_PREFIX)]


@dataclass
class ReadResult(Generic[RecordT]):
    """Valid records with their line numbers, the problems of the refused rows, and what was not kept."""

    records: list[tuple[int, RecordT]] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    warnings: list[RowWarning] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


# -- the user's words --------------------------------------------------------------------------------------------
_REASONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^Input should be greater than or equal to (.+)$"), r"must be \1 or more"),
    (re.compile(r"^Input should be greater than (.+)$"), r"must be more than \1"),
    (re.compile(r"^Input should be less than or equal to (.+)$"), r"must be \1 or less"),
    (re.compile(r"^Input should be a valid integer.*$"), "must be a whole number"),
    (re.compile(r"^Input should be a valid number.*$"), "must be a number"),
    (re.compile(r"^String should have at most (\d+) characters?$"), r"must be at most \1 characters"),
    (re.compile(r"^String should have at least 1 character$"), "must not be blank"),
    (re.compile(r"^String should match pattern '\^\[a-z0-9_\]\+\$'$"),
     "only lower-case letters, digits and _ (e.g. twitter_dm)"),
    (re.compile(r"^Field required$"), "required"),
    (re.compile(r"^Extra inputs are not permitted$"), "not a known field"),
    (re.compile(r"^Input should be (.+)$"), r"must be \1"),
)


def plain_reason(reason: str) -> str:
    """A validation message in plain words (``must be 0 or more`` for pydantic's ``greater than or equal to 0``)."""
    for pattern, replacement in _REASONS:
        if pattern.match(reason):
            return pattern.sub(replacement, reason)
    return reason


# -- profiles from links -----------------------------------------------------------------------------------------
_PROFILE_HOSTS: dict[str, tuple[tuple[str, ...], str]] = {
    # platform: (hosts, the path's shape: "first" = /<user>, "at" = /@<user>, "in" = /in/<slug>)
    "twitter": (("twitter.com", "x.com"), "first"),
    "instagram": (("instagram.com",), "first"),
    "facebook": (("facebook.com", "fb.com"), "first"),
    "linkedin": (("linkedin.com",), "in"),
    "tiktok": (("tiktok.com",), "at"),
    "youtube": (("youtube.com",), "at"),
    "threads": (("threads.net", "threads.com"), "at"),
}
#: First path segments that are pages of the network, not a person.
_NOT_PEOPLE = {"i", "home", "intent", "share", "search", "explore", "p", "reel", "reels", "stories", "watch",
               "profile.php", "pages", "groups", "events", "hashtag", "settings", "login", "channel", "c", "user"}


def username_from_url(platform: str, url: str) -> str | None:
    """The username a profile link shows, where the network's link shape allows (``https://x.com/ann`` -> ``ann``).

    Shapes: twitter.com or x.com/<user>, instagram.com/<user>, facebook.com/<user>, linkedin.com/in/<slug>,
    tiktok.com/@<user>, youtube.com/@<handle>, threads.net/@<user>.
    """
    known = _PROFILE_HOSTS.get(platform)
    if known is None:
        return None
    hosts, shape = known
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if parts.scheme not in {"http", "https"} or not any(host == h or host.endswith("." + h) for h in hosts):
        return None
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if not segments:
        return None
    if shape == "in":
        name = segments[1] if len(segments) >= 2 and segments[0].lower() == "in" else None
    elif shape == "at":
        name = segments[0][1:] if segments[0].startswith("@") else None
    else:
        name = segments[0].lstrip("@") if segments[0].lower() not in _NOT_PEOPLE else None
    return name if name and len(name) <= 100 and not any(c.isspace() for c in name) else None


# -- reading -----------------------------------------------------------------------------------------------------
#: Byte order marks of the Unicode encodings a spreadsheet may save text in (Excel's "Unicode Text" is UTF-16).
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))


#: The bytes Windows-1252 leaves undefined: a file holding one is neither UTF-8 nor what Excel's CSV saves.
_NOT_WINDOWS_1252 = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")
#: How an import says it read a file as Windows-1252 (see :func:`text_encoding`).
WINDOWS_1252_READ = "read as Windows-1252, as Excel's CSV format saves; names like \u201cZo\u00eb\u201d are kept"


def text_encoding(path: Path, *, windows_1252: bool = False) -> str:
    """How to read a file's text: UTF-16/32 when it starts with their byte order mark, else UTF-8 (BOM or not).

    With ``windows_1252``, a file without a BOM that is not UTF-8 is read as Windows-1252 (``cp1252``): what Excel
    on Windows saves as "CSV (Comma delimited)" or "Text (Tab delimited)", whose accents are no UTF-8.

    Raises:
        ValueError: when the file is not UTF-8 text (nor Windows-1252, with ``windows_1252``), naming the first
            line that is not and how to save it.
        OSError: when the file cannot be read.
    """
    with path.open("rb") as handle:
        head = handle.read(4)
        for bom, encoding in _BOMS:
            if head.startswith(bom):
                return encoding
        handle.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        lines_before = offset = 0
        while chunk := handle.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                if windows_1252:
                    return _windows_1252(path, handle)
                line = lines_before + chunk.count(b"\n", 0, max(exc.start, 0)) + 1
                raise ValueError(
                    f"{path.name}: line {line} is not UTF-8 text (byte 0x{chunk[exc.start]:02x} at byte "
                    f"{offset + exc.start + 1:,}); save the file as UTF-8 (in Excel: CSV UTF-8) and import it again"
                ) from None
            lines_before += chunk.count(b"\n")
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            if windows_1252:
                return _windows_1252(path, handle)
            raise ValueError(f"{path.name}: the file ends in the middle of a character (it is cut short or not "
                             "UTF-8); save it as UTF-8 and import it again") from None
    return "utf-8-sig"


def _windows_1252(path: Path, handle: BinaryIO) -> str:
    """``cp1252`` for a file (not UTF-8) that holds no byte Windows-1252 leaves undefined.

    Raises:
        ValueError: naming the line and byte of the first undefined one, and how to save the file.
    """
    handle.seek(0)
    lines_before = offset = 0
    while chunk := handle.read(1 << 20):
        found = _NOT_WINDOWS_1252.search(chunk)
        if found is not None:
            line = lines_before + chunk.count(b"\n", 0, found.start()) + 1
            raise ValueError(
                f"{path.name}: line {line} is not UTF-8 text, nor Windows-1252 (byte 0x{chunk[found.start()]:02x} at "
                f"byte {offset + found.start() + 1:,}); save the file as UTF-8 (in Excel: CSV UTF-8) and import it "
                "again")
        lines_before += chunk.count(b"\n")
        offset += len(chunk)
    return "cp1252"


#: The files read as a table with a header line: CSV, and the text a spreadsheet saves as "Unicode Text" (Excel:
#: UTF-16, tab-separated, named .txt) or "Text (Tab delimited)".
TABLE_SUFFIXES = frozenset({".csv", ".txt", ".tsv", ".tab"})
#: JSON Lines, and a .json file holding one array.
JSON_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
#: Every file ending an import reads (the People panel's file dialog offers these).
READABLE_SUFFIXES = TABLE_SUFFIXES | JSON_SUFFIXES
#: The delimiters a CSV file may use: commas, and semicolons where the decimal mark is a comma; tabs; pipes.
CSV_DELIMITERS = (",", ";", "\t", "|")


def csv_dialect(path: Path, encoding: str) -> type[csv.Dialect]:
    """The file's dialect: quotes as every spreadsheet writes them (RFC 4180: a double quote, doubled inside a
    quoted cell), and the delimiter its header line is written with: the one that splits the header into an email
    column and the most others. Read from the header alone: a guess from the rows (``csv.Sniffer``) was misled by
    apostrophes in the values (``O'Neil; 'Jr'``), which it took for quotes, and by doubled quotes."""
    return _dialect(header_place(path, encoding)[0])


def _dialect(delimiter: str) -> type[csv.Dialect]:
    return type("HeaderDialect", (csv.excel,), {"delimiter": delimiter})


#: How many lines a tool's note above the header may take (LinkedIn's Connections.csv opens with three).
_PREAMBLE_LINES = 10


def _header_delimiter(line: str) -> tuple[str, bool, int]:
    """The delimiter that splits a header line into an email column and the most others, whether one does, and
    into how many cells."""
    best, best_rank = ",", (False, 1)
    for delimiter in CSV_DELIMITERS:
        names = next(csv.reader([line], delimiter=delimiter), [])
        rank = (any(header_key(cell_value(name)) in _ANY_EMAIL_HEADERS for name in names), len(names))
        if rank > best_rank:
            best, best_rank = delimiter, rank
    return best, best_rank[0], best_rank[1]


def header_place(path: Path, encoding: str) -> tuple[str, int]:
    """The delimiter of a file's header and how many lines come before it: none, unless the first line is one cell
    without an email column (``Notes:``) and one of the next few lines is a header with one (a note the exporting
    tool wrote above the table). A first line of several cells is the header, whatever it lacks."""
    with path.open(newline="", encoding=encoding) as handle:
        lines = [handle.readline() for _ in range(_PREAMBLE_LINES + 1)]
    delimiter, has_email, cells = _header_delimiter(lines[0])
    if not has_email and cells == 1:
        for before, line in enumerate(lines[1:], start=1):
            found, has_email, cells = _header_delimiter(line)
            if has_email and cells > 1:
                return found, before
    return delimiter, 0


#: How a row's misfit names the delimiter that split a value it should not have.
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe (|)"}


@dataclass
class CsvShape:
    """How a CSV file is written, as :func:`csv_lines` finds it before its first row.

    Attributes:
        delimiter: what separates its cells.
        header_line: the 1-based line of its header (past a note the exporting tool wrote above it).
        encoding: the codec its text is read with (see :func:`text_encoding`).
    """

    delimiter: str = ","
    header_line: int = 1
    encoding: str = "utf-8-sig"

    @property
    def decimal_comma(self) -> bool:
        """Whether numbers are written with a decimal comma: a spreadsheet separates cells with semicolons where
        the comma is the decimal mark (Excel's CSV in most of Europe: ``3,5``, ``1.234``)."""
        return self.delimiter == ";"


def csv_lines(
    path: Path, shape: CsvShape | None = None, *, windows_1252: bool = False
) -> Generator[tuple[int, list[str], FieldProblem | None], None, None]:
    """Each row of a CSV file, its header first, with the line it starts on (a quoted cell may hold line breaks)
    and what of it the header cannot name (see :func:`misfit`), read in the file's encoding
    (:func:`text_encoding`, given ``windows_1252``) and delimiter (:func:`csv_dialect`), which are set on
    ``shape`` when given.

    Raises:
        ValueError: when the file is not UTF-8 text, or a line cannot be read as CSV (naming the line).
        OSError: when the file cannot be read.
    """
    encoding = text_encoding(path, windows_1252=windows_1252)
    delimiter, before = header_place(path, encoding)
    dialect = _dialect(delimiter)
    if shape is not None:
        shape.delimiter, shape.header_line, shape.encoding = delimiter, before + 1, encoding
    with path.open(newline="", encoding=encoding) as handle:
        for _ in range(before):
            handle.readline()
        reader = csv.reader(handle, dialect)
        first = before + 1
        header: list[str] | None = None
        unnamed: list[int] = []
        try:
            for cells in reader:
                if header is None:
                    header, unnamed = cells, _unnamed_columns(cells)
                    yield first, cells, None
                else:
                    yield first, cells, misfit(header, cells, str(dialect.delimiter), unnamed)
                first = before + reader.line_num + 1
        except csv.Error as exc:
            if "field larger" in str(exc):  # csv's limit is the longest custom value: nothing stored is longer
                raise ValueError(
                    f"{path.name}: line {before + reader.line_num} has a cell of over {MAX_CUSTOM_TEXT:,} characters, "
                    "longer than any field holds; either a value is that long, or a quote (\") opened and never closed "
                    "and the rest of the file reads as one cell") from None
            raise ValueError(f"{path.name}: line {before + reader.line_num} cannot be read as CSV ({exc})") from None


def misfit(header: list[str], cells: list[str], delimiter: str,
           unnamed: Sequence[int] | None = None) -> FieldProblem | None:
    """Why a row's values cannot all be kept under the header's columns: more cells than the header has (a value
    split by an unquoted delimiter, which would shift or drop what follows), or a value under a column with no
    name. Empty cells past the header count too: a split value shifts the row whatever the last cell holds.

    ``unnamed`` gives the header's columns without a name (0-based), for a reader that works them out once for
    every row of its file."""
    if len(cells) > len(header):
        name = _DELIMITER_NAMES.get(delimiter, repr(delimiter))
        trailing = "" if any(cell.strip() for cell in cells[len(header):]) else ", or the empty ones at the end go"
        return FieldProblem("(row)", f"{plural(len(cells), 'cell')}, the header has {len(header)} (a {name} inside "
                                     f"a value needs quotes{trailing})")
    for index in _unnamed_columns(header) if unnamed is None else unnamed:
        if index < len(cells) and cells[index].strip():
            return FieldProblem(f"column {index + 1}",
                                "has a value but no name in the header; name the column, or empty its cells")
    return None


def _unnamed_columns(header: list[str]) -> list[int]:
    """The header's columns without a name, 0-based."""
    return [index for index, name in enumerate(header) if not name.strip()]


#: Group separators of digits a spreadsheet writes besides ``,`` and ``.``: a space, a no-break space (French), a
#: narrow no-break space, an apostrophe (Swiss).
_SPACE_GROUPS = " \u00a0\u202f'"
_SPACE_GROUPED = re.compile(rf"[+-]?\d{{1,3}}([{_SPACE_GROUPS}]\d{{3}})+([.,]\d+)?")
_COMMA_GROUPED = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")
_POINT_GROUPED = re.compile(r"[+-]?\d{1,3}(\.\d{3})+(,\d+)?")
_COMMA_DECIMAL = re.compile(r"[+-]?\d+,\d+")


def spreadsheet_number(text: str, *, decimal_comma: bool, percent: bool = False) -> str:
    """A number cell as a spreadsheet writes it, in plain digits: thousands grouped (``12,400``, ``12 400``;
    ``1.234`` where the decimal mark is a comma) and a decimal comma (``3,5``, which cannot group thousands) are
    read as the number they show; with ``percent``, a trailing ``%`` goes (``2.5%`` is 2.5, on a 0-100 scale).
    Other text comes back as it is (without the ``%``), to be refused as not a number."""
    value = text.strip()
    if percent and value.endswith("%"):
        value = value[:-1].rstrip()
    if _SPACE_GROUPED.fullmatch(value):
        return re.sub(f"[{_SPACE_GROUPS}]", "", value).replace(",", ".")
    if decimal_comma and _POINT_GROUPED.fullmatch(value):
        return value.replace(".", "").replace(",", ".")
    if not decimal_comma and _COMMA_GROUPED.fullmatch(value):
        return value.replace(",", "")
    if _COMMA_DECIMAL.fullmatch(value):
        return value.replace(",", ".")
    return value


def _number_reading(key: str) -> tuple[bool, bool]:
    """Whether a field is a number (a profile's followers and engagement, a lead's engagement score), and whether
    it is a percentage (a profile's engagement rate)."""
    if key.startswith("social."):
        part = key.rsplit(".", 1)[-1]
        return part in {"followers", "engagement"}, part == "engagement"
    return key == "engagementScore", False


def _csv_rows(path: Path, model: type[Contact] | type[Lead], result: FileRows) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each CSV row as field key -> value (custom fields as ``custom.<column>``); records what the file has."""
    shape = CsvShape()
    # Excel on Windows saves its CSV and tab-delimited text in Windows-1252, without a BOM.
    with contextlib.closing(csv_lines(path, shape, windows_1252=True)) as lines:
        header = next(lines, (1, [], None))[1]
        if shape.encoding == "cp1252":
            result.notices.append(f"{path.name}: {WINDOWS_1252_READ}")
        if not any(h.strip() for h in header):
            result.notices.append(f"{path.name} is empty: nothing to import")
            return
        known = _columns_for(model)
        keys: list[str | None] = []
        taken: dict[str, str] = {}
        names = [cell_value(raw.strip()) for raw in header]
        # A field's own name (or E-mail) wins over another name of it (Company over Company Name) wherever it is.
        own_names = {known[header_key(name)] for name in names
                     if header_key(name) in known and header_key(name) not in _OTHER_NAME_KEYS}
        for name in names:
            if not name:
                keys.append(None)
                continue
            key = _column_key(name, known)
            if header_key(name) in _OTHER_NAME_KEYS and (key in own_names or key in taken):
                key = CUSTOM_COLUMN_PREFIX + name
            if key in taken:
                first = keys.index(key)
                raise ValueError(f"{path.name}: {_column_place(first)} ({taken[key]!r}) and {_column_place(len(keys))} "
                                 f"({name!r}) both mean {column_label(key)}; rename or delete one of them")
            taken[key] = name
            keys.append(key)
        if "email" not in taken:
            seen = ", ".join(repr(h.strip()) for h in header if h.strip())
            raise ValueError(f"{path.name}: no email column (records are matched by email); the headers seen are: "
                             f"{seen}. Name the column of email addresses Email and import the file again")
        result.columns = dict(taken)
        if shape.header_line > 1:
            above = "line 1" if shape.header_line == 2 else f"lines 1-{shape.header_line - 1}"
            result.notices.append(f"{path.name}: the header is line {shape.header_line}, the first with an email "
                                  f"column; {above} above it (a note of the tool that wrote the file) not read")
        # The other columns of email addresses (Pipedrive's "Person - Email - Home" beside "- Work"), kept as custom
        # fields: a row whose email cell is empty is matched by the first of them that has one.
        spare_emails = [key for key, name in taken.items()
                        if key.startswith(CUSTOM_COLUMN_PREFIX) and header_key(name) in _ANY_EMAIL_HEADERS]
        numbers = {key: _number_reading(key) for key in keys if key is not None}
        rows = 0
        email_at = keys.index("email")
        footer: list[tuple[int, str]] = []
        for line, cells, problem in _without_footer(lines, len(header), footer):
            rows += 1
            if problem is not None:
                email = cells[email_at].strip() if email_at < len(cells) else ""
                result.problems.append(RowProblem.of(line, cell_value(email) or "(unnamed)", [problem]))
                continue
            values: dict[str, Any] = {}
            for column, cell in zip(keys, cells, strict=False):
                if column is not None:
                    value = cell_value(cell.strip()) or None
                    number, percent = numbers[column]
                    if number and value is not None:
                        value = spreadsheet_number(value, decimal_comma=shape.decimal_comma, percent=percent)
                    values[column] = value
            for column in keys[len(cells):]:
                if column is not None:
                    values[column] = None
            if values.get("email") is None:
                values["email"] = next((values[key] for key in spare_emails if values.get(key)), None)
            yield line, values
        if footer:
            where = f"line {footer[0][0]}" if len(footer) == 1 else f"lines {footer[0][0]}-{footer[-1][0]}"
            result.notices.append(f"{path.name}: {where} under the table (one cell, after a blank line) read as "
                                  f"a report's footer ({footer[0][1]!r}), not as people: not imported")
        if not rows:
            result.notices.append(f"{path.name} has a header but no rows: nothing to import")


def _column_place(index: int) -> str:
    """A column by its number and its letter in a spreadsheet (0-based ``index`` 27: ``column 28 (AB)``)."""
    letters, number = "", index + 1
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return f"column {index + 1} ({letters})"


def _without_footer(
    lines: Iterable[tuple[int, list[str], FieldProblem | None]], width: int, footer: list[tuple[int, str]]
) -> Iterator[tuple[int, list[str], FieldProblem | None]]:
    """The rows of a table that are not blank, without the footer a report tool writes under it (a Salesforce
    report's "Grand Totals (2 records)", "Confidential Information - Do Not Distribute", "Generated By: ..."):
    lines of one cell, without an email address, after a blank line and up to the end of the file (a report saved
    again by Excel pads them with empty cells to the table's width: ``Grand Totals (2 records),,,,,``, which is
    one cell still). They go into ``footer`` (line, text); one-cell rows followed by a row of the table are rows like
    any other."""
    held: list[tuple[int, list[str], FieldProblem | None]] = []
    after_blank = False
    for item in lines:
        cells = item[1]
        if not any(cell.strip() for cell in cells):
            after_blank = True
            continue
        one_cell = len(cells) == 1 or not any(cell.strip() for cell in cells[1:])
        if width > 1 and one_cell and "@" not in cells[0] and (after_blank or held):
            held.append(item)
            continue
        yield from held
        held.clear()
        after_blank = False
        yield item
    footer.extend((line, cell_value(cells[0].strip())) for line, cells, _ in held)


def _json_values(item: dict[str, Any], model: type[Contact] | type[Lead]) -> dict[str, Any]:
    """A JSON Lines record (the app's own shape) as field key -> value, for the keys it has."""
    fields = CONTACT_FIELDS if model is Contact else LEAD_FIELDS
    by_name = {name: name for name in ("email", *fields)}
    by_name.update({"first_name": "firstName", "last_name": "lastName"})
    values: dict[str, Any] = {}
    for name, value in item.items():
        if name in by_name:
            values[by_name[name]] = value
        elif name in ("socialProfiles", "social_profiles"):
            # Not a list: validated as given, so the row is refused naming the field (it was dropped unsaid).
            values["socialProfiles" if isinstance(value, list) else "extra.socialProfiles"] = value
        elif name in ("customFields", "custom_fields"):
            if isinstance(value, dict):
                values.update({f"custom.{key}": inner for key, inner in value.items()})
            else:
                values["extra.customFields"] = value
        elif name in ("socialContext", "social_context") and model is Lead:
            # Not an object: validated as given, so the row is refused naming the field (it emptied the context).
            values["socialContext" if isinstance(value, dict) or _is_blank(value) else "extra.socialContext"] = value
        else:
            values[f"extra.{name}"] = value
    return values


def read_rows(path: Path, model: type[Contact] | type[Lead]) -> FileRows:
    """Read every row of a contacts or leads file and match it by email; refuse unreadable rows and bad emails.

    Raises:
        ValueError: when the file type is not supported, or a CSV has no email column (the message lists the
            headers seen).
        OSError: when the file cannot be read.
    """
    result = FileRows()
    result.rows.extend(iter_rows(path, model, result))
    return result


def iter_rows(path: Path, model: type[Contact] | type[Lead], result: FileRows) -> Iterator[FileRow]:
    """The readable rows of a file one at a time, as :func:`read_rows` reads them (without keeping them); the
    refused rows, the notices and the file's columns go into ``result`` as reading goes.

    A large import holds a chunk of rows at a time instead of the whole file.

    Raises:
        ValueError, OSError: as :func:`read_rows`, when the iteration starts (an unsupported file type at once).
    """
    suffix = path.suffix.lower()
    items: Iterator[tuple[int, dict[str, Any]]]
    if suffix in TABLE_SUFFIXES:
        items = _csv_rows(path, model, result)
    elif suffix in JSON_SUFFIXES:
        items = _jsonl_rows(path, model, result)
    else:
        raise ValueError(f"{path.name}: use a .csv or .jsonl file (or the .txt or .tsv a spreadsheet saves as "
                         "Unicode Text or Text (Tab delimited))")
    seen: dict[str, int] = {}
    for line, values in items:
        columns = result.columns
        email_column = columns.get("email", "email")
        raw_email = values.get("email")
        label = raw_email.strip() if isinstance(raw_email, str) and raw_email.strip() else "(unnamed)"
        if not isinstance(raw_email, str) or not raw_email.strip():
            result.problems.append(RowProblem.of(line, label, [FieldProblem(email_column, "required")]))
            continue
        try:
            email = normalise_email(raw_email)
        except ValueError as exc:
            result.problems.append(RowProblem.of(line, label, [FieldProblem(email_column, str(exc))]))
            continue
        if email in seen:
            again = FieldProblem(email_column, f"same email as line {seen[email]}; row skipped")
            result.problems.append(RowProblem.of(line, email, [again]))
            continue
        seen[email] = line
        yield FileRow(line, email, values, columns)
    if suffix not in TABLE_SUFFIXES and not seen and not result.problems and not result.notices:
        result.notices.append(f"{path.name} is empty: nothing to import")


def count_rows(path: Path) -> int | None:
    """The rows a contacts or leads file holds, counted before it is read, for an import's progress: its lines that
    are not blank, under a CSV's header (a quoted cell over several lines counts each of them, so the count may be
    a few more than the rows read); ``None`` for a .json file holding one array, or a file an import does not read.

    Raises:
        ValueError, OSError: as :func:`read_rows` (a file that is not text an import reads).
    """
    suffix = path.suffix.lower()
    if suffix not in READABLE_SUFFIXES:
        return None
    encoding = text_encoding(path, windows_1252=suffix in TABLE_SUFFIXES)
    if suffix == ".json" and _starts_an_array(path, encoding):
        return None
    with path.open(encoding=encoding) as handle:
        lines = sum(1 for line in handle if line.strip())
    if suffix in TABLE_SUFFIXES:
        lines -= header_place(path, encoding)[1] + 1
    return max(lines, 0)


def json_object_lines(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """Each non-blank line of a JSONL file by its number: the JSON object it holds and ``None``, or ``None`` and
    why it cannot be read (not JSON, nested too deeply, not an object)."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, None, f"not valid JSON ({exc.msg})"
        except RecursionError:
            yield number, None, "nested too deeply to read (lists or objects inside each other hundreds of times)"
        else:
            if isinstance(item, dict):
                yield number, item, None
            else:
                yield number, None, "each line must be one JSON object"


def _starts_an_array(path: Path, encoding: str) -> bool:
    """Whether a JSON file's first character that is not a space opens an array (``[``)."""
    with path.open(encoding=encoding) as handle:
        while chunk := handle.read(4096):
            text = chunk.lstrip()
            if text:
                return text.startswith("[")
    return False


def json_array_items(path: Path, encoding: str) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """Each item of a file holding one JSON array (as most tools export JSON: ``[{...}, {...}]``, over as many
    lines as they like) by the line it starts on: the object and ``None``, or ``None`` and why it is not one.

    Raises:
        ValueError: when the file is not one JSON array, naming the line where reading it stopped.
    """
    text = path.read_text(encoding=encoding).lstrip("\ufeff")
    decoder = json.JSONDecoder()
    at = text.index("[") + 1
    spaces = re.compile(r"\s*")

    def skip(offset: int) -> int:
        found = spaces.match(text, offset)
        return found.end() if found else offset

    def line_at(offset: int) -> int:
        return text.count("\n", 0, offset) + 1

    def stop(offset: int, why: str) -> ValueError:
        return ValueError(f"{path.name}: line {line_at(offset)} cannot be read as JSON ({why}); the file holds a JSON "
                          "array, which must be whole: fix it, or give one object per line (JSON Lines)")

    expect_item = True
    while True:
        at = skip(at)
        if text.startswith("]", at):
            if skip(at + 1) != len(text):
                raise stop(at + 1, "more after the array's end")
            return
        if not expect_item:
            if not text.startswith(",", at):
                raise stop(at, "expected , or ] between items")
            at = skip(at + 1)
        try:
            item, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            raise stop(exc.pos, exc.msg) from None
        except RecursionError:
            raise stop(at, "nested too deeply to read") from None
        yield line_at(at), item if isinstance(item, dict) else None, (
            None if isinstance(item, dict) else "each item of the array must be one JSON object")
        at, expect_item = end, False


def _jsonl_rows(
    path: Path, model: type[Contact] | type[Lead], result: FileRows
) -> Iterator[tuple[int, dict[str, Any]]]:
    encoding = text_encoding(path)
    # A .json file may be one array (JSON Lines, .jsonl, are read a line at a time whatever their first line holds).
    if path.suffix.lower() == ".json" and _starts_an_array(path, encoding):
        for number, item, problem in json_array_items(path, encoding):
            if item is None:
                result.problems.append(RowProblem.of(number, "(unreadable)", [FieldProblem("(row)", str(problem))]))
            else:
                yield number, _json_values(item, model)
        return
    with path.open(encoding=encoding) as handle:
        for number, item, problem in json_object_lines(handle):
            if item is None:
                result.problems.append(RowProblem.of(number, "(unreadable)", [FieldProblem("(row)", str(problem))]))
            else:
                yield number, _json_values(item, model)


# -- building records --------------------------------------------------------------------------------------------
@dataclass
class BuiltRecord(Generic[RecordT]):
    """A row made into a record (on top of the stored one, when there is one), with what was not kept."""

    record: RecordT
    warnings: list[RowWarning] = field(default_factory=list)


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def build_record(
    model: type[RecordT], row: FileRow, existing: RecordT | None = None, *, blank_clears: bool = False
) -> BuiltRecord[RecordT]:
    """The record a row makes: the stored record with the row's columns laid over it, validated.

    Only the columns the file has are touched; an empty cell leaves the stored value alone unless
    ``blank_clears``. A profile of a network the record has no profile on needs a username, or a link the
    username can be read from; otherwise its columns are named in a warning.

    Raises:
        InvalidRecordError: naming the user's columns of every bad value.
    """
    data: dict[str, Any] = existing.to_wire() if existing is not None else {}
    data["email"] = row.email
    profiles: list[dict[str, Any]] = list(data.get("socialProfiles") or [])
    custom: dict[str, Any] = dict(data.get("customFields") or {})
    context: dict[str, Any] = dict(data.get("socialContext") or {})
    social: dict[str, dict[str, Any]] = {}
    warnings: list[RowWarning] = []
    problems: list[FieldProblem] = []
    for key, value in row.values.items():
        blank = _is_blank(value)
        if key == "email" or (blank and not blank_clears):
            continue
        if key.startswith("social."):
            _, platform, part = key.split(".", 2)
            social.setdefault(platform, {})[part] = None if blank else value
        elif key == "socialProfiles":
            given = value if isinstance(value, list) else []
            profiles = _merged_profiles(profiles, given)
            problems.extend(_repeated_networks(given))
        elif key == "socialContext":
            if isinstance(value, dict):
                _lay_context(context, value, blank_clears=blank_clears)
            else:
                context = {}  # a blank (null) with --blank-clears
        elif key.startswith("custom."):
            name = key.removeprefix("custom.")
            if blank:
                custom.pop(name, None)
            elif not (isinstance(value, str) and as_text(custom.get(name)) == value):
                # Else the stored value, with its type (5, true), is what the cell says; a new value takes that
                # type where it reads as one (a number edited stays a number).
                custom[name] = custom_value_like(custom.get(name), value)
        elif key in LEAD_CONTEXT_FIELDS:
            context[key] = None if blank else value
        elif key.startswith("extra."):
            data[key.removeprefix("extra.")] = value
        elif key == "status" and blank:
            continue  # a lead always has a status
        else:
            data[key] = None if blank else value
    for platform, parts in social.items():
        _lay_profile(profiles, platform, parts, row, warnings)
    for key, built in (("socialProfiles", profiles), ("customFields", custom)):
        if f"extra.{key}" not in row.values:  # else the value given, of the wrong type, is validated and refused
            data[key] = built
    if model is Lead and "extra.socialContext" not in row.values:
        data["socialContext"] = context if any(v is not None for v in context.values()) else None
    try:
        record = model.model_validate(data)
    except InvalidRecordError as exc:
        raise InvalidRecordError(exc.kind, row.email, problems + _user_problems(exc.problems, row, profiles)) from None
    if problems:
        raise InvalidRecordError(model.record_kind, row.email, problems)
    return BuiltRecord(record, warnings)


#: A JSON Lines ``socialContext``'s keys as the stored context has them (``engagement_score`` = ``engagementScore``).
_CONTEXT_KEYS = {**{name: name for name in LEAD_CONTEXT_FIELDS}, "conversation_id": "conversationId",
                 "engagement_score": "engagementScore"}


def _lay_context(context: dict[str, Any], given: dict[str, Any], *, blank_clears: bool) -> None:
    """Lay a JSON Lines ``socialContext`` over the stored one key by key, as CSV columns are: a key left out keeps
    its stored value, and a null or blank one too unless ``blank_clears``."""
    for name, value in given.items():
        if not _is_blank(value) or blank_clears:
            context[_CONTEXT_KEYS.get(name, name)] = None if _is_blank(value) else value


def _repeated_networks(given: list[Any]) -> list[FieldProblem]:
    """JSON Lines ``socialProfiles`` naming a network twice: the app holds one profile per network (a CRM's
    ``twitter_username``, a file's ``twitter_*`` columns), so one of them would be lost."""
    return repeated_networks((item["platform"], str(item.get("username", "no username"))) for item in given
                             if isinstance(item, dict) and isinstance(item.get("platform"), str))


def repeated_networks(profiles: Iterable[tuple[str, str]]) -> list[FieldProblem]:
    """One ``socialProfiles`` problem per network named more than once among ``(platform, username)`` pairs, in the
    words ``contacts import`` refuses such a row with (the local API's bodies are refused alike)."""
    usernames: dict[str, list[str]] = {}
    for platform, username in profiles:
        usernames.setdefault(platform, []).append(username)
    return [FieldProblem("socialProfiles", f"{len(names)} {platform} profiles ({', '.join(names)}); a person has one "
                                           "profile per network: keep one")
            for platform, names in usernames.items() if len(names) > 1]


def _merged_profiles(profiles: list[dict[str, Any]], given: list[Any]) -> list[dict[str, Any]]:
    """The stored profiles with the given ones laid over them by network (JSON Lines' ``socialProfiles``)."""
    result = [dict(p) for p in profiles]
    for item in given:
        if not isinstance(item, dict):
            result.append(item)
            continue
        platform = item.get("platform")
        found = next((p for p in result if isinstance(p, dict) and p.get("platform") == platform), None)
        if found is None:
            result.append(dict(item))
        else:
            found.update(item)
    return result


def _lay_profile(
    profiles: list[dict[str, Any]], platform: str, parts: dict[str, Any], row: FileRow, warnings: list[RowWarning]
) -> None:
    """Put one network's columns on its profile: update the stored one, or start one when a username is known."""
    found = next((p for p in profiles if p.get("platform") == platform), None)
    if found is not None:
        if "username" in parts and parts["username"] is None:
            profiles.remove(found)  # --blank-clears with an empty username: the profile goes
            return
        for part, value in parts.items():
            found[part] = _PART_BLANKS.get(part) if value is None else value
        return
    given = {part: value for part, value in parts.items() if value is not None}
    if not given:
        return
    username = given.get("username")
    if username is None and isinstance(given.get("url"), str):
        username = username_from_url(platform, given["url"])
    if username is None:
        columns = tuple(row.label(f"social.{platform}.{part}") for part in PROFILE_PARTS if part in given)
        shape = _link_example(platform)
        hint = f", or {with_article(f'{platform}_url')} like {shape}" if shape else ""
        warnings.append(RowWarning(row.line, row.email, columns, f"{with_article(platform_name(platform))} profile "
                                   f"needs {with_article(f'{platform}_username')}{hint}"))
        return
    profiles.append({"platform": platform, **given, "username": username})


def _link_example(platform: str) -> str | None:
    known = _PROFILE_HOSTS.get(platform)
    if known is None:
        return None
    hosts, shape = known
    path = {"first": "NAME", "at": "@NAME", "in": "in/NAME"}[shape]
    return f"https://{hosts[0]}/{path}"


def _user_problems(problems: list[FieldProblem], row: FileRow, profiles: list[dict[str, Any]]) -> list[FieldProblem]:
    """Validation problems named by the user's columns, in plain words."""
    result: list[FieldProblem] = []
    for problem in problems:
        path = problem.field.split(".")
        name = problem.field
        numbered = len(path) >= 3 and path[1].isascii() and path[1].isdigit()
        if path[0] == "socialProfiles" and numbered and int(path[1]) < len(profiles):
            platform = profiles[int(path[1])].get("platform")
            if isinstance(platform, str) and f"social.{platform}.{path[2]}" in row.columns:
                name = row.label(f"social.{platform}.{path[2]}")
            elif isinstance(platform, str) and not row.columns.get("socialProfiles") and row.columns:
                name = f"{platform}_{path[2]}"
        elif path[0] == "customFields" and len(path) >= 2:
            key = f"custom.{path[1]}"
            # A file's column by its name there; a value typed by hand by the key it was given as.
            name = row.label(key) if row.columns else key if key in row.values else problem.field
        elif path[0] == "socialContext" and len(path) >= 2 and path[1] in row.columns:
            name = row.label(path[1])
        elif path[0] in row.columns:
            name = row.label(path[0])
        if not name.strip():
            # A key of nothing but spaces or line breaks is still named, visibly: ' ' or '\n'.
            name = repr(name)
        reason = plain_reason(problem.reason)
        if reason == "not a known field" and row.columns:
            reason = "not a known column"
        result.append(FieldProblem(name, reason))
    return result


def read_records(path: Path, model: type[RecordT]) -> ReadResult[RecordT]:
    """Validate every row of a contacts or leads file; keep valid rows and explain every bad one (once per row).

    Raises:
        ValueError: when the file type is not supported, or a CSV has no email column.
        OSError: when the file cannot be read.
    """
    rows = read_rows(path, model)
    result: ReadResult[RecordT] = ReadResult(problems=list(rows.problems), notices=list(rows.notices))
    for row in rows.rows:
        try:
            built = build_record(model, row)
        except InvalidRecordError as exc:
            result.problems.append(RowProblem.of(row.line, row.email, exc.problems))
            continue
        result.records.append((row.line, built.record))
        result.warnings.extend(built.warnings)
    result.problems.sort(key=lambda p: p.line)
    return result
