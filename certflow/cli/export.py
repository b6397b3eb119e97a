"""``certflow export --batch B``: a batch's certificates in force, as PDFs or PNGs."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from certflow.cli.root import cli
from certflow.settings import Settings

if TYPE_CHECKING:
    from certflow.registry.export import ExportFormat, ExportReport


@cli.command("export")
@click.option("--batch", "batch_id", required=True, help="The course batch id (batchId of its certificates).")
@click.option("--format", "fmt", type=click.Choice(["pdf", "png"]), default="pdf", show_default=True,
              help="What each certificate is rendered as.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The zip to write [default: certificates-BATCH.zip].")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the files and manifest.json into this folder instead of a zip.")
@click.option("--processes", type=click.IntRange(min=1), default=None,
              help="Render processes [default: one per core].")
def export(batch_id: str, fmt: ExportFormat, output: Path | None, output_dir: Path | None,
           processes: int | None) -> None:
    """Export the certificates of a batch that are in force, for printing.

    Reads certificate.issued and the revocations from CERTFLOW_BROKER (no worker
    needed), leaves out revoked and replaced certificates, and renders the others
    exactly as a worker's /certs/{id}.pdf|.png on every core, written as they are
    done. Each file is named after the learner and the certificate's short id;
    manifest.json lists every file with its certificate id and learner, and what
    was left out and why.

    Exit status: 0 if every certificate in force was exported; 1 if the batch has
    none in force, or any could not be rendered (they are listed).
    """
    from certflow.registry.archive import safe_name_part
    from certflow.registry.batch_selection import BatchSource, NothingToExport, find_batch
    from certflow.registry.export import export_to_path, render_processes

    if output is not None and output_dir is not None:
        raise click.UsageError("give -o FILE.zip or --output-dir DIR, not both")
    target = output_dir or output or Path(f"certificates-{safe_name_part(batch_id) or 'batch'}.zip")
    settings = Settings()
    count = processes or os.cpu_count() or 1

    async def run() -> ExportReport:
        # The render processes start while the batch is being found.
        with render_processes(count) as executor:
            click.echo(f"finding the certificates of batch {batch_id} …", err=True)
            selection = await find_batch(BatchSource.from_settings(settings), batch_id)
            if not selection.in_force:
                raise click.ClickException(str(NothingToExport(selection)))
            with click.progressbar(length=len(selection.in_force), label=f"rendering {fmt.upper()}s",
                                   file=sys.stderr) as bar:
                return await export_to_path(
                    settings, selection, fmt, target, directory=output_dir is not None,
                    executor=executor, processes=count, on_done=lambda _: bar.update(1),
                )

    report = asyncio.run(run())
    for left in report.left_out:
        why = f"replaced by {left.revocation.replaced_by}" if left.revocation.replaced_by else "revoked"
        click.echo(f"left out {left.entry.id} ({left.entry.recipient_name}): {why}: {left.revocation.reason}",
                   err=True)
    for failed in report.failed:
        click.echo(f"FAILED {failed.entry.id} ({failed.entry.recipient_name}): {failed.error}", err=True)
    click.echo(
        f"{target}: {len(report.exported)} certificates in {report.seconds:.1f} s, "
        f"{report.per_second:.2f} {fmt.upper()}s/s ({report.processes} processes); "
        f"{len(report.left_out)} left out, {len(report.failed)} failed",
        err=True,
    )
    if report.failed:
        sys.exit(1)
