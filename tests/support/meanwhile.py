"""Race tests: another process's whole operation run at one chosen point of this one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest


def run_meanwhile(monkeypatch: pytest.MonkeyPatch, owner: type[Any], name: str, other: Callable[[], None],
                  done: list[Any], *, before: bool) -> None:
    """Make the first call of ``owner.name`` run ``other`` whole on a thread of its own (as another desktop or cron
    would), before the call or once it returned; ``done`` is where ``other`` records what it did, and once it holds
    anything the call is left as it is (``other`` itself passes through the same code)."""
    original: Callable[..., Any] = getattr(owner, name)

    def other_whole() -> None:
        done.append(-1)
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()

    def meanwhile(*args: Any, **kwargs: Any) -> Any:
        if done:
            return original(*args, **kwargs)
        if before:
            other_whole()
            return original(*args, **kwargs)
        result = original(*args, **kwargs)
        other_whole()
        return result

    monkeypatch.setattr(owner, name, meanwhile)
