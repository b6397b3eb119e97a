"""Every field a certificate or its page shows follows the display rules of names
(security issue 10, hole 11).

A bidi override (U+202E) in ``recipientId`` reached the SVG (``${recipientId}``) and
the credential (``identityHash``): the classic way to make a credential read
differently from what was issued. Names were already checked (``DisplayText``);
ids, links and every other shown field now are too, by type
(``DisplayText``/``DisplayId``/``DisplayLink`` in ``certflow.events.models``), so a new
field cannot forget it (``test_every_string_field_of_a_generate_event_is_checked``).
Ids are refused, never altered: they are keys.
"""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from pydantic import BaseModel

from certflow.credentials.keys import KeyRing, SigningKey
from certflow.errors import CertflowError, ErrorCode
from certflow.events.models import check_display_id, clean_text, parse_event, refuse_hidden_characters
from certflow.generate.factory import CertificateFactory, build_certificate_factory
from certflow.generate.models import GenerateCertificateEdata, GenerateCertificateRequest, validation_context
from certflow.reference.models import LearnerProfile
from certflow.render.fetch import FetchPolicy, SafeFetcher
from certflow.settings import Settings

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
#: A Sunbird template that asks for every placeholder, ``${recipientId}`` included
#: (certflow's own templates print nothing internal).
TEMPLATE = Path(__file__).parent.parent / "fixtures" / "templates" / "File-01311849840255795242.svg"
RLO = "\u202e"

#: Each field shown on a certificate (SVG or credential) or its verification page,
#: as (path in edata, a valid value to spoil).
DISPLAYED = {
    "data[0].recipientId": "user001",
    "data[0].recipientName": "Asha Rao",
    "courseName": "Data Science",
    "name": "Certificate of Merit",
    "description": "For completing the course",
    "issuer.name": "Gujarat Council",
    "issuer.url": "https://gcert.gujarat.gov.in/",
    "signatoryList[0].name": "CEO Gujarat",
    "signatoryList[0].designation": "CEO",
    "signatoryList[0].id": "CEO",
    "signatoryList[0].image": "https://cdn.example.org/signature.png",
    "criteria.narrative": "course completion certificate",
    "related.batchId": "0131000245281587206",
    "related.courseId": "do_11309999837886054415",
    "templateId": "template_01_dev_001",
    "basePath": "https://certs.example.org/certs",
    "oldId": "0f0e0d0c-0000-4000-8000-000000000000",
    "tag": "0125450863553740809",
    "userId": "user001",
    "logo": "https://cdn.example.org/logo.png",
}

#: String fields of a generate event that are never shown: fetched, format-checked
#: or only routed. Anything else must carry a display rule.
NOT_SHOWN = {
    "svgTemplate",  # fetched (allow-listed), never displayed
    "issuedDate",  # yyyy-MM-dd or yyyy-MM-ddTHH:mm:ssZ, checked by the Sunbird rules
    "expiry",  # a timestamp or Sunbird's tokens, checked by the Sunbird rules
    "orgId",
    "data.recipientEmail",
    "data.recipientPhone",
    "related.type",
    "keys.id",
    "issuer.publicKey",
}


@pytest.fixture
async def factory() -> AsyncIterator[CertificateFactory]:
    policy = FetchPolicy((), allow_private_networks=False, timeout_seconds=1, max_bytes=2**20, max_redirects=0)
    async with SafeFetcher(policy) as fetcher:
        settings = Settings(template_root=TEMPLATE.parent, base_path="https://certs.example.org/certs")
        yield build_certificate_factory(settings, fetcher, KeyRing((SigningKey.generate(),)))


def _set(edata: dict, path: str, value: str) -> None:
    *parents, last = path.replace("[", ".").replace("]", "").split(".")
    node: typing.Any = edata
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[last] = value


def event(sunbird_fixture, path: str | None = None, value: str = "") -> bytes:
    document = orjson.loads(sunbird_fixture("certgen_EVENT_3_generate_certificate_no_oldId.json"))
    edata = document["edata"]
    edata["svgTemplate"] = TEMPLATE.name
    for field, valid in DISPLAYED.items():
        _set(edata, field, valid)
    if path is not None:
        _set(edata, path, value)
    return orjson.dumps(document)


async def issue(factory: CertificateFactory, raw: bytes):  # type: ignore[no-untyped-def]
    request = parse_event(
        GenerateCertificateRequest, raw, max_bytes=10**6,
        context=validation_context(suppress_signatory_errors=True),
    )
    return await factory.issue(next(request.per_recipient()), now=NOW)


async def test_the_unspoiled_event_shows_every_field(factory, sunbird_fixture) -> None:
    """The baseline the spoiled cases change one field of: it is issued."""
    certificate = await issue(factory, event(sunbird_fixture))

    assert "user001" in certificate.svg
    assert RLO not in certificate.svg


@pytest.mark.parametrize("path", list(DISPLAYED))
async def test_a_bidi_override_in_any_displayed_field_reaches_neither_svg_nor_credential(
    factory, sunbird_fixture, path: str
) -> None:
    spoiled = DISPLAYED[path][:3] + RLO + DISPLAYED[path][3:]

    with pytest.raises(CertflowError) as caught:
        certificate = await issue(factory, event(sunbird_fixture, path, spoiled))
        # Only reached if it was not refused: it must not show the override anywhere.
        assert RLO not in certificate.svg
        assert RLO not in orjson.dumps(certificate.certificate).decode()

    assert caught.value.code is ErrorCode.INVALID_PARAM_VALUE
    assert "U+202E" in caught.value.message
    location = path.replace("[", ".").replace("]", "")
    assert location in caught.value.message


@pytest.mark.parametrize("char", ["\u2066", "\u200b", "\n", "\x1b", "\u2028"])
async def test_other_hidden_characters_in_a_recipient_id_are_refused_too(
    factory, sunbird_fixture, char: str
) -> None:
    with pytest.raises(CertflowError) as caught:
        await issue(factory, event(sunbird_fixture, "data[0].recipientId", f"user{char}001"))

    assert caught.value.code is ErrorCode.INVALID_PARAM_VALUE


async def test_ids_are_never_altered_names_are_normalised(factory, sunbird_fixture) -> None:
    """An id is a key: a decomposed é stays decomposed (the same learner, the same
    certificate id), where a name is NFC-normalised."""
    decomposed = "rene\u0301"
    document = orjson.loads(event(sunbird_fixture))
    document["edata"]["data"][0] = {"recipientId": decomposed, "recipientName": f"{decomposed} Roy"}
    request = parse_event(
        GenerateCertificateRequest, orjson.dumps(document), max_bytes=10**6,
        context=validation_context(suppress_signatory_errors=True),
    )

    assert request.edata.data[0].recipientId == decomposed
    assert request.edata.data[0].recipientName == "ren\u00e9 Roy"


def test_a_learner_whose_id_hides_characters_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match="U\\+202E"):
        LearnerProfile.model_validate({"userId": f"user{RLO}001", "firstName": "Asha"})


_RULES = (clean_text, check_display_id, refuse_hidden_characters)


def _string_fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, bool]]:
    """(path, has a display rule) for every str field of ``model``, recursively."""
    for name, info in model.model_fields.items():
        annotation = info.annotation
        args = typing.get_args(annotation)
        inner = [a for a in args if a is not type(None)] or [annotation]
        target = inner[0]
        if typing.get_origin(target) is list:
            target = typing.get_args(target)[0]
        path = f"{prefix}{name}"
        if isinstance(target, type) and issubclass(target, BaseModel):
            yield from _string_fields(target, f"{path}.")
        elif target is str:
            checked = any(getattr(m, "func", None) in _RULES for m in info.metadata)
            yield path, checked


def test_every_string_field_of_a_generate_event_is_checked() -> None:
    """A new field shown on certificates cannot forget the display rules: every
    string field has one, or is listed here as never shown."""
    fields = dict(_string_fields(GenerateCertificateEdata))

    unchecked = {path for path, checked in fields.items() if not checked}
    assert unchecked == NOT_SHOWN
    displayed = {path.replace("[0]", "") for path in DISPLAYED}
    assert displayed <= {path for path, checked in fields.items() if checked}
