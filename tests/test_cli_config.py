"""``crm-desktop config``: the proxy, CA bundle and trust settings, and pushes that obey them over real sockets."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
import trustme

from crm_desktop.app.workspace import Workspace
from crm_desktop.cli import ExitCode, main
from crm_desktop.domain.models import Integration
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.server import SandboxServer, ServingTls
from crm_desktop.store.database import sqlite_url
from tests.support.forward_proxy import ForwardProxy
from tests.support.memory_keyring import MemoryKeyring

PASSWORD = "s3cret-Proxy-pw"
#: A name this computer cannot resolve (``.test`` is reserved) and the test proxy resolves to loopback.
PROXY_ONLY_NAME = "crm.sandbox.test"


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def run(
    data_dir: Path, argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(["--data-dir", str(data_dir), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_settings_are_listed_with_their_defaults_then_set_shown_and_unset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "D"
    code, out, _ = run(home, ["config", "list", "--json"], capsys, monkeypatch)
    assert code == ExitCode.OK
    assert [(s["key"], s["value"], s["default"]) for s in json.loads(out)] == [
        ("proxy", None, "environment"), ("ca-bundle", None, "none"), ("trust", None, "system"),
    ]
    assert run(home, ["config", "set", "trust", "CERTIFI"], capsys, monkeypatch)[:2] == (0, "trust = certifi\n")
    assert run(home, ["config", "set", "proxy", "http://ann@proxy.corp:3128"], capsys, monkeypatch)[0] == 0
    code, out, _ = run(home, ["config", "get", "proxy"], capsys, monkeypatch)
    assert out == "http://ann@proxy.corp:3128\n"
    code, out, _ = run(home, ["config", "unset", "trust", "--json"], capsys, monkeypatch)
    assert json.loads(out)["removed"] is True and json.loads(out)["value"] is None
    code, out, _ = run(home, ["config", "unset", "trust"], capsys, monkeypatch)
    assert (code, out) == (0, "trust was not set\n")
    workspace = Workspace.open(home)
    try:
        settings = workspace.network.network()
    finally:
        workspace.close()
    assert settings.proxy is not None and settings.proxy.address == "http://proxy.corp:3128"
    assert settings.trust.value == "system"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["config", "get", "colour"], "unknown setting 'colour'; the settings are: proxy, ca-bundle, trust"),
        (["config", "set", "trust", "browser"], "trust: 'browser' is not a trust source; use system"),
        (["config", "set", "proxy", "socks5://p:1080"], "proxy: SOCKS proxies are not supported"),
        (["config", "set", "ca-bundle", "/nowhere/ca.pem"], "ca-bundle: the CA bundle /nowhere/ca.pem does not exist"),
        (["config", "set", "proxy"], "give a value for proxy (or --stdin to read it from stdin)"),
        (["config", "set", "proxy", "http://ann:hunter2@p:3128"], "a password on the command line is seen by other"),
    ],
)
def test_a_refused_value_says_why_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str],
    message: str,
) -> None:
    code, out, err = run(tmp_path / "D", argv, capsys, monkeypatch)
    assert code == ExitCode.USAGE
    assert message in err and "Traceback" not in err and "hunter2" not in err + out
    _, listed, _ = run(tmp_path / "D", ["config", "list", "--json"], capsys, monkeypatch)
    assert all(setting["value"] is None for setting in json.loads(listed))


def test_a_proxy_password_goes_to_the_keyring_never_to_the_database_and_is_shown_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, memory_keyring: MemoryKeyring
) -> None:
    home = tmp_path / "D"
    code, out, _ = run(home, ["config", "set", "proxy", "--stdin", "--json"], capsys, monkeypatch,
                       stdin=f"http://ann:{PASSWORD}@proxy.corp:3128\n")
    assert code == ExitCode.OK and json.loads(out)["value"] == "http://ann:***@proxy.corp:3128"
    [(service, account)] = list(memory_keyring.entries)
    assert service.startswith("crm-desktop/") and account.startswith("network-proxy-")  # the workspace's own
    assert memory_keyring.entries[(service, account)] == PASSWORD
    for argv in (["config", "get", "proxy"], ["config", "list"], ["config", "list", "--json"]):
        _, out, err = run(home, argv, capsys, monkeypatch)
        assert "ann:***@proxy.corp:3128" in out and PASSWORD not in out + err
    at_rest = b"".join(path.read_bytes() for path in home.rglob("*") if path.is_file())
    assert PASSWORD.encode() not in at_rest and b"ann" in at_rest
    # A new URL without a password drops the old one from the keyring; unset leaves nothing behind.
    run(home, ["config", "set", "proxy", "--stdin"], capsys, monkeypatch, stdin=f"http://ann:{PASSWORD}x@p:1\n")
    assert list(memory_keyring.entries.values()) == [PASSWORD + "x"]
    assert run(home, ["config", "unset", "proxy"], capsys, monkeypatch)[0] == ExitCode.OK
    assert memory_keyring.entries == {}


def test_a_team_desktop_without_the_proxy_password_is_told_so_not_shown_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, memory_keyring: MemoryKeyring
) -> None:
    # Two desktops on one database (a file here, as the PostgreSQL pass's CRM_DESKTOP_DB_URL would be), each
    # with its own keyring: the proxy setting is shared, its password is each desktop's own.
    monkeypatch.setenv("CRM_DESKTOP_DB_URL", sqlite_url(tmp_path / "shared" / "crm.db"))
    (tmp_path / "shared").mkdir()
    first, second = tmp_path / "desktop-a", tmp_path / "desktop-b"
    code, _, err = run(first, ["config", "set", "proxy", "--stdin"], capsys, monkeypatch,
                       stdin=f"http://ann:{PASSWORD}@proxy.corp:3128\n")
    assert code == ExitCode.OK, err
    keyring.set_keyring(MemoryKeyring())  # the second desktop's keyring: nothing in it yet

    code, out, _ = run(second, ["config", "get", "proxy", "--json"], capsys, monkeypatch)
    shown = json.loads(out)
    assert shown["value"] == "http://ann@proxy.corp:3128"  # no "***": this desktop has no password to send
    assert "not in this desktop's OS keyring" in shown["note"] and "config set proxy --stdin" in shown["note"]
    _, out, _ = run(second, ["config", "list"], capsys, monkeypatch)
    assert "http://ann@proxy.corp:3128 (its password is not in this desktop's OS keyring" in out

    code, _, err = run(second, ["config", "set", "proxy", "--stdin"], capsys, monkeypatch,
                       stdin=f"http://ann:{PASSWORD}@proxy.corp:3128\n")
    assert code == ExitCode.OK, err
    code, out, _ = run(second, ["config", "get", "proxy", "--json"], capsys, monkeypatch)
    given = json.loads(out)
    assert given["value"] == "http://ann:***@proxy.corp:3128" and "note" not in given
    keyring.set_keyring(memory_keyring)
    assert run(first, ["config", "get", "proxy"], capsys, monkeypatch)[1] == "http://ann:***@proxy.corp:3128\n"


# -- the settings at work: pushes over verified TLS and through a real proxy ------------------------------------


def write_certificates(folder: Path) -> tuple[Path, ServingTls]:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", PROXY_ONLY_NAME)
    folder.mkdir(parents=True, exist_ok=True)
    bundle, cert, key = folder / "company-root.pem", folder / "server.pem", folder / "server.key"
    ca.cert_pem.write_to_path(str(bundle))
    issued.private_key_pem.write_to_path(str(key))
    for number, blob in enumerate(issued.cert_chain_pems):
        blob.write_to_path(str(cert), append=number > 0)
    return bundle, ServingTls(cert, key)


@pytest.fixture(params=[None])
def tls_crm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, Path, HubSpotSandbox]]:
    """A workspace with one integration on a HubSpot sandbox served over HTTPS by a CA the OS does not trust
    (at the host name the test asks for, else at 127.0.0.1)."""
    bundle, tls = write_certificates(tmp_path / "pki")
    tls = ServingTls(tls.certfile, tls.keyfile, server_name=request.param)
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0))
    with SandboxServer([sandbox], tls=tls):
        home = tmp_path / "D"
        workspace = Workspace.open(home)
        try:
            workspace.integrations.add(
                Integration(provider="hubspot", name="crm", base_url=sandbox.base_url), sandbox.credentials()
            )
        finally:
            workspace.close()
        yield home, bundle, sandbox


def contacts_file(folder: Path) -> Path:
    path = folder / "contacts.csv"
    path.write_text("email,firstName,lastName\nann@acme.com,Ann,Lee\nbo@acme.com,Bo,Day\n", encoding="utf-8")
    return path


def summary(out: str) -> dict[str, Any]:
    return dict(json.loads(out)["summary"])


@pytest.mark.loopback
def test_a_push_over_tls_is_refused_until_the_company_root_is_trusted_then_succeeds(
    tls_crm: tuple[Path, Path, HubSpotSandbox], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home, bundle, sandbox = tls_crm
    push = ["contacts", "push", "crm", "--file", str(contacts_file(tmp_path))]
    code, out, err = run(home, push, capsys, monkeypatch)
    assert code == ExitCode.USAGE, out + err
    assert "the certificate of 127.0.0.1 is not trusted" in err and "config set ca-bundle PATH" in err
    assert "Traceback" not in err and not sandbox.requests
    assert run(home, ["config", "set", "ca-bundle", str(bundle)], capsys, monkeypatch)[0] == ExitCode.OK
    code, out, err = run(home, [*push, "--json"], capsys, monkeypatch)
    assert code == ExitCode.OK, err
    assert summary(out)["created"] == 2


@pytest.mark.loopback
@pytest.mark.parametrize("tls_crm", [PROXY_ONLY_NAME], indirect=True)
def test_a_push_goes_through_the_workspace_proxy_with_its_password_from_the_keyring(
    tls_crm: tuple[Path, Path, HubSpotSandbox], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home, bundle, sandbox = tls_crm
    host = sandbox.base_url.removeprefix("https://")
    assert host.startswith(PROXY_ONLY_NAME), "a name this computer cannot resolve: only the proxy reaches it"
    with ForwardProxy(tmp_path / "proxy", basic_auth=f"ann:{PASSWORD}") as proxy:
        address = proxy.url.removeprefix("http://")
        assert run(home, ["config", "set", "ca-bundle", str(bundle)], capsys, monkeypatch)[0] == ExitCode.OK
        code, _, err = run(home, ["config", "set", "proxy", "--stdin"], capsys, monkeypatch,
                           stdin=f"http://ann:{PASSWORD}@{address}\n")
        assert code == ExitCode.OK, err
        code, out, err = run(home, ["contacts", "push", "crm", "--file", str(contacts_file(tmp_path)), "--json"],
                             capsys, monkeypatch)
        log = proxy.wait_for_log(f"CONNECT {host}")
    assert code == ExitCode.OK, err
    assert summary(out)["created"] == 2
    assert f"CONNECT {host}" in log
