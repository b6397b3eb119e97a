"""The ``certflow`` command group; each command lives in the module of its group."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """certflow: Sunbird-compatible course certificates on Kafka.

    Typical local run: `certflow broker` in one terminal, `certflow keys generate
    --file keys.json` once, `CERTFLOW_SIGNING_KEYS_FILE=keys.json certflow worker` in
    another, then `certflow send generate.certificate.request event.json` and
    `certflow tail certificate.issued`.
    """

