"""SafeFetcher: what certflow may fetch, and what a hostile server can cost it.

The tests talk to a real aiohttp server on 127.0.0.1. Reaching it needs
``allow_private_networks=True``; the tests that prove private addresses are
blocked use ``False`` and never connect anywhere, because the check comes first.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from certflow.errors import CertflowError, ErrorCode
from certflow.render.fetch import (
    Fetched,
    FetchPolicy,
    NonPublicAddressError,
    PublicAddressResolver,
    SafeFetcher,
    host_allowed,
    is_public_address,
)
from certflow.settings import Settings

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
ETAG = '"v1"'
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"


@dataclass
class Origin:
    """The test server, with what it saw."""

    server: TestServer
    requests: Counter[str] = field(default_factory=Counter)
    headers: list[dict[str, str]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    app = web.Application()
    seen = Origin(server=TestServer(app))

    def record(request: web.Request) -> None:
        seen.requests[request.path] += 1
        seen.headers.append(dict(request.headers))

    async def template(request: web.Request) -> web.StreamResponse:
        record(request)
        if request.headers.get("If-None-Match") == ETAG:
            return web.Response(status=304)
        if request.headers.get("If-Modified-Since") == LAST_MODIFIED:
            return web.Response(status=304)
        response = web.Response(body=SVG, content_type="image/svg+xml")
        response.headers["ETag"] = ETAG
        response.headers["Last-Modified"] = LAST_MODIFIED
        response.set_cookie("session", "tracking-me")
        return response

    async def missing(request: web.Request) -> web.StreamResponse:
        record(request)
        return web.Response(status=404, text="no such template")

    async def redirect(request: web.Request) -> web.StreamResponse:
        record(request)
        raise web.HTTPFound(request.query["to"])

    async def loop(request: web.Request) -> web.StreamResponse:
        record(request)
        raise web.HTTPFound("/loop")

    async def big(request: web.Request) -> web.StreamResponse:
        record(request)
        return web.Response(body=b"x" * 200_000)  # sent with a Content-Length

    async def endless(request: web.Request) -> web.StreamResponse:
        record(request)
        response = web.StreamResponse()
        response.enable_chunked_encoding()  # no Content-Length to reject early
        await response.prepare(request)
        while True:
            await response.write(b"x" * 16_384)
            await asyncio.sleep(0.001)

    async def sleepy(request: web.Request) -> web.StreamResponse:
        record(request)
        await asyncio.sleep(3)
        return web.Response(body=SVG)

    async def drip(request: web.Request) -> web.StreamResponse:
        record(request)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        while True:  # a byte now and then: never idle, never done
            await response.write(b"<")
            await asyncio.sleep(0.02)

    app.router.add_get("/template.svg", template)
    app.router.add_get("/missing.svg", missing)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/big", big)
    app.router.add_get("/endless", endless)
    app.router.add_get("/sleepy", sleepy)
    app.router.add_get("/drip", drip)

    await seen.server.start_server(shutdown_timeout=0.1)
    try:
        yield seen
    finally:
        await seen.server.close()


def policy(**overrides: Any) -> FetchPolicy:
    values: dict[str, Any] = {
        "allowed_hosts": ("127.0.0.1",),
        "allow_private_networks": True,
        "timeout_seconds": 2.0,
        "max_bytes": 65_536,
        "max_redirects": 3,
    }
    values.update(overrides)
    return FetchPolicy(**values)


@pytest.fixture
async def make_fetcher() -> AsyncIterator[Callable[..., SafeFetcher]]:
    fetchers: list[SafeFetcher] = []

    def make(**overrides: Any) -> SafeFetcher:
        fetcher = SafeFetcher(policy(**overrides))
        fetchers.append(fetcher)
        return fetcher

    yield make
    for fetcher in fetchers:
        await fetcher.close()


async def refused(call: Awaitable[object], code: ErrorCode) -> CertflowError:
    with pytest.raises(CertflowError) as caught:
        await call
    assert caught.value.code is code, caught.value
    return caught.value


# --- what a successful fetch returns -------------------------------------------------------------


async def test_fetch_returns_body_type_validators_and_final_url(
    origin: Origin, make_fetcher: Callable[..., SafeFetcher]
) -> None:
    fetched = await make_fetcher().fetch(origin.url("/template.svg"))

    assert fetched == Fetched(
        url=origin.url("/template.svg"),
        body=SVG,
        content_type="image/svg+xml",
        etag=ETAG,
        last_modified=LAST_MODIFIED,
    )


async def test_fetch_identifies_itself_and_never_sends_cookies(
    origin: Origin, make_fetcher: Callable[..., SafeFetcher]
) -> None:
    fetcher = make_fetcher()
    await fetcher.fetch(origin.url("/template.svg"))  # answers with Set-Cookie
    await fetcher.fetch(origin.url("/template.svg"))

    assert [headers["User-Agent"] for headers in origin.headers] == ["certflow", "certflow"]
    assert all("Cookie" not in headers for headers in origin.headers)


@pytest.mark.parametrize(
    ("validators", "header"),
    [
        ({"etag": ETAG}, "If-None-Match"),
        ({"last_modified": LAST_MODIFIED}, "If-Modified-Since"),
    ],
)
async def test_conditional_fetch_returns_none_when_the_server_answers_304(
    origin: Origin,
    make_fetcher: Callable[..., SafeFetcher],
    validators: dict[str, str],
    header: str,
) -> None:
    assert await make_fetcher().fetch(origin.url("/template.svg"), **validators) is None
    assert header in origin.headers[-1]


async def test_fetcher_works_as_an_async_context_manager_and_reopens_after_close(
    origin: Origin,
) -> None:
    async with SafeFetcher(policy()) as fetcher:
        assert (await fetcher.fetch(origin.url("/template.svg"))).body == SVG
    assert (await fetcher.fetch(origin.url("/template.svg"))).body == SVG
    await fetcher.close()


# --- which URLs may be fetched -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/template.svg",
        "gopher://127.0.0.1:70/_stats",
        "data:image/svg+xml,<svg/>",
        "template.svg",
        "",
    ],
)
async def test_only_http_and_https_urls_are_fetched(
    make_fetcher: Callable[..., SafeFetcher], url: str
) -> None:
    await refused(make_fetcher().fetch(url), ErrorCode.TEMPLATE_NOT_ALLOWED)


async def test_a_host_not_on_the_allow_list_is_refused_before_any_request(
    make_fetcher: Callable[..., SafeFetcher],
) -> None:
    fetcher = make_fetcher(allowed_hosts=("templates.example.org", "*.cdn.example.org"))

    error = await refused(
        fetcher.fetch("https://evil.example.com/template.svg"), ErrorCode.TEMPLATE_NOT_ALLOWED
    )
    assert "evil.example.com" in error.message


async def test_an_empty_allow_list_allows_no_remote_fetch_at_all(
    origin: Origin, make_fetcher: Callable[..., SafeFetcher]
) -> None:
    fetcher = make_fetcher(allowed_hosts=())

    await refused(fetcher.fetch(origin.url("/template.svg")), ErrorCode.TEMPLATE_NOT_ALLOWED)
    assert origin.requests["/template.svg"] == 0


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("templates.example.org", True),
        ("TEMPLATES.Example.org.", True),
        ("a.cdn.example.org", True),
        ("a.b.cdn.example.org", True),
        ("cdn.example.org", False),  # a wildcard matches subdomains only
        ("evilcdn.example.org", False),
        ("a.cdn.example.org.evil.com", False),
        ("example.org", False),
        ("", False),
    ],
)
def test_allow_list_matches_exact_hosts_and_wildcard_subdomains(host: str, allowed: bool) -> None:
    hosts = policy(allowed_hosts=("templates.example.org", "*.cdn.example.org")).allowed_hosts
    assert host_allowed(host, hosts) is allowed


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/template.svg",
        "http://127.0.0.2:8080/template.svg",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.0.0.1/template.svg",
        "http://172.16.0.1/template.svg",
        "http://192.168.1.1/template.svg",
        "http://100.64.0.1/template.svg",
        "http://0.0.0.0/template.svg",
        "http://224.0.0.1/template.svg",
        "http://[::1]/template.svg",
        "http://[fd00::1]/template.svg",
        "http://[fe80::1]/template.svg",
        "http://[::ffff:127.0.0.1]/template.svg",
        "http://[::ffff:169.254.169.254]/template.svg",
        "http://127.1/template.svg",  # legacy shorthand for 127.0.0.1
        "http://2130706433/template.svg",  # 127.0.0.1 as one number
    ],
)
async def test_literal_non_public_addresses_are_refused_without_connecting(
    make_fetcher: Callable[..., SafeFetcher], url: str
) -> None:
    from yarl import URL

    host = URL(url).raw_host
    assert host is not None
    fetcher = make_fetcher(allowed_hosts=(host,), allow_private_networks=False)

    error = await refused(fetcher.fetch(url), ErrorCode.TEMPLATE_NOT_ALLOWED)
    assert "not a public address" in error.message


async def test_a_name_resolving_to_loopback_is_refused_by_the_resolver(
    origin: Origin, make_fetcher: Callable[..., SafeFetcher]
) -> None:
    """``localhost`` passes the allow list; the resolver still keeps it off loopback."""
    fetcher = make_fetcher(allowed_hosts=("localhost",), allow_private_networks=False)

    error = await refused(
        fetcher.fetch(f"http://localhost:{origin.port}/template.svg"),
        ErrorCode.TEMPLATE_NOT_ALLOWED,
    )
    assert "not a public address" in error.message
    assert origin.requests["/template.svg"] == 0


class FixedResolver(AbstractResolver):
    """Answers every lookup with the same addresses, as a hostile DNS server might."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host, host=address, port=port, family=family, proto=0, flags=0
            )
            for address in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_resolver_drops_non_public_answers_and_keeps_public_ones() -> None:
    resolver = PublicAddressResolver(
        FixedResolver("10.0.0.7", "93.184.216.34", "169.254.169.254", "2606:2800:220:1::1", "::1")
    )

    answers = await resolver.resolve("templates.example.org", 443)

    assert [answer["host"] for answer in answers] == ["93.184.216.34", "2606:2800:220:1::1"]


async def test_resolver_raises_when_only_non_public_answers_remain() -> None:
    """A rebinding DNS server answering 127.0.0.1 gets no connection at all."""
    resolver = PublicAddressResolver(FixedResolver("127.0.0.1", "192.168.0.10", "fe80::1%eth0"))

    with pytest.raises(NonPublicAddressError):
        await resolver.resolve("rebind.example.org", 80)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("100.100.100.200", False),  # CGNAT, also Alibaba's metadata service
        ("239.255.255.250", False),
        ("::ffff:10.0.0.1", False),
        ("2002:7f00:1::", False),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 wrapping 169.254.169.254
        ("not an address", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(address) is public


# --- redirects -----------------------------------------------------------------------------------


async def test_redirects_are_followed_and_the_final_url_is_reported(
    origin: Origin, make_fetcher: Callable[..., SafeFetcher]
) -> None:
    fetched = await make_fetcher().fetch(origin.url("/redirect?to=/template.svg"))

    assert fetched.url == origin.url("/template.svg")
    assert fetched.body == SVG


async def test_a_redirect_to_a_host_not_on_the_allow_list_is_refused(
    origin: Origin, make_fetcher: Callable[..., SafeFetcher]
) -> None:
    target = f"http://localhost:{origin.port}/template.svg"  # same server, other name

    error = await refused(
        make_fetcher().fetch(origin.url(f"/redirect?to={target}")),
        ErrorCode.TEMPLATE_NOT_ALLOWED,
    )
    assert "localhost" in error.message
    assert origin.requests["/template.svg"] == 0


@pytest.mark.parametrize(
    "target", ["file:///etc/passwd", "ftp://127.0.0.1/template.svg", "gopher://127.0.0.1/x"]
)
async def test_a_redirect_to_another_scheme_is_refused(
    origin: Origin, make_fetcher: Callable[..., SafeFetcher], target: str
) -> None:
    await refused(
        make_fetcher().fetch(origin.url(f"/redirect?to={target}")),
        ErrorCode.TEMPLATE_NOT_ALLOWED,
    )


async def test_a_redirect_to_the_metadata_service_is_refused_on_that_hop(
    origin: Origin, make_fetcher: Callable[..., SafeFetcher], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every hop gets the address check, not only the first.

    The first hop must reach the test server on 127.0.0.1 with private networks
    disallowed, so the test pretends that one address is public.
    """
    import certflow.render.fetch as fetch_module

    monkeypatch.setattr(fetch_module, "is_public_address", lambda address: address == "127.0.0.1")
    fetcher = make_fetcher(
        allowed_hosts=("127.0.0.1", "169.254.169.254"), allow_private_networks=False
    )
    target = "http://169.254.169.254/latest/meta-data/"

    error = await refused(
        fetcher.fetch(origin.url(f"/redirect?to={target}")), ErrorCode.TEMPLATE_NOT_ALLOWED
    )
    assert "169.254.169.254 is not a public address" in error.message
    assert origin.requests["/redirect"] == 1


async def test_redirects_beyond_the_limit_fail(
    origin: Origin, make_fetcher: Callable[..., SafeFetcher]
) -> None:
    error = await refused(
        make_fetcher(max_redirects=2).fetch(origin.url("/loop")), ErrorCode.TEMPLATE_FETCH_FAILED
    )
    assert "redirects" in error.message
    assert origin.requests["/loop"] == 3  # the request and two redirects


# --- failures and limits -------------------------------------------------------------------------


async def test_a_non_2xx_status_fails_with_the_status_in_the_message(
    origin: Origin, make_fetcher: Callable[..., SafeFetcher]
) -> None:
    error = await refused(
        make_fetcher().fetch(origin.url("/missing.svg")), ErrorCode.TEMPLATE_FETCH_FAILED
    )
    assert "404" in error.message


async def test_a_refused_connection_fails() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with SafeFetcher(policy()) as fetcher:
        await refused(
            fetcher.fetch(f"http://127.0.0.1:{port}/template.svg"),
            ErrorCode.TEMPLATE_FETCH_FAILED,
        )


async def test_a_declared_content_length_over_the_limit_fails_before_reading(
    origin: Origin, make_fetcher: Callable[..., SafeFetcher]
) -> None:
    error = await refused(
        make_fetcher(max_bytes=1024).fetch(origin.url("/big")), ErrorCode.TEMPLATE_FETCH_FAILED
    )
    assert "200000" in error.message


async def test_an_endless_chunked_body_is_cut_off_at_the_byte_limit_quickly(
    origin: Origin, make_fetcher: Callable[..., SafeFetcher]
) -> None:
    fetcher = make_fetcher(max_bytes=100_000, timeout_seconds=5.0)
    started = time.monotonic()

    error = await refused(fetcher.fetch(origin.url("/endless")), ErrorCode.TEMPLATE_FETCH_FAILED)

    assert "limit" in error.message
    assert time.monotonic() - started < 1.0  # the byte limit, not the 5 s timeout


async def test_a_server_slower_than_the_timeout_fails_within_the_timeout(
    origin: Origin, make_fetcher: Callable[..., SafeFetcher]
) -> None:
    started = time.monotonic()

    await refused(
        make_fetcher(timeout_seconds=0.3).fetch(origin.url("/sleepy")),
        ErrorCode.TEMPLATE_FETCH_FAILED,
    )
    assert time.monotonic() - started < 1.0


async def test_a_slow_drip_that_never_ends_is_cut_off_by_the_total_timeout(
    origin: Origin, make_fetcher: Callable[..., SafeFetcher]
) -> None:
    """Bytes keep arriving, so no read timeout fires; only the total limit does."""
    fetcher = make_fetcher(timeout_seconds=0.3, max_bytes=10_000_000)
    started = time.monotonic()

    error = await refused(fetcher.fetch(origin.url("/drip")), ErrorCode.TEMPLATE_FETCH_FAILED)

    assert "0.3" in error.message
    assert time.monotonic() - started < 1.0


# --- configuration -------------------------------------------------------------------------------


def test_policy_from_settings() -> None:
    settings = Settings(
        template_allowed_hosts="templates.example.org, *.cdn.example.org",
        fetch_allow_private_networks=False,
        fetch_timeout_seconds=4.5,
        fetch_max_bytes=4096,
        fetch_max_redirects=1,
    )

    assert FetchPolicy.from_settings(settings) == FetchPolicy(
        allowed_hosts=("templates.example.org", "*.cdn.example.org"),
        allow_private_networks=False,
        timeout_seconds=4.5,
        max_bytes=4096,
        max_redirects=1,
    )
