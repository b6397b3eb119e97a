"""Every route but certificate verification and probes needs a token (security issue 10, hole 6).

The worker's aiohttp application is served in-process (nothing is started: a
protected route is refused before it touches a table or the consumer), and every
route registered on it is checked, so a route added without ``requires_token``
fails here unless it is listed public in :data:`certflow.web.auth.PUBLIC_ROUTES`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from certflow.app import create_app
from certflow.settings import Settings
from certflow.web.auth import PUBLIC_ROUTES, bearer_matches

#: aiohttp binds an application to the loop that first serves it: one loop for the module.
in_module_loop = pytest.mark.asyncio(loop_scope="module")

ADMIN = "admin-token-for-tests"
METRICS = "metrics-token-for-tests"

#: A worker's app with its own settings, built in-process (nothing starts).
settings = Settings(admin_token=ADMIN, metrics_token=METRICS)
app = create_app(settings)

ROUTES = sorted(
    {(route.method, route.resource.canonical) for route in app.web.web_app.router.routes() if route.method != "HEAD"}
)
PROTECTED = [route for route in ROUTES if route not in PUBLIC_ROUTES]
OPERATOR_ROUTES = [("GET", "/stats"), ("GET", "/metrics")]


def concrete(pattern: str) -> str:
    return (pattern.replace("{id}", "some-certificate").replace("{fmt}", "svg")
            .replace("{userId}", "learner-1").replace("{list}", "0-0").replace("{batchId}", "batch-1"))


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(app.web.web_app)) as running:
        yield running


@pytest.fixture
def client(server: TestClient, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setattr(settings, "admin_token", ADMIN)
    monkeypatch.setattr(settings, "metrics_token", METRICS)
    return server


def test_the_routes_that_must_be_protected_are_all_registered() -> None:
    assert {("GET", "/learners/{userId}/decisions"), ("POST", "/certs/{id}/revoke"),
            ("GET", "/batches/{batchId}/certificates.zip"), *OPERATOR_ROUTES} <= set(PROTECTED)
    assert set(ROUTES) >= PUBLIC_ROUTES


@in_module_loop
@pytest.mark.parametrize("route", PROTECTED, ids=" ".join)
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong", f"Basic {ADMIN}", ADMIN, f"Bearer {ADMIN}x", "Bearer \u00fc\u00df"],
    ids=["none", "empty", "scheme-only", "wrong", "basic", "no-scheme", "longer", "non-ascii"],
)
async def test_a_protected_route_without_a_valid_token_is_401_with_a_bearer_challenge(
    client: TestClient, route: tuple[str, str], authorization: str | None
) -> None:
    method, pattern = route
    headers = {} if authorization is None else {"Authorization": authorization}

    response = await client.request(method, concrete(pattern), headers=headers, data=b"{}")

    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.content_type == "application/json"
    assert orjson.loads(await response.read())["error"]["code"] == "UNAUTHORIZED"


@in_module_loop
@pytest.mark.parametrize("route", [route for route in PROTECTED if route[0] == "GET"], ids=lambda route: route[1])
async def test_a_head_request_is_guarded_as_its_get(client: TestClient, route: tuple[str, str]) -> None:
    response = await client.head(concrete(route[1]))

    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@in_module_loop
@pytest.mark.parametrize("route", PROTECTED, ids=" ".join)
async def test_the_admin_token_opens_every_protected_route(client: TestClient, route: tuple[str, str]) -> None:
    method, pattern = route

    response = await client.request(method, concrete(pattern), headers={"Authorization": f"bearer  {ADMIN} "})

    # Past the check (the worker is not running, so what comes next may fail).
    assert response.status != 401


@in_module_loop
@pytest.mark.parametrize("route", PROTECTED, ids=" ".join)
async def test_the_metrics_token_opens_only_the_operators_routes(client: TestClient, route: tuple[str, str]) -> None:
    method, pattern = route

    response = await client.request(method, concrete(pattern), headers={"Authorization": f"Bearer {METRICS}"})

    assert (response.status != 401) == (route in OPERATOR_ROUTES)


@in_module_loop
@pytest.mark.parametrize("route", sorted(PUBLIC_ROUTES), ids=" ".join)
async def test_certificate_verification_and_probes_stay_public(client: TestClient, route: tuple[str, str]) -> None:
    method, pattern = route

    response = await client.request(method, concrete(pattern), data=b"{}")

    assert response.status != 401


@in_module_loop
async def test_an_unset_token_opens_nothing(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "admin_token", "")
    monkeypatch.setattr(settings, "metrics_token", "")

    for header in ("Bearer", "Bearer ", "Bearer  "):
        response = await client.get("/stats", headers={"Authorization": header})
        assert response.status == 401


@pytest.mark.parametrize(
    ("header", "tokens", "expected"),
    [
        ("Bearer s3cret", ["s3cret"], True),
        ("bearer   s3cret  ", ["s3cret"], True),
        ("Bearer s3cret", ["other", "s3cret"], True),
        ("Bearer s3cret", [], False),
        ("Bearer ", [""], False),
        ("Bearer s3cre", ["s3cret"], False),
        ("Token s3cret", ["s3cret"], False),
        ("s3cret", ["s3cret"], False),
        (None, ["s3cret"], False),
        ("Bearer \udcff\u00e9", ["s3cret"], False),
    ],
)
def test_bearer_tokens_are_matched_exactly(header: str | None, tokens: list[str], expected: bool) -> None:
    assert bearer_matches(header, tokens) is expected
