"""``certflow``: run the service, and the tools that go with it.

Settings come from ``CERTFLOW_*`` environment variables (see ``certflow.settings``),
read when a command runs, never when a module is imported; the few flags here
override the matching setting for one run. One module per group of commands:

* :mod:`certflow.cli.service`: ``broker``, ``topics``, ``worker``
* :mod:`certflow.cli.events`: ``send``, ``tail``, ``load``
* :mod:`certflow.cli.certificates`: ``render``, ``verify``, ``keys``
* :mod:`certflow.cli.roster`: ``issue``
* :mod:`certflow.cli.export`: ``export``
* :mod:`certflow.cli.bench`: ``bench``
"""

from __future__ import annotations

import sys

import click

from certflow.cli import bench, certificates, events, export, roster, service
from certflow.cli.root import cli

__all__ = ["bench", "certificates", "cli", "events", "export", "main", "roster", "service"]


def main() -> None:
    """Run the command; a broker refusing the Kafka credentials is reported in one
    line (what was refused, which settings to check), not as a traceback."""
    from certflow.kafka_client import KafkaAccessRefused

    try:
        cli()
    except KafkaAccessRefused as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
