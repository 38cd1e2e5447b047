"""``crm-desktop config ...``: the workspace's network settings (proxy, CA bundle, trust)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from crm_desktop.app.settings import DESCRIPTIONS, SettingKey, SettingsError, SettingValue, setting_key
from crm_desktop.cli.common import (
    CommandError,
    ExitCode,
    action,
    add_action,
    closing,
    command_group,
    emit,
    open_workspace,
    table,
)

_KEYS_HELP = "; ".join(f"{key.value}: {DESCRIPTIONS[key]}" for key in SettingKey)


def _key(args: argparse.Namespace) -> SettingKey:
    try:
        return setting_key(args.key)
    except SettingsError as exc:
        raise CommandError(str(exc), ExitCode.USAGE, "unknown_setting") from None


def _line(setting: SettingValue) -> str:
    line = setting.value if setting.value is not None else f"(not set: {setting.default})"
    return line if setting.note is None else f"{line} ({setting.note})"


def cmd_config_get(args: argparse.Namespace) -> int:
    """Print one setting (a proxy password redacted)."""
    key = _key(args)
    with closing(open_workspace(args)) as workspace:
        setting = workspace.network.get(key)
    emit(args, setting.as_json(), _line(setting))
    return ExitCode.OK


def cmd_config_list(args: argparse.Namespace) -> int:
    """Print every setting."""
    with closing(open_workspace(args)) as workspace:
        settings = workspace.network.list()
    rows = [[s.key.value, _line(s)] for s in settings]
    emit(args, [s.as_json() for s in settings], table(["SETTING", "VALUE"], rows))
    return ExitCode.OK


def _value(args: argparse.Namespace, key: SettingKey) -> str:
    """The value to set: from the command line, or from stdin with ``--stdin`` (a proxy URL with a password)."""
    if args.stdin:
        if args.value is not None:
            raise CommandError("give the value either on the command line or with --stdin, not both")
        if sys.stdin.isatty():
            text = getpass.getpass(f"{key.value} (not shown): ")
        else:
            text = sys.stdin.readline()
        text = text.strip()
        if not text:
            raise CommandError(f"no value for {key.value} on stdin")
        return text
    if args.value is None:
        raise CommandError(f"give a value for {key.value} (or --stdin to read it from stdin)")
    if key is SettingKey.PROXY and _has_password(args.value):
        raise CommandError(
            "a password on the command line is seen by other users (ps, shell history); "
            "pass the proxy URL on stdin instead: `crm-desktop config set proxy --stdin`",
            ExitCode.USAGE,
            "secret_in_arguments",
        )
    return str(args.value)


def _has_password(url: str) -> bool:
    userinfo = url.partition("://")[2].rpartition("@")[0] if "@" in url else ""
    return ":" in userinfo


def cmd_config_set(args: argparse.Namespace) -> int:
    """Check and save one setting; a proxy password goes to the OS keyring."""
    key = _key(args)
    value = _value(args, key)
    with closing(open_workspace(args)) as workspace:
        try:
            setting = workspace.network.set(key, value)
        except SettingsError as exc:
            raise CommandError(str(exc), ExitCode.USAGE, "invalid_setting") from None
    emit(args, setting.as_json(), f"{key.value} = {_line(setting)}")
    return ExitCode.OK


def cmd_config_unset(args: argparse.Namespace) -> int:
    """Remove one setting (its default applies again)."""
    key = _key(args)
    with closing(open_workspace(args)) as workspace:
        removed = workspace.network.unset(key)
        setting = workspace.network.get(key)
    data: dict[str, Any] = {**setting.as_json(), "removed": removed}
    text = f"{key.value} unset ({setting.default} applies)" if removed else f"{key.value} was not set"
    emit(args, data, text)
    return ExitCode.OK


def add_commands(commands: Any) -> None:
    """Register ``config get|set|unset|list``."""
    actions = command_group(
        commands, "config", help="network settings of the workspace: proxy, ca-bundle, trust", description=_KEYS_HELP,
        title="actions",
    )

    with action(actions, "get", cmd_config_get, help="print a setting (a proxy password is shown as ***)") as get:
        get.add_argument("key", metavar="KEY", help="proxy, ca-bundle or trust")

    with action(
        actions, "set", cmd_config_set,
        help="check and save a setting",
        description=_KEYS_HELP + ". A proxy URL with a password is read from stdin (--stdin), never from arguments.",
    ) as put:
        put.add_argument("key", metavar="KEY", help="proxy, ca-bundle or trust")
        put.add_argument("value", metavar="VALUE", nargs="?", help="the value (omit with --stdin)")
        put.add_argument("--stdin", action="store_true", help="read the value from stdin (hidden prompt on a terminal)")

    with action(
        actions, "unset", cmd_config_unset, help="remove a setting (and a proxy password from the keyring)"
    ) as unset:
        unset.add_argument("key", metavar="KEY", help="proxy, ca-bundle or trust")

    add_action(actions, "list", cmd_config_list, help="print every setting")
