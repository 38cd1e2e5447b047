"""How counts, durations and exported cells read to a marketer, the same in the app and on the command line."""

from __future__ import annotations

import re


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 API call``, ``2 API calls``, ``0 API calls``, ``1,200 API calls``; ``nouns`` where an ``s`` will not do
    (``plural(2, "person", "people")``)."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {nouns or noun + 's'}"


def duration_text(seconds: float) -> str:
    """A run's length as people say it: ``0.4 s``, ``12 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


#: Characters that make a spreadsheet read a cell as a formula (or, for tab and CR, start one in some programs).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


#: A signed number or phone number (``+14155550101``, ``-3.5``, ``+1 (415) 555-0101``): it starts like a formula
#: but can call nothing, and an apostrophe before it would come back in the number when the file is imported.
_PLAIN_NUMBER = re.compile(r"[+-][0-9 ().-]*")


def inert_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: one that would start a formula gets a leading apostrophe (every
    export of text that came from outside, a CRM's error or a campaign named in an event, goes through it); a
    signed number or a phone number is left as it is."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text
