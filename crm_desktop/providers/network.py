"""How the app reaches a CRM: the proxy (the environment's or the workspace's) and the certificates it trusts."""

from __future__ import annotations

import ipaddress
import logging
import ssl
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit
from urllib.request import getproxies

import certifi
import truststore

from crm_desktop.domain.outcomes import ErrorCategory
from crm_desktop.providers.errors import ConfigurationError

if TYPE_CHECKING:
    # httpx is imported where a client is built: the window's start path reads settings, never the network.
    import httpx

logger = logging.getLogger(__name__)


class Trust(StrEnum):
    """Where the root certificates a CRM's certificate must chain to come from."""

    #: The operating system's trust store (through ``truststore``): a company's TLS-inspection root installed
    #: in the OS is trusted, as the browser trusts it.
    SYSTEM = "system"
    #: Mozilla's bundle as shipped by ``certifi``, whatever the OS trusts.
    CERTIFI = "certifi"


class NetworkSetupError(ConfigurationError):
    """The way to the CRM is refused before any request reaches it: an untrusted certificate, a proxy that says
    no, a proxy or CA bundle setting that cannot be used. Fixed in the settings; never retried."""

    category = ErrorCategory.NETWORK


PROXY_SCHEMES = ("http", "https")
#: Hosts always reached directly, proxy or not: this computer's loopback.
LOOPBACK_ROUTES = ("all://localhost", "all://127.0.0.1", "all://[::1]")


@dataclass(frozen=True)
class ProxyUrl:
    """A proxy URL taken apart so its password can live in the keyring.

    Attributes:
        address: the URL without user or password (``http://proxy.corp:3128``).
        username: the proxy user, if any.
        password: the proxy password, if any.
    """

    address: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def with_password(self, password: str | None) -> ProxyUrl:
        """The same proxy with ``password`` (read back from the keyring)."""
        return ProxyUrl(self.address, self.username, password)

    @property
    def shown(self) -> str:
        """The URL as it may be shown or logged: user kept, password redacted."""
        return self._join(":***" if self.password else "")

    @property
    def full(self) -> str:
        """The URL with its credentials, for the HTTP client only."""
        return self._join(":" + quote(self.password, safe="") if self.password else "")

    def _join(self, password_part: str) -> str:
        if self.username is None:
            return self.address
        scheme, _, rest = self.address.partition("://")
        return f"{scheme}://{quote(self.username, safe='')}{password_part}@{rest}"

    def __str__(self) -> str:
        return self.shown


def parse_proxy_url(text: str) -> ProxyUrl:
    """A proxy URL checked and taken apart: ``http[s]://[user[:password]@]host[:port]``.

    Raises:
        NetworkSetupError: naming what is wrong with it (never echoing a password).
    """
    value = text.strip()
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise NetworkSetupError("the proxy URL is not a URL (expected http://host:port)") from None
    scheme = parts.scheme.lower()
    if scheme not in PROXY_SCHEMES:
        if scheme.startswith("socks"):
            raise NetworkSetupError("SOCKS proxies are not supported; give the HTTP proxy (http://host:port)")
        raise NetworkSetupError("the proxy URL must start with http:// or https:// (e.g. http://proxy.corp:3128)")
    host = parts.hostname
    if not host:
        raise NetworkSetupError("the proxy URL names no host (expected http://host:port)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise NetworkSetupError("the proxy URL must be only scheme, host and port (no path or query)")
    shown_host = f"[{host}]" if ":" in host else host
    address = f"{scheme}://{shown_host}" + (f":{port}" if port is not None else "")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if password is not None and username is None:
        raise NetworkSetupError("the proxy URL has a password but no user name")
    return ProxyUrl(address, username, password)


def check_ca_bundle(path: str | Path) -> Path:
    """The absolute path of a readable PEM file holding at least one CA certificate.

    Raises:
        NetworkSetupError: when the file is missing, unreadable, or holds no certificate.
    """
    bundle = Path(path).expanduser().resolve()
    if not bundle.is_file():
        raise NetworkSetupError(f"the CA bundle {bundle} does not exist or is not a file")
    try:
        text = bundle.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise NetworkSetupError(f"the CA bundle {bundle} cannot be read ({exc.strerror})") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise NetworkSetupError(f"the CA bundle {bundle} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        ssl.create_default_context(cafile=str(bundle))
    except ssl.SSLError as exc:
        raise NetworkSetupError(f"the CA bundle {bundle} is not valid PEM ({exc.reason or exc})") from None
    return bundle


@dataclass(frozen=True)
class NetworkSettings:
    """A workspace's network settings; the environment's proxy variables apply where no proxy is set.

    Attributes:
        proxy: the workspace's proxy (wins over ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``; ``NO_PROXY`` still
            names hosts reached directly), or ``None``.
        trust: where root certificates come from.
        ca_bundle: a PEM file of CA certificates trusted in addition, or ``None``.
    """

    proxy: ProxyUrl | None = None
    trust: Trust = Trust.SYSTEM
    ca_bundle: Path | None = None

    def tls_context(self) -> ssl.SSLContext:
        """The TLS context every connection uses: verification on, hostnames checked, never turned off.

        Raises:
            NetworkSetupError: when the CA bundle cannot be loaded.
        """
        context: ssl.SSLContext
        if self.trust is Trust.CERTIFI:
            context = ssl.create_default_context(cafile=certifi.where())
        else:
            context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.ca_bundle is not None:
            try:
                context.load_verify_locations(cafile=str(self.ca_bundle))
            except (OSError, ssl.SSLError) as exc:
                raise NetworkSetupError(f"the CA bundle {self.ca_bundle} cannot be loaded ({exc})") from None
        return context

    def proxy_routes(self) -> dict[str, str | None]:
        """httpx mount patterns -> the proxy URL for them, or ``None`` for hosts reached directly.

        The environment's proxies are read as curl reads them (``urllib.request.getproxies``, which also reads
        the system settings on Windows and macOS); the workspace's proxy replaces them for every scheme. Loopback
        addresses are always reached directly, as browsers do.
        """
        found = getproxies()
        routes: dict[str, str | None] = {}
        if self.proxy is not None:
            routes["all://"] = self.proxy.full
        else:
            for scheme in ("all", "http", "https"):
                url = found.get(scheme)
                if not url:
                    continue
                url = url if "://" in url else f"http://{url}"
                if urlsplit(url).scheme.lower() not in PROXY_SCHEMES:
                    logger.warning("%s_PROXY ignored: only http:// and https:// proxies are supported", scheme.upper())
                    continue
                routes[f"{scheme}://"] = url
        if not routes:
            return routes
        # A proxy cannot reach this computer's own loopback (the sandboxes of demo mode), wherever it runs.
        routes.update(dict.fromkeys(LOOPBACK_ROUTES))
        for host in (h.strip() for h in found.get("no", "").split(",")):
            if host == "*":
                return {}
            pattern = _direct_pattern(host) if host else None
            if pattern is not None:
                routes[pattern] = None
            elif host:
                logger.warning("NO_PROXY entry %s ignored: address ranges are not supported, name the hosts", host)
        return routes

    def client_options(self, limits: httpx.Limits | None = None) -> dict[str, Any]:
        """``httpx.AsyncClient`` arguments: a transport and one per proxy route, all with this TLS context.

        The transports are built here rather than by httpx from the environment (``trust_env``), so the
        workspace's proxy, ``NO_PROXY`` and the pool limits apply the same to every route, and nothing else from
        the environment (``SSL_CERT_FILE``, ``.netrc``) changes what is trusted or sent.

        Raises:
            NetworkSetupError: when the CA bundle cannot be loaded.
        """
        context = self.tls_context()
        import httpx

        pool = limits or httpx.Limits()
        mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
        for pattern, url in self.proxy_routes().items():
            mounts[pattern] = (
                None
                if url is None
                else httpx.AsyncHTTPTransport(verify=context, limits=pool, proxy=_proxy_of(url, context))
            )
        return {
            "transport": httpx.AsyncHTTPTransport(verify=context, limits=pool),
            "mounts": mounts,
            "trust_env": False,
        }

    def open_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` over these settings (``kwargs``: base URL, timeout, headers...)."""
        import httpx

        limits = kwargs.pop("limits", None)
        return httpx.AsyncClient(**self.client_options(limits), **kwargs)


def _proxy_of(url: str, context: ssl.SSLContext) -> httpx.Proxy:
    """The proxy at ``url``; an ``https://`` one's own certificate is checked against ``context`` too, as the CRM's
    is (httpx would check it against Mozilla's roots alone, refusing a company proxy signed by the company's CA)."""
    import httpx

    proxy = httpx.Proxy(url)
    return httpx.Proxy(url, ssl_context=context) if proxy.url.scheme == "https" else proxy


def _direct_pattern(host: str) -> str | None:
    """The httpx mount pattern of one ``NO_PROXY`` entry, as curl reads them (``example.com`` covers its
    subdomains); ``None`` for an address range, which a mount pattern cannot say."""
    if "://" in host:
        return host
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return f"all://[{address}]" if address.version == 6 else f"all://{address}"
    if "/" in host:
        return None
    return "all://localhost" if host.lower() == "localhost" else f"all://*{host.lstrip('.')}"


def explain_connect_failure(exc: httpx.TransportError, url: httpx.URL | str, crm: str) -> NetworkSetupError | None:
    """A refused certificate or a proxy's refusal as a message saying what to change; ``None`` for other
    network failures (a timeout, a reset: worth retrying)."""
    import httpx

    host = httpx.URL(url).host if not isinstance(url, httpx.URL) else url.host
    if proxy_gateway_failure(exc, url) is not None:
        return None
    if isinstance(exc, httpx.ProxyError):
        return NetworkSetupError(
            f"{crm}: the proxy refused to connect to {host} ({exc}); check the proxy setting "
            "(`crm-desktop config get proxy`, HTTPS_PROXY) and its user and password"
        )
    cause = _tls_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        detail = (cause.verify_message or cause.reason or "verification failed").rstrip(".")
        if "hostname mismatch" in detail.lower() or "ip address mismatch" in detail.lower():
            return NetworkSetupError(
                f"{crm}: the certificate of {host} is not valid for that name ({detail}); check the URL"
            )
        return NetworkSetupError(
            f"{crm}: the certificate of {host} is not trusted ({detail}); if your network inspects TLS, install its "
            "root certificate in the OS trust store or add it with `crm-desktop config set ca-bundle PATH`"
        )
    if isinstance(cause, ssl.SSLError):
        return NetworkSetupError(f"{crm}: the TLS handshake with {host} failed ({cause.reason or cause})")
    return None


def proxy_gateway_failure(exc: httpx.TransportError, url: httpx.URL | str) -> str | None:
    """``the proxy could not reach HOST (502 Bad Gateway)`` when the proxy answered the tunnel's CONNECT with a
    server error: the CRM is out of the proxy's reach for now (a 502, 503 or 504 of the proxy, network weather to
    retry, unlike its 407 or 403, which a setting fixes); ``None`` for any other failure."""
    import httpx

    status = str(exc)[:3]
    if not isinstance(exc, httpx.ProxyError) or not status.isdigit() or not status.startswith("5"):
        return None
    host = httpx.URL(url).host if not isinstance(url, httpx.URL) else url.host
    return f"the proxy could not reach {host} ({exc})"


def _tls_cause(exc: BaseException) -> ssl.SSLError | None:
    """The ``ssl`` error under an httpx error, through its causes and contexts."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
