"""Specification of certificate templates: safe to parse, safe to fill, always valid XML."""

from __future__ import annotations

import time
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from certflow.errors import CertflowError, ErrorCode
from certflow.render.svg import SvgTemplate

SVG_NS = "http://www.w3.org/2000/svg"
URL = "https://templates.example.org/course.svg"

SIMPLE = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">'
    b'<text id="name">${recipientName}</text>'
    b'<text id="course" aria-label="${courseName}">${courseName}</text>'
    b'<image id="qr" href="${qrCodeImage}"/>'
    b"</svg>"
)


def parse(source: bytes, **kwargs: object) -> SvgTemplate:
    return SvgTemplate.parse(source, url=URL, **kwargs)


def text_of(svg: str, element_id: str) -> str | None:
    """Parse filled output like a browser would and read one element's text."""
    root = etree.fromstring(svg.encode("utf-8"))
    (element,) = root.xpath("//*[@id=$id]", id=element_id)
    return element.text


def assert_rejected(source: bytes) -> CertflowError:
    with pytest.raises(CertflowError) as caught:
        parse(source)
    assert caught.value.code is ErrorCode.TEMPLATE_INVALID
    assert URL in caught.value.message
    return caught.value


def test_fill_replaces_every_placeholder() -> None:
    template = parse(SIMPLE)
    svg = template.fill(
        {
            "recipientName": "Asha",
            "courseName": "Algebra",
            "qrCodeImage": "data:image/png;base64,AAAA",
        }
    )
    assert "${" not in svg
    assert text_of(svg, "name") == "Asha"
    assert text_of(svg, "course") == "Algebra"
    root = etree.fromstring(svg.encode())
    assert root.find(f"{{{SVG_NS}}}image").get("href") == "data:image/png;base64,AAAA"
    assert root.find(f"{{{SVG_NS}}}text[@id='course']").get("aria-label") == "Algebra"


def test_placeholders_lists_each_name_once() -> None:
    assert parse(SIMPLE).placeholders == frozenset({"recipientName", "courseName", "qrCodeImage"})


def test_a_value_is_literal_text_never_markup_nor_a_placeholder() -> None:
    name = "Dr. ${courseName} & <b>\"O'Brien\"</b> ]]> &amp;"
    template = parse(SIMPLE)
    svg = template.fill({"recipientName": name, "courseName": "Algebra"})
    assert text_of(svg, "name") == name
    root = etree.fromstring(svg.encode())
    assert root.find(f"{{{SVG_NS}}}b") is None


def test_a_value_in_an_attribute_round_trips() -> None:
    title = "A \"quoted\" 'title' & <more>\twith\nwhitespace\r"
    svg = parse(SIMPLE).fill({"courseName": title})
    root = etree.fromstring(svg.encode())
    assert root.find(f"{{{SVG_NS}}}text[@id='course']").get("aria-label") == title


def test_missing_or_none_placeholder_becomes_empty() -> None:
    svg = parse(SIMPLE).fill({"recipientName": None})  # type: ignore[dict-item]
    assert "${" not in svg
    assert text_of(svg, "name") is None
    assert text_of(svg, "course") is None


def test_values_for_unknown_placeholders_are_ignored() -> None:
    svg = parse(SIMPLE).fill({"notInTemplate": "x", "recipientName": "Asha"})
    assert "notInTemplate" not in svg
    assert text_of(svg, "name") == "Asha"


def test_unfilled_template_placeholder_without_value_is_empty() -> None:
    source = SIMPLE.replace(b"</svg>", b'<text id="extra">Hello ${somethingUnusual}!</text></svg>')
    svg = parse(source).fill({})
    assert text_of(svg, "extra") == "Hello !"


@pytest.mark.parametrize(
    "name",
    [
        "अनन्या शर्मा",  # Devanagari, with conjuncts (virama)
        "க்ஷேத்ரா சுப்ரமணியம்",  # Tamil
        "فاطمة الزهراء",  # Arabic, right-to-left
        "স্বাতী বন্দ্যোপাধ্যায়",  # Bengali
        "श्री\u200dमती",  # zero-width joiner must survive
    ],
)
def test_indic_and_arabic_names_survive(name: str) -> None:
    assert text_of(parse(SIMPLE).fill({"recipientName": name}), "name") == name


@pytest.mark.parametrize("bad", ["\x00", "a\x07b", "\x1b[31m", "\ufffe", "\uffff", "\ud800"])
def test_a_character_illegal_in_xml_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="recipientName"):
        parse(SIMPLE).fill({"recipientName": bad})


def test_xxe_is_rejected_and_never_read() -> None:
    source = (
        b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<svg xmlns="http://www.w3.org/2000/svg"><text>&x;</text></svg>'
    )
    error = assert_rejected(source)
    assert "root:" not in error.message
    assert "entit" in error.message


def test_xxe_hidden_by_utf16_encoding_is_rejected() -> None:
    source = (
        '<?xml version="1.0" encoding="UTF-16"?>'
        '<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<svg xmlns="http://www.w3.org/2000/svg"><text>&x;</text></svg>'
    ).encode("utf-16")
    error = assert_rejected(source)
    assert "root:" not in error.message


def test_external_parameter_entity_is_rejected() -> None:
    source = (
        b'<!DOCTYPE svg [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>'
        b'<svg xmlns="http://www.w3.org/2000/svg"/>'
    )
    assert_rejected(source)


def billion_laughs(encoding: str = "utf-8") -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    return (
        f'<?xml version="1.0" encoding="{encoding}"?><!DOCTYPE svg [{"".join(entities)}]>'
        '<svg xmlns="http://www.w3.org/2000/svg"><text a="&lol9;">&lol9;</text></svg>'
    ).encode(encoding)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_billion_laughs_is_rejected_quickly(encoding: str) -> None:
    started = time.perf_counter()
    assert_rejected(billion_laughs(encoding))
    assert time.perf_counter() - started < 0.5


def test_external_dtd_is_never_fetched_and_doctype_is_dropped() -> None:
    # Port 9 (discard) on localhost: a fetch would fail or hang, either way the test notices.
    source = (
        b'<?xml version="1.0" standalone="no"?>'
        b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://127.0.0.1:9/svg11.dtd">'
        b'<svg xmlns="http://www.w3.org/2000/svg"><text id="name">${recipientName}</text></svg>'
    )
    started = time.perf_counter()
    template = parse(source)
    assert time.perf_counter() - started < 0.5
    svg = template.fill({"recipientName": "Asha"})
    assert "DOCTYPE" not in svg
    assert etree.fromstring(svg.encode()).getroottree().docinfo.doctype == ""
    assert text_of(svg, "name") == "Asha"


def test_entity_from_an_unloaded_external_dtd_is_rejected() -> None:
    source = (
        b'<!DOCTYPE svg SYSTEM "http://127.0.0.1:9/x.dtd">'
        b'<svg xmlns="http://www.w3.org/2000/svg"><text>a&nbsp;b</text></svg>'
    )
    assert_rejected(source)


@pytest.mark.parametrize(
    "source",
    [
        b"<html><body>not a certificate</body></html>",
        b'<svg><text>no namespace</text></svg>',
        b'<x:svg xmlns:x="http://example.org/not-svg"/>',
    ],
)
def test_a_root_that_is_not_svg_is_rejected(source: bytes) -> None:
    assert "root" in assert_rejected(source).message


@pytest.mark.parametrize(
    "source",
    [
        b"",
        b"   \n",
        b"\x89PNG\r\n\x1a\n\x00\x00garbage",
        b"<svg xmlns='http://www.w3.org/2000/svg'>",
        b"{}",
    ],
)
def test_empty_or_garbage_input_is_rejected(source: bytes) -> None:
    assert_rejected(source)


def test_input_over_the_size_limit_is_rejected() -> None:
    assert "limit" in assert_rejected(SIMPLE + b" " * 2_097_152).message
    with pytest.raises(CertflowError):
        parse(SIMPLE, max_bytes=len(SIMPLE) - 1)
    assert parse(SIMPLE, max_bytes=len(SIMPLE)).placeholders


HOSTILE = b"""<svg xmlns="http://www.w3.org/2000/svg" xmlns:svg="http://www.w3.org/2000/svg"
     xmlns:xlink="http://www.w3.org/1999/xlink" onload="alert(1)">
  <script>alert(2)</script>
  <svg:script xlink:href="https://evil.example/x.js"/>
  <foreignObject><body xmlns="http://www.w3.org/1999/xhtml"><script>alert(3)</script></body></foreignObject>
  <a href=" JavaScript:alert(4)"><text id="link" onclick="alert(5)" onMouseOver="alert(6)">Click</text></a>
  <a xlink:href="java&#9;script:alert(7)"><text>tab</text></a>
  <image id="local" href="file:///etc/passwd"/>
  <image id="vb" xlink:href="VBScript:msgbox(8)"/>
  <use href="https://evil.example/sprite.svg#icon"/>
  <set attributeName="href" to="javascript:alert(9)"/>
  <image id="qr" href="${qrCodeImage}"/>
  <image id="logo" href="https://cdn.example.org/logo.png"/>
  <image id="inline" xlink:href="data:image/png;base64,AAAA"/>
  <use id="local-use" href="#local"/>
  <text id="name">${recipientName}</text>tail kept
</svg>"""


def test_scripts_handlers_and_dangerous_links_are_removed() -> None:
    template = parse(HOSTILE)
    svg = template.fill({"recipientName": "Asha", "qrCodeImage": "data:image/png;base64,QQ=="})
    lowered = svg.lower()
    gone = ("script", "foreignobject", "onload", "onclick", "onmouseover", "alert", "file:", "evil")
    for needle in gone:
        assert needle not in lowered, needle
    root = etree.fromstring(svg.encode())
    images = {el.get("id"): el for el in root.iter(f"{{{SVG_NS}}}image")}
    assert images["qr"].get("href") == "data:image/png;base64,QQ=="
    assert images["logo"].get("href") == "https://cdn.example.org/logo.png"
    xlink_href = "{http://www.w3.org/1999/xlink}href"
    assert images["inline"].get(xlink_href) == "data:image/png;base64,AAAA"
    assert images["local"].get("href") is None
    assert root.find(f"{{{SVG_NS}}}use[@id='local-use']") is not None
    assert "tail kept" in svg
    assert text_of(svg, "link") == "Click"
    # script, svg:script, foreignObject, external use, set; onload, onclick, onmouseover,
    # and the four dangerous hrefs.
    assert template.removed == 12


def test_comments_and_processing_instructions_are_dropped() -> None:
    source = SIMPLE.replace(b"<text", b"<!-- ${secret} --><?php echo 1 ?><text", 1)
    template = parse(source)
    assert "secret" not in template.placeholders
    assert "<!--" not in template.fill({}) and "<?" not in template.fill({})


def default_template() -> SvgTemplate:
    source = resources.files("certflow").joinpath("templates/course-completion.svg").read_bytes()
    return SvgTemplate.parse(source, url="certflow:templates/course-completion.svg")


@pytest.mark.parametrize("name", ["course-completion.svg", "merit.svg"])
def test_shipped_templates_say_what_they_certify_and_print_nothing_internal(name: str) -> None:
    """The Completion and Merit designs differ in their titles, and neither prints
    the learner's internal id (nothing internal unless a template asks for it)."""
    from certflow.settings import Settings

    markup = (Settings().template_root / name).read_text()
    template = parse(markup.encode())

    assert "recipientId" not in template.placeholders
    assert ("CERTIFICATE OF MERIT" in markup) is (name == "merit.svg")
    assert ("CERTIFICATE OF COMPLETION" in markup) is (name == "course-completion.svg")


def test_the_default_template_is_clean_and_uses_sunbird_placeholders() -> None:
    template = default_template()
    assert template.removed == 0
    assert {
        "recipientName",
        "courseName",
        "issuedDate",
        "issuerName",
        "qrCodeImage",
        "signatory0Image",
        "signatory0Designation",
        "signatory1Image",
        "signatory1Designation",
    } <= template.placeholders
    root = etree.fromstring(template.fill({"recipientName": "अनन्या"}).encode())
    assert root.get("viewBox") == "0 0 842 595"


XML_TEXT = st.text(
    st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters="".join(
            [chr(c) for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)] + ["\ufffe", "\uffff"]
        ),
    )
)


@settings(max_examples=300, deadline=None)
@given(name=XML_TEXT, course=XML_TEXT)
def test_any_xml_legal_value_round_trips_exactly(name: str, course: str) -> None:
    svg = parse(SIMPLE).fill({"recipientName": name, "courseName": course})
    root = etree.fromstring(svg.encode("utf-8"))
    assert (root.find(f"{{{SVG_NS}}}text[@id='name']").text or "") == name
    course_el = root.find(f"{{{SVG_NS}}}text[@id='course']")
    assert (course_el.text or "") == course
    assert course_el.get("aria-label") == course
