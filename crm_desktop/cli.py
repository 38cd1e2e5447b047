"""The ``crm-desktop`` command: the GUI with no arguments, the same services headless with a subcommand."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Any, NoReturn, TextIO

from crm_desktop import __version__
from crm_desktop.app.crm_actions import PushReport
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
from crm_desktop.app.sync_service import (
    ConflictRow,
    ImportReport,
    SyncDirectionChoice,
    SyncResult,
    SyncRunRow,
    SyncTrigger,
)
from crm_desktop.app.workspace import Workspace
from crm_desktop.cli_demo import add_demo_commands, open_demo_gui
from crm_desktop.domain.credentials import parse_secret
from crm_desktop.domain.models import PROVIDERS, Integration, Provider, SyncDirection, normalise_email
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.providers.factory import Transport
from crm_desktop.sync.actions import ConflictResolutionError
from crm_desktop.sync.engine import PlannedChange, SyncAlreadyRunning

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

#: The HTTP transport every workspace opened by a command uses: ``None`` (real sockets) except in tests, which point
#: it at an in-process sandbox.
http_transport: Transport | None = None


def _emit(args: argparse.Namespace, data: Any, text: str, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    if getattr(args, "json", False):
        stream.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    else:
        stream.write(text.rstrip("\n") + "\n")


def _open_workspace(args: argparse.Namespace) -> Workspace:
    return Workspace.open(args.data_dir, transport=http_transport)


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
        info = asyncio.run(workspace.crm.test_connection(args.name))
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
        actions = workspace.crm
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
            report = asyncio.run(workspace.crm.push_file(args.name, args.file, obj))
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
        record = asyncio.run(workspace.crm.get_record(args.name, RecordObject.CONTACT, email))
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


# -- local import, sync, conflicts, runs ---------------------------------------------------------


def _import(args: argparse.Namespace, obj: RecordObject) -> int:
    if not args.file.is_file():
        raise CommandError(f"no such file: {args.file}")
    with _closing(_open_workspace(args)) as workspace:
        try:
            report = workspace.sync.import_file(args.file, obj)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    return _print_import(args, report, obj)


def _print_import(args: argparse.Namespace, report: ImportReport, obj: RecordObject) -> int:
    refused = [{"line": p.line, "record": p.record, "field": p.field, "reason": p.reason} for p in report.problems]
    data = {"created": report.created, "updated": report.updated, "unchanged": report.unchanged, "refused": refused}
    lines = [f"line {p.line:>5}  refused  {p.record}  {p.field}: {p.reason}" for p in report.problems]
    rows = "row" if len(refused) == 1 else "rows"
    lines.append(
        f"imported {obj.value}s into the local store: {report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged, {len(refused)} {rows} refused"
    )
    _emit(args, data, "\n".join(lines))
    return ExitCode.PARTIAL if refused else ExitCode.OK


def cmd_contacts_import(args: argparse.Namespace) -> int:
    """Import contacts from a CSV or JSONL file into the local store."""
    return _import(args, RecordObject.CONTACT)


def cmd_leads_import(args: argparse.Namespace) -> int:
    """Import leads from a CSV or JSONL file into the local store."""
    return _import(args, RecordObject.LEAD)


_CONFIGURED_DIRECTION = {
    SyncDirection.PUSH: SyncDirectionChoice.PUSH,
    SyncDirection.PULL: SyncDirectionChoice.PULL,
    SyncDirection.BIDIRECTIONAL: SyncDirectionChoice.BOTH,
}


def _shown(value: Any) -> str:
    """A field value as the marketer reads it."""
    return "(blank)" if value is None or value == "" else str(value)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def _change_json(change: PlannedChange) -> dict[str, Any]:
    return {
        "object": change.object.value,
        "email": change.email,
        "side": change.side,
        "action": change.action,
        "fields": {name: {"old": old, "new": new} for name, (old, new) in change.fields.items()},
        "reason": change.reason or None,
    }


def _change_lines(change: PlannedChange) -> list[str]:
    where = {"crm": "in CRM", "local": "locally"}.get(change.side, change.side)
    if change.action == "conflict":
        where = ""
    head = f"  {change.action:<8} {where:<8} {change.object.value:<7} {change.email}"
    if change.action == "skip":
        return [f"{head}: {change.reason}"]
    lines = [head]
    for name, (old, new) in change.fields.items():
        if change.action == "conflict":
            lines.append(f"      {name}: local {_shown(old)} | CRM {_shown(new)}; {change.reason}")
        else:
            lines.append(f"      {name}: {_shown(old)} -> {_shown(new)}")
    return lines


_COUNT_KEYS = ("created", "updated", "unchanged", "failed", "conflicts")


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(key, 0)} {key}" for key in _COUNT_KEYS)


def _result_json(name: str, direction: SyncDirectionChoice, trigger: SyncTrigger, dry_run: bool,
                 result: SyncResult) -> dict[str, Any]:
    """One run as JSON; a dry run carries its plan (a real run's per-record log is in ``runs show``)."""
    data: dict[str, Any] = {
        "integration": name,
        "runId": result.run_id,
        "dryRun": dry_run,
        "direction": direction.value,
        "trigger": trigger.value,
        "status": result.status.value,
        "counts": dict(result.counts),
        "apiCalls": result.api_calls,
        "durationSeconds": round(result.duration, 3),
        "message": result.message,
        "authFailed": result.auth_failed,
        "failures": [{"email": e, "category": c, "message": m} for e, c, m in result.failures],
    }
    if dry_run:
        data["plan"] = [_change_json(c) for c in result.changes]
    return data


def _result_lines(name: str, direction: SyncDirectionChoice, dry_run: bool, result: SyncResult) -> list[str]:
    if dry_run:
        head = f"{name}: dry run of {direction.value}, nothing written"
    else:
        head = f"{name}: {result.status.value} (run {result.run_id}, {direction.value})"
    lines = [f"{head}: {_counts_text(result.counts)}; {result.api_calls} API calls in {result.duration:.1f} s"]
    if result.message:
        lines.append(f"  stopped: {result.message}")
    lines.extend(f"  failed   {email}  {category}: {message}" for email, category, message in result.failures)
    if dry_run:
        if result.changes:
            lines.append("  plan:")
            for change in result.changes:
                lines.extend("  " + line for line in _change_lines(change))
        else:
            lines.append("  plan: nothing to change")
    elif result.counts.get("conflicts"):
        lines.append("  conflicts waiting for you: crm-desktop conflicts list")
    return lines


def _result_code(result: SyncResult) -> ExitCode:
    if result.auth_failed:
        return ExitCode.AUTH
    failed = result.status.value in {"failed", "partial"} or result.counts.get("failed", 0) > 0
    return ExitCode.PARTIAL if failed else ExitCode.OK


def _refusal(workspace: Workspace, name: str, exc: SyncAlreadyRunning) -> str:
    integration = workspace.integrations.get(name)
    holder = workspace.sync.store.lock_holder(integration.id) if integration.id is not None else None
    detail = ""
    if holder is not None:
        owner, run_id = holder
        detail = f" (process {owner}" + (f", run {run_id}" if run_id else "") + ")"
    return f"{exc}{detail}; try again when it has finished"


Outcome = tuple[str, SyncDirectionChoice, SyncResult | Exception]


def _run_syncs(args: argparse.Namespace, workspace: Workspace, trigger: SyncTrigger) -> list[Outcome]:
    """Run the syncs the arguments ask for; with several, one integration's failure does not stop the others."""
    service = workspace.sync
    if args.due and not args.dry_run:
        outcomes: list[Outcome] = []
        for name, result in asyncio.run(service.run_due(trigger=trigger)):
            direction = SyncDirectionChoice.BOTH
            if isinstance(result, SyncResult) and result.run_id is not None:
                direction = SyncDirectionChoice(service.run(result.run_id)[0].direction)
            outcomes.append((name, direction, result))
        return outcomes
    if args.due:
        jobs = [(item.integration.name, item.direction) for item in service.due()]
    else:
        targets = workspace.integrations.list() if args.all else [workspace.integrations.get(args.name)]
        jobs = [
            (i.name, SyncDirectionChoice(args.direction) if args.direction
             else _CONFIGURED_DIRECTION[i.sync_config.direction])
            for i in targets
        ]
    outcomes = []
    for name, direction in jobs:
        try:
            outcomes.append((name, direction, asyncio.run(service.sync(name, direction, trigger,
                                                                       dry_run=args.dry_run))))
        except (SyncAlreadyRunning, AuthError, ProviderError, ConfigurationError, CredentialsError,
                VaultError) as exc:
            if args.name:
                raise  # one integration: the error is the command's error
            logger.warning("sync of %s failed: %s", name, exc)
            outcomes.append((name, direction, exc))
    return outcomes


def cmd_sync(args: argparse.Namespace) -> int:
    """Sync one integration, all of them, or what the schedule says is due."""
    if args.due and args.direction:
        raise CommandError("--direction cannot be combined with --due (the schedule decides the direction)")
    trigger = SyncTrigger.SCHEDULED if args.due else SyncTrigger.CLI
    with _closing(_open_workspace(args)) as workspace:
        try:
            outcomes = _run_syncs(args, workspace, trigger)
        except SyncAlreadyRunning as exc:
            raise CommandError(_refusal(workspace, args.name, exc), ExitCode.PARTIAL) from None
        results: list[dict[str, Any]] = []
        lines: list[str] = []
        code = ExitCode.OK
        for name, direction, outcome in outcomes:
            if isinstance(outcome, SyncResult):
                results.append(_result_json(name, direction, trigger, args.dry_run, outcome))
                lines.extend(_result_lines(name, direction, args.dry_run, outcome))
                code = max(code, _result_code(outcome))
                continue
            reason = _refusal(workspace, name, outcome) if isinstance(outcome, SyncAlreadyRunning) else str(outcome)
            results.append({"integration": name, "direction": direction.value, "status": "error", "error": reason})
            lines.append(f"{name}: not synced: {reason}")
            code = max(code, ExitCode.AUTH if isinstance(outcome, AuthError) else ExitCode.PARTIAL)
        if not outcomes:
            lines.append(_nothing_to_do(workspace, args.due))
    _emit(args, {"results": results}, "\n".join(lines))
    return code


def _nothing_to_do(workspace: Workspace, due: bool) -> str:
    if not due:
        return "no integrations yet: add one with `crm-desktop integration add`"
    upcoming = []
    for integration in workspace.integrations.list():
        if not integration.sync_config.auto_sync:
            upcoming.append(f"{integration.name}: auto-sync off")
        else:
            upcoming.append(f"{integration.name}: next at {_when(workspace.sync.next_due(integration))}")
    return "nothing due" + (" (" + "; ".join(upcoming) + ")" if upcoming else "")


def _integration_names(workspace: Workspace) -> dict[int, str]:
    return {i.id: i.name for i in workspace.integrations.list() if i.id is not None}


def _conflict_json(conflict: ConflictRow, names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": conflict.id,
        "integration": names.get(conflict.integration_id, str(conflict.integration_id)),
        "runId": conflict.run_id,
        "object": conflict.object.value,
        "record": conflict.record_key,
        "crmId": conflict.crm_id,
        "field": conflict.field,
        "localValue": conflict.local_value,
        "crmValue": conflict.crm_value,
        "baseValue": conflict.base_value,
        "localChangedAt": conflict.local_changed_at,
        "crmChangedAt": conflict.crm_changed_at,
        "status": conflict.status.value,
        "resolution": conflict.resolution,
        "resolvedValue": conflict.resolved_value,
        "createdAt": conflict.created_at,
        "resolvedAt": conflict.resolved_at,
    }


def cmd_conflicts_list(args: argparse.Namespace) -> int:
    """List the conflicts waiting for a decision."""
    with _closing(_open_workspace(args)) as workspace:
        names = _integration_names(workspace)
        items = [_conflict_json(c, names) for c in workspace.sync.conflicts(args.integration)]
    if not items:
        _emit(args, [], "no open conflicts")
        return ExitCode.OK
    header = ("ID", "INTEGRATION", "OBJECT", "RECORD", "FIELD", "LOCAL", "CRM")
    rows = [(str(i["id"]), i["integration"], i["object"], i["record"], i["field"], _shown(i["localValue"]),
             _shown(i["crmValue"])) for i in items]
    _emit(args, items, _table(header, rows) + "\nresolve one with: crm-desktop conflicts resolve ID --take crm|local")
    return ExitCode.OK


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *rows])


def cmd_conflicts_show(args: argparse.Namespace) -> int:
    """Show one conflict: both values, the last agreed value and when each side changed."""
    with _closing(_open_workspace(args)) as workspace:
        data = _conflict_json(workspace.sync.conflict(args.id), _integration_names(workspace))
    lines = [
        f"conflict:     {data['id']} ({data['status']})",
        f"integration:  {data['integration']}",
        f"record:       {data['object']} {data['record']} (CRM id {data['crmId'] or '-'})",
        f"field:        {data['field']}",
        f"local value:  {_shown(data['localValue'])}  (changed {_when(data['localChangedAt'])})",
        f"CRM value:    {_shown(data['crmValue'])}  (changed {_when(data['crmChangedAt'])})",
        f"last synced:  {_shown(data['baseValue'])}",
        f"found by:     run {data['runId'] or '-'} at {_when(data['createdAt'])}",
    ]
    if data["status"] == "open":
        lines.append(f"resolve with: crm-desktop conflicts resolve {data['id']} --take crm|local "
                     f"(or --set {data['field']}=VALUE)")
    else:
        lines.append(f"resolved:     {data['resolution']}: {_shown(data['resolvedValue'])} "
                     f"at {_when(data['resolvedAt'])}")
    _emit(args, data, "\n".join(lines))
    return ExitCode.OK


def cmd_conflicts_resolve(args: argparse.Namespace) -> int:
    """Resolve a conflict on both sides: take the CRM's value, the local one, or set a value."""
    with _closing(_open_workspace(args)) as workspace:
        conflict = workspace.sync.conflict(args.id)
        value: str | None = None
        if args.set is not None:
            field_name, equals, value = args.set.partition("=")
            if not equals:
                raise CommandError(f"--set takes FIELD=VALUE, e.g. --set {conflict.field}=...")
            if field_name.strip() != conflict.field:
                raise CommandError(f"--set: conflict {conflict.id} is about {conflict.field}, not "
                                   f"{field_name.strip() or '(nothing)'}; use --set {conflict.field}=VALUE")
        kept = asyncio.run(workspace.sync.resolve(args.id, take=args.take, value=value))
    how = f"took the {'CRM' if args.take == 'crm' else 'local'} value" if args.take else "set the value"
    data = {"id": conflict.id, "field": conflict.field, "record": conflict.record_key,
            "resolution": args.take or "value", "value": kept}
    _emit(args, data, f"conflict {conflict.id} resolved ({how}): {conflict.record_key} {conflict.field} = "
                      f"{_shown(kept)} locally and in the CRM")
    return ExitCode.OK


def _run_json(run: SyncRunRow, names: dict[int, str]) -> dict[str, Any]:
    duration = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
    return {
        "id": run.id,
        "integration": names.get(run.integration_id, str(run.integration_id)),
        "trigger": run.trigger.value,
        "direction": run.direction,
        "dryRun": run.dry_run,
        "status": run.status.value,
        "counts": {"created": run.created, "updated": run.updated, "unchanged": run.unchanged,
                   "failed": run.failed, "conflicts": run.conflicts},
        "total": run.total,
        "apiCalls": run.api_calls,
        "message": run.message,
        "startedAt": run.started_at,
        "finishedAt": run.finished_at,
        "durationSeconds": None if duration is None else round(duration, 3),
    }


def _duration_text(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def cmd_runs_list(args: argparse.Namespace) -> int:
    """List recent sync runs, newest first."""
    with _closing(_open_workspace(args)) as workspace:
        names = _integration_names(workspace)
        items = [_run_json(r, names) for r in workspace.sync.runs(args.integration, limit=args.limit)]
    if not items:
        _emit(args, [], "no sync runs yet")
        return ExitCode.OK
    header = ("RUN", "INTEGRATION", "STARTED", "TRIGGER", "DIRECTION", "STATUS", "CREATED", "UPDATED",
              "UNCHANGED", "FAILED", "CONFLICTS", "API CALLS", "DURATION")
    rows = [
        (str(i["id"]), i["integration"], _when(i["startedAt"]), i["trigger"], i["direction"], i["status"],
         *(str(i["counts"][k]) for k in ("created", "updated", "unchanged", "failed", "conflicts")),
         str(i["apiCalls"]), _duration_text(i["durationSeconds"]))
        for i in items
    ]
    _emit(args, items, _table(header, rows))
    return ExitCode.OK


def cmd_runs_show(args: argparse.Namespace) -> int:
    """Show one run and what happened to each record."""
    with _closing(_open_workspace(args)) as workspace:
        run, log = workspace.sync.run(args.id)
        data = _run_json(run, _integration_names(workspace))
    records: list[dict[str, Any]] = [
        {"object": r.object.value, "record": r.record_key, "crmId": r.crm_id, "outcome": r.outcome.value,
         "category": r.error_category.value if r.error_category else None, "message": r.message}
        for r in log
    ]
    lines = [
        f"run:          {data['id']} ({data['status']})",
        f"integration:  {data['integration']}",
        f"trigger:      {data['trigger']}, direction {data['direction']}",
        f"started:      {_when(data['startedAt'])}",
        f"finished:     {_when(data['finishedAt'])} ({_duration_text(data['durationSeconds'])})",
        f"records:      {_counts_text(data['counts'])}",
        f"API calls:    {data['apiCalls']}",
        f"message:      {data['message'] or '-'}",
    ]
    if records:
        lines.append(f"record log ({len(records)}):")
        lines.append(_table(
            ("  OBJECT", "OUTCOME", "RECORD", "CRM ID", "DETAIL"),
            [("  " + r["object"], r["outcome"], r["record"], r["crmId"] or "-",
              ": ".join(x for x in (r["category"], r["message"]) if x)) for r in records],
        ))
    else:
        lines.append("record log:   empty")
    _emit(args, {"run": data, "records": records}, "\n".join(lines))
    return ExitCode.OK


def cmd_runs_undo(args: argparse.Namespace) -> int:
    """Undo a run: put back the values it changed, on both sides."""
    with _closing(_open_workspace(args)) as workspace:
        try:
            report = asyncio.run(workspace.sync.undo(args.id))
        except SyncAlreadyRunning as exc:
            raise CommandError(str(exc), ExitCode.PARTIAL) from None
        undo_run, _ = workspace.sync.run(report.run_id)
    data = {"runId": args.id, "undoRunId": report.run_id, "status": undo_run.status.value,
            "restoredLocal": report.restored_local, "restoredCrm": report.restored_crm, "kept": report.kept}
    lines = [f"undid run {args.id} (as run {report.run_id}, {undo_run.status.value}): "
             f"{report.restored_local} local and {report.restored_crm} CRM field values restored"]
    lines.extend(f"  kept: {reason}" for reason in report.kept)
    _emit(args, data, "\n".join(lines))
    return ExitCode.OK if undo_run.status.value == "succeeded" else ExitCode.PARTIAL


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
    parser.add_argument(
        "--demo",
        action="store_true",
        help="open the app in demo mode: three sandbox CRMs on loopback and a demo workspace (its own data dir)",
    )
    parser.set_defaults(handler=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    add_demo_commands(commands, _json_flag, _Parser)

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
        group = commands.add_parser(noun, help=f"import, push and fetch {noun}")
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
        singular = noun.removesuffix("s")
        imports = group_commands.add_parser(
            "import",
            help=f"import {noun} from a CSV or JSONL file into the local store",
            description=f"Validate every row and save the valid ones in the local store, matched by email (an "
            f"existing {singular} is updated). Nothing is sent to a CRM until the next sync. "
            "Refused rows are reported with line, field and reason. Exit 1 if any row was refused.",
        )
        imports.add_argument("file", type=Path, metavar="FILE", help="a .csv or .jsonl file")
        _json_flag(imports)
        imports.set_defaults(handler=cmd_contacts_import if noun == "contacts" else cmd_leads_import)
    _add_sync_commands(commands)
    return parser


def _add_sync_commands(commands: Any) -> None:
    """``sync``, ``conflicts`` and ``runs``."""
    sync = commands.add_parser(
        "sync",
        help="sync contacts and leads with a CRM (one integration, all, or what is due)",
        usage="%(prog)s (NAME | --all | --due) [--direction {push,pull,both}] [--dry-run] [--json]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Sync local contacts and leads with a CRM: pull the CRM's changes, merge them field
by field (a field changed on both sides is decided by its conflict rule, or waits
in `crm-desktop conflicts` when the rule is manual), then push local changes.

Prints one line per integration: status, run id, counts (created, updated,
unchanged, failed, conflicts), API calls and duration, then any failed records.
With --dry-run it asks the CRM what would change and prints the full plan
(creates, updates per field as old -> new, conflicts, skips with reasons),
writing nothing anywhere.""",
        epilog="""\
--due is meant for cron or a systemd timer, e.g.
  */5 * * * *  crm-desktop sync --due
It runs each integration's full sync every sync interval (default 6 h) and the
push of new contacts every push-new interval (default 1 h); runs missed while the
machine was off are caught up once. Integrations with auto-sync off are skipped.

exit codes:
  0  every run succeeded
  1  a record or a run failed, or another process is already syncing it
  2  usage or configuration error (e.g. no such integration)
  3  the CRM refused the credentials""",
    )
    which = sync.add_mutually_exclusive_group(required=True)
    which.add_argument("name", nargs="?", metavar="NAME", help="the integration to sync")
    which.add_argument("--all", action="store_true", help="sync every integration, one after another")
    which.add_argument("--due", action="store_true", help="run the scheduled syncs that are due now")
    sync.add_argument("--direction", choices=[d.value for d in SyncDirectionChoice if d.value != "push_new"],
                      help="push, pull or both (default: the integration's configured direction)")
    sync.add_argument("--dry-run", action="store_true", help="print the plan against the CRM; write nothing")
    _json_flag(sync)
    sync.set_defaults(handler=cmd_sync)

    conflicts = commands.add_parser("conflicts", help="list, show and resolve sync conflicts")
    conflict_commands = conflicts.add_subparsers(title="conflicts commands", metavar="ACTION", required=True,
                                                 parser_class=_Parser)
    listing = conflict_commands.add_parser(
        "list", help="list open conflicts",
        description="List the fields changed on both sides that wait for your decision (fields whose rule is "
        "manual).",
    )
    listing.add_argument("--integration", metavar="NAME", help="only this integration's conflicts")
    _json_flag(listing)
    listing.set_defaults(handler=cmd_conflicts_list)
    show = conflict_commands.add_parser("show", help="show one conflict: both values and the last synced one")
    show.add_argument("id", type=int, metavar="ID", help="the conflict's id (from `conflicts list`)")
    _json_flag(show)
    show.set_defaults(handler=cmd_conflicts_show)
    resolve = conflict_commands.add_parser(
        "resolve", help="resolve a conflict on both sides",
        description="Resolve a conflict: the value kept is written to the CRM and to the local store, and becomes "
        "the new last-synced value.",
    )
    resolve.add_argument("id", type=int, metavar="ID", help="the conflict's id (from `conflicts list`)")
    decision = resolve.add_mutually_exclusive_group(required=True)
    decision.add_argument("--take", choices=["crm", "local"], help="keep the CRM's value or the local one")
    decision.add_argument("--set", metavar="FIELD=VALUE",
                          help="keep a value of your own; FIELD must be the conflict's field (an empty VALUE "
                          "blanks it)")
    _json_flag(resolve)
    resolve.set_defaults(handler=cmd_conflicts_resolve)

    runs = commands.add_parser("runs", help="sync run history: list, show, undo")
    run_commands = runs.add_subparsers(title="runs commands", metavar="ACTION", required=True, parser_class=_Parser)
    run_list = run_commands.add_parser("list", help="list recent sync runs, newest first")
    run_list.add_argument("--integration", metavar="NAME", help="only this integration's runs")
    run_list.add_argument("--limit", type=int, default=50, metavar="N", help="how many runs (default 50)")
    _json_flag(run_list)
    run_list.set_defaults(handler=cmd_runs_list)
    run_show = run_commands.add_parser("show", help="show one run and the outcome of each record")
    run_show.add_argument("id", type=int, metavar="ID", help="the run's id (from `runs list`)")
    _json_flag(run_show)
    run_show.set_defaults(handler=cmd_runs_show)
    undo = run_commands.add_parser(
        "undo", help="undo a run: put back the values it changed",
        description="Undo a run: every field value it changed is set back, locally and in the CRM. Records the "
        "run created are kept (sync never deletes) and reported. The undo is itself a run. Exit 1 if the CRM "
        "refused to take some values back.",
    )
    undo.add_argument("id", type=int, metavar="ID", help="the run's id (from `runs list`)")
    _json_flag(undo)
    undo.set_defaults(handler=cmd_runs_undo)


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
    except ConflictResolutionError as exc:
        return _fail(str(exc), ExitCode.USAGE)
    except SyncAlreadyRunning as exc:
        return _fail(str(exc), ExitCode.PARTIAL)
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
