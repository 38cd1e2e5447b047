"""``crm-desktop api token|rotate``: the local API's bearer token, kept in the OS keyring."""

from __future__ import annotations

import argparse
from contextlib import closing
from typing import Any

from crm_desktop.app.api_access import ApiTokens
from crm_desktop.cli.common import ExitCode, add_action, command_group, emit, open_workspace


def cmd_api_token(args: argparse.Namespace) -> int:
    """Print the local API's token (made now if the API never started)."""
    # The workspace's own: each workspace keeps its token under its own keyring service.
    with closing(open_workspace(args)) as workspace:
        token = ApiTokens(workspace.vault).current()
    emit(args, {"token": token}, token)
    return ExitCode.OK


def cmd_api_rotate(args: argparse.Namespace) -> int:
    """Replace the token; the old one stops working at once, also in a running server."""
    with closing(open_workspace(args)) as workspace:
        token = ApiTokens(workspace.vault).rotate()
    emit(args, {"token": token}, token)
    return ExitCode.OK


def add_commands(commands: Any) -> None:
    """Register ``api token`` and ``api rotate``."""
    actions = command_group(commands, "api", help="the local API's bearer token", title="actions")
    add_action(actions, "token", cmd_api_token, help="print the token the local API accepts (kept in the OS keyring)")
    add_action(actions, "rotate", cmd_api_rotate, help="replace the token; the old one stops working at once")
