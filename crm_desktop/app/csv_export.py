"""CSV files for spreadsheets: cells that cannot run as formulas, UTF-8 with a BOM, nothing half-written."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crm_desktop.app.output_path import output_file

#: Characters that make a spreadsheet read a cell as a formula (or, for tab and CR, start one in some programs).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


#: One signed number (``-3.5``, an E.164 phone number ``+14155550101``): it starts like a formula, but a spreadsheet
#: reads it as the number it is. Anything more (``-10-5``, ``+1 (415) 555-0101``) would be worked out as arithmetic.
_SIGNED_NUMBER = re.compile(r"[+-][0-9]+(\.[0-9]+)?")


def inert_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: one that would start a formula gets a leading apostrophe (every
    export of text that came from outside, a CRM's error or a campaign named in an event, goes through it); a
    lone signed number is left as it is. A value that already starts with such an apostrophe gets one more, so
    that :func:`cell_value` gives it back whole."""
    text = "" if value is None else str(value)
    if (text.startswith(FORMULA_STARTS) and not _SIGNED_NUMBER.fullmatch(text)) or cell_value(text) != text:
        return "'" + text
    return text


def cell_value(cell: str) -> str:
    """What a CSV cell holds: the apostrophe that keeps a formula inert (ours, or a spreadsheet's text marker, which
    is no part of the value there either) is dropped, so an export imports back unchanged. One apostrophe only:
    ``''=x`` was ``'=x`` (:func:`inert_cell` added one)."""
    if cell.startswith("'") and cell.lstrip("'").startswith(FORMULA_STARTS):
        return cell[1:]
    return cell


@contextmanager
def spreadsheet_csv(path: Path) -> Iterator[Any]:
    """A ``csv.writer`` onto ``path``: UTF-8 with a BOM (Excel reads accents right only then; imports skip it),
    written beside it first and put in its place only when the ``with`` block ends without an error, so a failed
    export leaves no half file under the chosen name."""
    path = output_file(path)
    temporary = path.with_name(path.name + ".part")
    try:
        with temporary.open("w", encoding="utf-8-sig", newline="") as handle:
            yield csv.writer(handle)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
