"""The VC-API (W3C CCG) on the worker's web server: issue, verify, and "add to wallet".

* :mod:`certflow.vcapi.views`: ``POST /credentials/issue`` (``CERTFLOW_ISSUER_API_TOKEN``),
  ``POST /credentials/verify``, ``POST /presentations/verify``; API-issued credentials
  are kept in the registry like any certificate.
* :mod:`certflow.vcapi.exchanges`: ``POST /certs/{id}/exchanges`` (make a one-time
  claim link) and ``POST /exchanges/{exchangeId}`` (a wallet's VC-API exchange).

The pure logic is in :mod:`certflow.credentials.vcapi` and
:mod:`certflow.credentials.exchange`; these modules are its HTTP and Kafka wiring.
"""
