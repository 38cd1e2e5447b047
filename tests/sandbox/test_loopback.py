"""HubSpot and Pipedrive emulators over real loopback sockets: limits, paging, faults and recovery."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.sandbox.server import SandboxServer

pytestmark = pytest.mark.loopback


def test_hubspot_over_loopback(serve_on_loopback: Callable[..., SandboxServer]) -> None:
    sandbox = HubSpotSandbox(SandboxConfig(contacts=30))
    serve_on_loopback(sandbox)
    sandbox.apply_config({"ten_second_limit": 5})
    headers = {"Authorization": f"Bearer {sandbox.credentials()['token']}"}
    with httpx.Client(base_url=sandbox.base_url, headers=headers, timeout=10) as client:
        # Paging to the end over real sockets.
        seen: list[str] = []
        after: str | None = None
        for _ in range(5):
            params = {"limit": "10", **({"after": after} if after else {})}
            response = client.get("/crm/v3/objects/contacts", params=params)
            assert response.status_code == 200
            body = response.json()
            seen += [r["id"] for r in body["results"]]
            after = body.get("paging", {}).get("next", {}).get("after")
            if not after:
                break
        assert len(seen) == len(set(seen)) == 30
        # The ten-secondly window: the 6th request in the window is refused with HubSpot's own 429 body.
        statuses = [client.get("/crm/v3/objects/contacts", params={"limit": "1"}).status_code for _ in range(3)]
        assert statuses[-1] == 429
        refused = client.get("/crm/v3/objects/contacts", params={"limit": "1"})
        assert refused.json()["policyName"] == "TEN_SECONDLY_ROLLING"
        assert refused.headers["x-hubspot-ratelimit-remaining"] == "0"
        sandbox.clock.advance(10.5)
        assert client.get("/crm/v3/objects/contacts", params={"limit": "1"}).status_code == 200
        # A reset fault drops the connection: a real socket error, then the next request works.
        sandbox.apply_config({"ten_second_limit": 100})
        client.put("/__sandbox__/faults", json={"spec": "reset@1"})  # counting restarts with new rules
        with pytest.raises(httpx.TransportError):
            client.get("/crm/v3/objects/contacts", params={"limit": "1"})
        assert client.get("/crm/v3/objects/contacts", params={"limit": "1"}).status_code == 200


def test_pipedrive_over_loopback(serve_on_loopback: Callable[..., SandboxServer]) -> None:
    sandbox = PipedriveSandbox(SandboxConfig(contacts=25))
    serve_on_loopback(sandbox)
    sandbox.apply_config({"burst_limit": 4})
    headers = {"x-api-token": sandbox.credentials()["apiToken"]}
    with httpx.Client(base_url=sandbox.base_url, headers=headers, timeout=10) as client:
        created = client.post("/api/v2/persons", json={"name": "Ada Lovelace",
                                                       "emails": [{"value": "ada@example.com", "primary": True}]})
        assert created.status_code == 200 and created.json()["success"] is True
        limited = [client.get("/api/v2/persons", params={"limit": "5"}) for _ in range(4)]
        assert limited[-1].status_code == 429
        assert limited[-1].json()["success"] is False
        assert "x-ratelimit-reset" in limited[-1].headers
        sandbox.clock.advance(2.1)
        time.sleep(0.01)
        ids: list[int] = []
        cursor: str | None = None
        sandbox.apply_config({"burst_limit": 100})
        while True:
            params = {"limit": "10", **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v2/persons", params=params)
            assert page.status_code == 200, page.text
            ids += [p["id"] for p in page.json()["data"]]
            cursor = (page.json().get("additional_data") or {}).get("next_cursor")
            if not cursor:
                break
        assert len(ids) == len(set(ids)) == 26
        wrong = httpx.get(f"{sandbox.base_url}/api/v2/persons", headers={"x-api-token": "nope"})
        assert wrong.status_code == 401 and wrong.json()["success"] is False
