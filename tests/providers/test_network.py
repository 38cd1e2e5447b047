"""Proxies and trust with real parts: sandboxes over verified HTTPS, and proxy.py forwarding and tunnelling."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import certifi
import httpx
import pytest
import trustme

from crm_desktop.domain.models import Integration, Provider
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.providers.contract import AdapterOptions, CrmAdapter, OutboundRecord
from crm_desktop.providers.factory import build_adapter
from crm_desktop.providers.network import (
    NetworkSettings,
    NetworkSetupError,
    Trust,
    check_ca_bundle,
    parse_proxy_url,
)
from crm_desktop.providers.signin import salesforce_sign_in
from crm_desktop.sandbox.core import Sandbox, SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.sandbox.server import SandboxServer, ServingTls
from tests.support.forward_proxy import ForwardProxy

PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")
#: A name the desktop cannot resolve (``.test`` is reserved) and the test proxy resolves to loopback.
PROXY_ONLY_NAME = "crm.sandbox.test"


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from an environment without proxies (the machine running them may have some)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@dataclass(frozen=True)
class Certificates:
    """A test CA and a server certificate it signed, as PEM files."""

    ca_bundle: Path
    cert: Path
    key: Path

    def tls(self, server_name: str | None = None) -> ServingTls:
        return ServingTls(self.cert, self.key, server_name=server_name)


def issue(folder: Path, *names: str) -> Certificates:
    ca = trustme.CA()
    server = ca.issue_cert(*names)
    folder.mkdir(parents=True, exist_ok=True)
    certificates = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    ca.cert_pem.write_to_path(str(certificates.ca_bundle))
    server.private_key_pem.write_to_path(str(certificates.key))
    for number, blob in enumerate(server.cert_chain_pems):
        blob.write_to_path(str(certificates.cert), append=number > 0)
    return certificates


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    return issue(tmp_path / "pki", "127.0.0.1", "localhost", PROXY_ONLY_NAME)


def hubspot_adapter(sandbox: Sandbox, network: NetworkSettings, base_url: str | None = None) -> CrmAdapter:
    integration = Integration(provider=Provider.HUBSPOT, name="hs", base_url=base_url or sandbox.base_url)
    return build_adapter(integration, sandbox.credentials(), options=AdapterOptions(network=network, max_attempts=2))


def push(adapter: CrmAdapter, count: int = 3) -> list[RecordOutcome]:
    records = [OutboundRecord(f"tls{n}@acme.com", {"firstname": f"Tls{n}", "lastname": "Proof"}) for n in range(count)]

    async def go() -> list[RecordOutcome]:
        try:
            return [result.outcome for result in await adapter.upsert(RecordObject.CONTACT, records)]
        finally:
            await adapter.aclose()

    return asyncio.run(go())


def created_emails(sandbox: HubSpotSandbox) -> set[str]:
    """The emails of contacts the sandbox wrote (upserts by email), read from its request log."""
    return {
        str(item["id"])
        for entry in sandbox.requests
        if entry.method == "POST" and entry.path.endswith("/batch/upsert") and entry.status < 300
        for item in entry.body["inputs"]
    }


# -- settings values ----------------------------------------------------------------------------------------------


def test_a_proxy_url_keeps_its_user_and_shows_its_password_redacted() -> None:
    proxy = parse_proxy_url(" http://ann%40corp:p%40ss:w@Proxy.Corp:3128 ")
    assert (proxy.address, proxy.username, proxy.password) == ("http://proxy.corp:3128", "ann@corp", "p@ss:w")
    assert proxy.shown == "http://ann%40corp:***@proxy.corp:3128"
    assert httpx.Proxy(proxy.full).auth == ("ann@corp", "p@ss:w")
    assert "p@ss" not in repr(NetworkSettings(proxy=proxy)) and "p@ss" not in str(proxy)
    assert parse_proxy_url("https://[::1]:8443").address == "https://[::1]:8443"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("socks5://proxy:1080", "SOCKS proxies are not supported"),
        ("proxy.corp:3128", "must start with http:// or https://"),
        ("http://:3128", "names no host"),
        ("http://proxy.corp:3128/path", "no path or query"),
        ("http://proxy.corp:99999", "not a URL"),
        ("http://:secret@proxy.corp", "password but no user name"),
    ],
)
def test_a_proxy_url_that_cannot_work_is_refused_naming_why(url: str, reason: str) -> None:
    with pytest.raises(NetworkSetupError, match=reason) as refused:
        parse_proxy_url(url)
    assert "secret" not in str(refused.value)


def test_a_ca_bundle_must_hold_a_pem_certificate(tmp_path: Path, certificates: Certificates) -> None:
    assert check_ca_bundle(certificates.ca_bundle) == certificates.ca_bundle.resolve()
    (tmp_path / "empty.pem").write_text("not a certificate\n")
    (tmp_path / "broken.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    for name, reason in [("missing.pem", "does not exist"), ("empty.pem", "holds no PEM"), ("broken.pem", "not valid")]:
        with pytest.raises(NetworkSetupError, match=reason):
            check_ca_bundle(tmp_path / name)


def test_trust_comes_from_the_os_store_or_certifi_verification_always_on(certificates: Certificates) -> None:
    import truststore

    system = NetworkSettings().tls_context()
    assert isinstance(system, truststore.SSLContext)
    bundled = NetworkSettings(trust=Trust.CERTIFI, ca_bundle=certificates.ca_bundle).tls_context()
    assert not isinstance(bundled, truststore.SSLContext)
    for context in (system, bundled):
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    certifi_roots = len(ssl.create_default_context(cafile=certifi.where()).get_ca_certs())
    assert len(bundled.get_ca_certs()) == certifi_roots + 1, "the extra CA is trusted in addition"


def test_environment_proxies_route_by_scheme_and_no_proxy_names_direct_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://tls-proxy:3128")
    monkeypatch.setenv("HTTP_PROXY", "plain-proxy:8080")
    monkeypatch.setenv("NO_PROXY", "intranet.corp, 10.1.2.3,::1,localhost,.internal,192.168.0.0/16")
    routes = NetworkSettings().proxy_routes()
    assert routes == {
        "https://": "http://tls-proxy:3128",
        "http://": "http://plain-proxy:8080",
        "all://localhost": None,
        "all://127.0.0.1": None,
        "all://[::1]": None,
        "all://*intranet.corp": None,
        "all://10.1.2.3": None,
        "all://*internal": None,
    }
    # The workspace's proxy replaces the environment's for every scheme; NO_PROXY still applies.
    mine = NetworkSettings(proxy=parse_proxy_url("http://bob:pw@mine:3128")).proxy_routes()
    assert mine["all://"] == "http://bob:pw@mine:3128" and "https://" not in mine and mine["all://localhost"] is None
    monkeypatch.setenv("NO_PROXY", "*")
    assert NetworkSettings().proxy_routes() == {}
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.delenv("HTTP_PROXY")
    assert NetworkSettings().proxy_routes() == {}, "no proxy: nothing to route"


def test_socks_proxies_in_the_environment_are_ignored_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    assert NetworkSettings().proxy_routes() == {}
    assert "ALL_PROXY ignored" in caplog.text


# -- verified TLS -------------------------------------------------------------------------------------------------


@pytest.fixture
def tls_hubspot(certificates: Certificates) -> Iterator[HubSpotSandbox]:
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0))
    with SandboxServer([sandbox], tls=certificates.tls()):
        yield sandbox


@pytest.mark.loopback
def test_a_push_over_verified_tls_succeeds_with_the_ca_bundle_setting(
    tls_hubspot: HubSpotSandbox, certificates: Certificates
) -> None:
    assert tls_hubspot.base_url.startswith("https://127.0.0.1:")
    outcomes = push(hubspot_adapter(tls_hubspot, NetworkSettings(ca_bundle=certificates.ca_bundle)))
    assert outcomes == [RecordOutcome.CREATED] * 3
    assert {"tls0@acme.com", "tls1@acme.com", "tls2@acme.com"} == created_emails(tls_hubspot)


@pytest.mark.loopback
@pytest.mark.parametrize("trust", [Trust.SYSTEM, Trust.CERTIFI])
def test_a_certificate_from_an_untrusted_ca_is_refused_at_once_saying_what_to_do(
    tls_hubspot: HubSpotSandbox, trust: Trust
) -> None:
    adapter = hubspot_adapter(tls_hubspot, NetworkSettings(trust=trust))
    with pytest.raises(NetworkSetupError) as refused:
        push(adapter)
    message = str(refused.value)
    assert "the certificate of 127.0.0.1 is not trusted" in message
    assert "crm-desktop config set ca-bundle PATH" in message
    assert "Traceback" not in message and refused.value.__cause__ is None
    assert adapter.api_calls == 1, "a refused certificate is not retried"
    assert not tls_hubspot.requests, "nothing reached the CRM"


@pytest.mark.loopback
def test_a_certificate_for_another_name_is_refused(tmp_path: Path) -> None:
    elsewhere = issue(tmp_path / "other", "crm.example.test")
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0))
    with SandboxServer([sandbox], tls=elsewhere.tls()):
        adapter = hubspot_adapter(sandbox, NetworkSettings(ca_bundle=elsewhere.ca_bundle))
        with pytest.raises(NetworkSetupError, match=r"the certificate of 127\.0\.0\.1 is not valid for that name"):
            push(adapter)
    assert not sandbox.requests


@pytest.mark.loopback
def test_the_sandbox_serves_https_that_plain_httpx_refuses_without_the_ca(tls_hubspot: HubSpotSandbox) -> None:
    # The served certificate is real TLS: a client that does not trust the test CA fails the handshake.
    mozilla_roots = ssl.create_default_context(cafile=certifi.where())
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_hubspot.base_url}/__sandbox__/state", verify=mozilla_roots)


# -- a real forward proxy -----------------------------------------------------------------------------------------


@pytest.mark.loopback
def test_a_push_goes_through_the_environment_s_https_proxy_with_connect_but_never_to_loopback(
    tls_hubspot: HubSpotSandbox, certificates: Certificates, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = HubSpotSandbox(SandboxConfig(contacts=0))
    trusted = NetworkSettings(ca_bundle=certificates.ca_bundle)
    with (
        SandboxServer([named], tls=certificates.tls(server_name=PROXY_ONLY_NAME)),
        ForwardProxy(tmp_path / "proxy") as proxy,
    ):
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        outcomes = push(hubspot_adapter(named, trusted))
        # This computer's loopback (demo mode's sandboxes) is reached directly: a proxy could never reach it.
        direct = push(hubspot_adapter(tls_hubspot, trusted))
        log = proxy.wait_for_log(f"CONNECT {PROXY_ONLY_NAME}:")
        # NO_PROXY sends a push around the proxy: to a name only the proxy knows, it cannot connect.
        monkeypatch.setenv("NO_PROXY", "sandbox.test")
        unreached = push(hubspot_adapter(named, trusted))
        bypassed = proxy.log()
    assert outcomes == direct == [RecordOutcome.CREATED] * 3
    assert unreached == [RecordOutcome.FAILED] * 3
    assert f"CONNECT {PROXY_ONLY_NAME}:" in log and "CONNECT 127.0.0.1" not in log
    assert bypassed.count("CONNECT") == log.count("CONNECT")


@pytest.mark.loopback
def test_a_host_only_the_proxy_can_resolve_is_reached_through_the_workspace_proxy_with_its_password(
    certificates: Certificates, tmp_path: Path
) -> None:
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0))
    with (
        SandboxServer([sandbox], tls=certificates.tls(server_name=PROXY_ONLY_NAME)),
        ForwardProxy(tmp_path / "proxy", basic_auth="ann:s3cret") as proxy,
    ):
        assert sandbox.base_url.startswith(f"https://{PROXY_ONLY_NAME}:")
        port = proxy.url.rsplit(":", 1)[1]
        right = parse_proxy_url(f"http://ann:s3cret@127.0.0.1:{port}")
        outcomes = push(hubspot_adapter(sandbox, NetworkSettings(proxy=right, ca_bundle=certificates.ca_bundle)))
        wrong = parse_proxy_url(f"http://ann:wrong@127.0.0.1:{port}")
        with pytest.raises(NetworkSetupError, match=r"the proxy refused to connect to crm\.sandbox\.test") as refused:
            push(hubspot_adapter(sandbox, NetworkSettings(proxy=wrong, ca_bundle=certificates.ca_bundle)))
        log = proxy.wait_for_log(f"CONNECT {sandbox.base_url.split('//')[1]}")
    assert outcomes == [RecordOutcome.CREATED] * 3
    assert "407" in str(refused.value) and "wrong" not in str(refused.value)
    assert f"CONNECT {PROXY_ONLY_NAME}:" in log


@pytest.mark.loopback
def test_an_https_proxy_is_trusted_by_the_same_certificates_as_the_crm(
    certificates: Certificates, tmp_path: Path
) -> None:
    # A company's https:// proxy presents a certificate of the company's CA: the one the workspace trusts (here
    # its CA bundle), not Mozilla's roots alone.
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0))
    with (
        SandboxServer([sandbox], tls=certificates.tls(server_name=PROXY_ONLY_NAME)),
        ForwardProxy(tmp_path / "proxy", tls=(certificates.cert, certificates.key)) as proxy,
    ):
        assert proxy.url.startswith("https://127.0.0.1:")
        network = NetworkSettings(proxy=parse_proxy_url(proxy.url), ca_bundle=certificates.ca_bundle)
        outcomes = push(hubspot_adapter(sandbox, network))
        log = proxy.wait_for_log(f"CONNECT {PROXY_ONLY_NAME}:")
    assert outcomes == [RecordOutcome.CREATED] * 3
    assert f"CONNECT {PROXY_ONLY_NAME}:" in log


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.loopback
def test_a_proxy_that_cannot_reach_the_crm_for_a_moment_is_retried_not_blamed(
    certificates: Certificates, tmp_path: Path
) -> None:
    # The proxy answers the CONNECT 502 while the CRM is unreachable from it: network weather, retried, and the
    # push goes through once the CRM answers again (here: once the sandbox is up, during the first back-off).
    port = free_port()
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0))
    server = SandboxServer([sandbox], ports=[port], tls=certificates.tls(server_name=PROXY_ONLY_NAME))
    integration = Integration(provider=Provider.HUBSPOT, name="hs", base_url=f"https://{PROXY_ONLY_NAME}:{port}")
    waits: list[float] = []

    async def crm_back_after_a_wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 1:
            server.start()

    records = [OutboundRecord(f"gw{n}@acme.com", {"firstname": f"Gw{n}"}) for n in range(3)]

    async def go(adapter: CrmAdapter) -> list[Any]:
        try:
            return await adapter.upsert(RecordObject.CONTACT, records)
        finally:
            await adapter.aclose()

    with ForwardProxy(tmp_path / "proxy") as proxy:
        network = NetworkSettings(proxy=parse_proxy_url(proxy.url), ca_bundle=certificates.ca_bundle)
        options = AdapterOptions(network=network, max_attempts=3)
        try:
            through = asyncio.run(
                go(build_adapter(integration, sandbox.credentials(), options=options, sleep=crm_back_after_a_wait))
            )
        finally:
            server.stop()
        # The CRM stays unreachable: the records fail as a network failure naming the proxy's answer, to retry.
        unreachable = asyncio.run(go(build_adapter(integration, sandbox.credentials(), options=options,
                                                   sleep=lambda seconds: asyncio.sleep(0))))
    assert [result.outcome for result in through] == [RecordOutcome.CREATED] * 3
    assert len(waits) >= 1 and created_emails(sandbox) == {"gw0@acme.com", "gw1@acme.com", "gw2@acme.com"}
    assert [result.outcome for result in unreachable] == [RecordOutcome.FAILED] * 3
    failed = unreachable[0]
    assert failed.category is ErrorCategory.NETWORK
    assert failed.message is not None and "502 Bad Gateway" in failed.message
    assert "user and password" not in failed.message


@pytest.mark.loopback
def test_salesforce_sign_in_and_token_refresh_go_through_the_proxy(
    certificates: Certificates, tmp_path: Path
) -> None:
    sandbox = SalesforceSandbox(SandboxConfig(contacts=0))
    with (
        SandboxServer([sandbox], tls=certificates.tls(server_name=PROXY_ONLY_NAME)),
        ForwardProxy(tmp_path / "proxy") as proxy,
    ):
        network = NetworkSettings(proxy=parse_proxy_url(proxy.url), ca_bundle=certificates.ca_bundle)
        browser_trust = ssl.create_default_context(cafile=str(certificates.ca_bundle))

        async def open_browser(authorize_url: str) -> None:
            # The system browser, behind the same proxy, consents and lands on the app's loopback listener.
            async with httpx.AsyncClient(proxy=proxy.url, verify=browser_trust, timeout=10.0) as browser:
                consent = await browser.get(authorize_url)
                assert consent.status_code == 302
            async with httpx.AsyncClient(timeout=10.0) as local:
                assert (await local.get(consent.headers["location"])).status_code == 200

        async def scenario() -> tuple[dict[str, Any], Any, int]:
            credentials = await salesforce_sign_in(
                sandbox.base_url, sandbox.client_id, sandbox.client_secret,
                open_browser=open_browser, port=0, wait_seconds=10.0, network=network,
            )
            sandbox.expire_tokens()
            integration = Integration(provider=Provider.SALESFORCE, name="sf", base_url=sandbox.base_url)
            adapter = build_adapter(integration, credentials, options=AdapterOptions(network=network))
            try:
                info = await adapter.test_connection()
                return credentials, info, adapter.auth.refreshes  # type: ignore[attr-defined]
            finally:
                await adapter.aclose()

        credentials, info, refreshes = asyncio.run(scenario())
        log = proxy.wait_for_log(f"CONNECT {PROXY_ONLY_NAME}:", count=3)
    assert credentials["instanceUrl"] == sandbox.base_url and info.account == sandbox.org_id
    assert refreshes == 1
    token_calls = [entry.status for entry in sandbox.requests if entry.path == "/services/oauth2/token"]
    assert token_calls == [200, 200], "the code exchange and the refresh both reached the CRM"
    assert log.count(f"CONNECT {PROXY_ONLY_NAME}:") >= 3, "browser, code exchange and the adapter tunnelled"
