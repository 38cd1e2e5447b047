"""``crm-desktop fields ensure NAME [--dry-run]``: create the seed's social custom fields a CRM lacks."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from crm_desktop.app.field_setup import EnsureReport, FieldSetupService, FieldStatus
from crm_desktop.cli.common import ExitCode, action, closing, command_group, emit, open_workspace, table

_STATUS_TEXT = {
    FieldStatus.PRESENT: "present",
    FieldStatus.CREATED: "created",
    FieldStatus.WOULD_CREATE: "would create",
    FieldStatus.FAILED: "failed",
}


def ensure_text(report: EnsureReport) -> str:
    """The report as the marketer reads it: one line per field, then the counts and notes."""
    rows = [
        [f.object.value, f.name, f.label, _STATUS_TEXT[f.status], f.reason or ""]
        for f in report.fields
    ]
    lines = [table(["OBJECT", "FIELD", "LABEL", "STATUS", "REASON"], rows)]
    counts = report.summary()
    if report.dry_run:
        lines.append(f"dry run: {counts['would_create']} to create, {counts['present']} present; nothing was created")
    else:
        lines.append(f"{counts['created']} created, {counts['present']} present, {counts['failed']} failed")
    lines.extend(report.notes)
    return "\n".join(lines)


def cmd_fields_ensure(args: argparse.Namespace) -> int:
    """Create the social custom fields the integration's CRM lacks (or list them with --dry-run)."""
    with closing(open_workspace(args)) as workspace:
        report = asyncio.run(FieldSetupService(workspace.crm).ensure_social_fields(args.name, dry_run=args.dry_run))
    data: dict[str, Any] = report.to_wire()
    emit(args, data, ensure_text(report))
    return ExitCode.OK if report.ok else ExitCode.PARTIAL


def add_commands(commands: Any) -> None:
    """Register ``fields ensure``."""
    actions = command_group(commands, "fields", help="the CRM's custom fields for social data", title="actions")
    with action(
        actions, "ensure", cmd_fields_ensure,
        help="create the social custom fields the CRM lacks (Salesforce Tooling API, HubSpot properties, "
        "Pipedrive person fields)",
    ) as ensure:
        ensure.add_argument("name", help="the integration")
        ensure.add_argument("--dry-run", action="store_true", help="list what would be created; create nothing")
