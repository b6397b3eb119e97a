"""The verification, access-code and 404 pages in Debian's headless Chromium.

Real certificates (filled by the worker's factory from the demo template, PNGs
rendered by the worker's renderer) served with the worker's page headers
(Content-Security-Policy: no scripts) by a small local server: what an employer
sees on a desktop and a 375 px phone, with an axe-core scan (WCAG 2.1 A/AA). The
screenshots in docs/ are made here when CERTFLOW_SCREENSHOTS=1.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from certflow.credentials.keys import KeyRing, SigningKey
from certflow.events.models import parse_event
from certflow.generate.factory import build_certificate_factory
from certflow.generate.models import GenerateCertificateRequest, validation_context
from certflow.notify.compose import compose
from certflow.notify.models import notification_for
from certflow.pages import access_code_page, match_access_code, not_found_page, verification_page
from certflow.render.fetch import FetchPolicy, SafeFetcher
from certflow.render.output import render_certificate
from certflow.settings import Settings
from certflow.web.headers import content_security_policy

DOCS = Path(__file__).resolve().parents[2] / "docs"
CHECKS = ("format", "signature", "issuer", "validFrom", "expiry", "status")
LEARNERS = {
    "latin": ("Asha Verma", "u-latin"),
    "devanagari": ("प्रिया शर्मा", "u-deva"),
    "tamil": ("முருகன் செல்வம்", "u-tamil"),
    "urdu": ("محمد علی", "u-urdu"),
    "revoked": ("Ravi Kumar", "u-revoked"),
    "expired": ("Meera Nair", "u-expired"),
}


async def _issue(name: str, learner: str, *, expiry: str) -> dict[str, Any]:
    settings = Settings()
    event = {"eid": "BE_JOB_REQUEST", "ets": 0, "mid": f"browser-{learner}", "edata": {
        "svgTemplate": "course-completion.svg", "templateId": "t1", "name": "Course Completion Certificate",
        "courseName": "Data Science Foundations", "data": [{"recipientName": name, "recipientId": learner}],
        "issuer": {"name": "Sunbird Academy", "url": "https://academy.example.org/"},
        "criteria": {"narrative": "Completed"}, "basePath": "http://127.0.0.1/certs", "expiry": expiry,
        "related": {"type": "course", "batchId": "b1", "courseId": "do_1"},
    }}
    request = parse_event(GenerateCertificateRequest, orjson.dumps(event), max_bytes=settings.max_event_bytes,
                          context=validation_context(suppress_signatory_errors=True))
    async with SafeFetcher(FetchPolicy.from_settings(settings)) as fetcher:
        factory = build_certificate_factory(settings, fetcher, KeyRing((SigningKey.generate(),)))
        issued_at = datetime.now(UTC) - (timedelta(days=800) if learner == "u-expired" else timedelta(0))
        return (await factory.issue(next(request.per_recipient()), now=issued_at)).model_dump(mode="json")


class Site:
    """Certificates by id, their verification results, revocations and PNGs."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.revocations: dict[str, dict[str, Any]] = {}
        self.pngs: dict[str, bytes] = {}
        self.keys: dict[str, str] = {}

    def page(self, path: str, query: dict[str, list[str]]) -> tuple[int, str, bytes]:
        if path == "/verify":
            code, who = (query.get("code") or [""])[0], (query.get("who") or [""])[0]
            matches = match_access_code(self.records.values(), code, who) if code or who else None
            return 200, "text/html", access_code_page(code=code, name_or_short_id=who, matches=matches).encode()
        if path.startswith("/certs/"):
            name = path.removeprefix("/certs/")
            if name.endswith(".png") and name[:-4] in self.pngs:
                return 200, "image/png", self.pngs[name[:-4]]
            if name in self.records:
                page = verification_page(self.records[name], self.results[name],
                                         revocation=self.revocations.get(name))
                return 200, "text/html", page.encode()
            return 404, "text/html", not_found_page(name).encode()
        return 404, "text/html", not_found_page().encode()


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[str, Site]]:
    site = Site()
    for key, (name, learner) in LEARNERS.items():
        record = asyncio.run(_issue(name, learner, expiry="1y"))
        certificate_id = record["id"]
        site.records[certificate_id] = record
        site.keys[key] = certificate_id
        failed = {"expiry"} if key == "expired" else {"status"} if key == "revoked" else set()
        site.results[certificate_id] = {"verified": not failed, "checks": [
            {"check": c, "ok": c not in failed, "reason": "revoked" if c == "status" and failed else
             ("expired" if c in failed else "")} for c in CHECKS]}
        if key == "revoked":
            site.revocations[certificate_id] = {"reason": "Issued in error: wrong course batch",
                                                "revokedAt": "2026-11-02T09:30:00+00:00", "replacedBy": ""}
        site.pngs[certificate_id] = render_certificate(record["svg"], "png", title=record["certificateName"],
                                                       revoked=key == "revoked")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            status, kind, body = site.page(url.path, parse_qs(url.query))
            self.send_response(status)
            self.send_header("Content-Type", f"{kind}; charset=utf-8" if kind == "text/html" else kind)
            self.send_header("Content-Security-Policy", content_security_policy(kind))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", site
    server.shutdown()
    server.server_close()


def shot(name: str) -> str | None:
    return str(DOCS / name) if os.environ.get("CERTFLOW_SCREENSHOTS") == "1" else None


def serious(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in report["axe"] if v["impact"] in ("serious", "critical")]


def test_the_verification_page_in_chromium(browser, site) -> None:
    base, certs = site
    ids = certs.keys
    pages = [
        {"url": f"{base}/certs/{ids['latin']}", "axe": True, "screenshot": shot("verification-valid.png")},
        {"url": f"{base}/certs/{ids['revoked']}", "axe": True, "screenshot": shot("verification-revoked.png")},
        {"url": f"{base}/certs/{ids['expired']}", "axe": True},
        {"url": f"{base}/certs/{ids['devanagari']}"},
        {"url": f"{base}/certs/{ids['tamil']}"},
        {"url": f"{base}/certs/{ids['urdu']}", "axe": True, "screenshot": shot("verification-urdu.png")},
        {"url": f"{base}/certs/no-such-certificate", "axe": True},
        {"url": f"{base}/certs/{ids['urdu']}", "width": 375, "height": 800, "axe": True},
        {"url": f"{base}/certs/{ids['revoked']}", "width": 375, "height": 800},
    ]
    valid, revoked, expired, hindi, tamil, urdu, missing, phone, phone_revoked = browser.pages(pages)

    for report in (valid, revoked, expired, hindi, tamil, urdu, missing, phone):
        assert not report["errors"], report["errors"]
        assert report["lang"] == "en" and len(report["h1"]) == 1
    for report in (valid, revoked, expired, urdu, missing, phone):
        assert not serious(report), serious(report)

    assert valid["status"] == 200 and "Valid certificate" in valid["text"]
    assert "Asha Verma" in valid["text"] and "Sunbird Academy" in valid["text"]
    for label in ("The digital signature is intact", "The issuer is trusted",
                  "The certificate has not expired", "The certificate has not been revoked", "Valid until"):
        assert label in valid["text"], label
    [linkedin] = [a["href"] for a in valid["links"] if a["text"] == "Add to LinkedIn profile"]
    query = parse_qs(urlsplit(linkedin).query)
    record = certs.records[certs.keys["latin"]]
    assert linkedin.startswith("https://www.linkedin.com/profile/add?")
    assert query["startTask"] == ["CERTIFICATION_NAME"] and query["name"] == [record["certificateName"]]
    assert query["organizationName"] == ["Sunbird Academy"] and query["certId"] == [record["id"]]
    assert query["certUrl"] == [record["verifyUrl"]]
    assert query["issueYear"] == [record["issuedDate"][:4]]
    assert query["issueMonth"] == [str(int(record["issuedDate"][5:7]))]

    assert "Revoked on 2026-11-02" in revoked["text"] and "Issued in error" in revoked["text"]
    assert not any("linkedin" in a["href"] for a in revoked["links"])
    assert "marked REVOKED" in revoked["text"]
    assert "Expired on" in expired["text"]

    def mark(report: dict[str, Any], name: str) -> dict[str, Any]:
        return next(m for m in report["marked"] if m["text"] == name)

    assert mark(hindi, "प्रिया शर्मा")["lang"] == "hi"
    assert mark(tamil, "முருகன் செல்வம்")["lang"] == "ta"
    assert mark(urdu, "محمد علی") == {"text": "محمد علی", "lang": "ur", "dir": "rtl"}

    assert missing["status"] == 404 and "Certificate not found" in missing["text"]
    for report in (phone, phone_revoked):  # 375 px: nothing scrolls sideways
        assert report["scrollWidth"] <= report["clientWidth"] == 375, report["scrollWidth"]


def test_the_access_code_check_in_chromium(browser, site) -> None:
    base, certs = site
    record = certs.records[certs.keys["devanagari"]]
    form = f"{base}/verify"
    found, by_short_id, not_found, empty = browser.pages([
        {"url": form, "fill": {"#code": record["accessCode"].lower(), "#who": "प्रिया शर्मा"}, "axe": True},
        {"url": form, "fill": {"#code": record["accessCode"], "#who": record["id"][:8]}},
        {"url": form, "fill": {"#code": record["accessCode"], "#who": "Someone Else"}, "axe": True},
        {"url": form, "axe": True, "width": 375},
    ])
    for report in (found, by_short_id, not_found, empty):
        assert not report["errors"], report["errors"]
    for report in (found, not_found, empty):
        assert not serious(report), serious(report)
    assert "Found: this access code belongs to" in found["text"]
    assert any(a["href"].endswith(f"/certs/{record['id']}") for a in found["links"])
    assert "Found" in by_short_id["text"]
    assert "No certificate matches" in not_found["text"]
    assert empty["h1"] == ["Check a paper certificate"] and empty["scrollWidth"] <= 375


@pytest.mark.skipif(os.environ.get("CERTFLOW_SCREENSHOTS") != "1", reason="makes docs/ screenshots only")
def test_screenshot_of_the_email(browser, site, tmp_path: Path) -> None:
    base, certs = site
    record = certs.records[certs.keys["devanagari"]]
    request = notification_for(record, "issued", email="priya@example.org", language="hi",
                               learner_page_url=f"{base}/learners/u-deva?token=…")
    message = compose(request, sender="Certificates <certs@example.org>")
    page = tmp_path / "email.html"
    page.write_text(message.get_body(("html",)).get_content(), encoding="utf-8")
    [report] = browser.pages([{"url": page.as_uri(), "width": 720, "height": 700,
                               "screenshot": shot("email-hindi.png")}])
    assert "प्रिया शर्मा" in report["text"]


