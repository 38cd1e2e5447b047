"""Argument types the commands share: whole numbers in a range, ports, counts and limits, fixed values."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from crm_desktop.domain.models import WrittenValue

V = TypeVar("V", bound=WrittenValue)


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argument type: a whole number from ``low`` (to ``high``), refused with exit 2 and the range otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a whole number is needed, not {text!r}") from None
        if value < low or (high is not None and value > high):
            wanted = f"from {low:,} to {high:,}" if high is not None else f"{low:,} or more"
            raise argparse.ArgumentTypeError(f"{wanted}, not {value:,}")
        return value

    return parse


def number_between(low: float, high: float) -> Callable[[str], float]:
    """An argument type: a number from ``low`` to ``high`` (``nan`` and infinities are not), refused with exit 2 and
    the range otherwise."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a number is needed, not {text!r}") from None
        if not low <= value <= high:  # false for nan too
            raise argparse.ArgumentTypeError(f"a number from {low:g} to {high:g} is needed, not {text!r}")
        return value

    return parse


#: A TCP port to listen on; 0 lets the system pick a free one.
PORT = whole_number(0, 65_535)
#: How many things to make or list at the most (0 or more / 1 or more).
COUNT = whole_number(0)
LIMIT = whole_number(1)


def written_value(kind: type[V]) -> Callable[[str], V]:
    """An argument type: one of a fixed set of values (a platform, an attribution model), read as files and the
    local API read it (any case, spaces or hyphens for underscores: ``Twitter``, ``Time Decay``, ``time-decay``);
    anything else refused with exit 2 and the valid values."""

    def parse(text: str) -> V:
        try:
            return kind(text)
        except ValueError:
            valid = ", ".join(member.value for member in kind)
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {valid}") from None

    parse.__name__ = kind.__name__  # argparse names the type by it when it refuses a value
    return parse


def value_names(kind: type[WrittenValue]) -> str:
    """The metavar of a fixed-value option: its values as the help lists them, ``{twitter,instagram,...}``."""
    return "{" + ",".join(member.value for member in kind) + "}"
