"""``certflow issue ROSTER.csv``: certify a roster in one step."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from certflow.cli.root import cli
from certflow.settings import Settings

#: Requests produced per Kafka round trip (the progress bar moves by these).
CHUNK = 200


@cli.command()
@click.argument("roster", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--template", required=True,
              help="The SVG template: a name under CERTFLOW_TEMPLATE_ROOT or an allowed URL.")
@click.option("--course-name", required=True, help="The course, as printed on every certificate.")
@click.option("--certificate-name", default="Course Completion Certificate", show_default=True,
              help="What the certificate certifies (its title).")
@click.option("--batch", "batch_id", default="", help="Course batch id (default: none).")
@click.option("--course-id", default="", help="Course id (default: the course name).")
@click.option("--issuer-name", default="", help="Issuer's name, as printed.")
@click.option("--issuer-url", default="", help="Issuer's web site (Sunbird requires one).")
@click.option("--base-path", default=None,
              help="Where certificates are verified [default: CERTFLOW_PUBLIC_URL/certs].")
@click.option("--expiry", default="", help="Validity, e.g. 2y or 18m (default: none).")
@click.option("--dry-run", is_flag=True, help="Validate the roster only; send nothing.")
def issue(roster: Path, template: str, course_name: str, certificate_name: str, batch_id: str,
          course_id: str, issuer_name: str, issuer_url: str, base_path: str | None,
          expiry: str, dry_run: bool) -> None:
    """Certify the learners of ROSTER (CSV with a header: name, id, email, …).

    Every line is checked like a generate event (display rules, an id, a valid
    email); each valid line becomes one ordinary generate request on
    generate.certificate.request (key: the learner id), so workers issue, store,
    and email exactly as for a Sunbird request. Rejected lines are listed with
    their line number and reason, and the command then exits 1 (the valid lines
    are still sent).
    """
    from certflow.errors import CertflowError
    from certflow.kafka import produce
    from certflow.roster import RosterSpec, roster_requests

    settings = Settings()
    spec = RosterSpec(
        svg_template=template,
        course_name=course_name,
        certificate_name=certificate_name,
        issuer_name=issuer_name,
        issuer_url=issuer_url,
        batch_id=batch_id,
        course_id=course_id,
        base_path=base_path or f"{settings.public_url.rstrip('/')}/certs",
        expiry=expiry,
    )
    try:
        result = roster_requests(roster.read_text(encoding="utf-8-sig"), spec)
    except (CertflowError, ValueError) as exc:
        reason = f"{exc.code.value}: {exc.message}" if isinstance(exc, CertflowError) else str(exc)
        raise click.ClickException(f"{roster}: {reason}") from None

    sent = 0
    if not dry_run and result.requests:
        topic = settings.topics.generate_request
        events = [(key.encode(), request.to_json()) for key, request in result.requests]
        with click.progressbar(length=len(events), label=f"sending to {topic}", file=sys.stderr) as bar:
            for start in range(0, len(events), CHUNK):
                chunk = events[start:start + CHUNK]
                sent += asyncio.run(produce(settings.kafka, topic, chunk))
                bar.update(len(chunk))
    for rejected in result.rejected:
        click.echo(f"line {rejected.line}: {rejected.reason}", err=True)
    verb = "validated (dry run)" if dry_run else f"sent {sent}"
    click.echo(f"{roster}: {result.summary}; {verb}", err=True)
    if result.rejected:
        sys.exit(1)
