"""Text to positioned glyphs: script runs, right-to-left order, HarfBuzz shaping.

Drawing a name correctly takes three steps a plain "one glyph per character" renderer
skips. The text is cut into runs of one script each, since each script has its own
font. Each run is shaped by HarfBuzz, which forms Indic conjuncts and reorders vowel
signs, joins Arabic letters, and places marks. Runs are then laid out in visual
order, right to left where the script is written that way.

The bidirectional handling is deliberately small, not the full Unicode algorithm:
the paragraph takes the direction of its first letter (Arabic or Urdu names are
right to left as a whole); runs of a right-to-left script are shaped right to left,
digits inside them read left to right as they do in Arabic and Urdu, and left-to-right
runs inside a right-to-left paragraph keep their own order (rule L2 applied to those
levels). Spaces, digits and punctuation belong to the run they stand in, which is
what a single name or title needs.
"""

from __future__ import annotations

import threading
import unicodedata
import weakref
from dataclasses import dataclass

import uharfbuzz as hb
from cachetools import LRUCache
from fontTools import unicodedata as ot_unicodedata

from certflow.render.fonts import (
    CJK_SCRIPTS,
    FontBook,
    FontRequest,
    LoadedFont,
    default_font_book,
    is_bold,
    is_urdu,
)

__all__ = [
    "RTL_SCRIPTS",
    "Glyph",
    "GlyphRun",
    "Item",
    "itemize",
    "line_width",
    "shape_runs",
]

#: Scripts written right to left that a certificate might meet.
RTL_SCRIPTS = frozenset({"Arab", "Hebr", "Syrc", "Thaa", "Nkoo", "Adlm", "Rohg", "Samr", "Mand"})

#: Joined scripts, where letter-spacing would tear letters apart; CSS leaves them alone.
_CURSIVE_SCRIPTS = frozenset({"Arab", "Syrc", "Mong", "Nkoo", "Rohg", "Mand", "Adlm"})

#: Optional ligatures, off where letter-spacing applies. Conjuncts and Arabic joining
#: use other, required features, so they are unaffected.
_NO_LIGATURES = {"liga": False, "clig": False, "dlig": False, "hlig": False}

#: Characters that take the script of the text around them.
_NEUTRAL_SCRIPTS = frozenset({"Zyyy", "Zinh", "Zzzz"})

#: Bidi classes of digits, which read left to right even inside Arabic.
_DIGIT_CLASSES = frozenset({"EN", "AN"})
#: Separators that stay inside a number ("1,000", "12.5", "10%").
_NUMBER_JOINERS = frozenset({"CS", "ES", "ET"})


@dataclass(frozen=True, slots=True)
class Item:
    """A stretch of text ``text[start:end]`` that one font and one direction draw."""

    start: int
    end: int
    script: str
    rtl: bool
    #: Unicode bidi embedding level: even reads left to right, odd right to left.
    level: int
    #: The whole script run the item belongs to: its font is chosen for all of it, so
    #: digits inside an Urdu name stay in the name's font.
    run_start: int
    run_end: int


@dataclass(frozen=True, slots=True)
class Glyph:
    """One glyph placed on the line, in user units (px) from the line's origin.

    ``y`` grows downwards as in SVG; it is non-zero only for marks and the stepped
    baseline of Nastaliq.
    """

    gid: int
    cluster: int
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class GlyphRun:
    """A shaped run: its font, where it starts on the line and its glyphs."""

    font: LoadedFont
    text: str
    script: str
    rtl: bool
    size: float
    #: Left edge of the run on the line, in px from the line's origin.
    x: float
    #: Total advance (width) of the run in px.
    advance: float
    glyphs: tuple[Glyph, ...]

    @property
    def scale(self) -> float:
        """px per font unit."""
        return self.size / self.font.upem


def _script_of(char: str) -> str:
    """The run-splitting script of ``char``: kana and Han are one, since one font has both."""
    script: str = ot_unicodedata.script(char)
    if script in CJK_SCRIPTS:
        return "Hani" if script != "Hang" else "Hang"
    return script


def _script_runs(text: str) -> list[tuple[int, int, str]]:
    """``text`` cut where the script changes; neutral characters join their neighbours.

    A neutral character joins the run before it, or the first run if nothing is
    before it, so "Dr. प्रिया" keeps its space with "Dr." and a leading "(" with the
    name. Text of neutral characters only (a date) is one Latin run.
    """
    # (start, script) of every run; each run ends where the next starts.
    starts: list[tuple[int, str]] = []
    for index, char in enumerate(text):
        script = _script_of(char)
        if script in _NEUTRAL_SCRIPTS or (starts and starts[-1][1] == script):
            continue
        # The first run also takes the neutral characters before it.
        starts.append((index if starts else 0, script))
    if not starts:
        return [(0, len(text), "Latn")] if text else []
    ends = [start for start, _ in starts[1:]] + [len(text)]
    return [(start, end, script) for (start, script), end in zip(starts, ends, strict=True)]


def _digit_spans(text: str, start: int, end: int) -> list[tuple[int, int, bool]]:
    """Split ``text[start:end]`` into (start, end, is_number) pieces."""
    classes = [unicodedata.bidirectional(char) for char in text[start:end]]
    number = [cls in _DIGIT_CLASSES for cls in classes]
    # A separator between two digits is part of the number.
    for i in range(1, len(classes) - 1):
        if classes[i] in _NUMBER_JOINERS and number[i - 1] and classes[i + 1] in _DIGIT_CLASSES:
            number[i] = True
    pieces: list[tuple[int, int, bool]] = []
    for offset, flag in enumerate(number):
        position = start + offset
        if pieces and pieces[-1][2] == flag:
            pieces[-1] = (pieces[-1][0], position + 1, flag)
        else:
            pieces.append((position, position + 1, flag))
    return pieces


def itemize(text: str) -> list[Item]:
    """Cut ``text`` into items and return them in *visual* order, left to right.

    See the module docstring for the simplified bidi rules this applies.
    """
    runs = _script_runs(text)
    if not runs:
        return []
    paragraph_rtl = runs[0][2] in RTL_SCRIPTS
    items: list[Item] = []
    for start, end, script in runs:
        if script in RTL_SCRIPTS:
            for piece_start, piece_end, is_number in _digit_spans(text, start, end):
                level = 2 if is_number else 1
                items.append(Item(piece_start, piece_end, script, not is_number, level, start, end))
        else:
            items.append(Item(start, end, script, False, 2 if paragraph_rtl else 0, start, end))
    return _reorder(items)


def _reorder(items: list[Item]) -> list[Item]:
    """Unicode bidi rule L2: from the highest level down to the lowest odd one,
    reverse every maximal sequence of items at that level or higher."""
    ordered = list(items)
    highest = max(item.level for item in ordered)
    odd_levels = [item.level for item in ordered if item.level % 2]
    if not odd_levels:
        return ordered
    for level in range(highest, min(odd_levels) - 1, -1):
        i = 0
        while i < len(ordered):
            if ordered[i].level >= level:
                j = i
                while j < len(ordered) and ordered[j].level >= level:
                    j += 1
                ordered[i:j] = ordered[i:j][::-1]
                i = j
            else:
                i += 1
    return ordered


def _shape_item(
    text: str,
    item: Item,
    font: LoadedFont,
    size: float,
    x: float,
    language: str | None,
    letter_spacing: float,
) -> GlyphRun:
    """Shape one item with HarfBuzz, the whole text given as context so the glyphs
    at an item's edge (a joining letter before a digit) take their correct form."""
    buffer = hb.Buffer()
    buffer.add_str(text, item_offset=item.start, item_length=item.end - item.start)
    buffer.guess_segment_properties()
    if item.script != "Hani":
        # Digits inside an Arabic run are shaped as Arabic; kana keep HarfBuzz's guess.
        buffer.script = item.script
    buffer.direction = "rtl" if item.rtl else "ltr"
    if language:
        buffer.language = language
    spacing = letter_spacing if item.script not in _CURSIVE_SCRIPTS else 0.0
    # CSS: no optional ligatures in spaced text, or "fi" would take one space, not two.
    hb.shape(font.hb_font, buffer, _NO_LIGATURES if spacing else None)
    scale = size / font.upem
    infos = buffer.glyph_infos
    positions = buffer.glyph_positions
    glyphs: list[Glyph] = []
    pen_x = 0.0
    pen_y = 0.0
    for index, (info, pos) in enumerate(zip(infos, positions, strict=True)):
        glyphs.append(
            Glyph(
                info.codepoint,
                info.cluster,
                x + (pen_x + pos.x_offset) * scale,
                -(pen_y + pos.y_offset) * scale,
            )
        )
        pen_x += pos.x_advance
        pen_y += pos.y_advance
        if spacing and (index + 1 == len(infos) or infos[index + 1].cluster != info.cluster):
            # Spacing goes after each cluster, never inside one (a conjunct, a mark).
            pen_x += spacing / scale
    return GlyphRun(
        font=font,
        text=text[item.start : item.end],
        script=item.script,
        rtl=item.rtl,
        size=size,
        x=x,
        advance=pen_x * scale,
        glyphs=tuple(glyphs),
    )


def shape_runs(
    text: str,
    size: float,
    weight: int | str = 400,
    *,
    italic: bool = False,
    serif: bool = False,
    lang: str | None = None,
    letter_spacing: float = 0.0,
    font_book: FontBook | None = None,
    families: tuple[str, ...] = (),
) -> list[GlyphRun]:
    """Shape ``text`` at ``size`` px into glyph runs laid out left to right from x = 0.

    Runs come in visual order, each with its glyphs in visual order and positions in
    px, ready to draw at a baseline. ``weight`` is a CSS font-weight (600 and up is
    bold). ``lang`` (a BCP 47 tag) picks regional forms, such as Nastaliq for ``ur``
    or the Japanese CJK face for ``ja``; Urdu is also recognised by its letters.
    ``letter_spacing`` (px) is added after every cluster except in joined scripts.
    ``families`` (:func:`family_stems` of the template's ``font-family``) are tried
    before the script's own fonts.

    Results are remembered per font book: a template's own lines (its headings,
    the course name, the issuer) are the same on thousands of certificates, and
    only the learner's name needs shaping each time. The key is every input the
    result depends on, and a result is immutable, so no certificate can get
    another's glyphs.
    """
    book = font_book or default_font_book()
    request = FontRequest(bold=is_bold(weight), italic=italic, serif=serif, lang=lang, families=families)
    key = (text, size, letter_spacing, request)
    with _shaped_lock:
        shaped = _shaped.get(book)
        if shaped is None:
            shaped = _shaped[book] = LRUCache(maxsize=SHAPED_CACHE_SIZE)
        cached = shaped.get(key)
    if cached is not None:
        return list(cached)
    runs = _shape(text, size, request, letter_spacing, book)
    with _shaped_lock:
        shaped[key] = tuple(runs)
    return runs


#: Shaped lines kept per font book (:func:`shape_runs`): a template has a handful of
#: fixed ones; each is a few kilobytes.
SHAPED_CACHE_SIZE = 1024
_shaped: weakref.WeakKeyDictionary[FontBook, LRUCache[tuple[str, float, float, FontRequest], tuple[GlyphRun, ...]]] = (
    weakref.WeakKeyDictionary()
)
_shaped_lock = threading.Lock()


def _shape(text: str, size: float, request: FontRequest, letter_spacing: float, book: FontBook) -> list[GlyphRun]:
    """:func:`shape_runs`, uncached."""
    lang = request.lang
    runs: list[GlyphRun] = []
    x = 0.0
    for item in itemize(text):
        run_text = text[item.run_start : item.run_end]
        font = book.font_for(run_text, item.script, request)
        language = lang
        if language is None and item.script == "Arab" and is_urdu(run_text):
            language = "ur"
        run = _shape_item(text, item, font, size, x, language, letter_spacing)
        runs.append(run)
        x += run.advance
    return runs


def line_width(runs: list[GlyphRun]) -> float:
    """Total advance of a shaped line, in px."""
    return sum(run.advance for run in runs)
