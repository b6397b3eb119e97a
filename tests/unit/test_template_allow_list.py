"""The template sanitiser keeps only what its allow-lists name (security review, holes 1 and 7).

Each case here was issued as is by the deny-list sanitiser it replaced: active
content in another namespace, attributes that load or run things, CSS that fetches
from anywhere, and placeholders inside CSS that let a learner's name add rules.
"""

from __future__ import annotations

import pytest
from lxml import etree

from certflow.errors import CertflowError, ErrorCode
from certflow.render.sanitise import ALLOWED_ELEMENTS, LinkKind, url_allowed
from certflow.render.svg import SvgTemplate

SVG = "{http://www.w3.org/2000/svg}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"


def parse(body: str) -> SvgTemplate:
    return SvgTemplate.parse(
        (
            '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            'xmlns:h="http://www.w3.org/1999/xhtml">' + body + "</svg>"
        ).encode(),
        url="https://templates.example.org/t.svg",
    )


def filled(body: str, **values: str) -> etree._Element:
    return etree.fromstring(parse(body).fill(values).encode())


def by_id(root: etree._Element, element_id: str) -> etree._Element | None:
    found = root.xpath("//*[@id=$id]", id=element_id)
    return found[0] if found else None


@pytest.mark.parametrize(
    "markup",
    [
        '<h:iframe id="x" src="javascript:alert(1)"/>',
        '<h:iframe id="x" srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"/>',
        '<h:embed id="x" src="https://evil.example/x.swf"/>',
        '<h:object id="x" data="https://evil.example/x"/>',
        '<h:div id="x"><h:img src="x" onerror="alert(1)"/></h:div>',
        '<g><h:script id="x">alert(1)</h:script></g>',
        '<foreignObject id="x"><h:body>hi</h:body></foreignObject>',
        '<set id="x" attributeName="fill" to="red"/>',
        '<animate id="x" attributeName="href" values="javascript:alert(1)"/>',
        '<feImage id="x" href="https://evil.example/i.png"/>',
        '<cursor id="x" href="https://evil.example/c.png"/>',
        '<metadata id="x"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></metadata>',
        '<Script id="x">alert(1)</Script>',
    ],
)
def test_elements_not_on_the_allow_list_are_removed_whatever_their_namespace(markup: str) -> None:
    template = parse(f'<g id="keep">{markup}</g>')
    root = etree.fromstring(template.fill({}).encode())

    assert by_id(root, "x") is None
    assert by_id(root, "keep") is not None
    assert template.removed >= 1
    for element in root.iter():
        assert element.tag.startswith(SVG) and element.tag[len(SVG):] in ALLOWED_ELEMENTS


@pytest.mark.parametrize(
    "attribute",
    ['src="javascript:alert(1)"', 'srcdoc="&lt;script&gt;"', 'data="https://evil.example/"',
     'onload="alert(1)"', 'onClick="alert(1)"', 'data-x="1"', 'xml:base="https://evil.example/"',
     'h:href="javascript:alert(1)"', 'requiredExtensions="https://evil.example/"'],
)
def test_attributes_not_on_the_allow_list_are_removed(attribute: str) -> None:
    root = filled(f'<rect id="r" width="10" {attribute}/>')

    rect = by_id(root, "r")
    assert dict(rect.attrib) == {"id": "r", "width": "10"}


@pytest.mark.parametrize(
    ("element", "href", "kept"),
    [
        ("image", "data:image/png;base64,AAAA", True),
        ("image", "https://cdn.example.org/sig.png", True),
        ("image", "data:image/svg+xml;base64,PHN2Zz4=", False),
        ("image", "data:text/html,<script>alert(1)</script>", False),
        ("image", "sig.png", False),  # relative: a renderer would read a local file
        ("a", "https://issuer.example.org/", True),
        ("a", "/certs/1", True),
        ("a", "mailto:registrar@example.org", True),
        ("a", "data:text/html,<script>alert(1)</script>", False),
        ("a", "JaVa\tScRiPt:alert(1)", False),
        ("use", "#logo", True),
        ("use", "https://evil.example/sprite.svg#x", False),
        ("linearGradient", "#base", True),
        ("linearGradient", "https://evil.example/g.svg#g", False),
    ],
)
def test_links_are_allowed_by_what_they_point_at(element: str, href: str, kept: bool) -> None:
    root = filled(f'<{element} id="x" href="{href.replace("<", "&lt;")}"/>')

    assert (by_id(root, "x").get("href") == href) is kept


@pytest.mark.parametrize(
    ("css", "survives", "gone"),
    [
        ("@import url(https://evil.example/x.css); rect{fill:red}", "fill:red", "evil"),
        ("@font-face{font-family:x;src:url(https://evil.example/f.woff)} text{font-family:x}",
         "font-family:x", "evil"),
        ("rect{fill:url(https://evil.example/p.png)} circle{stroke:blue}", "stroke:blue", "evil"),
        ("rect{fill:url(#grad)}", "url(#grad)", "@"),
        ("rect{background-image:url(data:image/png;base64,AA);fill:red}", "fill:red", "background"),
        ("rect{fill:u\\72l(https://evil.example/x)} text{fill:green}", "fill:green", "evil"),
        ("rect{-moz-binding:url(https://evil.example/x.xml#x);behavior:url(x.htc);fill:red}",
         "fill:red", "binding"),
        ("rect{fill:image-set('https://evil.example/x.png' 1x)}", "", "evil"),
        ("@media print{rect{fill:url(https://evil.example/p)}}", "", "evil"),
    ],
)
def test_stylesheets_keep_only_allowed_rules_properties_and_urls(css: str, survives: str, gone: str) -> None:
    root = filled(f'<style id="s">{css}</style><rect/>')

    kept = by_id(root, "s").text or ""
    assert survives in kept
    assert gone not in kept


@pytest.mark.parametrize(
    ("style", "kept"),
    [
        ("fill:red;stroke-width:2", "fill:red;stroke-width:2"),
        ("fill:red;background:url(https://evil.example/x)", "fill:red"),
        ("fill:url(#g)", "fill:url(#g)"),
        ("fill:url('https://evil.example/x')", ""),
        ("font-family:'Noto Sans';position:fixed", 'font-family:"Noto Sans"'),
    ],
)
def test_style_attributes_keep_only_allowed_declarations(style: str, kept: str) -> None:
    root = filled(f'<rect id="r" style="{style}"/>')

    assert by_id(root, "r").get("style") == kept


@pytest.mark.parametrize(
    ("attribute", "kept"),
    [
        ('fill="url(#grad)"', True),
        ('fill="#1f3a5f"', True),
        ('fill="url(https://evil.example/x)"', False),
        ('filter="url(https://evil.example/f.svg#f)"', False),
        ('mask="u\\72l(//evil.example/m)"', False),
        ('fill="rgb(1, 2, 3)"', True),
        ('transform="translate(10 20) rotate(5)"', True),
    ],
)
def test_presentation_attributes_cannot_fetch(attribute: str, kept: bool) -> None:
    root = filled(f'<rect id="r" {attribute}/>')

    name = attribute.split("=", 1)[0]
    assert (by_id(root, "r").get(name) is not None) is kept


@pytest.mark.parametrize(
    "markup",
    [
        "<style>text{font-family:${recipientName}}</style>",
        '<text style="font-family:${recipientName}">x</text>',
        '<text fill="${recipientName}">x</text>',
        '<text class="${courseName}">x</text>',
    ],
)
def test_a_placeholder_inside_css_makes_the_template_invalid(markup: str) -> None:
    """A name like ``x}@font-face{src:url(//evil)}`` would otherwise add CSS rules."""
    with pytest.raises(CertflowError) as caught:
        parse(markup)

    assert caught.value.code is ErrorCode.TEMPLATE_INVALID
    assert "placeholder" in caught.value.message


@pytest.mark.parametrize(
    ("kind", "value", "allowed"),
    [
        (LinkKind.IMAGE, "data:image/png;base64,AAAA", True),
        (LinkKind.IMAGE, "data:image/svg+xml,<svg onload=alert(1)>", False),
        (LinkKind.IMAGE, "https://cdn.example.org/s.png", True),
        (LinkKind.IMAGE, "javascript:alert(1)", False),
        (LinkKind.LINK, "data:text/html,<script>alert(1)</script>", False),
        (LinkKind.LINK, "https://linkedin.com/", True),
    ],
)
def test_a_value_filled_into_a_link_must_be_allowed_there(kind: LinkKind, value: str, allowed: bool) -> None:
    element = "image" if kind is LinkKind.IMAGE else "a"
    root = filled(f'<{element} id="x" href="${{courseName}}"/>', courseName=value)

    assert url_allowed(value, kind) is allowed
    assert (by_id(root, "x").get("href") == value) is allowed
    if not allowed:
        assert by_id(root, "x").get("href") == ""


def test_the_shipped_template_and_a_typical_design_survive_sanitising() -> None:
    template = parse(
        '<defs><linearGradient id="g"><stop offset="0" stop-color="#fff"/></linearGradient>'
        '<filter id="f"><feGaussianBlur stdDeviation="2"/></filter></defs>'
        '<style>.title{font-weight:700;fill:url(#g)}</style>'
        '<rect width="10" height="10" fill="url(#g)" filter="url(#f)"/>'
        '<text class="title" x="1" y="2" text-anchor="middle">${recipientName}</text>'
        '<image href="${qrCodeImage}"/><image xlink:href="${signatory0Image}"/>'
    )

    assert template.removed == 0
    assert template.placeholders == {"recipientName", "qrCodeImage", "signatory0Image"}
