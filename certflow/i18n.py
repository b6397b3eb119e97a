"""Direction and language of a displayed value (a learner's name, a course name).

Pages and emails mark each value with ``dir`` (and ``lang`` where it can be told),
so an Urdu name in an English page is laid out right to left and read by a screen
reader with the right voice.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

Direction = Literal["ltr", "rtl", "auto"]

#: Script (first word of a letter's Unicode name) → a language written in it. A
#: heuristic: Devanagari may be Marathi, Arabic script may be Arabic or Persian; a
#: profile's language, when known, is better and wins (see :func:`lang_of`).
_SCRIPT_LANG = {
    "DEVANAGARI": "hi",
    "BENGALI": "bn",
    "GURMUKHI": "pa",
    "GUJARATI": "gu",
    "ORIYA": "or",
    "TAMIL": "ta",
    "TELUGU": "te",
    "KANNADA": "kn",
    "MALAYALAM": "ml",
    "SINHALA": "si",
    "ARABIC": "ur",
    "HEBREW": "he",
    "THAI": "th",
    "CJK": "zh",
    "HIRAGANA": "ja",
    "KATAKANA": "ja",
    "HANGUL": "ko",
    "CYRILLIC": "ru",
    "GREEK": "el",
    "LATIN": "en",
}


def _first_strong(value: str) -> str | None:
    for char in value:
        kind = unicodedata.bidirectional(char)
        if kind in ("L", "R", "AL"):
            return char
    return None


def text_direction(value: str) -> Direction:
    """``rtl`` when the first strong character of ``value`` is right-to-left (Hebrew
    ``R``, Arabic-script ``AL``), ``ltr`` when it is left-to-right, else ``auto``
    (digits and punctuation only: let the browser decide)."""
    char = _first_strong(value)
    if char is None:
        return "auto"
    return "ltr" if unicodedata.bidirectional(char) == "L" else "rtl"


def lang_of(value: str, known: str | None = None) -> str | None:
    """BCP 47 language of ``value``: ``known`` (the profile's) when given, else a guess
    from the script of its first letter; None when nothing can be told."""
    if known:
        return known
    for char in value:
        if char.isalpha():
            name = unicodedata.name(char, "")
            return _SCRIPT_LANG.get(name.split(" ")[0])
    return None
