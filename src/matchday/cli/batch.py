"""``matchday batch score``: a file, folder, glob or URL of Parquet/CSV scored into a Parquet folder,
with a progress bar (rows/s, ETA) and a summary. The work is `matchday.batch`'s."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from matchday.cli.options import FLAG

if TYPE_CHECKING:
    from matchday.batch import BatchResult

batch_app = typer.Typer(
    help="Score files offline: Parquet/CSV in, a Parquet folder out, resumable.", no_args_is_help=True
)


@batch_app.command("score")
def score(
    model_ref: Annotated[str, typer.Argument(help="the version: NAME:VERSION, NAME@ALIAS or NAME (latest)")],
    input: Annotated[str, typer.Argument(help="a Parquet or CSV file, a folder or glob of them, or an fsspec URL")],
    output: Annotated[str, typer.Argument(help="the output folder (Parquet parts, _manifest.json, _rejects/)")],
    id_column: Annotated[
        str | None,
        typer.Option("--id-column", help="the input's id column, copied to the output (default: a row number)"),
    ] = None,
    engine: Annotated[str, typer.Option(help="local (threads in this process) or ray (Ray Data)")] = "local",
    address: Annotated[str | None, typer.Option(help="the Ray cluster's address (default: a local Ray)")] = None,
    rejects: Annotated[str | None, typer.Option(help="the rejects folder (default: OUTPUT/_rejects)")] = None,
    max_reject_rate: Annotated[
        float, typer.Option("--max-reject-rate", help="stop when more than this share of rows is rejected")
    ] = 0.01,
    resume: Annotated[
        bool, typer.Option("--resume", metavar=FLAG, help="finish the job OUTPUT holds, skipping its done parts")
    ] = False,
    deployment: Annotated[
        str | None, typer.Option(help="log the rows to this deployment's monitoring (marked source: batch)")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="rows per record batch")] = 65_536,
) -> None:
    """Score INPUT with MODEL_REF into OUTPUT; rows the model cannot score go to the rejects with the reason."""
    from matchday.batch import BatchOptions
    from matchday.cli.context import default_workspace

    options = BatchOptions(
        id_column=id_column,
        engine=engine,  # type: ignore[arg-type]  # checked by BatchOptions.check
        address=address,
        rejects=rejects,
        max_reject_rate=max_reject_rate,
        resume=resume,
        deployment=deployment,
        batch_size=batch_size,
    )
    err = Console(stderr=True, highlight=False)
    job = default_workspace().batch.plan(model_ref, input, output, options)
    done = job.total_rows - job.pending_rows
    if resume and done:
        err.print(f"resuming job {job.job_id}: {done:,} of {job.total_rows:,} rows were done")
    columns = (
        TextColumn("[bold]scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TextColumn("{task.fields[speed]} rows/s"),
        TextColumn("{task.fields[rejected]} rejected"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task("score", total=job.pending_rows, speed="-", rejected=0)
        rejected = 0

        def advance(rows: int, bad: int) -> None:
            nonlocal rejected
            rejected += bad
            bar.advance(task, rows)
            speed = bar.tasks[0].speed
            bar.update(task, speed=f"{speed:,.0f}" if speed else "-", rejected=f"{rejected:,}")

        result = job.run(advance)
    _summary(result)


def _summary(result: BatchResult) -> None:
    out = Console(highlight=False)
    out.print(
        f"[green]done[/]: job {result.job_id}, {result.model}:{result.version}: {result.rows:,} rows "
        f"in {result.seconds:.1f} s ({result.rows_per_second:,.0f} rows/s), {result.scored:,} scored, "
        f"{result.rejected:,} rejected; {result.parts} part(s) written"
        + (f", {result.skipped_parts} were done" if result.skipped_parts else "")
    )
    out.print(f"output: {escape(result.output)}")
    if result.rejected:
        out.print(f"rejects: {escape(result.rejects)}")
    if result.logged:
        out.print(f"logged {result.logged:,} rows to the deployment's monitoring (source: batch)")
