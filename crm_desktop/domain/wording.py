"""How a count meets its noun, the same in the app, on the command line and in what the CRMs are sent."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 API call``, ``2 API calls``, ``0 API calls``, ``1,200 API calls``; ``nouns`` where an ``s`` will not do
    (``plural(2, "person", "people")``)."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {nouns or noun + 's'}"
