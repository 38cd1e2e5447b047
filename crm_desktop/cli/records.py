"""``crm-desktop contacts|leads ...``: push files to a CRM, fetch one contact, import files into the store."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

from crm_desktop.app.crm_actions import PushReport
from crm_desktop.app.push_fields import NOT_SENT, NOT_SENT_HINT
from crm_desktop.app.record_files import RowProblem
from crm_desktop.app.sync_service import (
    ImportReport,
)
from crm_desktop.app.text import plural
from crm_desktop.cli.common import (
    CommandError,
    ExitCode,
    Parser,
    closing,
    emit,
    json_flag,
    open_workspace,
)
from crm_desktop.cli.listing import add_list_command
from crm_desktop.domain.models import normalise_email
from crm_desktop.domain.outcomes import RecordObject

logger = logging.getLogger(__name__)


def _print_push(args: argparse.Namespace, report: PushReport) -> int:
    rows: list[dict[str, Any]] = [
        {"line": p.line, "email": p.record, "outcome": "invalid", "field": p.field, "message": p.reason,
         "problems": _row_problems(p)}
        for p in report.problems
    ]
    not_sent = report.not_sent or [[] for _ in report.results]
    for line, result, columns in zip(report.lines, report.results, not_sent, strict=False):
        rows.append(
            {
                "line": line,
                "email": result.email,
                "outcome": result.outcome.value,
                "crmId": result.crm_id,
                "category": result.category.value if result.category else None,
                "message": result.message,
                "notSent": columns,
            }
        )
    rows.sort(key=lambda r: r["line"])
    lines = [f"warning: {notice}" for notice in report.notices]
    for row in rows:
        detail = row.get("crmId") or ""
        if row["outcome"] == "invalid" and len(row["problems"]) > 1:
            detail = row["message"]
        elif row["outcome"] in {"invalid", "failed"}:
            detail = f"{row.get('field') or row.get('category') or ''}: {row['message']}"
        if row.get("notSent"):
            detail = f"{detail}  ({NOT_SENT}: {', '.join(row['notSent'])})".strip()
        lines.append(f"line {row['line']:>5}  {row['outcome']:<9}  {row['email']}  {detail}")
    lines += [f"line {w.line:>5}  warning    {w.record}  {', '.join(w.columns)} not kept: {w.reason}"
              for w in report.warnings]
    summary = report.summary()
    lines.append(
        "summary: {created} created, {updated} updated, {unchanged} unchanged, {failed} failed, "
        "{invalidRows} invalid rows, ".format(**summary) + plural(summary["apiCalls"], "API call")
    )
    columns_not_sent = sorted({c for row in rows for c in row.get("notSent") or []})
    if columns_not_sent:
        lines.append(f"{NOT_SENT}: {', '.join(columns_not_sent)} (kept in the file only); to send them: "
                     f"{NOT_SENT_HINT}")
    warnings = [{"line": w.line, "record": w.record, "columns": list(w.columns), "reason": w.reason}
                for w in report.warnings]
    data = {"records": rows, "summary": summary, "warnings": warnings, "notices": report.notices,
            "notSent": {"columns": columns_not_sent, "hint": NOT_SENT_HINT if columns_not_sent else None}}
    emit(args, data, "\n".join(lines))
    return ExitCode.PARTIAL if report.failed or report.notices else ExitCode.OK


def _push(args: argparse.Namespace, obj: RecordObject) -> int:
    if not args.file.is_file():
        raise CommandError(f"no such file: {args.file}")
    with closing(open_workspace(args)) as workspace:
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
    with closing(open_workspace(args)) as workspace:
        record = asyncio.run(workspace.crm.get_record(args.name, RecordObject.CONTACT, email))
    if record is None:
        emit(args, None, f"no contact with email {email} in {args.name}")
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
    emit(args, data, text)
    return ExitCode.OK


# -- local import, sync, conflicts, runs ---------------------------------------------------------


def _import(args: argparse.Namespace, obj: RecordObject) -> int:
    if not args.file.is_file():
        raise CommandError(f"no such file: {args.file}")
    with closing(open_workspace(args)) as workspace:
        try:
            report = workspace.sync.import_file(args.file, obj, blank_clears=args.blank_clears)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    return _print_import(args, report, obj)


def _row_problems(problem: RowProblem) -> list[dict[str, str]]:
    return [{"field": p.field, "reason": p.reason} for p in problem.problems] or [
        {"field": problem.field, "reason": problem.reason}
    ]


def _print_import(args: argparse.Namespace, report: ImportReport, obj: RecordObject) -> int:
    refused = [{"line": p.line, "record": p.record, "field": p.field, "reason": p.reason,
                "problems": _row_problems(p)} for p in report.problems]
    warnings = [{"line": w.line, "record": w.record, "columns": list(w.columns), "reason": w.reason}
                for w in report.warnings]
    records = [
        {"line": r.line, "email": r.email, "outcome": r.outcome,
         "changes": {c.field: {"old": c.old, "new": c.new} for c in r.changes}}
        for r in report.records
    ]
    data = {"runId": report.run_id, "created": report.created, "updated": report.updated,
            "unchanged": report.unchanged, "refused": refused, "warnings": warnings, "notices": report.notices,
            "blankClears": report.blank_clears, "records": records}
    lines = [f"warning: {notice}" for notice in report.notices]
    lines += [f"line {p.line:>5}  refused  {p.record}  {p.field}: {p.reason}" if len(p.problems) <= 1
              else f"line {p.line:>5}  refused  {p.record}  {p.reason}" for p in report.problems]
    lines += [f"line {w.line:>5}  warning  {w.record}  {', '.join(w.columns)} not kept: {w.reason}"
              for w in report.warnings]
    rows = "row" if len(refused) == 1 else "rows"
    lines.append(
        f"imported {obj.value}s into the local store: {report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged, {len(refused)} {rows} refused"
    )
    if report.run_id is not None and report.blank_clears:
        lines.append("empty cells erased the stored values of their columns (--blank-clears)")
    elif report.run_id is not None:
        lines.append("only the file's columns were written; empty cells left stored values as they were "
                     "(--blank-clears erases them)")
    if report.run_id is not None:
        lines.append(f"recorded as run {report.run_id}; fields changed per record: --json; "
                     f"take it back with: crm-desktop runs undo {report.run_id}")
    emit(args, data, "\n".join(lines))
    return ExitCode.PARTIAL if refused or report.notices else ExitCode.OK


def cmd_contacts_import(args: argparse.Namespace) -> int:
    """Import contacts from a CSV or JSONL file into the local store."""
    return _import(args, RecordObject.CONTACT)


def cmd_leads_import(args: argparse.Namespace) -> int:
    """Import leads from a CSV or JSONL file into the local store."""
    return _import(args, RecordObject.LEAD)


def add_commands(commands: Any) -> None:
    """Register ``contacts`` and ``leads`` and their actions."""
    for noun, push_handler in (("contacts", cmd_contacts_push), ("leads", cmd_leads_push)):
        group = commands.add_parser(noun, help=f"list, import, push and fetch {noun}")
        group_commands = group.add_subparsers(title=f"{noun} commands", metavar="ACTION", required=True,
                                              parser_class=Parser)
        push = group_commands.add_parser(
            "push",
            help=f"push {noun} from a CSV or JSONL file to a CRM",
            description="Validate every row first (bad rows are reported with line, field and reason; valid rows "
            "are still pushed), push, and print one result per record. Exit 1 if any record failed.",
        )
        push.add_argument("name", help="the integration")
        push.add_argument("--file", type=Path, required=True, help="a .csv or .jsonl file")
        json_flag(push)
        push.set_defaults(handler=push_handler)
        if noun == "contacts":
            get = group_commands.add_parser("get", help="fetch one contact from a CRM by email")
            get.add_argument("name", help="the integration")
            get.add_argument("--email", required=True)
            json_flag(get)
            get.set_defaults(handler=cmd_contacts_get)
        singular = noun.removesuffix("s")
        imports = group_commands.add_parser(
            "import",
            help=f"import {noun} from a CSV or JSONL file into the local store",
            description=f"Validate every row and save the valid ones in the local store, matched by email (an "
            f"existing {singular} gets only the columns the file has; an empty cell changes nothing unless "
            "--blank-clears). Nothing is sent to a CRM until the next sync. Refused rows are reported with line, "
            "column and reason. The import is recorded as a run: `runs undo ID` takes it back. Exit 1 if any row "
            "was refused or the file has no rows.",
        )
        imports.add_argument("file", type=Path, metavar="FILE", help="a .csv or .jsonl file")
        imports.add_argument("--blank-clears", action="store_true",
                             help="an empty cell erases the stored value (default: it leaves it as it is)")
        json_flag(imports)
        imports.set_defaults(handler=cmd_contacts_import if noun == "contacts" else cmd_leads_import)
        add_list_command(group_commands, noun)
