"""The ``crm-desktop`` command: the GUI with no arguments, the same services headless with a subcommand."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
from collections.abc import Callable, Sequence
from enum import IntEnum
from pathlib import Path
from typing import Any, NoReturn, TextIO

from crm_desktop import __version__
from crm_desktop.app.crm_actions import CrmActions, PushReport
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
from crm_desktop.domain.credentials import parse_secret
from crm_desktop.domain.models import PROVIDERS, Integration, Provider, normalise_email
from crm_desktop.domain.outcomes import RecordObject

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
        stored = workspace.integrations.has_credentials(integration)
        data["credentials"] = "stored in OS keyring" if stored else "missing"
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


def cmd_integration_test(args: argparse.Namespace) -> int:
    """Test an integration's connection: who am I, scopes, quota left."""
    with _closing(_open_workspace(args)) as workspace:
        info = asyncio.run(CrmActions(workspace.integrations).test_connection(args.name))
    quota = info.quota
    data: dict[str, Any] = {
        "integration": args.name,
        "ok": True,
        "account": info.account,
        "user": info.user,
        "scopes": list(info.scopes),
        "quota": None
        if quota is None
        else {"used": quota.used, "limit": quota.limit, "remaining": quota.remaining},
    }
    quota_text = "unknown"
    if quota is not None and quota.remaining is not None:
        quota_text = f"{quota.remaining} calls left" + (f" of {quota.limit}" if quota.limit else "")
    text = (
        f"connection ok: {info.account} as {info.user}\n"
        f"scopes: {', '.join(info.scopes) or 'not reported'}\nquota: {quota_text}"
    )
    _emit(args, data, text)
    return ExitCode.OK


def cmd_integration_login(args: argparse.Namespace) -> int:
    """Sign in to Salesforce in the system browser (PKCE, loopback redirect)."""
    with _closing(_open_workspace(args)) as workspace:
        actions = CrmActions(workspace.integrations)
        sys.stderr.write("opening the browser to sign in to Salesforce; waiting for you to finish...\n")
        asyncio.run(actions.sign_in(args.name, port=args.port, client_id=args.client_id))
    _emit(args, {"integration": args.name, "signedIn": True}, f"signed in; tokens for {args.name!r} are in the keyring")
    return ExitCode.OK


def _print_push(args: argparse.Namespace, report: PushReport) -> int:
    rows: list[dict[str, Any]] = [
        {"line": p.line, "email": p.record, "outcome": "invalid", "field": p.field, "message": p.reason}
        for p in report.problems
    ]
    for line, result in zip(report.lines, report.results, strict=False):
        rows.append(
            {
                "line": line,
                "email": result.email,
                "outcome": result.outcome.value,
                "crmId": result.crm_id,
                "category": result.category.value if result.category else None,
                "message": result.message,
            }
        )
    rows.sort(key=lambda r: r["line"])
    lines = []
    for row in rows:
        detail = row.get("crmId") or ""
        if row["outcome"] in {"invalid", "failed"}:
            detail = f"{row.get('field') or row.get('category') or ''}: {row['message']}"
        lines.append(f"line {row['line']:>5}  {row['outcome']:<9}  {row['email']}  {detail}")
    summary = report.summary()
    lines.append(
        "summary: {created} created, {updated} updated, {unchanged} unchanged, {failed} failed, "
        "{invalidRows} invalid rows, {apiCalls} API calls".format(**summary)
    )
    _emit(args, {"records": rows, "summary": summary}, "\n".join(lines))
    return ExitCode.PARTIAL if report.failed else ExitCode.OK


def _push(args: argparse.Namespace, obj: RecordObject) -> int:
    if not args.file.is_file():
        raise CommandError(f"no such file: {args.file}")
    with _closing(_open_workspace(args)) as workspace:
        try:
            report = asyncio.run(CrmActions(workspace.integrations).push_file(args.name, args.file, obj))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    return _print_push(args, report)


def cmd_contacts_push(args: argparse.Namespace) -> int:
    """Push contacts from a CSV or JSONL file."""
    return _push(args, RecordObject.CONTACT)


def cmd_leads_push(args: argparse.Namespace) -> int:
    """Push leads from a CSV or JSONL file."""
    return _push(args, RecordObject.LEAD)


def cmd_contacts_get(args: argparse.Namespace) -> int:
    """Fetch one contact from the CRM by email."""
    try:
        email = normalise_email(args.email)
    except ValueError as exc:
        raise CommandError(f"--email: {exc}") from None
    with _closing(_open_workspace(args)) as workspace:
        record = asyncio.run(CrmActions(workspace.integrations).get_record(args.name, RecordObject.CONTACT, email))
    if record is None:
        _emit(args, None, f"no contact with email {email} in {args.name}")
        return ExitCode.PARTIAL
    data = {
        "crmId": record.crm_id,
        "email": record.email,
        "modifiedAt": record.modified_at.isoformat() if record.modified_at else None,
        "fields": record.fields,
    }
    text = "\n".join([f"crm id:    {record.crm_id}", f"email:     {record.email}",
                      f"modified:  {data['modifiedAt'] or '-'}"]
                     + [f"{k}: {v}" for k, v in sorted(record.fields.items()) if v not in (None, "")])
    _emit(args, data, text)
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

    test = integration_commands.add_parser("test", help="test the connection: who am I, scopes, quota left")
    test.add_argument("name")
    _json_flag(test)
    test.set_defaults(handler=cmd_integration_test)

    login = integration_commands.add_parser(
        "login",
        help="sign in to Salesforce in the system browser",
        description="Sign in to Salesforce with the authorization-code flow and PKCE in the system browser; the "
        "redirect comes back to a one-shot listener on 127.0.0.1 (register http://localhost:PORT/OauthRedirect "
        "as the connected app's callback).",
    )
    login.add_argument("name")
    login.add_argument("--port", type=int, default=1717, help="loopback port of the redirect (default 1717)")
    login.add_argument("--client-id", help="the connected app's consumer key (default: the stored one)")
    _json_flag(login)
    login.set_defaults(handler=cmd_integration_login)

    for noun, push_handler in (("contacts", cmd_contacts_push), ("leads", cmd_leads_push)):
        group = commands.add_parser(noun, help=f"push and fetch {noun}")
        group_commands = group.add_subparsers(title=f"{noun} commands", metavar="ACTION", required=True,
                                              parser_class=_Parser)
        push = group_commands.add_parser(
            "push",
            help=f"push {noun} from a CSV or JSONL file to a CRM",
            description="Validate every row first (bad rows are reported with line, field and reason; valid rows "
            "are still pushed), push, and print one result per record. Exit 1 if any record failed.",
        )
        push.add_argument("name", help="the integration")
        push.add_argument("--file", type=Path, required=True, help="a .csv or .jsonl file")
        _json_flag(push)
        push.set_defaults(handler=push_handler)
        if noun == "contacts":
            get = group_commands.add_parser("get", help="fetch one contact from a CRM by email")
            get.add_argument("name", help="the integration")
            get.add_argument("--email", required=True)
            _json_flag(get)
            get.set_defaults(handler=cmd_contacts_get)
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
    except AuthError as exc:
        return _fail(str(exc), ExitCode.AUTH)
    except ConfigurationError as exc:
        return _fail(str(exc), ExitCode.USAGE)
    except ProviderError as exc:
        return _fail(str(exc), ExitCode.PARTIAL)
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
