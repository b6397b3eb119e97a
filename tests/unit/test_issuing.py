"""Making one certificate from one recipient's request: identity, SVG, QR, credential."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import orjson
import pytest
import zxingcpp
from lxml import etree
from PIL import Image

from certflow.credentials.identity import CertifiedFacts
from certflow.credentials.keys import KeyRing, SigningKey
from certflow.credentials.proof import verify_proof
from certflow.errors import CertflowError, ErrorCode
from certflow.events.models import parse_event
from certflow.generate.factory import CertificateFactory, build_certificate_factory
from certflow.generate.models import GenerateCertificateRequest, validation_context
from certflow.render.fetch import FetchPolicy, SafeFetcher
from certflow.settings import Settings

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
KEYS = KeyRing((SigningKey.generate(),))
#: A Sunbird template that asks for every placeholder, ``${recipientId}`` included
#: (certflow's own templates print nothing internal).
TEMPLATE = Path(__file__).parent.parent / "fixtures" / "templates" / "File-01311849840255795242.svg"


@pytest.fixture
async def factory() -> AsyncIterator[CertificateFactory]:
    policy = FetchPolicy((), allow_private_networks=False, timeout_seconds=1, max_bytes=2**20, max_redirects=0)
    async with SafeFetcher(policy) as fetcher:
        settings = Settings(template_root=TEMPLATE.parent, base_path="https://certs.example.org/certs")
        yield build_certificate_factory(settings, fetcher, KEYS)


def request_for(sunbird_fixture, **edata: object) -> GenerateCertificateRequest:
    event = orjson.loads(sunbird_fixture("certgen_EVENT_3_generate_certificate_no_oldId.json"))
    event["edata"].update({"svgTemplate": TEMPLATE.name, **edata})
    request = parse_event(
        GenerateCertificateRequest,
        orjson.dumps(event),
        max_bytes=10**6,
        context=validation_context(suppress_signatory_errors=True),
    )
    return next(request.per_recipient())


def text_nodes(svg: str) -> list[str]:
    root = etree.fromstring(svg.encode())
    return ["".join(node.itertext()) for node in root.iter("{http://www.w3.org/2000/svg}text")]


async def test_a_certificate_is_identified_by_what_it_certifies(factory, sunbird_fixture) -> None:
    certificate = await factory.issue(request_for(sunbird_fixture), now=NOW)
    expected = CertifiedFacts(
        recipient_id="user001",
        course_id="do_11309999837886054415",
        batch_id="0131000245281587206",
        template_id="template_01_dev_001",
        certificate_name="100PercentCompletionCertificate",
    ).certificate_id(Settings().partitions)
    assert certificate.id == expected
    again = await factory.issue(request_for(sunbird_fixture), now=datetime(2030, 1, 1, tzinfo=UTC))
    assert again.id == certificate.id


async def test_a_reissue_is_a_new_certificate(factory, sunbird_fixture) -> None:
    first = await factory.issue(request_for(sunbird_fixture), now=NOW)
    reissued = await factory.issue(request_for(sunbird_fixture, oldId=first.id), now=NOW)
    assert reissued.id != first.id
    assert reissued.oldId == first.id


async def test_the_qr_code_verifies_the_certificate_at_its_base_path(factory, sunbird_fixture) -> None:
    certificate = await factory.issue(request_for(sunbird_fixture), now=NOW)
    assert certificate.verifyUrl == f"https://dev.sunbirded.org/certs/{certificate.id}"
    png = re.search(r"data:image/png;base64,([^\"']+)", certificate.svg).group(1)
    decoded = zxingcpp.read_barcodes(Image.open(BytesIO(base64.b64decode(png))))
    assert [barcode.text for barcode in decoded] == [certificate.verifyUrl]


async def test_the_default_base_path_is_used_when_the_event_has_none(factory, sunbird_fixture) -> None:
    certificate = await factory.issue(request_for(sunbird_fixture, basePath=""), now=NOW)
    assert certificate.verifyUrl == f"https://certs.example.org/certs/{certificate.id}"


async def test_sunbird_placeholders_are_filled_as_sunbird_fills_them(factory, sunbird_fixture) -> None:
    certificate = await factory.issue(request_for(sunbird_fixture), now=NOW)
    texts = text_nodes(certificate.svg)
    # certificateName shows the course name when there is one, as in Sunbird.
    assert "new course may23" in texts
    assert "Creation" in texts
    assert "Issued by Gujarat Council of Educational Research and Training on 24 November 2026" in texts
    assert "CEO" in texts  # signatory0Designation
    assert "${" not in certificate.svg


async def test_the_issued_date_of_the_event_wins_over_now(factory, sunbird_fixture) -> None:
    certificate = await factory.issue(request_for(sunbird_fixture, issuedDate="2019-01-20"), now=NOW)
    assert certificate.issuedDate == "2019-01-20"
    assert certificate.certificate["validFrom"] == "2019-01-20T00:00:00Z"
    assert any(text.endswith("on 20 January 2019") for text in text_nodes(certificate.svg))


async def test_the_record_carries_what_consumers_need(factory, sunbird_fixture) -> None:
    certificate = await factory.issue(request_for(sunbird_fixture), now=NOW)
    record = orjson.loads(certificate.to_json())
    assert record["recipient"] == {"id": "user001", "name": "Creation"}
    assert record["course"] == {"id": "do_11309999837886054415", "name": "new course may23"}
    assert record["batchId"] == "0131000245281587206"
    assert record["templateId"] == "template_01_dev_001"
    assert record["certificateName"] == "100PercentCompletionCertificate"
    assert record["issuedDate"] == "2026-11-24"
    assert record["oldId"] == ""
    assert re.fullmatch(r"[A-Z][1-9][A-Z][1-9][A-Z][1-9]", record["accessCode"])


async def test_the_credential_is_an_open_badge_credential(factory, sunbird_fixture) -> None:
    credential = (await factory.issue(request_for(sunbird_fixture), now=NOW)).certificate
    assert credential["@context"][0] == "https://www.w3.org/ns/credentials/v2"
    assert credential["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert credential["issuer"]["name"] == "Gujarat Council of Educational Research and Training"
    achievement = credential["credentialSubject"]["achievement"]
    assert achievement["name"] == "100PercentCompletionCertificate"
    assert achievement["criteria"]["narrative"] == "course completion certificate"
    identities = {i["identityType"]: i["identityHash"] for i in credential["credentialSubject"]["identifier"]}
    assert identities == {"systemId": "user001", "name": "Creation"}
    assert credential["signatories"][0]["designation"] == "CEO"


async def test_a_recipient_id_that_xml_cannot_carry_is_rejected(factory, sunbird_fixture) -> None:
    request = request_for(sunbird_fixture)
    bad = request.model_copy(
        update={"edata": request.edata.model_copy(update={"data": [request.recipient.model_copy(update={"recipientId": "u\x01"})]})}
    )
    with pytest.raises(CertflowError) as caught:
        await factory.issue(bad, now=NOW)
    assert caught.value.code is ErrorCode.INVALID_PARAM_VALUE


async def test_a_missing_template_is_a_fetch_failure(factory, sunbird_fixture) -> None:
    with pytest.raises(CertflowError) as caught:
        await factory.issue(request_for(sunbird_fixture, svgTemplate="no-such.svg"), now=NOW)
    assert caught.value.code is ErrorCode.TEMPLATE_FETCH_FAILED


def test_distinct_facts_never_share_an_id() -> None:
    a = CertifiedFacts("u1", "c|1", "b", "t", "n")
    b = CertifiedFacts("u1|c", "1", "b", "t", "n")
    assert a.certificate_id(8) != b.certificate_id(8)


async def test_the_credential_is_signed_by_the_current_key_and_verifies(factory, sunbird_fixture) -> None:
    credential = (await factory.issue(request_for(sunbird_fixture), now=NOW)).certificate
    assert credential["issuer"]["id"] == KEYS.current.did
    assert credential["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    assert verify_proof(credential, KEYS.find).ok


async def test_a_status_list_entry_makes_the_credential_revocable(factory, sunbird_fixture) -> None:
    credential = (
        await factory.issue(
            request_for(sunbird_fixture), now=NOW,
            status_list_url="https://certs.example.org/status/3-0", status_index=41,
        )
    ).certificate
    assert credential["credentialStatus"]["type"] == "BitstringStatusListEntry"
    assert credential["credentialStatus"]["statusListIndex"] == "41"
    assert credential["credentialStatus"]["statusListCredential"] == "https://certs.example.org/status/3-0"


async def test_sunbird_expiry_tokens_set_valid_until_and_the_expiry_date(factory, sunbird_fixture) -> None:
    certificate = await factory.issue(
        request_for(sunbird_fixture, issuedDate="2019-08-31", expiry="2m 1y"), now=NOW
    )
    assert certificate.certificate["validUntil"] == "2020-10-31T00:00:00Z"
    assert "${expiryDate}" not in certificate.svg


async def test_the_registry_keeps_facts_and_draws_the_same_certificate_again(
    factory, sunbird_fixture, tmp_path
) -> None:
    """The registry drops the SVG; drawn again from the facts it is byte-identical,
    and a template changed in place is refused rather than drawn as if issued with it."""
    from certflow.registry.agents import stored_record

    certificate = await factory.issue(request_for(sunbird_fixture), now=datetime(2025, 1, 2, tzinfo=UTC))
    published = orjson.loads(certificate.to_json())
    kept = stored_record(published)
    assert "svg" not in kept and kept["rendering"]["templateDigest"]
    assert len(orjson.dumps(kept)) < len(certificate.to_json()) - len(certificate.svg) // 2
    assert await factory.printable(kept) == certificate.svg

    changed_root = tmp_path / "templates"
    changed_root.mkdir()
    (changed_root / TEMPLATE.name).write_text(TEMPLATE.read_text().replace("</svg>", "<rect/></svg>"))
    policy = FetchPolicy((), allow_private_networks=False, timeout_seconds=1, max_bytes=2**20, max_redirects=0)
    async with SafeFetcher(policy) as fetcher:
        settings = Settings(template_root=changed_root, base_path="https://certs.example.org/certs")
        elsewhere = build_certificate_factory(settings, fetcher, KEYS)
        with pytest.raises(CertflowError) as refused:
            await elsewhere.printable(kept)
    assert refused.value.code is ErrorCode.TEMPLATE_CHANGED


async def test_a_credential_without_drawing_facts_is_not_printable(factory) -> None:
    with pytest.raises(CertflowError) as refused:
        await factory.printable({"id": "vc-1", "certificate": {}})
    assert refused.value.code is ErrorCode.NOT_PRINTABLE


def test_a_published_record_is_serialised_once_and_a_copy_anew_and_handed_on_as_published(factory) -> None:
    from certflow.events.records import IssuedCertificate

    fields = {
        "id": "c1", "accessCode": "A1B2C3", "verifyUrl": "https://x/c1", "recipient": {"id": "u", "name": "U"},
        "course": {"id": "c", "name": "C"}, "batchId": "b", "templateId": "t", "certificateName": "n",
        "issuedDate": "2025-01-02", "issuedOn": "2025-01-02T00:00:00+00:00", "oldId": "", "userId": "u",
        "tag": "", "related": {}, "svg": "<svg/>", "certificate": {},
    }
    record = IssuedCertificate.model_validate(fields)
    assert orjson.loads(record.to_json())["batchId"] == "b"
    copy = record.model_copy(update={"batchId": "b2"})
    assert orjson.loads(copy.to_json())["batchId"] == "b2"
    assert copy.to_document() == orjson.loads(copy.to_json())
    # The registry is handed the record as published, and its changes stay its own.
    document = record.to_document()
    assert document == orjson.loads(record.to_json())
    document.pop("svg")
    assert record.to_document()["svg"] == "<svg/>"
