"""``certflow``: run the service, and the tools that go with it.

Settings come from ``CERTFLOW_*`` environment variables (see ``certflow.settings``);
the few flags here override the matching setting for one run. Modules that build
the Faust app are imported inside commands, after flags have been applied, because
the app reads its settings when it is created.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import orjson

from certflow.errors import CertflowError
from certflow.loading import ReferenceKind
from certflow.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """certflow: Sunbird-compatible course certificates on Kafka.

    Typical local run: `certflow broker` in one terminal, `certflow keys generate
    --file keys.json` once, `CERTFLOW_SIGNING_KEYS_FILE=keys.json certflow worker` in
    another, then `certflow send generate.certificate.request event.json` and
    `certflow tail certificate.issued`.
    """


@cli.command()
@click.option("--port", default=9092, show_default=True, help="Kafka port of the first broker, on 127.0.0.1.")
@click.option(
    "--data-dir",
    default=".certflow/broker",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the broker keeps its data (and, with Kafka, cluster.json).",
)
@click.option(
    "--engine",
    type=click.Choice(["kafka", "noida"]),
    default="kafka",
    show_default=True,
    help="Apache Kafka in KRaft mode (needs Java 17+; Maven fetches it on first use), "
    "or noida-db (one process, no Java; known defects, for a machine without Java).",
)
@click.option(
    "--brokers",
    type=click.IntRange(1, 9),
    default=1,
    show_default=True,
    help="Kafka nodes, each broker and controller (3 for replication 3, min.insync.replicas 2).",
)
def broker(port: int, data_dir: Path, engine: str, brokers: int) -> None:
    """Run a local broker on loopback, in the foreground, until Ctrl-C or SIGTERM."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if engine == "noida":
        from certflow.broker import noida_command

        if brokers != 1:
            raise click.UsageError("noida-db runs a single broker")
        command = noida_command(port=port, data_dir=data_dir)
        click.echo(f"noida-db broker on kafka://127.0.0.1:{port}, data in {data_dir} (Ctrl-C stops it)", err=True)
        os.execv(command[0], command)
    _run_kafka(port=port, data_dir=data_dir, brokers=brokers)


def _run_kafka(*, port: int, data_dir: Path, brokers: int) -> None:
    """Apache Kafka nodes as child JVMs; every one is stopped on SIGTERM or SIGINT."""
    import signal
    import threading

    from certflow.broker import KafkaCluster

    cluster = KafkaCluster(data_dir, nodes=brokers, port=port)
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        click.echo(f"starting Apache Kafka {cluster.version}, {brokers} node(s), data in {data_dir}", err=True)
        cluster.start()
        click.echo(
            f"Kafka on {cluster.bootstrap} (CERTFLOW_BROKER={cluster.url}); "
            f"{data_dir / 'cluster.json'} lists the nodes (Ctrl-C stops them)",
            err=True,
        )
        while not stopping.wait(1.0):
            pass
    finally:
        click.echo("stopping Kafka", err=True)
        cluster.stop()


@cli.command()
def topics() -> None:
    """Create every certflow topic with its configured partition count (idempotent)."""
    settings = Settings()
    _create_topics(settings)


def _create_topics(settings: Settings) -> None:
    from certflow.kafka import ensure_topics

    report = asyncio.run(
        ensure_topics(
            settings.broker,
            settings.topics.all(),
            partitions=settings.partitions,
            replication_factor=settings.replication_factor,
            min_insync_replicas=settings.min_insync_replicas,
            compacted=[settings.topics.certificate_issued],
        )
    )
    for name in report.created:
        click.echo(
            f"created  {name} ({settings.partitions} partitions, {report.replication_factor} replicas, "
            f"min.insync.replicas {report.min_insync_replicas})",
            err=True,
        )
    for name, count in report.existing.items():
        click.echo(f"exists   {name} ({count} partitions)", err=True)


@cli.command()
@click.option("--web-port", type=int, default=None, help="Port of the worker's web server [6066].")
def worker(web_port: int | None) -> None:
    """Run a certflow worker (creates the topics first)."""
    if web_port is not None:
        os.environ["CERTFLOW_WEB_PORT"] = str(web_port)
    settings = Settings()
    _require_signing_keys(settings)
    _create_topics(settings)
    from certflow.app import app

    # Hand over to Faust's own `worker` command, so `certflow worker` and
    # `faust -A certflow.app worker` are one and the same thing.
    sys.argv = [
        "certflow",
        "worker",
        "--loglevel",
        settings.log_level,
        "--web-port",
        str(settings.web_port),
        "--web-bind",
        settings.web_bind,
        "--web-host",
        settings.web_host,
    ]
    app.main()


def _require_signing_keys(settings: Settings) -> None:
    """Stop, saying how to fix it, before a worker without usable keys touches the
    broker (``KeyRing.from_settings`` refuses to make one up)."""
    from certflow.credentials.keys import KeyRing

    try:
        KeyRing.from_settings(settings)
    except ValueError as exc:
        raise click.ClickException(f"the worker cannot sign certificates: {exc}") from None


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
    sent = asyncio.run(produce(settings.broker, topic, [(key_bytes, event) for event in events]))
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
        async for record in read_topic(settings.broker, topic, timeout=timeout, count=count):
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
@click.argument("template", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the filled SVG.")
@click.option("--json-output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the certificate record (id, credential …) as JSON.")
def render(template: Path, data: Path, output: Path, json_output: Path | None) -> None:
    """Fill TEMPLATE with DATA offline, to preview a template while authoring it.

    DATA is a generate-certificate event, or just its `edata`; its first recipient
    is rendered, with a real QR code, exactly as a worker would render it.
    """
    from certflow.errors import CertflowError

    try:
        certificate = asyncio.run(_render(template, data))
    except CertflowError as exc:
        raise click.ClickException(f"{exc.code.value}: {exc.message}") from None
    output.write_text(certificate.svg, encoding="utf-8")
    click.echo(f"wrote {output} (certificate {certificate.id})", err=True)
    if json_output is not None:
        json_output.write_bytes(orjson.dumps(certificate.model_dump(mode="json"), option=orjson.OPT_INDENT_2))


async def _render(template: Path, data: Path):  # type: ignore[no-untyped-def]
    from certflow.credentials.keys import KeyRing, SigningKey
    from certflow.issuing import CertificateFactory
    from certflow.models.events import decode_json_object, parse_event
    from certflow.models.generate import GenerateCertificateRequest, validation_context
    from certflow.render.fetch import FetchPolicy, SafeFetcher
    from certflow.render.svg import SvgTemplate
    from certflow.render.template_cache import TemplateCache

    settings = Settings()
    document = decode_json_object(data.read_bytes(), max_bytes=settings.max_event_bytes)
    if "edata" not in document:
        document = {"edata": document}
    document["edata"]["svgTemplate"] = template.name
    request = parse_event(
        GenerateCertificateRequest,
        orjson.dumps(document),
        max_bytes=settings.max_event_bytes,
        context=validation_context(suppress_signatory_errors=True),
    )
    first = next(request.per_recipient())
    async with SafeFetcher(FetchPolicy.from_settings(settings)) as fetcher:
        templates: TemplateCache[SvgTemplate] = TemplateCache(
            fetcher,
            lambda source, url: SvgTemplate.parse(source, url=url),
            template_root=template.resolve().parent,
        )
        # A throwaway key: a preview is not a certificate anyone should trust.
        preview_keys = KeyRing((SigningKey.generate(),))
        factory = CertificateFactory(templates, settings.base_path, preview_keys)
        return await factory.issue(first, now=datetime.now(UTC))


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
    from certflow.kafka import ensure_topics, produce
    from certflow.loading import RejectedRow, count_lines, read_rows

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
        asyncio.run(ensure_topics(settings.broker, [topic], partitions=settings.partitions,
                                  replication_factor=settings.replication_factor,
                                  min_insync_replicas=settings.min_insync_replicas))

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
                produced += asyncio.run(produce(settings.broker, topic, chunk))  # type: ignore[arg-type]
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
        bar.update(bar.length - line)

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


@cli.group()
def keys() -> None:
    """Ed25519 signing keys (did:key): the newest signs, all of them verify.

    Without --file the key file is CERTFLOW_SIGNING_KEYS_FILE, the one workers use.
    Every worker of a deployment must have the same keys (the file, or its content
    in CERTFLOW_SIGNING_KEYS); a worker without keys refuses to start.
    """


_keys_file_option = click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Key file [default: CERTFLOW_SIGNING_KEYS_FILE].",
)


@keys.command("generate")
@_keys_file_option
def keys_generate(path: Path | None) -> None:
    """Add a new key to the key file (created, mode 0600, if missing); it signs from now on.

    Prints the new key's verification method. Old keys stay in the file, so the
    certificates they signed keep verifying.
    """
    from certflow.credentials.keys import append_new_key, keys_file

    settings = Settings()
    target = path or keys_file(settings)
    if target is None:
        raise click.ClickException(
            "say which key file: --file keys.json (then give workers "
            "CERTFLOW_SIGNING_KEYS_FILE=keys.json), or set CERTFLOW_SIGNING_KEYS_FILE"
        )
    if path is None and settings.signing_keys.strip():
        click.echo(
            "warning: CERTFLOW_SIGNING_KEYS is set and wins over the key file; "
            f"workers will not use the key added to {target}",
            err=True,
        )
    try:
        key = append_new_key(target)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"added a signing key to {target}", err=True)
    click.echo(key.verification_method)


@keys.command("list")
@_keys_file_option
def keys_list(path: Path | None) -> None:
    """Print each key's verification method and creation time, oldest first.

    The last one is the key that signs. Private keys are never printed.
    """
    from certflow.credentials.keys import KeyRing, keys_file

    settings = Settings()
    try:
        if path is None and settings.signing_keys.strip():
            click.echo("keys from CERTFLOW_SIGNING_KEYS", err=True)
            ring = KeyRing.from_json(settings.signing_keys)
        else:
            target = path or keys_file(settings)
            if target is None:
                raise click.ClickException(
                    "no keys configured: give --file, or set CERTFLOW_SIGNING_KEYS_FILE or "
                    "CERTFLOW_SIGNING_KEYS"
                )
            if not target.exists():
                raise click.ClickException(f"no key file at {target} (`certflow keys generate` makes one)")
            ring = KeyRing.load(target)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    for key in ring.keys:
        marker = "  (signs)" if key is ring.current else ""
        click.echo(f"{key.verification_method}  {key.created.strftime('%Y-%m-%dT%H:%M:%SZ')}{marker}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()


@cli.command()
@click.argument("source")
@click.option("--trust", "trusted", multiple=True, metavar="DID",
              help="Also trust this issuer (a did:key DID); repeatable. Always trusted: this "
              "deployment's signing keys and CERTFLOW_TRUSTED_ISSUERS.")
@click.option("--no-status", is_flag=True,
              help="Do not fetch the status list (for a credential checked fully offline).")
def verify(source: str, trusted: tuple[str, ...], no_status: bool) -> None:
    """Verify a certificate: a credential JSON FILE, or a certificate URL.

    Checks the signature (did:key issuers resolve offline, nothing is fetched for
    them), that it is a certificate, the validity period, the issuer, and
    revocation, by fetching the credential's status list and verifying that list's
    own signature. Prints every check as JSON; exits 0 only when the certificate is
    valid.

    \b
    Trusted issuers, and only they, verify: this deployment's signing keys
    (CERTFLOW_SIGNING_KEYS, else the key file, read and never created),
    CERTFLOW_TRUSTED_ISSUERS and --trust. Anyone can make a did:key, so any other
    issuer is reported as "untrusted issuer did:key:…".

    \b
    The status list URL comes from the credential, so it is fetched like a template:
    http(s) only, from CERTFLOW_STATUS_LIST_ALLOWED_HOSTS (default: the host of
    CERTFLOW_PUBLIC_URL), public addresses only unless
    CERTFLOW_FETCH_ALLOW_PRIVATE_NETWORKS, within CERTFLOW_FETCH_MAX_BYTES and
    CERTFLOW_FETCH_TIMEOUT_SECONDS. SOURCE is the operator's choice: a local file
    is read, a URL fetched from its own host (loopback and private addresses too),
    within the same size and time limits.
    """
    from certflow.credentials.status_list import status_lookup
    from certflow.credentials.trust import TrustPolicy, issuer_did
    from certflow.credentials.verification import verify_certificate

    for did in trusted:
        try:
            issuer_did(did)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--trust") from None
    try:
        settings = Settings()
    except ValueError as exc:  # a CERTFLOW_TRUSTED_ISSUERS entry that is not a did:key, say
        raise click.ClickException(str(exc)) from None
    trust = TrustPolicy.from_settings(settings, _deployment_keys(settings), also=trusted)
    if not trust.issuers:
        click.echo("warning: no issuer is trusted (no signing keys configured, no "
                   "CERTFLOW_TRUSTED_ISSUERS, no --trust): nothing can verify", err=True)

    async def run() -> dict[str, object]:
        credential = _credential_in(await _load_source(source, settings))
        now = datetime.now(UTC)
        status_of = None
        if not no_status:
            lists, problems = await _status_lists(credential, settings, trust, now)

            def status_of(entry: dict[str, object]) -> bool | None:
                url = entry.get("statusListCredential")
                if isinstance(url, str) and url in problems:
                    raise LookupError(problems[url])
                return status_lookup(lists)(entry)

        result = verify_certificate(credential, trust=trust, status_of=status_of, now=now)
        report = result.as_dict()
        if no_status:
            report["checks"] = [c for c in report["checks"] if c["check"] != "status"]
            report["verified"] = all(c["ok"] for c in report["checks"])
        return report

    try:
        report = asyncio.run(run())
    except (OSError, ValueError, CertflowError) as exc:
        reason = exc.message if isinstance(exc, CertflowError) else str(exc)
        raise click.ClickException(f"cannot read {source}: {reason}") from None
    click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    for check in report["checks"]:  # type: ignore[union-attr]
        mark = "ok " if check["ok"] else "FAIL"
        click.echo(f"{mark} {check['check']}: {check['reason']}", err=True)
    sys.exit(0 if report["verified"] else 1)


def _deployment_keys(settings: Settings):  # type: ignore[no-untyped-def]
    """This deployment's key ring, read only (never created); None, with a warning, if none."""
    from certflow.credentials.keys import configured_key_ring, keys_file

    try:
        ring = configured_key_ring(settings)
    except (OSError, ValueError) as exc:
        click.echo(f"warning: cannot read this deployment's signing keys ({exc}); "
                   "only CERTFLOW_TRUSTED_ISSUERS and --trust are trusted", err=True)
        return None
    if ring is None:
        where = keys_file(settings) or "CERTFLOW_SIGNING_KEYS_FILE (unset)"
        click.echo(f"warning: no signing keys at {where} (nor CERTFLOW_SIGNING_KEYS); "
                   "only CERTFLOW_TRUSTED_ISSUERS and --trust are trusted", err=True)
    return ring


async def _load_source(source: str, settings: Settings) -> dict[str, object]:
    """A JSON object from a file or an http(s) URL, within the fetch limits.

    The operator chose SOURCE, so a URL is fetched from its own host whatever the
    address (a worker on loopback is the usual case), but redirects stay on that
    host, and size and time are bounded as for any fetch. A file is read only up to
    the same size (``/dev/zero`` is not read for ever).
    """
    from certflow.jsonlimits import loads_bounded

    limit = settings.fetch_max_bytes
    if source.startswith(("http://", "https://")):
        from yarl import URL

        from certflow.render.fetch import FetchPolicy, SafeFetcher

        policy = FetchPolicy(
            allowed_hosts=(URL(source).raw_host or "",),
            allow_private_networks=True,
            timeout_seconds=settings.fetch_timeout_seconds,
            max_bytes=limit,
            max_redirects=settings.fetch_max_redirects,
            what="certificate",
        )
        async with SafeFetcher(policy) as fetcher:
            raw = (await fetcher.fetch(source)).body
    else:
        with Path(source).open("rb") as file:
            raw = file.read(limit + 1)
        if len(raw) > limit:
            raise ValueError(f"larger than CERTFLOW_FETCH_MAX_BYTES ({limit} bytes)")
    document = loads_bounded(raw)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document


def _credential_in(document: dict[str, object]) -> dict[str, object]:
    """The credential in what a worker serves (`credential`), a record (`certificate`), or itself."""
    for field in ("credential", "certificate", "verifiableCredential"):
        inner = document.get(field)
        if isinstance(inner, dict):
            return inner
    return document


async def _status_lists(
    credential: dict[str, object], settings: Settings, trust, now: datetime  # type: ignore[no-untyped-def]
) -> tuple[dict[str, object], dict[str, str]]:
    """The credential's status lists, fetched safely and verified, and why any is not had.

    Fetched under ``FetchPolicy.for_status_lists`` (the credential chooses the URL),
    and believed only when ``verification.verified_status_list`` says so: a trusted
    status list credential issued by the credential's own issuer.
    """
    from certflow.credentials.verification import issuer_id, verified_status_list
    from certflow.jsonlimits import loads_bounded
    from certflow.render.fetch import FetchPolicy, SafeFetcher

    entries = credential.get("credentialStatus")
    entries = entries if isinstance(entries, list) else [entries]
    urls = list(dict.fromkeys(
        entry["statusListCredential"] for entry in entries
        if isinstance(entry, dict) and isinstance(entry.get("statusListCredential"), str)
    ))
    lists: dict[str, object] = {}
    problems: dict[str, str] = {}
    async with SafeFetcher(FetchPolicy.for_status_lists(settings)) as fetcher:
        for url in urls:
            try:
                published = loads_bounded((await fetcher.fetch(url)).body)
                if not isinstance(published, dict):
                    raise ValueError(f"status list {url} is not a JSON object")
                lists[url] = verified_status_list(
                    published, url=url, issuer=issuer_id(credential), trust=trust, now=now
                )
            except CertflowError as exc:  # refused or failed fetch: "status unknown", with why
                problems[url] = exc.message
            except ValueError as exc:
                problems[url] = str(exc)
            if url in problems:
                click.echo(f"status list {url} unavailable: {problems[url]}", err=True)
    return lists, problems


@cli.command()
@click.option("--learners", default=3000, show_default=True, help="Learners in each end-to-end run.")
@click.option("--ceiling-count", default=2000, show_default=True, help="Certificates in the in-process run.")
@click.option("--pdf-samples", default=41, show_default=True, help="Certificates rendered to PDF.")
@click.option("--rocksdb-learners", default=0, show_default=True,
              help="Also measure a RocksDB-backed worker's RSS holding this many learners (slow).")
@click.option("--json-output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every figure as JSON.")
def bench(
    learners: int, ceiling_count: int, pdf_samples: int, rocksdb_learners: int, json_output: Path | None
) -> None:
    """Measure certflow against this machine's ceiling, in one run (a few minutes).

    Starts its own embedded broker and workers on 127.0.0.1 and stops them at the
    end. Prints the in-process ceiling, end-to-end throughput, latency, CPU and RSS
    with one and two workers (each as a ratio of the ceiling), and on-demand PDF
    timings.
    """
    from certflow.bench import run

    report = run(learners, ceiling_count, pdf_samples, rocksdb_learners)
    if json_output is not None:
        json_output.write_bytes(orjson.dumps(report.figures, option=orjson.OPT_INDENT_2))
