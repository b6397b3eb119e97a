"""Fetch templates and images from URLs that event producers chose, without SSRF.

A generate event names its SVG template (and signatory images) by URL, so whoever
can write to the request topic can make certflow issue HTTP requests. Left alone,
that is a server-side request forgery hole: ``http://169.254.169.254/`` hands out
cloud credentials, ``http://10.0.0.5:9200/`` reaches an internal Elasticsearch.
:class:`SafeFetcher` therefore only ever talks to

* ``http``/``https`` URLs whose host is on an explicit allow list, checked again on
  every redirect hop (redirects are followed by hand, never by aiohttp), and
* public addresses: literal IPs are checked before connecting, host names are
  checked by :class:`PublicAddressResolver` *inside* the connector, on the very
  addresses the socket then connects to, so DNS rebinding (public answer when
  checked, private answer when connecting) has no window to slip through.

It also bounds what a hostile or broken server can cost: a total time limit that
a slow drip of bytes cannot extend, a byte limit enforced while streaming, no
cookies, no proxies from the environment.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from certflow.errors import CertflowError, ErrorCode

if TYPE_CHECKING:
    from types import TracebackType

    from certflow.settings import Settings

__all__ = [
    "FetchPolicy",
    "Fetched",
    "NonPublicAddressError",
    "PublicAddressResolver",
    "SafeFetcher",
    "host_allowed",
    "is_public_address",
]

USER_AGENT = "certflow"
_SCHEMES = frozenset({"http", "https"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 65_536
#: NAT64 (RFC 6052) embeds an IPv4 address that the translator then connects to.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class FetchPolicy:
    """What one fetch may reach and what it may cost.

    ``allowed_hosts`` holds exact host names (``cdn.example.org``) or wildcards
    (``*.example.org``, which matches subdomains only, never ``example.org``
    itself). Entries are compared case-insensitively against the URL's ASCII
    (punycode) host. An empty tuple allows no remote fetch at all.
    """

    allowed_hosts: tuple[str, ...]
    allow_private_networks: bool
    timeout_seconds: float
    max_bytes: int
    max_redirects: int
    #: What is fetched, for messages: "host … is not in the allowed {what} hosts".
    what: str = "template"

    def __post_init__(self) -> None:
        # Normalise once, so matching is a plain comparison and a list from
        # settings cannot be mutated behind the frozen policy's back.
        hosts = tuple(_normalise_host(host) for host in self.allowed_hosts)
        object.__setattr__(self, "allowed_hosts", tuple(host for host in hosts if host))

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        return cls(
            allowed_hosts=tuple(settings.template_allowed_hosts),
            allow_private_networks=settings.fetch_allow_private_networks,
            timeout_seconds=settings.fetch_timeout_seconds,
            max_bytes=settings.fetch_max_bytes,
            max_redirects=settings.fetch_max_redirects,
        )

    @classmethod
    def for_status_lists(cls, settings: Settings) -> FetchPolicy:
        """Fetching a presented credential's status list (``certflow verify``).

        The credential names the URL, so whoever made the credential chooses it: the
        same guard as templates, with its own host list (``status_list_allowed_hosts``,
        by default the host of ``public_url``: this deployment's own lists).
        """
        hosts = tuple(settings.status_list_allowed_hosts) or (URL(settings.public_url).raw_host or "",)
        return cls(
            allowed_hosts=hosts,
            allow_private_networks=settings.fetch_allow_private_networks,
            timeout_seconds=settings.fetch_timeout_seconds,
            max_bytes=settings.fetch_max_bytes,
            max_redirects=settings.fetch_max_redirects,
            what="status list",
        )


@dataclass(frozen=True)
class Fetched:
    """A successful response body and what is needed to revalidate it later."""

    #: The final URL, after redirects: the base for relative references inside.
    url: str
    body: bytes
    #: The media type without parameters (``image/svg+xml``), as aiohttp parses it;
    #: ``application/octet-stream`` when the server sent none.
    content_type: str
    etag: str | None
    last_modified: str | None


class NonPublicAddressError(OSError):
    """A host resolved only to addresses certflow must not connect to.

    An :class:`OSError` because that is what aiohttp expects from a resolver; it
    wraps it in ``ClientConnectorDNSError``, and :meth:`SafeFetcher.fetch` digs it
    out again to report ``TEMPLATE_NOT_ALLOWED`` rather than a network failure.
    """

    def __init__(self, host: str) -> None:
        super().__init__(f"{host} does not resolve to a public address")
        self.host = host


def is_public_address(address: str) -> bool:
    """Whether connecting to ``address`` leaves the private side of the network.

    ``ipaddress``'s ``is_global`` does most of the work (loopback, RFC 1918,
    link-local incl. the 169.254.169.254 metadata service, CGNAT, reserved, IPv6
    ULA and link-local); on top of it, multicast is refused and IPv6 forms that
    embed an IPv4 address (mapped, 6to4, NAT64) are judged by that address.
    Anything that does not parse as an address is not public.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(str(embedded))
    return ip.is_global and not ip.is_multicast


def host_allowed(host: str, allowed_hosts: tuple[str, ...]) -> bool:
    """Whether ``host`` matches an entry of an (already normalised) allow list."""
    host = _normalise_host(host)
    if not host:
        return False
    for pattern in allowed_hosts:
        if pattern.startswith("*."):
            suffix = pattern[1:]  # ".example.org": a subdomain, never the apex
            if host.endswith(suffix) and len(host) > len(suffix):
                return True
        elif host == pattern:
            return True
    return False


class PublicAddressResolver(AbstractResolver):
    """A resolver that forgets every non-public answer.

    The filter sits in the resolver, not in a pre-flight lookup, because the
    connector connects to exactly the addresses returned here: there is no second
    lookup an attacker's DNS server could answer differently.
    """

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        # ThreadedResolver (getaddrinfo) honours /etc/hosts like everything else on
        # the box; it needs the running loop, so build this inside it.
        self._inner = inner if inner is not None else aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        public = [answer for answer in answers if is_public_address(answer["host"])]
        if not public:
            raise NonPublicAddressError(host)
        return public

    async def close(self) -> None:
        await self._inner.close()


class SafeFetcher:
    """GETs URLs under a :class:`FetchPolicy`; one per worker, sharing connections.

    The ``aiohttp.ClientSession`` is created on first use because it binds to the
    running event loop, which does not exist yet when the worker is wired up.
    """

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SafeFetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session and its connections; a later fetch opens a new one."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @overload
    async def fetch(self, url: str) -> Fetched: ...

    @overload
    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> Fetched | None: ...

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> Fetched | None:
        """GET ``url``, following at most ``max_redirects`` checked redirects.

        With ``etag``/``last_modified`` (from an earlier :class:`Fetched`) the
        request is conditional and ``None`` means "304: what you have is current".

        Raises ``CertflowError``: ``TEMPLATE_NOT_ALLOWED`` for a URL (or redirect
        target) outside the policy, ``TEMPLATE_FETCH_FAILED`` for anything the
        server or the network did wrong: status, size, time, connection.
        """
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        timeout = self.policy.timeout_seconds
        try:
            # aiohttp's own total timeout covers one request; this one covers the
            # whole fetch, redirects and the body included, whatever the server does.
            async with asyncio.timeout(timeout):
                return await self._follow(url, headers)
        except TimeoutError:
            raise CertflowError(
                ErrorCode.TEMPLATE_FETCH_FAILED, f"fetching {url} took longer than {timeout}s"
            ) from None

    async def _follow(self, url: str, headers: dict[str, str]) -> Fetched | None:
        current = self._check(url)
        session = self._get_session()
        for _hop in range(self.policy.max_redirects + 1):
            try:
                request = session.get(current, headers=headers, allow_redirects=False)
                async with request as response:
                    if response.status not in _REDIRECTS:
                        return await self._accept(response, conditional=bool(headers))
                    current = self._next_hop(response)
            except TimeoutError:
                raise  # aiohttp's own limit: reported like ours, by fetch()
            except aiohttp.ClientError as exc:
                if _caused_by_non_public_address(exc):
                    raise CertflowError(
                        ErrorCode.TEMPLATE_NOT_ALLOWED,
                        f"{current.host} is not a public address; refusing to fetch {current}",
                    ) from None
                raise CertflowError(
                    ErrorCode.TEMPLATE_FETCH_FAILED,
                    f"fetching {current} failed: {type(exc).__name__}: {exc}",
                ) from None
        raise CertflowError(
            ErrorCode.TEMPLATE_FETCH_FAILED,
            f"fetching {url} took more than {self.policy.max_redirects} redirects",
        )

    async def _accept(
        self, response: aiohttp.ClientResponse, *, conditional: bool
    ) -> Fetched | None:
        if response.status == 304 and conditional:
            return None
        if not 200 <= response.status < 300:
            raise CertflowError(
                ErrorCode.TEMPLATE_FETCH_FAILED, f"{response.url} answered HTTP {response.status}"
            )
        body = await self._read_body(response)
        return Fetched(
            url=str(response.url),
            body=body,
            content_type=response.content_type,
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
        )

    def _check(self, url: str | URL) -> URL:
        """Parse ``url`` and refuse it unless the policy allows it: scheme, host, address."""
        try:
            parsed = url if isinstance(url, URL) else URL(url)
        except (ValueError, TypeError):
            raise CertflowError(
                ErrorCode.TEMPLATE_NOT_ALLOWED, f"{url!r} is not a valid URL"
            ) from None
        if parsed.scheme not in _SCHEMES:
            raise CertflowError(
                ErrorCode.TEMPLATE_NOT_ALLOWED,
                f"{url} is not an http(s) URL; only http and https are fetched",
            )
        host = parsed.raw_host or ""
        if not host_allowed(host, self.policy.allowed_hosts):
            raise CertflowError(
                ErrorCode.TEMPLATE_NOT_ALLOWED,
                f"host {host or '(none)'!r} of {url} is not in the allowed {self.policy.what} hosts",
            )
        # aiohttp connects to literal addresses without asking the resolver,
        # so they are checked here; anything address-like that does not parse
        # canonically (``127.1``, ``0x7f.1``) is refused rather than guessed at.
        if not self.policy.allow_private_networks and _looks_like_ip(host) and not is_public_address(host):
            raise CertflowError(
                ErrorCode.TEMPLATE_NOT_ALLOWED,
                f"{host} is not a public address; refusing to fetch {url}",
            )
        return parsed

    def _next_hop(self, response: aiohttp.ClientResponse) -> URL:
        location = response.headers.get("Location")
        if not location:
            raise CertflowError(
                ErrorCode.TEMPLATE_FETCH_FAILED,
                f"{response.url} answered HTTP {response.status} without a Location",
            )
        try:
            target = response.url.join(URL(location))
        except (ValueError, TypeError):
            raise CertflowError(
                ErrorCode.TEMPLATE_NOT_ALLOWED,
                f"{response.url} redirected to an invalid URL {location!r}",
            ) from None
        return self._check(target)

    async def _read_body(self, response: aiohttp.ClientResponse) -> bytes:
        """Read at most ``max_bytes``, giving up the moment the limit is passed."""
        limit = self.policy.max_bytes
        declared = response.content_length
        if declared is not None and declared > limit:
            response.close()
            raise CertflowError(
                ErrorCode.TEMPLATE_FETCH_FAILED,
                f"{response.url} is {declared} bytes, more than the limit of {limit}",
            )
        chunks: list[bytes] = []
        received = 0
        async for chunk in response.content.iter_chunked(_CHUNK):
            received += len(chunk)
            if received > limit:
                response.close()  # drop the connection rather than drain the rest
                raise CertflowError(
                    ErrorCode.TEMPLATE_FETCH_FAILED,
                    f"{response.url} sent more than the limit of {limit} bytes",
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            resolver: AbstractResolver = (
                aiohttp.ThreadedResolver()
                if self.policy.allow_private_networks
                else PublicAddressResolver()
            )
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=resolver),
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": USER_AGENT},
                timeout=aiohttp.ClientTimeout(total=self.policy.timeout_seconds),
                trust_env=False,  # no HTTP(S)_PROXY detours chosen by the environment
            )
        return self._session


def _normalise_host(host: str) -> str:
    return host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


def _looks_like_ip(host: str) -> bool:
    # The same heuristic aiohttp uses to skip the resolver: keep them in step.
    return ":" in host or host.replace(".", "").isdigit()


def _caused_by_non_public_address(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, NonPublicAddressError):
            return True
        if isinstance(seen, aiohttp.ClientConnectorError) and isinstance(
            seen.os_error, NonPublicAddressError
        ):
            return True
        seen = seen.__cause__
    return False
