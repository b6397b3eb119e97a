"""What may stay in a certificate template: an allow-list of SVG, links and CSS.

A template is served to browsers as ``GET /certs/{id}.svg`` on the worker's own
origin, so anything active in it is stored cross-site scripting. A deny-list of
what can run (``script``, ``on*``) always misses something: an XHTML ``<iframe
srcdoc>``, an ``<embed>``, a ``@import`` or a ``url()`` that phones home. So the
rule here is the other way round: **only** SVG elements and attributes that draw,
in the SVG namespace, are kept; everything else goes, with its subtree.

* Links: ``href`` on ``<image>`` may be a raster ``data:`` image or an http(s)
  URL (the server inlines those before anything renders them); on ``<a>`` an
  http(s), ``mailto:`` or relative link; on anything else only an in-document
  ``#fragment``.
* CSS (``<style>``, ``style=""`` and presentation attributes such as ``fill``) is
  parsed with tinycss2 (the tokenizer cairosvg itself uses) and only allow-listed
  properties and functions are kept; ``url()`` may name an in-document fragment or
  a raster ``data:`` image only, and at-rules (``@import``, ``@font-face`` …) go.
* Placeholders (``${name}``) may stand in text, in a link (checked again when the
  value is filled in) and in a few plain-text attributes. One inside CSS, where a
  learner's name could become ``@font-face{src:url(//evil)}``, makes the template
  invalid: escaping for CSS would turn a name into a broken value anyway.

Sanitising runs once per template; its cost is in parsing, not per certificate.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import cast

import tinycss2
from lxml import etree

__all__ = [
    "ALLOWED_ATTRIBUTES",
    "ALLOWED_CSS_PROPERTIES",
    "ALLOWED_ELEMENTS",
    "PLACEHOLDER",
    "LinkKind",
    "TemplateRefused",
    "remove_element",
    "sanitise",
    "url_allowed",
]

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"

#: Sunbird's placeholder syntax. The capturing group makes ``re.split`` return the
#: literal segments at even indices and the placeholder names at odd indices.
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

_STRUCTURE = {"svg", "g", "defs", "symbol", "use", "switch", "title", "desc", "a", "style"}
_SHAPES = {"path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "image"}
_TEXT = {"text", "tspan", "textPath"}
_PAINT = {
    "linearGradient", "radialGradient", "stop", "pattern", "clipPath", "mask", "marker",
}
_FILTERS = {
    "filter", "feBlend", "feColorMatrix", "feComponentTransfer", "feFuncR", "feFuncG",
    "feFuncB", "feFuncA", "feComposite", "feConvolveMatrix", "feDiffuseLighting",
    "feDisplacementMap", "feDistantLight", "feDropShadow", "feFlood", "feGaussianBlur",
    "feMerge", "feMergeNode", "feMorphology", "feOffset", "fePointLight",
    "feSpecularLighting", "feSpotLight", "feTile", "feTurbulence",
}
#: SVG elements (in the SVG namespace, exact case) that may stay. Not here, so
#: removed: ``script``, ``foreignObject`` and everything in another namespace
#: (XHTML ``iframe``, ``embed``, ``object``), animation (``set``, ``animate*``
#: can rewrite a link after sanitising), ``feImage`` and ``cursor`` (fetch),
#: SVG fonts, ``metadata`` (arbitrary XML nobody sees).
ALLOWED_ELEMENTS = frozenset(_STRUCTURE | _SHAPES | _TEXT | _PAINT | _FILTERS)

#: Presentation attributes: CSS properties that may also be written as attributes.
_PRESENTATION = {
    "alignment-baseline", "baseline-shift", "clip-path", "clip-rule", "color",
    "color-interpolation", "color-interpolation-filters", "direction", "display",
    "dominant-baseline", "fill", "fill-opacity", "fill-rule", "filter", "flood-color",
    "flood-opacity", "font-family", "font-size", "font-size-adjust", "font-stretch",
    "font-style", "font-variant", "font-weight", "image-rendering", "letter-spacing",
    "lighting-color", "marker-end", "marker-mid", "marker-start", "mask", "opacity",
    "overflow", "paint-order", "shape-rendering", "stop-color", "stop-opacity", "stroke",
    "stroke-dasharray", "stroke-dashoffset", "stroke-linecap", "stroke-linejoin",
    "stroke-miterlimit", "stroke-opacity", "stroke-width", "text-anchor", "text-decoration",
    "text-rendering", "transform", "transform-origin", "unicode-bidi", "vector-effect",
    "visibility", "word-spacing", "writing-mode",
}
_GEOMETRY = {
    "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "fx", "fy", "fr",
    "dx", "dy", "width", "height", "d", "points", "pathLength", "viewBox",
    "preserveAspectRatio", "rotate", "textLength", "lengthAdjust", "startOffset",
    "method", "spacing", "side", "offset", "version", "baseProfile",
}
_PAINT_SERVERS = {
    "gradientUnits", "gradientTransform", "spreadMethod", "patternUnits",
    "patternContentUnits", "patternTransform", "clipPathUnits", "maskUnits",
    "maskContentUnits", "markerUnits", "markerWidth", "markerHeight", "orient", "refX",
    "refY", "filterUnits", "primitiveUnits",
}
_FILTER_ATTRIBUTES = {
    "in", "in2", "result", "stdDeviation", "mode", "operator", "k1", "k2", "k3", "k4",
    "values", "type", "tableValues", "slope", "intercept", "amplitude", "exponent",
    "baseFrequency", "numOctaves", "seed", "stitchTiles", "scale", "xChannelSelector",
    "yChannelSelector", "radius", "order", "kernelMatrix", "divisor", "bias", "targetX",
    "targetY", "edgeMode", "preserveAlpha", "surfaceScale", "diffuseConstant",
    "specularConstant", "specularExponent", "kernelUnitLength", "azimuth", "elevation",
    "z", "pointsAtX", "pointsAtY", "pointsAtZ", "limitingConeAngle",
}
#: Attributes without a namespace that may stay (``href`` is checked as a link).
#: Not here, so removed: every ``on*`` handler, ``src``, ``srcdoc``, ``data``,
#: ``data-*``, ``xml:base``, ``requiredExtensions`` and anything namespaced but
#: ``xlink:href``, ``xml:space`` and ``xml:lang``.
ALLOWED_ATTRIBUTES = frozenset(
    _PRESENTATION | _GEOMETRY | _PAINT_SERVERS | _FILTER_ATTRIBUTES
    | {"id", "class", "style", "href", "lang", "aria-label", "role", "focusable"}
)
_NAMESPACED = frozenset({f"{{{XLINK_NS}}}href", f"{{{XML_NS}}}space", f"{{{XML_NS}}}lang"})
_HREFS = frozenset({"href", f"{{{XLINK_NS}}}href"})
#: Attributes a placeholder may stand in, besides links: plain text to the reader.
_TEXT_ATTRIBUTES = frozenset({"aria-label", "lang", f"{{{XML_NS}}}lang"})
#: Attributes whose values are not CSS (path data, ids): never parsed as CSS.
_NOT_CSS = frozenset({"d", "points", "id", "class", "viewBox", "lang", "aria-label", "role"})

#: CSS properties a ``style`` may set: the presentation attributes and a few text ones.
ALLOWED_CSS_PROPERTIES = frozenset(
    _PRESENTATION
    | {
        "font", "font-feature-settings", "font-kerning", "font-variant-ligatures",
        "font-variant-caps", "font-variant-numeric", "font-variant-east-asian",
        "line-height", "text-transform", "text-decoration-line", "text-decoration-color",
        "text-decoration-style", "white-space", "isolation", "mix-blend-mode", "transform-box",
        "inline-size",
    }
)
#: CSS functions a value may call; ``url()`` is checked separately.
_CSS_FUNCTIONS = frozenset({
    "rgb", "rgba", "hsl", "hsla", "hwb", "lab", "lch", "calc", "min", "max", "clamp",
    "matrix", "translate", "translatex", "translatey", "scale", "scalex", "scaley",
    "rotate", "skewx", "skewy",
})

#: Browsers ignore ASCII whitespace and control characters inside a URL scheme
#: (``java\tscript:`` still runs), so they are removed before the scheme is checked.
_URL_NOISE = re.compile(r"[\x00-\x20\x7f]+")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_RASTER_DATA = re.compile(r"^data:image/(?:png|jpeg|jpg|gif|webp)[;,]", re.IGNORECASE)


class LinkKind(Enum):
    """What a link may point at, by the element it is on."""

    #: ``<image href>``: a raster ``data:`` image, or http(s) (inlined before rendering).
    IMAGE = "image"
    #: ``<a href>``: http(s), ``mailto:``, or a relative link on the same origin.
    LINK = "link"
    #: Anything else (``use``, gradients, ``textPath``): an in-document ``#fragment``.
    FRAGMENT = "fragment"

    @classmethod
    def of(cls, element_name: str) -> LinkKind:
        return {"image": cls.IMAGE, "a": cls.LINK}.get(element_name, cls.FRAGMENT)


class TemplateRefused(ValueError):
    """The template cannot be made safe by removing parts (a placeholder inside CSS)."""


def url_allowed(value: str, kind: LinkKind) -> bool:
    """Whether a complete link (literal, or with its placeholders filled) may stay.

    Only the start decides, so a 10 KB ``data:`` URI is judged by its first bytes;
    the whole value is scanned only when noise might be hiding the scheme.
    """
    head = _URL_NOISE.sub("", value[:64])
    if len(head) < 24 and len(value) > 64:
        head = _URL_NOISE.sub("", value)
    if kind is LinkKind.FRAGMENT:
        return head.startswith("#")
    scheme = _SCHEME.match(head)
    if kind is LinkKind.IMAGE:
        return bool(_RASTER_DATA.match(head)) or (
            scheme is not None and scheme.group(1).lower() in ("http", "https")
        )
    return scheme is None or scheme.group(1).lower() in ("http", "https", "mailto")


def fixes_safe_start(prefix: str, kind: LinkKind) -> bool:
    """Whether the literal text before a link's first placeholder already decides
    that the link is allowed, whatever value follows (``https://x/${id}``,
    ``/certs/${id}``, ``data:image/png;base64,${qr}``)."""
    head = _URL_NOISE.sub("", prefix)
    if kind is LinkKind.IMAGE:
        if _RASTER_DATA.match(head):
            return True
        scheme = _SCHEME.match(head)
        return scheme is not None and scheme.group(1).lower() in ("http", "https")
    if kind is LinkKind.FRAGMENT:
        return head.startswith("#")
    if _SCHEME.match(head):
        return url_allowed(head, kind)
    # No scheme yet: only a start that can never become one (a path, query or
    # fragment) is fixed; "java" + "${x}" is not.
    return head[:1] in ("/", "?", "#", ".") or (
        bool(head) and not re.fullmatch(r"[A-Za-z0-9+.-]*", head)
    )


def remove_element(element: etree._Element) -> None:
    """Detach ``element`` but keep its tail text, which belongs to the parent."""
    parent = element.getparent()
    if parent is None:
        return
    if element.tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


def _element_name(tag: object) -> str | None:
    """The SVG local name of an element, or None for anything else (another
    namespace, a comment or processing instruction that slipped through)."""
    if not isinstance(tag, str) or not tag.startswith("{" + SVG_NS + "}"):
        return None
    return tag[len(SVG_NS) + 2 :]


def sanitise(root: etree._Element) -> int:
    """Keep only what the allow-lists name, in place; return how much was removed.

    A link whose scheme a placeholder decides is rewritten by
    :class:`LinkSlotMarker`, so that the filled-in value is checked
    (:meth:`SvgTemplate.fill`). Raises :class:`TemplateRefused` for a placeholder
    inside CSS.
    """
    removed = 0
    doomed = [
        element for element in root.iterdescendants()
        if _element_name(element.tag) not in ALLOWED_ELEMENTS
    ]
    doomed_set = set(doomed)
    for element in doomed:
        # A doomed element inside another doomed one is already gone with its parent.
        if not any(ancestor in doomed_set for ancestor in element.iterancestors()):
            remove_element(element)
            removed += 1
    for element in root.iter():
        name = _element_name(element.tag) or ""
        if name == "style":
            removed += _sanitise_style_element(element)
        for key in list(element.attrib):
            value = element.attrib[key]
            # lxml-stubs type attribute names and values str | bytes; lxml gives str.
            replacement = _sanitised_attribute(name, cast(str, key), cast(str, value))
            if replacement is None:
                del element.attrib[key]
                removed += 1
            elif replacement != value:
                element.attrib[key] = replacement
    return removed


class LinkSlotMarker:
    """Marks the placeholder that decides a link's scheme with the link's kind.

    Placeholder names are ``[A-Za-z_][A-Za-z0-9_]*``; the marker is a name prefix,
    so :class:`SvgTemplate` finds checked placeholders by name when it compiles.
    """

    PREFIX = "certflow_link_"

    @classmethod
    def mark(cls, value: str, kind: LinkKind) -> str | None:
        """A link with placeholders, made safe to fill: kept as it is when its
        literal start decides, the deciding placeholder marked, or None to drop it."""
        first = PLACEHOLDER.search(value)
        assert first is not None
        if fixes_safe_start(value[: first.start()], kind):
            return value
        prefix = _URL_NOISE.sub("", value[: first.start()])
        suffix = value[first.end() :]
        # A value decides the scheme only as the whole link or the start of a path,
        # query or fragment: anything more contrived ("java${x}", "${a}${b}") goes.
        if prefix or not re.match(r"^[/?#]|^$", _URL_NOISE.sub("", suffix)):
            return None
        name = first.group(1)
        if name.startswith(cls.PREFIX):  # a template spelling the marker itself
            name = name.split("__", 1)[-1]
        marked = "${" + f"{cls.PREFIX}{kind.value}__{name}" + "}"
        return value[: first.start()] + marked + suffix

    @classmethod
    def unmark(cls, slot: str) -> tuple[str, LinkKind] | None:
        """``certflow_link_image__signatory0Image`` → (``signatory0Image``, IMAGE)."""
        if not slot.startswith(cls.PREFIX):
            return None
        kind, _, name = slot[len(cls.PREFIX) :].partition("__")
        return name, LinkKind(kind)


def _sanitised_attribute(element_name: str, key: str, value: str) -> str | None:
    """The value to keep for one attribute, or None to remove it."""
    if key.startswith("{"):
        if key not in _NAMESPACED:
            return None
    elif key not in ALLOWED_ATTRIBUTES:
        return None
    if key in _HREFS:
        kind = LinkKind.of(element_name)
        if PLACEHOLDER.search(value):
            return LinkSlotMarker.mark(value, kind)
        return value if url_allowed(value, kind) else None
    if PLACEHOLDER.search(value) and key not in _TEXT_ATTRIBUTES:
        raise TemplateRefused(
            f"has a placeholder in the {key!r} attribute of <{element_name}>: placeholders "
            "may stand in text, links and aria-label/lang only (a value inside CSS could "
            "add rules or fetch from anywhere)"
        )
    if key == "style":
        return _sanitised_declarations(value)
    if key in _NOT_CSS or not _may_hide_css(value):
        return value
    return value if _css_value_safe(tinycss2.parse_component_value_list(value)) else None


def _may_hide_css(value: str) -> bool:
    """Fast path: a value without a function call, escape or at-sign is plain."""
    return "(" in value or "\\" in value or "@" in value


def _sanitise_style_element(element: etree._Element) -> int:
    """Keep only style rules with allowed declarations; drop every at-rule."""
    css = element.text or ""
    if PLACEHOLDER.search(css):
        raise TemplateRefused(
            "has a placeholder inside <style>: a value there could add CSS rules or "
            "fetch from anywhere"
        )
    removed = 0
    kept: list[str] = []
    for rule in tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True):
        if rule.type != "qualified-rule":
            removed += 1  # @import, @font-face, @namespace, @media … and parse errors
            continue
        selector = tinycss2.serialize(rule.prelude).strip()
        if not _css_value_safe(rule.prelude):
            removed += 1
            continue
        body = _sanitised_declarations(tinycss2.serialize(rule.content))
        kept.append(f"{selector}{{{body}}}")
    element.text = "".join(kept)
    for child in list(element):  # no markup inside a stylesheet
        remove_element(child)
        removed += 1
    return removed


def _sanitised_declarations(css: str) -> str:
    declarations = tinycss2.parse_blocks_contents(css, skip_comments=True, skip_whitespace=True)
    kept = []
    for declaration in declarations:
        if declaration.type != "declaration":
            continue
        if declaration.lower_name not in ALLOWED_CSS_PROPERTIES:
            continue
        if not _css_value_safe(declaration.value):
            continue
        value = tinycss2.serialize(declaration.value).strip()
        kept.append(f"{declaration.lower_name}:{value}{' !important' if declaration.important else ''}")
    return ";".join(kept)


def _css_value_safe(tokens: list[object]) -> bool:
    """No ``url()`` but to a fragment or a raster ``data:`` image, only allowed
    functions, no at-keywords, no blocks hiding either (checked recursively)."""
    for token in tokens:
        kind = getattr(token, "type", None)
        if kind == "url":
            if not _css_url_allowed(token.value):  # type: ignore[attr-defined]  # a tinycss2 node of the kind checked above
                return False
        elif kind == "function":
            name = token.lower_name  # type: ignore[attr-defined]  # a tinycss2 node of the kind checked above
            if name == "url":
                strings = [t for t in token.arguments if getattr(t, "type", None) == "string"]  # type: ignore[attr-defined]  # a tinycss2 node of the kind checked above
                if len(strings) != 1 or not _css_url_allowed(strings[0].value):
                    return False
            elif name not in _CSS_FUNCTIONS or not _css_value_safe(token.arguments):  # type: ignore[attr-defined]  # a tinycss2 node of the kind checked above
                return False
        elif kind in ("() block", "[] block", "{} block"):
            if not _css_value_safe(token.content):  # type: ignore[attr-defined]  # a tinycss2 node of the kind checked above
                return False
        elif kind in ("at-keyword", "error"):
            return False
    return True


def _css_url_allowed(url: str) -> bool:
    head = _URL_NOISE.sub("", url[:64])
    return head.startswith("#") or bool(_RASTER_DATA.match(head))
