"""``crm-desktop conflicts ...``: list, show and resolve fields changed on both sides."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections import Counter
from typing import Any

from crm_desktop.app.field_mapping import local_field_label
from crm_desktop.app.sync_service import ConflictOutcome, ConflictRow, ResolutionStatus
from crm_desktop.app.text import plural
from crm_desktop.cli.arguments import LIMIT
from crm_desktop.cli.common import (
    CommandError,
    ExitCode,
    action,
    closing,
    command_group,
    emit,
    integration_names,
    open_workspace,
    shown,
    table,
    when,
)

logger = logging.getLogger(__name__)

#: The local value of a conflict whose local record was deleted since it was raised.
GONE = "deleted here since"


def _conflict_json(
    conflict: ConflictRow, names: dict[int, str], local_now: dict[int, str | None] | None
) -> dict[str, Any]:
    """A conflict for ``--json``: ``localValue`` is the field as the record holds it now (``local_now``, from
    ``SyncService.local_values_now``; ``None`` for a resolved conflict, whose recorded value is given),
    ``localAtConflict`` the value recorded when the conflict was raised; ``localDeleted`` says the local record was
    deleted since (its ``localValue`` is then null: there is none)."""
    deleted = local_now is not None and conflict.id not in local_now
    return {
        "id": conflict.id,
        "integration": names.get(conflict.integration_id, str(conflict.integration_id)),
        "runId": conflict.run_id,
        "object": conflict.object.value,
        "record": conflict.record_key,
        "crmId": conflict.crm_id,
        "field": conflict.field,
        "localValue": None if deleted else (local_now or {}).get(conflict.id, conflict.local_value),
        "localAtConflict": conflict.local_value,
        "localDeleted": deleted,
        "crmValue": conflict.crm_value,
        "baseValue": conflict.base_value,
        "localChangedAt": conflict.local_changed_at,
        "crmChangedAt": conflict.crm_changed_at,
        "status": conflict.status.value,
        "resolution": conflict.resolution,
        "resolvedValue": conflict.resolved_value,
        "createdAt": conflict.created_at,
        # An open conflict's time is a claim of a resolution under way (SyncStore.claim_conflict), not a resolution.
        "resolvedAt": conflict.resolved_at if conflict.status.value == "resolved" else None,
    }


def _local_text(item: dict[str, Any]) -> str:
    """The local value now, and the one recorded when the conflict was raised if it has changed since (or the
    record is gone)."""
    if item["localDeleted"]:
        return f"{GONE} (was {shown(item['localAtConflict'])})"
    if item["localValue"] == item["localAtConflict"]:
        return shown(item["localValue"])
    return f"{shown(item['localValue'])} (was {shown(item['localAtConflict'])})"


def cmd_conflicts_list(args: argparse.Namespace) -> int:
    """List the conflicts waiting for a decision."""
    with closing(open_workspace(args)) as workspace:
        names = integration_names(workspace)
        # One more than asked tells whether another page follows, without counting the whole table.
        page = workspace.sync.conflicts(args.integration, after_id=args.after, limit=args.limit + 1)
        page_items = page[: args.limit]
        # The record's value now (one read per object, not per conflict): a sibling conflict resolved or an edit
        # since may have changed what was recorded when the conflict was raised.
        local_now = workspace.sync.local_values_now(page_items)
        items = [_conflict_json(c, names, local_now) for c in page_items]
    if not items:
        emit(args, [], "no open conflicts")
        return ExitCode.OK
    header = ("ID", "INTEGRATION", "OBJECT", "RECORD", "FIELD", "LOCAL", "CRM")
    rows = [(str(i["id"]), i["integration"], i["object"], i["record"], i["field"], _local_text(i),
             shown(i["crmValue"])) for i in items]
    text = table(header, rows)
    if len(page) > args.limit:
        text += f"\nmore conflicts wait: crm-desktop conflicts list --after {items[-1]['id']}"
    if any(i["localValue"] != i["localAtConflict"] and not i["localDeleted"] for i in items):
        text += ("\nLOCAL is the value now, which --take local keeps; (was ...) the one when the conflict was "
                 "raised")
    if any(i["localDeleted"] for i in items):
        text += (f"\n{GONE}: the local record is gone, so --take local and --set have nothing to write here; "
                 "--take crm closes the conflict (the CRM keeps its value, nothing is written)")
    emit(args, items, text + "\nresolve one with: crm-desktop conflicts resolve ID --take crm|local (several: "
                             "ID ID ..., or --all [--integration NAME] [--field FIELD])")
    return ExitCode.OK


def cmd_conflicts_show(args: argparse.Namespace) -> int:
    """Show one conflict: both values, the last agreed value and when each side changed."""
    with closing(open_workspace(args)) as workspace:
        conflict = workspace.sync.conflict(args.id)
        local_now = workspace.sync.local_values_now([conflict]) if conflict.status.value == "open" else None
        data = _conflict_json(conflict, integration_names(workspace), local_now)
    lines = [
        f"conflict:     {data['id']} ({data['status']})",
        f"integration:  {data['integration']}",
        f"record:       {data['object']} {data['record']} (CRM id {data['crmId'] or '-'})",
        f"field:        {data['field']}",
        f"local value:  {GONE} the conflict was raised (it held {shown(data['localAtConflict'])} then, changed "
        f"{when(data['localChangedAt'])})"
        if data["localDeleted"] else
        f"local value:  {shown(data['localValue'])}  (changed {when(data['localChangedAt'])})"
        if data["localValue"] == data["localAtConflict"] else
        f"local value:  {shown(data['localValue'])}  (when the conflict was raised: {shown(data['localAtConflict'])}, "
        f"changed {when(data['localChangedAt'])})",
        f"CRM value:    {shown(data['crmValue'])}  (changed {when(data['crmChangedAt'])})",
        f"last synced:  {shown(data['baseValue'])}",
        f"found by:     run {data['runId'] or '-'} at {when(data['createdAt'])}",
    ]
    if data["localDeleted"]:
        lines.append("note:         the local record is gone: --take local and --set have nothing to write here; "
                     f"close it with: crm-desktop conflicts resolve {data['id']} --take crm (nothing is written)")
    elif data["status"] == "open" and data["localValue"] != data["localAtConflict"]:
        lines.append(f"note:         --take local keeps {shown(data['localValue'])}, the value now, not "
                     f"{shown(data['localAtConflict'])}, the one when the conflict was raised"
                     + (" (blank: the CRM's field is cleared)" if data["localValue"] is None else ""))
    if data["status"] == "open" and not data["localDeleted"]:
        lines.append(f"resolve with: crm-desktop conflicts resolve {data['id']} --take crm|local "
                     f"(or --set {data['field']}=VALUE)")
    elif data["status"] != "open":
        lines.append(f"resolved:     {data['resolution']}: {shown(data['resolvedValue'])} "
                     f"at {when(data['resolvedAt'])}")
    emit(args, data, "\n".join(lines))
    return ExitCode.OK


def cmd_conflicts_resolve(args: argparse.Namespace) -> int:
    """Resolve one conflict, several or all those matching, on both sides."""
    if args.all and args.id:
        raise CommandError("give conflict IDs or --all, not both")
    if not args.all and not args.id:
        raise CommandError("give the conflict's ID (or several), or --all (with --integration NAME, --field FIELD)")
    if (args.integration or args.field) and not args.all:
        raise CommandError("--integration and --field choose the conflicts of --all; with IDs, give just the IDs")
    if not args.all and len(set(args.id)) == 1:
        return _resolve_one(args, args.id[0])
    if args.set is not None:
        raise CommandError("--set keeps a typed value of one conflict's field; for several conflicts use "
                           "--take crm|local")
    return _resolve_many(args)


def _resolve_one(args: argparse.Namespace, conflict_id: int) -> int:
    """``conflicts resolve ID``: the CRM's value, the local one, or a typed one."""
    with closing(open_workspace(args)) as workspace:
        conflict = workspace.sync.conflict(conflict_id)
        value: str | None = None
        if args.set is not None:
            field_name, equals, value = args.set.partition("=")
            if not equals:
                raise CommandError(f"--set takes FIELD=VALUE, e.g. --set {conflict.field}=...")
            if field_name.strip() != conflict.field:
                raise CommandError(f"--set: conflict {conflict.id} is about {conflict.field}, not "
                                   f"{field_name.strip() or '(nothing)'}; use --set {conflict.field}=VALUE")
        kept = asyncio.run(workspace.sync.resolve(conflict_id, take=args.take, value=value))
    how = {"crm": "took the CRM value", "local": "took the local value now"}.get(args.take, "set the value")
    data = {"id": conflict.id, "field": conflict.field, "record": conflict.record_key,
            "resolution": args.take or "value", "value": kept, "localAtConflict": conflict.local_value}
    text = (f"conflict {conflict.id} resolved ({how}): {conflict.record_key} {conflict.field} = {shown(kept)} "
            f"locally and in the CRM")
    if kept is None:
        text += " (blank: the CRM's field was cleared)"
    if args.take == "local" and kept != conflict.local_value:
        text += f"\nthe local value changed since the conflict was raised (then {shown(conflict.local_value)})"
    emit(args, data, text)
    return ExitCode.OK


#: How each outcome of a bulk resolution is told, per line and in the summary.
_OUTCOME_WORDS = {
    ResolutionStatus.RESOLVED: "resolved",
    ResolutionStatus.ALREADY_RESOLVED: "already resolved elsewhere",
    ResolutionStatus.BEING_RESOLVED: "being resolved elsewhere (look again in a moment)",
    ResolutionStatus.FAILED: "failed (left open)",
    ResolutionStatus.NOT_TRIED: "not tried (left open)",
}


def _outcome_line(outcome: ConflictOutcome, names: dict[int, str]) -> str:
    conflict = outcome.conflict
    where = f"{conflict.record_key} {conflict.field} in {names.get(conflict.integration_id, '?')}"
    if outcome.status is ResolutionStatus.RESOLVED:
        return f"conflict {conflict.id} resolved: {where} = {shown(outcome.kept)} locally and in the CRM"
    return f"conflict {conflict.id} {_OUTCOME_WORDS[outcome.status]}: {where}: {outcome.reason}"


def _resolve_many(args: argparse.Namespace) -> int:
    """``conflicts resolve ID ID ...`` or ``--all``: one decision for many, each conflict's outcome told as it is
    known, then a summary; exit 0 only when every one was resolved."""
    with closing(open_workspace(args)) as workspace:
        names = integration_names(workspace)
        if args.all:
            every = workspace.sync.conflicts(args.integration)
            ids = [c.id for c in every if args.field is None or _is_field(c, args.field)]
            if not ids:
                which = "".join([f" of {args.integration}" if args.integration else "",
                                 f" on field {args.field}" if args.field else ""])
                hint = " (fields are named as in `conflicts list`, such as firstName)" if args.field else ""
                emit(args, {"results": [], "summary": _summary([])}, f"no open conflicts{which}{hint}")
                return ExitCode.OK
        else:
            ids = list(dict.fromkeys(args.id))
        as_json = getattr(args, "json", False)

        def told(outcome: ConflictOutcome) -> None:
            if not as_json:
                print(_outcome_line(outcome, names), flush=True)

        outcomes = asyncio.run(workspace.sync.resolve_many(ids, take=args.take, progress=told))
    summary = _summary(outcomes)
    results = [{
        "id": o.conflict.id, "integration": names.get(o.conflict.integration_id, str(o.conflict.integration_id)),
        "object": o.conflict.object.value, "record": o.conflict.record_key, "field": o.conflict.field,
        "status": o.status.value, "resolution": args.take if o.status is ResolutionStatus.RESOLVED else None,
        "value": o.kept if o.status is ResolutionStatus.RESOLVED else None, "reason": o.reason or None,
    } for o in outcomes]
    counts = Counter(o.status for o in outcomes)
    text = f"{counts[ResolutionStatus.RESOLVED]:,} of {plural(len(outcomes), 'conflict')} resolved " + (
        "(took the CRM value)" if args.take == "crm" else "(took the local value now)")
    others = [f"{counts[status]:,} {_OUTCOME_WORDS[status]}" for status in ResolutionStatus
              if status is not ResolutionStatus.RESOLVED and counts[status]]
    if others:
        text += "; " + ", ".join(others)
    emit(args, {"results": results, "summary": summary}, text)
    return ExitCode.OK if counts[ResolutionStatus.RESOLVED] == len(outcomes) else ExitCode.PARTIAL


def _is_field(conflict: ConflictRow, given: str) -> bool:
    """Whether ``--field`` names the conflict's field: as `conflicts list` shows it (``firstName``), or as the app
    labels it ("First name"), in any case."""
    wanted = given.strip().casefold()
    return wanted in (conflict.field.casefold(), local_field_label(conflict.object, conflict.field).casefold())


def _summary(outcomes: list[ConflictOutcome]) -> dict[str, int]:
    counts = Counter(o.status for o in outcomes)
    return {"total": len(outcomes), "resolved": counts[ResolutionStatus.RESOLVED],
            "alreadyResolved": counts[ResolutionStatus.ALREADY_RESOLVED],
            "beingResolved": counts[ResolutionStatus.BEING_RESOLVED],
            "failed": counts[ResolutionStatus.FAILED], "notTried": counts[ResolutionStatus.NOT_TRIED]}


def add_commands(commands: Any) -> None:
    """Register ``conflicts`` and its actions."""
    conflict_commands = command_group(commands, "conflicts", help="list, show and resolve sync conflicts")
    with action(
        conflict_commands, "list", cmd_conflicts_list, help="list open conflicts",
        description="List the fields changed on both sides that wait for your decision (fields whose rule is "
        "manual). LOCAL is the record's value now; when it changed since the conflict was raised (another "
        "integration's conflict on the field resolved, an edit), the value then follows as (was ...); --json gives "
        "it as localAtConflict. When the local record was deleted since, LOCAL says so (--json: localDeleted).",
    ) as listing:
        listing.add_argument("--integration", metavar="NAME", help="only this integration's conflicts")
        listing.add_argument("--limit", type=LIMIT, default=200, metavar="N", help="at most N (default 200)")
        listing.add_argument("--after", type=int, default=0, metavar="ID",
                             help="those after conflict ID (the next page)")
    with action(
        conflict_commands, "show", cmd_conflicts_show, help="show one conflict: both values and the last synced one"
    ) as show:
        show.add_argument("id", type=int, metavar="ID", help="the conflict's id (from `conflicts list`)")
    with action(
        conflict_commands, "resolve", cmd_conflicts_resolve, help="resolve conflicts on both sides",
        description="Resolve conflicts: the value kept is written to the CRM and to the local store, and becomes "
        "the new last-synced value. Several IDs, or --all (narrowed by --integration and --field), take one "
        "decision for all: each CRM is written in its own batches, each conflict's outcome is printed, then a "
        "summary; one refused by the CRM or resolved elsewhere first stays as it is and the others are resolved "
        "(exit 1 unless all were).",
    ) as resolve:
        resolve.add_argument("id", type=int, nargs="*", metavar="ID",
                             help="the conflicts' ids (from `conflicts list`)")
        resolve.add_argument("--all", action="store_true", help="every open conflict (of --integration, on --field)")
        resolve.add_argument("--integration", metavar="NAME", help="with --all: only this integration's conflicts")
        resolve.add_argument("--field", metavar="FIELD",
                             help="with --all: only conflicts on this field, as `conflicts list` names it "
                             "(firstName) or as the app labels it (\"First name\"), in any case")
        decision = resolve.add_mutually_exclusive_group(required=True)
        decision.add_argument("--take", choices=["crm", "local"],
                              help="keep the CRM's value or the local one: the value the record holds now (LOCAL "
                              "in `conflicts list`), which may differ from the one when the conflict was raised; a "
                              "blank one clears the CRM's field")
        decision.add_argument("--set", metavar="FIELD=VALUE",
                              help="keep a value of your own (one conflict only); FIELD must be the conflict's "
                              "field (an empty VALUE blanks it)")

