"""Hostile templates end to end: a worker fetching from a hostile server on 127.0.0.1.

The worker may fetch from ``127.0.0.1`` (``CERTFLOW_TEMPLATE_ALLOWED_HOSTS``) and,
so that it can reach the local server at all, from private networks; every other
guard is as in production, with a 1 s fetch time limit. Each hostile template fails
only its own recipient, with a ``TEMPLATE_*`` code on ``generate.certificate.failed``;
a template with scripts is issued sanitised; and a good certificate for the same
learner, on the same partition, comes out after all of them. A second worker, with
private networks *not* allowed (the production setting), refuses the loopback
template outright.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from lxml import etree

from certflow.broker import free_port
from certflow.local import LocalBroker, LocalWorker
from tests.browser import Browser
from tests.integration.conftest import FIXTURES, Deployment

pytestmark = pytest.mark.integration

MB = 1024 * 1024
SVG = "{http://www.w3.org/2000/svg}"
PLAIN = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 842 595">'
    '<text id="name">${recipientName}</text><image href="${qrCodeImage}"/></svg>'
)
SCRIPTED = """<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     viewBox="0 0 842 595" onload="alert(1)">
  <script>alert(2)</script>
  <script xlink:href="https://evil.example/x.js"/>
  <foreignObject width="100" height="100">
    <div xmlns="http://www.w3.org/1999/xhtml" onclick="alert(3)"><iframe src="javascript:alert(4)"/></div>
  </foreignObject>
  <a href="javascript:alert(5)"><text id="click">Click</text></a>
  <a id="name-link" href="${recipientName}"><text id="name" onmouseover="alert(6)">${recipientName}</text></a>
  <image id="qr" href="${qrCodeImage}"/>
  <use href="http://127.0.0.1:9/sprite.svg#x"/>
</svg>"""
#: Active content the deny-list sanitiser let through (security review, hole 1), and
#: CSS that fetches. ``{beacon}`` is the hostile server's URL prefix: any request
#: there means something in the document ran or loaded.
ACTIVE = """<svg xmlns="http://www.w3.org/2000/svg" xmlns:h="http://www.w3.org/1999/xhtml"
     viewBox="0 0 842 595">
  <style>@import url({beacon}/import.css);
    @font-face {{ font-family: evil; src: url({beacon}/font.woff) }}
    text {{ font-family: evil; fill: url({beacon}/fill.svg#p) }}</style>
  <h:iframe src="javascript:fetch('{beacon}/iframe-src');alert('iframe-src')"/>
  <h:iframe srcdoc="&lt;script&gt;fetch('{beacon}/srcdoc');alert('srcdoc')&lt;/script&gt;"/>
  <h:embed src="{beacon}/embed"/><h:object data="{beacon}/object"/>
  <h:img src="x" onerror="fetch('{beacon}/onerror')"/>
  <rect width="842" height="595" style="fill:url({beacon}/style.png)"/>
  <rect width="10" height="10" fill="url({beacon}/attribute.svg#p)" filter="url({beacon}/f.svg#f)"/>
  <image width="10" height="10" href="{beacon}/image.png"/>
  <filter id="f"><feImage href="{beacon}/feimage.png"/></filter>
  <a href="javascript:fetch('{beacon}/link');alert('link')"><text x="10" y="100" font-size="60">Click</text></a>
  <a href="data:text/html,&lt;script&gt;alert('data-link')&lt;/script&gt;"><text x="10" y="200">Data</text></a>
  <set attributeName="onmouseover" to="alert('set')"/>
  <text id="name" x="10" y="300">${{recipientName}}</text><image id="qr" href="${{qrCodeImage}}"/>
</svg>"""
XXE = (
    '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
    '<svg xmlns="http://www.w3.org/2000/svg"><text>&secret;</text></svg>'
)
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "lol">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + ']><svg xmlns="http://www.w3.org/2000/svg"><text>&j;</text></svg>'
)


class HostileServer:
    """An aiohttp server on 127.0.0.1, in its own thread, counting what it was asked."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        #: Streams that ended because the client hung up.
        self.hung_up: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # Handlers still streaming to a client that hung up end here, not with the loop.
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _start(self) -> None:
        app = web.Application()
        external_dtd = (
            f'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "{self.url("/evil.dtd")}">' + PLAIN
        )
        entity_from_dtd = (
            f'<!DOCTYPE svg SYSTEM "{self.url("/evil.dtd")}">'
            '<svg xmlns="http://www.w3.org/2000/svg"><text>&stolen;</text></svg>'
        )
        fixed = {
            "/plain.svg": (PLAIN, "image/svg+xml"),
            "/private-check.svg": (PLAIN, "image/svg+xml"),
            "/scripted.svg": (SCRIPTED, "image/svg+xml"),
            "/active.svg": (ACTIVE.format(beacon=self.url("/beacon")), "image/svg+xml"),
            "/xxe.svg": (XXE, "image/svg+xml"),
            "/laughs.svg": (LAUGHS, "image/svg+xml"),
            "/external-dtd.svg": (external_dtd, "image/svg+xml"),
            "/entity-from-dtd.svg": (entity_from_dtd, "image/svg+xml"),
            "/evil.dtd": ('<!ENTITY stolen SYSTEM "file:///etc/passwd">', "application/xml-dtd"),
            "/image.svg": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png"),
            # Under the 2 MiB fetch limit, but no certificate made from it fits a record.
            "/big-but-allowed.svg": (PLAIN.replace("</svg>", f"<desc>{'x' * 1_200_000}</desc></svg>"),
                                     "image/svg+xml"),
        }
        for path, (body, kind) in fixed.items():
            app.router.add_get(path, self._fixed(body, kind))
        app.router.add_get("/to-metadata.svg", self._redirect("http://169.254.169.254/latest/meta-data/"))
        app.router.add_get("/to-elsewhere.svg", self._redirect(self.url("/plain.svg", host="localhost")))
        app.router.add_get("/slow.svg", self._slow)
        app.router.add_route("*", "/beacon/{what:.*}", self._fixed("", "text/plain"))
        app.router.add_get("/endless.svg", self._stream(chunked=True))
        app.router.add_get("/fifty.svg", self._stream(chunked=False))
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def _fixed(self, body: str | bytes, kind: str) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            self.requests[request.path] += 1
            return web.Response(body=body.encode() if isinstance(body, str) else body, content_type=kind)
        return handler

    def _redirect(self, target: str) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            self.requests[request.path] += 1
            raise web.HTTPFound(target)
        return handler

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        self.requests[request.path] += 1
        await asyncio.sleep(5)
        return web.Response(text=PLAIN, content_type="image/svg+xml")

    def _stream(self, *, chunked: bool) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            """Endless when chunked; otherwise 50 MB, announced up front."""
            self.requests[request.path] += 1
            response = web.StreamResponse(headers={"Content-Type": "image/svg+xml"})
            if chunked:
                response.enable_chunked_encoding()
            else:
                response.content_length = 50 * MB
            await response.prepare(request)
            try:
                await response.write(b'<svg xmlns="http://www.w3.org/2000/svg">')
                while chunked or self.sent[request.path] < 50 * MB:
                    await response.write(b"<g/>" * (MB // 4))
                    self.sent[request.path] += MB
            except (ConnectionError, asyncio.CancelledError):
                self.hung_up[request.path] += 1
            return response
        return handler


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    server = HostileServer()
    server.start()
    yield server
    server.stop()


def deployment_with(broker: LocalBroker, workdir: Any, **settings: str) -> Deployment:
    return Deployment(broker, workdir, {
        "CERTFLOW_TEMPLATE_ALLOWED_HOSTS": "127.0.0.1",
        "CERTFLOW_FETCH_TIMEOUT_SECONDS": "1",
        "CERTFLOW_LOG_LEVEL": "warn",
        **settings,
    })


@pytest.fixture(scope="module")
def deployments(broker: LocalBroker, hostile: HostileServer, tmp_path_factory) -> Iterator[dict[str, Deployment]]:
    """Two deployments, one worker each, started side by side."""
    running = {
        "private allowed": deployment_with(broker, tmp_path_factory.mktemp("hostile"),
                                           CERTFLOW_FETCH_ALLOW_PRIVATE_NETWORKS="true"),
        "production": deployment_with(broker, tmp_path_factory.mktemp("hostile-prod"),
                                      CERTFLOW_FETCH_ALLOW_PRIVATE_NETWORKS="false"),
    }
    for deployment in running.values():
        worker = LocalWorker(deployment.settings, workdir=deployment.workdir, name="worker0")
        deployment.workers.append(worker)
        worker.start()
    for deployment in running.values():
        deployment.workers[0].wait_ready()
    yield running
    for deployment in running.values():
        deployment.stop()


def generate_event(batch: str, recipient: tuple[str, str], template: str) -> bytes:
    event = orjson.loads((FIXTURES / "sunbird" / "certgen_EVENT_3_generate_certificate_no_oldId.json").read_bytes())
    event["edata"]["svgTemplate"] = template
    event["edata"]["related"]["batchId"] = batch
    event["edata"]["data"] = [{"recipientId": recipient[0], "recipientName": recipient[1]}]
    return orjson.dumps(event)


def stats(deployment: Deployment) -> dict[str, Any]:
    return orjson.loads(deployment.workers[0].get("/stats")[1])


def test_each_hostile_template_fails_only_its_recipient_and_the_partition_moves_on(
    deployments: dict[str, Deployment], hostile: HostileServer
) -> None:
    deployment = deployments["private allowed"]
    run = uuid.uuid4().hex[:8]
    learner = f"{run}-learner"  # keyed by one learner: every case is made in one partition
    cases = {
        "xxe": ("/xxe.svg", "TEMPLATE_INVALID"),
        "billion-laughs": ("/laughs.svg", "TEMPLATE_INVALID"),
        "entity-from-external-dtd": ("/entity-from-dtd.svg", "TEMPLATE_INVALID"),
        "redirect-to-metadata": ("/to-metadata.svg", "TEMPLATE_NOT_ALLOWED"),
        "redirect-to-other-host": ("/to-elsewhere.svg", "TEMPLATE_NOT_ALLOWED"),
        "slow": ("/slow.svg", "TEMPLATE_FETCH_FAILED"),
        "endless": ("/endless.svg", "TEMPLATE_FETCH_FAILED"),
        "fifty-megabytes": ("/fifty.svg", "TEMPLATE_FETCH_FAILED"),
        "png-not-svg": ("/image.svg", "TEMPLATE_INVALID"),
        "1.2 MB, too large to publish": ("/big-but-allowed.svg", "TEMPLATE_INVALID"),
        "file-url": ("file:///etc/passwd", "TEMPLATE_NOT_ALLOWED"),
        "link-local": ("http://169.254.169.254/latest/meta-data/", "TEMPLATE_NOT_ALLOWED"),
        "private-range": ("http://10.0.0.1/template.svg", "TEMPLATE_NOT_ALLOWED"),
        "scripted (issued, sanitised)": ("/scripted.svg", None),
        "external-dtd (issued, never fetched)": ("/external-dtd.svg", None),
        "plain, after them all": ("/plain.svg", None),
    }
    events = [
        generate_event(f"{run}-{name}", (learner, "javascript:alert(7)"),
                       hostile.url(path) if path.startswith("/") else path)
        for name, (path, _) in cases.items()
    ]
    started = time.monotonic()
    deployment.send(deployment.topics.generate_request, events, key=learner.encode())

    issued = deployment.collect(deployment.topics.certificate_issued, 3, lambda r: r["batchId"].startswith(f"{run}-"))
    expected = {f"{run}-{name}": code for name, (_, code) in cases.items() if code}
    failed = deployment.collect(deployment.topics.generate_failed, len(expected),
                                lambda r: orjson.loads(r["payload"]).get("edata", {}).get("related", {})
                                .get("batchId", "").startswith(f"{run}-"))
    elapsed = time.monotonic() - started

    got = {orjson.loads(r["payload"])["edata"]["related"]["batchId"]: r["errorCode"] for r in failed}
    assert got == expected
    assert {r["stage"] for r in failed} == {"recipient"}
    assert sorted(r["batchId"] for r in issued) == sorted(
        f"{run}-{name}" for name, (_, code) in cases.items() if code is None
    )
    assert elapsed < 15  # one slow template costs its time limit, not the partition
    # Bounded: the worker hung up on the endless stream (what the server managed to
    # write is its 2 MiB read plus socket buffers); the 50 MB one was refused by its
    # announced length. The DTD was never asked for.
    deadline = time.monotonic() + 5
    while hostile.hung_up["/endless.svg"] < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert hostile.hung_up["/endless.svg"] == 1
    assert hostile.sent["/endless.svg"] < 32 * MB and hostile.sent["/fifty.svg"] < 32 * MB
    assert hostile.requests["/evil.dtd"] == 0
    assert deployment.workers[0].alive()
    counts = stats(deployment)["topics"][deployment.topics.generate_request]
    assert counts["total-events-count"] == (
        counts["success-events-count"] + counts["skipped-event-count"] + counts["failed-events-count"]
    )


def test_a_template_with_scripts_is_issued_sanitised(
    deployments: dict[str, Deployment], hostile: HostileServer
) -> None:
    deployment = deployments["private allowed"]
    batch = f"scripted-{uuid.uuid4().hex[:8]}"
    name = "javascript:alert(document.cookie)"  # a valid name; it must stay text
    deployment.send(deployment.topics.generate_request,
                    [generate_event(batch, (f"{batch}-l", name), hostile.url("/scripted.svg"))])

    [certificate] = deployment.collect(deployment.topics.certificate_issued, 1, lambda r: r["batchId"] == batch)

    root = etree.fromstring(certificate["svg"].encode())
    local_names = {etree.QName(element).localname.lower() for element in root.iter(etree.Element)}
    assert not local_names & {"script", "foreignobject", "iframe", "div"}
    for element in root.iter(etree.Element):
        for attribute, value in element.attrib.items():
            assert not etree.QName(attribute).localname.lower().startswith("on"), attribute
            if etree.QName(attribute).localname == "href":
                assert not value.strip().lower().startswith(("javascript:", "file:")), value
                assert "evil.example" not in value and "127.0.0.1:9" not in value
    (name_node,) = [e for e in root.iter(f"{SVG}text") if e.get("id") == "name"]
    assert name_node.text == name
    (link,) = [e for e in root.iter(f"{SVG}a") if e.get("id") == "name-link"]
    assert link.get("href") == ""  # the name was not made a link
    (qr,) = [e for e in root.iter(f"{SVG}image") if e.get("id") == "qr"]
    assert qr.get("href").startswith("data:image/png;base64,")
    assert "Click" in "".join(root.itertext())


def test_with_private_networks_not_allowed_a_loopback_template_is_refused_unfetched(
    deployments: dict[str, Deployment], hostile: HostileServer
) -> None:
    deployment = deployments["production"]
    batch = f"prod-{uuid.uuid4().hex[:8]}"
    events = [
        generate_event(f"{batch}-ip", (f"{batch}-a", "Asha"), hostile.url("/private-check.svg")),
        generate_event(f"{batch}-name", (f"{batch}-b", "Bilal"), hostile.url("/private-check.svg", host="localhost")),
        generate_event(f"{batch}-good", (f"{batch}-c", "Chitra"), "course-completion.svg"),
    ]
    deployment.send(deployment.topics.generate_request, events)

    failed = deployment.collect(deployment.topics.generate_failed, 2, lambda r: f'"{batch}-' in r["payload"])
    [good] = deployment.collect(deployment.topics.certificate_issued, 1, lambda r: r["batchId"] == f"{batch}-good")

    assert {r["errorCode"] for r in failed} == {"TEMPLATE_NOT_ALLOWED"}
    assert good["recipient"]["name"] == "Chitra"
    assert hostile.requests["/private-check.svg"] == 0


def test_served_documents_of_an_active_template_run_nothing_and_load_nothing_in_a_browser(
    deployments: dict[str, Deployment], hostile: HostileServer, browser: Browser
) -> None:
    """Hole 1 end to end: Debian's Chromium opens the certificate as served, and the
    same bytes again without the served Content-Security-Policy, so the sanitiser
    is judged on its own as well as behind the policy."""
    deployment = deployments["private allowed"]
    batch = f"active-{uuid.uuid4().hex[:8]}"
    deployment.send(deployment.topics.generate_request,
                    [generate_event(batch, (f"{batch}-l", "Asha"), hostile.url("/active.svg"))])
    [certificate] = deployment.collect(deployment.topics.certificate_issued, 1, lambda r: r["batchId"] == batch)
    worker = deployment.workers[0]
    documents = [f"{worker.web_url}/certs/{certificate['id']}.{fmt}" for fmt in ("svg", "png", "pdf")]

    reports = browser.open(documents, unprotected=True)

    assert len(reports) == 2 * len(documents)
    for report in reports:
        where = f"{report['mode']} {report['url']}"
        assert report["dialogs"] == [], where
        # Chromium's own PDF viewer (chrome-extension:) aside, nothing but the worker.
        outside = [url for url in report["requests"]
                   if url.startswith(("http:", "https:", "ws:", "file:")) and not url.startswith(worker.web_url)]
        assert outside == [], where
        if report["mode"] == "served":
            policy = report["headers"]["content-security-policy"]
            assert policy.startswith("sandbox") and "default-src 'none'" in policy, where
            assert report["headers"]["x-content-type-options"] == "nosniff", where
    beacons = {path: count for path, count in hostile.requests.items() if path.startswith("/beacon")}
    assert beacons == {}
    served_svg = worker.get(f"/certs/{certificate['id']}.svg")[1].decode()
    assert "Asha" in served_svg and "beacon" not in served_svg
