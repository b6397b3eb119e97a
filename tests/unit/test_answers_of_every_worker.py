"""A question whose answer is spread over a table's partitions (the access-code index)
is asked of every other worker holding some of them (certflow.faust_fixes.routing):
each is asked as forwarded, this worker is not asked over HTTP, and one worker that
cannot answer, or cannot be reached, makes the whole answer a 503 (clients retry)
rather than a silently partial one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, make_mocked_request
from faust.types import CollectionT
from faust.web import Request, View

from certflow.broker import free_port
from certflow.faust_fixes.routing import FORWARDED_HEADER, other_workers_answers

QUERY = "/verify?code=P4L3Y9&who=Priya"


def worker(status: int, seen: list[dict[str, str]]) -> web.Application:
    """A worker's web server: answers ``/verify`` with ``status`` and records what it was asked."""

    async def verify(request: web.Request) -> web.Response:
        seen.append({"query": request.query_string, "forwarded": request.headers.get(FORWARDED_HEADER, "")})
        return web.json_response({"matches": [{"id": f"from-{request.url.port}"}]}, status=status)

    application = web.Application()
    application.router.add_get("/verify", verify)
    return application


@pytest.fixture
async def http_client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def started(application: web.Application) -> TestServer:
    server = TestServer(application, host="127.0.0.1")
    await server.start_server()
    return server


def view_of(http_client: aiohttp.ClientSession, me: str, holders: dict[str, list[int]]) -> View:
    """A view of the worker at ``me``, with the table's partitions held as ``holders`` says."""
    router = SimpleNamespace(
        table_metadata=lambda name: {url: {f"{name}-changelog": partitions} for url, partitions in holders.items()}
    )
    app = SimpleNamespace(router=router, conf=SimpleNamespace(canonical_url=me), http_client=http_client)
    return cast(View, SimpleNamespace(app=app))


TABLE = cast(CollectionT, SimpleNamespace(name="access_codes"))
Ask = Callable[[dict[str, list[int]], str], Any]


@pytest.fixture
def ask(http_client: aiohttp.ClientSession) -> Ask:
    async def asking(holders: dict[str, list[int]], me: str) -> Any:
        request = cast(Request, make_mocked_request("GET", QUERY, headers={"Accept": "text/html"}))
        return await other_workers_answers(view_of(http_client, me, holders), request, TABLE)

    return asking


async def test_every_other_holder_is_asked_as_forwarded_and_this_worker_is_not(ask: Ask) -> None:
    seen: list[dict[str, str]] = []
    first, second = await started(worker(200, seen)), await started(worker(200, seen))
    me = f"http://127.0.0.1:{free_port()}"  # nothing listens there: asking it would fail
    ports = [first.port, second.port]
    try:
        holders = {me: [0, 3], str(first.make_url("")): [1], str(second.make_url("")): [2],
                   "http://127.0.0.1:1": []}  # a member holding no partition of the table is not asked
        answers = await ask(holders, me)
    finally:
        await first.close()
        await second.close()
    assert sorted(orjson.loads(answer)["matches"][0]["id"] for answer in answers) == sorted(
        f"from-{port}" for port in ports)
    assert seen == [{"query": "code=P4L3Y9&who=Priya", "forwarded": "1"}] * 2


@pytest.mark.parametrize("other_status", [503, 500])
async def test_a_worker_that_cannot_answer_makes_the_answer_a_503(ask: Ask, other_status: int) -> None:
    seen: list[dict[str, str]] = []
    ready, not_ready = await started(worker(200, seen)), await started(worker(other_status, seen))
    try:
        holders = {"http://127.0.0.1:9": [0], str(ready.make_url("")): [1], str(not_ready.make_url("")): [2]}
        answer = await ask(holders, "http://127.0.0.1:9")
    finally:
        await ready.close()
        await not_ready.close()
    assert isinstance(answer, web.Response) and answer.status == 503
    assert answer.body is not None and orjson.loads(cast(bytes, answer.body))["error"]["code"] == "NOT_READY"


async def test_an_unreachable_worker_or_no_assignment_yet_is_a_503(ask: Ask) -> None:
    unreachable = await ask({"http://127.0.0.1:9": [0], f"http://127.0.0.1:{free_port()}": [1]}, "http://127.0.0.1:9")
    assert isinstance(unreachable, web.Response) and unreachable.status == 503
    unassigned = await ask({}, "http://127.0.0.1:9")
    assert isinstance(unassigned, web.Response) and unassigned.status == 503
