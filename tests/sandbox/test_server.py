"""Sandboxes over real loopback sockets: the background server, the signal-driven server and the factory."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import trustme

from crm_desktop.sandbox.core import Sandbox, SandboxConfig, _sleep_until
from crm_desktop.sandbox.salesforce import API_PREFIX, SalesforceSandbox
from crm_desktop.sandbox.server import (
    SERVING_GC_THRESHOLD,
    SandboxServer,
    ServingTls,
    make_sandbox,
    new_serving_loop,
    serve_until_signal,
    settle_serving_process,
)

pytestmark = pytest.mark.loopback


def port_is_open(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=0.5):
            return True
    except OSError:
        return False


def test_salesforce_over_loopback_oauth_query_and_dropped_connections(
    serve_on_loopback: Callable[..., SandboxServer],
) -> None:
    sandbox = SalesforceSandbox(SandboxConfig(seed=5, contacts=30, hang_seconds=0.6))
    server = serve_on_loopback(sandbox)
    url = server.urls[0]
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
    assert sandbox.base_url == url

    with httpx.Client(base_url=url, timeout=5.0) as client:
        redirect = client.get(
            "/services/oauth2/authorize",
            params={
                "response_type": "code",
                "client_id": sandbox.client_id,
                "redirect_uri": "http://127.0.0.1:8765/callback",
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
                "state": "abc",
            },
        )
        assert redirect.status_code == 302
        code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
        token = client.post(
            "/services/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "client_id": sandbox.client_id,
                "redirect_uri": "http://127.0.0.1:8765/callback",
                # RFC 7636 appendix B: this verifier gives the challenge above.
                "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            },
        )
        assert token.status_code == 200, token.text
        session = token.json()
        assert session["instance_url"] == url

        headers = {"Authorization": f"Bearer {session['access_token']}"}
        count = client.get(f"{API_PREFIX}/query", params={"q": "SELECT COUNT() FROM Contact"}, headers=headers)
        assert count.status_code == 200
        assert count.json()["totalSize"] == 30
        assert count.headers["sforce-limit-info"].startswith("api-usage=")

        assert client.put("/__sandbox__/faults", json={"spec": "reset@1"}).status_code == 200
        with pytest.raises(httpx.ReadError):
            client.get(f"{API_PREFIX}/limits", headers=headers)
        assert client.put("/__sandbox__/faults", json={"spec": "timeout@1"}).status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            client.get(f"{API_PREFIX}/limits", headers=headers, timeout=0.2)
        assert client.get(f"{API_PREFIX}/limits", headers=headers).status_code == 200

    server.stop()
    assert not port_is_open(url)
    server.stop()  # idempotent


def test_a_held_timeout_the_client_gave_up_on_is_dropped_quietly(
    serve_on_loopback: Callable[..., SandboxServer],
) -> None:
    sandbox = SalesforceSandbox(SandboxConfig(seed=6, hang_seconds=0.3))
    serve_on_loopback(sandbox)
    headers = {"Authorization": f"Bearer {sandbox.credentials()['accessToken']}"}
    httpx.put(f"{sandbox.base_url}/__sandbox__/faults", json={"spec": "timeout@1"})
    errors: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = errors.append  # type: ignore[method-assign]
    logging.getLogger("uvicorn.error").addHandler(handler)
    try:
        with httpx.Client(base_url=sandbox.base_url) as client:
            with pytest.raises(httpx.ReadTimeout):
                client.get(f"{API_PREFIX}/limits", headers=headers, timeout=0.05)
            # The client closed the connection while the sandbox held the request: dropping it later is a no-op.
            time.sleep(0.5)
            assert client.get(f"{API_PREFIX}/limits", headers=headers).status_code == 200
    finally:
        logging.getLogger("uvicorn.error").removeHandler(handler)
    assert errors == [], [record.getMessage() for record in errors]


def test_stopping_drops_a_held_request_at_once(serve_on_loopback: Callable[..., SandboxServer]) -> None:
    sandbox = SalesforceSandbox(SandboxConfig(seed=6, hang_seconds=30))
    server = serve_on_loopback(sandbox)
    headers = {"Authorization": f"Bearer {sandbox.credentials()['accessToken']}"}
    httpx.put(f"{sandbox.base_url}/__sandbox__/faults", json={"spec": "timeout@1"})
    outcome: dict[str, Any] = {}

    def held_request() -> None:
        try:
            httpx.get(f"{sandbox.base_url}{API_PREFIX}/limits", headers=headers, timeout=20)
        except httpx.TransportError as exc:
            outcome["error"] = exc

    client = threading.Thread(target=held_request)
    client.start()
    deadline = time.monotonic() + 5
    while not sandbox.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    server.stop()
    client.join(5)
    assert time.monotonic() - started < 5
    assert isinstance(outcome.get("error"), httpx.ReadError)


def test_several_sandboxes_each_get_their_own_port(serve_on_loopback: Callable[..., SandboxServer]) -> None:
    first = SalesforceSandbox(SandboxConfig(seed=1))
    second = SalesforceSandbox(SandboxConfig(seed=2))
    server = serve_on_loopback(first, second)
    assert len(set(server.urls)) == 2
    for sandbox in (first, second):
        credentials = sandbox.credentials()
        assert credentials["instanceUrl"] == sandbox.base_url
        response = httpx.get(
            f"{sandbox.base_url}/services/oauth2/userinfo",
            headers={"Authorization": f"Bearer {credentials['accessToken']}"},
        )
        assert response.json()["organization_id"] == sandbox.org_id


def test_server_refuses_non_loopback_hosts_and_a_taken_port() -> None:
    with pytest.raises(ValueError, match="loopback"):
        SandboxServer([SalesforceSandbox()], host="0.0.0.0").start()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            SandboxServer([SalesforceSandbox()], ports=[port]).start()


def test_serve_until_signal_serves_then_stops_on_sigterm() -> None:
    sandbox = SalesforceSandbox(SandboxConfig(seed=3, contacts=5))
    outcome: dict[str, Any] = {}

    def client_then_sigterm(urls: list[str]) -> None:
        try:
            credentials = sandbox.credentials()
            response = httpx.get(
                f"{urls[0]}{API_PREFIX}/query",
                params={"q": "SELECT Id FROM Contact"},
                headers={"Authorization": f"Bearer {credentials['accessToken']}"},
                timeout=5.0,
            )
            outcome["total"] = response.json()["totalSize"]
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    def on_ready(ready: Sequence[Sandbox]) -> None:
        outcome["urls"] = [item.base_url for item in ready]
        threading.Thread(target=client_then_sigterm, args=(outcome["urls"],), daemon=True).start()

    asyncio.run(asyncio.wait_for(serve_until_signal([sandbox], on_ready=on_ready), timeout=20))
    assert outcome["total"] == 5
    assert outcome["urls"] == [sandbox.base_url]
    assert not port_is_open(sandbox.base_url)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_make_sandbox_builds_each_provider() -> None:
    sandbox = make_sandbox("Salesforce", SandboxConfig(seed=4, contacts=3))
    assert isinstance(sandbox, SalesforceSandbox)
    assert sandbox.summary()["Contact"] == 3
    with pytest.raises(ValueError, match="unknown sandbox provider"):
        make_sandbox("zoho", SandboxConfig())


@pytest.mark.parametrize(("provider", "module"), [("hubspot", "hubspot"), ("pipedrive", "pipedrive")])
def test_make_sandbox_builds_the_other_emulators(provider: str, module: str) -> None:
    pytest.importorskip(f"crm_desktop.sandbox.{module}")
    sandbox = make_sandbox(provider, SandboxConfig(seed=4))
    assert sandbox.provider == provider


def test_sandboxes_served_beside_the_app_run_on_asyncios_own_loop() -> None:
    # Demo mode serves them in the GUI's process: nothing process-wide (uvloop's policy, collector settings) may
    # come with them.
    sandbox = SalesforceSandbox(SandboxConfig())
    threshold = gc.get_threshold()
    with SandboxServer([sandbox]) as server:
        assert type(server._loop).__module__.startswith("asyncio")
        with httpx.Client(base_url=sandbox.base_url) as client:
            assert client.get("/services/data").status_code == 200
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == 0


def test_a_serving_process_serves_on_uvloop_when_asked_and_never_answers_early() -> None:
    uvloop = pytest.importorskip("uvloop")
    sandbox = SalesforceSandbox(SandboxConfig(latency_ms=7))
    with SandboxServer([sandbox], loop_factory=new_serving_loop) as server:
        assert isinstance(server._loop, uvloop.Loop)
        with httpx.Client(base_url=sandbox.base_url) as client:
            for _ in range(20):
                assert client.get("/services/data").status_code == 200
    assert all(entry.seconds >= 0.007 for entry in sandbox.requests)

    # libuv's millisecond timers, counted from when the loop iteration began, may end a sleep early: the wait
    # for an answer's due time sleeps the rest.
    async def woken_after_due() -> list[float]:
        late = []
        for n in range(150):
            due = time.monotonic() + 0.0003 * (n % 10 + 1)
            time.sleep(0.0007)  # noqa: ASYNC251 -- the emulator's work, done before the answer is due
            await _sleep_until(due)
            late.append(time.monotonic() - due)
        return late

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert min(runner.run(woken_after_due())) >= 0


def test_a_serving_process_keeps_young_garbage_collections_rare_and_what_it_loaded_frozen() -> None:
    before = gc.get_threshold()
    try:
        settle_serving_process()
        assert gc.get_threshold() == (SERVING_GC_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_sandboxes_are_served_over_https_with_the_certificate_given(tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "crm.sandbox.test")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    for number, blob in enumerate(issued.cert_chain_pems):
        blob.write_to_path(str(cert), append=number > 0)
    issued.private_key_pem.write_to_path(str(key))
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    sandbox = SalesforceSandbox(SandboxConfig())
    with SandboxServer([sandbox], tls=ServingTls(cert, key)):
        assert sandbox.base_url.startswith("https://127.0.0.1:")
        assert httpx.get(f"{sandbox.base_url}/__sandbox__/state", verify=trusted).status_code == 200
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{sandbox.base_url}/__sandbox__/state", verify=ssl.create_default_context())
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(sandbox.base_url.replace("https://", "http://") + "/__sandbox__/state")
    # A name the certificate carries is announced instead of the address (a proxy resolves it).
    named = SalesforceSandbox(SandboxConfig())
    with SandboxServer([named], tls=ServingTls(cert, key, server_name="crm.sandbox.test")):
        assert named.base_url.startswith("https://crm.sandbox.test:")
        assert named.credentials()["instanceUrl"] == named.base_url
