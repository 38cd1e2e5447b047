"""The ``crm-desktop`` command: the GUI with no arguments, the same services headless with a subcommand."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from crm_desktop import __version__
from crm_desktop.app.errors import (
    AuthError,
    ConfigurationError,
    CredentialsError,
    DuplicateNameError,
    InvalidRecordError,
    NotFoundError,
    ProviderError,
    StoreConfigError,
    VaultError,
)
from crm_desktop.app.logging_setup import configure_logging
from crm_desktop.app.paths import resolve_paths
from crm_desktop.app.workspace import Workspace
from crm_desktop.cli import conflicts, integrations, records, runs, sync
from crm_desktop.cli.common import CommandError, ExitCode, Handler, Parser, emit, fail, json_flag
from crm_desktop.cli.demo import add_demo_commands, open_demo_gui
from crm_desktop.sync.actions import ConflictResolutionError
from crm_desktop.sync.engine import SyncAlreadyRunning

__all__ = ["ExitCode", "build_parser", "main"]

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
    runs.add_commands(commands)
    return parser


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command, mapping known errors to exit codes and one clear line on stderr."""
    handler: Handler = args.handler
    try:
        return int(handler(args))
    except CommandError as exc:
        return fail(str(exc), exc.code)
    except (InvalidRecordError, CredentialsError, DuplicateNameError, StoreConfigError) as exc:
        return fail(str(exc), ExitCode.USAGE)
    except ConflictResolutionError as exc:
        return fail(str(exc), ExitCode.USAGE)
    except SyncAlreadyRunning as exc:
        return fail(str(exc), ExitCode.PARTIAL)
    except NotFoundError as exc:
        return fail(str(exc), ExitCode.USAGE)
    except VaultError as exc:
        return fail(str(exc), ExitCode.USAGE)
    except AuthError as exc:
        return fail(str(exc), ExitCode.AUTH)
    except ConfigurationError as exc:
        return fail(str(exc), ExitCode.USAGE)
    except ProviderError as exc:
        return fail(str(exc), ExitCode.PARTIAL)
    except KeyboardInterrupt:
        return fail("interrupted", ExitCode.PARTIAL)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``crm-desktop``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    paths = resolve_paths(args.data_dir)
    try:
        configure_logging(paths.log_file, level=logging.DEBUG if args.verbose else logging.INFO, console=args.verbose)
    except OSError as exc:
        return fail(f"cannot write logs under {paths.data_dir}: {exc.strerror}", ExitCode.USAGE)
    if args.handler is None:
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
