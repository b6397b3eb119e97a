"""JSON-LD processing for credentials: safe-mode expansion and RDFC-1.0, offline.

Why this exists: an ``eddsa-rdfc-2022`` proof signs the RDF graph a credential
means, not its JSON; a property the contexts do not define is silently dropped by a
JSON-LD processor, so it would be *unsigned* yet still displayed. JSON-LD "safe
mode" (what Digital Bazaar's signers and verifiers use) turns every such loss into
an error. pyld (the maintained Python JSON-LD processor, JSON-LD 1.1 with
``@protected``) has no safe mode, so :func:`safe_expand` gets the same answer
another way: it expands the document with a sentinel ``@vocab`` appended to its
contexts. A term or type the contexts define expands as before; one they do not
falls to the sentinel, and is reported. With no sentinel IRI in the result, the
expansion is exactly the document's own, and RDFC-1.0 canonicalises that.

Every context is loaded with :data:`certflow.credentials.contexts.document_loader`
(the shipped contexts; nothing is fetched) unless the caller passes another loader.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pyld import jsonld
from pyld.canon import URDNA2015

from certflow.credentials.contexts import document_loader as shipped_loader

#: A pyld document loader: ``loader(url, options) -> {"document": …, …}``.
DocumentLoader = Callable[..., Any]

_SENTINEL = "urn:certflow:undefined-term#"
#: An absolute IRI (RFC 3987 scheme, then no spaces or characters IRIs forbid).
_ABSOLUTE_IRI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]*")


class UnsafeJsonLd(ValueError):
    """The document is not fully defined JSON-LD; ``problems`` says where, in words."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def is_absolute_iri(value: Any) -> bool:
    return isinstance(value, str) and _ABSOLUTE_IRI.fullmatch(value) is not None


#: pyld resolves a relative IRI against this base when the document has none
#: (``jsonld.DEFAULT_BASE_IRI``), so an IRI under it was relative in the document.
_RELATIVE_MARK = getattr(jsonld, "DEFAULT_BASE_IRI", "http://example.org/base/")


def _relative_or_malformed(iri: str) -> bool:
    if iri.startswith("_:"):  # a blank node identifier
        return False
    return iri.startswith(_RELATIVE_MARK) or not is_absolute_iri(iri)


def safe_expand(document: Mapping[str, Any], *, loader: DocumentLoader | None = None) -> list[Any]:
    """The JSON-LD expansion of ``document``, or :class:`UnsafeJsonLd` when anything
    would be lost or unclear: an undefined property or type, a relative or malformed
    IRI, a redefined protected term, a context that is not shipped, bad JSON-LD."""
    if not isinstance(document, Mapping):
        raise UnsafeJsonLd(["not a JSON object"])
    context = document.get("@context")
    if context is None:
        raise UnsafeJsonLd(["no @context"])
    contexts = context if isinstance(context, list) else [context]
    for entry in contexts:
        if not isinstance(entry, str | dict):
            raise UnsafeJsonLd([f"@context entry {str(entry)[:80]!r} is neither a URL nor an object"])
        if isinstance(entry, str) and not is_absolute_iri(entry):
            raise UnsafeJsonLd([f"@context entry {entry[:200]!r} is not a URL"])
    probe = dict(document)
    # First, so that a document's own @vocab (the W3C undefined-terms context)
    # still decides for the terms it covers.
    probe["@context"] = [{"@vocab": _SENTINEL}, *contexts]
    dropped: list[str] = []
    try:
        expanded: list[Any] = jsonld.expand(
            probe,
            {"documentLoader": loader or shipped_loader, "base": ""},
            on_property_dropped=lambda name: dropped.append(str(name)),
        )
    except jsonld.JsonLdError as exc:
        raise UnsafeJsonLd([f"JSON-LD error: {_jsonld_reason(exc)}"]) from None
    except (RecursionError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise UnsafeJsonLd([f"not processable as JSON-LD: {exc}"[:300]]) from None
    problems: list[str] = []
    if dropped:
        problems.append(f"properties JSON-LD drops: {', '.join(sorted(set(dropped))[:20])}")
    undefined = sorted({iri[len(_SENTINEL):] for iri in _iris(expanded) if iri.startswith(_SENTINEL)})
    if undefined:
        problems.append(f"undefined terms (not in the @context): {', '.join(undefined[:20])}")
    malformed = sorted(
        {iri for iri in _iris(expanded) if not iri.startswith(_SENTINEL) and _relative_or_malformed(iri)}
    )
    if malformed:
        shown = ", ".join(repr(iri.removeprefix(_RELATIVE_MARK)[:100]) for iri in malformed[:10])
        problems.append(f"relative or malformed IRIs: {shown}")
    if problems:
        raise UnsafeJsonLd(problems)
    return expanded


#: Most RDF statements a document may have to be canonicalised (a certificate has ~40).
MAX_QUADS = 2_000
#: Most "hash N-degree quads" steps RDFC-1.0 may take. The step recurses over
#: permutations of blank nodes that look alike, so a crafted "poison" graph makes
#: canonicalisation exponential; RDFC-1.0 §4.4 tells implementations to guard
#: against it. A certificate needs none or a handful.
MAX_DEEP_ITERATIONS = 500


class _BoundedURDNA2015(URDNA2015):  # type: ignore[misc]  # pyld ships no type information
    """pyld's RDFC-1.0 with a work limit (pyld itself has none)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._left = limit

    def hash_n_degree_quads(self, id_: Any, issuer: Any) -> Any:
        self._left -= 1
        if self._left < 0:
            raise UnsafeJsonLd(
                ["RDF canonicalization refused: too many similar blank nodes (a poison graph?)"]
            )
        return super().hash_n_degree_quads(id_, issuer)


def canonical_nquads(
    document: Mapping[str, Any],
    *,
    loader: DocumentLoader | None = None,
    max_quads: int = MAX_QUADS,
    max_deep_iterations: int = MAX_DEEP_ITERATIONS,
) -> str:
    """RDFC-1.0 (URDNA2015) canonical N-Quads of ``document``, after :func:`safe_expand`.

    Bounded: more than ``max_quads`` statements or ``max_deep_iterations`` blank
    node disambiguation steps raise :class:`UnsafeJsonLd` instead of burning CPU
    on a hostile document.
    """
    expanded = safe_expand(document, loader=loader)
    try:
        dataset = jsonld.JsonLdProcessor().to_rdf(
            expanded,
            {"documentLoader": loader or shipped_loader, "base": "", "produceGeneralizedRdf": False},
        )
    except jsonld.JsonLdError as exc:
        raise UnsafeJsonLd([f"RDF conversion failed: {_jsonld_reason(exc)}"]) from None
    quads = sum(len(graph) for graph in dataset.values())
    if quads > max_quads:
        raise UnsafeJsonLd([f"too large to canonicalize: {quads} RDF statements (at most {max_quads})"])
    nquads: str = _BoundedURDNA2015(max_deep_iterations).main(dataset, {"format": "application/n-quads"})
    return nquads


def _iris(value: Any) -> Iterator[str]:
    """Every property IRI, ``@type`` and ``@id`` in an expanded document."""
    if isinstance(value, dict):
        for name, member in value.items():
            if not name.startswith("@"):
                yield name
                yield from _iris(member)
            elif name == "@type" and "@value" not in value:
                yield from (member if isinstance(member, list) else [member])
            elif name == "@id":
                if isinstance(member, str):
                    yield member
            elif name in ("@graph", "@list", "@set", "@included", "@reverse"):
                yield from _iris(member)
            elif name == "@type" and isinstance(member, str) and member != "@json":
                yield member  # a typed literal's datatype IRI
    elif isinstance(value, list):
        for member in value:
            yield from _iris(member)


def _jsonld_reason(exc: BaseException) -> str:
    """pyld wraps errors in errors; the innermost message says what was wrong."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        message = getattr(current, "message", None) or str(current)
        code = getattr(current, "code", None)
        parts.append(f"{message}{f' ({code})' if code else ''}")
        current = getattr(current, "cause", None) or current.__cause__
    text = parts[-1] if parts else str(exc)
    if "not shipped" not in text:
        for part in parts:
            if "not shipped" in part or "protected" in part.lower():
                text = part
                break
    return text.split("\n", 1)[0][:300]
