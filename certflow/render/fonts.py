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
from fontTools.pens.basePen import BasePen
from fontTools.ttLib import TTFont

from certflow.render.cairopath import CLOSE_PATH, CURVE_TO, LINE_TO, MOVE_TO, CairoPath, Segment, encode_path

__all__ = [
    "DEFAULT_FONT_DIRS",
    "FontBook",
    "FontRequest",
    "GlyphOutline",
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


@dataclass(frozen=True, slots=True, eq=False)
class GlyphOutline:
    """A glyph's outline in font units, y up: as an SVG path template, as a cairo
    path and as a PDF path template.

    ``template`` holds ``%.1f`` for every coordinate and ``xs``/``ys`` the values, so
    placing the glyph in SVG (:func:`certflow.render.outline.outline_text`) is
    arithmetic plus one C-level ``%`` format: no pen, no fontTools, no lock on the
    hot path. ``cairo`` is what the renderer draws (:mod:`certflow.render.cairopath`)
    and ``pdf_template`` (cubic curves only, ``%.2f`` per coordinate of
    ``pdf_xs``/``pdf_ys``) what it writes into a PDF itself
    (:mod:`certflow.render.forms`). Compared and hashed by identity: each is made
    once per font and glyph, and used as a cache key.
    """

    template: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    cairo: CairoPath
    pdf_template: str
    pdf_xs: tuple[float, ...]
    pdf_ys: tuple[float, ...]
    #: (x min, y min, x max, y max) of every point, control points included (a box
    #: that holds the glyph), or None for a glyph that draws nothing.
    bounds: tuple[float, float, float, float] | None

    def path(self, x: float, y: float, sx: float, sy: float) -> str:
        """SVG path data with the origin at (``x``, ``y``) in user units, y down."""
        if not self.xs:
            return self.template
        return self.template % _placed(self.xs, self.ys, x, y, sx, sy)

    def pdf_path(self, x: float, y: float, sx: float, sy: float) -> str:
        """PDF path operators with the origin at (``x``, ``y``), y down, as in SVG."""
        return self.pdf_template % _placed(self.pdf_xs, self.pdf_ys, x, y, sx, sy)


#: The PDF path operator of each cairo segment kind.
_PDF_OPERATORS = {MOVE_TO: "m", LINE_TO: "l", CURVE_TO: "c", CLOSE_PATH: "h"}


def _placed(
    xs: tuple[float, ...], ys: tuple[float, ...], x: float, y: float, sx: float, sy: float
) -> tuple[float, ...]:
    """A glyph's points scaled by (``sx``, ``sy``) about (``x``, ``y``), y turned down
    (font units point up, SVG's and the PDF's page coordinates here point down)."""
    values: list[float] = []
    append = values.append
    for gx, gy in zip(xs, ys, strict=True):
        append(x + sx * gx)
        append(y - sy * gy)
    return tuple(values)


def _outline_of(pen: _TemplatePen) -> GlyphOutline:
    """What ``pen`` recorded, in every form :class:`GlyphOutline` keeps."""
    parts: list[str] = []
    pdf_xs: list[float] = []
    pdf_ys: list[float] = []
    for kind, coordinates in pen.segments:
        parts.append("%.2f %.2f " * (len(coordinates) // 2) + _PDF_OPERATORS[kind] + "\n")
        pdf_xs.extend(coordinates[0::2])
        pdf_ys.extend(coordinates[1::2])
    bounds = (min(pdf_xs), min(pdf_ys), max(pdf_xs), max(pdf_ys)) if pdf_xs else None
    return GlyphOutline(
        "".join(pen.parts), tuple(pen.xs), tuple(pen.ys), encode_path(pen.segments),
        "".join(parts), tuple(pdf_xs), tuple(pdf_ys), bounds,
    )


Point = tuple[float, float]


class _TemplatePen(BasePen):  # type: ignore[misc]  # fontTools ships no type information
    """Records a glyph as an SVG path template and as cairo segments.

    ``BasePen`` decomposes components and splits TrueType's multi-point quadratic
    curves into SVG's one-point ``Q``; cairo has only cubic curves, so each
    quadratic piece is also recorded as the cubic that draws exactly the same curve.
    """

    def __init__(self, glyph_set: object) -> None:
        super().__init__(glyph_set)
        self.parts: list[str] = []
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.segments: list[Segment] = []
        #: The pen's own current point: BasePen's is private and not updated by
        #: the ``qCurveTo`` shortcut below.
        self._here: Point = (0.0, 0.0)

    def _points(self, command: str, *points: Point) -> None:
        self.parts.append(command + " ".join("%.1f %.1f" for _ in points))
        for px, py in points:
            self.xs.append(px)
            self.ys.append(py)

    def _quadratic(self, control: Point, end: Point) -> None:
        """One quadratic piece from the current point, as a cairo cubic."""
        (x0, y0), (cx, cy), (x, y) = self._here, control, end
        self.segments.append((CURVE_TO, (x0 + 2 / 3 * (cx - x0), y0 + 2 / 3 * (cy - y0),
                                         x + 2 / 3 * (cx - x), y + 2 / 3 * (cy - y), x, y)))
        self._here = end

    def _moveTo(self, pt: Point) -> None:  # noqa: N802 - BasePen's hook name
        self._points("M", pt)
        self.segments.append((MOVE_TO, pt))
        self._here = pt

    def _lineTo(self, pt: Point) -> None:  # noqa: N802 - BasePen's hook name
        self._points("L", pt)
        self.segments.append((LINE_TO, pt))
        self._here = pt

    def _curveToOne(self, p1: Point, p2: Point, p3: Point) -> None:  # noqa: N802 - BasePen's hook name
        self._points("C", p1, p2, p3)
        self.segments.append((CURVE_TO, (*p1, *p2, *p3)))
        self._here = p3

    def _qCurveToOne(self, p1: Point, p2: Point) -> None:  # noqa: N802 - BasePen's hook name
        self._points("Q", p1, p2)
        self._quadratic(p1, p2)

    def qCurveTo(self, *points: Point | None) -> None:  # noqa: N802 - BasePen's hook name
        """TrueType's run of off-curve points as one ``Q`` and then ``T`` per point.

        The implied on-curve point between two off-curve points is their midpoint,
        so the next control point is exactly the reflection ``T`` assumes: the same
        curve with half the coordinates in the SVG path (:func:`outline_text`'s
        output stays small).
        """
        if len(points) < 3 or points[-1] is None:
            super().qCurveTo(*points)
            return
        controls = points[:-1]
        end = points[-1]
        first, second = controls[0], controls[1]
        assert first is not None and second is not None and end is not None
        middle = ((first[0] + second[0]) / 2, (first[1] + second[1]) / 2)
        self._points("Q", first, middle)
        self._quadratic(first, middle)
        for index in range(1, len(controls) - 1):
            here, after = controls[index], controls[index + 1]
            assert here is not None and after is not None
            middle = ((here[0] + after[0]) / 2, (here[1] + after[1]) / 2)
            self._points("T", middle)
            self._quadratic(here, middle)
        last = controls[-1]
        assert last is not None
        self._points("T", end)
        self._quadratic(last, end)

    def _closePath(self) -> None:  # noqa: N802 - BasePen's hook name
        self.parts.append("Z")
        self.segments.append((CLOSE_PATH, ()))

    def _endPath(self) -> None:  # noqa: N802 - BasePen's hook name
        pass


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
                pen = _TemplatePen(self._glyph_set)
                if 0 <= gid < len(self._glyph_order):
                    self._glyph_set[self._glyph_order[gid]].draw(pen)
                cached = _outline_of(pen)
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
