"""The pages' shared frame: landmarks, CSS (WCAG 2.1 AA colours, mobile first),
and the one way a value is put in a page."""

from __future__ import annotations

import html
from datetime import date, datetime
from urllib.parse import quote

from certflow.i18n import lang_of, text_direction

#: Contrast on white: text #1a1a1a 17.4:1, muted #4d4d4d 8.5:1, links #0b57d0 6.4:1;
#: white on the banners: green #1b5e20 7.9:1, red #b71c1c 6.6:1, amber text
#: #5c3c00 on #fff4d6 9.1:1, white on the button blue #0b57d0 6.4:1. All ≥ 4.5:1 (AA).
CSS = """
*{box-sizing:border-box}
body{margin:0;font-family:'Noto Sans',system-ui,sans-serif;color:#1a1a1a;background:#fff;line-height:1.5}
header,main,footer{max-width:48rem;margin:0 auto;padding:1rem}
header{display:flex;align-items:center;gap:1rem;border-bottom:1px solid #d0d0d0}
header img{max-height:3rem;max-width:8rem}
footer{color:#4d4d4d;font-size:.9rem;border-top:1px solid #d0d0d0}
h1{font-size:1.5rem;margin:.5rem 0}
h2{font-size:1.2rem;margin:1.5rem 0 .5rem}
a{color:#0b57d0}
a:focus,button:focus,input:focus{outline:3px solid #1a1a1a;outline-offset:2px}
.verdict{padding:1rem;border-radius:.4rem;font-size:1.15rem;font-weight:bold;color:#fff}
.ok{background:#1b5e20}.bad{background:#b71c1c}
.warn{background:#fff4d6;color:#5c3c00;border:1px solid #5c3c00}
.picture img{width:100%;height:auto;border:1px solid #d0d0d0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}
dt{color:#4d4d4d}dd{margin:0;overflow-wrap:anywhere}
ul.checks{list-style:none;padding:0}
ul.checks li{padding:.3rem 0}
.pass{color:#1b5e20;font-weight:bold}.fail{color:#b71c1c;font-weight:bold}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;padding:0;list-style:none}
.actions a{display:inline-block;padding:.5rem .9rem;border-radius:.3rem;
background:#0b57d0;color:#fff;text-decoration:none}
.actions a:hover{background:#0842a0}
.qr img{width:10rem;height:10rem}
form{display:grid;gap:.6rem;max-width:24rem}
input{font:inherit;padding:.5rem;border:1px solid #4d4d4d;border-radius:.3rem}
button{font:inherit;padding:.5rem .9rem;border:0;border-radius:.3rem;
background:#0b57d0;color:#fff;cursor:pointer}
.cards{list-style:none;padding:0}
.cards>li{border:1px solid #d0d0d0;border-radius:.4rem;padding:1rem;margin:0 0 1rem}
@media (max-width:30rem){dl{grid-template-columns:1fr}dt{margin-top:.4rem}}
"""

e = html.escape


def value(text: object, *, tag: str = "span", lang: str | None = None, cls: str = "") -> str:
    """``text`` escaped, in ``tag`` with ``dir`` from its first strong character and
    ``lang`` (given, e.g. the profile's, else guessed from its script)."""
    shown = "" if text is None else str(text)
    guessed = lang_of(shown, lang)
    attrs = f' dir="{text_direction(shown)}"'
    if guessed:
        attrs += f' lang="{e(guessed)}"'
    if cls:
        attrs += f' class="{e(cls)}"'
    return f"<{tag}{attrs}>{e(shown)}</{tag}>"


def attr(text: object) -> str:
    """A value for an attribute (quotes escaped)."""
    return e("" if text is None else str(text), quote=True)


def path_segment(text: str) -> str:
    return quote(text, safe="")


def day(moment: str | date | datetime | None) -> str:
    """``yyyy-MM-dd`` of an ISO date or instant (or of a date), "" if none."""
    if moment is None:
        return ""
    if isinstance(moment, datetime | date):
        return moment.isoformat()[:10]
    return str(moment)[:10]


def document(title: str, main: str, *, header: str = "", lang: str = "en") -> str:
    """A whole page: ``<header>``, ``<main>`` (its ``<h1>`` is the caller's), ``<footer>``."""
    return (
        f'<!DOCTYPE html><html lang="{attr(lang)}" dir="ltr"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{e(title)}</title><style>{CSS}</style></head><body>"
        f"<header>{header}</header>"
        f'<main id="main">{main}</main>'
        "<footer><p>Certificates are verifiable credentials (W3C VC 2.0, Open Badges 3.0): "
        "the checks above were made by this server when the page was served.</p></footer>"
        "</body></html>"
    )
