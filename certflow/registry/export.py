"""Bulk export: a batch's certificates in force, rendered on every core, streamed into a zip.

One implementation behind ``certflow export --batch B --format pdf|png`` and the
admins' ``GET /batches/{batchId}/certificates.zip``:

1. :mod:`certflow.registry.batch_selection` finds the batch's certificates in
   force: a snapshot of ``certificate.issued`` and the revocations topic, revoked
   ones left out as the registry decides. An export is for printing the
   certificates in force; what was left out, and why, is in its ``manifest.json``.
2. :func:`export_batch` reads the selected records again, one at a time, draws each
   certificate as ``GET /certs/{id}.pdf`` does (``printable`` → remote images inlined
   → :func:`~certflow.render.output.render_certificate` with the certificate's name
   as title and the learner's language), renders in a process pool (rendering is
   CPU in Python under the GIL: on the event loop it would stall a worker's agents,
   in threads it would use one core), and hands each file to the sink as it is
   done. At most ``in_flight`` certificates are between the topic and the sink, so
   memory does not grow with the batch.

Every certificate whose record could not be drawn or rendered is reported with
its error (in the manifest, and by ``certflow export``'s exit status); the other
files are still written.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import aclosing, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson

from certflow.credentials.keys import KeyRing, SigningKey
from certflow.errors import CertflowError
from certflow.generate.factory import CertificateFactory
from certflow.kafka import read_until_end
from certflow.registry.agents import recipient_lang
from certflow.registry.archive import DirectorySink, ZipSink, certificate_file_name
from certflow.registry.batch_selection import (
    BatchCertificate,
    BatchSelection,
    BatchSource,
    LeftOut,
    NothingToExport,
    find_batch,
)
from certflow.render.images import ImageLimits, ImageSource, inline_remote_images
from certflow.render.output import render_certificate
from certflow.services import CertflowServices
from certflow.settings import Settings

log = logging.getLogger(__name__)

ExportFormat = Literal["pdf", "png"]
#: The formats an export renders (``--format``, ``?format=``).
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("pdf", "png")
#: Certificates being drawn or rendered, per render process: two keep every process
#: busy while the event loop reads the next record and writes the last file.
IN_FLIGHT_PER_PROCESS = 2


class ExportSink(Protocol):
    """Where an export's files go: a zip (a file, an HTTP response) or a folder."""

    async def add(self, name: str, data: bytes) -> None: ...

    async def finish(self, manifest: bytes) -> None: ...


@dataclass(frozen=True)
class CertificateRenderer:
    """Draws and renders one certificate record as the worker's file view does."""

    #: The record's SVG (``CertificateFactory.printable``).
    printable: Callable[[Mapping[str, Any]], Awaitable[str]]
    #: Remote images (signatures, logos), fetched and checked (the worker's cache).
    images: ImageSource
    #: Where rendering runs: a process pool (:func:`render_processes`).
    executor: Executor
    image_limits: ImageLimits
    #: Most certificates drawn or rendered at once.
    in_flight: int

    async def render(self, record: Mapping[str, Any], fmt: ExportFormat) -> bytes:
        # Drawing from a record that carries its SVG and inlining cached images are
        # quick; the rendering is the CPU-heavy part, and runs in the pool.
        svg = await inline_remote_images(await self.printable(record), self.images)
        future = self.executor.submit(
            render_certificate, svg, fmt, image_limits=self.image_limits,
            title=str(record.get("certificateName") or "") or None, lang=recipient_lang(record),
        )
        return await asyncio.wrap_future(future)


@dataclass(frozen=True)
class ExportedFile:
    name: str
    entry: BatchCertificate
    size: int


@dataclass(frozen=True)
class FailedCertificate:
    entry: BatchCertificate
    error: str


@dataclass
class ExportReport:
    """What an export wrote, left out and failed to render, and how fast."""

    batch_id: str
    fmt: ExportFormat
    left_out: list[LeftOut]
    exported: list[ExportedFile] = field(default_factory=list)
    failed: list[FailedCertificate] = field(default_factory=list)
    #: From the first record read to the manifest written (rendering included).
    seconds: float = 0.0
    processes: int = 0

    @property
    def per_second(self) -> float:
        """Files rendered and written per second."""
        return len(self.exported) / self.seconds if self.seconds > 0 else 0.0

    def manifest(self) -> dict[str, Any]:
        """``manifest.json``: every file with the certificate in it, what was left out
        and why, what failed."""
        return {
            "batchId": self.batch_id,
            "format": self.fmt,
            "exportedAt": datetime.now(UTC).isoformat(),
            "counts": {"exported": len(self.exported), "leftOut": len(self.left_out), "failed": len(self.failed)},
            "certificates": [
                {"file": done.name, **done.entry.described(), "bytes": done.size}
                for done in sorted(self.exported, key=lambda done: done.name)
            ],
            "leftOut": [left.described() for left in self.left_out],
            "failed": [{**failed.entry.described(), "error": failed.error} for failed in self.failed],
        }


Progress = Callable[[ExportedFile | FailedCertificate], None]


async def export_batch(
    source: BatchSource,
    selection: BatchSelection,
    fmt: ExportFormat,
    sink: ExportSink,
    renderer: CertificateRenderer,
    *,
    on_done: Progress | None = None,
) -> ExportReport:
    """Render every certificate of ``selection`` in force into ``sink``, then the manifest.

    Files are written as they are rendered (not in the batch's order). A certificate
    that fails is reported, not fatal; a render process that dies
    (``BrokenProcessPool``) and a sink that fails (a client gone) end the export.
    """
    started = time.perf_counter()
    report = ExportReport(selection.batch_id, fmt, list(selection.left_out))
    wanted = {entry.id: entry for entry in selection.in_force}
    taken: set[str] = set()
    pending: dict[asyncio.Task[bytes], BatchCertificate] = {}

    def done(outcome: ExportedFile | FailedCertificate) -> None:
        if on_done is not None:
            on_done(outcome)

    async def collect() -> None:
        """Write what has been rendered since the last call (waiting for one at least)."""
        finished, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in finished:
            entry = pending.pop(task)
            try:
                data = task.result()
            except BrokenProcessPool:
                raise
            except Exception as exc:  # noqa: BLE001 - one certificate's failure is reported, the export goes on
                log.warning("certificate %s of batch %s not exported: %r", entry.id, selection.batch_id, exc)
                message = f"{exc.code.value}: {exc.message}" if isinstance(exc, CertflowError) else repr(exc)
                report.failed.append(FailedCertificate(entry, message))
                done(report.failed[-1])
                continue
            name = certificate_file_name(entry.recipient_name, entry.id, fmt, taken)
            await sink.add(name, data)
            report.exported.append(ExportedFile(name, entry, len(data)))
            done(report.exported[-1])

    starts: dict[int, int] = {}
    stops: dict[int, int] = {}
    for entry in selection.in_force:
        starts[entry.partition] = min(starts.get(entry.partition, entry.offset), entry.offset)
        stops[entry.partition] = max(stops.get(entry.partition, 0), entry.offset + 1)
    records = read_until_end(source.kafka, source.topics.certificate_issued, start=starts, stop=stops)
    try:
        async with aclosing(records):
            async for consumed in records:
                key = consumed.key.decode("utf-8", "replace") if consumed.key is not None else ""
                wanted_entry = wanted.get(key)
                # Its newest record, or a later copy of it (a compaction may have
                # removed the one found): a certificate's records are all the same.
                if wanted_entry is None or consumed.value is None or consumed.offset < wanted_entry.offset:
                    continue
                del wanted[key]
                while len(pending) >= max(1, renderer.in_flight):
                    await collect()
                record = orjson.loads(consumed.value)
                pending[asyncio.create_task(renderer.render(record, fmt))] = wanted_entry
        while pending:
            await collect()
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    for entry in wanted.values():
        report.failed.append(FailedCertificate(entry, "its record was not found again on certificate.issued"))
        done(report.failed[-1])
    await sink.finish(orjson.dumps(report.manifest(), option=orjson.OPT_INDENT_2))
    report.seconds = time.perf_counter() - started
    return report


@contextmanager
def render_processes(processes: int | None = None) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``processes`` render processes (default: one per core), shut down on exit.

    "spawn": forking a process that runs an event loop (and, in a worker, Kafka
    client state) is unsafe; a fresh interpreter imports only what rendering needs.
    Shutting down does not wait for renders already running (an export that is
    abandoned, by a client gone, frees the cores within one render).
    """
    count = processes or os.cpu_count() or 1
    executor = ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context("spawn"))
    try:
        for _ in range(count):
            # Starts the processes, and imports the renderer in them, while the batch
            # is being found (only the renderer: a task's module is what a process imports).
            executor.submit(render_certificate, "", "svg")
        yield executor
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


@asynccontextmanager
async def offline_renderer(
    settings: Settings, executor: Executor, processes: int
) -> AsyncIterator[CertificateRenderer]:
    """What ``certflow export`` renders with outside a worker: templates and images
    fetched under the worker's settings and guards (``CertflowServices``)."""
    services = CertflowServices(settings)
    # Drawing an issued certificate never signs: the factory's key is a throwaway
    # (records of certificate.issued carry their SVG; older ones are drawn again from
    # their template, digest checked).
    factory = CertificateFactory(
        services.templates, settings.base_path, KeyRing((SigningKey.generate(),)), settings.partitions
    )
    try:
        yield CertificateRenderer(
            factory.printable, services.images, executor, services.image_limits,
            in_flight=processes * IN_FLIGHT_PER_PROCESS,
        )
    finally:
        await services.fetcher.close()
        await services.image_fetcher.close()


async def export_to_path(
    settings: Settings,
    selection: BatchSelection,
    fmt: ExportFormat,
    output: Path,
    *,
    directory: bool = False,
    executor: Executor,
    processes: int,
    on_done: Progress | None = None,
) -> ExportReport:
    """``certflow export``: the batch as a zip at ``output`` (or, with ``directory``,
    its files in the folder ``output``).

    A zip is written beside its final name and renamed once complete, so a file
    named ``output`` is always a whole archive.
    """
    source = BatchSource.from_settings(settings)
    async with offline_renderer(settings, executor, processes) as renderer:
        if directory:
            report = await export_batch(source, selection, fmt, DirectorySink(output), renderer, on_done=on_done)
            report.processes = processes
            return report
        partial = output.with_name(output.name + ".part")
        try:
            with partial.open("wb") as file:

                async def write(chunk: bytes) -> None:
                    file.write(chunk)

                report = await export_batch(source, selection, fmt, ZipSink(write), renderer, on_done=on_done)
            partial.replace(output)
        finally:
            partial.unlink(missing_ok=True)
    report.processes = processes
    return report


async def measure_export(
    settings: Settings, batch_id: str, *, fmt: ExportFormat = "pdf", processes: int | None = None,
    limit: int | None = None,
) -> ExportReport:
    """For ``certflow bench``: export ``batch_id`` (its first ``limit`` certificates in
    force, if given: a sample of a large batch) to a scratch zip; the report's
    ``per_second`` is PDFs (or PNGs) per second."""
    count = processes or os.cpu_count() or 1
    with render_processes(count) as executor, tempfile.TemporaryDirectory(prefix="certflow-export-") as scratch:
        selection = await find_batch(BatchSource.from_settings(settings), batch_id)
        if not selection.in_force:
            raise NothingToExport(selection)
        if limit is not None:
            selection = BatchSelection(selection.batch_id, selection.in_force[:limit], selection.left_out)
        return await export_to_path(settings, selection, fmt, Path(scratch) / "batch.zip",
                                    executor=executor, processes=count)
