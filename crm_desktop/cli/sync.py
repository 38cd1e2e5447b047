"""``crm-desktop sync``: one integration, all of them, or what the schedule says is due; dry runs print the plan."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from crm_desktop.app.errors import AuthError, ConfigurationError, CredentialsError, ProviderError, VaultError
from crm_desktop.app.push_fields import NOT_SENT
from crm_desktop.app.sync_service import SyncResult, SyncTrigger
from crm_desktop.app.text import plural
from crm_desktop.app.workflows import SocialWorkflows
from crm_desktop.app.workspace import Workspace
from crm_desktop.cli.common import (
    CommandError,
    ExitCode,
    closing,
    counts_text,
    duration_text,
    emit,
    json_flag,
    open_workspace,
    shown,
    stored_run_seconds,
    when,
)
from crm_desktop.cli.exits import error_exit
from crm_desktop.domain.models import SyncDirection
from crm_desktop.domain.outcomes import ErrorCategory
from crm_desktop.sync.engine import SyncAlreadyRunning
from crm_desktop.sync.lock_refusal import describe_holder
from crm_desktop.sync.plan import ChangeAction, PlannedChange, Side

logger = logging.getLogger(__name__)


def _change_json(change: PlannedChange) -> dict[str, Any]:
    return {
        "object": change.object.value,
        "email": change.email,
        "side": change.side.value,
        "action": change.action.value,
        "fields": {
            name: {"old": field.old, "new": field.new, "reason": field.reason or None}
            for name, field in change.fields.items()
        },
        "reason": change.reason or None,
        "decision": change.decision.value if change.decision else None,
    }


def _change_lines(change: PlannedChange) -> list[str]:
    where = "in CRM" if change.side is Side.CRM else "locally"
    if change.action is ChangeAction.CONFLICT:
        where = ""
    head = f"  {change.action.value:<8} {where:<8} {change.object.value:<7} {change.email}"
    if change.action is ChangeAction.SKIP or (change.reason and not change.fields):
        return [f"{head}: {change.reason}"]
    lines = [head]
    for name, field in change.fields.items():
        if change.action is ChangeAction.CONFLICT:
            lines.append(f"      {name}: local {shown(field.old)} | CRM {shown(field.new)}; {change.reason}")
        else:
            lines.append(f"      {name}: {shown(field.old)} -> {shown(field.new)}")
    return lines


def _conflict_lines(result: SyncResult) -> list[str]:
    """Conflicts the rules decided apart from those waiting; the hint only when some wait."""
    lines: list[str] = []
    decided = result.counts.get("decided", 0)
    waiting = result.counts.get("conflicts", 0)
    if decided:
        lines.append(f"  decided by rule ({decided}): fields changed on both sides, settled by their conflict rule")
    if waiting:
        lines.append(f"  conflicts waiting for you ({waiting}): crm-desktop conflicts list")
    return lines


def _recorded_seconds(workspace: Workspace, result: SyncResult) -> float | None:
    """The length of the run as recorded, so ``sync`` and ``runs list`` print the same duration."""
    if result.run_id is None:
        return None
    row, _ = workspace.sync.run(result.run_id)
    return stored_run_seconds(row.started_at, row.finished_at)


def _result_json(name: str, direction: SyncDirection, trigger: SyncTrigger, dry_run: bool,
                 result: SyncResult, seconds: float | None = None) -> dict[str, Any]:
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
        "durationSeconds": round(result.duration if seconds is None else seconds, 3),
        "message": result.message,
        "authFailed": result.auth_failed,
        "failures": [{"email": f.email, "category": f.category.value, "message": f.message} for f in result.failures],
    }
    if result.unlisted_failures:
        data["failuresNotListed"] = result.unlisted_failures
    if result.not_sent:
        data["notSent"] = {"columns": dict(result.not_sent), "reason": NOT_SENT,
                           "hint": f"crm-desktop mapping set {name} custom.COLUMN --crm-field FIELD"}
    if dry_run:
        data["plan"] = [_change_json(c) for c in result.changes]
    return data


def _result_lines(name: str, direction: SyncDirection, dry_run: bool, result: SyncResult,
                  seconds: float | None = None) -> list[str]:
    """The run in words; ``seconds`` is the recorded run's length (what ``runs list`` shows), when there is one."""
    if dry_run:
        head = f"{name}: dry run of {direction.value}, nothing written"
    else:
        head = f"{name}: {result.status.value} (run {result.run_id}, {direction.value})"
    took = duration_text(result.duration if seconds is None else seconds)
    lines = [f"{head}: {counts_text(result.counts)}; {plural(result.api_calls, 'API call')} in {took}"]
    if result.message:
        lines.append(f"  stopped: {result.message}")
    lines.extend(f"  failed   {f.email}  {f.category.value}: {f.message}" for f in result.failures)
    if result.unlisted_failures:
        lines.append(f"  and {plural(result.unlisted_failures, 'more failed record')}: "
                     f"crm-desktop runs errors {result.run_id} --csv FILE lists every one")
    if result.not_sent:
        columns = ", ".join(f"{column} ({plural(count, 'record')})" for column, count in result.not_sent.items())
        lines.append(f"  {NOT_SENT}: {columns}; kept locally. To send one, map it to a CRM field: "
                     f"crm-desktop mapping set {name} custom.COLUMN --crm-field FIELD (or in Field Mapping)")
    if dry_run:
        if result.changes:
            lines.append("  plan:")
            for change in result.changes:
                lines.extend("  " + line for line in _change_lines(change))
        else:
            lines.append("  plan: nothing to change")
    lines.extend(_conflict_lines(result))
    return lines


def _result_code(result: SyncResult) -> ExitCode:
    if result.auth_failed:
        return ExitCode.AUTH
    failed = result.status.value in {"failed", "partial", "offline"} or result.counts.get("failed", 0) > 0
    return ExitCode.PARTIAL if failed else ExitCode.OK


def _unreachable(error: Exception) -> bool:
    """Whether ``error`` says the CRM could not be reached (network down, host unreachable) after the retries."""
    return isinstance(error, ProviderError) and error.category is ErrorCategory.NETWORK


def _offline_json_and_line(workspace: Workspace, name: str, direction: SyncDirection,
                           error: Exception) -> tuple[dict[str, Any], str]:
    """A sync whose CRM could not be reached before its run began (so none was recorded), said as a run that
    loses the CRM half-way says it: offline, and how many records wait for the next run."""
    waiting = plural(workspace.sync.records_waiting(name), "record waits", "records wait")
    message = f"the CRM could not be reached ({error}); {waiting} for the next run"
    exit_code, error_code = _error_exit(error)
    data = {"integration": name, "runId": None, "direction": direction.value, "status": "offline",
            "message": message, "error": message, "code": error_code, "exitCode": int(exit_code)}
    return data, f"{name}: offline, not synced: {message}"


def _error_exit(error: Exception) -> tuple[ExitCode, str]:
    """What one integration's error means in a run over several (its exit code and ``--json`` error code): what it
    means alone, from the one table of :func:`~crm_desktop.cli.exits.error_exit`."""
    return error_exit(error) or (ExitCode.PARTIAL, "failed")


def lock_refusal(
    workspace: Workspace, name: str, exc: SyncAlreadyRunning, then: str = "try again when it has finished"
) -> str:
    """``exc``'s message with who holds the integration's lock (machine, process, run, last heartbeat, when it is
    taken over if that run is dead), then what to do."""
    if exc.holder is not None:  # the refusal named the holder already
        return f"{exc}; {then}"
    integration = workspace.integrations.get(name)
    holder = workspace.sync.store.lock_state(integration.id) if integration.id is not None else None
    detail = f" {describe_holder(holder)}" if holder is not None else ""
    return f"{exc}{detail}; {then}"


Outcome = tuple[str, SyncDirection, SyncResult | Exception]


async def _run_due(workspace: Workspace, trigger: SyncTrigger) -> list[tuple[str, SyncResult | Exception]]:
    """The due syncs, then the social workflows' hourly push of conversation contacts and daily rescore when due
    (the push's runs are listed with the syncs); their marks in the store keep the app and ``serve`` from
    repeating them."""
    outcomes = await workspace.sync.run_due(trigger=trigger)
    return outcomes + (await SocialWorkflows.for_workspace(workspace).run_periodic_if_due() or [])


def _prune_history(workspace: Workspace) -> None:
    """After a scheduled batch, prune the runs the history retention setting no longer keeps (as the app does); a
    store that does not answer leaves them for the next batch, the batch's outcome stands."""
    try:
        workspace.history.prune_by_setting()
    except Exception as exc:
        logger.warning("the run history could not be pruned: %s", exc)


def _run_syncs(args: argparse.Namespace, workspace: Workspace, trigger: SyncTrigger) -> list[Outcome]:
    """Run the syncs the arguments ask for; with several, one integration's failure does not stop the others."""
    service = workspace.sync
    if args.due and not args.dry_run:
        outcomes: list[Outcome] = []
        for name, result in asyncio.run(_run_due(workspace, trigger)):
            direction = SyncDirection.BOTH
            if isinstance(result, SyncResult) and result.run_id is not None:
                direction = SyncDirection(service.run(result.run_id)[0].direction)
            outcomes.append((name, direction, result))
        if outcomes:
            _prune_history(workspace)
        return outcomes
    if args.due:
        jobs = [(item.integration.name, item.direction) for item in service.due()]
    else:
        targets = workspace.integrations.list() if args.all else [workspace.integrations.get(args.name)]
        jobs = [
            (i.name, SyncDirection(args.direction) if args.direction
             else i.sync_config.direction)
            for i in targets
        ]
    outcomes = []
    for name, direction in jobs:
        try:
            outcomes.append((name, direction, asyncio.run(service.sync(name, direction, trigger,
                                                                       dry_run=args.dry_run))))
        except (SyncAlreadyRunning, AuthError, ProviderError, ConfigurationError, CredentialsError,
                VaultError) as exc:
            if args.name and not _unreachable(exc):
                raise  # one integration: the error is the command's error (offline is said as a run's state)
            logger.warning("sync of %s failed: %s", name, exc)
            outcomes.append((name, direction, exc))
    return outcomes


def cmd_sync(args: argparse.Namespace) -> int:
    """Sync one integration, all of them, or what the schedule says is due."""
    if args.due and args.direction:
        raise CommandError("--direction cannot be combined with --due (the schedule decides the direction)")
    trigger = SyncTrigger.SCHEDULED if args.due else SyncTrigger.CLI
    with closing(open_workspace(args)) as workspace:
        if args.due and not args.dry_run:
            workspace.keep_alerts_of_runs()  # from cron: the app's Alerts list what it met
        try:
            outcomes = _run_syncs(args, workspace, trigger)
        except SyncAlreadyRunning as exc:
            raise CommandError(lock_refusal(workspace, args.name, exc), ExitCode.PARTIAL, "sync_running") from None
        results: list[dict[str, Any]] = []
        lines: list[str] = []
        code = ExitCode.OK
        for name, direction, outcome in outcomes:
            if isinstance(outcome, SyncResult):
                seconds = _recorded_seconds(workspace, outcome)
                results.append(_result_json(name, direction, trigger, args.dry_run, outcome, seconds))
                lines.extend(_result_lines(name, direction, args.dry_run, outcome, seconds))
                code = max(code, _result_code(outcome))
                continue
            if _unreachable(outcome):
                data, line = _offline_json_and_line(workspace, name, direction, outcome)
                results.append(data)
                lines.append(line)
                code = max(code, ExitCode(data["exitCode"]))
                continue
            reason = lock_refusal(workspace, name, outcome) if isinstance(outcome, SyncAlreadyRunning) else str(outcome)
            outcome_code, error_code = _error_exit(outcome)
            # A set-up problem (no credentials, an unusable keyring) is skipped, not failed: it needs the user.
            status = "skipped" if outcome_code is ExitCode.USAGE else "error"
            # ``code`` and ``exitCode`` as `sync NAME --json` gives them for the same error, so a script tells a
            # refused login from a CRM error or a sync already running, integration by integration.
            results.append({"integration": name, "direction": direction.value, "status": status, "error": reason,
                            "code": error_code, "exitCode": int(outcome_code)})
            lines.append(f"{name}: {'skipped' if status == 'skipped' else 'not synced'}: {reason}")
            code = max(code, outcome_code)
        if not outcomes:
            lines.append(_nothing_to_do(workspace, args.due))
    emit(args, {"results": results}, "\n".join(lines))
    return code


def _nothing_to_do(workspace: Workspace, due: bool) -> str:
    if not due:
        return "no integrations yet: add one with `crm-desktop integration add`"
    upcoming = []
    for integration in workspace.integrations.list():
        if not integration.sync_config.auto_sync:
            upcoming.append(f"{integration.name}: auto-sync off")
        elif (held := workspace.sync.waiting_for_reconnect(integration)) is not None:
            upcoming.append(f"{integration.name}: the CRM refused its sign-in; waiting for a reconnect (crm-desktop "
                            f"integration update {integration.name} --secret-stdin), else tried again at {when(held)}")
        else:
            upcoming.append(f"{integration.name}: next at {when(workspace.sync.next_due(integration))}")
    return "nothing due" + (" (" + "; ".join(upcoming) + ")" if upcoming else "")


def add_commands(commands: Any) -> None:
    """Register ``sync``."""
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
    sync.add_argument("--direction", choices=[d.value for d in SyncDirection.configurable()],
                      help="push, pull or both (default: the integration's configured direction)")
    sync.add_argument("--dry-run", action="store_true", help="print the plan against the CRM; write nothing")
    json_flag(sync)
    sync.set_defaults(handler=cmd_sync)

