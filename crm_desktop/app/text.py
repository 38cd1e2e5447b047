"""How counts and durations read to a marketer, the same in the app and on the command line."""

from __future__ import annotations

from typing import Any

from crm_desktop.domain.wording import plural as plural  # where the app has always said it


def with_article(word: str) -> str:
    """``word`` after "a" or "an" as it is said: ``an Instagram``, ``a LinkedIn``, ``an instagram_url``, ``a YouTube``
    (by its first letter: a vowel takes "an")."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def stored_text(value: Any) -> str | None:
    """A record's field value as the audit log and conflicts keep it: text, an enum by its value, or ``None``."""
    if value is None:
        return None
    return str(value.value) if hasattr(value, "value") else str(value)


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


def led_by_record(record: str, message: str) -> str:
    """A record's error as one line names it: the message after the record (its email or key), unless the message
    names it already (the CRMs' record messages mostly start with it), so it is never read twice."""
    return message if record and record in message else f"{record}: {message}"
