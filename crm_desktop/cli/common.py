"""What every ``crm-desktop`` command shares: exit codes, the parser class, output and workspace helpers."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from enum import IntEnum
from pathlib import Path
from typing import Any, NoReturn, TextIO

from crm_desktop.app.text import duration_text as run_length_text
from crm_desktop.app.text import plural
from crm_desktop.app.workspace import Workspace
from crm_desktop.providers.factory import Transport

logger = logging.getLogger(__name__)


class ExitCode(IntEnum):
    """Stable exit codes of every command."""

    OK = 0
    PARTIAL = 1
    USAGE = 2
    AUTH = 3


class CommandError(Exception):
    """A command failed in a way the user can fix; carries the exit code and a stable error code for ``--json``."""

    def __init__(self, message: str, code: ExitCode = ExitCode.USAGE, error_code: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.error_code = error_code or {
            ExitCode.USAGE: "usage", ExitCode.AUTH: "auth_refused", ExitCode.PARTIAL: "failed"
        }.get(code, "failed")


class UsageError(Exception):
    """The command line itself is wrong (argparse's complaint), with the usage of the command it was for."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class Parser(argparse.ArgumentParser):
    """argparse whose complaints reach ``main`` as :class:`UsageError` (so ``--json`` can get them as JSON)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}", self.format_usage())


Handler = Callable[[argparse.Namespace], int]

#: The HTTP transport every workspace opened by a command uses: ``None`` (real sockets) except in tests, which point
#: it at an in-process sandbox.
http_transport: Transport | None = None


def readable_file(path: Path) -> Path:
    """``path`` when it is a file to read; otherwise the file error that says what it is instead."""
    if path.is_dir():
        raise cannot_read(path, "it is a folder; give a .csv or .jsonl file")
    if not path.is_file():
        raise cannot_read(path, "no such file")
    return path


def cannot_read(path: Path, reason: OSError | str) -> CommandError:
    """The error of a command whose input file cannot be read (none there, a folder named, no permission), in the
    words and with the error code of :func:`cannot_write`."""
    why = reason if isinstance(reason, str) else reason.strerror or str(reason)
    return CommandError(f"{path}: cannot be read: {why}", ExitCode.USAGE, "file_unusable")


def cannot_write(path: Path, exc: OSError) -> CommandError:
    """The error of a command whose output file cannot be written (no such folder, a folder named, no permission):
    every command that writes a file the marketer named says it in these words."""
    return CommandError(f"{path}: cannot be written: {exc.strerror or exc}", ExitCode.USAGE, "file_unusable")


def iso_time(moment: datetime | None) -> str | None:
    """A time as every ``--json`` report writes it: ISO 8601 with a ``T`` and its UTC offset
    (``2026-12-06T20:36:31+00:00``); the store's times are UTC, so one without a zone is taken as UTC."""
    if moment is None:
        return None
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).isoformat()


def json_value(value: Any) -> Any:
    """What ``--json`` writes for a value JSON has no type for: a time as :func:`iso_time`, a date as
    ``YYYY-MM-DD``, anything else as its text."""
    if isinstance(value, datetime):
        return iso_time(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def emit(args: argparse.Namespace, data: Any, text: str, out: TextIO | None = None) -> None:
    """``data`` as JSON with ``--json`` (times through :func:`json_value`), otherwise ``text``."""
    stream = out or sys.stdout
    if getattr(args, "json", False):
        stream.write(json.dumps(data, indent=2, sort_keys=True, default=json_value) + "\n")
    else:
        stream.write(text.rstrip("\n") + "\n")


def confirm(question: str) -> bool:
    """Ask on the terminal (stderr, so ``--json`` output stays clean); anything but y/yes is a no."""
    sys.stderr.write(question + " [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in {"y", "yes"}


def open_workspace(args: argparse.Namespace) -> Workspace:
    return Workspace.open(args.data_dir, transport=http_transport)


def shown(value: Any) -> str:
    """A field value as the marketer reads it."""
    return "(blank)" if value is None or value == "" else str(value)


#: The widest a value is shown in one cell of a text table; ``--json`` has it in full.
CELL_WIDTH = 60


def in_a_cell(value: Any, width: int = CELL_WIDTH) -> str:
    """A field value as one cell of a text table shows it: on one line (its line breaks as `` / ``) and at most
    ``width`` characters, cut short with ``…`` (a value of several lines, such as an engagement summary, would
    otherwise break the table's rows and widen every column)."""
    text = " / ".join(line.strip() for line in shown(value).splitlines() if line.strip()) or shown(None)
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def integration_names(workspace: Workspace) -> dict[int, str]:
    return {i.id: i.name for i in workspace.integrations.list() if i.id is not None}


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *rows])


def duration_text(seconds: float | None) -> str:
    """A run's length, written the same by ``sync``, ``runs list`` and ``runs show`` (``-`` when unknown)."""
    return "-" if seconds is None else run_length_text(seconds)


def stored_run_seconds(started_at: datetime, finished_at: datetime | None) -> float | None:
    """A recorded run's length from its row: what every command shows for it."""
    return None if finished_at is None else (finished_at - started_at).total_seconds()


class closing:
    """Close a workspace when the command ends."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def __enter__(self) -> Workspace:
        return self.workspace

    def __exit__(self, *exc: object) -> None:
        self.workspace.close()


# -- parser -------------------------------------------------------------------------------------


def json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def command_group(commands: Any, name: str, *, title: str = "", **parser_options: Any) -> Any:
    """Add the command group ``crm-desktop NAME ACTION``; returns the subparsers its actions are added to.

    Args:
        commands: the top-level subparsers.
        name: the group's command.
        title: the heading of the actions in the group's help (default ``NAME commands``).
        parser_options: ``help``, ``description`` of the group.
    """
    group = commands.add_parser(name, **parser_options)
    return group.add_subparsers(title=title or f"{name} commands", metavar="ACTION", required=True,
                                parser_class=Parser)


@contextmanager
def action(actions: Any, name: str, handler: Handler, **parser_options: Any) -> Iterator[argparse.ArgumentParser]:
    """Add the action ``name`` to a command group's subparsers; the block adds its own arguments.

    ``--json`` is added after them, so every action's help lists it last, and ``handler`` runs the action.
    """
    parser: argparse.ArgumentParser = actions.add_parser(name, **parser_options)
    yield parser
    json_flag(parser)
    parser.set_defaults(handler=handler)


def add_action(actions: Any, name: str, handler: Handler, **parser_options: Any) -> None:
    """Add an action whose only option is ``--json``."""
    with action(actions, name, handler, **parser_options):
        pass


def run_id_argument(parser: argparse.ArgumentParser) -> None:
    """The ``ID`` of a sync run, as ``runs list`` shows it."""
    parser.add_argument("id", type=int, metavar="ID", help="the run's id (from `runs list`)")


def fail(message: str, code: ExitCode, *, error_code: str = "", as_json: bool = False) -> int:
    """Report a command's failure: one line on stderr, and ``{"error": {...}}`` on stdout with ``--json``."""
    sys.stderr.write(f"crm-desktop: {message}\n")
    if as_json:
        write_json_error(message, code, error_code)
    return int(code)


def write_json_error(message: str, code: ExitCode, error_code: str) -> None:
    """``{"error": {"code", "message", "exitCode"}}`` on stdout, where a script reading ``--json`` looks."""
    error = {"code": error_code or "failed", "message": message, "exitCode": int(code)}
    sys.stdout.write(json.dumps({"error": error}, indent=2, sort_keys=True) + "\n")


#: The record counts of a run, in the order they are printed.
COUNT_KEYS = ("created", "updated", "unchanged", "failed", "conflicts")


def counts_text(counts: dict[str, int]) -> str:
    """A run's counts as one line: ``3 created, 1 updated, ..., 1 conflict waiting, decided by rule (2)``.

    ``conflicts`` counts the fields waiting for the marketer, ``decided`` those a conflict rule settled.
    """
    parts = [
        plural(counts.get(key, 0), "conflict") + " waiting" if key == "conflicts" else f"{counts.get(key, 0)} {key}"
        for key in COUNT_KEYS
    ]
    if counts.get("decided"):
        parts.append(f"decided by rule ({counts['decided']})")
    return ", ".join(parts)
