"""What a learner sees after "Add to wallet": the one-time claim link for a wallet.

No script can start a wallet from the page (the page allows none), so it offers what
wallets take: the deep link (opened on the phone that has the wallet) and the same
link as a QR code (scanned by the wallet on another device), with when it expires.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from certflow.pages.layout import attr, document, e, value

__all__ = ["wallet_offer_page"]


def wallet_offer_page(certificate_name: str, offer: Mapping[str, Any], qr_data_uri: str) -> str:
    """``offer``: what :func:`certflow.vcapi.exchanges.offer` answers (``deepLink``,
    ``exchangeUrl``, ``expires``); ``qr_data_uri``: a PNG ``data:`` URI of the deep link."""
    deep_link = str(offer["deepLink"])
    main = (
        "<h1>Add to your wallet</h1>"
        f"<p>{value(certificate_name)}</p>"
        "<p>Open the link on the phone that has your wallet (such as the Learner Credential "
        "Wallet), or scan the code with the wallet. The wallet asks you to confirm, then keeps "
        "a copy of the certificate that anyone can verify.</p>"
        f'<p><a class="button" href="{attr(deep_link)}" rel="noopener noreferrer">Open in my wallet</a></p>'
        f'<p><img src="{attr(qr_data_uri)}" width="240" height="240" '
        'alt="QR code of the link that adds this certificate to a wallet"></p>'
        f"<p>The link works once, until {e(str(offer.get('expires', ''))[:16].replace('T', ' '))} UTC. "
        "Wallets that ask for an exchange URL take this one:</p>"
        f"<p><code>{e(str(offer['exchangeUrl']))}</code></p>"
    )
    return document("Add to your wallet", main, header="<strong>Your certificates</strong>")
