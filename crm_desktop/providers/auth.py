"""Authentication as ``httpx.Auth``: static tokens, and Salesforce's access token refreshed once when stale."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import Any

import httpx

from crm_desktop.providers.errors import AuthError

logger = logging.getLogger(__name__)

TokenSaver = Callable[[dict[str, Any]], Awaitable[None] | None]


class HeaderTokenAuth(httpx.Auth):
    """Puts a fixed token in a header: ``Authorization: Bearer`` (HubSpot) or ``x-api-token`` (Pipedrive)."""

    def __init__(self, header: str, value: str) -> None:
        self._header = header
        self._value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self._header] = self._value
        yield request


def salesforce_session_expired(response: httpx.Response) -> bool:
    """Whether a response is Salesforce's 401 ``INVALID_SESSION_ID`` (stale access token)."""
    if response.status_code != 401:
        return False
    try:
        body = response.json()
    except ValueError:
        return True
    if isinstance(body, list):
        return any(isinstance(e, dict) and e.get("errorCode") == "INVALID_SESSION_ID" for e in body)
    return True


def granted_tokens(response: httpx.Response) -> tuple[dict[str, Any] | None, str]:
    """The tokens Salesforce's token endpoint granted, or ``None`` and the error it named (for the message)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == 200 and isinstance(body, dict) and "access_token" in body:
        return body, ""
    return None, str(body.get("error", f"HTTP {response.status_code}")) if isinstance(body, dict) else "refused"


class SalesforceAuth(httpx.Auth):
    """Bearer access token, refreshed with the refresh token before known expiry or once on ``INVALID_SESSION_ID``.

    The new token is handed to ``save_tokens`` (the app puts it in the vault). A refused refresh
    (``invalid_grant``) raises :class:`AuthError` telling the user to reconnect; it is never retried.

    A refresh that answers another ``instance_url`` (the org moved to another instance) moves the API calls there:
    ``on_instance_moved`` is told (the adapter points its client at it), and a request built for the old instance
    before the move, the one refreshed for included, goes to the new one.

    Attributes:
        credentials: clientId, clientSecret, accessToken, refreshToken, instanceUrl, issuedAt (epoch ms).
        refreshes: how many refreshes happened.
        integration_name: the integration's name, for the sign-in command an expired session's error names.
        on_instance_moved: called with the new instance URL before it is used (may raise to refuse it).

    ``timeout`` is the refresh request's, in seconds (the client's own timeout applies to the requests it builds,
    not to one an auth flow makes).
    """

    requires_response_body = True

    def __init__(
        self,
        credentials: dict[str, Any],
        token_url: str,
        *,
        save_tokens: TokenSaver | None = None,
        session_seconds: float | None = 7200.0,
        clock: Callable[[], float] = time.time,
        integration_name: str = "NAME",
        timeout: float = 30.0,
        api_url: str | None = None,
    ) -> None:
        self.credentials = dict(credentials)
        #: Where API calls go now, and the instances they went to before a refresh moved them.
        self._api_origin = _origin(httpx.URL(api_url or str(credentials.get("instanceUrl") or "")))
        self._moved_from: set[tuple[str, str, int | None]] = set()
        self.on_instance_moved: Callable[[str], None] | None = None
        # The refresh is a request of this flow's own, which the client's timeout does not reach: it gets the same.
        self._timeout = httpx.Timeout(timeout, connect=min(10.0, timeout))
        self.integration_name = integration_name
        self._token_url = token_url
        self._save_tokens = save_tokens
        self._session_seconds = session_seconds
        self._clock = clock
        self._lock = asyncio.Lock()
        self.refreshes = 0

    def _stale(self) -> bool:
        if not self.credentials.get("accessToken"):
            return True
        issued = self.credentials.get("issuedAt")
        if self._session_seconds is None or not issued:
            return False
        return self._clock() >= int(issued) / 1000 + self._session_seconds - 60

    def _authorise(self, request: httpx.Request) -> str:
        if self._moved_from and _origin(request.url) in self._moved_from:
            scheme, host, port = self._api_origin
            request.url = request.url.copy_with(scheme=scheme, host=host, port=port)
            request.headers["Host"] = request.url.netloc.decode("ascii")
        token = str(self.credentials.get("accessToken") or "")
        request.headers["Authorization"] = f"Bearer {token}"
        return token

    def _refresh_request(self) -> httpx.Request:
        refresh_token = self.credentials.get("refreshToken")
        if not refresh_token:
            raise AuthError(
                "the Salesforce session expired and no refresh token is stored to renew it; sign in again with "
                f"`crm-desktop integration login {self.integration_name}` (or the Sign in button)"
            )
        form = {
            "grant_type": "refresh_token",
            "refresh_token": str(refresh_token),
            "client_id": str(self.credentials.get("clientId", "")),
        }
        if self.credentials.get("clientSecret"):
            form["client_secret"] = str(self.credentials["clientSecret"])
        return httpx.Request(
            "POST",
            self._token_url,
            data=form,
            headers={"Accept": "application/json"},
            extensions={"timeout": self._timeout.as_dict()},
        )

    async def _apply_refresh(self, response: httpx.Response) -> None:
        await response.aread()
        body, error = granted_tokens(response)
        if body is None:
            raise AuthError(
                f"Salesforce refused to refresh the session ({error}); reconnect the integration "
                f"(`crm-desktop integration login {self.integration_name}` or the Sign in button)",
                status=response.status_code,
            )
        if body.get("instance_url"):
            self._move_to(str(body["instance_url"]))
            self.credentials["instanceUrl"] = body["instance_url"]
        self.credentials["accessToken"] = body["access_token"]
        self.credentials["issuedAt"] = int(body.get("issued_at") or self._clock() * 1000)
        if body.get("refresh_token"):
            self.credentials["refreshToken"] = body["refresh_token"]
        self.refreshes += 1
        logger.info("Salesforce access token refreshed")
        if self._save_tokens is not None:
            result = self._save_tokens(dict(self.credentials))
            if inspect.isawaitable(result):
                await result

    def _move_to(self, instance_url: str) -> None:
        """Send the API calls to ``instance_url`` from now on, when it is another instance than the current one."""
        moved = _origin(httpx.URL(instance_url))
        if moved == self._api_origin:
            return
        if self.on_instance_moved is not None:
            self.on_instance_moved(instance_url)
        logger.info("Salesforce: the org is served from another instance now (%s); API calls go there", moved[1])
        self._moved_from.add(self._api_origin)
        self._moved_from.discard(moved)
        self._api_origin = moved

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self._stale():
            async with self._lock:
                # Checked again: another request may have refreshed while this one waited for the lock.
                if self._stale():
                    refresh_response = yield self._refresh_request()
                    await self._apply_refresh(refresh_response)
        sent_with = self._authorise(request)
        response = yield request
        if response.status_code == 401:
            # This flow replaces httpx's default one, which is what honours requires_response_body: read it here.
            await response.aread()
        if not salesforce_session_expired(response):
            return
        async with self._lock:
            # Another request may have refreshed while this one was in flight: then just resend.
            if self.credentials.get("accessToken") == sent_with:
                refresh_response = yield self._refresh_request()
                await self._apply_refresh(refresh_response)
        self._authorise(request)
        yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("SalesforceAuth works only with httpx.AsyncClient")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """A URL's scheme, host and port (``None``: the scheme's own), what tells one Salesforce instance from another."""
    return url.scheme, url.host, url.port
