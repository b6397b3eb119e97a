"""Files of a bulk export: names a course admin can read, and a zip written as it grows.

Two things make an export of a batch's certificates safe to hand to anyone who
prints them:

* **File names** (:func:`certificate_file_name`) are the learner's name and the
  certificate's short id, in the learner's own script (Hindi, Tamil, Urdu names are
  kept: an admin must recognise them), with nothing that a file system or an unzip
  tool would read as structure: no path separators or ``..`` (a name like
  ``../../etc/passwd`` must not escape the folder it is unzipped into), no control
  characters, no bidirectional overrides (which can make ``fdp.exe`` show as
  ``exe.pdf``), none of the characters Windows refuses, and at most
  :data:`MAX_NAME_BYTES` bytes of UTF-8 (file systems count bytes; a Devanagari
  letter is three). Names are unique case-insensitively, as on Windows and macOS.
* **The zip** (:class:`ZipStream`) is written entry by entry to an asynchronous
  writer (an HTTP response, a file), each entry handed on as soon as it is added,
  so memory holds one certificate at a time however large the batch; ``zipfile``
  writes to a stream it cannot seek with data descriptors, and ZIP64 records when
  an archive outgrows the classic format.
"""

from __future__ import annotations

import re
import time
import unicodedata
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path

#: Most UTF-8 bytes of a file name's learner part: 255 bytes is the limit of ext4,
#: APFS, NTFS (in UTF-16 units) and most unzip tools; room is left for the short id,
#: the extension and a full id when a short one is taken.
MAX_NAME_BYTES = 150
#: The export's table of contents, last in the archive: what is in it, and what was
#: left out and why.
MANIFEST = "manifest.json"
#: Characters of the certificate id printed in a file name (the ``-1a2b3c4d`` part).
SHORT_ID_CHARS = 8
#: Replaced by a space: path separators, and what Windows refuses in a name.
_UNSAFE = re.compile(r'[/\\:*?"<>|]')
#: Bidirectional embeddings, overrides and isolates (Unicode's "Bidi_Control" less
#: the marks a right-to-left name may need, U+200E/F and U+061C, which cannot reorder
#: a name's own characters).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Category of characters dropped: controls, unassigned, surrogates (``Cf``, format
#: characters, is kept: the zero-width joiner and non-joiner spell Devanagari,
#: Malayalam and Persian/Urdu words correctly).
_DROPPED_CATEGORIES = frozenset({"Cc", "Cs", "Cn"})
#: Zero-width non-joiner and joiner: part of the letters around them.
_JOINERS = frozenset("\u200c\u200d")
#: Canonical combining class of a virama (halant): it joins the letters either side.
_VIRAMA = 9


def safe_name_part(text: str, *, max_bytes: int = MAX_NAME_BYTES) -> str:
    """``text`` as one harmless file name component (possibly empty).

    NFC first, so a name typed on macOS (decomposed) and on Windows (composed) gives
    the same file name and counts the same bytes.
    """
    text = unicodedata.normalize("NFC", text)
    kept = []
    for char in text:
        if char in _BIDI_CONTROLS or unicodedata.category(char) in _DROPPED_CATEGORIES:
            continue
        kept.append(" " if _UNSAFE.match(char) or char.isspace() else char)
    # Runs of dots as one: ".." means nothing inside one name, but a careless tool
    # that splits a path by hand might read it as the parent folder.
    name = re.sub(r"\.{2,}", ".", " ".join("".join(kept).split()))
    name = _cut_to_bytes(name, max_bytes)
    # No leading dot (a hidden file, or a ".." that some tool joins as a path) or
    # dash (read as an option by a shell command); no trailing dot or space
    # (Windows drops them, and then two names differ only on other systems).
    return name.lstrip(". -").rstrip(". ")


def _cut_to_bytes(text: str, max_bytes: int) -> str:
    """The longest start of ``text`` within ``max_bytes`` of UTF-8 that ends between two
    letters as a reader sees them: never before a vowel sign or other combining mark,
    nor inside a conjunct (after a virama or a joiner), which would leave a broken
    letter at the end of the name."""
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    cut = len(text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore"))
    while cut > 0 and (
        unicodedata.category(text[cut]) in ("Mn", "Mc", "Me") or text[cut] in _JOINERS
        or text[cut - 1] in _JOINERS or unicodedata.combining(text[cut - 1]) == _VIRAMA
    ):
        cut -= 1
    return text[:cut]


def certificate_file_name(recipient_name: str, certificate_id: str, extension: str, taken: set[str]) -> str:
    """``<recipient name>-<short id>.<extension>``, unique among ``taken`` (which it joins).

    Two learners of the same name differ by their short id; two short ids that
    collide (eight hex digits: likely somewhere in a batch of 100,000) fall back to
    the full id. ``taken`` holds names case-folded, as Windows and macOS compare them.
    """
    person = safe_name_part(recipient_name) or "certificate"
    ident = safe_name_part(certificate_id, max_bytes=128) or "id"
    candidates = [f"{person}-{ident[:SHORT_ID_CHARS]}", f"{person}-{ident}"]
    candidates += [f"{person}-{ident}-{n}" for n in range(2, 2 + len(taken) + 1)]
    for stem in candidates:
        name = f"{stem}.{extension}"
        folded = unicodedata.normalize("NFC", name).casefold()
        if folded not in taken:
            taken.add(folded)
            return name
    raise AssertionError("unreachable: more candidates than taken names")


Writer = Callable[[bytes], Awaitable[None]]


class _Pending:
    """What ``zipfile`` has written and the writer has not yet taken: an unseekable
    sink (no ``tell``/``seek``), so ``zipfile`` streams with data descriptors."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        """Nothing to do: :meth:`take` hands the bytes on."""

    def take(self) -> bytes:
        taken = b"".join(self._chunks)
        self._chunks.clear()
        self.size = 0
        return taken


class ZipStream:
    """A zip archive written to ``write`` one entry at a time.

    ``write`` receives each entry's bytes (header, data, descriptor) as soon as the
    entry is added and the central directory on :meth:`close`; nothing is kept but
    the list of names and offsets the central directory needs. ``largest_chunk``
    tells how much was ever held at once (what the tests bound).
    """

    def __init__(self, write: Writer) -> None:
        self._write = write
        self._pending = _Pending()
        self._zip = zipfile.ZipFile(self._pending, "w", compression=zipfile.ZIP_STORED)  # type: ignore[call-overload]  # a duck-typed file: zipfile needs write and flush only
        self.largest_chunk = 0

    async def add(self, name: str, data: bytes, *, compress: bool = False) -> None:
        """Add a file. PDFs and PNGs are stored as they are (compressed already:
        deflating them again costs CPU and saves nothing); ``compress`` for text."""
        info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16  # -rw-r--r-- when unzipped on Unix
        self._zip.writestr(info, data)
        await self._hand_on()

    async def close(self) -> None:
        """Write the central directory: without it, no tool opens the archive."""
        self._zip.close()
        await self._hand_on()

    async def _hand_on(self) -> None:
        self.largest_chunk = max(self.largest_chunk, self._pending.size)
        chunk = self._pending.take()
        if chunk:
            await self._write(chunk)


class ZipSink:
    """An export's files as one zip (see :class:`ZipStream`)."""

    def __init__(self, write: Writer) -> None:
        self.zip = ZipStream(write)

    async def add(self, name: str, data: bytes) -> None:
        await self.zip.add(name, data)

    async def finish(self, manifest: bytes) -> None:
        await self.zip.add(MANIFEST, manifest, compress=True)
        await self.zip.close()


class DirectorySink:
    """An export's files written into a folder (``certflow export --output-dir``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def add(self, name: str, data: bytes) -> None:
        # ``name`` is one component (certificate_file_name), so it stays in the folder.
        (self.directory / name).write_bytes(data)

    async def finish(self, manifest: bytes) -> None:
        (self.directory / MANIFEST).write_bytes(manifest)
