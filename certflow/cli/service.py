"""Running certflow: a local Kafka, the topics, a worker."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click

from certflow.cli.root import cli
from certflow.settings import Settings


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

    from certflow.kafka_cluster import KafkaCluster

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
@click.option(
    "--strimzi", "cluster", metavar="CLUSTER", default=None,
    help="Create nothing: print a Strimzi KafkaTopic for every topic of the deployment "
    "(certflow's and Faust's), for the Kafka cluster CLUSTER.",
)
@click.option(
    "--partitions", type=click.IntRange(min=1), default=None,
    help="With --strimzi: the partition count, instead of CERTFLOW_PARTITIONS.",
)
@click.option(
    "--kafka-user", "user", metavar="NAME", default=None,
    help="With --strimzi: print the worker's KafkaUser NAME, with the ACLs a worker needs, instead.",
)
@click.option(
    "--authentication", type=click.Choice(["scram-sha-512", "tls"]), default="scram-sha-512", show_default=True,
    help="With --kafka-user: how the user logs in (SCRAM-SHA-512 password, or a mutual-TLS certificate).",
)
def topics(cluster: str | None, partitions: int | None, user: str | None, authentication: str) -> None:
    """Create every certflow topic with its configured partition count (idempotent),
    or print them as Strimzi resources (--strimzi)."""
    settings = Settings() if partitions is None else Settings(partitions=partitions)
    if cluster is None:
        if user is not None:
            raise click.UsageError("--kafka-user needs --strimzi CLUSTER")
        _create_topics(settings)
        return
    click.echo(_strimzi_yaml(settings, cluster, user, authentication), nl=False)


def _strimzi_yaml(settings: Settings, cluster: str, user: str | None, authentication: str) -> str:
    from certflow.strimzi import generated_header, kafka_topics, kafka_user, to_yaml, topic_specs, worker_acls

    specs = topic_specs(settings)
    command = f"certflow topics --strimzi {cluster}"
    if user is None:
        return to_yaml(kafka_topics(specs, cluster), generated_header(settings, command))
    command += f" --kafka-user {user} --authentication {authentication}"
    resource = kafka_user(
        worker_acls(settings, specs), cluster, user, "tls" if authentication == "tls" else "scram-sha-512",
    )
    return to_yaml([resource], generated_header(settings, command))


def _create_topics(settings: Settings) -> None:
    from certflow.kafka import ensure_topics

    report = asyncio.run(
        ensure_topics(
            settings.kafka,
            settings.topics.all(),
            partitions=settings.partitions,
            replication_factor=settings.replication_factor,
            min_insync_replicas=settings.min_insync_replicas,
            compacted=settings.topics.compacted(),
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
    from certflow.faust_fixes.versions import UnpatchedVersion, check_versions
    from certflow.worker import run_worker

    settings = Settings() if web_port is None else Settings(web_port=web_port)
    try:
        check_versions()
    except UnpatchedVersion as exc:
        raise click.ClickException(str(exc)) from None
    _require_signing_keys(settings)
    _create_topics(settings)
    # The same app and worker as `faust -A certflow.worker worker`, from these settings.
    run_worker(settings)


def _require_signing_keys(settings: Settings) -> None:
    """Stop, saying how to fix it, before a worker without usable keys touches the
    broker (``KeyRing.from_settings`` refuses to make one up)."""
    from certflow.credentials.keys import KeyRing

    try:
        KeyRing.from_settings(settings)
    except ValueError as exc:
        raise click.ClickException(f"the worker cannot sign certificates: {exc}") from None


