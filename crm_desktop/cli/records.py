"""``crm-desktop contacts|leads ...``: push files to a CRM, fetch one contact, import files into the store."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

from crm_desktop.app.crm_actions import PushReport
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
from crm_desktop.domain.models import normalise_email
from crm_desktop.domain.outcomes import RecordObject

logger = logging.getLogger(__name__)


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
        "{invalidRows} invalid rows, ".format(**summary) + plural(summary["apiCalls"], "API call")
    )
    emit(args, {"records": rows, "summary": summary}, "\n".join(lines))
    return ExitCode.PARTIAL if report.failed else ExitCode.OK


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
    emit(args, data, "\n".join(lines))
    return ExitCode.PARTIAL if refused else ExitCode.OK


def cmd_contacts_import(args: argparse.Namespace) -> int:
    """Import contacts from a CSV or JSONL file into the local store."""
    return _import(args, RecordObject.CONTACT)


def cmd_leads_import(args: argparse.Namespace) -> int:
    """Import leads from a CSV or JSONL file into the local store."""
    return _import(args, RecordObject.LEAD)


def add_commands(commands: Any) -> None:
    """Register ``contacts`` and ``leads`` and their actions."""
    for noun, push_handler in (("contacts", cmd_contacts_push), ("leads", cmd_leads_push)):
        group = commands.add_parser(noun, help=f"import, push and fetch {noun}")
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
            f"existing {singular} is updated). Nothing is sent to a CRM until the next sync. "
            "Refused rows are reported with line, field and reason. Exit 1 if any row was refused.",
        )
        imports.add_argument("file", type=Path, metavar="FILE", help="a .csv or .jsonl file")
        json_flag(imports)
        imports.set_defaults(handler=cmd_contacts_import if noun == "contacts" else cmd_leads_import)
