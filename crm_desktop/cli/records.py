"""``crm-desktop contacts|leads ...``: push files to a CRM, fetch one contact, import files, set fields by hand."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any, TextIO

from crm_desktop.app.change_undo import undoable
from crm_desktop.app.crm_actions import PushReport
from crm_desktop.app.duplicates import MERGE_FIELDS, MergeError
from crm_desktop.app.field_mapping import local_field_label
from crm_desktop.app.forget import CRM_RECORDS_STAY, ERASED_WORDS, ForgetService
from crm_desktop.app.imports import EDITABLE_FIELDS, ImportProgress
from crm_desktop.app.people import ChangeUndoRefused, PeopleService, undone_text
from crm_desktop.app.push_fields import NOT_SENT, NOT_SENT_HINT
from crm_desktop.app.record_files import RowProblem, custom_columns_in_words, header_key
from crm_desktop.app.sync_service import ImportReport
from crm_desktop.app.text import plural
from crm_desktop.cli.arguments import LIMIT
from crm_desktop.cli.common import (
    CommandError,
    ExitCode,
    action,
    cannot_read,
    closing,
    command_group,
    confirm,
    emit,
    in_a_cell,
    open_workspace,
    readable_file,
    shown,
    table,
    when,
)
from crm_desktop.cli.listing import add_list_command
from crm_desktop.cli.sync import lock_refusal
from crm_desktop.domain.models import normalise_email
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sync.engine import SyncAlreadyRunning

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
    rows += [{"line": line, "email": email, "outcome": "skipped", "crmId": None, "category": None,
              "message": reason, "notSent": []} for line, email, reason in report.skipped]
    rows.sort(key=lambda r: r["line"])
    lines = [f"warning: {notice}" for notice in report.notices]
    for row in rows:
        detail = row.get("crmId") or ""
        if row["outcome"] == "invalid" and len(row["problems"]) > 1:
            detail = row["message"]
        elif row["outcome"] in {"invalid", "failed"}:
            detail = f"{row.get('field') or row.get('category') or ''}: {row['message']}"
        elif row["outcome"] == "skipped":
            detail = row["message"]
        if row.get("notSent"):
            detail = f"{detail}  ({NOT_SENT}: {', '.join(row['notSent'])})".strip()
        lines.append(f"line {row['line']:>5}  {row['outcome']:<9}  {row['email']}  {detail}")
    lines += [f"line {w.line:>5}  warning    {w.record}  {', '.join(w.columns)} not kept: {w.reason}"
              for w in report.warnings]
    summary = report.summary()
    lines.append(
        "summary: {created:,} created, {updated:,} updated, {unchanged:,} unchanged, {failed:,} failed, "
        "{invalidRows:,} invalid rows, ".format(**summary)
        + (f"{summary['skipped']:,} skipped (forgotten), " if summary["skipped"] else "")
        + plural(summary["apiCalls"], "API call")
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
    # A notice about how the file was read (Excel's Windows-1252, a header below a preamble) is not a failure:
    # exit 1 only for refused rows, or a file that gave nothing to push (empty, a header alone).
    return ExitCode.PARTIAL if report.failed or (report.notices and not report.results) else ExitCode.OK


def _push(args: argparse.Namespace, obj: RecordObject) -> int:
    readable_file(args.file)
    with closing(open_workspace(args)) as workspace:
        try:
            report = asyncio.run(workspace.crm.push_file(args.name, args.file, obj))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise cannot_read(args.file, exc) from None
        except SyncAlreadyRunning as exc:
            message = lock_refusal(workspace, args.name, exc, "push the file when it has finished")
            raise CommandError(message, ExitCode.PARTIAL, "sync_running") from None
    return _print_push(args, report)


def cmd_contacts_push(args: argparse.Namespace) -> int:
    """Push contacts from a CSV or JSONL file."""
    return _push(args, RecordObject.CONTACT)


def cmd_leads_push(args: argparse.Namespace) -> int:
    """Push leads from a CSV or JSONL file."""
    return _push(args, RecordObject.LEAD)


def cmd_contacts_get(args: argparse.Namespace) -> int:
    """Fetch one contact from the CRM by email."""
    return _get(args, RecordObject.CONTACT)


def cmd_leads_get(args: argparse.Namespace) -> int:
    """Fetch one lead from the CRM by email."""
    return _get(args, RecordObject.LEAD)


def _get(args: argparse.Namespace, obj: RecordObject) -> int:
    try:
        email = normalise_email(args.email)
    except ValueError as exc:
        raise CommandError(f"--email: {exc}") from None
    with closing(open_workspace(args)) as workspace:
        record = asyncio.run(workspace.crm.get_record(args.name, obj, email))
    if record is None:
        raise CommandError(f"no {obj.value} with email {email} in {args.name}", ExitCode.PARTIAL, "not_found")
    data = {
        "crmId": record.crm_id,
        "email": record.email,
        "modifiedAt": record.modified_at,
        "fields": record.fields,
    }
    text = "\n".join([f"crm id:    {record.crm_id}", f"email:     {record.email}",
                      f"modified:  {data['modifiedAt'] or '-'}"]
                     + [f"{k}: {v}" for k, v in sorted(record.fields.items()) if v not in (None, "")])
    emit(args, data, text)
    return ExitCode.OK


# -- local import, sync, conflicts, runs ---------------------------------------------------------


class ImportProgressLine:
    """An import's progress on one line of a terminal, written over in place at each whole per cent of the rows
    read and when they are saved, and cleared at the end: a large file is read for a while before the report."""

    def __init__(self, name: str, stream: TextIO) -> None:
        self._name, self._stream = name, stream
        self._shown: tuple[bool, int] | None = None
        self._width = 0

    def __call__(self, progress: ImportProgress) -> None:
        rows, total = progress.rows_read, progress.total
        step = (progress.saving, rows * 100 // total if total else rows // 10_000)
        if step == self._shown:
            return
        self._shown = step
        text = f"Importing {self._name}: {progress.in_words()}"
        self._stream.write("\r" + text.ljust(self._width))
        self._stream.flush()
        self._width = len(text)

    def clear(self) -> None:
        """Rub the line out, so the report starts on a clean line."""
        if self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0


def _import(args: argparse.Namespace, obj: RecordObject) -> int:
    readable_file(args.file)
    # Progress goes to a terminal only: never into a pipe, a log or a cron mail (nor --json's stdout).
    line = ImportProgressLine(args.file.name, sys.stderr) if sys.stderr.isatty() else None
    with closing(open_workspace(args)) as workspace:
        try:
            report = workspace.sync.import_file(args.file, obj, blank_clears=args.blank_clears, progress=line)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise cannot_read(args.file, exc) from None
        finally:
            if line is not None:
                line.clear()
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
    # The per-record list is only printed with --json: text mode does not build it (100,000 records of an import).
    records = [
        {"line": r.line, "email": r.email, "outcome": r.outcome,
         "changes": {c.field: {"old": c.old, "new": c.new} for c in r.changes}}
        for r in report.records
    ] if getattr(args, "json", False) else []
    data = {"runId": report.run_id, "created": report.created, "updated": report.updated,
            "unchanged": report.unchanged, "refused": refused, "warnings": warnings, "notices": report.notices,
            "customColumns": report.custom_columns, "blankClears": report.blank_clears, "records": records,
            "skipped": [{"line": line, "record": email, "reason": reason} for line, email, reason in report.skipped]}
    lines = [f"warning: {notice}" for notice in report.notices]
    lines += [f"line {line:>5}  skipped  {email}  {reason}" for line, email, reason in report.skipped]
    lines += [f"line {p.line:>5}  refused  {p.record}  {p.field}: {p.reason}" if len(p.problems) <= 1
              else f"line {p.line:>5}  refused  {p.record}  {p.reason}" for p in report.problems]
    lines += [f"line {w.line:>5}  warning  {w.record}  {', '.join(w.columns)} not kept: {w.reason}"
              for w in report.warnings]
    rows = "row" if len(refused) == 1 else "rows"
    lines.append(
        f"imported {obj.value}s into the local store: {report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged, {len(refused)} {rows} refused"
        + (f", {len(report.skipped)} skipped (forgotten)" if report.skipped else "")
    )
    if report.custom_columns:
        lines.append(custom_columns_in_words(report.custom_columns))
    if report.run_id is not None and report.blank_clears:
        lines.append("empty cells erased the stored values of their columns (--blank-clears)")
    elif report.run_id is not None:
        lines.append("only the file's columns were written; empty cells left stored values as they were "
                     "(--blank-clears erases them)")
    if report.run_id is not None:
        lines.append(f"recorded as run {report.run_id}; fields changed per record: --json; "
                     f"take it back with: crm-desktop runs undo {report.run_id}")
    emit(args, data, "\n".join(lines))
    # A notice fails the import only when the file gave nothing (empty, a header alone); one that says how the file
    # was read (its header further down, a report's footer) leaves an import whose rows all landed a success.
    saved = report.created + report.updated + report.unchanged
    return ExitCode.PARTIAL if refused or (report.notices and not saved) else ExitCode.OK


def cmd_contacts_import(args: argparse.Namespace) -> int:
    """Import contacts from a CSV or JSONL file into the local store."""
    return _import(args, RecordObject.CONTACT)


def cmd_leads_import(args: argparse.Namespace) -> int:
    """Import leads from a CSV or JSONL file into the local store."""
    return _import(args, RecordObject.LEAD)


# -- one person's fields by hand ------------------------------------------------------------------


def _field_key(obj: RecordObject, given: str) -> str:
    """The edit's key of a FIELD as typed (``company``, ``first_name``, ``custom.segment``), or a usage error."""
    if given.startswith("custom.") and len(given) > len("custom."):
        return given
    wanted = header_key(given)
    found = next((key for key in EDITABLE_FIELDS[obj] if header_key(key) == wanted), None)
    if found is None:
        raise CommandError(f"{given!r} is not a field `set` changes; one of: "
                           f"{', '.join(EDITABLE_FIELDS[obj])} or custom.NAME")
    return found


def _set(args: argparse.Namespace, obj: RecordObject) -> int:
    values: dict[str, str | None] = {}
    for pair in args.assignments:
        name, equals, value = pair.partition("=")
        if not equals:
            raise CommandError(f"{pair!r}: expected FIELD=VALUE (FIELD= clears the field)")
        values[_field_key(obj, name.strip())] = value.strip() or None
    try:
        email = normalise_email(args.email)
    except ValueError as exc:
        raise CommandError(f"{args.email!r}: {exc}") from None
    with closing(open_workspace(args)) as workspace:
        people = PeopleService(workspace.database, workspace.social, workspace.sync)
        found = workspace.sync.store.local_by_emails(obj, [email]).get(email)
        if found is None:
            raise CommandError(f"no {obj.value} with email {email}", error_code="not_found")
        report = people.edit(obj, int(found.id), values)
    changes = [{"field": change.field, "old": change.old, "new": change.new} for change in report.changes]
    lines = [f"{change.field}: {change.old or '(blank)'} -> {change.new or '(blank)'}" for change in report.changes]
    if report.run_id is None:
        lines.append(f"{email}: nothing changed")
    else:
        lines.append(f"{email}: recorded as run {report.run_id}; the next sync sends the changes to the CRMs; "
                     f"take it back with: crm-desktop runs undo {report.run_id}")
    emit(args, {"email": email, "changes": changes, "runId": report.run_id}, "\n".join(lines))
    return ExitCode.OK


def cmd_contacts_set(args: argparse.Namespace) -> int:
    """Change fields of one stored contact by hand."""
    return _set(args, RecordObject.CONTACT)


def cmd_leads_set(args: argparse.Namespace) -> int:
    """Change fields of one stored lead by hand."""
    return _set(args, RecordObject.LEAD)


# -- duplicates and merges -----------------------------------------------------------------------


def cmd_contacts_duplicates(args: argparse.Namespace) -> int:
    """List likely duplicate contacts and those the CRMs reported."""
    with closing(open_workspace(args)) as workspace:
        report = PeopleService(workspace.database, workspace.social, workspace.sync).duplicates.find(args.limit)
    data = {
        "groups": [{"reason": group.reason.name.lower(), "shared": group.shared,
                    "contacts": [{"id": local_id, "email": email} for local_id, email in group.contacts]}
                   for group in report.groups],
        "reported": [{"integration": r.integration, "email": r.email, "id": r.local_id, "crmId": r.crm_id,
                      "message": r.message, "at": r.at} for r in report.reported],
    }
    lines = [f"{group.reason.value}: {group.shared}: {', '.join(email for _, email in group.contacts)}"
             for group in report.groups]
    lines += [f"reported by {r.integration}: {r.email}: {r.message}" for r in report.reported]
    emit(args, data, "\n".join(lines) if lines else "no likely duplicates")
    return ExitCode.OK


def _person_id(workspace: Any, obj: RecordObject, key: str) -> int:
    """A contact's or lead's local id from its email (or its id, digits 0-9 only)."""
    if key.isascii() and key.isdigit():
        # Beyond the store's 64-bit ids no record can have it (and the database would refuse the number).
        number = int(key)
        if not 0 < number < 2**63 or not workspace.sync.store.local_records(obj, [number]):
            raise CommandError(f"no {obj.value} with id {key}", error_code="not_found")
        return number
    try:
        email = normalise_email(key)
    except ValueError as exc:
        raise CommandError(f"{key!r}: {exc}") from None
    found = workspace.sync.store.local_by_emails(obj, [email]).get(email)
    if found is None:
        raise CommandError(f"no {obj.value} with email {email}", error_code="not_found")
    return int(found.id)


def _contact_id(workspace: Any, key: str) -> int:
    """A contact's local id from its email (or its id, digits 0-9 only)."""
    return _person_id(workspace, RecordObject.CONTACT, key)


def cmd_contacts_merge(args: argparse.Namespace) -> int:
    """Merge contact OTHER into KEEP, here and in every CRM whose API merges."""
    with closing(open_workspace(args)) as workspace:
        duplicates = PeopleService(workspace.database, workspace.social, workspace.sync).duplicates
        keep, other = _contact_id(workspace, args.keep), _contact_id(workspace, args.other)
        try:
            # As the merge dialog ticks it: the other's value fills a blank of the kept contact unless --keep-blank
            # (a blank kept would be written as a clear onto the surviving CRM record).
            taken = (duplicates.blanks_filled(keep, other) - set(args.keep_blank or ())) | set(args.take or ())
            report = asyncio.run(duplicates.merge(keep, other, taken))
        except MergeError as exc:
            raise CommandError(str(exc)) from None
    data = {"kept": keep, "merged": report.merged_email, "took": report.changed,
            "mergedInCrm": report.merged_in_crm, "mergeByHand": report.by_hand}
    lines = [f"merged {report.merged_email} into contact {keep}"
             + (f"; took {', '.join(report.changed)}" if report.changed else "")]
    lines += report.merged_in_crm + [f"by hand: {line}" for line in report.by_hand]
    emit(args, data, "\n".join(lines))
    return ExitCode.PARTIAL if report.by_hand else ExitCode.OK


# -- one person's history and undo of one change -------------------------------------------------


def _history(args: argparse.Namespace, obj: RecordObject) -> int:
    with closing(open_workspace(args)) as workspace:
        people = PeopleService(workspace.database, workspace.social, workspace.sync)
        local_id = _person_id(workspace, obj, args.key)
        email = workspace.sync.store.local_records(obj, [local_id])[local_id].record.email
        # One more than asked tells whether older changes were left off.
        changes = people.history(obj, local_id, args.limit + 1)
    shown_changes = changes[: args.limit]
    items = [{"id": c.id, "at": c.at, "field": c.field, "label": local_field_label(obj, c.field),
              "before": c.before, "after": c.after, "source": c.source, "side": c.side, "runId": c.run_id,
              "undoable": undoable(c.field)} for c in shown_changes]
    data = {"object": obj.value, "id": local_id, "email": email, "changes": items,
            "more": len(changes) > args.limit}
    if not items:
        emit(args, data, f"{email}: no recorded changes")
        return ExitCode.OK
    rows = [(str(c.id), when(c.at), local_field_label(obj, c.field),
             f"{in_a_cell(c.before)} -> {in_a_cell(c.after)}",
             c.source + (" (written in the CRM)" if c.side == "crm" else "")) for c in shown_changes]
    text = f"{email} ({obj.value} {local_id}), newest first:\n" + table(("ID", "WHEN", "FIELD", "CHANGE", "BY"), rows)
    if any(in_a_cell(value) != shown(value) for c in shown_changes for value in (c.before, c.after)):
        text += "\nlong values are shown on one line and cut short (…): --json has them in full"
    if len(changes) > args.limit:
        text += f"\nolder changes were left off: --limit {args.limit * 2}"
    text += f"\nundo one with: crm-desktop {obj.value}s undo-change ID"
    emit(args, data, text)
    return ExitCode.OK


def cmd_contacts_history(args: argparse.Namespace) -> int:
    """List one contact's recorded field changes, newest first."""
    return _history(args, RecordObject.CONTACT)


def cmd_leads_history(args: argparse.Namespace) -> int:
    """List one lead's recorded field changes, newest first."""
    return _history(args, RecordObject.LEAD)


def _undo_change(args: argparse.Namespace, obj: RecordObject) -> int:
    with closing(open_workspace(args)) as workspace:
        people = PeopleService(workspace.database, workspace.social, workspace.sync)
        found = people.change(args.id)
        if found is not None and found[0] is not obj:
            raise CommandError(f"change {args.id} is of a {found[0].value}, not a {obj.value}: "
                               f"crm-desktop {found[0].value}s undo-change {args.id}")
        try:
            report = people.undo_change(args.id, force=args.force)
        except ChangeUndoRefused as exc:
            if exc.unknown:
                raise CommandError(str(exc), ExitCode.USAGE, "not_found") from None
            if exc.changed_since and not args.force:
                raise CommandError(f"{exc}: add --force to do so", ExitCode.PARTIAL, "changed_since") from None
            raise CommandError(str(exc), ExitCode.PARTIAL, "undo_refused") from None
    data = {"change": args.id, "runId": report.run_id, "object": report.obj.value, "email": report.email,
            "field": report.key, "label": report.field, "restored": report.restored, "replaced": report.replaced,
            "sentToCrms": not report.blank_kept_in_crms}
    emit(args, data, undone_text(report))
    return ExitCode.OK


def cmd_contacts_undo_change(args: argparse.Namespace) -> int:
    """Undo one recorded change of a contact's field."""
    return _undo_change(args, RecordObject.CONTACT)


def cmd_leads_undo_change(args: argparse.Namespace) -> int:
    """Undo one recorded change of a lead's field."""
    return _undo_change(args, RecordObject.LEAD)


# -- forgetting a person at their request ------------------------------------------------------------


def _forget(args: argparse.Namespace, obj: RecordObject) -> int:
    with closing(open_workspace(args)) as workspace:
        forgetting = ForgetService(workspace.database, workspace.crm)
        try:
            email = forgetting.email_of(obj, args.key)
        except ValueError as exc:
            raise CommandError(f"{args.key!r}: {exc}") from None
        contact_id, lead_id = forgetting.holders(email)
        held = [f"{kind} {local_id}" for kind, local_id in (("contact", contact_id), ("lead", lead_id))
                if local_id is not None]
        whom = f"{email} ({' and '.join(held)})" if held else f"{email} (no contact or lead is stored)"
        if not args.yes:
            if not sys.stdin.isatty():
                raise CommandError(f"forgetting {email} erases them for good: add --yes to do it without asking",
                                   ExitCode.USAGE, "confirmation_needed")
            crms = ("its linked records in the CRMs are deleted first" if args.in_crms else CRM_RECORDS_STAY)
            if not confirm(f"Forget {whom}? This erases {ERASED_WORDS}, and keeps pulls, imports, pushes and "
                            f"social events from bringing them back ({crms}). Forget them?"):
                raise CommandError(f"{email} was not forgotten: nothing was erased", ExitCode.PARTIAL, "cancelled")
        if args.in_crms:
            outcome = asyncio.run(forgetting.forget_in_crms_first(email))
            deletions, forgotten = outcome.deletions, outcome.report
        else:
            deletions, forgotten = [], forgetting.forget(email)
        crm_records = [{"integration": d.integration, "object": d.obj.value, "crmId": d.crm_id,
                        "outcome": d.outcome, "reason": d.reason or None} for d in deletions]
        if forgotten is None:
            # Their links are the only way to find the records left: kept until every deletion went through.
            emit(args, {"email": email, "forgotten": False, "crmRecords": crm_records},
                 "\n".join([*(d.line() for d in deletions),
                            f"{email} was not forgotten here, so that the records left can still be found: "
                            "delete them in the CRM, or fix the cause and run this again"]))
            return ExitCode.PARTIAL
        report = forgotten
    data = {"email": report.email, "forgotten": True, "contactId": report.contact_id, "leadId": report.lead_id,
            "forgottenAt": report.forgotten_at, "deleted": report.counts, "crmRecordsDeleted": bool(args.in_crms),
            "crmRecords": crm_records}
    lines = [*(d.line() for d in deletions), report.summary(), *report.lines(),
             f"pulls, imports, pushes and social events naming {report.email} are skipped from now on; "
             f"lift it with: crm-desktop {obj.value}s unforget {report.email}"]
    if not args.in_crms:
        lines.append(CRM_RECORDS_STAY + " (or use --in-crms)")
    emit(args, data, "\n".join(lines))
    return ExitCode.OK


def cmd_contacts_forget(args: argparse.Namespace) -> int:
    """Forget a contact at their request: erase everything held about them here."""
    return _forget(args, RecordObject.CONTACT)


def cmd_leads_forget(args: argparse.Namespace) -> int:
    """Forget a lead at their request: erase everything held about them here."""
    return _forget(args, RecordObject.LEAD)


def cmd_unforget(args: argparse.Namespace) -> int:
    """Lift the forgetting of an email, so pulls, imports, pushes and social events take the person again."""
    try:
        email = normalise_email(args.email)
    except ValueError as exc:
        raise CommandError(f"{args.email!r}: {exc}") from None
    with closing(open_workspace(args)) as workspace:
        at = ForgetService(workspace.database).unforget(email)
    if at is None:
        raise CommandError(f"{email} was not forgotten: nothing to lift", ExitCode.PARTIAL, "not_forgotten")
    emit(args, {"email": email, "forgottenAt": at, "lifted": True},
         f"lifted: {email} (forgotten on {at:%Y-%m-%d}) is pulled, imported, pushed and recorded again; nothing "
         "erased comes back")
    return ExitCode.OK


def add_commands(commands: Any) -> None:
    """Register ``contacts`` and ``leads`` and their actions."""
    for noun, push_handler in (("contacts", cmd_contacts_push), ("leads", cmd_leads_push)):
        group_commands = command_group(commands, noun, help=f"list, import, set, push, fetch and forget {noun}; "
                                       "their history and undo of one change")
        with action(
            group_commands, "push", push_handler,
            help=f"push {noun} from a CSV or JSONL file to a CRM",
            description="Validate every row first (bad rows are reported with line, field and reason; valid rows "
            "are still pushed), push, and print one result per record. Exit 1 if any record failed.",
        ) as push:
            push.add_argument("name", help="the integration")
            push.add_argument("--file", type=Path, required=True,
                                  help="a .csv (also .txt/.tsv: Excel's Unicode Text), .jsonl or .json file")
        obj = RecordObject.CONTACT if noun == "contacts" else RecordObject.LEAD
        with action(group_commands, "get", cmd_contacts_get if noun == "contacts" else cmd_leads_get,
                    help=f"fetch one {obj.value} from a CRM by email") as get:
            get.add_argument("name", help="the integration")
            get.add_argument("--email", required=True)
        if noun == "contacts":
            with action(
                group_commands, "duplicates", cmd_contacts_duplicates,
                help="list likely duplicate contacts and those the CRMs reported",
                description="Contacts sharing a normalised email (no +tag, no dots at Gmail), an E.164 phone or a "
                "social username, and the duplicates the CRMs refused in syncs.",
            ) as duplicates:
                duplicates.add_argument("--limit", type=LIMIT, default=1000,
                                        help="at most this many groups of each kind")
            with action(
                group_commands, "merge", cmd_contacts_merge,
                help="merge one contact into another, here and in the CRMs",
                description="Merge contact OTHER into KEEP (each an email or a local id): first in every CRM whose "
                "API merges (HubSpot, Pipedrive), then here. KEEP keeps its values except the --take fields and "
                "its blanks, which OTHER's values fill (as the merge dialog ticks them) unless --keep-blank; "
                "profiles and custom fields it lacks come from OTHER. Salesforce's REST API has no merge: the "
                "output says what to merge there. Exit 1 when a CRM must be merged by hand.",
            ) as merge:
                merge.add_argument("keep", metavar="KEEP", help="the contact that remains (email or id)")
                merge.add_argument("other", metavar="OTHER", help="the contact merged into it (email or id)")
                merge.add_argument("--take", action="append", choices=MERGE_FIELDS, metavar="FIELD",
                                   help=f"take OTHER's value of this field (repeatable; {', '.join(MERGE_FIELDS)})")
                merge.add_argument("--keep-blank", action="append", choices=MERGE_FIELDS, metavar="FIELD",
                                   help="keep KEEP's blank in this field, not OTHER's value: the CRMs' merged "
                                   "record is cleared there too (repeatable)")
        singular = noun.removesuffix("s")
        with action(
            group_commands, "import", cmd_contacts_import if noun == "contacts" else cmd_leads_import,
            help=f"import {noun} from a CSV or JSONL file into the local store",
            description=f"Validate every row and save the valid ones in the local store, matched by email (an "
            f"existing {singular} gets only the columns the file has; an empty cell changes nothing unless "
            "--blank-clears). Nothing is sent to a CRM until the next sync. Refused rows are reported with line, "
            "column and reason. The import is recorded as a run: `runs undo ID` takes it back. Exit 1 if any row "
            "was refused or the file has no rows.",
        ) as imports:
            imports.add_argument("file", type=Path, metavar="FILE",
                                 help="a .csv (also .txt/.tsv: Excel's Unicode Text), .jsonl or .json file")
            imports.add_argument("--blank-clears", action="store_true",
                                 help="an empty cell erases the stored value (default: it leaves it as it is)")
        with action(
            group_commands, "set", cmd_contacts_set if noun == "contacts" else cmd_leads_set,
            help=f"change fields of one stored {singular} by hand",
            description=f"Change fields of the {singular} with EMAIL in the local store, as the People panel's "
            "Edit… does: every value is checked first (a refusal names the field and the reason, and nothing is "
            "written); the changes are recorded as a run (`runs undo ID` takes it back) and the next sync sends "
            f"them to the CRMs. Fields: {', '.join(EDITABLE_FIELDS[RecordObject(singular)])}, custom.NAME; "
            "FIELD= clears one. The email is the record's key and is not changed here.",
        ) as setter:
            setter.add_argument("email", metavar="EMAIL", help=f"the {singular}'s email")
            setter.add_argument("assignments", nargs="+", metavar="FIELD=VALUE", help="a field and its new value")
        with action(
            group_commands, "history", cmd_contacts_history if noun == "contacts" else cmd_leads_history,
            help=f"list one {singular}'s recorded field changes, newest first",
            description=f"List the recorded changes of the {singular} KEY's fields, newest first, as the People "
            "panel's History tab does: each with its id, when, the field, the value before and after, and what "
            f"made it (an import, an edit, a sync, an undo). `{noun} undo-change ID` puts one back.",
        ) as history:
            history.add_argument("key", metavar="KEY", help=f"the {singular}'s email or local id")
            history.add_argument("--limit", type=LIMIT, default=500, metavar="N",
                                 help="at most the N newest changes (default 500)")
        with action(
            group_commands, "undo-change", cmd_contacts_undo_change if noun == "contacts" else cmd_leads_undo_change,
            help="undo one recorded change of a field",
            description="Put back the value from before one recorded change (ID from `history`), as the People "
            "panel's \"Undo this change\" does: the undo is recorded as a run of its own and the output says "
            "whether the next sync sends the value to the CRMs. Refused (exit 1, nothing written) when the change "
            "was undone already, the field holds the old value, or the field changed since (--force puts the old "
            "value back over the newer one). Exit 2 for an unknown ID.",
        ) as undo_change:
            undo_change.add_argument("id", type=int, metavar="ID", help="the change's id (from `history`)")
            undo_change.add_argument("--force", action="store_true",
                                     help="undo even though the field changed since (the newer value is lost)")
        with action(
            group_commands, "forget", cmd_contacts_forget if noun == "contacts" else cmd_leads_forget,
            help=f"forget a {singular} at their request (GDPR erasure): erase everything held about them here",
            description=f"Erase the person with the {singular} KEY's email in one transaction: the contact and "
            "the lead with that email, their social profiles, conversations and messages, touchpoints and "
            "conversions, conflicts, links to CRM records and their change history (so no undo writes them "
            "back); runs keep their counts. Only a digest of the email is kept, with the date, so that pulls, "
            "imports, pushes and social events naming it are skipped (\"forgotten on DATE at your request\"). "
            "The CRMs' records are not deleted unless --in-crms. Asks first on a terminal; elsewhere "
            "--yes is required. `unforget EMAIL` lifts it.",
        ) as forget:
            forget.add_argument("key", metavar="KEY", help=f"the {singular}'s email or local id")
            forget.add_argument("--yes", action="store_true", help="do not ask first")
            forget.add_argument("--in-crms", action="store_true",
                                help="first delete the linked records in each CRM (HubSpot and Salesforce keep "
                                "them in their recycle bins for a while); if one cannot be deleted, nothing is "
                                "forgotten here (exit 1)")
        with action(
            group_commands, "unforget", cmd_unforget,
            help="lift the forgetting of an email (a mistake): pulls, imports and events take it again",
            description="Remove EMAIL from the people forgotten at their request: the next pull, import, push or "
            "social event naming it is taken again. What was erased does not come back. Exit 1 when EMAIL was not "
            "forgotten.",
        ) as unforget:
            unforget.add_argument("email", metavar="EMAIL", help="the forgotten person's email")
        add_list_command(group_commands, noun)
