"""``crm-desktop diagnostics export FILE.zip``: a support bundle with every secret and personal value redacted."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from crm_desktop.app.diagnostics import export_diagnostics
from crm_desktop.app.text import plural
from crm_desktop.cli.common import (
    CommandError,
    ExitCode,
    action,
    cannot_write,
    closing,
    command_group,
    emit,
    open_workspace,
)

logger = logging.getLogger(__name__)


def cmd_diagnostics_export(args: argparse.Namespace) -> int:
    """Write the support bundle."""
    destination: Path = args.file
    if destination.suffix.lower() != ".zip":
        raise CommandError(f"{destination}: the bundle is a zip file; name it FILE.zip")
    with closing(open_workspace(args)) as workspace:
        try:
            report = export_diagnostics(workspace, destination)
        except OSError as exc:
            raise cannot_write(destination, exc) from None
    data = {"file": str(report.path), "files": report.files, "runs": report.runs, "logs": report.logs}
    emit(args, data, f"diagnostics written to {report.path} ({plural(len(report.files), 'file')}, "
                     f"{plural(report.runs, 'run')}, {plural(report.logs, 'log file')}); secrets and personal values "
                     "are redacted")
    return ExitCode.OK


def add_commands(commands: Any) -> None:
    """Register ``diagnostics`` and its actions."""
    actions = command_group(
        commands, "diagnostics", help="export a support bundle (secrets and personal data redacted)"
    )
    with action(
        actions, "export", cmd_diagnostics_export,
        help="write a support bundle (zip)",
        description="Write a zip for whoever helps you: app and library versions, OS, Qt platform, settings, "
        "integrations (never their secrets), the last 20 sync runs with their error categories, and the newest "
        "logs. Every secret in the keyring and every personal value in the local store (names, emails, phone "
        "numbers, social usernames) is redacted before anything is written.",
    ) as export:
        export.add_argument("file", type=Path, metavar="FILE.zip", help="where to write the bundle")
