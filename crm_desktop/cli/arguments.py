"""Argument types the commands share: whole numbers in a range, ports, counts and limits."""

from __future__ import annotations

import argparse
from collections.abc import Callable


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


#: A TCP port to listen on; 0 lets the system pick a free one.
PORT = whole_number(0, 65_535)
#: How many things to make or list at the most (0 or more / 1 or more).
COUNT = whole_number(0)
LIMIT = whole_number(1)
