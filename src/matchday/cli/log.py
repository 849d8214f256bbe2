"""``matchday log``: the prediction log, what every deployment answered, exported for notebooks and
warehouses."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from matchday.cli import render
from matchday.cli.context import default_workspace
from matchday.errors import MatchdayError

log_app = typer.Typer(
    help="The prediction log: what every deployment answered, for notebooks and warehouses.", no_args_is_help=True
)


def _utc_time(text: str | None, option: str) -> Any:
    """An ISO 8601 time as an aware UTC datetime; a time without a zone is taken as UTC."""
    from datetime import UTC, datetime

    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-12-01 or 2026-12-01T09:30:00Z)", param_hint=option
        ) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@log_app.command("export")
def log_export(
    name: Annotated[str, typer.Argument(help="the deployment")],
    output: Annotated[Path, typer.Argument(help="the Parquet file to write")],
    since: Annotated[str | None, typer.Option(help="from this ISO time on (UTC if no zone is given)")] = None,
    until: Annotated[str | None, typer.Option(help="before this ISO time (UTC if no zone is given)")] = None,
) -> None:
    """Write one row per logged prediction of deployment NAME to a Parquet file."""
    from matchday.monitoring import export_log
    from matchday.registry import ModelRef

    start, end = _utc_time(since, "--since"), _utc_time(until, "--until")
    if start is not None and end is not None and end <= start:
        raise typer.BadParameter(f"--until ({until}) must come after --since ({since})")
    if not output.parent.is_dir():
        raise typer.BadParameter(f"{output.parent} is not a directory", param_hint="OUTPUT")
    ws = default_workspace()
    ws.deployments.get(name)  # a clear "no deployment named ..." before anything is written
    classes: dict[tuple[str, int], Any] = {}

    def classes_of(model: str, version: int) -> Any:
        if (model, version) not in classes:
            try:
                signature = ws.registry.get_signature(ModelRef(model, version=version))
                classes[model, version] = signature.output.classes
            except MatchdayError:  # a version deleted since it answered: no probability columns for it
                classes[model, version] = None
        return classes[model, version]

    out = render.out()
    with out.status(f"exporting the log of {name}..."):
        summary = export_log(ws.prediction_log, name, output, classes_of, start, end)
    out.print(f"wrote {summary.rows:,} rows x {len(summary.columns)} columns to {summary.path}")
