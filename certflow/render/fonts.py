"""Which font draws which text, and each font loaded once.

Certificates name learners in a dozen scripts, and no single font covers them all, so
every run of text gets the font made for its script: Noto Sans Devanagari for Hindi,
Noto Nastaliq Urdu for Urdu, Noto Sans CJK for Chinese, and so on. Fonts are looked
up by file name under ``/usr/share/fonts`` (Debian's ``fonts-noto-core`` and
``fonts-noto-cjk`` name their files predictably), never through fontconfig, so the
choice is the same on every machine that has the same packages.

A font file is opened once per process. HarfBuzz shapes from it, and fontTools reads
its glyph outlines, which are cached per glyph: a certificate run uses the same few
hundred glyphs over and over. Everything cached is built under a lock and never
changed afterwards, so worker threads can share one :class:`FontBook`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import uharfbuzz as hb
from fontTools import unicodedata as ot_unicodedata
from fontTools.ttLib import TTFont

from certflow.render.glyphs import GlyphOutline, read_outline

__all__ = [
    "DEFAULT_FONT_DIRS",
    "FontBook",
    "FontRequest",
    "LoadedFont",
    "default_font_book",
    "family_stems",
    "is_bold",
    "is_urdu",
]

#: Where Debian's font packages install. Searched recursively, in this order.
DEFAULT_FONT_DIRS: tuple[str, ...] = ("/usr/share/fonts", "/usr/local/share/fonts")

_FONT_SUFFIXES = (".ttf", ".otf", ".ttc")

#: Scripts whose Noto family name is not simply ``NotoSans`` + the script's name.
#: Scripts not listed here (Kannada, Malayalam, Gurmukhi, Hebrew, ...) fall through
#: to that rule, so every script ``fonts-noto-core`` covers works without a table row.
_FAMILY_BY_SCRIPT: dict[str, str] = {
    "Latn": "",
    "Grek": "",
    "Cyrl": "",
    "Zyyy": "",
    "Zinh": "",
    "Zzzz": "",
    "Deva": "Devanagari",
    "Taml": "Tamil",
    "Beng": "Bengali",
    "Telu": "Telugu",
    "Gujr": "Gujarati",
    "Orya": "Oriya",
}

#: Scripts drawn from the CJK collection; kana and Han share one run and one font.
CJK_SCRIPTS = frozenset({"Hani", "Hira", "Kana", "Hang", "Bopo"})

#: Faces of Debian's ``NotoSansCJK-*.ttc``, found by family name so a reordered
#: collection still works. Chinese names are the main case here, hence SC by default.
_CJK_REGION_BY_LANG: dict[str, str] = {
    "ja": "JP",
    "ko": "KR",
    "zh-tw": "TC",
    "zh-hant": "TC",
    "zh-hk": "HK",
    "zh-mo": "HK",
    "zh": "SC",
}

#: Letters Urdu uses and Arabic does not (ٹ ڈ ڑ ں ھ ہ ۂ ۃ ے ۓ). Farsi yeh (ی) is
#: left out on purpose: Persian and many Arabic-script names of South Asia use it too.
_URDU_LETTERS = frozenset("\u0679\u0688\u0691\u06ba\u06be\u06c1\u06c2\u06c3\u06d2\u06d3")

#: Invisible formatting characters that fonts need not map: HarfBuzz handles them.
_IGNORABLE = frozenset("\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u00ad")


def is_bold(weight: int | str | None) -> bool:
    """CSS ``font-weight`` to "use the bold face": Noto ships only 400 and 700 here,
    so 600 and up (and ``bold``/``bolder``) take the bold file."""
    if weight is None:
        return False
    if isinstance(weight, int):
        return weight >= 600
    value = weight.strip().lower()
    if value in ("bold", "bolder"):
        return True
    try:
        return float(value) >= 600
    except ValueError:
        return False


def is_urdu(text: str, lang: str | None = None) -> bool:
    """True when Arabic-script text should be set in Nastaliq, the Urdu style.

    An explicit ``lang`` wins; otherwise a letter only Urdu uses decides, because
    names are stored without language tags.
    """
    if lang:
        return lang.lower().split("-")[0] == "ur"
    return not _URDU_LETTERS.isdisjoint(text)


@dataclass(frozen=True, slots=True)
class FontRequest:
    """What the text's style asks of a font, besides its script."""

    bold: bool = False
    italic: bool = False
    serif: bool = False
    lang: str | None = None
    #: The template's ``font-family`` list, as font file family stems
    #: (``NotoNaskhArabic``): tried first, so the template's font wins wherever it
    #: covers the text; the script's own fonts are only the fallback.
    families: tuple[str, ...] = ()


def family_stems(font_family: str) -> tuple[str, ...]:
    """A CSS ``font-family`` list as family stems, generic families left out:
    ``'Noto Naskh Arabic', "Noto Sans", serif`` → ``("NotoNaskhArabic", "NotoSans")``."""
    stems = []
    for entry in font_family.split(","):
        name = entry.strip().strip("'\"").strip()
        if name and name.lower() not in _GENERIC_FAMILIES:
            stems.append(name.replace(" ", ""))
    return tuple(stems)


_GENERIC_FAMILIES = frozenset({
    "serif", "sans-serif", "monospace", "cursive", "fantasy", "system-ui", "ui-serif",
    "ui-sans-serif", "ui-monospace", "emoji", "math", "fangsong",
})


class LoadedFont:
    """One face of one font file: a HarfBuzz font to shape with, fontTools for outlines.

    HarfBuzz fonts are immutable once made and safe to shape with from many threads;
    fontTools decompiles tables lazily and is not, so every outline is read under the
    font's lock and cached, and later reads never take the lock.
    """

    def __init__(self, path: Path, index: int = 0) -> None:
        self.path = path
        self.index = index
        face = hb.Face(hb.Blob.from_file_path(str(path)), index)
        self.upem: int = face.upem
        #: Scale = units per em, so HarfBuzz positions come back in font units.
        self.hb_font = hb.Font(face)
        self._ttfont = TTFont(str(path), fontNumber=index, lazy=True)
        self._glyph_set = self._ttfont.getGlyphSet()
        self._glyph_order = self._ttfont.getGlyphOrder()
        self._outlines: dict[int, GlyphOutline] = {}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """File name, plus the face number inside a collection (``.ttc``)."""
        return self.path.name if not self.index else f"{self.path.name}#{self.index}"

    def covers(self, char: str) -> bool:
        """Whether the font maps ``char`` to a glyph of its own (not ``.notdef``)."""
        return char in _IGNORABLE or self.hb_font.get_nominal_glyph(ord(char)) is not None

    def coverage(self, text: str) -> int:
        """How many characters of ``text`` the font has no glyph for."""
        return sum(1 for char in text if not self.covers(char))

    def outline(self, gid: int) -> GlyphOutline:
        """The outline of glyph ``gid``, read from the font the first time only."""
        cached = self._outlines.get(gid)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._outlines.get(gid)
            if cached is None:
                name = self._glyph_order[gid] if 0 <= gid < len(self._glyph_order) else None
                cached = read_outline(self._glyph_set, name)
                self._outlines[gid] = cached
            return cached

    def __repr__(self) -> str:
        return f"LoadedFont({self.name!r})"


class FontBook:
    """The fonts on this machine, indexed by file name, each loaded on first use.

    Build one per process (see :func:`default_font_book`) and share it: scanning the
    font directories takes milliseconds, loading a font a few more, and both are
    done once.
    """

    def __init__(self, roots: Iterable[str | os.PathLike[str]] = DEFAULT_FONT_DIRS) -> None:
        self._files: dict[str, Path] = {}
        for root in roots:
            for directory, _dirs, names in sorted(os.walk(root)):
                for name in sorted(names):
                    stem, suffix = os.path.splitext(name)
                    if suffix.lower() in _FONT_SUFFIXES:
                        self._files.setdefault(stem, Path(directory) / name)
        self._loaded: dict[tuple[Path, int], LoadedFont] = {}
        self._cjk_faces: dict[tuple[Path, str], int] = {}
        self._lock = threading.Lock()

    def has(self, stem: str) -> bool:
        """Whether a font file named ``stem`` (no extension) was found."""
        return stem in self._files

    def file(self, stem: str) -> Path | None:
        """The path of the font file named ``stem``, if there is one."""
        return self._files.get(stem)

    def load(self, path: Path, index: int = 0) -> LoadedFont:
        """The loaded face ``index`` of ``path``, shared by every caller."""
        key = (path, index)
        font = self._loaded.get(key)
        if font is None:
            with self._lock:
                font = self._loaded.get(key)
                if font is None:
                    font = LoadedFont(path, index)
                    self._loaded[key] = font
        return font

    def candidates(self, script: str, request: FontRequest, text: str = "") -> list[tuple[Path, int]]:
        """Font files to try for a run of ``script``, best first, ending in fallbacks.

        The template's own families come first (``font_for`` takes the first that
        covers the run, so Noto Naskh Arabic named by a template sets an Urdu name,
        not Nastaliq). Bold falls back to regular and italic to upright (Indic and Arabic Noto fonts
        have no italics), Sans to Serif and back, and finally Noto Sans, the CJK
        collection and DejaVu Sans catch what the script's own font lacks.
        """
        prefixes = ("NotoSerif", "NotoSans") if request.serif else ("NotoSans", "NotoSerif")
        families: list[str] = list(request.families)
        if script == "Arab":
            urdu = ["NotoNastaliqUrdu"] if is_urdu(text, request.lang) else []
            families += [*urdu, "NotoNaskhArabic", "NotoSansArabic", "NotoKufiArabic"]
        elif script in CJK_SCRIPTS:
            families += [prefix + "CJK" for prefix in prefixes]
        else:
            suffix = _FAMILY_BY_SCRIPT.get(script)
            if suffix is None:
                suffix = ot_unicodedata.script_name(script, default="").replace(" ", "").replace("_", "")
            families += [prefix + suffix for prefix in prefixes]
        families += ["NotoSans", "NotoSansCJK", "DejaVuSans"]

        found: list[tuple[Path, int]] = []
        for family in families:
            for stem in _stems(family, request):
                path = self._files.get(stem)
                if path is None:
                    continue
                face = self._cjk_face(path, script, request.lang) if path.suffix.lower() == ".ttc" else 0
                entry = (path, face)
                if entry not in found:
                    found.append(entry)
                break
        return found

    def font_for(self, text: str, script: str, request: FontRequest = FontRequest()) -> LoadedFont:
        """The font to draw ``text`` (one script run) with.

        The first candidate that has a glyph for every character wins; if none has
        them all, the one missing the fewest does, so a stray symbol costs a box,
        not the whole name.
        """
        best: LoadedFont | None = None
        best_missing = -1
        for path, index in self.candidates(script, request, text):
            font = self.load(path, index)
            missing = font.coverage(text)
            if missing == 0:
                return font
            if best is None or missing < best_missing:
                best, best_missing = font, missing
        if best is None:
            raise LookupError(
                "no font found for script "
                f"{script!r}: install fonts-noto-core (and fonts-noto-cjk) or fonts-dejavu-core"
            )
        return best

    def _cjk_face(self, path: Path, script: str, lang: str | None) -> int:
        """Face index in a CJK collection for the language, by the faces' names."""
        region = _cjk_region(script, lang)
        key = (path, region)
        index = self._cjk_faces.get(key)
        if index is None:
            blob = hb.Blob.from_file_path(str(path))
            index = 0
            for candidate in range(hb.Face(blob).count):
                family = hb.Face(blob, candidate).get_name(hb.OTNameIdPredefined.FONT_FAMILY) or ""
                if family.endswith(f" {region}") and "Mono" not in family:
                    index = candidate
                    break
            with self._lock:
                self._cjk_faces[key] = index
        return index


def _stems(family: str, request: FontRequest) -> Sequence[str]:
    """File stems for ``family`` in order of preference for the requested style."""
    if family == "DejaVuSans":
        if request.bold:
            return ("DejaVuSans-Bold", "DejaVuSans")
        return ("DejaVuSans",)
    styles: list[str] = []
    if request.bold and request.italic:
        styles.append("BoldItalic")
    if request.bold:
        styles.append("Bold")
    if request.italic:
        styles.append("Italic")
    styles.append("Regular")
    return tuple(f"{family}-{style}" for style in styles)


def _cjk_region(script: str, lang: str | None) -> str:
    """Which regional CJK face suits the text: the language if known, else the script."""
    if lang:
        tag = lang.lower()
        for prefix, region in _CJK_REGION_BY_LANG.items():
            if tag == prefix or tag.startswith(prefix + "-"):
                return region
    if script == "Hang":
        return "KR"
    if script in ("Hira", "Kana"):
        return "JP"
    return "SC"


_default_book: FontBook | None = None
_default_lock = threading.Lock()


def default_font_book() -> FontBook:
    """The process-wide :class:`FontBook` over :data:`DEFAULT_FONT_DIRS`."""
    global _default_book  # noqa: PLW0603 - built once, on first use, under a lock
    if _default_book is None:
        with _default_lock:
            if _default_book is None:
                _default_book = FontBook()
    return _default_book
