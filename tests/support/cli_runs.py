"""The CLI run in-process on a data directory, and workspaces wired to an in-process sandbox CRM."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from crm_desktop.app.workspace import Workspace
from crm_desktop.cli import common as cli_common
from crm_desktop.cli import main
from crm_desktop.domain.models import Integration
from crm_desktop.sandbox.core import Sandbox, SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.sandbox.server import SandboxServer

SandboxT = TypeVar("SandboxT", bound=Sandbox)


def run(data_dir: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``crm-desktop --data-dir DATA_DIR ARGV...``."""
    code = main(["--data-dir", str(data_dir), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(data_dir: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    """Exit code and parsed report of the command run with ``--json`` (which must print one)."""
    code, out, err = run(data_dir, [*argv, "--json"], capsys)
    assert out, err
    return code, json.loads(out)


@contextmanager
def workspace_at(directory: Path) -> Iterator[Workspace]:
    """The workspace in ``directory``, closed afterwards."""
    workspace = Workspace.open(directory)
    try:
        yield workspace
    finally:
        workspace.close()


#: Pipedrive's requests and searches per 2 s, raised so that tests are not throttled.
PIPEDRIVE_UNTHROTTLED = {"burst_limit": 120, "search_burst_limit": 100}


def make_sandbox(provider: str, **config: Any) -> Sandbox:
    """An empty sandbox of ``provider``; Pipedrive's bursts raised so that tests are not throttled."""
    settings = SandboxConfig(contacts=0, **config)
    if provider == "hubspot":
        return HubSpotSandbox(settings)
    if provider == "pipedrive":
        sandbox: Sandbox = PipedriveSandbox(settings)
        sandbox.apply_config(PIPEDRIVE_UNTHROTTLED)
        return sandbox
    return SalesforceSandbox(settings)


def credentials_of(provider: str, sandbox: Sandbox) -> dict[str, Any]:
    """The credentials an integration of ``provider`` stores for ``sandbox`` (Pipedrive: the API token only)."""
    credentials = sandbox.credentials()
    return {"apiToken": credentials["apiToken"]} if provider == "pipedrive" else credentials


def connect_cli(
    directory: Path, provider: str, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, name: str = "crm"
) -> Path:
    """Create in ``directory`` a workspace with one integration ``name`` on ``sandbox``, and return ``directory``.

    Every workspace the CLI opens afterwards talks to that sandbox.
    """
    monkeypatch.setattr(cli_common, "http_transport", sandbox.transport())
    with workspace_at(directory) as workspace:
        workspace.integrations.add(
            Integration(provider=provider, name=name, base_url=sandbox.base_url, domain="acme"),
            credentials_of(provider, sandbox),
        )
    return directory


def cli_workspace_on_sandbox(
    directory: Path, provider: str, monkeypatch: pytest.MonkeyPatch, name: str = "crm"
) -> Sandbox:
    """Create in ``directory`` a workspace with one integration ``name`` on a new sandbox of ``provider``.

    Every workspace the CLI opens afterwards talks to that sandbox.
    """
    sandbox = make_sandbox(provider)
    connect_cli(directory, provider, sandbox, monkeypatch, name)
    return sandbox


@contextmanager
def served(sandbox: SandboxT) -> Iterator[SandboxT]:
    """``sandbox`` listening on 127.0.0.1 for the block (its ``base_url`` is then the real URL)."""
    server = SandboxServer([sandbox])
    server.start()
    try:
        yield sandbox
    finally:
        server.stop()


def connect_cli_over_loopback(
    directory: Path, provider: str, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, name: str = "crm"
) -> Path:
    """As :func:`connect_cli`, but the CLI reaches ``sandbox`` (served) over real sockets, through the app's own
    network stack, instead of the in-process transport."""
    connect_cli(directory, provider, sandbox, monkeypatch, name)
    monkeypatch.setattr(cli_common, "http_transport", None)
    return directory
