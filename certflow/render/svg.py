"""Certificate SVG templates: parse once, sanitise, compile, then fill fast.

A template is fetched from a URL an administrator configured, so it is trusted to be
*meant* as a certificate but not trusted to be harmless: it is parsed with entity
expansion, DTD loading and network access all off, and anything that could run in a
browser (scripts, event handlers, ``javascript:`` links) is stripped, because the
filled certificate is shown to learners in their browsers.

Parsing happens once per template; filling happens once per certificate, which is why
the sanitised tree is serialised a single time and split at Sunbird's ``${name}``
placeholders. ``fill`` is then only escaping the values and joining strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import orjson
from lxml import etree

from certflow.errors import CertflowError, ErrorCode

__all__ = ["DEFAULT_MAX_BYTES", "SvgTemplate"]

#: Larger than any real certificate template (a few KB of markup plus embedded logos).
DEFAULT_MAX_BYTES = 2_097_152
#: Largest sanitised template, measured as a JSON string (quotes escaped), that still
#: makes certificates that fit in one Kafka record (about 1 MB) next to their QR code
#: (about 15 KB), credential and values. A larger one is refused as a template, once,
#: rather than failing every certificate made from it.
MAX_CERTIFICATE_MARKUP_BYTES = 768 * 1024

_SVG_ROOT = "{http://www.w3.org/2000/svg}svg"

#: Sunbird's placeholder syntax. The capturing group makes ``re.split`` return the
#: literal segments at even indices and the placeholder names at odd indices.
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

#: Elements that can run code or embed arbitrary HTML, matched by local name in any
#: namespace and case-insensitively so a prefix or odd casing cannot smuggle them in.
_FORBIDDEN_ELEMENTS = frozenset({"script", "foreignobject"})

#: URL schemes that execute or read local files when a browser follows the link.
_DANGEROUS_SCHEMES = ("javascript:", "vbscript:", "file:")

#: Browsers ignore ASCII whitespace and control characters inside a URL scheme
#: (``java\tscript:`` still runs), so they are removed before the scheme is checked.
_URL_NOISE = re.compile(r"[\x00-\x20\x7f]+")

#: SMIL elements that can set an attribute at run time, e.g.
#: ``<set attributeName="href" to="javascript:...">``.
_ANIMATION_ELEMENTS = frozenset({"set", "animate", "animatemotion", "animatetransform"})

#: Prefix given to a placeholder that decides the scheme of a link (``href="${x}"``),
#: so that :meth:`SvgTemplate.fill` checks the value it puts there. Placeholder names
#: are ``[A-Za-z_][A-Za-z0-9_]*``; a template spelling this prefix itself only makes
#: its own placeholder a checked one.
_URL_SLOT = "certflow_url__"

#: What may follow a scheme-deciding placeholder in a link: nothing, or the start of a
#: path, query or fragment, none of which can turn a safe value into a scheme.
_URL_SLOT_SUFFIX = re.compile(r"^[/?#]|^$")

#: Characters XML 1.0 forbids anywhere in a document (the caller should have removed
#: them already; ``fill`` refuses rather than emit a document no parser accepts).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def hardened_parser() -> etree.XMLParser:
    """A parser that never expands entities, loads a DTD or touches the network: for
    templates, and for every later parse of a filled certificate (rendering,
    inlining images), whose markup is a template plus learners' names.

    Built per call: a template is parsed once, so construction is cheap enough, and a
    fresh parser shares no state between templates or threads.
    """
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        strip_cdata=True,
    )


def _local_name(qualified: str) -> str:
    """``{ns}name``, ``prefix:name`` or ``name`` → ``name`` lower-cased.

    Matching is namespace-blind on purpose: a browser may honour ``href`` or
    ``script`` under a namespace or prefix we did not think of.
    """
    return qualified.rpartition("}")[2].rpartition(":")[2].lower()


def _is_dangerous_url(value: str) -> bool:
    """True for hrefs a browser would execute or resolve against the local disk.

    Only the start decides, so a 10 KB ``data:`` URI is judged by its first bytes;
    the whole value is scanned only when noise might be hiding the scheme.
    """
    head = _URL_NOISE.sub("", value[:64])
    if len(head) < 16 and len(value) > 64:
        head = _URL_NOISE.sub("", value)
    return head.lower().startswith(_DANGEROUS_SCHEMES)


def _placeholder_link(value: str) -> str | None:
    """An href that contains placeholders, made safe to fill; ``None`` to drop it.

    A link whose literal start already fixes the scheme (``https://…/${id}``) or
    makes it relative (``/certs/${id}``, ``#${id}``) cannot be turned into
    ``javascript:`` by any value. One whose scheme a placeholder decides
    (``${signatory0Image}``, Sunbird's usual form) gets that placeholder marked, so
    ``fill`` refuses dangerous values there: a learner named ``javascript:alert(1)``
    must not become a clickable script. Anything more contrived (``java${x}``,
    ``${a}${b}``) is dropped.
    """
    first = _PLACEHOLDER.search(value)
    assert first is not None
    prefix = _URL_NOISE.sub("", value[: first.start()])
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", prefix) or prefix[:1] in ("/", "?", "#", "."):
        return value  # the literal start decides; it was checked as a literal already
    if prefix and not re.fullmatch(r"[A-Za-z0-9+.-]*", prefix):
        return value  # e.g. "a/${x}": a relative path, whatever follows
    suffix = value[first.end() :]
    if prefix or not _URL_SLOT_SUFFIX.match(_URL_NOISE.sub("", suffix)):
        return None
    marked = "${" + _URL_SLOT + first.group(1).removeprefix(_URL_SLOT) + "}"
    return value[: first.start()] + marked + suffix


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


def _should_remove_element(element: etree._Element) -> bool:
    """True for elements that run code, embed HTML, pull in remote markup or animate
    a link or event handler into place after sanitising has run."""
    name = _local_name(element.tag)
    if name in _FORBIDDEN_ELEMENTS:
        return True
    if name == "use":
        # Only same-document references: an external <use> pulls in markup we never saw.
        hrefs = [v for k, v in element.attrib.items() if _local_name(k) == "href"]
        return any(not v.strip().startswith("#") for v in hrefs)
    if name in _ANIMATION_ELEMENTS:
        attribute = element.get("attributeName", "")
        target = _local_name(attribute)
        # A placeholder there would let a value choose the attribute to animate.
        return target == "href" or target.startswith("on") or "${" in attribute
    return False


def _sanitise(root: etree._Element) -> int:
    """Strip scripts, event handlers and dangerous links in place; return how many."""
    removed = 0
    doomed = [el for el in root.iterdescendants() if _should_remove_element(el)]
    doomed_set = set(doomed)
    for element in doomed:
        # A doomed element inside another doomed one is already gone with its parent.
        if any(ancestor in doomed_set for ancestor in element.iterancestors()):
            continue
        remove_element(element)
        removed += 1
    for element in root.iter():
        for key in list(element.attrib):
            name = _local_name(key)
            value = element.attrib[key]
            if name.startswith("on") or (name == "href" and _is_dangerous_url(value)):
                del element.attrib[key]
                removed += 1
            elif name == "href" and _PLACEHOLDER.search(value):
                link = _placeholder_link(value)
                if link is None:
                    del element.attrib[key]
                    removed += 1
                elif link != value:
                    element.attrib[key] = link
    return removed


def _escape(value: str) -> str:
    """Escape for both XML text and a double-quoted attribute value.

    Chained ``str.replace`` beats ``str.translate`` by an order of magnitude on the
    ~10 KB QR data URI, which dominates fill time. ``&`` goes first so the entities
    introduced by later replacements are not escaped twice. Tab, newline and carriage
    return become character references so attribute-value normalisation and
    end-of-line handling cannot change what the reader sees.
    """
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
        .replace("\t", "&#9;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
    )


class SvgTemplate:
    """A sanitised certificate template, compiled for fast, repeated filling.

    Build one with :meth:`parse`; the instance is immutable and safe to share across
    tasks and threads, so a worker can cache it per template URL.
    """

    __slots__ = ("url", "removed", "_parts", "_slots", "_placeholders", "_url_slots")

    url: str
    #: How many elements and attributes sanitising removed; worth logging when > 0.
    removed: int

    def __init__(self, url: str, markup: str, removed: int) -> None:
        """Compile already-sanitised ``markup``; use :meth:`parse` from outside."""
        self.url = url
        self.removed = removed
        pieces = _PLACEHOLDER.split(markup)
        # Even indices are literal markup, odd indices are placeholder names; the
        # name slots are overwritten with escaped values on every fill.
        self._parts: tuple[str, ...] = tuple(pieces)
        by_name: dict[str, list[int]] = {}
        in_links: dict[str, list[int]] = {}
        for index in range(1, len(pieces), 2):
            name = pieces[index]
            if name.startswith(_URL_SLOT):
                in_links.setdefault(name.removeprefix(_URL_SLOT), []).append(index)
            else:
                by_name.setdefault(name, []).append(index)
        self._slots: tuple[tuple[str, tuple[int, ...]], ...] = tuple(
            (name, tuple(indices)) for name, indices in by_name.items()
        )
        #: Placeholders that decide a link's scheme: filled only with safe values.
        self._url_slots: tuple[tuple[str, tuple[int, ...]], ...] = tuple(
            (name, tuple(indices)) for name, indices in in_links.items()
        )
        self._placeholders = frozenset(by_name) | frozenset(in_links)

    @classmethod
    def parse(
        cls, source: bytes, *, url: str, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> SvgTemplate:
        """Parse, validate and sanitise ``source``, fetched from ``url``.

        Raises ``CertflowError(TEMPLATE_INVALID)`` for anything that is not a plain
        SVG document: the event that referenced it is dead-lettered, not retried,
        because fetching the same bytes again cannot help.
        """
        if not source or not source.strip():
            raise _invalid(url, "is empty")
        if len(source) > max_bytes:
            raise _invalid(url, f"is {len(source)} bytes, over the {max_bytes}-byte limit")
        # Cheap first line of defence; the parsed DTD is checked too, which also
        # catches declarations hidden by a non-UTF-8 encoding.
        if b"<!ENTITY" in source:
            raise _invalid(url, "declares XML entities in its DOCTYPE, which is not allowed")
        try:
            root = etree.fromstring(source, hardened_parser())
        except etree.XMLSyntaxError as exc:
            raise _invalid(url, f"is not well-formed XML: {exc}") from None

        dtd = root.getroottree().docinfo.internalDTD
        if dtd is not None and any(True for _ in dtd.iterentities()):
            raise _invalid(url, "declares XML entities in its DOCTYPE, which is not allowed")
        if root.tag != _SVG_ROOT:
            raise _invalid(url, f"has root element {root.tag!r}, expected an SVG <svg> element")
        for node in root.iter(etree.Entity):
            # Only possible with an external DTD we deliberately did not load.
            raise _invalid(url, f"references undefined entity {node.text}")

        removed = _sanitise(root)
        # Serialising the root element alone drops any DOCTYPE and XML declaration.
        markup = etree.tostring(root, encoding="unicode", with_tail=False)
        size = len(orjson.dumps(markup))
        if size > MAX_CERTIFICATE_MARKUP_BYTES:
            raise _invalid(
                url,
                f"is {size} bytes as certificate markup; at most {MAX_CERTIFICATE_MARKUP_BYTES} fit "
                "in a published certificate (link large images instead of embedding them)",
            )
        return cls(url, markup, removed)

    @property
    def placeholders(self) -> frozenset[str]:
        """Names of every ``${name}`` the template uses, for checking the mapping."""
        return self._placeholders

    def fill(self, values: Mapping[str, str | None]) -> str:
        """Return the certificate SVG with every placeholder replaced.

        Values are inserted as literal text, XML-escaped, and never re-scanned for
        placeholders, so a learner named ``${courseName}`` gets exactly that name. A
        placeholder without a value becomes empty rather than showing ``${...}`` on a
        certificate. A placeholder that decides a link's scheme is left empty
        when its value is a ``javascript:``, ``vbscript:`` or ``file:`` URL. Raises
        ``ValueError`` if a value holds a character XML 1.0 forbids, since the output
        would not parse anywhere.
        """
        parts = list(self._parts)
        for name, indices in self._slots:
            escaped = _escaped_value(name, values.get(name))
            for index in indices:
                parts[index] = escaped
        for name, indices in self._url_slots:
            value = values.get(name)
            escaped = "" if value and _is_dangerous_url(value) else _escaped_value(name, value)
            for index in indices:
                parts[index] = escaped
        return "".join(parts)

    def __repr__(self) -> str:
        return f"SvgTemplate(url={self.url!r}, placeholders={sorted(self._placeholders)!r})"


def _escaped_value(name: str, value: str | None) -> str:
    if not value:
        return ""
    # isprintable() is a fast C scan that is True for almost every real value; only
    # the rest pay for the regex.
    if not value.isprintable() and _XML_ILLEGAL.search(value):
        raise ValueError(
            f"value for placeholder {name!r} contains a character not allowed in XML"
        )
    return _escape(value)


def _invalid(url: str, problem: str) -> CertflowError:
    return CertflowError(ErrorCode.TEMPLATE_INVALID, f"template {url} {problem}")
