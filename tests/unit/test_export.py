"""Bulk export (issue 15): which certificates, under which names, in a zip streamed in bounded memory.

The broker is replaced by the records it would return (``read_until_end``); the
selection, the file names, the zip and the pipeline between them are the real ones.
The export against a real broker and worker is in tests/integration/test_export.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import shutil
import subprocess
import tracemalloc
import unicodedata
import zipfile
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from concurrent.futures import Executor, Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from certflow.credentials.keys import KeyRing, SigningKey
from certflow.errors import CertflowError, ErrorCode
from certflow.events.models import parse_event
from certflow.generate.factory import build_certificate_factory
from certflow.generate.models import GenerateCertificateRequest, validation_context
from certflow.kafka import Consumed
from certflow.kafka_client import KafkaConnection
from certflow.registry import batch_selection
from certflow.registry import export as export_module
from certflow.registry.agents import RevocationOrigin, certified_facts, parse_revocation
from certflow.registry.archive import (
    MANIFEST,
    MAX_NAME_BYTES,
    ZipSink,
    ZipStream,
    certificate_file_name,
    safe_name_part,
)
from certflow.registry.batch_selection import (
    BatchCertificate,
    BatchSelection,
    BatchSource,
    Revocation,
    select_in_force,
)
from certflow.registry.export import CertificateRenderer, export_batch, render_processes
from certflow.render.fetch import FetchPolicy, SafeFetcher
from certflow.render.images import DEFAULT_LIMITS
from certflow.settings import Settings
from certflow.topics import TopicNames

BATCH = "0131000245281587206"


def record(certificate_id: str, name: str, *, batch: str = BATCH, recipient_id: str | None = None) -> dict[str, Any]:
    """A certificate record with the fields an export reads (the SVG is what `printable` returns)."""
    return {
        "id": certificate_id,
        "recipient": {"id": recipient_id or f"learner-{certificate_id}", "name": name},
        "course": {"id": "do_course"},
        "batchId": batch,
        "certificateName": "Course Completion Certificate",
        "related": {"batchId": batch, "courseId": "do_course", "language": "hi"},
        "svg": f"<svg>{certificate_id}</svg>",
    }


def entry(rec: dict[str, Any], offset: int = 0, partition: int = 0) -> BatchCertificate:
    return BatchCertificate.of(rec, partition=partition, offset=offset)


def revocation(certificate_id: str, origin: RevocationOrigin, **fields: Any) -> Revocation:
    """Through the registry's own parser, as the export reads the topic."""
    request = {"certificateId": certificate_id, "origin": origin.value, "reason": "wrong name", **fields}
    return Revocation.of(parse_revocation(certificate_id.encode(), orjson.dumps(request), max_bytes=10_000))


# --- which certificates are in force --------------------------------------------------


def test_an_admins_revocation_leaves_the_certificate_out_and_says_why() -> None:
    a, b = record("a1", "Asha"), record("b2", "Bala")

    selection = select_in_force(BATCH, [entry(a), entry(b, 1)], [revocation("b2", RevocationOrigin.ADMIN)])

    assert [e.id for e in selection.in_force] == ["a1"]
    [left] = selection.left_out
    assert left.described() | {"revokedAt": ""} == {
        "id": "b2", "recipient": {"id": "learner-b2", "name": "Bala"},
        "certificateName": "Course Completion Certificate",
        "reason": "revoked", "detail": "wrong name", "revokedAt": "", "replacedBy": "",
    }


def test_a_reissues_revocation_applies_only_to_the_certificate_it_names_the_facts_of() -> None:
    old, other = record("old", "Asha"), record("other", "Bala")
    matching = revocation("old", RevocationOrigin.REISSUE, replacedBy="new", certifies=certified_facts(old))
    mismatched = revocation(
        "other", RevocationOrigin.REISSUE, replacedBy="new2",
        certifies={**certified_facts(other), "recipientId": "someone-else"},
    )

    selection = select_in_force(BATCH, [entry(old), entry(other, 1)], [matching, mismatched])

    assert [e.id for e in selection.in_force] == ["other"]
    [left] = selection.left_out
    assert (left.entry.id, left.described()["reason"], left.described()["replacedBy"]) == ("old", "replaced", "new")


def test_a_revocation_read_before_its_certificate_still_applies_and_the_first_one_is_reported() -> None:
    a = record("a1", "Asha")
    first = revocation("a1", RevocationOrigin.ADMIN, reason="first")
    second = revocation("a1", RevocationOrigin.ADMIN, reason="second")

    selection = select_in_force(BATCH, [entry(a)], [first, second])

    assert selection.in_force == []
    assert [left.revocation.reason for left in selection.left_out] == ["first"]


def test_a_certificate_published_twice_is_one_certificate_and_its_newest_record_is_read() -> None:
    a = record("a1", "Asha")

    selection = select_in_force(BATCH, [entry(a, 3), entry(record("b2", "Bala"), 4), entry(a, 9)], [])

    assert [(e.id, e.offset) for e in selection.in_force] == [("b2", 4), ("a1", 9)]


def test_revocations_of_other_certificates_change_nothing() -> None:
    a = record("a1", "Asha")

    selection = select_in_force(BATCH, [entry(a)], [revocation("zz", RevocationOrigin.ADMIN)])

    assert [e.id for e in selection.in_force] == ["a1"] and selection.left_out == []


# --- file names -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["प्रिया शर्मा", "முருகன் செல்வம்", "محمد علی", "Zoë O'Neill", "श्रीमती क्षमा"])
def test_learners_names_are_kept_in_their_own_script(name: str) -> None:
    file_name = certificate_file_name(name, "1a2b3c4d-5e6f-7a8b-9c0d-ef0123456789", "pdf", set())

    assert file_name == f"{unicodedata.normalize('NFC', name)}-1a2b3c4d.pdf"


@pytest.mark.parametrize("name", [
    "../../etc/passwd", "..\\..\\Windows\\win.ini", "/absolute", "..", ".hidden", "a/../../b",
    "C:\\evil", "-rf", "nul\x00byte", "line\nbreak\r\x1b[31m", "gnp.\u202eexe", "<>:\"|?*",
])
def test_no_name_escapes_the_folder_or_hides_what_it_is(name: str, tmp_path: Path) -> None:
    file_name = certificate_file_name(name, "1a2b3c4d", "pdf", set())

    assert "/" not in file_name and "\\" not in file_name and ".." not in file_name
    assert not file_name.startswith((".", "-", " "))
    assert all(unicodedata.category(c) not in ("Cc", "Cs") and c not in "\u202e:*?\"<>|" for c in file_name)
    assert file_name.endswith("-1a2b3c4d.pdf")
    # Unzipped, it is a file directly in the folder.
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(file_name, b"%PDF")
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [file_name]


@pytest.mark.parametrize("cut", range(MAX_NAME_BYTES - 30, MAX_NAME_BYTES + 1))
def test_a_long_name_is_cut_between_whole_letters_within_the_byte_limit(cut: int) -> None:
    # Three bytes a character; conjuncts (न्न, र्ण) and vowel signs (ू, ा) everywhere.
    name = "अन्नपूर्णा " * 40

    part = safe_name_part(name, max_bytes=cut)

    assert cut - 12 <= len(part.encode()) <= cut
    assert name.startswith(part)
    following = name[len(part)]
    assert unicodedata.category(following) not in ("Mn", "Mc") and following not in "\u200c\u200d"
    assert unicodedata.combining(part[-1]) != 9  # not a virama, half of a conjunct


def test_joiners_that_spell_a_word_are_kept() -> None:
    # Devanagari "क्‍ष" with a zero-width joiner; Persian "می‌خواهم" with a non-joiner.
    assert safe_name_part("क्\u200dष") == "क्\u200dष"
    assert safe_name_part("می\u200cخواهم") == "می\u200cخواهم"


def test_names_are_unique_ignoring_case_and_fall_back_to_the_full_id() -> None:
    taken: set[str] = set()

    names = [
        certificate_file_name("Asha", "1a2b3c4d-0000", "pdf", taken),
        certificate_file_name("ASHA", "1a2b3c4d-1111", "pdf", taken),  # same short id
        certificate_file_name("Asha", "9f9f9f9f-2222", "pdf", taken),
        certificate_file_name("", "77777777-3333", "pdf", taken),
    ]

    assert names == ["Asha-1a2b3c4d.pdf", "ASHA-1a2b3c4d-1111.pdf", "Asha-9f9f9f9f.pdf", "certificate-77777777.pdf"]


# --- the zip, streamed -------------------------------------------------------------------


def test_a_zip_is_handed_on_entry_by_entry_and_never_held_whole(tmp_path: Path) -> None:
    entries, size = 48, 1024 * 1024
    path = tmp_path / "out.zip"
    written: list[int] = []

    async def run() -> ZipStream:
        with path.open("wb") as file:

            async def write(chunk: bytes) -> None:
                written.append(len(chunk))
                file.write(chunk)

            sink = ZipSink(write)
            for n in range(entries):
                await sink.add(f"learner-{n}.pdf", b"%PDF" + bytes([n]) * (size - 4))
                assert len(written) == n + 1  # this entry left before the next was made
            await sink.finish(orjson.dumps({"count": entries}))
            return sink.zip

    tracemalloc.start()
    try:
        stream = asyncio.run(run())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert path.stat().st_size > entries * size  # 48 MB went through …
    assert peak < 6 * size  # … with a few MB held at most
    assert stream.largest_chunk < size + 4096
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        infos = zf.infolist()
        assert [i.filename for i in infos] == [f"learner-{n}.pdf" for n in range(entries)] + [MANIFEST]
        assert {i.compress_type for i in infos[:-1]} == {zipfile.ZIP_STORED}
        assert infos[-1].compress_type == zipfile.ZIP_DEFLATED
        assert orjson.loads(zf.read(MANIFEST)) == {"count": entries}
        assert zf.read("learner-7.pdf")[:5] == b"%PDF\x07"


def test_unicode_names_are_flagged_utf8_in_the_zip(tmp_path: Path) -> None:
    chunks: list[bytes] = []

    async def write(chunk: bytes) -> None:
        chunks.append(chunk)

    async def run() -> None:
        sink = ZipSink(write)
        await sink.add("محمد علی-1a2b3c4d.pdf", b"%PDF")
        await sink.finish(b"{}")

    asyncio.run(run())
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as zf:
        info = zf.getinfo("محمد علی-1a2b3c4d.pdf")
        assert info.flag_bits & 0x800  # names are UTF-8


# --- the pipeline: records in, files out, bounded -----------------------------------------


def consumed(rec: dict[str, Any] | None, offset: int, key: str, partition: int = 0) -> Consumed:
    value = orjson.dumps(rec) if rec is not None else None
    return Consumed("certificate.issued", partition, offset, key.encode(), value, ())


class CountingExecutor(Executor):
    """Renders instantly (the bytes name the SVG), and counts renders in flight: the
    futures are completed only when the event loop gets to run again."""

    def __init__(self) -> None:
        self.outstanding = 0
        self.most_outstanding = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.outstanding += 1
        self.most_outstanding = max(self.most_outstanding, self.outstanding)
        svg, fmt = args

        def finish() -> None:
            self.outstanding -= 1
            future.set_result(f"%PDF {svg} {fmt} {kwargs['title']} {kwargs['lang']}".encode())

        asyncio.get_running_loop().call_later(0.001, finish)
        return future


class ListSink:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.manifest: dict[str, Any] = {}

    async def add(self, name: str, data: bytes) -> None:
        self.files[name] = data

    async def finish(self, manifest: bytes) -> None:
        self.manifest = orjson.loads(manifest)


class NoImages:
    async def get(self, url: str) -> str:
        raise CertflowError(ErrorCode.TEMPLATE_FETCH_FAILED, "offline")


def fake_topic(monkeypatch: pytest.MonkeyPatch, records: list[Consumed], reads: list[dict[str, Any]]) -> None:
    async def read_until_end(
        broker_url: str, topic: str, *, start: Mapping[int, int] | None = None, stop: Mapping[int, int] | None = None,
        **_: Any,
    ) -> AsyncGenerator[Consumed, None]:
        reads.append({"topic": topic, "start": start, "stop": stop})
        for rec in records:
            if start is not None and stop is not None and not start[rec.partition] <= rec.offset < stop[rec.partition]:
                continue
            yield rec

    monkeypatch.setattr(export_module, "read_until_end", read_until_end)
    monkeypatch.setattr(batch_selection, "read_until_end", read_until_end)


SOURCE = BatchSource(KafkaConnection("kafka://unused:1"), TopicNames(""), 10_000)


def test_every_certificate_in_force_is_rendered_with_at_most_in_flight_renders_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = [record(f"{n:08x}-cert", f"शिक्षार्थी {n}") for n in range(40)]
    topic = [consumed(r, offset, r["id"], partition=offset % 2) for offset, r in enumerate(records)]
    topic.append(consumed(record("other-batch", "X", batch="elsewhere"), 40, "other-batch"))
    reads: list[dict[str, Any]] = []
    fake_topic(monkeypatch, topic, reads)
    entries = [BatchCertificate.of(r, partition=c.partition, offset=c.offset) for r, c in zip(records, topic, strict=False)]
    selection = select_in_force(BATCH, entries, [revocation(records[5]["id"], RevocationOrigin.ADMIN)])
    executor, sink = CountingExecutor(), ListSink()

    async def printable(rec: Mapping[str, Any]) -> str:
        return str(rec["svg"])

    renderer = CertificateRenderer(printable, NoImages(), executor, DEFAULT_LIMITS, in_flight=3)
    done: list[Any] = []
    report = asyncio.run(export_batch(SOURCE, selection, "pdf", sink, renderer, on_done=done.append))

    assert len(sink.files) == 39 == len(report.exported) == len(done)
    assert executor.most_outstanding == 3
    assert sink.files["शिक्षार्थी 7-00000007.pdf"] == b"%PDF <svg>00000007-cert</svg> pdf Course Completion Certificate hi"
    assert reads[-1]["start"] == {0: 0, 1: 1} and reads[-1]["stop"] == {0: 39, 1: 40}
    manifest = sink.manifest
    assert manifest["counts"] == {"exported": 39, "leftOut": 1, "failed": 0}
    assert [left["id"] for left in manifest["leftOut"]] == [records[5]["id"]]
    assert {c["file"]: c["id"] for c in manifest["certificates"]}["शिक्षार्थी 7-00000007.pdf"] == "00000007-cert"
    assert report.per_second > 0


def test_a_certificate_that_cannot_be_drawn_is_reported_and_the_others_are_exported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = [record(f"cert-{n}", f"Learner {n}") for n in range(4)]
    topic = [consumed(r, offset, r["id"]) for offset, r in enumerate(records)]
    fake_topic(monkeypatch, topic, [])
    entries = [BatchCertificate.of(r, partition=0, offset=n) for n, r in enumerate(records)]
    # A fifth certificate whose record is gone by the time it is read again.
    entries.append(BatchCertificate.of(record("cert-gone", "Gone"), partition=0, offset=2))
    sink = ListSink()

    async def printable(rec: Mapping[str, Any]) -> str:
        if rec["id"] == "cert-2":
            raise CertflowError(ErrorCode.TEMPLATE_CHANGED, "the template has changed")
        return str(rec["svg"])

    renderer = CertificateRenderer(printable, NoImages(), CountingExecutor(), DEFAULT_LIMITS, in_flight=2)
    report = asyncio.run(export_batch(SOURCE, select_in_force(BATCH, entries, []), "png", sink, renderer))

    assert sorted(sink.files) == ["Learner 0-cert-0.png", "Learner 1-cert-1.png", "Learner 3-cert-3.png"]
    assert {f.entry.id: f.error for f in report.failed} == {
        "cert-2": "TEMPLATE_CHANGED: the template has changed",
        "cert-gone": "its record was not found again on certificate.issued",
    }
    assert [f["id"] for f in sink.manifest["failed"]] == ["cert-2", "cert-gone"]


def issued_records(count: int) -> list[dict[str, Any]]:
    """Real certificate records, made as a worker makes them."""
    settings = Settings()

    async def make() -> list[dict[str, Any]]:
        async with SafeFetcher(FetchPolicy.from_settings(settings)) as fetcher:
            factory = build_certificate_factory(settings, fetcher, KeyRing((SigningKey.generate(),)))
            made = []
            for n, name in enumerate(["प्रिया शर्मा", "محمد علی", "முருகன் செல்வம்"][:count]):
                event = {"edata": {
                    "svgTemplate": "course-completion.svg", "name": "Course Completion Certificate",
                    "courseName": "डेटा विज्ञान", "data": [{"recipientName": name, "recipientId": f"learner-{n}"}],
                    "issuer": {"name": "NCERT", "url": "https://ncert.nic.in/"}, "criteria": {"narrative": "Done"},
                    "related": {"batchId": BATCH, "courseId": "do_course"},
                }}
                request = parse_event(GenerateCertificateRequest, orjson.dumps(event), max_bytes=10**6,
                                      context=validation_context(suppress_signatory_errors=True))
                made.append((await factory.issue(next(request.per_recipient()), now=datetime.now(UTC)))
                            .model_dump(mode="json"))
            return made

    return asyncio.run(make())


def test_certificates_are_rendered_to_real_pdfs_in_render_processes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    records = issued_records(2)
    fake_topic(monkeypatch, [consumed(r, n, r["id"]) for n, r in enumerate(records)], [])
    selection = BatchSelection(BATCH, [BatchCertificate.of(r, partition=0, offset=n) for n, r in enumerate(records)], [])
    sink = ListSink()

    async def printable(rec: Mapping[str, Any]) -> str:
        return str(rec["svg"])

    async def run() -> None:
        with render_processes(1) as executor:
            renderer = CertificateRenderer(printable, NoImages(), executor, DEFAULT_LIMITS, in_flight=2)
            await export_batch(SOURCE, selection, "pdf", sink, renderer)

    asyncio.run(run())

    assert sorted(sink.files) == sorted(f"{r['recipient']['name']}-{r['id'][:8]}.pdf" for r in records)
    if shutil.which("pdftotext") is None or shutil.which("pdfinfo") is None:
        pytest.skip("reading the PDFs back needs poppler-utils")
    for rec in records:
        data = sink.files[f"{rec['recipient']['name']}-{rec['id'][:8]}.pdf"]
        path = tmp_path / "certificate.pdf"
        path.write_bytes(data)
        info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
        text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
        assert data.startswith(b"%PDF-")
        assert re.search(r"^Title:\s+Course Completion Certificate$", info, re.MULTILINE), info
        assert rec["recipient"]["name"] in text  # this learner's certificate, in its text layer


def test_the_benchs_measurement_can_take_a_sample_of_a_large_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    records = [record(f"cert-{n}", f"Learner {n}") for n in range(12)]
    fake_topic(monkeypatch, [consumed(r, n, r["id"]) for n, r in enumerate(records)], [])

    async def find_batch(source: BatchSource, batch_id: str) -> BatchSelection:
        return BatchSelection(batch_id, [BatchCertificate.of(r, partition=0, offset=n) for n, r in enumerate(records)], [])

    class Renderer(CertificateRenderer):
        async def render(self, rec: Mapping[str, Any], fmt: Any) -> bytes:
            return b"%PDF"

    @contextlib.asynccontextmanager
    async def offline_renderer(settings: Settings, executor: Executor, processes: int) -> AsyncIterator[Renderer]:
        yield Renderer(printable=None, images=NoImages(), executor=executor, image_limits=DEFAULT_LIMITS,  # type: ignore[arg-type]
                       in_flight=processes)

    monkeypatch.setattr(export_module, "find_batch", find_batch)
    monkeypatch.setattr(export_module, "offline_renderer", offline_renderer)

    report = asyncio.run(export_module.measure_export(Settings(), BATCH, processes=1, limit=5))

    assert [done.entry.id for done in report.exported] == [f"cert-{n}" for n in range(5)]
    assert report.processes == 1 and report.per_second > 0
