"""Parsed templates by reference, fetched once and shared by every certificate.

A batch of fifty thousand learners names the same template fifty thousand times;
fetching and parsing it each time would hammer the template host and waste most
of the render budget on XML parsing. :class:`TemplateCache` keeps parsed values
(generic over the parsed type, so images can share it later) in a bounded LRU with
a TTL, and lets exactly one coroutine load a missing key while the others wait.

The TTL exists so that an edited template at the same URL is eventually picked up.
Refetching a 1 MB template every five minutes only to find it unchanged would be
wasteful, so an expired entry is *revalidated*: with ``If-None-Match`` /
``If-Modified-Since`` over http, with the file's modification stamp for local
files. Only a changed template is parsed again.

Template references come from event producers, so :meth:`TemplateCache.resolve`
is also a gate: only http(s) URLs (whose hosts :class:`SafeFetcher` then checks)
and files under ``template_root`` get through.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar
from urllib.parse import unquote, urlsplit

from cachetools import LRUCache, TTLCache

from certflow.errors import CertflowError, ErrorCode

if TYPE_CHECKING:
    from certflow.render.fetch import SafeFetcher
    from certflow.settings import Settings

__all__ = ["CLOUD_BASE_PATH", "CacheStats", "TemplateCache"]

T = TypeVar("T")

#: The placeholder Sunbird writes into template URLs instead of its storage base URL.
CLOUD_BASE_PATH = "CLOUD_BASE_PATH"
_REMOTE_SCHEMES = frozenset({"http", "https"})
_NO_REWRITES: Mapping[str, str] = MappingProxyType({})


@dataclass
class CacheStats:
    """Counters for the metrics endpoint; a snapshot, not a live view.

    ``misses`` counts lookups not answered from the cache, including those that
    waited for another coroutine's load; ``fetches`` counts trips to the origin
    (an HTTP request, or a look at a file), so ``misses - fetches`` is what
    single-flight saved. ``revalidated`` counts trips that found the cached value
    still current (HTTP 304, or an unchanged file). ``evictions`` counts entries
    pushed out by the size bound; entries that merely expired are not evictions.
    """

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    fetches: int = 0
    revalidated: int = 0
    size: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _FileStamp(NamedTuple):
    """What must stay equal for a local template to count as unchanged."""

    mtime_ns: int
    size: int
    inode: int


@dataclass(frozen=True)
class _Origin(Generic[T]):
    """A parsed value plus what it takes to ask its origin whether it changed.

    Kept beside the TTL cache because the TTL cache forgets a value the moment it
    expires, and a 304 is only useful if the value it confirms is still at hand.
    """

    value: T
    etag: str | None = None
    last_modified: str | None = None
    file_stamp: _FileStamp | None = None


class _EvictionCountingCache(TTLCache[str, Any]):
    """A TTLCache that reports entries pushed out by the size bound.

    ``popitem`` is what cachetools calls to make room (after dropping expired
    entries, which therefore never show up here): the pattern from its docs.
    """

    def __init__(
        self,
        maxsize: int,
        ttl: float,
        timer: Callable[[], float],
        on_evict: Callable[[str], None],
    ) -> None:
        super().__init__(maxsize, ttl, timer=timer)
        self._on_evict = on_evict

    def popitem(self) -> tuple[str, Any]:
        key, value = super().popitem()
        self._on_evict(key)
        return key, value


class TemplateCache(Generic[T]):
    """Parsed templates keyed by their resolved reference; see the module docstring.

    ``parse(body, url)`` turns fetched bytes into a ``T`` and raises
    ``CertflowError`` (``TEMPLATE_INVALID``) for a bad document; its errors reach
    the caller unchanged and nothing is cached. ``url`` is the final URL after
    redirects, or the ``file://`` URL: the base for relative references inside.
    """

    def __init__(
        self,
        fetcher: SafeFetcher,
        parse: Callable[[bytes, str], T],
        *,
        template_root: Path,
        rewrites: Mapping[str, str] = _NO_REWRITES,
        cloud_base_path: str = "",
        maxsize: int = 64,
        ttl_seconds: float = 300.0,
        failure_ttl_seconds: float = 0.0,
        max_bytes: int = 2_097_152,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetcher = fetcher
        self._parse = parse
        # Resolved now, against today's cwd and symlinks, so the containment check
        # compares like with like and a later chdir cannot move the root.
        self._root = Path(template_root).resolve()
        # Longest prefix first, so a specific rule beats a general one.
        self._rewrites = sorted(
            ((prefix, target) for prefix, target in rewrites.items() if prefix),
            key=lambda rule: len(rule[0]),
            reverse=True,
        )
        self._cloud_base_path = cloud_base_path
        self._max_bytes = max_bytes
        self._stats = CacheStats()
        self._values = _EvictionCountingCache(maxsize, ttl_seconds, clock, self._evicted)
        self._origins: LRUCache[str, _Origin[T]] = LRUCache(maxsize)
        self._inflight: dict[str, asyncio.Task[T]] = {}
        # References as events spell them → their keys. Resolving a file path walks
        # its symlinks (a syscall per component, a few percent of a certificate's
        # CPU); remembered as long as a value is, so a changed link is seen as soon
        # as a changed file is.
        self._keys: TTLCache[str, str] = TTLCache(maxsize * 4, ttl_seconds, timer=clock)
        #: Fetches that failed, remembered ``failure_ttl_seconds`` (0: not at all), so
        #: a host that is down is not asked again for every certificate drawn meanwhile.
        self._failures: TTLCache[str, CertflowError] | None = (
            TTLCache(maxsize * 4, failure_ttl_seconds, timer=clock) if failure_ttl_seconds > 0 else None
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, fetcher: SafeFetcher, parse: Callable[[bytes, str], T]
    ) -> TemplateCache[T]:
        return cls(
            fetcher,
            parse,
            template_root=settings.template_root,
            rewrites=settings.template_rewrites,
            cloud_base_path=settings.cloud_base_path,
            maxsize=settings.template_cache_size,
            ttl_seconds=settings.template_cache_ttl_seconds,
            max_bytes=settings.fetch_max_bytes,
        )

    @property
    def stats(self) -> CacheStats:
        return replace(self._stats, size=len(self._values))

    def resolve(self, ref: str) -> str:
        """Turn a template reference from an event into the cache key, or refuse it.

        The key is an http(s) URL (its host is :class:`SafeFetcher`'s business)
        or the ``file://`` URL of a file strictly inside ``template_root``, with
        ``..`` and symlinks already resolved, so two spellings of one file share
        an entry and no spelling reaches outside the root.
        """
        text = ref.strip()
        if not text:
            raise _not_allowed("the template reference is empty")
        if CLOUD_BASE_PATH in text:
            if not self._cloud_base_path:
                raise _not_allowed(
                    f"{ref!r} uses {CLOUD_BASE_PATH} but no cloud base path is configured"
                )
            text = text.replace(CLOUD_BASE_PATH, self._cloud_base_path)
        for prefix, target in self._rewrites:
            if text.startswith(prefix):
                text = target + text[len(prefix) :]
                break
        try:
            parts = urlsplit(text)
        except ValueError:
            raise _not_allowed(f"{ref!r} is not a valid URL or path") from None
        scheme = parts.scheme.lower()
        if scheme in _REMOTE_SCHEMES:
            return text
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise _not_allowed(f"{ref!r} names a file on another host")
            path = unquote(parts.path)
            if not path.startswith("/"):
                raise _not_allowed(f"{ref!r} is not an absolute file URL")
        elif scheme == "":
            path = text  # a plain path, relative to template_root unless absolute
        else:
            raise _not_allowed(f"{ref!r}: scheme {scheme!r} is not allowed")
        return self._contain(path, ref).as_uri()

    async def get(self, ref: str) -> T:
        """The parsed template for ``ref``, loading it at most once at a time.

        Raises ``CertflowError``: ``TEMPLATE_NOT_ALLOWED`` from :meth:`resolve` or
        the fetcher, ``TEMPLATE_FETCH_FAILED``, or whatever ``parse`` raises.
        """
        key = self._keys.get(ref)
        if key is None:
            key = self._keys[ref] = self.resolve(ref)
        try:
            value: T = self._values[key]
        except KeyError:
            pass
        else:
            self._stats.hits += 1
            return value
        self._stats.misses += 1
        failure = self._failures.get(key) if self._failures is not None else None
        if failure is not None:
            raise CertflowError(failure.code, failure.message)
        load = self._inflight.get(key)
        if load is None:
            load = asyncio.create_task(self._load(key), name=f"certflow template {key}")
            load.add_done_callback(_mark_retrieved)
            self._inflight[key] = load
        # Shielded: a waiter that is cancelled (its event timed out) must not
        # cancel the load every other waiter is counting on.
        return await asyncio.shield(load)

    async def _load(self, key: str) -> T:
        try:
            self._stats.fetches += 1
            if urlsplit(key).scheme.lower() in _REMOTE_SCHEMES:
                return await self._load_url(key)
            return await self._load_file(key)
        except CertflowError as exc:
            if self._failures is not None and exc.code is ErrorCode.TEMPLATE_FETCH_FAILED:
                self._failures[key] = exc
            raise
        finally:
            self._inflight.pop(key, None)

    async def _load_url(self, key: str) -> T:
        origin = self._origins.get(key)
        if origin is not None:
            fetched = await self._fetcher.fetch(
                key, etag=origin.etag, last_modified=origin.last_modified
            )
        else:
            fetched = await self._fetcher.fetch(key)
        if fetched is None:
            if origin is None:  # pragma: no cover - 304 only answers a conditional GET
                raise CertflowError(ErrorCode.TEMPLATE_FETCH_FAILED, f"{key} answered 304")
            self._stats.revalidated += 1
            self._store(key, origin)
            return origin.value
        value = self._parse(fetched.body, fetched.url)
        if fetched.etag or fetched.last_modified:
            self._store(key, _Origin(value, fetched.etag, fetched.last_modified))
        else:
            self._origins.pop(key, None)  # nothing to revalidate with: refetch after TTL
            self._values[key] = value
        return value

    async def _load_file(self, key: str) -> T:
        path = Path(unquote(urlsplit(key).path))
        origin = self._origins.get(key)
        known = origin.file_stamp if origin is not None else None
        stamp, body = await asyncio.to_thread(self._read_file, path, known)
        if body is None and origin is not None:
            self._stats.revalidated += 1
            self._store(key, origin)
            return origin.value
        assert body is not None
        value = self._parse(body, key)
        self._store(key, _Origin(value, file_stamp=stamp))
        return value

    def _read_file(self, path: Path, known: _FileStamp | None) -> tuple[_FileStamp, bytes | None]:
        """Read ``path`` (in a worker thread); ``None`` for the body if ``known`` still holds.

        The path was contained when the key was made, but the tree may have
        changed since; it is checked again, opened without following a final
        symlink, and must be a regular file (``O_NONBLOCK`` keeps a FIFO planted
        in the root from hanging the thread).
        """
        self._contain(path, path.as_uri())
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            raise _fetch_failed(f"template file {path.as_uri()} does not exist") from None
        except OSError as exc:
            raise _fetch_failed(f"cannot open {path.as_uri()}: {exc.strerror}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise _fetch_failed(f"{path.as_uri()} is not a regular file")
            stamp = _FileStamp(info.st_mtime_ns, info.st_size, info.st_ino)
            if stamp == known:
                return stamp, None
            if info.st_size > self._max_bytes:
                raise _too_large(path, self._max_bytes)
            body = _read_at_most(fd, self._max_bytes + 1)  # it may have grown since fstat
        except OSError as exc:
            raise _fetch_failed(f"cannot read {path.as_uri()}: {exc.strerror}") from None
        finally:
            os.close(fd)
        if len(body) > self._max_bytes:
            raise _too_large(path, self._max_bytes)
        return stamp, body

    def _contain(self, path: str | Path, ref: str) -> Path:
        try:
            candidate = (self._root / path).resolve()
        except (OSError, ValueError, RuntimeError):  # NUL bytes, symlink loops
            raise _not_allowed(f"{ref!r} is not a usable path") from None
        if candidate == self._root or not candidate.is_relative_to(self._root):
            raise _not_allowed(f"{ref!r} is outside the template directory")
        return candidate

    def _store(self, key: str, origin: _Origin[T]) -> None:
        # Value first: making room for it may evict (and forget) another key.
        self._values[key] = origin.value
        self._origins[key] = origin

    def _evicted(self, key: str) -> None:
        self._stats.evictions += 1
        # Pushed out for room, not for age: keeping its value for revalidation
        # would defeat the size bound.
        self._origins.pop(key, None)


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _mark_retrieved(task: asyncio.Task[Any]) -> None:
    # If every waiter was cancelled, nobody awaits a failed load; fetching its
    # exception here keeps asyncio from logging "exception was never retrieved".
    if not task.cancelled():
        task.exception()


def _not_allowed(message: str) -> CertflowError:
    return CertflowError(ErrorCode.TEMPLATE_NOT_ALLOWED, message)


def _fetch_failed(message: str) -> CertflowError:
    return CertflowError(ErrorCode.TEMPLATE_FETCH_FAILED, message)


def _too_large(path: Path, limit: int) -> CertflowError:
    return _fetch_failed(f"{path.as_uri()} is larger than the limit of {limit} bytes")
