"""TemplateCache: one fetch and one parse per template, and only allowed templates.

Remote templates come from a real aiohttp server on 127.0.0.1 (reached with
``allow_private_networks=True``); time is a fake clock, so TTL tests do not sleep.
``parse`` is a stand-in that records its calls: the cache must not care what it
returns.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from certflow.errors import CertflowError, ErrorCode
from certflow.render.fetch import FetchPolicy, SafeFetcher
from certflow.render.template_cache import CacheStats, TemplateCache
from certflow.settings import Settings

TTL = 300.0
SUNBIRD_CONTAINER = "https://ntpstagingall.blob.core.windows.net/"
SUNBIRD_CERTS = "https://ntpstagingall.blob.core.windows.net/user/cert/"


@dataclass(frozen=True)
class Parsed:
    body: bytes
    url: str


class Parser:
    """Records each parse; fails while ``failure`` is set."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.failure: CertflowError | None = None

    def __call__(self, body: bytes, url: str) -> Parsed:
        self.calls.append(url)
        if self.failure is not None:
            raise self.failure
        return Parsed(body, url)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Document:
    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    status: int = 200


@dataclass
class Origin:
    """The template server: documents by path, and what it was asked."""

    server: TestServer
    documents: dict[str, Document] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    conditional: list[tuple[str | None, str | None]] = field(default_factory=list)
    delay: float = 0.0

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    app = web.Application()
    state = Origin(server=TestServer(app))

    async def serve(request: web.Request) -> web.StreamResponse:
        state.requests[request.path] += 1
        await asyncio.sleep(state.delay)
        document = state.documents.get(request.path)
        if document is None:
            return web.Response(status=404)
        if_none_match = request.headers.get("If-None-Match")
        if_modified_since = request.headers.get("If-Modified-Since")
        state.conditional.append((if_none_match, if_modified_since))
        if document.status != 200:
            return web.Response(status=document.status)
        if document.etag is not None and if_none_match == document.etag:
            return web.Response(status=304)
        if document.last_modified is not None and if_modified_since == document.last_modified:
            return web.Response(status=304)
        response = web.Response(body=document.body, content_type="image/svg+xml")
        if document.etag is not None:
            response.headers["ETag"] = document.etag
        if document.last_modified is not None:
            response.headers["Last-Modified"] = document.last_modified
        return response

    app.router.add_get("/{path:.*}", serve)
    await state.server.start_server(shutdown_timeout=0.1)
    try:
        yield state
    finally:
        await state.server.close()


@pytest.fixture
async def fetcher() -> AsyncIterator[SafeFetcher]:
    policy = FetchPolicy(
        allowed_hosts=("127.0.0.1",),
        allow_private_networks=True,
        timeout_seconds=2.0,
        max_bytes=65_536,
        max_redirects=2,
    )
    async with SafeFetcher(policy) as fetcher:
        yield fetcher


@pytest.fixture
def root(tmp_path: Path) -> Path:
    templates = tmp_path / "templates"
    templates.mkdir()
    return templates


@pytest.fixture
def parser() -> Parser:
    return Parser()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_cache(
    fetcher: SafeFetcher, parser: Parser, root: Path, clock: FakeClock
) -> Callable[..., TemplateCache[Parsed]]:
    def make(**overrides: Any) -> TemplateCache[Parsed]:
        options: dict[str, Any] = {"template_root": root, "ttl_seconds": TTL, "clock": clock}
        options.update(overrides)
        return TemplateCache(fetcher, parser, **options)

    return make


def write(path: Path, body: bytes, *, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


async def refused(cache: TemplateCache[Parsed], ref: str, code: ErrorCode) -> CertflowError:
    with pytest.raises(CertflowError) as caught:
        await cache.get(ref)
    assert caught.value.code is code, caught.value
    return caught.value


# --- hits, misses, evictions ---------------------------------------------------------------------


async def test_a_second_get_is_a_hit_that_neither_reads_nor_parses(
    make_cache: Callable[..., TemplateCache[Parsed]], parser: Parser, root: Path
) -> None:
    write(root / "course.svg", b"<svg/>")
    cache = make_cache()

    first = await cache.get("course.svg")
    second = await cache.get("course.svg")

    assert second is first
    assert first == Parsed(b"<svg/>", (root / "course.svg").as_uri())
    assert len(parser.calls) == 1
    assert cache.stats == CacheStats(hits=1, misses=1, evictions=0, fetches=1, size=1)


async def test_the_least_recently_used_entry_is_evicted_when_full(
    make_cache: Callable[..., TemplateCache[Parsed]], parser: Parser, root: Path
) -> None:
    for name in "abc":
        write(root / f"{name}.svg", name.encode())
    cache = make_cache(maxsize=2)

    await cache.get("a.svg")
    await cache.get("b.svg")
    await cache.get("a.svg")  # a is now the most recently used
    await cache.get("c.svg")  # so b makes room

    assert cache.stats.as_dict() == {
        "hits": 1,
        "misses": 3,
        "evictions": 1,
        "fetches": 3,
        "revalidated": 0,
        "size": 2,
    }
    await cache.get("a.svg")
    assert cache.stats.hits == 2
    await cache.get("b.svg")
    assert cache.stats.misses == 4
    assert len(parser.calls) == 4


async def test_expiry_is_not_counted_as_eviction(
    make_cache: Callable[..., TemplateCache[Parsed]], root: Path, clock: FakeClock
) -> None:
    write(root / "a.svg", b"a")
    write(root / "b.svg", b"b")
    cache = make_cache(maxsize=2)
    await cache.get("a.svg")
    await cache.get("b.svg")

    clock.advance(TTL + 1)

    assert cache.stats.size == 0
    assert cache.stats.evictions == 0


# --- single flight -------------------------------------------------------------------------------


async def test_fifty_concurrent_gets_make_one_request_and_one_parse(
    make_cache: Callable[..., TemplateCache[Parsed]], parser: Parser, origin: Origin
) -> None:
    origin.documents["/course.svg"] = Document(b"<svg/>", etag='"1"')
    origin.delay = 0.05  # keep the first load in flight while the others arrive
    cache = make_cache()
    url = origin.url("/course.svg")

    results = await asyncio.gather(*(cache.get(url) for _ in range(50)))

    assert origin.requests["/course.svg"] == 1
    assert parser.calls == [url]
    assert all(result is results[0] for result in results)
    assert cache.stats == CacheStats(hits=0, misses=50, fetches=1, size=1)


async def test_a_failed_fetch_reaches_every_waiter_and_is_not_cached(
    make_cache: Callable[..., TemplateCache[Parsed]], parser: Parser, origin: Origin
) -> None:
    origin.documents["/course.svg"] = Document(b"", status=503)
    origin.delay = 0.05
    cache = make_cache()
    url = origin.url("/course.svg")

    results = await asyncio.gather(*(cache.get(url) for _ in range(10)), return_exceptions=True)

    assert origin.requests["/course.svg"] == 1
    assert all(isinstance(result, CertflowError) for result in results)
    assert all(result is results[0] for result in results)  # the very same error
    error = results[0]
    assert isinstance(error, CertflowError)
    assert error.code is ErrorCode.TEMPLATE_FETCH_FAILED
    assert "503" in error.message
    assert cache.stats.size == 0

    origin.documents["/course.svg"] = Document(b"<svg/>")
    assert (await cache.get(url)).body == b"<svg/>"
    assert origin.requests["/course.svg"] == 2
    assert len(parser.calls) == 1


async def test_a_failed_fetch_is_remembered_for_its_failure_ttl_when_asked_to(
    make_cache: Callable[..., TemplateCache[Parsed]], origin: Origin, clock: FakeClock
) -> None:
    """Images of a host that is down: not asked again for every certificate drawn meanwhile."""
    origin.documents["/sig.png"] = Document(b"", status=503)
    cache = make_cache(failure_ttl_seconds=30.0)
    url = origin.url("/sig.png")

    for _ in range(5):
        await refused(cache, url, ErrorCode.TEMPLATE_FETCH_FAILED)
    assert origin.requests["/sig.png"] == 1

    origin.documents["/sig.png"] = Document(b"<svg/>")
    clock.advance(31.0)
    assert (await cache.get(url)).body == b"<svg/>"
    assert origin.requests["/sig.png"] == 2


async def test_a_parse_error_propagates_unchanged_and_is_not_cached(
    make_cache: Callable[..., TemplateCache[Parsed]], parser: Parser, root: Path
) -> None:
    write(root / "broken.svg", b"<svg")
    parser.failure = CertflowError(ErrorCode.TEMPLATE_INVALID, "not an SVG document")
    cache = make_cache()

    results = await asyncio.gather(
        *(cache.get("broken.svg") for _ in range(5)), return_exceptions=True
    )

    assert all(result is parser.failure for result in results)
    assert len(parser.calls) == 1

    parser.failure = None
    write(root / "broken.svg", b"<svg/>")
    assert (await cache.get("broken.svg")).body == b"<svg/>"


async def test_a_cancelled_waiter_does_not_cancel_the_load_for_the_others(
    make_cache: Callable[..., TemplateCache[Parsed]], origin: Origin
) -> None:
    origin.documents["/course.svg"] = Document(b"<svg/>")
    origin.delay = 0.1
    cache = make_cache()
    url = origin.url("/course.svg")

    impatient = asyncio.create_task(cache.get(url))
    patient = asyncio.create_task(cache.get(url))
    await asyncio.sleep(0.02)
    impatient.cancel()

    assert (await patient).body == b"<svg/>"
    assert impatient.cancelled()
    assert origin.requests["/course.svg"] == 1


# --- time to live and revalidation ---------------------------------------------------------------


async def test_a_template_without_validators_is_fetched_again_after_the_ttl(
    make_cache: Callable[..., TemplateCache[Parsed]],
    parser: Parser,
    origin: Origin,
    clock: FakeClock,
) -> None:
    origin.documents["/course.svg"] = Document(b"v1")
    cache = make_cache()
    url = origin.url("/course.svg")
    await cache.get(url)

    clock.advance(TTL - 1)
    assert (await cache.get(url)).body == b"v1"
    assert origin.requests["/course.svg"] == 1

    origin.documents["/course.svg"] = Document(b"v2")
    clock.advance(2)
    assert (await cache.get(url)).body == b"v2"
    assert origin.requests["/course.svg"] == 2
    assert origin.conditional[-1] == (None, None)
    assert len(parser.calls) == 2


@pytest.mark.parametrize(
    "validators",
    [{"etag": '"abc"'}, {"last_modified": "Wed, 21 Oct 2015 07:28:00 GMT"}],
    ids=["etag", "last-modified"],
)
async def test_an_expired_template_is_revalidated_and_a_304_keeps_the_parsed_value(
    make_cache: Callable[..., TemplateCache[Parsed]],
    parser: Parser,
    origin: Origin,
    clock: FakeClock,
    validators: dict[str, str],
) -> None:
    origin.documents["/course.svg"] = Document(b"v1", **validators)
    cache = make_cache()
    url = origin.url("/course.svg")
    first = await cache.get(url)

    clock.advance(TTL + 1)
    again = await cache.get(url)

    assert again is first
    assert len(parser.calls) == 1
    assert origin.requests["/course.svg"] == 2
    assert origin.conditional[-1] == (validators.get("etag"), validators.get("last_modified"))
    assert cache.stats.revalidated == 1

    clock.advance(TTL - 1)  # the 304 restarted the entry's clock
    assert await cache.get(url) is first
    assert origin.requests["/course.svg"] == 2


async def test_a_changed_remote_template_replaces_the_cached_one_after_the_ttl(
    make_cache: Callable[..., TemplateCache[Parsed]], origin: Origin, clock: FakeClock
) -> None:
    origin.documents["/course.svg"] = Document(b"v1", etag='"1"')
    cache = make_cache()
    url = origin.url("/course.svg")
    await cache.get(url)

    origin.documents["/course.svg"] = Document(b"v2", etag='"2"')
    clock.advance(TTL + 1)

    assert (await cache.get(url)).body == b"v2"
    assert origin.conditional[-1] == ('"1"', None)
    assert cache.stats.revalidated == 0


async def test_an_edited_file_is_picked_up_after_the_ttl(
    make_cache: Callable[..., TemplateCache[Parsed]], root: Path, clock: FakeClock
) -> None:
    path = write(root / "course.svg", b"v1", mtime=1_700_000_000)
    cache = make_cache()
    assert (await cache.get("course.svg")).body == b"v1"

    write(path, b"v2", mtime=1_700_000_100)
    assert (await cache.get("course.svg")).body == b"v1"  # still fresh

    clock.advance(TTL + 1)
    assert (await cache.get("course.svg")).body == b"v2"


async def test_an_unchanged_file_is_not_parsed_again_after_the_ttl(
    make_cache: Callable[..., TemplateCache[Parsed]], parser: Parser, root: Path, clock: FakeClock
) -> None:
    write(root / "course.svg", b"v1")
    cache = make_cache()
    first = await cache.get("course.svg")

    clock.advance(TTL + 1)

    assert await cache.get("course.svg") is first
    assert len(parser.calls) == 1
    assert cache.stats.revalidated == 1


# --- local files ---------------------------------------------------------------------------------


async def test_a_missing_file_fails_to_fetch(
    make_cache: Callable[..., TemplateCache[Parsed]],
) -> None:
    error = await refused(make_cache(), "nowhere.svg", ErrorCode.TEMPLATE_FETCH_FAILED)
    assert "does not exist" in error.message


async def test_a_file_over_the_size_limit_fails_to_fetch(
    make_cache: Callable[..., TemplateCache[Parsed]], parser: Parser, root: Path
) -> None:
    write(root / "huge.svg", b"x" * 2048)

    await refused(make_cache(max_bytes=1024), "huge.svg", ErrorCode.TEMPLATE_FETCH_FAILED)
    assert parser.calls == []


async def test_a_directory_is_not_a_template(
    make_cache: Callable[..., TemplateCache[Parsed]], root: Path
) -> None:
    (root / "sunbird").mkdir()

    await refused(make_cache(), "sunbird", ErrorCode.TEMPLATE_FETCH_FAILED)


# --- resolving references ------------------------------------------------------------------------


def test_http_urls_are_their_own_keys(make_cache: Callable[..., TemplateCache[Parsed]]) -> None:
    url = "https://templates.example.org/cert/course.svg?v=2"
    assert make_cache().resolve(f"  {url}\n") == url


def test_relative_paths_and_file_urls_resolve_under_the_root(
    make_cache: Callable[..., TemplateCache[Parsed]], root: Path
) -> None:
    cache = make_cache()
    expected = (root / "sunbird" / "course.svg").as_uri()

    assert cache.resolve("sunbird/course.svg") == expected
    assert cache.resolve("./sunbird/../sunbird/course.svg") == expected
    assert cache.resolve(str(root / "sunbird" / "course.svg")) == expected
    assert cache.resolve(expected) == expected


def test_a_relative_template_root_is_taken_from_the_working_directory(
    fetcher: SafeFetcher, parser: Parser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cache = TemplateCache(fetcher, parser, template_root=Path("templates"))
    monkeypatch.chdir("/")  # a later chdir does not move the root

    assert cache.resolve("course.svg") == (tmp_path / "templates" / "course.svg").as_uri()


def test_cloud_base_path_placeholder_is_replaced(
    make_cache: Callable[..., TemplateCache[Parsed]],
) -> None:
    cache = make_cache(cloud_base_path="https://cdn.example.org/sunbird")

    assert (
        cache.resolve("CLOUD_BASE_PATH/user/cert/File-0131.svg")
        == "https://cdn.example.org/sunbird/user/cert/File-0131.svg"
    )


def test_cloud_base_path_placeholder_without_a_configured_value_is_refused(
    make_cache: Callable[..., TemplateCache[Parsed]],
) -> None:
    with pytest.raises(CertflowError) as caught:
        make_cache().resolve("CLOUD_BASE_PATH/user/cert/File-0131.svg")
    assert caught.value.code is ErrorCode.TEMPLATE_NOT_ALLOWED


def test_the_longest_matching_rewrite_wins(
    make_cache: Callable[..., TemplateCache[Parsed]], root: Path
) -> None:
    cache = make_cache(
        rewrites={
            SUNBIRD_CONTAINER: "https://mirror.example.org/",
            SUNBIRD_CERTS: root.as_uri() + "/sunbird/",
        }
    )

    assert (
        cache.resolve(SUNBIRD_CERTS + "File-0131.svg")
        == (root / "sunbird" / "File-0131.svg").as_uri()
    )
    mirrored = cache.resolve(SUNBIRD_CONTAINER + "other/x.svg")
    assert mirrored == "https://mirror.example.org/other/x.svg"
    untouched = "https://elsewhere.example.org/x.svg"
    assert cache.resolve(untouched) == untouched


async def test_a_rewritten_sunbird_url_is_served_from_the_local_directory(
    make_cache: Callable[..., TemplateCache[Parsed]], root: Path
) -> None:
    write(root / "sunbird" / "File-0131.svg", b"<svg/>")
    cache = make_cache(
        cloud_base_path="https://ntpstagingall.blob.core.windows.net",
        rewrites={SUNBIRD_CERTS: "sunbird/"},
    )

    parsed = await cache.get("CLOUD_BASE_PATH/user/cert/File-0131.svg")

    assert parsed.body == b"<svg/>"


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "   ",
        "../../etc/passwd",
        "sunbird/../../outside.svg",
        "/etc/passwd",
        ".",
        "file:///etc/passwd",
        "file://fileserver/share/course.svg",
        "ftp://templates.example.org/course.svg",
        "gopher://127.0.0.1:6379/_INFO",
        "data:image/svg+xml;base64,PHN2Zy8+",
        "jar:file:///srv/templates.jar!/course.svg",
        "javascript:alert(1)",
        "course\x00.svg",
    ],
)
async def test_references_outside_the_root_or_with_other_schemes_are_refused(
    make_cache: Callable[..., TemplateCache[Parsed]], parser: Parser, ref: str
) -> None:
    await refused(make_cache(), ref, ErrorCode.TEMPLATE_NOT_ALLOWED)
    assert parser.calls == []


async def test_an_encoded_traversal_in_a_file_url_is_refused(
    make_cache: Callable[..., TemplateCache[Parsed]], root: Path
) -> None:
    await refused(
        make_cache(), root.as_uri() + "/%2e%2e/%2e%2e/etc/passwd", ErrorCode.TEMPLATE_NOT_ALLOWED
    )


async def test_an_absolute_path_elsewhere_is_refused_even_if_it_exists(
    make_cache: Callable[..., TemplateCache[Parsed]], tmp_path: Path
) -> None:
    secret = write(tmp_path / "secret.svg", b"<svg>secret</svg>")

    await refused(make_cache(), str(secret), ErrorCode.TEMPLATE_NOT_ALLOWED)
    await refused(make_cache(), secret.as_uri(), ErrorCode.TEMPLATE_NOT_ALLOWED)


async def test_a_symlink_escaping_the_root_is_refused(
    make_cache: Callable[..., TemplateCache[Parsed]], root: Path, tmp_path: Path
) -> None:
    secret = write(tmp_path / "secret.svg", b"<svg>secret</svg>")
    (root / "course.svg").symlink_to(secret)
    (root / "shared").symlink_to(tmp_path, target_is_directory=True)

    await refused(make_cache(), "course.svg", ErrorCode.TEMPLATE_NOT_ALLOWED)
    await refused(make_cache(), "shared/secret.svg", ErrorCode.TEMPLATE_NOT_ALLOWED)


async def test_a_symlink_within_the_root_is_followed(
    make_cache: Callable[..., TemplateCache[Parsed]], root: Path
) -> None:
    target = write(root / "v2" / "course.svg", b"<svg/>")
    (root / "current.svg").symlink_to(target)
    cache = make_cache()

    assert cache.resolve("current.svg") == target.as_uri()
    assert (await cache.get("current.svg")).body == b"<svg/>"


async def test_a_remote_host_not_on_the_allow_list_is_refused(
    make_cache: Callable[..., TemplateCache[Parsed]], parser: Parser
) -> None:
    cache = make_cache()

    await refused(cache, "https://evil.example.com/course.svg", ErrorCode.TEMPLATE_NOT_ALLOWED)
    assert parser.calls == []
    assert cache.stats.size == 0


# --- configuration -------------------------------------------------------------------------------


async def test_cache_from_settings(
    fetcher: SafeFetcher, parser: Parser, root: Path
) -> None:
    write(root / "sunbird" / "File-0131.svg", b"<svg/>")
    settings = Settings(
        template_root=root,
        template_rewrites={SUNBIRD_CERTS: "sunbird/"},
        cloud_base_path="https://ntpstagingall.blob.core.windows.net",
        template_cache_size=1,
        template_cache_ttl_seconds=60,
        fetch_max_bytes=4096,
    )
    cache = TemplateCache.from_settings(settings, fetcher, parser)

    parsed = await cache.get("CLOUD_BASE_PATH/user/cert/File-0131.svg")

    assert parsed.url == (root / "sunbird" / "File-0131.svg").as_uri()
    write(root / "other.svg", b"<svg/>")
    await cache.get("other.svg")
    assert cache.stats.evictions == 1  # template_cache_size=1
