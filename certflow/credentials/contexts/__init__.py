"""The JSON-LD contexts certflow's credentials use, shipped with the package.

Nothing here touches the network. A context URL that is not shipped is an error,
not a fetch: verifying a credential must not depend on (or be steered by) whatever
a remote server returns for its ``@context`` today. The files and where they were
copied from are listed in ``README.md`` beside this module.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any

VC_V2_CONTEXT = "https://www.w3.org/ns/credentials/v2"
OB_V3_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
#: The W3C context for terms no vocabulary defines (``@vocab`` → ``…/undefined-term#``).
UNDEFINED_TERMS_CONTEXT = "https://www.w3.org/ns/credentials/undefined-terms/v2"

#: VC Data Model 1.1's context: the VC-API accepts 1.1 credentials (the W3C eddsa suite sends them).
VC_V1_CONTEXT = "https://www.w3.org/2018/credentials/v1"
#: Defines DataIntegrityProof for documents whose base context does not (VC 1.1).
DATA_INTEGRITY_V2_CONTEXT = "https://w3id.org/security/data-integrity/v2"
#: The W3C examples context (its published document is one ``@vocab``): the conformance suites' vocabulary.
EXAMPLES_CONTEXT = "https://www.w3.org/ns/credentials/examples/v2"

#: Context URL → file name in this package.
_SHIPPED: dict[str, str] = {
    VC_V2_CONTEXT: "credentials-v2.jsonld",
    OB_V3_CONTEXT: "ob-v3p0-context-3.0.3.json",
    UNDEFINED_TERMS_CONTEXT: "credentials-undefined-terms-v2.jsonld",
}
#: Contexts only the VC-API (``vcapi.py``) reads: credentials certflow is asked to
#: issue or verify may use them; certflow's own certificates never do.
_VC_API_ONLY: dict[str, str] = {
    VC_V1_CONTEXT: "credentials-v1.jsonld",
    DATA_INTEGRITY_V2_CONTEXT: "data-integrity-v2.jsonld",
    EXAMPLES_CONTEXT: "credentials-examples-v2.jsonld",
}


class ContextNotShipped(KeyError):
    """A context URL certflow does not ship; it is never fetched instead."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url

    def __str__(self) -> str:
        return (
            f"JSON-LD context {self.url!r} is not shipped with certflow and is never "
            f"fetched; shipped: {', '.join(sorted(_SHIPPED))}"
        )


@cache
def _parsed(url: str) -> dict[str, Any]:
    name = _SHIPPED.get(url) or _VC_API_ONLY[url]
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def load_context(url: str) -> dict[str, Any]:
    """The context document published at ``url`` (a private copy the caller may change).

    Raises :class:`ContextNotShipped` for any other URL.
    """
    if url not in _SHIPPED:
        raise ContextNotShipped(url)
    return copy.deepcopy(_parsed(url))


class ShippedContexts(Mapping[str, dict[str, Any]]):
    """Context URL → context document, for the shipped contexts only.

    It is also a pyld-style document loader (``loader(url, options)``), so a
    JSON-LD processor given it can only ever see these documents.
    """

    def __getitem__(self, url: str) -> dict[str, Any]:
        return load_context(url)

    def __iter__(self) -> Iterator[str]:
        return iter(_SHIPPED)

    def __len__(self) -> int:
        return len(_SHIPPED)

    def __contains__(self, url: object) -> bool:
        return url in _SHIPPED

    def __call__(self, url: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"contextUrl": None, "documentUrl": url, "document": load_context(url)}


#: The only document loader certflow uses: the shipped contexts, nothing fetched.
document_loader = ShippedContexts()


def vc_api_document_loader(url: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The VC-API's loader: the shipped contexts, plus VC 1.1, Data Integrity v2 and
    the W3C examples context; nothing is fetched."""
    if url in _VC_API_ONLY:
        return {"contextUrl": None, "documentUrl": url, "document": copy.deepcopy(_parsed(url))}
    return document_loader(url, options)

__all__ = [
    "DATA_INTEGRITY_V2_CONTEXT",
    "EXAMPLES_CONTEXT",
    "OB_V3_CONTEXT",
    "UNDEFINED_TERMS_CONTEXT",
    "VC_V1_CONTEXT",
    "VC_V2_CONTEXT",
    "ContextNotShipped",
    "ShippedContexts",
    "document_loader",
    "load_context",
    "vc_api_document_loader",
]
