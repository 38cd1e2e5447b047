"""The ``crm-desktop`` command: the GUI with no arguments, the same services headless with a subcommand."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from crm_desktop import __version__
from crm_desktop.app.logging_setup import configure_logging
from crm_desktop.app.paths import resolve_paths
from crm_desktop.app.workspace import Workspace
from crm_desktop.cli import (
    api,
    attribution,
    config,
    conflicts,
    diagnostics,
    fields,
    integrations,
    mapping,
    records,
    runs,
    serve,
    social,
    sync,
)
from crm_desktop.cli.common import (
    ExitCode,
    Handler,
    Parser,
    UsageError,
    emit,
    fail,
    json_flag,
    write_json_error,
)
from crm_desktop.cli.demo import add_demo_commands, open_demo_gui
from crm_desktop.cli.display import missing_display, no_display_message
from crm_desktop.cli.exits import ERROR_EXITS, error_exit

__all__ = ["ERROR_EXITS", "ExitCode", "build_parser", "main"]

logger = logging.getLogger(__name__)


def cmd_version(args: argparse.Namespace) -> int:
    """Print the version."""
    emit(args, {"name": "crm-desktop", "version": __version__}, f"crm-desktop {__version__}")
    return ExitCode.OK


def build_parser() -> argparse.ArgumentParser:
    """The full command-line interface."""
    parser = Parser(
        prog="crm-desktop",
        description="Sync social-media contacts and leads with Salesforce, HubSpot and Pipedrive. "
        "With no command, opens the desktop app.",
        epilog="Exit codes: 0 ok, 1 partly failed, 2 usage or configuration error, 3 authentication error.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="folder for the database and logs (default: $CRM_DESKTOP_HOME or the user data dir)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="also log to stderr")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="open the app in demo mode: three sandbox CRMs on loopback and a demo workspace (its own data dir)",
    )
    parser.set_defaults(handler=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    add_demo_commands(commands, json_flag, Parser)

    version = commands.add_parser("version", help="print the version")
    json_flag(version)
    version.set_defaults(handler=cmd_version)

    integrations.add_commands(commands)
    records.add_commands(commands)
    sync.add_commands(commands)
    conflicts.add_commands(commands)
    mapping.add_commands(commands)
    fields.add_commands(commands)
    runs.add_commands(commands)
    diagnostics.add_commands(commands)
    social.add_commands(commands)
    attribution.add_commands(commands)
    config.add_commands(commands)
    serve.add_commands(commands)
    api.add_commands(commands)
    return parser


def _sentence(exc: BaseException) -> str:
    """An error as one line; an OS error names its file, shortened, and the system's reason without its number."""
    if isinstance(exc, OSError) and type(exc) in (OSError, FileNotFoundError, PermissionError, IsADirectoryError,
                                                   NotADirectoryError, FileExistsError):
        name = str(exc.filename or "")
        shown = name if len(name) <= 80 else f"{name[:60]}...{name[-12:]}"
        return f"{exc.strerror or exc}: {shown}" if shown else str(exc.strerror or exc)
    return str(exc)


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command; a known error becomes its exit code and one clear line (JSON too with ``--json``)."""
    handler: Handler = args.handler
    try:
        return int(handler(args))
    except (Exception, KeyboardInterrupt) as exc:
        known = error_exit(exc)
        if known is None:
            raise
        code, error_code = known
        message = "interrupted" if isinstance(exc, KeyboardInterrupt) else _sentence(exc)
        return fail(message, code, error_code=error_code, as_json=getattr(args, "json", False))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``crm-desktop``."""
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(arguments)
    except UsageError as exc:
        # argparse's own exit code for a usage error, raised like argparse so callers see the same thing.
        sys.stderr.write(exc.usage)
        sys.stderr.write(f"{exc}\n")
        if "--json" in arguments:
            write_json_error(str(exc), ExitCode.USAGE, "usage")
        raise SystemExit(int(ExitCode.USAGE)) from None
    paths = resolve_paths(args.data_dir)
    try:
        configure_logging(paths.log_file, level=logging.DEBUG if args.verbose else logging.INFO, console=args.verbose)
    except OSError as exc:
        return fail(f"cannot write logs under {paths.data_dir}: {exc.strerror}", ExitCode.USAGE,
                    error_code="data_dir_unusable", as_json=getattr(args, "json", False))
    if args.handler is None:
        no_display = missing_display(os.environ)
        if no_display is not None:
            return fail(no_display_message(no_display), ExitCode.USAGE)
        if args.demo:
            return open_demo_gui(args.data_dir)
        return open_gui(args)
    return run_command(args)


def open_gui(args: argparse.Namespace) -> int:
    """Open the desktop app on the workspace (Qt is imported only here, never by headless commands)."""
    from crm_desktop.ui.app import run_gui

    return run_gui(lambda: Workspace.open(args.data_dir), sys.argv[:1])


if __name__ == "__main__":
    sys.exit(main())
