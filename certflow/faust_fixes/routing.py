"""Answer a request on the worker that owns its key, whatever worker received it.

Faust's ``table_route`` does this, but forwards the owner's answer as *text*: a PDF
or PNG comes back corrupted (or the forwarding worker fails decoding it), and the
status code and media type are rewritten. ``owner_route`` forwards bytes, status and
media type unchanged, and marks forwarded requests so that two workers that briefly
disagree about ownership during a rebalance answer instead of bouncing a request
between them. A question whose answer is spread over partitions (the access-code
index) is asked of every worker instead: ``other_workers_answers``.

Upstream: faust-streaming 0.15.3's ``App.table_route`` (faust/app/base.py) and
``Router.key_store`` (faust/app/router.py); no upstream issue is known for either, both
reproduced here (a PDF forwarded between two workers; a status list looked up before
its first revocation on Apache Kafka).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, cast

import aiohttp
from aiohttp import web as aiohttp_web
from faust.tables.manager import TableManager
from faust.types import AppT, CollectionT
from faust.web import Request, Response, View
from yarl import URL

from certflow.web.errors import error_response

#: Set on a forwarded request: the receiver answers from what it has.
FORWARDED_HEADER = "X-Certflow-Forwarded"
#: Request headers that matter to the owner's answer.
_PASSED_HEADERS = ("Accept", "Authorization", "Content-Type")

Handler = Callable[..., Awaitable[Response]]


def owner_route(
    table: str, match_info: str, *, body_limit: int = 0
) -> Callable[[Handler], Handler]:
    """Decorate a view method keyed by ``request.match_info[match_info]`` in the
    table named ``table`` of the view's app.

    ``body_limit``: the most bytes of a request body (a POST's) relayed to the
    owner; a longer body is refused here with 413 before it is read whole. GETs
    relay no body.
    """

    def decorator(handler: Handler) -> Handler:
        @wraps(handler)
        async def route(view: View, request: Request, **kwargs: Any) -> Response:
            app = view.app
            if request.headers.get(FORWARDED_HEADER):
                return await answer_here(handler, view, request, **kwargs)
            key = request.match_info[match_info]
            try:
                owner = await owner_of(app, app.tables[table], key.encode())
            except KeyError:
                return not_ready("partitions are being assigned")
            if is_this_worker(app, owner):
                return await answer_here(handler, view, request, **kwargs)
            return await forward(view, request, owner, body_limit=body_limit)

        return route

    return decorator


async def owner_of(app: AppT, table: CollectionT, key: bytes) -> URL:
    """The worker that owns ``key`` of ``table``; KeyError while partitions are assigned.

    Faust hashes the key with the producer's metadata of the table's changelog
    topic, which the producer only has once it wrote to that topic: a table nobody
    wrote to yet on this worker (a status list before its first revocation) has
    none, and Faust's lookup crashes. Its metadata is fetched first then (the
    changelog topic exists: Faust declares it when the table starts).
    """
    await changelog_partitions(app, table)
    return URL(str(app.router.key_store(table.name, key)))


async def changelog_partitions(app: AppT, table: CollectionT) -> set[int]:
    """The partitions of ``table``'s changelog, from the producer's metadata, which
    is fetched first if the producer has none for it (see :func:`owner_of`)."""
    topic = table.changelog_topic.get_topic_name()
    # Faust and aiokafka have no public way to the metadata the owner lookup reads.
    producer = app.producer._ensure_producer()  # type: ignore[attr-defined]  # noqa: SLF001 - the aiokafka producer under Faust's, for its topic metadata
    partitions = producer._metadata.partitions_for_topic(topic)  # noqa: SLF001 - aiokafka keeps no public per-topic metadata check
    if partitions is None:
        partitions = await producer.partitions_for(topic)
    return set(partitions)


async def other_workers_answers(view: View, request: Request, table: CollectionT) -> list[bytes] | Response:
    """The answers to this same request of every other worker that holds partitions
    of ``table``, each asked as forwarded (it answers from what it holds), for a
    question whose answer is spread over the table's partitions; a 503 (clients
    retry) if any of them cannot answer yet, or cannot be reached."""
    app = view.app
    owners = [URL(host) for host, topics in app.router.table_metadata(table.name).items() if any(topics.values())]
    if not owners:
        return not_ready("partitions are being assigned")
    others = [owner for owner in owners if not is_this_worker(app, owner)]
    try:
        answers = await asyncio.gather(*(_relay(view, request, owner, None) for owner in others))
    except (aiohttp.ClientError, TimeoutError):
        return not_ready("a worker holding part of the answer cannot be reached")
    if any(status != 200 for status, _, _ in answers):
        return not_ready("a worker holding part of the answer cannot answer yet")
    return [body for _, _, body in answers]


def tables_recovered(app: AppT) -> bool:
    """Whether this worker's tables hold what their changelogs say: not during a
    rebalance, nor while a partition it was given is being read back."""
    # Faust types ``app.tables`` as its abstract manager; the real one recovers.
    tables = cast(TableManager, app.tables)
    return not app.rebalancing and tables.recovery.completed.is_set()


async def answer_here(handler: Handler, view: View, request: Request, **kwargs: Any) -> Response:
    """The owner's answer, once its tables are recovered: before that, a table read
    would answer "unknown" for what is only not read back yet (a 503 is retried)."""
    if not tables_recovered(view.app):
        return not_ready("tables are being recovered")
    return await handler(view, request, **kwargs)


def not_ready(message: str) -> Response:
    """503: the answer is not known here yet (clients retry)."""
    return error_response(503, "NOT_READY", message)


def is_this_worker(app: AppT, owner: URL) -> bool:
    mine = URL(str(app.conf.canonical_url))
    return (owner.host, owner.port) == (mine.host, mine.port)


async def forward(view: View, request: Request, owner: URL, *, body_limit: int = 0) -> Response:
    """Ask ``owner`` the same question and pass its answer on, byte for byte."""
    # A body sent with a GET means nothing to the owner, and relaying it would let
    # any client make workers copy it around; a POST's (the admin's revocation) is
    # relayed up to its route's limit.
    payload = None
    if request.method not in ("GET", "HEAD"):
        payload = await read_at_most(request, body_limit)
        if payload is None:
            return error_response(413, "TOO_LARGE", f"the body is at most {body_limit} bytes")
    status, content_type, body = await _relay(view, request, owner, payload)
    return view.bytes(body, content_type=content_type, status=status)


async def _relay(view: View, request: Request, owner: URL, payload: bytes | None) -> tuple[int, str, bytes]:
    """``owner``'s answer to ``request`` (with ``payload`` as its body), marked
    forwarded: its status, media type and bytes."""
    headers = {name: request.headers[name] for name in _PASSED_HEADERS if name in request.headers}
    headers[FORWARDED_HEADER] = "1"
    url = owner.with_path(_aiohttp(request).path).with_query(request.query)
    async with view.app.http_client.request(request.method, url, headers=headers, data=payload) as response:
        return response.status, response.content_type, await response.read()


async def read_at_most(request: Request, limit: int) -> bytes | None:
    """The request body, or ``None`` as soon as it proves longer than ``limit``.

    A declared ``Content-Length`` is checked first; a chunked body (no length) is
    read piece by piece and abandoned at ``limit + 1`` bytes, so a client cannot make
    the worker hold more than ``limit`` bytes of it (``request.read()`` would buffer
    up to aiohttp's 1 MiB ``client_max_size`` and then fail with a text error).
    """
    raw = _aiohttp(request)
    if (raw.content_length or 0) > limit:
        return None
    chunks: list[bytes] = []
    received = 0
    while True:
        chunk = await raw.content.read(min(65_536, limit + 1 - received))
        if not chunk:
            return b"".join(chunks)
        received += len(chunk)
        if received > limit:
            return None
        chunks.append(chunk)


def _aiohttp(request: Request) -> aiohttp_web.Request:
    """The aiohttp request under Faust's abstract one (its only web driver)."""
    return cast(aiohttp_web.Request, request)
