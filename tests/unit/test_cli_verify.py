"""`certflow verify` against forgeries and hostile status lists (issue 10, holes 3, 4, 9, 10).

The command runs in-process (click's CliRunner); the status lists and certificate
URLs are served by a small aiohttp server on 127.0.0.1 in a thread of its own, so
that size and time limits meet a real socket.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from certflow.broker import free_port
from certflow.cli import cli
from certflow.credentials.document import open_badge_credential
from certflow.credentials.keys import KeyRing, SigningKey
from certflow.credentials.proof import sign
from certflow.credentials.status_list import StatusList, status_entry, status_list_credential
from tests.unit.test_credentials_document import certificate_facts

KEY = SigningKey.generate()  # the deployment's key
NOW = datetime.now(UTC).replace(microsecond=0)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Server:
    """Routes by path; the tests put handlers in ``routes``."""

    port: int
    routes: dict[str, Handler] = field(default_factory=dict)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    served = Server(free_port())

    async def dispatch(request: web.Request) -> web.StreamResponse:
        handler = served.routes.get(request.path)
        if handler is None:
            raise web.HTTPNotFound()
        return await handler(request)

    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner: list[web.AppRunner] = []

    async def start() -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", dispatch)
        running = web.AppRunner(app)
        await running.setup()
        await web.TCPSite(running, "127.0.0.1", served.port).start()
        runner.append(running)
        started.set()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    yield served
    asyncio.run_coroutine_threadsafe(runner[0].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: Server) -> dict[str, str]:
    """A deployment's settings: its key file, its public URL on the test server's host."""
    for name in list(os.environ):
        if name.startswith("CERTFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    keys = tmp_path / "signing-keys.json"
    KeyRing((KEY,)).save(keys)
    return {
        "CERTFLOW_SIGNING_KEYS_FILE": str(keys),
        "CERTFLOW_DATA_DIR": str(tmp_path / "data"),
        "CERTFLOW_PUBLIC_URL": server.url(""),
    }


def certificate(key: SigningKey = KEY, *, status_url: str | None = None, issuer: str | None = None) -> dict[str, Any]:
    facts = certificate_facts(
        issuer_id=issuer or key.did,
        valid_from=NOW - timedelta(days=1),
        valid_until=None,
        status=status_entry(status_url, 42) if status_url else None,
    )
    return sign(open_badge_credential(facts), key, created=NOW - timedelta(days=1))


def published_list(url: str, key: SigningKey = KEY, *, revoked: bool = False,
                   issuer: str | None = None) -> dict[str, Any]:
    bits = StatusList()
    bits.set(42, revoked)
    return status_list_credential(url, bits.encoded(), issuer=issuer or key.did, key=key,
                                  valid_from=NOW - timedelta(minutes=1))


def json_route(document: Any) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=orjson.dumps(document), content_type="application/json")

    return handler


def run(tmp_path: Path, credential: Any, env: dict[str, str], *args: str) -> Result:
    path = tmp_path / "credential.json"
    path.write_bytes(orjson.dumps(credential) if not isinstance(credential, bytes) else credential)
    return CliRunner().invoke(cli, ["verify", str(path), *args], env=env)


# --- hole 3: only trusted issuers verify -------------------------------------------------


def test_a_certificate_signed_by_a_fresh_key_is_an_untrusted_issuer(tmp_path: Path, deployment: dict) -> None:
    forger = SigningKey.generate()
    result = run(tmp_path, certificate(forger), deployment, "--no-status")
    assert result.exit_code == 1, result.output
    assert f"untrusted issuer {forger.did}" in result.output


def test_a_forgery_claiming_the_deployments_issuer_does_not_verify(tmp_path: Path, deployment: dict) -> None:
    forger = SigningKey.generate()
    result = run(tmp_path, certificate(forger, issuer=KEY.did), deployment, "--no-status")
    assert result.exit_code == 1, result.output
    assert "FAIL issuer" in result.output


def test_the_deployments_own_keys_and_configured_issuers_are_trusted(tmp_path: Path, deployment: dict) -> None:
    assert run(tmp_path, certificate(), deployment, "--no-status").exit_code == 0
    partner = SigningKey.generate()
    theirs = certificate(partner)
    assert run(tmp_path, theirs, deployment, "--no-status").exit_code == 1
    assert run(tmp_path, theirs, deployment, "--no-status", "--trust", partner.did).exit_code == 0
    configured = {**deployment, "CERTFLOW_TRUSTED_ISSUERS": f"did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK,{partner.did}"}
    assert run(tmp_path, theirs, configured, "--no-status").exit_code == 0
    bad = run(tmp_path, theirs, deployment, "--no-status", "--trust", "did:web:example.org")
    assert bad.exit_code == 2 and "not a did:key DID" in bad.output


def test_verify_never_creates_a_signing_key(tmp_path: Path, deployment: dict) -> None:
    env = {k: v for k, v in deployment.items() if k != "CERTFLOW_SIGNING_KEYS_FILE"}
    result = run(tmp_path, certificate(), env, "--no-status")
    assert result.exit_code == 1 and f"untrusted issuer {KEY.did}" in result.output
    assert "no signing keys at" in result.output
    assert not (tmp_path / "data" / "signing-keys.json").exists()


# --- hole 9: certificates only -----------------------------------------------------------


def test_a_status_list_credential_is_not_a_certificate(tmp_path: Path, deployment: dict, server: Server) -> None:
    result = run(tmp_path, published_list(server.url("/status/1")), deployment, "--no-status")
    assert result.exit_code == 1, result.output
    assert "FAIL format: a BitstringStatusListCredential, not a certificate (OpenBadgeCredential)" in result.output


# --- hole 4: the status list is fetched safely, and believed only from the issuer ---------


def test_a_genuine_status_list_is_fetched_and_believed(tmp_path: Path, deployment: dict, server: Server) -> None:
    url = server.url("/status/genuine")
    env = {**deployment, "CERTFLOW_FETCH_ALLOW_PRIVATE_NETWORKS": "true"}
    server.routes["/status/genuine"] = json_route(published_list(url))
    assert run(tmp_path, certificate(status_url=url), env).exit_code == 0
    server.routes["/status/genuine"] = json_route(published_list(url, revoked=True))
    result = run(tmp_path, certificate(status_url=url), env)
    assert result.exit_code == 1 and "FAIL status: revoked" in result.output


def test_a_status_list_on_a_private_address_is_refused(tmp_path: Path, deployment: dict, server: Server) -> None:
    url = server.url("/status/private")
    server.routes["/status/private"] = json_route(published_list(url))
    result = run(tmp_path, certificate(status_url=url), deployment)  # 127.0.0.1 is the allowed host …
    assert result.exit_code == 1, result.output
    assert "127.0.0.1 is not a public address" in result.output  # … but not a public address


def test_a_status_list_on_a_host_not_allowed_is_refused(tmp_path: Path, deployment: dict, server: Server) -> None:
    url = server.url("/status/elsewhere", host="localhost")
    server.routes["/status/elsewhere"] = json_route(published_list(url))
    env = {**deployment, "CERTFLOW_FETCH_ALLOW_PRIVATE_NETWORKS": "true"}
    result = run(tmp_path, certificate(status_url=url), env)
    assert result.exit_code == 1, result.output
    assert "host 'localhost'" in result.output and "not in the allowed status list hosts" in result.output


@pytest.mark.parametrize("where", ["file", "file-url", "dev-zero"])
def test_a_status_list_is_never_read_from_a_local_file(tmp_path: Path, deployment: dict, where: str) -> None:
    local = tmp_path / "list.json"
    url = {"file": str(local), "file-url": local.as_uri(), "dev-zero": "/dev/zero"}[where]
    local.write_bytes(orjson.dumps(published_list(url)))
    env = {**deployment, "CERTFLOW_FETCH_ALLOW_PRIVATE_NETWORKS": "true"}
    result = run(tmp_path, certificate(status_url=url), env)
    assert result.exit_code == 1, result.output
    assert "is not an http(s) URL" in result.output


def test_a_huge_status_list_is_cut_off_at_the_limit(tmp_path: Path, deployment: dict, server: Server) -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no length to refuse it by
        await response.prepare(request)
        chunk = b" " * 65536
        try:
            for _ in range(4096):  # 256 MB, if anyone reads that far
                await response.write(chunk)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response

    server.routes["/status/huge"] = endless
    env = {**deployment, "CERTFLOW_FETCH_ALLOW_PRIVATE_NETWORKS": "true", "CERTFLOW_FETCH_MAX_BYTES": "1048576"}
    result = run(tmp_path, certificate(status_url=server.url("/status/huge")), env)
    assert result.exit_code == 1, result.output
    assert "sent more than the limit of 1048576 bytes" in result.output


def test_a_slow_status_list_is_given_up_on(tmp_path: Path, deployment: dict, server: Server) -> None:
    url = server.url("/status/slow")

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(4)
        return await json_route(published_list(url))(request)

    server.routes["/status/slow"] = slow
    env = {**deployment, "CERTFLOW_FETCH_ALLOW_PRIVATE_NETWORKS": "true", "CERTFLOW_FETCH_TIMEOUT_SECONDS": "1"}
    result = run(tmp_path, certificate(status_url=url), env)
    assert result.exit_code == 1, result.output
    assert "took longer than 1.0s" in result.output


def test_a_status_list_signed_by_someone_else_in_the_issuers_name_is_not_believed(
    tmp_path: Path, deployment: dict, server: Server
) -> None:
    url = server.url("/status/forged")
    forger = SigningKey.generate()
    # The real list says revoked; a forger serves one saying "not revoked", in KEY's name.
    server.routes["/status/forged"] = json_route(published_list(url, forger, issuer=KEY.did))
    env = {**deployment, "CERTFLOW_FETCH_ALLOW_PRIVATE_NETWORKS": "true"}
    result = run(tmp_path, certificate(status_url=url), env)
    assert result.exit_code == 1, result.output
    assert "FAIL status: status unknown" in result.output and "is not the signer" in result.output


# --- the SOURCE argument: the operator's choice, still bounded ---------------------------


def test_a_certificate_url_is_fetched_within_the_limits(tmp_path: Path, deployment: dict, server: Server) -> None:
    server.routes["/certs/one"] = json_route({"id": "one", "credential": certificate()})
    result = CliRunner().invoke(cli, ["verify", server.url("/certs/one"), "--no-status"], env=deployment)
    assert result.exit_code == 0, result.output  # a loopback worker is the operator's own

    async def big(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b" " * (2 * 1048576))

    server.routes["/certs/big"] = big
    env = {**deployment, "CERTFLOW_FETCH_MAX_BYTES": "1048576"}
    result = CliRunner().invoke(cli, ["verify", server.url("/certs/big")], env=env)
    assert result.exit_code == 1 and "more than the limit of 1048576" in result.output


def test_a_source_file_is_read_within_the_limit(deployment: dict) -> None:
    env = {**deployment, "CERTFLOW_FETCH_MAX_BYTES": "1048576"}
    result = CliRunner().invoke(cli, ["verify", "/dev/zero"], env=env)
    assert result.exit_code == 1 and "larger than CERTFLOW_FETCH_MAX_BYTES (1048576 bytes)" in result.output


# --- hole 10: nesting ------------------------------------------------------------------------


def test_a_credential_nested_1000_deep_is_refused_with_a_reason(tmp_path: Path, deployment: dict) -> None:
    document = orjson.dumps(certificate())
    deep = document[:-1] + b',"deep":' + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"}"
    result = run(tmp_path, deep, deployment, "--no-status")
    assert result.exit_code == 1
    assert "cannot read" in result.output and "JSON nested deeper than 64 levels" in result.output
    assert not isinstance(result.exception, RecursionError)


def test_a_trusted_issuer_setting_that_is_not_a_did_key_is_an_error(tmp_path: Path, deployment: dict) -> None:
    env = {**deployment, "CERTFLOW_TRUSTED_ISSUERS": "did:web:example.org"}
    result = run(tmp_path, certificate(), env, "--no-status")
    assert result.exit_code == 1 and "is not a did:key DID" in result.output
