"""Shipped JSON-LD contexts: loaded offline, never fetched, and defining every term certflow emits."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from certflow.credentials.contexts import (
    OB_V3_CONTEXT,
    UNDEFINED_TERMS_CONTEXT,
    VC_V2_CONTEXT,
    ContextNotShipped,
    document_loader,
    load_context,
)
from certflow.credentials.document import open_badge_credential
from certflow.credentials.keys import SigningKey
from certflow.credentials.proof import sign
from certflow.credentials.status_list import StatusList, status_list_credential
from tests.unit.test_credentials_document import STATUS_LIST, certificate_facts

KEY = SigningKey.generate()
SIGNED_AT = datetime(2026, 11, 24, 9, 31, tzinfo=UTC)
#: The only terms certflow uses that no standard vocabulary defines (Sunbird's signatories).
UNDEFINED_ON_PURPOSE = {"signatories", "identity", "designation"}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a context load tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def documents() -> Iterator[dict[str, Any]]:
    """Everything certflow signs: a full OpenBadgeCredential and a status list credential."""
    yield sign(open_badge_credential(certificate_facts(issuer_id=KEY.did)), KEY, created=SIGNED_AT)
    yield status_list_credential(STATUS_LIST, StatusList().encoded(), KEY.did, KEY, SIGNED_AT)


@pytest.mark.usefixtures("no_network")
def test_the_contexts_load_without_a_network() -> None:
    vc = load_context(VC_V2_CONTEXT)
    ob = load_context(OB_V3_CONTEXT)
    assert vc["@context"]["VerifiableCredential"]["@id"] == "https://www.w3.org/2018/credentials#VerifiableCredential"
    ob_vocabulary = "https://purl.imsglobal.org/spec/vc/ob/vocab.html#"
    assert ob["@context"]["OpenBadgeCredential"]["@id"] == f"{ob_vocabulary}OpenBadgeCredential"
    assert load_context(UNDEFINED_TERMS_CONTEXT) == {
        "@context": {"@vocab": "https://www.w3.org/ns/credentials/undefined-term#"}
    }


@pytest.mark.usefixtures("no_network")
def test_an_unshipped_context_is_an_error_not_a_fetch() -> None:
    with pytest.raises(ContextNotShipped, match="never fetched"):
        load_context("https://www.w3.org/ns/credentials/examples/v2")
    with pytest.raises(KeyError):
        document_loader["https://evil.example/context.json"]
    assert "https://evil.example/context.json" not in document_loader


def test_the_document_loader_is_a_mapping_and_a_pyld_loader() -> None:
    assert set(document_loader) == {VC_V2_CONTEXT, OB_V3_CONTEXT, UNDEFINED_TERMS_CONTEXT}
    remote = document_loader(OB_V3_CONTEXT, {})
    assert remote["documentUrl"] == OB_V3_CONTEXT
    assert remote["document"] == document_loader[OB_V3_CONTEXT]


def test_callers_cannot_change_the_shipped_contexts() -> None:
    load_context(VC_V2_CONTEXT)["@context"]["VerifiableCredential"] = "changed"
    assert load_context(VC_V2_CONTEXT)["@context"]["VerifiableCredential"] != "changed"


# --- every term certflow emits is defined -------------------------------------------


def defined_terms(context: Any) -> Iterator[str]:
    """Every term any (scoped) context defines."""
    if isinstance(context, dict):
        for term, definition in context.items():
            if term == "@context":
                yield from defined_terms(definition)
            elif not term.startswith("@"):
                yield term
                if isinstance(definition, dict) and "@context" in definition:
                    yield from defined_terms(definition["@context"])
    elif isinstance(context, list):
        for member in context:
            yield from defined_terms(member)


def used_terms(value: Any) -> Iterator[str]:
    """Every property name and type name in a document."""
    if isinstance(value, dict):
        for name, member in value.items():
            if name == "@context":
                continue
            if not name.startswith("@"):
                yield name
            if name == "type":
                yield from [member] if isinstance(member, str) else member
            else:
                yield from used_terms(member)
    elif isinstance(value, list):
        for member in value:
            yield from used_terms(member)


@pytest.mark.parametrize("document", list(documents()), ids=["OpenBadgeCredential", "BitstringStatusListCredential"])
def test_every_term_certflow_emits_is_named_in_the_shipped_contexts(document: dict[str, Any]) -> None:
    known = set(defined_terms([load_context(url)["@context"] for url in (VC_V2_CONTEXT, OB_V3_CONTEXT)]))
    used = set(used_terms(document))
    assert {"OpenBadgeCredential", "AchievementSubject", "Achievement", "IdentityObject", "identityHash",
            "BitstringStatusListEntry", "DataIntegrityProof"} <= known
    assert used - known <= UNDEFINED_ON_PURPOSE


@pytest.mark.parametrize("document", list(documents()), ids=["OpenBadgeCredential", "BitstringStatusListCredential"])
def test_json_ld_expansion_drops_nothing_and_only_signatories_are_undefined_terms(document: dict[str, Any]) -> None:
    """Expand with a sentinel ``@vocab`` in place of the undefined-terms context.

    A term the contexts do not define would be dropped by a JSON-LD processor (and
    rejected by one in safe mode); under the sentinel it shows up instead, so the
    test can list exactly which terms are undefined.
    """
    jsonld = pytest.importorskip("pyld.jsonld", reason="pyld is needed for the JSON-LD expansion check")
    sentinel = "urn:certflow:undefined#"
    probe = dict(document)
    probe["@context"] = [url for url in document["@context"] if url != UNDEFINED_TERMS_CONTEXT] + [
        {"@vocab": sentinel}
    ]
    expanded = jsonld.expand(probe, {"documentLoader": document_loader})
    undefined = {
        iri.split("#", 1)[1]
        for iri in expanded_iris(expanded)
        if iri.startswith((sentinel, "https://www.w3.org/ns/credentials/undefined-term#"))
    }
    expected = UNDEFINED_ON_PURPOSE if "signatories" in document else set()
    assert undefined == expected
    assert all(":" in iri for iri in expanded_iris(expanded)), "a relative IRI"


def expanded_iris(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for name, member in value.items():
            if not name.startswith("@"):
                yield name
            if name in ("@type", "@id"):
                yield from [member] if isinstance(member, str) else member
            else:
                yield from expanded_iris(member)
    elif isinstance(value, list):
        for member in value:
            yield from expanded_iris(member)
