"""``crm-desktop sandbox`` and ``crm-desktop demo``: real processes, real loopback sockets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.loopback

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CRM_DESKTOP_DB_URL"}
    env["PYTHONPATH"] = str(REPO)
    return env


def _start_sandbox(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "crm_desktop", "sandbox", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def _read_lines(process: subprocess.Popen[str], count: int, timeout: float = 30.0) -> list[dict[str, object]]:
    assert process.stdout is not None
    lines: list[dict[str, object]] = []
    deadline = time.monotonic() + timeout
    while len(lines) < count and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(json.loads(line))
    return lines


def _finish(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=30)  # reaps it and closes its pipes


def test_sandbox_serves_one_provider_and_stops_on_sigterm() -> None:
    process = _start_sandbox("--provider", "hubspot", "--contacts", "5", "--latency-ms", "1")
    try:
        [ready] = _read_lines(process, 1)
        assert ready["provider"] == "hubspot"
        base_url = str(ready["baseUrl"])
        assert base_url.startswith("http://127.0.0.1:")
        token = ready["credentials"]["token"]  # type: ignore[index]
        response = httpx.get(f"{base_url}/crm/v3/objects/contacts?limit=10",
                             headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert len(response.json()["results"]) == 5
        assert "x-hubspot-ratelimit-remaining" in response.headers
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        _finish(process)


def test_sandbox_all_prints_one_line_per_provider_and_stops_on_sigint() -> None:
    process = _start_sandbox("--all", "--faults", "5xx:0.0")
    try:
        lines = _read_lines(process, 3)
        assert sorted(str(line["provider"]) for line in lines) == ["hubspot", "pipedrive", "salesforce"]
        salesforce = next(line for line in lines if line["provider"] == "salesforce")
        credentials = salesforce["credentials"]
        assert isinstance(credentials, dict) and credentials["instanceUrl"] == salesforce["baseUrl"]
        state = httpx.get(f"{salesforce['baseUrl']}/__sandbox__/state").json()
        assert state["provider"] == "salesforce"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        _finish(process)


def test_sandbox_refuses_a_bad_fault_spec() -> None:
    process = _start_sandbox("--faults", "explode:2")
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "explode" in err


def test_demo_headless_sets_up_three_integrations_and_syncs(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "crm_desktop", "--data-dir", str(tmp_path), "demo", "--headless", "--json",
         "--contacts", "20", "--sync"],
        capture_output=True, text=True, env=_env(), timeout=240,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert Path(summary["dataDir"]) == tmp_path / "demo"
    assert summary["localContacts"] == 20
    assert sorted(i["provider"] for i in summary["integrations"]) == ["hubspot", "pipedrive", "salesforce"]
    for integration in summary["integrations"]:
        assert integration["baseUrl"].startswith("http://127.0.0.1:")
    for run in summary["firstSync"]:
        assert run["status"] == "succeeded", run
        assert run["created"] >= 20  # the local contacts went out, and the CRM's own came in
        assert run["failed"] == 0
    # The demo never touches the real workspace next to it.
    assert not (tmp_path / "crm-desktop.db").exists()


def test_sandbox_serves_https_with_the_certificate_given_and_announces_https_urls(tmp_path: Path) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    for number, blob in enumerate(server.cert_chain_pems):
        blob.write_to_path(str(cert), append=number > 0)
    server.private_key_pem.write_to_path(str(key))
    process = _start_sandbox("--provider", "pipedrive", "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        [ready] = _read_lines(process, 1)
        base_url = str(ready["baseUrl"])
        assert base_url.startswith("https://127.0.0.1:") and str(ready["control"]).startswith(base_url)
        trusted = ssl.create_default_context()
        ca.configure_trust(trusted)
        assert httpx.get(str(ready["control"]), verify=trusted).status_code == 200
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(str(ready["control"]), verify=ssl.create_default_context())
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        _finish(process)


def test_sandbox_refuses_a_certificate_without_its_key(tmp_path: Path) -> None:
    (tmp_path / "server.pem").write_text("")
    process = _start_sandbox("--tls-cert", str(tmp_path / "server.pem"))
    try:
        assert process.wait(timeout=30) == 2
        assert process.stderr is not None
        assert "--tls-cert and --tls-key go together" in process.stderr.read()
    finally:
        _finish(process)
