"""The wallet exchange: DIDAuth, binding to the holder, one-time and expiring claims, deep links."""

from __future__ import annotations

import json
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from certflow.credentials.cryptosuites import RDFC
from certflow.credentials.document import open_badge_credential
from certflow.credentials.exchange import (
    Exchange,
    ExchangeError,
    accept_presentation,
    chapi_request,
    create_exchange,
    exchange_url,
    start_exchange,
    wallet_deep_link,
)
from certflow.credentials.keys import SigningKey
from certflow.credentials.proof import AUTHENTICATION, resolve_did_key, sign, verify_proof
from tests.unit.test_credentials_document import certificate_facts

ISSUER = SigningKey.generate()
HOLDER = SigningKey.generate()
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
PUBLIC_URL = "https://certs.example.org"
DOMAIN = "certs.example.org"
CERTIFICATE = sign(open_badge_credential(certificate_facts(issuer_id=ISSUER.did)), ISSUER, created=NOW)


def did_auth(challenge: str, *, key: SigningKey = HOLDER, domain: str = DOMAIN, **changes: Any) -> dict[str, Any]:
    presentation = {"@context": ["https://www.w3.org/ns/credentials/v2"], "type": ["VerifiablePresentation"],
                    "holder": key.did, **changes}
    return sign(presentation, key, created=NOW, proof_purpose=AUTHENTICATION, challenge=challenge, domain=domain,
                cryptosuite=RDFC)


def claim(store: dict[str, Any], exchange: Exchange, presentation: Any, *, now: datetime = NOW) -> dict[str, Any]:
    return accept_presentation(
        store, exchange.exchange_id, {"verifiablePresentation": presentation}, now=now, domain=DOMAIN,
        credential_of={CERTIFICATE["id"]: CERTIFICATE}.get, key=ISSUER,
    )


def test_the_wallet_gets_a_did_auth_request_then_the_credential_bound_to_its_did() -> None:
    store: dict[str, Any] = {}
    exchange = create_exchange(store, CERTIFICATE["id"], now=NOW)
    request = start_exchange(store, exchange.exchange_id, now=NOW, public_url=PUBLIC_URL, domain=DOMAIN)
    vpr = request["verifiablePresentationRequest"]
    assert vpr["query"][0]["type"] == "DIDAuthentication"
    assert vpr["challenge"] == exchange.challenge and vpr["domain"] == DOMAIN
    assert vpr["interact"]["service"][0]["serviceEndpoint"] == exchange_url(PUBLIC_URL, exchange)

    answer = claim(store, exchange, did_auth(vpr["challenge"]))
    (credential,) = answer["verifiablePresentation"]["verifiableCredential"]
    assert credential["credentialSubject"]["id"] == HOLDER.did
    assert {k: v for k, v in credential["credentialSubject"].items() if k != "id"} == CERTIFICATE["credentialSubject"]
    assert credential["id"] == CERTIFICATE["id"]
    assert credential["credentialStatus"] == CERTIFICATE["credentialStatus"]
    check = verify_proof(credential, resolve_did_key)
    assert check.ok, check.reason
    assert check.cryptosuites == ("eddsa-jcs-2022", "eddsa-rdfc-2022")
    assert Exchange.from_json(store[exchange.exchange_id]).holder == HOLDER.did


def test_a_claim_is_one_time() -> None:
    store: dict[str, Any] = {}
    exchange = create_exchange(store, CERTIFICATE["id"], now=NOW)
    claim(store, exchange, did_auth(exchange.challenge))
    with pytest.raises(ExchangeError) as again:
        claim(store, exchange, did_auth(exchange.challenge))
    assert again.value.status == 410 and "already been used" in again.value.reason
    with pytest.raises(ExchangeError):
        start_exchange(store, exchange.exchange_id, now=NOW, public_url=PUBLIC_URL, domain=DOMAIN)


def test_a_claim_expires() -> None:
    store: dict[str, Any] = {}
    exchange = create_exchange(store, CERTIFICATE["id"], now=NOW, ttl=timedelta(minutes=15))
    with pytest.raises(ExchangeError) as late:
        claim(store, exchange, did_auth(exchange.challenge), now=NOW + timedelta(minutes=15))
    assert late.value.status == 410 and "expired" in late.value.reason


def test_an_unknown_exchange_is_404() -> None:
    with pytest.raises(ExchangeError) as unknown:
        start_exchange({}, "nope", now=NOW, public_url=PUBLIC_URL, domain=DOMAIN)
    assert unknown.value.status == 404


@pytest.mark.parametrize(
    ("presentation", "reason"),
    [
        (lambda challenge: did_auth("another challenge"), "challenge"),
        (lambda challenge: did_auth(challenge, domain="evil.example"), "domain"),
        (lambda challenge: sign({"@context": ["https://www.w3.org/ns/credentials/v2"],
                                 "type": ["VerifiablePresentation"]}, HOLDER, created=NOW, challenge=challenge,
                                domain=DOMAIN), "proof purpose"),
        (lambda challenge: {"@context": ["https://www.w3.org/ns/credentials/v2"],
                            "type": ["VerifiablePresentation"], "holder": HOLDER.did}, "must be signed"),
        (lambda challenge: did_auth(challenge, holder=ISSUER.did), "is not the presentation's signer"),
        (lambda challenge: "a string", "must be a JSON object"),
    ],
    ids=["replayed challenge", "wrong domain", "assertion not authentication", "unsigned", "someone else's holder",
         "not an object"],
)
def test_a_bad_did_auth_is_refused_and_leaves_the_claim_open(presentation: Any, reason: str) -> None:
    store: dict[str, Any] = {}
    exchange = create_exchange(store, CERTIFICATE["id"], now=NOW)
    with pytest.raises(ExchangeError) as refused:
        claim(store, exchange, presentation(exchange.challenge))
    assert refused.value.status == 400
    assert reason in refused.value.reason
    assert not Exchange.from_json(store[exchange.exchange_id]).used
    claim(store, exchange, did_auth(exchange.challenge))


def test_tampering_with_the_presentation_breaks_it() -> None:
    store: dict[str, Any] = {}
    exchange = create_exchange(store, CERTIFICATE["id"], now=NOW)
    presentation = did_auth(exchange.challenge)
    presentation["holder"] = ISSUER.did
    with pytest.raises(ExchangeError, match="DIDAuthentication failed"):
        claim(store, exchange, presentation)


def test_a_vanished_certificate_is_404() -> None:
    store: dict[str, Any] = {}
    exchange = create_exchange(store, "urn:uuid:gone", now=NOW)
    with pytest.raises(ExchangeError) as gone:
        claim(store, exchange, did_auth(exchange.challenge))
    assert gone.value.status == 404


def test_the_exchange_round_trips_as_json_for_a_table() -> None:
    store: dict[str, Any] = {}
    exchange = create_exchange(store, CERTIFICATE["id"], now=NOW)
    assert json.loads(json.dumps(store[exchange.exchange_id])) == exchange.to_json()
    assert Exchange.from_json(exchange.to_json()) == exchange
    assert len(exchange.exchange_id) >= 32 and exchange.challenge != exchange.exchange_id


def test_deep_links() -> None:
    url = exchange_url(PUBLIC_URL, "abc")
    assert url == "https://certs.example.org/exchanges/abc"
    lcw = wallet_deep_link(url)
    assert lcw.startswith("https://lcw.app/request.html?request=")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(lcw).query)
    assert json.loads(query["request"][0]) == {"protocols": {"vcapi": url}}
    custom = wallet_deep_link(url, style="dccrequest")
    assert custom.startswith("dccrequest://request?request=")
    legacy = wallet_deep_link(url, style="legacy", issuer=ISSUER.did, challenge="c1")
    params = urllib.parse.parse_qs(legacy.split("?", 1)[1])
    assert params == {"issuer": [ISSUER.did], "vc_request_url": [url], "auth_type": ["bearer"],
                      "challenge": ["c1"], "vp_version": ["1.1"]}
    with pytest.raises(ValueError):
        wallet_deep_link(url, style="legacy")
    assert chapi_request(url)["web"]["VerifiablePresentation"]["interact"]["service"][0]["serviceEndpoint"] == url
