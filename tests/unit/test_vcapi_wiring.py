"""The VC-API wiring's pure parts: registry keys, status list ids, offer URLs, exchange ids."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from certflow.app import create_app
from certflow.registry.status import STATUS_LIST_ID
from certflow.settings import Settings
from certflow.vcapi.exchanges import TOKEN_PATTERN, ExchangeBook, exchange_book, offer, wallet_offer_url
from certflow.vcapi.views import registry_id
from certflow.web.auth import Access, accepted_tokens


def test_a_urn_uuid_id_is_its_own_registry_key_and_any_other_id_a_uuid5_of_it() -> None:
    key = uuid.uuid4()
    assert registry_id(f"urn:uuid:{key}") == str(key)
    assert registry_id("https://example.org/credentials/42") == str(
        uuid.uuid5(uuid.NAMESPACE_URL, "https://example.org/credentials/42"))
    assert registry_id("urn:uuid:not-a-uuid") == str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:uuid:not-a-uuid"))


def test_api_status_lists_are_served() -> None:
    assert STATUS_LIST_ID.fullmatch("a3-0") and STATUS_LIST_ID.fullmatch("g1-2") and STATUS_LIST_ID.fullmatch("0-0")
    assert not STATUS_LIST_ID.fullmatch("b3-0") and not STATUS_LIST_ID.fullmatch("a3-0/x")


def test_the_issuer_token_opens_the_issue_route_only() -> None:
    settings = Settings(admin_token="admin", issuer_api_token="issuer")
    assert accepted_tokens(settings, Access.ISSUER) == ["issuer"]
    assert "issuer" not in accepted_tokens(settings, Access.ADMIN)
    assert accepted_tokens(Settings(admin_token="admin"), Access.ISSUER) == []


def test_the_issue_route_exists_only_with_its_token() -> None:
    def routes(settings: Settings) -> set[str]:
        return {route.resource.canonical for route in create_app(settings).web.web_app.router.routes()}

    assert "/credentials/issue" not in routes(Settings())
    assert "/credentials/issue" in routes(Settings(issuer_api_token="issuer"))
    assert {"/credentials/verify", "/presentations/verify", "/exchanges/{id}.{token}"} <= routes(Settings())


def test_an_offer_is_built_from_the_public_url_and_routed_by_its_certificate() -> None:
    app = create_app(Settings(public_url="https://certs.example.org/"))
    now = datetime(2026, 12, 1, tzinfo=UTC)
    answer = offer(app, "cert-1", now=now)
    certificate, _, token = answer["exchangeId"].partition(".")
    assert certificate == "cert-1" and re.fullmatch(TOKEN_PATTERN, token)
    assert answer["exchangeUrl"] == f"https://certs.example.org/exchanges/{answer['exchangeId']}"
    assert answer["deepLink"].startswith("https://lcw.app/request.html?request=")
    assert answer["expires"] == (now + timedelta(minutes=15)).isoformat()
    assert wallet_offer_url("https://certs.example.org/", "cert-1") == "https://certs.example.org/certs/cert-1/exchanges"


def test_expired_exchanges_are_dropped_when_a_new_one_is_made() -> None:
    app = create_app(Settings())
    old = offer(app, "cert-1", now=datetime(2026, 12, 1, tzinfo=UTC))
    offer(app, "cert-2", now=datetime(2026, 12, 2, tzinfo=UTC))
    book: ExchangeBook = exchange_book(app)
    assert old["exchangeId"] not in book and len(book) == 1
