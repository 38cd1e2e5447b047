"""The ``crm-desktop`` command: the GUI with no arguments, the same services headless with a subcommand."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Callable, Sequence
from enum import IntEnum
from pathlib import Path
from typing import Any, NoReturn, TextIO

from crm_desktop import __version__
from crm_desktop.app.errors import (
    CredentialsError,
    DuplicateNameError,
    InvalidRecordError,
    NotFoundError,
    StoreConfigError,
    VaultError,
)
from crm_desktop.app.logging_setup import configure_logging
from crm_desktop.app.paths import resolve_paths
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.credentials import parse_secret
from crm_desktop.domain.models import PROVIDERS, Integration, Provider

logger = logging.getLogger(__name__)


class ExitCode(IntEnum):
    """Stable exit codes of every command."""

    OK = 0
    PARTIAL = 1
    USAGE = 2
    AUTH = 3


class CommandError(Exception):
    """A command failed in a way the user can fix; carries the exit code."""

    def __init__(self, message: str, code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse that exits with the usage code and a one-line hint."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(int(ExitCode.USAGE), f"{self.prog}: error: {message}\n")


Handler = Callable[[argparse.Namespace], int]


def _emit(args: argparse.Namespace, data: Any, text: str, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    if getattr(args, "json", False):
        stream.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    else:
        stream.write(text.rstrip("\n") + "\n")


def _open_workspace(args: argparse.Namespace) -> Workspace:
    return Workspace.open(args.data_dir)


def _integration_json(workspace: Workspace, integration: Integration) -> dict[str, Any]:
    data = integration.to_wire()
    try:
        data["credentials"] = "stored in OS keyring" if workspace.integrations.has_credentials(integration) else "missing"
    except VaultError:
        data["credentials"] = "keyring unavailable"
    return data


# -- commands -----------------------------------------------------------------------------------


def cmd_version(args: argparse.Namespace) -> int:
    """Print the version."""
    _emit(args, {"name": "crm-desktop", "version": __version__}, f"crm-desktop {__version__}")
    return ExitCode.OK


def _read_secret(provider: Provider) -> dict[str, Any]:
    if sys.stdin.isatty():
        prompt = {
            Provider.HUBSPOT: "HubSpot private-app token: ",
            Provider.PIPEDRIVE: "Pipedrive API token: ",
            Provider.SALESFORCE: "Salesforce credentials JSON: ",
        }[provider]
        text = getpass.getpass(prompt)
    else:
        text = sys.stdin.read()
    return parse_secret(provider, text)


def cmd_integration_add(args: argparse.Namespace) -> int:
    """Add an integration; its secret comes on stdin and goes to the OS keyring."""
    provider = Provider(args.provider)
    integration = Integration(
        provider=provider,
        name=args.name,
        description=args.description or "",
        base_url=args.base_url,
        domain=args.domain,
    )
    credentials = _read_secret(provider) if args.secret_stdin else None
    with _closing(_open_workspace(args)) as workspace:
        saved = workspace.integrations.add(integration, credentials)
        data = _integration_json(workspace, saved)
    note = "" if credentials else " (no credentials yet: add them with --secret-stdin or `integration login`)"
    _emit(args, data, f"added {saved.provider.value} integration {saved.name!r}{note}")
    return ExitCode.OK


def cmd_integration_list(args: argparse.Namespace) -> int:
    """List integrations."""
    with _closing(_open_workspace(args)) as workspace:
        items = [_integration_json(workspace, i) for i in workspace.integrations.list()]
    if not items:
        _emit(args, [], "no integrations yet: add one with `crm-desktop integration add`")
        return ExitCode.OK
    width = max(len(i["name"]) for i in items)
    lines = [
        f"{i['name']:<{width}}  {i['provider']:<10}  {i['syncConfig']['direction']:<13}  "
        f"every {i['syncConfig']['syncInterval']} min  credentials: {i['credentials']}"
        for i in items
    ]
    _emit(args, items, "\n".join(lines))
    return ExitCode.OK


def cmd_integration_show(args: argparse.Namespace) -> int:
    """Show one integration."""
    with _closing(_open_workspace(args)) as workspace:
        data = _integration_json(workspace, workspace.integrations.get(args.name))
    config = data["syncConfig"]
    text = "\n".join(
        [
            f"name:         {data['name']}",
            f"provider:     {data['provider']}",
            f"description:  {data.get('description') or '-'}",
            f"base URL:     {data.get('baseUrl') or '(vendor default)'}",
            f"domain:       {data.get('domain') or '-'}",
            f"scopes:       {', '.join(data.get('scopes') or []) or '-'}",
            f"sync:         {config['direction']} every {config['syncInterval']} min, "
            f"auto-sync {'on' if config['autoSync'] else 'off'}",
            f"credentials:  {data['credentials']}",
        ]
    )
    _emit(args, data, text)
    return ExitCode.OK


def cmd_integration_remove(args: argparse.Namespace) -> int:
    """Remove an integration and its keyring entry."""
    with _closing(_open_workspace(args)) as workspace:
        removed = workspace.integrations.remove(args.name)
    _emit(args, {"removed": removed.name}, f"removed integration {removed.name!r} and its keyring entry")
    return ExitCode.OK


class _closing:
    """Close a workspace when the command ends."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def __enter__(self) -> Workspace:
        return self.workspace

    def __exit__(self, *exc: object) -> None:
        self.workspace.close()


# -- parser -------------------------------------------------------------------------------------


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def build_parser() -> argparse.ArgumentParser:
    """The full command-line interface."""
    parser = _Parser(
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
    parser.set_defaults(handler=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)

    version = commands.add_parser("version", help="print the version")
    _json_flag(version)
    version.set_defaults(handler=cmd_version)

    integration = commands.add_parser("integration", help="add, list, show and remove CRM integrations")
    integration_commands = integration.add_subparsers(
        title="integration commands", metavar="ACTION", required=True, parser_class=_Parser
    )
    add = integration_commands.add_parser(
        "add",
        help="connect a CRM",
        description="Connect a CRM. Secrets are read from stdin only (never from arguments): HubSpot a private-app "
        "token, Pipedrive an API token, Salesforce a JSON object with clientId, clientSecret, accessToken, "
        "refreshToken and instanceUrl.",
    )
    add.add_argument("--provider", required=True, choices=PROVIDERS)
    add.add_argument("--name", required=True, help="a name for this connection, e.g. 'hubspot-prod'")
    add.add_argument("--description", help="what this connection is for")
    add.add_argument("--base-url", help="API base URL (a Salesforce My Domain, or a sandbox); http only to loopback")
    add.add_argument("--domain", help="company domain (Pipedrive: the 'acme' of acme.pipedrive.com)")
    add.add_argument("--secret-stdin", action="store_true", help="read the secret from stdin")
    _json_flag(add)
    add.set_defaults(handler=cmd_integration_add)

    listing = integration_commands.add_parser("list", help="list integrations")
    _json_flag(listing)
    listing.set_defaults(handler=cmd_integration_list)

    show = integration_commands.add_parser("show", help="show one integration")
    show.add_argument("name")
    _json_flag(show)
    show.set_defaults(handler=cmd_integration_show)

    remove = integration_commands.add_parser("remove", help="remove an integration and its keyring entry")
    remove.add_argument("name")
    _json_flag(remove)
    remove.set_defaults(handler=cmd_integration_remove)
    return parser


def _fail(message: str, code: ExitCode) -> int:
    sys.stderr.write(f"crm-desktop: {message}\n")
    return int(code)


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command, mapping known errors to exit codes and one clear line on stderr."""
    handler: Handler = args.handler
    try:
        return int(handler(args))
    except CommandError as exc:
        return _fail(str(exc), exc.code)
    except (InvalidRecordError, CredentialsError, DuplicateNameError, StoreConfigError) as exc:
        return _fail(str(exc), ExitCode.USAGE)
    except NotFoundError as exc:
        return _fail(str(exc), ExitCode.USAGE)
    except VaultError as exc:
        return _fail(str(exc), ExitCode.USAGE)
    except KeyboardInterrupt:
        return _fail("interrupted", ExitCode.PARTIAL)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``crm-desktop``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    paths = resolve_paths(args.data_dir)
    try:
        configure_logging(paths.log_file, level=logging.DEBUG if args.verbose else logging.INFO, console=args.verbose)
    except OSError as exc:
        return _fail(f"cannot write logs under {paths.data_dir}: {exc.strerror}", ExitCode.USAGE)
    if args.handler is None:
        return open_gui(args)
    return run_command(args)


def open_gui(args: argparse.Namespace) -> int:
    """Open the desktop app on the workspace (Qt is imported only here, never by headless commands)."""
    from crm_desktop.ui.app import run_gui

    return run_gui(lambda: Workspace.open(args.data_dir), sys.argv[:1])


if __name__ == "__main__":
    sys.exit(main())
