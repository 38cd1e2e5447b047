"""Desktop sign-in to the Salesforce sandbox over real loopback: PKCE, state, and the tokens it yields at work."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from crm_desktop.domain.models import Integration, Provider
from crm_desktop.domain.outcomes import RecordObject, RecordOutcome
from crm_desktop.providers.contract import AdapterOptions, OutboundRecord
from crm_desktop.providers.errors import AuthError
from crm_desktop.providers.salesforce import SalesforceAdapter
from crm_desktop.providers.signin import LoopbackRedirectListener, PkcePair, salesforce_sign_in
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.sandbox.server import SandboxServer

pytestmark = pytest.mark.loopback

TOKEN = "/services/oauth2/token"

UrlEdit = Callable[[str], str]


@pytest.fixture
def served() -> Iterator[SalesforceSandbox]:
    sandbox = SalesforceSandbox(SandboxConfig())
    with SandboxServer([sandbox]):
        yield sandbox


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def browser(*, authorize_edit: UrlEdit | None = None, redirect_edit: UrlEdit | None = None) -> Any:
    """A stand-in for the system browser: follows the authorize page's redirect to the loopback listener."""

    async def open_browser(authorize_url: str) -> None:
        async with httpx.AsyncClient(timeout=10.0) as client:
            url = authorize_edit(authorize_url) if authorize_edit else authorize_url
            consent = await client.get(url, follow_redirects=False)
            assert consent.status_code == 302, consent.text
            location = consent.headers["location"]
            if redirect_edit:
                location = redirect_edit(location)
            landing = await client.get(location)
            assert landing.status_code == 200

    return open_browser


async def sign_in(sandbox: SalesforceSandbox, **browser_edits: UrlEdit) -> dict[str, Any]:
    return await salesforce_sign_in(
        sandbox.base_url,
        sandbox.client_id,
        sandbox.client_secret,
        open_browser=browser(**browser_edits),
        port=0,
        wait_seconds=10.0,
    )


def adapter_for(sandbox: SalesforceSandbox, credentials: dict[str, Any], **kwargs: Any) -> SalesforceAdapter:
    integration = Integration(provider=Provider.SALESFORCE, name="Loopback org", base_url=sandbox.base_url)
    return SalesforceAdapter(integration, credentials, options=AdapterOptions(max_attempts=3), **kwargs)


async def control(sandbox: SalesforceSandbox, method: str, path: str, payload: Any = None) -> Any:
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10.0) as client:
        response = await client.request(method, f"/__sandbox__/{path}", json=payload)
        response.raise_for_status()
        return response.json()


def token_requests(sandbox: SalesforceSandbox) -> list[int]:
    return [entry.status for entry in sandbox.requests if entry.path == TOKEN]


def test_sign_in_yields_credentials_that_work(served: SalesforceSandbox) -> None:
    async def scenario() -> Any:
        credentials = await sign_in(served)
        adapter = adapter_for(served, credentials)
        try:
            return credentials, await adapter.test_connection()
        finally:
            await adapter.aclose()

    credentials, info = asyncio.run(scenario())
    assert credentials["instanceUrl"] == served.base_url
    assert credentials["clientId"] == served.client_id and credentials["clientSecret"] == served.client_secret
    assert credentials["accessToken"] and credentials["refreshToken"] and credentials["issuedAt"] > 0
    assert credentials["refreshToken"] != served.credentials()["refreshToken"]  # issued by this sign-in
    assert info.account == served.org_id and info.user == served.username
    authorize = [entry for entry in served.requests if entry.path == "/services/oauth2/authorize"]
    query = dict(parse_qsl(authorize[0].query))
    assert query["code_challenge_method"] == "S256" and query["response_type"] == "code"
    assert urlsplit(query["redirect_uri"]).hostname == "localhost"
    assert token_requests(served) == [200]


def test_wrong_pkce_verifier_is_refused(served: SalesforceSandbox) -> None:
    other = PkcePair.create()

    def swap_challenge(url: str) -> str:
        # The code gets bound to another verifier's challenge, so the app's own verifier no longer matches.
        return with_query(url, code_challenge=other.challenge)

    with pytest.raises(AuthError, match="invalid_grant"):
        asyncio.run(sign_in(served, authorize_edit=swap_challenge))
    assert token_requests(served) == [400]


def test_wrong_state_is_refused_before_any_token_exchange(served: SalesforceSandbox) -> None:
    with pytest.raises(AuthError, match="state mismatch"):
        asyncio.run(sign_in(served, redirect_edit=lambda url: with_query(url, state="forged")))
    assert token_requests(served) == []


def test_token_expiry_mid_push_then_revoked_refresh_token(served: SalesforceSandbox) -> None:
    saved: list[dict[str, Any]] = []

    async def scenario() -> Any:
        credentials = await sign_in(served)
        await control(served, "PUT", "faults", {"spec": "expire@4"})
        adapter = adapter_for(served, credentials, save_tokens=saved.append)
        records = [OutboundRecord(f"loop{i}@acme.com", {"LastName": f"Loop{i}"}) for i in range(450)]
        try:
            results = await adapter.upsert(RecordObject.CONTACT, records)
        finally:
            await adapter.aclose()
        await control(served, "DELETE", "faults")
        # The refreshed session, as the vault would hand it back, works on its own.
        again = adapter_for(served, saved[-1])
        try:
            info = await again.test_connection()
        finally:
            await again.aclose()
        # The user revokes the app in Salesforce: the next stale session cannot be refreshed.
        async with httpx.AsyncClient(base_url=served.base_url) as client:
            revoked = await client.post("/services/oauth2/revoke", data={"token": credentials["refreshToken"]})
        assert revoked.status_code == 200
        await control(served, "POST", "expire-tokens")
        await control(served, "DELETE", "requests")
        stale = adapter_for(served, saved[-1])
        try:
            with pytest.raises(AuthError, match="reconnect"):
                await stale.upsert(RecordObject.CONTACT, records[:2])
            calls = stale.api_calls
        finally:
            await stale.aclose()
        return credentials, results, info, calls

    credentials, results, info, calls = asyncio.run(scenario())
    assert all(r.outcome is RecordOutcome.CREATED for r in results)
    assert len(served.records["Contact"]) == 450
    assert len(saved) == 1
    assert saved[0]["accessToken"] != credentials["accessToken"]
    assert saved[0]["refreshToken"] == credentials["refreshToken"]
    assert info.account == served.org_id
    assert calls == 2
    assert [(entry.path, entry.status) for entry in served.requests] == [
        ("/services/data/v61.0/sobjects/Contact/describe", 401),
        (TOKEN, 400),
    ]


def test_giving_up_on_sign_in_stays_given_up_when_the_redirect_lands_in_the_same_step() -> None:
    """The user cancels the wait in the loop step where the browser's redirect lands: the wait ends cancelled."""
    async def scenario() -> bool:
        listener = LoopbackRedirectListener()
        await listener.start()
        try:
            waiting = asyncio.create_task(listener.wait(30))
            await asyncio.sleep(0)  # the wait is under way
            assert listener._result is not None
            listener._result.set_result({"code": "c", "state": "s"})  # what the redirect's handler does
            waiting.cancel()  # the same step
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
            return waiting.cancelled()
        finally:
            await listener.close()

    assert asyncio.run(scenario())
