"""``crm-desktop runs ...``: the sync run history, one run's record log and errors, retry of its failures, undo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from crm_desktop.app.history_retention import PruneCounts, SpaceReport, days_before, kept_text
from crm_desktop.app.history_retention import counts_text as pruned_counts_text
from crm_desktop.app.sync_monitor import NothingToRetry
from crm_desktop.app.sync_service import SyncRunRow, SyncTrigger, local_run_name
from crm_desktop.app.text import led_by_record, plural
from crm_desktop.cli.arguments import COUNT, LIMIT, whole_number
from crm_desktop.cli.common import (
    CommandError,
    ExitCode,
    action,
    cannot_write,
    closing,
    command_group,
    confirm,
    counts_text,
    duration_text,
    emit,
    integration_names,
    open_workspace,
    run_id_argument,
    shown,
    stored_run_seconds,
    table,
    when,
)
from crm_desktop.store.models import utcnow
from crm_desktop.sync.actions import UndoRefused
from crm_desktop.sync.engine import SyncAlreadyRunning

logger = logging.getLogger(__name__)


def _run_json(run: SyncRunRow, names: dict[int, str]) -> dict[str, Any]:
    duration = stored_run_seconds(run.started_at, run.finished_at)
    return {
        "id": run.id,
        "integration": local_run_name(run) if run.integration_id is None
        else names.get(run.integration_id, str(run.integration_id)),
        "trigger": run.trigger.value,
        "direction": run.direction,
        "dryRun": run.dry_run,
        "status": run.status.value,
        "counts": {"created": run.created, "updated": run.updated, "unchanged": run.unchanged,
                   "failed": run.failed, "conflicts": run.conflicts, "decided": run.conflicts_decided},
        "total": run.total,
        "apiCalls": run.api_calls,
        "message": run.message,
        "startedAt": run.started_at,
        "finishedAt": run.finished_at,
        "durationSeconds": None if duration is None else round(duration, 3),
    }


def cmd_runs_list(args: argparse.Namespace) -> int:
    """List recent sync runs, newest first."""
    with closing(open_workspace(args)) as workspace:
        names = integration_names(workspace)
        items = [_run_json(r, names) for r in workspace.sync.runs(args.integration, limit=args.limit)]
    if not items:
        emit(args, [], "no sync runs yet")
        return ExitCode.OK
    header = ("RUN", "INTEGRATION", "STARTED", "TRIGGER", "DIRECTION", "STATUS", "CREATED", "UPDATED",
              "UNCHANGED", "FAILED", "WAITING", "DECIDED", "API CALLS", "DURATION")
    rows = [
        (str(i["id"]), i["integration"], when(i["startedAt"]), i["trigger"], i["direction"], i["status"],
         *(str(i["counts"][k]) for k in ("created", "updated", "unchanged", "failed", "conflicts", "decided")),
         str(i["apiCalls"]), duration_text(i["durationSeconds"]))
        for i in items
    ]
    emit(args, items, table(header, rows))
    return ExitCode.OK


def cmd_runs_show(args: argparse.Namespace) -> int:
    """Show one run and what happened to each record."""
    with closing(open_workspace(args)) as workspace:
        run = workspace.sync.store.get_run(args.id)
        log = workspace.sync.run_log(args.id, offset=args.offset, limit=args.limit)
        logged = workspace.sync.run_log_size(args.id)
        data = _run_json(run, integration_names(workspace))
    records: list[dict[str, Any]] = [
        {"object": r.object.value, "record": r.record_key, "crmId": r.crm_id, "outcome": r.outcome.value,
         "category": r.error_category.value if r.error_category else None, "message": r.message}
        for r in log
    ]
    lines = [
        f"run:          {data['id']} ({data['status']})",
        f"integration:  {data['integration']}",
        f"trigger:      {data['trigger']}, direction {data['direction']}",
        f"started:      {when(data['startedAt'])}",
        f"finished:     {when(data['finishedAt'])} ({duration_text(data['durationSeconds'])})",
        f"records:      {counts_text(data['counts'])}",
        f"API calls:    {data['apiCalls']}",
        f"message:      {data['message'] or '-'}",
    ]
    if records:
        shown_part = "" if len(records) == logged else f", {args.offset + 1}-{args.offset + len(records)} shown"
        lines.append(f"record log ({logged}{shown_part}):")
        lines.append(table(
            ("  OBJECT", "OUTCOME", "RECORD", "CRM ID", "DETAIL"),
            [("  " + r["object"], r["outcome"], r["record"], r["crmId"] or "-",
              ": ".join(x for x in (r["category"], r["message"]) if x)) for r in records],
        ))
        if args.offset + len(records) < logged:
            lines.append(f"more: crm-desktop runs show {args.id} --offset {args.offset + len(records)}")
    else:
        said = "empty" if not logged else f"{plural(logged, 'record')}, none from {args.offset + 1}"
        lines.append(f"record log:   {said}")
    emit(args, {"run": data, "records": records, "recordsTotal": logged, "offset": args.offset},
         "\n".join(lines))
    return ExitCode.OK


def cmd_runs_undo(args: argparse.Namespace) -> int:
    """Undo a run: put back the values it changed, on both sides."""
    with closing(open_workspace(args)) as workspace:
        try:
            report = asyncio.run(workspace.sync.undo(args.id, SyncTrigger.CLI, force=args.force))
        except SyncAlreadyRunning as exc:
            raise CommandError(str(exc), ExitCode.PARTIAL, "sync_running") from None
        except UndoRefused as exc:
            raise CommandError(str(exc), ExitCode.PARTIAL, "undo_refused") from None
        undo_run, _ = workspace.sync.run(report.run_id)
    data = {"runId": args.id, "undoRunId": report.run_id, "status": undo_run.status.value,
            "restoredLocal": report.restored_local, "restoredCrm": report.restored_crm,
            "alignedCrm": report.aligned_crm, "kept": report.kept,
            "overridden": [str(c) for c in report.overridden],
            "changes": [
                {"object": c.object.value, "email": c.email, "side": c.side.value,
                 "fields": {name: {"from": f.old, "to": f.new} for name, f in c.fields.items()}}
                for c in report.plan.changes
            ]}
    crm = f"{plural(report.restored_crm, 'CRM field value')} restored"
    if report.aligned_crm:
        crm += f", {plural(report.aligned_crm, 'CRM field value')} set to the restored local value"
    lines = [f"undid run {args.id} (as run {report.run_id}, {undo_run.status.value}): "
             f"{plural(report.restored_local, 'local field value')} restored, {crm}"]
    for change in report.plan.changes:
        where = "in CRM" if change.side.value == "crm" else "locally"
        lines.append(f"  {where:<8} {change.object.value:<7} {change.email}")
        lines.extend(f"      {name}: {shown(f.old)} -> {shown(f.new)}" for name, f in change.fields.items())
    lines.extend(f"  overwritten (--force): {item}" for item in report.overridden)
    lines.extend(f"  kept: {reason}" for reason in report.kept)
    if report.failed:
        lines.append(f"{plural(report.failed, 'record')} not put back: once the CRM takes them, "
                     f"crm-desktop runs undo {args.id} again puts back the rest")
    emit(args, data, "\n".join(lines))
    return ExitCode.OK if undo_run.status.value == "succeeded" else ExitCode.PARTIAL


def cmd_runs_errors(args: argparse.Namespace) -> int:
    """A run's failed records grouped by error category, with a sample each; ``--csv`` writes them all."""
    with closing(open_workspace(args)) as workspace:
        workspace.sync.store.get_run(args.id)
        groups = workspace.monitor.error_groups(args.id)
        written = None
        if args.csv is not None:
            try:
                written = workspace.monitor.export_errors(args.id, args.csv)
            except OSError as exc:
                raise cannot_write(args.csv, exc) from None
    data: dict[str, Any] = {
        "runId": args.id,
        "groups": [{"category": g.category.value if g.category else None, "count": g.count,
                    "sampleRecord": g.sample_record, "sampleMessage": g.sample_message} for g in groups],
    }
    if not groups:
        lines = [f"run {args.id} has no failed records"]
    else:
        lines = [table(("CATEGORY", "RECORDS", "SAMPLE"),
                       [((g.category.value if g.category else "other"), str(g.count),
                         led_by_record(g.sample_record, g.sample_message)) for g in groups])]
    if written is not None:
        data["csv"] = {"path": str(args.csv), "records": written}
        lines.append(f"wrote {plural(written, 'failed record')} to {args.csv}")
    emit(args, data, "\n".join(lines))
    return ExitCode.OK


def cmd_runs_retry(args: argparse.Namespace) -> int:
    """Send just the failed records of a run again, as a push run of its integration."""
    with closing(open_workspace(args)) as workspace:
        try:
            report = asyncio.run(workspace.monitor.retry_failed(args.id, SyncTrigger.CLI))
        except NothingToRetry as exc:
            raise CommandError(str(exc), ExitCode.PARTIAL, "nothing_to_retry") from None
        except SyncAlreadyRunning as exc:
            raise CommandError(str(exc), ExitCode.PARTIAL, "sync_running") from None
        result = report.result
        assert result is not None and result.run_id is not None
        retry_run = workspace.sync.store.get_run(result.run_id)
        data = {"runId": args.id, "retryRunId": result.run_id, "retried": report.retried,
                "notLocal": report.not_local, **_run_json(retry_run, integration_names(workspace))}
    lines = [f"retried {plural(report.retried, 'failed record')} of run {args.id} as run {result.run_id} "
             f"({retry_run.status.value}): {counts_text(data['counts'])}"]
    lines.extend(f"  {failure.category.value}: {led_by_record(failure.email, failure.message)}"
                 for failure in result.failures)
    if report.not_local:
        lines.append(f"not retried ({plural(len(report.not_local), 'record')} pulled from the CRM; the next sync "
                     "pulls them again): " + ", ".join(report.not_local))
    emit(args, data, "\n".join(lines))
    return ExitCode.OK if retry_run.status.value == "succeeded" else ExitCode.PARTIAL


#: The longest ``--older-than``: a hundred years.
MAX_PRUNE_DAYS = 36_500


def _prune_json(counts: PruneCounts) -> dict[str, int]:
    return {"runs": counts.runs, "recordLogLines": counts.record_log, "fieldChanges": counts.field_changes,
            "olderRunsKept": counts.kept}


def _space_text(space: SpaceReport | None) -> str | None:
    if space is None:
        return None
    if space.how == "waiting":
        return "the freed space goes back to the disk at the next prune with no sync running"
    if space.how == "failed":
        return f"the freed space could not be given back to the disk ({space.reason}); the store reuses it"
    return f"gave {space.freed / 1_000_000:,.1f} MB back to the disk"


def cmd_runs_prune(args: argparse.Namespace) -> int:
    """Delete the runs older than a number of days, with their record log and field changes, after asking."""
    older_than = days_before(utcnow(), args.older_than)
    with closing(open_workspace(args)) as workspace:
        planned = workspace.history.count(older_than)
        kept = kept_text(planned)
        if not planned.runs:
            nothing = f"nothing to prune: no run started before {when(older_than)} can go"
            emit(args, {"olderThan": older_than, "pruned": False, "deleted": _prune_json(planned)},
                 "\n".join(line for line in (nothing, kept) if line))
            return ExitCode.OK
        what = (f"{pruned_counts_text(planned)} started before {when(older_than)}; they can no longer be undone, "
                "retried or shown")
        if not args.yes:
            if not sys.stdin.isatty():
                raise CommandError(f"pruning deletes {what}: add --yes to do it without asking",
                                   ExitCode.USAGE, "confirmation_needed")
            sys.stderr.write("\n".join(filter(None, [f"Pruning deletes {what}.", kept])) + "\n")
            if not confirm("Delete them?"):
                raise CommandError("nothing was pruned", ExitCode.PARTIAL, "cancelled")
        outcome = workspace.history.prune(older_than)
    counts = outcome.counts
    space = _space_text(outcome.space)
    data: dict[str, Any] = {"olderThan": older_than, "pruned": True, "deleted": _prune_json(counts)}
    if outcome.space is not None:
        data["space"] = {"how": outcome.space.how, "bytesBefore": outcome.space.bytes_before,
                         "bytesAfter": outcome.space.bytes_after}
    lines = [f"deleted {pruned_counts_text(counts)} started before {when(older_than)}", kept_text(counts), space]
    emit(args, data, "\n".join(line for line in lines if line))
    return ExitCode.OK


def add_commands(commands: Any) -> None:
    """Register ``runs`` and its actions."""
    run_commands = command_group(commands, "runs", help="sync run history: list, show, errors, retry, undo, prune")
    with action(run_commands, "list", cmd_runs_list, help="list recent sync runs, newest first") as run_list:
        run_list.add_argument("--integration", metavar="NAME", help="only this integration's runs")
        run_list.add_argument("--limit", type=LIMIT, default=50, metavar="N", help="how many runs (default 50)")
    with action(run_commands, "show", cmd_runs_show, help="show one run and the outcome of each record") as run_show:
        run_id_argument(run_show)
        run_show.add_argument("--limit", type=LIMIT, default=500, metavar="N",
                              help="at most N records of the log (default 500)")
        run_show.add_argument("--offset", type=COUNT, default=0, metavar="K", help="skip the first K records")
    with action(
        run_commands, "errors", cmd_runs_errors,
        help="a run's failed records by error category, with a sample; --csv writes them all",
        description="Group a run's failed records by error category (validation, duplicate, auth, rate limit, "
        "server, network...) with how many and a sample message. --csv writes every failed record to a CSV file; "
        "cells that a spreadsheet would run as a formula (starting with = + - @) are prefixed with an apostrophe.",
    ) as errors:
        run_id_argument(errors)
        errors.add_argument("--csv", type=Path, metavar="PATH", help="write the failed records to this CSV file")
    with action(
        run_commands, "retry", cmd_runs_retry,
        help="send just the failed records of a run again",
        description="Push the local records that failed in run ID again, as a new push run of the same "
        "integration (nothing else is sent or pulled). Records that failed while being pulled are not local "
        "records: the next sync pulls them again. Exit 1 when records fail again or there is nothing to retry; "
        "2 for a run that does not exist or has no CRM to send to (an import or an edit of the local store).",
    ) as retry:
        run_id_argument(retry)
    with action(
        run_commands, "undo", cmd_runs_undo,
        help="undo a run: put back the values it changed",
        description="Undo a run: every field value it changed is set back, locally and in the CRM (a value the run "
        "only pulled is written to the CRM too, so both sides agree). Records the run created are kept (sync never "
        "deletes) and reported. The undo is itself a run, with a record log. Refused (exit 1) when the run was "
        "undone already, or when values it wrote changed after it (listed; --force overwrites them). Exit 1 if "
        "the CRM refused to take some values back; the same undo run again then puts back the rest.",
    ) as undo:
        run_id_argument(undo)
        undo.add_argument("--force", action="store_true",
                          help="put back the values from before the run even where they changed after it")
    with action(
        run_commands, "prune", cmd_runs_prune,
        help="delete runs older than DAYS days, with their record log and field changes",
        description="Delete the runs that started more than DAYS days ago, each whole: its row, its record log and "
        "its field changes (the History lines of the people it changed), so it can no longer be undone, retried or "
        "shown. Kept whatever their age: runs still running, with open conflicts or CRM writes that still need "
        "them, each integration's last sync, and the undo of a run kept. The people forgotten at their request "
        "stay forgotten. Says how many runs and lines would go and asks first on a terminal; elsewhere --yes is "
        "required (exit 2 without it). Exit 1 when the answer is no. On a SQLite store the freed space goes back to "
        "the disk. Settings > General > Keep run history does the same on its own.",
    ) as prune:
        prune.add_argument("--older-than", type=whole_number(1, MAX_PRUNE_DAYS), required=True, metavar="DAYS",
                           help="delete the runs started more than DAYS days ago")
        prune.add_argument("--yes", action="store_true", help="do not ask first")
