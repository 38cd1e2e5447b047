"""Desktop sign-in for Salesforce (RFC 8252): PKCE in the system browser, a one-shot loopback listener."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
import time
import webbrowser
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from crm_desktop.providers.errors import AuthError, ConfigurationError, TransientError
from crm_desktop.providers.network import NetworkSettings, explain_connect_failure

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

BrowserOpener = Callable[[str], Awaitable[Any] | Any]

_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>CRM Desktop</title></head>"
    "<body style='font-family:sans-serif;margin:3em'><h2>{title}</h2><p>{text}</p></body></html>"
)


@dataclass(frozen=True)
class PkcePair:
    """A PKCE code verifier and its S256 challenge."""

    verifier: str
    challenge: str

    @classmethod
    def create(cls) -> PkcePair:
        verifier = secrets.token_urlsafe(64)[:96]
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        return cls(verifier, challenge)


class LoopbackRedirectListener:
    """Listens once on 127.0.0.1 for the browser's redirect and returns its query parameters.

    Attributes:
        port: the port listened on (chosen by the OS when 0 was asked for).
        path: the redirect path, e.g. ``/OauthRedirect``.
    """

    def __init__(self, port: int = 0, path: str = "/OauthRedirect") -> None:
        self.port = port
        self.path = path
        self._server: asyncio.Server | None = None
        self._result: asyncio.Future[dict[str, str]] | None = None

    @property
    def redirect_uri(self) -> str:
        return f"http://localhost:{self.port}{self.path}"

    async def start(self) -> None:
        self._result = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_server(self._handle, host="127.0.0.1", port=self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):  # not wait_for: on Python 3.11 it can swallow a cancel
                request_line = (await reader.readline()).decode("latin-1")
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            parts = request_line.split()
            target = urlsplit(parts[1]) if len(parts) >= 2 else urlsplit("/")
            if target.path != self.path:
                await self._reply(writer, 404, "Not found", "This address is not the sign-in redirect.")
                return
            params = {k: v[0] for k, v in parse_qs(target.query).items()}
            if "error" in params:
                await self._reply(writer, 200, "Sign-in cancelled", "You can close this window.")
            else:
                await self._reply(writer, 200, "Signed in to CRM Desktop", "You can close this window.")
            if self._result is not None and not self._result.done():
                self._result.set_result(params)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, title: str, text: str) -> None:
        body = _PAGE.format(title=title, text=text).encode("utf-8")
        head = (
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Found'}\r\n"
            f"Content-Type: text/html; charset=utf-8\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        await writer.drain()

    async def wait(self, wait_seconds: float) -> dict[str, str]:
        """The redirect's query parameters; raises ``TimeoutError`` when the user never finishes."""
        assert self._result is not None, "start() first"
        async with asyncio.timeout(wait_seconds):  # a cancel (the user gave up) stays a cancel
            return await asyncio.shield(self._result)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


async def salesforce_sign_in(
    login_url: str,
    client_id: str,
    client_secret: str | None = None,
    *,
    open_browser: BrowserOpener | None = None,
    port: int = 1717,
    wait_seconds: float = 300.0,
    transport: httpx.AsyncBaseTransport | None = None,
    network: NetworkSettings | None = None,
    scope: str = "api refresh_token",
) -> dict[str, Any]:
    """Sign the user in through the system browser and return credentials for the vault.

    Args:
        login_url: ``https://login.salesforce.com``, a My Domain URL, or the sandbox's URL.
        client_id: the connected app's consumer key.
        client_secret: the consumer secret, when the app requires one.
        open_browser: opens the authorize URL (the system browser by default).
        port: loopback port of the redirect (the connected app's callback must be ``http://localhost:PORT/OauthRedirect``).
        wait_seconds: seconds to wait for the user.
        transport: an HTTP transport for the token exchange (an in-process sandbox in tests).
        network: the workspace's proxy and trusted certificates for the token exchange.
        scope: OAuth scopes asked for.

    Raises:
        AuthError: the user cancelled, the state did not match, or the code was refused.
        ConfigurationError: the port is taken.
        NetworkSetupError: the login server's certificate or the proxy refused the token exchange.
        TransientError: the login server could not be reached.
    """
    pkce = PkcePair.create()
    state = secrets.token_urlsafe(24)
    listener = LoopbackRedirectListener(port=port)
    try:
        await listener.start()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot listen on 127.0.0.1:{port} for the sign-in redirect ({exc.strerror})"
        ) from None
    try:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": listener.redirect_uri,
                "code_challenge": pkce.challenge,
                "code_challenge_method": "S256",
                "scope": scope,
                "state": state,
            }
        )
        authorize_url = f"{login_url.rstrip('/')}/services/oauth2/authorize?{query}"
        opener = open_browser or webbrowser.open
        opened = opener(authorize_url)
        if asyncio.iscoroutine(opened) or isinstance(opened, asyncio.Future):
            await opened
        try:
            params = await listener.wait(wait_seconds)
        except TimeoutError:
            raise AuthError("sign-in timed out: the browser never came back to CRM Desktop") from None
    finally:
        await listener.close()
    if params.get("error"):
        raise AuthError(f"sign-in refused by Salesforce ({params['error']})")
    if not secrets.compare_digest(params.get("state", ""), state):
        raise AuthError("sign-in answer did not match the request (state mismatch); try again")
    code = params.get("code")
    if not code:
        raise AuthError("sign-in answer carried no authorization code")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": client_id,
        "redirect_uri": listener.redirect_uri,
        "code_verifier": pkce.verifier,
    }
    if client_secret:
        form["client_secret"] = client_secret
    import httpx  # with a sign-in, not with the window that offers one

    from crm_desktop.providers.auth import granted_tokens

    token_url = f"{login_url.rstrip('/')}/services/oauth2/token"
    client = (
        httpx.AsyncClient(transport=transport, timeout=30.0)
        if transport is not None
        else (network or NetworkSettings()).open_client(timeout=30.0)
    )
    try:
        async with client:
            response = await client.post(token_url, data=form)
    except httpx.TransportError as exc:
        refused = explain_connect_failure(exc, token_url, "Salesforce sign-in")
        if refused is not None:
            raise refused from None
        raise TransientError(
            f"Salesforce sign-in: could not reach {httpx.URL(token_url).host} to exchange the code "
            f"({type(exc).__name__}); check the network and proxy settings, then sign in again"
        ) from None
    body, error = granted_tokens(response)
    if body is None:
        raise AuthError(f"Salesforce refused the sign-in code ({error})")
    logger.info("signed in to Salesforce")
    credentials: dict[str, Any] = {
        "clientId": client_id,
        "accessToken": body["access_token"],
        "refreshToken": body.get("refresh_token"),
        "instanceUrl": body.get("instance_url"),
        "issuedAt": int(body.get("issued_at") or time.time() * 1000),
    }
    if client_secret:
        credentials["clientSecret"] = client_secret
    return {k: v for k, v in credentials.items() if v is not None}
