"""HTML pages for people (pure functions: data in, a document out).

The verification page behind ``GET /certs/{id}`` (browsers), its 404, the access-code
form of ``GET /verify`` and the learner's page. No scripts anywhere: they are served
with ``default-src 'none'; style-src 'unsafe-inline'; img-src data: 'self'``.

Templates are Python string building with :func:`html.escape` on every value rather
than Jinja2: four small pages do not justify a new dependency and a second template
language, and one helper (:func:`certflow.pages.layout.value`) both escapes and
marks direction/language, so no call site can forget either.
"""

from certflow.pages.access import access_code_page, match_access_code, normalise_code
from certflow.pages.layout import document, value
from certflow.pages.learner import learner_page
from certflow.pages.verification import CHECK_LABELS, not_found_page, verification_page
from certflow.pages.wallet import wallet_offer_page

__all__ = [
    "CHECK_LABELS",
    "access_code_page",
    "document",
    "learner_page",
    "match_access_code",
    "normalise_code",
    "not_found_page",
    "value",
    "verification_page",
    "wallet_offer_page",
]
