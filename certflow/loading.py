"""Reading reference-data exports (batches, enrolments, scores, learners) for ``certflow load``.

Operators seed certflow from what Sunbird already has: Cassandra exports of
``course_batch``, ``user_enrolments`` and ``user_activity_agg``, and user-read
responses. This module turns such a file into Kafka records, row by row, without
Kafka: each row is validated with the model the consumer validates with, so a bad
row is reported here, with its line number, instead of being dropped by a worker.

Files are streamed one row at a time and no row may exceed ``MAX_ROW_BYTES``, so a
million-row export, or one runaway line, never has to fit in memory.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import orjson
from pydantic import ValidationError

from certflow.jsonlimits import MAX_JSON_DEPTH, loads_bounded
from certflow.reference.models import (
    BatchRecord,
    EnrolmentRow,
    LearnerProfile,
    ReferenceModel,
    ScoreRow,
)
from certflow.topics import TopicNames

#: The largest row accepted: the default ``max_event_bytes`` a worker accepts.
MAX_ROW_BYTES = 1_048_576
JSON_LINES_SUFFIXES = frozenset({".jsonl", ".json", ".ndjson"})
CSV_SUFFIXES = frozenset({".csv"})
#: Validation errors named in a rejection reason; more are counted, not listed.
_ERRORS_SHOWN = 3


class ReferenceKind(StrEnum):
    """The reference topics ``certflow load`` fills, each with its model and key."""

    BATCHES = "batches"
    ENROLMENTS = "enrolments"
    SCORES = "scores"
    LEARNERS = "learners"

    @property
    def model(self) -> type[ReferenceModel]:
        """The model the consumer of this kind's topic validates records with."""
        return _MODELS[self]

    def key_of(self, record: ReferenceModel) -> bytes:
        """The Kafka key of a validated record.

        Batches are keyed by batch id. Everything about a learner is keyed by the
        bare user id (UTF-8), so enrolments, scores and profiles of one learner land
        in the same partition and the worker can join them without a network hop.
        """
        match record:
            case BatchRecord():
                return record.batchId.encode()
            case EnrolmentRow():
                return record.userid.encode()
            case ScoreRow():
                return record.user_id.encode()
            case LearnerProfile():
                return record.userId.encode()
        raise TypeError(f"not a reference record: {type(record).__name__}")

    def topic(self, topics: TopicNames) -> str:
        """This kind's topic among a deployment's topic names (prefix applied)."""
        return {
            ReferenceKind.BATCHES: topics.batches,
            ReferenceKind.ENROLMENTS: topics.enrolments,
            ReferenceKind.SCORES: topics.scores,
            ReferenceKind.LEARNERS: topics.learners,
        }[self]


_MODELS: dict[ReferenceKind, type[ReferenceModel]] = {
    ReferenceKind.BATCHES: BatchRecord,
    ReferenceKind.ENROLMENTS: EnrolmentRow,
    ReferenceKind.SCORES: ScoreRow,
    ReferenceKind.LEARNERS: LearnerProfile,
}


@dataclass(frozen=True)
class LoadedRow:
    """A row ready to produce. ``value`` is ``None`` for a tombstone (a deletion)."""

    line: int
    key: bytes
    value: bytes | None


@dataclass(frozen=True)
class RejectedRow:
    """A row that will not be produced, and why, for the operator to fix."""

    line: int
    reason: str


def read_rows(
    path: Path, kind: ReferenceKind, *, max_row_bytes: int = MAX_ROW_BYTES
) -> Iterator[LoadedRow | RejectedRow]:
    """Every row of ``path`` as a :class:`LoadedRow` or a :class:`RejectedRow`, in order.

    The format follows the file name: JSON lines (``.jsonl``, ``.json``,
    ``.ndjson``: one object per line; ``{"delete": "<key>"}`` is a tombstone) or CSV
    (``.csv``: a header row names the columns; empty cells are left out; cells
    starting with ``{`` or ``[`` are parsed as JSON, as exports of Cassandra
    ``map``/``list`` columns hold them). Line numbers are the file's physical lines,
    from 1 (a CSV header is line 1). A row over ``max_row_bytes`` is rejected.

    Raises ``ValueError`` at once (not on first iteration) for an unknown format.
    """
    suffix = path.suffix.lower()
    if suffix in JSON_LINES_SUFFIXES:
        return _json_lines(path, kind, max_row_bytes)
    if suffix in CSV_SUFFIXES:
        return _csv_rows(path, kind, max_row_bytes)
    known = ", ".join(sorted(JSON_LINES_SUFFIXES | CSV_SUFFIXES))
    raise ValueError(f"{path.name}: unknown format {suffix or '(no suffix)'!r}, expected {known}")


def count_lines(path: Path) -> int:
    """The physical lines of a file, for a progress bar: one pass over bytes, no parsing."""
    lines = 0
    last = b"\n"
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def _json_lines(path: Path, kind: ReferenceKind, max_row_bytes: int) -> Iterator[LoadedRow | RejectedRow]:
    with path.open("rb") as file:
        lines = _PhysicalLines(file, max_row_bytes)
        while True:
            lines.start_row()
            try:
                text = next(lines)
            except StopIteration:
                return
            if lines.problem:
                yield RejectedRow(lines.number, lines.problem)
            elif text.strip():
                yield _json_line(text, lines.number, kind, max_row_bytes)


def _json_line(text: str, line: int, kind: ReferenceKind, max_row_bytes: int) -> LoadedRow | RejectedRow:
    try:
        document = loads_bounded(text)
    except orjson.JSONDecodeError as exc:
        return RejectedRow(line, f"not JSON: {exc}")
    if not isinstance(document, dict):
        return RejectedRow(line, f"not a JSON object but {_json_type(document)}")
    if document.keys() == {"delete"}:
        return _tombstone(document["delete"], line)
    return _validated(document, line, kind, max_row_bytes)


def _tombstone(key: Any, line: int) -> LoadedRow | RejectedRow:
    """``{"delete": key}``: a ``None`` value, Kafka's deletion marker, which log
    compaction and table consumers read as "forget everything under this key"."""
    if not isinstance(key, str) or not key.strip():
        return RejectedRow(line, "delete: the key must be a non-blank string")
    return LoadedRow(line, key.strip().encode(), None)


def _csv_rows(path: Path, kind: ReferenceKind, max_row_bytes: int) -> Iterator[LoadedRow | RejectedRow]:
    # The csv module refuses fields over 128 KiB by default; rows are bounded by
    # max_row_bytes anyway. The limit is process-wide, so it is only ever raised.
    csv.field_size_limit(max(csv.field_size_limit(), max_row_bytes))
    with path.open("rb") as file:
        lines = _PhysicalLines(file, max_row_bytes)
        reader = csv.reader(lines, strict=True)
        columns: list[str] | None = None
        while True:
            start = lines.number + 1
            lines.start_row()
            try:
                cells = next(reader)
                problem = lines.problem
            except StopIteration:
                return
            except csv.Error as exc:
                problem = lines.problem or f"not valid CSV: {exc}"
            if problem:
                if columns is None:
                    yield RejectedRow(start, f"header: {problem}; nothing else was read")
                    return
                yield RejectedRow(start, problem)
                continue
            if not any(cells):
                continue  # blank line, or a spreadsheet's row of empty cells
            if columns is None:
                columns = [name.strip() for name in cells]
                continue
            if len(cells) > len(columns):
                yield RejectedRow(start, f"{len(cells)} cells, but the header names {len(columns)} columns")
                continue
            document = {
                name: _cell(cell) for name, cell in zip(columns, cells, strict=False) if name and cell != ""
            }
            yield _validated(document, start, kind, max_row_bytes)


def _cell(text: str) -> Any:
    """A CSV cell: JSON when it looks like an object or array, else the text itself.

    Text that merely starts with a bracket (``[draft] course``) stays text; if its
    column is a structured one, the model rejects it, naming the column.
    """
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            # The row's object around the cell is one more level on the topic.
            return loads_bounded(stripped, max_depth=MAX_JSON_DEPTH - 1)
        except orjson.JSONDecodeError:
            return text
    return text


def _validated(
    document: dict[str, Any], line: int, kind: ReferenceKind, max_row_bytes: int
) -> LoadedRow | RejectedRow:
    """Validate as the consumer will, and serialise what it will validate again."""
    try:
        record = kind.model.model_validate(document)
    except ValidationError as exc:
        return RejectedRow(line, _describe(exc))
    if isinstance(record, BatchRecord):
        # Sunbird would skip the batch at issue time; better to hear about it now.
        for template in record.certTemplates.values():
            if problem := template.problem():
                return RejectedRow(line, problem)
    value = orjson.dumps(record.model_dump(mode="json", by_alias=False))
    if len(value) > max_row_bytes:
        return RejectedRow(line, f"record is {len(value)} bytes as JSON, over {max_row_bytes}")
    return LoadedRow(line, kind.key_of(record), value)


def _describe(error: ValidationError) -> str:
    """``batchId: Field required; status: Input should be …``: short, and naming fields."""
    errors = error.errors(include_url=False)
    parts = []
    for item in errors[:_ERRORS_SHOWN]:
        where = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    if len(errors) > _ERRORS_SHOWN:
        parts.append(f"and {len(errors) - _ERRORS_SHOWN} more")
    return "; ".join(parts)


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


#: Runs of CSV cell content; what is left (quotes, commas, line breaks) is a row's shape.
_CELL_CONTENT = re.compile(rb'[^",\r\n]+')


class _PhysicalLines:
    """The lines of a binary file as text, counted, and bounded per row.

    ``readline`` is given the bytes left in the row's budget, so an oversized row is
    noticed after reading just past the limit. From then on, until the next row,
    ``problem`` says why the row is rejected and lines are returned as their shape
    only (each run of content becomes ``x``): the CSV reader still finds where the
    row ends, even inside a quoted cell, while nothing large is held. Line breaks
    count towards a row's size.
    """

    def __init__(self, file: IO[bytes], max_row_bytes: int) -> None:
        self._file = file
        self._max_row_bytes = max_row_bytes
        #: Physical lines consumed so far: the number of the line last returned.
        self.number = 0
        #: Why the current row cannot be read, once that is known.
        self.problem: str | None = None
        self._row_bytes = 0

    def start_row(self) -> None:
        self._row_bytes = 0
        self.problem = None

    def __iter__(self) -> _PhysicalLines:
        return self

    def __next__(self) -> str:
        budget = 1 << 16 if self.problem else self._max_row_bytes - self._row_bytes + 1
        raw = self._file.readline(budget)
        if not raw:
            raise StopIteration
        self.number += 1
        if self.problem:
            return self._shape(raw)
        self._row_bytes += len(raw)
        if self._row_bytes > self._max_row_bytes:
            self.problem = f"row is larger than {_size(self._max_row_bytes)}"
            return self._shape(raw)
        try:
            # utf-8-sig drops the byte-order mark spreadsheet programs put first.
            return raw.decode("utf-8-sig" if self.number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            self.problem = f"not UTF-8: {exc.reason} at byte {exc.start}"
            return self._shape(raw)

    def _shape(self, raw: bytes) -> str:
        """The rest of the physical line that starts with ``raw``, as its shape."""
        parts = [_CELL_CONTENT.sub(b"x", raw)]
        while not raw.endswith(b"\n") and (raw := self._file.readline(1 << 16)):
            parts.append(_CELL_CONTENT.sub(b"x", raw))
        return b"".join(parts).decode("ascii")


def _size(count: int) -> str:
    return f"{count // 1_048_576} MiB" if count % 1_048_576 == 0 else f"{count} bytes"
