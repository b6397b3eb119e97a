"""Certificate SVG templates: parse once, sanitise, compile, then fill fast.

A template is fetched from a URL an administrator configured, so it is trusted to be
*meant* as a certificate but not trusted to be harmless: it is parsed with entity
expansion, DTD loading and network access all off, and only what
:mod:`certflow.render.sanitise` allows stays, because the filled certificate is
shown to learners and employers in their browsers.

Parsing happens once per template; filling happens once per certificate, which is why
the sanitised tree is serialised a single time and split at Sunbird's ``${name}``
placeholders. ``fill`` is then only escaping the values and joining strings.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

import orjson
from lxml import etree

from certflow.errors import CertflowError, ErrorCode
from certflow.render.sanitise import (
    PLACEHOLDER,
    LinkKind,
    LinkSlotMarker,
    TemplateRefused,
    remove_element,
    sanitise,
    url_allowed,
)

__all__ = ["DEFAULT_MAX_BYTES", "SvgTemplate", "hardened_parser", "remove_element"]

#: Larger than any real certificate template (a few KB of markup plus embedded logos).
DEFAULT_MAX_BYTES = 2_097_152
#: Largest sanitised template, measured as a JSON string (quotes escaped), that still
#: makes certificates that fit in one Kafka record (about 1 MB) next to their QR code
#: (about 15 KB), credential and values. A larger one is refused as a template, once,
#: rather than failing every certificate made from it.
MAX_CERTIFICATE_MARKUP_BYTES = 768 * 1024

_SVG_ROOT = "{http://www.w3.org/2000/svg}svg"

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

    __slots__ = ("_parts", "_placeholders", "_slots", "_url_slots", "digest", "removed", "url")

    url: str
    #: How many elements and attributes sanitising removed; worth logging when > 0.
    removed: int
    #: SHA-256 of the sanitised markup: a certificate rendered again later, from its
    #: facts, is drawn only from the very template it was issued with.
    digest: str

    def __init__(self, url: str, markup: str, removed: int) -> None:
        """Compile already-sanitised ``markup``; use :meth:`parse` from outside."""
        self.url = url
        self.removed = removed
        self.digest = hashlib.sha256(markup.encode()).hexdigest()
        pieces = PLACEHOLDER.split(markup)
        # Even indices are literal markup, odd indices are placeholder names; the
        # name slots are overwritten with escaped values on every fill.
        self._parts: tuple[str, ...] = tuple(pieces)
        by_name: dict[str, list[int]] = {}
        in_links: dict[tuple[str, LinkKind], list[int]] = {}
        for index in range(1, len(pieces), 2):
            link = LinkSlotMarker.unmark(pieces[index])
            if link is not None:
                in_links.setdefault(link, []).append(index)
            else:
                by_name.setdefault(pieces[index], []).append(index)
        self._slots: tuple[tuple[str, tuple[int, ...]], ...] = tuple(
            (name, tuple(indices)) for name, indices in by_name.items()
        )
        #: Placeholders that decide a link's scheme: filled only with allowed values.
        self._url_slots: tuple[tuple[str, LinkKind, tuple[int, ...]], ...] = tuple(
            (name, kind, tuple(indices)) for (name, kind), indices in in_links.items()
        )
        self._placeholders = frozenset(by_name) | frozenset(name for name, _ in in_links)

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
        if dtd is not None and any(True for _ in dtd.iterentities()):  # type: ignore[union-attr]  # lxml-stubs' DTD lacks iterentities()
            raise _invalid(url, "declares XML entities in its DOCTYPE, which is not allowed")
        if root.tag != _SVG_ROOT:
            raise _invalid(url, f"has root element {root.tag!r}, expected an SVG <svg> element")
        for node in root.iter(etree.Entity):
            # Only possible with an external DTD we deliberately did not load.
            raise _invalid(url, f"references undefined entity {node.text}")

        try:
            removed = sanitise(root)
        except TemplateRefused as exc:
            raise _invalid(url, str(exc)) from None
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
        unless its value is a link the element allows (:func:`url_allowed`). Raises
        ``ValueError`` if a value holds a character XML 1.0 forbids, since the output
        would not parse anywhere.
        """
        parts = list(self._parts)
        for name, indices in self._slots:
            escaped = _escaped_value(name, values.get(name))
            for index in indices:
                parts[index] = escaped
        for name, kind, indices in self._url_slots:
            value = values.get(name)
            escaped = _escaped_value(name, value) if value and url_allowed(value, kind) else ""
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
