"""How a count meets its noun, the same in the app, on the command line and in what the CRMs are sent."""

from __future__ import annotations

from datetime import datetime


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 API call``, ``2 API calls``, ``0 API calls``, ``1,200 API calls``; ``nouns`` where an ``s`` will not do
    (``plural(2, "person", "people")``)."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {nouns or noun + 's'}"


#: What a forgotten person is called where their email may not be kept (a run's log of records).
FORGOTTEN_PERSON = "(a forgotten person)"


def forgotten_reason(forgotten_at: datetime, not_done: str) -> str:
    """Why a forgotten person's record was skipped: ``forgotten on 2026-12-07 at your request; not pulled``."""
    return f"forgotten on {forgotten_at:%Y-%m-%d} at your request; {not_done}"
