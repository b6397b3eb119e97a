"""Events in and out of Kafka: send, tail, and loading reference data."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click
import orjson

from certflow.cli.root import cli
from certflow.loading import ReferenceKind
from certflow.settings import Settings

if TYPE_CHECKING:
    from certflow.loading import LoadedRow, RejectedRow


@cli.command()
@click.argument("topic")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", default=None, help="Kafka key for every event (default: none, as Sunbird).")
def send(topic: str, files: tuple[Path, ...], key: str | None) -> None:
    """Produce JSON events to TOPIC from FILES, or from stdin.

    A file holding one JSON document is one event; otherwise every non-blank line
    is one event. Lines are sent as they are (invalid JSON too, on purpose: that is
    how you test the dead-letter topic).
    """
    settings = Settings()
    from certflow.kafka import produce

    events: list[bytes] = []
    sources = [path.read_bytes() for path in files] if files else [sys.stdin.buffer.read()]
    for content in sources:
        events.extend(_split_events(content))
    key_bytes = key.encode() if key is not None else None
    sent = asyncio.run(produce(settings.kafka, topic, [(key_bytes, event) for event in events]))
    click.echo(f"sent {sent} event(s) to {topic}", err=True)


def _as_json(value: bytes | None) -> object:
    """A record's value as JSON; one that is not JSON is shown as a string."""
    if value is None:
        return None
    from certflow.jsonlimits import loads_bounded

    try:
        return loads_bounded(value)  # deeper JSON would not print again (orjson.dumps: 254)
    except orjson.JSONDecodeError:
        return value.decode("utf-8", "replace")


def _split_events(content: bytes) -> list[bytes]:
    try:
        orjson.loads(content)
    except orjson.JSONDecodeError:
        return [line.strip() for line in content.splitlines() if line.strip()]
    return [content.strip()]


@cli.command()
@click.argument("topic")
@click.option("--count", type=int, default=None, help="Stop after N events.")
@click.option("--timeout", type=float, default=5.0, show_default=True,
              help="Stop after S seconds without a new event.")
@click.option("--meta", is_flag=True, help="Wrap each event with topic, partition, offset and key.")
def tail(topic: str, count: int | None, timeout: float, meta: bool) -> None:
    """Print the events of TOPIC from the beginning as JSON lines, then exit."""
    settings = Settings()
    from certflow.kafka import read_topic

    async def run() -> None:
        async for record in read_topic(settings.kafka, topic, timeout=timeout, count=count):
            value = _as_json(record.value)
            if meta:
                value = {
                    "topic": record.topic, "partition": record.partition, "offset": record.offset,
                    "key": record.key.decode("utf-8", "replace") if record.key else None,
                    "value": value,
                }
            sys.stdout.buffer.write(orjson.dumps(value) + b"\n")
            sys.stdout.buffer.flush()

    asyncio.run(run())


@cli.command()
@click.argument("kind", type=click.Choice([kind.value for kind in ReferenceKind]))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Validate every row, produce nothing.")
def load(kind: str, file: Path, dry_run: bool) -> None:
    """Load reference data (KIND: batches, enrolments, scores or learners) from FILE.

    Every row is validated as a worker will validate it, then produced to the
    kind's topic: batches keyed by batch id; enrolments, scores and learners keyed
    by the learner's user id, so one learner's data shares a partition. Bad rows
    are reported by line number and skipped; the good ones are still loaded.

    \b
    Formats, by file name:
      .jsonl .ndjson .json  one JSON object per line; blank lines are skipped.
      .csv                  a header row names the columns (Cassandra's names
                            do); empty cells are left out, and cells starting
                            with { or [ are read as JSON, so map and list
                            columns must be exported as JSON, not CQL literals.

    A JSON line {"delete": "KEY"} is a tombstone: a record with key KEY and no
    value, which removes what the worker holds under KEY on that topic.

    Exit status: 0 if every row was loaded, 1 if some were rejected.
    """
    from certflow.kafka import ensure_topics
    from certflow.loading import read_rows

    settings = Settings()
    reference = ReferenceKind(kind)
    topic = reference.topic(settings.topics)
    try:
        rows = read_rows(file, reference, max_row_bytes=settings.max_event_bytes)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="FILE") from None
    if not dry_run:
        # A topic auto-created by the broker would get its default partition
        # count, and learner-keyed topics must agree with the worker's tables.
        asyncio.run(ensure_topics(settings.kafka, [topic], partitions=settings.partitions,
                                  replication_factor=settings.replication_factor,
                                  min_insync_replicas=settings.min_insync_replicas,
                                  compacted=settings.topics.compacted()))
    loaded, rejected, rejected_count = _produce_rows(rows, file, settings, topic, dry_run=dry_run)

    if dry_run:
        click.echo(f"dry run: would load {loaded} row(s) into {topic}, rejected {rejected_count}", err=True)
    else:
        click.echo(f"loaded {loaded} row(s) into {topic}, rejected {rejected_count}", err=True)
    for row in rejected:
        click.echo(f"line {row.line}: {row.reason}", err=True)
    if rejected_count > len(rejected):
        click.echo(f"… and {rejected_count - len(rejected)} more", err=True)
    if rejected_count:
        sys.exit(1)


def _produce_rows(
    rows: Iterable[LoadedRow | RejectedRow], file: Path, settings: Settings, topic: str, *, dry_run: bool
) -> tuple[int, list[RejectedRow], int]:
    """Produce the good ``rows`` to ``topic`` in acknowledged chunks, with a progress bar:
    the rows loaded, the first 50 rejected, and how many were rejected."""
    from certflow.kafka import produce
    from certflow.loading import RejectedRow, count_lines

    chunk_rows = 5_000  # a chunk is produced and acknowledged before the next is read
    chunk: list[tuple[bytes, bytes | None]] = []
    produced = loaded = 0
    rejected: list[RejectedRow] = []
    rejected_count = 0

    def flush() -> None:
        nonlocal produced
        if chunk:
            try:
                # None values (tombstones) pass through produce as they are.
                produced += asyncio.run(produce(settings.kafka, topic, chunk))
            except Exception as exc:  # the broker's errors vary; the operator needs the count
                raise click.ClickException(
                    f"producing to {topic} failed after {produced} row(s): {exc!r}"
                ) from exc
            chunk.clear()

    with click.progressbar(length=count_lines(file), label=f"loading {file.name}",
                           file=sys.stderr) as bar:
        line = 0
        for row in rows:
            bar.update(row.line - line)
            line = row.line
            if isinstance(row, RejectedRow):
                rejected_count += 1
                if len(rejected) < 50:
                    rejected.append(row)
                continue
            loaded += 1
            if not dry_run:
                chunk.append((row.key, row.value))
                if len(chunk) >= chunk_rows:
                    flush()
        flush()
        bar.update((bar.length or line) - line)
    return loaded, rejected, rejected_count


